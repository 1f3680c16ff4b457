package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/settlement"
)

// providers names each channel's provider as account codes do.
var providers = map[pb.Channel]string{
	pb.Channel_CHANNEL_VIETQR:         "napas",
	pb.Channel_CHANNEL_VIETTEL_MONEY:  "viettelmoney",
	pb.Channel_CHANNEL_VNPT_MONEY:     "vnptmoney",
	pb.Channel_CHANNEL_MOBIFONE_MONEY: "mobifonemoney",
	pb.Channel_CHANNEL_MOMO:           "momo",
	pb.Channel_CHANNEL_ZALOPAY:        "zalopay",
}

var allChannels = []pb.Channel{
	pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_VIETTEL_MONEY, pb.Channel_CHANNEL_VNPT_MONEY,
	pb.Channel_CHANNEL_MOBIFONE_MONEY, pb.Channel_CHANNEL_MOMO, pb.Channel_CHANNEL_ZALOPAY,
}

func clearingOf(ch pb.Channel, market string) string {
	return "provider:" + providers[ch] + ":market:" + market + ":clearing"
}

func (e *env) checkRollups(t *testing.T) {
	t.Helper()
	v, err := settlement.CheckRollups(context.Background(), e.db.Pool)
	if err != nil {
		t.Fatalf("check rollups: %v", err)
	}
	for _, x := range v {
		t.Errorf("rollups broken: %s", x)
	}
}

// settleSnapshot is every row a settlement call could write.
func (e *env) settleSnapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := e.db.Pool.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM ledger_accounts), (SELECT count(*) FROM provider_settlements),
		(SELECT count(*) FROM ledger_daily_totals), (SELECT COALESCE(sum(debits_posted + credits_posted + debits_pending + credits_pending), 0) FROM ledger_daily_totals),
		(SELECT count(*) FROM settlement_daily_totals), (SELECT count(*) FROM payment_daily_totals),
		(SELECT count(*) FROM suspense_reclassifications))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkIdentity asserts the settlement arithmetic on the strings a client
// gets: opening + payments - refunds - fees - payouts + adjustments =
// closing, fees = charged - returned, and the channels sum to the totals.
func checkIdentity(t *testing.T, what string, s *pb.SettlementTotals) {
	t.Helper()
	if num(s.Fees) != num(s.FeesCharged)-num(s.FeesReturned) {
		t.Errorf("%s: fees %s, charged %s, returned %s", what, s.Fees, s.FeesCharged, s.FeesReturned)
	}
	if num(s.OpeningBalance)+num(s.Payments)-num(s.Refunds)-num(s.Fees)-num(s.Payouts)+num(s.Adjustments) != num(s.ClosingBalance) {
		t.Errorf("%s: does not balance: %s", what, s.Equation)
	}
	var n, gross, charged, rn, refunded, returned int64
	for _, c := range s.Channels {
		n, gross, charged = n+c.PaymentCount, gross+num(c.Payments), charged+num(c.FeesCharged)
		rn, refunded, returned = rn+c.RefundCount, refunded+num(c.Refunds), returned+num(c.FeesReturned)
	}
	if n != s.PaymentCount || gross != num(s.Payments) || charged != num(s.FeesCharged) || rn != s.RefundCount || refunded != num(s.Refunds) || returned != num(s.FeesReturned) {
		t.Errorf("%s: channels do not sum to the totals: %v", what, s)
	}
}

// checkDays asserts each day balances and opens with the previous day's
// closing, and that the days add up to the period.
func checkDays(t *testing.T, what string, total *pb.SettlementTotals, days []*pb.SettlementDay) {
	t.Helper()
	checkIdentity(t, what, total)
	if len(days) == 0 {
		t.Fatalf("%s: no days", what)
	}
	balance := total.OpeningBalance
	var payments, refunds, fees, payouts int64
	for _, d := range days {
		checkIdentity(t, what+" "+d.Day, d.Totals)
		if d.Totals.OpeningBalance != balance {
			t.Errorf("%s %s: opens at %s, the day before closed at %s", what, d.Day, d.Totals.OpeningBalance, balance)
		}
		balance = d.Totals.ClosingBalance
		payments, refunds, fees, payouts = payments+num(d.Totals.Payments), refunds+num(d.Totals.Refunds), fees+num(d.Totals.Fees), payouts+num(d.Totals.Payouts)
	}
	if balance != total.ClosingBalance || days[len(days)-1].Totals.Pending != total.Pending ||
		payments != num(total.Payments) || refunds != num(total.Refunds) || fees != num(total.Fees) || payouts != num(total.Payouts) {
		t.Errorf("%s: days do not add up to the period %v", what, total)
	}
}

// addTotals adds b into a, channels included: what a market's totals must
// be for its merchant lines.
func addTotals(a *pb.SettlementTotals, b *pb.SettlementTotals) {
	add := func(x *string, y string) { *x = fmt.Sprint(num(*x) + num(y)) }
	add(&a.OpeningBalance, b.OpeningBalance)
	a.PaymentCount += b.PaymentCount
	add(&a.Payments, b.Payments)
	a.RefundCount += b.RefundCount
	add(&a.Refunds, b.Refunds)
	add(&a.FeesCharged, b.FeesCharged)
	add(&a.FeesReturned, b.FeesReturned)
	add(&a.Fees, b.Fees)
	a.PayoutCount += b.PayoutCount
	add(&a.Payouts, b.Payouts)
	add(&a.Adjustments, b.Adjustments)
	add(&a.ClosingBalance, b.ClosingBalance)
	add(&a.Pending, b.Pending)
	for _, c := range b.Channels {
		i := slices.IndexFunc(a.Channels, func(x *pb.ChannelSettlement) bool { return x.Channel == c.Channel })
		if i < 0 {
			a.Channels = append(a.Channels, &pb.ChannelSettlement{Channel: c.Channel, Provider: c.Provider,
				Payments: "0", FeesCharged: "0", Refunds: "0", FeesReturned: "0"})
			i = len(a.Channels) - 1
		}
		x := a.Channels[i]
		x.PaymentCount += c.PaymentCount
		add(&x.Payments, c.Payments)
		add(&x.FeesCharged, c.FeesCharged)
		x.RefundCount += c.RefundCount
		add(&x.Refunds, c.Refunds)
		add(&x.FeesReturned, c.FeesReturned)
	}
	slices.SortFunc(a.Channels, func(x, y *pb.ChannelSettlement) int { return int(x.Channel) - int(y.Channel) })
}

func zeroTotals() *pb.SettlementTotals {
	return &pb.SettlementTotals{OpeningBalance: "0", Payments: "0", Refunds: "0", FeesCharged: "0", FeesReturned: "0", Fees: "0",
		Payouts: "0", Adjustments: "0", ClosingBalance: "0", Pending: "0"}
}

// withoutEquation compares totals by their figures.
func withoutEquation(s *pb.SettlementTotals) *pb.SettlementTotals {
	c := proto.Clone(s).(*pb.SettlementTotals)
	c.Equation = ""
	return c
}

// The model of what the settlement must say, kept from PaymentService's
// answers alone.
type channelModel struct{ payments, gross, fees, refunds, refunded, feesReturned int64 }

type merchantModel struct {
	market   string
	channels []pb.Channel
	byCh     map[pb.Channel]*channelModel
	pending  map[string]int64 // payment id → what it would add (amount - fee)
	// Paid out by payout batches.
	payouts, paidOut int64
	// Without a payout account: always skipped.
	noPayoutAccount bool
}

func (m *merchantModel) ch(c pb.Channel) *channelModel {
	if m.byCh[c] == nil {
		m.byCh[c] = &channelModel{}
	}
	return m.byCh[c]
}

func (m *merchantModel) closing() int64 {
	var v int64
	for _, c := range m.byCh {
		v += c.gross - c.fees - c.refunded + c.feesReturned
	}
	return v - m.paidOut
}

func (m *merchantModel) pendingTotal() int64 {
	var v int64
	for _, p := range m.pending {
		v += p
	}
	return v
}

type snapshotAt struct {
	merchant, market string
	at               time.Time
	seq              int64
	totals           *pb.SettlementTotals
}

