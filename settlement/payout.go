package settlement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// Payout entries. A line to pay reserves its amount with a pending entry
// of KindPayout (Dr the merchant's payable / Cr the bank's settlement
// account); a paid line posts it with another KindPayout entry, which is
// what settlement reports count as a payout; a failed line voids it with a
// KindPayoutFailed entry.
const KindPayoutFailed = "payout_failed"

// PayoutTimeout is how long a batch's reservations wait for the bank's
// outcome. After it the ledger voids them: the line is expired and the
// money payable again.
const PayoutTimeout = ledger.MaxPendingTimeout

// MaxPayoutResults bounds the outcomes one CompletePayoutBatch carries.
const MaxPayoutResults = 1000

// ErrPayoutResolved: an outcome for a line that already has another one,
// or that can no longer get one (skipped, expired).
var ErrPayoutResolved = errors.New("payout line already resolved")

// keyPayout prefixes the ledger keys of payout entries, which derive from
// the batch and the merchant so that every step can be retried.
const keyPayout = "payout:"

// BatchStatus is where a payout batch stands.
type BatchStatus string

const (
	// BatchCreating: lines are being reserved; retrying the creation with
	// the same key finishes it, as does a later batch that finds one of its
	// merchants due money (finishCreating).
	BatchCreating  BatchStatus = "creating"
	BatchOpen      BatchStatus = "open"
	BatchCompleted BatchStatus = "completed"
)

// LineStatus is where a payout line stands.
type LineStatus string

const (
	LineReserving LineStatus = "reserving"
	LineOpen      LineStatus = "open"
	LinePaid      LineStatus = "paid"
	LineFailed    LineStatus = "failed"
	LineSkipped   LineStatus = "skipped"
	LineExpired   LineStatus = "expired"
)

// PayoutBatchRequest asks for a batch of what is due at CutOff.
type PayoutBatchRequest struct {
	// Key is the creator's idempotency key, already scoped by the creator.
	Key string
	// Creator is the creator's access scope (access.Principal.Scope).
	Creator string
	Bank    string
	CutOff  time.Time
	// Market is one market, or "" for every market in Markets.
	Market string
	// Markets bounds a batch without a Market: nil is every market.
	Markets []string
}

// PayoutBatch sums up a batch: counts and amounts of its lines by status.
type PayoutBatch struct {
	ID          string
	Creator     string
	Bank        string
	Market      string
	Markets     []string // nil: every market
	CutOff      time.Time
	CutOffSeq   int64
	Status      BatchStatus
	CreatedAt   time.Time
	CompletedAt time.Time

	Lines, Reserving, Open, Paid, Failed, Skipped, Expired int
	// Total is the sum of the lines to pay (every status but skipped).
	Total, PaidAmount, FailedAmount, SkippedAmount int64
}

// PayoutLine is what one merchant is paid in a batch.
type PayoutLine struct {
	Merchant string
	Market   string
	// Amount is what the line pays, or for a skipped line what was due.
	Amount       int64
	Status       LineStatus
	Account      *merchant.BankAccount
	Reason       string
	BankRef      string
	EntryID      string
	CloseEntryID string
	ResolvedAt   time.Time
}

// PayoutResult is the bank's outcome of one line.
type PayoutResult struct {
	Merchant string
	Paid     bool
	// BankRef is the bank's reference of a paid transfer.
	BankRef string
	// Reason is why a transfer failed.
	Reason string
}

func (r PayoutBatchRequest) validate(now time.Time) error {
	if err := checkPrintable("idempotency_key", r.Key, 200); err != nil {
		return err
	}
	if err := merchant.CheckBankCode("bank", r.Bank); err != nil {
		return err
	}
	if r.CutOff.IsZero() {
		return invalid("cut_off", "is required: money recorded up to it is paid out")
	}
	if r.CutOff.After(now) {
		return invalid("cut_off", "%s is in the future: what is due there is not known yet", r.CutOff.UTC().Format(time.RFC3339))
	}
	return nil
}

