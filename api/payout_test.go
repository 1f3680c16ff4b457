package api_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

const (
	linePaid      = pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID
	lineFailed    = pb.PayoutLineStatus_PAYOUT_LINE_STATUS_FAILED
	lineOpen      = pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN
	lineSkipped   = pb.PayoutLineStatus_PAYOUT_LINE_STATUS_SKIPPED
	lineExpired   = pb.PayoutLineStatus_PAYOUT_LINE_STATUS_EXPIRED
	batchOpen     = pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_OPEN
	batchComplete = pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_COMPLETED
)

// allLines reads every line of a batch, a few per page.
func (e *env) allLines(t *testing.T, id string) (*pb.PayoutBatch, []*pb.PayoutLine) {
	t.Helper()
	var lines []*pb.PayoutLine
	var batch *pb.PayoutBatch
	for token := ""; ; {
		r, err := e.settle.GetPayoutBatch(context.Background(), &pb.GetPayoutBatchRequest{Id: id, PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatalf("get payout batch %s: %v", id, err)
		}
		batch, lines = r.Batch, append(lines, r.Lines...)
		if token = r.NextPageToken; token == "" {
			return batch, lines
		}
	}
}

// settlementFunds is what the bank holds for a market from the providers,
// not yet paid out or reserved; false without an account.
func (e *env) settlementFunds(t *testing.T, bank, market string) (int64, bool) {
	t.Helper()
	bal, err := e.client.GetBalance(context.Background(), &pb.GetBalanceRequest{AccountCode: "bank:" + bank + ":market:" + market + ":settlement"})
	if status.Code(err) == codes.NotFound {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return num(bal.Balance.DebitsPosted) - num(bal.Balance.CreditsPosted) - num(bal.Balance.CreditsPending), true
}

// payoutTally counts payout lines by outcome across rounds.
type payoutTally struct{ paid, failed, skipped int }

// payoutRound pays out every market as of now from VCB, checks each line
// against the model (what is due, and who is skipped and why), completes
// the lines in two calls, completes them all again (which must change
// nothing), books the payouts in the model and counts the lines in tally.
// Until a line has failed the first line to pay fails, and until one has
// been paid the next one is paid; after that 3 in 10 fail at random. So
// every run that pays two lines sees both outcomes, whatever the seed.
func (e *env) payoutRound(t *testing.T, models map[string]*merchantModel, key string, rng *rand.Rand, tally *payoutTally) {
	t.Helper()
	ctx := context.Background()
	type want struct {
		amount int64
		status pb.PayoutLineStatus
		reason string
	}
	var codes []string
	for code := range models {
		codes = append(codes, code)
	}
	slices.SortFunc(codes, func(a, b string) int {
		return strings.Compare(models[a].market+"/"+a, models[b].market+"/"+b)
	})
	wants := map[string]want{}
	funds := map[string]int64{}
	for _, code := range codes {
		m := models[code]
		due := m.closing()
		if due <= 0 {
			continue
		}
		left, ok := funds[m.market]
		if !ok {
			if left, ok = e.settlementFunds(t, "vcb", m.market); !ok {
				left = -1
			}
		}
		switch {
		case m.noPayoutAccount:
			wants[code] = want{due, lineSkipped, "no payout account"}
		case left < 0:
			wants[code] = want{due, lineSkipped, "has received nothing"}
		case left < due:
			wants[code] = want{due, lineSkipped, "less than the"}
		default:
			wants[code] = want{due, lineOpen, ""}
			left -= due
		}
		funds[m.market] = left
	}

	cutOff := time.Now()
	req := &pb.CreatePayoutBatchRequest{IdempotencyKey: key, Bank: "vcb", CutOff: timestamppb.New(cutOff)}
	created, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil {
		t.Fatalf("create payout batch: %v", err)
	}
	replay, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil || !replay.Replayed || replay.Batch.Id != created.Batch.Id || created.Replayed {
		t.Fatalf("the same key again: %v, %v; first %v", replay, err, created.Batch)
	}
	id := created.Batch.Id
	batch, lines := e.allLines(t, id)
	if len(lines) != len(wants) {
		t.Errorf("batch %s has %d lines, want %d", id, len(lines), len(wants))
	}
	var results []*pb.PayoutResult
	var toPay int64
	var skipped int
	failedYet, paidYet := tally.failed > 0, tally.paid > 0
	for _, l := range lines {
		w, ok := wants[l.Merchant]
		if !ok || num(l.Amount) != w.amount || l.Status != w.status || !strings.Contains(l.Reason, w.reason) || l.Market != models[l.Merchant].market {
			t.Errorf("line %v, want %+v (ok %v)", l, w, ok)
			continue
		}
		if l.Status == lineSkipped {
			skipped++
			continue
		}
		if (l.PayoutAccount == nil) || l.EntryId == "" {
			t.Errorf("line to pay %v has no account or reservation", l)
		}
		toPay += num(l.Amount)
		fail := rng.IntN(10) < 3
		switch {
		case !failedYet:
			fail, failedYet = true, true
		case !paidYet:
			fail, paidYet = false, true
		}
		if !fail {
			results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: linePaid, BankRef: "VCB-" + key + "-" + l.Merchant})
		} else {
			results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: lineFailed, FailureReason: "tài khoản không tồn tại"})
		}
	}
	if batch.Total != fmt.Sprint(toPay) || int(batch.SkippedCount) != skipped || int(batch.LineCount) != len(results) {
		t.Errorf("batch %v: want total %d, %d lines, %d skipped", batch, toPay, len(results), skipped)
	}
	if len(results) == 0 {
		if batch.Status != batchComplete {
			t.Errorf("a batch with nothing to pay is %v", batch.Status)
		}
		tally.skipped += skipped
		return
	}
	if batch.Status != batchOpen {
		t.Errorf("batch %v, want open", batch)
	}
	half := len(results) / 2
	for _, part := range [][]*pb.PayoutResult{results[:half], results[half:]} {
		if len(part) == 0 {
			continue
		}
		if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: part}); err != nil {
			t.Fatalf("complete payout batch: %v", err)
		}
	}
	entries := e.countRows(t, "ledger_entries")
	again, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results})
	if err != nil {
		t.Fatalf("complete again: %v", err)
	}
	if n := e.countRows(t, "ledger_entries"); n != entries {
		t.Errorf("completing again wrote %d entries", n-entries)
	}
	if again.Batch.Status != batchComplete || again.Batch.OpenCount != 0 || again.Batch.CompleteTime == nil {
		t.Errorf("batch after every outcome: %v", again.Batch)
	}
	for i, l := range again.Lines {
		r := results[i]
		if l.Merchant != r.Merchant || l.Status != r.Status || l.BankRef != r.BankRef || l.CloseEntryId == "" {
			t.Errorf("line %v after outcome %v", l, r)
			continue
		}
		if r.Status == linePaid {
			m := models[l.Merchant]
			m.payouts++
			m.paidOut += num(l.Amount)
			tally.paid++
		} else {
			tally.failed++
		}
	}
	tally.skipped += skipped
}