// Many market days' worth of payments across three markets, through
// PaymentService, with provider settlements between them: for every
// merchant and every market the settlement balances for the period and for
// each day, matches what PaymentService answered, and closes at the
// ledger's balance as of the same point; every market's totals are the sum
// of its merchant lines, page by page, in both orders; what each provider
// owes is its clearing balance; reports as of earlier points reproduce what
// was reported then; and the ledger's invariants and the rollups hold.
//
// Entries are booked at the database's clock, so everything here lands on
// today's date (or today's and yesterday's around midnight); periods that
// start days earlier check that days without activity carry the balance.
// settlement's own tests write backdated entries to test the days proper.
func TestSettlementProperty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	seed := propertySeed(t, "SETTLEMENT_SEED", uint64(time.Now().UnixNano()))
	rng := rand.New(rand.NewPCG(seed, 0x5e771e))
	firstDay := settlement.DayOf(time.Now())

	markets := []string{"TP-M1", "TP-M2", "TP-M3"}
	models := map[string]*merchantModel{}
	var merchantCodes []string
	for _, mk := range markets {
		if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: mk, Name: "Chợ " + mk, Province: "Thái Nguyên"}}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 8; i++ {
			code := fmt.Sprintf("%s-%02d", mk, i)
			channels := []pb.Channel{pb.Channel_CHANNEL_VIETQR}
			for _, ch := range allChannels[1:] {
				if rng.IntN(3) == 0 {
					channels = append(channels, ch)
				}
			}
			plan := &pb.FeePlan{MinFee: fmt.Sprint([]int{0, 0, 200, 500}[rng.IntN(4)])}
			for _, ch := range channels {
				plan.Fees = append(plan.Fees, &pb.ChannelFee{Channel: ch, BasisPoints: int32(rng.IntN(301))})
			}
			mc := &pb.Merchant{
				Code: code, Market: mk, Stalls: []string{fmt.Sprintf("S-%02d", i)}, DisplayName: "Sạp " + code,
				OwnerName: "Chủ sạp", Phone: "0912345678", Channels: channels, FeePlan: plan,
			}
			if i != 8 {
				mc.PayoutAccount = &pb.PayoutAccount{BankBin: "970436", AccountNumber: fmt.Sprintf("00%d%02d", len(merchantCodes), i), HolderName: "CHU SAP"}
			}
			if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: mc}); err != nil {
				t.Fatalf("create merchant %s: %v", code, err)
			}
			models[code] = &merchantModel{market: mk, channels: channels, byCh: map[pb.Channel]*channelModel{}, pending: map[string]int64{}, noPayoutAccount: i == 8}
			merchantCodes = append(merchantCodes, code)
		}
	}

	type confirmed struct {
		merchant   string
		channel    pb.Channel
		refundable int64
	}
	paid := map[string]*confirmed{} // payment id →
	var paidIDs []string
	settled := map[string]int64{} // clearing account → settled in all
	var settlements, partials, rejections, expiries int
	var payoutLines payoutTally
	var snapshots []snapshotAt
	n := 0
	key := func(prefix string) string { n++; return fmt.Sprintf("%s-%d", prefix, n) }
	posted := func(code string, p *pb.Payment) {
		m := models[code]
		c := m.ch(p.Channel)
		c.payments++
		c.gross += num(p.ConfirmedAmount)
		c.fees += num(p.Fee)
		paid[p.Id] = &confirmed{merchant: code, channel: p.Channel, refundable: num(p.ConfirmedAmount)}
		paidIDs = append(paidIDs, p.Id)
	}

	const rounds = 4
	for round := 1; round <= rounds; round++ {
		for _, code := range merchantCodes {
			m := models[code]
			for range 3 + rng.IntN(6) {
				ch := m.channels[rng.IntN(len(m.channels))]
				amount := fmt.Sprint(1000 + rng.IntN(200)*1000 + rng.IntN(1000))
				switch r := rng.Float64(); {
				case r < 0.35: // the stall records it; the bank answers later, or never
					p := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key("stall"), Merchant: code, Channel: ch, Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
					m.pending[p.Id] = num(p.Amount) - num(p.Fee)
				case r < 0.55: // only the bank saw it
					p := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key("bank"), Merchant: code, Channel: ch, Amount: amount,
						Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: key("FT")}).Payment
					posted(code, p)
				case r < 0.78: // the bank answers a pending one
					var ids []string
					for id := range m.pending {
						ids = append(ids, id)
					}
					if len(ids) == 0 {
						continue
					}
					slices.Sort(ids)
					id := ids[rng.IntN(len(ids))]
					got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
					if err != nil {
						t.Fatal(err)
					}
					switch x := rng.IntN(4); x {
					case 0, 1, 2:
						req := &pb.ConfirmPaymentRequest{IdempotencyKey: key("conf"), PaymentId: id, ProviderRef: key("REF")}
						if x == 2 && num(got.Payment.Amount) > 1 {
							req.Amount = fmt.Sprint(1 + rng.Int64N(num(got.Payment.Amount)-1))
							partials++
						}
						resp, err := e.payments.ConfirmPayment(ctx, req)
						if err != nil {
							t.Fatalf("confirm %s: %v", id, err)
						}
						posted(code, resp.Payment)
					case 3:
						if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: key("rej"), PaymentId: id}); err != nil {
							t.Fatalf("reject %s: %v", id, err)
						}
						rejections++
					}
					delete(m.pending, id)
				default: // a refund, partial or full
					var mine []string
					for _, id := range paidIDs {
						if p := paid[id]; p.merchant == code && p.refundable > 0 {
							mine = append(mine, id)
						}
					}
					if len(mine) == 0 {
						continue
					}
					id := mine[rng.IntN(len(mine))]
					p := paid[id]
					req := &pb.RefundPaymentRequest{IdempotencyKey: key("ref"), PaymentId: id}
					if rng.IntN(2) == 0 {
						req.Amount = fmt.Sprint(1 + rng.Int64N(p.refundable))
					}
					resp, err := e.payments.RefundPayment(ctx, req)
					if status.Code(err) == codes.FailedPrecondition {
						continue // the merchant no longer holds what the refund takes back
					}
					if err != nil {
						t.Fatalf("refund %s: %v", id, err)
					}
					c := m.ch(p.channel)
					c.refunds++
					c.refunded += num(resp.Amount)
					c.feesReturned += num(resp.FeeReturned)
					p.refundable -= num(resp.Amount)
				}
			}
		}

		// Providers settle part of what they owe each market.
		for _, mk := range markets {
			ch := allChannels[rng.IntN(len(allChannels))]
			if rng.IntN(2) == 0 {
				ch = pb.Channel_CHANNEL_VIETQR // every merchant takes it: NAPAS owes the most
			}
			code := clearingOf(ch, mk)
			bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code})
			if err != nil {
				t.Fatal(err)
			}
			owed := num(bal.Balance.Posted)
			if owed <= 0 {
				continue
			}
			amount := owed/2 + 1 + rng.Int64N(owed-owed/2)
			resp, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{
				IdempotencyKey: key("ps"), Channel: ch, Market: mk, Amount: fmt.Sprint(amount),
				Bank: []string{"vcb", "vcb", "vcb", "bidv"}[rng.IntN(4)], BankRef: key("BANKREF"),
			})
			if err != nil {
				t.Fatalf("settle %s of %d: %v", code, amount, err)
			}
			if num(resp.Settlement.RemainingOwed) != owed-amount || resp.Settlement.ClearingAccount != code {
				t.Errorf("settlement of %d from %d owed: %v", amount, owed, resp.Settlement)
			}
			settled[code] += amount
			settlements++
		}

		// VCB pays the merchants out of what the providers paid it; the
		// transfers of some lines fail, and their money is due again in the
		// next round's batch.
		e.payoutRound(t, models, key("batch"), rng, &payoutLines)

		// What the reports say now, to ask again later as of this point.
		today := settlement.DayOf(time.Now()).String()
		for _, code := range []string{merchantCodes[rng.IntN(len(merchantCodes))], merchantCodes[rng.IntN(len(merchantCodes))]} {
			r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: code, StartDay: firstDay.String(), EndDay: today})
			if err != nil {
				t.Fatal(err)
			}
			snapshots = append(snapshots, snapshotAt{merchant: code, at: time.Now(), seq: r.Period.AsOfSequence, totals: r.Totals})
		}
		mk := markets[rng.IntN(len(markets))]
		r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: firstDay.String(), EndDay: today})
		if err != nil {
			t.Fatal(err)
		}
		snapshots = append(snapshots, snapshotAt{market: mk, at: time.Now(), seq: r.Period.AsOfSequence, totals: r.Totals})

		// Half a day passes on the env's clock (the database's cannot move):
		// stall payments left unanswered for a day expire.
		if round < rounds {
			time.Sleep(2 * time.Millisecond) // the snapshot's instant is strictly before the next entry
			e.advance(13 * time.Hour)
			if _, err := e.ledger.ExpireDue(ctx); err != nil {
				t.Fatal(err)
			}
			for _, code := range merchantCodes {
				for id := range models[code].pending {
					got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
					if err != nil {
						t.Fatal(err)
					}
					if got.Payment.Status == pb.PaymentStatus_PAYMENT_STATUS_EXPIRED {
						delete(models[code].pending, id)
						expiries++
					}
				}
			}
		}
	}

	e.checkInvariants(t)
	e.checkRollups(t)
	lastDay := settlement.DayOf(time.Now())
	start, end := firstDay.AddDays(-3).String(), lastDay.String()
	wantDays := int(lastDay.Start().Sub(firstDay.AddDays(-3).Start()).Hours()/24) + 1

	// Every merchant.
	merchantTotals := map[string]*pb.SettlementTotals{}
	var pendingSeen, refundsSeen, settledSeen int64
	for _, code := range merchantCodes {
		m := models[code]
		r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: code, StartDay: start, EndDay: end})
		if err != nil {
			t.Fatal(err)
		}
		merchantTotals[code] = r.Totals
		checkDays(t, code, r.Totals, r.Days)
		if len(r.Days) != wantDays || r.Market != m.market || r.Totals.OpeningBalance != "0" || r.Totals.Adjustments != "0" ||
			r.Totals.PayoutCount != m.payouts || num(r.Totals.Payouts) != m.paidOut {
			t.Errorf("%s: %d days, market %s, totals %v", code, len(r.Days), r.Market, r.Totals)
		}
		for _, d := range r.Days[:3] { // the quiet days before the first payment
			if !proto.Equal(withoutEquation(d.Totals), zeroTotals()) {
				t.Errorf("%s %s: %v, want nothing", code, d.Day, d.Totals)
			}
		}
		var wantCh []*pb.ChannelSettlement
		for _, ch := range allChannels {
			if c := m.byCh[ch]; c != nil && (c.payments > 0 || c.refunds > 0) {
				wantCh = append(wantCh, &pb.ChannelSettlement{Channel: ch, Provider: providers[ch], PaymentCount: c.payments, Payments: fmt.Sprint(c.gross),
					FeesCharged: fmt.Sprint(c.fees), RefundCount: c.refunds, Refunds: fmt.Sprint(c.refunded), FeesReturned: fmt.Sprint(c.feesReturned)})
			}
		}
		if !slices.EqualFunc(r.Totals.Channels, wantCh, func(a, b *pb.ChannelSettlement) bool { return proto.Equal(a, b) }) {
			t.Errorf("%s: channels\n got %v\nwant %v", code, r.Totals.Channels, wantCh)
		}
		if num(r.Totals.ClosingBalance) != m.closing() || num(r.Totals.Pending) != m.pendingTotal() {
			t.Errorf("%s: closing %s pending %s; PaymentService's answers come to %d and %d", code, r.Totals.ClosingBalance, r.Totals.Pending, m.closing(), m.pendingTotal())
		}
		pendingSeen += num(r.Totals.Pending)
		refundsSeen += r.Totals.RefundCount
		// The ledger agrees at the same point, by sequence and by time.
		for _, at := range []*pb.AsOf{
			{Point: &pb.AsOf_Sequence{Sequence: r.Period.AsOfSequence}},
			{Point: &pb.AsOf_Time{Time: r.Period.EndTime}},
		} {
			bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + code + ":payable", AsOf: at})
			if err != nil {
				t.Fatal(err)
			}
			if bal.Balance.Posted != r.Totals.ClosingBalance || bal.Balance.CreditsPending != r.Totals.Pending {
				t.Errorf("%s: closing %s pending %s, GetBalance as of %v: %v", code, r.Totals.ClosingBalance, r.Totals.Pending, at, bal.Balance)
			}
		}
	}
	var payments int64
	for _, code := range merchantCodes {
		payments += merchantTotals[code].PaymentCount
	}
	t.Logf("%d writes: %d payments posted (%d confirmed in part), %d rejected, %d expired, %d refunds, %d đồng still pending, %d provider settlements",
		n, payments, partials, rejections, expiries, refundsSeen, pendingSeen, settlements)
	t.Logf("payout lines: %d paid, %d failed, %d skipped", payoutLines.paid, payoutLines.failed, payoutLines.skipped)
	if pendingSeen == 0 || refundsSeen == 0 || expiries == 0 || partials == 0 || payoutLines.paid == 0 || payoutLines.failed == 0 || payoutLines.skipped == 0 {
		t.Errorf("the run left %d đồng pending, made %d refunds, %d partial confirmations, %d expiries and %d/%d/%d paid/failed/skipped payout lines; the test wants each",
			pendingSeen, refundsSeen, partials, expiries, payoutLines.paid, payoutLines.failed, payoutLines.skipped)
	}

	// Every market, in both orders, three lines a page.
	for _, mk := range markets {
		for _, order := range []pb.MerchantSettlementOrder{pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_MERCHANT, pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE} {
			var lines []*pb.MerchantSettlementLine
			var first *pb.GetMarketSettlementResponse
			token := ""
			for page := 0; ; page++ {
				r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: start, EndDay: end, PageSize: 3, PageToken: token, OrderBy: order})
				if err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = r
				} else if !proto.Equal(r.Totals, first.Totals) || r.TotalSize != 8 {
					t.Errorf("%s page %d: totals changed between pages", mk, page)
				}
				lines = append(lines, r.Merchants...)
				if token = r.NextPageToken; token == "" {
					break
				}
				if page > 5 {
					t.Fatalf("%s: paging does not end", mk)
				}
			}
			checkDays(t, mk, first.Totals, first.Days)
			if len(lines) != 8 || first.TotalSize != 8 {
				t.Fatalf("%s %v: %d lines of %d", mk, order, len(lines), first.TotalSize)
			}
			sum := zeroTotals()
			for i, l := range lines {
				if i > 0 {
					prev := lines[i-1]
					inOrder := prev.Merchant < l.Merchant
					if order == pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE {
						a, b := num(prev.Totals.ClosingBalance), num(l.Totals.ClosingBalance)
						inOrder = a > b || a == b && prev.Merchant < l.Merchant
					}
					if !inOrder {
						t.Errorf("%s %v: %s (%s) before %s (%s)", mk, order, prev.Merchant, prev.Totals.ClosingBalance, l.Merchant, l.Totals.ClosingBalance)
					}
				}
				if !proto.Equal(l.Totals, merchantTotals[l.Merchant]) {
					t.Errorf("%s: line of %s\n%v\nis not its merchant settlement\n%v", mk, l.Merchant, l.Totals, merchantTotals[l.Merchant])
				}
				checkIdentity(t, mk+" line "+l.Merchant, l.Totals)
				addTotals(sum, l.Totals)
			}
			if !proto.Equal(withoutEquation(first.Totals), sum) {
				t.Errorf("%s: market totals\n%v\nare not the sum of the lines\n%v", mk, first.Totals, sum)
			}
			// What each provider owes is its clearing balance.
			for _, p := range first.Providers {
				bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: p.ClearingAccount, AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: first.Period.AsOfSequence}}})
				if err != nil {
					t.Fatal(err)
				}
				if p.ClosingOwed != bal.Balance.Posted || p.Pending != bal.Balance.DebitsPending || num(p.Settled) != settled[p.ClearingAccount] || p.Adjustments != "0" || p.OpeningOwed != "0" {
					t.Errorf("%s: %v; clearing %v, settled %d", mk, p, bal.Balance, settled[p.ClearingAccount])
				}
				if num(p.OpeningOwed)+num(p.Payments)-num(p.Refunds)-num(p.Settled)+num(p.Adjustments) != num(p.ClosingOwed) {
					t.Errorf("%s: %s does not balance: %s", mk, p.Provider, p.Equation)
				}
				var gross, refunds int64
				for _, c := range first.Totals.Channels {
					if slices.Contains(p.Channels, c.Channel) {
						gross, refunds = gross+num(c.Payments), refunds+num(c.Refunds)
					}
				}
				if num(p.Payments) != gross || num(p.Refunds) != refunds {
					t.Errorf("%s: %s payments %s refunds %s, the channels say %d and %d", mk, p.Provider, p.Payments, p.Refunds, gross, refunds)
				}
				settledSeen += num(p.Settled)
			}
		}
	}
	if settledSeen == 0 {
		t.Error("no provider settled anything; the test wants some")
	}

	// Reports as of earlier points say what was said then.
	for _, s := range snapshots {
		for name, at := range map[string]*pb.AsOf{
			"time":     {Point: &pb.AsOf_Time{Time: timestamppb.New(s.at)}},
			"sequence": {Point: &pb.AsOf_Sequence{Sequence: s.seq}},
		} {
			var got *pb.SettlementTotals
			var period *pb.SettlementPeriod
			if s.merchant != "" {
				r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: s.merchant, StartDay: firstDay.String(), EndDay: end, AsOf: at})
				if err != nil {
					t.Fatal(err)
				}
				got, period = r.Totals, r.Period
				bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + s.merchant + ":payable", AsOf: at})
				if err != nil {
					t.Fatal(err)
				}
				if bal.Balance.Posted != got.ClosingBalance {
					t.Errorf("%s as of %s: closing %s, GetBalance %s", s.merchant, name, got.ClosingBalance, bal.Balance.Posted)
				}
			} else {
				r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: s.market, StartDay: firstDay.String(), EndDay: end, AsOf: at})
				if err != nil {
					t.Fatal(err)
				}
				got, period = r.Totals, r.Period
			}
			if !proto.Equal(got, s.totals) || period.AsOfSequence != s.seq {
				t.Errorf("%s%s as of %s (sequence %d): %v\nthen: %v", s.merchant, s.market, name, period.AsOfSequence, got, s.totals)
			}
		}
	}

	// Pages are as of the first page's point, whatever is written between.
	mk := markets[0]
	amountDue := pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE
	whole, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: start, EndDay: end, OrderBy: amountDue})
	if err != nil {
		t.Fatal(err)
	}
	page, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: start, EndDay: end, OrderBy: amountDue, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	lines := page.Merchants
	for _, code := range merchantCodes[:8] {
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key("late"), Merchant: code, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "99000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: key("LATE")})
	}
	for token := page.NextPageToken; token != ""; {
		next, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: start, EndDay: end, OrderBy: amountDue, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if next.Period.AsOfSequence != page.Period.AsOfSequence || !proto.Equal(next.Totals, page.Totals) {
			t.Errorf("a later page is as of sequence %d with totals\n%v\nthe first as of %d with\n%v", next.Period.AsOfSequence, next.Totals, page.Period.AsOfSequence, page.Totals)
		}
		lines, token = append(lines, next.Merchants...), next.NextPageToken
	}
	if !slices.EqualFunc(lines, whole.Merchants, func(a, b *pb.MerchantSettlementLine) bool { return proto.Equal(a, b) }) {
		t.Errorf("pages read after new payments\n%v\ndiffer from the listing at the first page's point\n%v", lines, whole.Merchants)
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// Every settlement RPC refuses bad input with the right code, naming the
// field, and writes nothing.
// A report's period is at most 366 days, the first and the last
// included, as the proto says: a leap year's report is one call, and a
// period whose end_day is 366 days after its start_day, 367 days, is
// refused naming end_day.
func TestSettlementPeriodOf366Days(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	today := settlement.DayOf(time.Now())
	r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: "TN-TEST-0001",
		StartDay: today.AddDays(-365).String(), EndDay: today.String()})
	if err != nil || len(r.Days) != 366 {
		t.Fatalf("a period of 366 days: %d days, %v", len(r.GetDays()), err)
	}
	_, err = e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket,
		StartDay: today.AddDays(-366).String(), EndDay: today.String()})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "end_day") {
		t.Fatalf("a period of 367 days: %v, want InvalidArgument naming end_day", err)
	}
}

func TestSettlementBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "150000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-1"})
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-1", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: testMarket, Amount: "100000", Bank: "vcb", BankRef: "VCB-1"}); err != nil {
		t.Fatal(err)
	}
	today := settlement.DayOf(time.Now())
	day := today.String()
	paged, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day, PageSize: 1})
	if err != nil || paged.NextPageToken == "" {
		t.Fatalf("a first page of one line: %v, %v", paged, err)
	}

	merchantReq := func(edit func(r *pb.GetMerchantSettlementRequest)) func() error {
		return func() error {
			r := &pb.GetMerchantSettlementRequest{Merchant: a, StartDay: day}
			edit(r)
			_, err := e.settle.GetMerchantSettlement(ctx, r)
			return err
		}
	}
	marketReq := func(edit func(r *pb.GetMarketSettlementRequest)) func() error {
		return func() error {
			r := &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day}
			edit(r)
			_, err := e.settle.GetMarketSettlement(ctx, r)
			return err
		}
	}
	settle := func(edit func(r *pb.RecordProviderSettlementRequest)) func() error {
		return func() error {
			r := &pb.RecordProviderSettlementRequest{IdempotencyKey: "ps-new", Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "1000", Bank: "vcb", BankRef: "VCB-NEW"}
			edit(r)
			_, err := e.settle.RecordProviderSettlement(ctx, r)
			return err
		}
	}
	reclassify := func(edit func(r *pb.ReclassifySuspenseRequest)) func() error {
		return func() error {
			r := &pb.ReclassifySuspenseRequest{IdempotencyKey: "rc-new", Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "1000", Reason: "FT-9 notified late"}
			edit(r)
			_, err := e.settle.ReclassifySuspense(ctx, r)
			return err
		}
	}
	at := func(t time.Time) *pb.AsOf { return &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(t)}} }
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"merchant: missing", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.Merchant = "" }), codes.InvalidArgument, "merchant"},
		{"merchant: malformed", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.Merchant = "tn test" }), codes.InvalidArgument, "merchant"},
		{"merchant: unknown", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.Merchant = "TN-NOBODY" }), codes.NotFound, "merchant"},
		{"merchant: no start day", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = "" }), codes.InvalidArgument, "start_day"},
		{"merchant: start day not a date", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = "2026-02-30" }), codes.InvalidArgument, "start_day"},
		{"merchant: start day without dashes", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = "20261120" }), codes.InvalidArgument, "start_day"},
		{"merchant: start day before 2000", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = "1999-12-31" }), codes.InvalidArgument, "start_day"},
		{"merchant: end day not a date", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.EndDay = "tomorrow" }), codes.InvalidArgument, "end_day"},
		{"merchant: end before start", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.EndDay = today.AddDays(-1).String() }), codes.InvalidArgument, "end_day"},
		{"merchant: period too long", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = today.AddDays(-400).String(); r.EndDay = day }), codes.InvalidArgument, "end_day"},
		{"merchant: end day in the future", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.EndDay = today.AddDays(3).String() }), codes.InvalidArgument, "end_day"},
		{"merchant: start day in the future", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.StartDay = today.AddDays(1).String() }), codes.InvalidArgument, "start_day"},
		{"merchant: start and end days in the future", merchantReq(func(r *pb.GetMerchantSettlementRequest) {
			r.StartDay, r.EndDay = today.AddDays(1).String(), today.AddDays(3).String()
		}), codes.InvalidArgument, "start_day"},
		{"merchant: as of a negative sequence", merchantReq(func(r *pb.GetMerchantSettlementRequest) {
			r.AsOf = &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: -1}}
		}), codes.InvalidArgument, "as_of.sequence"},
		{"merchant: as of a sequence beyond the head", merchantReq(func(r *pb.GetMerchantSettlementRequest) {
			r.AsOf = &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 1 << 40}}
		}), codes.InvalidArgument, "as_of.sequence"},
		{"merchant: as of before the period", merchantReq(func(r *pb.GetMerchantSettlementRequest) { r.AsOf = at(today.Start().Add(-time.Hour)) }), codes.InvalidArgument, "as_of"},
		{"merchant: as of an invalid time", merchantReq(func(r *pb.GetMerchantSettlementRequest) {
			r.AsOf = &pb.AsOf{Point: &pb.AsOf_Time{Time: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}}}
		}), codes.InvalidArgument, "as_of.time"},

		{"market: missing", marketReq(func(r *pb.GetMarketSettlementRequest) { r.Market = "" }), codes.InvalidArgument, "market"},
		{"market: malformed", marketReq(func(r *pb.GetMarketSettlementRequest) { r.Market = "tn" }), codes.InvalidArgument, "market"},
		{"market: unknown", marketReq(func(r *pb.GetMarketSettlementRequest) { r.Market = "TN-NOWHERE" }), codes.NotFound, "market"},
		{"market: no start day", marketReq(func(r *pb.GetMarketSettlementRequest) { r.StartDay = "" }), codes.InvalidArgument, "start_day"},
		{"market: end before start", marketReq(func(r *pb.GetMarketSettlementRequest) { r.EndDay = "2001-01-01" }), codes.InvalidArgument, "end_day"},
		{"market: start day in the future", marketReq(func(r *pb.GetMarketSettlementRequest) { r.StartDay = today.AddDays(1).String() }), codes.InvalidArgument, "start_day"},
		{"market: end day in the future", marketReq(func(r *pb.GetMarketSettlementRequest) { r.EndDay = today.AddDays(1).String() }), codes.InvalidArgument, "end_day"},
		{"market: as of before the period", marketReq(func(r *pb.GetMarketSettlementRequest) { r.AsOf = at(today.Start().Add(-time.Second)) }), codes.InvalidArgument, "as_of"},
		{"market: negative page size", marketReq(func(r *pb.GetMarketSettlementRequest) { r.PageSize = -1 }), codes.InvalidArgument, "page_size"},
		{"market: forged page token", marketReq(func(r *pb.GetMarketSettlementRequest) { r.PageToken = "bm90IGEgdG9rZW4" }), codes.InvalidArgument, "page_token"},
		{"market: page token of another order", marketReq(func(r *pb.GetMarketSettlementRequest) {
			r.PageToken, r.OrderBy = paged.NextPageToken, pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE
		}), codes.InvalidArgument, "page_token"},
		{"market: page token of another period", marketReq(func(r *pb.GetMarketSettlementRequest) {
			r.PageToken, r.StartDay, r.EndDay = paged.NextPageToken, today.AddDays(-1).String(), day
		}), codes.InvalidArgument, "page_token"},
		{"market: page token of another point", marketReq(func(r *pb.GetMarketSettlementRequest) {
			r.PageToken, r.AsOf = paged.NextPageToken, at(time.Now())
		}), codes.InvalidArgument, "page_token"},
		{"market: unknown order", marketReq(func(r *pb.GetMarketSettlementRequest) { r.OrderBy = 99 }), codes.InvalidArgument, "order_by"},

		{"settle: missing key", settle(func(r *pb.RecordProviderSettlementRequest) { r.IdempotencyKey = "" }), codes.InvalidArgument, "idempotency_key"},
		{"settle: key too long", settle(func(r *pb.RecordProviderSettlementRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }), codes.InvalidArgument, "idempotency_key"},
		{"settle: key with spaces", settle(func(r *pb.RecordProviderSettlementRequest) { r.IdempotencyKey = "a b" }), codes.InvalidArgument, "idempotency_key"},
		{"settle: no channel", settle(func(r *pb.RecordProviderSettlementRequest) { r.Channel = pb.Channel_CHANNEL_UNSPECIFIED }), codes.InvalidArgument, "channel"},
		{"settle: no market", settle(func(r *pb.RecordProviderSettlementRequest) { r.Market = "" }), codes.InvalidArgument, "market"},
		{"settle: unknown market", settle(func(r *pb.RecordProviderSettlementRequest) { r.Market = "TN-NOWHERE" }), codes.NotFound, "market"},
		{"settle: malformed market", settle(func(r *pb.RecordProviderSettlementRequest) { r.Market = "tn test" }), codes.InvalidArgument, "market"},
		{"settle: no amount", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "" }), codes.InvalidArgument, "amount"},
		{"settle: zero amount", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "0" }), codes.InvalidArgument, "amount"},
		{"settle: negative amount", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "-5" }), codes.InvalidArgument, "amount"},
		{"settle: fractional đồng", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "1500.5" }), codes.InvalidArgument, "amount"},
		{"settle: exponent", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "1e3" }), codes.InvalidArgument, "amount"},
		{"settle: huge amount", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "99999999999999999999" }), codes.InvalidArgument, "amount"},
		{"settle: no bank", settle(func(r *pb.RecordProviderSettlementRequest) { r.Bank = "" }), codes.InvalidArgument, "bank"},
		{"settle: bank in capitals", settle(func(r *pb.RecordProviderSettlementRequest) { r.Bank = "VCB" }), codes.InvalidArgument, "bank"},
		{"settle: bank with a colon", settle(func(r *pb.RecordProviderSettlementRequest) { r.Bank = "vcb:x" }), codes.InvalidArgument, "bank"},
		{"settle: no bank reference", settle(func(r *pb.RecordProviderSettlementRequest) { r.BankRef = "" }), codes.InvalidArgument, "bank_ref"},
		{"settle: bank reference with spaces", settle(func(r *pb.RecordProviderSettlementRequest) { r.BankRef = "VCB 2" }), codes.InvalidArgument, "bank_ref"},
		{"settle: bank reference too long", settle(func(r *pb.RecordProviderSettlementRequest) { r.BankRef = strings.Repeat("R", 65) }), codes.InvalidArgument, "bank_ref"},
		{"settle: more than owed", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "50001" }), codes.FailedPrecondition, "amount"},
		{"settle: a provider that owes nothing", settle(func(r *pb.RecordProviderSettlementRequest) { r.Channel = pb.Channel_CHANNEL_ZALOPAY }), codes.FailedPrecondition, "amount"},
		{"settle: bank reference recorded", settle(func(r *pb.RecordProviderSettlementRequest) { r.BankRef = "VCB-1" }), codes.AlreadyExists, "bank_ref"},
		{"settle: key reused for another amount", settle(func(r *pb.RecordProviderSettlementRequest) { r.IdempotencyKey = "ps-1" }), codes.AlreadyExists, "idempotency_key"},
		{"settle: more than owed, unmatched not allowed", settle(func(r *pb.RecordProviderSettlementRequest) { r.Amount = "50001" }), codes.FailedPrecondition, "allow_unmatched"},
		{"settle: key reused allowing unmatched money", settle(func(r *pb.RecordProviderSettlementRequest) {
			r.IdempotencyKey, r.Amount, r.BankRef, r.AllowUnmatched = "ps-1", "100000", "VCB-1", true
		}), codes.AlreadyExists, "allow_unmatched"},

		{"reclassify: missing key", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.IdempotencyKey = "" }), codes.InvalidArgument, "idempotency_key"},
		{"reclassify: no market", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Market = "" }), codes.InvalidArgument, "market"},
		{"reclassify: unknown market", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Market = "TN-NOWHERE" }), codes.NotFound, "market"},
		{"reclassify: no channel", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Channel = pb.Channel_CHANNEL_UNSPECIFIED }), codes.InvalidArgument, "channel"},
		{"reclassify: zero amount", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Amount = "0" }), codes.InvalidArgument, "amount"},
		{"reclassify: fractional đồng", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Amount = "10.5" }), codes.InvalidArgument, "amount"},
		{"reclassify: no reason", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Reason = " " }), codes.InvalidArgument, "reason"},
		{"reclassify: reason too long", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Reason = strings.Repeat("lý do ", 40) }), codes.InvalidArgument, "reason"},
		{"reclassify: reason with a NUL", reclassify(func(r *pb.ReclassifySuspenseRequest) { r.Reason = "FT-1 late\x00" }), codes.InvalidArgument, "reason"},
		{"reclassify: more than suspense holds", reclassify(func(r *pb.ReclassifySuspenseRequest) {}), codes.FailedPrecondition, "suspense"},
	}
	before := e.settleSnapshot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.field) {
				t.Errorf("got %v %q, want %v naming %s", st.Code(), st.Message(), tc.code, tc.field)
			}
		})
	}
	if after := e.settleSnapshot(t); after != before {
		t.Fatalf("refused calls wrote: %s -> %s", before, after)
	}
}

