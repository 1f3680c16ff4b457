package seeds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// A load stopped once the stalls' payments were recorded (make run
// interrupted), and run again after they expired, finishes: the bank's
// confirmation or rejection of a payment that expired meanwhile comes too
// late, as it would for a real stall, and the payment stays expired. The
// load was refused for it, so that every later make run stopped at the
// seed.
func TestLoadResumedAfterItsPaymentsExpired(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	var mu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Now: now, Projectors: []ledger.Projector{payment.Projector{}}})
	defer l.Close()
	merchants := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, merchants, payment.Options{Now: now})

	// A payment the bank confirms and one it rejects, with their merchants.
	data := ds(t)
	var day []Payment
	for _, f := range []Flow{FlowStallConfirmed, FlowStallRejected} {
		day = append(day, data.Payments[slices.IndexFunc(data.Payments, func(p Payment) bool { return p.Flow == f })])
	}
	for _, p := range day {
		m := data.Merchants[slices.IndexFunc(data.Merchants, func(m Merchant) bool { return m.Code == p.MerchantCode })]
		mk := data.Markets[slices.IndexFunc(data.Markets, func(mk Market) bool { return mk.Code == m.MarketCode })]
		if _, err := merchants.CreateMarket(ctx, merchant.Market{Code: mk.Code, Name: mk.Name, Province: mk.Province, Ward: mk.Ward}); err != nil && !errors.Is(err, merchant.ErrMarketExists) {
			t.Fatal(err)
		}
		if _, err := merchants.CreateMerchant(ctx, m.Definition()); err != nil {
			t.Fatal(err)
		}
	}

	// The first load is stopped as the bank is about to answer.
	stopped, stop := context.WithCancel(ctx)
	first := &Loader{Pool: db.Pool, Merchants: merchants, Payments: payments, Workers: 2,
		Log: slog.New(stopAt{slog.NewTextHandler(io.Discard, nil), "seed: payments recorded; the bank now confirms and rejects", stop})}
	first.loadPayments(stopped, day) //nolint:errcheck // stopped
	var pending int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status = 'pending'`).Scan(&pending); err != nil || pending != len(day) {
		t.Fatalf("the stopped load left %d of its %d payments pending (%v)", pending, len(day), err)
	}
	mu.Lock()
	offset = 25 * time.Hour
	mu.Unlock()
	if n, err := l.ExpireDue(ctx); err != nil || n != len(day) {
		t.Fatalf("expired %d of the %d pending payments: %v", n, len(day), err)
	}

	again := &Loader{Pool: db.Pool, Merchants: merchants, Payments: payments, Workers: 2, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := again.loadPayments(ctx, day); err != nil {
		t.Fatalf("the load run again: %v", err)
	}
	var expired int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status = 'expired'`).Scan(&expired); err != nil {
		t.Fatal(err)
	}
	if expired != len(day) {
		t.Errorf("%d of the %d payments that expired are still expired", expired, len(day))
	}
	v, err := ledger.CheckInvariants(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("invariant broken: %s", x)
	}
}

// stopAt cancels a context when msg is logged.
type stopAt struct {
	slog.Handler
	msg  string
	stop context.CancelFunc
}

func (h stopAt) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.stop()
	}
	return h.Handler.Handle(ctx, r)
}
