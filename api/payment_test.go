package api_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant/vietqr"
)

const testMarket = "TN-TEST"

// testCollection is the collection account of the markets tests open: at
// VietinBank, so that a QR naming it names no merchant's account.
var testCollection = &pb.PayoutAccount{BankBin: "970415", AccountNumber: "113600001234", HolderName: "BQL CHO THU"}

// setUpMarket opens a market with two merchants: A takes VietQR at 50 bp and
// MoMo at 150 bp with a 500 đồng minimum fee; B takes VietQR free.
func (e *env) setUpMarket(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{
		Code: testMarket, Name: "Chợ Thử", Province: "Thái Nguyên", Ward: "Phường Thử", CollectionAccount: testCollection,
	}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pb.Merchant{
		{
			Code: "TN-TEST-0001", Market: testMarket, Stalls: []string{"A-001"}, DisplayName: "Hàng rau cô Lan",
			OwnerName: "Nguyễn Thị Lan", Phone: "0912345678",
			PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011001234567", HolderName: "NGUYEN THI LAN"},
			Channels:      []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO},
			FeePlan: &pb.FeePlan{MinFee: "500", Fees: []*pb.ChannelFee{
				{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: 50}, {Channel: pb.Channel_CHANNEL_MOMO, BasisPoints: 150},
			}},
		},
		{
			Code: "TN-TEST-0002", Market: testMarket, Stalls: []string{"B-001"}, DisplayName: "Hàng thịt chú Ba",
			OwnerName: "Trần Văn Ba", Phone: "0987654321",
			PayoutAccount: &pb.PayoutAccount{BankBin: "970415", AccountNumber: "101875432", HolderName: "TRAN VAN BA"},
			Channels:      []pb.Channel{pb.Channel_CHANNEL_VIETQR},
			FeePlan:       &pb.FeePlan{MinFee: "0"},
		},
	} {
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m}); err != nil {
			t.Fatalf("create merchant %s: %v", m.Code, err)
		}
	}
}

func (e *env) record(t *testing.T, r *pb.RecordPaymentRequest) *pb.RecordPaymentResponse {
	t.Helper()
	resp, err := e.payments.RecordPayment(context.Background(), r)
	if err != nil {
		t.Fatalf("record %s: %v", r.IdempotencyKey, err)
	}
	return resp
}

func wantPayment(t *testing.T, p *pb.Payment, status pb.PaymentStatus, confirmed, fee, refunded, feeRefunded string) {
	t.Helper()
	if p.Status != status || p.ConfirmedAmount != confirmed || p.Fee != fee || p.RefundedAmount != refunded || p.FeeRefunded != feeRefunded {
		t.Fatalf("payment %s: status %v confirmed %s fee %s refunded %s fee refunded %s; want %v %s %s %s %s",
			p.Id, p.Status, p.ConfirmedAmount, p.Fee, p.RefundedAmount, p.FeeRefunded, status, confirmed, fee, refunded, feeRefunded)
	}
}

// A market day through the API: a payment request with its dynamic QR, paid
// and recorded by the stall, confirmed by the bank; a payment only the bank
// saw, reported twice; a rejection; an expiry; a partial confirmation; and
// partial and full refunds. Afterwards the ledger's invariants hold and each
// merchant's payable is its payments less fees and refunds.
// sameAsStored asserts that a flow's answer, built from the entry it wrote
// rather than read back, is exactly what the projection stored.
func (e *env) sameAsStored(t *testing.T, what string, p *pb.Payment) {
	t.Helper()
	stored, err := e.payments.GetPayment(context.Background(), &pb.GetPaymentRequest{Id: p.Id})
	if err != nil || !proto.Equal(stored.Payment, p) {
		t.Errorf("%s answered\n%v\nthe projection holds\n%v (%v)", what, p, stored.GetPayment(), err)
	}
}

func TestMarketDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"

	// 1. The stall shows a dynamic QR for 150,000 đồng, paid into the
	// market's collection account.
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: a, Amount: "150000", Purpose: "rau cai"})
	if err != nil {
		t.Fatal(err)
	}
	qr, err := vietqr.Parse(pr.PaymentRequest.QrPayload)
	if err != nil {
		t.Fatalf("dynamic QR %q: %v", pr.PaymentRequest.QrPayload, err)
	}
	if qr.Initiation != vietqr.Dynamic || qr.Amount != "150000" || qr.BillNumber != pr.PaymentRequest.BillNumber ||
		qr.BankBIN != testCollection.BankBin || qr.Account != testCollection.AccountNumber || qr.Purpose != pr.PaymentRequest.BillNumber+" rau cai" {
		t.Fatalf("dynamic QR carries %+v", qr)
	}
	again, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: a, Amount: "150000", Purpose: "rau cai"})
	if err != nil || !again.Replayed || again.PaymentRequest.Id != pr.PaymentRequest.Id {
		t.Fatalf("payment request replay: %v, %v", again, err)
	}

	// 2. The stall records it: pending. 3. The bank's notification, carrying
	// the bill number, confirms that payment rather than adding one.
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
	wantPayment(t, stall, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "750", "0", "0")
	bank := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "bank-ft1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT26330000001", BillNumber: pr.PaymentRequest.BillNumber})
	if bank.Payment.Id != stall.Id {
		t.Fatalf("bank notification recorded payment %s instead of confirming %s", bank.Payment.Id, stall.Id)
	}
	wantPayment(t, bank.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")

	// 4. A payment only the bank saw is posted at once. 5. The same
	// notification again, under another key, records nothing new.
	direct := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "bank-ft2", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO, Amount: "80000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "MOMO26112000001"}).Payment
	wantPayment(t, direct, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "80000", "1200", "0", "0")
	// A new payment's answer is built from its entry, not read back: it is
	// exactly what the projection stored, pending or posted.
	e.sameAsStored(t, "RecordPayment", direct)
	pendingNow := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p-pend", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "12000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, OccurTime: timestamppb.New(time.Now().Add(-time.Minute))}).Payment
	e.sameAsStored(t, "RecordPayment (pending)", pendingNow)
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "rej-pend", PaymentId: pendingNow.Id}); err != nil {
		t.Fatal(err)
	}
	dup := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "bank-ft2-retry", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO, Amount: "80000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "MOMO26112000001"})
	if !dup.Replayed || dup.Payment.Id != direct.Id {
		t.Fatalf("duplicate notification: replayed %v, payment %s; want a replay of %s", dup.Replayed, dup.Payment.Id, direct.Id)
	}

	// 6. Rejected by the bank.
	rejected := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p3", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	rej, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "rej-3", PaymentId: rejected.Id, Reason: "insufficient funds"})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, rej.Payment, pb.PaymentStatus_PAYMENT_STATUS_REJECTED, "0", "0", "0", "0")
	e.sameAsStored(t, "RejectPayment", rej.Payment)

	// 7. Never confirmed: it expires, and can then not be confirmed.
	expiring := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p4", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment

	// 8. Confirmed for less than recorded.
	partial := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p5", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	conf, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "conf-5", PaymentId: partial.Id, Amount: "60000", ProviderRef: "FT26330000005"})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, conf.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "60000", "300", "0", "0")
	confAgain, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "conf-5", PaymentId: partial.Id, Amount: "60000", ProviderRef: "FT26330000005"})
	if err != nil || !confAgain.Replayed {
		t.Fatalf("confirm replay: %v, %v", confAgain, err)
	}
	e.sameAsStored(t, "ConfirmPayment", conf.Payment)
	e.sameAsStored(t, "ConfirmPayment (replayed)", confAgain.Payment)

	e.advance(25 * time.Hour)
	if n, err := e.ledger.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v; want 1", n, err)
	}
	got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: expiring.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_EXPIRED, "0", "0", "0", "0")
	_, err = e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "late", PaymentId: expiring.Id})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("confirming an expired payment: %v", err)
	}

	// 9. Refunds: partial then the rest; the fee comes back in proportion,
	// and exactly in full with the last đồng.
	r1, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-1", PaymentId: stall.Id, Amount: "50000"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.FeeReturned != "250" {
		t.Fatalf("first refund returned fee %s, want 250", r1.FeeReturned)
	}
	wantPayment(t, r1.Payment, pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED, "150000", "750", "50000", "250")
	e.sameAsStored(t, "RefundPayment", r1.Payment)
	_, err = e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-too-much", PaymentId: stall.Id, Amount: "100001"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("refund beyond what remains: %v", err)
	}
	r2, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-2", PaymentId: stall.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, r2.Payment, pb.PaymentStatus_PAYMENT_STATUS_REFUNDED, "150000", "750", "150000", "750")
	e.sameAsStored(t, "RefundPayment (the rest)", r2.Payment)
	r2again, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-2", PaymentId: stall.Id})
	if err != nil || !r2again.Replayed || r2again.EntryId != r2.EntryId {
		t.Fatalf("refund replay: %v, %v", r2again, err)
	}
	_, err = e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-3", PaymentId: stall.Id, Amount: "1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("refund of a fully refunded payment: %v", err)
	}
	r3, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "ref-4", PaymentId: direct.Id, Amount: "20000"})
	if err != nil || r3.FeeReturned != "300" {
		t.Fatalf("partial refund of the bank payment: %v, %v", r3, err)
	}

	// 10. The books: invariants, and payable = payments - fees - refunds +
	// fees returned, for each merchant.
	e.checkInvariants(t)
	for _, m := range []string{a, b} {
		var want int64
		list, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: m})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Payments {
			want += num(p.ConfirmedAmount) - num(p.Fee)*boolInt(p.ConfirmedAmount != "0") - num(p.RefundedAmount) + num(p.FeeRefunded)
		}
		bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + m + ":payable"})
		if err != nil {
			t.Fatal(err)
		}
		if bal.Balance.Posted != strconv.FormatInt(want, 10) || bal.Balance.CreditsPending != "0" {
			t.Errorf("merchant %s payable %v; payments less fees and refunds come to %d", m, bal.Balance, want)
		}
	}
	// Merchant A: 150,000 - 750 (refunded in full) + 60,000 - 300 + 80,000 - 1,200 - 20,000 + 300 = 118,800.
	bal, _ := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if bal.Balance.Posted != "118800" {
		t.Errorf("merchant A payable %s, want 118800", bal.Balance.Posted)
	}
}

