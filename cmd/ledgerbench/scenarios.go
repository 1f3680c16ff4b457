package main

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// ackSet is what clients saw acknowledged, for the checks after the run.
type ackSet struct {
	mu sync.Mutex
	// Ledger idempotency keys as stored: the payment layer's prefix
	// (payment/service.go keyRecord, keyConfirm, keyRefund; a record's
	// prefix names its source) before the API's scoped key
	// (api/auth.go clientKey).
	keys []string
	// Payments that must exist once: by id, for the merchant, amount and
	// fee acknowledged, and the bank-direct ones also by their provider
	// reference.
	payments []ackedPayment
	refs     []string
	// Payments a confirmation acknowledged; refunds acknowledged, by entry,
	// for the payment and amount acknowledged.
	confirmedIDs []string
	refunds      []ackedRefund
	// The hot scenario's payable credit: gross less fee of every payment
	// acknowledged there.
	net int64
}

// ackedPayment is a recorded payment as its answer acknowledged it.
type ackedPayment struct {
	id, merchant string
	amount, fee  int64
}

// ackedRefund is a refund as its answer acknowledged it.
type ackedRefund struct {
	entryID, paymentID string
	amount             int64
}

// The payment layer's key prefixes (payment/service.go). A change there
// makes ledger.CheckAcknowledged report every key missing: the bench then
// fails loudly rather than checking nothing.
const (
	keyRecordStall = "payment:record:stall:"
	keyRecordBank  = "payment:record:bank:"
	keyConfirm     = "payment:confirm:"
	keyRefund      = "payment:refund:"
)

func (a *ackSet) merge(o *ackSet) {
	a.keys = append(a.keys, o.keys...)
	a.payments = append(a.payments, o.payments...)
	a.refs = append(a.refs, o.refs...)
	a.confirmedIDs = append(a.confirmedIDs, o.confirmedIDs...)
	a.refunds = append(a.refunds, o.refunds...)
	a.net += o.net
}

func (a *ackSet) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// ackRecord notes a recorded payment. A replay is expected only when the
// bench resent a write whose first answer it never saw: every key and
// reference is fresh. The payment must be the one asked for: the checks
// after the run count what the answers said (ids, references, the hot
// stall's net), so a payment recorded for another merchant, amount,
// channel, source or reference would otherwise pass them all.
func (w *worker) ackRecord(p *principal, prefix string, req *pb.RecordPaymentRequest, pay *pb.Payment, replayed, resent bool) {
	key := req.GetIdempotencyKey()
	if replayed && !resent {
		w.sc.anomaly("RecordPayment %s: replayed on first use of a fresh key (payment %s)", key, pay.GetId())
	}
	if pay.GetId() == "" {
		w.sc.anomaly("RecordPayment %s: acknowledged without a payment", key)
		return
	}
	if pay.GetMerchant() != req.GetMerchant() || mustInt(pay.GetAmount()) != mustInt(req.GetAmount()) || pay.GetChannel() != req.GetChannel() ||
		pay.GetSource() != req.GetSource() || (req.GetProviderRef() != "" && pay.GetProviderRef() != req.GetProviderRef()) {
		w.sc.anomaly("RecordPayment %s: asked for %s %s %s from %s ref %q, acknowledged payment %s as %s %s %s from %s ref %q", key,
			req.GetMerchant(), req.GetAmount(), req.GetChannel(), req.GetSource(), req.GetProviderRef(),
			pay.GetId(), pay.GetMerchant(), pay.GetAmount(), pay.GetChannel(), pay.GetSource(), pay.GetProviderRef())
	}
	net := mustInt(pay.GetAmount()) - mustInt(pay.GetFee())
	a := &w.sc.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys = append(a.keys, prefix+p.scope+"/"+key)
	a.payments = append(a.payments, ackedPayment{id: pay.GetId(), merchant: pay.GetMerchant(), amount: mustInt(pay.GetAmount()), fee: mustInt(pay.GetFee())})
	if prefix == keyRecordBank {
		a.refs = append(a.refs, pay.GetProviderRef())
	}
	a.net += net
}

