package vietqr

import (
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Initiation is the point-of-initiation method (tag 01).
type Initiation string

const (
	// Static payloads are reused for many sales, so the buyer enters the amount.
	Static Initiation = "11"
	// Dynamic payloads are made for one sale and must carry its amount.
	Dynamic Initiation = "12"
)

// Service is the NAPAS service code (tag 38 sub-tag 02); it tells the
// buyer's bank whether Account is a bank account or a card number.
type Service string

const (
	ServiceAccount Service = "QRIBFTTA" // transfer to a bank account
	ServiceCard    Service = "QRIBFTTC" // transfer to a card number
)

const (
	CurrencyVND = "704" // ISO 4217 numeric; VietQR is VND only
	CountryVN   = "VN"

	// napasGUID identifies the NAPAS 247 scheme inside tag 38; any other
	// GUID means the payload is not a VietQR transfer.
	napasGUID = "A000000727"
)

// Payload is a decoded VietQR string. Empty optional strings and nil maps
// mean "absent": EMVCo forbids zero-length values, so absence and emptiness
// are the same thing on the wire.
type Payload struct {
	Initiation Initiation // tag 01
	BankBIN    string     // tag 38/01/00: 6-digit NAPAS bank identifier
	Account    string     // tag 38/01/01: account or card number, 1–19 of [0-9A-Za-z]
	Service    Service    // tag 38/02
	Currency   string     // tag 53: must be CurrencyVND
	// Amount is tag 54 in whole dong, digits only with no leading zero.
	// Parse accepts the EMVCo form with a '.' but only with an all-zero
	// fraction, because VND has no minor unit and the ledger must not
	// silently round money.
	Amount       string
	Country      string // tag 58: must be CountryVN
	MerchantName string // tag 59, optional, at most 25 characters
	MerchantCity string // tag 60, optional, at most 15 characters
	// BillNumber and Purpose are "ans" in EMVCo and NAPAS's profile:
	// printable ASCII only, unlike the name and city.
	BillNumber string // tag 62/01, optional, at most 25 characters
	Purpose    string // tag 62/08, optional, at most 25 characters

	// Additional holds tag 62 sub-fields not modelled above (for example
	// 05, the reference label some wallets use), keyed by two-digit sub-tag,
	// so that re-encoding a scanned payload loses nothing.
	Additional map[string]string
	// Extra holds top-level tags not modelled above, keyed by two-digit tag,
	// for the same reason. Values must be printable ASCII.
	Extra map[string]string
}

// ErrInvalid is wrapped by every error Encode and Parse return, so callers
// can tell "this is not a payload we accept" from programming errors.
var ErrInvalid = errors.New("vietqr: invalid payload")

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return "vietqr: " + e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// modelled lists the top-level tags that have Payload fields, so Extra can
// never smuggle in a second copy of one of them.
var modelled = map[string]bool{
	"00": true, "01": true, "38": true, "53": true, "54": true,
	"58": true, "59": true, "60": true, "62": true, "63": true,
}

// validate is the single definition of a well-formed Payload. Parse runs it
// on what it decoded, which is what guarantees that Encode accepts anything
// Parse returns.
func validate(p Payload) error {
	if p.Initiation != Static && p.Initiation != Dynamic {
		return invalidf("tag 01 (Initiation): must be %q (static) or %q (dynamic), got %q", Static, Dynamic, p.Initiation)
	}
	if len(p.BankBIN) != 6 || !isDigits(p.BankBIN) {
		return invalidf("tag 38/01/00 (BankBIN): must be exactly 6 digits, got %q", p.BankBIN)
	}
	if n := len(p.Account); n < 1 || n > 19 || !isAlnum(p.Account) {
		return invalidf("tag 38/01/01 (Account): must be 1–19 characters of [0-9A-Za-z]")
	}
	if p.Service != ServiceAccount && p.Service != ServiceCard {
		return invalidf("tag 38/02 (Service): must be %q or %q, got %q", ServiceAccount, ServiceCard, p.Service)
	}
	if p.Currency != CurrencyVND {
		return invalidf("tag 53 (Currency): must be %q (VND), got %q", CurrencyVND, p.Currency)
	}
	if err := checkAmount(p); err != nil {
		return err
	}
	if p.Country != CountryVN {
		return invalidf("tag 58 (Country): must be %q, got %q", CountryVN, p.Country)
	}
	if err := checkText("59", "MerchantName", p.MerchantName, 25, true); err != nil {
		return err
	}
	if err := checkText("60", "MerchantCity", p.MerchantCity, 15, true); err != nil {
		return err
	}
	if err := CheckBillNumber(p.BillNumber); err != nil {
		return err
	}
	if err := CheckPurpose(p.Purpose); err != nil {
		return err
	}
	for _, k := range sortedKeys(p.Additional) {
		if !isTag(k) || k == "01" || k == "08" {
			return invalidf("tag 62 (Additional): key %q must be a two-digit sub-tag other than 01 (BillNumber) and 08 (Purpose)", k)
		}
		v := p.Additional[k]
		if v == "" {
			return invalidf("tag 62/%s (Additional): empty value; EMVCo lengths are 01–99", k)
		}
		if err := checkText("62/"+k, "Additional", v, 99, true); err != nil {
			return err
		}
	}
	if n := utf8.RuneCountInString(additionalData(p)); n > 99 {
		return invalidf("tag 62 (BillNumber, Purpose, Additional): encoded value is %d characters, limit 99", n)
	}
	for _, k := range sortedKeys(p.Extra) {
		if !isTag(k) || modelled[k] {
			return invalidf("Extra: key %q must be a two-digit tag without its own Payload field", k)
		}
		v := p.Extra[k]
		if v == "" {
			return invalidf("tag %s (Extra): empty value; EMVCo lengths are 01–99", k)
		}
		if err := checkText(k, "Extra", v, 99, false); err != nil {
			return err
		}
	}
	return nil
}

// CheckBillNumber returns the error Encode would return for s as the
// BillNumber, or nil, so that a caller can tell which of its fields a
// payload cannot carry.
func CheckBillNumber(s string) error { return checkText("62/01", "BillNumber", s, 25, false) }

// CheckPurpose is CheckBillNumber for the Purpose.
func CheckPurpose(s string) error { return checkText("62/08", "Purpose", s, 25, false) }

func checkAmount(p Payload) error {
	a := p.Amount
	if a == "" {
		if p.Initiation == Dynamic {
			return invalidf("tag 54 (Amount): required for a dynamic payload")
		}
		return nil
	}
	if len(a) > 13 || !isDigits(a) || a[0] == '0' {
		return invalidf("tag 54 (Amount): must be 1–13 digits of whole dong without a leading zero, got %q", a)
	}
	return nil
}

// checkText enforces the printable-character rule. Lengths are counted in
// characters (runes), not bytes, as EMVCo specifies for UTF-8 values; this is
// what JavaScript and Python generators produce for Vietnamese text.
func checkText(tag, field, v string, maxChars int, unicodeOK bool) error {
	n := 0
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			return invalidf("tag %s (%s): invalid UTF-8 at byte %d", tag, field, i)
		}
		if unicodeOK {
			if !unicode.IsPrint(r) {
				return invalidf("tag %s (%s): non-printable character %U", tag, field, r)
			}
		} else if r < 0x20 || r > 0x7E {
			return invalidf("tag %s (%s): character %U is not printable ASCII", tag, field, r)
		}
		i += size
		n++
	}
	if n > maxChars {
		return invalidf("tag %s (%s): %d characters, limit %d", tag, field, n, maxChars)
	}
	return nil
}

func isDigits(s string) bool {
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

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func isTag(s string) bool { return len(s) == 2 && isDigits(s) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
