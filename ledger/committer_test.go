package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
)

// twoLedgers returns two ledgers on one database, standing for two
// processes: each has its own committers, so only the database's locks
// order them. a sweeps expired entries; b does not.
func twoLedgers(t *testing.T) (a, b *ledger.Ledger, db *pgtest.DB) {
	t.Helper()
	a, db = newLedger(t, ledger.Options{Committers: 2})
	b = ledger.New(db.Pool, ledger.Options{Committers: 2, ExpiryInterval: -1})
	t.Cleanup(b.Close)
	return a, b, db
}

// Two ledgers, two processes: every pending entry gets a post and a void at
// once, one from each ledger. Exactly one closes it, the other is told the
// entry was closed and by which entry. Plain transfers run alongside on the
// same hot accounts. Afterwards the totals are what the winners add up to and the
// invariants hold.
func TestRacingClosesAcrossLedgers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, db := twoLedgers(t)
	const markets, pendings = 3, 120
	for m := range markets {
		mk := fmt.Sprintf("M%d", m)
		open(t, a, "clearing:"+mk, ledger.Asset, mk, 0)
		open(t, a, "payable:"+mk, ledger.Liability, mk, ledger.FlagDebitsMustNotExceedCredits)
	}

	var entries []ledger.Entry
	for i := range pendings {
		mk := fmt.Sprintf("M%d", i%markets)
		r := transfer(fmt.Sprintf("p%d", i), mk, "clearing:"+mk, "payable:"+mk, int64(1000+i))
		r.Pending, r.PendingTimeout = true, time.Hour
		res, err := a.Post(ctx, r)
		if err != nil {
			t.Fatalf("pending %d: %v", i, err)
		}
		entries = append(entries, res.Entry)
	}

	type outcome struct {
		res ledger.Result
		err error
	}
	posts := make([]outcome, pendings)
	voids := make([]outcome, pendings)
	var wg sync.WaitGroup
	for i, e := range entries {
		poster, voider := a, b
		if i%2 == 1 {
			poster, voider = b, a
		}
		wg.Go(func() {
			posts[i].res, posts[i].err = poster.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: e.IdempotencyKey + "-post", PendingID: e.ID, Kind: "confirm"})
		})
		wg.Go(func() {
			voids[i].res, voids[i].err = voider.ClosePending(ctx, ledger.CloseRequest{IdempotencyKey: e.IdempotencyKey + "-void", PendingID: e.ID, Void: true, Kind: "reject"})
		})
		wg.Go(func() {
			mk := fmt.Sprintf("M%d", i%markets)
			if _, err := voider.Post(ctx, transfer(fmt.Sprintf("t%d", i), mk, "clearing:"+mk, "payable:"+mk, 7)); err != nil {
				t.Errorf("transfer %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	var posted int64
	for i, e := range entries {
		p, v := posts[i], voids[i]
		if (p.err == nil) == (v.err == nil) {
			t.Fatalf("pending %s: post %v, void %v; want exactly one to close it", e.ID, p.err, v.err)
		}
		winner, loser := p, v
		if p.err != nil {
			winner, loser = v, p
		} else {
			posted += e.Postings[0].Amount
		}
		if !errors.Is(loser.err, ledger.ErrPendingClosed) || !strings.Contains(loser.err.Error(), winner.res.Entry.ID) {
			t.Fatalf("pending %s: the losing close got %v; want it closed by %s", e.ID, loser.err, winner.res.Entry.ID)
		}
	}
	for m := range markets {
		mk := fmt.Sprintf("M%d", m)
		var want int64
		for i, e := range entries {
			if i%markets == m && posts[i].err == nil {
				want += e.Postings[0].Amount
			}
		}
		want += 7 * pendings / markets
		if got := totals(t, a, "payable:"+mk); got != (ledger.Totals{CreditsPosted: want}) {
			t.Errorf("payable:%s totals %+v, want %d posted and nothing pending", mk, got, want)
		}
	}
	if posted == 0 {
		t.Fatal("every race was won by the void; the test raced nothing")
	}
	checkInvariants(t, db)
}

// Rounds of two ledgers (two processes) and their committers, many small
// ones at once, all moving the same two accounts: every round must see the
// totals every earlier round committed, or an update is lost. Each round
// reads the accounts only under the ledger head, so the totals are exactly
// what the entries add up to.
func TestConcurrentRoundsKeepTotalsExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, db := twoLedgers(t)
	open(t, a, "clearing:M", ledger.Asset, "M", 0)
	open(t, a, "payable:M", ledger.Liability, "M", ledger.FlagDebitsMustNotExceedCredits)

	const writers, each = 32, 40
	var wg sync.WaitGroup
	for w := range writers {
		l := a
		if w%2 == 1 {
			l = b
		}
		wg.Go(func() {
			for i := range each {
				if _, err := l.Post(ctx, transfer(fmt.Sprintf("w%d-%d", w, i), "M", "clearing:M", "payable:M", int64(1+w))); err != nil {
					t.Errorf("writer %d, entry %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	var want int64
	for w := range writers {
		want += each * int64(1+w)
	}
	if got := totals(t, a, "payable:M"); got != (ledger.Totals{CreditsPosted: want}) {
		t.Errorf("payable:M totals %+v, want %d posted", got, want)
	}
	checkInvariants(t, db)
}

// Two ledgers, two processes, one key: every write is sent several times at
// once through both, and once with another amount. Only the database's
// unique index of keys (by their digest, migration 00012) stands between
// the processes, since each groups repeated keys only among its own writes.
// Each key is recorded once, by whichever sending came first: the sendings
// equal to it are answered with its entry as a replay, the others are
// refused as a conflict.
func TestSameKeyAcrossLedgers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, db := twoLedgers(t)
	open(t, a, "clearing:M", ledger.Asset, "M", 0)
	open(t, a, "payable:M", ledger.Liability, "M", ledger.FlagDebitsMustNotExceedCredits)

	const keys, copies = 60, 7 // the last copy of each key asks for 1 more
	type sent struct {
		amount int64
		res    ledger.Result
		err    error
	}
	sends := make([][copies]sent, keys)
	var wg sync.WaitGroup
	for k := range keys {
		for c := range copies {
			l := a
			if c%2 == 1 {
				l = b
			}
			s := &sends[k][c]
			s.amount = 1000
			if c == copies-1 {
				s.amount = 1001
			}
			wg.Go(func() {
				s.res, s.err = l.Post(ctx, transfer(fmt.Sprintf("race-%d", k), "M", "clearing:M", "payable:M", s.amount))
			})
		}
	}
	wg.Wait()

	var want int64
	var recorded []string
	for k := range keys {
		first := &sends[k][theRecorded(t, fmt.Sprintf("key %d", k), len(sends[k]), func(c int) (ledger.Result, error) { return sends[k][c].res, sends[k][c].err })]
		for c, s := range sends[k] {
			switch {
			case s.amount == first.amount && (s.err != nil || s.res.Entry.ID != first.res.Entry.ID):
				t.Fatalf("key %d, sending %d: got %v (entry %s); want entry %s", k, c, s.err, s.res.Entry.ID, first.res.Entry.ID)
			case s.amount != first.amount && !errors.Is(s.err, ledger.ErrIdempotencyConflict):
				t.Fatalf("key %d, sending %d of %d đồng: got %v; want a conflict with the recorded %d", k, c, s.amount, s.err, first.amount)
			}
		}
		want += first.amount
		recorded = append(recorded, fmt.Sprintf("race-%d", k))
	}
	missing, err := ledger.CheckAcknowledged(ctx, db.Pool, recorded)
	if err != nil || len(missing) > 0 {
		t.Fatalf("keys not recorded exactly once: %v (%v)", missing, err)
	}
	if got := totals(t, a, "payable:M"); got != (ledger.Totals{CreditsPosted: want}) {
		t.Fatalf("payable totals %+v, want %d posted", got, want)
	}
	checkInvariants(t, db)
}

// Two ledgers, two processes, one close: a post of each pending entry is
// sent several times at once through both with one key (a bank's retry
// while its first call is still in flight) with the bank's reference, and
// once as a void under the same key. The close is recorded once: the sendings equal to the one
// recorded are answered with its entry as a replay, the others are refused
// as a conflict, never told that the entry was closed by their own key.
func TestSameCloseKeyAcrossLedgers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, db := twoLedgers(t)
	open(t, a, "clearing:M", ledger.Asset, "M", 0)
	open(t, a, "payable:M", ledger.Liability, "M", ledger.FlagDebitsMustNotExceedCredits)

	const pendings, copies = 60, 7 // the last copy of each close is a void
	type sent struct {
		void bool
		res  ledger.Result
		err  error
	}
	sends := make([][copies]sent, pendings)
	var wg sync.WaitGroup
	for k := range pendings {
		r := transfer(fmt.Sprintf("p%d", k), "M", "clearing:M", "payable:M", 1000)
		r.Pending, r.PendingTimeout = true, time.Hour
		pe, err := a.Post(ctx, r)
		if err != nil {
			t.Fatalf("pending %d: %v", k, err)
		}
		for c := range copies {
			l := a
			if c%2 == 1 {
				l = b
			}
			s := &sends[k][c]
			s.void = c == copies-1
			wg.Go(func() {
				r := ledger.CloseRequest{IdempotencyKey: fmt.Sprintf("close-%d", k), PendingID: pe.Entry.ID, Void: s.void, Kind: "close"}
				if !s.void {
					r.ExternalRef = fmt.Sprintf("bank:ref-%d", k)
				}
				s.res, s.err = l.ClosePending(ctx, r)
			})
		}
	}
	wg.Wait()

	var recorded []string
	for k := range pendings {
		first := &sends[k][theRecorded(t, fmt.Sprintf("close %d", k), len(sends[k]), func(c int) (ledger.Result, error) { return sends[k][c].res, sends[k][c].err })]
		for c, s := range sends[k] {
			switch {
			case s.void == first.void && (s.err != nil || s.res.Entry.ID != first.res.Entry.ID):
				t.Errorf("close %d, sending %d: got %v (entry %s); want entry %s", k, c, s.err, s.res.Entry.ID, first.res.Entry.ID)
			case s.void != first.void && !errors.Is(s.err, ledger.ErrIdempotencyConflict):
				t.Errorf("close %d, sending %d (void %v): got %v; want a conflict with the recorded close (void %v)", k, c, s.void, s.err, first.void)
			}
		}
		recorded = append(recorded, fmt.Sprintf("close-%d", k))
	}
	missing, err := ledger.CheckAcknowledged(ctx, db.Pool, recorded)
	if err != nil || len(missing) > 0 {
		t.Fatalf("keys not recorded exactly once: %v (%v)", missing, err)
	}
	checkInvariants(t, db)
}

// A write that only the database refuses, in a round of others, fails
// alone: the round is rolled back and its writes are committed one by one.
// Every connection goes back to the pool out of its transaction, whether
// its round wrote, was refused, or only answered replays, so the pool keeps
// reusing them.
func TestRoundsEndTheirTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t, ledger.Options{Committers: 1})
	open(t, l, "clearing:M", ledger.Asset, "M", 0)
	open(t, l, "payable:M", ledger.Liability, "M", 0)
	// A rule the committer does not know, so only the database refuses.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE ledger_entries ADD CONSTRAINT refuse_poison CHECK (kind <> 'poison')`); err != nil {
		t.Fatal(err)
	}

	const n = 40
	reqs := make([]ledger.EntryRequest, n)
	var want int64
	for i := range reqs {
		reqs[i] = transfer(fmt.Sprintf("k%d", i), "M", "clearing:M", "payable:M", int64(1000+i))
		if i == 17 {
			reqs[i].Kind = "poison"
		} else {
			want += int64(1000 + i)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { _, errs[i] = l.Post(ctx, reqs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 17) != (err != nil) || (i == 17 && !errors.Is(err, ledger.ErrRefused)) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got := totals(t, l, "payable:M"); got != (ledger.Totals{CreditsPosted: want}) {
		t.Errorf("payable:M totals %+v, want %d posted", got, want)
	}

	before := db.Pool.Stat().NewConnsCount()
	for range 3 {
		for i, r := range reqs {
			res, err := l.Post(ctx, r)
			if (i == 17) != (err != nil) || (i != 17 && !res.Replayed) {
				t.Fatalf("write %d again: %+v, %v", i, res, err)
			}
		}
	}
	if _, err := l.Post(ctx, transfer("after", "M", "clearing:M", "payable:M", 5)); err != nil {
		t.Fatal(err)
	}
	if grew := db.Pool.Stat().NewConnsCount() - before; grew > 5 {
		t.Errorf("the pool opened %d connections over 121 rounds one after another: rounds are leaving theirs in a transaction", grew)
	}
	var inTx int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	if inTx != 0 {
		t.Errorf("%d sessions idle in a transaction", inTx)
	}
	checkInvariants(t, db)
}

// inOneRound returns a ledger with one committer and a function that
// writes requests in a single round: it holds the ledger head from another
// transaction while a first write waits for it, queues the requests behind
// that write, and lets the head go, so the committer takes them all at once.
func inOneRound(t *testing.T) (*ledger.Ledger, *pgtest.DB, func(reqs []any) []ledger.Outcome) {
	t.Helper()
	l, db := newLedger(t, ledger.Options{Committers: 1})
	open(t, l, "warm:a", ledger.Asset, "W", 0)
	open(t, l, "warm:b", ledger.Liability, "W", 0)
	n := 0
	return l, db, func(reqs []any) []ledger.Outcome {
		t.Helper()
		ctx := context.Background()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM ledger_head FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		n++
		warm := make(chan error, 1)
		go func() {
			_, err := l.Post(ctx, transfer(fmt.Sprint("warm-", n), "W", "warm:a", "warm:b", 1))
			warm <- err
		}()
		time.Sleep(200 * time.Millisecond) // the warm-up write's round waits for the head
		got := make(chan []ledger.Outcome, 1)
		go func() { got <- l.Write(ctx, reqs) }()
		time.Sleep(200 * time.Millisecond) // the requests wait in the queue
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-warm; err != nil {
			t.Fatalf("warm-up write: %v", err)
		}
		return <-got
	}
}

// A write the round refuses takes nothing, its external reference
// included: a later write of the same round with that reference is
// recorded, as it would be on its own. (A bank told the reference was
// recorded would never send it again.)
func TestRefusedWriteLeavesItsReferenceToTheRound(t *testing.T) {
	t.Parallel()
	l, db, inRound := inOneRound(t)
	open(t, l, "clearing:M", ledger.Asset, "M", 0)
	open(t, l, "payable:M", ledger.Liability, "M", ledger.FlagDebitsMustNotExceedCredits)
	refused := transfer("refused", "M", "payable:M", "clearing:M", 500) // from an empty payable
	refused.ExternalRef = "bank:REF-1"
	first := transfer("first", "M", "clearing:M", "payable:M", 500)
	first.ExternalRef = "bank:REF-1"
	second := transfer("second", "M", "clearing:M", "payable:M", 700)
	second.ExternalRef = "bank:REF-1"
	out := inRound([]any{refused, first, second})
	if !errors.Is(out[0].Err, ledger.ErrExceedsCredits) {
		t.Errorf("the payout from an empty payable: %v; want ErrExceedsCredits", out[0].Err)
	}
	if out[1].Err != nil {
		t.Errorf("the first accepted write with the reference: %v; want it recorded", out[1].Err)
	}
	if !errors.Is(out[2].Err, ledger.ErrDuplicateExternalRef) {
		t.Errorf("the second accepted write with the reference: %v; want ErrDuplicateExternalRef", out[2].Err)
	}
	if got := totals(t, l, "payable:M"); got.CreditsPosted != 500 || got.DebitsPosted != 0 {
		t.Errorf("payable:M credits %d, debits %d posted; want 500 and 0", got.CreditsPosted, got.DebitsPosted)
	}
	checkInvariants(t, db)
}

// A copy of a write with an external reference, whose round reads the
// keys just before the first copy commits and the references just after,
// is that key's replay: the reference is recorded by the entry of its own
// key, not by another write. (Reading a key of this test takes a second,
// to hold the two reads of the copy's round apart across the commit.)
func TestCopyFindsItsReferenceRecordedByItsOwnKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, db := twoLedgers(t)
	open(t, a, "clearing:M", ledger.Asset, "M", 0)
	open(t, a, "payable:M", ledger.Liability, "M", 0)
	if _, err := db.Pool.Exec(ctx, `CREATE OR REPLACE FUNCTION ledger_key_digest(key TEXT) RETURNS UUID
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT md5(key)::uuid FROM pg_sleep(CASE WHEN key LIKE 'slow-%' THEN 1 ELSE 0 END) $$`); err != nil {
		t.Fatal(err)
	}
	r := transfer("slow-1", "M", "clearing:M", "payable:M", 1000)
	r.ExternalRef = "bank:REF-1"
	var first, copied ledger.Result
	var firstErr, copyErr error
	var wg sync.WaitGroup
	wg.Go(func() { first, firstErr = a.Post(ctx, r) })
	// The first copy reads its key (1 s), then writes it (1 s, under the
	// head); the copy reads its key from halfway through that write until
	// after it committed.
	time.Sleep(1500 * time.Millisecond)
	wg.Go(func() { copied, copyErr = b.Post(ctx, r) })
	wg.Wait()
	if firstErr != nil || copyErr != nil {
		t.Fatalf("the write: %v; its copy: %v", firstErr, copyErr)
	}
	if first.Replayed || !copied.Replayed || copied.Entry.ID != first.Entry.ID {
		t.Fatalf("the write: entry %s (replayed %v); its copy: entry %s (replayed %v)", first.Entry.ID, first.Replayed, copied.Entry.ID, copied.Replayed)
	}
	checkInvariants(t, db)
}

// theRecorded is the one of n sendings of a key that recorded it: answered
// without error, and not as a replay. None, or more than one, fails t.
func theRecorded(t *testing.T, what string, n int, outcome func(c int) (ledger.Result, error)) int {
	t.Helper()
	recorded := -1
	for c := range n {
		res, err := outcome(c)
		if err != nil || res.Replayed {
			continue
		}
		if recorded >= 0 {
			first, _ := outcome(recorded)
			t.Fatalf("%s: recorded twice, as %s and %s", what, first.Entry.ID, res.Entry.ID)
		}
		recorded = c
	}
	if recorded < 0 {
		t.Fatalf("%s: no sending was recorded", what)
	}
	return recorded
}

// An entry opens the accounts it names to open only if it is recorded: one
// refused in its round opens none, and a later write of the round cannot
// post to it, while one recorded opens its account for the writes after
// it. An account that exists with other attributes refuses the entry.
func TestEntryOpensItsAccountsOnlyIfRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, inRound := inOneRound(t)
	open(t, l, "clearing:M", ledger.Asset, "M", 0)
	open(t, l, "payable:M", ledger.Liability, "M", ledger.FlagDebitsMustNotExceedCredits)
	bank := func(code string) ledger.AccountSpec {
		return ledger.AccountSpec{Code: code, Type: ledger.Asset, Currency: "VND", Market: "M", Flags: ledger.FlagCreditsMustNotExceedDebits}
	}
	refused := transfer("refused", "M", "clearing:M", "bank:y", 500) // a credit to a bank that has received nothing
	refused.Opens = []ledger.AccountSpec{bank("bank:y")}
	credit := transfer("credit", "M", "bank:x", "clearing:M", 500)
	credit.Opens = []ledger.AccountSpec{bank("bank:x")}
	out := inRound([]any{
		refused,
		credit,
		transfer("after-credit", "M", "bank:x", "clearing:M", 100),
		transfer("after-refused", "M", "bank:y", "clearing:M", 100),
	})
	for i, want := range []error{ledger.ErrExceedsDebits, nil, nil, ledger.ErrAccountNotFound} {
		if err := out[i].Err; !errors.Is(err, want) {
			t.Errorf("write %d of the round: %v; want %v", i, err, want)
		}
	}
	if _, err := l.GetAccount(ctx, "bank:y"); !errors.Is(err, ledger.ErrAccountNotFound) {
		t.Errorf("the refused write's account: %v; want it not opened", err)
	}
	a, err := l.GetAccount(ctx, "bank:x")
	if err != nil || a.Flags != ledger.FlagCreditsMustNotExceedDebits || a.Totals.DebitsPosted != 600 {
		t.Errorf("the recorded write's account: %+v, %v; want it open with its flag and 600 debited", a, err)
	}

	other := transfer("other", "M", "clearing:M", "payable:M", 100)
	other.Opens = []ledger.AccountSpec{bank("payable:M")}
	if _, err := l.Post(ctx, other); !errors.Is(err, ledger.ErrAccountExists) {
		t.Errorf("opening an account that exists as another: %v; want ErrAccountExists", err)
	}
	unposted := transfer("unposted", "M", "clearing:M", "payable:M", 100)
	unposted.Opens = []ledger.AccountSpec{bank("bank:z")}
	if _, err := l.Post(ctx, unposted); !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), "opens[0].code") {
		t.Errorf("opening an account the entry does not post to: %v; want ErrInvalid naming opens[0].code", err)
	}
	checkInvariants(t, db)
}
