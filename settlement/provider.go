package settlement

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// ProviderSettlementRequest records money a provider paid to a settlement
// bank for the payments taken at a market by one of its channels.
type ProviderSettlementRequest struct {
	Key     string
	Channel merchant.Channel
	Market  string
	Amount  decimal.Decimal
	// Bank is the settlement bank's code in account codes, e.g. "vcb".
	Bank string
	// BankRef is the bank's reference of the credit; one bank reference is
	// recorded once.
	BankRef string
	// AllowUnmatched holds the part of the credit above what the provider
	// owes in the market's suspense account instead of refusing the credit.
	AllowUnmatched bool
}

// ProviderSettlement is a recorded provider settlement.
type ProviderSettlement struct {
	EntryID           string
	Market            string
	Channel           merchant.Channel
	Provider          string
	Bank              string
	BankRef           string
	Amount            int64 // the whole credit: Settled + Unmatched
	Settled           int64 // set against what the provider owed
	Unmatched         int64 // held in SuspenseAccount
	RemainingOwed     int64 // the provider's clearing balance right after
	ClearingAccount   string
	SettlementAccount string
	SuspenseAccount   string
	RecordedAt        time.Time
}

// keyProviderSettlement prefixes the client's key in the ledger, so that a
// key reused across flows never collides.
const keyProviderSettlement = "settlement:provider:"

func checkPrintable(field, s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return invalid(field, "must be 1-%d printable ASCII characters without spaces, got %d characters", max, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return invalid(field, "must be printable ASCII without spaces, got %q", s)
		}
	}
	return nil
}

func (r ProviderSettlementRequest) validate() (int64, error) {
	// The API scopes the client's key (at most 128) by the caller.
	if err := checkPrintable("idempotency_key", r.Key, 200); err != nil {
		return 0, err
	}
	if !r.Channel.Valid() {
		return 0, invalid("channel", "must be one of %v, got %q", merchant.Channels, r.Channel)
	}
	if r.Market == "" {
		return 0, invalid("market", "is required")
	}
	amount, err := wholeDong(r.Amount)
	if err != nil {
		return 0, err
	}
	if err := merchant.CheckBankCode("bank", r.Bank); err != nil {
		return 0, err
	}
	if err := checkPrintable("bank_ref", r.BankRef, 64); err != nil {
		return 0, err
	}
	return amount, nil
}

// wholeDong is a request's amount in đồng: positive, whole, at most the
// ledger's largest amount.
func wholeDong(d decimal.Decimal) (int64, error) {
	if !d.IsPositive() {
		return 0, invalid("amount", "must be positive, got %q", d.String())
	}
	if !d.IsInteger() {
		return 0, invalid("amount", "VND has no minor unit: must be a whole number of đồng, got %q", d.String())
	}
	if d.GreaterThan(decimal.NewFromInt(ledger.MaxAmount)) {
		return 0, invalid("amount", "must be at most %d đồng, got %q", int64(ledger.MaxAmount), d.String())
	}
	return d.IntPart(), nil
}

// RecordProviderSettlement records a provider's payment to a settlement
// bank: Dr bank:B:market:M:settlement / Cr the provider's clearing account
// of the market, posted. The same key with the same request returns the
// recorded settlement (replayed), also when both copies arrive at once;
// with another request it is refused naming the field. A bank reference is
// recorded once.
//
// It never settles more than the provider owes (its posted clearing
// balance). A credit above that is refused, unless the request allows
// unmatched money: then the excess is credited to the market's suspense
// account, in the same entry, until ReclassifySuspense matches it. The
// split is what the provider owed when the balance was read: payments
// recorded in the instant before the entry's round are left owed, for a
// reclassification to match (demanding the balance of the round itself
// would refuse the split again and again in a busy market). The database
// checks that the split never settles more than the provider owes as the
// entry's round leaves it; a concurrent write that lowered the balance
// (a refund, another settlement) makes the split be computed again.
//
// The settlement bank's account for the market is opened on first use with
// the flag "credits must not exceed debits": money can leave it (payouts)
// only once a provider has paid it in. It is opened by the entry of the
// credit, so a refused credit opens none, also when a write committed
// meanwhile refuses it.
func (s *Service) RecordProviderSettlement(ctx context.Context, r ProviderSettlementRequest) (ProviderSettlement, bool, error) {
	r.Market = strings.TrimSpace(r.Market)
	amount, err := r.validate()
	if err != nil {
		return ProviderSettlement{}, false, err
	}
	ledgerKey := keyProviderSettlement + r.Key
	return recordOnce(
		func() (ProviderSettlement, bool, error) {
			return answerOfKey(ctx, s.ledger, ledgerKey, func(e ledger.Entry) error { return sameSettlement(e, r, amount) }, s.providerSettlement)
		},
		func() (ProviderSettlement, bool, error) { return s.recordSettlement(ctx, ledgerKey, r, amount) })
}

