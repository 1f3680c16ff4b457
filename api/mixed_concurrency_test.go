package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// acked is what the writers of TestMixedWritersOnHotMerchants were told was
// recorded, by the id of what recorded it, so that a replay counts once.
type acked struct {
	mu          sync.Mutex
	payments    map[string]*pb.Payment // confirmed, as confirmed
	pending     map[string]*pb.Payment // left pending
	refunds     map[string]refundAck   // by entry
	settlements map[string]*pb.ProviderSettlement
	reclass     map[string]*pb.SuspenseReclassification
	payouts     map[string]*pb.PayoutLine // paid lines, by batch and merchant
	refundable  []string                  // confirmed payment ids
}

type refundAck struct {
	payment             *pb.Payment
	amount, feeReturned int64
}

// sendTwice sends call once, or twice at once when twice, and checks that
// both copies got the same answer but for their replayed flags, one of
// them fresh.
func sendTwice[T proto.Message](t *testing.T, twice bool, call func() (T, error), replayed func(T) bool) (T, error) {
	t.Helper()
	if !twice {
		return call()
	}
	resps, errs := copies(2, call)
	for i, err := range errs {
		// A write refused for the state it found stores nothing: its copy
		// may find the state changed (a payment confirmed meanwhile) and
		// be recorded, after it.
		if other := errs[1-i]; status.Code(err) == codes.FailedPrecondition && other == nil && refusable(resps[1-i]) {
			return resps[1-i], nil
		}
	}
	if status.Code(errs[0]) != status.Code(errs[1]) {
		t.Errorf("the same request twice at once: %v / %v", errs[0], errs[1])
		return resps[0], errs[0]
	}
	if errs[0] != nil {
		return resps[0], errs[0]
	}
	if replayed(resps[0]) == replayed(resps[1]) {
		t.Errorf("the same request twice at once: replayed %v and %v, want one fresh", replayed(resps[0]), replayed(resps[1]))
	}
	a, b := proto.Clone(resps[0]), proto.Clone(resps[1])
	clearReplayed(a)
	clearReplayed(b)
	if !proto.Equal(a, b) {
		t.Errorf("the same request twice at once got different answers:\n%v\n%v", resps[0], resps[1])
	}
	if replayed(resps[0]) {
		return resps[1], nil
	}
	return resps[0], nil
}

// refusable reports whether a write may be refused for the state it finds.
func refusable(m proto.Message) bool {
	switch m.(type) {
	case *pb.RefundPaymentResponse, *pb.ReclassifySuspenseResponse:
		return true
	}
	return false
}

func clearReplayed(m proto.Message) {
	fd := m.ProtoReflect().Descriptor().Fields().ByName("replayed")
	if fd != nil {
		m.ProtoReflect().Clear(fd)
	}
}