func (e *env) countRows(t *testing.T, table string) int64 {
	t.Helper()
	var n int64
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// payoutFixture is a market with merchants owed money and a bank holding
// what the provider paid for them.
type payoutFixture struct {
	e      *env
	market string
}

func newPayoutFixture(t *testing.T, market string, merchants map[string]int64, settled int64) *payoutFixture {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: market, Name: "Chợ " + market, Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
		t.Fatal(err)
	}
	codes := make([]string, 0, len(merchants))
	for code := range merchants {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for i, code := range codes {
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
			Code: code, Market: market, Stalls: []string{fmt.Sprintf("S-%02d", i)}, DisplayName: "Sạp " + code,
			OwnerName: "Chủ sạp", Phone: "0912345678", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR},
			PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: fmt.Sprintf("1000%02d", i), HolderName: "CHU SAP"},
		}}); err != nil {
			t.Fatal(err)
		}
		if amount := merchants[code]; amount > 0 {
			e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "pay-" + code, Merchant: code, Channel: pb.Channel_CHANNEL_VIETQR,
				Amount: fmt.Sprint(amount), Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-" + code})
		}
	}
	if settled > 0 {
		if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
			Market: market, Amount: fmt.Sprint(settled), Bank: "vcb", BankRef: "VCB-IN-1"}); err != nil {
			t.Fatal(err)
		}
	}
	return &payoutFixture{e: e, market: market}
}

func (f *payoutFixture) create(t *testing.T, key string, cutOff time.Time) *pb.CreatePayoutBatchResponse {
	t.Helper()
	r, err := f.e.settle.CreatePayoutBatch(context.Background(), &pb.CreatePayoutBatchRequest{IdempotencyKey: key, Bank: "vcb", Market: f.market, CutOff: timestamppb.New(cutOff), PageSize: 1000})
	if err != nil {
		t.Fatalf("create payout batch %s: %v", key, err)
	}
	return r
}

func lineOf(lines []*pb.PayoutLine, merchant string) *pb.PayoutLine {
	for _, l := range lines {
		if l.Merchant == merchant {
			return l
		}
	}
	return nil
}

func (f *payoutFixture) payable(t *testing.T, merchant string) *pb.Balance {
	t.Helper()
	bal, err := f.e.client.GetBalance(context.Background(), &pb.GetBalanceRequest{AccountCode: "merchant:" + merchant + ":payable"})
	if err != nil {
		t.Fatal(err)
	}
	return bal.Balance
}

