package main

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// wrongPayments answers every RecordPayment and RecordPayments item with the
// payment spoil makes of what was asked, as a ledger that records it wrong
// would.
type wrongPayments struct {
	pb.UnimplementedPaymentServiceServer
	spoil    func(*pb.Payment)
	reversed bool
}

func (s *wrongPayments) payment(req *pb.RecordPaymentRequest) *pb.Payment {
	p := &pb.Payment{Id: "0193a7c4-0000-7000-8000-000000000001", Merchant: req.GetMerchant(), Channel: req.GetChannel(), Source: req.GetSource(),
		Currency: "VND", Amount: req.GetAmount(), Fee: "0", ProviderRef: req.GetProviderRef(), Status: pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED}
	s.spoil(p)
	return p
}

func (s *wrongPayments) RecordPayment(_ context.Context, req *pb.RecordPaymentRequest) (*pb.RecordPaymentResponse, error) {
	return &pb.RecordPaymentResponse{Payment: s.payment(req)}, nil
}

// RecordPayments answers item i with the payment of item n-1-i when
// reversed, each one otherwise spoilt as RecordPayment's.
func (s *wrongPayments) RecordPayments(_ context.Context, req *pb.RecordPaymentsRequest) (*pb.RecordPaymentsResponse, error) {
	resp := &pb.RecordPaymentsResponse{}
	for _, r := range req.GetPayments() {
		resp.Results = append(resp.Results, &pb.RecordPaymentResult{Payment: s.payment(r)})
	}
	if s.reversed {
		slices.Reverse(resp.Results)
	}
	return resp, nil
}

// ConfirmPayment answers with the payment confirmed in full, as spoil
// makes it.
func (s *wrongPayments) ConfirmPayment(_ context.Context, req *pb.ConfirmPaymentRequest) (*pb.ConfirmPaymentResponse, error) {
	p := &pb.Payment{Id: req.GetPaymentId(), Merchant: "TN-DAITU-0001", Channel: pb.Channel_CHANNEL_VIETQR, Source: pb.PaymentSource_PAYMENT_SOURCE_STALL,
		Currency: "VND", Amount: "27000", ConfirmedAmount: "27000", Fee: "0", ProviderRef: req.GetProviderRef(), Status: pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED}
	s.spoil(p)
	return &pb.ConfirmPaymentResponse{Payment: p}, nil
}

// serve serves what register registers in memory, for the test, and
// returns a connection to it.
func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bench", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// benchAgainst is a bench whose one connection is to srv.
func benchAgainst(t *testing.T, srv pb.PaymentServiceServer) *bench {
	conn := serve(t, func(s *grpc.Server) { pb.RegisterPaymentServiceServer(s, srv) })
	return &bench{cfg: config{Seed: 1}, conns: []*grpc.ClientConn{conn}, runID: "test",
		bank: newPrincipal("bank", "secret", "napas"), admin: newPrincipal("admin", "secret", "admin")}
}

// A payment the ledger acknowledges as something other than what the client
// sent is a failed check: every later check counts what the answers said.
func TestRecordAnsweredWrongIsAnAnomaly(t *testing.T) {
	for name, spoil := range map[string]func(*pb.Payment){
		"another merchant":  func(p *pb.Payment) { p.Merchant = "TN-DAITU-0002" },
		"another amount":    func(p *pb.Payment) { p.Amount += "0" },
		"another channel":   func(p *pb.Payment) { p.Channel = pb.Channel_CHANNEL_MOMO },
		"another reference": func(p *pb.Payment) { p.ProviderRef = strings.ToLower(p.ProviderRef) },
		"another source":    func(p *pb.Payment) { p.Source = pb.PaymentSource_PAYMENT_SOURCE_STALL },
	} {
		b := benchAgainst(t, &wrongPayments{spoil: spoil})
		sc := &scenarioRun{name: "direct", clients: 1, timeout: 5 * time.Second}
		w := b.newWorker(sc, 0)
		if _, ok := w.recordBank(stall{code: "TN-DAITU-0001", market: "TN-DAITU"}); !ok {
			t.Fatalf("%s: not acknowledged", name)
		}
		if len(sc.anomalies) == 0 {
			t.Errorf("%s: acknowledged as %v without an anomaly", name, sc.acks.payments)
		}
	}
}

// A batch answered out of order pairs each key with another item's payment.
func TestRecordPaymentsAnsweredOutOfOrderIsAnAnomaly(t *testing.T) {
	b := benchAgainst(t, &wrongPayments{spoil: func(*pb.Payment) {}, reversed: true})
	b.cfg.BulkSize = 2
	b.merchants = newMerchantPicker()
	sc := &scenarioRun{name: "bulk", clients: 1, timeout: 5 * time.Second}
	opBulk(b.newWorker(sc, 0))
	if len(sc.acks.payments) != 2 {
		t.Fatalf("%d payments acknowledged, want 2", len(sc.acks.payments))
	}
	if len(sc.anomalies) == 0 {
		t.Error("a batch answered in reverse order passed without an anomaly")
	}
}

