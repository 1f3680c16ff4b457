package api_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/settlement"
)

// stmtLine is one transaction of a statement the tests write.
type stmtLine struct {
	ref    string
	amount string
	at     time.Time
	debit  bool
}

// reconCSV writes lines as a CSV statement, the header being line 1.
func reconCSV(lines []stmtLine) []byte {
	var b bytes.Buffer
	b.WriteString("ref,amount,currency,booked_at,direction,channel,description\n")
	for _, l := range lines {
		dir := "credit"
		if l.debit {
			dir = "debit"
		}
		fmt.Fprintf(&b, "%s,%s,VND,%s,%s,VIETQR,Thanh toán %s\n", l.ref, l.amount, l.at.Format(time.RFC3339), dir, l.ref)
	}
	return b.Bytes()
}

// reconCamt writes lines as a camt.053.001.08 statement of [start, end):
// entry n is lines[n-1].
func reconCamt(id string, start, end time.Time, lines []stmtLine) []byte {
	var b bytes.Buffer
	vn := time.FixedZone("ICT", 7*3600)
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>%s</MsgId><CreDtTm>%s</CreDtTm></GrpHdr>
    <Stmt>
      <Id>%s</Id>
      <FrToDt><FrDtTm>%s</FrDtTm><ToDtTm>%s</ToDtTm></FrToDt>
`, id, end.In(vn).Format(time.RFC3339), id, start.In(vn).Format(time.RFC3339), end.Add(-time.Second).In(vn).Format(time.RFC3339))
	for _, l := range lines {
		ind := "CRDT"
		if l.debit {
			ind = "DBIT"
		}
		fmt.Fprintf(&b, `      <Ntry>
        <Amt Ccy="VND">%s</Amt>
        <CdtDbtInd>%s</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><DtTm>%s</DtTm></BookgDt>
        <NtryDtls><TxDtls><Refs><AcctSvcrRef>%s</AcctSvcrRef></Refs><RmtInf><Ustrd>Thanh toán</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>
`, l.amount, ind, l.at.In(vn).Format(time.RFC3339), l.ref)
	}
	b.WriteString("    </Stmt>\n  </BkToCstmrStmt>\n</Document>\n")
	return b.Bytes()
}

// reconRows counts what an import may write, and what it must never write.
func (e *env) reconRows(t *testing.T) string {
	t.Helper()
	var s string
	err := e.db.Pool.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM reconciliation_reports), (SELECT count(*) FROM reconciliation_items),
		(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM payments))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reconFixture is a market day of VietQR payments at TN-TEST and the
// statement the bank sends for it, with exactly three breaks.
type reconFixture struct {
	start, end time.Time
	lines      []stmtLine
	bank       pb.SettlementServiceClient // napas, bound to TN-TEST
	auditor    pb.SettlementServiceClient // bound to TN-TEST
	elsewhere  pb.SettlementServiceClient // auditor bound to TN-OTHER
	momo       pb.SettlementServiceClient // the MoMo bank, every market

	mismatch, missingInStatement *pb.Payment
	// byTime are the payments matched on amount and time, not reference.
	byTime []string
	// matched: statement ref → payment id.
	matched map[string]string
}

// importRequest is the fixture's whole statement, as a CSV import for its
// period.
func (f *reconFixture) importRequest() *pb.ImportStatementRequest {
	return &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: reconCSV(f.lines),
		Channel: chVietQR, PeriodStart: timestamppb.New(f.start), PeriodEnd: timestamppb.New(f.end)}
}

const (
	bankPayment  = pb.PaymentSource_PAYMENT_SOURCE_BANK
	stallPayment = pb.PaymentSource_PAYMENT_SOURCE_STALL
	chVietQR     = pb.Channel_CHANNEL_VIETQR
)

func (e *env) reconFixture(t *testing.T) *reconFixture {
	t.Helper()
	ctx := context.Background()
	e.setUpMarket(t)
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-OTHER", Name: "Chợ Khác", Province: "Thái Nguyên"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		Code: "TN-OTHER-0001", Market: "TN-OTHER", Stalls: []string{"C-001"}, DisplayName: "Hàng cá", OwnerName: "Lê Văn Cá",
		Phone: "0911111111", Channels: []pb.Channel{chVietQR}, FeePlan: &pb.FeePlan{MinFee: "0"},
	}}); err != nil {
		t.Fatal(err)
	}
	// A business day three days ago, 00:00 to 24:00 in Vietnam.
	start := settlement.DayOf(time.Now()).AddDays(-3).Start()
	f := &reconFixture{start: start, end: start.Add(24 * time.Hour), matched: map[string]string{}}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	const a, b = "TN-TEST-0001", "TN-TEST-0002"

	n := 0
	pay := func(merchant string, ch pb.Channel, src pb.PaymentSource, amount, ref string, when time.Time) *pb.Payment {
		n++
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprintf("recon-%d", n), Merchant: merchant, Channel: ch,
			Amount: amount, Source: src, ProviderRef: ref, OccurTime: timestamppb.New(when)}).Payment
	}
	confirm := func(p *pb.Payment, amount, ref string) *pb.Payment {
		n++
		resp, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: fmt.Sprintf("recon-%d", n), PaymentId: p.Id, Amount: amount, ProviderRef: ref})
		if err != nil {
			t.Fatalf("confirm %s: %v", p.Id, err)
		}
		return resp.Payment
	}
	line := func(ref, amount string, when time.Time) {
		f.lines = append(f.lines, stmtLine{ref: ref, amount: amount, at: when})
	}

	// Matched on the provider's reference: reported by the bank; recorded
	// by the stall and confirmed with the reference; partially confirmed
	// (the statement carries what the bank confirmed); fully refunded (the
	// money moved, then moved back: the payment is still on the statement).
	f.matched["FT-001"] = pay(a, chVietQR, bankPayment, "150000", "FT-001", at(8*time.Hour)).Id
	line("FT-001", "150000", at(8*time.Hour+20*time.Second))
	f.matched["FT-002"] = pay(b, chVietQR, bankPayment, "80000", "FT-002", at(9*time.Hour)).Id
	line("FT-002", "80000", at(9*time.Hour))
	f.matched["FT-003"] = confirm(pay(a, chVietQR, stallPayment, "45000", "", at(10*time.Hour)), "", "FT-003").Id
	line("FT-003", "45000", at(10*time.Hour+time.Minute))
	// Matched on amount and time: confirmed without a reference.
	p4 := confirm(pay(b, chVietQR, stallPayment, "60000", "", at(11*time.Hour)), "", "")
	f.matched["FT-004"], f.byTime = p4.Id, append(f.byTime, p4.Id)
	line("FT-004", "60000", at(11*time.Hour+2*time.Minute))
	// The amount mismatch: the bank booked more than the ledger holds.
	f.mismatch = pay(a, chVietQR, bankPayment, "200000", "FT-005", at(12*time.Hour))
	line("FT-005", "210000", at(12*time.Hour))
	// Missing in the ledger: nothing recorded for it, though a MoMo payment
	// and one at another market have the same amount and time.
	pay(a, pb.Channel_CHANNEL_MOMO, bankPayment, "55000", "FT-MOMO-1", at(14*time.Hour))
	pay("TN-OTHER-0001", chVietQR, bankPayment, "55000", "FT-OTHER-1", at(14*time.Hour))
	line("FT-007", "55000", at(14*time.Hour))
	f.matched["FT-008"] = confirm(pay(a, chVietQR, stallPayment, "100000", "", at(15*time.Hour)), "70000", "FT-008").Id
	line("FT-008", "70000", at(15*time.Hour))
	refunded := pay(b, chVietQR, bankPayment, "50000", "FT-009", at(16*time.Hour))
	if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "recon-refund", PaymentId: refunded.Id}); err != nil {
		t.Fatal(err)
	}
	f.matched["FT-009"] = refunded.Id
	line("FT-009", "50000", at(16*time.Hour))
	// Matched on the reference alone, far outside the period: the bank
	// notified a payment of days before; a stall recorded one with a wrong
	// date and the bank confirmed it with the reference.
	f.matched["FT-010"] = pay(a, chVietQR, bankPayment, "64000", "FT-010", start.Add(-48*time.Hour)).Id
	line("FT-010", "64000", at(17*time.Hour))
	f.matched["FT-011"] = confirm(pay(b, chVietQR, stallPayment, "66000", "", start.Add(-48*time.Hour)), "", "FT-011").Id
	line("FT-011", "66000", at(17*time.Hour))
	// A debit (the refund going back): not a payment, not matched.
	f.lines = append(f.lines, stmtLine{ref: "FT-R-009", amount: "50000", at: at(17 * time.Hour), debit: true})
	// Across the end: the stall says 00:02 the next day, the bank booked it
	// at 23:59; matched on amount and time.
	p12 := confirm(pay(b, chVietQR, stallPayment, "33000", "", f.end.Add(2*time.Minute)), "", "")
	f.matched["FT-B2"], f.byTime = p12.Id, append(f.byTime, p12.Id)
	line("FT-B2", "33000", f.end.Add(-time.Minute))
	// Across the start: the bank says 23:55 the day before, booked 00:00:30.
	f.matched["FT-B4"] = pay(a, chVietQR, bankPayment, "25000", "FT-B4", start.Add(-5*time.Minute)).Id
	line("FT-B4", "25000", start.Add(30*time.Second))

	// Missing in the statement: the bank confirmed it at noon.
	f.missingInStatement = pay(b, chVietQR, bankPayment, "99000", "FT-006", at(13*time.Hour))
	// Not breaks: three minutes before the end (the bank booked it the next
	// day), two minutes before the start (the previous day's statement),
	// still pending, rejected.
	pay(a, chVietQR, bankPayment, "41000", "FT-B1", f.end.Add(-3*time.Minute))
	pay(b, chVietQR, bankPayment, "42000", "FT-B3", start.Add(-2*time.Minute))
	pay(a, chVietQR, stallPayment, "30000", "", at(15*time.Hour))
	rejected := pay(b, chVietQR, stallPayment, "31000", "", at(15*time.Hour))
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "recon-reject", PaymentId: rejected.Id}); err != nil {
		t.Fatal(err)
	}

	client := func(r access.IssueRequest) pb.SettlementServiceClient {
		_, secret := e.issue(t, r)
		return pb.NewSettlementServiceClient(e.dial(t, secret))
	}
	f.bank = client(access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas", Markets: []string{testMarket}})
	f.auditor = client(access.IssueRequest{Name: "auditor", Role: access.RoleAuditor, Markets: []string{testMarket}})
	f.elsewhere = client(access.IssueRequest{Name: "auditor elsewhere", Role: access.RoleAuditor, Markets: []string{"TN-OTHER"}})
	f.momo = client(access.IssueRequest{Name: "MoMo", Role: access.RoleBank, Provider: "momo"})
	return f
}

// wantBreaks are the three breaks of the fixture's statement; lineOf
// gives a ref's line (CSV line or camt entry).
func (f *reconFixture) wantBreaks(lineOf func(ref string) int32) []*pb.ReconciliationItem {
	find := func(ref string) stmtLine {
		for _, l := range f.lines {
			if l.ref == ref {
				return l
			}
		}
		panic(ref)
	}
	return []*pb.ReconciliationItem{
		{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_AMOUNT_MISMATCH, LineNumber: lineOf("FT-005"), StatementRef: "FT-005",
			StatementAmount: "210000", BookedTime: timestamppb.New(find("FT-005").at), PaymentId: f.mismatch.Id, LedgerAmount: "200000", ByReference: true},
		{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER, LineNumber: lineOf("FT-007"), StatementRef: "FT-007",
			StatementAmount: "55000", BookedTime: timestamppb.New(find("FT-007").at)},
		{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_STATEMENT, PaymentId: f.missingInStatement.Id, LedgerAmount: "99000"},
	}
}

func (f *reconFixture) csvLine(ref string) int32 {
	return int32(slices.IndexFunc(f.lines, func(l stmtLine) bool { return l.ref == ref })) + 2
}

func (f *reconFixture) camtEntry(ref string) int32 { return f.csvLine(ref) - 1 }

func sameItems(t *testing.T, what string, got, want []*pb.ReconciliationItem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d items, want %d:\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s: item %d\n got %v\nwant %v", what, i, got[i], want[i])
		}
	}
}

// allItems reads every item of a report, page by page.
func allItems(t *testing.T, c pb.SettlementServiceClient, id string, matched bool, size int32) (*pb.ReconciliationReport, []*pb.ReconciliationItem) {
	t.Helper()
	var (
		items []*pb.ReconciliationItem
		rep   *pb.ReconciliationReport
		token string
	)
	for pages := 0; ; pages++ {
		resp, err := c.GetReconciliationReport(context.Background(), &pb.GetReconciliationReportRequest{Id: id, PageSize: size, PageToken: token, IncludeMatched: matched})
		if err != nil {
			t.Fatalf("get report %s: %v", id, err)
		}
		if rep != nil && !proto.Equal(rep, resp.Report) {
			t.Fatalf("the report changed between pages: %v then %v", rep, resp.Report)
		}
		rep, token = resp.Report, resp.NextPageToken
		items = append(items, resp.Items...)
		if token == "" {
			return rep, items
		}
		if pages > 1000 {
			t.Fatal("no last page")
		}
	}
}

// A statement with several matched lines, one line the ledger lacks, one
// payment the statement lacks and one amount that differs yields exactly
// those three breaks, with their lines and payments, whether it comes as
// CSV or camt.053. Payments of another channel, another market, pending or
// rejected are not matched; a payment a few minutes across either end of
// the period is matched when the statement has it and no break when it
// does not; a debit line is counted but not matched. The kept report
// answers the same, with every item when matched ones are asked for, and
// is listed to those who may see it.
func TestImportStatementFindsExactlyTheBreaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)

	// The bank, bound to TN-TEST, names no market: the import covers its
	// markets, so the payment at TN-OTHER is not matched.
	content := reconCSV(f.lines)
	resp, err := f.bank.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: content,
		Channel: chVietQR, PeriodStart: timestamppb.New(f.start), PeriodEnd: timestamppb.New(f.end)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Replayed {
		t.Error("a first import is replayed")
	}
	sameItems(t, "CSV breaks", resp.Breaks, f.wantBreaks(f.csvLine))
	rep := resp.Report
	want := &pb.ReconciliationReport{
		Id: rep.Id, Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, StatementId: rep.Digest, Digest: rep.Digest,
		Channel: chVietQR, Provider: "napas", Market: testMarket,
		PeriodStart: timestamppb.New(f.start), PeriodEnd: timestamppb.New(f.end),
		LineCount: int32(len(f.lines)), PaymentCount: int32(len(f.matched)) + 2, MatchedCount: int32(len(f.matched)),
		AmountMismatchCount: 1, MissingInLedgerCount: 1, MissingInStatementCount: 1, CreateTime: rep.CreateTime,
	}
	if !proto.Equal(rep, want) || len(rep.Digest) != 64 || rep.CreateTime == nil {
		t.Errorf("report\n got %v\nwant %v", rep, want)
	}

	// The kept report: breaks by default, page by page.
	got, breaks := allItems(t, f.bank, rep.Id, false, 2)
	if !proto.Equal(got, rep) {
		t.Errorf("kept report %v, imported %v", got, rep)
	}
	sameItems(t, "kept breaks", breaks, resp.Breaks)
	// With the matched items: every line but the debit and every payment,
	// each once, matched to the payment the fixture says.
	_, items := allItems(t, f.auditor, rep.Id, true, 3)
	if len(items) != len(f.matched)+3 {
		t.Fatalf("%d items with the matched ones, want %d: %v", len(items), len(f.matched)+3, items)
	}
	var gotBreaks []*pb.ReconciliationItem
	for i, it := range items {
		if i > 0 && it.LineNumber != 0 && it.LineNumber <= items[i-1].LineNumber {
			t.Errorf("items out of line order: %v", items)
		}
		if it.Kind != pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED {
			gotBreaks = append(gotBreaks, it)
			continue
		}
		if id := f.matched[it.StatementRef]; id == "" || it.PaymentId != id || it.StatementAmount != it.LedgerAmount ||
			it.ByReference == slices.Contains(f.byTime, id) || it.LineNumber != f.csvLine(it.StatementRef) {
			t.Errorf("matched item %v; want payment %s", it, id)
		}
	}
	sameItems(t, "breaks among all items", gotBreaks, resp.Breaks)

	// The same statement as camt.053, imported by an operator for TN-TEST:
	// the same breaks, numbered by entry; the period is the statement's.
	camt := reconCamt("STMT-TN-TEST-1", f.start, f.end, f.lines)
	resp2, err := e.settle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053, Content: camt,
		Channel: chVietQR, Market: testMarket})
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, "camt breaks", resp2.Breaks, f.wantBreaks(f.camtEntry))
	if r := resp2.Report; r.Id == rep.Id || r.StatementId != "STMT-TN-TEST-1" || r.Format != pb.StatementFormat_STATEMENT_FORMAT_CAMT053 ||
		!r.PeriodStart.AsTime().Equal(f.start) || !r.PeriodEnd.AsTime().Equal(f.end) || r.MatchedCount != want.MatchedCount || r.LineCount != want.LineCount {
		t.Errorf("camt report %v", r)
	}

	// Listed newest first to the bank and the auditor of TN-TEST and to
	// operators; not to an auditor of another market or another provider's
	// bank, who cannot read it either.
	ids := func(c pb.SettlementServiceClient, req *pb.ListReconciliationReportsRequest) []string {
		t.Helper()
		var out []string
		for {
			resp, err := c.ListReconciliationReports(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.Reports {
				out = append(out, r.Id)
			}
			if resp.NextPageToken == "" {
				return out
			}
			req.PageToken = resp.NextPageToken
		}
	}
	both := []string{resp2.Report.Id, rep.Id}
	for name, c := range map[string]pb.SettlementServiceClient{"bank": f.bank, "auditor": f.auditor, "operator": e.settle} {
		if got := ids(c, &pb.ListReconciliationReportsRequest{PageSize: 1}); !slices.Equal(got, both) {
			t.Errorf("%s lists %v, want %v", name, got, both)
		}
		if got := ids(c, &pb.ListReconciliationReportsRequest{Channel: chVietQR, Market: testMarket}); !slices.Equal(got, both) {
			t.Errorf("%s lists %v for VietQR at %s, want %v", name, got, testMarket, both)
		}
	}
	if got := ids(e.settle, &pb.ListReconciliationReportsRequest{Channel: pb.Channel_CHANNEL_MOMO}); len(got) != 0 {
		t.Errorf("MoMo reports: %v", got)
	}
	if got := ids(e.settle, &pb.ListReconciliationReportsRequest{Market: "TN-OTHER"}); len(got) != 0 {
		t.Errorf("TN-OTHER reports: %v", got)
	}
	for name, c := range map[string]pb.SettlementServiceClient{"auditor elsewhere": f.elsewhere, "MoMo bank": f.momo} {
		if got := ids(c, &pb.ListReconciliationReportsRequest{}); len(got) != 0 {
			t.Errorf("%s lists %v", name, got)
		}
		_, err := c.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: rep.Id})
		wantCode(t, err, codes.PermissionDenied, "")
	}
}

// A page token of a report's items continues that listing: sent with
// another report, or with matched items asked for or no longer, it is
// refused, naming page_token. It was taken as a place in the other
// listing, so a bank reading a second report with the first one's token
// was shown it without its first breaks, with no error.
func TestReconciliationItemsPageTokenContinuesItsOwnListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)
	csv, err := e.settle.ImportStatement(ctx, f.importRequest())
	if err != nil {
		t.Fatal(err)
	}
	camt, err := e.settle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
		Content: reconCamt("STMT-TOKEN", f.start, f.end, f.lines), Channel: chVietQR})
	if err != nil {
		t.Fatal(err)
	}
	page, err := e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: csv.Report.Id, PageSize: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page of breaks: %v, %v", page, err)
	}
	rest, err := e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: csv.Report.Id, PageSize: 10, PageToken: page.NextPageToken})
	if err != nil || len(rest.Items) != len(csv.Breaks)-1 {
		t.Fatalf("the same listing's next page: %v, %v; want the other %d breaks", rest.GetItems(), err, len(csv.Breaks)-1)
	}
	for name, req := range map[string]*pb.GetReconciliationReportRequest{
		"another report":    {Id: camt.Report.Id},
		"matched items too": {Id: csv.Report.Id, IncludeMatched: true},
	} {
		req.PageToken = page.NextPageToken
		resp, err := e.settle.GetReconciliationReport(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d items, %v; want InvalidArgument naming page_token", name, len(resp.GetItems()), err)
		}
	}
}

// A ListReconciliationReports page token continues the query that issued
// it: sent with another channel or market, or by a caller who sees other
// reports, it is refused, naming page_token, as AIP-158 has it. Taken as a
// place in the listing, it started the listing after the first one's last
// report and left out, with no error, every newer one of its own.
func TestReconciliationReportsPageTokenContinuesItsOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)
	camt := func(id, market string) {
		if _, err := e.settle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
			Content: reconCamt(id, f.start, f.end, f.lines), Channel: chVietQR, Market: market}); err != nil {
			t.Fatal(err)
		}
	}
	camt("STMT-TN-TEST", testMarket)
	camt("STMT-TN-OTHER", "TN-OTHER")
	camt("STMT-ALL", "")
	page, err := e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{PageSize: 1})
	if err != nil || page.NextPageToken == "" || page.Reports[0].StatementId != "STMT-ALL" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	if rest, err := e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{PageSize: 10, PageToken: page.NextPageToken}); err != nil || len(rest.Reports) != 2 {
		t.Fatalf("the same query's next page: %v, %v; want the other 2 reports", rest.GetReports(), err)
	}
	for name, call := range map[string]func() (int, error){
		"a market": func() (int, error) {
			r, err := e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{Market: "TN-OTHER", PageToken: page.NextPageToken})
			return len(r.GetReports()), err
		},
		"a channel": func() (int, error) {
			r, err := e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{Channel: chVietQR, PageToken: page.NextPageToken})
			return len(r.GetReports()), err
		},
		"the bank of one market": func() (int, error) {
			r, err := f.bank.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{PageToken: page.NextPageToken})
			return len(r.GetReports()), err
		},
	} {
		n, err := call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d reports, %v; want InvalidArgument naming page_token", name, n, err)
		}
	}
}

// Importing the same file again answers the kept report, replayed, and
// writes nothing; so do eight imports of a new file racing each other,
// which keep exactly one report. The same file for other markets is
// another report; for another period it is refused.
func TestImportStatementReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)
	req := f.importRequest()
	first, err := f.bank.ImportStatement(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rows := e.reconRows(t)
	if want := fmt.Sprintf("1,%d,", len(f.matched)+3); !strings.HasPrefix(rows, want) {
		t.Fatalf("after one import: reports, items, entries, payments = %s; want %s...", rows, want)
	}

	// Again, by the bank and by an operator naming the same market: the
	// same report, replayed, nothing written.
	for _, c := range []pb.SettlementServiceClient{f.bank, e.settle} {
		r := proto.Clone(req).(*pb.ImportStatementRequest)
		if c == e.settle {
			r.Market = testMarket
		}
		again, err := c.ImportStatement(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || !proto.Equal(again.Report, first.Report) {
			t.Errorf("re-import: replayed %v, report %v; want the first %v", again.Replayed, again.Report, first.Report)
		}
		sameItems(t, "re-import breaks", again.Breaks, first.Breaks)
		if got := e.reconRows(t); got != rows {
			t.Errorf("re-import wrote rows: %s, before %s", got, rows)
		}
	}

	// Another period for the same file: refused, naming the field.
	r := proto.Clone(req).(*pb.ImportStatementRequest)
	r.PeriodStart = timestamppb.New(f.start.Add(-time.Hour))
	_, err = f.bank.ImportStatement(ctx, r)
	wantCode(t, err, codes.AlreadyExists, "period_start")
	if got := e.reconRows(t); got != rows {
		t.Errorf("a refused re-import wrote rows: %s, before %s", got, rows)
	}

	// The same file for every market (an operator naming none) is another
	// report.
	r = proto.Clone(req).(*pb.ImportStatementRequest)
	every, err := e.settle.ImportStatement(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if every.Replayed || every.Report.Id == first.Report.Id || every.Report.Market != "" {
		t.Errorf("import for every market: replayed %v, report %v", every.Replayed, every.Report)
	}
	// At every market the payment at TN-OTHER is read too, but it does not
	// match FT-007 on amount and time: a CSV's ref is the provider's, and
	// the provider gave that payment another one (FT-OTHER-1), so they are
	// two transfers. FT-007 stays missing in the ledger and the payment is
	// missing in the statement: one break more.
	if r := every.Report; r.MissingInLedgerCount != 1 || r.MatchedCount != first.Report.MatchedCount ||
		r.MissingInStatementCount != first.Report.MissingInStatementCount+1 {
		t.Errorf("import for every market: %v", every.Report)
	}
	// The same statement as camt.053: an entry's reference may be the
	// bank's own, which says nothing of the payment's, so the payment at
	// TN-OTHER matches FT-007 on amount and time: one break fewer.
	camt, err := e.settle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
		Content: reconCamt("STMT-ALL-1", f.start, f.end, f.lines), Channel: chVietQR})
	if err != nil {
		t.Fatal(err)
	}
	if r := camt.Report; r.MissingInLedgerCount != 0 || r.MatchedCount != first.Report.MatchedCount+1 ||
		r.MissingInStatementCount != first.Report.MissingInStatementCount {
		t.Errorf("camt import for every market: %v", camt.Report)
	}
	rows = e.reconRows(t)

	// Eight imports of a new file at once: one report.
	lines := append(slices.Clone(f.lines), stmtLine{ref: "FT-RACE", amount: "12000", at: f.start.Add(20 * time.Hour)})
	req.Content = reconCSV(lines)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		reports  = map[string]int{}
		replayed int
	)
	for range 8 {
		wg.Go(func() {
			resp, err := f.bank.ImportStatement(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			reports[resp.Report.Id]++
			if resp.Replayed {
				replayed++
			}
			if len(resp.Breaks) != 4 {
				t.Errorf("racing import: %d breaks, want 4: %v", len(resp.Breaks), resp.Breaks)
			}
		})
	}
	wg.Wait()
	if len(reports) != 1 || replayed != 7 {
		t.Errorf("8 racing imports: reports %v, %d replayed; want one report, 7 replayed", reports, replayed)
	}
	var nReports, nItems int
	if err := e.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reconciliation_reports), (SELECT count(*) FROM reconciliation_items)`).Scan(&nReports, &nItems); err != nil {
		t.Fatal(err)
	}
	var before [2]int
	fmt.Sscanf(rows, "%d,%d", &before[0], &before[1])
	if nReports != before[0]+1 || nItems != before[1]+len(f.matched)+4 {
		t.Errorf("after 8 racing imports: %d reports, %d items; want %d and %d", nReports, nItems, before[0]+1, before[1]+len(f.matched)+4)
	}
}

