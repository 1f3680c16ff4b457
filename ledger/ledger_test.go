package ledger_test

import (
	"context"
	"errors"
	"fmt"
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

// tamper runs sql the way someone with the database's superuser password
// could: with the append-only triggers disabled.
func tamper(t *testing.T, db *pgtest.DB, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET session_replication_role = origin`); err != nil {
		t.Fatal(err)
	}
}

// verifiedJournal opens two accounts of market M1 and records five entries
// of 1000 to 5000 on them, the fourth of them pending; it checks that
// VerifyJournal finds them intact.
func verifiedJournal(t *testing.T) (*ledger.Ledger, *pgtest.DB, []ledger.Entry) {
	t.Helper()
	ctx := context.Background()
	l, db := newLedger(t, ledger.Options{})
	open(t, l, "cash", ledger.Asset, "M1", 0)
	open(t, l, "payable", ledger.Liability, "M1", 0)
	var out []ledger.Entry
	for i := range 5 {
		r := transfer(fmt.Sprint("k", i), "M1", "cash", "payable", int64(1000*(i+1)))
		r.Pending = i == 3
		r.Metadata = map[string]string{"stall": fmt.Sprint(i)}
		res, err := l.Post(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Entry)
	}
	v, err := l.VerifyJournal(ctx, "M1", 0, 0)
	if err != nil || v.Broken != nil || v.EntriesChecked != 5 || v.LastSeq != out[4].Seq {
		t.Fatalf("before tampering: %+v, %v", v, err)
	}
	return l, db, out
}

// Changes behind the service's back that the entry's own hash does not
// show are found by VerifyJournal too, at the entry they touch.
func TestVerifyJournalFindsTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		victim int
		sql    []string
		reason string // part of the broken link's reason
	}{
		{"newest entry deleted", 4, []string{
			`DELETE FROM ledger_postings WHERE entry_seq = $1`,
			`DELETE FROM ledger_entries WHERE seq = $1`,
		}, "entries at its end were deleted"},
		{"chain head moved back", 4, []string{
			`UPDATE ledger_chain_heads SET last_seq = $1 - 1 WHERE market = 'M1'`,
		}, "past its chain head"},
		{"chain head's hash changed", 4, []string{
			`UPDATE ledger_chain_heads SET hash = sha256(hash) WHERE last_seq = $1`,
		}, "the entry was replaced or the head changed"},
		{"metadata not a string", 2, []string{
			`UPDATE ledger_entries SET metadata = '{"stall": 99}' WHERE seq = $1`,
		}, `metadata {"stall": 99} is not an object of strings`},
		{"metadata not an object", 4, []string{
			`UPDATE ledger_entries SET metadata = '["2"]' WHERE seq = $1`,
		}, `metadata ["2"] is not an object of strings`},
		{"posted entry's postings made pending", 1, []string{
			`UPDATE ledger_postings SET pending = true WHERE entry_seq = $1`,
		}, "postings[0] (debit on cash) is stored with pending true, but the postings of a posted entry have pending false"},
		{"pending entry's posting made posted", 3, []string{
			`UPDATE ledger_postings SET pending = false WHERE entry_seq = $1 AND idx = 1`,
		}, "postings[1] (credit on payable) is stored with pending false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, db, entries := verifiedJournal(t)
			victim := entries[tc.victim]
			for _, sql := range tc.sql {
				tamper(t, db, sql, victim.Seq)
			}
			v, err := l.VerifyJournal(ctx, "M1", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			wantID := victim.ID
			if strings.HasPrefix(tc.sql[0], "DELETE") {
				wantID = "" // gone
			}
			if v.Broken == nil || v.Broken.Seq != victim.Seq || v.Broken.EntryID != wantID || !strings.Contains(v.Broken.Reason, tc.reason) {
				t.Fatalf("got %+v (broken %+v), want the broken link at seq %d, entry %q, the reason saying %q", v, v.Broken, victim.Seq, wantID, tc.reason)
			}
			t.Logf("broken link: %s", v.Broken.Reason)
			// The entries before it still verify, as a range.
			if tc.victim > 0 {
				v, err := l.VerifyJournal(ctx, "M1", 0, entries[tc.victim-1].Seq)
				if err != nil || v.Broken != nil || v.EntriesChecked != int64(tc.victim) {
					t.Fatalf("entries before the tampered one: %+v, %v", v, err)
				}
			}
		})
	}
}

// A journal that ends at its chain head verifies, down to the chain of a
// market without entries and a range past the newest entry.
func TestVerifyJournalEndsAtChainHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _, entries := verifiedJournal(t)
	open(t, l, "cash2", ledger.Asset, "M2", 0)
	for _, tc := range []struct {
		name     string
		market   string
		from, to int64
		checked  int64
	}{
		{"market without entries", "M2", 0, 0, 0},
		{"range past the newest entry", "M1", entries[4].Seq + 1, 0, 0},
		{"newest entry alone", "M1", entries[4].Seq, 0, 1},
		{"closed range", "M1", entries[1].Seq, entries[3].Seq, 3},
	} {
		v, err := l.VerifyJournal(ctx, tc.market, tc.from, tc.to)
		if err != nil || v.Broken != nil || v.EntriesChecked != tc.checked {
			t.Errorf("%s: got %+v, %v; want intact, %d entries checked", tc.name, v, err, tc.checked)
		}
	}
	// A market the ledger holds nothing of has no journal to call intact.
	if v, err := l.VerifyJournal(ctx, "M3", 0, 0); !errors.Is(err, ledger.ErrAccountNotFound) {
		t.Errorf("market without accounts: got %+v, %v; want ErrAccountNotFound", v, err)
	}
}

// Postings added behind the service's back that belong to no entry of the
// market move its balances as surely as a changed entry, and the hash of
// no entry covers them: VerifyJournal finds them by the sequence they
// name, and so does CheckInvariants, even with the accounts' totals
// brought into line with them.
func TestVerifyJournalFindsPostingsOfNoEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		seq  func(t *testing.T, l *ledger.Ledger, entries []ledger.Entry) int64
	}{
		{"beyond the journal", func(_ *testing.T, _ *ledger.Ledger, entries []ledger.Entry) int64 { return entries[4].Seq + 1000 }},
		{"before the first entry", func(*testing.T, *ledger.Ledger, []ledger.Entry) int64 { return 0 }},
		{"an entry of another market", func(t *testing.T, l *ledger.Ledger, _ []ledger.Entry) int64 {
			open(t, l, "cash2", ledger.Asset, "M2", 0)
			open(t, l, "payable2", ledger.Liability, "M2", 0)
			res, err := l.Post(ctx, transfer("other", "M2", "cash2", "payable2", 700))
			if err != nil {
				t.Fatal(err)
			}
			return res.Entry.Seq
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, db, entries := verifiedJournal(t)
			seq := tc.seq(t, l, entries)
			before := totals(t, l, "payable")
			tamper(t, db, `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
SELECT $1::bigint, 2, id, 'D', false, 500000 FROM ledger_accounts WHERE code = 'cash'
UNION ALL
SELECT $1::bigint, 3, id, 'C', false, 500000 FROM ledger_accounts WHERE code = 'payable'`, seq)
			tamper(t, db, `UPDATE ledger_accounts SET debits_posted = debits_posted + 500000 WHERE code = 'cash'`)
			tamper(t, db, `UPDATE ledger_accounts SET credits_posted = credits_posted + 500000 WHERE code = 'payable'`)
			if after := totals(t, l, "payable"); after.CreditsPosted != before.CreditsPosted+500000 {
				t.Fatalf("payable credits posted %d, then %d: the tampering did not take", before.CreditsPosted, after.CreditsPosted)
			}

			v, err := l.VerifyJournal(ctx, "M1", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if v.Broken == nil || v.Broken.Seq != seq || v.Broken.EntryID != "" || !strings.Contains(v.Broken.Reason, "added behind the ledger's back") {
				t.Fatalf("got %+v (broken %+v), want the broken link at seq %d, naming no entry, saying the posting was added", v, v.Broken, seq)
			}
			t.Logf("broken link: %s", v.Broken.Reason)
			violations, err := ledger.CheckInvariants(ctx, db.Pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(violations) == 0 {
				t.Error("CheckInvariants finds nothing")
			}
		})
	}
}

// An entry inserted by hand below the first sequence, which the ledger
// never writes, is not the predecessor of a range from the beginning, even
// with the genesis hash stored as its own: VerifyJournal names it.
func TestVerifyJournalFindsEntryBelowTheFirstSequence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, _ := verifiedJournal(t)
	const id = "01900000-0000-7000-8000-000000000001"
	tamper(t, db, `INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, idempotency_key, request_hash, occurred_at, recorded_at, metadata, hash)
VALUES (-5, $1, 'M1', 'test', 'posted', 'VND', 'forged', '\x00', now(), now(), '{}', $2)`, id, make([]byte, 32))
	tamper(t, db, `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
SELECT -5, 0, id, 'D', false, 500000 FROM ledger_accounts WHERE code = 'cash'
UNION ALL
SELECT -5, 1, id, 'C', false, 500000 FROM ledger_accounts WHERE code = 'payable'`)
	for _, from := range []int64{0, 1} {
		v, err := l.VerifyJournal(ctx, "M1", from, 0)
		if err != nil {
			t.Fatal(err)
		}
		if v.Broken == nil || v.Broken.Seq != -5 || v.Broken.EntryID != id || !strings.Contains(v.Broken.Reason, "added behind the ledger's back") {
			t.Errorf("from %d: got %+v (broken %+v), want the broken link at seq -5, entry %s, saying it was added", from, v, v.Broken, id)
		}
	}
}

// A market's chain head is a row like any other: deleted, alone or along
// with a change to one of the market's entries, it must not take the
// market's chain out of what CheckInvariants verifies.
func TestCheckInvariantsVerifiesMarketsWithoutChainHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		changed bool
		reason  string
	}{
		{"head deleted", false, "past its chain head at seq 0"},
		{"entry changed, head deleted", true, "the entry or its postings were changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, db, entries := verifiedJournal(t)
			if tc.changed {
				tamper(t, db, `UPDATE ledger_entries SET metadata = '{"stall": "99"}' WHERE seq = $1`, entries[2].Seq)
			}
			tamper(t, db, `DELETE FROM ledger_chain_heads WHERE market = 'M1'`)
			violations, err := ledger.CheckInvariants(ctx, db.Pool)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range violations {
				t.Logf("violation: %s", v)
				found = found || (v.Invariant == "hash chain" && strings.Contains(v.Detail, "market M1") && strings.Contains(v.Detail, tc.reason))
			}
			if !found {
				t.Errorf("CheckInvariants finds %v; want the chain of market M1, whose head was deleted, broken: %q", violations, tc.reason)
			}
		})
	}
}

// The sweeper finds what to expire by the open-pending list's times, not
// by the entries' own: a time changed there voids a pending entry before
// its timeout (a stall's payment the bank was still to confirm), or never.
// CheckInvariants finds the list out of step with the entries before the
// sweeper acts on it.
func TestCheckInvariantsFindsOpenPendingExpiryChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, expires string
	}{
		{"brought forward", `now() - interval '1 second'`},
		{"put off", `'infinity'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, db, entries := verifiedJournal(t)
			pending := entries[3]
			tamper(t, db, `UPDATE ledger_open_pending SET expires_at = `+tc.expires+` WHERE entry_seq = $1`, pending.Seq)
			violations, err := ledger.CheckInvariants(ctx, db.Pool)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range violations {
				t.Logf("violation: %s", v)
				found = found || strings.Contains(v.Detail, pending.ID)
			}
			if !found {
				t.Errorf("CheckInvariants finds %v; want entry %s, whose expiry the open-pending list no longer holds", violations, pending.ID)
			}
		})
	}
}

