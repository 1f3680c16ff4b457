// Package vietqr builds and reads NAPAS 247 VietQR payloads: the EMVCo
// merchant-presented QR strings that Vietnamese banking apps scan to pay a
// stall. A static payload (Initiation "11") is printed once and stuck on the
// stall, so the buyer types the amount; a dynamic payload (Initiation "12") is
// made for a single sale and carries the amount, so the buyer cannot get it
// wrong.
//
// The package only converts between a Payload and its text form. It must
// never do I/O (no network, files or clock) and must know nothing of the
// ledger: callers decide what a payment means, and keeping this package pure
// is what lets it be fuzzed and reused by both the printing and the
// reconciliation sides.
//
// Parse is deliberately strict, because a payload that parses is one we are
// prepared to re-encode and show to a paying customer: anything Parse accepts,
// Encode accepts too, and Encode(Parse(s)) parses back to the same Payload.
// Every rejection wraps ErrInvalid.
package vietqr
