package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// principals of the access tests: a connection per name.
type principals struct {
	conns map[string]*grpc.ClientConn
}

func (e *env) issue(t *testing.T, r access.IssueRequest) (access.Credential, string) {
	t.Helper()
	c, secret, err := e.creds.Issue(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

func (e *env) principals(t *testing.T) principals {
	t.Helper()
	ctx := context.Background()
	ps := principals{conns: map[string]*grpc.ClientConn{}}
	add := func(name string, r access.IssueRequest) string {
		_, secret := e.issue(t, r)
		ps.conns[name] = e.dial(t, secret)
		return secret
	}
	add("admin", access.IssueRequest{Name: "admin", Role: access.RoleAdmin})
	add("auditor", access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	add("auditorOther", access.IssueRequest{Name: "auditor of another market", Role: access.RoleAuditor, Markets: []string{"TN-OTHER"}})
	add("merchantA", access.IssueRequest{Name: "stall A", Role: access.RoleMerchant, Merchant: "TN-TEST-0001"})
	add("merchantB", access.IssueRequest{Name: "stall B", Role: access.RoleMerchant, Merchant: "TN-TEST-0002"})
	add("bankNapas", access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas", Bank: "vcb"})
	add("bankMomo", access.IssueRequest{Name: "MoMo", Role: access.RoleBank, Provider: "momo"})
	add("bankOtherMarket", access.IssueRequest{Name: "VietQR bank elsewhere", Role: access.RoleBank, Provider: "napas", Markets: []string{"TN-OTHER"}})
	ps.conns["none"] = e.dial(t, "")
	ps.conns["garbage"] = e.dial(t, "chl_0123456789abcdef0123456789abcdef_bm90LWEtcmVhbC1zZWNyZXQtYXQtYWxsLW5vLXdheQ")
	_, expired := e.issue(t, access.IssueRequest{Name: "expired", Role: access.RoleAdmin, TTL: time.Hour})
	ps.conns["expired"] = e.dial(t, expired)
	revoked, revokedSecret := e.issue(t, access.IssueRequest{Name: "revoked", Role: access.RoleAdmin})
	ps.conns["revoked"] = e.dial(t, revokedSecret)
	if _, err := e.creds.Revoke(ctx, revoked.CredentialID); err != nil {
		t.Fatal(err)
	}
	return ps
}

// accessFixture is the data the matrix calls name: market TN-TEST with
// merchants A and B, a pending and a confirmed VietQR payment of A, a
// pending ledger entry, and a throwaway merchant and credential for the
// admin-only writes.
type accessFixture struct {
	pendingA, confirmedA *pb.Payment
	entry                *pb.Entry
	hold                 *pb.Entry
	spareCredential      string
	// A payout batch of TN-TEST made by a NAPAS bank at VCB, and a
	// reconciliation report of its statement.
	batch  *pb.PayoutBatch
	report *pb.ReconciliationReport
	// A statement of TN-TEST's VietQR payments: the fixture's one line.
	statement func(ref string) *pb.ImportStatementRequest
}

func (e *env) accessFixture(t *testing.T) accessFixture {
	t.Helper()
	ctx := context.Background()
	e.setUpMarket(t)
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-OTHER", Name: "Chợ Khác", Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
		t.Fatal(err)
	}
	var f accessFixture
	f.pendingA = e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "40000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	f.confirmedA = e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "fx-2", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "90000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-FX-2"}).Payment
	for _, code := range []string{"hold:TN-TEST:a", "hold:TN-TEST:b"} {
		if _, err := e.client.CreateAccount(ctx, &pb.CreateAccountRequest{Code: code, Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: testMarket}); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "fx-hold", Market: testMarket, Kind: "hold", Currency: "VND", Pending: true,
		Postings: []*pb.PostingInput{posting("hold:TN-TEST:a", debit, "100"), posting("hold:TN-TEST:b", credit, "100")}})
	if err != nil {
		t.Fatal(err)
	}
	f.hold = hold.Entry
	got, err := e.client.GetEntry(ctx, &pb.GetEntryRequest{Id: f.confirmedA.EntryIds[0]})
	if err != nil {
		t.Fatal(err)
	}
	f.entry = got.Entry
	spare, _ := e.issue(t, access.IssueRequest{Name: "spare", Role: access.RoleAuditor})
	f.spareCredential = spare.CredentialID
	_, napas := e.issue(t, access.IssueRequest{Name: "VietQR bank, payouts", Role: access.RoleBank, Provider: "napas", Bank: "vcb"})
	napasSettle := pb.NewSettlementServiceClient(e.dial(t, napas))
	batch, err := napasSettle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{
		IdempotencyKey: "fx-batch", Bank: "vcb", Market: testMarket, CutOff: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.batch = batch.Batch
	start := time.Now().Add(-time.Hour).Truncate(time.Hour)
	f.statement = func(ref string) *pb.ImportStatementRequest {
		return &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket,
			PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(start.Add(3 * time.Hour)),
			Content: reconCSV([]stmtLine{{ref: ref, amount: "90000", at: start.Add(30 * time.Minute)}})}
	}
	report, err := napasSettle.ImportStatement(ctx, f.statement("FT-FX-2"))
	if err != nil {
		t.Fatal(err)
	}
	f.report = report.Report
	return f
}

// call is one RPC with a request, made on a connection.
type call struct {
	method string
	req    func(who string) proto.Message
	// allowed lists who may make the call (with this request): everyone
	// else must get PermissionDenied, or Unauthenticated without a valid
	// credential.
	allowed []string
}

var authenticated = []string{"admin", "auditor", "auditorOther", "merchantA", "merchantB", "bankNapas", "bankMomo", "bankOtherMarket"}

func same(m proto.Message) func(string) proto.Message { return func(string) proto.Message { return m } }

func (f accessFixture) calls() []call {
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	payableA := "merchant:" + a + ":payable"
	record := func(who string) proto.Message {
		r := &pb.RecordPaymentRequest{IdempotencyKey: "m-" + who, Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "15000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
		if slices.Contains([]string{"bankNapas", "bankMomo", "bankOtherMarket"}, who) {
			r.Source, r.ProviderRef = pb.PaymentSource_PAYMENT_SOURCE_BANK, "FT-M-"+who
		}
		return r
	}
	return []call{
		{pb.LedgerService_CreateAccount_FullMethodName, func(who string) proto.Message {
			return &pb.CreateAccountRequest{Code: "extra:" + who, Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: testMarket}
		}, []string{"admin"}},
		{pb.LedgerService_PostEntry_FullMethodName, func(who string) proto.Message {
			return &pb.PostEntryRequest{IdempotencyKey: "m-" + who, Market: testMarket, Kind: "adjustment", Currency: "VND",
				Postings: []*pb.PostingInput{posting("hold:TN-TEST:a", debit, "1"), posting("hold:TN-TEST:b", credit, "1")}}
		}, []string{"admin"}},
		{pb.LedgerService_PostPendingEntry_FullMethodName, same(&pb.PostPendingEntryRequest{IdempotencyKey: "m-post", PendingEntryId: f.hold.Id, Kind: "release"}), []string{"admin"}},
		{pb.LedgerService_VoidPendingEntry_FullMethodName, same(&pb.VoidPendingEntryRequest{IdempotencyKey: "m-void", PendingEntryId: f.hold.Id, Kind: "release"}), []string{"admin"}},
		{pb.LedgerService_GetAccount_FullMethodName, same(&pb.GetAccountRequest{Code: payableA}), []string{"admin", "auditor", "merchantA"}},
		{pb.LedgerService_GetBalance_FullMethodName, same(&pb.GetBalanceRequest{AccountCode: payableA}), []string{"admin", "auditor", "merchantA"}},
		{pb.LedgerService_ListAccounts_FullMethodName, same(&pb.ListAccountsRequest{Market: testMarket}), []string{"admin", "auditor"}},
		{pb.LedgerService_GetEntry_FullMethodName, same(&pb.GetEntryRequest{Id: f.entry.Id}), []string{"admin", "auditor"}},
		{pb.LedgerService_ListEntries_FullMethodName, same(&pb.ListEntriesRequest{Market: testMarket}), []string{"admin", "auditor"}},
		{pb.LedgerService_StreamEntries_FullMethodName, same(&pb.StreamEntriesRequest{Market: testMarket}), []string{"admin", "auditor"}},
		{pb.LedgerService_GetTrialBalance_FullMethodName, same(&pb.GetTrialBalanceRequest{Market: testMarket}), []string{"admin", "auditor"}},
		{pb.LedgerService_VerifyJournal_FullMethodName, same(&pb.VerifyJournalRequest{Market: testMarket}), []string{"admin", "auditor"}},

		{pb.MerchantService_CreateMarket_FullMethodName, func(who string) proto.Message {
			return &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-NEW-" + fmt.Sprint(len(who)), Name: "Chợ Mới", Province: "Thái Nguyên", CollectionAccount: testCollection}}
		}, []string{"admin"}},
		{pb.MerchantService_UpdateMarket_FullMethodName, same(&pb.UpdateMarketRequest{Market: &pb.Market{Code: testMarket, Name: "Chợ Thử Mới"}, UpdateMask: mask("name")}), []string{"admin"}},
		{pb.MerchantService_CreateMerchant_FullMethodName, same(&pb.CreateMerchantRequest{Merchant: &pb.Merchant{Code: "TN-TEST-0009", Market: testMarket, Stalls: []string{"Z-009"},
			DisplayName: "Hàng mới", OwnerName: "Phạm Văn Mới", Phone: "0911111111", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"}}}), []string{"admin"}},
		{pb.MerchantService_UpdateMerchant_FullMethodName, same(&pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: "TN-TEST-0009", DisplayName: "Hàng mới 2"}, UpdateMask: mask("display_name")}), []string{"admin"}},
		{pb.MerchantService_SuspendMerchant_FullMethodName, same(&pb.SuspendMerchantRequest{Code: "TN-TEST-0009"}), []string{"admin"}},
		{pb.MerchantService_ReinstateMerchant_FullMethodName, same(&pb.ReinstateMerchantRequest{Code: "TN-TEST-0009"}), []string{"admin"}},
		{pb.MerchantService_CloseMerchant_FullMethodName, same(&pb.CloseMerchantRequest{Code: "TN-TEST-0009"}), []string{"admin"}},
		{pb.MerchantService_GetMarket_FullMethodName, same(&pb.GetMarketRequest{Code: testMarket}), authenticated},
		{pb.MerchantService_ListMarkets_FullMethodName, same(&pb.ListMarketsRequest{}), authenticated},
		{pb.MerchantService_GetMerchant_FullMethodName, same(&pb.GetMerchantRequest{Code: a}), []string{"admin", "auditor", "merchantA", "bankNapas", "bankMomo"}},
		{pb.MerchantService_ListMerchants_FullMethodName, same(&pb.ListMerchantsRequest{Market: testMarket}), []string{"admin", "auditor", "bankNapas", "bankMomo"}},
		{pb.MerchantService_GetMerchantQr_FullMethodName, same(&pb.GetMerchantQrRequest{Code: a}), []string{"admin", "merchantA"}},

		{pb.PaymentService_CreatePaymentRequest_FullMethodName, func(who string) proto.Message {
			return &pb.CreatePaymentRequestRequest{IdempotencyKey: "m-" + who, Merchant: a, Amount: "25000"}
		}, []string{"admin", "merchantA"}},
		{pb.PaymentService_RecordPayment_FullMethodName, record, []string{"admin", "merchantA", "bankNapas"}},
		{pb.PaymentService_RecordPayments_FullMethodName, func(who string) proto.Message {
			r := record(who).(*pb.RecordPaymentRequest)
			r.IdempotencyKey, r.ProviderRef = "bulk-"+who, r.ProviderRef+"-bulk"
			if r.Source == pb.PaymentSource_PAYMENT_SOURCE_STALL {
				r.ProviderRef = ""
			}
			return &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{r}}
		}, []string{"admin", "merchantA", "bankNapas"}},
		{pb.PaymentService_ConfirmPayment_FullMethodName, same(&pb.ConfirmPaymentRequest{IdempotencyKey: "m-confirm", PaymentId: f.pendingA.Id}), []string{"admin", "bankNapas"}},
		{pb.PaymentService_RejectPayment_FullMethodName, same(&pb.RejectPaymentRequest{IdempotencyKey: "m-reject", PaymentId: f.pendingA.Id}), []string{"admin", "bankNapas"}},
		{pb.PaymentService_RefundPayment_FullMethodName, func(who string) proto.Message {
			return &pb.RefundPaymentRequest{IdempotencyKey: "m-" + who, PaymentId: f.confirmedA.Id, Amount: "1000"}
		}, []string{"admin", "merchantA", "bankNapas"}},
		{pb.PaymentService_GetPayment_FullMethodName, same(&pb.GetPaymentRequest{Id: f.confirmedA.Id}), []string{"admin", "auditor", "merchantA", "bankNapas"}},
		{pb.PaymentService_ListPayments_FullMethodName, same(&pb.ListPaymentsRequest{Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR}), []string{"admin", "auditor", "merchantA", "bankNapas"}},

		{pb.SettlementService_GetMerchantSettlement_FullMethodName, same(&pb.GetMerchantSettlementRequest{Merchant: a, StartDay: today()}),
			[]string{"admin", "auditor", "merchantA", "bankNapas", "bankMomo"}},
		{pb.SettlementService_GetMarketSettlement_FullMethodName, same(&pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today()}),
			[]string{"admin", "auditor", "bankNapas", "bankMomo"}},
		{pb.SettlementService_RecordProviderSettlement_FullMethodName, func(who string) proto.Message {
			return &pb.RecordProviderSettlementRequest{IdempotencyKey: "m-" + who, Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "1000", Bank: "vcb", BankRef: "VCB-" + who}
		}, []string{"admin", "bankNapas"}},
		{pb.SettlementService_ReclassifySuspense_FullMethodName, func(who string) proto.Message {
			return &pb.ReclassifySuspenseRequest{IdempotencyKey: "m-" + who, Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "1000", Reason: "late notification FT-M"}
		}, []string{"admin", "bankNapas"}},
		// Not bankMomo: bound to no settlement bank, it pays out at none.
		{pb.SettlementService_CreatePayoutBatch_FullMethodName, func(who string) proto.Message {
			return &pb.CreatePayoutBatchRequest{IdempotencyKey: "m-" + who, Bank: "vcb", Market: testMarket, CutOff: timestamppb.Now()}
		}, []string{"admin", "bankNapas"}},
		{pb.SettlementService_GetPayoutBatch_FullMethodName, same(&pb.GetPayoutBatchRequest{Id: f.batch.Id}), []string{"admin", "auditor", "bankNapas"}},
		{pb.SettlementService_CompletePayoutBatch_FullMethodName, same(&pb.CompletePayoutBatchRequest{BatchId: f.batch.Id,
			Results: []*pb.PayoutResult{{Merchant: a, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID, BankRef: "VCB-M"}}}), []string{"admin", "bankNapas"}},
		{pb.SettlementService_ImportStatement_FullMethodName, func(who string) proto.Message { return f.statement("FT-M-" + who) }, []string{"admin", "bankNapas"}},
		{pb.SettlementService_GetReconciliationReport_FullMethodName, same(&pb.GetReconciliationReportRequest{Id: f.report.Id}), []string{"admin", "auditor", "bankNapas"}},
		{pb.SettlementService_ListReconciliationReports_FullMethodName, same(&pb.ListReconciliationReportsRequest{Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR}),
			[]string{"admin", "auditor", "bankNapas"}},
		{pb.AdminService_IssueCredential_FullMethodName, same(&pb.IssueCredentialRequest{Credential: &pb.Credential{Name: "new", Role: pb.Role_ROLE_AUDITOR}}), []string{"admin"}},
		{pb.AdminService_ListCredentials_FullMethodName, same(&pb.ListCredentialsRequest{}), []string{"admin"}},
		{pb.AdminService_RevokeCredential_FullMethodName, same(&pb.RevokeCredentialRequest{Id: f.spareCredential}), []string{"admin"}},
		// Not auditorOther: an audit event names no market, so the trail
		// cannot be cut to a binding and is read by unbound readers only.
		{pb.AdminService_ListAuditEvents_FullMethodName, same(&pb.ListAuditEventsRequest{}), []string{"admin", "auditor"}},
	}
}

// invoke makes one call, unary or server-streaming, and returns its status.
func invoke(ctx context.Context, conn *grpc.ClientConn, method string, req proto.Message) error {
	if method == pb.LedgerService_StreamEntries_FullMethodName {
		stream, err := pb.NewLedgerServiceClient(conn).StreamEntries(ctx, req.(*pb.StreamEntriesRequest))
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	reply := replyFor(method)
	return conn.Invoke(ctx, method, req, reply)
}

// replyFor makes an empty reply message of the method's response type.
func replyFor(method string) proto.Message {
	for _, sd := range serviceDescs {
		for _, m := range sd.desc.Methods {
			if "/"+sd.desc.ServiceName+"/"+m.MethodName == method {
				return sd.reply(m.MethodName)
			}
		}
	}
	panic("unknown method " + method)
}

// snapshot counts the rows that any write would change.
func (e *env) snapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := e.db.Pool.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM ledger_accounts), (SELECT count(*) FROM payments),
		(SELECT count(*) FROM payment_requests), (SELECT count(*) FROM markets), (SELECT count(*) FROM merchants),
		(SELECT count(*) FROM credentials), (SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL),
		(SELECT count(*) FROM payout_batches), (SELECT string_agg(status, ',' ORDER BY batch_id, merchant) FROM payout_lines),
		(SELECT count(*) FROM reconciliation_reports),
		(SELECT string_agg(code || status || display_name, ',' ORDER BY code) FROM merchants),
		(SELECT string_agg(name, ',' ORDER BY code) FROM markets))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every RPC, called by every kind of principal: exactly those allowed get
// past the access check, and every denied call writes nothing.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	f := e.accessFixture(t)
	ps := e.principals(t)
	e.advance(2 * time.Hour) // the "expired" credential's hour is over

	calls := f.calls()
	covered := map[string]bool{}
	for _, c := range calls {
		covered[c.method] = true
	}
	for _, sd := range serviceDescs {
		for _, m := range sd.desc.Methods {
			if name := "/" + sd.desc.ServiceName + "/" + m.MethodName; !covered[name] {
				t.Errorf("the matrix does not call %s", name)
			}
		}
	}

	who := make([]string, 0, len(ps.conns))
	for name := range ps.conns {
		who = append(who, name)
	}
	sort.Strings(who)
	for _, c := range calls {
		for _, name := range who {
			before := e.snapshot(t)
			err := invoke(ctx, ps.conns[name], c.method, c.req(name))
			code := status.Code(err)
			allowed := slices.Contains(c.allowed, name)
			switch {
			case allowed && (code == codes.PermissionDenied || code == codes.Unauthenticated):
				t.Errorf("%s by %s: %v, want it allowed", c.method, name, err)
			case !allowed && !slices.Contains(authenticated, name) && code != codes.Unauthenticated:
				t.Errorf("%s by %s: %v, want Unauthenticated", c.method, name, err)
			case !allowed && slices.Contains(authenticated, name) && code != codes.PermissionDenied:
				t.Errorf("%s by %s: %v, want PermissionDenied", c.method, name, err)
			}
			if !allowed {
				if after := e.snapshot(t); after != before {
					t.Errorf("%s by %s was denied but wrote: %s -> %s", c.method, name, before, after)
				}
			}
		}
	}

	// Denied calls and writes are in the audit trail.
	events, err := pb.NewAdminServiceClient(ps.conns["auditor"]).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{DeniedOnly: true, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.AuditEvents) < 100 {
		t.Errorf("the audit trail holds %d denied calls", len(events.AuditEvents))
	}
	for _, ev := range events.AuditEvents {
		if ev.Code != "PermissionDenied" && ev.Code != "Unauthenticated" {
			t.Errorf("denied-only listing returned %v", ev)
		}
	}
}

// Merchant A names merchant B's data by every id a request can carry; a
// bank names another provider's payments; both are refused exactly as for
// an id that does not exist, so nothing tells them what exists.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	payB := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "b-1", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "60000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-B-1"}).Payment
	momoA := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "a-momo", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO, Amount: "60000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	_, secretA := e.issue(t, access.IssueRequest{Name: "stall A", Role: access.RoleMerchant, Merchant: a})
	_, secretBank := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	stallA, bank := e.dial(t, secretA), e.dial(t, secretBank)
	payA, merchA, ledgerA := pb.NewPaymentServiceClient(stallA), pb.NewMerchantServiceClient(stallA), pb.NewLedgerServiceClient(stallA)
	payBank := pb.NewPaymentServiceClient(bank)
	const nowhere = "0190a3b4-0000-7000-8000-000000000000"

	before := e.snapshot(t)
	for name, call := range map[string]func() error{
		"get B's payment":       func() error { _, err := payA.GetPayment(ctx, &pb.GetPaymentRequest{Id: payB.Id}); return err },
		"get a missing payment": func() error { _, err := payA.GetPayment(ctx, &pb.GetPaymentRequest{Id: nowhere}); return err },
		"refund B's payment": func() error {
			_, err := payA.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "x", PaymentId: payB.Id})
			return err
		},
		"refund a missing payment": func() error {
			_, err := payA.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: "x", PaymentId: nowhere})
			return err
		},
		"list B's payments": func() error { _, err := payA.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: b}); return err },
		"list the market": func() error {
			_, err := payA.ListPayments(ctx, &pb.ListPaymentsRequest{Market: testMarket})
			return err
		},
		"record for B": func() error {
			_, err := payA.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "x", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
			return err
		},
		"record as the bank": func() error {
			_, err := payA.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "x", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-FAKE"})
			return err
		},
		"confirm its own payment": func() error {
			_, err := payA.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "x", PaymentId: momoA.Id})
			return err
		},
		"request for B": func() error {
			_, err := payA.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "x", Merchant: b, Amount: "5000"})
			return err
		},
		"read B": func() error { _, err := merchA.GetMerchant(ctx, &pb.GetMerchantRequest{Code: b}); return err },
		"B's QR": func() error { _, err := merchA.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: b}); return err },
		"list merchants": func() error {
			_, err := merchA.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: testMarket})
			return err
		},
		"B's balance": func() error {
			_, err := ledgerA.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + b + ":payable"})
			return err
		},
		"the market's fees": func() error {
			_, err := ledgerA.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "market:" + testMarket + ":fees"})
			return err
		},
		"the journal": func() error {
			_, err := ledgerA.ListEntries(ctx, &pb.ListEntriesRequest{Market: testMarket})
			return err
		},
		"bank: MoMo payment": func() error { _, err := payBank.GetPayment(ctx, &pb.GetPaymentRequest{Id: momoA.Id}); return err },
		"bank: confirm MoMo": func() error {
			_, err := payBank.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "x", PaymentId: momoA.Id})
			return err
		},
		"bank: reject MoMo": func() error {
			_, err := payBank.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "x", PaymentId: momoA.Id})
			return err
		},
		"bank: missing payment": func() error {
			_, err := payBank.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "x", PaymentId: nowhere})
			return err
		},
		"bank: list MoMo": func() error {
			_, err := payBank.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: a, Channel: pb.Channel_CHANNEL_MOMO})
			return err
		},
		"bank: list all channels": func() error { _, err := payBank.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: a}); return err },
		"bank: record MoMo": func() error {
			_, err := payBank.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "x", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "MM-1"})
			return err
		},
	} {
		st := status.Convert(call())
		if st.Code() != codes.PermissionDenied || st.Message() != "this credential may not do that" {
			t.Errorf("%s: %v %q, want PermissionDenied naming nothing", name, st.Code(), st.Message())
		}
	}
	if after := e.snapshot(t); after != before {
		t.Fatalf("denied calls wrote: %s -> %s", before, after)
	}

	// The same idempotency key used by two merchants is two keys: B's use
	// neither replays nor conflicts with A's.
	if _, err := payA.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "shared", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}); err != nil {
		t.Fatal(err)
	}
	_, secretB := e.issue(t, access.IssueRequest{Name: "stall B", Role: access.RoleMerchant, Merchant: b})
	resp, err := pb.NewPaymentServiceClient(e.dial(t, secretB)).RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "shared", Merchant: b, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "7000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
	if err != nil || resp.Replayed || resp.Payment.Merchant != b {
		t.Fatalf("B reusing A's key: %v, %v", resp, err)
	}
}