// CreatePayoutBatch freezes what is due to each merchant at r.CutOff and
// reserves it; see PayoutBatchRequest. A merchant is due what it was owed
// at the cut-off, but never more than its payable holds now:
//
//	owed at the cut-off = posted credits - posted debits at the cut-off
//	                      - payouts paid since
//	                      - refunds since of payments confirmed by then
//	available now       = posted credits - posted debits - pending debits
//	due                 = the smaller of the two, at most ledger.MaxAmount
//
// So money confirmed after the cut-off waits for the next batch, a refund
// since takes from what is due the money it gives back of a payment that
// was owed at the cut-off, never the money confirmed since in its place
// (and a payment after the cut-off refunded in full takes nothing), and a
// line of another batch that failed since is owed again. A payout pays
// the oldest money first: one paid after the cut-off, whether reserved
// before it or by a batch made since (another batch at the same cut-off,
// or by another bank), paid money owed at the cut-off, and counting it as
// still owed would let money confirmed after the cut-off into this batch.
// Merchants owed money are
// skipped, with the reason, when they have no payout account, are
// suspended, are in another open batch, or when the bank has not received
// enough from the providers for their market (its settlement account may
// not go below zero; lines are funded in merchant order).
//
// The same key with the same request returns the batch (replayed); with
// another request it is refused naming the field. A batch left half-made
// by a crash is finished by that retry, or by the next batch that finds
// one of its merchants due money.
func (s *Service) CreatePayoutBatch(ctx context.Context, r PayoutBatchRequest) (PayoutBatch, bool, error) {
	if err := r.validate(s.now()); err != nil {
		return PayoutBatch{}, false, err
	}
	if r.Market != "" {
		mk, err := s.merchants.GetMarket(ctx, r.Market)
		if err != nil {
			return PayoutBatch{}, false, ledger.RenameField(err, "code", "market")
		}
		r.Market, r.Markets = mk.Code, []string{mk.Code}
	}
	for attempt := 1; ; attempt++ {
		b, found, err := s.batchByKey(ctx, r.Key)
		if err != nil {
			return PayoutBatch{}, false, err
		}
		if found {
			if err := sameBatch(b, r); err != nil {
				return PayoutBatch{}, false, err
			}
			b, err = s.finishReserving(ctx, b)
			return b, err == nil, err
		}
		id, err := s.planBatch(ctx, r)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			// A concurrent creation took the key or one of the merchants
			// first: read again and plan with what it did.
			if attempt < planAttempts {
				continue
			}
			return PayoutBatch{}, false, fmt.Errorf("%w: payout batches created at the same time kept taking its merchants; send the request again with the same key", ledger.ErrUnavailable)
		}
		if err != nil {
			return PayoutBatch{}, false, err
		}
		b, err = s.batch(ctx, id)
		if err != nil {
			return PayoutBatch{}, false, err
		}
		b, err = s.finishReserving(ctx, b)
		return b, false, err
	}
}

// planAttempts bounds how often a batch is planned again after a
// concurrent creation took its key or one of its merchants. Each such
// creation takes a merchant or more: the market's settlement banks creating
// their batches at once, each funded for a few merchants, take the first
// merchants the others have not, one bank a round, and the last of a dozen
// banks plans its batch a dozen times.
const planAttempts = 64

func sameBatch(b PayoutBatch, r PayoutBatchRequest) error {
	for _, f := range []struct{ field, stored, got string }{
		{"bank", b.Bank, r.Bank},
		{"market", b.Market, r.Market},
		{"cut_off", b.CutOff.UTC().Format(time.RFC3339Nano), r.CutOff.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)},
	} {
		if f.stored != f.got {
			return fail(ledger.ErrIdempotencyConflict, "idempotency_key", "key %q already created payout batch %s with %s %q, got %q", r.Key, b.ID, f.field, f.stored, f.got)
		}
	}
	return nil
}

// dueLine is a merchant owed money at the cut-off.
type dueLine struct {
	merchant, market, status string
	bin, account, holder     *string
	due                      int64
	inBatch                  *string // an unresolved line of another batch
	inCreating               bool    // that batch is still being created
	funds                    *int64  // the bank's unreserved settlement money for the market; nil without an account
}

// dueAtCutOff lists every merchant with money due at cutSeq, in market and
// merchant order, with what decides whether it can be paid. The postings
// after cutSeq (pending ones move no posted total) turn today's posted
// balance into the cut-off's; a payout among them stays subtracted, and so
// does a refund of a payment confirmed by cutSeq (its payment's entries
// are the payments row's entry_ids), which gave back money that was owed.
const dueAtCutOff = `
WITH owed AS (
    SELECT m.code, m.market, m.status, m.payout_bank_bin, m.payout_account_number, m.payout_holder_name,
           LEAST(a.credits_posted - a.debits_posted - a.debits_pending,
                 a.credits_posted - a.debits_posted - COALESCE((
                     SELECT sum(CASE
                                WHEN p.direction = 'C' THEN p.amount
                                WHEN EXISTS (SELECT 1 FROM ledger_entries c
                                              WHERE c.seq = p.entry_seq
                                                AND (c.kind = '` + KindPayout + `'
                                                     OR c.kind = '` + payment.KindRefund + `' AND EXISTS (
                                                        SELECT 1 FROM payments pm JOIN ledger_entries pe ON pe.id = ANY (pm.entry_ids)
                                                         WHERE pm.id = (c.metadata->>'payment_id')::uuid AND pe.seq <= $2 AND pe.phase <> 'pending'
                                                           AND pe.kind IN ('` + payment.KindPayment + `', '` + payment.KindConfirm + `')))) THEN 0
                                ELSE -p.amount END)
                       FROM ledger_postings p
                      WHERE p.account_id = a.id AND p.entry_seq > $2 AND NOT p.pending), 0)) AS due
      FROM merchants m
      JOIN ledger_accounts a ON a.code = 'merchant:' || m.code || ':payable'
     WHERE $1::text[] IS NULL OR m.market = ANY($1))
SELECT o.code, o.market, o.status, o.payout_bank_bin, o.payout_account_number, o.payout_holder_name, o.due,
       ob.id, COALESCE(ob.status = 'creating', false),
       (SELECT s.debits_posted - s.credits_posted - s.credits_pending FROM ledger_accounts s
         WHERE s.code = 'bank:' || $3 || ':market:' || o.market || ':settlement')
  FROM owed o
  LEFT JOIN LATERAL (SELECT b.id::text, b.status FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id
                      WHERE l.merchant = o.code AND l.status IN ('reserving', 'open')) ob ON true
 WHERE o.due > 0
 ORDER BY o.market, o.code`