// A provider settlement is recorded once per key (a replay answers with
// the same entry even after the provider owes less), is refused when the
// key is reused for something else, and never takes the clearing account
// below zero, even when settlements race.
func TestProviderSettlement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	for i, amount := range []string{"150000", "80000"} {
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("p", i), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: amount,
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-", i)})
	}
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "pending", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "70000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
	clearing := clearingOf(pb.Channel_CHANNEL_VIETQR, testMarket)
	owed := func() string {
		bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: clearing})
		if err != nil {
			t.Fatal(err)
		}
		return bal.Balance.Posted
	}
	if got := owed(); got != "230000" {
		t.Fatalf("NAPAS owes %s, want 230000 (the pending payment is not owed yet)", got)
	}

	req := &pb.RecordProviderSettlementRequest{IdempotencyKey: "napas-2026-11-20", Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket,
		Amount: "200000", Bank: "vcb", BankRef: "VCB20261120001"}
	first, err := e.settle.RecordProviderSettlement(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	s := first.Settlement
	if first.Replayed || s.Amount != "200000" || s.RemainingOwed != "30000" || s.Provider != "napas" || s.Bank != "vcb" ||
		s.SettlementAccount != "bank:vcb:market:"+testMarket+":settlement" || s.ClearingAccount != clearing {
		t.Fatalf("first settlement: %v", first)
	}
	entry, err := e.client.GetEntry(ctx, &pb.GetEntryRequest{Id: s.EntryId})
	if err != nil {
		t.Fatal(err)
	}
	if en := entry.Entry; en.Kind != "provider_settlement" || en.Phase != pb.EntryPhase_ENTRY_PHASE_POSTED || en.ExternalRef != "bank:vcb:VCB20261120001" ||
		len(en.Postings) != 2 || en.Postings[0].AccountCode != s.SettlementAccount || en.Postings[0].Direction != debit || en.Postings[1].AccountCode != clearing || en.Postings[1].Direction != credit {
		t.Fatalf("settlement entry %v", en)
	}
	acct, err := e.client.GetAccount(ctx, &pb.GetAccountRequest{Code: s.SettlementAccount})
	if err != nil || !acct.Account.CreditsMustNotExceedDebits || acct.Account.Balance.Posted != "200000" {
		t.Fatalf("settlement account %v, %v", acct, err)
	}

	// A replay, even though NAPAS now owes less than the amount.
	again, err := e.settle.RecordProviderSettlement(ctx, req)
	if err != nil || !again.Replayed || !proto.Equal(again.Settlement, s) {
		t.Fatalf("replay: %v, %v", again, err)
	}
	// The key reused for another request, field by field.
	for field, edit := range map[string]func(r *pb.RecordProviderSettlementRequest){
		"amount":   func(r *pb.RecordProviderSettlementRequest) { r.Amount = "1000" },
		"bank_ref": func(r *pb.RecordProviderSettlementRequest) { r.BankRef = "VCB20261120002" },
		"bank":     func(r *pb.RecordProviderSettlementRequest) { r.Bank = "bidv" },
		"channel":  func(r *pb.RecordProviderSettlementRequest) { r.Channel = pb.Channel_CHANNEL_MOMO },
	} {
		r := proto.Clone(req).(*pb.RecordProviderSettlementRequest)
		edit(r)
		_, err := e.settle.RecordProviderSettlement(ctx, r)
		if st := status.Convert(err); st.Code() != codes.AlreadyExists || !strings.Contains(st.Message(), "idempotency_key") || !strings.Contains(st.Message(), field) {
			t.Errorf("key reused with another %s: %v", field, err)
		}
	}
	// The same bank credit under another key.
	dup := proto.Clone(req).(*pb.RecordProviderSettlementRequest)
	dup.IdempotencyKey, dup.Amount = "other-key", "1000"
	if _, err := e.settle.RecordProviderSettlement(ctx, dup); status.Code(err) != codes.AlreadyExists {
		t.Errorf("bank reference again under another key: %v", err)
	}
	// More than is owed, then exactly what is owed.
	over := &pb.RecordProviderSettlementRequest{IdempotencyKey: "over", Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "30001", Bank: "vcb", BankRef: "VCB-OVER"}
	if _, err := e.settle.RecordProviderSettlement(ctx, over); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("settling more than owed: %v", err)
	}
	// Refused at a bank not seen before (a typo), it opens no account there.
	typo := proto.Clone(over).(*pb.RecordProviderSettlementRequest)
	typo.IdempotencyKey, typo.Bank = "over-typo", "typo"
	if _, err := e.settle.RecordProviderSettlement(ctx, typo); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("settling more than owed at bank typo: %v", err)
	}
	if _, err := e.client.GetAccount(ctx, &pb.GetAccountRequest{Code: "bank:typo:market:" + testMarket + ":settlement"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a refused settlement at bank typo left its account: %v", err)
	}
	over.Amount = "30000"
	rest, err := e.settle.RecordProviderSettlement(ctx, over)
	if err != nil || rest.Settlement.RemainingOwed != "0" || owed() != "0" {
		t.Fatalf("settling the rest: %v, %v; owed %s", rest, err, owed())
	}

	// Racing settlements: the payment below makes 100,000 owed; five
	// settlements of 40,000 race for it and exactly two get it.
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p-race", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-RACE"})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprint("race-", i),
				Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "40000", Bank: "vcb", BankRef: fmt.Sprint("VCB-RACE-", i)})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won++
		case codes.FailedPrecondition:
		default:
			t.Errorf("racing settlement: %v", err)
		}
	}
	if won != 2 || owed() != "20000" {
		t.Errorf("%d racing settlements won, NAPAS owes %s; want 2 and 20000", won, owed())
	}

	// The market's report: NAPAS was paid 330,000 and settled 310,000 in four settlements.
	r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: settlement.DayOf(time.Now()).String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Providers {
		if p.Provider == "napas" && (p.Settled != "310000" || p.SettlementCount != 4 || p.ClosingOwed != "20000" || p.Pending != "70000" || p.Payments != "330000") {
			t.Errorf("NAPAS: %v", p)
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// Credits racing for what a provider owes, each at a bank that has received
// nothing for the market yet: a credit refused because another took what
// was owed meanwhile opens no account at its bank, which would tell a
// payout batch the bank had received 0 đồng rather than nothing.
func TestRacingCreditsRefusedOpenNoSettlementAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	for round := range 4 {
		e.record(t, bankNotice(fmt.Sprint("paid-", round), "TN-TEST-0001", "100000", fmt.Sprint("FT-PAID-", round)))
		results := make([]codes.Code, 8)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				_, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprint("credit-", round, "-", i),
					Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "100000", Bank: fmt.Sprint("r", round, "bank", i), BankRef: fmt.Sprint("REF-", round, "-", i)})
				results[i] = status.Code(err)
			})
		}
		wg.Wait()
		recorded := 0
		for i, c := range results {
			code := fmt.Sprint("bank:r", round, "bank", i, ":market:", testMarket, ":settlement")
			_, err := e.client.GetAccount(ctx, &pb.GetAccountRequest{Code: code})
			switch c {
			case codes.OK:
				recorded++
				if err != nil {
					t.Errorf("credit %d recorded; its bank's account %s: %v", i, code, err)
				}
			case codes.FailedPrecondition:
				if status.Code(err) != codes.NotFound {
					t.Errorf("credit %d refused, yet its bank's account %s is open (%v)", i, code, err)
				}
			default:
				t.Errorf("credit %d: %v", i, c)
			}
		}
		if recorded != 1 {
			t.Errorf("round %d: %d credits of what NAPAS owes recorded, want 1", round, recorded)
		}
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// A provider credit above what the provider owes, with unmatched money
// allowed: the excess waits in the market's suspense account, and once the
// payment it was for is confirmed it is reclassified to the provider. Each
// step replays under its key and refuses the key reused for something
// else; the balances, the market report's provider figures, the rollups
// and the invariants agree throughout.
func TestUnmatchedProviderMoney(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, bankNotice("paid", a, "100000", "FT-PAID"))
	late := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "stall", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	clearing, suspense := clearingOf(pb.Channel_CHANNEL_VIETQR, testMarket), "market:"+testMarket+":suspense"
	balance := func(code string) int64 {
		t.Helper()
		b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code})
		if err != nil {
			t.Fatal(err)
		}
		return num(b.Balance.Posted)
	}

	// NAPAS pays 150,000 while the ledger knows of 100,000 confirmed.
	credit := &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit", Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket,
		Amount: "150000", Bank: "vcb", BankRef: "VCB-150", AllowUnmatched: true}
	got, err := e.settle.RecordProviderSettlement(ctx, credit)
	if err != nil {
		t.Fatal(err)
	}
	ps := got.Settlement
	if ps.Amount != "150000" || ps.Settled != "100000" || ps.Unmatched != "50000" || ps.RemainingOwed != "0" || ps.SuspenseAccount != suspense {
		t.Fatalf("settlement: %v; want 150000 = 100000 settled + 50000 unmatched, nothing left owed", ps)
	}
	if again, err := e.settle.RecordProviderSettlement(ctx, credit); err != nil || !again.Replayed || again.Settlement.EntryId != ps.EntryId || again.Settlement.Unmatched != "50000" {
		t.Fatalf("replay: %v, %v", again, err)
	}
	if c, s := balance(clearing), balance(suspense); c != 0 || s != 50000 {
		t.Fatalf("after the credit NAPAS owes %d and suspense holds %d; want 0 and 50000", c, s)
	}

	match := &pb.ReclassifySuspenseRequest{IdempotencyKey: "match", Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000",
		Reason: "VCB-150 paid the stall payment " + late.Id}
	// Not yet: NAPAS owes nothing until the payment is confirmed.
	if _, err := e.settle.ReclassifySuspense(ctx, match); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("reclassifying before the payment is confirmed: %v, want FailedPrecondition", err)
	}
	if _, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: "confirm", PaymentId: late.Id}); err != nil {
		t.Fatal(err)
	}
	over := proto.Clone(match).(*pb.ReclassifySuspenseRequest)
	over.IdempotencyKey, over.Amount = "over", "50001"
	if _, err := e.settle.ReclassifySuspense(ctx, over); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "suspense") {
		t.Fatalf("reclassifying more than suspense holds: %v, want FailedPrecondition", err)
	}
	rc, err := e.settle.ReclassifySuspense(ctx, match)
	if err != nil {
		t.Fatal(err)
	}
	r := rc.Reclassification
	if rc.Replayed || r.Amount != "50000" || r.RemainingSuspense != "0" || r.RemainingOwed != "0" || r.ClearingAccount != clearing || r.Provider != "napas" {
		t.Fatalf("reclassification: %v", rc)
	}
	if again, err := e.settle.ReclassifySuspense(ctx, match); err != nil || !again.Replayed || again.Reclassification.EntryId != r.EntryId {
		t.Fatalf("replay: %v, %v", again, err)
	}
	other := proto.Clone(match).(*pb.ReclassifySuspenseRequest)
	other.Reason = "something else"
	if _, err := e.settle.ReclassifySuspense(ctx, other); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("the key reused with another reason: %v, want AlreadyExists naming reason", err)
	}
	if c, s, b := balance(clearing), balance(suspense), balance("bank:vcb:market:"+testMarket+":settlement"); c != 0 || s != 0 || b != 150000 {
		t.Fatalf("NAPAS owes %d, suspense holds %d, VCB holds %d; want 0, 0, 150000", c, s, b)
	}

	report, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range report.Providers {
		if p.Provider != "napas" {
			continue
		}
		if p.Payments != "150000" || p.Settled != "100000" || p.Reclassified != "50000" || p.Adjustments != "0" || p.ClosingOwed != "0" {
			t.Errorf("NAPAS in the market report: %v", p)
		}
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// A reclassification's reason may be any 1-200 characters, as the proto
// says: one in a script of three bytes a character is recorded as it is,
// not refused for the byte length of the entry's metadata.
func TestReclassificationReasonOf200Characters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	e.record(t, bankNotice("paid", "TN-TEST-0001", "100000", "FT-PAID"))
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: testMarket, Amount: "150000", Bank: "vcb", BankRef: "VCB-150", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	e.record(t, bankNotice("late", "TN-TEST-0001", "50000", "FT-LATE"))
	reason := "FT-LATE: " + strings.Repeat("ệ", 191)
	if n := len([]rune(reason)); n != 200 {
		t.Fatalf("the reason has %d characters", n)
	}
	rc, err := e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "match", Market: testMarket,
		Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Reason: reason})
	if err != nil {
		t.Fatalf("a reason of 200 characters (%d bytes): %v", len(reason), err)
	}
	if r := rc.Reclassification; r.Amount != "50000" || r.Reason != reason || r.RemainingSuspense != "0" {
		t.Errorf("reclassification: %v", r)
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// Reclassifications racing for what suspense holds: exactly as many as it
// holds go through, the rest are refused, and suspense never goes below
// zero.
func TestReclassificationsRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	// NAPAS pays 30,000 for payments the ledger has not heard of yet; then
	// the bank's notifications of 90,000 arrive.
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: testMarket, Amount: "30000", Bank: "vcb", BankRef: "VCB-30", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	e.record(t, bankNotice("paid", a, "90000", "FT-90"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i := range 16 {
		wg.Go(func() {
			_, err := e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: fmt.Sprint("race-", i), Market: testMarket,
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "5000", Reason: "VCB-30 matched to FT-90"})
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.OK:
				done++
			case codes.FailedPrecondition:
			default:
				t.Errorf("reclassification %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "market:" + testMarket + ":suspense"})
	if err != nil {
		t.Fatal(err)
	}
	if done != 6 || b.Balance.Posted != "0" {
		t.Errorf("%d reclassifications of 5,000 out of 30,000 went through, suspense holds %s; want 6 and 0", done, b.Balance.Posted)
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// Copies of one request sent at once, as a client's retry racing its first
// try does, all get the one entry: a settlement with unmatched money, one
// without, and a reclassification. The copies that lose the race read
// balances the winner moved, which must not turn a replay into a refusal.
func TestSettlementCopiesAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	copies := func(t *testing.T, call func() (string, bool, error)) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids, fresh := map[string]bool{}, 0
		for range 6 {
			wg.Go(func() {
				id, replayed, err := call()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("a copy of the request: %v", err)
					return
				}
				ids[id] = true
				if !replayed {
					fresh++
				}
			})
		}
		wg.Wait()
		if len(ids) != 1 || fresh != 1 {
			t.Errorf("6 copies: %d entries, %d answered as new; want 1 and 1", len(ids), fresh)
		}
	}
	for round := range 4 {
		// 100,000 owed, 150,000 paid: 50,000 waits in suspense; then
		// 50,000 owed and paid exactly.
		for _, c := range []struct {
			owed, paid string
			allow      bool
		}{{"100000", "150000", true}, {"50000", "50000", false}} {
			e.record(t, bankNotice(fmt.Sprintf("p%d-%t", round, c.allow), a, c.owed, fmt.Sprintf("FT-%d-%t", round, c.allow)))
			req := &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprintf("s%d-%t", round, c.allow), Channel: pb.Channel_CHANNEL_VIETQR,
				Market: testMarket, Amount: c.paid, Bank: "vcb", BankRef: fmt.Sprintf("VCB-%d-%t", round, c.allow), AllowUnmatched: c.allow}
			copies(t, func() (string, bool, error) {
				r, err := e.settle.RecordProviderSettlement(ctx, req)
				return r.GetSettlement().GetEntryId(), r.GetReplayed(), err
			})
		}
		e.record(t, bankNotice(fmt.Sprint("late", round), a, "50000", fmt.Sprint("FT-LATE-", round)))
		req := &pb.ReclassifySuspenseRequest{IdempotencyKey: fmt.Sprint("r", round), Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "50000", Reason: fmt.Sprint("FT-LATE-", round)}
		copies(t, func() (string, bool, error) {
			r, err := e.settle.ReclassifySuspense(ctx, req)
			return r.GetReclassification().GetEntryId(), r.GetReplayed(), err
		})
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// Settlements with unmatched money allowed, while payments keep raising
// what the provider owes and refunds lowering it: none is refused, none
// settles more than the provider owes right after it, and what each one
// held in suspense is what it did not settle.
func TestUnmatchedSplitAgainstMovingBalance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	stop := make(chan struct{})
	var payers sync.WaitGroup
	for w := range 3 {
		payers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, err := e.payments.RecordPayment(ctx, bankNotice(fmt.Sprint("pay-", w, "-", i), a, "10000", fmt.Sprint("FT-", w, "-", i)))
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: fmt.Sprint("refund-", w, "-", i), PaymentId: p.Payment.Id}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			r, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprint("s", i), Channel: pb.Channel_CHANNEL_VIETQR,
				Market: testMarket, Amount: "50000", Bank: "vcb", BankRef: fmt.Sprint("R", i), AllowUnmatched: true})
			if err != nil {
				t.Error(err)
				return
			}
			s := r.Settlement
			if num(s.Settled)+num(s.Unmatched) != 50000 || (num(s.Settled) > 0 && num(s.RemainingOwed) < 0) {
				t.Errorf("settlement %d of 50000: settled %s, held %s in suspense, napas owed %s right after it", i, s.Settled, s.Unmatched, s.RemainingOwed)
			}
		})
	}
	wg.Wait()
	close(stop)
	payers.Wait()
	e.checkRollups(t)
	e.checkInvariants(t)
}