func mustInt(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func (w *worker) recordRequest(m stall, source pb.PaymentSource) *pb.RecordPaymentRequest {
	req := &pb.RecordPaymentRequest{
		IdempotencyKey: w.key("r"), Merchant: m.code, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: strconv.FormatInt(w.amount(), 10), Source: source,
	}
	if source == pb.PaymentSource_PAYMENT_SOURCE_BANK {
		req.ProviderRef = w.ref("B")
	}
	return req
}

// recordBank: the bank reports a payment nobody recorded; it is posted at
// once.
func (w *worker) recordBank(m stall) (*pb.Payment, bool) {
	return w.record(m, pb.PaymentSource_PAYMENT_SOURCE_BANK)
}

// recordStall: the stall app records a payment it took; it is pending
// until the bank confirms. The demo's merchant credential may act only for
// TN-DAITU-0001, so stall payments across merchants are recorded with the
// admin credential (admins may record for any merchant).
func (w *worker) recordStall(m stall) (*pb.Payment, bool) {
	return w.record(m, pb.PaymentSource_PAYMENT_SOURCE_STALL)
}

func (w *worker) record(m stall, source pb.PaymentSource) (*pb.Payment, bool) {
	req := w.recordRequest(m, source)
	p, prefix := &w.b.bank, keyRecordBank
	if source == pb.PaymentSource_PAYMENT_SOURCE_STALL {
		p, prefix = &w.b.admin, keyRecordStall
	}
	pay := w.pay
	var resp *pb.RecordPaymentResponse
	err := w.call("RecordPayment", p, func(ctx context.Context) error {
		var err error
		resp, err = pay.RecordPayment(ctx, req)
		return err
	})
	if err != nil {
		w.failed(err, p, func(ctx context.Context) error {
			r, err := pay.RecordPayment(ctx, req)
			if err == nil {
				w.ackRecord(p, prefix, req, r.GetPayment(), r.GetReplayed(), true)
			}
			return err
		})
		return nil, false
	}
	w.ackRecord(p, prefix, req, resp.GetPayment(), resp.GetReplayed(), false)
	return resp.GetPayment(), true
}

// confirm: the bank confirms a stall's pending payment in full, with its
// transfer reference.
func (w *worker) confirm(pay *pb.Payment) (*pb.Payment, bool) {
	key := w.key("c")
	req := &pb.ConfirmPaymentRequest{IdempotencyKey: key, PaymentId: pay.GetId(), ProviderRef: w.ref("C")}
	p, client := &w.b.bank, w.pay
	ack := func(r *pb.ConfirmPaymentResponse, resent bool) {
		if r.GetReplayed() && !resent {
			w.sc.anomaly("ConfirmPayment %s: replayed on first use of a fresh key", key)
		}
		if st := r.GetPayment().GetStatus(); st != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
			w.sc.anomaly("ConfirmPayment %s: payment %s is %s after confirmation", key, pay.GetId(), st)
		}
		// Confirmed in full: the request names no amount.
		if got := r.GetPayment(); got.GetId() != pay.GetId() || mustInt(got.GetConfirmedAmount()) != mustInt(pay.GetAmount()) {
			w.sc.anomaly("ConfirmPayment %s: asked to confirm payment %s of %s in full, acknowledged payment %s confirmed for %q", key,
				pay.GetId(), pay.GetAmount(), got.GetId(), got.GetConfirmedAmount())
		}
		a := &w.sc.acks
		a.mu.Lock()
		a.keys = append(a.keys, keyConfirm+p.scope+"/"+key)
		a.confirmedIDs = append(a.confirmedIDs, pay.GetId())
		a.mu.Unlock()
	}
	var resp *pb.ConfirmPaymentResponse
	err := w.call("ConfirmPayment", p, func(ctx context.Context) error {
		var err error
		resp, err = client.ConfirmPayment(ctx, req)
		return err
	})
	if err != nil {
		w.failed(err, p, func(ctx context.Context) error {
			r, err := client.ConfirmPayment(ctx, req)
			if err == nil {
				ack(r, true)
			}
			return err
		})
		return nil, false
	}
	ack(resp, false)
	return resp.GetPayment(), true
}