// Two credentials of one provider bound to different markets are two
// clients: the same idempotency key sent by each records each one's own
// payment and payout batch, and neither learns of the other's. A new
// credential of the same provider and markets carries on the keys and
// batches of the one it replaces; a credential of other markets, or of
// none, does not.
func TestBankKeysAndBatchesAreScopedByMarkets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-OTHER", Name: "Chợ Khác", Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		Code: "TN-OTHER-0001", Market: "TN-OTHER", Stalls: []string{"C-001"}, DisplayName: "Hàng cá", OwnerName: "Lê Văn Cá",
		Phone: "0911111111", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"},
	}}); err != nil {
		t.Fatal(err)
	}
	bank := func(name string, markets ...string) *grpc.ClientConn {
		_, secret := e.issue(t, access.IssueRequest{Name: name, Role: access.RoleBank, Provider: "napas", Bank: "vcb", Markets: markets})
		return e.dial(t, secret)
	}
	here, there := bank("VietQR bank of TN-TEST", testMarket), bank("VietQR bank of TN-OTHER", "TN-OTHER")
	hereAgain := bank("VietQR bank of TN-TEST, rotated", testMarket)
	both, unbound := bank("VietQR bank of both", "TN-OTHER", testMarket), bank("VietQR bank")

	notification := func(merchant, ref string) *pb.RecordPaymentRequest {
		return &pb.RecordPaymentRequest{IdempotencyKey: "notif-1", Merchant: merchant, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "150000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: ref}
	}
	mine, err := pb.NewPaymentServiceClient(here).RecordPayment(ctx, notification("TN-TEST-0001", "FT-HERE-1"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := pb.NewPaymentServiceClient(there).RecordPayment(ctx, notification("TN-OTHER-0001", "FT-THERE-1"))
	if err != nil {
		t.Fatalf("the bank of TN-OTHER sending the key the bank of TN-TEST sent: %v", err)
	}
	if theirs.Replayed || theirs.Payment.Id == mine.Payment.Id || theirs.Payment.Merchant != "TN-OTHER-0001" {
		t.Fatalf("the bank of TN-OTHER got %v (replayed %v), want its own payment", theirs.Payment, theirs.Replayed)
	}
	again, err := pb.NewPaymentServiceClient(hereAgain).RecordPayment(ctx, notification("TN-TEST-0001", "FT-HERE-1"))
	if err != nil || !again.Replayed || again.Payment.Id != mine.Payment.Id {
		t.Fatalf("the rotated bank of TN-TEST sending its predecessor's notification again: %v, %v", again, err)
	}

	batchOf := func(conn *grpc.ClientConn) *pb.CreatePayoutBatchResponse {
		resp, err := pb.NewSettlementServiceClient(conn).CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{
			IdempotencyKey: "payout-1", Bank: "vcb", CutOff: timestamppb.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	myBatch, theirBatch := batchOf(here).Batch, batchOf(there)
	if theirBatch.Replayed || theirBatch.Batch.Id == myBatch.Id {
		t.Fatalf("the bank of TN-OTHER sending the key of the batch of the bank of TN-TEST got that batch, %s", myBatch.Id)
	}
	for name, c := range map[string]struct {
		conn *grpc.ClientConn
		sees bool
	}{
		"the bank of TN-TEST": {here, true}, "its rotation": {hereAgain, true},
		"the bank of both markets": {both, false}, "the unbound bank": {unbound, false}, "the bank of TN-OTHER": {there, false},
	} {
		_, err := pb.NewSettlementServiceClient(c.conn).GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: myBatch.Id})
		if got := status.Code(err); c.sees && got != codes.OK || !c.sees && got != codes.PermissionDenied {
			t.Errorf("%s reading the batch of the bank of TN-TEST: %v", name, err)
		}
	}
}

// Revoking a credential takes effect on the next call.
func TestRevocationIsImmediate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	c, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	client := pb.NewMerchantServiceClient(e.dial(t, secret))
	if _, err := client.ListMarkets(ctx, &pb.ListMarketsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewAdminServiceClient(e.conn).RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: c.CredentialID}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ListMarkets(ctx, &pb.ListMarketsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after revocation: %v", err)
	}
}

// The audit trail holds every market's calls: what they named and their
// messages, a balance among them. An auditor bound to a market, which may
// not read another market, may not list the trail either, even its own
// events; an unbound auditor lists it all.
func TestBoundAuditorCannotListAuditTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	e.postTransfers(t, "M2", 1)
	// An overdraft of M2's payable is refused with its available balance,
	// and the refusal is kept in the trail.
	_, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{
		IdempotencyKey: "overdraft-m2", Market: "M2", Kind: "adjust", Currency: "VND",
		Postings: []*pb.PostingInput{posting("payable:M2", debit, "999999"), posting("cash:M2", credit, "999999")},
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("overdraft: %v", err)
	}
	_, unboundSecret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	bound, boundSecret := e.issue(t, access.IssueRequest{Name: "auditor of M1", Role: access.RoleAuditor, Markets: []string{"M1"}})
	if _, err := pb.NewLedgerServiceClient(e.dial(t, boundSecret)).GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M2"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the auditor of M1 reading M2's trial balance: %v", err)
	}

	all, err := pb.NewAdminServiceClient(e.dial(t, unboundSecret)).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all.AuditEvents, func(ev *pb.AuditEvent) bool { return strings.Contains(ev.Message, "payable:M2") }) {
		t.Fatalf("the trail does not hold the refused overdraft of M2: %v", all.AuditEvents)
	}
	boundAdmin := pb.NewAdminServiceClient(e.dial(t, boundSecret))
	for name, req := range map[string]*pb.ListAuditEventsRequest{
		"the trail":         {PageSize: 1000},
		"its own events":    {CredentialId: bound.CredentialID},
		"denied calls only": {DeniedOnly: true},
	} {
		resp, err := boundAdmin.ListAuditEvents(ctx, req)
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "this credential may not do that" {
			t.Errorf("the auditor of M1 listing %s: %d events, %v; want PermissionDenied naming nothing", name, len(resp.GetAuditEvents()), err)
		}
	}
}

