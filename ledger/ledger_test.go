package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
)

func newLedger(t *testing.T, opts ledger.Options) (*ledger.Ledger, *pgtest.DB) {
	t.Helper()
	db := pgtest.New(t)
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = -1
	}
	l := ledger.New(db.Pool, opts)
	t.Cleanup(l.Close)
	return l, db
}

func open(t *testing.T, l *ledger.Ledger, code string, typ ledger.AccountType, market string, flags int) {
	t.Helper()
	if _, _, err := l.CreateAccount(context.Background(), ledger.AccountSpec{Code: code, Type: typ, Currency: "VND", Market: market, Flags: flags}); err != nil {
		t.Fatalf("create account %s: %v", code, err)
	}
}

func vnd(n int64) decimal.Decimal { return decimal.NewFromInt(n) }

func transfer(key, market, from, to string, amount int64) ledger.EntryRequest {
	return ledger.EntryRequest{
		IdempotencyKey: key, Market: market, Kind: "test", Currency: "VND",
		Postings: []ledger.PostingInput{
			{AccountCode: from, Direction: ledger.Debit, Amount: vnd(amount)},
			{AccountCode: to, Direction: ledger.Credit, Amount: vnd(amount)},
		},
	}
}

func checkInvariants(t *testing.T, db *pgtest.DB) {
	t.Helper()
	v, err := ledger.CheckInvariants(context.Background(), db.Pool)
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
	for _, x := range v {
		t.Errorf("invariant broken: %s", x)
	}
}

func totals(t *testing.T, l *ledger.Ledger, code string) ledger.Totals {
	t.Helper()
	_, tot, _, err := l.Balance(context.Background(), code, ledger.AsOf{})
	if err != nil {
		t.Fatalf("balance %s: %v", code, err)
	}
	return tot
}

func TestPostReplayAndConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t, ledger.Options{})
	open(t, l, "cash", ledger.Asset, "M1", 0)
	open(t, l, "payable", ledger.Liability, "M1", ledger.FlagDebitsMustNotExceedCredits)

	first, err := l.Post(ctx, transfer("k1", "M1", "cash", "payable", 150000))
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || first.Entry.Seq != 1 || len(first.Entry.Hash) != 32 {
		t.Fatalf("first write: %+v", first)
	}
	again, err := l.Post(ctx, transfer("k1", "M1", "cash", "payable", 150000))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Entry.ID != first.Entry.ID {
		t.Fatalf("replay: got %+v, want replay of %s", again, first.Entry.ID)
	}
	_, err = l.Post(ctx, transfer("k1", "M1", "cash", "payable", 150001))
	if !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("conflict: got %v", err)
	}
	if want := `postings[0].amount: stored "150000", got "150001"`; !contains(err.Error(), want) {
		t.Fatalf("conflict message %q does not name the difference %q", err, want)
	}
	if got := totals(t, l, "payable"); got.CreditsPosted != 150000 {
		t.Fatalf("payable credits posted %d, want 150000", got.CreditsPosted)
	}
	// Debits beyond credits on the limited account are refused.
	_, err = l.Post(ctx, transfer("k2", "M1", "payable", "cash", 150001))
	if !errors.Is(err, ledger.ErrExceedsCredits) {
		t.Fatalf("overdraw: got %v", err)
	}
	checkInvariants(t, db)
}