// wantRefused checks a refusal: its code, that its message names every
// part of want, and its field violation.
func wantRefused(t *testing.T, err error, code codes.Code, field string, want ...string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("got %v: %q; want %v", st.Code(), st.Message(), code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("message %q does not say %q", st.Message(), w)
		}
	}
	if code != codes.InvalidArgument {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 && br.FieldViolations[0].Field == field {
			return
		}
	}
	t.Errorf("no field violation on %s: %v", field, st.Details())
}

// A malformed statement is refused as a whole with InvalidArgument naming
// the line (or camt entry) and the reason, and nothing is written.
func TestImportStatementRefusesMalformed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.reconFixture(t)
	good := reconCSV(f.lines)
	// Nothing of a refused statement may be kept, even when an earlier
	// import of another file was.
	if _, err := f.bank.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: good,
		Channel: chVietQR, PeriodStart: timestamppb.New(f.start), PeriodEnd: timestamppb.New(f.end)}); err != nil {
		t.Fatal(err)
	}
	rows := e.reconRows(t)

	csvWith := func(line int, text string) []byte {
		ls := strings.Split(string(good), "\n")
		ls[line-1] = text
		return []byte(strings.Join(ls, "\n"))
	}
	when := f.start.Add(10 * time.Hour).Format(time.RFC3339)
	camtLines := slices.Clone(f.lines)
	camtLines[2].amount = "45000.5"
	big := bytes.NewBufferString("ref,amount,currency,booked_at\n")
	for i := 0; big.Len() <= settlement.MaxStatementBytes; i++ {
		fmt.Fprintf(big, "FT-BIG-%08d,10000,VND,%s\n", i, when)
	}

	for _, tc := range []struct {
		name    string
		format  pb.StatementFormat
		content []byte
		want    []string
	}{
		{"invalid UTF-8", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(3, "FT-X,1000,VND,"+when+",credit,VIETQR,Thanh to\xe1n"), []string{"line 3", "invalid UTF-8"}},
		{"unknown column", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(1, "ref,amout,currency,booked_at,direction,channel,description"), []string{"line 1", `unknown column "amout"`}},
		{"missing column", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			[]byte("ref,currency,booked_at\nFT-X,VND," + when + "\n"), []string{"line 1", `missing required column "amount"`}},
		{"too few fields", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(4, "FT-X,1000,VND,"+when), []string{"line 4", "4 fields, the header has 7"}},
		{"fraction of a đồng", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(5, "FT-X,1000.5,VND,"+when+",credit,VIETQR,x"), []string{"line 5", "amount", "VND has no minor unit", `"1000.5"`}},
		{"other currency", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(5, "FT-X,10.50,USD,"+when+",credit,VIETQR,x"), []string{"line 5", "currency", "USD is not accepted"}},
		{"booked after the period", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(6, "FT-X,1000,VND,"+f.end.Format(time.RFC3339)+",credit,VIETQR,x"), []string{"line 6", "booked_at", "outside the statement period"}},
		{"booked before the period", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(2, "FT-X,1000,VND,"+f.start.Add(-time.Second).Format(time.RFC3339)+",credit,VIETQR,x"), []string{"line 2", "booked_at", "outside the statement period"}},
		{"another channel", pb.StatementFormat_STATEMENT_FORMAT_CSV,
			csvWith(7, "FT-X,1000,VND,"+when+",credit,MOMO,x"), []string{"line 7", "channel", `"MOMO"`, "VIETQR"}},
		{"larger than 10 MiB", pb.StatementFormat_STATEMENT_FORMAT_CSV, big.Bytes(), []string{"size", "larger than 10485760 bytes"}},
		{"camt fraction of a đồng", pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
			reconCamt("S-1", f.start, f.end, camtLines), []string{"entry 3", "Amt", "VND has no minor unit"}},
		{"camt booked outside FrToDt", pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
			reconCamt("S-2", f.start, f.end.Add(-time.Hour), f.lines), []string{fmt.Sprintf("entry %d", f.camtEntry("FT-B2")), "BookgDt/DtTm", "outside the statement period"}},
		{"camt not UTF-8", pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
			bytes.Replace(reconCamt("S-3", f.start, f.end, f.lines), []byte("Thanh toán"), []byte("Thanh to\xe1n"), 1), []string{"invalid UTF-8", "XML line 13"}},
		{"camt.054 as camt.053", pb.StatementFormat_STATEMENT_FORMAT_CAMT053,
			[]byte(strings.NewReplacer("camt.053", "camt.054", "BkToCstmrStmt", "BkToCstmrDbtCdtNtfctn", "Stmt>", "Ntfctn>").
				Replace(string(reconCamt("S-4", f.start, f.end, f.lines)))), []string{"document is camt.054, expected camt.053"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &pb.ImportStatementRequest{Format: tc.format, Content: tc.content, Channel: chVietQR}
			if tc.format == pb.StatementFormat_STATEMENT_FORMAT_CSV {
				// camt: the statement's own period.
				req.PeriodStart, req.PeriodEnd = timestamppb.New(f.start), timestamppb.New(f.end)
			}
			_, err := f.bank.ImportStatement(ctx, req)
			wantRefused(t, err, codes.InvalidArgument, "content", append([]string{"content: "}, tc.want...)...)
			if got := e.reconRows(t); got != rows {
				t.Errorf("a refused statement wrote rows: %s, before %s", got, rows)
			}
		})
	}
}