// A batch pays only what was confirmed up to the cut-off and is still
// payable; skips merchants it cannot pay, saying why; a failed line's
// money is due again in the next batch, a paid line's never; completing
// twice posts once, and another outcome for a resolved line is refused.
func TestPayoutBatchLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-A", map[string]int64{"PO-A-01": 100000, "PO-A-02": 50000, "PO-A-03": 70000, "PO-A-04": 30000, "PO-A-05": 0}, 150000)
	e := f.e
	// Fees: VietQR at 0 bps, no minimum, so payable = gross.
	cutOff := time.Now()
	time.Sleep(2 * time.Millisecond)
	// After the cut-off: a payment (waits for the next batch), a refund of
	// money that was due (lowers what is due), a stall payment still
	// pending (never due until confirmed), and a suspension.
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "late-01", Merchant: "PO-A-01", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "40000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-LATE-01"})
	got, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: "PO-A-02"})
	if err != nil || len(got.Payments) != 1 {
		t.Fatalf("payments of PO-A-02: %v %v", got, err)
	}
	if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "refund-02", PaymentId: got.Payments[0].Id, Amount: "15000"}); err != nil {
		t.Fatal(err)
	}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall-03", Merchant: "PO-A-03", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "9000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
	if _, err := e.merchants.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: "PO-A-04", Reason: "kiểm tra"}); err != nil {
		t.Fatal(err)
	}

	b1 := f.create(t, "batch-1", cutOff)
	type line struct {
		amount string
		status pb.PayoutLineStatus
		reason string
	}
	want := map[string]line{
		"PO-A-01": {"100000", lineOpen, ""},
		"PO-A-02": {"35000", lineOpen, ""},
		// 150,000 from NAPAS: 135,000 above leaves 15,000 < 70,000.
		"PO-A-03": {"70000", lineSkipped, "bank vcb has 15000 đồng left"},
		"PO-A-04": {"30000", lineSkipped, "suspended"},
	}
	if len(b1.Lines) != len(want) {
		t.Fatalf("batch lines %v", b1.Lines)
	}
	for _, l := range b1.Lines {
		w := want[l.Merchant]
		if l.Amount != w.amount || l.Status != w.status || !strings.Contains(l.Reason, w.reason) {
			t.Errorf("line %v, want %+v", l, w)
		}
	}
	if b1.Batch.Total != "135000" || b1.Batch.LineCount != 2 || b1.Batch.SkippedCount != 2 || b1.Batch.Status != batchOpen || b1.Batch.CutOffSequence == 0 {
		t.Errorf("batch %v", b1.Batch)
	}
	// The reservation holds the money: it is no longer available, and a
	// second batch skips the merchants of the open one.
	if bal := f.payable(t, "PO-A-01"); bal.DebitsPending != "100000" || bal.Posted != "140000" {
		t.Errorf("PO-A-01 payable during the batch: %v", bal)
	}
	b2 := f.create(t, "batch-2", time.Now())
	if l := lineOf(b2.Lines, "PO-A-01"); l == nil || l.Status != lineSkipped || !strings.Contains(l.Reason, "open payout batch "+b1.Batch.Id) {
		t.Errorf("second batch's line of PO-A-01: %v", l)
	}
	// The same key with another cut-off is refused, naming it.
	_, err = e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch-1", Bank: "vcb", Market: f.market, CutOff: timestamppb.New(cutOff.Add(-time.Second))})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "cut_off") {
		t.Errorf("batch-1 with another cut-off: %v", err)
	}

	// PO-A-01 paid, PO-A-02 failed.
	results := []*pb.PayoutResult{
		{Merchant: "PO-A-01", Status: linePaid, BankRef: "VCB-OUT-1"},
		{Merchant: "PO-A-02", Status: lineFailed, FailureReason: "sai số tài khoản"},
	}
	done, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b1.Batch.Id, Results: results})
	if err != nil {
		t.Fatal(err)
	}
	if done.Batch.Status != batchComplete || done.Batch.Paid != "100000" || done.Batch.Failed != "35000" || done.Lines[0].BankRef != "VCB-OUT-1" || done.Lines[1].Reason != "sai số tài khoản" {
		t.Errorf("completed: %v", done)
	}
	if bal := f.payable(t, "PO-A-01"); bal.DebitsPending != "0" || bal.Posted != "40000" {
		t.Errorf("PO-A-01 after its payout: %v", bal)
	}
	if bal := f.payable(t, "PO-A-02"); bal.DebitsPending != "0" || bal.Posted != "35000" {
		t.Errorf("PO-A-02 after a failed payout: %v", bal)
	}
	entries := e.countRows(t, "ledger_entries")
	again, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b1.Batch.Id, Results: results})
	if err != nil || !proto.Equal(again.Batch, done.Batch) || e.countRows(t, "ledger_entries") != entries {
		t.Errorf("completing twice: %v %v, entries %d → %d", again, err, entries, e.countRows(t, "ledger_entries"))
	}
	for _, other := range []*pb.PayoutResult{
		{Merchant: "PO-A-01", Status: lineFailed, FailureReason: "đổi ý"},
		{Merchant: "PO-A-01", Status: linePaid, BankRef: "VCB-OUT-OTHER"},
		{Merchant: "PO-A-02", Status: linePaid, BankRef: "VCB-OUT-2"},
		{Merchant: "PO-A-03", Status: linePaid, BankRef: "VCB-OUT-3"},
	} {
		_, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b1.Batch.Id, Results: []*pb.PayoutResult{other}})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("outcome %v for a resolved line: %v", other, err)
		}
	}
	if n := e.countRows(t, "ledger_entries"); n != entries {
		t.Errorf("refused outcomes wrote %d entries", n-entries)
	}

	// batch-2 could pay nothing (batch-1 held or the bank lacked the
	// rest), so it is complete as made.
	if b2.Batch.Status != batchComplete || b2.Batch.LineCount != 0 {
		t.Errorf("batch-2: %v", b2.Batch)
	}

	// The next batch, once NAPAS paid more: PO-A-01's late payment and
	// PO-A-02's failed money are due.
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-2", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: "100000", Bank: "vcb", BankRef: "VCB-IN-2"}); err != nil {
		t.Fatal(err)
	}
	b3 := f.create(t, "batch-3", time.Now())
	if l := lineOf(b3.Lines, "PO-A-02"); l == nil || l.Amount != "35000" || l.Status != lineOpen {
		t.Errorf("the failed money is not due again: %v", l)
	}
	if l := lineOf(b3.Lines, "PO-A-01"); l == nil || l.Amount != "40000" {
		t.Errorf("PO-A-01 in the next batch: %v", l)
	}
	e.checkInvariants(t)
	e.checkRollups(t)

	// The settlement report counts the payout.
	day := time.Now().In(time.FixedZone("ICT", 7*3600)).Format(time.DateOnly)
	rep, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: "PO-A-01", StartDay: day})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.PayoutCount != 1 || rep.Totals.Payouts != "100000" || rep.Totals.ClosingBalance != "40000" {
		t.Errorf("PO-A-01's settlement: %v", rep.Totals)
	}
}

