package api_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/settlement"
)

// modelPayment is a payment as the rules of docs/reconciliation.md see it.
type modelPayment struct {
	id, market, ref string
	channel         pb.Channel
	moved           bool // confirmed, partially refunded or refunded
	amount          int64
	occurred        time.Time
}

// modelLine is a statement line as the test wrote it.
type modelLine struct {
	number   int32
	ref      string
	amount   int64
	at       time.Time
	credit   bool
	reversal bool // camt only
}

// modelReconcile is docs/reconciliation.md's "Which payments are matched",
// written out plainly over every payment the test recorded: the report's
// items a statement of [start, end) imported for market and VietQR must
// give, in report order. Which line takes which payment on amount and
// time is the report's (got) where the rules allow the pair, provided it
// matches as many lines so as can be.
func modelReconcile(t *testing.T, got []*pb.ReconciliationItem, payments []modelPayment, lines []modelLine, market string, start, end time.Time, csv bool) []*pb.ReconciliationItem {
	t.Helper()
	w := settlement.ReconcileWindow
	onStatement := map[string]bool{}
	for _, l := range lines {
		if l.credit && !l.reversal {
			onStatement[l.ref] = true
		}
	}
	var read []modelPayment
	notMatched := map[string]bool{} // references of the channel's payments not matched: other markets', or no money moved
	for _, p := range payments {
		inMargins := !p.occurred.Before(start.Add(-w)) && p.occurred.Before(end.Add(w))
		switch {
		case p.channel != chVietQR:
		case p.market != market || !p.moved:
			if p.ref != "" {
				notMatched[p.ref] = true
			}
		case inMargins || (p.ref != "" && onStatement[p.ref]):
			read = append(read, p)
		}
	}
	used := map[string]bool{}
	item := func(kind pb.ReconciliationItemKind, l *modelLine, p *modelPayment, byRef bool) *pb.ReconciliationItem {
		it := &pb.ReconciliationItem{Kind: kind, ByReference: byRef}
		if l != nil {
			it.LineNumber, it.StatementRef, it.StatementAmount, it.BookedTime = l.number, l.ref, strconv.FormatInt(l.amount, 10), timestamppb.New(l.at)
		}
		if p != nil {
			it.PaymentId, it.LedgerAmount = p.id, strconv.FormatInt(p.amount, 10)
		}
		return it
	}
	var items []*pb.ReconciliationItem
	var rest []*modelLine
	for i := range lines {
		l := &lines[i]
		switch {
		case l.reversal && !l.credit:
			items = append(items, item(pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER, l, nil, false))
			continue
		case !l.credit || l.reversal:
			continue
		case notMatched[l.ref]:
			items = append(items, item(pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER, l, nil, false))
			continue
		}
		k := slices.IndexFunc(read, func(p modelPayment) bool { return p.ref != "" && p.ref == l.ref })
		if k < 0 {
			rest = append(rest, l)
			continue
		}
		used[read[k].id] = true
		kind := pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED
		if read[k].amount != l.amount {
			kind = pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_AMOUNT_MISMATCH
		}
		items = append(items, item(kind, l, &read[k], true))
	}
	gap := func(l *modelLine, p *modelPayment) time.Duration {
		return max(p.occurred.Sub(l.at), l.at.Sub(p.occurred))
	}
	may := func(l *modelLine, p *modelPayment) bool {
		return !used[p.id] && p.amount == l.amount && gap(l, p) <= w && !(csv && p.ref != "" && p.ref != l.ref)
	}
	taken := map[string]bool{}
	for _, l := range rest {
		k := slices.IndexFunc(got, func(it *pb.ReconciliationItem) bool { return it.LineNumber == l.number })
		var p *modelPayment
		if k >= 0 && got[k].Kind == pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED && !got[k].ByReference {
			if q := slices.IndexFunc(read, func(p modelPayment) bool { return p.id == got[k].PaymentId }); q >= 0 && may(l, &read[q]) && !taken[read[q].id] {
				p = &read[q]
			}
		}
		if p == nil {
			items = append(items, item(pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER, l, nil, false))
			continue
		}
		taken[p.id] = true
		items = append(items, item(pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED, l, p, false))
	}
	// As many as can be: every way of pairing the lines left, tried.
	var most func(k int, taken map[string]bool) int
	most = func(k int, taken map[string]bool) int {
		if k == len(rest) {
			return 0
		}
		best := most(k+1, taken)
		for q := range read {
			if p := &read[q]; !taken[p.id] && may(rest[k], p) {
				taken[p.id] = true
				best = max(best, 1+most(k+1, taken))
				delete(taken, p.id)
			}
		}
		return best
	}
	if n := most(0, map[string]bool{}); len(taken) != n {
		t.Errorf("%d lines matched on amount and time, but %d can be", len(taken), n)
	}
	for k := range taken {
		used[k] = true
	}
	for k := range read {
		p := &read[k]
		if !used[p.id] && !p.occurred.Before(start.Add(w)) && p.occurred.Before(end.Add(-w)) {
			items = append(items, item(pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_STATEMENT, nil, p, false))
		}
	}
	slices.SortFunc(items, func(a, b *pb.ReconciliationItem) int {
		switch {
		case a.LineNumber != 0 && b.LineNumber != 0:
			return cmp.Compare(a.LineNumber, b.LineNumber)
		case a.LineNumber != 0:
			return -1
		case b.LineNumber != 0:
			return 1
		}
		return cmp.Compare(a.PaymentId, b.PaymentId)
	})
	return items
}

