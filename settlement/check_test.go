package settlement_test

import (
	"context"
	"testing"
	"time"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// checkedHistory is a market's history written through the flows, with
// every projection CheckRollups vouches for: payments in every state,
// refunds, a provider settlement and a payout batch with a paid and a
// failed line.
type checkedHistory struct {
	db *pgtest.DB
	// Payments by what happened to them.
	pending, expired, rejected, direct, partial, topUp payment.Payment
	batch                                              string
}

func newCheckedHistory(t *testing.T) checkedHistory {
	t.Helper()
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Now()
	clock := func() time.Time { return now }
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Now: func() time.Time { return clock() }, Projectors: settlement.Projectors()})
	t.Cleanup(l.Close)
	store := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, store, payment.Options{Now: func() time.Time { return clock() }})
	svc := settlement.NewService(db.Pool, l, store, settlement.Options{Now: func() time.Time { return clock() }})
	const mk = "TS-CHK"
	for _, m := range []merchant.Market{{Code: mk, Name: "Chợ Kiểm", Province: "Thái Nguyên"}, {Code: "TS-ELSE", Name: "Chợ Khác", Province: "Thái Nguyên"}} {
		if _, err := store.CreateMarket(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, code := range []string{"TS-CHK-01", "TS-CHK-02"} {
		if _, err := store.CreateMerchant(ctx, merchant.Merchant{
			Code: code, Market: mk, Stalls: []string{code[len(code)-2:]}, DisplayName: "Sạp", Owner: "Chủ", Phone: "0912345678",
			Channels: []merchant.Channel{merchant.ChannelVietQR, merchant.ChannelMoMo},
			Fees:     merchant.FeePlan{BasisPoints: map[merchant.Channel]int{merchant.ChannelVietQR: 70, merchant.ChannelMoMo: 150}, MinFee: 300},
			Payout:   &merchant.BankAccount{BankBIN: "970436", AccountNumber: "1000" + code[len(code)-2:], HolderName: "CHU SAP"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	record := func(key, code string, ch merchant.Channel, amount int64, source payment.Source) payment.Payment {
		t.Helper()
		r := payment.RecordRequest{Key: key, Merchant: code, Channel: ch, Amount: decimalOf(amount), Source: source}
		if source == payment.SourceBank {
			r.ProviderRef = "REF-" + key
		}
		p, _, err := payments.Record(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := checkedHistory{db: db}
	h.expired = record("s1", "TS-CHK-01", merchant.ChannelVietQR, 30000, payment.SourceStall)
	now = now.Add(25 * time.Hour)
	if n, err := l.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want the one unanswered payment of the day before", n, err)
	}
	h.direct = record("d1", "TS-CHK-01", merchant.ChannelVietQR, 120000, payment.SourceBank)
	full := record("s2", "TS-CHK-01", merchant.ChannelMoMo, 45000, payment.SourceStall)
	h.partial = record("s3", "TS-CHK-02", merchant.ChannelVietQR, 80000, payment.SourceStall)
	h.topUp = record("d2", "TS-CHK-02", merchant.ChannelVietQR, 60000, payment.SourceBank)
	h.rejected = record("s4", "TS-CHK-02", merchant.ChannelVietQR, 7000, payment.SourceStall)
	h.pending = record("s5", "TS-CHK-02", merchant.ChannelMoMo, 9000, payment.SourceStall)
	for _, c := range []payment.ConfirmRequest{{Key: "c1", PaymentID: full.ID}, {Key: "c2", PaymentID: h.partial.ID, Amount: ptr(decimalOf(50000))}} {
		if _, _, err := payments.Confirm(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := payments.Reject(ctx, payment.RejectRequest{Key: "r1", PaymentID: h.rejected.ID}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []payment.RefundRequest{{Key: "f1", PaymentID: h.direct.ID, Amount: ptr(decimalOf(20000))}, {Key: "f2", PaymentID: full.ID}} {
		if _, _, _, err := payments.Refund(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*payment.Payment{&h.direct, &h.partial, &h.topUp, &h.pending} {
		var err error
		if *p, err = payments.Get(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := svc.RecordProviderSettlement(ctx, settlement.ProviderSettlementRequest{
		Key: "ps1", Channel: merchant.ChannelVietQR, Market: mk, Amount: decimalOf(210000), Bank: "vcb", BankRef: "VCB-IN-1",
	}); err != nil {
		t.Fatal(err)
	}
	// MoMo owes nothing: its credit waits in suspense until a payment of
	// its own is recorded, and part of it is matched to that.
	if _, _, err := svc.RecordProviderSettlement(ctx, settlement.ProviderSettlementRequest{
		Key: "ps2", Channel: merchant.ChannelMoMo, Market: mk, Amount: decimalOf(5000), Bank: "vcb", BankRef: "VCB-IN-2", AllowUnmatched: true,
	}); err != nil {
		t.Fatal(err)
	}
	record("d3", "TS-CHK-01", merchant.ChannelMoMo, 3000, payment.SourceBank)
	if _, _, err := svc.ReclassifySuspense(ctx, settlement.SuspenseReclassificationRequest{
		Key: "rc1", Market: mk, Channel: merchant.ChannelMoMo, Amount: decimalOf(2000), Reason: "MoMo settled payment d3 early",
	}); err != nil {
		t.Fatal(err)
	}
	b, _, err := svc.CreatePayoutBatch(ctx, settlement.PayoutBatchRequest{Key: "b1", Creator: "bank:napas/", Bank: "vcb", CutOff: time.Now(), Market: mk})
	if err != nil {
		t.Fatal(err)
	}
	if b.Open != 2 {
		t.Fatalf("payout batch %+v; want a line open for each merchant", b)
	}
	if _, _, err := svc.CompletePayoutBatch(ctx, b.ID, []settlement.PayoutResult{
		{Merchant: "TS-CHK-01", Paid: true, BankRef: "VCB-OUT-1"},
		{Merchant: "TS-CHK-02", Reason: "account closed"},
	}); err != nil {
		t.Fatal(err)
	}
	h.batch = b.ID

	v, err := settlement.CheckRollups(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("before any change: %s", x)
	}
	return h
}

// A projection changed by hand is no longer what its entries say, and
// CheckRollups names it, whatever sums the change keeps: each change is
// made, checked for and undone in turn.
func TestCheckRollupsFindsChangedProjections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newCheckedHistory(t)
	// A change and its undoing, each with its arguments.
	type sql struct {
		query string
		args  []any
	}
	for _, tc := range []struct {
		name         string
		change, undo sql
		invariant    string
	}{
		{"a pending payment shown expired",
			sql{`UPDATE payments SET status = 'expired', expires_at = NULL WHERE id = $1`, []any{h.pending.ID}},
			sql{`UPDATE payments SET status = 'pending', expires_at = $2 WHERE id = $1`, []any{h.pending.ID, h.pending.ExpiresAt}},
			"payments are their entries"},
		{"an expired payment shown rejected",
			sql{`UPDATE payments SET status = 'rejected' WHERE id = $1`, []any{h.expired.ID}},
			sql{`UPDATE payments SET status = 'expired' WHERE id = $1`, []any{h.expired.ID}},
			"payments are their entries"},
		{"confirmed money moved between two payments of a merchant and channel",
			sql{`UPDATE payments SET confirmed_amount = confirmed_amount + CASE id WHEN $1 THEN 5000 ELSE -5000 END WHERE id IN ($1, $2)`, []any{h.partial.ID, h.topUp.ID}},
			sql{`UPDATE payments SET confirmed_amount = confirmed_amount - CASE id WHEN $1 THEN 5000 ELSE -5000 END WHERE id IN ($1, $2)`, []any{h.partial.ID, h.topUp.ID}},
			"payments are their entries"},
		{"a payment's provider reference changed",
			sql{`UPDATE payments SET provider_ref = 'FORGED' WHERE id = $1`, []any{h.direct.ID}},
			sql{`UPDATE payments SET provider_ref = $2 WHERE id = $1`, []any{h.direct.ID, h.direct.ProviderRef}},
			"payments are their entries"},
		// A payout batch reads a payment's entries from the row to tell a
		// refund since its cut-off of a payment confirmed by then, which
		// gives back money that was owed, from one it pays no less for.
		{"a refunded payment's entries emptied",
			sql{`UPDATE payments SET entry_ids = '{}' WHERE id = $1`, []any{h.direct.ID}},
			sql{`UPDATE payments SET entry_ids = $2::text[]::uuid[] WHERE id = $1`, []any{h.direct.ID, h.direct.EntryIDs}},
			"payments are their entries"},
		// A bank's notification of a bill confirms a pending payment only
		// while the row says it has not expired.
		{"a pending payment's expiry moved",
			sql{`UPDATE payments SET expires_at = expires_at - interval '1 day' WHERE id = $1`, []any{h.pending.ID}},
			sql{`UPDATE payments SET expires_at = $2 WHERE id = $1`, []any{h.pending.ID, h.pending.ExpiresAt}},
			"payments are their entries"},
		// An account's type decides the sign of the balance it shows.
		{"a merchant's payable made an asset, what it is owed shown as owing",
			sql{`UPDATE ledger_accounts SET type = 'asset' WHERE code = 'merchant:TS-CHK-01:payable'`, nil},
			sql{`UPDATE ledger_accounts SET type = 'liability' WHERE code = 'merchant:TS-CHK-01:payable'`, nil},
			"accounts are as their markets, merchants and banks opened them"},
		{"a merchant moved to another market, out of its market's report",
			sql{`WITH s AS (UPDATE merchant_stalls SET market = 'TS-ELSE' WHERE merchant = 'TS-CHK-02')
UPDATE merchants SET market = 'TS-ELSE' WHERE code = 'TS-CHK-02'`, nil},
			sql{`WITH s AS (UPDATE merchant_stalls SET market = 'TS-CHK' WHERE merchant = 'TS-CHK-02')
UPDATE merchants SET market = 'TS-CHK' WHERE code = 'TS-CHK-02'`, nil},
			"accounts are as their markets, merchants and banks opened them"},
		{"a settlement account's limit on paying out money the bank has not received lifted",
			sql{`UPDATE ledger_accounts SET flags = 0 WHERE code = 'bank:vcb:market:TS-CHK:settlement'`, nil},
			sql{`UPDATE ledger_accounts SET flags = 2 WHERE code = 'bank:vcb:market:TS-CHK:settlement'`, nil},
			"accounts are as their markets, merchants and banks opened them"},
		{"a paid payout line shown failed",
			sql{`UPDATE payout_lines SET status = 'failed', bank_ref = NULL, reason = 'account closed' WHERE batch_id = $1 AND merchant = 'TS-CHK-01'`, []any{h.batch}},
			sql{`UPDATE payout_lines SET status = 'paid', bank_ref = 'VCB-OUT-1', reason = '' WHERE batch_id = $1 AND merchant = 'TS-CHK-01'`, []any{h.batch}},
			"payout lines are their entries"},
		{"a payout line's amount raised above what its entry reserved",
			sql{`UPDATE payout_lines SET amount = amount * 10 WHERE batch_id = $1 AND merchant = 'TS-CHK-01'`, []any{h.batch}},
			sql{`UPDATE payout_lines SET amount = amount / 10 WHERE batch_id = $1 AND merchant = 'TS-CHK-01'`, []any{h.batch}},
			"payout lines are their entries"},
		{"a merchant's payments of a day moved to another market's report",
			sql{`UPDATE payment_daily_totals SET market = 'TS-ELSE' WHERE merchant = 'TS-CHK-02' AND channel = 'VIETQR'`, nil},
			sql{`UPDATE payment_daily_totals SET market = 'TS-CHK' WHERE merchant = 'TS-CHK-02' AND channel = 'VIETQR'`, nil},
			"rollups: payment totals are in their entries' market"},
		{"MoMo's unmatched credit made NAPAS's, which could then take it out of suspense",
			sql{`UPDATE provider_settlements SET channel = 'VIETQR', provider = 'napas' WHERE bank_ref = 'VCB-IN-2'`, nil},
			sql{`UPDATE provider_settlements SET channel = 'MOMO', provider = 'momo' WHERE bank_ref = 'VCB-IN-2'`, nil},
			"provider settlements are exactly the provider_settlement entries"},
		{"a provider settlement's bank reference changed",
			sql{`UPDATE provider_settlements SET bank_ref = 'VCB-IN-9' WHERE bank_ref = 'VCB-IN-1'`, nil},
			sql{`UPDATE provider_settlements SET bank_ref = 'VCB-IN-1' WHERE bank_ref = 'VCB-IN-9'`, nil},
			"provider settlements are exactly the provider_settlement entries"},
		{"MoMo's reclassification made NAPAS's, leaving MoMo's share of suspense to take again",
			sql{`UPDATE suspense_reclassifications SET channel = 'VIETQR', provider = 'napas'`, nil},
			sql{`UPDATE suspense_reclassifications SET channel = 'MOMO', provider = 'momo'`, nil},
			"reclassifications are exactly the suspense_reclassification entries"},
	} {
		if _, err := h.db.Pool.Exec(ctx, tc.change.query, tc.change.args...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		v, err := settlement.CheckRollups(ctx, h.db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range v {
			t.Logf("%s: %s", tc.name, x)
			found = found || x.Invariant == tc.invariant
		}
		if !found {
			t.Errorf("%s: CheckRollups finds %v; want %q broken", tc.name, v, tc.invariant)
		}
		if _, err := h.db.Pool.Exec(ctx, tc.undo.query, tc.undo.args...); err != nil {
			t.Fatalf("undo %s: %v", tc.name, err)
		}
		if v, err := settlement.CheckRollups(ctx, h.db.Pool); err != nil || len(v) > 0 {
			t.Fatalf("undone %s: %v, %v", tc.name, v, err)
		}
	}
}