// What a batch pays is what was owed at the cut-off, never more than the
// merchant holds now. Money moving after the cut-off changes that only as
// far as it takes money that was owed: a payment taken and refunded in full
// after the cut-off takes nothing, however large; a payout reserved by the
// cut-off and paid since took its money, so a payment after the cut-off
// does not stand in for it; a line of an earlier batch that failed since
// is owed again.
func TestPayoutDueAtCutOffAfterMovesSince(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Fees are zero, so payable = gross. Batch 0 reserves PO-D-04 and
	// PO-D-05 before the cut-off; the others are paid before it.
	f := newPayoutFixture(t, "PO-D", map[string]int64{"PO-D-01": 0, "PO-D-02": 0, "PO-D-03": 0, "PO-D-04": 40000, "PO-D-05": 25000}, 65000)
	e := f.e
	b0 := f.create(t, "batch-0", time.Now())
	pay := func(key, merchant, amount string) *pb.Payment {
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: merchant, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-" + key}).Payment
	}
	pay("before-01", "PO-D-01", "100000")
	pay("before-02", "PO-D-02", "100000")
	pay("before-03", "PO-D-03", "30000")
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-2", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: "230000", Bank: "vcb", BankRef: "VCB-IN-2"}); err != nil {
		t.Fatal(err)
	}
	cutOff := time.Now()
	time.Sleep(2 * time.Millisecond)

	// After the cut-off: PO-D-01 takes a payment (waits for the next
	// batch); PO-D-02 and PO-D-03 each take one refunded in full; batch 0
	// pays PO-D-04, which then takes a payment, and fails PO-D-05.
	pay("after-01", "PO-D-01", "50000")
	for _, m := range []string{"PO-D-02", "PO-D-03"} {
		p := pay("after-"+m, m, "50000")
		if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "refund-" + m, PaymentId: p.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b0.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-D-04", Status: linePaid, BankRef: "VCB-OUT-04"},
		{Merchant: "PO-D-05", Status: lineFailed, FailureReason: "sai số tài khoản"},
	}}); err != nil {
		t.Fatal(err)
	}
	pay("after-04", "PO-D-04", "20000")

	b1 := f.create(t, "batch-1", cutOff)
	want := map[string]string{
		"PO-D-01": "100000",
		"PO-D-02": "100000",
		"PO-D-03": "30000",
		// PO-D-04: nothing; its 20,000 was confirmed after the cut-off.
		"PO-D-05": "25000",
	}
	got := map[string]string{}
	for _, l := range b1.Lines {
		got[l.Merchant] = l.Amount
		if l.Status != lineOpen {
			t.Errorf("line %v, want open", l)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("batch lines %v, want %v", got, want)
	}
	if b1.Batch.Total != "255000" {
		t.Errorf("batch %v, want a total of 255000", b1.Batch)
	}
	e.checkInvariants(t)
}

// A refund since the cut-off of a payment confirmed by it takes money that
// was owed at the cut-off, whatever was confirmed since: PO-F-01's only
// payment is refunded in full and PO-F-02's in part, and each then takes a
// payment that waits for the next batch. The batch pays what is left of the
// money owed at the cut-off, not the new payments in its place.
func TestPayoutDueAfterARefundOfMoneyOwedAtTheCutOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-F", map[string]int64{"PO-F-01": 100000, "PO-F-02": 100000}, 200000)
	e := f.e
	cutOff := time.Now()
	time.Sleep(2 * time.Millisecond)
	for m, amount := range map[string]string{"PO-F-01": "", "PO-F-02": "30000"} {
		got, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: m})
		if err != nil || len(got.Payments) != 1 {
			t.Fatalf("payments of %s: %v %v", m, got, err)
		}
		if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "refund-" + m, PaymentId: got.Payments[0].Id, Amount: amount}); err != nil {
			t.Fatal(err)
		}
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "after-" + m, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-AFTER-" + m})
	}

	pays := func(b *pb.CreatePayoutBatchResponse) map[string]string {
		got := map[string]string{}
		for _, l := range b.Lines {
			if l.Status == lineOpen {
				got[l.Merchant] = l.Amount
			}
		}
		return got
	}
	b := f.create(t, "batch", cutOff)
	if got, want := pays(b), map[string]string{"PO-F-02": "70000"}; !maps.Equal(got, want) {
		t.Errorf("the batch at the cut-off pays %v, want %v: the 50,000 each took after it waits for the next batch", got, want)
	}
	// PO-F-02's line is open, so only PO-F-01's new money is paid.
	if got, want := pays(f.create(t, "next", time.Now())), map[string]string{"PO-F-01": "50000"}; !maps.Equal(got, want) {
		t.Errorf("the next batch pays %v, want %v", got, want)
	}
	e.checkInvariants(t)
}

// A page token of a batch's lines continues that batch's lines: sent with
// another batch it is refused, naming page_token. It was taken as a place
// in the other batch's lines, so a bank reading two batches with the
// first one's token was shown the second without its first lines, with no
// error, and those merchants were not paid.
func TestPayoutLinesPageTokenContinuesItsOwnBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-T", map[string]int64{"PO-T-01": 10000, "PO-T-02": 20000, "PO-T-03": 30000}, 60000)
	first := f.create(t, "tok-1", time.Now())
	// Every line fails: the money is due again in the second batch.
	var results []*pb.PayoutResult
	for _, l := range first.Lines {
		results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: lineFailed, FailureReason: "tài khoản bị khóa"})
	}
	if _, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: first.Batch.Id, Results: results}); err != nil {
		t.Fatal(err)
	}
	second := f.create(t, "tok-2", time.Now())
	if len(second.Lines) != 3 {
		t.Fatalf("second batch: %v; want a line for each of the 3 merchants", second.Lines)
	}
	page, err := f.e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: first.Batch.Id, PageSize: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page of the first batch: %v, %v", page, err)
	}
	rest, err := f.e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: first.Batch.Id, PageSize: 10, PageToken: page.NextPageToken})
	if err != nil || len(rest.Lines) != 2 {
		t.Fatalf("the first batch's next page: %v, %v; want its other 2 lines", rest.GetLines(), err)
	}
	other, err := f.e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: second.Batch.Id, PageSize: 10, PageToken: page.NextPageToken})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
		t.Errorf("the first batch's token with the second: %d lines, %v; want InvalidArgument naming page_token", len(other.GetLines()), err)
	}
}

