package settlement_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// A business day is the Asia/Ho_Chi_Minh date: midnight there is 17:00 UTC
// of the day before.
func TestDayOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		at   string
		want string
	}{
		{"2026-11-20T16:59:59.999999Z", "2026-11-20"},
		{"2026-11-20T17:00:00Z", "2026-11-21"},
		{"2026-11-20T00:00:00Z", "2026-11-20"},
		{"2026-11-19T17:00:00Z", "2026-11-20"},
		{"2026-12-31T16:59:59Z", "2026-12-31"},
		{"2026-12-31T17:00:00Z", "2027-01-01"},
		{"2028-02-28T17:00:00Z", "2028-02-29"},
		{"2026-11-21T00:00:00+07:00", "2026-11-21"},
	} {
		at, err := time.Parse(time.RFC3339Nano, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := settlement.DayOf(at).String(); got != tc.want {
			t.Errorf("DayOf(%s) = %s, want %s", tc.at, got, tc.want)
		}
		// The host's zone database, where it has one, agrees.
		if loc, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
			if got := at.In(loc).Format(time.DateOnly); got != tc.want {
				t.Errorf("Asia/Ho_Chi_Minh date of %s is %s, want %s", tc.at, got, tc.want)
			}
		}
	}
	d, ok := settlement.ParseDay("2026-11-20")
	if !ok {
		t.Fatal("ParseDay refused 2026-11-20")
	}
	if got := d.Start(); !got.Equal(time.Date(2026, 11, 19, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("2026-11-20 starts at %s, want 2026-11-19T17:00:00Z", got)
	}
	for _, bad := range []string{"", "2026-11-31", "2026-1-5", "20261120", "2026-11-20T00:00:00Z", " 2026-11-20"} {
		if _, ok := settlement.ParseDay(bad); ok {
			t.Errorf("ParseDay(%q) accepted it", bad)
		}
	}
}