// Suspense is one account per market, but what it holds was paid by
// someone: a provider is matched only what its own credits left there. A
// MoMo bank cannot lower MoMo's debt with money NAPAS paid, nor can an
// operator; NAPAS's money still goes to NAPAS.
func TestSuspenseMoneyStaysWithItsProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "momo-pay", Merchant: a, Channel: pb.Channel_CHANNEL_MOMO, Amount: "80000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "MOMO-1"})
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "napas-credit", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: testMarket, Amount: "50000", Bank: "vcb", BankRef: "VCB-NAPAS-1", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	_, momoSecret := e.issue(t, access.IssueRequest{Name: "MoMo", Role: access.RoleBank, Provider: "momo"})
	momo := pb.NewSettlementServiceClient(e.dial(t, momoSecret))
	for who, client := range map[string]pb.SettlementServiceClient{"MoMo's bank": momo, "an operator": e.settle} {
		_, err := client.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "grab", Market: testMarket,
			Channel: pb.Channel_CHANNEL_MOMO, Amount: "50000", Reason: "ours"})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "momo") {
			t.Errorf("%s reclassifying NAPAS's unmatched money to MoMo: %v; want FailedPrecondition naming momo", who, err)
		}
	}
	if b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: clearingOf(pb.Channel_CHANNEL_MOMO, testMarket)}); err != nil || b.Balance.Posted != "80000" {
		t.Fatalf("MoMo owes %v (%v); want 80000", b, err)
	}
	e.record(t, bankNotice("late", a, "50000", "FT-LATE"))
	if _, err := e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "match", Market: testMarket + " ",
		Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Reason: "VCB-NAPAS-1 paid FT-LATE"}); err != nil {
		t.Fatal(err)
	}
	again, err := e.settle.ReclassifySuspense(ctx, &pb.ReclassifySuspenseRequest{IdempotencyKey: "match", Market: testMarket + " ",
		Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000", Reason: "VCB-NAPAS-1 paid FT-LATE"})
	if err != nil || !again.Replayed {
		t.Errorf("the same request again, its market code padded as before: %v, %v; want a replay", again, err)
	}
	e.checkRollups(t)
	e.checkInvariants(t)
}

// A market's settlement lists its merchants: an account an operator opened
// under a code shaped like a payable, for a supplier the market owes or in
// dollars, is no merchant of the market, and its money is no money owed to
// the market's merchants. The market's totals stay the sum of its
// merchants' own reports.
func TestMarketSettlementListsOnlyMerchants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: "TN-TEST-0002", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "120000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-P1"})

	e.account(t, "market:"+testMarket+":cash", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", testMarket, false)
	e.account(t, "merchant:SUPPLIER-ICE:payable", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", testMarket, false)
	e.account(t, "market:"+testMarket+":usd-cash", pb.AccountType_ACCOUNT_TYPE_ASSET, "USD", testMarket, false)
	e.account(t, "merchant:TOURIST-TIPS:payable", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "USD", testMarket, false)
	for _, r := range []*pb.PostEntryRequest{
		{IdempotencyKey: "ice", Market: testMarket, Kind: "supplier_invoice", Currency: "VND", Postings: []*pb.PostingInput{
			posting("market:"+testMarket+":cash", debit, "70000"), posting("merchant:SUPPLIER-ICE:payable", credit, "70000")}},
		{IdempotencyKey: "tips", Market: testMarket, Kind: "tips", Currency: "USD", Postings: []*pb.PostingInput{
			posting("market:"+testMarket+":usd-cash", debit, "12.34"), posting("merchant:TOURIST-TIPS:payable", credit, "12.34")}},
	} {
		if _, err := e.client.PostEntry(ctx, r); err != nil {
			t.Fatalf("post %s: %v", r.IdempotencyKey, err)
		}
	}

	day := today()
	mr, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, l := range mr.Merchants {
		listed = append(listed, l.Merchant)
	}
	if want := []string{"TN-TEST-0001", "TN-TEST-0002"}; !slices.Equal(listed, want) || mr.TotalSize != int32(len(want)) {
		t.Errorf("market lists merchants %v (%d in all), want %v", listed, mr.TotalSize, want)
	}
	sum := zeroTotals()
	for _, code := range []string{"TN-TEST-0001", "TN-TEST-0002"} {
		r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: code, StartDay: day})
		if err != nil {
			t.Fatal(err)
		}
		addTotals(sum, r.Totals)
	}
	if mr.Totals.ClosingBalance != sum.ClosingBalance || mr.Totals.Adjustments != sum.Adjustments {
		t.Errorf("market closes at %s with adjustments %s; its merchants close at %s with adjustments %s",
			mr.Totals.ClosingBalance, mr.Totals.Adjustments, sum.ClosingBalance, sum.Adjustments)
	}
	checkDays(t, testMarket, mr.Totals, mr.Days)
}

