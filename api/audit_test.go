package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// Every write is in the audit trail with what it named: the pending entry
// an admin posts or voids, the market an update changes, as much as the
// payment a confirmation names. Written or refused, the event names what
// the request named.
func TestAuditTrailNamesWhatEveryWriteNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	// Two holds an admin releases: one posted, one voided.
	e.marketAccounts(t, "M1")
	var holds []string
	for _, key := range []string{"hold-posted", "hold-voided"} {
		resp, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{
			IdempotencyKey: key, Market: "M1", Kind: "hold", Currency: "VND", Pending: true,
			Postings: []*pb.PostingInput{posting("cash:M1", debit, "1000"), posting("payable:M1", credit, "1000")},
		})
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, resp.Entry.Id)
	}
	const (
		pay      = "0190a0b0-0000-7000-8000-000000000002"
		batch    = "0190a0b0-0000-7000-8000-000000000003"
		cred     = "0190a0b0-0000-7000-8000-000000000004"
		market   = "TN-NAMED"
		merchant = "TN-NAMED-0001"
	)
	writes := []struct {
		method string
		req    proto.Message
		target string
	}{
		{pb.LedgerService_CreateAccount_FullMethodName, &pb.CreateAccountRequest{Code: "cash:named"}, "cash:named"},
		{pb.LedgerService_PostEntry_FullMethodName, &pb.PostEntryRequest{Market: market}, market},
		{pb.LedgerService_PostPendingEntry_FullMethodName, &pb.PostPendingEntryRequest{IdempotencyKey: "post", PendingEntryId: holds[0], Kind: "release"}, holds[0]},
		{pb.LedgerService_VoidPendingEntry_FullMethodName, &pb.VoidPendingEntryRequest{IdempotencyKey: "void", PendingEntryId: holds[1], Kind: "release"}, holds[1]},
		{pb.MerchantService_CreateMarket_FullMethodName, &pb.CreateMarketRequest{Market: &pb.Market{Code: market}}, market},
		{pb.MerchantService_UpdateMarket_FullMethodName, &pb.UpdateMarketRequest{Market: &pb.Market{Code: market, Name: "Chợ Mới"}}, market},
		{pb.MerchantService_CreateMerchant_FullMethodName, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{Code: merchant}}, merchant},
		{pb.MerchantService_UpdateMerchant_FullMethodName, &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: merchant}}, merchant},
		{pb.MerchantService_SuspendMerchant_FullMethodName, &pb.SuspendMerchantRequest{Code: merchant}, merchant},
		{pb.MerchantService_ReinstateMerchant_FullMethodName, &pb.ReinstateMerchantRequest{Code: merchant}, merchant},
		{pb.MerchantService_CloseMerchant_FullMethodName, &pb.CloseMerchantRequest{Code: merchant}, merchant},
		{pb.PaymentService_CreatePaymentRequest_FullMethodName, &pb.CreatePaymentRequestRequest{Merchant: merchant}, merchant},
		{pb.PaymentService_RecordPayment_FullMethodName, &pb.RecordPaymentRequest{Merchant: merchant}, merchant},
		{pb.PaymentService_ConfirmPayment_FullMethodName, &pb.ConfirmPaymentRequest{PaymentId: pay}, pay},
		{pb.PaymentService_RejectPayment_FullMethodName, &pb.RejectPaymentRequest{PaymentId: pay}, pay},
		{pb.PaymentService_RefundPayment_FullMethodName, &pb.RefundPaymentRequest{PaymentId: pay}, pay},
		{pb.SettlementService_RecordProviderSettlement_FullMethodName, &pb.RecordProviderSettlementRequest{Market: market}, market},
		{pb.SettlementService_ReclassifySuspense_FullMethodName, &pb.ReclassifySuspenseRequest{Market: market}, market},
		{pb.SettlementService_CreatePayoutBatch_FullMethodName, &pb.CreatePayoutBatchRequest{Market: market}, market},
		{pb.SettlementService_CompletePayoutBatch_FullMethodName, &pb.CompletePayoutBatchRequest{BatchId: batch}, batch},
		{pb.SettlementService_ImportStatement_FullMethodName, &pb.ImportStatementRequest{Market: market}, market},
		{pb.AdminService_IssueCredential_FullMethodName, &pb.IssueCredentialRequest{Credential: &pb.Credential{Name: "named"}}, "named"},
		{pb.AdminService_RevokeCredential_FullMethodName, &pb.RevokeCredentialRequest{Id: cred}, cred},
	}
	admin := pb.NewAdminServiceClient(e.conn)
	for _, w := range writes {
		err := invoke(ctx, e.conn, w.method, w.req)
		events, lerr := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1})
		if lerr != nil {
			t.Fatal(lerr)
		}
		if len(events.AuditEvents) != 1 || events.AuditEvents[0].Method != w.method || events.AuditEvents[0].Target != w.target {
			t.Errorf("%s naming %q (answered %v): the trail's newest event is %v; want it naming %q", w.method, w.target, err, events.AuditEvents, w.target)
		}
	}
}

