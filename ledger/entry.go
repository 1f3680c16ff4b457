package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg"
)

// Direction is the side of an account a posting lands on.
type Direction byte

const (
	Debit  Direction = 'D'
	Credit Direction = 'C'
)

func (d Direction) String() string {
	switch d {
	case Debit:
		return "debit"
	case Credit:
		return "credit"
	}
	return fmt.Sprintf("Direction(%d)", d)
}

// Phase says how an entry moves account totals.
type Phase string

const (
	// PhasePosted moves the posted totals.
	PhasePosted Phase = "posted"
	// PhasePending moves the pending totals until posted, voided or expired.
	PhasePending Phase = "pending"
	// PhasePostPending releases a pending entry and moves the posted totals
	// by its own postings (the pending amounts, or less).
	PhasePostPending Phase = "post_pending"
	// PhaseVoidPending releases a pending entry. It has no postings.
	PhaseVoidPending Phase = "void_pending"
)

// PendingState is where a pending entry stands.
type PendingState string

const (
	PendingOpen   PendingState = "open"
	PendingPosted PendingState = "posted"
	PendingVoided PendingState = "voided"
)

// KindExpire is the kind of the void entry that closes an expired pending
// entry.
const KindExpire = "expire"

// Posting moves Amount minor units of the entry's currency to one side of
// one account.
type Posting struct {
	AccountCode string
	Direction   Direction
	Amount      int64
}

// Entry is a journal entry as recorded.
type Entry struct {
	ID       string
	Seq      int64
	Market   string
	Kind     string
	Phase    Phase
	Currency string
	Postings []Posting
	// PendingID is the pending entry a post_pending or void_pending entry
	// closes, and PendingSeq its sequence, which the hash covers.
	PendingID  string
	PendingSeq int64
	// For pending entries: when the entry expires, where it stands, and the
	// entry that closed it.
	ExpiresAt    time.Time
	PendingState PendingState
	ClosedBy     string

	IdempotencyKey string
	ExternalRef    string
	OccurredAt     time.Time
	RecordedAt     time.Time
	Metadata       map[string]string
	Hash           []byte

	// flaw says how the stored rows differ from anything the ledger
	// writes, in what the hash does not cover; "" when they do not.
	// VerifyJournal reports it.
	flaw string
}

// PostingInput is a posting as a client asks for it, before its amount is
// checked against the currency.
type PostingInput struct {
	AccountCode string
	Direction   Direction
	Amount      decimal.Decimal
}

// EntryRequest asks for a new entry, posted or pending.
type EntryRequest struct {
	IdempotencyKey string
	Market         string
	Kind           string
	Currency       string
	Postings       []PostingInput
	Pending        bool
	// PendingTimeout defaults to DefaultPendingTimeout for pending entries.
	PendingTimeout time.Duration
	ExternalRef    string
	// OccurredAt defaults to the time the ledger receives the request.
	OccurredAt time.Time
	Metadata   map[string]string
	// Opens are accounts the entry posts to that it opens if they do not
	// exist yet, in the transaction that records it: a refused entry opens
	// none. One that exists with other attributes refuses the entry.
	Opens []AccountSpec
}

// CloseRequest asks to post or void a pending entry.
type CloseRequest struct {
	IdempotencyKey string
	PendingID      string
	// Void releases the pending amounts; otherwise they are posted.
	Void bool
	// Postings replace the pending ones for a partial post. Empty posts the
	// pending amounts in full. Not allowed with Void.
	Postings    []PostingInput
	Kind        string
	ExternalRef string
	OccurredAt  time.Time
	Metadata    map[string]string
}

// Result is what a write returns: the entry, and whether it was already
// recorded under the same idempotency key.
type Result struct {
	Entry    Entry
	Replayed bool
}

// Limits on request fields. They keep rows small and bound the work one
// request can cause.
const (
	DefaultPendingTimeout = 24 * time.Hour
	MaxPendingTimeout     = 30 * 24 * time.Hour
	MaxPostings           = 64
	MaxMetadataPairs      = 32
	MaxMetadataKey        = 64
	// MaxMetadataValue is in bytes. The settlement flows keep reasons of
	// up to 200 characters in metadata (a reclassification's, a failed
	// payout's), and a character takes up to 4 bytes in UTF-8.
	MaxMetadataValue = 800
	MaxFutureSkew    = 15 * time.Minute
)

// MaxKey bounds idempotency keys: a client's key of up to 128 characters
// under the caller's scope.
const MaxKey = 256

func validKey(s string) bool { return validASCII(s, MaxKey) }

func validASCII(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validToken(s string, maxLen int, extra string, upper bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case upper && c >= 'A' && c <= 'Z':
		default:
			if !slices.Contains([]byte(extra), c) {
				return false
			}
		}
	}
	return true
}

// ValidMarket reports whether s can name a market: 1-64 of [A-Za-z0-9_.-].
func ValidMarket(s string) bool { return validToken(s, 64, "_.-", true) }