// A refund acknowledged of another payment, or of another amount than
// asked, is a failed check: the checks after the run look the refund up
// as its answer gave it.
func TestRefundAnsweredWrongIsAnAnomaly(t *testing.T) {
	for name, spoil := range map[string]func(*pb.RefundPaymentResponse){
		"as asked":        func(*pb.RefundPaymentResponse) {},
		"another payment": func(r *pb.RefundPaymentResponse) { r.Payment.Id = "0193a7c4-0000-7000-8000-000000000003" },
		"another amount":  func(r *pb.RefundPaymentResponse) { r.Amount = "40000" },
	} {
		b := &bench{cfg: config{Seed: 1}, bank: newPrincipal("bank", "secret", "napas"), conns: []*grpc.ClientConn{nil}}
		sc := &scenarioRun{name: "mixed"}
		req := &pb.RefundPaymentRequest{IdempotencyKey: "f1", PaymentId: "0193a7c4-0000-7000-8000-000000000001", Amount: "20000"}
		resp := &pb.RefundPaymentResponse{Payment: &pb.Payment{Id: req.PaymentId, Amount: "40000"}, Amount: "20000", FeeReturned: "0",
			EntryId: "0193a7c4-0000-7000-8000-000000000002"}
		spoil(resp)
		b.newWorker(sc, 0).ackRefund(&b.bank, req, resp, false)
		if got := len(sc.anomalies) > 0; got != (name != "as asked") {
			t.Errorf("%s: anomalies %v", name, sc.anomalies)
		}
	}
}

// The items of a RecordPayments call are counted with the call: those of a
// call made during the warm-up are not the measurement's, as the call is
// not.
func TestRecordPaymentsItemsCountedInTheWindowOnly(t *testing.T) {
	b := benchAgainst(t, &wrongPayments{spoil: func(*pb.Payment) {}})
	b.cfg.BulkSize = 3
	b.merchants = newMerchantPicker()
	sc := &scenarioRun{name: "bulk", clients: 1, timeout: 5 * time.Second}
	sc.windowStart = time.Now().Add(time.Hour)
	sc.windowEnd = sc.windowStart.Add(time.Hour)
	w := b.newWorker(sc, 0)
	opBulk(w)
	sc.windowStart, sc.windowEnd = time.Now(), time.Now().Add(time.Hour)
	opBulk(w)
	calls, items := w.stats["RecordPayments"].summarize("RecordPayments"), w.stats["RecordPayments item"].summarize("RecordPayments item")
	if calls.Calls != 1 || items.Calls != 3 {
		t.Errorf("%d calls and %d items counted, want the measured call's 1 and 3", calls.Calls, items.Calls)
	}
}

// failingFirst answers its first RecordPayments with codes, in order, as a
// server with a bug it hits now and then would, and every later one as
// asked.
type failingFirst struct {
	wrongPayments
	mu    sync.Mutex
	codes []codes.Code
}

func (s *failingFirst) RecordPayment(ctx context.Context, req *pb.RecordPaymentRequest) (*pb.RecordPaymentResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.codes) > 0 {
		c := s.codes[0]
		s.codes = s.codes[1:]
		return nil, status.Error(c, "boom")
	}
	return s.wrongPayments.RecordPayment(ctx, req)
}

// An answer that means a server bug fails the run whenever it comes: during
// the warm-up, as during the measurement, and to a resend.
func TestInternalOutsideTheWindowFailsTheRun(t *testing.T) {
	for name, c := range map[string]struct {
		window time.Duration
		codes  []codes.Code
	}{
		"measurement": {0, []codes.Code{codes.Internal}},
		"warm-up":     {time.Hour, []codes.Code{codes.Internal}},
		"resend":      {0, []codes.Code{codes.Unavailable, codes.Internal}},
	} {
		b := benchAgainst(t, &failingFirst{wrongPayments: wrongPayments{spoil: func(*pb.Payment) {}}, codes: c.codes})
		b.merchants = newMerchantPicker()
		sc := &scenarioRun{name: "direct", clients: 1, timeout: 5 * time.Second}
		sc.windowStart = time.Now().Add(c.window)
		sc.windowEnd = sc.windowStart.Add(time.Hour)
		w := b.newWorker(sc, 0)
		opDirect(w)
		b.resolve(sc)
		if sc.resolved != 1 {
			t.Fatalf("%s: %d writes resolved, want the one answered %v", name, sc.resolved, c.codes)
		}
		r := &report{Scenarios: []scenarioResult{{Name: sc.name, RPCs: summarizeAll(w.stats), Anomalies: sc.anomalies, Resolved: sc.resolved}}}
		if len(r.failures()) == 0 {
			t.Errorf("%s: an Internal answer passed the run", name)
		}
	}
}

// A confirmation in full acknowledged as one of less, or of another
// payment, is a failed check: the stall is owed the whole payment.
func TestConfirmAnsweredWrongIsAnAnomaly(t *testing.T) {
	for name, spoil := range map[string]func(*pb.Payment){
		"as asked":        func(*pb.Payment) {},
		"in part":         func(p *pb.Payment) { p.ConfirmedAmount = "20000" },
		"another payment": func(p *pb.Payment) { p.Id = "0193a7c4-0000-7000-8000-000000000003" },
		"still pending":   func(p *pb.Payment) { p.Status = pb.PaymentStatus_PAYMENT_STATUS_PENDING },
	} {
		b := benchAgainst(t, &wrongPayments{spoil: spoil})
		sc := &scenarioRun{name: "twostep", clients: 1, timeout: 5 * time.Second}
		pending := &pb.Payment{Id: "0193a7c4-0000-7000-8000-000000000001", Merchant: "TN-DAITU-0001", Amount: "27000", Fee: "0",
			Status: pb.PaymentStatus_PAYMENT_STATUS_PENDING}
		if _, ok := b.newWorker(sc, 0).confirm(pending); !ok {
			t.Fatalf("%s: not acknowledged", name)
		}
		if got := len(sc.anomalies) > 0; got != (name != "as asked") {
			t.Errorf("%s: anomalies %v", name, sc.anomalies)
		}
	}
}