// A write whose caller gives up while it waits for its commit is recorded
// all the same, and the trail says so: an event OK for the entry in the
// ledger, not only the caller's DeadlineExceeded, which would leave the
// trail with no record of who wrote it.
func TestAuditTrailRecordsWriteItsCallerGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")

	// Another ledgerd's round holds the ledger head: this write waits.
	holder, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // released below
	if _, err := holder.Exec(ctx, `SELECT last_seq FROM ledger_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	callCtx, giveUp := context.WithTimeout(ctx, 500*time.Millisecond)
	defer giveUp()
	_, err = e.client.PostEntry(callCtx, &pb.PostEntryRequest{
		IdempotencyKey: "given-up", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "15000"), posting("payable:M1", credit, "15000")},
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a write waiting for the head past its deadline: %v", err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The write commits once the head is free.
	var entries []*pb.Entry
	for len(entries) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		resp, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1"})
		if err != nil {
			t.Fatal(err)
		}
		entries = resp.Entries
	}
	if len(entries) != 1 {
		t.Fatalf("entries of M1: %v", entries)
	}
	// Its call's event is recorded once the call ends.
	var events []*pb.AuditEvent
	for len(events) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		resp, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.AuditEvents {
			if ev.Method == pb.LedgerService_PostEntry_FullMethodName {
				events = append(events, ev)
			}
		}
	}
	if len(events) != 1 || events[0].Code != "OK" || events[0].Target != "M1" {
		t.Errorf("the trail holds %v for entry %d written by PostEntry; want one event OK naming M1", events, entries[0].Sequence)
	}
}

// The outcomes of a payout batch's lines are recorded independently: one
// refused (here for a bank reference already recorded) leaves the others
// paid. The call is refused, and its answer, which is also its event in the
// audit trail, says which lines it paid: a trail that showed only the
// refusal would hide a payout an auditor must find.
func TestAuditTrailTellsPayoutsOfRefusedCompletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-A", map[string]int64{"PO-A-01": 10000, "PO-A-02": 20000, "PO-A-03": 30000}, 60000)
	b := f.create(t, "batch", time.Now())
	if _, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-A-01", Status: linePaid, BankRef: "VCB-OUT-1"},
	}}); err != nil {
		t.Fatal(err)
	}
	_, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-A-02", Status: linePaid, BankRef: "VCB-OUT-2"},
		{Merchant: "PO-A-03", Status: linePaid, BankRef: "VCB-OUT-1"},
	}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a line paid with a bank reference already recorded: %v", err)
	}
	// The refused line leaves the other's outcome recorded.
	_, lines := f.e.allLines(t, b.Batch.Id)
	var paid []string
	for _, l := range lines {
		if l.Status == linePaid {
			paid = append(paid, l.Merchant)
		}
	}
	if !slices.Equal(paid, []string{"PO-A-01", "PO-A-02"}) {
		t.Fatalf("lines paid: %v; want PO-A-01 and PO-A-02, whose outcome is independent of the refused one", paid)
	}
	paid = paid[1:]
	events, lerr := pb.NewAdminServiceClient(f.e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1})
	if lerr != nil {
		t.Fatal(lerr)
	}
	ev := events.AuditEvents[0]
	if ev.Method != pb.SettlementService_CompletePayoutBatch_FullMethodName || ev.Target != b.Batch.Id || !strings.Contains(ev.Message, paid[0]+" paid") {
		t.Errorf("the trail records the completion that paid %s as %v; want it naming the batch and saying %[1]s was paid", paid[0], ev)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, paid[0]+" paid") {
		t.Errorf("the bank is answered %q, which does not say %s was paid", msg, paid[0])
	}
}

// A write sent again with its key is answered with what the key recorded
// and writes nothing: its event in the trail says it is a replay, so that
// the trail does not hold two writes for the one entry in the ledger. The
// same holds for an item of a bulk.
func TestAuditTrailTellsReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	e.marketAccounts(t, "M1")
	admin := pb.NewAdminServiceClient(e.conn)
	newest := func(n int32) []*pb.AuditEvent {
		t.Helper()
		resp, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: n})
		if err != nil {
			t.Fatal(err)
		}
		return resp.AuditEvents
	}

	entry := &pb.PostEntryRequest{
		IdempotencyKey: "sent-twice", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "15000"), posting("payable:M1", credit, "15000")},
	}
	for i, want := range []bool{false, true} {
		resp, err := e.client.PostEntry(ctx, entry)
		if err != nil || resp.Replayed != want {
			t.Fatalf("PostEntry sent %d times: %v, %v", i+1, resp, err)
		}
	}
	events := newest(2) // newest first
	if !strings.Contains(events[0].Message, "replay") || strings.Contains(events[1].Message, "replay") {
		t.Errorf("the trail of one PostEntry sent twice: %v; want the second event saying it is a replay, the first not", events)
	}

	bulk := &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		{IdempotencyKey: "bulk-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL},
	}}
	for i, want := range []bool{false, true} {
		resp, err := e.payments.RecordPayments(ctx, bulk)
		if err != nil || resp.Results[0].Replayed != want {
			t.Fatalf("RecordPayments sent %d times: %v, %v", i+1, resp, err)
		}
	}
	events = newest(2)
	if !strings.Contains(events[0].Message, "replay") || strings.Contains(events[1].Message, "replay") {
		t.Errorf("the trail of one bulk item sent twice: %v; want the second event saying it is a replay, the first not", events)
	}
}

// giveUpWaitingForTheHead makes call while another ledgerd's round holds
// the ledger head, so that its write waits for the head past its caller's
// deadline, then lets the head go: the write commits after its caller gave
// up.
func (e *env) giveUpWaitingForTheHead(t *testing.T, call func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	holder, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // released below
	if _, err := holder.Exec(ctx, `SELECT last_seq FROM ledger_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	callCtx, giveUp := context.WithTimeout(ctx, 500*time.Millisecond)
	defer giveUp()
	if err := call(callCtx); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a write waiting for the head past its deadline: %v", err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// until asks done every 10 ms until it says yes or ctx ends.
func until(ctx context.Context, done func() bool) {
	for ctx.Err() == nil && !done() {
		time.Sleep(10 * time.Millisecond)
	}
}

// eventsOf waits until the trail holds n events of method, and returns
// them.
func (e *env) eventsOf(ctx context.Context, t *testing.T, method string, n int) []*pb.AuditEvent {
	t.Helper()
	var events []*pb.AuditEvent
	for len(events) < n && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		resp, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		for _, ev := range resp.AuditEvents {
			if ev.Method == method {
				events = append(events, ev)
			}
		}
	}
	return events
}