// A page token of ListCredentials or ListAuditEvents continues the query
// that issued it: sent with another role, credential or denied_only, it is
// refused, naming page_token, as AIP-158 has it. Taken as a place in the
// listing, it started the listing after the first one's last credential or
// event and left out, with no error, every one of its own before it.
func TestAdminPageTokensContinueTheirOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	admin := pb.NewAdminServiceClient(e.conn)
	bank, _ := e.issue(t, access.IssueRequest{Name: "bank", Role: access.RoleBank, Provider: "napas"})
	for _, name := range []string{"auditor 1", "auditor 2"} {
		e.issue(t, access.IssueRequest{Name: name, Role: access.RoleAuditor})
	}
	for _, code := range []string{"AU-01", "AU-02"} {
		if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: code, Name: "Chợ " + code, Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_AUDITOR, PageSize: 1})
	if err != nil || creds.NextPageToken == "" {
		t.Fatalf("first page of auditors: %v, %v", creds, err)
	}
	if rest, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_AUDITOR, PageSize: 10, PageToken: creds.NextPageToken}); err != nil || len(rest.Credentials) != 1 {
		t.Fatalf("the same query's next page: %v, %v; want the other auditor", rest.GetCredentials(), err)
	}
	events, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1})
	if err != nil || events.NextPageToken == "" {
		t.Fatalf("first page of the trail: %v, %v", events, err)
	}
	if rest, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 10, PageToken: events.NextPageToken}); err != nil || len(rest.AuditEvents) == 0 {
		t.Fatalf("the same query's next page: %v, %v; want the earlier events", rest.GetAuditEvents(), err)
	}
	for name, call := range map[string]func() (int, error){
		"credentials of another role": func() (int, error) {
			r, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_BANK, PageToken: creds.NextPageToken})
			return len(r.GetCredentials()), err
		},
		"credentials of every role": func() (int, error) {
			r, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{PageToken: creds.NextPageToken})
			return len(r.GetCredentials()), err
		},
		"events of a credential": func() (int, error) {
			r, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: bank.CredentialID, PageToken: events.NextPageToken})
			return len(r.GetAuditEvents()), err
		},
		"denied events only": func() (int, error) {
			r, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{DeniedOnly: true, PageToken: events.NextPageToken})
			return len(r.GetAuditEvents()), err
		},
	} {
		n, err := call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d listed, %v; want InvalidArgument naming page_token", name, n, err)
		}
	}
}