// Every page of a market's settlement is as of its first page: a merchant
// registered after the first page was read is on none of its later pages,
// and the count of lines stays what the first page said, whatever the
// order, so a client adding the pages up gets the totals the report gave.
func TestMarketSettlementPagesKeepTheFirstPagesMerchants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: "TN-TEST-0002", Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: "120000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-P1"})
	day := today()
	orders := []pb.MerchantSettlementOrder{pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_MERCHANT, pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE}
	firsts := make([]*pb.GetMarketSettlementResponse, len(orders))
	for i, order := range orders {
		r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day, PageSize: 1, OrderBy: order})
		if err != nil {
			t.Fatal(err)
		}
		firsts[i] = r
	}
	for i, code := range []string{"TN-TEST-0000", "TN-TEST-0003"} {
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
			Code: code, Market: testMarket, Stalls: []string{fmt.Sprintf("C-%03d", i)}, DisplayName: "Hàng mới",
			OwnerName: "Lê Văn Mới", Phone: "0912345670", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"},
		}}); err != nil {
			t.Fatalf("create merchant %s: %v", code, err)
		}
	}
	for i, order := range orders {
		listed := []string{firsts[i].Merchants[0].Merchant}
		for token := firsts[i].NextPageToken; token != ""; {
			r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day, PageSize: 1, OrderBy: order, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if r.TotalSize != firsts[i].TotalSize {
				t.Errorf("%v: a later page counts %d lines, the first %d", order, r.TotalSize, firsts[i].TotalSize)
			}
			for _, l := range r.Merchants {
				listed = append(listed, l.Merchant)
			}
			token = r.NextPageToken
		}
		slices.Sort(listed)
		if want := []string{"TN-TEST-0001", "TN-TEST-0002"}; !slices.Equal(listed, want) {
			t.Errorf("%v: the pages list %v, want the merchants of the first page's point %v", order, listed, want)
		}
	}
}