// refund: the bank returns all or half of a confirmed payment to the payer.
func (w *worker) refund(pay *pb.Payment) bool {
	key := w.key("f")
	req := &pb.RefundPaymentRequest{IdempotencyKey: key, PaymentId: pay.GetId(), Reason: "khách trả lại hàng"}
	if amount := mustInt(pay.GetAmount()); w.rng.IntN(2) == 0 && amount >= 10_000 {
		req.Amount = strconv.FormatInt(amount/2000*1000, 10)
	}
	p, client := &w.b.bank, w.pay
	ack := func(r *pb.RefundPaymentResponse, resent bool) { w.ackRefund(p, req, r, resent) }
	var resp *pb.RefundPaymentResponse
	err := w.call("RefundPayment", p, func(ctx context.Context) error {
		var err error
		resp, err = client.RefundPayment(ctx, req)
		return err
	})
	if err != nil {
		w.failed(err, p, func(ctx context.Context) error {
			r, err := client.RefundPayment(ctx, req)
			if err == nil {
				ack(r, true)
			}
			return err
		})
		return false
	}
	ack(resp, false)
	return true
}

// ackRefund notes a refund. It must be of the payment asked, and of the
// amount asked when one was: the checks after the run look the refund up
// as its answer acknowledged it.
func (w *worker) ackRefund(p *principal, req *pb.RefundPaymentRequest, r *pb.RefundPaymentResponse, resent bool) {
	key := req.GetIdempotencyKey()
	if r.GetReplayed() && !resent {
		w.sc.anomaly("RefundPayment %s: replayed on first use of a fresh key", key)
	}
	if r.GetPayment().GetId() != req.GetPaymentId() || (req.GetAmount() != "" && mustInt(r.GetAmount()) != mustInt(req.GetAmount())) {
		w.sc.anomaly("RefundPayment %s: asked to refund %q of payment %s, acknowledged %q of payment %s (entry %s)", key,
			req.GetAmount(), req.GetPaymentId(), r.GetAmount(), r.GetPayment().GetId(), r.GetEntryId())
	}
	a := &w.sc.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys = append(a.keys, keyRefund+p.scope+"/"+key)
	a.refunds = append(a.refunds, ackedRefund{entryID: r.GetEntryId(), paymentID: r.GetPayment().GetId(), amount: mustInt(r.GetAmount())})
}

// opDirect: one bank-direct payment at a merchant of the skewed market day.
func opDirect(w *worker) {
	if _, ok := w.recordBank(w.b.merchants.pick(w.rng)); ok {
		w.done(1, 1)
	}
}

// opTwoStep: the stall records, then the bank confirms; a unit is the pair.
func opTwoStep(w *worker) {
	pay, ok := w.recordStall(w.b.merchants.pick(w.rng))
	if !ok {
		return
	}
	if _, ok := w.confirm(pay); ok {
		w.done(1, 1)
	}
}

// opHot: a bank-direct payment at the one busiest stall.
func opHot(w *worker) {
	if _, ok := w.recordBank(w.b.hot); ok {
		w.done(1, 1)
	}
}