// Many writers on two hot merchants at once: stalls record payments that
// banks confirm (in full or in part) or reject, banks report payments (some
// twice under two keys), refunds, provider settlements, reclassifications
// of suspense and payout batches paid or failed, a share of every request
// sent twice at once. Afterwards the ledger's invariants and rollups hold,
// and every account of the market is exactly what the acknowledged writes
// add up to.
func TestMixedWritersOnHotMerchants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const writers, opsEach = 12, 40
	merchants := []string{"TN-TEST-0001", "TN-TEST-0002"}
	channelsOf := map[string][]pb.Channel{
		"TN-TEST-0001": {pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO},
		"TN-TEST-0002": {pb.Channel_CHANNEL_VIETQR},
	}
	ack := &acked{payments: map[string]*pb.Payment{}, pending: map[string]*pb.Payment{}, refunds: map[string]refundAck{},
		settlements: map[string]*pb.ProviderSettlement{}, reclass: map[string]*pb.SuspenseReclassification{}, payouts: map[string]*pb.PayoutLine{}}
	confirmedPayment := func(p *pb.Payment) {
		ack.mu.Lock()
		defer ack.mu.Unlock()
		if _, ok := ack.payments[p.Id]; !ok {
			ack.refundable = append(ack.refundable, p.Id)
		}
		ack.payments[p.Id] = p
		delete(ack.pending, p.Id)
	}
	// refused is an error a write may meet for a reason of the state it
	// found (not enough left to refund, nothing owed to reclassify).
	refused := func(err error) bool { return status.Code(err) == codes.FailedPrecondition }

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range opsEach {
				key := fmt.Sprintf("w%d-%d", w, i)
				twice := rng.IntN(3) == 0
				m := merchants[rng.IntN(len(merchants))]
				chs := channelsOf[m]
				ch := chs[rng.IntN(len(chs))]
				amount := 5000 + rng.Int64N(165001)
				switch op := rng.IntN(100); {
				case op < 30: // a stall's payment, then the bank's word on it
					rec, err := sendTwice(t, twice, func() (*pb.RecordPaymentResponse, error) {
						return e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: ch,
							Amount: strconv.FormatInt(amount, 10), Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
					}, (*pb.RecordPaymentResponse).GetReplayed)
					if err != nil {
						t.Errorf("%s: record: %v", key, err)
						return
					}
					p := rec.Payment
					twice = rng.IntN(3) == 0
					switch then := rng.IntN(100); {
					case then < 70:
						confirm := &pb.ConfirmPaymentRequest{IdempotencyKey: key + "-confirm", PaymentId: p.Id, ProviderRef: "FT-" + key}
						if then < 20 {
							confirm.Amount = strconv.FormatInt(1+rng.Int64N(amount), 10)
						}
						c, err := sendTwice(t, twice, func() (*pb.ConfirmPaymentResponse, error) { return e.payments.ConfirmPayment(ctx, confirm) },
							(*pb.ConfirmPaymentResponse).GetReplayed)
						if err != nil {
							t.Errorf("%s: confirm: %v", key, err)
							return
						}
						confirmedPayment(c.Payment)
					case then < 85:
						if _, err := sendTwice(t, twice, func() (*pb.RejectPaymentResponse, error) {
							return e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: key + "-reject", PaymentId: p.Id, Reason: "không đủ tiền"})
						}, (*pb.RejectPaymentResponse).GetReplayed); err != nil {
							t.Errorf("%s: reject: %v", key, err)
							return
						}
					default:
						ack.mu.Lock()
						ack.pending[p.Id] = p
						ack.mu.Unlock()
					}
				case op < 45: // a payment only the bank saw, its notification maybe sent twice under two keys
					notice := func(k string) func() (*pb.RecordPaymentResponse, error) {
						return func() (*pb.RecordPaymentResponse, error) {
							r := bankNotice(k, m, strconv.FormatInt(amount, 10), "FT-BANK-"+key)
							r.Channel = ch
							return e.payments.RecordPayment(ctx, r)
						}
					}
					var p *pb.Payment
					if twice && rng.IntN(2) == 0 {
						var a, b *pb.RecordPaymentResponse
						var errA, errB error
						var both sync.WaitGroup
						both.Go(func() { a, errA = notice(key + "-a")() })
						both.Go(func() { b, errB = notice(key + "-b")() })
						both.Wait()
						if errA != nil || errB != nil {
							t.Errorf("%s: one notification under two keys: %v / %v", key, errA, errB)
							return
						}
						if a.Payment.Id != b.Payment.Id || a.Replayed == b.Replayed {
							t.Errorf("%s: one notification under two keys: payments %s (replayed %v) and %s (replayed %v)", key, a.Payment.Id, a.Replayed, b.Payment.Id, b.Replayed)
						}
						p = a.Payment
					} else {
						r, err := sendTwice(t, twice, notice(key), (*pb.RecordPaymentResponse).GetReplayed)
						if err != nil {
							t.Errorf("%s: bank record: %v", key, err)
							return
						}
						p = r.Payment
					}
					confirmedPayment(p)
				case op < 65: // a refund of a confirmed payment
					ack.mu.Lock()
					if len(ack.refundable) == 0 {
						ack.mu.Unlock()
						continue
					}
					id := ack.refundable[rng.IntN(len(ack.refundable))]
					conf := ack.payments[id]
					ack.mu.Unlock()
					req := &pb.RefundPaymentRequest{IdempotencyKey: key, PaymentId: id, Reason: "khách trả hàng"}
					if rng.IntN(3) > 0 {
						req.Amount = strconv.FormatInt(1+rng.Int64N(num(conf.ConfirmedAmount)), 10)
					}
					r, err := sendTwice(t, twice, func() (*pb.RefundPaymentResponse, error) {
						resp, err := e.payments.RefundPayment(ctx, req)
						if resp != nil {
							resp.Payment = nil // the payment as it is now: other refunds may move it between the copies
						}
						return resp, err
					}, (*pb.RefundPaymentResponse).GetReplayed)
					if refused(err) {
						continue
					}
					if err != nil {
						t.Errorf("%s: refund: %v", key, err)
						return
					}
					ack.mu.Lock()
					ack.refunds[r.EntryId] = refundAck{payment: conf, amount: num(r.Amount), feeReturned: num(r.FeeReturned)}
					ack.mu.Unlock()
				case op < 78: // a provider pays the settlement bank, maybe more than it owes
					ch := []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO}[rng.IntN(2)]
					r, err := sendTwice(t, twice, func() (*pb.RecordProviderSettlementResponse, error) {
						return e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: key, Channel: ch, Market: testMarket,
							Amount: strconv.FormatInt(4*amount, 10), Bank: "vcb", BankRef: "VCB-IN-" + key, AllowUnmatched: true})
					}, (*pb.RecordProviderSettlementResponse).GetReplayed)
					if err != nil {
						t.Errorf("%s: provider settlement: %v", key, err)
						return
					}
					ack.mu.Lock()
					ack.settlements[r.Settlement.EntryId] = r.Settlement
					ack.mu.Unlock()
				case op < 86: // suspense matched to a provider
					ch := []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO}[rng.IntN(2)]
					r, err := sendTwice(t, twice, func() (*pb.ReclassifySuspenseResponse, error) {
						return e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: key, Market: testMarket, Channel: ch,
							Amount: strconv.FormatInt(1+amount/10, 10), Reason: "khớp giao dịch"})
					}, (*pb.ReclassifySuspenseResponse).GetReplayed)
					if refused(err) {
						continue
					}
					if err != nil {
						t.Errorf("%s: reclassify: %v", key, err)
						return
					}
					ack.mu.Lock()
					ack.reclass[r.Reclassification.EntryId] = r.Reclassification
					ack.mu.Unlock()
				default: // a payout batch, its lines paid or failed
					cutOff := timestamppb.New(time.Now().Add(-time.Millisecond))
					b, err := sendTwice(t, twice, func() (*pb.CreatePayoutBatchResponse, error) {
						return e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: key, Bank: "vcb", Market: testMarket,
							CutOff: cutOff, PageSize: 100})
					}, (*pb.CreatePayoutBatchResponse).GetReplayed)
					if err != nil {
						t.Errorf("%s: payout batch: %v", key, err)
						return
					}
					var results []*pb.PayoutResult
					for _, l := range b.Lines {
						if l.Status != lineOpen {
							continue
						}
						if rng.IntN(4) == 0 {
							results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: lineFailed, FailureReason: "sai số tài khoản"})
						} else {
							results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: linePaid, BankRef: "VCB-OUT-" + key + "-" + l.Merchant})
						}
					}
					if len(results) == 0 {
						continue
					}
					done, errs := copies(1+int(boolInt(rng.IntN(3) == 0)), func() (*pb.CompletePayoutBatchResponse, error) {
						return e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: results})
					})
					for j, err := range errs {
						if err != nil {
							t.Errorf("%s: complete payout batch (copy %d): %v", key, j, err)
							return
						}
						if !proto.Equal(done[j], done[0]) {
							t.Errorf("%s: the same outcomes twice at once got different answers:\n%v\n%v", key, done[0], done[j])
						}
					}
					ack.mu.Lock()
					for _, l := range done[0].Lines {
						if l.Status == linePaid {
							ack.payouts[b.Batch.Id+"/"+l.Merchant] = l
						}
					}
					ack.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	e.checkInvariants(t)
	e.checkRollups(t)

	// Every account of the market is what the acknowledged writes add up to.
	type sums struct{ debitsPending, creditsPending, debitsPosted, creditsPosted int64 }
	want := map[string]*sums{}
	at := func(code string) *sums {
		if want[code] == nil {
			want[code] = &sums{}
		}
		return want[code]
	}
	fees := "market:" + testMarket + ":fees"
	suspense := "market:" + testMarket + ":suspense"
	settlementAcct := "bank:vcb:market:" + testMarket + ":settlement"
	for _, p := range ack.payments {
		gross, fee := num(p.ConfirmedAmount), num(p.Fee)
		at(clearingOf(p.Channel, testMarket)).debitsPosted += gross
		at("merchant:" + p.Merchant + ":payable").creditsPosted += gross - fee
		at(fees).creditsPosted += fee
	}
	for _, p := range ack.pending {
		gross, fee := num(p.Amount), num(p.Fee)
		at(clearingOf(p.Channel, testMarket)).debitsPending += gross
		at("merchant:" + p.Merchant + ":payable").creditsPending += gross - fee
		at(fees).creditsPending += fee
	}
	for _, r := range ack.refunds {
		at(clearingOf(r.payment.Channel, testMarket)).creditsPosted += r.amount
		at("merchant:" + r.payment.Merchant + ":payable").debitsPosted += r.amount - r.feeReturned
		at(fees).debitsPosted += r.feeReturned
	}
	for _, s := range ack.settlements {
		at(settlementAcct).debitsPosted += num(s.Amount)
		at(s.ClearingAccount).creditsPosted += num(s.Settled)
		at(suspense).creditsPosted += num(s.Unmatched)
	}
	for _, r := range ack.reclass {
		at(suspense).debitsPosted += num(r.Amount)
		at(r.ClearingAccount).creditsPosted += num(r.Amount)
	}
	for _, l := range ack.payouts {
		at("merchant:" + l.Merchant + ":payable").debitsPosted += num(l.Amount)
		at(settlementAcct).creditsPosted += num(l.Amount)
	}
	for _, m := range merchants {
		at("merchant:" + m + ":payable")
	}
	for code, w := range want {
		bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code})
		if err != nil {
			t.Fatalf("balance of %s: %v", code, err)
		}
		b := bal.Balance
		if got := (sums{num(b.DebitsPending), num(b.CreditsPending), num(b.DebitsPosted), num(b.CreditsPosted)}); got != *w {
			t.Errorf("%s: %+v, the acknowledged writes add up to %+v", code, got, *w)
		}
	}
	t.Logf("%d payments confirmed, %d pending, %d refunds, %d provider settlements, %d reclassifications, %d payouts paid",
		len(ack.payments), len(ack.pending), len(ack.refunds), len(ack.settlements), len(ack.reclass), len(ack.payouts))
}