// A sweep voids every pending entry past its timeout, however many fell
// due at once: a peak of stall payments expires a day later at the rate it
// came, and entries left for later sweeps would show pending, and be
// released in the reports on a later day, after they expired.
func TestExpireDueVoidsEveryDueEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	clock := &now
	l, db := newLedger(t, ledger.Options{Now: func() time.Time { return *clock }})
	open(t, l, "clearing", ledger.Asset, "M1", 0)
	open(t, l, "payable", ledger.Liability, "M1", ledger.FlagDebitsMustNotExceedCredits)
	const due = 1201 // more than two of a sweep's batches
	reqs := make([]any, due)
	for i := range reqs {
		r := transfer(fmt.Sprint("p", i), "M1", "clearing", "payable", 1000)
		r.Pending, r.PendingTimeout = true, time.Hour
		reqs[i] = r
	}
	for i, out := range l.Write(ctx, reqs) {
		if out.Err != nil {
			t.Fatalf("pending %d: %v", i, out.Err)
		}
	}
	later := now.Add(2 * time.Hour)
	clock = &later
	if n, err := l.ExpireDue(ctx); err != nil || n != due {
		t.Fatalf("expire: %d, %v; want %d", n, err, due)
	}
	if got := totals(t, l, "payable"); got != (ledger.Totals{}) {
		t.Errorf("payable totals after the sweep %+v; want nothing pending", got)
	}
	checkInvariants(t, db)
}
