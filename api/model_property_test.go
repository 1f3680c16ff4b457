package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/settlement"
)

// apiPayment is a payment as the documented rules make it.
type apiPayment struct {
	feePaymentModel
	market      string
	source      pb.PaymentSource
	ref         string
	requestID   string
	bill        string
	confirmedAt int // the step that confirmed it; 0 while it is not
	refunds     int
	expires     time.Time // while pending
	overdue     bool      // past its expiry, not yet swept
}

// apiMove is a posted movement of a merchant's payable, at a step.
type apiMove struct {
	step     int
	amount   int64 // signed: credits positive
	payout   bool
	refundOf string // the payment a refund gave money back of
}

// apiLine is a payout line.
type apiLine struct {
	bank     string
	merchant string
	amount   int64
	status   pb.PayoutLineStatus
	expires  time.Time // by the env's clock
	overdue  bool      // open past its expiry, not yet swept
}

type apiMerchant struct {
	feeMerchantModel
	account   bool // has a payout account
	suspended bool
	moves     []apiMove
	open      *apiLine
}

// posted is the payable's posted balance after step (every step for -1).
func (m *apiMerchant) posted(step int) int64 {
	var v int64
	for _, mv := range m.moves {
		if step < 0 || mv.step <= step {
			v += mv.amount
		}
	}
	return v
}

// apiReplay sends an earlier request again: as it was, which must be
// answered as its replay, and changed, which must be refused.
type apiReplay struct {
	what    string
	again   func(t *testing.T)
	changed func(t *testing.T)
}

// sendMaybeTwice sends call once, or, one time in four, twice at once
// (sendTwice), answering with the copy that was not a replay.
func sendMaybeTwice[T interface {
	proto.Message
	GetReplayed() bool
}](t *testing.T, rng *rand.Rand, call func() (T, error)) (T, error) {
	t.Helper()
	return sendTwice(t, rng.IntN(4) == 0, call, T.GetReplayed)
}

// modelSeed is the seed TestPaymentAPIAgreesWithItsModel runs with unless
// MODEL_SEED names another.
const modelSeed = 20261128

