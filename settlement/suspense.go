package settlement

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// KindSuspenseReclassification moves money a market's suspense account
// holds to a provider's clearing account: Dr suspense, Cr clearing.
const KindSuspenseReclassification = "suspense_reclassification"

// ErrExceedsSuspense: a reclassification asks for more than the market's
// suspense account holds.
var ErrExceedsSuspense = errors.New("reclassification exceeds what suspense holds")

// keySuspenseReclassification prefixes the client's key in the ledger.
const keySuspenseReclassification = "settlement:suspense:"

// MaxReason bounds a reclassification's reason, in characters.
const MaxReason = 200

// SuspenseReclassificationRequest matches money held in a market's suspense
// account to the provider of a channel.
type SuspenseReclassificationRequest struct {
	Key     string
	Market  string
	Channel merchant.Channel
	Amount  decimal.Decimal
	// Reason says why the money is the provider's, for the auditors.
	Reason string
}

// SuspenseReclassification is a recorded reclassification.
type SuspenseReclassification struct {
	EntryID           string
	Market            string
	Channel           merchant.Channel
	Provider          string
	Amount            int64
	Reason            string
	SuspenseAccount   string
	ClearingAccount   string
	RemainingSuspense int64 // what suspense held right after
	RemainingOwed     int64 // what the provider owed right after
	RecordedAt        time.Time
}

func (r SuspenseReclassificationRequest) validate() (int64, error) {
	// The API scopes the client's key (at most 128) by the caller.
	if err := checkPrintable("idempotency_key", r.Key, 200); err != nil {
		return 0, err
	}
	if r.Market == "" {
		return 0, invalid("market", "is required")
	}
	if !r.Channel.Valid() {
		return 0, invalid("channel", "must be one of %v, got %q", merchant.Channels, r.Channel)
	}
	amount, err := wholeDong(r.Amount)
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(r.Reason) == "" || !pg.Storable([]byte(r.Reason)) || utf8.RuneCountInString(r.Reason) > MaxReason {
		return 0, invalid("reason", "must say why the money is the provider's, in 1-%d characters of UTF-8 without NUL", MaxReason)
	}
	return amount, nil
}

// ReclassifySuspense moves money a market's suspense account holds (the
// excess of provider credits recorded with AllowUnmatched) to a provider's
// clearing account, once the payments it paid for are recorded: Dr
// market:M:suspense / Cr the provider's clearing account, posted. It moves
// at most what suspense holds, at most what that provider's own credits
// left there (suspense money another provider paid is not this one's), and
// at most what the provider owes. All three are checked here and again by
// the database against the balances the entry's round leaves, so
// concurrent writes cannot overdraw any. The same key with the same
// request returns the recorded reclassification (replayed), also when both
// copies arrive at once; with another request it is refused naming the
// field.
func (s *Service) ReclassifySuspense(ctx context.Context, r SuspenseReclassificationRequest) (SuspenseReclassification, bool, error) {
	r.Market = strings.TrimSpace(r.Market)
	amount, err := r.validate()
	if err != nil {
		return SuspenseReclassification{}, false, err
	}
	ledgerKey := keySuspenseReclassification + r.Key
	return recordOnce(
		func() (SuspenseReclassification, bool, error) {
			return answerOfKey(ctx, s.ledger, ledgerKey, func(e ledger.Entry) error { return sameReclassification(e, r, amount) }, s.reclassification)
		},
		func() (SuspenseReclassification, bool, error) { return s.reclassify(ctx, ledgerKey, r, amount) })
}

// unmatchedOfProvider is what a provider's credits put into a market's
// suspense account, less what was reclassified to it since.
const unmatchedOfProvider = `
SELECT COALESCE((SELECT sum(unmatched) FROM provider_settlements WHERE market = $1 AND provider = $2 AND unmatched > 0), 0)::bigint
     - COALESCE((SELECT sum(amount) FROM suspense_reclassifications WHERE market = $1 AND provider = $2), 0)::bigint`

