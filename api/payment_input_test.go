package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// journalSize counts what the payment writes leave behind.
func (e *env) journalSize(t *testing.T) [4]int {
	t.Helper()
	var n [4]int
	err := e.db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM payments),
		(SELECT count(*) FROM payment_requests), (SELECT count(*) FROM payment_refunds)`).Scan(&n[0], &n[1], &n[2], &n[3])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every write RPC of PaymentService refuses bad input with the right code
// and a message naming the field, and writes nothing.
func TestPaymentWritesRefuseBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		Code: "TN-TEST-0003", Market: testMarket, Stalls: []string{"C-001"}, DisplayName: "Hàng cá", OwnerName: "Lê Văn Cá",
		Phone: "0355555555", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		Code: "TN-TEST-0004", Market: testMarket, Stalls: []string{"D-001"}, DisplayName: "Hàng hoa", OwnerName: "Phạm Thị Hoa",
		Phone: "0366666666", PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011004444444", HolderName: "PHAM THI HOA"},
		Channels: []pb.Channel{pb.Channel_CHANNEL_MOMO}, FeePlan: &pb.FeePlan{MinFee: "0"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: b, Reason: "audit"}); err != nil {
		t.Fatal(err)
	}
	// Fixtures for the flows that act on an existing payment.
	pending := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-pending", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	confirmed := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-confirmed", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-FX-1"}).Payment
	// A stall's payment carrying the bank's reference, waiting for the bank.
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-stall-ref", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT-FX-STALL"})
	// One confirmed for part of it, one rejected, each under its key.
	part := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-part", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	if _, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "fx-confirm", PaymentId: part.Id, Amount: "5000"}); err != nil {
		t.Fatal(err)
	}
	rejected := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-rejected", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT-FX-REJ"}).Payment
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "fx-reject", PaymentId: rejected.Id, Reason: "declined"}); err != nil {
		t.Fatal(err)
	}
	// A payment of a payment request, and a second request.
	var requests []string
	for _, k := range []string{"fx-req-1", "fx-req-2"} {
		pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: k, Merchant: a, Amount: "30000"})
		if err != nil {
			t.Fatal(err)
		}
		requests = append(requests, pr.PaymentRequest.Id)
	}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-of-request", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: requests[0]})
	before := e.journalSize(t)

	rec := func(edit func(r *pb.RecordPaymentRequest)) func() error {
		return func() error {
			r := &pb.RecordPaymentRequest{IdempotencyKey: "k", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
			edit(r)
			_, err := e.payments.RecordPayment(ctx, r)
			return err
		}
	}
	const unknownID = "0190a3b4-0000-7000-8000-000000000000"
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"record: no key", rec(func(r *pb.RecordPaymentRequest) { r.IdempotencyKey = "" }), codes.InvalidArgument, "idempotency_key"},
		{"record: key too long", rec(func(r *pb.RecordPaymentRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }), codes.InvalidArgument, "idempotency_key"},
		{"record: no merchant", rec(func(r *pb.RecordPaymentRequest) { r.Merchant = "" }), codes.InvalidArgument, "merchant"},
		{"record: unknown merchant", rec(func(r *pb.RecordPaymentRequest) { r.Merchant = "TN-TEST-9999" }), codes.NotFound, "merchant"},
		{"record: suspended merchant", rec(func(r *pb.RecordPaymentRequest) { r.Merchant = b }), codes.FailedPrecondition, "suspended"},
		{"record: channel the merchant lacks", rec(func(r *pb.RecordPaymentRequest) { r.Merchant = "TN-TEST-0003"; r.Channel = pb.Channel_CHANNEL_MOMO }), codes.FailedPrecondition, "channel"},
		{"record: channel not accepted", rec(func(r *pb.RecordPaymentRequest) { r.Channel = pb.Channel_CHANNEL_ZALOPAY }), codes.FailedPrecondition, "channel"},
		{"record: no channel", rec(func(r *pb.RecordPaymentRequest) { r.Channel = pb.Channel_CHANNEL_UNSPECIFIED }), codes.InvalidArgument, "channel"},
		{"record: no source", rec(func(r *pb.RecordPaymentRequest) { r.Source = pb.PaymentSource_PAYMENT_SOURCE_UNSPECIFIED }), codes.InvalidArgument, "source"},
		{"record: fractional đồng", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "1500.5" }), codes.InvalidArgument, "amount"},
		{"record: negative", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "-50000" }), codes.InvalidArgument, "amount"},
		{"record: zero", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "0" }), codes.InvalidArgument, "amount"},
		{"record: below the provider minimum", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "999" }), codes.InvalidArgument, "amount"},
		{"record: above the provider maximum", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "100000001" }), codes.InvalidArgument, "amount"},
		{"record: not a number", rec(func(r *pb.RecordPaymentRequest) { r.Amount = "50,000" }), codes.InvalidArgument, "amount"},
		{"record: bank without reference", rec(func(r *pb.RecordPaymentRequest) { r.Source = pb.PaymentSource_PAYMENT_SOURCE_BANK }), codes.InvalidArgument, "provider_ref"},
		{"record: reference with spaces", rec(func(r *pb.RecordPaymentRequest) { r.ProviderRef = "FT 1" }), codes.InvalidArgument, "provider_ref"},
		{"record: malformed request id", rec(func(r *pb.RecordPaymentRequest) { r.PaymentRequestId = "req-1" }), codes.InvalidArgument, "payment_request_id"},
		{"record: unknown request", rec(func(r *pb.RecordPaymentRequest) { r.PaymentRequestId = unknownID }), codes.NotFound, "payment_request_id"},
		{"record: unknown bill number", rec(func(r *pb.RecordPaymentRequest) { r.BillNumber = "CLNOPE" }), codes.NotFound, "bill_number"},
		{"record: payment request paid by MoMo", rec(func(r *pb.RecordPaymentRequest) {
			r.Channel, r.Amount, r.PaymentRequestId = pb.Channel_CHANNEL_MOMO, "30000", requests[1]
		}), codes.InvalidArgument, "channel"},
		{"record: occurs in the future", rec(func(r *pb.RecordPaymentRequest) { r.OccurTime = timestamppb.New(time.Now().Add(time.Hour)) }), codes.InvalidArgument, "occur_time"},
		{"record: reference already recorded by the bank", rec(func(r *pb.RecordPaymentRequest) { r.ProviderRef = "FT-FX-1" }), codes.AlreadyExists, "provider_ref"},
		{"record: key reused for another payment", rec(func(r *pb.RecordPaymentRequest) { r.IdempotencyKey = "fx-pending"; r.Amount = "20001" }), codes.AlreadyExists, "idempotency_key"},
		{"record: key reused for another payment request", rec(func(r *pb.RecordPaymentRequest) {
			r.IdempotencyKey, r.Amount, r.PaymentRequestId = "fx-of-request", "30000", requests[1]
		}), codes.AlreadyExists, "payment_request_id"},
		{"record: key reused without the payment request", rec(func(r *pb.RecordPaymentRequest) { r.IdempotencyKey, r.Amount = "fx-of-request", "30000" }),
			codes.AlreadyExists, "payment_request_id"},
		{"record: bank reports another merchant's reference", rec(func(r *pb.RecordPaymentRequest) {
			*r = *bankNotice("k", "TN-TEST-0003", "20000", "FT-FX-STALL")
		}), codes.AlreadyExists, "provider_ref"},
		{"record: bank repeats a reference with another amount", rec(func(r *pb.RecordPaymentRequest) { *r = *bankNotice("k", a, "30001", "FT-FX-1") }),
			codes.FailedPrecondition, "amount"},
		{"record: bank reports the reference of a rejected payment", rec(func(r *pb.RecordPaymentRequest) { *r = *bankNotice("k", a, "20000", "FT-FX-REJ") }),
			codes.FailedPrecondition, "rejected"},
		{"bulk: empty", func() error { _, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{}); return err }, codes.InvalidArgument, "payments"},
		{"bulk: too many", func() error {
			items := make([]*pb.RecordPaymentRequest, 1001)
			for i := range items {
				items[i] = &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint(i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
			}
			_, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: items})
			return err
		}, codes.InvalidArgument, "payments"},
		{"request: no key", func() error {
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{Merchant: a, Amount: "1000"})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"request: fractional amount", func() error {
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "r", Merchant: a, Amount: "1000.5"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"request: purpose too long", func() error {
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "r", Merchant: a, Amount: "10000", Purpose: strings.Repeat("x", 26)})
			return err
		}, codes.InvalidArgument, "purpose"},
		{"request: purpose with a tab", func() error {
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "r", Merchant: a, Amount: "10000", Purpose: "rau\tcải"})
			return err
		}, codes.InvalidArgument, "purpose:"},
		{"request: suspended merchant", func() error {
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "r", Merchant: b, Amount: "10000"})
			return err
		}, codes.FailedPrecondition, "merchant"},
		{"request: merchant that does not accept VietQR", func() error {
			// Its dynamic QR would be paid, and the payment then refused.
			_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "r", Merchant: "TN-TEST-0004", Amount: "10000"})
			return err
		}, codes.FailedPrecondition, "VIETQR"},
		{"confirm: malformed id", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: "p-1"})
			return err
		}, codes.InvalidArgument, "payment_id"},
		{"confirm: unknown payment", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: unknownID})
			return err
		}, codes.NotFound, "payment_id"},
		{"confirm: more than recorded", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: pending.Id, Amount: "20001"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"confirm: zero", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: pending.Id, Amount: "0"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"confirm: key reused with another amount", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "fx-confirm", PaymentId: part.Id})
			return err
		}, codes.AlreadyExists, "idempotency_key"},
		{"confirm: key reused with another reference", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "fx-confirm", PaymentId: part.Id, Amount: "5000", ProviderRef: "FT-OTHER"})
			return err
		}, codes.AlreadyExists, "idempotency_key"},
		{"reject: key reused with another reason", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "fx-reject", PaymentId: rejected.Id, Reason: "insufficient funds"})
			return err
		}, codes.AlreadyExists, "idempotency_key"},
		{"confirm: fractional", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: pending.Id, Amount: "100.5"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"confirm: already confirmed", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c", PaymentId: confirmed.Id})
			return err
		}, codes.FailedPrecondition, "payment_id"},
		{"confirm: no key", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{PaymentId: pending.Id})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"reject: confirmed payment", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r", PaymentId: confirmed.Id})
			return err
		}, codes.FailedPrecondition, "payment_id"},
		{"reject: reason too long", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r", PaymentId: pending.Id, Reason: strings.Repeat("x", 201)})
			return err
		}, codes.InvalidArgument, "reason"},
		{"reject: reason of 201 characters", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r", PaymentId: pending.Id, Reason: strings.Repeat("ờ", 201)})
			return err
		}, codes.InvalidArgument, "reason"},
		{"reject: reason with a NUL", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r", PaymentId: pending.Id, Reason: "declined\x00"})
			return err
		}, codes.InvalidArgument, "reason"},
		{"reject: malformed id", func() error {
			_, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r", PaymentId: "x"})
			return err
		}, codes.InvalidArgument, "payment_id"},
		{"refund: pending payment", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: pending.Id})
			return err
		}, codes.FailedPrecondition, "payment_id"},
		{"refund: more than remains", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: confirmed.Id, Amount: "30001"})
			return err
		}, codes.FailedPrecondition, "amount"},
		{"refund: zero", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: confirmed.Id, Amount: "0"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"refund: fractional", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: confirmed.Id, Amount: "10.5"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"refund: negative", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: confirmed.Id, Amount: "-1"})
			return err
		}, codes.InvalidArgument, "amount"},
		{"refund: reason with a NUL", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: confirmed.Id, Amount: "1000", Reason: "returned\x00"})
			return err
		}, codes.InvalidArgument, "reason"},
		{"refund: unknown payment", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f", PaymentId: unknownID})
			return err
		}, codes.NotFound, "payment_id"},
		{"list: neither merchant nor market", func() error {
			_, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
			return err
		}, codes.InvalidArgument, "merchant"},
		{"get: malformed id", func() error {
			_, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: "42"})
			return err
		}, codes.InvalidArgument, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != tc.code {
				t.Fatalf("got %v %q, want %v", st.Code(), st.Message(), tc.code)
			}
			if !strings.Contains(st.Message(), tc.field) {
				t.Fatalf("message %q does not name %q", st.Message(), tc.field)
			}
		})
	}
	if after := e.journalSize(t); after != before {
		t.Fatalf("refused requests wrote: entries, payments, requests, refunds went from %v to %v", before, after)
	}

	// In a bulk call, bad items fail alone.
	resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		{IdempotencyKey: "bulk-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "bulk-2", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000.5", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "bulk-3", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "bulk-4", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "7000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BULK-4"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []codes.Code{codes.OK, codes.InvalidArgument, codes.FailedPrecondition, codes.OK}
	for i, r := range resp.Results {
		got := codes.OK
		if r.Error != nil {
			got = codes.Code(r.Error.Code)
		}
		if got != wantCodes[i] {
			t.Errorf("bulk item %d: %v (%v), want %v", i, got, r.Error, wantCodes[i])
		}
	}
	if after := e.journalSize(t); after[1] != before[1]+2 {
		t.Fatalf("bulk call recorded %d payments, want 2", after[1]-before[1])
	}
	e.checkInvariants(t)
}

// Concurrent writers on one payment: refunds racing for what remains, and a
// bank sending the same notification many times at once under different
// keys. The ledger never refunds more than was paid and records the
// notification once.
func TestPaymentRaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	for i := range 5 { // give the merchant money to give back
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("float-", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "200000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-FLOAT-", i)})
	}
	paid := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "paid", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-PAID"}).Payment

	var wg sync.WaitGroup
	var mu sync.Mutex
	refunded, notified := 0, map[string]int{}
	for i := range 24 {
		wg.Go(func() {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("race-refund-", i), PaymentId: paid.Id, Amount: "10000"})
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.OK:
				refunded++
			case codes.FailedPrecondition:
			default:
				t.Errorf("refund %d: %v", i, err)
			}
		})
		wg.Go(func() {
			resp, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("race-notify-", i), Merchant: a,
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "45000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-RACE"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("notification %d: %v", i, err)
				return
			}
			notified[resp.Payment.Id]++
		})
	}
	wg.Wait()
	if refunded != 10 {
		t.Errorf("%d refunds of 10,000 on a 100,000 payment went through, want 10", refunded)
	}
	got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: paid.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_REFUNDED, "100000", "500", "100000", "500")
	if len(notified) != 1 {
		t.Errorf("one notification sent 24 times recorded %d payments: %v", len(notified), notified)
	}
	var n int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE provider_ref = 'FT-RACE'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("payments with reference FT-RACE: %d, %v", n, err)
	}
	e.checkInvariants(t)
}

// Two partial refunds that together empty a payment, sent at once: each
// computes the fee it returns from the payment as it was, and the one that
// commits second must return the rest of the fee, not its rounded-down
// share, or the merchant's fee is kept on a fully refunded payment.
func TestConcurrentRefundsReturnTheWholeFee(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("float", a, "50000000", "FT-FLOAT")) // money to give back
	// MoMo at 150 basis points: 100,000 đồng pays a fee of 1,500, and
	// refunds of 50,001 and 49,999 return 750 and 749 as shares.
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = e.record(t, momoNotice(fmt.Sprint("momo-", i), a, "100000", fmt.Sprint("MOMO-", i))).Payment.Id
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		for j, amount := range []string{"50001", "49999"} {
			wg.Go(func() {
				if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("refund-", i, "-", j), PaymentId: id, Amount: amount}); err != nil {
					t.Errorf("refund of %s from %s: %v", amount, id, err)
				}
			})
		}
	}
	wg.Wait()
	for _, id := range ids {
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_REFUNDED, "100000", "1500", "100000", "1500")
	}
	e.checkInvariants(t)
}

// Small partial refunds, then the rest: each refund returns the fee in
// proportion to all refunded so far, so the last đồng never owes more fee
// than itself and the payment ends fully refunded with its whole fee
// returned, whether the last refund names its amount or not. (The fee of a
// 10,000 đồng MoMo payment is the plan's 500 đồng minimum; refunds of 19,
// 19 and 9,961 each returning their own share rounded down would return 0,
// 0 and 498, leaving 2 đồng of fee on the last 1 đồng.)
func TestSmallRefundsThenTheRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("float", a, "5000000", "FT-FLOAT")) // money to give back
	for _, last := range []string{"1", ""} {
		p := e.record(t, momoNotice("momo-"+last, a, "10000", "MOMO-"+last)).Payment
		wantPayment(t, p, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "10000", "500", "0", "0")
		var returned int64
		for i, amount := range []string{"19", "19", "9961", last} {
			r, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("refund-", last, "-", i), PaymentId: p.Id, Amount: amount})
			if err != nil {
				t.Fatalf("refund %d (%q) of %s: %v", i, amount, p.Id, err)
			}
			returned += num(r.FeeReturned)
			refunded := num(r.Payment.RefundedAmount)
			if want := 500 * refunded / 10000; i < 3 && returned != want {
				t.Errorf("after refunding %d: %d of the fee returned, want %d (its share of all refunded, rounded down)", refunded, returned, want)
			}
		}
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.Id})
		if err != nil {
			t.Fatal(err)
		}
		wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_REFUNDED, "10000", "500", "10000", "500")
	}
	e.checkInvariants(t)
}

// Partial refunds of one payment sent at once: each returns its share of
// the fee as the payment stood when it was computed, so one computed from a
// payment another refund changed meanwhile is computed again. After 20
// refunds of 19 đồng of a 10,000 đồng payment with a 500 đồng fee, the
// fee returned is exactly the share of the 380 refunded, and a refund of 1
// đồng more returns no more than itself.
func TestConcurrentRefundsReturnTheirShare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("float", a, "5000000", "FT-FLOAT"))
	p := e.record(t, momoNotice("momo", a, "10000", "MOMO-1")).Payment
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			<-start
			if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("r-", i), PaymentId: p.Id, Amount: "19"}); err != nil {
				t.Errorf("refund %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED, "10000", "500", "380", "19")
	r, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "one-dong", PaymentId: p.Id, Amount: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if f := num(r.FeeReturned); f != 0 {
		t.Errorf("the refund of 1 đồng after 380 returned %d đồng of fee, want 0 (500 × 381 / 10,000 rounded down is 19, returned already)", f)
	}
	e.checkInvariants(t)
}

// Copies of one refund request sent at once, among other refunds of the
// same payment: every copy gets the one refund, however the others changed
// the payment the copy computed from.
func TestRefundCopiesAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("float", a, "5000000", "FT-FLOAT"))
	for round := range 3 {
		p := e.record(t, momoNotice(fmt.Sprint("momo-", round), a, "10000", fmt.Sprint("MOMO-", round))).Payment
		var wg sync.WaitGroup
		var mu sync.Mutex
		entries := map[string]bool{}
		start := make(chan struct{})
		for i := range 12 {
			key, copyOf := fmt.Sprint("copy-", round), true
			if i%2 == 1 {
				key, copyOf = fmt.Sprint("other-", round, "-", i), false
			}
			wg.Go(func() {
				<-start
				r, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: key, PaymentId: p.Id, Amount: "19"})
				if err != nil {
					t.Errorf("refund %s of round %d: %v", key, round, err)
					return
				}
				if copyOf {
					mu.Lock()
					entries[r.EntryId] = true
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(entries) != 1 {
			t.Errorf("6 copies of one refund in round %d got %d refunds; want 1", round, len(entries))
		}
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.Id})
		if err != nil {
			t.Fatal(err)
		}
		wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED, "10000", "500", "133", "6")
	}
	e.checkInvariants(t)
}

// A payment whose earlier refunds each returned their own share of the fee
// rounded down, as refunds did before the fee was shared over all refunded
// (migration 00016 leaves such rows as they are), is brought back to the
// rule by its next refund: the fee it returns may then be more than the
// refund itself, and the merchant is credited the difference.
func TestRefundAfterRefundsOfTheEarlierRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("float", a, "5000000", "FT-FLOAT"))
	p := e.record(t, momoNotice("momo", a, "10000", "MOMO-1")).Payment
	// Ten refunds of 19 đồng, each returning 500 × 19 / 10,000 rounded
	// down: none of the fee.
	if _, err := e.db.Pool.Exec(ctx, `ALTER TABLE payments DROP CONSTRAINT payments_refunded_fee_share`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := e.ledger.Post(ctx, ledger.EntryRequest{
			IdempotencyKey: fmt.Sprint("payment:refund:earlier-", i), Market: testMarket, Kind: payment.KindRefund, Currency: "VND",
			Postings: []ledger.PostingInput{
				{AccountCode: merchant.PayableAccount(a), Direction: ledger.Debit, Amount: decimal.NewFromInt(19)},
				{AccountCode: merchant.ClearingAccount(merchant.ChannelMoMo, testMarket), Direction: ledger.Credit, Amount: decimal.NewFromInt(19)},
			},
			Metadata: map[string]string{"payment_id": p.Id, "merchant": a, "channel": "MOMO", "amount": "19", "fee_returned": "0"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.Pool.Exec(ctx, `ALTER TABLE payments ADD CONSTRAINT payments_refunded_fee_share CHECK (
    status <> 'partially_refunded' OR fee_refunded = floor(fee::numeric * refunded_amount / confirmed_amount)) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	// 5 đồng more: the share of 195 is 9 đồng, none returned yet.
	r, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "next", PaymentId: p.Id, Amount: "5"})
	if err != nil {
		t.Fatalf("refund of 5 đồng after refunds of the earlier rule: %v", err)
	}
	if r.FeeReturned != "9" {
		t.Errorf("the refund of 5 đồng returned %s đồng of fee, want 9", r.FeeReturned)
	}
	wantPayment(t, r.Payment, pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED, "10000", "500", "195", "9")
	e.checkInvariants(t)
}

