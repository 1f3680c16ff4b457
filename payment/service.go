package payment

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Options tune the payment flows. Zero values take the defaults.
type Options struct {
	// PendingTimeout is how long a stall-recorded payment waits for the
	// bank before it expires.
	PendingTimeout time.Duration
	// MinAmount and MaxAmount are the providers' limits on one payment, in
	// đồng.
	MinAmount int64
	MaxAmount int64
	// RequestTTL is how long a payment request's dynamic QR is valid.
	RequestTTL time.Duration
	Now        func() time.Time
}

func (o *Options) defaults() {
	if o.PendingTimeout <= 0 {
		o.PendingTimeout = 24 * time.Hour
	}
	if o.MinAmount <= 0 {
		o.MinAmount = 1_000
	}
	if o.MaxAmount <= 0 {
		o.MaxAmount = 100_000_000
	}
	if o.RequestTTL <= 0 {
		o.RequestTTL = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Service runs the payment flows.
type Service struct {
	pool      *pgxpool.Pool
	ledger    *ledger.Ledger
	merchants *merchant.Store
	opts      Options
}

// NewService returns the payment flows over a ledger whose options include
// Projector{}.
func NewService(pool *pgxpool.Pool, l *ledger.Ledger, merchants *merchant.Store, opts Options) *Service {
	opts.defaults()
	return &Service{pool: pool, ledger: l, merchants: merchants, opts: opts}
}

// MaxBulk bounds RecordMany.
const MaxBulk = 1000

// Ledger idempotency keys are the client's key under a prefix per flow, so
// that a key reused across flows never collides.
const (
	keyRecord  = "payment:record:"
	keyConfirm = "payment:confirm:"
	keyReject  = "payment:reject:"
	keyRefund  = "payment:refund:"
)

func invalid(field, format string, args ...any) error {
	return &ledger.Error{Kind: ledger.ErrInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func fail(kind error, field, format string, args ...any) error {
	return &ledger.Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func checkClientKey(key string) error {
	// The API prefixes the caller's scope to the client's key (at most 128).
	if len(key) == 0 || len(key) > 200 {
		return invalid("idempotency_key", "must be 1-128 printable ASCII characters, got %d", len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return invalid("idempotency_key", "must be printable ASCII without spaces")
		}
	}
	return nil
}

func checkRef(field, ref string) error {
	if len(ref) > 64 {
		return invalid(field, "at most 64 characters, got %d", len(ref))
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] < 0x21 || ref[i] > 0x7e {
			return invalid(field, "must be printable ASCII without spaces, got %q", ref)
		}
	}
	return nil
}

// wholeDong checks an amount in đồng: positive, whole, and within [lo, hi].
func wholeDong(field string, d decimal.Decimal, lo, hi int64) (int64, error) {
	if !d.IsInteger() {
		return 0, invalid(field, "VND has no minor unit: must be a whole number of đồng, got %q", d.String())
	}
	if d.LessThan(decimal.NewFromInt(lo)) || d.GreaterThan(decimal.NewFromInt(hi)) {
		return 0, invalid(field, "must be between %d and %d đồng, got %q", lo, hi, d.String())
	}
	return d.IntPart(), nil
}

// paymentPostings nets the fee in the entry: Dr clearing gross, Cr payable
// gross less fee, Cr fees fee. A zero leg is left out.
func paymentPostings(m merchant.Merchant, ch merchant.Channel, gross, fee int64) []ledger.PostingInput {
	ps := []ledger.PostingInput{{AccountCode: merchant.ClearingAccount(ch, m.Market), Direction: ledger.Debit, Amount: decimal.NewFromInt(gross)}}
	if gross-fee > 0 {
		ps = append(ps, ledger.PostingInput{AccountCode: merchant.PayableAccount(m.Code), Direction: ledger.Credit, Amount: decimal.NewFromInt(gross - fee)})
	}
	if fee > 0 {
		ps = append(ps, ledger.PostingInput{AccountCode: merchant.FeesAccount(m.Market), Direction: ledger.Credit, Amount: decimal.NewFromInt(fee)})
	}
	return ps
}

// partialFee is the fee on a partial confirmation: the recorded fee in
// proportion, rounded up to whole đồng, so the entry never posts more fee
// (nor less net to the merchant, proportionally) than was pending.
func partialFee(fee, amount, confirmed int64) int64 {
	if confirmed == amount {
		return fee
	}
	return (fee*confirmed + amount - 1) / amount
}

// refundFee is the part of the fee a refund returns: the fee in proportion
// to everything refunded with it, rounded down, less what earlier refunds
// returned. A full refund thus returns the fee exactly, and since the fee is
// never more than the confirmed amount, no refund returns more fee than its
// own amount. (Rounding each refund's own share down instead would leave the
// last đồng owing the fractions of every earlier refund, which can be more
// than that đồng.)
func refundFee(p Payment, refund int64) int64 {
	after := p.RefundedAmount + refund
	if after == p.ConfirmedAmount {
		return p.Fee - p.FeeRefunded
	}
	return mulDiv(p.Fee, after, p.ConfirmedAmount) - p.FeeRefunded
}

// mulDiv is a×b/c rounded down, for non-negative a ≤ c and b ≤ c, without
// overflowing where a×b would.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// plan is one item of a RecordMany call on its way to the ledger.
type plan struct {
	req       RecordRequest
	amount    int64
	ledgerKey string
	m         merchant.Merchant
	request   *PaymentRequest
	match     *Payment // a pending payment a bank notification posts
	write     any      // ledger.EntryRequest or ledger.CloseRequest
	paymentID string
}

// RecordRequest records one payment.
type RecordRequest struct {
	Key         string
	Merchant    string
	Channel     merchant.Channel
	Amount      decimal.Decimal
	Source      Source
	ProviderRef string
	RequestID   string
	BillNumber  string
	OccurredAt  time.Time
}

// Outcome is one recorded payment, or why it was not recorded.
type Outcome struct {
	Payment  Payment
	Replayed bool
	Err      error
}

// Record records one payment.
func (s *Service) Record(ctx context.Context, r RecordRequest) (Payment, bool, error) {
	o := s.RecordMany(ctx, []RecordRequest{r})[0]
	return o.Payment, o.Replayed, o.Err
}

// RecordMany records payments, each with its own outcome: one that fails
// never fails the others. All of them reach the ledger together, so they
// share its transactions.
//
// A call whose payments name no payment request or bill number goes to the
// ledger first without reading what its keys and references recorded
// before: the ledger's round checks both anyway, and for a new payment,
// nearly every one, both reads find nothing. Only a fresh payment written
// that way is kept. Every other item (a key or reference already recorded,
// a pending payment the bank is confirming, any error) is recorded again
// the careful way, which reads first and gives the answers it always gave.
func (s *Service) RecordMany(ctx context.Context, reqs []RecordRequest) []Outcome {
	if len(reqs) > MaxBulk {
		out := make([]Outcome, len(reqs))
		for i := range out {
			out[i].Err = invalid("payments", "at most %d payments per call, got %d", MaxBulk, len(reqs))
		}
		return out
	}
	var out []Outcome
	if withoutPaymentRequests(reqs) {
		out = s.record(ctx, reqs, true)
		s.recordAgain(ctx, reqs, out, func(o Outcome) bool { return o.Err != nil || o.Replayed })
	} else {
		out = s.record(ctx, reqs, false)
	}
	// A bank notification that lost a race to another write is planned
	// again, and recorded as it is when it comes a moment later (see
	// planAgain).
	for range replanAttempts {
		if !s.recordAgain(ctx, reqs, out, func(o Outcome) bool { return errors.As(o.Err, new(planAgain)) }) {
			break
		}
	}
	return out
}

// replanAttempts bounds how often RecordMany plans a bank notification
// again after losing a race.
const replanAttempts = 8

// recordAgain records again, the careful way, the requests whose outcomes
// need it, and reports whether there were any.
func (s *Service) recordAgain(ctx context.Context, reqs []RecordRequest, out []Outcome, need func(Outcome) bool) bool {
	var again []RecordRequest
	var at []int
	for i, o := range out {
		if need(o) {
			again = append(again, reqs[i])
			at = append(at, i)
		}
	}
	if len(again) == 0 {
		return false
	}
	for j, o := range s.record(ctx, again, false) {
		out[at[j]] = o
	}
	return true
}

// planAgain is the refusal of a bank notification whose write lost a race
// to another write, which a new plan settles: the pending payment of the
// payment request it names, which it was to confirm, was closed or expired
// first (by a notification of the same bill with another reference, in the
// same call or another), so it confirms another pending payment of the
// request or is a payment of its own; or a stall's pending payment of the
// merchant took its reference first, so it confirms that payment; or a
// copy of it took its key first, so it is that copy's replay.
type planAgain struct{ err error }

func (e planAgain) Error() string { return e.err.Error() }
func (e planAgain) Unwrap() error { return e.err }

// withoutPaymentRequests reports whether no request names a payment
// request or a bill number, whose lookups decide what a record becomes.
func withoutPaymentRequests(reqs []RecordRequest) bool {
	for _, r := range reqs {
		if r.RequestID != "" || r.BillNumber != "" {
			return false
		}
	}
	return true
}

// record records payments; optimistic skips the reads of earlier uses of
// their keys and references (see RecordMany).
func (s *Service) record(ctx context.Context, reqs []RecordRequest, optimistic bool) []Outcome {
	out := make([]Outcome, len(reqs))
	plans := make([]*plan, len(reqs))
	for i, r := range reqs {
		p, err := s.validate(r)
		if err != nil {
			out[i].Err = err
			continue
		}
		plans[i] = p
	}
	if err := s.resolve(ctx, plans, out, optimistic); err != nil {
		for i := range out {
			if out[i].Err == nil && plans[i] != nil {
				out[i].Err = err
			}
		}
		return out
	}

	var writes []any
	var owners []int
	for i, p := range plans {
		if p == nil || out[i].Err != nil || out[i].Replayed {
			continue
		}
		writes = append(writes, p.write)
		owners = append(owners, i)
	}
	results := s.ledger.Write(ctx, writes)
	// The ledger answers each write with what became of it, even once the
	// caller has given up: what follows only reads, to answer with the
	// payments those writes made, and must not fail for the caller's
	// cancel, or a confirmation recorded would be answered, and recorded in
	// the audit trail, as a call that failed.
	ctx = context.WithoutCancel(ctx)
	var ids []string
	for j, res := range results {
		i := owners[j]
		p := plans[i]
		if res.Err != nil {
			out[i].Err = s.explainRecordError(ctx, p, res.Err, &out[i])
			continue
		}
		out[i].Replayed = res.Replayed
		if !res.Replayed && res.Entry.Kind == KindPayment {
			// A new payment is what its entry says: no need to read it back.
			out[i].Payment = recorded(&res.Entry)
			continue
		}
		plans[i].paymentID = res.Entry.Metadata["payment_id"]
	}
	for i, p := range plans {
		if p != nil && out[i].Err == nil && p.paymentID != "" {
			ids = append(ids, p.paymentID)
		}
	}
	found, err := s.paymentsByID(ctx, ids)
	for i, p := range plans {
		if p == nil || out[i].Err != nil || p.paymentID == "" {
			continue
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		pay, ok := found[p.paymentID]
		if !ok {
			out[i].Err = fmt.Errorf("payment %s recorded but not found", p.paymentID)
			continue
		}
		out[i].Payment = pay
	}
	return out
}

func (s *Service) validate(r RecordRequest) (*plan, error) {
	if err := checkClientKey(r.Key); err != nil {
		return nil, err
	}
	if r.Merchant == "" {
		return nil, invalid("merchant", "is required")
	}
	if err := merchant.CheckMerchantCode("merchant", r.Merchant); err != nil {
		return nil, err
	}
	if !r.Channel.Valid() {
		return nil, invalid("channel", "must be one of %v, got %q", merchant.Channels, r.Channel)
	}
	amount, err := wholeDong("amount", r.Amount, s.opts.MinAmount, s.opts.MaxAmount)
	if err != nil {
		return nil, err
	}
	switch r.Source {
	case SourceStall:
	case SourceBank:
		if r.ProviderRef == "" {
			return nil, invalid("provider_ref", "is required when a bank records a payment")
		}
	default:
		return nil, invalid("source", "must be stall or bank, got %q", r.Source)
	}
	if err := checkRef("provider_ref", r.ProviderRef); err != nil {
		return nil, err
	}
	if err := checkRef("bill_number", r.BillNumber); err != nil {
		return nil, err
	}
	// Bill numbers are made of capitals and digits (newBillNumber), so no
	// two differ by case alone, and a payer may have typed the one a bank
	// echoes back in lower case.
	r.BillNumber = strings.ToUpper(r.BillNumber)
	if r.RequestID != "" {
		id, ok := ledger.CanonicalUUID(r.RequestID)
		if !ok {
			return nil, invalid("payment_request_id", "must be a UUID, got %q", r.RequestID)
		}
		r.RequestID = id
	}
	if !r.OccurredAt.IsZero() && r.OccurredAt.After(s.opts.Now().Add(ledger.MaxFutureSkew)) {
		return nil, invalid("occur_time", "is ahead of the ledger's clock by more than %s", ledger.MaxFutureSkew)
	}
	return &plan{req: r, amount: amount, ledgerKey: keyRecord + string(r.Source) + ":" + r.Key}, nil
}

// resolve reads what the plans depend on (earlier uses of their keys,
// merchants, payment requests, payments the bank may be confirming) and
// decides each plan's ledger write. optimistic reads only the merchants.
func (s *Service) resolve(ctx context.Context, plans []*plan, out []Outcome, optimistic bool) error {
	used := map[string]ledger.Entry{}
	if !optimistic {
		var keys []string
		for _, p := range plans {
			if p != nil {
				keys = append(keys, p.ledgerKey)
			}
		}
		var err error
		if used, err = s.ledger.EntriesByKeys(ctx, keys); err != nil {
			return err
		}
	}
	var codes []string
	var refChannels, refs []string
	for _, p := range plans {
		if p == nil {
			continue
		}
		codes = append(codes, p.req.Merchant)
		if p.req.Source == SourceBank {
			refChannels = append(refChannels, string(p.req.Channel))
			refs = append(refs, p.req.ProviderRef)
		}
	}
	merchants, err := s.merchants.GetMerchants(ctx, codes)
	if err != nil {
		return err
	}
	byRef := map[refKey]Payment{}
	if !optimistic {
		if byRef, err = s.paymentsByRef(ctx, refChannels, refs); err != nil {
			return err
		}
	}
	for i, p := range plans {
		if p == nil {
			continue
		}
		if e, ok := used[p.ledgerKey]; ok {
			// The key was used: what it recorded then is the answer, whatever
			// has happened to the payment since. A changed request is refused.
			if err := sameRecord(e, p); err != nil {
				out[i].Err = err
				continue
			}
			p.paymentID = e.Metadata["payment_id"]
			out[i].Replayed = true
			continue
		}
		m, ok := merchants[p.req.Merchant]
		if !ok {
			out[i].Err = fail(merchant.ErrMerchantNotFound, "merchant", "no merchant %s", p.req.Merchant)
			continue
		}
		p.m = m
		err := s.decide(ctx, p, byRef)
		var dup errDuplicate
		switch {
		case errors.As(err, &dup):
			p.paymentID = dup.id
			out[i].Replayed = true
		case err != nil:
			out[i].Err = err
		}
	}
	return nil
}

// decide picks the ledger write for one payment.
func (s *Service) decide(ctx context.Context, p *plan, byRef map[refKey]Payment) error {
	r, m := p.req, p.m
	if r.RequestID != "" || r.BillNumber != "" {
		req, err := s.findRequest(ctx, m.Code, r.RequestID, r.BillNumber)
		if err != nil {
			return err
		}
		if r.Channel != merchant.ChannelVietQR {
			// A payment request is a dynamic VietQR: recorded under another
			// channel, the bank's notification of it would never find it.
			return invalid("channel", "payment request %s is paid by %s, through its QR, not by %s", req.ID, merchant.ChannelVietQR, r.Channel)
		}
		if r.Source == SourceStall {
			if req.Amount != p.amount {
				return fail(ErrAmountMismatch, "amount", "payment request %s is for %d đồng, got %d", req.ID, req.Amount, p.amount)
			}
			if !s.opts.Now().Before(req.ExpiresAt) {
				return fail(ErrRequestExpired, "payment_request_id", "payment request %s expired at %s", req.ID, req.ExpiresAt.Format(time.RFC3339))
			}
		}
		p.request = &req
	}
	if r.Source == SourceBank {
		match, err := s.findPendingMatch(ctx, r, p.request, byRef, p.amount)
		if err != nil {
			return err
		}
		if match != nil {
			if err := recordedReference(p, match); err != nil {
				return err
			}
		}
		p.match = match
	}
	if p.match != nil {
		// A payment recorded before the merchant was suspended or closed,
		// or stopped accepting the channel, is still the merchant's: the
		// bank's notification of it confirms it, as ConfirmPayment would.
		return s.planConfirm(p)
	}
	if !m.CanTakePayments() {
		return fail(ErrMerchantInactive, "merchant", "merchant %s is %s and cannot take payments", m.Code, m.Status)
	}
	if !m.Accepts(r.Channel) {
		return fail(ErrChannelRefused, "channel", "merchant %s does not accept %s", m.Code, r.Channel)
	}
	fee := m.Fees.Fee(r.Channel, p.amount)
	id := paymentID(p.ledgerKey)
	md := map[string]string{
		"payment_id": id,
		"merchant":   m.Code,
		"channel":    string(r.Channel),
		"source":     string(r.Source),
		"amount":     strconv.FormatInt(p.amount, 10),
		"fee":        strconv.FormatInt(fee, 10),
	}
	if r.ProviderRef != "" {
		md["provider_ref"] = r.ProviderRef
	}
	if p.request != nil {
		md["request_id"] = p.request.ID
		md["bill_number"] = p.request.BillNumber
	}
	req := ledger.EntryRequest{
		IdempotencyKey: p.ledgerKey,
		Market:         m.Market,
		Kind:           KindPayment,
		Currency:       Currency,
		Postings:       paymentPostings(m, r.Channel, p.amount, fee),
		ExternalRef:    ExternalRef(r.Channel, r.ProviderRef),
		OccurredAt:     r.OccurredAt,
		Metadata:       md,
	}
	if r.Source == SourceStall {
		req.Pending = true
		req.PendingTimeout = s.opts.PendingTimeout
	}
	p.write = req
	return nil
}

// planConfirm posts the pending payment a bank notification matched.
func (s *Service) planConfirm(p *plan) error {
	match := p.match
	if p.amount > match.Amount {
		return fail(ErrAmountMismatch, "amount", "the bank reports %d đồng for payment %s, which was recorded for %d", p.amount, match.ID, match.Amount)
	}
	fee := partialFee(match.Fee, match.Amount, p.amount)
	md := map[string]string{
		"payment_id":   match.ID,
		"merchant":     p.m.Code,
		"channel":      string(p.req.Channel),
		"amount":       strconv.FormatInt(p.amount, 10),
		"fee":          strconv.FormatInt(fee, 10),
		"provider_ref": p.req.ProviderRef,
	}
	if p.request != nil {
		// What the notification named, as a new payment's entry keeps it:
		// the same notification sent again is compared against it.
		md["request_id"] = p.request.ID
		md["bill_number"] = p.request.BillNumber
	}
	req := ledger.CloseRequest{IdempotencyKey: p.ledgerKey, PendingID: match.PendingEntryID, Kind: KindConfirm, OccurredAt: p.req.OccurredAt, Metadata: md}
	if match.ProviderRef == "" {
		req.ExternalRef = ExternalRef(p.req.Channel, p.req.ProviderRef)
	}
	if p.amount < match.Amount {
		req.Postings = paymentPostings(p.m, match.Channel, p.amount, fee)
	}
	p.write = req
	return nil
}

// recordedReference decides what a bank notification gets when a payment
// already carries its provider reference, or is the pending payment of the
// payment request it names (one without a reference, findPendingMatch).
// The notification confirms the payment when it is its merchant's and
// still pending (nil, so the caller plans the confirmation); it repeats
// the one that recorded or confirmed the payment when merchant and amount
// agree (errDuplicate: the recorded payment, as a replay). Anything else
// is refused: the reference of another merchant's payment is never used
// for this one (naming nothing of the other payment), a different amount
// is not a repeat, and a payment that expired or was rejected was never
// paid, so acknowledging the notification would tell the bank the money
// was recorded when it was not.
func recordedReference(p *plan, match *Payment) error {
	r := p.req
	switch {
	case match.Merchant != r.Merchant:
		return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded for another merchant", r.Channel, r.ProviderRef)
	case match.Status == StatusPending:
		return nil
	case match.Status == StatusExpired || match.Status == StatusRejected:
		return fail(ErrWrongState, "provider_ref", "%s reference %s belongs to payment %s, which was %s before the bank confirmed it",
			r.Channel, r.ProviderRef, match.ID, match.Status)
	case p.amount != match.ConfirmedAmount:
		return fail(ErrAmountMismatch, "amount", "%s reference %s is already recorded by payment %s for %d đồng, got %d",
			r.Channel, r.ProviderRef, match.ID, match.ConfirmedAmount, p.amount)
	}
	return errDuplicate{match.ID}
}

// errDuplicate marks a bank notification whose reference is recorded: the
// caller answers with the recorded payment as a replay.
type errDuplicate struct{ id string }

func (e errDuplicate) Error() string { return "duplicate of payment " + e.id }

// explainRecordError turns a ledger error about a payment into one a stall
// or bank can act on, answers a lost race on the same provider reference
// with the payment that won it, and marks a bank notification that a new
// plan would record (planAgain).
func (s *Service) explainRecordError(ctx context.Context, p *plan, err error, o *Outcome) error {
	if p.req.ProviderRef != "" && (errors.Is(err, ledger.ErrDuplicateExternalRef) || errors.Is(err, ledger.ErrPendingClosed) || errors.Is(err, ledger.ErrRefused)) {
		existing, ferr := s.paymentByRef(ctx, p.req.Channel, p.req.ProviderRef)
		if ferr == nil && existing == nil && errors.Is(err, ledger.ErrDuplicateExternalRef) {
			// No payment holds the reference: an operator's entry does. As
			// for a confirmation (referenceTaken), the ledger's error is not
			// the caller's: it names the entry, which may be another
			// market's, and a field the request has not.
			return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded", p.req.Channel, p.req.ProviderRef)
		}
		if ferr == nil && existing != nil {
			if p.req.Source == SourceBank && existing.Status != StatusPending {
				var dup errDuplicate
				if err := recordedReference(p, existing); !errors.As(err, &dup) {
					return err
				}
				o.Payment, o.Replayed = *existing, true
				return nil
			}
			if existing.Merchant != p.req.Merchant {
				return fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded for another merchant", p.req.Channel, p.req.ProviderRef)
			}
			taken := fail(ledger.ErrDuplicateExternalRef, "provider_ref", "%s reference %s is already recorded by payment %s", p.req.Channel, p.req.ProviderRef, existing.ID)
			if p.req.Source == SourceBank {
				// The stall recorded its pending payment of this transfer
				// after the notification was planned: the notification
				// confirms it.
				return planAgain{taken}
			}
			return taken
		}
	}
	explained := err
	if errors.Is(err, ledger.ErrPendingExpired) && p.match != nil {
		explained = fail(ErrWrongState, "", "payment %s expired before the bank confirmed it", p.match.ID)
	}
	// A match by reference carries the notification's reference; one by
	// payment request carries none, and another pending payment of the
	// request, or none, may take its place.
	if p.match != nil && p.match.ProviderRef == "" && (errors.Is(err, ledger.ErrPendingClosed) || errors.Is(err, ledger.ErrPendingExpired)) {
		return planAgain{explained}
	}
	// A copy of this notification, sent at once, used its key after this
	// one read it unused, and wrote what the state before it called for
	// (the confirmation of the pending payment this one then found
	// confirmed): read again, the key answers with that copy's payment.
	if p.req.Source == SourceBank && errors.Is(err, ledger.ErrIdempotencyConflict) {
		return planAgain{explained}
	}
	return explained
}

// requestOf and billOf are the payment request a retry names, as the entry
// would store it: a retry may name the request by its id, by its bill
// number, or both, as long as what it names is what the key recorded.
func requestOf(r RecordRequest, md map[string]string) string {
	switch {
	case r.RequestID != "":
		id, _ := ledger.CanonicalUUID(r.RequestID)
		return id
	case r.BillNumber != "":
		return md["request_id"] // the bill number is compared instead
	}
	return ""
}

func billOf(r RecordRequest, md map[string]string) string {
	switch {
	case r.BillNumber != "":
		return r.BillNumber
	case r.RequestID != "":
		return md["bill_number"] // the id is compared instead
	}
	return ""
}

// sameRecord checks that a request reusing an idempotency key asks for what
// the key recorded, naming the first field that differs.
func sameRecord(e ledger.Entry, p *plan) error {
	md := e.Metadata
	for _, f := range []struct{ field, stored, got string }{
		{"merchant", md["merchant"], p.req.Merchant},
		{"channel", md["channel"], string(p.req.Channel)},
		{"amount", md["amount"], strconv.FormatInt(p.amount, 10)},
		{"provider_ref", md["provider_ref"], p.req.ProviderRef},
		{"payment_request_id", md["request_id"], requestOf(p.req, md)},
		{"bill_number", md["bill_number"], billOf(p.req, md)},
	} {
		if f.stored != f.got {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already recorded payment %s with %s %q, got %q", p.req.Key, md["payment_id"], f.field, f.stored, f.got)
		}
	}
	// A request without occur_time took the time it was recorded.
	if at := p.req.OccurredAt; !at.IsZero() && at.UnixMicro() != e.OccurredAt.UnixMicro() {
		return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already recorded payment %s with occur_time %s, got %s", p.req.Key, md["payment_id"],
			e.OccurredAt.UTC().Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