// A request that is wrong in itself is refused naming the field, before
// the statement is read, and writes nothing.
func TestImportStatementRefusesBadRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	start := settlement.DayOf(time.Now()).AddDays(-1).Start()
	end := start.Add(24 * time.Hour)
	content := reconCSV([]stmtLine{{ref: "FT-1", amount: "10000", at: start.Add(time.Hour)}})
	camt := reconCamt("S-1", start, end, []stmtLine{{ref: "FT-1", amount: "10000", at: start.Add(time.Hour)}})
	valid := func() *pb.ImportStatementRequest {
		return &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: content, Channel: chVietQR,
			Market: testMarket, PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(end)}
	}
	rows := e.reconRows(t)
	for _, tc := range []struct {
		name  string
		edit  func(*pb.ImportStatementRequest)
		code  codes.Code
		field string
	}{
		{"no format", func(r *pb.ImportStatementRequest) { r.Format = pb.StatementFormat_STATEMENT_FORMAT_UNSPECIFIED }, codes.InvalidArgument, "format"},
		{"unknown format", func(r *pb.ImportStatementRequest) { r.Format = 99 }, codes.InvalidArgument, "format"},
		{"no channel", func(r *pb.ImportStatementRequest) { r.Channel = pb.Channel_CHANNEL_UNSPECIFIED }, codes.InvalidArgument, "channel"},
		{"no content", func(r *pb.ImportStatementRequest) { r.Content = nil }, codes.InvalidArgument, "content"},
		{"unknown market", func(r *pb.ImportStatementRequest) { r.Market = "TN-NOWHERE" }, codes.NotFound, "market"},
		{"malformed market", func(r *pb.ImportStatementRequest) { r.Market = "tn test" }, codes.InvalidArgument, "market"},
		{"end before start", func(r *pb.ImportStatementRequest) { r.PeriodEnd = timestamppb.New(start.Add(-time.Hour)) }, codes.InvalidArgument, "period_end"},
		{"end at start", func(r *pb.ImportStatementRequest) { r.PeriodEnd = r.PeriodStart }, codes.InvalidArgument, "period_end"},
		{"period over a year", func(r *pb.ImportStatementRequest) { r.PeriodStart = timestamppb.New(end.AddDate(-2, 0, 0)) }, codes.InvalidArgument, "period_end"},
		{"invalid timestamp", func(r *pb.ImportStatementRequest) { r.PeriodStart = &timestamppb.Timestamp{Nanos: -1} }, codes.InvalidArgument, "period_start"},
		{"CSV without a period", func(r *pb.ImportStatementRequest) { r.PeriodStart, r.PeriodEnd = nil, nil }, codes.InvalidArgument, "period_start"},
		{"CSV without an end", func(r *pb.ImportStatementRequest) { r.PeriodEnd = nil }, codes.InvalidArgument, "period_end"},
		{"camt with a start only", func(r *pb.ImportStatementRequest) {
			r.Format, r.Content, r.PeriodEnd = pb.StatementFormat_STATEMENT_FORMAT_CAMT053, camt, nil
		}, codes.InvalidArgument, "period_end"},
		{"camt without FrToDt or a period", func(r *pb.ImportStatementRequest) {
			r.Format, r.PeriodStart, r.PeriodEnd = pb.StatementFormat_STATEMENT_FORMAT_CAMT053, nil, nil
			from, to := bytes.Index(camt, []byte("<FrToDt>")), bytes.Index(camt, []byte("</FrToDt>"))+len("</FrToDt>")
			r.Content = slices.Concat(camt[:from], camt[to:])
		}, codes.InvalidArgument, "period_start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.edit(r)
			_, err := e.settle.ImportStatement(ctx, r)
			wantRefused(t, err, tc.code, tc.field, tc.field)
			if got := e.reconRows(t); got != rows {
				t.Errorf("a refused import wrote rows: %s, before %s", got, rows)
			}
		})
	}
	if _, err := e.settle.ImportStatement(ctx, valid()); err != nil {
		t.Errorf("the valid request: %v", err)
	}

	// Reading: a malformed id, an unknown one, a page token not ours.
	_, err := e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: "report-1"})
	wantRefused(t, err, codes.InvalidArgument, "id", "id")
	_, err = e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: "01890a5d-ac96-774b-bcce-b302099a8057"})
	wantRefused(t, err, codes.NotFound, "id", "id", "no reconciliation report")
	_, err = e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: "01890a5d-ac96-774b-bcce-b302099a8057", PageToken: "x"})
	wantRefused(t, err, codes.InvalidArgument, "page_token", "page_token")
	_, err = e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{PageToken: "x"})
	wantRefused(t, err, codes.InvalidArgument, "page_token", "page_token")
	_, err = e.settle.ListReconciliationReports(ctx, &pb.ListReconciliationReportsRequest{PageSize: -1})
	wantRefused(t, err, codes.InvalidArgument, "page_size", "page_size")
}