// A bank's transfer reference is recorded once: a second line paid with
// it is refused and stays open.
func TestPayoutBankRefOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-R", map[string]int64{"PO-R-01": 10000, "PO-R-02": 20000}, 30000)
	b := f.create(t, "batch", time.Now())
	if _, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-R-01", Status: linePaid, BankRef: "SAME"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-R-02", Status: linePaid, BankRef: "SAME"}}})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "SAME") {
		t.Errorf("a reused bank reference: %v", err)
	}
	got, lines := f.e.allLines(t, b.Batch.Id)
	if l := lineOf(lines, "PO-R-02"); l.Status != lineOpen || got.Status != batchOpen {
		t.Errorf("after a refused outcome: %v %v", got, l)
	}
}

// Lines not completed within the reservation's 30 days expire: the money
// is payable again and a late outcome is refused.
func TestPayoutLineExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-X", map[string]int64{"PO-X-01": 25000}, 25000)
	b := f.create(t, "batch", time.Now())
	f.e.advance(31 * 24 * time.Hour)
	if n, err := f.e.ledger.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	got, lines := f.e.allLines(t, b.Batch.Id)
	if lines[0].Status != lineExpired || got.Status != batchComplete || got.ExpiredCount != 1 || lines[0].CloseEntryId == "" {
		t.Errorf("after 31 days: %v %v", got, lines[0])
	}
	if bal := f.payable(t, "PO-X-01"); bal.DebitsPending != "0" || bal.Posted != "25000" {
		t.Errorf("payable after the expiry: %v", bal)
	}
	_, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-X-01", Status: linePaid, BankRef: "LATE"}}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("paying an expired line: %v", err)
	}
	if again := f.create(t, "batch-2", f.e.now()); len(again.Lines) != 1 || again.Lines[0].Status != lineOpen || again.Lines[0].Amount != "25000" {
		t.Errorf("the next batch: %v", again.Lines)
	}
	f.e.checkInvariants(t)
}

// payoutSnapshot counts what a payout call could write.
func (e *env) payoutSnapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := e.db.Pool.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM payout_batches),
		(SELECT string_agg(merchant || status, ',' ORDER BY batch_id, merchant) FROM payout_lines))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every payout RPC refuses bad input with the right code, naming the
// field, and writes nothing.
func TestPayoutBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-B", map[string]int64{"PO-B-01": 10000, "PO-B-02": 20000}, 30000)
	e := f.e
	b := f.create(t, "good", time.Now())
	create := func(mut func(r *pb.CreatePayoutBatchRequest)) func() error {
		return func() error {
			r := &pb.CreatePayoutBatchRequest{IdempotencyKey: "bad", Bank: "vcb", Market: f.market, CutOff: timestamppb.Now()}
			mut(r)
			_, err := e.settle.CreatePayoutBatch(ctx, r)
			return err
		}
	}
	complete := func(id string, results ...*pb.PayoutResult) func() error {
		return func() error {
			_, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results})
			return err
		}
	}
	paid := func(m, ref string) *pb.PayoutResult {
		return &pb.PayoutResult{Merchant: m, Status: linePaid, BankRef: ref}
	}
	many := make([]*pb.PayoutResult, 1001)
	for i := range many {
		many[i] = paid(fmt.Sprintf("M-%d", i), fmt.Sprintf("R-%d", i))
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"no key", create(func(r *pb.CreatePayoutBatchRequest) { r.IdempotencyKey = "" }), codes.InvalidArgument, "idempotency_key"},
		{"bad bank", create(func(r *pb.CreatePayoutBatchRequest) { r.Bank = "VCB!" }), codes.InvalidArgument, "bank"},
		{"no cut-off", create(func(r *pb.CreatePayoutBatchRequest) { r.CutOff = nil }), codes.InvalidArgument, "cut_off"},
		{"cut-off in the future", create(func(r *pb.CreatePayoutBatchRequest) { r.CutOff = timestamppb.New(time.Now().Add(time.Hour)) }), codes.InvalidArgument, "cut_off"},
		{"invalid cut-off", create(func(r *pb.CreatePayoutBatchRequest) { r.CutOff = &timestamppb.Timestamp{Seconds: -1 << 62} }), codes.InvalidArgument, "cut_off"},
		{"unknown market", create(func(r *pb.CreatePayoutBatchRequest) { r.Market = "PO-NONE" }), codes.NotFound, "PO-NONE"},
		{"page size", create(func(r *pb.CreatePayoutBatchRequest) { r.PageSize = -1 }), codes.InvalidArgument, "page_size"},
		{"get: bad id", func() error { _, err := e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: "x"}); return err }, codes.InvalidArgument, "id"},
		{"get: unknown", func() error {
			_, err := e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: "01a21a33-0000-7000-8000-000000000000"})
			return err
		}, codes.NotFound, "no payout batch"},
		{"get: bad token", func() error {
			_, err := e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: b.Batch.Id, PageToken: "!!"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"complete: bad id", complete("nope", paid("PO-B-01", "R1")), codes.InvalidArgument, "batch_id"},
		{"complete: unknown batch", complete("01a21a33-0000-7000-8000-000000000000", paid("PO-B-01", "R1")), codes.NotFound, "no payout batch"},
		{"complete: no results", complete(b.Batch.Id), codes.InvalidArgument, "results"},
		{"complete: too many", complete(b.Batch.Id, many...), codes.InvalidArgument, "results"},
		{"complete: twice the merchant", complete(b.Batch.Id, paid("PO-B-01", "R1"), paid("PO-B-01", "R2")), codes.InvalidArgument, "results[1].merchant"},
		{"complete: no merchant", complete(b.Batch.Id, paid("", "R1")), codes.InvalidArgument, "results[0].merchant"},
		{"complete: paid without reference", complete(b.Batch.Id, paid("PO-B-01", "")), codes.InvalidArgument, "results[0].bank_ref"},
		{"complete: reference with spaces", complete(b.Batch.Id, paid("PO-B-01", "R 1")), codes.InvalidArgument, "results[0].bank_ref"},
		{"complete: failed without reason", complete(b.Batch.Id, &pb.PayoutResult{Merchant: "PO-B-01", Status: lineFailed}), codes.InvalidArgument, "results[0].failure_reason"},
		{"complete: failed with a reference", complete(b.Batch.Id, &pb.PayoutResult{Merchant: "PO-B-01", Status: lineFailed, FailureReason: "x", BankRef: "R"}), codes.InvalidArgument, "results[0].bank_ref"},
		{"complete: no status", complete(b.Batch.Id, &pb.PayoutResult{Merchant: "PO-B-01", BankRef: "R"}), codes.InvalidArgument, "results[0].status"},
		{"complete: status open", complete(b.Batch.Id, &pb.PayoutResult{Merchant: "PO-B-01", Status: lineOpen}), codes.InvalidArgument, "results[0].status"},
		{"complete: not in the batch", complete(b.Batch.Id, paid("PO-B-01", "R1"), paid("PO-B-09", "R9")), codes.InvalidArgument, "results[1].merchant"},
		// One transfer cannot pay two merchants: which of them it paid is
		// not known, so neither line is recorded paid.
		{"complete: a bank reference twice", complete(b.Batch.Id, paid("PO-B-01", "R1"), paid("PO-B-02", "R1")), codes.InvalidArgument, "results[1].bank_ref"},
	} {
		before := e.payoutSnapshot(t)
		err := tc.call()
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.field) {
			t.Errorf("%s: %v, want %v naming %q", tc.name, err, tc.code, tc.field)
		}
		if after := e.payoutSnapshot(t); after != before {
			t.Errorf("%s wrote: %s -> %s", tc.name, before, after)
		}
	}
}

