package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/merchant/vietqr"
)

// merchantEnv is a real server with MerchantService over its own database,
// and a client connected to it.
type merchantEnv struct {
	db     *pgtest.DB
	ledger *ledger.Ledger
	conn   *grpc.ClientConn
	client pb.MerchantServiceClient
}

func newMerchantEnv(t *testing.T) *merchantEnv {
	t.Helper()
	e := newEnv(t, ledgerOptions())
	return &merchantEnv{db: e.db, ledger: e.ledger, conn: e.conn, client: e.merchants}
}

func (e *merchantEnv) market(t *testing.T, code, province string) *pb.Market {
	t.Helper()
	resp, err := e.client.CreateMarket(context.Background(), &pb.CreateMarketRequest{Market: &pb.Market{
		Code: code, Name: "Chợ " + code, Province: province, Ward: "Phường Hoàng Văn Thụ", CollectionAccount: testCollection,
	}})
	if err != nil {
		t.Fatalf("create market %s: %v", code, err)
	}
	return resp.Market
}

func sampleMerchant(code, market string, stalls ...string) *pb.Merchant {
	return &pb.Merchant{
		Code: code, Market: market, Stalls: stalls,
		DisplayName: "Bún chả Cô Lan", OwnerName: "Nguyễn Thị Lan", Phone: "0912345678",
		PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0123456789", HolderName: "NGUYEN THI LAN"},
		FeePlan: &pb.FeePlan{
			Fees:   []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: 50}, {Channel: pb.Channel_CHANNEL_MOMO, BasisPoints: 150}},
			MinFee: "100",
		},
		Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO},
	}
}

func (e *merchantEnv) merchant(t *testing.T, m *pb.Merchant) *pb.Merchant {
	t.Helper()
	resp, err := e.client.CreateMerchant(context.Background(), &pb.CreateMerchantRequest{Merchant: m})
	if err != nil {
		t.Fatalf("create merchant %s: %v", m.GetCode(), err)
	}
	return resp.Merchant
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// wantCode checks err's code, and that its message names field.
func wantCode(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), field) {
		t.Fatalf("got %v: %q; want %v naming %s", st.Code(), st.Message(), code, field)
	}
}

func TestCreateMarketOpensItsAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	got := e.market(t, "TN-DAITU", "Thái Nguyên")
	if got.Code != "TN-DAITU" || got.Name != "Chợ TN-DAITU" || got.Province != "Thái Nguyên" || got.Ward != "Phường Hoàng Văn Thụ" ||
		got.Status != pb.MarketStatus_MARKET_STATUS_ACTIVE || got.CreateTime == nil {
		t.Errorf("created market %v", got)
	}
	read, err := e.client.GetMarket(ctx, &pb.GetMarketRequest{Code: "TN-DAITU"})
	if err != nil || !proto.Equal(read.Market, got) {
		t.Errorf("get market = %v, %v; want %v", read.GetMarket(), err, got)
	}

	want := map[string]ledger.AccountType{
		"market:TN-DAITU:fees":                            ledger.Revenue,
		"market:TN-DAITU:suspense":                        ledger.Liability,
		"provider:napas:market:TN-DAITU:clearing":         ledger.Asset,
		"provider:viettelmoney:market:TN-DAITU:clearing":  ledger.Asset,
		"provider:vnptmoney:market:TN-DAITU:clearing":     ledger.Asset,
		"provider:mobifonemoney:market:TN-DAITU:clearing": ledger.Asset,
		"provider:momo:market:TN-DAITU:clearing":          ledger.Asset,
		"provider:zalopay:market:TN-DAITU:clearing":       ledger.Asset,
	}
	for code, typ := range want {
		a, err := e.ledger.GetAccount(ctx, code)
		if err != nil {
			t.Errorf("account %s: %v", code, err)
			continue
		}
		if a.Type != typ || a.Currency != "VND" || a.Market != "TN-DAITU" || a.Flags != 0 {
			t.Errorf("account %s is %s %s in %s with flags %d; want %s VND in TN-DAITU without flags", code, a.Type, a.Currency, a.Market, a.Flags, typ)
		}
	}
	accounts, _, _, err := e.ledger.ListAccounts(ctx, ledger.AccountFilter{Market: "TN-DAITU"})
	if err != nil || len(accounts) != len(want) {
		t.Errorf("market has %d accounts (%v), want %d", len(accounts), err, len(want))
	}
	// Another market has accounts of its own.
	e.market(t, "TN-PHUONG", "Thái Nguyên")
	if _, err := e.ledger.GetAccount(ctx, merchant.ClearingAccount(merchant.ChannelZaloPay, "TN-PHUONG")); err != nil {
		t.Error(err)
	}

	h, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: pb.MerchantService_ServiceDesc.ServiceName})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of MerchantService: %v, %v", h, err)
	}
}

func TestCreateMerchantOpensItsPayable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "TN-DAITU", "Thái Nguyên")
	in := sampleMerchant("TN-DAITU-0042", "TN-DAITU", "B-07", "A-012")
	in.Phone = "+84912345678"
	got := e.merchant(t, in)
	if got.Status != pb.MerchantStatus_MERCHANT_STATUS_ACTIVE || got.PayableAccount != "merchant:TN-DAITU-0042:payable" ||
		got.Phone != "0912345678" || !slices.Equal(got.Stalls, []string{"A-012", "B-07"}) || got.CreateTime == nil || got.UpdateTime == nil {
		t.Errorf("created merchant %v", got)
	}
	if !proto.Equal(got.FeePlan, in.FeePlan) || !proto.Equal(got.PayoutAccount, in.PayoutAccount) || !slices.Equal(got.Channels, in.Channels) {
		t.Errorf("created merchant's fee plan, payout or channels differ: %v", got)
	}
	a, err := e.ledger.GetAccount(ctx, got.PayableAccount)
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != ledger.Liability || a.Currency != "VND" || a.Market != "TN-DAITU" || a.Flags != ledger.FlagDebitsMustNotExceedCredits {
		t.Errorf("payable account %+v; want a VND liability of TN-DAITU that debits must not exceed", a)
	}
	read, err := e.client.GetMerchant(ctx, &pb.GetMerchantRequest{Code: "TN-DAITU-0042"})
	if err != nil || !proto.Equal(read.Merchant, got) {
		t.Errorf("get merchant = %v, %v; want %v", read.GetMerchant(), err, got)
	}

	pending := sampleMerchant("TN-DAITU-0043", "TN-DAITU", "C-1")
	pending.Status = pb.MerchantStatus_MERCHANT_STATUS_PENDING
	pending.PayoutAccount, pending.FeePlan = nil, nil
	got = e.merchant(t, pending)
	if got.Status != pb.MerchantStatus_MERCHANT_STATUS_PENDING || got.PayoutAccount != nil || len(got.FeePlan.GetFees()) != 0 || got.FeePlan.GetMinFee() != "0" {
		t.Errorf("pending merchant without payout or fees: %v", got)
	}
}

func TestListMarketsPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	var want []string
	for i := range 5 {
		code := fmt.Sprintf("TN-%02d", 5-i) // created out of order
		e.market(t, code, "Thái Nguyên")
		want = append([]string{code}, want...)
	}
	e.market(t, "HN-01", "Hà Nội")
	if _, err := e.client.UpdateMarket(ctx, &pb.UpdateMarketRequest{
		Market: &pb.Market{Code: "TN-03", Status: pb.MarketStatus_MARKET_STATUS_CLOSED}, UpdateMask: mask("status"),
	}); err != nil {
		t.Fatal(err)
	}

	var got []string
	token, pages := "", 0
	for {
		resp, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Province: "Thái Nguyên", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(resp.Markets) > 2 {
			t.Fatalf("page of %d", len(resp.Markets))
		}
		for _, m := range resp.Markets {
			got = append(got, m.Code)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("walked %d pages: %v; want 3 pages of %v", pages, got, want)
	}

	all, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{})
	if err != nil || len(all.Markets) != 6 || all.Markets[0].Code != "HN-01" || all.NextPageToken != "" {
		t.Errorf("all markets: %v, %v", all, err)
	}
	closed, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Status: pb.MarketStatus_MARKET_STATUS_CLOSED})
	if err != nil || len(closed.Markets) != 1 || closed.Markets[0].Code != "TN-03" {
		t.Errorf("closed markets: %v, %v", closed, err)
	}
}

func TestListMerchantsMasksAndPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "M1", "Thái Nguyên")
	e.market(t, "M2", "Thái Nguyên")
	for i := range 5 {
		e.merchant(t, sampleMerchant(fmt.Sprintf("M1-%d", i), "M1", fmt.Sprintf("S-%d", i)))
	}
	e.merchant(t, sampleMerchant("M2-0", "M2", "S-0"))
	if _, err := e.client.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: "M1-3", Reason: "inspection"}); err != nil {
		t.Fatal(err)
	}

	var got []*pb.Merchant
	for token := ""; ; {
		resp, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "M1", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Merchants...)
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if len(got) != 5 {
		t.Fatalf("listed %d merchants of M1, want 5", len(got))
	}
	for i, m := range got {
		if m.Code != fmt.Sprintf("M1-%d", i) {
			t.Errorf("merchant %d is %s", i, m.Code)
		}
		if m.OwnerName != "Nguyễn T. L." || m.Phone != "091****678" ||
			m.PayoutAccount.GetAccountNumber() != "******6789" || m.PayoutAccount.GetHolderName() != "NGUYEN T. L." || m.PayoutAccount.GetBankBin() != "970436" {
			t.Errorf("listed merchant %s is not masked: %v", m.Code, m)
		}
		if m.DisplayName != "Bún chả Cô Lan" || m.PayableAccount != "merchant:"+m.Code+":payable" {
			t.Errorf("listed merchant %s lost what is not personal: %v", m.Code, m)
		}
	}
	full, err := e.client.GetMerchant(ctx, &pb.GetMerchantRequest{Code: "M1-0"})
	if err != nil || full.Merchant.OwnerName != "Nguyễn Thị Lan" || full.Merchant.Phone != "0912345678" || full.Merchant.PayoutAccount.AccountNumber != "0123456789" {
		t.Errorf("get merchant is masked or failed: %v, %v", full.GetMerchant(), err)
	}

	suspended, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Status: pb.MerchantStatus_MERCHANT_STATUS_SUSPENDED})
	if err != nil || len(suspended.Merchants) != 1 || suspended.Merchants[0].Code != "M1-3" {
		t.Errorf("suspended merchants: %v, %v", suspended, err)
	}
	all, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{})
	if err != nil || len(all.Merchants) != 6 {
		t.Errorf("all merchants: %d, %v", len(all.GetMerchants()), err)
	}
}

// A page token of ListMarkets or ListMerchants continues the query that
// issued it: sent with another province, market or status, or to the
// other list, it is refused, naming page_token, as AIP-158 has it. Taken
// as a place in the listing, it started the listing after the first one's
// last code and left out, with no error, every market or merchant before
// it.
func TestMarketAndMerchantPageTokensContinueTheirOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "HN-01", "Hà Nội")
	e.market(t, "HN-02", "Hà Nội")
	e.market(t, "TN-01", "Thái Nguyên")
	e.market(t, "TN-02", "Thái Nguyên")
	for _, code := range []string{"HN-01-A", "HN-01-B"} {
		e.merchant(t, sampleMerchant(code, "HN-01", "S-"+code))
	}
	for _, code := range []string{"TN-01-A", "TN-01-B"} {
		e.merchant(t, sampleMerchant(code, "TN-01", "S-"+code))
	}
	markets, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Province: "Thái Nguyên", PageSize: 1})
	if err != nil || markets.NextPageToken == "" {
		t.Fatalf("first page of markets: %v, %v", markets, err)
	}
	if rest, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Province: "Thái Nguyên", PageSize: 10, PageToken: markets.NextPageToken}); err != nil || len(rest.Markets) != 1 {
		t.Fatalf("the same query's next page: %v, %v; want TN-02", rest.GetMarkets(), err)
	}
	merchants, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "TN-01", PageSize: 1})
	if err != nil || merchants.NextPageToken == "" {
		t.Fatalf("first page of merchants: %v, %v", merchants, err)
	}
	if rest, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "TN-01", PageSize: 10, PageToken: merchants.NextPageToken}); err != nil || len(rest.Merchants) != 1 {
		t.Fatalf("the same query's next page: %v, %v; want TN-01-B", rest.GetMerchants(), err)
	}
	for name, call := range map[string]func() (int, error){
		"markets of another province": func() (int, error) {
			r, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Province: "Hà Nội", PageToken: markets.NextPageToken})
			return len(r.GetMarkets()), err
		},
		"markets of every province": func() (int, error) {
			r, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{PageToken: markets.NextPageToken})
			return len(r.GetMarkets()), err
		},
		"markets of a status": func() (int, error) {
			r, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Province: "Thái Nguyên", Status: pb.MarketStatus_MARKET_STATUS_ACTIVE, PageToken: markets.NextPageToken})
			return len(r.GetMarkets()), err
		},
		"merchants of another market": func() (int, error) {
			r, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "HN-01", PageToken: merchants.NextPageToken})
			return len(r.GetMerchants()), err
		},
		"merchants of every market": func() (int, error) {
			r, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{PageToken: merchants.NextPageToken})
			return len(r.GetMerchants()), err
		},
		"merchants of a status": func() (int, error) {
			r, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "TN-01", Status: pb.MerchantStatus_MERCHANT_STATUS_ACTIVE, PageToken: merchants.NextPageToken})
			return len(r.GetMerchants()), err
		},
	} {
		n, err := call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d listed, %v; want InvalidArgument naming page_token", name, n, err)
		}
	}
}