// A period given in nanoseconds, by a client's clock or a camt FrDtTm, is
// kept as PostgreSQL keeps it, in microseconds: the same request sent
// again is its replay, not another period, and the report reads back as
// the import answered it.
func TestImportStatementReplaysAPeriodInNanoseconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	day := settlement.DayOf(time.Now()).AddDays(-3).Start()
	start, end := day.Add(-1500*time.Nanosecond), day.Add(24*time.Hour+2500*time.Nanosecond)
	lines := []stmtLine{{ref: "FT-NS-1", amount: "80000", at: day.Add(9 * time.Hour)}}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "nanos-1", Merchant: "TN-TEST-0002", Channel: chVietQR, Amount: "80000",
		Source: bankPayment, ProviderRef: "FT-NS-1", OccurTime: timestamppb.New(lines[0].at)})
	// The camt statement's FrDtTm, whole seconds as reconCamt writes it,
	// in nanoseconds instead.
	vn := time.FixedZone("ICT", 7*3600)
	camt := bytes.Replace(reconCamt("STMT-NS-1", day, end, lines),
		[]byte("<FrDtTm>"+day.In(vn).Format(time.RFC3339)), []byte("<FrDtTm>"+start.In(vn).Format(time.RFC3339Nano)), 1)
	for _, req := range []*pb.ImportStatementRequest{
		{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: reconCSV(lines), Channel: chVietQR, Market: testMarket,
			PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(end)},
		{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053, Content: camt, Channel: chVietQR, Market: testMarket},
	} {
		first, err := e.settle.ImportStatement(ctx, req)
		if err != nil {
			t.Fatalf("%v import: %v", req.Format, err)
		}
		if first.Report.PeriodStart.AsTime() != start.Truncate(time.Microsecond) {
			t.Errorf("%v import: period_start %v, want %v", req.Format, first.Report.PeriodStart.AsTime(), start.Truncate(time.Microsecond))
		}
		again, err := e.settle.ImportStatement(ctx, req)
		if err != nil {
			t.Fatalf("%v import sent again: %v", req.Format, err)
		}
		if !again.Replayed || !proto.Equal(again.Report, first.Report) {
			t.Errorf("%v import sent again: replayed %v, report %v; want the first %v", req.Format, again.Replayed, again.Report, first.Report)
		}
		kept, err := e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: first.Report.Id})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(kept.Report, first.Report) {
			t.Errorf("%v import answered %v; the kept report is %v", req.Format, first.Report, kept.Report)
		}
	}
	e.checkInvariants(t)
}

