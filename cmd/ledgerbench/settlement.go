package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant"
)

// The settlement scenarios read settlement reports over a period of
// -settlement-days days ending -settlement-end, as the auditor:
//
//	settlement         GetMerchantSettlement
//	settlement-market  GetMarketSettlement (its first page of merchant lines)
//
// Half the calls ask about the busy ones (the 20 busiest merchants, the 5
// busiest markets of the market-day skew), half about the long tail (a
// merchant outside the busiest tenth, any other market), and latency is
// kept apart for each. Every answer is checked: the settlement equation
// holds for the period, each day and each channel split, and agrees with
// the figures its equation text states; the days chain; a market's
// providers add up to its totals. Afterwards, outside the measurement, a
// few merchants' closing balances are compared with the ledger's balance
// and a few markets' merchant lines, all pages, with the market's totals.
// A failed check fails the run.

// ict is Asia/Ho_Chi_Minh: UTC+7, no daylight saving. Settlement days are
// its calendar days.
var ict = time.FixedZone("ICT", 7*3600)

const (
	busyMerchants = 20
	busyMarkets   = 5
	busyClass     = "busy"
	tailClass     = "tail"
)

// settlementPlan is what the settlement scenarios ask about.
type settlementPlan struct {
	Start, End   string // days, inclusive
	Days         int
	busy, tail   []stall
	busyMkts     []string
	tailMkts     []string
	marketSize   map[string]int // merchants per market, as seeded: a market report lists each
	pageSize     int            // GetMarketSettlement's default page
	merchantTail int            // rank from which a merchant is in the tail
}

// newSettlementPlan picks the period and the busy and long-tail merchants
// and markets.
func newSettlementPlan(p *merchantPicker, days int, end string, now time.Time) (*settlementPlan, error) {
	today := now.In(ict)
	var last time.Time
	switch end {
	case "", "today":
		last = today
	case "yesterday":
		last = today.AddDate(0, 0, -1)
	default:
		t, err := time.ParseInLocation(time.DateOnly, end, ict)
		if err != nil {
			return nil, fmt.Errorf("-settlement-end %q: want today, yesterday or YYYY-MM-DD", end)
		}
		last = t
	}
	if days < 1 {
		return nil, fmt.Errorf("-settlement-days must be at least 1")
	}
	plan := &settlementPlan{
		Start: last.AddDate(0, 0, -(days - 1)).Format(time.DateOnly), End: last.Format(time.DateOnly), Days: days,
		marketSize: map[string]int{}, pageSize: 100, merchantTail: len(p.stalls) / 10,
	}
	plan.busy = p.stalls[:min(busyMerchants, len(p.stalls))]
	plan.tail = p.stalls[min(plan.merchantTail, len(p.stalls)-1):]
	weight := map[string]float64{}
	for rank, s := range p.stalls {
		weight[s.market] += p.weight(rank)
		plan.marketSize[s.market]++
	}
	markets := make([]string, 0, len(weight))
	for m := range weight {
		markets = append(markets, m)
	}
	sort.Slice(markets, func(i, j int) bool {
		if weight[markets[i]] != weight[markets[j]] {
			return weight[markets[i]] > weight[markets[j]]
		}
		return markets[i] < markets[j]
	})
	n := min(busyMarkets, len(markets))
	plan.busyMkts, plan.tailMkts = markets[:n], markets[n:]
	return plan, nil
}

// opSettlement reads one merchant's settlement for the period.
func opSettlement(w *worker) {
	plan := w.b.settle
	class, list := busyClass, plan.busy
	if w.rng.IntN(2) == 1 {
		class, list = tailClass, plan.tail
	}
	m := list[w.rng.IntN(len(list))]
	req := &pb.GetMerchantSettlementRequest{Merchant: m.code, StartDay: plan.Start, EndDay: plan.End}
	var resp *pb.GetMerchantSettlementResponse
	err := w.call("GetMerchantSettlement/"+class, &w.b.auditor, func(ctx context.Context) error {
		var err error
		resp, err = w.set.GetMerchantSettlement(ctx, req)
		return err
	})
	if err != nil {
		return
	}
	if problems := checkMerchantSettlement(req, resp, plan, m.market); len(problems) > 0 {
		w.sc.anomaly("GetMerchantSettlement %s %s to %s: %s", m.code, plan.Start, plan.End, strings.Join(problems, "; "))
	}
	w.sc.checked.Add(1)
	w.done(1, 0)
}

