package payment

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// ConfirmRequest posts a pending payment, in full or, with Amount, for less.
type ConfirmRequest struct {
	Key         string
	PaymentID   string
	Amount      *decimal.Decimal // nil confirms the recorded amount
	ProviderRef string
}

// Confirm posts a pending payment.
func (s *Service) Confirm(ctx context.Context, r ConfirmRequest) (Payment, bool, error) {
	if err := checkClientKey(r.Key); err != nil {
		return Payment{}, false, err
	}
	if err := checkRef("provider_ref", r.ProviderRef); err != nil {
		return Payment{}, false, err
	}
	p, err := s.Get(ctx, r.PaymentID)
	if err != nil {
		return Payment{}, false, ledger.RenameField(err, "id", "payment_id")
	}
	ledgerKey := keyConfirm + r.Key
	amount := p.Amount
	if r.Amount != nil {
		if amount, err = wholeDong("amount", *r.Amount, 1, p.Amount); err != nil {
			return Payment{}, false, err
		}
	}
	same := func(e ledger.Entry) error {
		if e.Metadata["amount"] != strconv.FormatInt(amount, 10) {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q confirmed payment %s for %s đồng, got %d", r.Key, p.ID, e.Metadata["amount"], amount)
		}
		if r.ProviderRef != "" && r.ProviderRef != p.ProviderRef {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q confirmed payment %s with reference %q, got %q", r.Key, p.ID, p.ProviderRef, r.ProviderRef)
		}
		return nil
	}
	if p.Status != StatusPending {
		// A retry finds the payment confirmed by its own key: the answer,
		// if it asks for what the key confirmed.
		if replay, ok, err := s.replay(ctx, ledgerKey, p.ID, same); ok || err != nil {
			return replay, ok, err
		}
		return Payment{}, false, fail(ErrWrongState, "payment_id", "payment %s is %s, only a pending payment can be confirmed", p.ID, p.Status)
	}
	if r.ProviderRef != "" && p.ProviderRef != "" && r.ProviderRef != p.ProviderRef {
		return Payment{}, false, fail(ErrAmountMismatch, "provider_ref", "payment %s carries reference %s, got %s", p.ID, p.ProviderRef, r.ProviderRef)
	}
	fee := partialFee(p.Fee, p.Amount, amount)
	md := map[string]string{
		"payment_id": p.ID,
		"merchant":   p.Merchant,
		"channel":    string(p.Channel),
		"amount":     strconv.FormatInt(amount, 10),
		"fee":        strconv.FormatInt(fee, 10),
	}
	req := ledger.CloseRequest{IdempotencyKey: ledgerKey, PendingID: p.PendingEntryID, Kind: KindConfirm, Metadata: md}
	if r.ProviderRef != "" && p.ProviderRef == "" {
		md["provider_ref"] = r.ProviderRef
		req.ExternalRef = ExternalRef(p.Channel, r.ProviderRef)
	}
	if amount < p.Amount {
		m, err := s.merchants.GetMerchant(ctx, p.Merchant)
		if err != nil {
			return Payment{}, false, err
		}
		req.Postings = paymentPostings(m, p.Channel, amount, fee)
	}
	res, err := s.ledger.ClosePending(ctx, req)
	if err != nil {
		if errors.Is(err, ledger.ErrIdempotencyConflict) {
			return s.keyUsedElsewhere(ctx, ledgerKey, p.ID, same, err)
		}
		if errors.Is(err, ledger.ErrPendingExpired) || errors.Is(err, ledger.ErrPendingClosed) {
			return Payment{}, false, fail(ErrWrongState, "payment_id", "payment %s can no longer be confirmed: %v", p.ID, err)
		}
		if errors.Is(err, ledger.ErrDuplicateExternalRef) {
			return Payment{}, false, s.referenceTaken(ctx, p, r.ProviderRef)
		}
		return Payment{}, false, err
	}
	if res.Replayed {
		p, err = s.read(ctx, p.ID)
		return p, true, err
	}
	return confirmed(p, &res.Entry), false, nil
}

// referenceTaken refuses a confirmation whose provider reference the
// ledger already holds. As a bank notification's refusal does, it names
// the payment that holds the reference only when that is the same
// merchant's: the ledger's own error names its entry, which may be another
// market's, outside what the bank may see.
func (s *Service) referenceTaken(ctx context.Context, p Payment, ref string) error {
	existing, err := s.paymentByRef(ctx, p.Channel, ref)
	switch {
	case err != nil:
		return err
	case existing == nil:
		return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded", p.Channel, ref)
	case existing.Merchant != p.Merchant:
		return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded for another merchant", p.Channel, ref)
	}
	return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded by payment %s", p.Channel, ref, existing.ID)
}