// A line booked in fractions of a microsecond (a camt DtTm of seven
// digits, as .NET writes it) is answered as the report keeps it, in
// microseconds: the import's breaks are the ones its replay and the kept
// report give, not the same lines booked a few nanoseconds later.
func TestImportStatementAnswersBookedTimesAsKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	day := settlement.DayOf(time.Now()).AddDays(-3).Start()
	lines := []stmtLine{{ref: "FT-NS-2", amount: "80000", at: day.Add(9 * time.Hour)}}
	vn := time.FixedZone("ICT", 7*3600)
	camt := bytes.Replace(reconCamt("STMT-NS-2", day, day.Add(24*time.Hour), lines),
		[]byte("<DtTm>"+lines[0].at.In(vn).Format(time.RFC3339)), []byte("<DtTm>"+lines[0].at.Add(1234567*time.Nanosecond).In(vn).Format(time.RFC3339Nano)), 1)
	req := &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053, Content: camt, Channel: chVietQR, Market: testMarket}
	first, err := e.settle.ImportStatement(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Breaks) != 1 || first.Breaks[0].BookedTime.AsTime() != lines[0].at.Add(1234*time.Microsecond) {
		t.Errorf("import answered breaks %v; want the line booked at %v", first.Breaks, lines[0].at.Add(1234*time.Microsecond))
	}
	again, err := e.settle.ImportStatement(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, "replay's breaks", again.Breaks, first.Breaks)
	_, kept := allItems(t, e.settle, first.Report.Id, false, 10)
	sameItems(t, "kept breaks", kept, first.Breaks)
	e.checkInvariants(t)
}