func num(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Ids in capitals name the same payment and entries as in lower case, the
// form the service answers with: reading, confirming, and retrying the
// confirmation in the other case.
func TestIDsInCapitals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	rec := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "caps-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "80000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
	id := rec.Payment.Id
	upper := strings.ToUpper(id)
	if upper == id {
		t.Fatalf("id %s has no letters", id)
	}

	got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: upper})
	if err != nil || got.Payment.Id != id {
		t.Fatalf("GetPayment(%s): %v, %v", upper, got, err)
	}
	conf, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "caps-conf", PaymentId: upper, ProviderRef: "FT26331000001"})
	if err != nil || conf.Replayed || conf.Payment.Id != id || conf.Payment.Status != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
		t.Fatalf("ConfirmPayment(%s): %v, %v", upper, conf, err)
	}
	again, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "caps-conf", PaymentId: id, ProviderRef: "FT26331000001"})
	if err != nil || !again.Replayed || again.Payment.Id != id {
		t.Fatalf("the same confirmation in lower case: %v, %v", again, err)
	}
	entry, err := e.client.GetEntry(ctx, &pb.GetEntryRequest{Id: strings.ToUpper(conf.Payment.EntryIds[1])})
	if err != nil || entry.Entry.Id != conf.Payment.EntryIds[1] {
		t.Fatalf("GetEntry in capitals: %v, %v", entry, err)
	}
}