// RejectRequest voids a pending payment.
type RejectRequest struct {
	Key       string
	PaymentID string
	Reason    string
}

// Reject voids a pending payment: the bank says it failed.
func (s *Service) Reject(ctx context.Context, r RejectRequest) (Payment, bool, error) {
	if err := checkClientKey(r.Key); err != nil {
		return Payment{}, false, err
	}
	if err := checkReason(r.Reason); err != nil {
		return Payment{}, false, err
	}
	p, err := s.Get(ctx, r.PaymentID)
	if err != nil {
		return Payment{}, false, ledger.RenameField(err, "id", "payment_id")
	}
	ledgerKey := keyReject + r.Key
	same := func(e ledger.Entry) error {
		if e.Metadata["reason"] != r.Reason {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q rejected payment %s with reason %q, got %q", r.Key, p.ID, e.Metadata["reason"], r.Reason)
		}
		return nil
	}
	if p.Status != StatusPending {
		if replay, ok, err := s.replay(ctx, ledgerKey, p.ID, same); ok || err != nil {
			return replay, ok, err
		}
		return Payment{}, false, fail(ErrWrongState, "payment_id", "payment %s is %s, only a pending payment can be rejected", p.ID, p.Status)
	}
	md := map[string]string{"payment_id": p.ID}
	if r.Reason != "" {
		md["reason"] = r.Reason
	}
	res, err := s.ledger.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: ledgerKey, PendingID: p.PendingEntryID, Void: true, Kind: KindReject, Metadata: md})
	if err != nil {
		if errors.Is(err, ledger.ErrIdempotencyConflict) {
			return s.keyUsedElsewhere(ctx, ledgerKey, p.ID, same, err)
		}
		if errors.Is(err, ledger.ErrPendingClosed) {
			return Payment{}, false, fail(ErrWrongState, "payment_id", "payment %s can no longer be rejected: %v", p.ID, err)
		}
		return Payment{}, false, err
	}
	if res.Replayed {
		p, err = s.read(ctx, p.ID)
		return p, true, err
	}
	return closed(p, StatusRejected, &res.Entry), false, nil
}

// checkReason checks the reason a rejection or refund gives, which its
// entry's metadata keeps.
func checkReason(reason string) error {
	if !pg.Storable([]byte(reason)) {
		return invalid("reason", "must be UTF-8 without NUL")
	}
	// Characters, not bytes: a Vietnamese letter with its tone mark takes
	// up to three.
	if n := utf8.RuneCountInString(reason); n > 200 {
		return invalid("reason", "at most 200 characters, got %d", n)
	}
	return nil
}

// RefundRequest returns part or all of what remains of a confirmed payment.
type RefundRequest struct {
	Key       string
	PaymentID string
	Amount    *decimal.Decimal // nil refunds all that remains
	Reason    string
}

// Refund returns money to the payer: Dr merchant payable (the refund less
// the fee it returns), Dr market fees (the fee returned), Cr provider
// clearing (the refund). The merchant must still hold what it gives back.
func (s *Service) Refund(ctx context.Context, r RefundRequest) (Payment, Refund, bool, error) {
	if err := checkClientKey(r.Key); err != nil {
		return Payment{}, Refund{}, false, err
	}
	if err := checkReason(r.Reason); err != nil {
		return Payment{}, Refund{}, false, err
	}
	p, err := s.Get(ctx, r.PaymentID)
	if err != nil {
		return Payment{}, Refund{}, false, ledger.RenameField(err, "id", "payment_id")
	}
	ledgerKey := keyRefund + r.Key
	if refund, ok, err := s.refundOfKey(ctx, ledgerKey, p, r); ok || err != nil {
		if ok {
			// The payment was read before the key's refund may have
			// committed (a copy of this request sent at once recorded it):
			// the answer is the payment as it is now, that refund in it.
			p, err = s.read(ctx, p.ID)
		}
		return p, refund, ok, err
	}
	if r.Amount != nil && (!r.Amount.IsInteger() || !r.Amount.IsPositive()) {
		return Payment{}, Refund{}, false, invalid("amount", "must be a positive whole number of đồng, got %q", r.Amount.String())
	}
	after, refund, replayed, err := s.refund(ctx, ledgerKey, p, r)
	if err != nil {
		// A copy of the same request sent at once may have recorded it
		// meanwhile, and changed the payment this one computed from: its
		// refund is the answer.
		if refund, ok, kerr := s.refundOfKey(ctx, ledgerKey, p, r); ok || kerr != nil {
			if kerr == nil {
				after, kerr = s.read(ctx, p.ID)
			}
			return after, refund, ok, kerr
		}
	}
	return after, refund, replayed, err
}

