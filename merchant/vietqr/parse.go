package vietqr

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parse decodes and checks a VietQR string.
//
// Tags may come in any order except that 00 must be first and 63 last, as
// EMVCo requires. Every declared length must match its value exactly, counted
// in characters (runes) rather than bytes, and must be 01–99: EMVCo forbids
// zero-length values, and allowing them would make "present but empty"
// indistinguishable from "absent" in a Payload. Duplicate tags and sub-tags
// are rejected rather than resolved, because picking one would let two
// scanners disagree about who gets paid.
//
// The CRC must be exactly four upper-case hex digits. Lower case is rejected,
// not folded: Encode never writes it, and accepting it would make a one-
// character change to the checksum go undetected.
//
// An amount written with a '.' and an all-zero fraction, or with leading
// zeros, is normalised to plain whole dong; a non-zero fraction is rejected
// because VND has no minor unit. Unknown sub-tags inside tag 38 are rejected
// because NAPAS defines none and they could not be re-encoded faithfully.
// The service code (38/02) is required and a dynamic payload must carry an
// amount: Parse applies every rule Encode applies, so that whatever it
// returns can be printed again.
func Parse(s string) (Payload, error) {
	fields, err := split(s, "")
	if err != nil {
		return Payload{}, err
	}
	if len(fields) == 0 {
		return Payload{}, invalidf("empty payload")
	}
	if fields[0].tag != "00" {
		return Payload{}, invalidf("tag 00: must be first, found tag %s", fields[0].tag)
	}
	last := fields[len(fields)-1]
	if last.tag != "63" {
		return Payload{}, invalidf("tag 63: must be last, found tag %s", last.tag)
	}
	if len(last.value) != 4 || !isUpperHex(last.value) {
		return Payload{}, invalidf("tag 63: CRC must be 4 upper-case hex digits, got %q", last.value)
	}
	// The CRC covers everything up to and including "6304"; since 63 is
	// the last field and its value is 4 ASCII bytes, that is all but the
	// final 4 bytes.
	if want := fmt.Sprintf("%04X", crc16(s[:len(s)-4])); want != last.value {
		return Payload{}, invalidf("tag 63: CRC mismatch: payload says %s, computed %s", last.value, want)
	}
	if fields[0].value != "01" {
		return Payload{}, invalidf("tag 00 (payload format indicator): must be \"01\", got %q", fields[0].value)
	}

	var p Payload
	seen := map[string]bool{}
	for _, f := range fields[1 : len(fields)-1] {
		seen[f.tag] = true
		switch f.tag {
		case "01":
			p.Initiation = Initiation(f.value)
		case "38":
			if err := parseMerchantAccount(f.value, &p); err != nil {
				return Payload{}, err
			}
		case "53":
			p.Currency = f.value
		case "54":
			if p.Amount, err = normaliseAmount(f.value); err != nil {
				return Payload{}, err
			}
		case "58":
			p.Country = f.value
		case "59":
			p.MerchantName = f.value
		case "60":
			p.MerchantCity = f.value
		case "62":
			if err := parseAdditionalData(f.value, &p); err != nil {
				return Payload{}, err
			}
		default:
			if p.Extra == nil {
				p.Extra = map[string]string{}
			}
			p.Extra[f.tag] = f.value
		}
	}
	for _, req := range []string{"01", "38", "53", "58"} {
		if !seen[req] {
			return Payload{}, invalidf("tag %s: missing (required)", req)
		}
	}
	if err := validate(p); err != nil {
		return Payload{}, err
	}
	return p, nil
}

