package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant"
)

// totalsOf builds report totals the way the service writes them.
func totalsOf(opening, payments, refunds, charged, returned int64, count int64) *pb.SettlementTotals {
	fees := charged - returned
	closing := opening + payments - refunds - fees
	s := func(v int64) string { return strconv.FormatInt(v, 10) }
	return &pb.SettlementTotals{
		OpeningBalance: s(opening), PaymentCount: count, Payments: s(payments), Refunds: s(refunds),
		FeesCharged: s(charged), FeesReturned: s(returned), Fees: s(fees), Payouts: "0", Adjustments: "0",
		ClosingBalance: s(closing), Pending: "0",
		Channels: []*pb.ChannelSettlement{
			{Channel: pb.Channel_CHANNEL_VIETQR, PaymentCount: count - 1, Payments: s(payments - 10_000), Refunds: s(refunds), FeesCharged: s(charged - 100), FeesReturned: s(returned)},
			{Channel: pb.Channel_CHANNEL_MOMO, PaymentCount: 1, Payments: "10000", Refunds: "0", FeesCharged: "100", FeesReturned: "0"},
		},
		Equation: fmt.Sprintf("opening %d + payments %d - refunds %d - fees %d (charged %d - returned %d) - payouts 0 + adjustments 0 = closing %d",
			opening, payments, refunds, fees, charged, returned, closing),
	}
}

// merchantReport is a consistent report of plan's days, each day alike.
func merchantReport(plan *settlementPlan, opening int64) *pb.GetMerchantSettlementResponse {
	start, _ := time.Parse(time.DateOnly, plan.Start)
	resp := &pb.GetMerchantSettlementResponse{Merchant: "TN-DAITU-0001", Market: "TN-DAITU", Currency: "VND",
		Period: &pb.SettlementPeriod{StartDay: plan.Start, EndDay: plan.End}}
	balance := opening
	for i := range plan.Days {
		t := totalsOf(balance, 50_000, 5_000, 500, 50, 3)
		resp.Days = append(resp.Days, &pb.SettlementDay{Day: start.AddDate(0, 0, i).Format(time.DateOnly), Totals: t})
		balance = mustInt(t.GetClosingBalance())
	}
	n := int64(plan.Days)
	resp.Totals = totalsOf(opening, 50_000*n, 5_000*n, 500*n, 50*n, 3*n)
	return resp
}

