package main

import (
	"strings"
	"testing"
	"time"
)

// A payment timeout the ledger would refuse on every pending entry must stop
// ledgerd at start-up, naming the flag and its variable; the bounds
// themselves are accepted.
func TestLoadConfigPaymentTimeoutWithinLedgerBounds(t *testing.T) {
	t.Setenv("LEDGER_DATABASE_URL", "postgres://x/y")
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"1s", true},
		{"24h", true},
		{"720h", true},
		{"744h", false},  // above ledger.MaxPendingTimeout
		{"500ms", false}, // below 1s
		{"0s", false},
		{"-1h", false},
	} {
		t.Run("flag="+tc.value, func(t *testing.T) {
			cfg, err := loadConfig([]string{"--payment-timeout=" + tc.value})
			checkPaymentTimeout(t, tc.value, tc.ok, cfg, err)
		})
		t.Run("env="+tc.value, func(t *testing.T) {
			t.Setenv("LEDGER_PAYMENT_TIMEOUT", tc.value)
			cfg, err := loadConfig(nil)
			checkPaymentTimeout(t, tc.value, tc.ok, cfg, err)
		})
	}
}

func checkPaymentTimeout(t *testing.T, value string, ok bool, cfg config, err error) {
	t.Helper()
	if ok {
		want, _ := time.ParseDuration(value)
		if err != nil || cfg.PaymentTimeout != want {
			t.Errorf("payment timeout %s: got %s, %v; want it accepted", value, cfg.PaymentTimeout, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("payment timeout %s accepted", value)
	}
	for _, name := range []string{"--payment-timeout", "LEDGER_PAYMENT_TIMEOUT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