// refundOfKey answers a refund request with the refund its key recorded,
// if it recorded one (ok), or refuses a changed request.
func (s *Service) refundOfKey(ctx context.Context, ledgerKey string, p Payment, r RefundRequest) (Refund, bool, error) {
	used, err := s.ledger.EntriesByKeys(ctx, []string{ledgerKey})
	if err != nil {
		return Refund{}, false, err
	}
	e, ok := used[ledgerKey]
	if !ok {
		return Refund{}, false, nil
	}
	if e.Metadata["payment_id"] != p.ID {
		return Refund{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already refunded payment %s", r.Key, e.Metadata["payment_id"])
	}
	if r.Amount != nil && r.Amount.String() != e.Metadata["amount"] {
		return Refund{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already refunded %s đồng, got %s", r.Key, e.Metadata["amount"], r.Amount)
	}
	if r.Reason != e.Metadata["reason"] {
		return Refund{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already refunded payment %s with reason %q, got %q", r.Key, p.ID, e.Metadata["reason"], r.Reason)
	}
	if r.Amount == nil {
		// No amount asks for the rest of the payment: the key's refund is
		// the answer only if it refunded the rest, and so was the
		// payment's last entry.
		now, err := s.read(ctx, p.ID)
		if err != nil {
			return Refund{}, false, err
		}
		if now.Status != StatusRefunded || now.EntryIDs[len(now.EntryIDs)-1] != e.ID {
			return Refund{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already refunded %s đồng of payment %s, not the rest of it; got no amount", r.Key, e.Metadata["amount"], p.ID)
		}
	}
	return refundOf(e), true, nil
}

// refund posts a refund the key has not recorded.
func (s *Service) refund(ctx context.Context, ledgerKey string, p Payment, r RefundRequest) (Payment, Refund, bool, error) {
	var err error
	// The fee a refund returns is its share of all refunded with it, less
	// what earlier refunds returned, so a refund computed from the payment
	// as another one found it would return the wrong fee: the payments
	// table refuses a payment whose returned fee is not its share of all
	// refunded (and, fully refunded, not its whole fee), and the refund is
	// computed again from the payment as the other one left it.
	var res ledger.Result
	checked := false // the out-of-range fee was found on a read made again
	for attempt := 1; ; attempt++ {
		if p.Status != StatusConfirmed && p.Status != StatusPartiallyRefunded {
			return Payment{}, Refund{}, false, fail(ErrWrongState, "payment_id", "payment %s is %s, only a confirmed payment can be refunded", p.ID, p.Status)
		}
		amount := p.Refundable()
		if r.Amount != nil {
			if r.Amount.GreaterThan(decimal.NewFromInt(amount)) {
				return Payment{}, Refund{}, false, fail(ErrRefundTooLarge, "amount", "payment %s has %d đồng left to refund, asked for %s", p.ID, amount, r.Amount)
			}
			amount = r.Amount.IntPart()
		}
		if attempt > refundAttempts {
			return Payment{}, Refund{}, false, fmt.Errorf("%w: payment %s kept changing while its refund was computed; send the request again with the same key", ledger.ErrUnavailable, p.ID)
		}
		stale := false
		if fee := refundFee(p, amount); (fee < 0 || fee > amount) && !checked {
			// Read while other refunds were being recorded, most likely:
			// read again. A payment whose earlier refunds returned other
			// than their share (written under the rule before 00016) gets
			// here again unchanged, and is brought back to the rule.
			stale, checked = true, true
		} else {
			checked = false
			res, err = s.ledger.Post(ctx, refundEntry(ledgerKey, p, amount, fee, r.Reason))
			switch {
			case errors.Is(err, ledger.ErrExceedsCredits):
				return Payment{}, Refund{}, false, fail(ErrInsufficientFund, "amount", "merchant %s does not hold the %d đồng this refund takes back: %v", p.Merchant, amount-fee, err)
			case errors.Is(err, ledger.ErrRefused):
				stale = true // another refund of the payment committed first
			case err != nil:
				return Payment{}, Refund{}, false, err
			}
		}
		if !stale {
			break
		}
		before := p
		if p, err = s.read(ctx, p.ID); err != nil {
			return Payment{}, Refund{}, false, err
		}
		if p.RefundedAmount != before.RefundedAmount || p.FeeRefunded != before.FeeRefunded {
			checked = false // it had changed: a new read, checked anew
		}
	}
	if res.Replayed {
		p, err = s.read(ctx, p.ID)
		return p, refundOf(res.Entry), true, err
	}
	return refunded(p, &res.Entry), refundOf(res.Entry), false, nil
}

// refundEntry returns amount of payment p to the payer, feeBack of it the
// fee: Dr merchant payable (the rest), Dr market fees (the fee returned),
// Cr provider clearing (the refund). feeBack is between 0 and amount but
// for a payment whose earlier refunds returned other than their share:
// more fee than the refund credits the merchant the difference, less than
// none takes it back from the merchant for the fees.
func refundEntry(ledgerKey string, p Payment, amount, feeBack int64, reason string) ledger.EntryRequest {
	postings := []ledger.PostingInput{}
	switch net := amount - feeBack; {
	case net > 0:
		postings = append(postings, ledger.PostingInput{AccountCode: payableOf(p), Direction: ledger.Debit, Amount: decimal.NewFromInt(net)})
	case net < 0:
		postings = append(postings, ledger.PostingInput{AccountCode: payableOf(p), Direction: ledger.Credit, Amount: decimal.NewFromInt(-net)})
	}
	switch {
	case feeBack > 0:
		postings = append(postings, ledger.PostingInput{AccountCode: feesOf(p), Direction: ledger.Debit, Amount: decimal.NewFromInt(feeBack)})
	case feeBack < 0:
		postings = append(postings, ledger.PostingInput{AccountCode: feesOf(p), Direction: ledger.Credit, Amount: decimal.NewFromInt(-feeBack)})
	}
	postings = append(postings, ledger.PostingInput{AccountCode: clearingOf(p), Direction: ledger.Credit, Amount: decimal.NewFromInt(amount)})
	md := map[string]string{
		"payment_id":   p.ID,
		"merchant":     p.Merchant,
		"channel":      string(p.Channel),
		"amount":       strconv.FormatInt(amount, 10),
		"fee_returned": strconv.FormatInt(feeBack, 10),
	}
	if reason != "" {
		md["reason"] = reason
	}
	return ledger.EntryRequest{
		IdempotencyKey: ledgerKey, Market: p.Market, Kind: KindRefund, Currency: p.Currency, Postings: postings, Metadata: md,
	}
}

// refundAttempts bounds how often a refund is computed again after other
// refunds of its payment committed first: refunds sent at once of one
// payment are recorded one per committer round.
const refundAttempts = 32

func refundOf(e ledger.Entry) Refund {
	return Refund{EntryID: e.ID, Amount: mdInt(e.Metadata, "amount"), FeeReturned: mdInt(e.Metadata, "fee_returned")}
}

// keyUsedElsewhere answers a confirmation or rejection of a pending payment
// that the ledger refused for its key, which closed another payment (or
// this one, asked otherwise by a copy sent at once): as replay does once
// the payment is no longer pending, naming the payment the key closed or
// what differs, not with the ledger's refusal, which names pending entries
// the request does not.
func (s *Service) keyUsedElsewhere(ctx context.Context, ledgerKey, paymentID string, same func(ledger.Entry) error, refused error) (Payment, bool, error) {
	if replay, ok, err := s.replay(ctx, ledgerKey, paymentID, same); ok || err != nil {
		return replay, ok, err
	}
	return Payment{}, false, refused
}

// replay answers a request whose ledger key was already used: with the
// payment as it is now when the key recorded a write on the same payment,
// with a conflict otherwise.
func (s *Service) replay(ctx context.Context, ledgerKey, paymentID string, same func(ledger.Entry) error) (Payment, bool, error) {
	used, err := s.ledger.EntriesByKeys(ctx, []string{ledgerKey})
	if err != nil {
		return Payment{}, false, err
	}
	e, ok := used[ledgerKey]
	if !ok {
		return Payment{}, false, nil
	}
	if e.Metadata["payment_id"] != paymentID {
		return Payment{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q was already used for payment %s", e.IdempotencyKey, e.Metadata["payment_id"])
	}
	if err := same(e); err != nil {
		return Payment{}, false, err
	}
	p, err := s.read(ctx, paymentID)
	return p, err == nil, err
}

func payableOf(p Payment) string  { return merchant.PayableAccount(p.Merchant) }
func feesOf(p Payment) string     { return merchant.FeesAccount(p.Market) }
func clearingOf(p Payment) string { return merchant.ClearingAccount(p.Channel, p.Market) }