// GetMerchant shows personal data in full only to the merchant itself and
// to admins; a bank or auditor of the market gets it masked, as
// ListMerchants shows it, so that reading merchants one by one reveals no
// more than listing them.
func TestGetMerchantMasksForOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	me := &merchantEnv{db: e.db, ledger: e.ledger, conn: e.conn, client: e.merchants}
	me.market(t, "M1", "Thái Nguyên")
	me.merchant(t, sampleMerchant("A-1", "M1", "S-1"))
	listed, err := e.merchants.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "M1"})
	if err != nil || len(listed.Merchants) != 1 {
		t.Fatalf("list: %v, %v", listed, err)
	}
	masked, full := listed.Merchants[0], sampleMerchant("A-1", "M1", "S-1")
	for _, c := range []struct {
		name string
		r    access.IssueRequest
		want *pb.Merchant
	}{
		{"admin", access.IssueRequest{Name: "admin", Role: access.RoleAdmin}, full},
		{"the merchant", access.IssueRequest{Name: "stall A-1", Role: access.RoleMerchant, Merchant: "A-1"}, full},
		{"auditor", access.IssueRequest{Name: "auditor", Role: access.RoleAuditor}, masked},
		{"auditor of the market", access.IssueRequest{Name: "auditor M1", Role: access.RoleAuditor, Markets: []string{"M1"}}, masked},
		{"bank", access.IssueRequest{Name: "napas", Role: access.RoleBank, Provider: "napas"}, masked},
		{"bank of the market", access.IssueRequest{Name: "momo M1", Role: access.RoleBank, Provider: "momo", Markets: []string{"M1"}}, masked},
	} {
		_, secret := e.issue(t, c.r)
		resp, err := pb.NewMerchantServiceClient(e.dial(t, secret)).GetMerchant(ctx, &pb.GetMerchantRequest{Code: "A-1"})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		m := resp.Merchant
		if m.OwnerName != c.want.OwnerName || m.Phone != c.want.Phone ||
			!proto.Equal(m.PayoutAccount, c.want.PayoutAccount) || m.DisplayName != "Bún chả Cô Lan" {
			t.Errorf("%s: GetMerchant shows owner %q phone %q payout account %v; want owner %q phone %q payout account %v",
				c.name, m.OwnerName, m.Phone, m.PayoutAccount, c.want.OwnerName, c.want.Phone, c.want.PayoutAccount)
		}
	}
}

func TestUpdateWithMask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "M1", "Thái Nguyên")

	// Only the masked fields change; the others in the request are ignored,
	// even when they would be refused.
	resp, err := e.client.UpdateMarket(ctx, &pb.UpdateMarketRequest{
		Market:     &pb.Market{Code: "M1", Name: "Chợ Đồng Quang", Province: "", Status: pb.MarketStatus(99)},
		UpdateMask: mask("name"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.Market; m.Name != "Chợ Đồng Quang" || m.Province != "Thái Nguyên" || m.Ward != "Phường Hoàng Văn Thụ" || m.Status != pb.MarketStatus_MARKET_STATUS_ACTIVE {
		t.Errorf("updated market %v", m)
	}

	before := e.merchant(t, sampleMerchant("A-1", "M1", "S-1"))
	upd, err := e.client.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
		Merchant: &pb.Merchant{
			Code: "A-1", DisplayName: " Phở Hà ", Phone: "0387654321", OwnerName: "",
			Channels: []pb.Channel{pb.Channel_CHANNEL_UNSPECIFIED}, Stalls: []string{"bad stall"},
		},
		UpdateMask: mask("display_name", "phone"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := upd.Merchant
	if m.DisplayName != "Phở Hà" || m.Phone != "0387654321" || m.OwnerName != "Nguyễn Thị Lan" ||
		!slices.Equal(m.Channels, before.Channels) || !slices.Equal(m.Stalls, before.Stalls) {
		t.Errorf("updated merchant %v", m)
	}
	if m.UpdateTime.AsTime().Before(before.UpdateTime.AsTime()) || !proto.Equal(m.CreateTime, before.CreateTime) {
		t.Errorf("update time %v after %v, create time %v was %v", m.UpdateTime.AsTime(), before.UpdateTime.AsTime(), m.CreateTime.AsTime(), before.CreateTime.AsTime())
	}

	// The fee plan, channels, stalls and payout account replace the old
	// ones whole; an unset payout account removes it.
	upd, err = e.client.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
		Merchant: &pb.Merchant{
			Code: "A-1", Stalls: []string{"S-2", "S-1"},
			Channels: []pb.Channel{pb.Channel_CHANNEL_ZALOPAY, pb.Channel_CHANNEL_VIETQR},
			FeePlan:  &pb.FeePlan{Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_ZALOPAY, BasisPoints: 80}}, MinFee: "0"},
		},
		UpdateMask: mask("stalls", "channels", "fee_plan", "payout_account"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m = upd.Merchant
	want := &pb.FeePlan{Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_ZALOPAY, BasisPoints: 80}}, MinFee: "0"}
	if !slices.Equal(m.Stalls, []string{"S-1", "S-2"}) || !slices.Equal(m.Channels, []pb.Channel{pb.Channel_CHANNEL_ZALOPAY, pb.Channel_CHANNEL_VIETQR}) ||
		!proto.Equal(m.FeePlan, want) || m.PayoutAccount != nil {
		t.Errorf("updated merchant %v", m)
	}
	// The QR pays the market's collection account: a merchant without an
	// account of its own still gets one.
	if _, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "A-1"}); err != nil {
		t.Errorf("QR without a payout account: %v", err)
	}
}

func TestMerchantTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "M1", "Thái Nguyên")
	e.merchant(t, sampleMerchant("A-1", "M1", "S-1"))
	p := sampleMerchant("P-1", "M1", "S-2")
	p.Status = pb.MerchantStatus_MERCHANT_STATUS_PENDING
	e.merchant(t, p)

	suspend := func(code string) (*pb.Merchant, error) {
		r, err := e.client.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: code, Reason: "unpaid rent"})
		return r.GetMerchant(), err
	}
	reinstate := func(code string) (*pb.Merchant, error) {
		r, err := e.client.ReinstateMerchant(ctx, &pb.ReinstateMerchantRequest{Code: code})
		return r.GetMerchant(), err
	}
	closeM := func(code string) (*pb.Merchant, error) {
		r, err := e.client.CloseMerchant(ctx, &pb.CloseMerchantRequest{Code: code, Reason: "left the market"})
		return r.GetMerchant(), err
	}
	for _, step := range []struct {
		name string
		call func(string) (*pb.Merchant, error)
		code string
		want pb.MerchantStatus
		err  codes.Code
	}{
		{"suspend pending", suspend, "P-1", 0, codes.FailedPrecondition},
		{"reinstate pending", reinstate, "P-1", pb.MerchantStatus_MERCHANT_STATUS_ACTIVE, codes.OK},
		{"reinstate active", reinstate, "A-1", 0, codes.FailedPrecondition},
		{"suspend active", suspend, "A-1", pb.MerchantStatus_MERCHANT_STATUS_SUSPENDED, codes.OK},
		{"suspend suspended", suspend, "A-1", 0, codes.FailedPrecondition},
		{"reinstate suspended", reinstate, "A-1", pb.MerchantStatus_MERCHANT_STATUS_ACTIVE, codes.OK},
		{"suspend again", suspend, "A-1", pb.MerchantStatus_MERCHANT_STATUS_SUSPENDED, codes.OK},
		{"close suspended", closeM, "A-1", pb.MerchantStatus_MERCHANT_STATUS_CLOSED, codes.OK},
		{"close closed", closeM, "A-1", 0, codes.FailedPrecondition},
		{"reinstate closed", reinstate, "A-1", 0, codes.FailedPrecondition},
		{"suspend closed", suspend, "A-1", 0, codes.FailedPrecondition},
		{"close active", closeM, "P-1", pb.MerchantStatus_MERCHANT_STATUS_CLOSED, codes.OK},
		{"suspend unknown", suspend, "NOBODY", 0, codes.NotFound},
	} {
		got, err := step.call(step.code)
		if step.err != codes.OK {
			wantCode(t, err, step.err, "code")
			continue
		}
		if err != nil || got.Status != step.want {
			t.Fatalf("%s: %v, %v; want %v", step.name, got.GetStatus(), err, step.want)
		}
	}
	// A closed merchant keeps its record, and its stall is free.
	got, err := e.client.GetMerchant(ctx, &pb.GetMerchantRequest{Code: "A-1"})
	if err != nil || got.Merchant.Status != pb.MerchantStatus_MERCHANT_STATUS_CLOSED || !slices.Equal(got.Merchant.Stalls, []string{"S-1"}) {
		t.Errorf("closed merchant: %v, %v", got.GetMerchant(), err)
	}
	e.merchant(t, sampleMerchant("B-1", "M1", "S-1"))
	_, err = e.client.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: "A-1", DisplayName: "x"}, UpdateMask: mask("display_name")})
	wantCode(t, err, codes.FailedPrecondition, "merchant.code")
}

// Every QR pays into the market's collection account, the account whose
// money the ledger tracks as owed by the provider, never into the
// merchant's own; the merchant is named in tag 62/08, which banking apps
// carry into the transfer's description: by its code in a static QR, by
// the bill number in a payment request's.
func TestMerchantQR(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "M1", "Thái Nguyên")
	m := sampleMerchant("A-1", "M1", "S-1")
	m.DisplayName = "Rau sạch Ngọc Ánh"
	m.PayoutAccount = &pb.PayoutAccount{BankBin: "970418", AccountNumber: "VQR0012ab", HolderName: "Trần Ngọc Ánh"}
	e.merchant(t, m)
	resp, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "A-1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := vietqr.Parse(resp.Payload)
	if err != nil {
		t.Fatalf("parse %q: %v", resp.Payload, err)
	}
	if p.Initiation != vietqr.Static || p.BankBIN != testCollection.BankBin || p.Account != testCollection.AccountNumber || p.Service != vietqr.ServiceAccount ||
		p.Currency != "704" || p.Country != "VN" || p.Amount != "" || p.MerchantName != "RAU SACH NGOC ANH" || p.Purpose != "A-1" || p.BillNumber != "" {
		t.Errorf("static QR %+v; want the market's collection account %v, 62/08 A-1", p, testCollection)
	}

	// A merchant that does not take VietQR gets no VietQR to print: the
	// transfers it brought would be refused.
	m = sampleMerchant("A-2", "M1", "S-2")
	m.Channels = []pb.Channel{pb.Channel_CHANNEL_MOMO}
	m.FeePlan = &pb.FeePlan{MinFee: "0"}
	e.merchant(t, m)
	none, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "A-2"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "VIETQR") {
		t.Errorf("static QR of a merchant without VIETQR: %v %q, payload %q; want FailedPrecondition naming VIETQR", st.Code(), st.Message(), none.GetPayload())
	}
}