// A bank's notification that confirms a stall's pending payment, whose
// caller gives up while the confirmation waits for its commit, is in the
// trail as the confirmation it became, OK, not as a call cancelled while
// the ledger holds the payment confirmed: the payment it answers with is
// read after its caller gave up.
func TestAuditTrailRecordsConfirmationItsCallerGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const merchantCode = "TN-TEST-0001"
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: merchantCode, Amount: "150000"})
	if err != nil {
		t.Fatal(err)
	}
	stall := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: merchantCode, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: pr.PaymentRequest.Id}).Payment

	e.giveUpWaitingForTheHead(t, func(ctx context.Context) error {
		_, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "bank-ft1", Merchant: merchantCode, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "150000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT26330000001", BillNumber: pr.PaymentRequest.BillNumber})
		return err
	})
	until(ctx, func() bool {
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: stall.Id})
		if err != nil {
			t.Fatal(err)
		}
		return got.Payment.Status == pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED
	})
	// The stall's record, and the bank's once its call ended.
	events := e.eventsOf(ctx, t, pb.PaymentService_RecordPayment_FullMethodName, 2)
	if len(events) != 2 || events[0].Code != "OK" || events[1].Code != "OK" {
		t.Errorf("the trail holds %v for the stall's record and the bank's confirmation of payment %s; want both OK", events, stall.Id)
	}
}

// A bank's outcomes of a payout batch, whose caller gives up while they
// wait for their commit, are in the trail as what they became, OK, not as
// a call cancelled while the ledger holds the payout paid: the batch and
// lines the call answers with are read after its caller gave up.
func TestAuditTrailRecordsPayoutsTheirCallerGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newPayoutFixture(t, "PO-G", map[string]int64{"PO-G-01": 10000}, 10000)
	e := f.e
	b := f.create(t, "batch", time.Now())

	e.giveUpWaitingForTheHead(t, func(ctx context.Context) error {
		_, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
			{Merchant: "PO-G-01", Status: linePaid, BankRef: "VCB-OUT-1"}}})
		return err
	})
	until(ctx, func() bool {
		_, lines := e.allLines(t, b.Batch.Id)
		return lineOf(lines, "PO-G-01").Status == linePaid
	})
	events := e.eventsOf(ctx, t, pb.SettlementService_CompletePayoutBatch_FullMethodName, 1)
	if len(events) != 1 || events[0].Code != "OK" {
		t.Errorf("the trail holds %v for the outcome that paid merchant PO-G-01; want one event OK", events)
	}
}