// planBatch writes the batch and its lines, each either to reserve or
// skipped with the reason, in one transaction, and returns the batch id.
func (s *Service) planBatch(ctx context.Context, r PayoutBatchRequest) (string, error) {
	cutSeq, err := s.ledger.SequenceAt(ctx, r.CutOff)
	if err != nil {
		return "", err
	}
	lines, err := s.due(ctx, r, cutSeq)
	if err != nil {
		return "", err
	}
	if lines, err = s.finishCreating(ctx, r, cutSeq, lines); err != nil {
		return "", err
	}
	now := s.now()
	id := ledger.NewID(now)
	n := len(lines)
	merchants, markets, statuses, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	amounts := make([]int64, n)
	bins, accounts, holders := make([]*string, n), make([]*string, n), make([]*string, n)
	funds := map[string]int64{}
	for i, d := range lines {
		merchants[i], markets[i], amounts[i] = d.merchant, d.market, d.due
		bins[i], accounts[i], holders[i] = d.bin, d.account, d.holder
		statuses[i] = string(LineSkipped)
		left, ok := funds[d.market]
		if !ok && d.funds != nil {
			left = *d.funds
		}
		switch {
		// The batch first: its open line holds the merchant's money
		// whatever has happened to the merchant since, and the bank may
		// know of it only from here (a batch left creating, finished by
		// this one).
		case d.inBatch != nil:
			reasons[i] = "the merchant is in open payout batch " + *d.inBatch
		case d.bin == nil:
			reasons[i] = "the merchant has no payout account"
		case d.status == string(merchant.StatusSuspended):
			reasons[i] = "the merchant is suspended"
		case d.funds == nil:
			reasons[i] = fmt.Sprintf("bank %s has received nothing from the providers for market %s", r.Bank, d.market)
		case left < d.due:
			reasons[i] = fmt.Sprintf("bank %s has %s đồng left from the providers for market %s, less than the %s due",
				r.Bank, ledger.FormatAmount(Currency, max(left, 0)), d.market, ledger.FormatAmount(Currency, d.due))
		default:
			statuses[i] = string(LineReserving)
			left -= d.due
		}
		funds[d.market] = left
	}
	// A batch with no line to reserve is done as it is made, as
	// finishReserving would leave it: made creating, a creation cut before
	// that would leave it creating for ever, no line of it due anywhere for
	// a later batch to finish it by (finishCreating).
	status, completedAt := BatchCreating, (*time.Time)(nil)
	if !slices.Contains(statuses, string(LineReserving)) {
		status, completedAt = BatchCompleted, &now
	}
	err = pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
INSERT INTO payout_batches (id, idempotency_key, creator, bank, market, markets, cut_off, cut_off_seq, status, created_at, completed_at)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, $9, $10, $11)`,
			id, r.Key, r.Creator, r.Bank, r.Market, r.Markets, r.CutOff, cutSeq, string(status), now, completedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
INSERT INTO payout_lines (batch_id, merchant, market, amount, status, reason, bank_bin, account_number, holder_name)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`,
			id, merchants, markets, amounts, statuses, reasons, bins, accounts, holders)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write payout batch: %w", err)
	}
	return id, nil
}

// finishCreating finishes the batches still being created, by r's creator
// or 30 days ago and more, that hold merchants due money, and returns what
// is due once they are. Such a batch's creation may have stopped half-way,
// its creator gone and its key never sent again: its merchants would be
// skipped by every batch for ever, and nothing would pay or release them.
// Finished, its lines are open for the bank to pay, or skipped (or past
// their time) and due here. A merchant whose due that batch now holds in
// full is due nothing here, but stays listed skipped naming it: the bank,
// which may never have seen that batch's id, reads it there. Finishing a
// batch its creator is finishing too is safe (finishReserving).
func (s *Service) finishCreating(ctx context.Context, r PayoutBatchRequest, cutSeq int64, lines []dueLine) ([]dueLine, error) {
	var creating []string
	for _, d := range lines {
		if d.inCreating && !slices.Contains(creating, *d.inBatch) {
			creating = append(creating, *d.inBatch)
		}
	}
	if len(creating) == 0 {
		return lines, nil
	}
	for _, id := range creating {
		b, err := s.batch(ctx, id)
		if err != nil {
			return nil, err
		}
		if b.Creator != r.Creator && s.now().Sub(b.CreatedAt) < PayoutTimeout {
			// A bank reads only the batches it created, and once this one's
			// lines held what their merchants are due, its creator's next
			// batch would not list them, nor name it: they would stay
			// reserved in a batch no bank knows of until they lapsed. It is
			// left to its creator's next batch, its merchants skipped naming
			// it here, until its lines are past their time and finishing it
			// reserves nothing.
			continue
		}
		if _, err := s.finishReserving(ctx, b); err != nil && !errors.Is(err, ledger.ErrRefused) {
			// A reservation the database refuses leaves that batch creating,
			// its merchants skipped naming it, and its creator is told; this
			// batch is made all the same.
			return nil, err
		}
	}
	again, err := s.due(ctx, r, cutSeq)
	if err != nil {
		return nil, err
	}
	for _, d := range lines {
		if d.inCreating && !slices.ContainsFunc(again, func(a dueLine) bool { return a.merchant == d.merchant }) {
			// Skipped, it takes no funds: its place among the lines to
			// fund does not matter.
			again = append(again, d)
		}
	}
	return again, nil
}