// Malformed ids and page tokens of the admin RPCs are the caller's mistake:
// InvalidArgument naming the field, never the database's complaint about a
// uuid as Internal. Ids in capitals are the same ids.
func TestAdminMalformedIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	admin := pb.NewAdminServiceClient(e.conn)
	const notHex = "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"

	cases := []struct {
		name  string
		call  func() error
		field string // the message must name it
	}{
		{"audit events of a malformed credential id", func() error {
			_, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: notHex})
			return err
		}, "credential_id"},
		{"credentials after a forged page token", func() error {
			token := base64.RawURLEncoding.EncodeToString([]byte(notHex))
			_, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{PageToken: token})
			return err
		}, "page_token"},
		{"revoke an id with its dashes out of place", func() error {
			_, err := admin.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: "0123456789abcdef0123456789abcdef----"})
			return err
		}, "id"},
		{"revoke an id of letters", func() error {
			_, err := admin.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: notHex})
			return err
		}, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v %q, want InvalidArgument", st.Code(), st.Message())
			}
			if !strings.HasPrefix(st.Message(), tc.field+": ") {
				t.Fatalf("message %q does not name %q", st.Message(), tc.field)
			}
		})
	}

	c, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	upper := strings.ToUpper(c.CredentialID)
	if _, err := pb.NewAdminServiceClient(e.dial(t, secret)).IssueCredential(ctx, &pb.IssueCredentialRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("an auditor issuing a credential: %v", err)
	}
	events, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: upper})
	if err != nil || len(events.AuditEvents) != 1 || events.AuditEvents[0].CredentialId != c.CredentialID {
		t.Fatalf("audit events of %s: %v, %v", upper, events, err)
	}
	revoked, err := admin.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: upper})
	if err != nil || revoked.Credential.Id != c.CredentialID || revoked.Credential.RevokeTime == nil {
		t.Fatalf("revoking %s: %v, %v", upper, revoked, err)
	}
}