// opMarketSettlement reads one market's settlement for the period, with
// its first page of merchant lines.
func opMarketSettlement(w *worker) {
	plan := w.b.settle
	class, list := busyClass, plan.busyMkts
	if w.rng.IntN(2) == 1 && len(plan.tailMkts) > 0 {
		class, list = tailClass, plan.tailMkts
	}
	mk := list[w.rng.IntN(len(list))]
	req := &pb.GetMarketSettlementRequest{Market: mk, StartDay: plan.Start, EndDay: plan.End}
	var resp *pb.GetMarketSettlementResponse
	err := w.call("GetMarketSettlement/"+class, &w.b.auditor, func(ctx context.Context) error {
		var err error
		resp, err = w.set.GetMarketSettlement(ctx, req)
		return err
	})
	if err != nil {
		return
	}
	if problems := checkMarketSettlement(req, resp, plan); len(problems) > 0 {
		w.sc.anomaly("GetMarketSettlement %s %s to %s: %s", mk, plan.Start, plan.End, strings.Join(problems, "; "))
	}
	w.sc.checked.Add(1)
	w.done(1, 0)
}

// figures are a report's totals as integers (đồng and counts).
type figures struct {
	opening, payments, refunds, fees, charged, returned, payouts, adjustments, closing, pending int64
	paymentCount, refundCount                                                                   int64
}

// dong parses a whole-đồng amount of a report.
func dong(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not whole đồng", s)
	}
	return v, nil
}

// equationFigures reads the "name amount" pairs of a report's equation
// text, e.g. "opening 1500 + payments 45000 - refunds 0 - fees 300 (charged
// 300 - returned 0) - payouts 0 + adjustments 0 = closing 46200". (Every
// answer is checked, so this is a scan rather than a regular expression.)
func equationFigures(text string) map[string]int64 {
	out := make(map[string]int64, 10)
	f := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '(' || r == ')' })
	for i := 0; i+1 < len(f); i++ {
		if !isName(f[i]) {
			continue
		}
		if v, err := strconv.ParseInt(strings.ReplaceAll(f[i+1], ",", ""), 10, 64); err == nil {
			out[f[i]] = v
			i++
		}
	}
	return out
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return s != ""
}

// checkEquation checks that an equation text states each of the given
// figures, and states it as the fields do.
func checkEquation(where, text string, want map[string]int64) []string {
	got := equationFigures(text)
	var out []string
	for _, name := range sortedKeys(want) {
		v, ok := got[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: equation %q does not state %s", where, text, name))
		case v != want[name]:
			out = append(out, fmt.Sprintf("%s: equation %q states %s %d, the field says %d", where, text, name, v, want[name]))
		}
	}
	return out
}

