package api_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// The service's connections to PostgreSQL are cut again and again while
// stalls and banks write (every backend of its database terminated, every
// 40 milliseconds: a restart, a failover, a network cut). A write is then
// either answered or refused with Unavailable, never with anything a client
// could mistake for a final answer; sent again with the same key until it
// is answered, it is recorded exactly once. Afterwards every payment is in
// the ledger once, the merchants' balances are what the answers add up to,
// and the invariants hold.
func TestWritesSurviveLostConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	merchants := []string{"TN-TEST-0001", "TN-TEST-0002"}

	var unavailable atomic.Int64
	stopCutting := cutConnections(e, 40*time.Millisecond)

	until := func(what string, send func() (*pb.Payment, error)) (p *pb.Payment, err error) {
		n, err := resend(what, func() (err error) {
			p, err = send()
			return err
		})
		unavailable.Add(int64(n))
		return p, err
	}

	const writers, each = 8, 24
	var (
		mu      sync.Mutex
		ids     = map[string]string{} // payment id by idempotency key
		payable = map[string]int64{}  // what the answers say each merchant is owed
		stall   int                   // payments recorded by a stall, then confirmed
		single  int                   // RecordPayment and ConfirmPayment calls answered
	)
	answered := func(key, amount string, p *pb.Payment, calls int) error {
		if p.Status != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED || p.Amount != amount {
			return fmt.Errorf("%s answered %v", key, p)
		}
		mu.Lock()
		defer mu.Unlock()
		ids[key] = p.Id
		payable[p.Merchant] += num(p.ConfirmedAmount) - num(p.Fee)
		single += calls
		return nil
	}
	bank := func(key, m, amount string) *pb.RecordPaymentRequest {
		return &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-" + key}
	}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", w, i)
				m := merchants[(w+i)%2]
				amount := strconv.Itoa(10000 + 1000*i)
				var err error
				switch {
				case i%3 == 0: // a stall's payment, which the bank then confirms
					var p *pb.Payment
					p, err = until(key, func() (*pb.Payment, error) {
						r, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
							Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
						return r.GetPayment(), err
					})
					if err == nil {
						id := p.Id
						p, err = until(key+" confirm", func() (*pb.Payment, error) {
							r, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "confirm-" + key, PaymentId: id, ProviderRef: "FT-" + key})
							return r.GetPayment(), err
						})
					}
					if err == nil {
						mu.Lock()
						stall++
						mu.Unlock()
						err = answered(key, amount, p, 2)
					}
				case i%3 == 1 && w%2 == 0: // a bank's batch: items answered Unavailable are sent again
					err = recordAll(ctx, e.payments, []*pb.RecordPaymentRequest{
						bank(key+"-a", m, amount), bank(key+"-b", m, amount), bank(key+"-c", m, amount), bank(key+"-d", m, amount),
					}, &unavailable, func(r *pb.RecordPaymentRequest, p *pb.Payment) error { return answered(r.IdempotencyKey, amount, p, 0) })
				default: // the bank's own notification
					var p *pb.Payment
					p, err = until(key, func() (*pb.Payment, error) {
						r, err := e.payments.RecordPayment(ctx, bank(key, m, amount))
						return r.GetPayment(), err
					})
					if err == nil {
						err = answered(key, amount, p, 1)
					}
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	cuts := stopCutting()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("%d connections cut; %d writes answered Unavailable and sent again", cuts, unavailable.Load())
	if unavailable.Load() == 0 {
		t.Fatalf("no write met a cut connection (%d cuts): the test tested nothing", cuts)
	}

	// Each key recorded one payment, confirmed once; nothing else was
	// recorded.
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	var payments, confirmed, entries int
	if err := e.db.Pool.QueryRow(ctx, `
SELECT (SELECT count(*) FROM payments), (SELECT count(*) FROM payments WHERE status = 'confirmed'),
       (SELECT count(*) FROM ledger_entries WHERE market = $1)`, testMarket).Scan(&payments, &confirmed, &entries); err != nil {
		t.Fatal(err)
	}
	if len(distinct) != len(ids) || payments != len(ids) || confirmed != payments || entries != len(ids)+stall {
		t.Fatalf("%d keys answered with %d payments; the table holds %d (%d confirmed) and the market's journal %d entries, want %d",
			len(ids), len(distinct), payments, confirmed, entries, len(ids)+stall)
	}
	e.checkOwed(ctx, t, merchants, payable)
	e.checkInvariants(t)

	// The audit trail kept every answered write: its batches are tried
	// again while the database cannot be reached.
	var audited int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE code = 'OK' AND method ~ '/(Record|Confirm)Payment$'`).Scan(&audited); err != nil {
			t.Fatal(err)
		}
		if audited >= single || time.Now().After(deadline) {
			break
		}
	}
	if audited != single {
		t.Errorf("the audit trail holds %d answered RecordPayment and ConfirmPayment calls, want %d", audited, single)
	}
}

// recordAll sends a bulk RecordPayments until each of its items is
// answered, sending again only the items answered Unavailable (the whole
// call when the call itself was), and hands each item's payment to done.
func recordAll(ctx context.Context, c pb.PaymentServiceClient, items []*pb.RecordPaymentRequest, unavailable *atomic.Int64,
	done func(*pb.RecordPaymentRequest, *pb.Payment) error) error {
	for attempt := 1; len(items) > 0; attempt++ {
		if attempt > 200 {
			return fmt.Errorf("%d items of a batch still unanswered", len(items))
		}
		resp, err := c.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: items})
		if status.Code(err) == codes.Unavailable {
			unavailable.Add(1)
			continue
		}
		if err != nil {
			return fmt.Errorf("batch %s: %v", items[0].IdempotencyKey, err)
		}
		var again []*pb.RecordPaymentRequest
		for i, r := range resp.Results {
			switch {
			case r.Error == nil:
				if err := done(items[i], r.Payment); err != nil {
					return err
				}
			case codes.Code(r.Error.Code) == codes.Unavailable:
				unavailable.Add(1)
				again = append(again, items[i])
			default:
				return fmt.Errorf("%s in a batch: %v", items[i].IdempotencyKey, r.Error)
			}
		}
		items = again
		time.Sleep(time.Millisecond)
	}
	return nil
}

// cutConnections terminates every backend of e's database every interval,
// until the function it returns is called; that returns how many it cut,
// and leaves the pool with fresh connections for the test's own checks
// (it still holds some that the last cut closed).
func cutConnections(e *env, every time.Duration) func() int64 {
	var cuts atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			var n int64
			// Its own connection may have been cut too; the next try gets another.
			if e.db.Pool.QueryRow(context.Background(), `
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n) == nil {
				cuts.Add(n)
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		e.db.Pool.Reset()
		return cuts.Load()
	}
}