// The bank's notification of a payment request's bill number, with a
// reference other than the one the stall recorded for the request's
// pending payment, is a payment of its own: the stall's payment is another
// transfer's (or its reference a typing error, and it expires
// unconfirmed), and confirming it would record the bank's reference
// nowhere. The bank's money is recorded, once: the notification sent again
// under another key is that payment's replay. It was refused, and the
// money could not be recorded while the stall's payment was pending.
func TestNotificationOfABillWithAnotherReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "STALL-REF-1", PaymentRequestId: pr.PaymentRequest.Id}).Payment
	var own *pb.Payment
	for i, key := range []string{"bank-1", "bank-2"} {
		resp, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT26330000001", BillNumber: pr.PaymentRequest.BillNumber})
		if err != nil {
			t.Fatalf("notification %s of the bill with another reference: %v; want it recorded", key, err)
		}
		if i == 0 {
			own = resp.Payment
		}
		if resp.Payment.Id == stall.Id || resp.Payment.Id != own.Id || resp.Replayed != (i == 1) || resp.Payment.ProviderRef != "FT26330000001" ||
			resp.Payment.PaymentRequestId != pr.PaymentRequest.Id {
			t.Errorf("notification %s: payment %v, replayed %v; want a payment of its own with the bank's reference and the bill, the second a replay", key, resp.Payment, resp.Replayed)
		}
		wantPayment(t, resp.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
	}
	e.sameAsStored(t, "the bank's payment", own)
	left, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, left.Payment, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "750", "0", "0")
	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if err != nil || bal.Balance.Posted != "149250" {
		t.Errorf("payable of %s: %v, %v; want 149250, the bank's 150000 less its fee, once", a, bal.GetBalance().GetPosted(), err)
	}
	e.checkInvariants(t)
}