func parseMerchantAccount(v string, p *Payload) error {
	subs, err := split(v, "38")
	if err != nil {
		return err
	}
	var guid, account string
	for _, f := range subs {
		switch f.tag {
		case "00":
			guid = f.value
		case "01":
			account = f.value
		case "02":
			p.Service = Service(f.value)
		default:
			return invalidf("tag 38/%s: unknown sub-tag (NAPAS defines 00, 01, 02)", f.tag)
		}
	}
	if guid != napasGUID {
		return invalidf("tag 38/00: GUID must be %q (NAPAS), got %q", napasGUID, guid)
	}
	if account == "" {
		return invalidf("tag 38/01: missing (required)")
	}
	if p.Service == "" {
		return invalidf("tag 38/02 (Service): missing (required)")
	}
	inner, err := split(account, "38/01")
	if err != nil {
		return err
	}
	var haveBIN, haveAccount bool
	for _, f := range inner {
		switch f.tag {
		case "00":
			p.BankBIN, haveBIN = f.value, true
		case "01":
			p.Account, haveAccount = f.value, true
		default:
			return invalidf("tag 38/01/%s: unknown sub-tag (NAPAS defines 00, 01)", f.tag)
		}
	}
	if !haveBIN {
		return invalidf("tag 38/01/00 (BankBIN): missing (required)")
	}
	if !haveAccount {
		return invalidf("tag 38/01/01 (Account): missing (required)")
	}
	return nil
}

func parseAdditionalData(v string, p *Payload) error {
	subs, err := split(v, "62")
	if err != nil {
		return err
	}
	for _, f := range subs {
		switch f.tag {
		case "01":
			p.BillNumber = f.value
		case "08":
			p.Purpose = f.value
		default:
			if p.Additional == nil {
				p.Additional = map[string]string{}
			}
			p.Additional[f.tag] = f.value
		}
	}
	return nil
}

func normaliseAmount(v string) (string, error) {
	whole, frac, _ := strings.Cut(v, ".")
	if !isDigits(whole) || (frac != "" && !isDigits(frac)) {
		return "", invalidf("tag 54 (Amount): must be digits with at most one '.', got %q", v)
	}
	if len(v) > 13 {
		return "", invalidf("tag 54 (Amount): %d characters, limit 13", len(v))
	}
	if strings.Trim(frac, "0") != "" {
		return "", invalidf("tag 54 (Amount): %q has a non-zero fraction; VND has no minor unit", v)
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		return "", invalidf("tag 54 (Amount): must be greater than zero, got %q", v)
	}
	return whole, nil
}

// split reads a TLV sequence. parent is "" at the top level, or the path of
// the enclosing tag, so that errors name the exact place that is wrong.
func split(s, parent string) ([]tlv, error) {
	name := func(tag string) string {
		if parent == "" {
			return tag
		}
		return parent + "/" + tag
	}
	where := func(off int) string {
		if parent == "" {
			return fmt.Sprintf("offset %d", off)
		}
		return fmt.Sprintf("tag %s: offset %d", parent, off)
	}
	var out []tlv
	var seen [100]bool
	for i := 0; i < len(s); {
		if len(s)-i < 4 {
			return nil, invalidf("%s: truncated: %q is too short for a tag and length", where(i), s[i:])
		}
		tag, length := s[i:i+2], s[i+2:i+4]
		if !isDigits(tag) {
			return nil, invalidf("%s: tag %q is not two digits", where(i), tag)
		}
		if !isDigits(length) {
			return nil, invalidf("tag %s: length %q is not two digits", name(tag), length)
		}
		n := int(length[0]-'0')*10 + int(length[1]-'0')
		if n == 0 {
			return nil, invalidf("tag %s: length 00; EMVCo lengths are 01–99", name(tag))
		}
		j := i + 4
		for k := range n {
			if j >= len(s) {
				return nil, invalidf("tag %s: declares %d characters but only %d remain", name(tag), n, k)
			}
			r, size := utf8.DecodeRuneInString(s[j:])
			if r == utf8.RuneError && size == 1 {
				return nil, invalidf("tag %s: invalid UTF-8", name(tag))
			}
			j += size
		}
		t := int(tag[0]-'0')*10 + int(tag[1]-'0')
		if seen[t] {
			return nil, invalidf("tag %s: duplicate", name(tag))
		}
		seen[t] = true
		out = append(out, tlv{tag, s[i+4 : j]})
		i = j
	}
	return out, nil
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