// splitAttempts bounds how often a split is computed again after the
// clearing balance fell under it; each time, another write committed.
const splitAttempts = 10

func (s *Service) recordSettlement(ctx context.Context, ledgerKey string, r ProviderSettlementRequest, amount int64) (ProviderSettlement, bool, error) {
	mk, err := s.merchants.GetMarket(ctx, r.Market)
	if err != nil {
		return ProviderSettlement{}, false, ledger.RenameField(err, "code", "market")
	}
	clearing := merchant.ClearingAccount(r.Channel, mk.Code)
	for attempt := 1; ; attempt++ {
		acct, err := s.ledger.GetAccount(ctx, clearing)
		if err != nil {
			return ProviderSettlement{}, false, ledger.RenameField(err, "code", "channel")
		}
		owed := acct.Totals.Posted(acct.Type)
		settled := amount
		if amount > owed {
			if !r.AllowUnmatched {
				return ProviderSettlement{}, false, fail(ErrExceedsOwed, "amount", "%s owes market %s %s đồng for %s payments; cannot settle %d (allow_unmatched holds the excess in the market's suspense account)",
					r.Channel.Provider(), mk.Code, ledger.FormatAmount(Currency, owed), r.Channel, amount)
			}
			settled = max(owed, 0)
		}
		res, err := s.ledger.Post(ctx, settlementEntry(ledgerKey, r, mk.Code, amount, settled))
		switch {
		case errors.Is(err, ledger.ErrDuplicateExternalRef):
			return ProviderSettlement{}, false, r.duplicateRef()
		case errors.Is(err, ledger.ErrAccountExists):
			return ProviderSettlement{}, false, fail(ledger.ErrAccountExists, "bank", "the ledger already has an account %s with other attributes (%v)",
				merchant.SettlementAccount(r.Bank, mk.Code), err)
		case errors.Is(err, ledger.ErrRefused) && strings.Contains(err.Error(), "provider_settlements_within_owed"):
			// Another write lowered the clearing balance after it was read.
			switch {
			case !r.AllowUnmatched:
				return ProviderSettlement{}, false, fail(ErrExceedsOwed, "amount", "%s no longer owes market %s %d đồng for %s payments", r.Channel.Provider(), mk.Code, settled, r.Channel)
			case attempt == splitAttempts:
				return ProviderSettlement{}, false, fmt.Errorf("%w: what %s owes market %s kept moving while the credit was split; send the request again with the same key",
					ledger.ErrUnavailable, r.Channel.Provider(), mk.Code)
			}
			continue
		case err != nil:
			return ProviderSettlement{}, false, err
		}
		// The ledger answered with what became of the credit, even if the
		// caller has given up meanwhile: the read that answers with it must
		// not fail for that, or a credit recorded would be answered, and
		// recorded in the audit trail, as a call that failed.
		ps, err := s.providerSettlement(context.WithoutCancel(ctx), res.Entry.ID)
		return ps, res.Replayed, err
	}
}

// duplicateRef is the refusal of a credit whose bank reference is
// recorded. Not the ledger's error, which names the entry holding the
// reference: another provider's credit, maybe of a market the caller is
// not bound to.
func (r ProviderSettlementRequest) duplicateRef() error {
	return fail(ledger.ErrDuplicateExternalRef, "bank_ref", "bank %s reference %s is already recorded", r.Bank, r.BankRef)
}

// bankCreditRef is a credit's external reference: unique in the ledger, so
// a bank's credit is recorded once, whoever reports it and under whatever
// key.
func (r ProviderSettlementRequest) bankCreditRef() string { return "bank:" + r.Bank + ":" + r.BankRef }

