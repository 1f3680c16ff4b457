package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/settlement"
)

// feePlanModel is a fee plan as docs/design.md "Payments" says the fee is
// computed.
type feePlanModel struct {
	bp     map[pb.Channel]int64
	minFee int64
}

// fee is amount × bp / 10,000 rounded half up, at least the minimum, at
// most the amount. (amount ≤ 10^8 and bp ≤ 1,000: no overflow.)
func (p feePlanModel) fee(ch pb.Channel, amount int64) int64 {
	f := (amount*p.bp[ch]*2 + 10000) / 20000
	return min(max(f, p.minFee), amount)
}

// feePaymentModel is a payment as the fee rules make it.
type feePaymentModel struct {
	id                string
	merchant          string
	channel           pb.Channel
	status            pb.PaymentStatus
	amount            int64
	fee               int64 // the recorded fee while pending, then the confirmed one
	confirmed         int64
	refunded, feeBack int64
	float             bool // money for refunds to come out of, never refunded
}

// confirm charges the recorded fee in proportion to the confirmed amount,
// rounded up.
func (p *feePaymentModel) confirm(amount int64) {
	p.status, p.confirmed = pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, amount
	p.fee = (p.fee*amount + p.amount - 1) / p.amount
}

// refundFee is what a refund returns of the fee: the fee in proportion to
// everything refunded with it, rounded down, less what earlier refunds
// returned; the refund that reaches the confirmed amount returns the rest.
// (fee ≤ 10^7 and refunded ≤ 10^8: no overflow.)
func (p *feePaymentModel) refundFee(amount int64) int64 {
	after := p.refunded + amount
	if after == p.confirmed {
		return p.fee - p.feeBack
	}
	return p.fee*after/p.confirmed - p.feeBack
}

type feeMerchantModel struct {
	code     string
	market   string
	channels []pb.Channel
	plan     feePlanModel
}

// feesSeed is the seed TestFeesAndRefundsAddUp runs with unless FEES_SEED
// names another; fixed, so that every run checks the same history.
const feesSeed = 20261127