// A payment request's QR is printable ASCII whatever purpose the stall
// typed: the purpose reaches tag 62/08 without diacritics or emoji, while
// the request stores it as given.
func TestPaymentRequestQRIsASCII(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const purpose = "Rau cải, phở 🍜"
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "50000", Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	payload := pr.PaymentRequest.QrPayload
	for i := 0; i < len(payload); i++ {
		if payload[i] < 0x20 || payload[i] > 0x7e {
			t.Fatalf("QR %q has byte %#x at %d, outside printable ASCII", payload, payload[i], i)
		}
	}
	// Tag 62/08: the bill number, then the purpose folded.
	qr, err := vietqr.Parse(payload)
	if want := pr.PaymentRequest.BillNumber + " Rau cai, pho"; err != nil || qr.Purpose != want {
		t.Errorf("QR %q carries purpose %q (%v), want %q", payload, qr.Purpose, err, want)
	}
	var stored string
	if err := e.db.Pool.QueryRow(ctx, `SELECT purpose FROM payment_requests WHERE id = $1`, pr.PaymentRequest.Id).Scan(&stored); err != nil || stored != purpose {
		t.Errorf("request stores purpose %q (%v), want %q as given", stored, err, purpose)
	}
	again, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "50000", Purpose: purpose})
	if err != nil || !again.Replayed || again.PaymentRequest.QrPayload != payload {
		t.Errorf("replay: %v, %v", again, err)
	}
}

// A purpose no QR can carry is InvalidArgument naming the purpose field,
// whether the request's own check or the QR's refuses it.
func TestPaymentRequestRefusesPurposeNamingIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	for i, purpose := range []string{"rau\tcải", "rau cải\n", "rau\x7fcai", "rau\u0085cai", strings.Repeat("ả", 26)} {
		_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: fmt.Sprint("req-", i), Merchant: "TN-TEST-0001", Amount: "50000", Purpose: purpose})
		st := status.Convert(err)
		field := ""
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 {
				field = br.FieldViolations[0].Field
			}
		}
		if st.Code() != codes.InvalidArgument || field != "purpose" {
			t.Errorf("purpose %q: got %v %q with field violation %q; want InvalidArgument on field purpose", purpose, st.Code(), st.Message(), field)
		}
	}
}

// A payment request's merchant that is no merchant code, or no merchant, is
// refused naming merchant, the request's field, as RecordPayment names it.
func TestPaymentRequestRefusesMerchantNamingIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	for i, c := range []struct {
		merchant string
		code     codes.Code
	}{
		{"tn-test-0001", codes.InvalidArgument},
		{"TN TEST 0001", codes.InvalidArgument},
		{"TN-TEST-9999", codes.NotFound},
	} {
		_, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: fmt.Sprint("req-", i), Merchant: c.merchant, Amount: "50000"})
		st := status.Convert(err)
		field := ""
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 {
				field = br.FieldViolations[0].Field
			}
		}
		if st.Code() != c.code || !strings.HasPrefix(st.Message(), "merchant: ") || (c.code == codes.InvalidArgument && field != "merchant") {
			t.Errorf("merchant %q: got %v %q with field violation %q; want %v naming merchant", c.merchant, st.Code(), st.Message(), field, c.code)
		}
	}
}