// checkTotals checks one set of settlement totals: its equation holds, its
// text states the figures, the channels add up, and nothing is unexplained
// (no entry in a bench ledger adjusts a payable).
func checkTotals(where string, t *pb.SettlementTotals) (figures, []string) {
	var f figures
	var out []string
	if t == nil {
		return f, []string{where + ": no totals"}
	}
	for _, x := range []struct {
		dst *int64
		s   string
		n   string
	}{
		{&f.opening, t.GetOpeningBalance(), "opening_balance"}, {&f.payments, t.GetPayments(), "payments"},
		{&f.refunds, t.GetRefunds(), "refunds"}, {&f.fees, t.GetFees(), "fees"}, {&f.charged, t.GetFeesCharged(), "fees_charged"},
		{&f.returned, t.GetFeesReturned(), "fees_returned"}, {&f.payouts, t.GetPayouts(), "payouts"},
		{&f.adjustments, t.GetAdjustments(), "adjustments"}, {&f.closing, t.GetClosingBalance(), "closing_balance"},
		{&f.pending, t.GetPending(), "pending"},
	} {
		v, err := dong(x.s)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %s %v", where, x.n, err))
		}
		*x.dst = v
	}
	f.paymentCount, f.refundCount = t.GetPaymentCount(), t.GetRefundCount()
	if len(out) > 0 {
		return f, out
	}
	if got := f.opening + f.payments - f.refunds - f.fees - f.payouts + f.adjustments; got != f.closing {
		out = append(out, fmt.Sprintf("%s: opening %d + payments %d - refunds %d - fees %d - payouts %d + adjustments %d = %d, not closing %d",
			where, f.opening, f.payments, f.refunds, f.fees, f.payouts, f.adjustments, got, f.closing))
	}
	if f.fees != f.charged-f.returned {
		out = append(out, fmt.Sprintf("%s: fees %d are not charged %d - returned %d", where, f.fees, f.charged, f.returned))
	}
	if f.adjustments != 0 {
		out = append(out, fmt.Sprintf("%s: adjustments %d: the payable moved by something other than payments, refunds, fees and payouts", where, f.adjustments))
	}
	out = append(out, checkEquation(where, t.GetEquation(), map[string]int64{
		"opening": f.opening, "payments": f.payments, "refunds": f.refunds, "fees": f.fees, "payouts": f.payouts, "closing": f.closing,
	})...)
	var ch figures
	for _, c := range t.GetChannels() {
		for _, x := range []struct {
			dst *int64
			s   string
		}{{&ch.payments, c.GetPayments()}, {&ch.refunds, c.GetRefunds()}, {&ch.charged, c.GetFeesCharged()}, {&ch.returned, c.GetFeesReturned()}} {
			v, err := dong(x.s)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: channel %s: %v", where, c.GetChannel(), err))
			}
			*x.dst += v
		}
		ch.paymentCount += c.GetPaymentCount()
		ch.refundCount += c.GetRefundCount()
	}
	if ch.payments != f.payments || ch.refunds != f.refunds || ch.charged != f.charged || ch.returned != f.returned ||
		ch.paymentCount != f.paymentCount || ch.refundCount != f.refundCount {
		out = append(out, fmt.Sprintf("%s: the channels add up to payments %d (%d), refunds %d (%d), fees charged %d, returned %d; the totals say %d (%d), %d (%d), %d, %d",
			where, ch.payments, ch.paymentCount, ch.refunds, ch.refundCount, ch.charged, ch.returned,
			f.payments, f.paymentCount, f.refunds, f.refundCount, f.charged, f.returned))
	}
	return f, out
}

// checkDays checks a report's days: one per day of the period, in order,
// each balanced, each opening where the day before closed, and together
// the period's totals.
func checkDays(where string, days []*pb.SettlementDay, total figures, plan *settlementPlan) []string {
	var out []string
	if len(days) != plan.Days {
		return []string{fmt.Sprintf("%s: %d days for a period of %d", where, len(days), plan.Days)}
	}
	start, _ := time.Parse(time.DateOnly, plan.Start)
	var sum figures
	balance := total.opening
	for i, d := range days {
		want := start.AddDate(0, 0, i).Format(time.DateOnly)
		if d.GetDay() != want {
			out = append(out, fmt.Sprintf("%s: day %d is %s, want %s", where, i, d.GetDay(), want))
			continue
		}
		f, problems := checkTotals(where+" "+want, d.GetTotals())
		out = append(out, problems...)
		if f.opening != balance {
			out = append(out, fmt.Sprintf("%s %s: opens at %d, the day before closed at %d", where, want, f.opening, balance))
		}
		balance = f.closing
		sum.payments += f.payments
		sum.refunds += f.refunds
		sum.fees += f.fees
		sum.payouts += f.payouts
		sum.paymentCount += f.paymentCount
		sum.refundCount += f.refundCount
		if i == len(days)-1 && f.pending != total.pending {
			out = append(out, fmt.Sprintf("%s: the last day ends with %d pending, the period with %d", where, f.pending, total.pending))
		}
	}
	if balance != total.closing || sum.payments != total.payments || sum.refunds != total.refunds || sum.fees != total.fees ||
		sum.payouts != total.payouts || sum.paymentCount != total.paymentCount || sum.refundCount != total.refundCount {
		out = append(out, fmt.Sprintf("%s: the days add up to closing %d, payments %d (%d), refunds %d (%d), fees %d, payouts %d; the period says %d, %d (%d), %d (%d), %d, %d",
			where, balance, sum.payments, sum.paymentCount, sum.refunds, sum.refundCount, sum.fees, sum.payouts,
			total.closing, total.payments, total.paymentCount, total.refunds, total.refundCount, total.fees, total.payouts))
	}
	return out
}

