package statement

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/choledger/choledger/ledger"
)

// CSV columns. The header must name the required ones and may name the
// optional ones; anything else is refused so that a misspelt optional column
// is reported instead of silently read as absent.
const (
	colRef         = "ref"
	colAmount      = "amount"
	colCurrency    = "currency"
	colBookedAt    = "booked_at"
	colDirection   = "direction"
	colChannel     = "channel"
	colMerchant    = "merchant"
	colDescription = "description"
)

var (
	requiredColumns = []string{colRef, colAmount, colCurrency, colBookedAt}
	knownColumns    = map[string]bool{
		colRef: true, colAmount: true, colCurrency: true, colBookedAt: true,
		colDirection: true, colChannel: true, colMerchant: true, colDescription: true,
	}
)

const localLayout = "2006-01-02 15:04:05"

// ParseCSV reads a statement in the CSV format described in the package
// documentation.
func ParseCSV(r io.Reader, opts Options) (Statement, error) {
	cfg, err := opts.config()
	if err != nil {
		return Statement{}, err
	}
	data, digest, err := readAll(r, cfg.maxBytes)
	if err != nil {
		return Statement{}, err
	}
	lines, err := parseCSV(bytes.TrimPrefix(data, bom), cfg)
	if err != nil {
		return Statement{}, err
	}
	return Statement{
		Format:      FormatCSV,
		ID:          digest,
		PeriodStart: utcOrZero(cfg.start),
		PeriodEnd:   utcOrZero(cfg.end),
		Lines:       lines,
		Digest:      digest,
	}, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func lineErr(line int, field, format string, args ...any) *Error {
	return &Error{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func parseCSV(data []byte, cfg config) ([]Line, error) {
	// Checked before the CSV reader sees the bytes: it would pass invalid
	// UTF-8 through, and the line is easy to name here.
	if !utf8.Valid(data) {
		at := invalidUTF8At(data)
		return nil, lineErr(1+bytes.Count(data[:at], []byte("\n")), "encoding", "invalid UTF-8 (byte 0x%02x); the statement must be UTF-8", data[at])
	}

	if line, ok := fieldsWithin(data, len(knownColumns)); !ok {
		return nil, lineErr(line, "columns", "more than %d fields: a statement has at most %d columns", len(knownColumns), len(knownColumns))
	}

	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // counted below, to say which line and how many
	cr.ReuseRecord = true

	header, err := cr.Read()
	if err == io.EOF {
		return nil, fileErr("header", "missing: the statement is empty")
	}
	if err != nil {
		return nil, csvErr(err)
	}
	headerLine, _ := cr.FieldPos(0)
	cols := make(map[string]int, len(header))
	for i, name := range header {
		switch {
		case !knownColumns[name]:
			return nil, lineErr(headerLine, "header", "unknown column %s (known: ref, amount, currency, booked_at, direction, channel, merchant, description)", quote(name))
		case cols[name] != 0:
			return nil, lineErr(headerLine, "header", "duplicate column %s (columns %d and %d)", quote(name), cols[name], i+1)
		}
		cols[name] = i + 1 // 1-based so that 0 means absent
	}
	for _, name := range requiredColumns {
		if cols[name] == 0 {
			return nil, lineErr(headerLine, "header", "missing required column %s", quote(name))
		}
	}
	width := len(header)

	var lines []Line
	seen := make(map[string]int) // ref -> line number
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(err)
		}
		n, _ := cr.FieldPos(0)
		if len(lines) == cfg.maxLines {
			return nil, lineErr(n, "lines", "more than %d data lines", cfg.maxLines)
		}
		if len(rec) != width {
			return nil, lineErr(n, "columns", "%d fields, the header has %d", len(rec), width)
		}
		get := func(name string) string {
			if i := cols[name]; i != 0 {
				return rec[i-1]
			}
			return ""
		}
		line, e := csvLine(n, get, cfg)
		if e != nil {
			return nil, e
		}
		if first, dup := seen[line.Ref]; dup {
			return nil, lineErr(n, colRef, "duplicate ref %s, also on line %d", quote(line.Ref), first)
		}
		seen[line.Ref] = n
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return nil, fileErr("lines", "no data lines after the header")
	}
	return lines, nil
}

// csvLine checks one row's fields in a fixed order, so the same file always
// fails with the same message.
func csvLine(n int, get func(string) string, cfg config) (Line, *Error) {
	l := Line{Number: n, Credit: true}

	l.Ref = get(colRef)
	if l.Ref == "" {
		return l, lineErr(n, colRef, "is required")
	}
	if why := checkCode(l.Ref, maxRef); why != "" {
		return l, lineErr(n, colRef, "%s", why)
	}

	l.Currency = get(colCurrency)
	exp, why := checkCurrency(l.Currency, cfg.exponents)
	if why != "" {
		return l, lineErr(n, colCurrency, "%s", why)
	}

	amount := get(colAmount)
	if amount == "" {
		return l, lineErr(n, colAmount, "is required")
	}
	if l.Amount, why = parseAmount(amount, l.Currency, exp); why != "" {
		return l, lineErr(n, colAmount, "%s", why)
	}
	if exp < 3 {
		// A statement of round prices would otherwise be taken whole, every
		// amount a thousand times too small.
		if err := ledger.ThousandsSeparated(amount); err != nil {
			return l, lineErr(n, colAmount, "%v", err)
		}
	}

	switch d := get(colDirection); d {
	case "", "credit":
	case "debit":
		l.Credit = false
	default:
		return l, lineErr(n, colDirection, "must be \"credit\" or \"debit\": got %s", quote(d))
	}

	booked := get(colBookedAt)
	if booked == "" {
		return l, lineErr(n, colBookedAt, "is required")
	}
	t, ok := parseCSVTime(booked)
	if !ok {
		return l, lineErr(n, colBookedAt, "must be RFC 3339 like \"2026-03-10T08:15:00+07:00\" or \"2026-03-10 08:15:00\" (Vietnam time): got %s", quote(booked))
	}
	if why := checkPeriod(t, cfg.start, cfg.end); why != "" {
		return l, lineErr(n, colBookedAt, "%s", why)
	}
	l.BookedAt = t.UTC()

	if l.Channel = get(colChannel); l.Channel != "" {
		if why := checkCode(l.Channel, maxRef); why != "" {
			return l, lineErr(n, colChannel, "%s", why)
		}
	}
	if l.Merchant = get(colMerchant); l.Merchant != "" {
		if why := checkCode(l.Merchant, maxRef); why != "" {
			return l, lineErr(n, colMerchant, "%s", why)
		}
	}
	l.Description = cleanDescription(get(colDescription))
	return l, nil
}

func parseCSVTime(s string) (time.Time, bool) {
	if strings.Contains(s, "T") {
		t, err := time.Parse(time.RFC3339, s)
		return t, err == nil
	}
	t, err := time.ParseInLocation(localLayout, s, vietnam)
	return t, err == nil
}

// fieldsWithin reports whether every record of data has at most max
// fields, and if not the line the first longer one starts on. encoding/csv
// splits a whole record before its fields can be counted, at some 40 bytes
// of memory a field, so a 10 MiB line of commas took a gigabyte to be
// refused. Every quote opens or closes a quoted field, in which commas and
// line breaks separate nothing; a file whose quotes do not pair so is
// refused by encoding/csv all the same.
func fieldsWithin(data []byte, max int) (int, bool) {
	line, start, fields, quoted := 1, 1, 1, false
	for _, b := range data {
		switch {
		case b == '"':
			quoted = !quoted
		case b == '\n':
			line++
			if !quoted {
				start, fields = line, 1
			}
		case b == ',' && !quoted:
			if fields++; fields > max {
				return start, false
			}
		}
	}
	return 0, true
}

// csvErr reports a CSV syntax error (a stray quote, say) at the line the
// reader found it on.
func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return lineErr(pe.Line, "syntax", "%v (column %d)", pe.Err, pe.Column)
	}
	return fileErr("syntax", "%v", err)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
