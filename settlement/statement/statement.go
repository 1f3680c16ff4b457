package statement

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Format is the kind of document a statement arrives as.
type Format string

const (
	FormatCSV     Format = "csv"
	FormatCamt053 Format = "camt.053" // ISO 20022 BankToCustomerStatement (end of day)
	FormatCamt054 Format = "camt.054" // ISO 20022 BankToCustomerDebitCreditNotification
)

// Line is one booked transaction of a statement.
type Line struct {
	// Number points a person at the transaction in the file: the CSV line
	// number (the header is line 1), or the 1-based ordinal of the Ntry
	// among all the document's entries, pending ones included.
	Number      int
	Ref         string    // provider/bank transaction reference: 1-64 printable ASCII
	Amount      int64     // minor units of Currency, always positive
	Credit      bool      // true: money in (a payment, unless Reversal); false: money out (a refund, a reversal)
	Currency    string    // ISO 4217, e.g. "VND"
	BookedAt    time.Time // UTC
	Channel     string    // "" when the statement does not say
	Merchant    string    // "" when the statement does not say
	Description string    // at most 140 characters
	// Reversal says the line undoes an earlier one of the other direction
	// (camt's RvslInd): a credit reversal is money coming back from a
	// failed debit, such as a refund that bounced, not a customer's
	// payment; a debit reversal takes back an earlier credit. Always false
	// for CSV, whose "debit" may be either a refund or a reversal.
	Reversal bool
	// DateOnly says the statement gave the booking's date alone (camt's
	// BookgDt/Dt): BookedAt is the start of that day in Vietnam time, and
	// the booking was at some time of the day.
	DateOnly bool
}

// Statement is a provider's or bank's list of booked transactions.
type Statement struct {
	Format Format
	// ID is camt's Stmt/Id or Ntfctn/Id. A CSV carries no id of its own, so
	// for CSV it is the hex SHA-256 of the content (equal to Digest); a
	// caller with a better name, such as the provider's batch id, may
	// overwrite it.
	ID string
	// PeriodStart (inclusive) and PeriodEnd (exclusive), in UTC, are the
	// period every line was checked to fall in: Options' when set, else the
	// camt statement's FrToDt; zero when neither says.
	PeriodStart time.Time
	PeriodEnd   time.Time
	Lines       []Line
	// Digest is the hex SHA-256 of the raw bytes read, BOM included, so a
	// caller can refuse importing the same file twice.
	Digest string
}

// Options limit what Parse accepts. The zero value is usable.
type Options struct {
	MaxBytes int64 // refuse larger input; 0 means 10 MiB
	MaxLines int   // refuse more lines (CSV data rows, camt entries); 0 means 100,000
	// PeriodStart and PeriodEnd, when either is set, make lines booked
	// outside [PeriodStart, PeriodEnd) errors; an unset bound is open. When
	// both are zero a camt statement's own FrToDt is used instead.
	PeriodStart, PeriodEnd time.Time
	// Exponents maps each accepted currency to its number of minor-unit
	// decimals; nil means {"VND": 0, "USD": 2, "EUR": 2}. A currency absent
	// from it is refused.
	Exponents map[string]int32
}

const (
	DefaultMaxBytes = 10 << 20
	DefaultMaxLines = 100_000
	// MaxAmount bounds one line, in minor units, as the ledger bounds one
	// posting: a line the ledger could never record is better refused here.
	MaxAmount = 1_000_000_000_000_000 // 10^15
	// MaxDescription is how many characters of a description are kept.
	MaxDescription = 140
)

var defaultExponents = map[string]int32{"VND": 0, "USD": 2, "EUR": 2}

// ErrMalformed is what every refusal of a statement's content satisfies
// (errors.Is), so callers can tell a bad file from a failing reader or a
// programming mistake in Options.
var ErrMalformed = errors.New("malformed statement")