func (s *Service) reclassify(ctx context.Context, ledgerKey string, r SuspenseReclassificationRequest, amount int64) (SuspenseReclassification, bool, error) {
	mk, err := s.merchants.GetMarket(ctx, r.Market)
	if err != nil {
		return SuspenseReclassification{}, false, ledger.RenameField(err, "code", "market")
	}
	provider := r.Channel.Provider()
	suspense, clearing := merchant.SuspenseAccount(mk.Code), merchant.ClearingAccount(r.Channel, mk.Code)
	held, err := s.ledger.GetAccount(ctx, suspense)
	if err != nil {
		return SuspenseReclassification{}, false, ledger.RenameField(err, "code", "market")
	}
	if h := held.Totals.Posted(held.Type); amount > h {
		return SuspenseReclassification{}, false, fail(ErrExceedsSuspense, "amount", "market %s holds %s đồng in suspense; cannot reclassify %d",
			mk.Code, ledger.FormatAmount(Currency, h), amount)
	}
	var own int64
	if err := s.pool.QueryRow(ctx, unmatchedOfProvider, mk.Code, provider).Scan(&own); err != nil {
		return SuspenseReclassification{}, false, fmt.Errorf("read what %s left in suspense: %w", provider, err)
	}
	if amount > own {
		return SuspenseReclassification{}, false, fail(ErrExceedsSuspense, "amount", "%s's credits left %s đồng in market %s's suspense; cannot reclassify %d to it",
			provider, ledger.FormatAmount(Currency, own), mk.Code, amount)
	}
	owed, err := s.ledger.GetAccount(ctx, clearing)
	if err != nil {
		return SuspenseReclassification{}, false, ledger.RenameField(err, "code", "channel")
	}
	if o := owed.Totals.Posted(owed.Type); amount > o {
		return SuspenseReclassification{}, false, fail(ErrExceedsOwed, "amount", "%s owes market %s %s đồng for %s payments; cannot reclassify %d to it",
			provider, mk.Code, ledger.FormatAmount(Currency, o), r.Channel, amount)
	}
	res, err := s.ledger.Post(ctx, ledger.EntryRequest{
		IdempotencyKey: ledgerKey,
		Market:         mk.Code,
		Kind:           KindSuspenseReclassification,
		Currency:       Currency,
		Postings: []ledger.PostingInput{
			{AccountCode: suspense, Direction: ledger.Debit, Amount: decimal.NewFromInt(amount)},
			{AccountCode: clearing, Direction: ledger.Credit, Amount: decimal.NewFromInt(amount)},
		},
		Metadata: map[string]string{
			"channel":  string(r.Channel),
			"provider": provider,
			"amount":   strconv.FormatInt(amount, 10),
			"reason":   r.Reason,
		},
	})
	switch {
	case errors.Is(err, ledger.ErrRefused) && strings.Contains(err.Error(), "suspense_reclassifications_within_suspense"):
		return SuspenseReclassification{}, false, fail(ErrExceedsSuspense, "amount", "market %s no longer holds %d đồng in suspense", mk.Code, amount)
	case errors.Is(err, ledger.ErrRefused) && strings.Contains(err.Error(), "suspense_reclassifications_within_provider"):
		return SuspenseReclassification{}, false, fail(ErrExceedsSuspense, "amount", "%s's credits no longer leave %d đồng in market %s's suspense", provider, amount, mk.Code)
	case errors.Is(err, ledger.ErrRefused) && strings.Contains(err.Error(), "suspense_reclassifications_within_owed"):
		return SuspenseReclassification{}, false, fail(ErrExceedsOwed, "amount", "%s no longer owes market %s %d đồng for %s payments", provider, mk.Code, amount, r.Channel)
	case err != nil:
		return SuspenseReclassification{}, false, err
	}
	// Read even once the caller has given up, as a provider's credit is.
	rc, err := s.reclassification(context.WithoutCancel(ctx), res.Entry.ID)
	return rc, res.Replayed, err
}

// sameReclassification checks that a request reusing a key asks for what
// the key recorded, naming the first field that differs.
func sameReclassification(e ledger.Entry, r SuspenseReclassificationRequest, amount int64) error {
	if e.Kind != KindSuspenseReclassification {
		return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q was already used for a %s entry", r.Key, e.Kind)
	}
	md := e.Metadata
	for _, f := range []struct{ field, stored, got string }{
		{"market", e.Market, r.Market},
		{"channel", md["channel"], string(r.Channel)},
		{"amount", md["amount"], strconv.FormatInt(amount, 10)},
		{"reason", md["reason"], r.Reason},
	} {
		if f.stored != f.got {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already recorded reclassification %s with %s %q, got %q", r.Key, e.ID, f.field, f.stored, f.got)
		}
	}
	return nil
}

func (s *Service) reclassification(ctx context.Context, entryID string) (SuspenseReclassification, error) {
	var rc SuspenseReclassification
	var channel string
	err := s.pool.QueryRow(ctx, `
SELECT entry_id::text, market, channel, provider, amount, reason, remaining_suspense, remaining_owed, recorded_at
  FROM suspense_reclassifications WHERE entry_id = $1`, entryID).Scan(
		&rc.EntryID, &rc.Market, &channel, &rc.Provider, &rc.Amount, &rc.Reason, &rc.RemainingSuspense, &rc.RemainingOwed, &rc.RecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return SuspenseReclassification{}, fmt.Errorf("reclassification entry %s has no row: is settlement.Projector registered with the ledger?", entryID)
	}
	if err != nil {
		return SuspenseReclassification{}, fmt.Errorf("read reclassification %s: %w", entryID, err)
	}
	rc.Channel = merchant.Channel(channel)
	rc.RecordedAt = rc.RecordedAt.UTC()
	rc.SuspenseAccount = merchant.SuspenseAccount(rc.Market)
	rc.ClearingAccount = merchant.ClearingAccount(rc.Channel, rc.Market)
	return rc, nil
}