// due reads what is due at cutSeq (dueAtCutOff).
func (s *Service) due(ctx context.Context, r PayoutBatchRequest, cutSeq int64) ([]dueLine, error) {
	rows, err := s.pool.Query(ctx, dueAtCutOff, r.Markets, cutSeq, r.Bank)
	if err != nil {
		return nil, fmt.Errorf("read what is due: %w", err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (dueLine, error) {
		var d dueLine
		err := row.Scan(&d.merchant, &d.market, &d.status, &d.bin, &d.account, &d.holder, &d.due, &d.inBatch, &d.inCreating, &d.funds)
		// A line is one posting, which carries at most ledger.MaxAmount:
		// the rest stays owed, and is due in the next batch at the same
		// cut-off, once this one's payout is paid.
		d.due = min(d.due, ledger.MaxAmount)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read what is due: %w", err)
	}
	return lines, nil
}

// finishReserving reserves the lines of a batch still being created and
// opens it. Each reservation is an idempotent ledger write, so running it
// again after a crash, or twice at once, reserves each line once.
func (s *Service) finishReserving(ctx context.Context, b PayoutBatch) (PayoutBatch, error) {
	if b.Status != BatchCreating {
		return b, nil
	}
	lines, err := s.lines(ctx, b.ID, "l.status = 'reserving'", nil)
	if err != nil {
		return PayoutBatch{}, err
	}
	var skipMerchants, skipReasons []string
	if s.now().Sub(b.CreatedAt) >= PayoutTimeout {
		// Nobody finished the batch within the time its reservations hold:
		// its lines are over, as those reservations would be, and what they
		// were due is in the next batch. A copy reserving one at this very
		// moment is refused by the projection, as for any skipped line.
		for _, l := range lines {
			skipMerchants = append(skipMerchants, l.Merchant)
			skipReasons = append(skipReasons, fmt.Sprintf("the batch was not finished within %s of its creation; what is due is in the next batch", PayoutTimeout))
		}
		lines = nil
	}
	reqs := make([]any, len(lines))
	for i, l := range lines {
		reqs[i] = ledger.EntryRequest{
			IdempotencyKey: keyPayout + b.ID + ":" + l.Merchant,
			Market:         l.Market,
			Kind:           KindPayout,
			Currency:       Currency,
			Pending:        true,
			PendingTimeout: PayoutTimeout,
			Postings: []ledger.PostingInput{
				{AccountCode: merchant.PayableAccount(l.Merchant), Direction: ledger.Debit, Amount: decimal.NewFromInt(l.Amount)},
				{AccountCode: merchant.SettlementAccount(b.Bank, l.Market), Direction: ledger.Credit, Amount: decimal.NewFromInt(l.Amount)},
			},
			Metadata: map[string]string{"payout_batch": b.ID, "merchant": l.Merchant, "bank": b.Bank},
		}
	}
	outs := s.ledger.Write(ctx, reqs)
	// The ledger answers each reservation with what became of it, even once
	// the caller has given up: what follows opens the batch those
	// reservations hold money for, and reads it to answer, and must not
	// fail for the caller's cancel, or the batch would stay creating with
	// its money reserved, and be answered, and recorded in the audit trail,
	// as a call that failed.
	ctx = context.WithoutCancel(ctx)
	var refused error
	for i, out := range outs {
		switch {
		case out.Err == nil:
			// The projector opened the line in the same transaction.
		case errors.Is(out.Err, ledger.ErrExceedsCredits):
			skipMerchants = append(skipMerchants, lines[i].Merchant)
			skipReasons = append(skipReasons, "the merchant's payable changed while the batch was made; what is due is in the next batch")
		case errors.Is(out.Err, ledger.ErrExceedsDebits), errors.Is(out.Err, ledger.ErrAccountNotFound):
			skipMerchants = append(skipMerchants, lines[i].Merchant)
			skipReasons = append(skipReasons, fmt.Sprintf("bank %s no longer has enough from the providers for market %s", b.Bank, lines[i].Market))
		case errors.Is(out.Err, ledger.ErrRefused):
			// A copy of this creation, running at once, skipped the line
			// first (see projectPayoutReserved); if not, the line is still
			// reserving below, the batch still creating, and the refusal
			// is the answer.
			refused = fmt.Errorf("reserve payout of %s in batch %s (retry with the same key to finish it): %w", lines[i].Merchant, b.ID, out.Err)
		default:
			return PayoutBatch{}, fmt.Errorf("reserve payout of %s in batch %s (retry with the same key to finish it): %w", lines[i].Merchant, b.ID, out.Err)
		}
	}
	err = pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
UPDATE payout_lines l SET status = 'skipped', reason = t.reason
  FROM unnest($2::text[], $3::text[]) AS t(merchant, reason)
 WHERE l.batch_id = $1 AND l.merchant = t.merchant AND l.status = 'reserving'`, b.ID, skipMerchants, skipReasons); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
UPDATE payout_batches b
   SET status = CASE WHEN EXISTS (SELECT 1 FROM payout_lines l WHERE l.batch_id = b.id AND l.status = 'open') THEN 'open' ELSE 'completed' END,
       completed_at = CASE WHEN EXISTS (SELECT 1 FROM payout_lines l WHERE l.batch_id = b.id AND l.status = 'open') THEN NULL ELSE $2::timestamptz END
 WHERE b.id = $1 AND b.status = 'creating'
   AND NOT EXISTS (SELECT 1 FROM payout_lines l WHERE l.batch_id = b.id AND l.status = 'reserving')`, b.ID, s.now())
		return err
	})
	if err != nil {
		return PayoutBatch{}, fmt.Errorf("open payout batch %s: %w", b.ID, err)
	}
	opened, err := s.batch(ctx, b.ID)
	if err == nil && opened.Status == BatchCreating && refused != nil {
		return PayoutBatch{}, refused
	}
	return opened, err
}