// Random histories of payments, partial confirmations (down to 1 đồng),
// refunds in many pieces (down to 1 đồng), rejections and expiries, on
// plans at the 1,000 bp maximum, with minimum fees above small payments,
// fees that round, a fee that is the whole payment, and no fee. Every
// answer and every stored payment agrees with a model of the fee rules of
// docs/design.md "Payments", no refund returns more fee than its own
// amount, and a full refund returns the whole fee. Afterwards each payable,
// each market's fees and each provider's clearing account holds, to the
// đồng, what the payments add up to; the merchant and market settlements
// report the same, and close at GetBalance as of their own sequence, also
// as of earlier points; and the ledger's invariants and the rollups hold.
//
// FEES_SEED=n replays a run with seed n; a failure logs the seed.
func TestFeesAndRefundsAddUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	seed := propertySeed(t, "FEES_SEED", feesSeed)
	rng := rand.New(rand.NewPCG(seed, 0xfee5))
	firstDay := settlement.DayOf(time.Now())
	qr, momo := pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO

	markets := []string{"FEE-M1", "FEE-M2"}
	plans := []feePlanModel{
		{map[pb.Channel]int64{qr: 1000, momo: 1000}, 0},      // the maximum rate
		{map[pb.Channel]int64{qr: 1000, momo: 999}, 500},     // the maximum rate and a minimum
		{map[pb.Channel]int64{qr: 0, momo: 0}, 900},          // the minimum is nearly all of a small payment
		{map[pb.Channel]int64{qr: 1, momo: 333}, 0},          // fees that round
		{map[pb.Channel]int64{qr: 1000, momo: 7}, 1_000_000}, // the fee is the whole of most payments
		{map[pb.Channel]int64{qr: 0, momo: 0}, 0},            // free
	}
	var merchants []*feeMerchantModel
	for _, mk := range markets {
		if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: mk, Name: "Chợ " + mk, Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
			t.Fatal(err)
		}
		for i, plan := range plans {
			m := &feeMerchantModel{code: fmt.Sprintf("%s-%02d", mk, i+1), market: mk, channels: []pb.Channel{qr, momo}, plan: plan}
			fp := &pb.FeePlan{MinFee: fmt.Sprint(plan.minFee)}
			for _, ch := range m.channels {
				fp.Fees = append(fp.Fees, &pb.ChannelFee{Channel: ch, BasisPoints: int32(plan.bp[ch])})
			}
			if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
				Code: m.code, Market: mk, Stalls: []string{fmt.Sprintf("S-%02d", i)}, DisplayName: "Sạp " + m.code,
				OwnerName: "Chủ sạp", Phone: "0912345678", Channels: m.channels, FeePlan: fp,
			}}); err != nil {
				t.Fatalf("create merchant %s: %v", m.code, err)
			}
			merchants = append(merchants, m)
		}
	}

	payments := map[string]*feePaymentModel{}
	var order []string
	n := 0
	key := func(prefix string) string { n++; return fmt.Sprintf("%s-%d", prefix, n) }
	check := func(what string, got *pb.Payment, p *feePaymentModel) {
		t.Helper()
		if got.Status != p.status || num(got.Amount) != p.amount || num(got.ConfirmedAmount) != p.confirmed || num(got.Fee) != p.fee ||
			num(got.RefundedAmount) != p.refunded || num(got.FeeRefunded) != p.feeBack {
			t.Errorf("%s: payment %s: status %v amount %s confirmed %s fee %s refunded %s fee refunded %s; the fee rules say %v %d %d %d %d %d",
				what, got.Id, got.Status, got.Amount, got.ConfirmedAmount, got.Fee, got.RefundedAmount, got.FeeRefunded,
				p.status, p.amount, p.confirmed, p.fee, p.refunded, p.feeBack)
		}
	}
	add := func(p *feePaymentModel) {
		payments[p.id], order = p, append(order, p.id)
	}
	amountOf := func() int64 {
		switch rng.IntN(8) {
		case 0:
			return 1000 // the providers' minimum
		case 1:
			return 100_000_000 // and maximum
		case 2:
			return 1000 + rng.Int64N(10)
		case 3:
			return 1000 + rng.Int64N(9000)
		default:
			return 1000 + rng.Int64N(2_000_000)
		}
	}
	pick := func(f func(p *feePaymentModel) bool) *feePaymentModel {
		var c []*feePaymentModel
		for _, id := range order {
			if f(payments[id]) {
				c = append(c, payments[id])
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}
	// A float for each merchant, so that refunds are not refused for want
	// of money owed to the merchant.
	for _, m := range merchants {
		amount := int64(100_000_000)
		resp := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key("float"), Merchant: m.code, Channel: qr, Amount: fmt.Sprint(amount),
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: key("FLOAT")})
		p := &feePaymentModel{id: resp.Payment.Id, merchant: m.code, channel: qr, status: pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED,
			amount: amount, confirmed: amount, fee: m.plan.fee(qr, amount), float: true}
		add(p)
		check("float", resp.Payment, p)
	}

	refunds := 0
	// refund refunds amount of p, naming the amount or leaving it out (all
	// that remains), and checks the fee it returns against the model.
	refund := func(p *feePaymentModel, amount int64, named bool) {
		t.Helper()
		req := &pb.RefundPaymentRequest{IdempotencyKey: key("ref"), PaymentId: p.id}
		if named {
			req.Amount = fmt.Sprint(amount)
		}
		want := p.refundFee(amount)
		resp, err := e.payments.RefundPayment(ctx, req)
		if err != nil {
			t.Fatalf("refund %d of %s (confirmed %d, fee %d, refunded %d, fee returned %d; the fee rules return %d): %v",
				amount, p.id, p.confirmed, p.fee, p.refunded, p.feeBack, want, err)
		}
		refunds++
		if got := num(resp.FeeReturned); got < 0 || got > amount {
			t.Errorf("refund %d of %s returned fee %s: a refund never returns more fee than its own amount, nor less than none", amount, p.id, resp.FeeReturned)
		}
		if num(resp.Amount) != amount || num(resp.FeeReturned) != want {
			t.Errorf("refund %d of %s (confirmed %d, fee %d, refunded %d, fee returned %d): refunded %s returning fee %s; the fee rules return %d",
				amount, p.id, p.confirmed, p.fee, p.refunded, p.feeBack, resp.Amount, resp.FeeReturned, want)
		}
		p.refunded += num(resp.Amount)
		p.feeBack += num(resp.FeeReturned)
		p.status = pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED
		if p.refunded == p.confirmed {
			p.status = pb.PaymentStatus_PAYMENT_STATUS_REFUNDED
		}
		check("refund", resp.Payment, p)
	}

	const steps = 900
	for step := 0; step < steps; step++ {
		m := merchants[rng.IntN(len(merchants))]
		ch := m.channels[rng.IntN(len(m.channels))]
		mine := func(f func(p *feePaymentModel) bool) *feePaymentModel {
			return pick(func(p *feePaymentModel) bool { return p.merchant == m.code && f(p) })
		}
		pending := func(p *feePaymentModel) bool { return p.status == pb.PaymentStatus_PAYMENT_STATUS_PENDING }
		switch r := rng.IntN(100); {
		case r < 22: // a stall records a payment
			amount := amountOf()
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("stall"), Merchant: m.code, Channel: ch, Amount: fmt.Sprint(amount), Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
			if rng.IntN(3) == 0 {
				req.ProviderRef = key("SREF")
			}
			resp := e.record(t, req)
			p := &feePaymentModel{id: resp.Payment.Id, merchant: m.code, channel: ch, status: pb.PaymentStatus_PAYMENT_STATUS_PENDING, amount: amount, fee: m.plan.fee(ch, amount)}
			add(p)
			check("record (stall)", resp.Payment, p)
			if req.ProviderRef == "" || rng.IntN(2) == 0 {
				break
			}
			// The bank's notification of the same reference, for the amount
			// or for less (not below the providers' minimum).
			conf := amount
			if rng.IntN(2) == 0 && amount > 1000 {
				conf = 1000 + rng.Int64N(amount-1000)
			}
			bresp, err := e.payments.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("bankconf"), Merchant: m.code, Channel: ch, Amount: fmt.Sprint(conf),
				Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: req.ProviderRef})
			if err != nil {
				t.Fatalf("bank confirmation of %s for %d: %v", p.id, conf, err)
			}
			if bresp.Payment.Id != p.id {
				t.Fatalf("bank notification recorded %s instead of confirming %s", bresp.Payment.Id, p.id)
			}
			p.confirm(conf)
			check("bank confirmation", bresp.Payment, p)
		case r < 32: // only the bank saw it
			amount := amountOf()
			resp := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key("bank"), Merchant: m.code, Channel: ch, Amount: fmt.Sprint(amount),
				Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: key("FT")})
			p := &feePaymentModel{id: resp.Payment.Id, merchant: m.code, channel: ch, status: pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED, amount: amount, confirmed: amount, fee: m.plan.fee(ch, amount)}
			add(p)
			check("record (bank)", resp.Payment, p)
		case r < 50: // confirm a pending one, in full or in part
			p := mine(pending)
			if p == nil {
				continue
			}
			req := &pb.ConfirmPaymentRequest{IdempotencyKey: key("conf"), PaymentId: p.id}
			conf := p.amount
			switch rng.IntN(6) {
			case 0:
				conf = 1
			case 1:
				conf = p.amount - 1
			case 2:
				conf = 1 + rng.Int64N(p.amount)
			case 3:
				conf = 1 + rng.Int64N(min(p.amount, 50))
			}
			if conf != p.amount || rng.IntN(2) == 0 {
				req.Amount = fmt.Sprint(conf)
			}
			resp, err := e.payments.ConfirmPayment(ctx, req)
			if err != nil {
				t.Fatalf("confirm %s (%d of %d): %v", p.id, conf, p.amount, err)
			}
			p.confirm(conf)
			check("confirm", resp.Payment, p)
		case r < 55: // the bank rejects one
			p := mine(pending)
			if p == nil {
				continue
			}
			resp, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: key("rej"), PaymentId: p.id})
			if err != nil {
				t.Fatalf("reject %s: %v", p.id, err)
			}
			p.status = pb.PaymentStatus_PAYMENT_STATUS_REJECTED
			check("reject", resp.Payment, p)
		case r < 57: // a day passes: what is pending expires
			e.advance(25 * time.Hour)
			if _, err := e.ledger.ExpireDue(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range order {
				if p := payments[id]; pending(p) {
					p.status = pb.PaymentStatus_PAYMENT_STATUS_EXPIRED
				}
			}
		default: // a refund, more often of a payment refunded in part already
			refundable := func(p *feePaymentModel) bool { return !p.float && p.confirmed > p.refunded }
			p := mine(func(p *feePaymentModel) bool { return refundable(p) && p.refunded > 0 })
			if p == nil || rng.IntN(4) == 0 {
				p = mine(refundable)
			}
			if p == nil {
				continue
			}
			left := p.confirmed - p.refunded
			amount := left
			switch rng.IntN(10) {
			case 0, 1:
				amount = 1
			case 2:
				// A share of the fee just short of a whole đồng, all of
				// which rounding down leaves for later refunds.
				if p.fee > 0 {
					amount = min(left, max(1, (p.confirmed+p.fee-1)/p.fee-1))
				}
			case 3, 4:
				amount = 1 + rng.Int64N(min(left, 30))
			case 5, 6:
				amount = 1 + rng.Int64N(left)
			case 7:
				amount = max(1, left-1-rng.Int64N(3))
			}
			refund(p, amount, amount != left || rng.IntN(2) == 0)
		}
	}

	// Half the payments refunded in part are refunded to the last đồng, and
	// then that đồng: whatever fractions of the fee earlier refunds left,
	// the last đồng never owes more fee than itself.
	for _, id := range order {
		if p := payments[id]; p.status == pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED && rng.IntN(2) == 0 {
			if left := p.confirmed - p.refunded; left > 1 {
				refund(p, left-1, true)
			}
			refund(p, 1, rng.IntN(2) == 0)
		}
	}

	// Every payment, as stored, agrees with the model; a fee never comes back
	// in excess, and comes back whole with a full refund.
	type sums struct{ payable, fees, gross, feesCharged, refunded, feesReturned int64 }
	byMerchant := map[string]*sums{}
	marketFees := map[string]int64{}
	clearing := map[string]int64{}
	marketOf := map[string]string{}
	for _, m := range merchants {
		byMerchant[m.code] = &sums{}
		marketOf[m.code] = m.market
	}
	byStatus := map[pb.PaymentStatus]int{}
	for _, id := range order {
		p := payments[id]
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		check("stored", got.Payment, p)
		byStatus[p.status]++
		if num(got.Payment.FeeRefunded) > num(got.Payment.Fee) {
			t.Errorf("payment %s returned fee %s of %s", id, got.Payment.FeeRefunded, got.Payment.Fee)
		}
		if got.Payment.Status == pb.PaymentStatus_PAYMENT_STATUS_REFUNDED && got.Payment.FeeRefunded != got.Payment.Fee {
			t.Errorf("payment %s refunded in full returned fee %s of %s", id, got.Payment.FeeRefunded, got.Payment.Fee)
		}
		if p.confirmed == 0 {
			continue
		}
		s := byMerchant[p.merchant]
		s.payable += (p.confirmed - p.fee) - (p.refunded - p.feeBack)
		s.fees += p.fee - p.feeBack
		s.gross += p.confirmed
		s.feesCharged += p.fee
		s.refunded += p.refunded
		s.feesReturned += p.feeBack
		marketFees[marketOf[p.merchant]] += p.fee - p.feeBack
		clearing[clearingOf(p.channel, marketOf[p.merchant])] += p.confirmed - p.refunded
	}
	t.Logf("%d writes, %d refunds; payments by status %v", n, refunds, byStatus)

	balance := func(code string, at *pb.AsOf) *pb.Balance {
		t.Helper()
		b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code, AsOf: at})
		if err != nil {
			t.Fatalf("balance of %s: %v", code, err)
		}
		return b.Balance
	}
	atSequence := func(seq int64) *pb.AsOf { return &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: seq}} }
	for _, m := range merchants {
		if b := balance("merchant:"+m.code+":payable", nil); num(b.Posted) != byMerchant[m.code].payable {
			t.Errorf("%s payable %s; its payments come to %d", m.code, b.Posted, byMerchant[m.code].payable)
		}
	}
	for _, market := range markets {
		if b := balance("market:"+market+":fees", nil); num(b.Posted) != marketFees[market] {
			t.Errorf("%s fees %s; the payments' fees less fees returned come to %d", market, b.Posted, marketFees[market])
		}
		for _, ch := range []pb.Channel{qr, momo} {
			code := clearingOf(ch, market)
			if b := balance(code, nil); num(b.Posted) != clearing[code] {
				t.Errorf("%s %s; confirmed less refunded come to %d", code, b.Posted, clearing[code])
			}
		}
	}

	// The settlements, for the whole run: the same figures, closing at the
	// ledger's balances as of the sequence they report.
	start, end := firstDay.String(), settlement.DayOf(time.Now()).String()
	lines := map[string]*pb.SettlementTotals{}
	for _, m := range merchants {
		s := byMerchant[m.code]
		r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: m.code, StartDay: start, EndDay: end})
		if err != nil {
			t.Fatal(err)
		}
		tot := r.Totals
		lines[m.code] = tot
		checkDays(t, m.code, tot, r.Days)
		if num(tot.Payments) != s.gross || num(tot.Refunds) != s.refunded || num(tot.FeesCharged) != s.feesCharged ||
			num(tot.FeesReturned) != s.feesReturned || num(tot.ClosingBalance) != s.payable || tot.OpeningBalance != "0" || tot.Adjustments != "0" {
			t.Errorf("%s settlement %v; the payments say gross %d refunded %d fees %d returned %d closing %d",
				m.code, tot, s.gross, s.refunded, s.feesCharged, s.feesReturned, s.payable)
		}
		bal := balance("merchant:"+m.code+":payable", atSequence(r.Period.AsOfSequence))
		if bal.Posted != tot.ClosingBalance || bal.CreditsPending != tot.Pending {
			t.Errorf("%s closing %s pending %s; GetBalance as of %d: %v", m.code, tot.ClosingBalance, tot.Pending, r.Period.AsOfSequence, bal)
		}
	}
	for _, market := range markets {
		r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: market, StartDay: start, EndDay: end})
		if err != nil {
			t.Fatal(err)
		}
		checkDays(t, market, r.Totals, r.Days)
		sum := zeroTotals()
		for _, l := range r.Merchants {
			checkIdentity(t, market+" line "+l.Merchant, l.Totals)
			if lines[l.Merchant] == nil || withoutEquation(l.Totals).String() != withoutEquation(lines[l.Merchant]).String() {
				t.Errorf("%s line %s\n%v\nmerchant settlement\n%v", market, l.Merchant, l.Totals, lines[l.Merchant])
			}
			addTotals(sum, l.Totals)
		}
		if len(r.Merchants) != len(plans) || r.NextPageToken != "" {
			t.Errorf("%s: %d merchant lines (next page %q), want all %d on one page", market, len(r.Merchants), r.NextPageToken, len(plans))
		}
		if withoutEquation(r.Totals).String() != sum.String() {
			t.Errorf("%s totals\n%v\nsum of lines\n%v", market, r.Totals, sum)
		}
		at := atSequence(r.Period.AsOfSequence)
		if b := balance("market:"+market+":fees", at); num(r.Totals.Fees) != marketFees[market] || b.Posted != r.Totals.Fees {
			t.Errorf("%s fees %s; the payments come to %d, GetBalance as of %d to %s", market, r.Totals.Fees, marketFees[market], r.Period.AsOfSequence, b.Posted)
		}
		for _, p := range r.Providers {
			var gross, refunds int64
			for _, c := range r.Totals.Channels {
				if slices.Contains(p.Channels, c.Channel) {
					gross, refunds = gross+num(c.Payments), refunds+num(c.Refunds)
				}
			}
			b := balance(p.ClearingAccount, at)
			if num(p.Payments) != gross || num(p.Refunds) != refunds || num(p.ClosingOwed) != clearing[p.ClearingAccount] || p.ClosingOwed != b.Posted || p.Adjustments != "0" {
				t.Errorf("%s provider %v; channels %d/%d, the payments owe %d, GetBalance as of %d %s",
					market, p, gross, refunds, clearing[p.ClearingAccount], r.Period.AsOfSequence, b.Posted)
			}
		}
	}

	// Reports as of earlier points close at the ledger's balances as of the
	// same point.
	head := balance("merchant:"+merchants[0].code+":payable", nil).AsOfSequence
	for _, m := range merchants {
		seq := 1 + rng.Int64N(head)
		at := atSequence(seq)
		r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: m.code, StartDay: start, EndDay: end, AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		checkDays(t, m.code+" as of", r.Totals, r.Days)
		bal := balance("merchant:"+m.code+":payable", at)
		if bal.Posted != r.Totals.ClosingBalance || bal.CreditsPending != r.Totals.Pending || r.Totals.Adjustments != "0" {
			t.Errorf("%s as of %d: closing %s pending %s adjustments %s; GetBalance %v", m.code, seq, r.Totals.ClosingBalance, r.Totals.Pending, r.Totals.Adjustments, bal)
		}
	}
	for _, market := range markets {
		seq := 1 + rng.Int64N(head)
		at := atSequence(seq)
		r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: market, StartDay: start, EndDay: end, AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		checkDays(t, market+" as of", r.Totals, r.Days)
		sum := zeroTotals()
		for _, l := range r.Merchants {
			addTotals(sum, l.Totals)
		}
		if withoutEquation(r.Totals).String() != sum.String() {
			t.Errorf("%s as of %d: totals\n%v\nsum of lines\n%v", market, seq, r.Totals, sum)
		}
		if b := balance("market:"+market+":fees", at); b.Posted != r.Totals.Fees {
			t.Errorf("%s as of %d: fees %s; GetBalance %s", market, seq, r.Totals.Fees, b.Posted)
		}
		for _, p := range r.Providers {
			if b := balance(p.ClearingAccount, at); b.Posted != p.ClosingOwed {
				t.Errorf("%s as of %d: %s owes %s; GetBalance %s", market, seq, p.Provider, p.ClosingOwed, b.Posted)
			}
		}
	}

	e.checkInvariants(t)
	e.checkRollups(t)
}