// settlementAccountSpec is a settlement bank's account of market, as its
// first credit opens it: it refuses credits beyond its debits, so the bank
// never pays out money it has not received.
func settlementAccountSpec(bank, market string) ledger.AccountSpec {
	return ledger.AccountSpec{
		Code: merchant.SettlementAccount(bank, market), Type: ledger.Asset, Currency: Currency, Market: market,
		Flags: ledger.FlagCreditsMustNotExceedDebits,
	}
}

// settlementEntry is the entry of a provider's credit of amount, settled
// of it against the clearing account and the rest held in suspense.
func settlementEntry(ledgerKey string, r ProviderSettlementRequest, market string, amount, settled int64) ledger.EntryRequest {
	postings := []ledger.PostingInput{
		{AccountCode: merchant.SettlementAccount(r.Bank, market), Direction: ledger.Debit, Amount: decimal.NewFromInt(amount)},
	}
	if settled > 0 {
		postings = append(postings, ledger.PostingInput{AccountCode: merchant.ClearingAccount(r.Channel, market), Direction: ledger.Credit, Amount: decimal.NewFromInt(settled)})
	}
	md := map[string]string{
		"channel":  string(r.Channel),
		"provider": r.Channel.Provider(),
		"bank":     r.Bank,
		"bank_ref": r.BankRef,
		"amount":   strconv.FormatInt(amount, 10),
	}
	if r.AllowUnmatched {
		md["allow_unmatched"] = "true"
	}
	if unmatched := amount - settled; unmatched > 0 {
		postings = append(postings, ledger.PostingInput{AccountCode: merchant.SuspenseAccount(market), Direction: ledger.Credit, Amount: decimal.NewFromInt(unmatched)})
		md["unmatched"] = strconv.FormatInt(unmatched, 10)
	}
	return ledger.EntryRequest{
		IdempotencyKey: ledgerKey,
		Market:         market,
		Kind:           KindProviderSettlement,
		Currency:       Currency,
		Postings:       postings,
		ExternalRef:    r.bankCreditRef(),
		Metadata:       md,
		Opens:          []ledger.AccountSpec{settlementAccountSpec(r.Bank, market)},
	}
}

// sameSettlement checks that a request reusing a key asks for what the key
// recorded, naming the first field that differs.
func sameSettlement(e ledger.Entry, r ProviderSettlementRequest, amount int64) error {
	if e.Kind != KindProviderSettlement {
		return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q was already used for a %s entry", r.Key, e.Kind)
	}
	md := e.Metadata
	for _, f := range []struct{ field, stored, got string }{
		{"market", e.Market, r.Market},
		{"channel", md["channel"], string(r.Channel)},
		{"amount", md["amount"], strconv.FormatInt(amount, 10)},
		{"bank", md["bank"], r.Bank},
		{"bank_ref", md["bank_ref"], r.BankRef},
		{"allow_unmatched", strconv.FormatBool(md["allow_unmatched"] == "true"), strconv.FormatBool(r.AllowUnmatched)},
	} {
		if f.stored != f.got {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already recorded settlement %s with %s %q, got %q", r.Key, e.ID, f.field, f.stored, f.got)
		}
	}
	return nil
}

func (s *Service) providerSettlement(ctx context.Context, entryID string) (ProviderSettlement, error) {
	var ps ProviderSettlement
	var channel string
	err := s.pool.QueryRow(ctx, `
SELECT entry_id::text, market, channel, provider, bank, bank_ref, amount, unmatched, remaining_owed, recorded_at
  FROM provider_settlements WHERE entry_id = $1`, entryID).Scan(
		&ps.EntryID, &ps.Market, &channel, &ps.Provider, &ps.Bank, &ps.BankRef, &ps.Amount, &ps.Unmatched, &ps.RemainingOwed, &ps.RecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ProviderSettlement{}, fmt.Errorf("provider settlement entry %s has no row: is settlement.Projector registered with the ledger?", entryID)
	}
	if err != nil {
		return ProviderSettlement{}, fmt.Errorf("read provider settlement %s: %w", entryID, err)
	}
	ps.Channel = merchant.Channel(channel)
	ps.RecordedAt = ps.RecordedAt.UTC()
	ps.ClearingAccount = merchant.ClearingAccount(ps.Channel, ps.Market)
	ps.SettlementAccount = merchant.SettlementAccount(ps.Bank, ps.Market)
	ps.SuspenseAccount = merchant.SuspenseAccount(ps.Market)
	ps.Settled = ps.Amount - ps.Unmatched
	return ps, nil
}