type serviceDesc struct {
	desc grpc.ServiceDesc
}

// reply makes an empty response message of one of the service's methods,
// found through the registry the generated code fills.
func (sd serviceDesc) reply(method string) proto.Message {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(sd.desc.ServiceName))
	if err != nil {
		panic(err)
	}
	out := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method)).Output()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(out.FullName())
	if err != nil {
		panic(err)
	}
	return mt.New().Interface()
}

// serviceDescs are every service the server exposes behind access control.
var serviceDescs = []serviceDesc{
	{pb.LedgerService_ServiceDesc}, {pb.MerchantService_ServiceDesc}, {pb.PaymentService_ServiceDesc}, {pb.AdminService_ServiceDesc},
	{pb.SettlementService_ServiceDesc},
}

// today is the business day, Asia/Ho_Chi_Minh, of now.
func today() string { return time.Now().In(time.FixedZone("ICT", 7*3600)).Format("2006-01-02") }

// A refusal whose message is too long for the trail (here, echoing a
// Vietnamese metadata key of 900 bytes) is kept, cut, and so are the
// events of the other calls written with it.
func TestAuditTrailKeepsLongMultibyteMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	e.postTransfers(t, "M1", 1)
	_, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{
		IdempotencyKey: "long-metadata-key", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "10"), posting("payable:M1", credit, "10")},
		Metadata: map[string]string{strings.Repeat("ễ", 300): "x"}, // "ễ" is 3 bytes
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a metadata key of 300 characters: %v", err)
	}
	events, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var written, refused bool
	for _, ev := range events.AuditEvents {
		if ev.Method == pb.LedgerService_PostEntry_FullMethodName {
			written = written || ev.Code == "OK"
			refused = refused || ev.Code == "InvalidArgument"
		}
	}
	if !written || !refused {
		t.Errorf("the trail holds the written PostEntry: %v, the refused one: %v; want both (%d events)", written, refused, len(events.AuditEvents))
	}
}

