package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// Copies of one CreatePayoutBatch sent at once, while the merchant's payable
// moves under them (a refund takes it below what is due, a payment brings
// it back): every copy answers the same batch, and a line is open exactly
// when its money is reserved in the ledger. A copy whose reservation was
// refused must not mark skipped a line another copy then reserves, which
// would leave the money reserved where no outcome can release it.
func TestCopiesOfOnePayoutBatchWhilePayablesMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const rounds, n = 12, 8
	owed := map[string]int64{}
	for r := range rounds {
		owed[fmt.Sprintf("PO-R-%02d", r)] = 100000
	}
	f := newPayoutFixture(t, "PO-R", owed, 100000*rounds)
	e := f.e
	for r := range rounds {
		code := fmt.Sprintf("PO-R-%02d", r)
		paid, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: code})
		if err != nil || len(paid.Payments) != 1 {
			t.Fatalf("payments of %s: %v, %v", code, paid, err)
		}
		cutOff := timestamppb.Now()
		stop := make(chan struct{})
		var moves sync.WaitGroup
		moves.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprintf("%s-refund-%d", code, i), PaymentId: paid.Payments[0].Id, Amount: "1000"}); err != nil && status.Code(err) != codes.FailedPrecondition {
					t.Errorf("refund: %v", err)
					return
				}
				e.record(t, bankNotice(fmt.Sprintf("%s-more-%d", code, i), code, "1000", fmt.Sprintf("FT-%s-MORE-%d", code, i)))
			}
		})
		resps, errs := copies(n, func() (*pb.CreatePayoutBatchResponse, error) {
			return e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch-" + code, Bank: "vcb", Market: f.market, CutOff: cutOff, PageSize: 100})
		})
		close(stop)
		moves.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: copy %d: %v", code, i, err)
			}
			if l, l0 := lineOf(resps[i].Lines, code), lineOf(resps[0].Lines, code); l.GetStatus() != l0.GetStatus() {
				t.Errorf("%s: copy %d answered its line %v, copy 0 %v", code, i, l, l0)
			}
		}
		// Every line is open exactly when the ledger holds its reservation;
		// then the bank reports them failed, for the next round.
		b, lines := e.allLines(t, resps[0].Batch.Id)
		var failed []*pb.PayoutResult
		for _, l := range lines {
			var reserved int
			if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_open_pending o JOIN ledger_entries e ON e.seq = o.entry_seq
 WHERE e.kind = 'payout' AND e.metadata->>'payout_batch' = $1 AND e.metadata->>'merchant' = $2`, b.Id, l.Merchant).Scan(&reserved); err != nil {
				t.Fatal(err)
			}
			if (l.Status == lineOpen) != (reserved == 1) {
				t.Errorf("round %d: line %v, with %d reservations in the ledger", r, l, reserved)
			}
			if l.Status == lineOpen {
				failed = append(failed, &pb.PayoutResult{Merchant: l.Merchant, Status: lineFailed, FailureReason: "thử lại"})
			}
		}
		if len(failed) > 0 {
			if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Id, Results: failed}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.checkInvariants(t)
}

// A refund's key sent again with another request is refused, naming what
// differs, and writes nothing: another reason, or no amount (the rest of
// the payment) where the key refunded a part. Sent again as it was, it is
// the original refund, replayed, even after the payment moved on.
func TestRefundKeyReusedWithAnotherRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	p := e.record(t, bankNotice("pay-1", a, "20000", "FT-REUSE-1")).Payment
	part := &pb.RefundPaymentRequest{IdempotencyKey: "refund-1", PaymentId: p.Id, Amount: "5000", Reason: "trả lại rau héo"}
	first, err := e.payments.RefundPayment(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	before := e.journalSize(t)
	for _, c := range []struct {
		name  string
		req   *pb.RefundPaymentRequest
		field string
	}{
		{"another amount", &pb.RefundPaymentRequest{IdempotencyKey: "refund-1", PaymentId: p.Id, Amount: "6000", Reason: part.Reason}, "5000"},
		{"the rest", &pb.RefundPaymentRequest{IdempotencyKey: "refund-1", PaymentId: p.Id, Reason: part.Reason}, "amount"},
		{"another reason", &pb.RefundPaymentRequest{IdempotencyKey: "refund-1", PaymentId: p.Id, Amount: "5000", Reason: "khách đổi ý"}, "reason"},
	} {
		_, err := e.payments.RefundPayment(ctx, c.req)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s under the key of a refund of 5000: %v; want AlreadyExists naming %s", c.name, err, c.field)
		}
	}
	if n := e.journalSize(t); n != before {
		t.Errorf("refused requests wrote: journal %v, then %v", before, n)
	}
	rest, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "refund-2", PaymentId: p.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  *pb.RefundPaymentRequest
		want *pb.RefundPaymentResponse
	}{{part, first}, {&pb.RefundPaymentRequest{IdempotencyKey: "refund-2", PaymentId: p.Id}, rest}} {
		again, err := e.payments.RefundPayment(ctx, c.req)
		if err != nil || !again.Replayed || again.EntryId != c.want.EntryId || again.Amount != c.want.Amount || again.FeeReturned != c.want.FeeReturned {
			t.Errorf("%s sent again: %v, %v; want the refund %s of %s replayed", c.req.IdempotencyKey, again, err, c.want.EntryId, c.want.Amount)
		}
	}
	e.checkInvariants(t)
}

// A payment request's key sent again with another merchant, amount or
// purpose is refused naming the field that differs, with what the key
// created and what came, as every other write's key is; it named none of
// them, quoting the request the key created, so the client had to find
// the difference itself.
func TestPaymentRequestKeyReusedWithAnotherRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	first := &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "30000", Purpose: "Rau cải"}
	if _, err := e.payments.CreatePaymentRequest(ctx, first); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  *pb.CreatePaymentRequestRequest
		want string
	}{
		{&pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0002", Amount: "30000", Purpose: "Rau cải"}, `merchant "TN-TEST-0001", got "TN-TEST-0002"`},
		{&pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "30001", Purpose: "Rau cải"}, `amount "30000", got "30001"`},
		{&pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "30000", Purpose: "Cà chua"}, `purpose "Rau cải", got "Cà chua"`},
	} {
		_, err := e.payments.CreatePaymentRequest(ctx, c.req)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("req-1 sent again as %v: %v; want AlreadyExists naming %s", c.req, err, c.want)
		}
	}
	again, err := e.payments.CreatePaymentRequest(ctx, first)
	if err != nil || !again.Replayed {
		t.Errorf("req-1 sent again as it was: %v, %v; want it replayed", again, err)
	}
}

// A payment's key sent again with another occur_time is refused naming it,
// as another amount is, and writes nothing; sent again as it was, it is the
// payment, replayed.
func TestPaymentKeyReusedWithAnotherOccurTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, r := range []*pb.RecordPaymentRequest{
		{IdempotencyKey: "stall-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		bankNotice("bank-1", "TN-TEST-0001", "30000", "FT-OCCUR-1"),
	} {
		r.OccurTime = timestamppb.New(at)
		first := e.record(t, r)
		before := e.journalSize(t)
		other := proto.Clone(r).(*pb.RecordPaymentRequest)
		other.OccurTime = timestamppb.New(at.Add(time.Minute))
		if _, err := e.payments.RecordPayment(ctx, other); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "occur_time") {
			t.Errorf("%s sent again with occur_time a minute later: %v; want AlreadyExists naming occur_time", r.IdempotencyKey, err)
		}
		if n := e.journalSize(t); n != before {
			t.Errorf("%s: the refused request wrote: journal %v, then %v", r.IdempotencyKey, before, n)
		}
		again, err := e.payments.RecordPayment(ctx, r)
		if err != nil || !again.Replayed || again.Payment.Id != first.Payment.Id {
			t.Errorf("%s sent again as it was: %v, %v; want payment %s replayed", r.IdempotencyKey, again, err, first.Payment.Id)
		}
	}
	e.checkInvariants(t)
}

// A confirmation's or rejection's key sent again for another payment still
// pending is refused naming the payment the key closed, as it is once that
// other payment is no longer pending, and writes nothing: not with the
// ledger's pending entries, which the request does not name.
func TestCloseKeyReusedForAnotherPayment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pending := func(key string) *pb.Payment {
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	}
	for _, reject := range []bool{false, true} {
		first, other := pending(fmt.Sprintf("first-%v", reject)), pending(fmt.Sprintf("other-%v", reject))
		close := func(p *pb.Payment) error {
			if reject {
				_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "close", PaymentId: p.Id})
				return err
			}
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "close", PaymentId: p.Id})
			return err
		}
		if err := close(first); err != nil {
			t.Fatal(err)
		}
		before := e.journalSize(t)
		err := close(other)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), first.Id) || strings.Contains(err.Error(), "pending_entry_id") {
			t.Errorf("reject %v: the key that closed payment %s, sent for pending payment %s: %v; want AlreadyExists naming %s", reject, first.Id, other.Id, err, first.Id)
		}
		if n := e.journalSize(t); n != before {
			t.Errorf("reject %v: the refused request wrote: journal %v, then %v", reject, before, n)
		}
		if got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: other.Id}); err != nil || got.Payment.Status != pb.PaymentStatus_PAYMENT_STATUS_PENDING {
			t.Errorf("reject %v: payment %s after the refused request: %v, %v; want it pending", reject, other.Id, got.GetPayment().GetStatus(), err)
		}
	}
	e.checkInvariants(t)
}
