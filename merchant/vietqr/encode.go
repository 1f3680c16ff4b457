package vietqr

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

type tlv struct{ tag, value string }

// Encode validates p and renders it as a VietQR string.
//
// Tags are written in ascending numeric order (00, 01, 38, 53, 54, 58, 59,
// 60, 62, with any Extra tags slotted in by number) and 63 last; sub-tags
// likewise. One canonical order means a payload that came in canonical form
// re-encodes byte for byte, and two equal Payloads always print the same QR.
// The CRC is written as four upper-case hex digits.
func Encode(p Payload) (string, error) {
	if err := validate(p); err != nil {
		return "", err
	}
	account := join([]tlv{{"00", p.BankBIN}, {"01", p.Account}})
	fields := []tlv{
		{"00", "01"},
		{"01", string(p.Initiation)},
		{"38", join([]tlv{{"00", napasGUID}, {"01", account}, {"02", string(p.Service)}})},
		{"53", p.Currency},
		{"58", p.Country},
	}
	optional := []tlv{
		{"54", p.Amount},
		{"59", p.MerchantName},
		{"60", p.MerchantCity},
		{"62", additionalData(p)},
	}
	for _, f := range optional {
		if f.value != "" {
			fields = append(fields, f)
		}
	}
	for k, v := range p.Extra {
		fields = append(fields, tlv{k, v})
	}
	slices.SortFunc(fields, func(a, b tlv) int { return strings.Compare(a.tag, b.tag) })

	s := join(fields) + "6304"
	return s + fmt.Sprintf("%04X", crc16(s)), nil
}

// additionalData renders tag 62, or "" when it has nothing to carry.
func additionalData(p Payload) string {
	var subs []tlv
	for k, v := range p.Additional {
		subs = append(subs, tlv{k, v})
	}
	if p.BillNumber != "" {
		subs = append(subs, tlv{"01", p.BillNumber})
	}
	if p.Purpose != "" {
		subs = append(subs, tlv{"08", p.Purpose})
	}
	slices.SortFunc(subs, func(a, b tlv) int { return strings.Compare(a.tag, b.tag) })
	return join(subs)
}

// join writes TLVs with the length counted in characters; validate has
// already capped every value at 99 characters.
func join(fields []tlv) string {
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%s%02d%s", f.tag, utf8.RuneCountInString(f.value), f.value)
	}
	return b.String()
}
