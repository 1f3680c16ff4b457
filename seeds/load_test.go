package seeds_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/seeds"
)

// The demo data set loads through the real flows, leaves a sound ledger,
// and loads once: a second load writes nothing.
func TestLoadOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 9,300 merchants and 15,000 payments")
	}
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: []ledger.Projector{payment.Projector{}}})
	defer l.Close()
	merchants := merchant.NewStore(db.Pool, l)
	loader := &seeds.Loader{Pool: db.Pool, Merchants: merchants, Payments: payment.NewService(db.Pool, l, merchants, payment.Options{}),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	st, err := loader.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := seeds.Generate()
	if st.AlreadyLoaded || st.Markets != 107 || st.Merchants != len(data.Merchants) || st.Payments != len(data.Payments) {
		t.Fatalf("first load: %+v", st)
	}
	counts := func() (markets, merchants, payments, entries int) {
		err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM markets), (SELECT count(*) FROM merchants),
			(SELECT count(*) FROM payments), (SELECT count(*) FROM ledger_entries)`).Scan(&markets, &merchants, &payments, &entries)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	m1, me1, p1, e1 := counts()
	if m1 != 107 || me1 != len(data.Merchants) || p1 != len(data.Payments) {
		t.Fatalf("loaded %d markets, %d merchants, %d payments", m1, me1, p1)
	}
	want := map[seeds.Flow]payment.Status{
		seeds.FlowStallConfirmed: payment.StatusConfirmed, seeds.FlowBankDirect: payment.StatusConfirmed,
		seeds.FlowStallRejected: payment.StatusRejected, seeds.FlowStallPending: payment.StatusPending,
	}
	wantCounts := map[payment.Status]int{}
	for _, p := range data.Payments {
		wantCounts[want[p.Flow]]++
	}
	rows, err := db.Pool.Query(ctx, `SELECT status, count(*) FROM payments GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		if wantCounts[payment.Status(s)] != n {
			t.Errorf("%d payments %s, want %d", n, s, wantCounts[payment.Status(s)])
		}
	}
	rows.Close()

	v, err := ledger.CheckInvariants(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("invariant broken: %s", x)
	}

	// Every merchant's static QR pays into its market's collection account.
	for _, i := range []int{0, len(data.Merchants) - 1} {
		m := data.Merchants[i]
		if qr, err := merchants.StaticQR(ctx, m.Code); err != nil || !strings.Contains(qr, "0071000") {
			t.Errorf("static QR of %s: %q, %v", m.Code, qr, err)
		}
	}

	// A market loaded by a release before collection accounts gets its
	// own when the data set is loaded again.
	if _, err := db.Pool.Exec(ctx, `UPDATE markets SET collection_bank_bin = NULL, collection_account_number = NULL, collection_holder_name = NULL
		WHERE code = $1`, data.Markets[3].Code); err != nil {
		t.Fatal(err)
	}
	st, err = loader.Load(ctx)
	if err != nil || !st.AlreadyLoaded {
		t.Fatalf("second load: %+v, %v", st, err)
	}
	if mk, err := merchants.GetMarket(ctx, data.Markets[3].Code); err != nil || mk.Collection == nil || *mk.Collection != *data.Markets[3].Definition().Collection {
		t.Errorf("market %s after the second load: %+v, %v", data.Markets[3].Code, mk, err)
	}
	if m2, me2, p2, e2 := counts(); m2 != m1 || me2 != me1 || p2 != p1 || e2 != e1 {
		t.Fatalf("second load changed counts: %d/%d/%d/%d -> %d/%d/%d/%d", m1, me1, p1, e1, m2, me2, p2, e2)
	}
}