// Banks race: batches made at once over the same market, payments and
// refunds arriving meanwhile, and outcomes sent twice at once. Every
// merchant is in at most one open batch, no money is reserved twice, each
// paid line is posted once, and the ledger's invariants hold.
func TestPayoutConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owed := map[string]int64{}
	for i := 1; i <= 12; i++ {
		owed[fmt.Sprintf("PO-C-%02d", i)] = int64(i) * 10000
	}
	f := newPayoutFixture(t, "PO-C", owed, 780000)
	e := f.e
	var wg sync.WaitGroup
	batches := make([]*pb.CreatePayoutBatchResponse, 8)
	errs := make([]error, 8)
	cutOff := timestamppb.Now()
	for i := range batches {
		wg.Go(func() {
			batches[i], errs[i] = e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{
				IdempotencyKey: fmt.Sprintf("race-%d", i%4), Bank: "vcb", Market: f.market, CutOff: cutOff, PageSize: 100})
		})
	}
	for i := range 6 { // payments and refunds meanwhile
		code := fmt.Sprintf("PO-C-%02d", i+1)
		wg.Go(func() {
			e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "more-" + code, Merchant: code, Channel: pb.Channel_CHANNEL_VIETQR,
				Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-MORE-" + code})
		})
	}
	wg.Wait()
	open := map[string]string{} // merchant → batch
	ids := map[string]bool{}
	for i, b := range batches {
		if errs[i] != nil {
			t.Fatalf("batch %d: %v", i, errs[i])
		}
		ids[b.Batch.Id] = true
		for _, l := range b.Lines {
			if l.Status != lineOpen {
				continue
			}
			if other, ok := open[l.Merchant]; ok && other != b.Batch.Id {
				t.Errorf("%s is open in batches %s and %s", l.Merchant, other, b.Batch.Id)
			}
			open[l.Merchant] = b.Batch.Id
		}
	}
	if len(ids) != 4 {
		t.Errorf("4 keys made %d batches", len(ids))
	}
	// Complete everything, each request twice at once.
	for id := range ids {
		_, lines := e.allLines(t, id)
		var results []*pb.PayoutResult
		for _, l := range lines {
			if l.Status == lineOpen {
				results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: linePaid, BankRef: "OUT-" + l.Merchant})
			}
		}
		if len(results) == 0 {
			continue
		}
		for range 2 {
			wg.Go(func() {
				if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results}); err != nil {
					t.Errorf("complete %s: %v", id, err)
				}
			})
		}
	}
	wg.Wait()
	var paidEntries int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE kind = 'payout' AND phase = 'post_pending'`).Scan(&paidEntries); err != nil {
		t.Fatal(err)
	}
	if paidEntries != int64(len(open)) {
		t.Errorf("%d payouts posted for %d open lines", paidEntries, len(open))
	}
	for code := range owed {
		bal := f.payable(t, code)
		want := owed[code]
		if _, ok := open[code]; ok {
			want = 0
		}
		if n, _ := fmt.Sscan(code[len(code)-2:], new(int)); n == 1 && code <= "PO-C-06" {
			want += 5000
		}
		if bal.DebitsPending != "0" || num(bal.Posted) != want {
			t.Errorf("%s: %v, want %d posted", code, bal, want)
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// A payout pays the oldest money first. Once a batch at a cut-off has paid
// everything owed then, another batch at the same cut-off (another key, or
// another bank's) has nothing to pay: money confirmed after the cut-off
// waits for a later one.
func TestSecondBatchAtAPaidCutOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-S", map[string]int64{"PO-S-01": 100000}, 100000)
	e := f.e
	cutOff := time.Now()
	time.Sleep(2 * time.Millisecond)
	first := f.create(t, "batch-1", cutOff)
	if len(first.Lines) != 1 || first.Lines[0].Amount != "100000" || first.Lines[0].Status != lineOpen {
		t.Fatalf("batch-1 lines %v", first.Lines)
	}
	if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: first.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: "PO-S-01", Status: linePaid, BankRef: "VCB-PO-S-1"}}}); err != nil {
		t.Fatal(err)
	}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "late-01", Merchant: "PO-S-01", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "40000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-LATE-01"})
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-2", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: "40000", Bank: "vcb", BankRef: "VCB-IN-2"}); err != nil {
		t.Fatal(err)
	}
	second := f.create(t, "batch-2", cutOff)
	for _, l := range second.Lines {
		if l.Merchant == "PO-S-01" && l.Status == lineOpen {
			t.Errorf("batch-2 at the paid cut-off pays money confirmed after it: %v", l)
		}
	}
}

// A closed merchant is still paid what it is owed, so its payout account
// can still be changed: after its bank reports the old account closed, the
// next batch pays the account it gives. Nothing else of it can change.
func TestClosedMerchantIsPaidToTheAccountItGives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-C-01"
	f := newPayoutFixture(t, "PO-C", map[string]int64{m: 60000}, 60000)
	e := f.e
	if _, err := e.merchants.CloseMerchant(ctx, &pb.CloseMerchantRequest{Code: m, Reason: "về quê"}); err != nil {
		t.Fatal(err)
	}
	b1 := f.create(t, "batch-1", time.Now())
	if l := lineOf(b1.Lines, m); l == nil || l.Status != lineOpen || l.Amount != "60000" {
		t.Fatalf("the closed merchant's line: %v", l)
	}
	if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b1.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: m, Status: lineFailed, FailureReason: "tài khoản đã đóng"},
	}}); err != nil {
		t.Fatal(err)
	}

	account := &pb.PayoutAccount{BankBin: "970415", AccountNumber: "888800001", HolderName: "CHU SAP"}
	got, err := e.merchants.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
		Merchant: &pb.Merchant{Code: m, PayoutAccount: account}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"payout_account"}},
	})
	if err != nil || !proto.Equal(got.Merchant.PayoutAccount, account) || got.Merchant.Status != pb.MerchantStatus_MERCHANT_STATUS_CLOSED {
		t.Fatalf("the payout account of a closed merchant owed 60000 đồng: %v, %v; want it changed", got, err)
	}
	b2 := f.create(t, "batch-2", time.Now())
	if l := lineOf(b2.Lines, m); l == nil || l.Status != lineOpen || l.Amount != "60000" || !proto.Equal(l.PayoutAccount, account) {
		t.Errorf("the next batch's line: %v; want 60000 đồng to %v", l, account)
	}

	for _, path := range []string{"phone", "stalls", "display_name"} {
		_, err := e.merchants.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
			Merchant:   &pb.Merchant{Code: m, Phone: "0987654321", Stalls: []string{"S-00"}, DisplayName: "Sạp mới", PayoutAccount: account},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"payout_account", path}},
		})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s of a closed merchant changed: %v", path, err)
		}
	}
	e.checkInvariants(t)
}

// A payout batch's lines carry the account each merchant is paid to: in
// full for the bank that pays them and for admins, masked for auditors, as
// GetMerchant and ListMerchants show it them.
func TestPayoutBatchAccountsMaskedForAuditors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPayoutFixture(t, "PO-M", map[string]int64{"PO-M-01": 100000}, 100000)
	e := f.e
	_, bankSecret := e.issue(t, access.IssueRequest{Name: "vcb", Role: access.RoleBank, Provider: "napas", Bank: "vcb"})
	bank := pb.NewSettlementServiceClient(e.dial(t, bankSecret))
	b, err := bank.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch-1", Bank: "vcb", Market: f.market, CutOff: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	full := &pb.PayoutAccount{BankBin: "970436", AccountNumber: "100000", HolderName: "CHU SAP"}
	masked := &pb.PayoutAccount{BankBin: "970436", AccountNumber: "**0000", HolderName: "CHU S."}
	_, auditor := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	_, marketAuditor := e.issue(t, access.IssueRequest{Name: "auditor PO-M", Role: access.RoleAuditor, Markets: []string{f.market}})
	for _, c := range []struct {
		name   string
		client pb.SettlementServiceClient
		want   *pb.PayoutAccount
	}{
		{"admin", e.settle, full},
		{"the paying bank", bank, full},
		{"auditor", pb.NewSettlementServiceClient(e.dial(t, auditor)), masked},
		{"auditor of the market", pb.NewSettlementServiceClient(e.dial(t, marketAuditor)), masked},
	} {
		got, err := c.client.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: b.Batch.Id})
		if err != nil || len(got.Lines) != 1 {
			t.Errorf("%s: %v, %v", c.name, got, err)
			continue
		}
		if !proto.Equal(got.Lines[0].PayoutAccount, c.want) {
			t.Errorf("%s reads payout account %v; want %v", c.name, got.Lines[0].PayoutAccount, c.want)
		}
	}
}

// Two copies of a batch's creation finish its reservations at once, and
// the merchant's payable moves between them: the first copy's reservation
// is refused (a refund took what was due) and it skips the line, then the
// second's, after a payment came in, would hold. A skipped line reserves
// nothing: its money is not held for 30 days for a line nobody will pay.
// Both copies are answered with the batch as it is.
func TestPayoutLineSkippedByACopyReservesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-S-01"
	f := newPayoutFixture(t, "PO-S", map[string]int64{m: 0}, 0)
	e := f.e
	paid := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "pay-1", Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "100000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-S-1"}).Payment
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: "100000", Bank: "vcb", BankRef: "VCB-IN-1"}); err != nil {
		t.Fatal(err)
	}
	// The first creation plans the line and loses its connection as it
	// reserves it: the batch is left creating, the line to reserve.
	cutOnce(t, e, "ledger_entries", "INSERT")
	req := &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch", Bank: "vcb", Market: f.market, CutOff: timestamppb.Now(), PageSize: 100}
	if _, err := e.settle.CreatePayoutBatch(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("the creation cut while reserving: %v; want Unavailable", err)
	}
	if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "refund-1", PaymentId: paid.Id, Amount: "50000"}); err != nil {
		t.Fatal(err)
	}

	// The line's row is held, so that each copy stops where it writes it:
	// the first as it skips the line, the second's reservation as its
	// round opens it.
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below
	if _, err := tx.Exec(ctx, `SELECT 1 FROM payout_lines WHERE merchant = $1 FOR UPDATE`, m); err != nil {
		t.Fatal(err)
	}
	waitingForLine := func(n int) {
		t.Helper()
		for range 250 {
			var waiting int
			if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE payout_lines%'`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%d writes of the line are not waiting for it", n)
	}
	errs := make(chan error, 2)
	create := func() {
		_, err := e.settle.CreatePayoutBatch(ctx, req)
		errs <- err
	}
	go create()
	waitingForLine(1)
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "pay-2", Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "100000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-S-2"})
	go create()
	waitingForLine(2)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a copy of the creation: %v", err)
		}
	}

	again, err := e.settle.CreatePayoutBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	batch, lines := e.allLines(t, again.Batch.Id)
	line := lines[0]
	if bal := f.payable(t, m); line.Status != lineSkipped || batch.Status != batchComplete || bal.DebitsPending != "0" || bal.Posted != "150000" {
		t.Errorf("the line is %v in a %v batch, the payable %v; want it skipped, nothing reserved and 150000 đồng payable", line.Status, batch.Status, bal)
	}
	if funds, _ := e.settlementFunds(t, "vcb", f.market); funds != 100000 {
		t.Errorf("the bank holds %d đồng unreserved for the market; want all 100000 it received", funds)
	}
	e.checkInvariants(t)
}