func (r PayoutResult) check(i int) error {
	field := fmt.Sprintf("results[%d]", i)
	if r.Merchant == "" {
		return invalid(field+".merchant", "is required")
	}
	if err := merchant.CheckMerchantCode(field+".merchant", r.Merchant); err != nil {
		return err
	}
	if r.Paid {
		if err := checkPrintable(field+".bank_ref", r.BankRef, 64); err != nil {
			return err
		}
		if r.Reason != "" {
			return invalid(field+".failure_reason", "is for failed lines; a paid line has a bank_ref")
		}
		return nil
	}
	if r.BankRef != "" {
		return invalid(field+".bank_ref", "is for paid lines; a failed line has a failure_reason")
	}
	if r.Reason == "" || !utf8.ValidString(r.Reason) || utf8.RuneCountInString(r.Reason) > 200 || strings.IndexFunc(r.Reason, unicode.IsControl) >= 0 {
		return invalid(field+".failure_reason", "must be 1-200 characters of UTF-8 without control characters saying why the transfer failed")
	}
	return nil
}

// CompletePayoutBatch records the bank's outcomes of some or all of a
// batch's open lines: a paid line posts its reservation as a payout (its
// bank reference recorded once per bank), a failed one voids it, leaving
// the money payable. An outcome sent again for a line that has it is
// answered with the line and writes nothing; another outcome for a resolved
// (or skipped, or expired) line is refused with ErrPayoutResolved. Lines
// are independent: when one fails to record, the others still are, and
// the error names it and those it recorded; sending the same request again
// finishes the rest.
// It returns the batch and the lines of the request, in its order.
func (s *Service) CompletePayoutBatch(ctx context.Context, batchID string, results []PayoutResult) (PayoutBatch, []PayoutLine, error) {
	batchID, ok := ledger.CanonicalUUID(batchID)
	if !ok {
		return PayoutBatch{}, nil, invalid("batch_id", "must be a payout batch id (a UUID), got %q", batchID)
	}
	if len(results) == 0 || len(results) > MaxPayoutResults {
		return PayoutBatch{}, nil, invalid("results", "must hold 1-%d outcomes, got %d", MaxPayoutResults, len(results))
	}
	seen, refs := map[string]int{}, map[string]int{}
	for i, r := range results {
		if err := r.check(i); err != nil {
			return PayoutBatch{}, nil, err
		}
		if j, dup := seen[r.Merchant]; dup {
			return PayoutBatch{}, nil, invalid(fmt.Sprintf("results[%d].merchant", i), "%s already has an outcome in results[%d]", r.Merchant, j)
		}
		seen[r.Merchant] = i
		if !r.Paid {
			continue
		}
		// A transfer pays one merchant, and which of the two this one paid
		// is not known: recorded for whichever line the ledger took first,
		// it would leave that merchant owed nothing, perhaps unpaid, and the
		// other's line open for a second payout.
		if j, dup := refs[r.BankRef]; dup {
			return PayoutBatch{}, nil, invalid(fmt.Sprintf("results[%d].bank_ref", i), "bank reference %s is already the outcome of %s in results[%d]", r.BankRef, results[j].Merchant, j)
		}
		refs[r.BankRef] = i
	}
	b, err := s.batch(ctx, batchID)
	if err != nil {
		return PayoutBatch{}, nil, err
	}
	if b, err = s.finishReserving(ctx, b); err != nil {
		return PayoutBatch{}, nil, err
	}
	merchants := make([]string, len(results))
	for i, r := range results {
		merchants[i] = r.Merchant
	}
	lines, err := s.lines(ctx, b.ID, "l.merchant = ANY($2)", []any{merchants})
	if err != nil {
		return PayoutBatch{}, nil, err
	}
	byMerchant := make(map[string]PayoutLine, len(lines))
	for _, l := range lines {
		byMerchant[l.Merchant] = l
	}
	var reqs []any
	var reqIdx []int
	for i, r := range results {
		l, ok := byMerchant[r.Merchant]
		field := fmt.Sprintf("results[%d]", i)
		if !ok {
			return PayoutBatch{}, nil, invalid(field+".merchant", "%s has no line in payout batch %s", r.Merchant, b.ID)
		}
		if err := sameOutcome(l, r, field); err != nil {
			return PayoutBatch{}, nil, err
		}
		if l.Status != LineOpen {
			continue // already recorded with this outcome
		}
		req := ledger.CloseRequest{
			IdempotencyKey: keyPayout + b.ID + ":" + l.Merchant + ":close",
			PendingID:      l.EntryID,
			Metadata:       map[string]string{"payout_batch": b.ID, "merchant": l.Merchant, "bank": b.Bank},
		}
		if r.Paid {
			req.Kind = KindPayout
			req.ExternalRef = payoutRef(b.Bank, r.BankRef)
			req.Metadata["bank_ref"] = r.BankRef
		} else {
			req.Kind, req.Void = KindPayoutFailed, true
			req.Metadata["reason"] = r.Reason
		}
		reqs, reqIdx = append(reqs, req), append(reqIdx, i)
	}
	outs := s.ledger.Write(ctx, reqs)
	// The ledger answers each outcome with what became of it, even once
	// the caller has given up: what follows only reads, to answer with the
	// lines those outcomes resolved, and must not fail for the caller's
	// cancel, or payouts posted would be answered, and recorded in the
	// audit trail, as a call that failed.
	ctx = context.WithoutCancel(ctx)
	if b, err = s.batch(ctx, b.ID); err != nil {
		return PayoutBatch{}, nil, err
	}
	if lines, err = s.lines(ctx, b.ID, "l.merchant = ANY($2)", []any{merchants}); err != nil {
		return PayoutBatch{}, nil, err
	}
	for _, l := range lines {
		byMerchant[l.Merchant] = l
	}
	var refused error
	var recorded []string // by this call, whatever else is refused
	for j, out := range outs {
		i := reqIdx[j]
		l := byMerchant[results[i].Merchant]
		if out.Err == nil && !out.Replayed {
			recorded = append(recorded, l.Merchant+" "+string(l.Status))
		}
		if out.Err == nil || (l.Status != LineOpen && sameOutcome(l, results[i], "") == nil) || refused != nil {
			// Recorded, here or by the same request at the same time; or
			// the first refusal is known already.
			continue
		}
		field := fmt.Sprintf("results[%d]", i)
		switch {
		case l.Status != LineOpen:
			refused = sameOutcome(l, results[i], field)
		case errors.Is(out.Err, ledger.ErrDuplicateExternalRef):
			refused = fail(ledger.ErrDuplicateExternalRef, field+".bank_ref", "bank %s reference %s is already recorded for another payout", b.Bank, results[i].BankRef)
		case errors.Is(out.Err, ledger.ErrPendingExpired):
			refused = fail(ErrPayoutResolved, field+".merchant", "the reservation of %s lapsed after %s; the money is payable again", results[i].Merchant, PayoutTimeout)
		default:
			refused = fmt.Errorf("record the outcome of %s: %w", results[i].Merchant, out.Err)
		}
	}
	if refused != nil && len(recorded) > 0 {
		// A refused outcome leaves the others recorded, money paid out
		// among them: the answer, which is also the call's event in the
		// audit trail, must say so, not only that the call was refused.
		refused = fmt.Errorf("%w; recorded by this call: %s", refused, strings.Join(recorded, ", "))
	}
	if refused != nil {
		return PayoutBatch{}, nil, refused
	}
	out := make([]PayoutLine, len(results))
	for i, r := range results {
		out[i] = byMerchant[r.Merchant]
	}
	return b, out, nil
}