// cutOnce makes the first statement of kind op ("INSERT", "UPDATE") on table
// that runs after it terminate its own backend, inside its transaction:
// the connection is lost at a known point, once (a sequence counts, which a
// rollback does not undo).
func cutOnce(t *testing.T, e *env, table, op string) {
	t.Helper()
	name := "cut_" + table + "_" + strings.ToLower(op)
	for _, sql := range []string{
		`CREATE SEQUENCE ` + name,
		`CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('` + name + `') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(5); -- the signal ends the backend here
    END IF;
    RETURN NULL;
END $$`,
		`CREATE TRIGGER ` + name + ` AFTER ` + op + ` ON ` + table + ` FOR EACH STATEMENT EXECUTE FUNCTION ` + name + `()`,
	} {
		if _, err := e.db.Pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
}

// resend sends a request until it is answered, and returns how often it
// was answered Unavailable first. Any other error, or a 200th Unavailable,
// ends it.
func resend(what string, send func() error) (int, error) {
	for unavailable := 0; ; unavailable++ {
		err := send()
		if err == nil {
			return unavailable, nil
		}
		if status.Code(err) != codes.Unavailable || unavailable == 200 {
			return unavailable, fmt.Errorf("%s, after %d Unavailable answers: %v", what, unavailable, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// untilAnswered is resend, failing t on an error.
func untilAnswered(t *testing.T, what string, send func() error) int {
	t.Helper()
	n, err := resend(what, send)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A payout batch whose making, and then whose completion, lose their
// connection at several points of their work: each is answered
// Unavailable, and sent again as it was, makes one batch and pays each
// merchant once.
func TestPayoutsSurviveLostConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owed := map[string]int64{}
	for i := 1; i <= 6; i++ {
		owed[fmt.Sprintf("PO-F-%02d", i)] = int64(i) * 10000
	}
	f := newPayoutFixture(t, "PO-F", owed, 210000)
	e := f.e

	// Making a batch is cut writing its lines, then again opening it, after
	// its payouts are in the ledger.
	cutOnce(t, e, "payout_lines", "INSERT")
	cutOnce(t, e, "payout_batches", "UPDATE")
	create := &pb.CreatePayoutBatchRequest{IdempotencyKey: "cut-1", Bank: "vcb", Market: f.market, CutOff: timestamppb.Now(), PageSize: 100}
	var batch *pb.CreatePayoutBatchResponse
	if n := untilAnswered(t, "make the batch", func() (err error) {
		batch, err = e.settle.CreatePayoutBatch(ctx, create)
		return err
	}); n != 2 || len(batch.Lines) != len(owed) {
		t.Fatalf("making the batch: %d Unavailable answers (want 2), then %d lines (want %d)", n, len(batch.Lines), len(owed))
	}

	// Completing it is cut posting the payouts, and marking its lines.
	cutOnce(t, e, "ledger_entries", "INSERT")
	cutOnce(t, e, "payout_lines", "UPDATE")
	var results []*pb.PayoutResult
	for _, l := range batch.Lines {
		results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: linePaid, BankRef: "OUT-" + l.Merchant})
	}
	complete := &pb.CompletePayoutBatchRequest{BatchId: batch.Batch.Id, Results: results}
	// The ledger's committer may take a cut round's writes again one by one
	// before answering, so the caller need not see every cut.
	untilAnswered(t, "complete the batch", func() error {
		_, err := e.settle.CompletePayoutBatch(ctx, complete)
		return err
	})
	for _, cut := range []string{"cut_payout_lines_insert", "cut_payout_batches_update", "cut_ledger_entries_insert", "cut_payout_lines_update"} {
		var fired bool
		if err := e.db.Pool.QueryRow(ctx, `SELECT is_called FROM `+cut).Scan(&fired); err != nil || !fired {
			t.Errorf("%s never cut a connection (%v)", cut, err)
		}
	}

	var batches, paid int
	if err := e.db.Pool.QueryRow(ctx, `
SELECT (SELECT count(*) FROM payout_batches),
       (SELECT count(*) FROM ledger_entries WHERE kind = 'payout' AND phase = 'post_pending')`).Scan(&batches, &paid); err != nil {
		t.Fatal(err)
	}
	if batches != 1 || paid != len(owed) {
		t.Errorf("%d batches and %d payouts posted; want 1 and %d", batches, paid, len(owed))
	}
	for code := range owed {
		if bal := f.payable(t, code); bal.DebitsPending != "0" || bal.Posted != "0" {
			t.Errorf("%s after its payout: %v, want nothing owed", code, bal)
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// stalledBatch makes a batch whose creation is cut where ledgerd would
// die: while it reserves its one line ("reserving": the line is still to
// reserve), or as it opens the batch ("opening": the line is reserved).
// The creator never sends its key again. It returns the request and the
// batch's id.
func stalledBatch(t *testing.T, f *payoutFixture, cut string) (*pb.CreatePayoutBatchRequest, string) {
	t.Helper()
	ctx := context.Background()
	switch cut {
	case "reserving":
		cutOnce(t, f.e, "ledger_entries", "INSERT")
	case "opening":
		cutOnce(t, f.e, "payout_batches", "UPDATE")
	}
	req := &pb.CreatePayoutBatchRequest{IdempotencyKey: "lost", Bank: "vcb", Market: f.market, CutOff: timestamppb.New(f.e.now()), PageSize: 100}
	if _, err := f.e.settle.CreatePayoutBatch(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("the creation cut while %s: %v; want Unavailable", cut, err)
	}
	var id string
	if err := f.e.db.Pool.QueryRow(ctx, `SELECT id::text FROM payout_batches`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return req, id
}

// A batch whose creation was cut before it reserved its line, and whose
// creator then sends a new key (it lost its own, or retries with a new one
// after an error), is finished by that next batch, which lists the
// merchant skipped naming it: the bank reads it by that id as an open
// batch and pays its line. The old key, sent after all, is answered with
// that batch.
func TestPayoutBatchLeftCreatingIsFinishedByTheNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-H-01"
	f := newPayoutFixture(t, "PO-H", map[string]int64{m: 40000}, 40000)
	e := f.e
	req, lost := stalledBatch(t, f, "reserving")

	next := f.create(t, "next", e.now())
	if l := lineOf(next.Lines, m); l == nil || l.Status != lineSkipped || !strings.Contains(l.Reason, lost) {
		t.Fatalf("the next batch's line: %v; want it skipped, naming batch %s", l, lost)
	}
	batch, lines := e.allLines(t, lost)
	if batch.Status != batchOpen || len(lines) != 1 || lines[0].Status != lineOpen || lines[0].Amount != "40000" {
		t.Fatalf("the batch the skip names is %v with lines %v; want it open, its line open for 40000 đồng", batch.Status, lines)
	}
	if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: lost, Results: []*pb.PayoutResult{
		{Merchant: m, Status: linePaid, BankRef: "OUT-1"}}}); err != nil {
		t.Fatal(err)
	}
	if bal := f.payable(t, m); bal.DebitsPending != "0" || bal.Posted != "0" {
		t.Errorf("%s after its payout: %v, want nothing owed", m, bal)
	}
	again, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil || again.Batch.Id != lost || !again.Replayed || again.Batch.Status != batchComplete {
		t.Errorf("the lost key sent again: %v, %v; want batch %s completed, replayed", again, err, lost)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// A batch left creating whose merchant was suspended since, or lost its
// payout account, is finished by the next batch all the same, its line
// reserved: that batch names it, not only the suspension or the account,
// so that the bank, which never saw the lost batch's id, reads it and
// pays or fails the line. Naming only the suspension left the money
// reserved in a batch no bank knew of until it lapsed.
func TestPayoutBatchLeftCreatingIsNamedWhateverElseSkipsItsMerchant(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(e *env, m string) error{
		"suspended": func(e *env, m string) error {
			_, err := e.merchants.SuspendMerchant(context.Background(), &pb.SuspendMerchantRequest{Code: m, Reason: "kiểm tra"})
			return err
		},
		"without a payout account": func(e *env, m string) error {
			_, err := e.merchants.UpdateMerchant(context.Background(), &pb.UpdateMerchantRequest{
				Merchant: &pb.Merchant{Code: m}, UpdateMask: mask("payout_account")})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const m = "PO-N-01"
			f := newPayoutFixture(t, "PO-N", map[string]int64{m: 40000}, 40000)
			e := f.e
			_, lost := stalledBatch(t, f, "reserving")
			if err := change(e, m); err != nil {
				t.Fatal(err)
			}
			next := f.create(t, "next", e.now())
			batch, lines := e.allLines(t, lost)
			if batch.Status != batchOpen || len(lines) != 1 || lines[0].Status != lineOpen {
				t.Fatalf("batch %s after the next one: %v with lines %v; want it open, its line open", lost, batch.Status, lines)
			}
			if l := lineOf(next.Lines, m); l == nil || l.Status != lineSkipped || !strings.Contains(l.Reason, lost) {
				t.Errorf("the next batch's line: %v; want it skipped, naming batch %s, whose open line holds the merchant's 40000 đồng", l, lost)
			}
			e.checkInvariants(t)
			e.checkRollups(t)
		})
	}
}

// A batch left creating by one bank credential is its creator's: another
// credential's batch, of another scope (here one bound to the market,
// beside the provider's unbound one), lists the merchant skipped naming
// it but leaves it creating: that credential is refused the batch, and
// once finished there its merchant was due nothing in the creator's next
// batch, which so never named it, and the line stayed reserved in a batch
// no bank knew of until it lapsed. The creator's own next batch finishes
// it, names it, and reads it open; if the creator never comes back, the
// other's batch 30 days on finishes it, its line never reserved, and pays
// the merchant itself.
func TestPayoutBatchLeftCreatingIsItsCreators(t *testing.T) {
	t.Parallel()
	for _, creatorReturns := range []bool{true, false} {
		t.Run(fmt.Sprint("creator returns ", creatorReturns), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			const m = "PO-S-01"
			f := newPayoutFixture(t, "PO-S", map[string]int64{m: 40000}, 40000)
			e := f.e
			_, unboundSecret := e.issue(t, access.IssueRequest{Name: "NAPAS", Role: access.RoleBank, Provider: "napas", Bank: "vcb"})
			_, boundSecret := e.issue(t, access.IssueRequest{Name: "NAPAS for PO-S", Role: access.RoleBank, Provider: "napas", Bank: "vcb", Markets: []string{f.market}})
			creator := pb.NewSettlementServiceClient(e.dial(t, unboundSecret))
			other := pb.NewSettlementServiceClient(e.dial(t, boundSecret))
			batchReq := func(key string) *pb.CreatePayoutBatchRequest {
				return &pb.CreatePayoutBatchRequest{IdempotencyKey: key, Bank: "vcb", Market: f.market, CutOff: timestamppb.New(e.now()), PageSize: 100}
			}

			cutOnce(t, e, "ledger_entries", "INSERT")
			if _, err := creator.CreatePayoutBatch(ctx, batchReq("lost")); status.Code(err) != codes.Unavailable {
				t.Fatalf("the creation cut while reserving: %v; want Unavailable", err)
			}
			var lost string
			if err := e.db.Pool.QueryRow(ctx, `SELECT id::text FROM payout_batches`).Scan(&lost); err != nil {
				t.Fatal(err)
			}

			next, err := other.CreatePayoutBatch(ctx, batchReq("other-next"))
			if err != nil {
				t.Fatal(err)
			}
			if l := lineOf(next.Lines, m); l == nil || l.Status != lineSkipped || !strings.Contains(l.Reason, lost) {
				t.Fatalf("the other credential's batch: line %v; want it skipped, naming batch %s", l, lost)
			}
			if _, err := other.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: lost}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("the other credential reading batch %s: %v; want PermissionDenied", lost, err)
			}

			if !creatorReturns {
				e.advance(31 * 24 * time.Hour)
				if _, err := e.ledger.ExpireDue(ctx); err != nil {
					t.Fatal(err)
				}
				later, err := other.CreatePayoutBatch(ctx, batchReq("other-later"))
				if err != nil {
					t.Fatal(err)
				}
				if l := lineOf(later.Lines, m); l == nil || l.Status != lineOpen || l.Amount != "40000" {
					t.Fatalf("the other credential's batch 31 days later: line %v; want it open for 40000 đồng", l)
				}
				if batch, lines := e.allLines(t, lost); batch.Status != batchComplete || len(lines) != 1 || lines[0].Status != lineSkipped {
					t.Errorf("batch %s 31 days later: %v with lines %v; want it completed, its line skipped", lost, batch.Status, lines)
				}
				e.checkInvariants(t)
				e.checkRollups(t)
				return
			}

			own, err := creator.CreatePayoutBatch(ctx, batchReq("creator-next"))
			if err != nil {
				t.Fatal(err)
			}
			if l := lineOf(own.Lines, m); l == nil || l.Status != lineSkipped || !strings.Contains(l.Reason, lost) {
				t.Fatalf("the creator's next batch: line %v; want it skipped, naming batch %s", l, lost)
			}
			read, err := creator.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: lost})
			if err != nil || read.Batch.Status != batchOpen || len(read.Lines) != 1 || read.Lines[0].Status != lineOpen {
				t.Fatalf("the creator reading batch %s: %v, %v; want it open, its line open", lost, read, err)
			}
			if _, err := creator.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: lost, Results: []*pb.PayoutResult{
				{Merchant: m, Status: linePaid, BankRef: "OUT-1"}}}); err != nil {
				t.Fatal(err)
			}
			if bal := f.payable(t, m); bal.DebitsPending != "0" || bal.Posted != "0" {
				t.Errorf("%s after its payout: %v, want nothing owed", m, bal)
			}
			e.checkInvariants(t)
			e.checkRollups(t)
		})
	}
}