// A payout batch whose creator gives up while its reservations wait for
// their commit is opened all the same, and is in the trail as the batch it
// became, OK: it was opened, and read back, with the creator's ended
// context, so the batch stayed creating with its money reserved, and the
// call and its event said it failed.
func TestAuditTrailRecordsPayoutBatchItsCreatorGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newPayoutFixture(t, "PO-H", map[string]int64{"PO-H-01": 10000}, 10000)
	e := f.e
	// Just before the provider's credit, after the payment: a cut-off
	// before the newest entry need not wait for the round holding the
	// head to know what was booked by it.
	var cutOff time.Time
	if err := e.db.Pool.QueryRow(ctx, `SELECT max(recorded_at) - interval '1 microsecond' FROM ledger_entries`).Scan(&cutOff); err != nil {
		t.Fatal(err)
	}

	e.giveUpWaitingForTheHead(t, func(ctx context.Context) error {
		_, err := e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch", Bank: "vcb", Market: f.market,
			CutOff: timestamppb.New(cutOff), PageSize: 100})
		return err
	})
	events := e.eventsOf(ctx, t, pb.SettlementService_CreatePayoutBatch_FullMethodName, 1)
	var status string
	if err := e.db.Pool.QueryRow(ctx, `SELECT status FROM payout_batches`).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if bal := f.payable(t, "PO-H-01"); bal.DebitsPending != "10000" {
		t.Fatalf("PO-H-01's payable after the batch: %v; want its 10000 reserved", bal)
	}
	if len(events) != 1 || events[0].Code != "OK" || status != "open" {
		t.Errorf("the batch reserving PO-H-01's 10000 is %s, and the trail holds %v for it; want it open, and one event OK", status, events)
	}
}

// A provider's credit to the settlement bank, whose caller gives up while
// it waits for its commit, is in the trail as the credit it became, OK,
// not as a call cancelled while the ledger holds the money settled.
func TestAuditTrailRecordsProviderSettlementItsCallerGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newPayoutFixture(t, "PO-S", map[string]int64{"PO-S-01": 10000}, 0)
	e := f.e

	e.giveUpWaitingForTheHead(t, func(ctx context.Context) error {
		_, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
			Market: "PO-S", Amount: "10000", Bank: "vcb", BankRef: "VCB-IN-1"})
		return err
	})
	until(ctx, func() bool {
		funds, ok := e.settlementFunds(t, "vcb", "PO-S")
		return ok && funds == 10000
	})
	events := e.eventsOf(ctx, t, pb.SettlementService_RecordProviderSettlement_FullMethodName, 1)
	if len(events) != 1 || events[0].Code != "OK" {
		t.Errorf("the trail holds %v for the provider's credit of 10000 đồng the ledger holds; want one event OK", events)
	}
}

// So is a reclassification of suspense money, whose caller gives up while
// it waits for its commit: OK, as the ledger holds the money moved.
func TestAuditTrailRecordsReclassificationItsCallerGaveUpOn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newPayoutFixture(t, "PO-U", map[string]int64{"PO-U-01": 10000}, 0)
	e := f.e
	// The provider pays 15000 for the 10000 it owes: 5000 wait in suspense
	// until the payment they were for is recorded.
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: "PO-U", Amount: "15000", Bank: "vcb", BankRef: "VCB-IN-1", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "late", Merchant: "PO-U-01", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-LATE"})

	e.giveUpWaitingForTheHead(t, func(ctx context.Context) error {
		_, err := e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "rc-1", Market: "PO-U", Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "5000", Reason: "FT-LATE"})
		return err
	})
	until(ctx, func() bool {
		bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "market:PO-U:suspense"})
		if err != nil {
			t.Fatal(err)
		}
		return num(bal.Balance.CreditsPosted) == num(bal.Balance.DebitsPosted)
	})
	events := e.eventsOf(ctx, t, pb.SettlementService_ReclassifySuspense_FullMethodName, 1)
	if len(events) != 1 || events[0].Code != "OK" {
		t.Errorf("the trail holds %v for the reclassification of 5000 đồng the ledger holds; want one event OK", events)
	}
}