// Random histories of the payment API as a whole, through the credentials
// that make each call in production: stalls record payments, some of a
// payment request whose bill the bank's notification names; banks record,
// confirm (in full or in part, by ConfirmPayment or by a notification of
// the reference or of the bill, named in capitals or not; a notification
// of a bill for more than the stall's payment, or whose stall payment
// carries another reference, is a payment of its own), reject and bulk
// record them; refunds in part, in full and of the rest; the clock passes
// the payments' timeout, the payment requests' and the payout lines', with
// the sweeper run at once or later; providers settle with two banks,
// beyond what they owe with allow_unmatched, and suspense is matched back;
// payout batches of both banks at cut-offs now and earlier are paid, fail
// or lapse; fee plans change between payments, merchants are suspended and
// reinstated; calls that must be refused are; a share of the writes are
// sent twice at once, both copies answered alike; and earlier requests are
// sent again, as they were (replays) and changed (refused). A plain model
// of the documented rules says what every answer, payment, list, balance,
// settlement report, payout batch and line must be; every report asked
// again as of its point says what it said; the ledger's invariants and the
// rollups hold.
//
// MODEL_SEED=n replays a run with seed n; a failure logs the seed.
func TestPaymentAPIAgreesWithItsModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	seed := propertySeed(t, "MODEL_SEED", modelSeed)
	rng := rand.New(rand.NewPCG(seed, 0x40de1))
	firstDay := settlement.DayOf(time.Now())
	qr, momo := pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO
	const (
		pending  = pb.PaymentStatus_PAYMENT_STATUS_PENDING
		confirm  = pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED
		rejected = pb.PaymentStatus_PAYMENT_STATUS_REJECTED
		expired  = pb.PaymentStatus_PAYMENT_STATUS_EXPIRED
		stall    = pb.PaymentSource_PAYMENT_SOURCE_STALL
		bank     = pb.PaymentSource_PAYMENT_SOURCE_BANK
	)

	markets := []string{"MOD-A", "MOD-B"}
	plans := []feePlanModel{
		{map[pb.Channel]int64{qr: 50, momo: 150}, 500},
		{map[pb.Channel]int64{qr: 0, momo: 0}, 0},
		{map[pb.Channel]int64{qr: 1000, momo: 333}, 0},
		{map[pb.Channel]int64{qr: 7, momo: 1000}, 2000},
	}
	planOf := func(p feePlanModel, channels []pb.Channel) *pb.FeePlan {
		fp := &pb.FeePlan{MinFee: fmt.Sprint(p.minFee)}
		for _, ch := range channels {
			fp.Fees = append(fp.Fees, &pb.ChannelFee{Channel: ch, BasisPoints: int32(p.bp[ch])})
		}
		return fp
	}
	merchants := map[string]*apiMerchant{}
	var stalls []string // in market, then merchant order, as payout lines are
	stallConn := map[string]pb.PaymentServiceClient{}
	for _, mk := range markets {
		if _, err := e.merchants.CreateMarket(ctx, &pb.CreateMarketRequest{Market: &pb.Market{Code: mk, Name: "Chợ " + mk, Province: "Thái Nguyên", CollectionAccount: testCollection}}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			m := &apiMerchant{feeMerchantModel: feeMerchantModel{code: fmt.Sprintf("%s-%02d", mk, i+1), market: mk, channels: []pb.Channel{qr, momo},
				plan: plans[rng.IntN(len(plans))]}, account: i != 2}
			mc := &pb.Merchant{Code: m.code, Market: mk, Stalls: []string{fmt.Sprintf("S-%02d", i)}, DisplayName: "Sạp " + m.code,
				OwnerName: "Chủ sạp", Phone: "0912345678", Channels: m.channels, FeePlan: planOf(m.plan, m.channels)}
			if m.account {
				mc.PayoutAccount = &pb.PayoutAccount{BankBin: "970436", AccountNumber: fmt.Sprintf("00%s%d", mk[4:], i), HolderName: "CHU SAP"}
			}
			if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: mc}); err != nil {
				t.Fatalf("create merchant %s: %v", m.code, err)
			}
			_, secret := e.issue(t, access.IssueRequest{Name: "stall " + m.code, Role: access.RoleMerchant, Merchant: m.code})
			stallConn[m.code] = pb.NewPaymentServiceClient(e.dial(t, secret))
			merchants[m.code] = m
			stalls = append(stalls, m.code)
		}
	}
	_, napasSecret := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	_, momoSecret := e.issue(t, access.IssueRequest{Name: "MoMo", Role: access.RoleBank, Provider: "momo"})
	napasConn, momoConn := e.dial(t, napasSecret), e.dial(t, momoSecret)
	bankPayments := map[pb.Channel]pb.PaymentServiceClient{qr: pb.NewPaymentServiceClient(napasConn), momo: pb.NewPaymentServiceClient(momoConn)}
	bankSettle := map[pb.Channel]pb.SettlementServiceClient{qr: pb.NewSettlementServiceClient(napasConn), momo: pb.NewSettlementServiceClient(momoConn)}
	// VCB and BIDV pay the merchants out, each for the NAPAS integration
	// with a credential bound to it; the NAPAS credential above, of no
	// settlement bank, reports credits to both.
	payoutsAt := map[string]pb.SettlementServiceClient{}
	for _, bk := range []string{"vcb", "bidv"} {
		_, secret := e.issue(t, access.IssueRequest{Name: "VietQR bank at " + bk, Role: access.RoleBank, Provider: "napas", Bank: bk})
		payoutsAt[bk] = pb.NewSettlementServiceClient(e.dial(t, secret))
	}

	// The model.
	payments := map[string]*apiPayment{}
	var order []string
	owed := map[string]int64{}    // clearing account → what the provider owes
	settled := map[string]int64{} // clearing account → settled in all
	settledCount := map[string]int64{}
	funds := map[string]int64{} // bank:market → the bank's settlement money not paid out or reserved
	fundsOpen := map[string]bool{}
	banks := []string{"vcb", "bidv"}
	suspense := map[string]int64{}
	unmatched := map[string]int64{}    // clearing account → what its provider's credits left in suspense, not matched back yet
	reclassified := map[string]int64{} // clearing account → matched to it from suspense
	type bankRecord struct {
		req *pb.RecordPaymentRequest
		id  string
	}
	var bankRecords []bankRecord // fresh bank records, to send again in bulk
	type request struct {
		id, merchant, bill string
		amount             int64
		expires            time.Time // by the env's clock
	}
	var requests []*request
	batches := map[string][]*apiLine{} // every line of every batch
	batchBank := map[string]string{}
	var batchIDs []string
	openLines := func(id string, overdue bool) []*apiLine {
		var out []*apiLine
		for _, l := range batches[id] {
			if l.status == lineOpen && l.overdue == overdue {
				out = append(out, l)
			}
		}
		return out
	}
	var replays []*apiReplay
	var marks []time.Time // marks[s]: a time after step s's writes, before step s+1's
	step := 0
	n := 0
	key := func(prefix string) string { n++; return fmt.Sprintf("%s-%d", prefix, n) }
	var counts = map[string]int{}

	wantCode := func(what string, err error, code codes.Code) {
		t.Helper()
		if status.Code(err) != code {
			t.Fatalf("%s: %v, want %v", what, err, code)
		}
	}
	check := func(what string, got *pb.Payment, p *apiPayment) {
		t.Helper()
		if got.GetId() != p.id || got.Status != p.status || num(got.Amount) != p.amount || num(got.ConfirmedAmount) != p.confirmed || num(got.Fee) != p.fee ||
			num(got.RefundedAmount) != p.refunded || num(got.FeeRefunded) != p.feeBack || got.Merchant != p.merchant || got.Market != p.market ||
			got.Channel != p.channel || got.Source != p.source || got.ProviderRef != p.ref || got.PaymentRequestId != p.requestID || got.BillNumber != p.bill {
			t.Fatalf("%s: payment\n%v\nthe model says %s of %s %v %v %v amount %d confirmed %d fee %d refunded %d fee refunded %d ref %q request %q bill %q",
				what, got, p.id, p.merchant, p.channel, p.source, p.status, p.amount, p.confirmed, p.fee, p.refunded, p.feeBack, p.ref, p.requestID, p.bill)
		}
		// Its entries: the record, what closed a stall's pending one, and
		// each refund.
		entries := 1 + p.refunds
		if p.source == stall && p.status != pending {
			entries++
		}
		if len(got.EntryIds) != entries || (got.ExpireTime != nil) != (p.status == pending) || got.ExpireTime != nil && !got.ExpireTime.AsTime().Equal(p.expires) {
			t.Fatalf("%s: payment %v; the model says %d entries, expiring at %v while pending", what, got, entries, p.expires)
		}
		if !strings.HasSuffix(what, " list") {
			e.sameAsStored(t, what, got)
		}
	}
	stored := func(what string, p *apiPayment) {
		t.Helper()
		got, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.id})
		if err != nil {
			t.Fatalf("%s: get %s: %v", what, p.id, err)
		}
		check(what+" (stored)", got.Payment, p)
	}
	add := func(p *apiPayment) {
		payments[p.id], order = p, append(order, p.id)
	}
	// confirmed books p's confirmation of amount, fee in proportion.
	confirmed := func(p *apiPayment, amount int64) {
		p.confirm(amount)
		p.confirmedAt = step
		m := merchants[p.merchant]
		m.moves = append(m.moves, apiMove{step: step, amount: p.confirmed - p.fee})
		owed[clearingOf(p.channel, p.market)] += p.confirmed
	}
	amountOf := func() int64 {
		switch rng.IntN(6) {
		case 0:
			return 1000
		case 1:
			return 1000 + rng.Int64N(50)
		default:
			return 1000 + rng.Int64N(300)*1000 + rng.Int64N(1000)
		}
	}
	pick := func(f func(p *apiPayment) bool) *apiPayment {
		var c []*apiPayment
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
	isPending := func(p *apiPayment) bool { return p.status == pending && !p.overdue }
	// pendingOf is the stall's payment of rq a bill's notice confirms.
	pendingOf := func(rq *request) *apiPayment {
		return pick(func(p *apiPayment) bool { return p.requestID == rq.id && isPending(p) && p.ref == "" })
	}
	// newPayment records a payment the model says is new.
	newPayment := func(m *apiMerchant, ch pb.Channel, src pb.PaymentSource, amount int64, ref string, resp *pb.Payment) *apiPayment {
		p := &apiPayment{feePaymentModel: feePaymentModel{id: resp.GetId(), merchant: m.code, channel: ch, status: pending, amount: amount,
			fee: m.plan.fee(ch, amount)}, market: m.market, source: src, ref: ref, expires: resp.GetExpireTime().AsTime()}
		add(p)
		if src == bank {
			p.status = confirm
			confirmed(p, amount)
		}
		return p
	}
	// recordReplay lets a later step send r again, as it was and changed.
	recordReplay := func(c pb.PaymentServiceClient, r *pb.RecordPaymentRequest, id string) {
		if r.Source == bank {
			bankRecords = append(bankRecords, bankRecord{r, id})
		}
		replays = append(replays, &apiReplay{what: "record " + r.IdempotencyKey,
			again: func(t *testing.T) {
				t.Helper()
				resp, err := c.RecordPayment(ctx, r)
				if err != nil || !resp.Replayed {
					t.Fatalf("record %s again: %v, %v; want the replay of %s", r.IdempotencyKey, resp, err, id)
				}
				check("record again", resp.Payment, payments[id])
			},
			changed: func(t *testing.T) {
				t.Helper()
				c2 := proto.Clone(r).(*pb.RecordPaymentRequest)
				c2.Amount = fmt.Sprint(num(r.Amount) + 1)
				resp, err := c.RecordPayment(ctx, c2)
				wantCode(fmt.Sprintf("record %s again for another amount (%v)", r.IdempotencyKey, resp), err, codes.AlreadyExists)
			}})
	}
	// refundable is what p's merchant holds to give back.
	available := func(m *apiMerchant) int64 {
		v := m.posted(-1)
		if m.open != nil {
			v -= m.open.amount
		}
		return v
	}

	// refund refunds amount of p (0: the rest, sending no amount), as the
	// model says it must be answered.
	refund := func(p *apiPayment, amount int64, via pb.PaymentServiceClient) {
		t.Helper()
		m := merchants[p.merchant]
		left := p.confirmed - p.refunded
		req := &pb.RefundPaymentRequest{IdempotencyKey: key("refund"), PaymentId: p.id}
		if rng.IntN(3) == 0 {
			req.Reason = "khách trả lại hàng"
		}
		if amount > 0 {
			req.Amount = fmt.Sprint(amount)
		} else {
			amount = left
		}
		resp, err := sendMaybeTwice(t, rng, func() (*pb.RefundPaymentResponse, error) { return via.RefundPayment(ctx, req) })
		what := fmt.Sprintf("refund %d of %s (confirmed %d, refunded %d)", amount, p.id, p.confirmed, p.refunded)
		switch feeBack := p.refundFee(min(amount, left)); {
		case amount > left:
			wantCode(what+", more than remains", err, codes.FailedPrecondition)
			return
		case amount-feeBack > available(m):
			wantCode(fmt.Sprintf("%s, net %d of the %d the merchant holds", what, amount-feeBack, available(m)), err, codes.FailedPrecondition)
			return
		case err != nil:
			t.Fatalf("%s: %v", what, err)
		case resp.Replayed || num(resp.Amount) != amount || num(resp.FeeReturned) != feeBack:
			t.Fatalf("%s: refunded %s, fee %s, replayed %v; the model says %d, fee %d", what, resp.Amount, resp.FeeReturned, resp.Replayed, amount, feeBack)
		}
		p.refunded += amount
		p.feeBack += num(resp.FeeReturned)
		p.refunds++
		p.status = pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED
		if p.refunded == p.confirmed {
			p.status = pb.PaymentStatus_PAYMENT_STATUS_REFUNDED
		}
		m.moves = append(m.moves, apiMove{step: step, amount: -(amount - num(resp.FeeReturned)), refundOf: p.id})
		owed[clearingOf(p.channel, p.market)] -= amount
		check(what, resp.Payment, p)
		if ids := resp.Payment.EntryIds; ids[len(ids)-1] != resp.EntryId {
			t.Fatalf("%s: refund entry %s, the payment's last %v", what, resp.EntryId, ids)
		}
		counts["refund"]++
		want := &pb.RefundPaymentResponse{Amount: resp.Amount, FeeReturned: resp.FeeReturned, EntryId: resp.EntryId}
		named := req.Amount != ""
		replays = append(replays, &apiReplay{what: "refund " + req.IdempotencyKey,
			again: func(t *testing.T) {
				t.Helper()
				again, err := via.RefundPayment(ctx, req)
				if err != nil || !again.Replayed || again.Amount != want.Amount || again.FeeReturned != want.FeeReturned || again.EntryId != want.EntryId {
					t.Fatalf("refund %s again: %v, %v; want the replay of %v", req.IdempotencyKey, again, err, want)
				}
				check("refund again", again.Payment, p)
			},
			changed: func(t *testing.T) {
				t.Helper()
				c := proto.Clone(req).(*pb.RefundPaymentRequest)
				if named {
					c.Amount = fmt.Sprint(num(want.Amount) + 1)
				} else {
					c.Reason += " (sửa)"
				}
				resp, err := via.RefundPayment(ctx, c)
				wantCode(fmt.Sprintf("refund %s again changed to amount %q reason %q (%v)", req.IdempotencyKey, c.Amount, c.Reason, resp), err, codes.AlreadyExists)
			}})
	}

	// dueLines is what a batch at the cut-off after step cut must hold, in
	// order: merchant, amount and whether it is paid or skipped.
	type wantLine struct {
		merchant string
		amount   int64
		skipped  string
	}
	dueLines := func(cut int, market, bank string) []wantLine {
		var out []wantLine
		left := map[string]int64{}
		for _, code := range stalls {
			m := merchants[code]
			if market != "" && m.market != market {
				continue
			}
			// Owed at the cut-off: posted then, less payouts paid since and
			// refunds since of payments confirmed by then.
			o := m.posted(cut)
			for _, mv := range m.moves {
				if mv.step > cut && (mv.payout || mv.refundOf != "" && payments[mv.refundOf].confirmedAt <= cut) {
					o += mv.amount
				}
			}
			due := min(o, available(m))
			if due <= 0 {
				continue
			}
			l := wantLine{merchant: code, amount: due}
			f, ok := left[m.market]
			if !ok {
				f = funds[bank+":"+m.market]
			}
			switch {
			case m.open != nil:
				l.skipped = "open payout batch"
			case !m.account:
				l.skipped = "no payout account"
			case m.suspended:
				l.skipped = "suspended"
			case !fundsOpen[bank+":"+m.market]:
				l.skipped = "has received nothing"
			case f < due:
				l.skipped = "less than the"
			default:
				f -= due
			}
			left[m.market] = f
			out = append(out, l)
		}
		return out
	}

	// checkAll compares every payment, balance and report with the model.
	// Reports as checkAll found them, to ask for again as of their point.
	type reported struct {
		what     string
		merchant *pb.GetMerchantSettlementResponse
		market   *pb.GetMarketSettlementResponse
	}
	var reports []reported
	checkAll := func(what string) {
		t.Helper()
		for _, code := range stalls {
			m := merchants[code]
			var got []*pb.Payment
			for token := ""; ; {
				r, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Merchant: code, PageSize: 50, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r.Payments...)
				if token = r.NextPageToken; token == "" {
					break
				}
			}
			// The stall reads its own; the bank its channel's, by status.
			st := []pb.PaymentStatus{pending, confirm, rejected, expired, pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED, pb.PaymentStatus_PAYMENT_STATUS_REFUNDED}[rng.IntN(6)]
			fch := m.channels[rng.IntN(len(m.channels))]
			for _, c := range []struct {
				via    pb.PaymentServiceClient
				filter *pb.ListPaymentsRequest
			}{
				{stallConn[code], &pb.ListPaymentsRequest{Merchant: code, PageSize: 1000}},
				{bankPayments[fch], &pb.ListPaymentsRequest{Market: m.market, Channel: fch, Status: st, PageSize: 1000}},
			} {
				r, err := c.via.ListPayments(ctx, c.filter)
				if err != nil || r.NextPageToken != "" {
					t.Fatalf("%s: list %v: %v, %v", what, c.filter, r, err)
				}
				var want []string
				for _, id := range order {
					p := payments[id]
					if (c.filter.Merchant == "" || p.merchant == c.filter.Merchant) && (c.filter.Market == "" || p.market == c.filter.Market) &&
						(c.filter.Channel == 0 || p.channel == c.filter.Channel) && (c.filter.Status == 0 || p.status == c.filter.Status) {
						want = append(want, id)
					}
				}
				var ids []string
				for _, g := range r.Payments {
					ids = append(ids, g.Id)
					if payments[g.Id] != nil {
						check(what+" list", g, payments[g.Id])
					}
				}
				slices.Sort(ids)
				slices.Sort(want)
				if !slices.Equal(ids, want) {
					t.Fatalf("%s: list %v: %d payments %v; the model says %d %v", what, c.filter, len(ids), ids, len(want), want)
				}
			}
			var mine int
			for _, g := range got {
				p := payments[g.Id]
				if p == nil {
					t.Fatalf("%s: %s lists payment %v the model does not hold", what, code, g)
				}
				check(what+" list", g, p)
				mine++
			}
			var pendingNet, gross, fees, refunded, feesBack, paidOut int64
			var nPay, nRefund, nPayout int64
			for _, id := range order {
				if p := payments[id]; p.merchant == code {
					mine--
					switch {
					case p.status == pending:
						pendingNet += p.amount - p.fee
					case p.confirmed > 0:
						nPay++
						gross, fees, refunded, feesBack = gross+p.confirmed, fees+p.fee, refunded+p.refunded, feesBack+p.feeBack
					}
				}
			}
			for _, mv := range m.moves {
				switch {
				case mv.payout:
					nPayout, paidOut = nPayout+1, paidOut-mv.amount
				case mv.refundOf != "":
					nRefund++
				}
			}
			if mine != 0 {
				t.Fatalf("%s: %s lists %d payments; the model holds %d more", what, code, len(got), mine)
			}
			var reserved int64
			if m.open != nil {
				reserved = m.open.amount
			}
			b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + code + ":payable"})
			if err != nil {
				t.Fatal(err)
			}
			if num(b.Balance.Posted) != m.posted(-1) || num(b.Balance.CreditsPending) != pendingNet || num(b.Balance.DebitsPending) != reserved {
				t.Fatalf("%s: %s payable %v; the model says posted %d, pending credits %d, pending debits %d", what, code, b.Balance, m.posted(-1), pendingNet, reserved)
			}
			r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: code, StartDay: firstDay.String(), EndDay: settlement.DayOf(time.Now()).String()})
			if err != nil {
				t.Fatal(err)
			}
			checkDays(t, what+" "+code, r.Totals, r.Days)
			reports = append(reports, reported{what: what + " " + code, merchant: r})
			tot := r.Totals
			if tot.OpeningBalance != "0" || tot.PaymentCount != nPay || num(tot.Payments) != gross || num(tot.FeesCharged) != fees || tot.RefundCount != nRefund ||
				num(tot.Refunds) != refunded || num(tot.FeesReturned) != feesBack || tot.PayoutCount != nPayout || num(tot.Payouts) != paidOut ||
				tot.Adjustments != "0" || num(tot.ClosingBalance) != m.posted(-1) || num(tot.Pending) != pendingNet {
				t.Fatalf("%s: %s settlement %v; the model says %d payments of %d, fees %d, %d refunds of %d returning %d, %d payouts of %d, closing %d, pending %d",
					what, code, tot, nPay, gross, fees, nRefund, refunded, feesBack, nPayout, paidOut, m.posted(-1), pendingNet)
			}
		}
		for _, id := range batchIDs {
			b, lines := e.allLines(t, id)
			var w pb.PayoutBatch
			var total, paid, failed, skipped int64
			for _, l := range batches[id] {
				switch l.status {
				case lineSkipped:
					w.SkippedCount, skipped = w.SkippedCount+1, skipped+l.amount
					continue
				case lineOpen:
					w.OpenCount++
				case linePaid:
					w.PaidCount, paid = w.PaidCount+1, paid+l.amount
				case lineFailed:
					w.FailedCount, failed = w.FailedCount+1, failed+l.amount
				case lineExpired:
					w.ExpiredCount++
				}
				w.LineCount, total = w.LineCount+1, total+l.amount
			}
			status := batchComplete
			if w.OpenCount > 0 {
				status = batchOpen
			}
			if len(lines) != len(batches[id]) || b.Status != status || b.LineCount != w.LineCount || num(b.Total) != total || b.OpenCount != w.OpenCount ||
				b.PaidCount != w.PaidCount || num(b.Paid) != paid || b.FailedCount != w.FailedCount || num(b.Failed) != failed ||
				b.SkippedCount != w.SkippedCount || num(b.Skipped) != skipped || b.ExpiredCount != w.ExpiredCount {
				t.Fatalf("%s: batch %v with %d lines; the model says %v with %d lines, total %d, paid %d, failed %d, skipped %d",
					what, b, len(lines), &w, len(batches[id]), total, paid, failed, skipped)
			}
			for _, l := range lines {
				i := slices.IndexFunc(batches[id], func(x *apiLine) bool { return x.merchant == l.Merchant })
				if i < 0 || batches[id][i].status != l.Status || num(l.Amount) != batches[id][i].amount {
					t.Fatalf("%s: batch %s line %v; the model's is %+v", what, id, l, batches[id])
				}
			}
		}
		for _, mk := range markets {
			r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: firstDay.String(), EndDay: settlement.DayOf(time.Now()).String()})
			if err != nil {
				t.Fatal(err)
			}
			checkDays(t, what+" "+mk, r.Totals, r.Days)
			reports = append(reports, reported{what: what + " " + mk, market: r})
			sum := zeroTotals()
			for _, l := range r.Merchants {
				addTotals(sum, l.Totals)
			}
			if withoutEquation(r.Totals).String() != sum.String() || len(r.Merchants) != 3 {
				t.Fatalf("%s: %s totals\n%v\nsum of %d lines\n%v", what, mk, r.Totals, len(r.Merchants), sum)
			}
			// Its merchant lines by amount due, a page at a time.
			var byDue []string
			for token := ""; ; {
				page, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: mk, StartDay: firstDay.String(), EndDay: settlement.DayOf(time.Now()).String(),
					OrderBy: pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE, PageSize: 1, PageToken: token,
					AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: r.Period.AsOfSequence}}})
				if err != nil || page.TotalSize != 3 {
					t.Fatalf("%s: %s by amount due: %v, %v", what, mk, page, err)
				}
				for _, l := range page.Merchants {
					byDue = append(byDue, l.Merchant)
				}
				if token = page.NextPageToken; token == "" {
					break
				}
			}
			var wantDue []string
			for _, code := range stalls {
				if merchants[code].market == mk {
					wantDue = append(wantDue, code)
				}
			}
			slices.SortStableFunc(wantDue, func(a, b string) int {
				if d := merchants[b].posted(-1) - merchants[a].posted(-1); d != 0 {
					return int(d)
				}
				return strings.Compare(a, b)
			})
			if !slices.Equal(byDue, wantDue) {
				t.Fatalf("%s: %s merchants by amount due %v; the model says %v", what, mk, byDue, wantDue)
			}
			for _, pr := range r.Providers {
				ch := pr.Channels[0]
				code := clearingOf(ch, mk)
				var gross, refunded, pend int64
				var nPay, nRefund int64
				for _, id := range order {
					if p := payments[id]; p.market == mk && p.channel == ch {
						switch {
						case p.status == pending:
							pend += p.amount
						case p.confirmed > 0:
							nPay++
							gross, refunded = gross+p.confirmed, refunded+p.refunded
						}
					}
				}
				for _, code := range stalls {
					for _, mv := range merchants[code].moves {
						if mv.refundOf != "" && payments[mv.refundOf].market == mk && payments[mv.refundOf].channel == ch {
							nRefund++
						}
					}
				}
				if pr.ClearingAccount != code || pr.OpeningOwed != "0" || pr.PaymentCount != nPay || num(pr.Payments) != gross || pr.RefundCount != nRefund ||
					num(pr.Refunds) != refunded || pr.SettlementCount != settledCount[code] || num(pr.Settled) != settled[code] || num(pr.Reclassified) != reclassified[code] ||
					pr.Adjustments != "0" || num(pr.ClosingOwed) != owed[code] || num(pr.Pending) != pend {
					t.Fatalf("%s: %s provider %v; the model says %d payments of %d, %d refunds of %d, %d settlements of %d, owed %d, pending %d",
						what, mk, pr, nPay, gross, nRefund, refunded, settledCount[code], settled[code], owed[code], pend)
				}
			}
			if b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "market:" + mk + ":suspense"}); status.Code(err) == codes.NotFound && suspense[mk] != 0 ||
				status.Code(err) != codes.NotFound && (err != nil || num(b.Balance.Posted) != suspense[mk]) {
				t.Fatalf("%s: %s suspense %v, %v; the model says %d", what, mk, b, err, suspense[mk])
			}
			for _, bk := range banks {
				if f, ok := e.settlementFunds(t, bk, mk); ok != fundsOpen[bk+":"+mk] || f != funds[bk+":"+mk] {
					t.Fatalf("%s: %s holds %d for %s (account %v); the model says %d (%v)", what, bk, f, mk, ok, funds[bk+":"+mk], fundsOpen[bk+":"+mk])
				}
			}
		}
	}

	const steps = 600
	marks = append(marks, time.Now())
	for step = 1; step <= steps; step++ {
		for len(marks) < step {
			marks = append(marks, time.Now())
		}
		m := merchants[stalls[rng.IntN(len(stalls))]]
		ch := m.channels[rng.IntN(len(m.channels))]
		mine := func(f func(p *apiPayment) bool) *apiPayment {
			return pick(func(p *apiPayment) bool { return p.merchant == m.code && f(p) })
		}
		switch r := rng.IntN(100); {
		case r < 14: // a stall records a payment, with its own reference or none
			amount := amountOf()
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("stall"), Merchant: m.code, Channel: ch, Amount: fmt.Sprint(amount), Source: stall}
			if rng.IntN(3) == 0 {
				req.ProviderRef = key("SREF")
			}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return stallConn[m.code].RecordPayment(ctx, req) })
			if m.suspended {
				wantCode("a payment of suspended "+m.code, err, codes.FailedPrecondition)
				continue
			}
			if err != nil || resp.Replayed {
				t.Fatalf("stall payment %v: %v, %v", req, resp, err)
			}
			p := newPayment(m, ch, stall, amount, req.ProviderRef, resp.Payment)
			check("stall payment", resp.Payment, p)
			recordReplay(stallConn[m.code], req, p.id)
			counts["stall"]++
		case r < 22: // only the bank saw it
			amount := amountOf()
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("bank"), Merchant: m.code, Channel: ch, Amount: fmt.Sprint(amount), Source: bank, ProviderRef: key("FT")}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return bankPayments[ch].RecordPayment(ctx, req) })
			if m.suspended {
				wantCode("a payment of suspended "+m.code, err, codes.FailedPrecondition)
				continue
			}
			if err != nil || resp.Replayed {
				t.Fatalf("bank payment %v: %v, %v", req, resp, err)
			}
			p := newPayment(m, ch, bank, amount, req.ProviderRef, resp.Payment)
			check("bank payment", resp.Payment, p)
			recordReplay(bankPayments[ch], req, p.id)
			counts["bank"]++
		case r < 30: // the bank confirms a pending payment, in full or in part
			p := mine(isPending)
			if p == nil {
				continue
			}
			amount := p.amount
			if rng.IntN(3) == 0 {
				amount = 1 + rng.Int64N(p.amount)
			}
			req := &pb.ConfirmPaymentRequest{IdempotencyKey: key("confirm"), PaymentId: p.id}
			if amount != p.amount || rng.IntN(2) == 0 {
				req.Amount = fmt.Sprint(amount)
			}
			if p.ref == "" && rng.IntN(2) == 0 {
				req.ProviderRef = key("CREF")
			}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.ConfirmPaymentResponse, error) { return bankPayments[p.channel].ConfirmPayment(ctx, req) })
			if err != nil || resp.Replayed {
				t.Fatalf("confirm %s for %d of %d: %v, %v", p.id, amount, p.amount, resp, err)
			}
			if req.ProviderRef != "" {
				p.ref = req.ProviderRef
			}
			confirmed(p, amount)
			check("confirm", resp.Payment, p)
			counts["confirm"]++
			c := bankPayments[p.channel]
			replays = append(replays, &apiReplay{what: "confirm " + req.IdempotencyKey,
				again: func(t *testing.T) {
					t.Helper()
					again, err := c.ConfirmPayment(ctx, req)
					if err != nil || !again.Replayed {
						t.Fatalf("confirm %s again: %v, %v", req.IdempotencyKey, again, err)
					}
					check("confirm again", again.Payment, p)
				},
				changed: func(t *testing.T) {
					t.Helper()
					changed := proto.Clone(req).(*pb.ConfirmPaymentRequest)
					if other := pick(isPending); other != nil && rng.IntN(2) == 0 {
						changed.PaymentId, changed.Amount, changed.ProviderRef = other.id, "", "" // the key, for another payment
						resp, err := c.ConfirmPayment(ctx, changed)
						if status.Code(err) == codes.PermissionDenied && other.channel != p.channel {
							return // another provider's payment
						}
						wantCode(fmt.Sprintf("confirm %s again for payment %s (%v)", req.IdempotencyKey, other.id, resp), err, codes.AlreadyExists)
						stored("confirm's key for another payment", other)
						return
					}
					changed.Amount = fmt.Sprint(p.confirmed - 1)
					if p.confirmed == 1 {
						changed.Amount = "2"
					}
					resp, err := c.ConfirmPayment(ctx, changed)
					wantCode(fmt.Sprintf("confirm %s again for %s (%v)", req.IdempotencyKey, changed.Amount, resp), err, codes.AlreadyExists)
				}})
		case r < 35: // the bank's notification of a stall payment's reference
			p := mine(func(p *apiPayment) bool { return isPending(p) && p.ref != "" })
			if p == nil {
				continue
			}
			amount := p.amount
			if rng.IntN(3) == 0 {
				amount = 1000 + rng.Int64N(p.amount-999)
			}
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("notice"), Merchant: p.merchant, Channel: p.channel, Amount: fmt.Sprint(amount), Source: bank, ProviderRef: p.ref}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return bankPayments[p.channel].RecordPayment(ctx, req) })
			if err != nil || resp.Replayed {
				t.Fatalf("notice of %s for %d of %d: %v, %v", p.id, amount, p.amount, resp, err)
			}
			confirmed(p, amount)
			check("notice", resp.Payment, p)
			recordReplay(bankPayments[p.channel], req, p.id)
			counts["notice"]++
		case r < 39: // the bank rejects one
			p := mine(isPending)
			if p == nil {
				continue
			}
			req := &pb.RejectPaymentRequest{IdempotencyKey: key("reject"), PaymentId: p.id, Reason: "khách hủy"}
			c := bankPayments[p.channel]
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RejectPaymentResponse, error) { return c.RejectPayment(ctx, req) })
			if err != nil || resp.Replayed {
				t.Fatalf("reject %s: %v, %v", p.id, resp, err)
			}
			p.status = rejected
			check("reject", resp.Payment, p)
			counts["reject"]++
			replays = append(replays, &apiReplay{what: "reject " + req.IdempotencyKey,
				again: func(t *testing.T) {
					t.Helper()
					again, err := c.RejectPayment(ctx, req)
					if err != nil || !again.Replayed {
						t.Fatalf("reject %s again: %v, %v", req.IdempotencyKey, again, err)
					}
					check("reject again", again.Payment, p)
				},
				changed: func(t *testing.T) {
					t.Helper()
					changed := proto.Clone(req).(*pb.RejectPaymentRequest)
					changed.Reason = "sai số tiền"
					resp, err := c.RejectPayment(ctx, changed)
					wantCode(fmt.Sprintf("reject %s again with another reason (%v)", req.IdempotencyKey, resp), err, codes.AlreadyExists)
				}})
		case r < 42: // a payment past its timeout can no longer be confirmed
			p := mine(func(p *apiPayment) bool { return p.overdue })
			if p == nil {
				continue
			}
			_, err := bankPayments[p.channel].ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: key("late"), PaymentId: p.id})
			wantCode("confirm "+p.id+" past its expiry", err, codes.FailedPrecondition)
			if p.ref != "" {
				_, err := bankPayments[p.channel].RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("late"), Merchant: p.merchant, Channel: p.channel,
					Amount: fmt.Sprint(p.amount), Source: bank, ProviderRef: p.ref})
				wantCode("notice of "+p.id+" past its expiry", err, codes.FailedPrecondition)
			}
			stored("past its expiry", p)
		case r < 56: // a refund: in part, in full, of the rest; by the stall or the bank
			p := mine(func(p *apiPayment) bool { return p.confirmed > p.refunded })
			if p == nil {
				continue
			}
			left := p.confirmed - p.refunded
			var amount int64 // the rest
			switch rng.IntN(6) {
			case 0, 1:
				amount = 1 + rng.Int64N(left)
			case 2:
				amount = left
			case 3:
				amount = 1 + rng.Int64N(min(left, 20))
			case 4:
				amount = left + 1 // more than remains
			}
			via := bankPayments[p.channel]
			if rng.IntN(2) == 0 {
				via = stallConn[p.merchant]
			}
			refund(p, amount, via)
		case r < 59: // the clock passes the timeout of what is pending
			switch rng.IntN(6) {
			case 0:
				e.advance(31 * 24 * time.Hour) // past the payout lines' timeout too
			case 1, 2:
				e.advance(20 * time.Minute) // past the payment requests' only
			default:
				e.advance(25 * time.Hour)
			}
			for _, id := range order {
				if p := payments[id]; p.status == pending {
					p.overdue = !e.now().Before(p.expires)
				}
			}
			for _, id := range batchIDs {
				for _, l := range openLines(id, false) {
					l.overdue = !e.now().Before(l.expires)
				}
			}
			counts["advance"]++
			if rng.IntN(2) == 0 {
				continue // the sweeper has not run yet
			}
			fallthrough
		case r < 61: // the sweeper runs
			if _, err := e.ledger.ExpireDue(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range order {
				if p := payments[id]; p.overdue {
					p.status, p.overdue = expired, false
					stored("expired", p)
				}
			}
			for _, id := range batchIDs {
				for _, l := range openLines(id, true) {
					l.status, l.overdue = lineExpired, false
					mm := merchants[l.merchant]
					funds[l.bank+":"+mm.market] += l.amount
					mm.open = nil
					counts["line expired"]++
				}
			}
		case r < 67: // a payment request, paid by the stall's payment and the bank's notice, or the notice alone
			amount := amountOf()
			prReq, c := &pb.CreatePaymentRequestRequest{IdempotencyKey: key("qr"), Merchant: m.code, Amount: fmt.Sprint(amount), Purpose: "tiền rau"}, stallConn[m.code]
			pr, err := c.CreatePaymentRequest(ctx, prReq)
			// Its QR pays the market's collection account: a merchant
			// without a payout account gets one too.
			if m.suspended {
				wantCode("a payment request of a suspended merchant", err, codes.FailedPrecondition)
				continue
			}
			if err != nil {
				t.Fatalf("payment request: %v", err)
			}
			rq := &request{id: pr.PaymentRequest.Id, merchant: m.code, bill: pr.PaymentRequest.BillNumber, amount: amount, expires: pr.PaymentRequest.ExpireTime.AsTime()}
			requests = append(requests, rq)
			replays = append(replays, &apiReplay{what: "payment request " + prReq.IdempotencyKey,
				again: func(t *testing.T) {
					t.Helper()
					again, err := c.CreatePaymentRequest(ctx, prReq)
					if err != nil || !again.Replayed || again.PaymentRequest.Id != rq.id || again.PaymentRequest.BillNumber != rq.bill {
						t.Fatalf("payment request %s again: %v, %v", prReq.IdempotencyKey, again, err)
					}
				},
				changed: func(t *testing.T) {
					t.Helper()
					changed := proto.Clone(prReq).(*pb.CreatePaymentRequestRequest)
					changed.Amount = fmt.Sprint(amount + 1)
					again, err := c.CreatePaymentRequest(ctx, changed)
					wantCode(fmt.Sprintf("payment request %s again for another amount (%v)", prReq.IdempotencyKey, again), err, codes.AlreadyExists)
				}})
			var p *apiPayment
			if rng.IntN(2) == 0 {
				req := &pb.RecordPaymentRequest{IdempotencyKey: key("stallqr"), Merchant: m.code, Channel: qr, Amount: fmt.Sprint(amount), Source: stall, PaymentRequestId: rq.id}
				if rng.IntN(4) == 0 {
					req.ProviderRef = key("FTST") // another transfer's, or mistyped
				}
				resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return stallConn[m.code].RecordPayment(ctx, req) })
				if err != nil {
					t.Fatalf("stall payment of request %s: %v", rq.id, err)
				}
				p = newPayment(m, qr, stall, amount, req.ProviderRef, resp.Payment)
				p.requestID, p.bill = rq.id, rq.bill
				check("stall payment of a request", resp.Payment, p)
				recordReplay(stallConn[m.code], req, p.id)
				if rng.IntN(4) == 0 {
					continue // the bank's notice comes later, or never
				}
			}
			// The notice confirms the stall's payment, in full or in part,
			// unless it is for more than the stall's payment or the stall
			// recorded that with another reference: then it is a payment of
			// its own, and the stall's stays pending.
			conf, own := amount, p == nil
			switch {
			case p != nil && p.ref != "":
				own = true
			case p != nil && rng.IntN(3) == 0:
				conf = 1000 + rng.Int64N(amount-999)
			case p != nil && rng.IntN(3) == 0:
				conf, own = amount+1+rng.Int64N(5000), true
			}
			bill := rq.bill
			if rng.IntN(3) == 0 {
				bill = strings.ToLower(bill) // as a payer may have typed it
			}
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("billnotice"), Merchant: m.code, Channel: qr, Amount: fmt.Sprint(conf), Source: bank,
				ProviderRef: key("FTQR"), BillNumber: bill}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return bankPayments[qr].RecordPayment(ctx, req) })
			if err != nil || resp.Replayed {
				t.Fatalf("notice of bill %s: %v, %v", rq.bill, resp, err)
			}
			if own {
				p = newPayment(m, qr, bank, conf, req.ProviderRef, resp.Payment)
				p.requestID, p.bill = rq.id, rq.bill
			} else {
				p.ref = req.ProviderRef
				confirmed(p, conf)
			}
			check("notice of a bill", resp.Payment, p)
			recordReplay(bankPayments[qr], req, p.id)
			counts["bill"]++
		case r < 70: // a bill's notice once its stall payment is no longer pending, or a stall naming an expired request
			var rq *request
			for _, x := range requests {
				if x.merchant == m.code && rng.IntN(2) == 0 {
					rq = x
				}
			}
			if rq == nil {
				continue
			}
			var match *apiPayment
			for _, id := range order {
				if p := payments[id]; p.requestID == rq.id && p.status == pending {
					match = p
				}
			}
			if !e.now().Before(rq.expires) {
				_, err := stallConn[m.code].RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("stallqr"), Merchant: m.code, Channel: qr,
					Amount: fmt.Sprint(rq.amount), Source: stall, PaymentRequestId: rq.id})
				wantCode("a stall payment of expired request "+rq.id, err, codes.FailedPrecondition)
			}
			if match != nil && !match.overdue {
				continue // confirmed above, in the request's own step
			}
			req := &pb.RecordPaymentRequest{IdempotencyKey: key("billnotice"), Merchant: m.code, Channel: qr, Amount: fmt.Sprint(rq.amount), Source: bank,
				ProviderRef: key("FTQR"), PaymentRequestId: rq.id}
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordPaymentResponse, error) { return bankPayments[qr].RecordPayment(ctx, req) })
			if m.suspended {
				wantCode("a payment of suspended "+m.code, err, codes.FailedPrecondition)
				continue
			}
			if err != nil || resp.Replayed {
				t.Fatalf("late notice of request %s: %v, %v", rq.id, resp, err)
			}
			p := newPayment(m, qr, bank, rq.amount, req.ProviderRef, resp.Payment)
			p.requestID, p.bill = rq.id, rq.bill
			check("late notice of a request", resp.Payment, p)
			recordReplay(bankPayments[qr], req, p.id)
			counts["late bill"]++
		case r < 75: // a bulk of bank notifications: new, repeated, a confirmation, and one refused
			var items []*pb.RecordPaymentRequest
			type outcome struct {
				p         *apiPayment // nil: refused
				new       bool
				suspended bool // a new payment of a suspended merchant
				request   *request
				conflict  bool // the key of another notification
				replay    bool
				confirm   int64
			}
			var want []outcome
			for range 2 + rng.IntN(4) {
				mm := merchants[stalls[rng.IntN(len(stalls))]]
				amount := amountOf()
				switch rng.IntN(5) {
				case 0: // a payment recorded already, under a new key
					if p := pick(func(p *apiPayment) bool { return p.channel == ch && p.ref != "" && p.confirmed >= 1000 }); p != nil {
						items = append(items, &pb.RecordPaymentRequest{IdempotencyKey: key("bulk"), Merchant: p.merchant, Channel: ch,
							Amount: fmt.Sprint(p.confirmed), Source: bank, ProviderRef: p.ref})
						want = append(want, outcome{p: p, replay: true})
						continue
					}
				case 1: // a stall's pending payment, confirmed
					if p := pick(func(p *apiPayment) bool { return p.channel == ch && isPending(p) && p.ref != "" }); p != nil &&
						!slices.ContainsFunc(want, func(o outcome) bool { return o.p == p }) {
						items = append(items, &pb.RecordPaymentRequest{IdempotencyKey: key("bulk"), Merchant: p.merchant, Channel: ch,
							Amount: fmt.Sprint(p.amount), Source: bank, ProviderRef: p.ref})
						want = append(want, outcome{p: p, confirm: p.amount})
						continue
					}
				case 3: // an earlier notification, as it was or changed
					i := slices.IndexFunc(bankRecords, func(b bankRecord) bool { return b.req.Channel == ch && rng.IntN(3) == 0 })
					if i < 0 {
						break
					}
					if rng.IntN(2) == 0 {
						items = append(items, bankRecords[i].req)
						want = append(want, outcome{p: payments[bankRecords[i].id], replay: true})
						continue
					}
					c := proto.Clone(bankRecords[i].req).(*pb.RecordPaymentRequest)
					c.Amount = fmt.Sprint(num(c.Amount) + 1)
					items = append(items, c)
					want = append(want, outcome{conflict: true})
					continue
				case 4: // a bill's notice: of the request's pending stall payment, or a payment of its own
					if ch != qr || len(requests) == 0 {
						break
					}
					// Of one bill twice, one of them confirms the stall's
					// payment: which one, the answers say.
					rq := requests[rng.IntN(len(requests))]
					if merchants[rq.merchant].suspended {
						break
					}
					items = append(items, &pb.RecordPaymentRequest{IdempotencyKey: key("bulk"), Merchant: rq.merchant, Channel: qr, Amount: fmt.Sprint(rq.amount),
						Source: bank, ProviderRef: key("FTB"), BillNumber: rq.bill})
					want = append(want, outcome{new: true, request: rq})
					continue
				case 2: // below the providers' minimum
					items = append(items, &pb.RecordPaymentRequest{IdempotencyKey: key("bulk"), Merchant: mm.code, Channel: ch, Amount: "999", Source: bank, ProviderRef: key("FTB")})
					want = append(want, outcome{})
					continue
				}
				items = append(items, &pb.RecordPaymentRequest{IdempotencyKey: key("bulk"), Merchant: mm.code, Channel: ch, Amount: fmt.Sprint(amount), Source: bank, ProviderRef: key("FTB")})
				want = append(want, outcome{new: !mm.suspended, suspended: mm.suspended})
			}
			resp, err := bankPayments[ch].RecordPayments(ctx, &pb.RecordPaymentsRequest{Payments: items})
			if err != nil || len(resp.Results) != len(items) {
				t.Fatalf("bulk %v: %v, %v", items, resp, err)
			}
			for i, res := range resp.Results {
				w, item := want[i], items[i]
				switch {
				case w.suspended:
					if res.Error == nil || codes.Code(res.Error.Code) != codes.FailedPrecondition {
						t.Fatalf("bulk item %d, a payment of suspended %s: %v, want FailedPrecondition", i, item.Merchant, res)
					}
					continue
				case w.conflict:
					if res.Error == nil || codes.Code(res.Error.Code) != codes.AlreadyExists {
						t.Fatalf("bulk item %d, an earlier key for another amount: %v, want AlreadyExists", i, res)
					}
					continue
				case w.p == nil && !w.new:
					if res.Error == nil || codes.Code(res.Error.Code) != codes.InvalidArgument {
						t.Fatalf("bulk item %d of 999 đồng: %v, want InvalidArgument", i, res)
					}
					continue
				case res.Error != nil || res.Replayed != w.replay:
					t.Fatalf("bulk item %d %v: %v; want replayed %v", i, item, res, w.replay)
				case w.request != nil && pendingOf(w.request) != nil && res.Payment.GetId() == pendingOf(w.request).id:
					w.p = pendingOf(w.request)
					w.p.ref = item.ProviderRef
					confirmed(w.p, num(item.Amount))
				case w.new:
					w.p = newPayment(merchants[item.Merchant], ch, bank, num(item.Amount), item.ProviderRef, res.Payment)
					if w.request != nil {
						w.p.requestID, w.p.bill = w.request.id, w.request.bill
					}
				case w.confirm > 0:
					confirmed(w.p, w.confirm)
				}
				check(fmt.Sprintf("bulk item %d", i), res.Payment, w.p)
				if !w.replay {
					recordReplay(bankPayments[ch], item, w.p.id)
				}
			}
			counts["bulk"]++
		case r < 80: // a provider settles with VCB (now and then BIDV), beyond what it owes with allow_unmatched
			mk := markets[rng.IntN(len(markets))]
			code := clearingOf(ch, mk)
			o := owed[code]
			req := &pb.RecordProviderSettlementRequest{IdempotencyKey: key("ps"), Channel: ch, Market: mk, Bank: "vcb", BankRef: key("VCB-IN")}
			if rng.IntN(5) == 0 {
				req.Bank = "bidv"
			}
			amount := 1 + rng.Int64N(max(o, 1))
			if rng.IntN(4) == 0 {
				amount = max(o, 0) + 1 + rng.Int64N(5000)
				req.AllowUnmatched = rng.IntN(3) != 0
			}
			req.Amount = fmt.Sprint(amount)
			resp, err := sendMaybeTwice(t, rng, func() (*pb.RecordProviderSettlementResponse, error) {
				return bankSettle[ch].RecordProviderSettlement(ctx, req)
			})
			if amount > o && !req.AllowUnmatched {
				wantCode(fmt.Sprintf("settle %d of the %d %s owes", amount, o, code), err, codes.FailedPrecondition)
				continue
			}
			if err != nil {
				t.Fatalf("settle %d of the %d %s owes: %v", amount, o, code, err)
			}
			s := amount
			if amount > o {
				s = max(o, 0)
			}
			if resp.Replayed || num(resp.Settlement.Settled) != s || num(resp.Settlement.Unmatched) != amount-s || num(resp.Settlement.RemainingOwed) != o-s {
				t.Fatalf("settle %d of the %d %s owes: %v; the model settles %d", amount, o, code, resp, s)
			}
			owed[code] -= s
			settled[code] += s
			if s > 0 {
				settledCount[code]++ // a credit held in suspense whole settles nothing
			}
			suspense[mk] += amount - s
			unmatched[code] += amount - s
			funds[req.Bank+":"+mk] += amount
			fundsOpen[req.Bank+":"+mk] = true
			c := bankSettle[ch]
			first := resp.Settlement
			replays = append(replays, &apiReplay{what: "settlement " + req.IdempotencyKey,
				again: func(t *testing.T) {
					t.Helper()
					again, err := c.RecordProviderSettlement(ctx, req)
					if err != nil || !again.Replayed || again.Settlement.EntryId != first.EntryId || again.Settlement.Settled != first.Settled {
						t.Fatalf("settlement %s again: %v, %v; first %v", req.IdempotencyKey, again, err, first)
					}
				},
				changed: func(t *testing.T) {
					t.Helper()
					changed := proto.Clone(req).(*pb.RecordProviderSettlementRequest)
					changed.Amount = fmt.Sprint(amount + 1)
					resp, err := c.RecordProviderSettlement(ctx, changed)
					wantCode(fmt.Sprintf("settlement %s again for another amount (%v)", req.IdempotencyKey, resp), err, codes.AlreadyExists)
				}})
			counts["settlement"]++
		case r < 85: // VCB (now and then BIDV) pays out, at a cut-off now or earlier, one market or all
			cut := step - 1
			if rng.IntN(2) == 0 {
				cut = rng.IntN(step)
			}
			mk := ""
			if rng.IntN(2) == 0 {
				mk = markets[rng.IntN(len(markets))]
			}
			bk := banks[rng.IntN(4)/3]
			want := dueLines(cut, mk, bk)
			cutOff := marks[cut]
			req := &pb.CreatePayoutBatchRequest{IdempotencyKey: key("batch"), Bank: bk, CutOff: timestamppb.New(cutOff), Market: mk, PageSize: 1000}
			payouts := payoutsAt[bk]
			resp, err := payouts.CreatePayoutBatch(ctx, req)
			if err != nil || resp.Replayed {
				t.Fatalf("payout batch at step %d of %d: %v, %v", cut, step, resp, err)
			}
			if len(resp.Lines) != len(want) {
				t.Fatalf("payout batch at step %d of %d (market %q): lines %v; the model says %+v", cut, step, mk, resp.Lines, want)
			}
			for i, l := range resp.Lines {
				w := want[i]
				if l.Merchant != w.merchant || num(l.Amount) != w.amount || (l.Status == lineSkipped) != (w.skipped != "") || !strings.Contains(l.Reason, w.skipped) {
					t.Fatalf("payout batch at step %d of %d: line %v; the model says %+v", cut, step, l, w)
				}
				if l.Status == lineSkipped {
					continue
				}
				mm := merchants[l.Merchant]
				mm.open = &apiLine{bank: bk, merchant: l.Merchant, amount: w.amount, status: lineOpen, expires: e.now().Add(settlement.PayoutTimeout)}
				funds[bk+":"+mm.market] -= w.amount
				batches[resp.Batch.Id] = append(batches[resp.Batch.Id], mm.open)
			}
			for _, w := range want {
				if w.skipped != "" {
					batches[resp.Batch.Id] = append(batches[resp.Batch.Id], &apiLine{merchant: w.merchant, amount: w.amount, status: lineSkipped})
				}
			}
			batchIDs = append(batchIDs, resp.Batch.Id)
			batchBank[resp.Batch.Id] = bk
			again, err := payouts.CreatePayoutBatch(ctx, req)
			if err != nil || !again.Replayed || again.Batch.Id != resp.Batch.Id || len(again.Lines) != len(resp.Lines) {
				t.Fatalf("payout batch again: %v, %v", again, err)
			}
			changed := proto.Clone(req).(*pb.CreatePayoutBatchRequest)
			changed.CutOff = timestamppb.New(cutOff.Add(-time.Second))
			_, err = payouts.CreatePayoutBatch(ctx, changed)
			wantCode("payout batch again at another cut-off", err, codes.AlreadyExists)
			counts["batch"]++
		case r < 90: // the bank reports outcomes of open lines: paid, failed, or not yet
			var ids []string
			for _, id := range batchIDs {
				if len(openLines(id, false))+len(openLines(id, true)) > 0 {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			id := ids[rng.IntN(len(ids))]
			payouts := payoutsAt[batchBank[id]]
			for _, l := range openLines(id, true) {
				// Its reservation lapsed: no outcome can be recorded.
				_, err := payouts.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: []*pb.PayoutResult{
					{Merchant: l.merchant, Status: linePaid, BankRef: key("VCB-OUT")}}})
				wantCode("an outcome of "+l.merchant+"'s line past its expiry", err, codes.FailedPrecondition)
			}
			var results []*pb.PayoutResult
			still := len(openLines(id, true))
			for _, l := range openLines(id, false) {
				switch rng.IntN(5) {
				case 0:
					still++
				case 1:
					results = append(results, &pb.PayoutResult{Merchant: l.merchant, Status: lineFailed, FailureReason: "tài khoản bị khóa"})
				default:
					results = append(results, &pb.PayoutResult{Merchant: l.merchant, Status: linePaid, BankRef: key("VCB-OUT")})
				}
			}
			if len(results) == 0 {
				continue
			}
			resp, err := payouts.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results})
			if err != nil || len(resp.Lines) != len(results) {
				t.Fatalf("complete %s with %v: %v, %v", id, results, resp, err)
			}
			for i, l := range resp.Lines {
				res := results[i]
				mm := merchants[res.Merchant]
				if l.Merchant != res.Merchant || l.Status != res.Status || num(l.Amount) != mm.open.amount {
					t.Fatalf("complete %s: line %v after %v; the model reserved %d", id, l, res, mm.open.amount)
				}
				if res.Status == linePaid {
					mm.moves = append(mm.moves, apiMove{step: step, amount: -mm.open.amount, payout: true})
				} else {
					funds[mm.open.bank+":"+mm.market] += mm.open.amount
				}
				mm.open.status, mm.open = res.Status, nil
			}
			if resp.Batch.OpenCount != int32(still) || (resp.Batch.Status == batchComplete) != (still == 0) {
				t.Fatalf("complete %s: batch %v; the model leaves %d lines open", id, resp.Batch, still)
			}
			// The same outcomes again write nothing; another one for a
			// resolved line is refused.
			entries := e.countRows(t, "ledger_entries")
			if _, err := payouts.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results}); err != nil {
				t.Fatalf("complete %s again: %v", id, err)
			}
			if got := e.countRows(t, "ledger_entries"); got != entries {
				t.Fatalf("complete %s again wrote %d entries", id, got-entries)
			}
			other := &pb.PayoutResult{Merchant: results[0].Merchant, Status: lineFailed, FailureReason: "sai"}
			if results[0].Status == lineFailed {
				other = &pb.PayoutResult{Merchant: results[0].Merchant, Status: linePaid, BankRef: key("VCB-OUT")}
			}
			_, err = payouts.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: []*pb.PayoutResult{other}})
			wantCode("another outcome for a resolved line", err, codes.FailedPrecondition)
			counts["outcomes"]++
		case r < 93: // notifications and confirmations that must be refused, changing nothing
			p := pick(func(p *apiPayment) bool { return isPending(p) && p.ref != "" })
			if p == nil {
				continue
			}
			other := merchants[stalls[rng.IntN(len(stalls))]]
			c := bankPayments[p.channel]
			if other.code != p.merchant {
				_, err := c.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("wrong"), Merchant: other.code, Channel: p.channel,
					Amount: fmt.Sprint(p.amount), Source: bank, ProviderRef: p.ref})
				wantCode("a notice of "+p.ref+" for another merchant", err, codes.AlreadyExists)
				_, err = stallConn[other.code].RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("wrong"), Merchant: other.code, Channel: p.channel,
					Amount: fmt.Sprint(p.amount), Source: stall, ProviderRef: p.ref})
				if other.suspended {
					wantCode("suspended "+other.code+"'s payment with reference "+p.ref, err, codes.FailedPrecondition)
				} else {
					wantCode("another stall's payment with reference "+p.ref, err, codes.AlreadyExists)
				}
			}
			if p.amount < 100_000_000 {
				_, err := c.RecordPayment(ctx, &pb.RecordPaymentRequest{IdempotencyKey: key("wrong"), Merchant: p.merchant, Channel: p.channel,
					Amount: fmt.Sprint(p.amount + 1), Source: bank, ProviderRef: p.ref})
				wantCode("a notice of "+p.ref+" for more than was recorded", err, codes.FailedPrecondition)
			}
			if q := pick(func(q *apiPayment) bool { return isPending(q) && q.ref == "" && q.channel == p.channel }); q != nil {
				_, err := c.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: key("wrong"), PaymentId: q.id, ProviderRef: p.ref})
				wantCode("a confirmation of "+q.id+" with "+p.id+"'s reference", err, codes.AlreadyExists)
				stored("refused confirmation", q)
			}
			stored("refused notices", p)
			counts["refused"]++
		case r < 95: // suspense money matched to its provider
			mk := markets[rng.IntN(len(markets))]
			code := clearingOf(ch, mk)
			if suspense[mk] == 0 {
				continue
			}
			amount := 1 + rng.Int64N(max(1, min(suspense[mk], unmatched[code]-reclassified[code], owed[code])))
			if rng.IntN(4) == 0 {
				amount = suspense[mk] + 1
			}
			req := &pb.ReclassifySuspenseRequest{IdempotencyKey: key("rc"), Market: mk, Channel: ch, Amount: fmt.Sprint(amount), Reason: "khớp FT đối soát"}
			resp, err := bankSettle[ch].ReclassifySuspense(ctx, req)
			if amount > suspense[mk] || amount > unmatched[code]-reclassified[code] || amount > owed[code] {
				wantCode(fmt.Sprintf("reclassify %d of the %d in suspense (%d %s's) to %s, owed %d", amount, suspense[mk], unmatched[code]-reclassified[code], ch, code, owed[code]), err, codes.FailedPrecondition)
				continue
			}
			if err != nil || resp.Replayed || num(resp.Reclassification.RemainingSuspense) != suspense[mk]-amount || num(resp.Reclassification.RemainingOwed) != owed[code]-amount {
				t.Fatalf("reclassify %d of the %d in suspense to %s, owed %d: %v, %v", amount, suspense[mk], code, owed[code], resp, err)
			}
			suspense[mk] -= amount
			owed[code] -= amount
			reclassified[code] += amount
			counts["reclassify"]++
		case r < 96: // the operator suspends a merchant, or reinstates it
			var err error
			if m.suspended {
				_, err = e.merchants.ReinstateMerchant(ctx, &pb.ReinstateMerchantRequest{Code: m.code})
			} else {
				_, err = e.merchants.SuspendMerchant(ctx, &pb.SuspendMerchantRequest{Code: m.code, Reason: "nợ phí chợ"})
			}
			if err != nil {
				t.Fatalf("suspend or reinstate %s: %v", m.code, err)
			}
			m.suspended = !m.suspended
			counts["suspend"]++
		case r < 97: // the operator changes a merchant's fee plan
			m.plan = plans[rng.IntN(len(plans))]
			if _, err := e.merchants.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: m.code, FeePlan: planOf(m.plan, m.channels)},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"fee_plan"}}}); err != nil {
				t.Fatalf("fee plan of %s: %v", m.code, err)
			}
			counts["fee plan"]++
		default: // an earlier request again, as it was or changed
			if len(replays) == 0 {
				continue
			}
			rp := replays[rng.IntN(len(replays))]
			if rng.IntN(3) == 0 {
				rp.changed(t)
			} else {
				rp.again(t)
			}
			counts["replay"]++
		}
		if step%40 == 0 {
			checkAll(fmt.Sprint("step ", step))
			e.checkInvariants(t)
		}
	}
	checkAll("the end")
	// Every report checked on the way, asked again as of its point, says
	// what it said then, and closes at the balances as of that point.
	for _, rp := range reports {
		if r := rp.merchant; r != nil {
			again, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: r.Merchant, StartDay: r.Period.StartDay, EndDay: settlement.DayOf(time.Now()).String(),
				AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: r.Period.AsOfSequence}}})
			if err != nil || withoutEquation(again.Totals).String() != withoutEquation(r.Totals).String() {
				t.Errorf("%s again as of %d: %v, %v; then\n%v", rp.what, r.Period.AsOfSequence, again.GetTotals(), err, r.Totals)
			}
			b, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "merchant:" + r.Merchant + ":payable", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: r.Period.AsOfSequence}}})
			if err != nil || b.Balance.Posted != r.Totals.ClosingBalance || b.Balance.CreditsPending != r.Totals.Pending {
				t.Errorf("%s: closing %s pending %s; GetBalance as of %d: %v, %v", rp.what, r.Totals.ClosingBalance, r.Totals.Pending, r.Period.AsOfSequence, b, err)
			}
			continue
		}
		r := rp.market
		again, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: r.Market, StartDay: r.Period.StartDay, EndDay: settlement.DayOf(time.Now()).String(),
			AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: r.Period.AsOfSequence}}})
		if err != nil {
			t.Fatalf("%s again: %v", rp.what, err)
		}
		if withoutEquation(again.Totals).String() != withoutEquation(r.Totals).String() || len(again.Providers) != len(r.Providers) {
			t.Errorf("%s again as of %d:\n%v\n%v\nthen\n%v\n%v", rp.what, r.Period.AsOfSequence, again.Totals, again.Providers, r.Totals, r.Providers)
			continue
		}
		for i, pr := range again.Providers {
			was := r.Providers[i]
			pr.Equation, was.Equation = "", ""
			if pr.String() != was.String() {
				t.Errorf("%s again as of %d: provider %v; then %v", rp.what, r.Period.AsOfSequence, pr, was)
			}
		}
	}
	t.Logf("%d payments; %v", len(order), counts)
	e.checkInvariants(t)
	e.checkRollups(t)
}
