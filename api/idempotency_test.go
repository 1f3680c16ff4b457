package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// copies sends call n times at once and returns each copy's answer and
// error, in the order of the copies.
func copies[T any](n int, call func() (T, error)) ([]T, []error) {
	resps := make([]T, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resps[i], errs[i] = call()
		})
	}
	close(start)
	wg.Wait()
	return resps, errs
}

// The same confirmation or rejection of a payment, and the same post or
// void of a pending entry, sent many times at once: every copy gets the one
// entry it wrote, one of them fresh and the others as replays, never a
// refusal for the entry being closed already (by the copy that won).
func TestCopiesOfOneCloseSentAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, n, rounds = "TN-TEST-0001", 32, 8
	wantOne := func(what string, replayed []bool, ids []string, errs []error) {
		t.Helper()
		fresh := 0
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: copy %d: %v", what, i, err)
				continue
			}
			if ids[i] != ids[0] {
				t.Errorf("%s: copy %d answered %s, copy 0 %s", what, i, ids[i], ids[0])
			}
			if !replayed[i] {
				fresh++
			}
		}
		if fresh != 1 && !t.Failed() {
			t.Errorf("%s: %d copies answered fresh, want 1", what, fresh)
		}
	}
	for r := range rounds {
		for _, reject := range []bool{false, true} {
			p := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprintf("stall-%d-%v", r, reject), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR,
				Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
			var resps []interface {
				GetPayment() *pb.Payment
				GetReplayed() bool
			}
			var errs []error
			what := "ConfirmPayment"
			if reject {
				what = "RejectPayment"
				rs, es := copies(n, func() (*pb.RejectPaymentResponse, error) {
					return e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: fmt.Sprintf("close-%d-%v", r, reject), PaymentId: p.Id})
				})
				for _, x := range rs {
					resps = append(resps, x)
				}
				errs = es
			} else {
				rs, es := copies(n, func() (*pb.ConfirmPaymentResponse, error) {
					return e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: fmt.Sprintf("close-%d-%v", r, reject), PaymentId: p.Id})
				})
				for _, x := range rs {
					resps = append(resps, x)
				}
				errs = es
			}
			replayed, ids := make([]bool, n), make([]string, n)
			for i, x := range resps {
				if errs[i] == nil {
					replayed[i], ids[i] = x.GetReplayed(), x.GetPayment().GetStatus().String()+" "+x.GetPayment().GetId()
				}
			}
			wantOne(what, replayed, ids, errs)
		}
		for _, void := range []bool{false, true} {
			key := fmt.Sprintf("pending-%d-%v", r, void)
			pending, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: key, Market: testMarket, Kind: "hold", Currency: "VND", Pending: true,
				Postings: []*pb.PostingInput{posting("market:"+testMarket+":suspense", debit, "1000"), posting("market:"+testMarket+":fees", credit, "1000")}})
			if err != nil {
				t.Fatal(err)
			}
			replayed, ids := make([]bool, n), make([]string, n)
			var errs []error
			what := "PostPendingEntry"
			if void {
				what = "VoidPendingEntry"
				var rs []*pb.VoidPendingEntryResponse
				rs, errs = copies(n, func() (*pb.VoidPendingEntryResponse, error) {
					return e.client.VoidPendingEntry(ctx, &pb.VoidPendingEntryRequest{IdempotencyKey: key + "-close", PendingEntryId: pending.Entry.Id, Kind: "release"})
				})
				for i, x := range rs {
					replayed[i], ids[i] = x.GetReplayed(), x.GetEntry().GetId()
				}
			} else {
				var rs []*pb.PostPendingEntryResponse
				rs, errs = copies(n, func() (*pb.PostPendingEntryResponse, error) {
					return e.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{IdempotencyKey: key + "-close", PendingEntryId: pending.Entry.Id, Kind: "settle"})
				})
				for i, x := range rs {
					replayed[i], ids[i] = x.GetReplayed(), x.GetEntry().GetId()
				}
			}
			wantOne(what, replayed, ids, errs)
		}
		if t.Failed() {
			break
		}
	}
	e.checkInvariants(t)
}

// The same entry sent many times at once, when it takes all that a limited
// account holds: every copy gets the one entry, one fresh and the others as
// replays. A copy must not be refused for lack of the funds the entry it
// is a copy of took.
func TestCopiesOfOneLimitedEntrySentAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	const n, rounds = 32, 8
	e.account(t, "cash:M", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "M", false)
	e.account(t, "wallet:M", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", "M", true)
	for r := range rounds {
		if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: fmt.Sprintf("top-up-%d", r), Market: "M", Kind: "top_up", Currency: "VND",
			Postings: []*pb.PostingInput{posting("cash:M", debit, "5000"), posting("wallet:M", credit, "5000")}}); err != nil {
			t.Fatal(err)
		}
		for _, pending := range []bool{false, true} {
			key := fmt.Sprintf("withdraw-%d-%v", r, pending)
			resps, errs := copies(n, func() (*pb.PostEntryResponse, error) {
				return e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: key, Market: "M", Kind: "withdrawal", Currency: "VND", Pending: pending,
					Postings: []*pb.PostingInput{posting("wallet:M", debit, "5000"), posting("cash:M", credit, "5000")}})
			})
			fresh := 0
			for i, err := range errs {
				if err != nil {
					t.Errorf("%s: copy %d: %v", key, i, err)
					continue
				}
				if resps[i].Entry.Id != resps[0].GetEntry().GetId() {
					t.Errorf("%s: copy %d answered entry %s, copy 0 %s", key, i, resps[i].Entry.Id, resps[0].GetEntry().GetId())
				}
				if !resps[i].Replayed {
					fresh++
				}
			}
			if fresh != 1 && !t.Failed() {
				t.Errorf("%s: %d copies answered fresh, want 1", key, fresh)
			}
			if pending && !t.Failed() {
				if _, err := e.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{IdempotencyKey: key + "-post", PendingEntryId: resps[0].Entry.Id, Kind: "withdrawal"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: key + "-refill", Market: "M", Kind: "top_up", Currency: "VND",
				Postings: []*pb.PostingInput{posting("cash:M", debit, "5000"), posting("wallet:M", credit, "5000")}}); err != nil {
				t.Fatal(err)
			}
		}
		if t.Failed() {
			break
		}
	}
	e.checkInvariants(t)
}
