package api_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

	var cuts, unavailable atomic.Int64
	stop := make(chan struct{})
	cutterDone := make(chan struct{})
	go func() {
		defer close(cutterDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			var n int64
			// Its own connection may have been cut too; the next try gets another.
			if e.db.Pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n) == nil {
				cuts.Add(n)
			}
		}
	}()

	// until sends a write until it is answered; only Unavailable may be
	// answered meanwhile.
	until := func(what string, send func() (*pb.Payment, error)) (*pb.Payment, error) {
		for attempt := 1; ; attempt++ {
			p, err := send()
			if err == nil {
				return p, nil
			}
			if status.Code(err) != codes.Unavailable || attempt == 200 {
				return nil, fmt.Errorf("%s, attempt %d: %v", what, attempt, err)
			}
			unavailable.Add(1)
			time.Sleep(time.Millisecond)
		}
	}

	const writers, each = 8, 24
	var (
		mu      sync.Mutex
		ids     = map[string]string{} // payment id by idempotency key
		payable = map[string]int64{}  // what the answers say each merchant is owed
	)
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", w, i)
				m := merchants[(w+i)%2]
				amount := strconv.Itoa(10000 + 1000*i)
				var p *pb.Payment
				var err error
				if i%3 == 0 { // a stall's payment, which the bank then confirms
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
				} else { // the bank's own notification
					p, err = until(key, func() (*pb.Payment, error) {
						r, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
							Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-" + key})
						return r.GetPayment(), err
					})
				}
				if err != nil {
					errc <- err
					return
				}
				if p.Status != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED || p.Amount != amount {
					errc <- fmt.Errorf("%s answered %v", key, p)
					return
				}
				mu.Lock()
				ids[key] = p.Id
				payable[m] += num(p.ConfirmedAmount) - num(p.Fee)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-cutterDone
	// The checks below read through fresh connections: the pool still holds
	// some the last cut closed.
	e.db.Pool.Reset()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("%d connections cut; %d writes answered Unavailable and sent again", cuts.Load(), unavailable.Load())
	if unavailable.Load() == 0 {
		t.Fatalf("no write met a cut connection (%d cuts): the test tested nothing", cuts.Load())
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
	stall := writers * ((each + 2) / 3)
	if len(distinct) != writers*each || payments != writers*each || confirmed != payments || entries != writers*each+stall {
		t.Fatalf("%d keys answered with %d payments; the table holds %d (%d confirmed) and the market's journal %d entries, want %d",
			len(ids), len(distinct), payments, confirmed, entries, writers*each+stall)
	}
	for _, m := range merchants {
		resp, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + m + ":payable"})
		if err != nil {
			t.Fatal(err)
		}
		if got := num(resp.Balance.Posted); got != payable[m] {
			t.Errorf("%s is owed %d by the ledger, %d by the answers", m, got, payable[m])
		}
	}
	e.checkInvariants(t)

	// The audit trail kept every answered write: its batches are tried
	// again while the database cannot be reached.
	answered := writers*each + stall
	var audited int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE code = 'OK' AND method LIKE '%Payment'`).Scan(&audited); err != nil {
			t.Fatal(err)
		}
		if audited >= answered || time.Now().After(deadline) {
			break
		}
	}
	if audited != answered {
		t.Errorf("the audit trail holds %d answered writes, want %d", audited, answered)
	}
}