// A market code is read trimmed, so a page token continues the request
// that got it as that request was sent, its market padded or not: the
// code the token holds is the market's, not the spelling of one request.
func TestMarketSettlementContinuesItsPaddedMarket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	day := today()
	first, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket + " ", StartDay: day, PageSize: 1})
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("first page of %q: %v, %v; want a page and a token", testMarket+" ", first, err)
	}
	for _, market := range []string{testMarket + " ", testMarket} {
		next, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: market, StartDay: day, PageSize: 1, PageToken: first.NextPageToken})
		if err != nil {
			t.Errorf("second page of %q: %v", market, err)
			continue
		}
		if len(next.Merchants) != 1 || next.Merchants[0].Merchant != "TN-TEST-0002" {
			t.Errorf("second page of %q lists %v, want TN-TEST-0002", market, next.Merchants)
		}
	}
}

// What is read as of a time that has passed is final: a payment booked
// at or before it, whose round was still committing when it was first
// read, is counted the first time too, by every read as of that time,
// not only when it is asked again.
func TestReadsAsOfAPassedTimeAreFinal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "before", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BEFORE"})

	// A round that has booked its payment, and so taken its time, is held
	// before it commits: its write of the merchant's payable waits for
	// this lock.
	hold, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx) //nolint:errcheck // released below
	if _, err := hold.Exec(ctx, `SELECT 1 FROM ledger_accounts WHERE code = $1 FOR UPDATE`, "merchant:"+a+":payable"); err != nil {
		t.Fatal(err)
	}
	waiting := func() int { return e.lockWaiters(ctx, t) }
	recorded := make(chan error, 1)
	go func() {
		_, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "held", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-HELD"})
		recorded <- err
	}()
	until(ctx, func() bool { return waiting() == 1 })
	at := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.Now()}}
	day := settlement.DayOf(at.GetTime().AsTime()).String()

	reads := []struct {
		name string
		read func() (proto.Message, error)
	}{
		{"GetBalance", func() (proto.Message, error) {
			return e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable", AsOf: at})
		}},
		{"GetTrialBalance", func() (proto.Message, error) {
			return e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: testMarket, AsOf: at})
		}},
		{"GetMerchantSettlement", func() (proto.Message, error) {
			return e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: a, StartDay: day, EndDay: day, AsOf: at})
		}},
		{"GetMarketSettlement", func() (proto.Message, error) {
			return e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: day, EndDay: day, AsOf: at})
		}},
		// The entries recorded before it: an auditor who lists the
		// journal a period after another, up to a time just passed, would
		// see the payment in neither.
		{"ListEntries", func() (proto.Message, error) {
			return e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: testMarket, EndTime: at.GetTime()})
		}},
	}
	type answer struct {
		msg proto.Message
		err error
	}
	firsts := make([]chan answer, len(reads))
	var answered atomic.Int32
	for i, r := range reads {
		firsts[i] = make(chan answer, 1)
		go func() {
			m, err := r.read()
			firsts[i] <- answer{m, err}
			answered.Add(1)
		}()
	}
	// Each read has answered, or waits for the round: either way it has
	// read what it reads before the round is let go.
	until(ctx, func() bool { return int(answered.Load())+waiting()-1 >= len(reads) })
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-recorded; err != nil {
		t.Fatal(err)
	}
	for i, r := range reads {
		first := <-firsts[i]
		if first.err != nil {
			t.Fatalf("%s: %v", r.name, first.err)
		}
		again, err := r.read()
		if err != nil {
			t.Fatalf("%s again: %v", r.name, err)
		}
		if !proto.Equal(first.msg, again) {
			t.Errorf("%s as of %s, while a payment booked before it committed:\n%v\nasked again:\n%v",
				r.name, at.GetTime().AsTime().Format(time.RFC3339Nano), first.msg, again)
		}
	}
}