// The edges of what a fee plan, a payment and a posting may be: a plan's
// rate up to 1,000 bp and minimum up to 1,000,000 đồng, one more refused;
// payments from the providers' 1,000 đồng minimum to their 100,000,000
// maximum, whole đồng only, with fees rounded half up, at least the
// minimum and at most the amount; entries of 32 postings of 10^15 (the
// largest amount), whose balances sum past it, one đồng more refused; and
// an operator's adjustment of 10^15 to a payable, which the merchant's
// settlement reports as such. The settlements balance day by day, and the
// ledger's invariants and the rollups hold.
func TestAmountAndFeeBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	const mk = "EDGE"
	if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: mk, Name: "Chợ Biên", Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
		t.Fatal(err)
	}
	createMerchant := func(code string, bp int32, minFee string) error {
		_, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
			Code: code, Market: mk, Stalls: []string{"S-" + code}, DisplayName: "Sạp " + code, OwnerName: "Chủ sạp", Phone: "0912345678",
			Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR},
			FeePlan:  &pb.FeePlan{MinFee: minFee, Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: bp}}},
		}})
		return err
	}
	const highMinimum, maxRate = "EDGE-01", "EDGE-02"
	if err := createMerchant(highMinimum, 1000, "1000000"); err != nil {
		t.Fatal(err)
	}
	if err := createMerchant(maxRate, 1000, "0"); err != nil {
		t.Fatal(err)
	}
	if err := createMerchant("EDGE-03", 1001, "0"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a plan of 1001 bp: %v, want InvalidArgument", err)
	}
	if err := createMerchant("EDGE-04", 1000, "1000001"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a plan with a minimum fee of 1000001: %v, want InvalidArgument", err)
	}
	for i, c := range []struct {
		merchant, amount string
		fee              string // "" for an amount refused
	}{
		{maxRate, "999", ""},
		{maxRate, "1000", "100"},
		{maxRate, "1005", "101"}, // 100.5, half up
		{maxRate, "1004", "100"},
		{maxRate, "100000000", "10000000"},
		{maxRate, "100000001", ""},
		{maxRate, "1000.0", "100"},
		{maxRate, "1000.5", ""},
		{highMinimum, "1000", "1000"}, // the minimum, but never more than the amount
		{highMinimum, "100000000", "10000000"},
		{highMinimum, "9999999", "1000000"},  // 999,999.9 rounds to 1,000,000, the minimum
		{highMinimum, "10000005", "1000001"}, // 1,000,000.5, half up
	} {
		resp, err := e.payments.RecordPayment(ctx, bankNotice(fmt.Sprint("edge-", i), c.merchant, c.amount, fmt.Sprint("FT-EDGE-", i)))
		if c.fee == "" {
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s %s: %v, want InvalidArgument", c.merchant, c.amount, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.merchant, c.amount, err)
			continue
		}
		if resp.Payment.Fee != c.fee {
			t.Errorf("%s %s: fee %s, want %s", c.merchant, c.amount, resp.Payment.Fee, c.fee)
		}
	}

	// Postings of the largest amount, many to an entry.
	e.account(t, "edge:assets", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", mk, false)
	e.account(t, "edge:liabilities", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", mk, false)
	const maxAmount = "1000000000000000"
	var ps []*pb.PostingInput
	for range 32 {
		ps = append(ps, posting("edge:assets", debit, maxAmount), posting("edge:liabilities", credit, maxAmount))
	}
	for i := range 3 {
		if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: fmt.Sprint("largest-", i), Market: mk, Kind: "transfer", Currency: "VND", Postings: ps}); err != nil {
			t.Fatalf("post 32 × 10^15: %v", err)
		}
	}
	b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "edge:assets"})
	if err != nil || b.Balance.Posted != "96000000000000000" {
		t.Errorf("balance after 3 × 32 × 10^15: %v, %v", b, err)
	}
	b, err = e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "edge:liabilities", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: b.GetBalance().GetAsOfSequence() - 1}}})
	if err != nil || b.Balance.Posted != "64000000000000000" {
		t.Errorf("balance as of the entry before the last: %v, %v", b, err)
	}
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "too-large", Market: mk, Kind: "transfer", Currency: "VND",
		Postings: []*pb.PostingInput{posting("edge:assets", debit, "1000000000000001"), posting("edge:liabilities", credit, "1000000000000001")}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a posting of 10^15 + 1: %v, want InvalidArgument", err)
	}

	// An operator's adjustment of a payable by the largest amount: the
	// settlement reports it.
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "adjustment", Market: mk, Kind: "adjustment", Currency: "VND",
		Postings: []*pb.PostingInput{posting("edge:assets", debit, maxAmount), posting("merchant:"+maxRate+":payable", credit, maxAmount)}}); err != nil {
		t.Fatal(err)
	}
	day := today()
	r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: maxRate, StartDay: day})
	if err != nil {
		t.Fatal(err)
	}
	checkDays(t, maxRate, r.Totals, r.Days)
	if r.Totals.Adjustments != maxAmount {
		t.Errorf("%s adjustments %s, want %s", maxRate, r.Totals.Adjustments, maxAmount)
	}
	mr, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: day})
	if err != nil {
		t.Fatal(err)
	}
	checkDays(t, mk, mr.Totals, mr.Days)
	e.checkInvariants(t)
	e.checkRollups(t)
}