// modelStatement writes lines as a CSV, or a camt.053 of [start, end)
// whose entries may be reversals, numbering them as the parser will.
func modelStatement(lines []modelLine, csv bool, start, end time.Time) []byte {
	var b bytes.Buffer
	vn := time.FixedZone("ICT", 7*3600)
	if csv {
		b.WriteString("ref,amount,currency,booked_at,direction,channel\n")
	} else {
		fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>M-%d</MsgId><CreDtTm>%s</CreDtTm></GrpHdr>
<Stmt><Id>S-%d</Id><FrToDt><FrDtTm>%s</FrDtTm><ToDtTm>%s</ToDtTm></FrToDt>
`, start.Unix(), end.In(vn).Format(time.RFC3339), start.Unix(), start.In(vn).Format(time.RFC3339), end.Add(-time.Second).In(vn).Format(time.RFC3339))
	}
	for i := range lines {
		l := &lines[i]
		if csv {
			l.number = int32(i + 2)
			dir := "credit"
			if !l.credit {
				dir = "debit"
			}
			fmt.Fprintf(&b, "%s,%d,VND,%s,%s,VIETQR\n", l.ref, l.amount, l.at.Format(time.RFC3339), dir)
			continue
		}
		l.number = int32(i + 1)
		ind := "CRDT"
		if !l.credit {
			ind = "DBIT"
		}
		fmt.Fprintf(&b, `<Ntry><Amt Ccy="VND">%d</Amt><CdtDbtInd>%s</CdtDbtInd><RvslInd>%t</RvslInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>%s</DtTm></BookgDt><NtryDtls><TxDtls><Refs><AcctSvcrRef>%s</AcctSvcrRef></Refs></TxDtls></NtryDtls></Ntry>
`, l.amount, ind, l.reversal, l.at.In(vn).Format(time.RFC3339), l.ref)
	}
	if !csv {
		b.WriteString("</Stmt></BkToCstmrStmt></Document>\n")
	}
	return b.Bytes()
}

// Random ledgers and statements, reconciled through the API, give exactly
// the report the documented rules give: payments by reference and
// without, partially confirmed, refunded, pending and rejected, of another
// market and another channel, with few amounts repeating, at times near
// each other and near the period's edges; statement lines by reference,
// with another amount, on amount and time alone, unknown to the ledger,
// refunds and (camt) reversals. Every line and every payment of the period
// is accounted for once, the counts are those of the items, and importing
// the file again answers the same report.
func TestImportStatementFollowsTheDocumentedRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.reconFixture(t) // markets and merchants; its payments are within five days ago, after every period here
	amounts := []int64{20000, 50000, 100000}
	var payments []modelPayment
	n := 0
	key := func() string { n++; return fmt.Sprintf("prop-%d", n) }

	for round := range 12 {
		rng := rand.New(rand.NewPCG(uint64(round), 15))
		csv := round%2 == 0
		// Short periods, so that amounts and times collide, spaced so that
		// a round's margins hold no payment of another round.
		start := settlement.DayOf(time.Now()).AddDays(-7 - round).Start().Add(time.Duration(rng.IntN(20)) * time.Hour)
		end := start.Add(time.Duration(1+rng.IntN(3)) * time.Hour)
		w := settlement.ReconcileWindow
		// Times cluster at the edges, inside and out.
		when := func() time.Time {
			edge := time.Duration(rng.IntN(int(2*w/time.Second)))*time.Second - w
			switch rng.IntN(3) {
			case 0:
				return start.Add(edge)
			case 1:
				return end.Add(edge)
			}
			return start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)/time.Second))) * time.Second)
		}
		ref := func(kind string, i int) string { return fmt.Sprintf("%s-%d-%d", kind, round, i) }
		var lines []modelLine
		addLine := func(l modelLine) {
			if !l.at.Before(start) && l.at.Before(end) {
				lines = append(lines, l)
			}
		}
		near := func(at time.Time) time.Time {
			return at.Add(time.Duration(rng.IntN(int(2*w/time.Second)+120)-int(w/time.Second)-60) * time.Second)
		}
		for i := range 14 + rng.IntN(8) {
			amount := amounts[rng.IntN(len(amounts))]
			at := when()
			merchant, market, ch := "TN-TEST-0001", testMarket, chVietQR
			switch rng.IntN(8) {
			case 0:
				merchant, market = "TN-OTHER-0001", "TN-OTHER"
			case 1:
				ch = pb.Channel_CHANNEL_MOMO
			case 2:
				merchant = "TN-TEST-0002"
			}
			p := modelPayment{market: market, channel: ch, amount: amount, occurred: at}
			var pp *pb.Payment
			switch kind := rng.IntN(7); {
			case kind <= 1: // reported by the bank
				p.ref, p.moved = ref("FT", i), true
				pp = e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key(), Merchant: merchant, Channel: ch, Amount: strconv.FormatInt(amount, 10),
					Source: bankPayment, ProviderRef: p.ref, OccurTime: timestamppb.New(at)}).Payment
				if rng.IntN(3) == 0 {
					refund := &pb.RefundPaymentRequest{IdempotencyKey: key(), PaymentId: pp.Id}
					if rng.IntN(2) == 0 {
						refund.Amount = "10000"
					}
					if _, err := e.payments.RefundPayment(ctx, refund); err != nil {
						t.Fatal(err)
					}
				}
			default: // recorded by the stall, with or without the provider's reference
				if rng.IntN(3) == 0 {
					p.ref = ref("ST", i)
				}
				pp = e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key(), Merchant: merchant, Channel: ch, Amount: strconv.FormatInt(amount, 10),
					Source: stallPayment, ProviderRef: p.ref, OccurTime: timestamppb.New(at)}).Payment
				switch rng.IntN(5) {
				case 0: // left pending
				case 1:
					if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: key(), PaymentId: pp.Id}); err != nil {
						t.Fatal(err)
					}
				default:
					c := &pb.ConfirmPaymentRequest{IdempotencyKey: key(), PaymentId: pp.Id}
					if p.ref == "" && rng.IntN(2) == 0 {
						p.ref = ref("CF", i)
						c.ProviderRef = p.ref
					}
					if amount > 20000 && rng.IntN(4) == 0 {
						p.amount = 20000
						c.Amount = "20000"
					}
					if _, err := e.payments.ConfirmPayment(ctx, c); err != nil {
						t.Fatal(err)
					}
					p.moved = true
				}
			}
			p.id = pp.Id
			payments = append(payments, p)

			// What the provider booked of it: usually the payment, at its
			// amount, under its reference or (for one recorded without) one
			// the ledger never heard; sometimes another amount; sometimes
			// nothing.
			if rng.IntN(5) == 0 {
				continue
			}
			l := modelLine{ref: p.ref, amount: p.amount, at: near(at), credit: true}
			if l.ref == "" || rng.IntN(6) == 0 {
				l.ref = ref("BK", i)
			}
			if rng.IntN(8) == 0 {
				l.amount = amounts[rng.IntN(len(amounts))]
			}
			addLine(l)
		}
		// A busy stall whose clock is minutes off: payments of one amount
		// recorded without a reference within minutes of each other, each
		// booked by the provider that many minutes later or earlier.
		skew := time.Duration(rng.IntN(int(2*w/time.Second))-int(w/time.Second)) * time.Second
		t0 := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)/time.Second))) * time.Second)
		for i := range 2 + rng.IntN(4) {
			at := t0.Add(time.Duration(rng.IntN(600)) * time.Second)
			p := e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key(), Merchant: "TN-TEST-0002", Channel: chVietQR, Amount: "20000",
				Source: stallPayment, OccurTime: timestamppb.New(at)}).Payment
			if _, err := e.payments.ConfirmPayment(ctx, &pb.ConfirmPaymentRequest{IdempotencyKey: key(), PaymentId: p.Id}); err != nil {
				t.Fatal(err)
			}
			payments = append(payments, modelPayment{id: p.Id, market: testMarket, channel: chVietQR, moved: true, amount: 20000, occurred: at})
			addLine(modelLine{ref: ref("BUSY", i), amount: 20000, at: at.Add(skew + time.Duration(rng.IntN(120)-60)*time.Second), credit: true})
		}
		// Lines the ledger never heard of, refunds going out, and in camt
		// reversals of either direction.
		for i := range rng.IntN(6) {
			l := modelLine{ref: ref("XX", i), amount: amounts[rng.IntN(len(amounts))], at: when(), credit: rng.IntN(3) > 0}
			if !csv && rng.IntN(2) == 0 {
				l.reversal = true
			}
			addLine(l)
		}
		if len(lines) == 0 {
			lines = append(lines, modelLine{ref: ref("ZZ", 0), amount: 20000, at: start, credit: false})
		}
		rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })

		content := modelStatement(lines, csv, start, end)
		format := pb.StatementFormat_STATEMENT_FORMAT_CAMT053
		if csv {
			format = pb.StatementFormat_STATEMENT_FORMAT_CSV
		}
		req := &pb.ImportStatementRequest{Format: format, Content: content, Channel: chVietQR, Market: testMarket,
			PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(end)}
		resp, err := e.settle.ImportStatement(ctx, req)
		if err != nil {
			t.Fatalf("round %d: import: %v\n%s", round, err, content)
		}
		rep, items := allItems(t, e.settle, resp.Report.Id, true, 7)
		want := modelReconcile(t, items, payments, lines, testMarket, start, end, csv)
		what := fmt.Sprintf("round %d (csv %t, [%s, %s))", round, csv, start.Format(time.RFC3339), end.Format(time.RFC3339))
		sameItems(t, what, items, want)

		counts := map[pb.ReconciliationItemKind]int32{}
		var paid int32
		for _, it := range items {
			counts[it.Kind]++
			if it.PaymentId != "" {
				paid++
			}
		}
		if rep.LineCount != int32(len(lines)) || rep.PaymentCount != paid ||
			rep.MatchedCount != counts[pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED] ||
			rep.AmountMismatchCount != counts[pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_AMOUNT_MISMATCH] ||
			rep.MissingInLedgerCount != counts[pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER] ||
			rep.MissingInStatementCount != counts[pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_STATEMENT] {
			t.Errorf("%s: report %v does not count its %d lines and items %v", what, rep, len(lines), counts)
		}
		breaks := slices.DeleteFunc(slices.Clone(items), func(it *pb.ReconciliationItem) bool {
			return it.Kind == pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED
		})
		sameItems(t, what+": import's breaks", resp.Breaks, breaks)

		again, err := e.settle.ImportStatement(ctx, req)
		if err != nil || !again.Replayed || !proto.Equal(again.Report, resp.Report) {
			t.Errorf("%s: import again: %v, %v", what, again, err)
		} else {
			sameItems(t, what+": replayed breaks", again.Breaks, resp.Breaks)
		}
		if t.Failed() {
			t.Logf("%s statement:\n%s", what, content)
			return
		}
	}
}
