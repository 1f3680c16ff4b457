package ledger

import (
	"math"
	"testing"
)

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		currency string
		minor    int64
		want     string
	}{
		{"VND", 0, "0"},
		{"VND", 170000, "170000"},
		{"VND", -5000, "-5000"},
		{"VND", math.MaxInt64, "9223372036854775807"},
		{"JPY", 42, "42"},
		{"USD", 12345, "123.45"},
		{"USD", -1, "-0.01"},
		{"USD", 0, "0.00"},
		{"EUR", 100, "1.00"},
	} {
		if got := FormatAmount(c.currency, c.minor); got != c.want {
			t.Errorf("FormatAmount(%s, %d) = %q, want %q", c.currency, c.minor, got, c.want)
		}
	}
}
