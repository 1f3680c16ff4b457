package payment

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

const paymentColumns = `id::text, merchant, market, channel, source, status, currency, amount, confirmed_amount, fee,
       refunded_amount, fee_refunded, COALESCE(provider_ref, ''), COALESCE(request_id::text, ''), COALESCE(bill_number, ''),
       occurred_at, created_at, updated_at, expires_at, COALESCE(pending_entry_id::text, ''), entry_ids::text[]`

func scanPayment(row pgx.Row) (Payment, error) {
	var (
		p                       Payment
		channel, source, status string
		expires                 *time.Time
	)
	err := row.Scan(&p.ID, &p.Merchant, &p.Market, &channel, &source, &status, &p.Currency, &p.Amount, &p.ConfirmedAmount, &p.Fee,
		&p.RefundedAmount, &p.FeeRefunded, &p.ProviderRef, &p.RequestID, &p.BillNumber,
		&p.OccurredAt, &p.CreatedAt, &p.UpdatedAt, &expires, &p.PendingEntryID, &p.EntryIDs)
	p.Channel, p.Source, p.Status = merchant.Channel(channel), Source(source), Status(status)
	p.OccurredAt, p.CreatedAt, p.UpdatedAt = p.OccurredAt.UTC(), p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if expires != nil {
		p.ExpiresAt = expires.UTC()
	}
	return p, err
}

func (s *Service) queryPayments(ctx context.Context, sql string, args ...any) ([]Payment, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("read payments: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Service) paymentsByID(ctx context.Context, ids []string) (map[string]Payment, error) {
	out := map[string]Payment{}
	if len(ids) == 0 {
		return out, nil
	}
	var found []Payment
	var err error
	if len(ids) == 1 {
		// As in paymentsByRef: one id is planned once per session.
		found, err = s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1::uuid`, ids[0])
	} else {
		found, err = s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ANY($1::text[]::uuid[])`, ids)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range found {
		out[p.ID] = p
	}
	return out, nil
}

// Get returns the payment with id (from the call's memo, if it has one
// that holds it).
func (s *Service) Get(ctx context.Context, id string) (Payment, error) {
	id, _ = ledger.CanonicalUUID(id) // the memo keeps payments by their ids as stored
	memo := memoOf(ctx)
	if p, ok := memo.get(id); ok {
		return p, nil
	}
	p, err := s.read(ctx, id)
	if err == nil {
		memo.put(p)
	}
	return p, err
}

// read reads the payment with id from the database.
func (s *Service) read(ctx context.Context, id string) (Payment, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return Payment{}, invalid("id", "must be a UUID, got %q", id)
	}
	found, err := s.paymentsByID(ctx, []string{id})
	if err != nil {
		return Payment{}, err
	}
	p, ok := found[id]
	if !ok {
		return Payment{}, fail(ErrPaymentNotFound, "id", "no payment %s", id)
	}
	return p, nil
}

// A payment's provider reference is in the journal exactly once, as the
// external reference of the entry that brought it (the payment's own, or
// the confirmation that matched a stall's payment), and that entry's
// metadata names the payment. Lookups by reference go through that unique
// index; the payments table keeps no index of its own on references, so a
// confirmation that adds one leaves every index of the row untouched.

// IDsByExternalRef is a subquery for the ids of the payments whose entries
// carry the external references (ExternalRef) that match, a condition on
// external_ref such as "= $1" or "= ANY($5::text[])".
func IDsByExternalRef(match string) string {
	return `SELECT (metadata->>'payment_id')::uuid FROM ledger_entries
 WHERE external_ref ` + match + ` AND kind IN ('` + KindPayment + `', '` + KindConfirm + `')`
}

var (
	paymentByRefQuery = `SELECT ` + paymentColumns + ` FROM payments
 WHERE id = (` + IDsByExternalRef("= $1") + `) AND channel = $2 AND provider_ref = $3`
	// The caller finds each payment by its channel and reference.
	paymentsByRefQuery = `SELECT ` + paymentColumns + ` FROM payments WHERE id IN (` + IDsByExternalRef("= ANY($1::text[])") + `)`
)

func (s *Service) paymentByRef(ctx context.Context, ch merchant.Channel, ref string) (*Payment, error) {
	found, err := s.queryPayments(ctx, paymentByRefQuery, ExternalRef(ch, ref), string(ch), ref)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return &found[0], nil
}

// refKey names a payment by its provider's reference.
type refKey struct {
	channel merchant.Channel
	ref     string
}

