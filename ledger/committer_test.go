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