// opBulk: the bank sends a batch of notifications in one RecordPayments.
func opBulk(w *worker) {
	n := w.b.cfg.BulkSize
	req := &pb.RecordPaymentsRequest{Payments: make([]*pb.RecordPaymentRequest, n)}
	for i := range n {
		req.Payments[i] = w.recordRequest(w.b.merchants.pick(w.rng), pb.PaymentSource_PAYMENT_SOURCE_BANK)
	}
	p, client := &w.b.bank, w.pay
	// The items' codes are counted with the call: only a call measured,
	// and not its resend.
	ack := func(r *pb.RecordPaymentsResponse, resent, measured bool) int {
		ok := 0
		for i, res := range r.GetResults() {
			if i >= n {
				break
			}
			if res.GetError() != nil {
				c := codes.Code(res.GetError().GetCode())
				if measured {
					w.stat("RecordPayments item").record(0, c)
				} else if serverBug(c) {
					w.sc.anomaly("RecordPayments item %d outside the measurement window or resent: %s %s", i, c, res.GetError().GetMessage())
				}
				continue
			}
			if measured {
				w.stat("RecordPayments item").record(0, codes.OK)
			}
			w.ackRecord(p, keyRecordBank, req.Payments[i], res.GetPayment(), res.GetReplayed(), resent)
			ok++
		}
		if len(r.GetResults()) != n {
			w.sc.anomaly("RecordPayments: %d results for %d payments", len(r.GetResults()), n)
		}
		return ok
	}
	var resp *pb.RecordPaymentsResponse
	measured, err := w.measuredCall("RecordPayments", p, func(ctx context.Context) error {
		var err error
		resp, err = client.RecordPayments(ctx, req)
		return err
	})
	if err != nil {
		w.failed(err, p, func(ctx context.Context) error {
			r, err := client.RecordPayments(ctx, req)
			if err == nil {
				ack(r, true, false)
			}
			return err
		})
		return
	}
	if ok := ack(resp, false, measured); ok > 0 {
		w.done(ok, ok)
	}
}

// opMixed is the market day as the service sees it: stall payments the bank
// confirms, bank-direct payments, refunds, and reads by the auditor.
//
//	35% record (stall) + confirm (bank)   20% record (bank)
//	10% refund (bank)                     20% GetPayment   15% ListPayments
func opMixed(w *worker) {
	r := w.rng.IntN(100)
	switch {
	case r < 35:
		pay, ok := w.recordStall(w.b.merchants.pick(w.rng))
		if !ok {
			return
		}
		w.remember(pay.GetId())
		if confirmed, ok := w.confirm(pay); ok {
			w.confirmed = append(w.confirmed, confirmed)
			w.done(1, 1)
		}
	case r < 55 || (r < 65 && len(w.confirmed) == 0):
		if pay, ok := w.recordBank(w.b.merchants.pick(w.rng)); ok {
			w.remember(pay.GetId())
			w.confirmed = append(w.confirmed, pay)
			w.done(1, 1)
		}
	case r < 65:
		i := w.rng.IntN(len(w.confirmed))
		pay := w.confirmed[i]
		w.confirmed[i] = w.confirmed[len(w.confirmed)-1]
		w.confirmed = w.confirmed[:len(w.confirmed)-1]
		if w.refund(pay) {
			w.done(1, 0)
		}
	case r < 85 && len(w.recent) > 0:
		id := w.recent[w.rng.IntN(len(w.recent))]
		err := w.call("GetPayment", &w.b.auditor, func(ctx context.Context) error {
			_, err := w.pay.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
			return err
		})
		if err == nil {
			w.done(1, 0)
		}
	default:
		m := w.b.merchants.pick(w.rng)
		err := w.call("ListPayments", &w.b.auditor, func(ctx context.Context) error {
			_, err := w.pay.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: m.code, PageSize: 20})
			return err
		})
		if err == nil {
			w.done(1, 0)
		}
	}
}

func (w *worker) remember(id string) {
	const keep = 256
	if len(w.recent) < keep {
		w.recent = append(w.recent, id)
		return
	}
	w.recent[w.rng.IntN(keep)] = id
}

// balanceOf reads an account's posted balance through the API, as the
// admin.
func (b *bench) balanceOf(ctx context.Context, code string) (int64, error) {
	ctx, cancel := context.WithTimeout(b.admin.ctx(ctx), 30*time.Second)
	defer cancel()
	resp, err := pb.NewLedgerServiceClient(b.conns[0]).GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code})
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(resp.GetBalance().GetPosted(), 10, 64)
	if err != nil {
		return 0, status.Errorf(codes.Internal, "balance of %s: %q is not whole đồng", code, resp.GetBalance().GetPosted())
	}
	return v, nil
}