// A request field naming a market may carry a NUL, which gRPC delivers
// (it is UTF-8) and PostgreSQL text cannot hold. The denied call that
// named it is in the trail all the same, as are the calls written with it:
// no caller can erase its denied calls from the trail.
func TestAuditTrailKeepsDeniedCallNamingNUL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	e.postTransfers(t, "M1", 1)
	_, boundSecret := e.issue(t, access.IssueRequest{Name: "auditor of M1", Role: access.RoleAuditor, Markets: []string{"M1"}})
	_, err := pb.NewLedgerServiceClient(e.dial(t, boundSecret)).GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M2\x00"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the auditor of M1 reading M2: %v", err)
	}
	events, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var written, denied bool
	for _, ev := range events.AuditEvents {
		written = written || ev.Method == pb.LedgerService_PostEntry_FullMethodName
		denied = denied || ev.Code == "PermissionDenied" && ev.Target == `M2\x00`
	}
	if !written || !denied {
		t.Errorf("the trail holds the PostEntry: %v, the denied call naming M2\\x00: %v; want both (%d events)", written, denied, len(events.AuditEvents))
	}
}

// Banks and auditors see a merchant's phone and payout account masked. A
// create refused because the admin typed them with separators is in the
// audit trail, which every unbound auditor lists, with them masked too.
func TestAuditTrailMasksRefusedMerchantPersonalData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	for _, m := range []*pb.Merchant{
		{Code: "TN-TEST-0003", Phone: "0912 345 678", PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011001234568", HolderName: "LE VAN C"}},
		{Code: "TN-TEST-0004", Phone: "0912345679", PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011-0012-34569", HolderName: "LE VAN D"}},
	} {
		m.Market, m.Stalls, m.DisplayName, m.OwnerName = testMarket, []string{"C-" + m.Code[8:]}, "Hàng cá", "Lê Văn C"
		m.Channels, m.FeePlan = []pb.Channel{pb.Channel_CHANNEL_VIETQR}, &pb.FeePlan{MinFee: "0"}
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("create %s: %v", m.Code, err)
		}
	}
	_, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	events, err := pb.NewAdminServiceClient(e.dial(t, secret)).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, ev := range events.AuditEvents {
		if ev.Method != pb.MerchantService_CreateMerchant_FullMethodName || ev.Code != "InvalidArgument" {
			continue
		}
		refused++
		for _, personal := range []string{"0912 345 678", "345 678", "0011-0012-34569", "0011-0012"} {
			if strings.Contains(ev.Message, personal) {
				t.Errorf("an auditor reads %q in the trail: %q", personal, ev.Message)
			}
		}
	}
	if refused != 2 {
		t.Errorf("the trail holds %d refused creates, want 2", refused)
	}
}

// A provider reference or a bank's credit reference is unique in the
// ledger, so a bank bound to one market, or a stall, is refused one that
// another market recorded, in a payment or in an operator's entry. The
// refusal names the field the request sent and nothing of the entry or
// payment that holds the reference: it lies outside the caller's binding.
func TestBoundBankLearnsNothingOfAnotherMarketsReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-OTHER", Name: "Chợ Khác", Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		Code: "TN-OTHER-0001", Market: "TN-OTHER", Stalls: []string{"C-001"}, DisplayName: "Hàng cá", OwnerName: "Lê Văn Cá",
		Phone: "0911111111", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"},
	}}); err != nil {
		t.Fatal(err)
	}
	there := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "there-1", Merchant: "TN-OTHER-0001", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-THERE-1"}).Payment
	credit, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "there-credit", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: "TN-OTHER", Amount: "20000", Bank: "vcb", BankRef: "VCB-IN-1"})
	if err != nil {
		t.Fatal(err)
	}
	here := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "here-1", Merchant: "TN-TEST-0001", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "40000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	// An operator's own record of a transfer, under the reference the
	// ledger gives a payment of it.
	e.account(t, "market:TN-OTHER:cash", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "TN-OTHER", false)
	byHand, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "there-by-hand", Market: "TN-OTHER", Kind: "adjustment", Currency: "VND",
		ExternalRef: "VIETQR:FT-THERE-2", Postings: []*pb.PostingInput{
			posting("market:TN-OTHER:cash", debit, "30000"), posting("merchant:TN-OTHER-0001:payable", pb.Direction_DIRECTION_CREDIT, "30000")}})
	if err != nil {
		t.Fatal(err)
	}

	_, secret := e.issue(t, access.IssueRequest{Name: "VietQR bank of TN-TEST", Role: access.RoleBank, Provider: "napas", Markets: []string{testMarket}})
	bank := e.dial(t, secret)
	_, stallSecret := e.issue(t, access.IssueRequest{Name: "stall A-001", Role: access.RoleMerchant, Merchant: "TN-TEST-0001"})
	stall := e.dial(t, stallSecret)
	secrets := []string{there.Id, there.EntryIds[0], credit.Settlement.EntryId, byHand.Entry.Id}
	for name, c := range map[string]struct {
		call  func() error
		field string
	}{
		"confirming a payment with another market's provider reference": {func() error {
			_, err := pb.NewPaymentServiceClient(bank).ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "c-1", PaymentId: here.Id, ProviderRef: "FT-THERE-1"})
			return err
		}, "provider_ref"},
		"notifying a payment whose reference another market's entry holds": {func() error {
			_, err := pb.NewPaymentServiceClient(bank).RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "n-1", Merchant: "TN-TEST-0001",
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-THERE-2"})
			return err
		}, "provider_ref"},
		"a stall recording a payment whose reference another market's entry holds": {func() error {
			_, err := pb.NewPaymentServiceClient(stall).RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "r-1", Merchant: "TN-TEST-0001",
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, ProviderRef: "FT-THERE-2"})
			return err
		}, "provider_ref"},
		"recording a credit with another market's bank reference": {func() error {
			_, err := pb.NewSettlementServiceClient(bank).RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "s-1",
				Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "20000", Bank: "vcb", BankRef: "VCB-IN-1", AllowUnmatched: true})
			return err
		}, "bank_ref"},
	} {
		st := status.Convert(c.call())
		if st.Code() != codes.AlreadyExists || !strings.HasPrefix(st.Message(), c.field+": ") {
			t.Errorf("%s: %v %q, want AlreadyExists naming %s", name, st.Code(), st.Message(), c.field)
		}
		for _, id := range secrets {
			if strings.Contains(st.Message(), id) {
				t.Errorf("%s: a caller of TN-TEST reads %s, of TN-OTHER, in %q", name, id, st.Message())
			}
		}
	}
	// The refused credit moved no money, so it opened no account for it.
	if _, err := e.client.GetAccount(ctx, &pb.GetAccountRequest{Code: "bank:vcb:market:" + testMarket + ":settlement"}); status.Code(err) != codes.NotFound {
		t.Errorf("a credit refused for its bank reference left vcb a settlement account in %s: %v", testMarket, err)
	}
}