// payoutRef is a paid payout's external reference in the ledger: a bank's
// transfer is recorded once.
func payoutRef(bank, bankRef string) string { return "bank:" + bank + ":payout:" + bankRef }

// sameOutcome checks an outcome against a resolved line: the same one is a
// retry; anything else cannot be recorded.
func sameOutcome(l PayoutLine, r PayoutResult, field string) error {
	switch l.Status {
	case LineOpen:
		return nil
	case LinePaid:
		if r.Paid && r.BankRef == l.BankRef {
			return nil
		}
		return fail(ErrPayoutResolved, field+".status", "the line of %s is already paid, with bank reference %s", l.Merchant, l.BankRef)
	case LineFailed:
		if !r.Paid {
			return nil
		}
		return fail(ErrPayoutResolved, field+".status", "the line of %s already failed (%s); its money is due again in the next batch", l.Merchant, l.Reason)
	case LineSkipped:
		return fail(ErrPayoutResolved, field+".merchant", "the line of %s was skipped (%s): there is nothing to pay", l.Merchant, l.Reason)
	case LineExpired:
		return fail(ErrPayoutResolved, field+".merchant", "the reservation of %s lapsed after %s; the money is payable again", l.Merchant, PayoutTimeout)
	}
	return fail(ErrPayoutResolved, field+".merchant", "the line of %s is still being reserved; retry", l.Merchant)
}