// Each item of a bulk RecordPayments is a write of its own, and the audit
// trail holds one event per item: the payment written, or the merchant the
// refused item named with its code and message. Only a call refused whole,
// a bad request or a denied item, is one event of the call.
func TestRecordPaymentsAuditsEachItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		{IdempotencyKey: "bulk-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "bulk-2", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000.5", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "bulk-3", Merchant: "TN-TEST-0002", Channel: pb.Channel_CHANNEL_MOMO, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results; r[0].Error != nil || r[1].Error == nil || r[2].Error == nil {
		t.Fatalf("results %v: want the first item recorded, the others refused", r)
	}
	if _, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an empty bulk: %v", err)
	}
	_, secret := e.issue(t, access.IssueRequest{Name: "stall A", Role: access.RoleMerchant, Merchant: "TN-TEST-0001"})
	_, err = pb.NewPaymentServiceClient(e.dial(t, secret)).RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		{IdempotencyKey: "own", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
		{IdempotencyKey: "other", Merchant: "TN-TEST-0002", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
	}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("merchant A recording for B: %v", err)
	}

	events, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range events.AuditEvents {
		if ev.Method == pb.PaymentService_RecordPayments_FullMethodName {
			got = append(got, fmt.Sprintf("%s %s %q", ev.Target, ev.Code, ev.Message))
		}
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("%s OK %q", resp.Results[0].Payment.Id, ""),
		fmt.Sprintf("TN-TEST-0001 %s %q", codes.Code(resp.Results[1].Error.Code), resp.Results[1].Error.Message),
		fmt.Sprintf("TN-TEST-0002 %s %q", codes.Code(resp.Results[2].Error.Code), resp.Results[2].Error.Message),
		fmt.Sprintf("bulk InvalidArgument %q", "payments: must hold 1 to 1000 payments"),
		fmt.Sprintf("TN-TEST-0002 PermissionDenied %q", "this credential may not do that"),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("RecordPayments events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// ListPayments bounds the payments' times at the instant start_time and
// end_time name, nanoseconds included, though PostgreSQL keeps
// microseconds.
func TestListPaymentsTimeBoundsToTheNanosecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "12000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, OccurTime: timestamppb.New(at)})
	justAfter := timestamppb.New(at.Add(time.Nanosecond))
	for _, tc := range []struct {
		name string
		req  *pb.ListPaymentsRequest
		want int
	}{
		{"from a nanosecond after it", &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", StartTime: justAfter}, 0},
		{"up to a nanosecond after it", &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", EndTime: justAfter}, 1},
		{"from its time", &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", StartTime: timestamppb.New(at)}, 1},
		{"up to its time", &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", EndTime: timestamppb.New(at)}, 0},
	} {
		resp, err := e.payments.ListPayments(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Payments) != tc.want {
			t.Errorf("%s: listed %d payments, want %d (the payment occurred at %s)", tc.name, len(resp.Payments), tc.want, at.Format(time.RFC3339Nano))
		}
	}
}

// A ListPayments page token continues the query that issued it: sent with
// another merchant, market, status, channel or time bound it is refused,
// naming page_token, as AIP-158 has it. Taken as a place in another
// listing, it started that listing after the first one's last payment and
// left out, with no error, every payment of its own before it.
func TestListPaymentsPageTokenContinuesItsOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	at := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	// B's payments occurred before A's first, where A's first page ends.
	for i, p := range []struct {
		merchant string
		minutes  int
	}{{"TN-TEST-0002", 0}, {"TN-TEST-0002", 1}, {"TN-TEST-0001", 2}, {"TN-TEST-0001", 3}, {"TN-TEST-0001", 4}} {
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("tok-", i), Merchant: p.merchant, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "12000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, OccurTime: timestamppb.New(at.Add(time.Duration(p.minutes) * time.Minute))})
	}
	first := &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", PageSize: 1}
	page, err := e.payments.ListPayments(ctx, first)
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	// The same query continues, at another page size too.
	rest, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001", PageSize: 10, PageToken: page.NextPageToken})
	if err != nil || len(rest.Payments) != 2 {
		t.Fatalf("the same query's next page: %d payments, %v; want the other 2", len(rest.Payments), err)
	}
	hour := timestamppb.New(at.Add(time.Hour))
	for name, req := range map[string]*pb.ListPaymentsRequest{
		"another merchant": {Merchant: "TN-TEST-0002"},
		"a market":         {Market: testMarket},
		"a market as well": {Merchant: "TN-TEST-0001", Market: testMarket},
		"a status":         {Merchant: "TN-TEST-0001", Status: pb.PaymentStatus_PAYMENT_STATUS_PENDING},
		"a channel":        {Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR},
		"a start time":     {Merchant: "TN-TEST-0001", StartTime: timestamppb.New(at)},
		"an end time":      {Merchant: "TN-TEST-0001", EndTime: hour},
		"both times":       {Merchant: "TN-TEST-0001", StartTime: timestamppb.New(at), EndTime: hour},
		"another end time": {Merchant: "TN-TEST-0001", EndTime: timestamppb.New(at.Add(2 * time.Hour))},
	} {
		req.PageToken = page.NextPageToken
		resp, err := e.payments.ListPayments(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d payments, %v; want InvalidArgument naming page_token", name, len(resp.GetPayments()), err)
		}
	}
}

// A bank's notification that confirms the stall's pending payment of a
// payment request it names, by bill number or by id, is sent again with its
// key (its answer was lost, or its deadline passed while it committed): it
// is answered with the confirmed payment as a replay, not refused as a
// changed request, and confirms nothing twice.
func TestBankNotificationNamingARequestIsRepeatable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	for i, named := range []func(*pb.RecordPaymentRequest, *pb.PaymentRequest){
		func(r *pb.RecordPaymentRequest, pr *pb.PaymentRequest) { r.BillNumber = pr.BillNumber },
		func(r *pb.RecordPaymentRequest, pr *pb.PaymentRequest) { r.PaymentRequestId = pr.Id },
	} {
		pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: fmt.Sprint("req-", i), Merchant: a, Amount: "150000"})
		if err != nil {
			t.Fatal(err)
		}
		stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("stall-", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
		notice := &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("bank-", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT2633000000", i)}
		named(notice, pr.PaymentRequest)
		first := e.record(t, notice)
		if first.Replayed || first.Payment.Id != stall.Id {
			t.Fatalf("notification %d: %v; want payment %s confirmed", i, first, stall.Id)
		}
		wantPayment(t, first.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
		again, err := e.payments.RecordPayment(ctx, notice)
		if err != nil {
			t.Fatalf("notification %d sent again with its key: %v; want the confirmed payment as a replay", i, err)
		}
		if !again.Replayed || !proto.Equal(again.Payment, first.Payment) {
			t.Fatalf("notification %d sent again: %v; want the replay of %v", i, again, first.Payment)
		}
		bulk, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{notice}})
		if err != nil || bulk.Results[0].Error != nil || !bulk.Results[0].Replayed || bulk.Results[0].Payment.Id != stall.Id {
			t.Fatalf("notification %d sent again in a bulk: %v, %v; want the replay of payment %s", i, bulk, err, stall.Id)
		}
	}
	var entries int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE market = $1`, testMarket).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if entries != 4 {
		t.Errorf("the market's journal holds %d entries; want 4, two payments each confirmed once", entries)
	}
	e.checkInvariants(t)
}

// A payment the bank rejected, or that expired, was never charged a fee:
// what it shows as its fee is the one it would have been charged, as the
// proto says, beside a confirmed amount of 0; the merchant's settlement
// and the market's fees count none of it.
func TestUnconfirmedPaymentShowsTheFeeItWasNeverCharged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001" // VietQR at 50 bp, at least 500 đồng
	p := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	wantPayment(t, p, pb.PaymentStatus_PAYMENT_STATUS_PENDING, "0", "500", "0", "0")
	rej, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "rej", PaymentId: p.Id})
	if err != nil {
		t.Fatal(err)
	}
	wantPayment(t, rej.Payment, pb.PaymentStatus_PAYMENT_STATUS_REJECTED, "0", "500", "0", "0")
	e.sameAsStored(t, "RejectPayment", rej.Payment)
	s, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: a, StartDay: today()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Totals.FeesCharged != "0" || s.Totals.ClosingBalance != "0" || s.Totals.PaymentCount != 0 {
		t.Errorf("the merchant's settlement: %v; want no payment and no fee", s.Totals)
	}
}

// A stall's payment of a payment request carrying the bank's reference,
// and the bank's notification of the bill with that reference, recorded
// in one round (as when the stall and the bank send them at the same
// moment; an operator's bulk call puts them in one round every time): the
// notification confirms the stall's payment, as it does when it comes
// after, or records the payment itself, the stall's then refused as a
// repeat. It is never refused for the stall's pending payment, which would
// then expire with the money the bank reported. So too a stall's payment
// and the notification of its reference naming no request, in the same
// call.
func TestStallPaymentAndBillNotificationInOneRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	// Which write of a round wins varies: both orders, a few times each.
	for i := range 16 {
		bankFirst := i%2 == 1
		pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: fmt.Sprint("req-", i), Merchant: a, Amount: "150000"})
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprint("FT263300000", i)
		stall := &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("stall-", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id, ProviderRef: ref}
		notice := bankNotice(fmt.Sprint("bank-", i), a, "150000", ref)
		notice.BillNumber = pr.PaymentRequest.BillNumber
		plainStall := &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("plain-stall-", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "PLAIN-" + ref}
		plainNotice := bankNotice(fmt.Sprint("plain-bank-", i), a, "150000", "PLAIN-"+ref)
		items := []*pb.RecordPaymentRequest{stall, notice, plainStall, plainNotice}
		if bankFirst {
			items = []*pb.RecordPaymentRequest{notice, stall, plainNotice, plainStall}
		}
		resp, err := e.payments.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: items})
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]*pb.RecordPaymentRequest{{stall, notice}, {plainStall, plainNotice}} {
			got := resp.Results[slices.Index(items, pair[1])]
			if got.Error != nil {
				t.Fatalf("bank first %v: notification %s: %v; want the payment confirmed", bankFirst, pair[1].ProviderRef, got.Error)
			}
			wantPayment(t, got.Payment, pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, "150000", "750", "0", "0")
			if got.Payment.ProviderRef != pair[1].ProviderRef || got.Payment.PaymentRequestId != pair[0].PaymentRequestId {
				t.Errorf("bank first %v: notification %s recorded %v", bankFirst, pair[1].ProviderRef, got.Payment)
			}
			e.sameAsStored(t, "the notification", got.Payment)
			if s := resp.Results[slices.Index(items, pair[0])]; s.Error == nil && s.Payment.Id != got.Payment.Id {
				t.Errorf("bank first %v: the stall recorded %v beside the bank's %s", bankFirst, s.Payment, got.Payment.Id)
			}
		}
	}
	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if err != nil || bal.Balance.Posted != "4776000" || bal.Balance.CreditsPending != "0" {
		t.Errorf("payable of %s: %v, %v; want the 32 payments confirmed less their fees, 4776000, nothing pending", a, bal, err)
	}
	e.checkInvariants(t)
}

// Copies of one bank notification of a bill, sent at once, all get the
// stall's payment it confirmed: the one that confirmed it, the others as
// its replays. A copy that read its key unused, and the stall's payment
// confirmed by the time it looked for it, planned a payment of its own
// under the key, and was refused as a key reused for another request.
func TestBillNotificationCopiesAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	for round := range 24 {
		pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: fmt.Sprint("req-", round), Merchant: a, Amount: "150000"})
		if err != nil {
			t.Fatal(err)
		}
		stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("stall-", round), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment
		notice := bankNotice(fmt.Sprint("bank-", round), a, "150000", fmt.Sprint("FT-COPY-", round))
		notice.BillNumber = pr.PaymentRequest.BillNumber
		resps, errs := copies(8, func() (*pb.RecordPaymentResponse, error) { return e.payments.RecordPayment(ctx, notice) })
		fresh := 0
		for i, r := range resps {
			if errs[i] != nil {
				t.Fatalf("copy %d of notification %d: %v; want payment %s confirmed", i, round, errs[i], stall.Id)
			}
			if r.Payment.Id != stall.Id || r.Payment.Status != pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED {
				t.Fatalf("copy %d of notification %d: %v; want payment %s confirmed", i, round, r.Payment, stall.Id)
			}
			if !r.Replayed {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("notification %d: %d copies answered as not replayed; want 1", round, fresh)
		}
	}
	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable"})
	if err != nil || bal.Balance.Posted != "3582000" || bal.Balance.CreditsPending != "0" {
		t.Errorf("payable of %s: %v, %v; want the 24 payments confirmed once each, 3582000", a, bal, err)
	}
	e.checkInvariants(t)
}