// A call refused because its credential is revoked, expired, or bound to a
// client certificate the call did not present proved the credential's
// secret: the trail records it as that credential's, so that an operator
// finds where a leaked secret was used. A call with the credential's id
// and another secret proves nothing and is recorded as no one's.
func TestRefusedCredentialIsNamedInTheTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	revoked, revokedSecret := e.issue(t, access.IssueRequest{Name: "revoked", Role: access.RoleAuditor})
	if _, err := e.creds.Revoke(ctx, revoked.CredentialID); err != nil {
		t.Fatal(err)
	}
	expired, expiredSecret := e.issue(t, access.IssueRequest{Name: "expired", Role: access.RoleAuditor, TTL: time.Hour})
	e.advance(2 * time.Hour)
	pinned, pinnedSecret := e.issue(t, access.IssueRequest{Name: "pinned to a certificate", Role: access.RoleAuditor, CertSHA256: strings.Repeat("ab", 32)})
	guessed, guessedSecret := e.issue(t, access.IssueRequest{Name: "guessed", Role: access.RoleAuditor})
	wrongSecret := guessedSecret[:len(guessedSecret)-4] + "AAAA"
	if wrongSecret == guessedSecret {
		wrongSecret = guessedSecret[:len(guessedSecret)-4] + "BBBB"
	}

	for _, secret := range []string{revokedSecret, expiredSecret, pinnedSecret, wrongSecret} {
		if _, err := pb.NewMerchantServiceClient(e.dial(t, secret)).ListMarkets(ctx, &pb.ListMarketsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("a refused credential: %v, want Unauthenticated", err)
		}
	}
	admin := pb.NewAdminServiceClient(e.conn)
	for _, c := range []struct {
		cred  access.Credential
		calls int
	}{{revoked, 1}, {expired, 1}, {pinned, 1}, {guessed, 0}} {
		events, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: c.cred.CredentialID})
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, ev := range events.AuditEvents {
			if ev.Method == pb.MerchantService_ListMarkets_FullMethodName && ev.Code == "Unauthenticated" {
				refused++
			}
		}
		if refused != c.calls {
			t.Errorf("the trail holds %d refused calls of the %s credential, want %d: %v", refused, c.cred.Name, c.calls, events.AuditEvents)
		}
	}
	denied, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{DeniedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(denied.AuditEvents); n != 4 {
		t.Errorf("the trail holds %d denied calls, want the 4 refused ones: %v", n, denied.AuditEvents)
	}
}

// The authorization header's scheme is case-insensitive (RFC 7235, RFC
// 6750): a client whose library writes "bearer" is let in. Another scheme,
// a bare secret, or two headers are not.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	_, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	client := pb.NewMerchantServiceClient(e.dial(t, ""))
	call := func(headers ...string) error {
		md := metadata.MD{}
		for _, h := range headers {
			md.Append("authorization", h)
		}
		_, err := client.ListMarkets(metadata.NewOutgoingContext(ctx, md), &pb.ListMarketsRequest{})
		return err
	}
	for _, h := range []string{"Bearer " + secret, "bearer " + secret, "BEARER " + secret, "bEaReR  " + secret} {
		if err := call(h); err != nil {
			t.Errorf("%q: %v, want OK", h[:8], err)
		}
	}
	for _, headers := range [][]string{{"Basic " + secret}, {secret}, {"Bearer" + secret}, {"Bearer " + secret, "Bearer " + secret}} {
		if err := call(headers...); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%q: %v, want Unauthenticated", headers, err)
		}
	}
}

// A stall, or a bank, naming in a payment a payment request of another
// merchant (its bill number is on that stall's QR, for every payer to
// read) is refused as for a request that does not exist: the refusal
// tells neither that it exists nor its id or bill number.
func TestAnotherMerchantsPaymentRequestIsNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	_, secretB := e.issue(t, access.IssueRequest{Name: "stall B", Role: access.RoleMerchant, Merchant: b})
	req, err := pb.NewPaymentServiceClient(e.dial(t, secretB)).CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-b", Merchant: b, Amount: "30000"})
	if err != nil {
		t.Fatal(err)
	}
	theirs := req.PaymentRequest
	_, secretA := e.issue(t, access.IssueRequest{Name: "stall A", Role: access.RoleMerchant, Merchant: a})
	stallA := pb.NewPaymentServiceClient(e.dial(t, secretA))
	const nowhere = "0190a3b4-0000-7000-8000-000000000000"
	refusal := func(id, bill string) *status.Status {
		_, err := stallA.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "k", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "30000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL, PaymentRequestId: id, BillNumber: bill})
		return status.Convert(err)
	}
	for _, c := range []struct{ name, id, bill, missingID, missingBill string }{
		{"by bill number", "", theirs.BillNumber, "", "CLNOTHERE22"},
		{"by id", theirs.Id, "", nowhere, ""},
		{"by id with another bill number", theirs.Id, "CLNOTHERE22", nowhere, "CLNOTHERE22"},
	} {
		got, missing := refusal(c.id, c.bill), refusal(c.missingID, c.missingBill)
		if got.Code() != codes.NotFound || missing.Code() != codes.NotFound {
			t.Errorf("%s: B's request %v %q, a missing one %v %q; want NotFound for both", c.name, got.Code(), got.Message(), missing.Code(), missing.Message())
		}
		for _, secret := range []string{theirs.Id, theirs.BillNumber} {
			if strings.Contains(got.Message(), secret) && !strings.Contains(c.id+c.bill, secret) {
				t.Errorf("%s: stall A reads %s of B's payment request in %q", c.name, secret, got.Message())
			}
		}
		if field := strings.SplitN(missing.Message(), ":", 2)[0]; !strings.HasPrefix(got.Message(), field+":") {
			t.Errorf("%s: B's request is refused %q, a missing one %q; want the same field named", c.name, got.Message(), missing.Message())
		}
	}
}

// A bulk RecordPayments with an item outside the caller's binding is
// refused whole, as the proto says, writing nothing: not answered item by
// item, with the items the bank may record recorded.
func TestBulkWithADeniedItemIsRefusedWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	_, secret := e.issue(t, access.IssueRequest{Name: "napas", Role: access.RoleBank, Provider: "napas"})
	napas := pb.NewPaymentServiceClient(e.dial(t, secret))
	momo := bankNotice("momo", "TN-TEST-0001", "20000", "MOMO-1")
	momo.Channel = pb.Channel_CHANNEL_MOMO
	_, err := napas.RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
		bankNotice("napas", "TN-TEST-0001", "10000", "FT-1"), momo,
	}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a bulk with another provider's item: %v, want PermissionDenied", err)
	}
	got, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: "TN-TEST-0001"})
	if err != nil || len(got.Payments) != 0 {
		t.Fatalf("payments after the refused bulk: %v, %v; want none", got, err)
	}
}