// A line whose reference the ledger holds for a payment this statement
// does not match - one the stall recorded that was then rejected or is
// still pending, so the merchant was never credited, or one of another
// market - is that transfer, missing in the ledger, and never takes on
// amount and time another payment recorded without a reference: pairing
// them hid both breaks, the money the provider holds for the rejected
// payment and the payment the provider never booked.
func TestImportStatementLineOfAPaymentNotMatchedTakesNoOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.reconFixture(t) // TN-OTHER and its merchant; its payments are days after this statement's
	day := settlement.DayOf(time.Now()).AddDays(-10).Start()
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	n := 0
	pay := func(merchant, amount string, src pb.PaymentSource, ref string, when time.Time) *pb.Payment {
		n++
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprintf("elsewhere-%d", n), Merchant: merchant, Channel: chVietQR,
			Amount: amount, Source: src, ProviderRef: ref, OccurTime: timestamppb.New(when)}).Payment
	}
	confirmed := func(amount string, when time.Time) *pb.Payment {
		p := pay("TN-TEST-0002", amount, stallPayment, "", when)
		if _, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "confirm-" + p.Id, PaymentId: p.Id}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rejected := pay("TN-TEST-0001", "50000", stallPayment, "FT-REJ", at(10, 0))
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "reject", PaymentId: rejected.Id}); err != nil {
		t.Fatal(err)
	}
	pay("TN-TEST-0001", "60000", stallPayment, "FT-PEND", at(11, 0))
	pay("TN-OTHER-0001", "70000", bankPayment, "FT-OTH", at(12, 0))
	unreferenced := []*pb.Payment{confirmed("50000", at(10, 5)), confirmed("60000", at(11, 5)), confirmed("70000", at(12, 5))}
	slices.SortFunc(unreferenced, func(a, b *pb.Payment) int { return strings.Compare(a.Id, b.Id) })
	lines := []stmtLine{
		{ref: "FT-REJ", amount: "50000", at: at(10, 0)},
		{ref: "FT-PEND", amount: "60000", at: at(11, 0)},
		{ref: "FT-OTH", amount: "70000", at: at(12, 0)},
	}

	for _, req := range []*pb.ImportStatementRequest{
		{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Content: reconCSV(lines), Channel: chVietQR, Market: testMarket,
			PeriodStart: timestamppb.New(day), PeriodEnd: timestamppb.New(day.Add(24 * time.Hour))},
		{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053, Content: reconCamt("STMT-ELSEWHERE", day, day.Add(24*time.Hour), lines),
			Channel: chVietQR, Market: testMarket},
	} {
		resp, err := e.settle.ImportStatement(ctx, req)
		if err != nil {
			t.Fatalf("%v import: %v", req.Format, err)
		}
		first := int32(2) // the CSV's header is line 1
		if req.Format != pb.StatementFormat_STATEMENT_FORMAT_CSV {
			first = 1
		}
		var want []*pb.ReconciliationItem
		for i, l := range lines {
			want = append(want, &pb.ReconciliationItem{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER,
				LineNumber: first + int32(i), StatementRef: l.ref, StatementAmount: l.amount, BookedTime: timestamppb.New(l.at)})
		}
		for _, p := range unreferenced {
			want = append(want, &pb.ReconciliationItem{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_STATEMENT,
				PaymentId: p.Id, LedgerAmount: p.Amount})
		}
		sameItems(t, req.Format.String()+" breaks", resp.Breaks, want)
		if r := resp.Report; r.MatchedCount != 0 || r.MissingInLedgerCount != 3 || r.MissingInStatementCount != 3 || r.PaymentCount != 3 {
			t.Errorf("%v report: %v", req.Format, r)
		}
	}
}