// A failed line's failure_reason may be any 1-200 characters, as the
// proto says: one written in a script of three bytes a character (here a
// Vietnamese bank's note full of tone marks) is recorded as it is, not
// refused for the byte length of the entry's metadata.
func TestPayoutFailureReasonOf200Characters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-R-01"
	f := newPayoutFixture(t, "PO-R", map[string]int64{m: 60000}, 60000)
	b := f.create(t, "batch", time.Now())
	reason := "Lỗi: " + strings.Repeat("ệ", 195)
	if n := len([]rune(reason)); n != 200 {
		t.Fatalf("the reason has %d characters", n)
	}
	got, err := f.e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id, Results: []*pb.PayoutResult{
		{Merchant: m, Status: lineFailed, FailureReason: reason},
	}})
	if err != nil {
		t.Fatalf("a failure reason of 200 characters (%d bytes): %v", len(reason), err)
	}
	if l := got.Lines[0]; l.Status != lineFailed || l.Reason != reason {
		t.Errorf("the line: %v; want failed with the reason given", l)
	}
	if bal := f.payable(t, m); bal.Posted != "60000" || bal.DebitsPending != "0" {
		t.Errorf("the payable after the failed line: %v; want 60000 payable, nothing reserved", bal)
	}
	f.e.checkInvariants(t)
}

