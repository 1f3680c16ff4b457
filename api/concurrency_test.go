package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
)

// Many writers over hot and cold accounts, with a share of requests sent
// twice (at once, from two goroutines) under the same key: afterwards every
// acknowledged key is in the ledger exactly once, every account total is
// what the acknowledged entries add up to, and the invariants hold.
func TestConcurrentWritersKeepTheLedgerExact(t *testing.T) {
	t.Parallel()
	const (
		writers       = 32
		entriesEach   = 640 // 20,480 entries in all
		markets       = 4
		merchantsEach = 50
		resendEvery   = 7  // every 7th request is sent twice at once
		withdrawEvery = 11 // every 11th is a debit on a limited account, which may be refused
		pendingEvery  = 5  // every 5th is pending, then posted or voided
	)
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	for m := range markets {
		mk := fmt.Sprintf("M%d", m)
		e.account(t, "clearing:"+mk, pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", mk, false) // hot
		e.account(t, "fees:"+mk, pb.AccountType_ACCOUNT_TYPE_REVENUE, "VND", mk, false)   // hot
		for x := range merchantsEach {
			e.account(t, fmt.Sprintf("payable:%s:%d", mk, x), pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", mk, true) // cold
		}
	}

	var (
		mu       sync.Mutex
		acked    []string
		expected = map[string]*ledger.Totals{}
		refused  int
	)
	record := func(entry *pb.Entry) {
		mu.Lock()
		defer mu.Unlock()
		acked = append(acked, entry.IdempotencyKey)
		pendingSide := entry.Phase == pb.EntryPhase_ENTRY_PHASE_PENDING
		for _, p := range entry.Postings {
			amount, _ := strconv.ParseInt(p.Amount, 10, 64)
			tot := expected[p.AccountCode]
			if tot == nil {
				tot = &ledger.Totals{}
				expected[p.AccountCode] = tot
			}
			switch {
			case p.Direction == debit && pendingSide:
				tot.DebitsPending += amount
			case p.Direction == credit && pendingSide:
				tot.CreditsPending += amount
			case p.Direction == debit:
				tot.DebitsPosted += amount
			default:
				tot.CreditsPosted += amount
			}
		}
	}
	release := func(pending *pb.Entry) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pending.Postings {
			amount, _ := strconv.ParseInt(p.Amount, 10, 64)
			if p.Direction == debit {
				expected[p.AccountCode].DebitsPending -= amount
			} else {
				expected[p.AccountCode].CreditsPending -= amount
			}
		}
	}

	// send posts r, and for a resent request posts it twice at once and
	// checks that both got the same entry, exactly one of them fresh.
	send := func(r *pb.PostEntryRequest, twice bool) (*pb.Entry, error) {
		if !twice {
			resp, err := e.client.PostEntry(ctx, r)
			if err != nil {
				return nil, err
			}
			return resp.Entry, nil
		}
		var wg sync.WaitGroup
		var resps [2]*pb.PostEntryResponse
		var errs [2]error
		for i := range 2 {
			wg.Go(func() { resps[i], errs[i] = e.client.PostEntry(ctx, r) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			if status.Code(errs[0]) != status.Code(errs[1]) {
				return nil, fmt.Errorf("the same request twice got different outcomes: %v / %v", errs[0], errs[1])
			}
			return nil, errs[0]
		}
		if resps[0].Entry.Id != resps[1].Entry.Id || resps[0].Replayed == resps[1].Replayed {
			return nil, fmt.Errorf("the same request twice: entries %s (replayed %v) and %s (replayed %v)",
				resps[0].Entry.Id, resps[0].Replayed, resps[1].Entry.Id, resps[1].Replayed)
		}
		return resps[0].Entry, nil
	}

	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range entriesEach {
				mk := fmt.Sprintf("M%d", rng.IntN(markets))
				// Skewed: half the traffic goes to two stalls per market.
				merchant := rng.IntN(merchantsEach)
				if rng.IntN(2) == 0 {
					merchant = rng.IntN(2)
				}
				payable := fmt.Sprintf("payable:%s:%d", mk, merchant)
				amount := 5000 + rng.Int64N(165001)
				fee := amount * 7 / 1000
				key := fmt.Sprintf("w%d-%d", w, i)
				r := &pb.PostEntryRequest{IdempotencyKey: key, Market: mk, Kind: "sale", Currency: "VND"}
				if i%withdrawEvery == 0 {
					r.Kind = "withdrawal"
					r.Postings = []*pb.PostingInput{posting(payable, debit, strconv.FormatInt(amount, 10)), posting("clearing:"+mk, credit, strconv.FormatInt(amount, 10))}
				} else {
					r.Postings = []*pb.PostingInput{
						posting("clearing:"+mk, debit, strconv.FormatInt(amount, 10)),
						posting(payable, credit, strconv.FormatInt(amount-fee, 10)),
						posting("fees:"+mk, credit, strconv.FormatInt(fee, 10)),
					}
					r.Pending = i%pendingEvery == 0
				}
				// A refused withdrawal stores nothing, so the same one sent twice at
				// once may be refused once and accepted once, as funds arrive in
				// between; only requests that cannot be refused are sent twice.
				entry, err := send(r, i%resendEvery == 0 && r.Kind != "withdrawal")
				if status.Code(err) == codes.FailedPrecondition && r.Kind == "withdrawal" {
					mu.Lock()
					refused++
					mu.Unlock()
					continue
				}
				if err != nil {
					errc <- fmt.Errorf("%s: %w", key, err)
					return
				}
				record(entry)
				if !r.Pending {
					continue
				}
				closeKey := key + "-close"
				if rng.IntN(3) == 0 {
					resp, err := e.client.VoidPendingEntry(ctx, &pb.VoidPendingEntryRequest{IdempotencyKey: closeKey, PendingEntryId: entry.Id, Kind: "reject"})
					if err != nil {
						errc <- fmt.Errorf("%s: %w", closeKey, err)
						return
					}
					release(entry)
					record(resp.Entry)
				} else {
					resp, err := e.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{IdempotencyKey: closeKey, PendingEntryId: entry.Id, Kind: "confirm"})
					if err != nil {
						errc <- fmt.Errorf("%s: %w", closeKey, err)
						return
					}
					release(entry)
					record(resp.Entry)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	if len(acked) < 20000 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	missing, err := ledger.CheckAcknowledged(ctx, e.db.Pool, acked)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged keys are not in the ledger exactly once, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	var entries int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries`).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if entries != len(acked) {
		t.Fatalf("ledger holds %d entries, %d writes were acknowledged", entries, len(acked))
	}
	for code, want := range expected {
		_, got, _, err := e.ledger.Balance(ctx, code, ledger.AsOf{})
		if err != nil {
			t.Fatal(err)
		}
		if got != *want {
			t.Errorf("account %s: totals %+v, acknowledged entries add up to %+v", code, got, *want)
		}
	}
	e.checkInvariants(t)
	t.Logf("%d writes acknowledged, %d withdrawals refused for lack of funds", len(acked), refused)
}