func checkPeriod(where string, p *pb.SettlementPeriod, plan *settlementPlan) []string {
	if p.GetStartDay() != plan.Start || p.GetEndDay() != plan.End {
		return []string{fmt.Sprintf("%s: period %s to %s, asked for %s to %s", where, p.GetStartDay(), p.GetEndDay(), plan.Start, plan.End)}
	}
	return nil
}

func checkMerchantSettlement(req *pb.GetMerchantSettlementRequest, resp *pb.GetMerchantSettlementResponse, plan *settlementPlan, market string) []string {
	where := "merchant " + req.GetMerchant()
	var out []string
	if resp.GetMerchant() != req.GetMerchant() || resp.GetMarket() != market || resp.GetCurrency() != "VND" {
		out = append(out, fmt.Sprintf("%s: answered for merchant %q of market %q in %q", where, resp.GetMerchant(), resp.GetMarket(), resp.GetCurrency()))
	}
	out = append(out, checkPeriod(where, resp.GetPeriod(), plan)...)
	total, problems := checkTotals(where, resp.GetTotals())
	out = append(out, problems...)
	return append(out, checkDays(where, resp.GetDays(), total, plan)...)
}

func checkMarketSettlement(req *pb.GetMarketSettlementRequest, resp *pb.GetMarketSettlementResponse, plan *settlementPlan) []string {
	where := "market " + req.GetMarket()
	var out []string
	if resp.GetMarket() != req.GetMarket() || resp.GetCurrency() != "VND" {
		out = append(out, fmt.Sprintf("%s: answered for market %q in %q", where, resp.GetMarket(), resp.GetCurrency()))
	}
	out = append(out, checkPeriod(where, resp.GetPeriod(), plan)...)
	total, problems := checkTotals(where, resp.GetTotals())
	out = append(out, problems...)
	out = append(out, checkDays(where, resp.GetDays(), total, plan)...)
	size := plan.marketSize[req.GetMarket()]
	if int(resp.GetTotalSize()) != size || len(resp.GetMerchants()) != min(size, plan.pageSize) {
		out = append(out, fmt.Sprintf("%s: %d merchant lines of %d on the first page; the market has %d merchants, a page %d",
			where, len(resp.GetMerchants()), resp.GetTotalSize(), size, plan.pageSize))
	}
	for _, l := range resp.GetMerchants() {
		_, problems := checkTotals(where+" line "+l.GetMerchant(), l.GetTotals())
		out = append(out, problems...)
	}
	var payments, refunds int64
	for _, p := range resp.GetProviders() {
		pw := where + " provider " + p.GetProvider()
		var f struct{ opening, payments, refunds, settled, reclassified, adjustments, closing int64 }
		bad := false
		for _, x := range []struct {
			dst *int64
			s   string
		}{{&f.opening, p.GetOpeningOwed()}, {&f.payments, p.GetPayments()}, {&f.refunds, p.GetRefunds()},
			{&f.settled, p.GetSettled()}, {&f.reclassified, p.GetReclassified()}, {&f.adjustments, p.GetAdjustments()}, {&f.closing, p.GetClosingOwed()}} {
			v, err := dong(x.s)
			if err != nil {
				out, bad = append(out, fmt.Sprintf("%s: %v", pw, err)), true
			}
			*x.dst = v
		}
		if bad {
			continue
		}
		if got := f.opening + f.payments - f.refunds - f.settled - f.reclassified + f.adjustments; got != f.closing {
			out = append(out, fmt.Sprintf("%s: opening %d + payments %d - refunds %d - settled %d - reclassified %d + adjustments %d = %d, not closing %d",
				pw, f.opening, f.payments, f.refunds, f.settled, f.reclassified, f.adjustments, got, f.closing))
		}
		if f.adjustments != 0 {
			out = append(out, fmt.Sprintf("%s: adjustments %d: the clearing account moved by something other than payments, refunds and settlements", pw, f.adjustments))
		}
		out = append(out, checkEquation(pw, p.GetEquation(), map[string]int64{
			"opening": f.opening, "payments": f.payments, "refunds": f.refunds, "settled": f.settled, "reclassified": f.reclassified, "closing": f.closing,
		})...)
		payments += f.payments
		refunds += f.refunds
	}
	if payments != total.payments || refunds != total.refunds {
		out = append(out, fmt.Sprintf("%s: the providers' payments %d and refunds %d are not the market's %d and %d", where, payments, refunds, total.payments, total.refunds))
	}
	return out
}