// A payment request's QR pays the market's collection account too, and
// carries its bill number in 62/01 and at the head of 62/08; a merchant
// without a payout account gets its QRs, and a market without a
// collection account refuses them, naming the market, writing nothing.
func TestQRPaysTheMarketsCollectionAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	pr, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-1", Merchant: "TN-TEST-0001", Amount: "150000", Purpose: "Tiền rau cải tuần này"})
	if err != nil {
		t.Fatal(err)
	}
	bill := pr.GetPaymentRequest().GetBillNumber()
	p, err := vietqr.Parse(pr.GetPaymentRequest().GetQrPayload())
	if err != nil {
		t.Fatal(err)
	}
	if want := (bill + " Tien rau cai tuan nay")[:25]; p.Initiation != vietqr.Dynamic || p.BankBIN != testCollection.BankBin || p.Account != testCollection.AccountNumber ||
		p.Amount != "150000" || p.BillNumber != bill || p.Purpose != want {
		t.Errorf("dynamic QR %+v; want the market's collection account %v, bill %s, 62/08 %q", p, testCollection, bill, want)
	}

	// Without a payout account, both QRs.
	if _, err := e.merchants.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: "TN-TEST-0001"}, UpdateMask: mask("payout_account")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.merchants.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "TN-TEST-0001"}); err != nil {
		t.Errorf("static QR of a merchant without a payout account: %v", err)
	}
	if _, err := e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-2", Merchant: "TN-TEST-0001", Amount: "20000"}); err != nil {
		t.Errorf("payment request of a merchant without a payout account: %v", err)
	}

	// A market without a collection account: refused, naming it, and
	// nothing written.
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-BARE", Name: "Chợ Trống", Province: "Thái Nguyên"}}); err != nil {
		t.Fatal(err)
	}
	bare := sampleMerchant("TN-BARE-0001", "TN-BARE", "A-001")
	if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: bare}); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM payment_requests`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	_, err = e.merchants.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "TN-BARE-0001"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "TN-BARE ") {
		t.Errorf("static QR in a market without a collection account: %v; want FailedPrecondition naming TN-BARE", err)
	}
	_, err = e.payments.CreatePaymentRequest(ctx, &pb.CreatePaymentRequestRequest{IdempotencyKey: "req-3", Merchant: "TN-BARE-0001", Amount: "20000"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "TN-BARE ") {
		t.Errorf("payment request in a market without a collection account: %v; want FailedPrecondition naming TN-BARE", err)
	}
	var after int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM payment_requests`).Scan(&after); err != nil || after != before {
		t.Errorf("payment requests %d before, %d after a refused one (%v)", before, after, err)
	}

	// Set by UpdateMarket, the QRs name it; changed, the new one. Each
	// update is in the audit trail as any market update is.
	for i, acct := range []*pb.PayoutAccount{
		{BankBin: "970405", AccountNumber: "8500123456789", HolderName: "BQL CHO TRONG"},
		{BankBin: "970418", AccountNumber: "39001234567890", HolderName: "BQL CHO TRONG"},
	} {
		upd, err := e.merchants.UpdateMarket(ctx, &pb.UpdateMarketRequest{Market: &pb.Market{Code: "TN-BARE", CollectionAccount: acct}, UpdateMask: mask("collection_account")})
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if !proto.Equal(upd.GetMarket().GetCollectionAccount(), acct) || upd.GetMarket().GetName() != "Chợ Trống" {
			t.Errorf("update %d answered %v", i, upd.GetMarket())
		}
		got, err := e.merchants.GetMarket(ctx, &pb.GetMarketRequest{Code: "TN-BARE"})
		if err != nil || !proto.Equal(got.GetMarket().GetCollectionAccount(), acct) {
			t.Errorf("update %d: market read back %v, %v", i, got.GetMarket(), err)
		}
		qr, err := e.merchants.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "TN-BARE-0001"})
		if err != nil {
			t.Fatalf("update %d: QR: %v", i, err)
		}
		if p, err := vietqr.Parse(qr.GetPayload()); err != nil || p.BankBIN != acct.BankBin || p.Account != acct.AccountNumber || p.Purpose != "TN-BARE-0001" {
			t.Errorf("update %d: QR %+v, %v; want %v, 62/08 TN-BARE-0001", i, p, err, acct)
		}
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events := e.eventsOf(wait, t, pb.MerchantService_UpdateMarket_FullMethodName, 2)
	if len(events) != 2 {
		t.Fatalf("%d UpdateMarket events in the audit trail, want 2: %v", len(events), events)
	}
	for _, ev := range events {
		if ev.Target != "TN-BARE" || ev.Code != "OK" {
			t.Errorf("audit event %v; want UpdateMarket of TN-BARE, OK", ev)
		}
	}
}