// A batch left creating, finished at once by its own key sent again and by
// two batches under new keys, reserves its line once: the old key is
// answered with it open, and each new batch lists the merchant skipped
// naming it, or not at all once the line holds all it is due.
func TestPayoutBatchLeftCreatingIsFinishedOnceAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-K-01"
	f := newPayoutFixture(t, "PO-K", map[string]int64{m: 40000}, 40000)
	e := f.e
	req, lost := stalledBatch(t, f, "reserving")

	reqs := []*pb.CreatePayoutBatchRequest{req}
	for _, key := range []string{"next-1", "next-2"} {
		reqs = append(reqs, &pb.CreatePayoutBatchRequest{IdempotencyKey: key, Bank: "vcb", Market: f.market, CutOff: timestamppb.New(e.now()), PageSize: 100})
	}
	answers, errs := make([]*pb.CreatePayoutBatchResponse, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { answers[i], errs[i] = e.settle.CreatePayoutBatch(ctx, r) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", reqs[i].IdempotencyKey, err)
		}
	}
	if a := answers[0]; a.Batch.Id != lost || !a.Replayed || a.Batch.Status != batchOpen {
		t.Errorf("the lost key sent again: batch %s %v, replayed %v; want %s open, replayed", a.Batch.Id, a.Batch.Status, a.Replayed, lost)
	}
	for i, a := range answers[1:] {
		if l := lineOf(a.Lines, m); l != nil && (l.Status != lineSkipped || !strings.Contains(l.Reason, lost)) {
			t.Errorf("%s: line %v; want none, or skipped naming batch %s", reqs[i+1].IdempotencyKey, l, lost)
		}
	}
	_, lines := e.allLines(t, lost)
	if len(lines) != 1 || lines[0].Status != lineOpen || lines[0].Amount != "40000" {
		t.Errorf("the batch's lines: %v; want its line open for 40000 đồng", lines)
	}
	if bal := f.payable(t, m); bal.DebitsPending != "40000" {
		t.Errorf("%s with its line open: %v; want 40000 đồng reserved once", m, bal)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// A batch whose creation was cut and that nobody finished within the 30
// days a reservation holds is over, as its reservations are: a line never
// reserved is skipped, one reserved has lapsed, the batch is completed,
// and the next batch pays the merchant what it is owed.
func TestPayoutBatchLeftCreatingLapsesAfter30Days(t *testing.T) {
	t.Parallel()
	for cut, want := range map[string]pb.PayoutLineStatus{"reserving": lineSkipped, "opening": lineExpired} {
		t.Run(cut, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			const m = "PO-E-01"
			f := newPayoutFixture(t, "PO-E", map[string]int64{m: 40000}, 40000)
			e := f.e
			_, lost := stalledBatch(t, f, cut)

			e.advance(31 * 24 * time.Hour)
			if _, err := e.ledger.ExpireDue(ctx); err != nil {
				t.Fatal(err)
			}
			later := f.create(t, "later", e.now())
			if l := lineOf(later.Lines, m); l == nil || l.Status != lineOpen || l.Amount != "40000" {
				t.Fatalf("the batch 31 days later: line %v; want it open for 40000 đồng", l)
			}
			batch, lines := e.allLines(t, lost)
			if batch.Status != batchComplete || len(lines) != 1 || lines[0].Status != want {
				t.Errorf("the batch left creating is %v with lines %v; want it completed, its line %v", batch.Status, lines, want)
			}
			if bal := f.payable(t, m); bal.DebitsPending != "40000" || bal.Posted != "40000" {
				t.Errorf("%s with the later batch's line reserved: %v", m, bal)
			}
			e.checkInvariants(t)
			e.checkRollups(t)
		})
	}
}