// Error is a refusal of the whole statement, naming the line and the reason.
// Line is 0 for whole-file problems (size, XML syntax, missing header...).
type Error struct {
	Line   int
	Field  string
	Reason string

	// unit is what Line counts, for the message: camt entries are not
	// lines of the file, and calling them so would send a person to the
	// wrong place.
	unit string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		unit := e.unit
		if unit == "" {
			unit = "line"
		}
		fmt.Fprintf(&b, "%s %d: ", unit, e.Line)
	} else {
		b.WriteString("statement: ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes every *Error match ErrMalformed without hiding the Error itself
// behind a wrapper.
func (e *Error) Is(target error) bool { return target == ErrMalformed }

func fileErr(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads a statement of the given format. Errors about the content are
// *Error (and ErrMalformed); others are about the reader or the options.
func Parse(r io.Reader, f Format, opts Options) (Statement, error) {
	switch f {
	case FormatCSV:
		return ParseCSV(r, opts)
	case FormatCamt053, FormatCamt054:
		st, err := ParseCamt(r, opts)
		if err != nil {
			return Statement{}, err
		}
		if st.Format != f {
			// A notification imported as an end-of-day statement would make
			// the day look complete when it is not.
			return Statement{}, fileErr("format", "document is %s, expected %s", st.Format, f)
		}
		return st, nil
	}
	return Statement{}, fmt.Errorf("statement: unknown format %q", f)
}

// config is Options checked and with defaults filled in.
type config struct {
	maxBytes    int64
	maxLines    int
	start, end  time.Time
	periodGiven bool
	exponents   map[string]int32
}

func (o Options) config() (config, error) {
	c := config{
		maxBytes:  o.MaxBytes,
		maxLines:  o.MaxLines,
		start:     o.PeriodStart,
		end:       o.PeriodEnd,
		exponents: o.Exponents,
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxLines <= 0 {
		c.maxLines = DefaultMaxLines
	}
	if c.exponents == nil {
		c.exponents = defaultExponents
	}
	for cur, e := range c.exponents {
		// Beyond 18 decimals no amount within MaxAmount has a major unit.
		if e < 0 || e > 18 {
			return c, fmt.Errorf("statement: invalid options: exponent %d of %s out of 0..18", e, cur)
		}
	}
	c.periodGiven = !c.start.IsZero() || !c.end.IsZero()
	if !c.start.IsZero() && !c.end.IsZero() && !c.end.After(c.start) {
		return c, fmt.Errorf("statement: invalid options: period end %s is not after start %s",
			c.end.Format(time.RFC3339), c.start.Format(time.RFC3339))
	}
	return c, nil
}

// readAll reads the whole input, refusing more than max bytes. Reading it
// all first is what lets Parse refuse the whole statement at the first
// error and still report the digest of exactly what it was given.
func readAll(r io.Reader, max int64) ([]byte, string, error) {
	limit := max
	if limit < math.MaxInt64 {
		limit++ // one byte more tells "exactly max" from "more than max"
	}
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, "", fmt.Errorf("statement: reading: %w", err)
	}
	if int64(len(data)) > max {
		return nil, "", fileErr("size", "larger than %d bytes", max)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

var bom = []byte("\ufeff")

// parseAmount turns a major-unit decimal into minor units. It never rounds:
// digits beyond the currency's exponent are accepted only when they are
// zeros ("1500.00" VND is 1500), because then no value is lost.
func parseAmount(s, currency string, exp int32) (int64, string) {
	if !plainDecimal(s) {
		return 0, fmt.Sprintf("must be a plain positive decimal like \"150000\" or \"12.50\" (no sign, exponent, spaces or separators): got %s", quote(s))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Sprintf("not a decimal number: got %s", quote(s))
	}
	minor := d.Shift(exp)
	if !minor.IsInteger() {
		if exp == 0 {
			return 0, fmt.Sprintf("%s has no minor unit: got %s", currency, quote(s))
		}
		return 0, fmt.Sprintf("%s has %d decimals: got %s", currency, exp, quote(s))
	}
	if minor.Sign() <= 0 {
		return 0, fmt.Sprintf("must be positive: got %s", quote(s))
	}
	if minor.GreaterThan(decimal.New(MaxAmount, 0)) {
		return 0, fmt.Sprintf("more than 10^15 minor units: got %s", quote(s))
	}
	return minor.IntPart(), ""
}

// plainDecimal accepts digits with at most one '.' between digits, nothing
// else, so "1e3", "+5", "1,500", ".5" or " 5" never reach the decimal
// parser, which would accept some of them.
func plainDecimal(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	intPart, frac, dot := strings.Cut(s, ".")
	return allDigits(intPart) && (!dot || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkCurrency returns the currency's exponent, or why it is refused.
func checkCurrency(s string, exponents map[string]int32) (int32, string) {
	if s == "" {
		return 0, "is required"
	}
	if len(s) != 3 || strings.ToUpper(s) != s || !isLetters(s) {
		return 0, fmt.Sprintf("must be an ISO 4217 code like \"VND\": got %s", quote(s))
	}
	exp, ok := exponents[s]
	if !ok {
		return 0, fmt.Sprintf("%s is not accepted (accepted: %s)", s, strings.Join(slices.Sorted(maps.Keys(exponents)), ", "))
	}
	return exp, ""
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// checkCode validates a reference-like value (ref, channel, merchant):
// printable ASCII so it compares byte for byte with what the provider sent
// us when the payment was recorded, and no surrounding spaces, which would
// make two equal-looking references differ.
func checkCode(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("longer than %d characters: got %s", max, quote(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Sprintf("must be printable ASCII: got %s", quote(s))
		}
	}
	if strings.TrimSpace(s) != s {
		return fmt.Sprintf("has leading or trailing spaces: got %s", quote(s))
	}
	return ""
}

const maxRef = 64

// vietnam is the zone of times written without an offset. Vietnam has kept
// UTC+7 without daylight saving since 1975, so the fixed zone is exact when
// the system has no tzdata.
var vietnam = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return loc
	}
	return time.FixedZone("ICT", 7*3600)
}()

// earliest is before any transaction this system can see; an earlier
// booking time (a zero date, a year typed as 0026) is a broken export.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// checkPeriod returns why t is outside [start, end), or "".
func checkPeriod(t, start, end time.Time) string {
	if t.Before(earliest) {
		return fmt.Sprintf("%s is before the year 2000", t.UTC().Format(time.RFC3339))
	}
	if (!start.IsZero() && t.Before(start)) || (!end.IsZero() && !t.Before(end)) {
		return fmt.Sprintf("%s is outside the statement period [%s, %s)",
			t.UTC().Format(time.RFC3339), fmtBound(start), fmtBound(end))
	}
	return ""
}

func fmtBound(t time.Time) string {
	if t.IsZero() {
		return "open"
	}
	return t.UTC().Format(time.RFC3339)
}

// cleanDescription makes free text safe to show on one line: control
// characters dropped, whitespace runs collapsed, at most MaxDescription
// characters kept. Descriptions are never matched on, so cutting loses
// nothing the reconciliation needs.
func cleanDescription(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > MaxDescription {
		n := 0
		for i := range s {
			if n == MaxDescription {
				s = strings.TrimRight(s[:i], " ")
				break
			}
			n++
		}
	}
	return s
}

// quote shows a value in a message, cut short so that a huge field cannot
// make a huge error.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) <= max {
		return strconv.Quote(s)
	}
	n := 0
	for i := range s {
		if n == max {
			return strconv.Quote(s[:i]) + "..."
		}
		n++
	}
	return strconv.Quote(s)
}
