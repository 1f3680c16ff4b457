package statement

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const validCSV = "ref,amount,currency,booked_at,direction,channel,merchant,description\n" +
	"FT26069A1B2C,150000,VND,2026-03-10T08:15:30+07:00,credit,VIETQR,TN-DAITU-0042,Thanh toán rau củ\n" +
	"MOMO-4F7A9C21,85000,VND,2026-03-10 09:40:05,,MOMO,TN-DAITU-0107,\"Mua thịt, heo\"\n" +
	"FT26069Z9Y8X,150000,VND,2026-03-10T09:02:11Z,debit,VIETQR,TN-DAITU-0042,Hoàn tiền\n" +
	"ZP-000031,12.50,USD,2026-03-10T10:00:00.5+07:00,credit,,,\n"

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

var validCSVLines = []Line{
	{Number: 2, Ref: "FT26069A1B2C", Amount: 150000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:15:30Z"), Channel: "VIETQR", Merchant: "TN-DAITU-0042", Description: "Thanh toán rau củ"},
	{Number: 3, Ref: "MOMO-4F7A9C21", Amount: 85000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T02:40:05Z"), Channel: "MOMO", Merchant: "TN-DAITU-0107", Description: "Mua thịt, heo"},
	{Number: 4, Ref: "FT26069Z9Y8X", Amount: 150000, Credit: false, Currency: "VND", BookedAt: utc("2026-03-10T09:02:11Z"), Channel: "VIETQR", Merchant: "TN-DAITU-0042", Description: "Hoàn tiền"},
	{Number: 5, Ref: "ZP-000031", Amount: 1250, Credit: true, Currency: "USD", BookedAt: utc("2026-03-10T03:00:00.5Z")},
}

func assertLines(t *testing.T, got, want []Line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.BookedAt.Location() != time.UTC {
			t.Errorf("line %d: BookedAt in %v, want UTC", i, g.BookedAt.Location())
		}
		if !g.BookedAt.Equal(w.BookedAt) {
			t.Errorf("line %d: BookedAt %v, want %v", i, g.BookedAt, w.BookedAt)
		}
		g.BookedAt, w.BookedAt = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestParseCSV(t *testing.T) {
	st, err := ParseCSV(strings.NewReader(validCSV), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatCSV {
		t.Errorf("Format = %q", st.Format)
	}
	if want := sha([]byte(validCSV)); st.Digest != want || st.ID != want {
		t.Errorf("Digest %s, ID %s, want both %s", st.Digest, st.ID, want)
	}
	if !st.PeriodStart.IsZero() || !st.PeriodEnd.IsZero() {
		t.Errorf("period [%v, %v), want zero", st.PeriodStart, st.PeriodEnd)
	}
	assertLines(t, st.Lines, validCSVLines)
}

func TestParseCSVHeaderOrder(t *testing.T) {
	in := "booked_at,description,currency,ref,amount\n" +
		"2026-03-10T08:15:30+07:00,Thanh toán,VND,FT26069A1B2C,150000\n"
	st, err := Parse(strings.NewReader(in), FormatCSV, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, st.Lines, []Line{{Number: 2, Ref: "FT26069A1B2C", Amount: 150000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:15:30Z"), Description: "Thanh toán"}})
}

func TestParseCSVBOMAndCRLF(t *testing.T) {
	in := "\ufeff" + strings.ReplaceAll(validCSV, "\n", "\r\n")
	st, err := ParseCSV(strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, st.Lines, validCSVLines)
	// The digest is of the bytes as given, so the same content with and
	// without a BOM is two different files.
	if st.Digest != sha([]byte(in)) {
		t.Errorf("Digest %s is not of the raw input", st.Digest)
	}
}

func TestParseCSVDetails(t *testing.T) {
	long := strings.Repeat("ạ", 200)
	in := "ref,amount,currency,booked_at,description\n" +
		"\n" + // skipped, but still counted in line numbers
		"A1,150000.000,VND,2026-03-10 00:00:00,\"" + long + "\"\n" +
		"A2,1000000000000000,VND,2026-03-10T23:59:59.999+07:00,\"two\n  lines\tand\x01 control\"\n" +
		"A3,1,VND,2026-03-10T00:00:00+07:00,\n"
	st, err := ParseCSV(strings.NewReader(in), Options{
		PeriodStart: time.Date(2026, 3, 10, 0, 0, 0, 0, vietnam),
		PeriodEnd:   time.Date(2026, 3, 11, 0, 0, 0, 0, vietnam),
	})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, st.Lines, []Line{
		{Number: 3, Ref: "A1", Amount: 150000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-09T17:00:00Z"), Description: strings.Repeat("ạ", 140)},
		{Number: 4, Ref: "A2", Amount: MaxAmount, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T16:59:59.999Z"), Description: "two lines and control"},
		{Number: 6, Ref: "A3", Amount: 1, Credit: true, Currency: "VND", BookedAt: utc("2026-03-09T17:00:00Z")},
	})
	if !st.PeriodStart.Equal(utc("2026-03-09T17:00:00Z")) || !st.PeriodEnd.Equal(utc("2026-03-10T17:00:00Z")) {
		t.Errorf("period [%v, %v)", st.PeriodStart, st.PeriodEnd)
	}
	if utf8.RuneCountInString(st.Lines[0].Description) != MaxDescription {
		t.Errorf("description kept %d characters", utf8.RuneCountInString(st.Lines[0].Description))
	}
}

func TestParseCSVExponents(t *testing.T) {
	in := "ref,amount,currency,booked_at\nA1,500,JPY,2026-03-10T08:00:00Z\nA2,1.5,VND,2026-03-10T08:00:00Z\n"
	_, err := ParseCSV(strings.NewReader(in), Options{Exponents: map[string]int32{"JPY": 0}})
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || e.Field != "currency" {
		t.Fatalf("err = %v, want line 3 currency refused", err)
	}
}

const hdr = "ref,amount,currency,booked_at\n"

func TestParseCSVMalformed(t *testing.T) {
	day := Options{
		PeriodStart: time.Date(2026, 3, 10, 0, 0, 0, 0, vietnam),
		PeriodEnd:   time.Date(2026, 3, 11, 0, 0, 0, 0, vietnam),
	}
	row := func(ref, amount, cur, at string) string { return ref + "," + amount + "," + cur + "," + at + "\n" }
	ok := func(ref string) string { return row(ref, "150000", "VND", "2026-03-10T08:00:00+07:00") }

	tests := []struct {
		name      string
		in        string
		opts      Options
		wantLine  int
		wantField string
		wantMsg   string // substring of err.Error()
	}{
		{"bad encoding", hdr + ok("A1") + "A2,150000,VND,2026-03-10T08:00:00+07:00\xff\n", Options{}, 3, "encoding", "invalid UTF-8"},
		{"bad encoding after BOM", "\ufeff" + hdr + "A\xc3(1,1,VND,2026-03-10T08:00:00Z\n", Options{}, 2, "encoding", "invalid UTF-8"},
		{"missing column", "ref,amount,currency\nA1,150000,VND\n", Options{}, 1, "header", `missing required column "booked_at"`},
		{"unknown column", "ref,amount,currency,booked_at,merchnat\n" + "A1,1,VND,2026-03-10T08:00:00Z,X\n", Options{}, 1, "header", `unknown column "merchnat"`},
		{"column name case", "ref,Amount,currency,booked_at\n", Options{}, 1, "header", `unknown column "Amount"`},
		{"duplicate column", "ref,amount,currency,booked_at,ref\n", Options{}, 1, "header", `duplicate column "ref"`},
		{"empty file", "", Options{}, 0, "header", "missing"},
		{"wrong column count", hdr + ok("A1") + "A2,150000,VND\n", Options{}, 3, "columns", "3 fields, the header has 4"},
		{"too many columns", hdr + "A1,150000,VND,2026-03-10T08:00:00Z,extra\n", Options{}, 2, "columns", "5 fields"},
		{"empty ref", hdr + row("", "150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "ref", "is required"},
		{"ref with spaces", hdr + row(" A1", "150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "ref", "leading or trailing spaces"},
		{"ref not ASCII", hdr + row("MÃ1", "150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "ref", "printable ASCII"},
		{"ref too long", hdr + row(strings.Repeat("R", 65), "150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "ref", "longer than 64"},
		{"fractional VND", hdr + row("A1", "1500.5", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", `line 2: amount: VND has no minor unit: got "1500.5"`},
		{"fractional VND with zero", hdr + row("A1", "1500.50", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "VND has no minor unit"},
		{"negative amount", hdr + row("A1", "-150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"plus sign", hdr + row("A1", "+150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"exponent", hdr + row("A1", "1.5e5", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"thousands separator", hdr + row("A1", `"150,000"`, "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"dot separator", hdr + row("A1", "150.000.000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		// One group of thousands after a point is Vietnamese for 150,000
		// đồng, not 150 with three zeros of decimals.
		{"one dot separator", hdr + ok("A1") + row("A2", "150.000", "VND", "2026-03-10T08:00:00Z"), Options{}, 3, "amount", `"150.000" reads as 150000 with a thousands separator`},
		{"one dot separator in dollars", hdr + row("A1", "1.000", "USD", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "thousands separator"},
		{"leading dot", hdr + row("A1", ".5", "USD", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"spaces in amount", hdr + row("A1", " 150000", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "plain positive decimal"},
		{"zero amount", hdr + row("A1", "0.00", "USD", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "must be positive"},
		{"empty amount", hdr + row("A1", "", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "is required"},
		{"amount too large", hdr + row("A1", "1000000000000001", "VND", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", "10^15"},
		{"too many decimals for USD", hdr + row("A1", "12.345", "USD", "2026-03-10T08:00:00Z"), Options{}, 2, "amount", `USD has 2 decimals: got "12.345"`},
		{"lower-case currency", hdr + row("A1", "150000", "vnd", "2026-03-10T08:00:00Z"), Options{}, 2, "currency", "ISO 4217"},
		{"unknown currency", hdr + row("A1", "150000", "THB", "2026-03-10T08:00:00Z"), Options{}, 2, "currency", "THB is not accepted"},
		{"empty currency", hdr + row("A1", "150000", "", "2026-03-10T08:00:00Z"), Options{}, 2, "currency", "is required"},
		{"bad date", hdr + ok("A1") + row("A2", "150000", "VND", "10/03/2026 08:00"), Options{}, 3, "booked_at", "RFC 3339"},
		{"date without offset", hdr + row("A1", "150000", "VND", "2026-03-10T08:00:00"), Options{}, 2, "booked_at", "RFC 3339"},
		{"impossible date", hdr + row("A1", "150000", "VND", "2026-02-30 08:00:00"), Options{}, 2, "booked_at", "RFC 3339"},
		{"zero date", hdr + row("A1", "150000", "VND", "0001-01-01T00:00:00Z"), Options{}, 2, "booked_at", "before the year 2000"},
		{"empty date", hdr + row("A1", "150000", "VND", ""), Options{}, 2, "booked_at", "is required"},
		{"date before the period", hdr + row("A1", "150000", "VND", "2026-03-09 23:59:59"), day, 2, "booked_at", "outside the statement period [2026-03-09T17:00:00Z, 2026-03-10T17:00:00Z)"},
		{"date at the period end", hdr + ok("A1") + row("A2", "150000", "VND", "2026-03-11T00:00:00+07:00"), day, 3, "booked_at", "outside the statement period"},
		{"bad direction", "ref,amount,currency,booked_at,direction\nA1,1,VND,2026-03-10T08:00:00Z,CREDIT\n", Options{}, 2, "direction", `"credit" or "debit"`},
		{"channel with spaces", "ref,amount,currency,booked_at,channel\nA1,1,VND,2026-03-10T08:00:00Z,VIETQR \n", Options{}, 2, "channel", "leading or trailing"},
		{"merchant not ASCII", "ref,amount,currency,booked_at,merchant\nA1,1,VND,2026-03-10T08:00:00Z,CHỢ-1\n", Options{}, 2, "merchant", "printable ASCII"},
		{"duplicate ref", hdr + ok("A1") + ok("A2") + ok("A1"), Options{}, 4, "ref", `duplicate ref "A1", also on line 2`},
		{"bare quote", hdr + "A\"1,1,VND,2026-03-10T08:00:00Z\n", Options{}, 2, "syntax", "bare"},
		{"oversized input", hdr + ok("A1") + ok("A2"), Options{MaxBytes: int64(len(hdr) + 10)}, 0, "size", "larger than 40 bytes"},
		{"too many lines", hdr + ok("A1") + ok("A2") + ok("A3"), Options{MaxLines: 2}, 4, "lines", "more than 2 data lines"},
		{"empty statement", hdr, Options{}, 0, "lines", "no data lines"},
		{"empty statement with blank lines", "\ufeff" + hdr + "\n\n", Options{}, 0, "lines", "no data lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseCSV(strings.NewReader(tt.in), tt.opts)
			if err == nil {
				t.Fatalf("accepted: %+v", st)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("errors.Is(%v, ErrMalformed) is false", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			if e.Line != tt.wantLine || e.Field != tt.wantField {
				t.Errorf("line %d field %q, want line %d field %q (%v)", e.Line, e.Field, tt.wantLine, tt.wantField, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.wantField+": ") || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not name field %q and %q", msg, tt.wantField, tt.wantMsg)
			}
			wantPrefix := "statement: "
			if tt.wantLine > 0 {
				wantPrefix = fmt.Sprintf("line %d: ", tt.wantLine)
			}
			if !strings.HasPrefix(msg, wantPrefix) {
				t.Errorf("message %q does not start with %q", msg, wantPrefix)
			}
			if st.Lines != nil || st.Digest != "" {
				t.Errorf("partial statement returned: %+v", st)
			}
		})
	}
}

func TestLimitsAreInclusive(t *testing.T) {
	in := hdr + "A1,1,VND,2026-03-10T08:00:00Z\nA2,1,VND,2026-03-10T08:00:00Z\n"
	if _, err := ParseCSV(strings.NewReader(in), Options{MaxBytes: int64(len(in)), MaxLines: 2}); err != nil {
		t.Fatalf("input of exactly MaxBytes and MaxLines refused: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestNotMalformed(t *testing.T) {
	for name, f := range map[string]func() error{
		"reader fails": func() error { _, err := ParseCSV(failingReader{}, Options{}); return err },
		"camt reader fails": func() error {
			_, err := ParseCamt(io.MultiReader(strings.NewReader("<Document"), failingReader{}), Options{})
			return err
		},
		"period reversed": func() error {
			_, err := ParseCSV(strings.NewReader(validCSV), Options{PeriodStart: utc("2026-03-11T00:00:00Z"), PeriodEnd: utc("2026-03-10T00:00:00Z")})
			return err
		},
		"bad exponent": func() error {
			_, err := ParseCSV(strings.NewReader(validCSV), Options{Exponents: map[string]int32{"VND": -1}})
			return err
		},
		"unknown format": func() error { _, err := Parse(strings.NewReader(validCSV), "ofx", Options{}); return err },
	} {
		if err := f(); err == nil || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want an error that is not ErrMalformed", name, err)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		err  *Error
		want string
	}{
		{&Error{Line: 12, Field: "amount", Reason: `VND has no minor unit: got "1500.5"`}, `line 12: amount: VND has no minor unit: got "1500.5"`},
		{&Error{Field: "size", Reason: "larger than 10 bytes"}, "statement: size: larger than 10 bytes"},
		{&Error{Line: 3, Reason: "odd"}, "line 3: odd"},
		{entryErr(4, "Amt", "bad"), "entry 4: Amt: bad"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCamt053(t *testing.T) {
	raw := readTestdata(t, "camt053_v08.xml")
	st, err := Parse(bytes.NewReader(raw), FormatCamt053, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatCamt053 || st.ID != "EXMP-0001234567890-20260310" || st.Digest != sha(raw) {
		t.Errorf("Format %q ID %q Digest %s", st.Format, st.ID, st.Digest)
	}
	if !st.PeriodStart.Equal(utc("2026-03-09T17:00:00Z")) || !st.PeriodEnd.Equal(utc("2026-03-10T17:00:00Z")) {
		t.Errorf("period [%v, %v)", st.PeriodStart, st.PeriodEnd)
	}
	assertLines(t, st.Lines, []Line{
		{Number: 1, Ref: "FT26069A1B2C", Amount: 150000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:15:30Z"), Description: "TN-DAITU-0042 Thanh toán rau củ"},
		// entry 2 is pending
		{Number: 3, Ref: "MOMO-4F7A9C21", Amount: 85000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T02:40:05Z"), Description: "TN-DAITU-0107 Mua thịt heo"},
		{Number: 4, Ref: "FT26069Z9Y8X", Amount: 150000, Credit: false, Currency: "VND", BookedAt: utc("2026-03-10T09:02:11Z"), Description: "Hoan tien giao dich FT26069A1B2C"},
		{Number: 5, Ref: "EXMP-NTRY-0005", Amount: 42000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-09T17:00:00Z"), DateOnly: true},
		{Number: 6, Ref: "EXMP260310000777", Amount: 230000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T14:45:00.25Z"), Description: "CK den TN-DAITU-0042 & TN-DAITU-0043"},
	})
}

func TestParseCamt054(t *testing.T) {
	raw := readTestdata(t, "camt054_v08.xml")
	st, err := Parse(bytes.NewReader(raw), FormatCamt054, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatCamt054 || st.ID != "EXMP-NTF-0001234567890-0042" || st.Digest != sha(raw) {
		t.Errorf("Format %q ID %q Digest %s", st.Format, st.ID, st.Digest)
	}
	if !st.PeriodStart.IsZero() || !st.PeriodEnd.IsZero() {
		t.Errorf("period [%v, %v), want zero: the notification has no FrToDt", st.PeriodStart, st.PeriodEnd)
	}
	assertLines(t, st.Lines, []Line{
		{Number: 1, Ref: "FT26069C3D4E", Amount: 150000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T03:05:12Z"), Description: "TN-DAITU-0042 tra tien ca"},
		{Number: 3, Ref: "FT26069F5G6H", Amount: 20000, Credit: false, Currency: "VND", BookedAt: utc("2026-03-10T03:47:00Z"), Description: "Hoan tien mot phan FT26069C3D4E"},
		{Number: 4, Ref: "EXMP-NTRY-0104", Amount: 35000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T04:20:00Z")},
	})

	// With a period from the caller, the caller's wins.
	morning := Options{PeriodStart: utc("2026-03-10T03:00:00Z"), PeriodEnd: utc("2026-03-10T04:00:00Z")}
	_, err = ParseCamt(bytes.NewReader(raw), morning)
	var e *Error
	if !errors.As(err, &e) || e.Line != 4 || e.Field != "BookgDt/DtTm" || err.Error() != "entry 4: BookgDt/DtTm: 2026-03-10T04:20:00Z is outside the statement period [2026-03-10T03:00:00Z, 2026-03-10T04:00:00Z)" {
		t.Errorf("err = %v, want entry 4 outside the period", err)
	}
}

func TestParseFormatMismatch(t *testing.T) {
	_, err := Parse(bytes.NewReader(readTestdata(t, "camt054_v08.xml")), FormatCamt053, Options{})
	var e *Error
	if !errors.Is(err, ErrMalformed) || !errors.As(err, &e) || e.Field != "format" {
		t.Fatalf("err = %v, want a format refusal", err)
	}
}

const (
	ns053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
	ns054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
)

// camtDoc builds a small camt.053 whose statement holds entries.
func camtDoc(ns, entries string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="` + ns + `"><BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-03-11T01:00:00+07:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id>
<FrToDt><FrDtTm>2026-03-10T00:00:00+07:00</FrDtTm><ToDtTm>2026-03-10T23:59:59+07:00</ToDtTm></FrToDt>
<Acct><Id><Othr><Id>0001234567890</Id></Othr></Id></Acct>
` + entries + `
</Stmt></BkToCstmrStmt></Document>
`
}

// entry builds a booked VND entry with only an NtryRef.
func entry(ref, amount, ind, booked string) string {
	return `<Ntry><NtryRef>` + ref + `</NtryRef><Amt Ccy="VND">` + amount + `</Amt><CdtDbtInd>` + ind +
		`</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>` + booked + `</DtTm></BookgDt></Ntry>`
}

func TestParseCamtVersions(t *testing.T) {
	for _, v := range []string{"02", "07", "13"} {
		// Versions before 08 write the status as plain text.
		doc := camtDoc("urn:iso:std:iso:20022:tech:xsd:camt.053.001."+v,
			`<Ntry><NtryRef>N1</NtryRef><Amt Ccy="VND">1500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><DtTm>2026-03-10T08:00:00+07:00</DtTm></BookgDt></Ntry>`+
				`<Ntry><NtryRef>N2</NtryRef><Amt Ccy="VND">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>PDNG</Sts></Ntry>`)
		st, err := ParseCamt(strings.NewReader(doc), Options{})
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		assertLines(t, st.Lines, []Line{{Number: 1, Ref: "N1", Amount: 1500, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:00:00Z")}})
	}

	// A namespace prefix instead of a default namespace is the same document.
	prefixed := `<c:Document xmlns:c="` + ns054 + `"><c:BkToCstmrDbtCdtNtfctn><c:Ntfctn><c:Id>N-1</c:Id>` +
		`<c:Ntry><c:AcctSvcrRef>R1</c:AcctSvcrRef><c:Amt Ccy="VND">5000</c:Amt><c:CdtDbtInd>DBIT</c:CdtDbtInd><c:Sts><c:Cd>BOOK</c:Cd></c:Sts><c:BookgDt><c:Dt>2026-03-10</c:Dt></c:BookgDt></c:Ntry>` +
		`</c:Ntfctn></c:BkToCstmrDbtCdtNtfctn></c:Document>`
	st, err := ParseCamt(strings.NewReader(prefixed), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatCamt054 || st.ID != "N-1" {
		t.Errorf("Format %q ID %q", st.Format, st.ID)
	}
	assertLines(t, st.Lines, []Line{{Number: 1, Ref: "R1", Amount: 5000, Credit: false, Currency: "VND", BookedAt: utc("2026-03-09T17:00:00Z"), DateOnly: true}})

	// A byte order mark is skipped.
	if _, err := ParseCamt(strings.NewReader("\ufeff"+camtDoc(ns053, "")), Options{}); err != nil {
		t.Fatalf("BOM: %v", err)
	}

	// A day without transactions is a statement with no lines.
	st, err = ParseCamt(strings.NewReader(camtDoc(ns053, "")), Options{})
	if err != nil || len(st.Lines) != 0 {
		t.Fatalf("empty statement: %v, %d lines", err, len(st.Lines))
	}
}

// RvslInd marks a line as undoing an earlier one of the other direction;
// the direction stays the one the money moved.
func TestParseCamtReversal(t *testing.T) {
	rvsl := func(e, v string) string {
		return strings.Replace(e, "</CdtDbtInd>", "</CdtDbtInd><RvslInd>"+v+"</RvslInd>", 1)
	}
	at := "2026-03-10T08:00:00+07:00"
	doc := camtDoc(ns053, rvsl(entry("N1", "1", "CRDT", at), "true")+rvsl(entry("N2", "2", "DBIT", at), " 1 ")+
		rvsl(entry("N3", "3", "CRDT", at), "false")+rvsl(entry("N4", "4", "DBIT", at), "0")+entry("N5", "5", "CRDT", at))
	st, err := ParseCamt(strings.NewReader(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	booked := utc("2026-03-10T01:00:00Z")
	assertLines(t, st.Lines, []Line{
		{Number: 1, Ref: "N1", Amount: 1, Credit: true, Reversal: true, Currency: "VND", BookedAt: booked},
		{Number: 2, Ref: "N2", Amount: 2, Credit: false, Reversal: true, Currency: "VND", BookedAt: booked},
		{Number: 3, Ref: "N3", Amount: 3, Credit: true, Currency: "VND", BookedAt: booked},
		{Number: 4, Ref: "N4", Amount: 4, Credit: false, Currency: "VND", BookedAt: booked},
		{Number: 5, Ref: "N5", Amount: 5, Credit: true, Currency: "VND", BookedAt: booked},
	})
}

// SplmtryData/Envlp is where ISO 20022 lets a bank put elements of its
// own schema; they are not read, and may be named like camt's.
func TestParseCamtSupplementaryData(t *testing.T) {
	doc := camtDoc(ns053, strings.Replace(entry("N1", "1500", "CRDT", "2026-03-10T08:00:00+07:00"), "</Ntry>",
		`<NtryDtls><TxDtls><SplmtryData><Envlp><b:Ext xmlns:b="urn:bank"><b:Ntry><b:Amt>9</b:Amt></b:Ntry></b:Ext></Envlp></SplmtryData></TxDtls></NtryDtls></Ntry>`, 1))
	st, err := ParseCamt(strings.NewReader(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, st.Lines, []Line{{Number: 1, Ref: "N1", Amount: 1500, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:00:00Z")}})
}

func TestParseCamtBatchEntry(t *testing.T) {
	// Two transactions in one entry: their own references do not describe
	// the entry's total, so the entry's reference is used.
	doc := camtDoc(ns053, `<Ntry><NtryRef>BATCH-1</NtryRef><Amt Ccy="VND">300000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>`+
		`<BookgDt><DtTm>2026-03-10T08:00:00+07:00</DtTm></BookgDt>`+
		`<NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>`+
		`<TxDtls><Refs><AcctSvcrRef>T1</AcctSvcrRef></Refs><RmtInf><Ustrd>one</Ustrd></RmtInf></TxDtls>`+
		`<TxDtls><Refs><AcctSvcrRef>T2</AcctSvcrRef></Refs><RmtInf><Ustrd>two</Ustrd></RmtInf></TxDtls>`+
		`</NtryDtls><AddtlNtryInf>Batch of 2</AddtlNtryInf></Ntry>`)
	st, err := ParseCamt(strings.NewReader(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, st.Lines, []Line{{Number: 1, Ref: "BATCH-1", Amount: 300000, Credit: true, Currency: "VND", BookedAt: utc("2026-03-10T01:00:00Z"), Description: "Batch of 2"}})
}

func TestParseCamtMalformed(t *testing.T) {
	good := entry("N1", "150000", "CRDT", "2026-03-10T08:00:00+07:00")
	tests := []struct {
		name      string
		in        string
		opts      Options
		wantLine  int
		wantField string
		wantMsg   string
	}{
		{"DOCTYPE", `<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY x "y">]>` + camtDoc(ns053, good)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], Options{}, 0, "xml", "DOCTYPE"},
		{"undefined entity", camtDoc(ns053, strings.Replace(good, "N1", "N&x;1", 1)), Options{}, 0, "xml", "entity"},
		{"latin-1", strings.Replace(camtDoc(ns053, good), "UTF-8", "ISO-8859-1", 1), Options{}, 0, "xml", `"ISO-8859-1": only UTF-8 is accepted`},
		{"invalid UTF-8", camtDoc(ns053, strings.Replace(good, "N1", "N\xff1", 1)), Options{}, 0, "xml", "UTF-8"},
		{"truncated", camtDoc(ns053, good)[:200], Options{}, 0, "xml", "EOF"},
		{"mismatched tags", strings.Replace(camtDoc(ns053, good), "</Stmt>", "</Stmnt>", 1), Options{}, 0, "xml", "Stmnt"},
		{"not XML", "ref,amount\n", Options{}, 0, "xml", "text"},
		{"empty", "", Options{}, 0, "Document", "no root"},
		{"wrong root", `<Doc xmlns="` + ns053 + `"/>`, Options{}, 0, "Document", `"Doc"`},
		{"no namespace", strings.Replace(camtDoc(ns053, good), ` xmlns="`+ns053+`"`, "", 1), Options{}, 0, "Document", "namespace"},
		{"version 01", camtDoc("urn:iso:std:iso:20022:tech:xsd:camt.053.001.01", good), Options{}, 0, "Document", "namespace"},
		{"version 14", camtDoc("urn:iso:std:iso:20022:tech:xsd:camt.053.001.14", good), Options{}, 0, "Document", "namespace"},
		{"camt.052", camtDoc("urn:iso:std:iso:20022:tech:xsd:camt.052.001.08", good), Options{}, 0, "Document", "namespace"},
		{"namespace disagrees with root child", camtDoc(ns054, good), Options{}, 0, "Document", "BkToCstmrStmt"},
		{"trailing element", camtDoc(ns053, good) + "<Document/>", Options{}, 0, "Document", "after Document"},
		{"two statements", strings.Replace(camtDoc(ns053, good), "</Stmt>", "</Stmt><Stmt><Id>S2</Id></Stmt>", 1), Options{}, 0, "Stmt", "holds more than one"},
		{"no statement id", strings.Replace(camtDoc(ns053, good), "<Id>S1</Id>", "", 1), Options{}, 0, "Stmt/Id", "is required"},
		{"bad period", strings.Replace(camtDoc(ns053, good), "2026-03-10T23:59:59+07:00", "tomorrow", 1), Options{}, 0, "Stmt/FrToDt/ToDtTm", "ISO date-time"},
		// Elements the schema allows once: encoding/xml would keep the last
		// of several, reading the statement on a guess.
		{"two statement ids", strings.Replace(camtDoc(ns053, good), "<Id>S1</Id>", "<Id>S1</Id><Id>S2</Id>", 1), Options{}, 0, "Stmt/Id", "exactly one, got 2"},
		{"two periods", strings.Replace(camtDoc(ns053, good), "<Acct>", "<FrToDt><FrDtTm>2026-03-01T00:00:00+07:00</FrDtTm><ToDtTm>2026-03-31T23:59:59+07:00</ToDtTm></FrToDt><Acct>", 1), Options{}, 0, "Stmt/FrToDt", "at most one, got 2"},
		{"two period starts", strings.Replace(camtDoc(ns053, good), "<FrDtTm>", "<FrDtTm>2026-03-01T00:00:00+07:00</FrDtTm><FrDtTm>", 1), Options{}, 0, "Stmt/FrToDt/FrDtTm", "exactly one, got 2"},
		{"two period ends", strings.Replace(camtDoc(ns053, good), "</ToDtTm>", "</ToDtTm><ToDtTm>2026-03-31T23:59:59+07:00</ToDtTm>", 1), Options{}, 0, "Stmt/FrToDt/ToDtTm", "exactly one, got 2"},
		{"two entry references", camtDoc(ns053, good+strings.Replace(entry("N2", "1", "CRDT", "2026-03-10T08:00:00+07:00"), "</NtryRef>", "</NtryRef><NtryRef>N9</NtryRef>", 1)), Options{}, 2, "NtryRef", "entry 2: NtryRef: expected at most one, got 2"},
		{"two entry servicer references", camtDoc(ns053, strings.Replace(good, "</Ntry>", "<AcctSvcrRef>A1</AcctSvcrRef><AcctSvcrRef>A2</AcctSvcrRef></Ntry>", 1)), Options{}, 1, "AcctSvcrRef", "at most one, got 2"},
		{"two transaction Refs", camtDoc(ns053, good+strings.Replace(entry("N2", "1", "CRDT", "2026-03-10T08:00:00+07:00"), "</Ntry>", "<NtryDtls><TxDtls><Refs><AcctSvcrRef>A1</AcctSvcrRef></Refs><Refs><AcctSvcrRef>A2</AcctSvcrRef></Refs></TxDtls></NtryDtls></Ntry>", 1)), Options{}, 2, "NtryDtls/TxDtls/Refs", "entry 2: NtryDtls/TxDtls/Refs: expected at most one, got 2"},
		{"two transaction servicer references", camtDoc(ns053, strings.Replace(good, "</Ntry>", "<NtryDtls><TxDtls><Refs><AcctSvcrRef>A1</AcctSvcrRef><AcctSvcrRef>A2</AcctSvcrRef></Refs></TxDtls></NtryDtls></Ntry>", 1)), Options{}, 1, "NtryDtls/TxDtls/Refs/AcctSvcrRef", "at most one, got 2"},
		{"two end-to-end ids", camtDoc(ns053, strings.Replace(good, "</Ntry>", "<NtryDtls><TxDtls><Refs><EndToEndId>E1</EndToEndId><EndToEndId>E2</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>", 1)), Options{}, 1, "NtryDtls/TxDtls/Refs/EndToEndId", "at most one, got 2"},
		{"fractional VND", camtDoc(ns053, good+entry("N2", "1500.50", "CRDT", "2026-03-10T08:00:00+07:00")), Options{}, 2, "Amt", `entry 2: Amt: VND has no minor unit: got "1500.50"`},
		{"negative amount", camtDoc(ns053, entry("N1", "-5", "CRDT", "2026-03-10T08:00:00+07:00")), Options{}, 1, "Amt", "plain positive decimal"},
		{"zero amount", camtDoc(ns053, entry("N1", "0", "CRDT", "2026-03-10T08:00:00+07:00")), Options{}, 1, "Amt", "positive"},
		{"unknown currency", camtDoc(ns053, strings.Replace(good, `Ccy="VND"`, `Ccy="THB"`, 1)), Options{}, 1, "Amt/@Ccy", "THB"},
		{"no currency", camtDoc(ns053, strings.Replace(good, ` Ccy="VND"`, ``, 1)), Options{}, 1, "Amt/@Ccy", "is required"},
		{"two amounts", camtDoc(ns053, strings.Replace(good, `</Amt>`, `</Amt><Amt Ccy="VND">1</Amt>`, 1)), Options{}, 1, "Amt", "exactly one, got 2"},
		{"bad direction", camtDoc(ns053, entry("N1", "1", "CREDIT", "2026-03-10T08:00:00+07:00")), Options{}, 1, "CdtDbtInd", "CRDT or DBIT"},
		{"two reversal indicators", camtDoc(ns053, strings.Replace(good, "</CdtDbtInd>", "</CdtDbtInd><RvslInd>false</RvslInd><RvslInd>true</RvslInd>", 1)), Options{}, 1, "RvslInd", "at most one, got 2"},
		{"reversal indicator not a boolean", camtDoc(ns053, strings.Replace(good, "</CdtDbtInd>", "</CdtDbtInd><RvslInd>yes</RvslInd>", 1)), Options{}, 1, "RvslInd", `true or false: got "yes"`},
		{"missing status", camtDoc(ns053, strings.Replace(good, "<Sts><Cd>BOOK</Cd></Sts>", "", 1)), Options{}, 1, "Sts", "exactly one"},
		{"booked without date", camtDoc(ns053, `<Ntry><NtryRef>N1</NtryRef><Amt Ccy="VND">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts></Ntry>`), Options{}, 1, "BookgDt", "exactly one"},
		{"bad booking time", camtDoc(ns053, entry("N1", "1", "CRDT", "10/03/2026")), Options{}, 1, "BookgDt/DtTm", "ISO date-time"},
		{"outside FrToDt", camtDoc(ns053, good+entry("N2", "1", "CRDT", "2026-03-11T00:00:00+07:00")), Options{}, 2, "BookgDt/DtTm", "outside the statement period"},
		{"outside the caller's period", camtDoc(ns053, good), Options{PeriodEnd: utc("2026-03-10T00:00:00Z")}, 1, "BookgDt/DtTm", "outside the statement period"},
		{"no reference", camtDoc(ns053, entry("", "1", "CRDT", "2026-03-10T08:00:00+07:00")), Options{}, 1, "ref", "no reference"},
		{"only NOTPROVIDED", camtDoc(ns053, strings.Replace(entry("", "1", "CRDT", "2026-03-10T08:00:00+07:00"), "</Ntry>", "<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>", 1)), Options{}, 1, "ref", "no reference"},
		{"reference not ASCII", camtDoc(ns053, entry("MÃ-1", "1", "CRDT", "2026-03-10T08:00:00+07:00")), Options{}, 1, "NtryRef", "printable ASCII"},
		{"duplicate reference", camtDoc(ns053, good+entry("N2", "1", "CRDT", "2026-03-10T08:00:00+07:00")+entry("N1", "1", "DBIT", "2026-03-10T09:00:00+07:00")), Options{}, 3, "ref", `duplicate reference "N1", also in entry 1`},
		{"oversized input", camtDoc(ns053, good), Options{MaxBytes: 100}, 0, "size", "larger than 100 bytes"},
		{"too many entries", camtDoc(ns053, good+entry("N2", "1", "CRDT", "2026-03-10T08:00:00+07:00")), Options{MaxLines: 1}, 2, "Ntry", "more than 1 entries"},
		// Only the document's namespace is camt: an element named like a
		// camt one in another namespace is not it, and no camt schema
		// allows one there.
		{"entry in another namespace", camtDoc(ns053, good+strings.Replace(entry("N2", "1", "CRDT", "2026-03-10T08:00:00+07:00"), "<Ntry>", `<Ntry xmlns="urn:other">`, 1)), Options{}, 0, "xml", `"Ntry" in namespace "urn:other"`},
		{"entry in no namespace", camtDoc(ns053, strings.Replace(good, "<Ntry>", `<Ntry xmlns="">`, 1)), Options{}, 0, "xml", `"Ntry" in namespace ""`},
		{"entry of another version", camtDoc(ns053, strings.Replace(good, "<Ntry>", `<Ntry xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">`, 1)), Options{}, 0, "xml", "camt.053.001.02"},
		{"amount in another namespace", camtDoc(ns053, strings.Replace(good, `<Amt Ccy="VND">150000</Amt>`, `<o:Amt xmlns:o="urn:other" Ccy="VND">150000</o:Amt>`, 1)), Options{}, 0, "xml", `"Amt" in namespace "urn:other"`},
		{"unbound prefix", camtDoc(ns053, strings.Replace(good, "<NtryRef>N1</NtryRef>", "<o:NtryRef>N1</o:NtryRef>", 1)), Options{}, 0, "xml", `"NtryRef"`},
		{"deep nesting", camtDoc(ns053, strings.Repeat("<a>", 100)+strings.Repeat("</a>", 100)), Options{}, 0, "xml", "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseCamt(strings.NewReader(tt.in), tt.opts)
			if err == nil {
				t.Fatalf("accepted: %+v", st)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("errors.Is(%v, ErrMalformed) is false", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			if e.Line != tt.wantLine || e.Field != tt.wantField {
				t.Errorf("line %d field %q, want line %d field %q (%v)", e.Line, e.Field, tt.wantLine, tt.wantField, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.wantField+": ") || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not name field %q and %q", msg, tt.wantField, tt.wantMsg)
			}
			if st.Lines != nil || st.Digest != "" {
				t.Errorf("partial statement returned: %+v", st)
			}
		})
	}
}

// A CSV record of more fields than a statement has columns is refused
// before encoding/csv splits it: it holds a whole record in memory, at some
// 40 bytes a field, so the 10 MiB a request may carry, as one line of
// commas, took a gigabyte to be refused for its field count.
func TestParseCSVRefusesARecordOfTooManyFieldsUnsplit(t *testing.T) {
	commas := strings.Repeat(",", 1<<20)
	const good = "A1,1,VND,2026-03-10T08:00:00Z\n"
	for _, tt := range []struct {
		name, in string
		wantLine int
	}{
		{"header", commas + "\n" + good, 1},
		{"data line", hdr + good + "A2" + commas + "\n", 3},
		// Commas inside quotes separate nothing, and a quoted line break
		// ends no record.
		{"after quoted commas", hdr + `"A,1",1,VND,2026-03-10T08:00:00Z` + "\n" + `"A` + "\n" + `2",1,VND` + commas + "\n", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseCSV(strings.NewReader(tt.in), Options{})
			runtime.ReadMemStats(&after)
			var e *Error
			if !errors.As(err, &e) || e.Line != tt.wantLine || e.Field != "columns" || !strings.Contains(err.Error(), "more than 8 fields") {
				t.Errorf("got %v, want line %d refused for more than 8 fields", err, tt.wantLine)
			}
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 8*uint64(len(tt.in)) {
				t.Errorf("refusing a statement of %d bytes allocated %d bytes, %d times its size", len(tt.in), allocated, allocated/uint64(len(tt.in)))
			}
		})
	}

	// Quoted commas are no fields: a description may hold any number.
	in := "ref,amount,currency,booked_at,description\n" + `A1,1,VND,2026-03-10T08:00:00Z,"` + strings.Repeat(",", 100) + `"` + "\n"
	if _, err := ParseCSV(strings.NewReader(in), Options{}); err != nil {
		t.Errorf("a description of commas refused: %v", err)
	}
}

// A camt document holding more entries, or reports, than a statement may is
// refused as they come, not once encoding/xml has decoded them all: an
// empty <Ntry/> is 7 bytes of the file and some 200 of memory, so the
// 10 MiB a request may carry, refused for its entries, took a gigabyte.
func TestParseCamtRefusesTooManyAsTheyCome(t *testing.T) {
	for _, tt := range []struct {
		name, doc, wantField, wantMsg string
		wantLine                      int
	}{
		{"entries", camtDoc(ns053, strings.Repeat("<Ntry/>", 150_000)), "Ntry", "entry 1001: Ntry: more than 1000 entries", 1001},
		{"statements", strings.Replace(camtDoc(ns053, ""), "</Stmt>", "</Stmt>"+strings.Repeat("<Stmt/>", 150_000), 1),
			"Stmt", "statement: Stmt: the document holds more than one, expected exactly one", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(tt.doc)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseCamt(bytes.NewReader(doc), Options{MaxLines: 1000})
			runtime.ReadMemStats(&after)
			var e *Error
			if !errors.As(err, &e) || e.Line != tt.wantLine || e.Field != tt.wantField || err.Error() != tt.wantMsg {
				t.Errorf("got %v, want %s", err, tt.wantMsg)
			}
			// Reading the file and its digest takes about its size; what is
			// past the limit is never decoded.
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 8*uint64(len(doc)) {
				t.Errorf("refusing a document of %d bytes allocated %d bytes, %d times its size", len(doc), allocated, allocated/uint64(len(doc)))
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(validCSV))
	f.Add([]byte("\ufeff" + hdr + "A1,1,VND,2026-03-10 08:00:00\n"))
	f.Add([]byte("description,ref,booked_at,amount,currency,direction\n\"x\ny\",R,2026-03-10T08:00:00.5Z,0.01,USD,debit\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseCSV(bytes.NewReader(data), Options{MaxLines: 50})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %T %v is not a malformed-statement *Error", err, err)
			}
			if e.Line < 0 || e.Field == "" || e.Reason == "" {
				t.Fatalf("error %+v lacks line, field or reason", e)
			}
			if st.Lines != nil {
				t.Fatalf("lines returned with error %v", err)
			}
			return
		}
		if len(st.Lines) == 0 {
			t.Fatal("accepted a statement without lines")
		}
		if st.Digest != sha(data) || st.ID != st.Digest {
			t.Fatalf("Digest %s ID %s, want %s", st.Digest, st.ID, sha(data))
		}
		refs := make(map[string]bool)
		prev := 1
		for _, l := range st.Lines {
			if l.Amount <= 0 || l.Amount > MaxAmount {
				t.Fatalf("line %d: amount %d", l.Number, l.Amount)
			}
			if l.Ref == "" || len(l.Ref) > maxRef || refs[l.Ref] {
				t.Fatalf("line %d: ref %q empty, too long or repeated", l.Number, l.Ref)
			}
			refs[l.Ref] = true
			if l.Number <= prev {
				t.Fatalf("line numbers not increasing: %d after %d", l.Number, prev)
			}
			prev = l.Number
			if l.BookedAt.Location() != time.UTC || l.BookedAt.IsZero() {
				t.Fatalf("line %d: BookedAt %v", l.Number, l.BookedAt)
			}
			if _, ok := defaultExponents[l.Currency]; !ok {
				t.Fatalf("line %d: currency %q", l.Number, l.Currency)
			}
			if !utf8.ValidString(l.Description) || utf8.RuneCountInString(l.Description) > MaxDescription {
				t.Fatalf("line %d: description %q", l.Number, l.Description)
			}
		}
	})
}

func FuzzParseCamt(f *testing.F) {
	f.Add([]byte(camtDoc(ns053, entry("N1", "150000", "CRDT", "2026-03-10T08:00:00+07:00"))))
	for _, name := range []string{"camt053_v08.xml", "camt054_v08.xml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseCamt(bytes.NewReader(data), Options{MaxLines: 50})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %T %v is not ErrMalformed", err, err)
			}
			return
		}
		if st.ID == "" || (st.Format != FormatCamt053 && st.Format != FormatCamt054) {
			t.Fatalf("accepted with ID %q format %q", st.ID, st.Format)
		}
		for _, l := range st.Lines {
			if l.Amount <= 0 || l.Ref == "" || l.BookedAt.Location() != time.UTC {
				t.Fatalf("entry %d: %+v", l.Number, l)
			}
		}
	})
}
