package ledger

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// NewID returns a version 7 UUID: time-ordered, so new entries land at the
// end of the id index instead of all over it.
func NewID(now time.Time) string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[0:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(u[6:])
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return formatUUID(u)
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// CanonicalUUID returns s in the lower-case form PostgreSQL writes a uuid
// in, and whether s is a UUID (ValidUUID). Ids read back from the database
// are compared as strings, as map keys and in request hashes, so an id a
// caller gives in capitals must be made canonical before it is used: else
// the row it names is found and then not recognised. s that is no UUID
// comes back as it is, for the error that names it.
func CanonicalUUID(s string) (string, bool) {
	if !ValidUUID(s) {
		return s, false
	}
	return strings.ToLower(s), true
}

// ValidUUID accepts the canonical lower- or upper-case 8-4-4-4-12 form.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