// settlementCrossCheck compares reports with the ledger, outside the
// measurement: a few merchants' opening and closing balances and pending
// credits with LedgerService.GetBalance at the period's edges, and a few
// markets' totals with the sum of all their merchant lines, page by page,
// their providers' owed and pending with their clearing accounts' balances
// at the period's edges, and their busiest line with that merchant's own
// report as of the same sequence.
func (b *bench) settlementCrossCheck(ctx context.Context, plan *settlementPlan) (checked int, problems []string) {
	set := pb.NewSettlementServiceClient(b.conns[0])
	led := pb.NewLedgerServiceClient(b.conns[0])
	call := func(fn func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(b.auditor.ctx(ctx), 60*time.Second)
		defer cancel()
		return fn(cctx)
	}
	merchants := append(slices.Clone(plan.busy[:min(5, len(plan.busy))]), plan.tail[:min(5, len(plan.tail))]...)
	for _, m := range merchants {
		var rep *pb.GetMerchantSettlementResponse
		if err := call(func(ctx context.Context) (err error) {
			rep, err = set.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: m.code, StartDay: plan.Start, EndDay: plan.End})
			return err
		}); err != nil {
			problems = append(problems, fmt.Sprintf("cross-check GetMerchantSettlement %s: %v", m.code, err))
			continue
		}
		account := merchant.PayableAccount(m.code)
		var end, start *pb.GetBalanceResponse
		err := call(func(ctx context.Context) (err error) {
			end, err = led.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: account, AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: rep.GetPeriod().GetAsOfSequence()}}})
			if err != nil {
				return err
			}
			before := rep.GetPeriod().GetStartTime().AsTime().Add(-time.Microsecond)
			start, err = led.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: account, AsOf: &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(before)}}})
			return err
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("cross-check GetBalance %s: %v", account, err))
			continue
		}
		t := rep.GetTotals()
		if end.GetBalance().GetPosted() != t.GetClosingBalance() || end.GetBalance().GetCreditsPending() != t.GetPending() ||
			start.GetBalance().GetPosted() != t.GetOpeningBalance() {
			problems = append(problems, fmt.Sprintf("%s %s to %s: opening %s, closing %s, pending %s; the ledger's balance %s before the period, %s and %s pending as of sequence %d",
				m.code, plan.Start, plan.End, t.GetOpeningBalance(), t.GetClosingBalance(), t.GetPending(),
				start.GetBalance().GetPosted(), end.GetBalance().GetPosted(), end.GetBalance().GetCreditsPending(), rep.GetPeriod().GetAsOfSequence()))
		}
		checked++
	}

	markets := append(slices.Clone(plan.busyMkts[:min(2, len(plan.busyMkts))]), plan.tailMkts[:min(2, len(plan.tailMkts))]...)
	for _, mk := range markets {
		var first *pb.GetMarketSettlementResponse
		var lines []*pb.MerchantSettlementLine
		token := ""
		for page := 0; page < 1000; page++ {
			var resp *pb.GetMarketSettlementResponse
			if err := call(func(ctx context.Context) (err error) {
				resp, err = set.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: plan.Start, EndDay: plan.End, PageSize: 40, PageToken: token})
				return err
			}); err != nil {
				problems = append(problems, fmt.Sprintf("cross-check GetMarketSettlement %s page %d: %v", mk, page+1, err))
				break
			}
			if first == nil {
				first = resp
			} else if resp.GetPeriod().GetAsOfSequence() != first.GetPeriod().GetAsOfSequence() {
				problems = append(problems, fmt.Sprintf("%s: page %d is as of sequence %d, the first %d", mk, page+1, resp.GetPeriod().GetAsOfSequence(), first.GetPeriod().GetAsOfSequence()))
			}
			lines = append(lines, resp.GetMerchants()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if first == nil {
			continue
		}
		var sum figures
		for _, l := range lines {
			f, p := checkTotals(mk+" line "+l.GetMerchant(), l.GetTotals())
			problems = append(problems, p...)
			sum.opening += f.opening
			sum.closing += f.closing
			sum.payments += f.payments
			sum.refunds += f.refunds
			sum.fees += f.fees
			sum.payouts += f.payouts
			sum.pending += f.pending
			sum.paymentCount += f.paymentCount
			sum.refundCount += f.refundCount
		}
		total, p := checkTotals(mk, first.GetTotals())
		problems = append(problems, p...)
		// Every figure, not only the balances: refunds and fees can move
		// between lines and market with the closing balances still agreeing.
		if len(lines) != int(first.GetTotalSize()) || sum.opening != total.opening || sum.closing != total.closing ||
			sum.payments != total.payments || sum.refunds != total.refunds || sum.fees != total.fees || sum.payouts != total.payouts ||
			sum.pending != total.pending || sum.paymentCount != total.paymentCount || sum.refundCount != total.refundCount {
			problems = append(problems, fmt.Sprintf("%s: %d lines (of %d) add up to opening %d, closing %d, payments %d (%d), refunds %d (%d), fees %d, payouts %d, pending %d; the market says %d, %d, %d (%d), %d (%d), %d, %d, %d",
				mk, len(lines), first.GetTotalSize(), sum.opening, sum.closing, sum.payments, sum.paymentCount, sum.refunds, sum.refundCount, sum.fees, sum.payouts, sum.pending,
				total.opening, total.closing, total.payments, total.paymentCount, total.refunds, total.refundCount, total.fees, total.payouts, total.pending))
		}
		// What each provider owes, against the ledger's balance of its
		// clearing account at the period's edges: its equation holding,
		// and its payments and refunds the market's, say nothing of the
		// money it starts and ends with.
		for _, pc := range first.GetProviders() {
			var end, start *pb.GetBalanceResponse
			err := call(func(ctx context.Context) (err error) {
				end, err = led.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: pc.GetClearingAccount(), AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: first.GetPeriod().GetAsOfSequence()}}})
				if err != nil {
					return err
				}
				before := first.GetPeriod().GetStartTime().AsTime().Add(-time.Microsecond)
				start, err = led.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: pc.GetClearingAccount(), AsOf: &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(before)}}})
				return err
			})
			if err != nil {
				problems = append(problems, fmt.Sprintf("cross-check GetBalance %s: %v", pc.GetClearingAccount(), err))
				continue
			}
			if end.GetBalance().GetPosted() != pc.GetClosingOwed() || end.GetBalance().GetDebitsPending() != pc.GetPending() ||
				start.GetBalance().GetPosted() != pc.GetOpeningOwed() {
				problems = append(problems, fmt.Sprintf("%s provider %s %s to %s: opening owed %s, closing owed %s, pending %s; the ledger's balance of %s %s before the period, %s and %s pending as of sequence %d",
					mk, pc.GetProvider(), plan.Start, plan.End, pc.GetOpeningOwed(), pc.GetClosingOwed(), pc.GetPending(), pc.GetClearingAccount(),
					start.GetBalance().GetPosted(), end.GetBalance().GetPosted(), end.GetBalance().GetDebitsPending(), first.GetPeriod().GetAsOfSequence()))
			}
		}
		// One line against the merchant's own report as of the market's
		// sequence: the busiest line, where most can go wrong.
		if len(lines) > 0 {
			l := slices.MaxFunc(lines, func(a, b *pb.MerchantSettlementLine) int {
				return int(a.GetTotals().GetPaymentCount() - b.GetTotals().GetPaymentCount())
			})
			var rep *pb.GetMerchantSettlementResponse
			if err := call(func(ctx context.Context) (err error) {
				rep, err = set.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: l.GetMerchant(), StartDay: plan.Start, EndDay: plan.End,
					AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: first.GetPeriod().GetAsOfSequence()}}})
				return err
			}); err != nil {
				problems = append(problems, fmt.Sprintf("cross-check GetMerchantSettlement %s: %v", l.GetMerchant(), err))
			} else if a, b := l.GetTotals(), rep.GetTotals(); a.GetClosingBalance() != b.GetClosingBalance() || a.GetOpeningBalance() != b.GetOpeningBalance() ||
				a.GetPayments() != b.GetPayments() || a.GetPaymentCount() != b.GetPaymentCount() || a.GetPending() != b.GetPending() || a.GetFees() != b.GetFees() {
				problems = append(problems, fmt.Sprintf("%s: its line in %s says %q, its own report as of sequence %d says %q", l.GetMerchant(), mk, a.GetEquation(), first.GetPeriod().GetAsOfSequence(), b.GetEquation()))
			}
		}
		checked++
	}
	return checked, problems
}
