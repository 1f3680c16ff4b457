package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// isolate gives a test an environment with every ledgerd variable empty
// (which reads as unset) but the database URL.
func isolate(t *testing.T) {
	t.Helper()
	for _, name := range []string{
		"LEDGER_DATABASE_URL_FILE", "LEDGER_GRPC_ADDR", "LEDGER_METRICS_ADDR", "LEDGER_LOG_LEVEL", "LEDGER_LOG_FORMAT",
		"LEDGER_DB_MAX_CONNS", "LEDGER_MAX_BATCH", "LEDGER_COMMITTERS", "LEDGER_SHUTDOWN_TIMEOUT",
		"LEDGER_PAYMENT_TIMEOUT", "LEDGER_TLS_CERT", "LEDGER_TLS_KEY", "LEDGER_TLS_CLIENT_CA", "LEDGER_PLAINTEXT",
	} {
		t.Setenv(name, "")
	}
	t.Setenv("LEDGER_DATABASE_URL", "postgres://x/y")
}

// Unset variables get the defaults the README documents, and the values
// `make run` and the benchmark script set are accepted.
func TestLoadConfigDefaults(t *testing.T) {
	isolate(t)
	want := config{
		DatabaseURL: "postgres://x/y", GRPCAddr: "localhost:50051", MetricsAddr: "localhost:9464", LogLevel: slog.LevelInfo, LogFormat: "json",
		DBMaxConns: 32, MaxBatch: 512, Committers: 2, ShutdownTimeout: 30 * time.Second, PaymentTimeout: 24 * time.Hour,
	}
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}

	t.Setenv("LEDGER_LOG_FORMAT", "text")
	t.Setenv("LEDGER_PLAINTEXT", "true")
	t.Setenv("LEDGER_GRPC_ADDR", "localhost:50061")
	cfg, err = loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	want.LogFormat, want.Plaintext, want.GRPCAddr = "text", true, "localhost:50061"
	if cfg != want {
		t.Errorf("make run's settings:\n got %+v\nwant %+v", cfg, want)
	}
}

// A variable that is set but malformed or out of range stops ledgerd with a
// message naming it; it is never replaced by its default.
func TestLoadConfigRefusesBadEnv(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"LEDGER_PAYMENT_TIMEOUT", "30"}, // no unit
		{"LEDGER_PAYMENT_TIMEOUT", "744h"},
		{"LEDGER_SHUTDOWN_TIMEOUT", "1 m"},
		{"LEDGER_SHUTDOWN_TIMEOUT", "-1s"},
		{"LEDGER_SHUTDOWN_TIMEOUT", "0s"},
		{"LEDGER_DB_MAX_CONNS", "sixteen"},
		{"LEDGER_DB_MAX_CONNS", "-5"},
		{"LEDGER_DB_MAX_CONNS", "0"},
		{"LEDGER_MAX_BATCH", "1e3"},
		{"LEDGER_MAX_BATCH", "0"},
		{"LEDGER_COMMITTERS", "two"},
		{"LEDGER_COMMITTERS", "-1"},
		{"LEDGER_LOG_LEVEL", "verbose"},
		{"LEDGER_LOG_FORMAT", "xml"},
		{"LEDGER_PLAINTEXT", "yes"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			isolate(t)
			t.Setenv(tc.name, tc.value)
			cfg, err := loadConfig(nil)
			if err == nil {
				t.Fatalf("%s=%q accepted; config is %+v", tc.name, tc.value, cfg)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

// A flag that is malformed or out of range stops ledgerd with a message
// naming it.
func TestLoadConfigRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"payment-timeout", "-1h"},
		{"shutdown-timeout", "-1s"},
		{"db-max-conns", "-5"},
		{"db-max-conns", "4294967296"},
		{"max-batch", "0"},
		{"committers", "-1"},
		{"log-level", "verbose"},
		{"log-format", "xml"},
		// Empty, an address listens on every interface at a port no one
		// chose: the metrics, which need no credential, served to anyone.
		{"grpc-addr", ""},
		{"metrics-addr", ""},
	} {
		arg := "--" + tc.flag + "=" + tc.value
		t.Run(arg, func(t *testing.T) {
			isolate(t)
			cfg, err := loadConfig([]string{arg})
			if err == nil {
				t.Fatalf("%s accepted; config is %+v", arg, cfg)
			}
			if !strings.Contains(err.Error(), "-"+tc.flag) {
				t.Errorf("error %q does not name -%s", err, tc.flag)
			}
		})
	}
}

// A payment timeout the ledger would refuse on every pending entry must stop
// ledgerd at start-up, naming the flag and its variable; the bounds
// themselves are accepted.
func TestLoadConfigPaymentTimeoutWithinLedgerBounds(t *testing.T) {
	isolate(t)
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