// A statement import and a merchant's creation, each cut once half-way: the
// first answer is Unavailable, the same request sent again does the work
// once, as if nothing had happened.
func TestImportsAndMerchantsSurviveLostConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)
	req := f.importRequest()
	cutOnce(t, e, "reconciliation_items", "INSERT")
	var imported *pb.ImportStatementResponse
	if n := untilAnswered(t, "import the statement", func() (err error) {
		imported, err = f.bank.ImportStatement(ctx, req)
		return err
	}); n != 1 || imported.Replayed {
		t.Fatalf("import: %d Unavailable answers (want 1), then replayed %v", n, imported.Replayed)
	}
	if rows, want := e.reconRows(t), fmt.Sprintf("1,%d,", len(f.matched)+3); !strings.HasPrefix(rows, want) {
		t.Errorf("after the import: reports, items, entries, payments = %s; want %s...", rows, want)
	}

	cutOnce(t, e, "merchant_stalls", "INSERT")
	m := &pb.Merchant{Code: "TN-TEST-0099", Market: testMarket, Stalls: []string{"Z-099"}, DisplayName: "Sạp cắt", OwnerName: "Chủ sạp",
		Phone: "0912345678", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}}
	if n := untilAnswered(t, "create the merchant", func() error {
		_, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m})
		return err
	}); n != 1 {
		t.Fatalf("create the merchant: %d Unavailable answers, want 1", n)
	}
	if _, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:TN-TEST-0099:payable"}); err != nil {
		t.Errorf("the merchant's payable: %v", err)
	}
	var merchants, stalls int
	if err := e.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM merchants WHERE code = $1), (SELECT count(*) FROM merchant_stalls WHERE merchant = $1)`,
		m.Code).Scan(&merchants, &stalls); err != nil {
		t.Fatal(err)
	}
	if merchants != 1 || stalls != 1 {
		t.Errorf("%d merchants and %d stalls, want 1 and 1", merchants, stalls)
	}
	e.checkInvariants(t)
}

// A batch whose every line is skipped when it is planned is completed as
// it is made. Made creating, a creation cut before it was opened left it
// creating for ever: none of its lines is due anywhere, so no later batch
// finishes it.
func TestPayoutBatchOfSkippedLinesIsCompletedAsItIsMade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-S-01"
	// The bank holds less than the merchant is due: its line is skipped.
	f := newPayoutFixture(t, "PO-S", map[string]int64{m: 40000}, 10000)
	e := f.e
	cutOnce(t, e, "payout_batches", "UPDATE")
	req := &pb.CreatePayoutBatchRequest{IdempotencyKey: "skipped", Bank: "vcb", Market: f.market, CutOff: timestamppb.New(e.now()), PageSize: 100}
	resp, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil {
		t.Fatalf("a batch of a skipped line: %v", err)
	}
	batch, lines := e.allLines(t, resp.Batch.Id)
	if batch.Status != batchComplete || resp.Batch.Status != batchComplete || len(lines) != 1 || lines[0].Status != lineSkipped {
		t.Errorf("the batch is %v (answered %v) with lines %v; want it completed, its line skipped", batch.Status, resp.Batch.Status, lines)
	}
	again, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil || !again.Replayed || again.Batch.Id != resp.Batch.Id || again.Batch.Status != batchComplete {
		t.Errorf("the key sent again: %v, %v; want the completed batch, replayed", again, err)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// A statement the database cancels, at its statement_timeout or
// lock_timeout (here behind a lock another session holds on the
// merchants), wrote nothing and may succeed when sent again: a read or a
// write is answered Unavailable, as the ledger's committer answers one of
// its writes cancelled so, never Internal, which no client retries. Sent
// again once the lock is gone, the write is made once.
func TestCancelledStatementsAreUnavailable(t *testing.T) {
	t.Parallel()
	for _, setting := range []string{"statement_timeout", "lock_timeout"} {
		t.Run(setting, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, ledgerOptions())
			e.setUpMarket(t)
			if _, err := e.db.Pool.Exec(ctx, `ALTER DATABASE `+e.db.Name+` SET `+setting+` = '100ms'`); err != nil {
				t.Fatal(err)
			}
			e.db.Pool.Reset() // new connections take the setting
			locker, err := e.db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := locker.Exec(ctx, `LOCK TABLE merchants IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			merchant := &pb.Merchant{Code: "TN-TEST-0003", Market: testMarket, Stalls: []string{"C-001"}, DisplayName: "Hàng cá",
				OwnerName: "Lê Văn Cá", Phone: "0911222333", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"}}
			_, listErr := e.merchants.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: testMarket})
			_, createErr := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: merchant})
			if err := locker.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			for what, err := range map[string]error{"ListMerchants": listErr, "CreateMerchant": createErr} {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("%s behind the lock: %v, want Unavailable", what, err)
				}
			}
			if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: merchant}); err != nil {
				t.Fatalf("CreateMerchant sent again once the lock is gone: %v", err)
			}
			resp, err := e.merchants.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: testMarket})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Merchants) != 3 {
				t.Errorf("the market lists %d merchants, want 3", len(resp.Merchants))
			}
		})
	}
}

// checkOwed checks that each of merchants' payables holds what the
// answers the writers were given add up to, nothing for one they name not.
func (e *env) checkOwed(ctx context.Context, t *testing.T, merchants []string, payable map[string]int64) {
	t.Helper()
	for _, m := range merchants {
		want := payable[m]
		resp, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + m + ":payable"})
		if err != nil {
			t.Fatal(err)
		}
		if got := num(resp.Balance.Posted); got != want {
			t.Errorf("%s is owed %d by the ledger, %d by the answers", m, got, want)
		}
	}
}