// An operator who finds a secret leaked, and revokes it by pasting the
// secret where its id goes, is refused, the credential still working: the
// secret must then be in neither the answer, which the log line of the call
// holds, nor the audit trail, which every unbound auditor lists.
func TestSecretSentAsCredentialIDIsNotEchoed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	_, leaked := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	random := leaked[strings.LastIndex(leaked, "_")+1:]
	admin := pb.NewAdminServiceClient(e.conn)
	_, auditorSecret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	auditor := pb.NewAdminServiceClient(e.dial(t, auditorSecret))

	_, err := admin.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: leaked})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || strings.Contains(st.Message(), random) {
		t.Errorf("revoking a secret as its id: %v; want InvalidArgument without the secret", err)
	}
	_, err = auditor.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: leaked})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || strings.Contains(st.Message(), random) {
		t.Errorf("listing the audit events of a secret: %v; want InvalidArgument without the secret", err)
	}
	events, err := auditor.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events.AuditEvents {
		if strings.Contains(ev.Target, random) || strings.Contains(ev.Message, random) {
			t.Errorf("the trail shows the auditor a working bank's secret: %s target %q message %q", ev.Method, ev.Target, ev.Message)
		}
	}
}

// Only an admin issues and revokes credentials: once none works, a leaked
// secret can no longer be revoked, nor a new stall let in. The last working
// admin credential is not revoked, by itself or by another admin at the
// same moment; an expired or revoked one does not count.
func TestLastWorkingAdminIsNotRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	operator := pb.NewAdminServiceClient(e.conn)
	admins, err := operator.ListCredentials(ctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_ADMIN})
	if err != nil || len(admins.Credentials) != 1 {
		t.Fatalf("the env's admins: %v, %v", admins, err)
	}
	operatorID := admins.Credentials[0].Id
	expired, _ := e.issue(t, access.IssueRequest{Name: "expired admin", Role: access.RoleAdmin, TTL: time.Hour})
	e.advance(2 * time.Hour)
	revoked, _ := e.issue(t, access.IssueRequest{Name: "revoked admin", Role: access.RoleAdmin})
	if _, err := operator.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: revoked.CredentialID}); err != nil {
		t.Fatal(err)
	}

	// Two admins revoke each other at once: one is left, whichever it is.
	second, secondSecret := e.issue(t, access.IssueRequest{Name: "second admin", Role: access.RoleAdmin})
	clients := map[string]pb.AdminServiceClient{operatorID: operator, second.CredentialID: pb.NewAdminServiceClient(e.dial(t, secondSecret))}
	other := map[string]string{operatorID: second.CredentialID, second.CredentialID: operatorID}
	errs := make(chan error, 2)
	for id, client := range clients {
		go func() {
			_, err := client.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: other[id]})
			errs <- err
		}()
	}
	for range 2 {
		// The one revoked first is refused: Unauthenticated if it called
		// after, FailedPrecondition if at the same time.
		if err := <-errs; err != nil && status.Code(err) != codes.Unauthenticated && status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("two admins revoking each other: %v", err)
		}
	}
	var last string
	for id, client := range clients {
		if _, err := client.ListCredentials(ctx, &pb.ListCredentialsRequest{}); err == nil {
			last = id
		}
	}
	if last == "" {
		t.Fatal("two admins revoking each other at once left no admin credential working")
	}

	if _, err := clients[last].RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: last}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("the last working admin revoking itself: %v, want FailedPrecondition", err)
	}
	// Revoking an admin that no longer works changes nothing.
	for _, id := range []string{revoked.CredentialID, expired.CredentialID} {
		if _, err := clients[last].RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: id}); err != nil {
			t.Errorf("revoking an admin that no longer works: %v", err)
		}
	}
	if _, err := clients[last].ListCredentials(ctx, &pb.ListCredentialsRequest{}); err != nil {
		t.Fatalf("the last admin: %v", err)
	}
}

// A market or merchant code is read trimmed by the calls that take it, and
// a credential's binding is checked against the code as they read it: a
// bank or auditor bound to TN-TEST, or TN-TEST-0001's own stall, naming
// its market or itself with a space around it is answered as an operator
// is, not refused as if it named another market or merchant.
func TestBoundCallersNamePaddedCodesAsOperatorsDo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, padded = "TN-TEST-0001", " " + testMarket + " "
	_, bankSecret := e.issue(t, access.IssueRequest{Name: "VietQR bank of TN-TEST", Role: access.RoleBank, Provider: "napas", Bank: "vcb", Markets: []string{testMarket}})
	_, auditorSecret := e.issue(t, access.IssueRequest{Name: "auditor of TN-TEST", Role: access.RoleAuditor, Markets: []string{testMarket}})
	_, stallSecret := e.issue(t, access.IssueRequest{Name: "stall A", Role: access.RoleMerchant, Merchant: a})
	bank, auditor, stall := e.dial(t, bankSecret), e.dial(t, auditorSecret), e.dial(t, stallSecret)
	bankSettle := pb.NewSettlementServiceClient(bank)
	start := time.Now().Add(-time.Hour).Truncate(time.Hour)

	for _, c := range []struct {
		name string
		call func() error
	}{
		{"the bank: provider credit", func() error {
			_, err := bankSettle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit", Channel: pb.Channel_CHANNEL_VIETQR,
				Market: padded, Amount: "50000", Bank: "vcb", BankRef: "VCB-1", AllowUnmatched: true})
			return err
		}},
		{"the bank: reclassification", func() error {
			e.record(t, bankNotice("late", a, "50000", "FT-LATE"))
			_, err := bankSettle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "match", Market: padded,
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Reason: "VCB-1 paid FT-LATE"})
			return err
		}},
		{"the bank: payout batch", func() error {
			_, err := bankSettle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "batch", Bank: "vcb", Market: padded, CutOff: timestamppb.Now()})
			return err
		}},
		{"the bank: statement import", func() error {
			_, err := bankSettle.ImportStatement(ctx, &pb.ImportStatementRequest{Format: pb.StatementFormat_STATEMENT_FORMAT_CSV, Channel: pb.Channel_CHANNEL_VIETQR,
				Market: padded, PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(start.Add(3 * time.Hour)),
				Content: reconCSV([]stmtLine{{ref: "FT-LATE", amount: "50000", at: time.Now()}})})
			return err
		}},
		{"the bank: market settlement", func() error {
			_, err := bankSettle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: padded, StartDay: today()})
			return err
		}},
		{"the bank: merchants", func() error {
			_, err := pb.NewMerchantServiceClient(bank).ListMerchants(ctx, &pb.ListMerchantsRequest{Market: padded})
			return err
		}},
		{"the auditor: market settlement", func() error {
			_, err := pb.NewSettlementServiceClient(auditor).GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: padded, StartDay: today()})
			return err
		}},
		{"the auditor: merchants", func() error {
			_, err := pb.NewMerchantServiceClient(auditor).ListMerchants(ctx, &pb.ListMerchantsRequest{Market: padded})
			return err
		}},
		{"the stall: itself", func() error {
			_, err := pb.NewMerchantServiceClient(stall).GetMerchant(ctx, &pb.GetMerchantRequest{Code: " " + a + " "})
			return err
		}},
		{"the stall: its QR", func() error {
			_, err := pb.NewMerchantServiceClient(stall).GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: " " + a + " "})
			return err
		}},
		{"the stall: its settlement", func() error {
			_, err := pb.NewSettlementServiceClient(stall).GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: " " + a + " ", StartDay: today()})
			return err
		}},
	} {
		if err := c.call(); err != nil {
			t.Errorf("%s, its code padded: %v; want it answered, as an operator's is", c.name, err)
		}
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}
