package api_test

import (
	"context"
	"testing"
	"time"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// A bank's notification of a bill whose stall payment has passed its
// expiry is answered as it is once the sweeper has voided that payment:
// the money the bank reports is recorded as a payment of its own. Whether
// the sweeper has run yet is nothing the bank can know.
func TestNotificationOfABillWhosePaymentExpiredBeforeTheSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: a, Amount: "150000"})
	if err != nil {
		t.Fatal(err)
	}
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	e.advance(24*time.Hour + time.Second) // the payment is due to expire; no sweep has run
	notice := bankNotice("bank-1", a, "150000", "FT26330000001")
	notice.BillNumber = pr.PaymentRequest.BillNumber
	got, err := e.payments.RecordPayment(ctx, notice)
	if err != nil {
		t.Fatalf("the bank's notification of the bill after the stall's payment expired: %v; want it recorded", err)
	}
	if got.Payment.Id == stall.Id {
		t.Fatalf("the notification confirmed the expired payment %s", stall.Id)
	}
	wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
	if n, err := e.ledger.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v; want 1", n, err)
	}
	expired, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, expired.Payment, pb.PaymentStatus_PAYMENT_STATUS_EXPIRED, "0", "750", "0", "0")
	again, err := e.payments.RecordPayment(ctx, notice)
	if err != nil || !again.Replayed || again.Payment.Id != got.Payment.Id {
		t.Errorf("the notification sent again after the sweep: %v, %v; want the replay of %s", again, err, got.Payment.Id)
	}
	e.checkInvariants(t)
}