// paymentsByRef reads the payments carrying any of the references, given as
// parallel slices of channel and reference, in one query.
func (s *Service) paymentsByRef(ctx context.Context, channels, refs []string) (map[refKey]Payment, error) {
	out := map[refKey]Payment{}
	if len(refs) == 0 {
		return out, nil
	}
	var found []Payment
	var err error
	if len(refs) == 1 {
		// One notification, the common case, as plain equalities:
		// PostgreSQL plans them once per session, where array parameters
		// get planned again at every execution.
		found, err = s.queryPayments(ctx, paymentByRefQuery, ExternalRef(merchant.Channel(channels[0]), refs[0]), channels[0], refs[0])
	} else {
		external := make([]string, len(refs))
		for i := range refs {
			external[i] = ExternalRef(merchant.Channel(channels[i]), refs[i])
		}
		found, err = s.queryPayments(ctx, paymentsByRefQuery, external)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range found {
		out[refKey{p.Channel, p.ProviderRef}] = p
	}
	return out, nil
}

// findPendingMatch finds the payment a bank notification is about: the one
// with the same provider reference (recorded or pending), else a pending
// payment for the same payment request that has not expired. One past its
// expiry is the sweeper's to void, and can no longer be confirmed: the
// notification is a payment of its own, as it is once the sweeper has run.
// So is a notification for more than the pending payment, a customer
// paying more than the bill: a pending entry is posted for at most its
// amount, and the bank's money is recorded whole. And so is one whose
// request's pending payments the stall recorded each with another
// reference: each is another transfer's (or its reference a stall's
// typing error, and the payment expires unconfirmed), and confirming one
// would record the bank's reference nowhere; as a payment of its own the
// notification is recorded with its reference, and sent again it is that
// payment's replay.
func (s *Service) findPendingMatch(ctx context.Context, r RecordRequest, req *PaymentRequest, byRef map[refKey]Payment, amount int64) (*Payment, error) {
	if p, ok := byRef[refKey{r.Channel, r.ProviderRef}]; ok {
		return &p, nil
	}
	if req == nil {
		return nil, nil
	}
	found, err := s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments
 WHERE request_id = $1 AND status = 'pending' AND expires_at > $4 AND merchant = $2 AND channel = $3 AND amount >= $5 AND provider_ref IS NULL
 ORDER BY created_at LIMIT 1`,
		req.ID, r.Merchant, string(r.Channel), s.opts.Now(), amount)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return &found[0], nil
}

// Filter selects payments for List. Merchant or Market is required, so a
// list always walks one index range.
type Filter struct {
	Merchant  string
	Market    string
	Status    Status
	Channel   merchant.Channel
	Start     time.Time
	End       time.Time
	PageSize  int
	PageToken string
}

// List returns a page of payments in the order they occurred, and the next
// page's token.
func (s *Service) List(ctx context.Context, f Filter) ([]Payment, string, error) {
	size, err := ledger.PageSize(f.PageSize)
	if err != nil {
		return nil, "", err
	}
	if f.Merchant == "" && f.Market == "" {
		return nil, "", invalid("merchant", "name a merchant or a market to list payments of")
	}
	if f.Merchant != "" {
		if err := merchant.CheckMerchantCode("merchant", f.Merchant); err != nil {
			return nil, "", err
		}
	}
	if f.Market != "" {
		if err := merchant.CheckMarketCode("market", f.Market); err != nil {
			return nil, "", err
		}
	}
	if f.Channel != "" && !f.Channel.Valid() {
		return nil, "", invalid("channel", "unknown channel %q", f.Channel)
	}
	if err := ledger.CheckTimeBounds(f.Start, f.End); err != nil {
		return nil, "", err
	}
	conds := []string{"true"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Merchant != "" {
		conds = append(conds, "merchant = "+arg(f.Merchant))
	}
	if f.Market != "" {
		conds = append(conds, "market = "+arg(f.Market))
	}
	if f.Status != "" {
		conds = append(conds, "status = "+arg(string(f.Status)))
	}
	if f.Channel != "" {
		conds = append(conds, "channel = "+arg(string(f.Channel)))
	}
	if !f.Start.IsZero() {
		conds = append(conds, "occurred_at >= "+arg(pg.CeilMicrosecond(f.Start)))
	}
	if !f.End.IsZero() {
		conds = append(conds, "occurred_at < "+arg(pg.CeilMicrosecond(f.End)))
	}
	place, err := ledger.PageAfter("payments", f.query(), f.PageToken, "merchant, market, status, channel, start_time and end_time")
	if err != nil {
		return nil, "", err
	}
	if place != "" {
		at, id, err := decodeCursor(place)
		if err != nil {
			return nil, "", err
		}
		conds = append(conds, "(occurred_at, id) > ("+arg(at)+", "+arg(id)+"::uuid)")
	}
	found, err := s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY occurred_at, id LIMIT `+arg(size+1), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(found) > size {
		found = found[:size]
		last := found[size-1]
		next = ledger.PageToken("payments", f.query(), encodeCursor(last.OccurredAt, last.ID))
	}
	return found, next, nil
}

// query writes what a page token keeps of the filter, the query its pages
// continue: every field but the page's size and token.
func (f Filter) query() string {
	return strings.Join([]string{f.Merchant, f.Market, string(f.Status), string(f.Channel), pg.BoundKey(f.Start), pg.BoundKey(f.End)}, ",")
}

// encodeCursor writes a payment's place in the order of a listing: its time
// and id.
func encodeCursor(t time.Time, id string) string {
	return strconv.FormatInt(t.UnixMicro(), 10) + ":" + id
}

func decodeCursor(place string) (time.Time, string, error) {
	bad := invalid("page_token", "is not a token of this list")
	micros, id, ok := strings.Cut(place, ":")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || !ledger.ValidUUID(id) {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(us).UTC(), id, nil
}

var errNoRows = pgx.ErrNoRows

func isNoRows(err error) bool { return errors.Is(err, errNoRows) }