// Only a time that may still gain entries waits for the round holding the
// ledger head: a report of a day not yet over, and reads as of a time
// before the newest entry, answer while a round holds it, so that the
// reports stalls and auditors ask all day take no lock on the row every
// write needs.
func TestReadsOfThePastAndOfTodayDoNotWaitForTheHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "first", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-FIRST"})
	before := timestamppb.Now()
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "second", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "50000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-SECOND"})

	holder, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // read-only
	if _, err := holder.Exec(ctx, `SELECT last_seq FROM ledger_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	past := &pb.AsOf{Point: &pb.AsOf_Time{Time: before}}
	if r, err := e.client.GetBalance(callCtx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable", AsOf: past}); err != nil {
		t.Errorf("GetBalance as of a time before the newest entry, while a round holds the head: %v", err)
	} else if r.Balance.Posted != "99500" {
		t.Errorf("GetBalance as of a time before the second payment: %s, want 99500", r.Balance.Posted)
	}
	if _, err := e.settle.GetMerchantSettlement(callCtx, &pb.GetMerchantSettlementRequest{Merchant: a, StartDay: today()}); err != nil {
		t.Errorf("today's report, while a round holds the head: %v", err)
	}
	if _, err := e.settle.GetMarketSettlement(callCtx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today()}); err != nil {
		t.Errorf("today's market report, while a round holds the head: %v", err)
	}
	if _, err := e.client.ListEntries(callCtx, &pb.ListEntriesRequest{Market: testMarket, EndTime: before}); err != nil {
		t.Errorf("entries recorded before a time before the newest entry, while a round holds the head: %v", err)
	}
}

// A round waiting for the ledger head behind a read's shared lock on it
// records the time it is granted the head, not the time it asked: a read
// as of a time between the two takes its shared lock at once, beside the
// other read's, and would not wait for that round.
func TestReadAsOfATimeWaitsForARoundQueuedBehindAnotherRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a = "TN-TEST-0001"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "before", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-BEFORE"})

	// Another read as of a time just passed holds the head's shared lock,
	// as ledger.AwaitRecorded takes it, while the round asks for the head.
	reader, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(ctx) //nolint:errcheck // released below
	if _, err := reader.Exec(ctx, `SELECT FROM ledger_head FOR KEY SHARE`); err != nil {
		t.Fatal(err)
	}
	recorded := make(chan error, 1)
	go func() {
		_, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: "queued", Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-QUEUED"})
		recorded <- err
	}()
	until(ctx, func() bool { return e.lockWaiters(ctx, t) == 1 })
	time.Sleep(10 * time.Millisecond)
	at := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.Now()}}
	read := func() (*pb.GetBalanceResponse, error) {
		return e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable", AsOf: at})
	}
	type answer struct {
		r   *pb.GetBalanceResponse
		err error
	}
	first := make(chan answer, 1)
	go func() {
		r, err := read()
		first <- answer{r, err}
	}()
	// The read answers, or waits for the round.
	var got answer
	answered := false
	select {
	case got = <-first:
		answered = true
	case <-time.After(500 * time.Millisecond):
	}
	if err := reader.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-recorded; err != nil {
		t.Fatal(err)
	}
	if !answered {
		got = <-first
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	again, err := read()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.r, again) {
		t.Errorf("GetBalance as of %s, while a payment queued behind a read committed:\n%v\nasked again:\n%v",
			at.GetTime().AsTime().Format(time.RFC3339Nano), got.r, again)
	}
}

// Reads as of a time a few milliseconds past, made while bank payments,
// stall payments and their confirmations and refunds are written: each
// answers, and asked again once the writes are over, as of the same time,
// answers the same.
func TestReadsAsOfATimeJustPassedAmidWritersAreFinal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	merchants := []string{"TN-TEST-0001", "TN-TEST-0002"}

	type read struct {
		name string
		do   func(at *pb.AsOf) (proto.Message, error)
	}
	day := settlement.DayOf(time.Now()).String()
	reads := []read{
		{"GetBalance", func(at *pb.AsOf) (proto.Message, error) {
			return e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:TN-TEST-0001:payable", AsOf: at})
		}},
		{"GetTrialBalance", func(at *pb.AsOf) (proto.Message, error) {
			return e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: testMarket, AsOf: at})
		}},
		{"GetMerchantSettlement", func(at *pb.AsOf) (proto.Message, error) {
			return e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: "TN-TEST-0002", StartDay: day, EndDay: day, AsOf: at})
		}},
	}
	type answer struct {
		read int
		at   *pb.AsOf
		msg  proto.Message
	}
	var mu sync.Mutex
	var answers []answer
	stop := make(chan struct{})
	var readers, writers sync.WaitGroup
	for g := range 8 {
		readers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				at := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(time.Now().Add(-time.Duration(1+n%5) * time.Millisecond))}}
				i := (g + n) % len(reads)
				msg, err := reads[i].do(at)
				if err != nil {
					t.Errorf("%s as of %s: %v", reads[i].name, at.GetTime().AsTime().Format(time.RFC3339Nano), err)
					return
				}
				mu.Lock()
				answers = append(answers, answer{i, at, msg})
				mu.Unlock()
			}
		})
	}
	allowed := func(what string, err error) {
		switch status.Code(err) {
		case codes.OK, codes.FailedPrecondition:
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	for g := range 8 {
		writers.Go(func() {
			m := merchants[g%2]
			for n := range 15 {
				key := fmt.Sprint("w", g, "-", n)
				switch n % 3 {
				case 0:
					r, err := e.payments.RecordPayment(ctx, bankNotice(key, m, "100000", "FT-"+key))
					allowed(key, err)
					if err == nil {
						_, err = e.payments.RefundPayment(ctx, &pb.RefundPaymentRequest{IdempotencyKey: key + "-refund", PaymentId: r.Payment.Id, Amount: "30000", Reason: "trả lại"})
						allowed(key+" refund", err)
					}
				default:
					r, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
						Amount: "50000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL})
					allowed(key, err)
					if err == nil && n%3 == 1 {
						_, err = e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: key + "-confirm", PaymentId: r.Payment.Id, ProviderRef: "FT-" + key})
						allowed(key+" confirmation", err)
					}
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	for _, a := range answers {
		again, err := reads[a.read].do(a.at)
		if err != nil {
			t.Fatalf("%s again: %v", reads[a.read].name, err)
		}
		if !proto.Equal(a.msg, again) {
			t.Errorf("%s as of %s, amid writes, then asked again:\n%s", reads[a.read].name, a.at.GetTime().AsTime().Format(time.RFC3339Nano), lineDiff(prototext.Format(a.msg), prototext.Format(again)))
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// lineDiff lists the lines of two texts that differ, by line number.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("%d: %q -> %q", i, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// lockWaiters is how many sessions of the test's database wait for a lock:
// a round held by a test's lock shows there once it is waiting.
func (e *env) lockWaiters(ctx context.Context, t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