// tableFingerprints sums up every table a merchant call may write, so a
// test can tell that a refused call wrote nothing.
func (e *merchantEnv) tableFingerprints(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range []string{"markets", "merchants", "merchant_stalls", "ledger_accounts", "ledger_chain_heads"} {
		var sum string
		err := e.db.Pool.QueryRow(context.Background(),
			`SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+table+` t`).Scan(&sum)
		if err != nil {
			t.Fatal(err)
		}
		out[table] = sum
	}
	return out
}

// Every bad request gets the right code and a message naming the field,
// and writes nothing: no market, merchant or stall row, no ledger account.
func TestMerchantServiceBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMerchantEnv(t)
	e.market(t, "M1", "Thái Nguyên")
	e.market(t, "SHUT", "Thái Nguyên")
	e.merchant(t, sampleMerchant("A-1", "M1", "S-1"))
	e.merchant(t, sampleMerchant("GONE", "M1", "S-9"))
	if _, err := e.client.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "BARE", Name: "Chợ Trống", Province: "Thái Nguyên"}}); err != nil {
		t.Fatal(err)
	}
	e.merchant(t, sampleMerchant("BARE-1", "BARE", "S-1"))
	noPayout := sampleMerchant("NOPAY", "M1", "S-8")
	noPayout.PayoutAccount = nil
	noPayout.Status = pb.MerchantStatus_MERCHANT_STATUS_PENDING
	e.merchant(t, noPayout)
	if _, err := e.client.CloseMerchant(ctx, &pb.CloseMerchantRequest{Code: "GONE"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UpdateMarket(ctx, &pb.UpdateMarketRequest{Market: &pb.Market{Code: "SHUT", Status: pb.MarketStatus_MARKET_STATUS_CLOSED}, UpdateMask: mask("status")}); err != nil {
		t.Fatal(err)
	}
	marketToken, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{PageSize: 1})
	if err != nil || marketToken.NextPageToken == "" {
		t.Fatalf("market page token: %v, %v", marketToken, err)
	}

	newMarket := func(edit func(*pb.Market)) func() error {
		m := &pb.Market{Code: "M9", Name: "Chợ Đồng Quang", Province: "Thái Nguyên", Ward: "Đồng Quang"}
		edit(m)
		return func() error { _, err := e.client.CreateMarket(ctx, &pb.CreateMarketRequest{Market: m}); return err }
	}
	updateMarket := func(m *pb.Market, fm *fieldmaskpb.FieldMask) func() error {
		return func() error {
			_, err := e.client.UpdateMarket(ctx, &pb.UpdateMarketRequest{Market: m, UpdateMask: fm})
			return err
		}
	}
	newMerch := func(edit func(*pb.Merchant)) func() error {
		m := sampleMerchant("B-1", "M1", "S-2", "S-3")
		edit(m)
		return func() error {
			_, err := e.client.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m})
			return err
		}
	}
	updateMerch := func(m *pb.Merchant, fm *fieldmaskpb.FieldMask) func() error {
		return func() error {
			_, err := e.client.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{Merchant: m, UpdateMask: fm})
			return err
		}
	}
	suspend := func(code, reason string) func() error {
		return func() error {
			_, err := e.client.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: code, Reason: reason})
			return err
		}
	}
	reinstate := func(code string) func() error {
		return func() error {
			_, err := e.client.ReinstateMerchant(ctx, &pb.ReinstateMerchantRequest{Code: code})
			return err
		}
	}
	closeM := func(code, reason string) func() error {
		return func() error {
			_, err := e.client.CloseMerchant(ctx, &pb.CloseMerchantRequest{Code: code, Reason: reason})
			return err
		}
	}
	fee := func(ch pb.Channel, bps int32) *pb.ChannelFee { return &pb.ChannelFee{Channel: ch, BasisPoints: bps} }
	const (
		vietqrCh = pb.Channel_CHANNEL_VIETQR
		momo     = pb.Channel_CHANNEL_MOMO
	)

	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		// CreateMarket
		{"market missing", func() error { _, err := e.client.CreateMarket(ctx, &pb.CreateMarketRequest{}); return err }, codes.InvalidArgument, "market"},
		{"market code empty", newMarket(func(m *pb.Market) { m.Code = "" }), codes.InvalidArgument, "market.code"},
		{"market code lower-case", newMarket(func(m *pb.Market) { m.Code = "m9" }), codes.InvalidArgument, "market.code"},
		{"market code with a colon", newMarket(func(m *pb.Market) { m.Code = "M:9" }), codes.InvalidArgument, "market.code"},
		{"market code too long", newMarket(func(m *pb.Market) { m.Code = strings.Repeat("M", 33) }), codes.InvalidArgument, "market.code"},
		{"market name empty", newMarket(func(m *pb.Market) { m.Name = " " }), codes.InvalidArgument, "market.name"},
		{"market name with a tab", newMarket(func(m *pb.Market) { m.Name = "Chợ\tĐồng" }), codes.InvalidArgument, "market.name"},
		{"market province empty", newMarket(func(m *pb.Market) { m.Province = "" }), codes.InvalidArgument, "market.province"},
		{"market ward too long", newMarket(func(m *pb.Market) { m.Ward = strings.Repeat("ư", 101) }), codes.InvalidArgument, "market.ward"},
		{"market status unknown", newMarket(func(m *pb.Market) { m.Status = 7 }), codes.InvalidArgument, "market.status"},
		{"market collection account number with a space", newMarket(func(m *pb.Market) {
			m.CollectionAccount = &pb.PayoutAccount{BankBin: "970415", AccountNumber: "1136 0000", HolderName: "BQL CHO"}
		}), codes.InvalidArgument, "market.collection_account.account_number"},
		{"market collection account without holder", newMarket(func(m *pb.Market) {
			m.CollectionAccount = &pb.PayoutAccount{BankBin: "970415", AccountNumber: "113600001234"}
		}), codes.InvalidArgument, "market.collection_account.holder_name"},
		{"market exists", newMarket(func(m *pb.Market) { m.Code = "M1" }), codes.AlreadyExists, "market.code"},

		// UpdateMarket
		{"market update without mask", updateMarket(&pb.Market{Code: "M1", Name: "x"}, nil), codes.InvalidArgument, "update_mask"},
		{"market update with empty mask", updateMarket(&pb.Market{Code: "M1", Name: "x"}, mask()), codes.InvalidArgument, "update_mask"},
		{"market update of the code", updateMarket(&pb.Market{Code: "M1"}, mask("code")), codes.InvalidArgument, "update_mask"},
		{"market update of an unknown field", updateMarket(&pb.Market{Code: "M1"}, mask("market.name")), codes.InvalidArgument, "update_mask"},
		{"market update without market", updateMarket(nil, mask("name")), codes.InvalidArgument, "market"},
		{"market update to an empty name", updateMarket(&pb.Market{Code: "M1"}, mask("name")), codes.InvalidArgument, "market.name"},
		{"market update removing the collection account", updateMarket(&pb.Market{Code: "M1"}, mask("collection_account")), codes.InvalidArgument, "market.collection_account"},
		{"market update to a collection account of a bad BIN", updateMarket(&pb.Market{Code: "M1", CollectionAccount: &pb.PayoutAccount{BankBin: "97043", AccountNumber: "1", HolderName: "X"}}, mask("collection_account")), codes.InvalidArgument, "market.collection_account.bank_bin"},
		{"market update to no status", updateMarket(&pb.Market{Code: "M1"}, mask("status")), codes.InvalidArgument, "market.status"},
		{"market update of a bad code", updateMarket(&pb.Market{Code: "m1", Name: "x"}, mask("name")), codes.InvalidArgument, "market.code"},
		{"market update of an unknown market", updateMarket(&pb.Market{Code: "M404", Name: "x"}, mask("name")), codes.NotFound, "market.code"},

		// CreateMerchant
		{"merchant missing", func() error { _, err := e.client.CreateMerchant(ctx, &pb.CreateMerchantRequest{}); return err }, codes.InvalidArgument, "merchant"},
		{"merchant code bad", newMerch(func(m *pb.Merchant) { m.Code = "b 1" }), codes.InvalidArgument, "merchant.code"},
		{"merchant market bad", newMerch(func(m *pb.Merchant) { m.Market = "" }), codes.InvalidArgument, "merchant.market"},
		{"no stalls", newMerch(func(m *pb.Merchant) { m.Stalls = nil }), codes.InvalidArgument, "merchant.stalls"},
		{"eleven stalls", newMerch(func(m *pb.Merchant) { m.Stalls = strings.Split("A,B,C,D,E,F,G,H,I,J,K", ",") }), codes.InvalidArgument, "merchant.stalls"},
		{"bad stall", newMerch(func(m *pb.Merchant) { m.Stalls[1] = "s-3" }), codes.InvalidArgument, "merchant.stalls[1]"},
		{"duplicate stall", newMerch(func(m *pb.Merchant) { m.Stalls[1] = "S-2" }), codes.InvalidArgument, "merchant.stalls[1]"},
		{"display name empty", newMerch(func(m *pb.Merchant) { m.DisplayName = "" }), codes.InvalidArgument, "merchant.display_name"},
		{"owner empty", newMerch(func(m *pb.Merchant) { m.OwnerName = "\t" }), codes.InvalidArgument, "merchant.owner_name"},
		{"owner with a control character", newMerch(func(m *pb.Merchant) { m.OwnerName = "Lan\u0007" }), codes.InvalidArgument, "merchant.owner_name"},
		{"phone landline", newMerch(func(m *pb.Merchant) { m.Phone = "02083851234" }), codes.InvalidArgument, "merchant.phone"},
		{"phone +84 too short", newMerch(func(m *pb.Merchant) { m.Phone = "+8491234567" }), codes.InvalidArgument, "merchant.phone"},
		{"bank BIN short", newMerch(func(m *pb.Merchant) { m.PayoutAccount.BankBin = "97043" }), codes.InvalidArgument, "merchant.payout_account.bank_bin"},
		{"account number with a space", newMerch(func(m *pb.Merchant) { m.PayoutAccount.AccountNumber = "0123 456" }), codes.InvalidArgument, "merchant.payout_account.account_number"},
		{"holder empty", newMerch(func(m *pb.Merchant) { m.PayoutAccount.HolderName = "" }), codes.InvalidArgument, "merchant.payout_account.holder_name"},
		{"basis points above 1000", newMerch(func(m *pb.Merchant) { m.FeePlan.Fees[0].BasisPoints = 1001 }), codes.InvalidArgument, "merchant.fee_plan.fees"},
		{"negative basis points", newMerch(func(m *pb.Merchant) { m.FeePlan.Fees[1].BasisPoints = -1 }), codes.InvalidArgument, "merchant.fee_plan.fees"},
		{"fee without channel", newMerch(func(m *pb.Merchant) { m.FeePlan.Fees[0].Channel = 0 }), codes.InvalidArgument, "merchant.fee_plan.fees[0].channel"},
		{"fee twice", newMerch(func(m *pb.Merchant) { m.FeePlan.Fees = append(m.FeePlan.Fees, fee(vietqrCh, 10)) }), codes.InvalidArgument, "merchant.fee_plan.fees[2].channel"},
		{"fee for a channel not accepted", newMerch(func(m *pb.Merchant) {
			m.FeePlan.Fees = append(m.FeePlan.Fees, fee(pb.Channel_CHANNEL_ZALOPAY, 10))
		}), codes.InvalidArgument, "merchant.fee_plan.fees"},
		{"fractional min fee", newMerch(func(m *pb.Merchant) { m.FeePlan.MinFee = "100.5" }), codes.InvalidArgument, "merchant.fee_plan.min_fee"},
		{"negative min fee", newMerch(func(m *pb.Merchant) { m.FeePlan.MinFee = "-1" }), codes.InvalidArgument, "merchant.fee_plan.min_fee"},
		{"min fee above a million", newMerch(func(m *pb.Merchant) { m.FeePlan.MinFee = "1000001" }), codes.InvalidArgument, "merchant.fee_plan.min_fee"},
		{"min fee beyond int64", newMerch(func(m *pb.Merchant) { m.FeePlan.MinFee = "99999999999999999999" }), codes.InvalidArgument, "merchant.fee_plan.min_fee"},
		{"no channels", newMerch(func(m *pb.Merchant) { m.Channels, m.FeePlan = nil, nil }), codes.InvalidArgument, "merchant.channels"},
		{"unspecified channel", newMerch(func(m *pb.Merchant) { m.Channels[1] = 0 }), codes.InvalidArgument, "merchant.channels[1]"},
		{"unknown channel", newMerch(func(m *pb.Merchant) { m.Channels[1] = 42 }), codes.InvalidArgument, "merchant.channels[1]"},
		{"duplicate channel", newMerch(func(m *pb.Merchant) { m.Channels = append(m.Channels, momo) }), codes.InvalidArgument, "merchant.channels[2]"},
		{"created suspended", newMerch(func(m *pb.Merchant) { m.Status = pb.MerchantStatus_MERCHANT_STATUS_SUSPENDED }), codes.InvalidArgument, "merchant.status"},
		{"unknown status", newMerch(func(m *pb.Merchant) { m.Status = 9 }), codes.InvalidArgument, "merchant.status"},
		{"unknown market", newMerch(func(m *pb.Merchant) { m.Market = "M404" }), codes.NotFound, "merchant.market"},
		{"closed market", newMerch(func(m *pb.Merchant) { m.Market = "SHUT" }), codes.FailedPrecondition, "merchant.market"},
		{"merchant exists", newMerch(func(m *pb.Merchant) { m.Code = "A-1" }), codes.AlreadyExists, "merchant.code"},
		{"closed merchant's code", newMerch(func(m *pb.Merchant) { m.Code = "GONE" }), codes.AlreadyExists, "merchant.code"},
		{"stall taken", newMerch(func(m *pb.Merchant) { m.Stalls[1] = "S-1" }), codes.AlreadyExists, "merchant.stalls"},

		// UpdateMerchant
		{"merchant update without mask", updateMerch(&pb.Merchant{Code: "A-1", Phone: "0987654321"}, nil), codes.InvalidArgument, "update_mask"},
		{"merchant update of the status", updateMerch(&pb.Merchant{Code: "A-1", Status: pb.MerchantStatus_MERCHANT_STATUS_CLOSED}, mask("status")), codes.InvalidArgument, "update_mask"},
		{"merchant update of the market", updateMerch(&pb.Merchant{Code: "A-1", Market: "SHUT"}, mask("market")), codes.InvalidArgument, "update_mask"},
		{"merchant update without merchant", updateMerch(nil, mask("phone")), codes.InvalidArgument, "merchant"},
		{"merchant update to a bad phone", updateMerch(&pb.Merchant{Code: "A-1", Phone: "12345"}, mask("phone")), codes.InvalidArgument, "merchant.phone"},
		{"merchant update to no stalls", updateMerch(&pb.Merchant{Code: "A-1"}, mask("stalls")), codes.InvalidArgument, "merchant.stalls"},
		{"merchant update to no channels", updateMerch(&pb.Merchant{Code: "A-1"}, mask("channels", "fee_plan")), codes.InvalidArgument, "merchant.channels"},
		{"merchant update dropping a charged channel", updateMerch(&pb.Merchant{Code: "A-1", Channels: []pb.Channel{vietqrCh}}, mask("channels")), codes.InvalidArgument, "merchant.fee_plan.fees"},
		{"merchant update charging a channel not accepted", updateMerch(&pb.Merchant{Code: "A-1", FeePlan: &pb.FeePlan{Fees: []*pb.ChannelFee{fee(pb.Channel_CHANNEL_ZALOPAY, 1)}}}, mask("fee_plan")), codes.InvalidArgument, "merchant.fee_plan.fees"},
		{"merchant update to a half payout account", updateMerch(&pb.Merchant{Code: "A-1", PayoutAccount: &pb.PayoutAccount{BankBin: "970436"}}, mask("payout_account")), codes.InvalidArgument, "merchant.payout_account.account_number"},
		{"merchant update of a bad code", updateMerch(&pb.Merchant{Code: "", Phone: "0987654321"}, mask("phone")), codes.InvalidArgument, "merchant.code"},
		{"merchant update of an unknown merchant", updateMerch(&pb.Merchant{Code: "NOBODY", Phone: "0987654321"}, mask("phone")), codes.NotFound, "merchant.code"},
		{"merchant update of a closed merchant", updateMerch(&pb.Merchant{Code: "GONE", Phone: "0987654321"}, mask("phone")), codes.FailedPrecondition, "merchant.code"},
		{"merchant update to a stall taken", updateMerch(&pb.Merchant{Code: "A-1", Stalls: []string{"S-1", "S-8"}}, mask("stalls")), codes.AlreadyExists, "merchant.stalls"},

		// SuspendMerchant, ReinstateMerchant, CloseMerchant
		{"suspend a bad code", suspend("a 1", "x"), codes.InvalidArgument, "code"},
		{"suspend with a long reason", suspend("A-1", strings.Repeat("x", 201)), codes.InvalidArgument, "reason"},
		{"suspend with a control character", suspend("A-1", "bad\x1b[0m"), codes.InvalidArgument, "reason"},
		{"suspend an unknown merchant", suspend("NOBODY", "x"), codes.NotFound, "code"},
		{"suspend a pending merchant", suspend("NOPAY", "x"), codes.FailedPrecondition, "code"},
		{"suspend a closed merchant", suspend("GONE", "x"), codes.FailedPrecondition, "code"},
		{"reinstate a bad code", reinstate(""), codes.InvalidArgument, "code"},
		{"reinstate an active merchant", reinstate("A-1"), codes.FailedPrecondition, "code"},
		{"reinstate a closed merchant", reinstate("GONE"), codes.FailedPrecondition, "code"},
		{"reinstate an unknown merchant", reinstate("NOBODY"), codes.NotFound, "code"},
		{"close a bad code", closeM("A_1", ""), codes.InvalidArgument, "code"},
		{"close with a long reason", closeM("A-1", strings.Repeat("ờ", 201)), codes.InvalidArgument, "reason"},
		{"close a closed merchant", closeM("GONE", ""), codes.FailedPrecondition, "code"},
		{"close an unknown merchant", closeM("NOBODY", ""), codes.NotFound, "code"},

		// Reads refuse the same way.
		{"QR in a market without a collection account", func() error {
			_, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "BARE-1"})
			return err
		}, codes.FailedPrecondition, "code"},
		{"QR of a closed merchant", func() error {
			_, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "GONE"})
			return err
		}, codes.FailedPrecondition, "code"},
		{"QR of an unknown merchant", func() error {
			_, err := e.client.GetMerchantQr(ctx, &pb.GetMerchantQrRequest{Code: "NOBODY"})
			return err
		}, codes.NotFound, "code"},
		{"get an unknown market", func() error { _, err := e.client.GetMarket(ctx, &pb.GetMarketRequest{Code: "M404"}); return err }, codes.NotFound, "code"},
		{"get a bad merchant code", func() error { _, err := e.client.GetMerchant(ctx, &pb.GetMerchantRequest{Code: "x"}); return err }, codes.InvalidArgument, "code"},
		{"list markets with a negative page size", func() error { _, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{PageSize: -1}); return err }, codes.InvalidArgument, "page_size"},
		{"list markets of an unknown status", func() error { _, err := e.client.ListMarkets(ctx, &pb.ListMarketsRequest{Status: 5}); return err }, codes.InvalidArgument, "status"},
		{"list merchants with a forged token", func() error {
			_, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{PageToken: "bm9wZQ"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"list merchants with a market token", func() error {
			_, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{PageToken: marketToken.NextPageToken})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"list merchants of a bad market", func() error {
			_, err := e.client.ListMerchants(ctx, &pb.ListMerchantsRequest{Market: "m 1"})
			return err
		}, codes.InvalidArgument, "market"},
	}
	before := e.tableFingerprints(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("got %v: %q; want %v", st.Code(), st.Message(), tc.code)
			}
			if !strings.Contains(st.Message(), tc.field+": ") {
				t.Errorf("message %q does not name %s", st.Message(), tc.field)
			}
			if tc.code == codes.InvalidArgument {
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.FieldViolations {
							fields = append(fields, v.Field)
						}
					}
				}
				if !slices.Equal(fields, []string{tc.field}) {
					t.Errorf("field violations %v, want [%s]", fields, tc.field)
				}
			}
			if after := e.tableFingerprints(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a refused call wrote:\nbefore %v\nafter  %v", before, after)
				before = after
			}
		})
	}
}

// An account an operator opened by hand and posted to, under the code a
// merchant's payable or a market's account would have, is not taken over
// by the merchant or market created later: its money is someone else's (a
// supplier's), and a payout batch would pay it to the stall. The create is
// refused and writes nothing. An empty one is taken over, as one left by a
// create that failed after opening it.
func TestCreateRefusesAnAccountPostedToByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-DAITU", Name: "Chợ Đại Từ", Province: "Thái Nguyên", Ward: "Hùng Sơn"}}); err != nil {
		t.Fatal(err)
	}
	const cash, supplier = "market:TN-DAITU:cash", "merchant:TN-DAITU-0042:payable"
	e.account(t, cash, pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "TN-DAITU", false)
	e.account(t, supplier, pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", "TN-DAITU", true)
	e.account(t, "merchant:TN-DAITU-0043:payable", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", "TN-DAITU", true)
	e.account(t, "market:TN-PHUONG:suspense", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", "TN-PHUONG", false)
	e.account(t, "market:TN-PHUONG:cash", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "TN-PHUONG", false)
	for _, r := range []*pb.PostEntryRequest{
		{IdempotencyKey: "ice", Market: "TN-DAITU", Kind: "supplier_invoice", Currency: "VND", Postings: []*pb.PostingInput{
			posting(cash, debit, "70000"), posting(supplier, credit, "70000")}},
		{IdempotencyKey: "float", Market: "TN-PHUONG", Kind: "cash_float", Currency: "VND", Postings: []*pb.PostingInput{
			posting("market:TN-PHUONG:cash", debit, "4000"), posting("market:TN-PHUONG:suspense", credit, "4000")}},
	} {
		if _, err := e.client.PostEntry(ctx, r); err != nil {
			t.Fatalf("post %s: %v", r.IdempotencyKey, err)
		}
	}

	_, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: sampleMerchant("TN-DAITU-0042", "TN-DAITU", "A-1")})
	wantCode(t, err, codes.AlreadyExists, "merchant.code")
	if _, err := e.merchants.GetMerchant(ctx, &pb.GetMerchantRequest{Code: "TN-DAITU-0042"}); status.Code(err) != codes.NotFound {
		t.Errorf("merchant over the supplier's account: %v", err)
	}
	if bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: supplier}); err != nil || bal.Balance.Posted != "70000" {
		t.Errorf("supplier's account %v, %v", bal, err)
	}
	// The stall A-1 was not taken, and an empty account is taken over.
	e.merchantOf(t, sampleMerchant("TN-DAITU-0043", "TN-DAITU", "A-1"))

	_, err = e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: "TN-PHUONG", Name: "Chợ Phường", Province: "Thái Nguyên", Ward: "Hùng Sơn"}})
	wantCode(t, err, codes.AlreadyExists, "market.code")
	if _, err := e.merchants.GetMarket(ctx, &pb.GetMarketRequest{Code: "TN-PHUONG"}); status.Code(err) != codes.NotFound {
		t.Errorf("market over the cash float's suspense account: %v", err)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

func (e *env) merchantOf(t *testing.T, m *pb.Merchant) {
	t.Helper()
	if _, err := e.merchants.CreateMerchant(context.Background(), &pb.CreateMerchantRequest{Merchant: m}); err != nil {
		t.Fatalf("create merchant %s: %v", m.Code, err)
	}
}