// ValidAccountCode reports whether s can be an account code: 1-200 of
// [A-Za-z0-9:._-].
func ValidAccountCode(s string) bool { return validToken(s, 200, ":._-", true) }

func validKind(s string) bool { return validToken(s, 64, "_.-", false) }

func checkKey(field, key string) *Error {
	if !validKey(key) {
		return invalid(field, "must be 1-128 printable ASCII characters without spaces, got %q", key)
	}
	return nil
}

func checkKind(kind string) *Error {
	if !validKind(kind) {
		return invalid("kind", "must be 1-64 of [a-z0-9_.-], got %q", kind)
	}
	return nil
}

func checkExternalRef(ref string) *Error {
	if ref != "" && !validASCII(ref, 128) {
		return invalid("external_ref", "must be at most 128 printable ASCII characters without spaces, got %q", ref)
	}
	return nil
}

func checkOccurredAt(t, now time.Time) *Error {
	if t.IsZero() {
		return nil
	}
	if t.After(now.Add(MaxFutureSkew)) {
		return invalid("occur_time", "is %s ahead of the ledger's clock; at most %s is allowed", t.Sub(now).Round(time.Second), MaxFutureSkew)
	}
	if t.Year() < 2000 {
		return invalid("occur_time", "must be after 2000-01-01, got %s", t.Format(time.RFC3339))
	}
	return nil
}

func checkMetadata(md map[string]string) *Error {
	if len(md) > MaxMetadataPairs {
		return invalid("metadata", "at most %d pairs, got %d", MaxMetadataPairs, len(md))
	}
	for k, v := range md {
		if !validToken(k, MaxMetadataKey, "_.-", true) {
			return invalid("metadata", "key %q must be 1-%d of [A-Za-z0-9_.-]", k, MaxMetadataKey)
		}
		// A NUL is valid UTF-8, but PostgreSQL stores none: refused here, it
		// would fail the entry's whole round and be answered Unavailable.
		if len(v) > MaxMetadataValue || !pg.Storable([]byte(v)) {
			return invalid("metadata["+k+"]", "must be valid UTF-8 without NUL, of at most %d bytes", MaxMetadataValue)
		}
	}
	return nil
}

// toMinor converts an amount to minor units of currency, naming field in
// its error.
func toMinor(field, currency string, d decimal.Decimal) (int64, *Error) {
	exp, ok := currencyExponents[currency]
	if !ok {
		return 0, invalid("currency", "unknown currency %q", currency)
	}
	if !d.IsPositive() {
		return 0, invalid(field, "must be positive, got %q", d.String())
	}
	minor := d.Shift(exp)
	if !minor.IsInteger() {
		if exp == 0 {
			return 0, invalid(field, "%s has no minor unit: must be a whole number, got %q", currency, d.String())
		}
		return 0, invalid(field, "%s allows at most %d decimals, got %q", currency, exp, d.String())
	}
	if minor.GreaterThan(decimal.NewFromInt(MaxAmount)) {
		return 0, invalid(field, "must be at most %s, got %q", FormatAmount(currency, MaxAmount), d.String())
	}
	return minor.IntPart(), nil
}

// convertPostings checks postings against the currency and their balance
// and returns them in minor units.
func convertPostings(currency string, in []PostingInput) ([]Posting, *Error) {
	if len(in) < 2 {
		return nil, invalid("postings", "an entry needs at least 2 postings, got %d", len(in))
	}
	if len(in) > MaxPostings {
		return nil, invalid("postings", "at most %d postings, got %d", MaxPostings, len(in))
	}
	out := make([]Posting, len(in))
	var debits, credits int64 // cannot overflow: at most 64 postings of at most 10^15
	for i, p := range in {
		field := fmt.Sprintf("postings[%d]", i)
		if !ValidAccountCode(p.AccountCode) {
			return nil, invalid(field+".account_code", "must be 1-200 of [A-Za-z0-9:._-], got %q", p.AccountCode)
		}
		amount, err := toMinor(field+".amount", currency, p.Amount)
		if err != nil {
			return nil, err
		}
		switch p.Direction {
		case Debit:
			debits += amount
		case Credit:
			credits += amount
		default:
			return nil, invalid(field+".direction", "must be debit or credit")
		}
		out[i] = Posting{AccountCode: p.AccountCode, Direction: p.Direction, Amount: amount}
	}
	if debits != credits {
		return nil, invalid("postings", "unbalanced: debits %s, credits %s %s", FormatAmount(currency, debits), FormatAmount(currency, credits), currency)
	}
	return out, nil
}