// PayoutBatch returns a batch and a page of its lines, by market then
// merchant.
func (s *Service) PayoutBatch(ctx context.Context, id string, pageSize int, pageToken string) (PayoutBatch, []PayoutLine, string, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return PayoutBatch{}, nil, "", invalid("id", "must be a payout batch id (a UUID), got %q", id)
	}
	size, err := ledger.PageSize(pageSize)
	if err != nil {
		return PayoutBatch{}, nil, "", err
	}
	after, err := decodeLineToken(id, pageToken)
	if err != nil {
		return PayoutBatch{}, nil, "", err
	}
	b, err := s.batch(ctx, id)
	if err != nil {
		return PayoutBatch{}, nil, "", err
	}
	lines, err := s.lines(ctx, id, "(l.market, l.merchant) > ($2, $3) ORDER BY l.market, l.merchant LIMIT $4",
		[]any{after[0], after[1], size + 1})
	if err != nil {
		return PayoutBatch{}, nil, "", err
	}
	next := ""
	if len(lines) > size {
		lines = lines[:size]
		last := lines[size-1]
		next = ledger.PageToken("payout lines", id, last.Market+"/"+last.Merchant)
	}
	return b, lines, next, nil
}

// decodeLineToken reads a token of batch id's lines: the last line listed.
// A token of another batch is refused: its place in that batch's lines
// would start these after a line of that one, leaving out, unpaid, what
// comes before it here.
func decodeLineToken(id, token string) ([2]string, error) {
	place, err := ledger.PageAfter("payout lines", id, token, "id, of the batch it came from,")
	if err != nil || place == "" {
		return [2]string{}, err
	}
	market, code, ok := strings.Cut(place, "/")
	if !ok || !merchant.ValidMarketCode(market) || !merchant.ValidMerchantCode(code) {
		return [2]string{}, invalid("page_token", "is not a token of this list")
	}
	return [2]string{market, code}, nil
}

// PayoutBatchScope returns who may see and complete a payout batch.
func (s *Service) PayoutBatchScope(ctx context.Context, id string) (BatchScope, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return BatchScope{}, invalid("id", "must be a payout batch id (a UUID), got %q", id)
	}
	var sc BatchScope
	err := s.pool.QueryRow(ctx, `SELECT creator, markets FROM payout_batches WHERE id = $1`, id).Scan(&sc.Creator, &sc.Markets)
	if errors.Is(err, pgx.ErrNoRows) {
		return BatchScope{}, fail(ErrBatchNotFound, "id", "no payout batch %s", id)
	}
	return sc, err
}

func (s *Service) batchByKey(ctx context.Context, key string) (PayoutBatch, bool, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id::text FROM payout_batches WHERE idempotency_key = $1`, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return PayoutBatch{}, false, nil
	}
	if err != nil {
		return PayoutBatch{}, false, fmt.Errorf("read payout batch: %w", err)
	}
	b, err := s.batch(ctx, id)
	return b, err == nil, err
}

// batch reads a batch with its sums by line status.
func (s *Service) batch(ctx context.Context, id string) (PayoutBatch, error) {
	var b PayoutBatch
	var market *string
	var completed *time.Time
	var status string
	err := s.pool.QueryRow(ctx, `
SELECT id::text, creator, bank, market, markets, cut_off, cut_off_seq, status, created_at, completed_at
  FROM payout_batches WHERE id = $1`, id).Scan(
		&b.ID, &b.Creator, &b.Bank, &market, &b.Markets, &b.CutOff, &b.CutOffSeq, &status, &b.CreatedAt, &completed)
	if errors.Is(err, pgx.ErrNoRows) {
		return PayoutBatch{}, fail(ErrBatchNotFound, "id", "no payout batch %s", id)
	}
	if err != nil {
		return PayoutBatch{}, fmt.Errorf("read payout batch %s: %w", id, err)
	}
	b.Status = BatchStatus(status)
	b.CutOff, b.CreatedAt = b.CutOff.UTC(), b.CreatedAt.UTC()
	if market != nil {
		b.Market = *market
	}
	if completed != nil {
		b.CompletedAt = completed.UTC()
	}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*), sum(amount) FROM payout_lines WHERE batch_id = $1 GROUP BY status`, id)
	if err != nil {
		return PayoutBatch{}, fmt.Errorf("sum payout batch %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		var sum int64
		if err := rows.Scan(&st, &n, &sum); err != nil {
			return PayoutBatch{}, err
		}
		if LineStatus(st) == LineSkipped {
			b.Skipped, b.SkippedAmount = n, sum
			continue
		}
		b.Lines += n
		b.Total += sum
		switch LineStatus(st) {
		case LineReserving:
			b.Reserving = n
		case LineOpen:
			b.Open = n
		case LinePaid:
			b.Paid, b.PaidAmount = n, sum
		case LineFailed:
			b.Failed, b.FailedAmount = n, sum
		case LineExpired:
			b.Expired = n
		}
	}
	return b, rows.Err()
}