func testPlan(t testing.TB) *settlementPlan {
	plan, err := newSettlementPlan(newMerchantPicker(), 31, "2026-11-26", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestSettlementPlan(t *testing.T) {
	plan := testPlan(t)
	if plan.Start != "2026-10-27" || plan.End != "2026-11-26" || plan.Days != 31 {
		t.Errorf("period %s to %s, %d days", plan.Start, plan.End, plan.Days)
	}
	if len(plan.busy) != busyMerchants || len(plan.busyMkts) != busyMarkets || len(plan.busyMkts)+len(plan.tailMkts) != 107 {
		t.Errorf("%d busy merchants, %d busy and %d tail markets", len(plan.busy), len(plan.busyMkts), len(plan.tailMkts))
	}
	if len(plan.tail) != 9300-930 {
		t.Errorf("%d tail merchants", len(plan.tail))
	}
	var merchants int
	for _, n := range plan.marketSize {
		merchants += n
	}
	if merchants != 9300 {
		t.Errorf("market sizes add up to %d merchants", merchants)
	}
	// In Asia/Ho_Chi_Minh, 17:00 UTC is already the next day.
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	for end, want := range map[string]string{"today": "2026-11-27", "yesterday": "2026-11-26", "2026-01-31": "2026-01-31"} {
		p, err := newSettlementPlan(newMerchantPicker(), 1, end, at)
		if err != nil || p.Start != want || p.End != want {
			t.Errorf("-settlement-end %s: %s to %s, %v; want %s", end, p.Start, p.End, err, want)
		}
	}
	if _, err := newSettlementPlan(newMerchantPicker(), 31, "last week", at); err == nil {
		t.Error("a bad end day must be refused")
	}
}

func TestEquationFigures(t *testing.T) {
	got := equationFigures("opening -1500 + payments 45,000 - refunds 0 - fees 300 (charged 300 - returned 0) - payouts 0 + adjustments 0 = closing 43200")
	want := map[string]int64{"opening": -1500, "payments": 45000, "refunds": 0, "fees": 300, "charged": 300, "returned": 0, "payouts": 0, "adjustments": 0, "closing": 43200}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestCheckMerchantSettlement(t *testing.T) {
	plan := testPlan(t)
	req := &pb.GetMerchantSettlementRequest{Merchant: "TN-DAITU-0001", StartDay: plan.Start, EndDay: plan.End}
	if problems := checkMerchantSettlement(req, merchantReport(plan, 7_000), plan, "TN-DAITU"); len(problems) > 0 {
		t.Fatalf("a consistent report: %v", problems)
	}
	for name, spoil := range map[string]func(r *pb.GetMerchantSettlementResponse){
		"closing off by one": func(r *pb.GetMerchantSettlementResponse) { r.Totals.ClosingBalance = "1" },
		"equation text disagrees": func(r *pb.GetMerchantSettlementResponse) {
			r.Totals.Equation = strings.Replace(r.Totals.Equation, "refunds", "refunds 1 x", 1)
		},
		"a day missing":             func(r *pb.GetMerchantSettlementResponse) { r.Days = r.Days[1:] },
		"days do not chain":         func(r *pb.GetMerchantSettlementResponse) { r.Days[3], r.Days[4] = r.Days[4], r.Days[3] },
		"channels do not add up":    func(r *pb.GetMerchantSettlementResponse) { r.Totals.Channels = r.Totals.Channels[:1] },
		"an adjustment":             func(r *pb.GetMerchantSettlementResponse) { r.Days[2].Totals.Adjustments = "5" },
		"another period":            func(r *pb.GetMerchantSettlementResponse) { r.Period.EndDay = "2026-11-25" },
		"not whole dong":            func(r *pb.GetMerchantSettlementResponse) { r.Totals.Payments = "1.5" },
		"another merchant's report": func(r *pb.GetMerchantSettlementResponse) { r.Merchant = "TN-DAITU-0002" },
	} {
		r := merchantReport(plan, 7_000)
		spoil(r)
		if problems := checkMerchantSettlement(req, r, plan, "TN-DAITU"); len(problems) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}
}

func TestCheckMarketSettlement(t *testing.T) {
	plan := testPlan(t)
	mk := plan.busyMkts[0]
	m := merchantReport(plan, 0)
	resp := &pb.GetMarketSettlementResponse{Market: mk, Currency: "VND", Period: m.Period, Totals: m.Totals, Days: m.Days,
		TotalSize: int32(plan.marketSize[mk])}
	for i := range min(plan.marketSize[mk], plan.pageSize) {
		resp.Merchants = append(resp.Merchants, &pb.MerchantSettlementLine{Merchant: fmt.Sprint(i), Totals: totalsOf(0, 0, 0, 0, 0, 0)})
	}
	resp.Merchants[0].Totals.Channels = nil
	pays, refunds := mustInt(m.Totals.Payments), mustInt(m.Totals.Refunds)
	resp.Providers = []*pb.ProviderClearing{
		{Provider: "napas", OpeningOwed: "0", Payments: strconv.FormatInt(pays, 10), Refunds: strconv.FormatInt(refunds, 10), Settled: "1000", Reclassified: "0", Adjustments: "0",
			ClosingOwed: strconv.FormatInt(pays-refunds-1000, 10),
			Equation:    fmt.Sprintf("opening 0 + payments %d - refunds %d - settled 1000 - reclassified 0 + adjustments 0 = closing %d", pays, refunds, pays-refunds-1000)},
	}
	req := &pb.GetMarketSettlementRequest{Market: mk, StartDay: plan.Start, EndDay: plan.End}
	if problems := checkMarketSettlement(req, resp, plan); len(problems) > 0 {
		t.Fatalf("a consistent report: %v", problems)
	}
	resp.Providers[0].ClosingOwed = "0"
	if problems := checkMarketSettlement(req, resp, plan); len(problems) == 0 {
		t.Error("a provider whose equation does not hold: not noticed")
	}
	resp.Providers[0].ClosingOwed = strconv.FormatInt(pays-refunds-1000, 10)
	resp.Merchants = resp.Merchants[1:]
	if problems := checkMarketSettlement(req, resp, plan); len(problems) == 0 {
		t.Error("a line missing from the first page: not noticed")
	}
}

func BenchmarkCheckMerchantSettlement(b *testing.B) {
	plan := testPlan(b)
	req := &pb.GetMerchantSettlementRequest{Merchant: "TN-DAITU-0001", StartDay: plan.Start, EndDay: plan.End}
	resp := merchantReport(plan, 7_000)
	for b.Loop() {
		if p := checkMerchantSettlement(req, resp, plan, "TN-DAITU"); len(p) > 0 {
			b.Fatal(p)
		}
	}
}

// marketOfLines answers every market's report with the given lines, on one
// page, and totals, and a merchant's report with its line's totals.
type marketOfLines struct {
	pb.UnimplementedSettlementServiceServer
	plan      *settlementPlan
	lines     []*pb.MerchantSettlementLine
	totals    *pb.SettlementTotals
	providers []*pb.ProviderClearing
}

func (s *marketOfLines) period() *pb.SettlementPeriod {
	return &pb.SettlementPeriod{StartDay: s.plan.Start, EndDay: s.plan.End, AsOfSequence: 7}
}

func (s *marketOfLines) GetMarketSettlement(_ context.Context, req *pb.GetMarketSettlementRequest) (*pb.GetMarketSettlementResponse, error) {
	return &pb.GetMarketSettlementResponse{Market: req.GetMarket(), Currency: "VND", Period: s.period(), Totals: s.totals,
		Merchants: s.lines, TotalSize: int32(len(s.lines)), Providers: s.providers}, nil
}

func (s *marketOfLines) GetMerchantSettlement(_ context.Context, req *pb.GetMerchantSettlementRequest) (*pb.GetMerchantSettlementResponse, error) {
	for _, l := range s.lines {
		if l.GetMerchant() == req.GetMerchant() {
			return &pb.GetMerchantSettlementResponse{Merchant: l.GetMerchant(), Currency: "VND", Period: s.period(), Totals: l.GetTotals()}, nil
		}
	}
	return nil, status.Error(codes.NotFound, "no such line")
}

// A market's totals must be the sum of its merchants' lines in every
// figure: refunds and fees moved between lines and market, with the
// balances still agreeing, are a report that does not add up.
func TestCrossCheckMarketLinesAddUp(t *testing.T) {
	plan := testPlan(t)
	mk := plan.busyMkts[0]
	srv := &marketOfLines{plan: plan, totals: totalsOf(0, 100_000, 10_000, 1_000, 0, 4)}
	b := &bench{conns: []*grpc.ClientConn{serve(t, func(s *grpc.Server) { pb.RegisterSettlementServiceServer(s, srv) })}, auditor: newPrincipal("auditor", "secret", "auditor")}
	marketProblems := func() []string {
		_, problems := b.settlementCrossCheck(context.Background(), plan)
		var out []string
		for _, p := range problems {
			if strings.HasPrefix(p, mk) {
				out = append(out, p)
			}
		}
		return out
	}

	srv.lines = []*pb.MerchantSettlementLine{
		{Merchant: "A", Totals: totalsOf(0, 50_000, 10_000, 500, 0, 2)},
		{Merchant: "B", Totals: totalsOf(0, 50_000, 0, 500, 0, 2)},
	}
	if p := marketProblems(); len(p) > 0 {
		t.Fatalf("lines that add up: %v", p)
	}
	// B refunds 500 and is charged no fee: the lines still close at 89,000
	// in all, but refund 10,500 and charge 500, where the market says
	// 10,000 and 1,000.
	srv.lines[1].Totals = totalsOf(0, 50_000, 500, 0, 0, 2)
	if p := marketProblems(); len(p) == 0 {
		t.Error("a market whose refunds and fees are not its lines': not noticed")
	}
}

// balances answers GetBalance of an account with its balance as of a
// sequence (the end of a period), and of a time (the start of one).
type balances struct {
	pb.UnimplementedLedgerServiceServer
	atEnd, atStart map[string]*pb.Balance
}

func (s *balances) GetBalance(_ context.Context, req *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	m := s.atStart
	if req.GetAsOf().GetSequence() != 0 {
		m = s.atEnd
	}
	if b, ok := m[req.GetAccountCode()]; ok {
		return &pb.GetBalanceResponse{Balance: b}, nil
	}
	return nil, status.Error(codes.NotFound, "no such account")
}

// What a market's report says a provider owes must be what the ledger's
// balance of its clearing account says, at both ends of the period: a
// report whose provider equation holds, and whose payments and refunds
// are the market's, can still close at another figure than the money the
// provider owes.
func TestCrossCheckProviderOwedIsItsClearingBalance(t *testing.T) {
	plan := testPlan(t)
	mk := plan.busyMkts[0]
	clearing := merchant.ClearingAccount(merchant.ChannelVietQR, mk)
	srv := &marketOfLines{plan: plan, totals: totalsOf(0, 100_000, 10_000, 1_000, 0, 4),
		lines: []*pb.MerchantSettlementLine{{Merchant: "A", Totals: totalsOf(0, 100_000, 10_000, 1_000, 0, 4)}}}
	owed := func(opening, closing int64) *pb.ProviderClearing {
		return &pb.ProviderClearing{Provider: "napas", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, ClearingAccount: clearing,
			OpeningOwed: strconv.FormatInt(opening, 10), PaymentCount: 4, Payments: "100000", RefundCount: 1, Refunds: "10000",
			Settled: strconv.FormatInt(opening+90_000-closing, 10), Reclassified: "0", Adjustments: "0", ClosingOwed: strconv.FormatInt(closing, 10), Pending: "0",
			Equation: fmt.Sprintf("opening %d + payments 100000 - refunds 10000 - settled %d - reclassified 0 + adjustments 0 = closing %d", opening, opening+90_000-closing, closing)}
	}
	led := &balances{atStart: map[string]*pb.Balance{clearing: {Posted: "5000", DebitsPending: "0"}}, atEnd: map[string]*pb.Balance{clearing: {Posted: "20000", DebitsPending: "0"}}}
	conn := serve(t, func(s *grpc.Server) {
		pb.RegisterSettlementServiceServer(s, srv)
		pb.RegisterLedgerServiceServer(s, led)
	})
	b := &bench{conns: []*grpc.ClientConn{conn}, auditor: newPrincipal("auditor", "secret", "auditor")}
	marketProblems := func() []string {
		_, problems := b.settlementCrossCheck(context.Background(), plan)
		var out []string
		for _, p := range problems {
			if strings.Contains(p, mk) && !strings.Contains(p, "GetBalance merchant:") {
				out = append(out, p)
			}
		}
		return out
	}
	srv.providers = []*pb.ProviderClearing{owed(5_000, 20_000)}
	if p := marketProblems(); len(p) > 0 {
		t.Fatalf("a provider owing what its clearing account holds: %v", p)
	}
	for what, p := range map[string]*pb.ProviderClearing{
		"closing owed 15,000, the ledger's balance 20,000": owed(5_000, 15_000),
		"opening owed 0, the ledger's balance 5,000":       owed(0, 20_000),
	} {
		srv.providers = []*pb.ProviderClearing{p}
		if len(marketProblems()) == 0 {
			t.Errorf("%s: not noticed", what)
		}
	}
}