// A merchant due more than one posting may carry (an operator's adjustment
// of 10^15 đồng on top of its payments) is paid 10^15 in one batch and the
// rest in the next, at the same cut-off; its line was refused by the
// ledger, so the batch was answered InvalidArgument naming a posting the
// request does not have, stayed creating, and every later batch of its
// creator, finishing it first, was refused the same way.
func TestPayoutOfMoreThanOnePostingCarries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-L-01"
	f := newPayoutFixture(t, "PO-L", map[string]int64{m: 100000}, 100000)
	e := f.e
	const largest = "1000000000000000"
	e.account(t, "po-l:assets", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", f.market, false)
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "adjustment", Market: f.market, Kind: "adjustment", Currency: "VND",
		Postings: []*pb.PostingInput{posting("po-l:assets", debit, largest), posting("merchant:"+m+":payable", credit, largest)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-large", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: largest, Bank: "vcb", BankRef: "VCB-IN-LARGE", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	owed := f.payable(t, m).Posted
	time.Sleep(2 * time.Millisecond)
	cutOff := time.Now()

	paid := int64(0)
	for i := 1; i <= 2; i++ {
		r, err := e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: fmt.Sprint("batch-", i), Bank: "vcb", Market: f.market, CutOff: timestamppb.New(cutOff)})
		if err != nil {
			t.Fatalf("batch-%d of %s đồng owed: %v", i, owed, err)
		}
		l := lineOf(r.Lines, m)
		if l == nil || l.Status != lineOpen {
			t.Fatalf("batch-%d line %v, want one open", i, l)
		}
		var amount int64
		fmt.Sscan(l.Amount, &amount)
		if amount > 1_000_000_000_000_000 {
			t.Fatalf("batch-%d pays %d, more than a posting carries", i, amount)
		}
		if _, err := e.settle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: r.Batch.Id, Results: []*pb.PayoutResult{
			{Merchant: m, Status: linePaid, BankRef: fmt.Sprint("VCB-PO-L-", i)}}}); err != nil {
			t.Fatal(err)
		}
		paid += amount
	}
	if got := f.payable(t, m).Posted; got != "0" || fmt.Sprint(paid) != owed {
		t.Errorf("after two batches paid %d of %s owed, the payable holds %s, want 0", paid, owed, got)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}