// backdated writes journal entries with a recorded_at of the test's
// choosing, as the ledger would have written them on those days, and runs
// the projectors on them in the same transaction. The database's clock
// cannot be moved, so this is how the days of the rollups are tested
// across midnights; the hash chain is not kept (nothing here verifies it).
type backdated struct {
	t    *testing.T
	pool *pgxpool.Pool
	seq  int64
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (j *backdated) write(at time.Time, e *ledger.Entry, closes *ledger.Entry) *ledger.Entry {
	j.t.Helper()
	ctx := context.Background()
	j.seq++
	e.Seq, e.ID, e.RecordedAt, e.OccurredAt, e.Currency = j.seq, newUUID(), at.UTC(), at.UTC(), "VND"
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	var pendingSeq int64
	if closes != nil {
		e.PendingID, pendingSeq = closes.ID, closes.Seq
	}
	var expires *time.Time
	if e.Phase == ledger.PhasePending {
		x := at.Add(24 * time.Hour)
		expires = &x
	}
	md, _ := json.Marshal(e.Metadata)
	tx, err := j.pool.Begin(ctx)
	if err != nil {
		j.t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	exec := func(sql string, args ...any) {
		j.t.Helper()
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			j.t.Fatalf("entry %d (%s): %v\n%s", e.Seq, e.Kind, err, sql)
		}
	}
	exec(`INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, pending_seq, idempotency_key, request_hash,
                            occurred_at, recorded_at, expires_at, metadata, hash)
VALUES ($1, $2, $3, $4, $5, 'VND', NULLIF($6::bigint, 0), 'backdated:' || $1::bigint, '\x00', $7, $7, $8, $9::jsonb, '\x00')`,
		e.Seq, e.ID, e.Market, e.Kind, string(e.Phase), pendingSeq, e.RecordedAt, expires, string(md))
	// Net change of each account's four totals.
	type totals struct{ dp, cp, dpo, cpo int64 }
	change := map[string]*totals{}
	move := func(code string, dir ledger.Direction, amount int64, pending bool) {
		c := change[code]
		if c == nil {
			c = &totals{}
			change[code] = c
		}
		switch {
		case pending && dir == ledger.Debit:
			c.dp += amount
		case pending:
			c.cp += amount
		case dir == ledger.Debit:
			c.dpo += amount
		default:
			c.cpo += amount
		}
	}
	if len(e.Postings) > 0 {
		var codes, dirs []string
		var amounts []int64
		var idx []int16
		for i, p := range e.Postings {
			codes, dirs, amounts, idx = append(codes, p.AccountCode), append(dirs, string(rune(p.Direction))), append(amounts, p.Amount), append(idx, int16(i))
			move(p.AccountCode, p.Direction, p.Amount, e.Phase == ledger.PhasePending)
		}
		exec(`INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
SELECT $1, t.idx, (SELECT id FROM ledger_accounts WHERE code = t.code), t.dir, $2, t.amount
  FROM unnest($3::smallint[], $4::text[], $5::text[], $6::bigint[]) AS t(idx, code, dir, amount)`,
			e.Seq, e.Phase == ledger.PhasePending, idx, codes, dirs, amounts)
	}
	if e.Phase == ledger.PhasePending {
		exec(`INSERT INTO ledger_open_pending (entry_seq, expires_at) VALUES ($1, $2)`, e.Seq, expires)
	}
	if closes != nil {
		exec(`DELETE FROM ledger_open_pending WHERE entry_seq = $1`, closes.Seq)
		for _, p := range closes.Postings {
			move(p.AccountCode, p.Direction, -p.Amount, true)
		}
	}
	for code, c := range change {
		exec(`UPDATE ledger_accounts SET debits_pending = debits_pending + $2, credits_pending = credits_pending + $3,
       debits_posted = debits_posted + $4, credits_posted = credits_posted + $5 WHERE code = $1`, code, c.dp, c.cp, c.dpo, c.cpo)
	}
	exec(`UPDATE ledger_head SET last_seq = $1`, e.Seq)
	b := &pgx.Batch{}
	for _, p := range settlement.Projectors() {
		p.Project([]*ledger.Entry{e}, b)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		j.t.Fatalf("project entry %d (%s): %v", e.Seq, e.Kind, err)
	}
	if err := tx.Commit(ctx); err != nil {
		j.t.Fatal(err)
	}
	return e
}

func posting(code string, dir ledger.Direction, amount int64) ledger.Posting {
	return ledger.Posting{AccountCode: code, Direction: dir, Amount: amount}
}

// ict is a time on a day of March 2026 in Asia/Ho_Chi_Minh.
func ict(day, hour, minute, second, micro int) time.Time {
	return time.Date(2026, 3, day, hour, minute, second, micro*1000, time.FixedZone("ICT", 7*3600))
}

func mustDay(t *testing.T, s string) settlement.Day {
	t.Helper()
	d, ok := settlement.ParseDay(s)
	if !ok {
		t.Fatalf("bad day %s", s)
	}
	return d
}

type dayWant struct {
	day                               string
	opening, payments, gross, fees    int64
	refunds, refunded, feesReturned   int64
	payouts, paidOut, adjust, closing int64
	pending                           int64
}

func checkTotals(t *testing.T, what string, got settlement.Totals, want dayWant) {
	t.Helper()
	if !got.Balanced() {
		t.Errorf("%s: does not balance: %s", what, got.Equation())
	}
	g := dayWant{want.day, got.Opening, got.PaymentCount, got.Payments, got.FeesCharged, got.RefundCount, got.Refunds, got.FeesReturned,
		got.PayoutCount, got.Payouts, got.Adjustments, got.Closing, got.Pending}
	if g != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, want)
	}
}