// validate checks everything about an entry request that does not depend on
// the ledger's state, and returns its postings in minor units.
func (r *EntryRequest) validate(now time.Time) ([]Posting, *Error) {
	if err := checkKey("idempotency_key", r.IdempotencyKey); err != nil {
		return nil, err
	}
	if !ValidMarket(r.Market) {
		return nil, invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", r.Market)
	}
	if err := checkKind(r.Kind); err != nil {
		return nil, err
	}
	if _, ok := currencyExponents[r.Currency]; !ok {
		return nil, invalid("currency", "unknown or unsupported currency %q", r.Currency)
	}
	postings, err := convertPostings(r.Currency, r.Postings)
	if err != nil {
		return nil, err
	}
	if r.Pending {
		if r.PendingTimeout != 0 && (r.PendingTimeout < time.Second || r.PendingTimeout > MaxPendingTimeout) {
			return nil, invalid("pending_timeout", "must be between 1s and %s, got %s", MaxPendingTimeout, r.PendingTimeout)
		}
	} else if r.PendingTimeout != 0 {
		return nil, invalid("pending_timeout", "only a pending entry has a timeout")
	}
	if err := checkExternalRef(r.ExternalRef); err != nil {
		return nil, err
	}
	if err := checkOccurredAt(r.OccurredAt, now); err != nil {
		return nil, err
	}
	if err := checkMetadata(r.Metadata); err != nil {
		return nil, err
	}
	for i, spec := range r.Opens {
		field := fmt.Sprintf("opens[%d]", i)
		if err := spec.validate(); err != nil {
			err.Field = field + "." + err.Field
			return nil, err
		}
		if spec.Market != r.Market || spec.Currency != r.Currency {
			return nil, invalid(field, "account %s is of market %s in %s, the entry of market %s in %s", spec.Code, spec.Market, spec.Currency, r.Market, r.Currency)
		}
		if !slices.ContainsFunc(postings, func(p Posting) bool { return p.AccountCode == spec.Code }) {
			return nil, invalid(field+".code", "the entry posts nothing to %s", spec.Code)
		}
	}
	return postings, nil
}

func (r *CloseRequest) validate(now time.Time) *Error {
	if err := checkKey("idempotency_key", r.IdempotencyKey); err != nil {
		return err
	}
	id, ok := CanonicalUUID(r.PendingID)
	if !ok {
		return invalid("pending_entry_id", "must be a UUID, got %q", r.PendingID)
	}
	r.PendingID = id
	if r.Void && len(r.Postings) > 0 {
		return invalid("postings", "a void posts nothing; leave postings empty")
	}
	if len(r.Postings) > MaxPostings {
		return invalid("postings", "at most %d postings, got %d", MaxPostings, len(r.Postings))
	}
	if err := checkKind(r.Kind); err != nil {
		return err
	}
	if err := checkExternalRef(r.ExternalRef); err != nil {
		return err
	}
	if err := checkOccurredAt(r.OccurredAt, now); err != nil {
		return err
	}
	return checkMetadata(r.Metadata)
}

// requestHasher builds the hash that idempotency compares: every field as
// the client sent it, each length-prefixed so that no two requests share
// bytes.
type requestHasher struct{ buf []byte }

func (h *requestHasher) str(s string) {
	h.buf = binary.AppendUvarint(h.buf, uint64(len(s)))
	h.buf = append(h.buf, s...)
}

func (h *requestHasher) int(v int64) { h.buf = binary.AppendVarint(h.buf, v) }

func (h *requestHasher) time(t time.Time) {
	if t.IsZero() {
		h.int(0)
		return
	}
	h.int(t.UnixMicro())
}

func (h *requestHasher) metadata(md map[string]string) {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h.int(int64(len(keys)))
	for _, k := range keys {
		h.str(k)
		h.str(md[k])
	}
}

func (h *requestHasher) postings(ps []PostingInput) {
	h.int(int64(len(ps)))
	for _, p := range ps {
		h.str(p.AccountCode)
		h.int(int64(p.Direction))
		// Normalised, so "150000" and "150000.0" are the same request.
		h.str(p.Amount.String())
	}
}

func (h *requestHasher) sum() []byte {
	s := sha256.Sum256(h.buf)
	return s[:]
}

func (r *EntryRequest) hash() []byte {
	h := &requestHasher{}
	h.str("entry")
	h.str(r.Market)
	h.str(r.Kind)
	h.str(r.Currency)
	h.postings(r.Postings)
	if r.Pending {
		h.int(1)
	} else {
		h.int(0)
	}
	h.int(int64(r.PendingTimeout))
	h.str(r.ExternalRef)
	h.time(r.OccurredAt)
	h.metadata(r.Metadata)
	return h.sum()
}

func (r *CloseRequest) hash() []byte {
	h := &requestHasher{}
	if r.Void {
		h.str("void")
	} else {
		h.str("post")
	}
	h.str(r.PendingID)
	h.postings(r.Postings)
	h.str(r.Kind)
	h.str(r.ExternalRef)
	h.time(r.OccurredAt)
	h.metadata(r.Metadata)
	return h.sum()
}
