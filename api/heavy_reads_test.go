package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// Auditors running as many market reports at once as the pool has
// connections, each held up inside PostgreSQL (here by a lock the test
// holds on a table the reports read and a payment does not write), leave a
// bank's payment notification the connections it needs: it is recorded
// while they wait, and the reports are answered once the lock goes.
func TestHeavyReadsLeavePaymentsAConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	ctx := context.Background()
	_, auditor := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	_, bank := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	reports := pb.NewSettlementServiceClient(e.dial(t, auditor))
	payments := pb.NewPaymentServiceClient(e.dial(t, bank))

	lock, err := pgx.Connect(ctx, e.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	held, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Exec(ctx, `LOCK TABLE settlement_daily_totals IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if err := held.Rollback(ctx); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()

	n := int(e.db.Pool.Config().MaxConns)
	start := time.Now().In(time.FixedZone("ICT", 7*3600)).AddDate(0, 0, -3).Format("2006-01-02")
	answered := make(chan error, n)
	for range n {
		go func() {
			_, err := reports.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: start, EndDay: today()})
			answered <- err
		}()
	}
	// Every report the server lets run waits for the lock, holding its
	// connection; the others wait for their turn in the server.
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var locked, queued int
	until(waitCtx, func() bool {
		err := lock.QueryRow(ctx, `
SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE c.relname = 'settlement_daily_totals' AND NOT l.granted`).Scan(&locked)
		_, queued = e.srv.HeavyReads()
		return err == nil && locked+queued == n
	})
	if waitCtx.Err() != nil {
		t.Fatalf("of %d reports, %d reached the lock and %d wait for their turn", n, locked, queued)
	}

	payCtx, cancelPay := context.WithTimeout(ctx, 10*time.Second)
	defer cancelPay()
	if _, err := payments.RecordPayment(payCtx, bankNotice("busy-1", "TN-TEST-0001", "45000", "FT-BUSY-1")); err != nil {
		t.Errorf("a bank notification while %d reports hold a connection each and %d wait for their turn: %v", locked, queued, err)
	}

	// A report beyond them, or a balance as of a past point, waits for its
	// turn as long as its caller does; a balance now is answered.
	ledgerReads := pb.NewLedgerServiceClient(e.dial(t, auditor))
	clearing := "provider:napas:market:" + testMarket + ":clearing"
	shortCtx, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := reports.GetMarketSettlement(shortCtx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: start, EndDay: today()}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a report whose caller gives up waiting for its turn: %v, want DeadlineExceeded", err)
	}
	pastCtx, cancelPast := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelPast()
	if _, err := ledgerReads.GetBalance(pastCtx, &pb.GetBalanceRequest{AccountCode: clearing, AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 1}}}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a balance as of a past point whose caller gives up waiting for its turn: %v, want DeadlineExceeded", err)
	}
	nowCtx, cancelNow := context.WithTimeout(ctx, 10*time.Second)
	defer cancelNow()
	if _, err := ledgerReads.GetBalance(nowCtx, &pb.GetBalanceRequest{AccountCode: clearing}); err != nil {
		t.Errorf("a balance now: %v", err)
	}

	release()
	for range n {
		if err := <-answered; err != nil {
			t.Errorf("a report that waited: %v", err)
		}
	}
	e.checkInvariants(t)
}