// lines reads a batch's lines that match where ($1 is the batch id, args
// follow from $2).
func (s *Service) lines(ctx context.Context, batchID, where string, args []any) ([]PayoutLine, error) {
	rows, err := s.pool.Query(ctx, `
SELECT l.merchant, l.market, l.amount, l.status, l.bank_bin, l.account_number, l.holder_name, l.reason,
       COALESCE(l.bank_ref, ''), COALESCE(l.entry_id::text, ''), COALESCE(l.close_entry_id::text, ''), l.resolved_at
  FROM payout_lines l WHERE l.batch_id = $1 AND `+where, append([]any{batchID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read payout lines of %s: %w", batchID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (PayoutLine, error) {
		var l PayoutLine
		var status string
		var bin, account, holder *string
		var resolved *time.Time
		err := row.Scan(&l.Merchant, &l.Market, &l.Amount, &status, &bin, &account, &holder, &l.Reason,
			&l.BankRef, &l.EntryID, &l.CloseEntryID, &resolved)
		l.Status = LineStatus(status)
		if bin != nil && account != nil && holder != nil {
			l.Account = &merchant.BankAccount{BankBIN: *bin, AccountNumber: *account, HolderName: *holder}
		}
		if resolved != nil {
			l.ResolvedAt = resolved.UTC()
		}
		return l, err
	})
}

// Statements of the payout projection: a line moves with the entry that
// moves its money, in the same transaction.
const (
	// A line that a copy of the batch's creation skipped meanwhile, its own
	// reservation refused (the payable had moved), stays skipped: its
	// reservation is refused too, by the CHECK that a skipped line has no
	// entry, rather than recorded for a line nobody will pay.
	projectPayoutReserved = `
UPDATE payout_lines l SET status = CASE l.status WHEN 'reserving' THEN 'open' ELSE l.status END, entry_id = t.entry_id::uuid
  FROM unnest($1::text[], $2::text[], $3::text[]) AS t(batch_id, merchant, entry_id)
 WHERE l.batch_id = t.batch_id::uuid AND l.merchant = t.merchant AND l.status IN ('reserving', 'skipped')`

	// A batch is completed with its last line to resolve, one still
	// creating too: its creation stopped once its lines were reserved,
	// and nobody finished it before they lapsed.
	projectPayoutResolved = `
WITH resolved AS (
    UPDATE payout_lines l
       SET status = t.status, close_entry_id = t.close_id::uuid, bank_ref = NULLIF(t.bank_ref, ''), reason = t.reason, resolved_at = t.at
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
           AS t(pending_id, status, close_id, bank_ref, reason, at)
     WHERE l.entry_id = t.pending_id::uuid AND l.status = 'open'
 RETURNING l.batch_id, t.at)
UPDATE payout_batches b SET status = 'completed', completed_at = r.at
  FROM (SELECT batch_id, max(at) AS at FROM resolved GROUP BY batch_id ORDER BY batch_id) r
 WHERE b.id = r.batch_id AND b.status IN ('creating', 'open')
   AND NOT EXISTS (SELECT 1 FROM payout_lines o
                    WHERE o.batch_id = b.id AND o.status IN ('reserving', 'open')
                      AND (o.entry_id IS NULL OR o.entry_id <> ALL ($1::text[]::uuid[])))`
)

// projectPayouts queues the payout projection of a round's entries.
func projectPayouts(entries []*ledger.Entry, b *pgx.Batch) {
	var batchIDs, merchants, entryIDs []string
	var pendingIDs, statuses, closeIDs, refs, reasons []string
	var ats []time.Time
	for _, e := range entries {
		switch {
		case e.Kind == KindPayout && e.Phase == ledger.PhasePending:
			batchIDs, merchants, entryIDs = append(batchIDs, e.Metadata["payout_batch"]), append(merchants, e.Metadata["merchant"]), append(entryIDs, e.ID)
			continue
		case e.Kind == KindPayout && e.Phase == ledger.PhasePostPending:
			statuses, refs, reasons = append(statuses, string(LinePaid)), append(refs, e.Metadata["bank_ref"]), append(reasons, "")
		case e.Kind == KindPayoutFailed && e.Phase == ledger.PhaseVoidPending:
			statuses, refs, reasons = append(statuses, string(LineFailed)), append(refs, ""), append(reasons, e.Metadata["reason"])
		case e.Kind == ledger.KindExpire:
			// Any expired pending entry: the update finds the payout ones.
			statuses, refs = append(statuses, string(LineExpired)), append(refs, "")
			reasons = append(reasons, fmt.Sprintf("not completed within %s: the reservation lapsed and the money is payable again", PayoutTimeout))
		default:
			continue
		}
		pendingIDs, closeIDs, ats = append(pendingIDs, e.PendingID), append(closeIDs, e.ID), append(ats, e.RecordedAt)
	}
	if len(entryIDs) > 0 {
		b.Queue(projectPayoutReserved, batchIDs, merchants, entryIDs)
	}
	if len(pendingIDs) > 0 {
		b.Queue(projectPayoutResolved, pendingIDs, statuses, closeIDs, refs, reasons, ats)
	}
}

// reservedKinds are written by this package only.
var reservedKinds = []string{KindProviderSettlement, KindPayout, KindPayoutFailed, KindSuspenseReclassification}

// Reserved reports whether kind is written only by this package, so that
// provider settlements and payouts stay the projections of real ones.
func Reserved(kind string) bool { return slices.Contains(reservedKinds, kind) }