// Five business days of one merchant, written on the days themselves: a
// payment a microsecond before midnight, pending ones from midnight on, a
// partial confirmation and an expiry two days later, a quiet day, then a
// refund, a provider settlement, a payout and an adjustment. The rollups
// put each on its day, the reports carry balances across the quiet day, and
// every day's closing balance is the ledger's balance as of that day's end.
func TestRollupsAcrossDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1})
	t.Cleanup(l.Close)
	store := merchant.NewStore(db.Pool, l)
	const mk, mc = "TS-SYN", "TS-SYN-01"
	if _, err := store.CreateMarket(ctx, merchant.Market{Code: mk, Name: "Chợ Tổng Hợp", Province: "Thái Nguyên"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateMerchant(ctx, merchant.Merchant{
		Code: mc, Market: mk, Stalls: []string{"A-1"}, DisplayName: "Hàng cá", Owner: "Lê Văn Cá", Phone: "0912345678",
		Channels: []merchant.Channel{merchant.ChannelVietQR, merchant.ChannelMoMo},
	}); err != nil {
		t.Fatal(err)
	}
	bank := merchant.SettlementAccount("vcb", mk)
	if _, _, err := l.CreateAccount(ctx, ledger.AccountSpec{Code: bank, Type: ledger.Asset, Currency: "VND", Market: mk, Flags: ledger.FlagCreditsMustNotExceedDebits}); err != nil {
		t.Fatal(err)
	}
	payable, fees, suspense := merchant.PayableAccount(mc), merchant.FeesAccount(mk), merchant.SuspenseAccount(mk)
	napas, momo := merchant.ClearingAccount(merchant.ChannelVietQR, mk), merchant.ClearingAccount(merchant.ChannelMoMo, mk)
	pay := func(id, ch, source string, amount, fee int64) map[string]string {
		return map[string]string{"payment_id": id, "merchant": mc, "channel": ch, "source": source,
			"amount": strconv.FormatInt(amount, 10), "fee": strconv.FormatInt(fee, 10)}
	}
	idA, idB, idC := newUUID(), newUUID(), newUUID()
	j := &backdated{t: t, pool: db.Pool}
	j.write(ict(2, 23, 59, 59, 999999), &ledger.Entry{Market: mk, Kind: payment.KindPayment, Phase: ledger.PhasePosted,
		Postings: []ledger.Posting{posting(napas, ledger.Debit, 100000), posting(payable, ledger.Credit, 99500), posting(fees, ledger.Credit, 500)},
		Metadata: pay(idA, "VIETQR", "bank", 100000, 500)}, nil)
	b := j.write(ict(3, 0, 0, 0, 0), &ledger.Entry{Market: mk, Kind: payment.KindPayment, Phase: ledger.PhasePending,
		Postings: []ledger.Posting{posting(napas, ledger.Debit, 50000), posting(payable, ledger.Credit, 49750), posting(fees, ledger.Credit, 250)},
		Metadata: pay(idB, "VIETQR", "stall", 50000, 250)}, nil)
	c := j.write(ict(3, 12, 0, 0, 0), &ledger.Entry{Market: mk, Kind: payment.KindPayment, Phase: ledger.PhasePending,
		Postings: []ledger.Posting{posting(momo, ledger.Debit, 20000), posting(payable, ledger.Credit, 19900), posting(fees, ledger.Credit, 100)},
		Metadata: pay(idC, "MOMO", "stall", 20000, 100)}, nil)
	confirm := j.write(ict(4, 9, 0, 0, 0), &ledger.Entry{Market: mk, Kind: payment.KindConfirm, Phase: ledger.PhasePostPending,
		Postings: []ledger.Posting{posting(napas, ledger.Debit, 40000), posting(payable, ledger.Credit, 39800), posting(fees, ledger.Credit, 200)},
		Metadata: pay(idB, "VIETQR", "", 40000, 200)}, b)
	expire := j.write(ict(4, 10, 0, 0, 0), &ledger.Entry{Market: mk, Kind: ledger.KindExpire, Phase: ledger.PhaseVoidPending}, c)
	// 2026-03-05: nothing.
	j.write(ict(6, 8, 0, 0, 0), &ledger.Entry{Market: mk, Kind: payment.KindRefund, Phase: ledger.PhasePosted,
		Postings: []ledger.Posting{posting(payable, ledger.Debit, 29850), posting(fees, ledger.Debit, 150), posting(napas, ledger.Credit, 30000)},
		Metadata: map[string]string{"payment_id": idA, "merchant": mc, "channel": "VIETQR", "amount": "30000", "fee_returned": "150"}}, nil)
	j.write(ict(6, 9, 0, 0, 0), &ledger.Entry{Market: mk, Kind: settlement.KindProviderSettlement, Phase: ledger.PhasePosted,
		Postings: []ledger.Posting{posting(bank, ledger.Debit, 50000), posting(napas, ledger.Credit, 50000)},
		Metadata: map[string]string{"channel": "VIETQR", "provider": "napas", "bank": "vcb", "bank_ref": "VCB-1", "amount": "50000"}}, nil)
	j.write(ict(6, 10, 0, 0, 0), &ledger.Entry{Market: mk, Kind: settlement.KindPayout, Phase: ledger.PhasePosted,
		Postings: []ledger.Posting{posting(payable, ledger.Debit, 10000), posting(bank, ledger.Credit, 10000)}}, nil)
	j.write(ict(6, 11, 0, 0, 0), &ledger.Entry{Market: mk, Kind: "adjustment", Phase: ledger.PhasePosted,
		Postings: []ledger.Posting{posting(suspense, ledger.Debit, 1000), posting(payable, ledger.Credit, 1000)}}, nil)

	v, err := settlement.CheckRollups(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("rollups: %s", x)
	}
	// The payment a microsecond before midnight is on the 2nd, the one at
	// midnight on the 3rd.
	var d2, d3 int64
	if err := db.Pool.QueryRow(ctx, `
SELECT COALESCE(sum(credits_posted) FILTER (WHERE day = '2026-03-02'), 0), COALESCE(sum(credits_pending) FILTER (WHERE day = '2026-03-03'), 0)
  FROM ledger_daily_totals WHERE account_id = (SELECT id FROM ledger_accounts WHERE code = $1)`, payable).Scan(&d2, &d3); err != nil {
		t.Fatal(err)
	}
	if d2 != 99500 || d3 != 49750+19900 {
		t.Errorf("payable's rows: credits posted on the 2nd %d, credits pending on the 3rd %d; want 99500, 69650", d2, d3)
	}

	svc := settlement.NewService(db.Pool, l, store, settlement.Options{})
	days := []dayWant{
		{day: "2026-03-02", payments: 1, gross: 100000, fees: 500, closing: 99500},
		{day: "2026-03-03", opening: 99500, closing: 99500, pending: 69650},
		{day: "2026-03-04", opening: 99500, payments: 1, gross: 40000, fees: 200, closing: 139300},
		{day: "2026-03-05", opening: 139300, closing: 139300},
		{day: "2026-03-06", opening: 139300, refunds: 1, refunded: 30000, feesReturned: 150, payouts: 1, paidOut: 10000, adjust: 1000, closing: 100450},
	}
	ms, err := svc.MerchantSettlement(ctx, settlement.MerchantQuery{Merchant: mc, Start: "2026-03-01", End: "2026-03-07"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Days) != 7 {
		t.Fatalf("%d days, want 7", len(ms.Days))
	}
	checkTotals(t, "2026-03-01", ms.Days[0].Totals, dayWant{day: "2026-03-01"})
	for i, want := range days {
		checkTotals(t, want.day, ms.Days[i+1].Totals, want)
	}
	checkTotals(t, "2026-03-07", ms.Days[6].Totals, dayWant{day: "2026-03-07", opening: 100450, closing: 100450})
	checkTotals(t, "the period", ms.Totals, dayWant{day: "the period", payments: 2, gross: 140000, fees: 700, refunds: 1, refunded: 30000,
		feesReturned: 150, payouts: 1, paidOut: 10000, adjust: 1000, closing: 100450})
	if ch := ms.Totals.Channels; len(ch) != 1 || ch[0] != (settlement.ChannelTotals{Channel: merchant.ChannelVietQR, PaymentCount: 2, Payments: 140000,
		FeesCharged: 700, RefundCount: 1, Refunds: 30000, FeesReturned: 150}) {
		t.Errorf("channels %+v, want VietQR alone (the MoMo payment expired)", ch)
	}
	// Each day's closing and pending are the ledger's as of the day's end.
	for _, d := range ms.Days {
		_, tot, _, err := l.Balance(ctx, payable, ledger.AsOf{Time: d.Day.AddDays(1).Start().Add(-time.Microsecond)})
		if err != nil {
			t.Fatal(err)
		}
		if tot.CreditsPosted-tot.DebitsPosted != d.Closing || tot.CreditsPending != d.Pending {
			t.Errorf("%s: closing %d pending %d, ledger as of the day's end %+v", d.Day, d.Closing, d.Pending, tot)
		}
	}
	if !ms.Period.EndTime.Equal(mustDay(t, "2026-03-08").Start().Add(-time.Microsecond)) || ms.Period.AsOfSeq != 9 {
		t.Errorf("period %+v, want it to end at the last microsecond of 2026-03-07, after entry 9", ms.Period)
	}

	// A quiet day alone, and a period opening after activity.
	one, err := svc.MerchantSettlement(ctx, settlement.MerchantQuery{Merchant: mc, Start: "2026-03-05"})
	if err != nil {
		t.Fatal(err)
	}
	checkTotals(t, "2026-03-05 alone", one.Totals, dayWant{day: "2026-03-05 alone", opening: 139300, closing: 139300})

	// Cut inside a day: as of 09:30 on the 4th the confirmation is in and
	// the expiry is not; the same by sequence.
	cutAt := ict(4, 9, 30, 0, 0)
	for name, at := range map[string]ledger.AsOf{"time": {Time: cutAt}, "sequence": {Seq: confirm.Seq}} {
		cut, err := svc.MerchantSettlement(ctx, settlement.MerchantQuery{Merchant: mc, Start: "2026-03-02", End: "2026-03-07", AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(cut.Days) != 3 || cut.Period.End.String() != "2026-03-04" || cut.Period.AsOfSeq != confirm.Seq {
			t.Fatalf("as of %s: %d days to %s, sequence %d; want 3 days to 2026-03-04 after entry %d", name, len(cut.Days), cut.Period.End, cut.Period.AsOfSeq, confirm.Seq)
		}
		checkTotals(t, "as of "+name, cut.Days[2].Totals, dayWant{day: "as of " + name, opening: 99500, payments: 1, gross: 40000, fees: 200, closing: 139300, pending: 19900})
		_, tot, _, err := l.Balance(ctx, payable, at)
		if err != nil {
			t.Fatal(err)
		}
		if tot.CreditsPosted-tot.DebitsPosted != cut.Totals.Closing || tot.CreditsPending != cut.Totals.Pending {
			t.Errorf("as of %s: closing %d pending %d, ledger %+v", name, cut.Totals.Closing, cut.Totals.Pending, tot)
		}
	}
	_ = expire

	// The market: one merchant, and what NAPAS owes.
	mkt, err := svc.MarketSettlement(ctx, settlement.MarketQuery{Market: mk, Start: "2026-03-02", End: "2026-03-06"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mkt.Merchants) != 1 || mkt.Merchants[0].Totals.Closing != 100450 || mkt.Totals.Closing != 100450 || len(mkt.Days) != 5 {
		t.Fatalf("market settlement %+v", mkt)
	}
	type owed struct{ opening, payments, gross, refunds, refunded, settlements, settled, adjust, closing, pending int64 }
	for _, p := range mkt.Providers {
		got := owed{p.Opening, p.PaymentCount, p.Payments, p.RefundCount, p.Refunds, p.SettlementCount, p.Settled, p.Adjustments, p.Closing, p.Pending}
		want := owed{}
		if p.Provider == "napas" {
			want = owed{payments: 2, gross: 140000, refunds: 1, refunded: 30000, settlements: 1, settled: 50000, closing: 60000}
		}
		if got != want {
			t.Errorf("provider %s: %+v, want %+v (%s)", p.Provider, got, want, p.Equation())
		}
	}

	// Before the period starts, an as-of point is refused.
	_, err = svc.MerchantSettlement(ctx, settlement.MerchantQuery{Merchant: mc, Start: "2026-03-04", AsOf: ledger.AsOf{Time: ict(3, 12, 0, 0, 0)}})
	var le *ledger.Error
	if !errors.As(err, &le) || !errors.Is(err, ledger.ErrInvalid) || le.Field != "as_of" {
		t.Errorf("as of before the period: %v", err)
	}
}

// The migration that creates the rollups fills them from a journal that
// already has entries (a database of ledgerd before settlement), by the
// same rules the projectors follow.
func TestMigrationBackfillsRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Now()
	clock := func() time.Time { return now }
	// A ledger as it was before settlement: payments projected, no rollups.
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Now: func() time.Time { return clock() }, Projectors: []ledger.Projector{payment.Projector{}}})
	t.Cleanup(l.Close)
	store := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, store, payment.Options{Now: func() time.Time { return clock() }})
	const mk = "TS-OLD"
	if _, err := store.CreateMarket(ctx, merchant.Market{Code: mk, Name: "Chợ Cũ", Province: "Thái Nguyên"}); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"TS-OLD-01", "TS-OLD-02"} {
		if _, err := store.CreateMerchant(ctx, merchant.Merchant{
			Code: code, Market: mk, Stalls: []string{code[len(code)-2:]}, DisplayName: "Sạp", Owner: "Chủ", Phone: "0912345678",
			Channels: []merchant.Channel{merchant.ChannelVietQR, merchant.ChannelMoMo},
			Fees:     merchant.FeePlan{BasisPoints: map[merchant.Channel]int{merchant.ChannelVietQR: 70, merchant.ChannelMoMo: 150}, MinFee: 300},
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
	direct := record("d1", "TS-OLD-01", merchant.ChannelVietQR, 120000, payment.SourceBank)
	full := record("s1", "TS-OLD-01", merchant.ChannelMoMo, 45000, payment.SourceStall)
	part := record("s2", "TS-OLD-02", merchant.ChannelVietQR, 80000, payment.SourceStall)
	record("s3", "TS-OLD-02", merchant.ChannelVietQR, 30000, payment.SourceStall) // expires
	rejected := record("s5", "TS-OLD-01", merchant.ChannelVietQR, 7000, payment.SourceStall)
	for _, c := range []payment.ConfirmRequest{{Key: "c1", PaymentID: full.ID}, {Key: "c2", PaymentID: part.ID, Amount: ptr(decimalOf(50000))}} {
		if _, _, err := payments.Confirm(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := payments.Reject(ctx, payment.RejectRequest{Key: "r1", PaymentID: rejected.ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := payments.Refund(ctx, payment.RefundRequest{Key: "f1", PaymentID: direct.ID, Amount: ptr(decimalOf(20000))}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour)
	// Recorded a day later, so it is still pending when the others expire.
	record("s4", "TS-OLD-02", merchant.ChannelMoMo, 9000, payment.SourceStall)
	if n, err := l.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want the one unanswered payment of the day before", n, err)
	}

	v, err := settlement.CheckRollups(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) == 0 {
		t.Fatal("rollups of a journal written without projectors pass the check; the check checks nothing")
	}
	migration, err := os.ReadFile("../internal/pg/migrations/00006_settlement.sql")
	if err != nil {
		t.Fatal(err)
	}
	up := string(migration)
	from := strings.Index(up, "-- A database that already holds entries")
	to := strings.Index(up, "-- +goose Down")
	if from < 0 || to < from {
		t.Fatal("cannot find the backfill in the migration")
	}
	if _, err := db.Pool.Exec(ctx, up[from:to]); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if v, err = settlement.CheckRollups(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("after the backfill: %s", x)
	}
}

func decimalOf(v int64) decimal.Decimal { return decimal.NewFromInt(v) }
func ptr[T any](v T) *T                 { return &v }
