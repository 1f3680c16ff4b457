package ledger

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Currencies the ledger accepts, with their ISO 4217 exponents: the number
// of decimals of the minor unit. Amounts are stored as integers of minor
// units, so an amount with more decimals than its currency has is refused
// rather than rounded.
var currencyExponents = map[string]int32{
	"VND": 0,
	"USD": 2,
	"EUR": 2,
	"SGD": 2,
	"THB": 2,
	"JPY": 0,
	"KRW": 0,
	"CNY": 2,
}

// MaxAmount bounds one posting, in minor units: far above any payment, far
// enough below the int64 limit that account totals cannot overflow in any
// realistic history.
const MaxAmount = 1_000_000_000_000_000 // 10^15

// ParseDecimal reads an amount as clients send it: a plain decimal string
// such as "150000" or "12.50", but not "150.000", which is 150,000 written
// the Vietnamese way. Whether its scale suits the currency is checked when
// the entry is written.
func ParseDecimal(s string) (decimal.Decimal, error) {
	if s == "" {
		return decimal.Decimal{}, fmt.Errorf("is required")
	}
	if !plainDecimal(s) {
		return decimal.Decimal{}, fmt.Errorf("must be a plain positive decimal number like \"150000\", got %q", s)
	}
	// No currency here has three decimals, so read with a decimal point
	// "45.000" is a thousand times less than meant, and nothing after can
	// tell: a partial confirmation, a refund or a settlement of 45 đồng is
	// valid.
	if err := ThousandsSeparated(s); err != nil {
		return decimal.Decimal{}, err
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("must be a decimal number, got %q", s)
	}
	return d, nil
}

// plainDecimal accepts digits with at most one '.', nothing else: no sign,
// exponent, spaces or separators, so "1e3" or "+5" never slip through.
func plainDecimal(s string) bool {
	dot := false
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0 && len(s) <= 40
}

// oneThousandsGroup is an amount with a point before one group of three
// digits, "150.000": how Vietnamese writes 150,000.
var oneThousandsGroup = regexp.MustCompile(`^[1-9][0-9]{0,2}\.[0-9]{3}$`)

// ThousandsSeparated refuses an amount written as Vietnamese writes a round
// one, "45.000" for 45,000: in a currency of fewer than three decimals the
// point is a thousands separator, and read as a decimal point it would
// make the amount a thousand times smaller.
func ThousandsSeparated(amount string) error {
	if !oneThousandsGroup.MatchString(amount) {
		return nil
	}
	return fmt.Errorf("%q reads as %s with a thousands separator, as Vietnamese writes amounts; write it without separators",
		amount, strings.Replace(amount, ".", "", 1))
}

// FormatAmount renders minor units as a decimal string in the major unit.
func FormatAmount(currency string, minor int64) string {
	exp := currencyExponents[currency]
	if exp == 0 {
		// The đồng has no minor unit: the common case, and a hot one in
		// reports with thousands of amounts, needs no decimal arithmetic.
		return strconv.FormatInt(minor, 10)
	}
	return decimal.New(minor, -exp).StringFixed(exp)
}

// addChecked adds without wrapping around: a total that would overflow is
// refused instead of silently turning negative.
func addChecked(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}