// A camt entry booked by date alone (BookgDt/Dt, as many banks write
// them) was booked at some time of that day, not at midnight: it is
// matched on amount with a payment of that day, as a clerk would, and not
// reported as a line missing in the ledger and a payment missing in the
// statement because the payment came hours after 00:00.
func TestImportStatementMatchesAnEntryBookedByDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	day := settlement.DayOf(time.Now()).AddDays(-3).Start()
	afternoon := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "by-date-1", Merchant: "TN-TEST-0001", Channel: chVietQR, Amount: "42000",
		Source: bankPayment, ProviderRef: "FT-BY-DATE-1", OccurTime: timestamppb.New(day.Add(15 * time.Hour))}).Payment
	lines := []stmtLine{{ref: "EXMP-NTRY-0005", amount: "42000", at: day}}
	vn := time.FixedZone("ICT", 7*3600)
	camt := bytes.Replace(reconCamt("STMT-BY-DATE", day, day.Add(24*time.Hour), lines),
		[]byte("<DtTm>"+day.In(vn).Format(time.RFC3339)+"</DtTm>"), []byte("<Dt>"+day.In(vn).Format(time.DateOnly)+"</Dt>"), 1)
	if !bytes.Contains(camt, []byte("<BookgDt><Dt>")) {
		t.Fatalf("no entry booked by date in\n%s", camt)
	}
	resp, err := e.settle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CAMT053, Content: camt,
		Channel: chVietQR, Market: testMarket})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Breaks) != 0 || resp.Report.MatchedCount != 1 {
		t.Fatalf("report %v, breaks %v; want the entry matched", resp.Report, resp.Breaks)
	}
	_, items := allItems(t, e.settle, resp.Report.Id, true, 10)
	want := []*pb.ReconciliationItem{{Kind: pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED, LineNumber: 1, StatementRef: "EXMP-NTRY-0005",
		StatementAmount: "42000", BookedTime: timestamppb.New(day), PaymentId: afternoon.Id, LedgerAmount: "42000"}}
	sameItems(t, "items", items, want)
}