// Two transfers paying one bill, notified together in one bulk call while
// the stall's payment of the bill is pending: one confirms the stall's
// payment, the other is a payment of its own, as when they come one after
// the other. Both were planned to confirm the one pending payment, and the
// second was refused for a pending entry the first had closed, so money
// the bank received was not recorded.
func TestTwoNotificationsOfABillInOneBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	first, second := bankNotice("bank-1", a, "150000", "FT26330000001"), bankNotice("bank-2", a, "150000", "FT26330000002")
	first.BillNumber, second.BillNumber = pr.PaymentRequest.BillNumber, pr.PaymentRequest.BillNumber
	resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, r := range resp.Results {
		if r.Error != nil || r.Replayed {
			t.Fatalf("notification %d of the bill: %v, replayed %v; want it recorded", i, r.Error, r.Replayed)
		}
		wantPayment(t, r.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
		e.sameAsStored(t, fmt.Sprintf("notification %d", i), r.Payment)
		ids[r.Payment.Id] = true
	}
	if len(ids) != 2 || !ids[stall.Id] {
		t.Errorf("the notifications recorded payments %v; want the stall's %s and one more", ids, stall.Id)
	}
	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if err != nil || bal.Balance.Posted != "298500" {
		t.Errorf("payable of %s: %v, %v; want 298500, two payments of 150000 less 750 each", a, bal.GetBalance().GetPosted(), err)
	}
	e.checkInvariants(t)
}