func TestTwoPhase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	clock := &now
	l, db := newLedger(t, ledger.Options{Now: func() time.Time { return *clock }})
	open(t, l, "clearing", ledger.Asset, "M1", 0)
	open(t, l, "payable", ledger.Liability, "M1", ledger.FlagDebitsMustNotExceedCredits)
	open(t, l, "fees", ledger.Revenue, "M1", 0)

	pay := func(key string, amount int64) ledger.Entry {
		r := ledger.EntryRequest{
			IdempotencyKey: key, Market: "M1", Kind: "payment", Currency: "VND", Pending: true, PendingTimeout: time.Hour,
			Postings: []ledger.PostingInput{
				{AccountCode: "clearing", Direction: ledger.Debit, Amount: vnd(amount)},
				{AccountCode: "payable", Direction: ledger.Credit, Amount: vnd(amount - amount/100)},
				{AccountCode: "fees", Direction: ledger.Credit, Amount: vnd(amount / 100)},
			},
		}
		res, err := l.Post(ctx, r)
		if err != nil {
			t.Fatalf("pending %s: %v", key, err)
		}
		return res.Entry
	}
	full := pay("p1", 100000)
	partial := pay("p2", 50000)
	voided := pay("p3", 20000)
	expiring := pay("p4", 10000)

	if got := totals(t, l, "payable"); got != (ledger.Totals{CreditsPending: 178200}) {
		t.Fatalf("payable pending totals %+v", got)
	}

	// An id in capitals names the same entry, and a retry in lower case is
	// the same request.
	if _, err := l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c1", PendingID: strings.ToUpper(full.ID), Kind: "confirm"}); err != nil {
		t.Fatalf("post full: %v", err)
	}
	if res, err := l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c1", PendingID: full.ID, Kind: "confirm"}); err != nil || !res.Replayed {
		t.Fatalf("post full again, id in lower case: %+v, %v", res, err)
	}
	_, err := l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c1b", PendingID: full.ID, Kind: "confirm"})
	if !errors.Is(err, ledger.ErrPendingClosed) {
		t.Fatalf("post twice: got %v", err)
	}
	_, err = l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c2x", PendingID: partial.ID, Kind: "confirm",
		Postings: []ledger.PostingInput{
			{AccountCode: "clearing", Direction: ledger.Debit, Amount: vnd(50001)},
			{AccountCode: "payable", Direction: ledger.Credit, Amount: vnd(50001)},
		}})
	if !errors.Is(err, ledger.ErrExceedsPending) {
		t.Fatalf("post more than pending: got %v", err)
	}
	if _, err := l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c2", PendingID: partial.ID, Kind: "confirm",
		Postings: []ledger.PostingInput{
			{AccountCode: "clearing", Direction: ledger.Debit, Amount: vnd(30000)},
			{AccountCode: "payable", Direction: ledger.Credit, Amount: vnd(30000)},
		}}); err != nil {
		t.Fatalf("partial post: %v", err)
	}
	if _, err := l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c3", PendingID: voided.ID, Void: true, Kind: "reject"}); err != nil {
		t.Fatalf("void: %v", err)
	}

	later := now.Add(2 * time.Hour)
	clock = &later
	_, err = l.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: "c4", PendingID: expiring.ID, Kind: "confirm"})
	if !errors.Is(err, ledger.ErrPendingExpired) {
		t.Fatalf("post expired: got %v", err)
	}
	n, err := l.ExpireDue(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expire: %d, %v; want 1", n, err)
	}
	got, err := l.GetEntry(ctx, expiring.ID)
	if err != nil || got.PendingState != ledger.PendingVoided {
		t.Fatalf("expired entry: %+v, %v", got, err)
	}

	want := ledger.Totals{CreditsPosted: 129000}
	if got := totals(t, l, "payable"); got != want {
		t.Fatalf("payable totals %+v, want %+v", got, want)
	}
	if got := totals(t, l, "clearing"); got != (ledger.Totals{DebitsPosted: 130000}) {
		t.Fatalf("clearing totals %+v", got)
	}
	checkInvariants(t, db)

	// As of the sequence right after the pending entries, everything was
	// pending.
	_, tot, _, err := l.Balance(ctx, "payable", ledger.AsOf{Seq: 4})
	if err != nil || tot != (ledger.Totals{CreditsPending: 178200}) {
		t.Fatalf("payable as of 4: %+v, %v", tot, err)
	}
	tb, err := l.TrialBalance(ctx, "M1", ledger.AsOf{Seq: 5}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tb.Totals {
		if !c.Balanced() {
			t.Fatalf("trial balance as of 5 unbalanced: %+v", c)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