// A bank notification naming a bill, and the stall's payment of the same
// transfer with its reference, recorded while the notification is on its
// way: the notification confirms the stall's payment, as when the stall's
// came first. It was planned as a new payment before the stall's took the
// reference, and was then refused AlreadyExists naming the stall's payment,
// which a bank takes for "already recorded", while that payment stayed
// pending until it expired and the merchant was never credited.
func TestNotificationOfABillWhileTheStallRecordsItsReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	// The payment requests are held, so that the notification stops where
	// it looks its bill up: after it read which payments carry its
	// reference, before it writes.
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below
	if _, err := tx.Exec(ctx, `LOCK TABLE payment_requests IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	notice := bankNotice("bank-1", a, "150000", "FT26330000001")
	notice.BillNumber = pr.PaymentRequest.BillNumber
	type answer struct {
		resp *pb.RecordPaymentResponse
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := e.payments.RecordPayment(ctx, notice)
		answers <- answer{resp, err}
	}()
	waiting := 0
	for range 250 {
		if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM payment_requests%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if waiting == 0 {
		t.Fatal("the notification is not waiting for the payment requests")
	}
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT26330000001"}).Payment
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-answers
	if got.err != nil {
		t.Fatalf("the notification: %v; want it to confirm the stall's payment %s", got.err, stall.Id)
	}
	if got.resp.Payment.Id != stall.Id {
		t.Errorf("the notification recorded payment %s; want the stall's %s", got.resp.Payment.Id, stall.Id)
	}
	paid, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, paid.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
	e.checkInvariants(t)
}

// A bank's notification of a bill for more than the bill, the customer
// having paid 200,000 of a 150,000 bill, while the stall's payment of the
// bill is pending: it is a payment of its own of what the bank received,
// as it is when the stall recorded nothing or the bank leaves the bill
// out, and the stall's payment stays pending. A pending entry is posted
// for at most its amount, so it could not confirm the stall's payment,
// and was refused FailedPrecondition: money the bank received could not
// be recorded at all while the stall's payment was pending.
func TestNotificationOfABillForMoreThanTheBill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	notice := bankNotice("bank-1", a, "200000", "FT26330000001")
	notice.BillNumber = pr.PaymentRequest.BillNumber
	resp, err := e.payments.RecordPayment(ctx, notice)
	if err != nil {
		t.Fatalf("notification of 200000 đồng of the bill of 150000: %v; want it recorded", err)
	}
	paid := resp.Payment
	if paid.Id == stall.Id || paid.Source != pb.PaymentSource_PAYMENT_SOURCE_BANK || paid.Amount != "200000" ||
		paid.BillNumber != pr.PaymentRequest.BillNumber || paid.PaymentRequestId != pr.PaymentRequest.Id {
		t.Errorf("the notification recorded %v; want a bank payment of its own of 200000 đồng, of bill %s", paid, pr.PaymentRequest.BillNumber)
	}
	wantPayment(t, paid, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "200000", "1000", "0", "0")
	e.sameAsStored(t, "the notification's payment", paid)
	// Sent again under another key, it is the payment it recorded.
	notice.IdempotencyKey = "bank-2"
	again, err := e.payments.RecordPayment(ctx, notice)
	if err != nil || !again.Replayed || again.Payment.Id != paid.Id {
		t.Errorf("the notification sent again: %v, %v; want payment %s replayed", again, err, paid.Id)
	}
	left, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, left.Payment, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "750", "0", "0")
	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if err != nil || bal.Balance.Posted != "199000" {
		t.Errorf("payable of %s: %v, %v; want 199000, the 200000 the bank received less 1000", a, bal.GetBalance().GetPosted(), err)
	}
	e.checkInvariants(t)
}

// A bank's notification of a reference the stall's pending payment
// carries, for more than that payment, confirms nothing and records
// nothing: the reference names one transfer, so it cannot be a payment of
// its own as a bill's notification for more is, and a pending entry is
// posted for at most its amount. It is refused naming the amount, and the
// stall's payment stays pending, for someone to sort out which is right.
func TestNotificationOfAStallReferenceForMore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT26330000001"}).Payment
	_, err := e.payments.RecordPayment(ctx, bankNotice("bank-1", a, "200000", "FT26330000001"))
	wantCode(t, err, codes.FailedPrecondition, "amount")
	left, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, left.Payment, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "750", "0", "0")
	e.checkInvariants(t)
}

// A bank's notification of a bill whose older pending payment the stall
// recorded with another reference, and a newer one without any: it
// confirms the one without a reference, which may be of its transfer,
// rather than being refused for the other, which is of another.
func TestNotificationOfABillSkipsAPaymentOfAnotherReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	referenced := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "STALL-REF-1", PaymentRequestId: pr.PaymentRequest.Id}).Payment
	unreferenced := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-2", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	notice := bankNotice("bank-1", a, "150000", "FT26330000001")
	notice.BillNumber = pr.PaymentRequest.BillNumber
	resp, err := e.payments.RecordPayment(ctx, notice)
	if err != nil {
		t.Fatalf("notification of the bill: %v; want it to confirm payment %s, which carries no reference", err, unreferenced.Id)
	}
	if resp.Payment.Id != unreferenced.Id || resp.Payment.ProviderRef != "FT26330000001" {
		t.Errorf("the notification recorded payment %s with reference %q; want %s with FT26330000001", resp.Payment.Id, resp.Payment.ProviderRef, unreferenced.Id)
	}
	wantPayment(t, resp.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
	e.sameAsStored(t, "the confirmed payment", resp.Payment)
	left, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: referenced.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, left.Payment, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "750", "0", "0")
	e.checkInvariants(t)
}

// A bank's notification of a bill whose number it sends in lower case,
// as a payer may have typed it into the transfer: it confirms the stall's
// payment of the bill, as the number in capitals does. Bill numbers are
// made of capitals and digits, so no two differ by case alone; the lower
// case one was answered NotFound, as for a bill that does not exist.
func TestNotificationOfABillInLowerCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr := e.billOf(t, a)
	bill := pr.PaymentRequest.BillNumber
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	notice := bankNotice("bank-1", a, "150000", "FT26330000001")
	notice.BillNumber = strings.ToLower(bill)
	resp, err := e.payments.RecordPayment(ctx, notice)
	if err != nil {
		t.Fatalf("notification of bill %s: %v; want it to confirm the stall's payment %s of bill %s", notice.BillNumber, err, stall.Id, bill)
	}
	if resp.Payment.Id != stall.Id || resp.Payment.BillNumber != bill {
		t.Errorf("the notification recorded payment %s of bill %s; want the stall's %s of bill %s", resp.Payment.Id, resp.Payment.BillNumber, stall.Id, bill)
	}
	wantPayment(t, resp.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
	// Sent again under its key, in either case, it is the same notification.
	for _, number := range []string{strings.ToLower(bill), bill} {
		notice.BillNumber = number
		again, err := e.payments.RecordPayment(ctx, notice)
		if err != nil || !again.Replayed || again.Payment.Id != stall.Id {
			t.Errorf("the notification sent again with bill %s: %v, %v; want payment %s replayed", number, again, err, stall.Id)
		}
	}
	e.checkInvariants(t)
}

// momoNotice is MoMo's notification of a payment.
func momoNotice(key, merchant, amount, ref string) *pb.RecordPaymentRequest {
	r := bankNotice(key, merchant, amount, ref)
	r.Channel = pb.Channel_CHANNEL_MOMO
	return r
}

// bankNotice is a bank's VietQR notification of a payment.
// billOf creates merchant a's payment request of 150,000 đồng (key
// req-1), whose bill the bank's notifications name.
func (e *env) billOf(t *testing.T, a string) *pb.CreatePaymentRequestResponse {
	t.Helper()
	pr, err := e.payments.CreatePaymentRequest(context.Background(), &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: a, Amount: "150000", Purpose: "rau cai"})
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func bankNotice(key, merchant, amount, ref string) *pb.RecordPaymentRequest {
	return &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: merchant, Channel: pb.Channel_CHANNEL_VIETQR, Amount: amount,
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: ref}
}

// A bulk call of bank notifications finds the references already recorded,
// whether a bank notification brought them or a confirmation of a stall's
// payment did, and answers those items with the recorded payments as
// replays, writing only the new one.
func TestRecordPaymentsFindsRecordedReferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	byBank := e.record(t, bankNotice("refs-1", a, "12000", "FT-REFS-1")).Payment
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "refs-2", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "15000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	if _, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "refs-3", PaymentId: stall.Id, ProviderRef: "FT-REFS-2"}); err != nil {
		t.Fatal(err)
	}
	before := e.journalSize(t)

	resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		bankNotice("refs-again-1", a, "12000", "FT-REFS-1"),
		bankNotice("refs-again-2", b, "15000", "FT-REFS-2"),
		bankNotice("refs-new", a, "9000", "FT-REFS-3"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		id       string
		replayed bool
	}{{byBank.Id, true}, {stall.Id, true}, {"", false}} {
		r := resp.Results[i]
		if r.Error != nil || r.Replayed != want.replayed || (want.id != "" && r.Payment.GetId() != want.id) {
			t.Errorf("item %d: payment %s, replayed %v, error %v; want payment %q, replayed %v", i, r.Payment.GetId(), r.Replayed, r.Error, want.id, want.replayed)
		}
	}
	if after := e.journalSize(t); after[0] != before[0]+1 || after[1] != before[1]+1 {
		t.Fatalf("entries and payments went from %v to %v; want one new payment", before, after)
	}
	e.checkInvariants(t)
}

// A payment whose key or reference something recorded before gets the
// answer that record calls for, in a single call and in a bulk call alike:
// the stall's pending payment carrying the bank's reference is confirmed,
// not answered as it stands; a bank's or a stall's key replayed after its
// merchant was suspended is still the recorded payment; a key reused for
// another amount is refused naming the amount.
func TestRecordsAfterEarlierRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	stall := func(key, ref string) *pb.Payment {
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: ref}).Payment
	}

	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk %v", bulk), func(t *testing.T) {
			tag := fmt.Sprint(bulk)
			call := func(r *pb.RecordPaymentRequest) (*pb.RecordPaymentResult, error) {
				if !bulk {
					resp, err := e.payments.RecordPayment(ctx, r)
					return &pb.RecordPaymentResult{Payment: resp.GetPayment(), Replayed: resp.GetReplayed()}, err
				}
				resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{r, bankNotice("filler-"+r.IdempotencyKey, a, "5000", "FT-FILL-"+r.IdempotencyKey)}})
				if err != nil {
					return nil, err
				}
				res := resp.Results[0]
				if res.Error != nil {
					return nil, status.Error(codes.Code(res.Error.Code), res.Error.Message)
				}
				return res, nil
			}

			pending := stall("stall-ref-"+tag, "FT-PENDING-"+tag)
			got, err := call(bankNotice("bank-ref-"+tag, a, "20000", "FT-PENDING-"+tag))
			if err != nil || got.Payment.GetId() != pending.Id || got.Payment.GetStatus() != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED || got.Replayed {
				t.Fatalf("bank notification of a stall's pending payment: %v, %v; want payment %s confirmed, not replayed", got, err, pending.Id)
			}

			first := e.record(t, bankNotice("before-suspension-"+tag, b, "30000", "FT-SUSP-"+tag)).Payment
			byStall := &pb.RecordPaymentRequest{IdempotencyKey: "stall-before-suspension-" + tag, Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR,
				Amount: "25000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
			firstByStall := e.record(t, byStall).Payment
			if _, err := e.merchants.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: b, Reason: "inspection"}); err != nil {
				t.Fatal(err)
			}
			got, err = call(bankNotice("before-suspension-"+tag, b, "30000", "FT-SUSP-"+tag))
			if err != nil || got.Payment.GetId() != first.Id || !got.Replayed {
				t.Fatalf("replay after suspension: %v, %v; want payment %s replayed", got, err, first.Id)
			}
			got, err = call(byStall)
			if err != nil || got.Payment.GetId() != firstByStall.Id || !got.Replayed {
				t.Fatalf("stall's replay after suspension: %v, %v; want payment %s replayed", got, err, firstByStall.Id)
			}
			if _, err := e.merchants.ReinstateMerchant(ctx, &pb.ReinstateMerchantRequest{Code: b}); err != nil {
				t.Fatal(err)
			}

			_, err = call(bankNotice("before-suspension-"+tag, b, "31000", "FT-SUSP-"+tag))
			if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "amount") {
				t.Fatalf("key reused for another amount: %v; want AlreadyExists naming the amount", err)
			}
		})
	}
	e.checkInvariants(t)
}

// A merchant suspended or closed takes no new payments, but what it took
// before stays its own: the bank's notification of a stall's pending
// payment recorded before confirms it, as ConfirmPayment does, and a
// notification of a payment already recorded, sent again under another
// key, is answered with that payment as a replay, never refused as if the
// payment had not been made.
func TestNotificationsAfterSuspensionOrClosing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	for _, c := range []struct {
		merchant string
		stop     func() error
	}{
		{a, func() error {
			_, err := e.merchants.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: a, Reason: "inspection"})
			return err
		}},
		{b, func() error {
			_, err := e.merchants.CloseMerchant(ctx, &pb.CloseMerchantRequest{Code: b, Reason: "left the market"})
			return err
		}},
	} {
		m := c.merchant
		paid := e.record(t, bankNotice("paid-"+m, m, "30000", "FT-PAID-"+m)).Payment
		pending := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-" + m, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "25000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT-PEND-" + m}).Payment
		if err := c.stop(); err != nil {
			t.Fatal(err)
		}

		got, err := e.payments.RecordPayment(ctx, bankNotice("paid-again-"+m, m, "30000", "FT-PAID-"+m))
		if err != nil || got.Payment.GetId() != paid.Id || !got.Replayed {
			t.Errorf("%s: the notification of payment %s sent again: %v, %v; want it replayed", m, paid.Id, got, err)
		}
		got, err = e.payments.RecordPayment(ctx, bankNotice("confirm-"+m, m, "25000", "FT-PEND-"+m))
		if err != nil || got.Payment.GetId() != pending.Id || got.Payment.GetStatus() != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
			t.Errorf("%s: the notification of pending payment %s: %v, %v; want it confirmed", m, pending.Id, got, err)
		}
		// Still no new payment.
		_, err = e.payments.RecordPayment(ctx, bankNotice("new-"+m, m, "40000", "FT-NEW-"+m))
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: a new payment: %v; want FailedPrecondition", m, err)
		}
	}

	// Likewise a channel the merchant no longer accepts.
	if _, err := e.merchants.ReinstateMerchant(ctx, &pb.ReinstateMerchantRequest{Code: a}); err != nil {
		t.Fatal(err)
	}
	pending := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-momo", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO,
		Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "MOMO-PEND"}).Payment
	if _, err := e.merchants.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
		Merchant: &pb.Merchant{Code: a, Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR},
			FeePlan: &pb.FeePlan{MinFee: "500", Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: 50}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"channels", "fee_plan"}},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := e.payments.RecordPayment(ctx, momoNotice("confirm-momo", a, "50000", "MOMO-PEND"))
	if err != nil || got.Payment.GetId() != pending.Id || got.Payment.GetStatus() != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
		t.Errorf("MoMo's notification of pending payment %s, MoMo no longer accepted: %v, %v; want it confirmed", pending.Id, got, err)
	}
	e.checkInvariants(t)
}

// A rejection's or a refund's reason is up to 200 characters, however
// many bytes its Vietnamese letters take.
func TestReasonsOf200Characters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	reason := strings.Repeat("ờ", 200) // 600 bytes
	pending := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "r1", PaymentId: pending.Id, Reason: reason}); err != nil {
		t.Errorf("reject with a reason of 200 characters: %v", err)
	}
	paid := e.record(t, bankNotice("p2", a, "30000", "FT-R-1")).Payment
	if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "f1", PaymentId: paid.Id, Amount: "1000", Reason: reason}); err != nil {
		t.Errorf("refund with a reason of 200 characters: %v", err)
	}
	e.checkInvariants(t)
}

// An amount written as Vietnamese writes 45,000 đồng, "45.000", is refused
// wherever an amount is taken, as a statement refuses it: read with a
// decimal point it is 45 đồng, and a bank's partial confirmation of it
// would confirm 45 đồng of a 45,000 payment and release the rest for
// good, a refund would give back 45 đồng, a provider's settlement record
// a thousandth of the money received.
func TestAmountWithAThousandsSeparatorIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pending := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "45000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	confirmed := e.record(t, bankNotice("bank-1", a, "60000", "FT-1")).Payment
	before := e.journalSize(t)

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"partial confirmation", func() error {
			_, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "conf-1", PaymentId: pending.Id, Amount: "45.000", ProviderRef: "FT-2"})
			return err
		}},
		{"refund", func() error {
			_, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-1", PaymentId: confirmed.Id, Amount: "15.000"})
			return err
		}},
		{"provider settlement", func() error {
			_, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
				Market: testMarket, Amount: "60.000", Bank: "vcb", BankRef: "VCB-1"})
			return err
		}},
	} {
		st := status.Convert(tc.call())
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "amount") || !strings.Contains(st.Message(), "thousands separator") {
			t.Errorf("%s: got %v %q; want InvalidArgument naming amount and the thousands separator", tc.name, st.Code(), st.Message())
		}
	}
	if after := e.journalSize(t); after != before {
		t.Errorf("refused requests wrote: entries, payments, requests, refunds went from %v to %v", before, after)
	}
	got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: pending.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "500", "0", "0")
	e.checkInvariants(t)
}

// Copies of one refund sent at once are each answered with the payment as
// the refund left it, the one that recorded it and the replays alike: a
// copy that found the refund recorded by another had read the payment
// before it, and answered with the payment not yet refunded.
func TestRefundCopiesAnswerWithTheRefundedPayment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	for round := range 10 {
		p := e.record(t, bankNotice(fmt.Sprint("pay-", round), a, "10000", fmt.Sprint("FT-", round))).Payment
		req := &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("refund-", round), PaymentId: p.Id, Amount: "1000"}
		resps, errs := copies(8, func() (*pb.RefundPaymentResponse, error) { return e.payments.RefundPayment(ctx, req) })
		for i, r := range resps {
			if errs[i] != nil {
				t.Fatalf("copy %d of refund %d: %v", i, round, errs[i])
			}
			if r.Payment.RefundedAmount != "1000" || r.Payment.Status != pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED || r.EntryId != r.Payment.EntryIds[len(r.Payment.EntryIds)-1] {
				t.Fatalf("copy %d of refund %d (replayed %v, entry %s) answered payment\n%v\nwithout its refund", i, round, r.Replayed, r.EntryId, r.Payment)
			}
			e.sameAsStored(t, fmt.Sprint("copy ", i, " of refund ", round), r.Payment)
		}
	}
	e.checkInvariants(t)
}

// A payment request's QR pays the market's collection account, so the
// collecting bank learns from the transfer its bill number, not whose
// stall it is: its notification may name the bill (or the request) and no
// merchant, and is recorded as the request's merchant's, alone or in a
// bulk call, and answered as its replay when sent again, with the merchant
// or without. A bill that does not exist, or one of a market the bank is
// not bound to, is refused as what is not the bank's own, and writes
// nothing; an operator is told it does not exist.
func TestBankNotificationNamingOnlyTheBill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	_, napas := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	_, elsewhere := e.issue(t, access.IssueRequest{Name: "VietQR bank elsewhere", Role: access.RoleBank, Provider: "napas", Markets: []string{"TN-OTHER"}})
	bank := pb.NewPaymentServiceClient(e.dial(t, napas))

	bill := e.billOf(t, a).PaymentRequest
	notice := &pb.RecordPaymentRequest{IdempotencyKey: "n-1", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BILL-1", BillNumber: strings.ToLower(bill.BillNumber)}
	r, err := bank.RecordPayment(ctx, notice)
	if err != nil {
		t.Fatalf("a notification naming only the bill: %v", err)
	}
	if p := r.Payment; p.Merchant != a || p.BillNumber != bill.BillNumber || p.PaymentRequestId != bill.Id || p.Status != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
		t.Fatalf("a notification naming only the bill recorded %v; want %s's payment of request %s, confirmed", p, a, bill.Id)
	}
	for what, again := range map[string]*pb.RecordPaymentRequest{
		"sent again": proto.Clone(notice).(*pb.RecordPaymentRequest),
		"sent again with the merchant": func() *pb.RecordPaymentRequest {
			n := proto.Clone(notice).(*pb.RecordPaymentRequest)
			n.Merchant = a
			return n
		}(),
	} {
		replay, err := bank.RecordPayment(ctx, again)
		if err != nil || !replay.Replayed || replay.Payment.Id != r.Payment.Id {
			t.Errorf("%s: %v, %v; want the replay of payment %s", what, replay, err, r.Payment.Id)
		}
	}

	// In a bulk call, by the request's id.
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-2", Merchant: "TN-TEST-0002", Amount: "150000"})
	if err != nil {
		t.Fatal(err)
	}
	second := pr.PaymentRequest
	bulk, err := bank.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{{IdempotencyKey: "n-2", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "150000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BILL-2", PaymentRequestId: second.Id}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := bulk.Results[0]; res.Error != nil || res.Payment.Merchant != "TN-TEST-0002" || res.Payment.PaymentRequestId != second.Id {
		t.Errorf("a bulk item naming only the request: %v; want TN-TEST-0002's payment of request %s", res, second.Id)
	}

	before := e.snapshot(t)
	for who, call := range map[string]struct {
		client pb.PaymentServiceClient
		bill   string
		want   codes.Code
	}{
		"the bank, of no bill":     {bank, "CLNOSUCHBILL", codes.PermissionDenied},
		"a bank of another market": {pb.NewPaymentServiceClient(e.dial(t, elsewhere)), bill.BillNumber, codes.PermissionDenied},
		"the operator, of no bill": {e.payments, "CLNOSUCHBILL", codes.NotFound},
	} {
		_, err := call.client.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "n-x", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BILL-X", BillNumber: call.bill})
		if status.Code(err) != call.want {
			t.Errorf("%s: %v; want %v", who, err, call.want)
		}
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("refused notifications wrote: %s -> %s", before, after)
	}
	e.checkInvariants(t)
}
