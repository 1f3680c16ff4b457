package reconcile

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/choledger/choledger/settlement/statement"
)

func TestMatch(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	lines := []statement.Line{
		{Number: 2, Ref: "FT1", Amount: 50000, Credit: true, BookedAt: at(0)},   // matched by reference
		{Number: 3, Ref: "FT2", Amount: 70000, Credit: true, BookedAt: at(1)},   // reference matches, amount does not
		{Number: 4, Ref: "X-9", Amount: 30000, Credit: true, BookedAt: at(2)},   // no reference in the ledger: amount and time
		{Number: 5, Ref: "FT5", Amount: 99000, Credit: true, BookedAt: at(3)},   // nothing in the ledger
		{Number: 6, Ref: "RV1", Amount: 50000, Credit: false, BookedAt: at(4)},  // a reversal: not a payment
		{Number: 7, Ref: "X-10", Amount: 30000, Credit: true, BookedAt: at(90)}, // same amount, too far in time
	}
	payments := []Payment{
		{ID: "p1", ProviderRef: "FT1", Amount: 50000, BookedAt: at(0)},
		{ID: "p2", ProviderRef: "FT2", Amount: 75000, BookedAt: at(1)},
		{ID: "p3", Amount: 30000, BookedAt: at(3)},
		{ID: "p4", ProviderRef: "FT4", Amount: 20000, BookedAt: at(5)},
	}
	r := Match(lines, payments, 10*time.Minute, true)
	want := map[Kind]int{Matched: 2, AmountMismatch: 1, MissingInLedger: 2, MissingInStatement: 1}
	for k, n := range want {
		if got := r.Count(k); got != n {
			t.Errorf("%s: %d, want %d (%+v)", k, got, n, r.Items)
		}
	}
	for _, it := range r.Items {
		switch {
		case it.Kind == AmountMismatch && (it.PaymentID != "p2" || it.LedgerAmount != 75000 || it.Line.Number != 3):
			t.Errorf("mismatch: %+v", it)
		case it.Kind == MissingInStatement && it.PaymentID != "p4":
			t.Errorf("missing in statement: %+v", it)
		case it.Kind == Matched && it.PaymentID == "p3" && (it.ByReference || it.Line.Number != 4):
			t.Errorf("amount-and-time match: %+v", it)
		}
	}
	if len(r.Breaks()) != 4 {
		t.Errorf("breaks: %+v", r.Breaks())
	}
}

// The result does not depend on the order lines and payments come in.
func TestMatchIsOrderIndependent(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	lines := []statement.Line{
		{Number: 2, Ref: "A", Amount: 10000, Credit: true, BookedAt: t0},
		{Number: 3, Ref: "B", Amount: 10000, Credit: true, BookedAt: t0.Add(time.Minute)},
	}
	payments := []Payment{{ID: "x", Amount: 10000, BookedAt: t0.Add(time.Minute)}, {ID: "y", Amount: 10000, BookedAt: t0}}
	a := Match(lines, payments, time.Hour, true)
	b := Match([]statement.Line{lines[1], lines[0]}, []Payment{payments[1], payments[0]}, time.Hour, true)
	pair := func(r Report) map[int]string {
		m := map[int]string{}
		for _, it := range r.Items {
			if it.Line != nil {
				m[it.Line.Number] = it.PaymentID
			}
		}
		return m
	}
	if pa, pb := pair(a), pair(b); pa[2] != pb[2] || pa[3] != pb[3] || pa[2] != "y" || pa[3] != "x" {
		t.Fatalf("pairs depend on order: %v vs %v", pa, pb)
	}
}

// Lines and payments booked at the same second, as a stall recording
// payments by the minute books them, are paired the same way whatever
// order they come in: searching them in that order gave two lines of one
// time each other's payment when the payments came in another.
func TestMatchIsOrderIndependentAtEqualTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	lines := []statement.Line{
		{Number: 1, Ref: "L0", Amount: 10000, Credit: true, BookedAt: at(10)},
		{Number: 2, Ref: "L1", Amount: 10000, Credit: true, BookedAt: at(30)},
		{Number: 3, Ref: "L2", Amount: 10000, Credit: true, BookedAt: at(30)},
		{Number: 4, Ref: "L3", Amount: 10000, Credit: true, BookedAt: at(20)},
		{Number: 5, Ref: "L4", Amount: 10000, Credit: true, BookedAt: at(30)},
	}
	payments := []Payment{
		{ID: "p0", Amount: 10000, BookedAt: at(0)},
		{ID: "p1", Amount: 10000, BookedAt: at(30)},
		{ID: "p2", Amount: 10000, BookedAt: at(0)},
		{ID: "p3", Amount: 10000, BookedAt: at(10)},
		{ID: "p4", Amount: 10000, BookedAt: at(30)},
	}
	pairs := func(r Report) []string {
		var out []string
		for _, it := range r.Items {
			n := 0
			if it.Line != nil {
				n = it.Line.Number
			}
			out = append(out, fmt.Sprintf("%s:%d:%s", it.Kind, n, it.PaymentID))
		}
		slices.Sort(out)
		return out
	}
	want := pairs(Match(lines, payments, 15*time.Minute, true))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		ls, ps := slices.Clone(lines), slices.Clone(payments)
		rng.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		if got := pairs(Match(ls, ps, 15*time.Minute, true)); !slices.Equal(got, want) {
			t.Fatalf("lines %v, payments %v: %v, in the order given %v", ls, ps, got, want)
		}
	}
}

// A line whose reference is the provider's never takes, on amount and
// time, a payment the provider gave another reference: they are two
// transfers, and pairing them would hide both breaks. A camt line's
// reference may be the bank's own, which says nothing of the payment's.
func TestMatchByTimeSkipsAnotherProviderReference(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	line := statement.Line{Number: 2, Ref: "FT9", Amount: 50000, Credit: true, BookedAt: t0}
	other := Payment{ID: "p-other", ProviderRef: "FT1", Amount: 50000, BookedAt: t0.Add(time.Minute)}
	unreferenced := Payment{ID: "p-none", Amount: 50000, BookedAt: t0.Add(5 * time.Minute)}
	for _, tc := range []struct {
		name         string
		payments     []Payment
		providerRefs bool
		want         []string // kind:line ref:payment id
	}{
		{"provider references, only another", []Payment{other}, true,
			[]string{"missing_in_ledger:FT9:", "missing_in_statement::p-other"}},
		{"provider references, one without a reference further off", []Payment{other, unreferenced}, true,
			[]string{"matched:FT9:p-none", "missing_in_statement::p-other"}},
		{"bank references, only another", []Payment{other}, false,
			[]string{"matched:FT9:p-other"}},
		{"bank references, the closest", []Payment{other, unreferenced}, false,
			[]string{"matched:FT9:p-other", "missing_in_statement::p-none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Match([]statement.Line{line}, tc.payments, 10*time.Minute, tc.providerRefs)
			var got []string
			for _, it := range r.Items {
				ref := ""
				if it.Line != nil {
					ref = it.Line.Ref
				}
				got = append(got, string(it.Kind)+":"+ref+":"+it.PaymentID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// camtDay is a camt.053 of 2026-03-10 (Vietnam time) holding entries.
func camtDay(t *testing.T, entries string) []statement.Line {
	t.Helper()
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-03-11T01:00:00+07:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id>
<FrToDt><FrDtTm>2026-03-10T00:00:00+07:00</FrDtTm><ToDtTm>2026-03-10T23:59:59+07:00</ToDtTm></FrToDt>
<Acct><Id><Othr><Id>0001234567890</Id></Othr></Id></Acct>
` + entries + `
</Stmt></BkToCstmrStmt></Document>`
	st, err := statement.ParseCamt(strings.NewReader(doc), statement.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st.Lines
}

// A camt credit with RvslInd is the reversal of an earlier debit, such as
// a refund that bounced back: money in, but no customer's payment, so it
// never takes a payment of the same amount and time. Here the one payment
// is not on the statement, and must be reported so.
func TestMatchSkipsCreditReversal(t *testing.T) {
	lines := camtDay(t, `<Ntry><NtryRef>RFD-0001</NtryRef><Amt Ccy="VND">150000</Amt><CdtDbtInd>CRDT</CdtDbtInd><RvslInd>true</RvslInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2026-03-10T12:05:00+07:00</DtTm></BookgDt>
<AddtlNtryInf>Hoan tra giao dich hoan tien RFD-0001 that bai</AddtlNtryInf></Ntry>`)
	payments := []Payment{{ID: "p1", Amount: 150000, BookedAt: time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC)}}
	r := Match(lines, payments, 15*time.Minute, false)
	if len(r.Items) != 1 || r.Count(MissingInStatement) != 1 {
		t.Errorf("lines %+v\nitems %+v; want only p1 missing in the statement", lines, r.Items)
	}
}

// A camt debit with RvslInd takes back an earlier credit: a payment the
// ledger counts as received was not kept. The ledger records no such
// movement, so the line is a break, missing in the ledger; it is not a
// payment, so it pairs with none.
func TestMatchReportsDebitReversal(t *testing.T) {
	lines := camtDay(t, `<Ntry><NtryRef>FT-1</NtryRef><Amt Ccy="VND">150000</Amt><CdtDbtInd>CRDT</CdtDbtInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2026-03-10T12:00:00+07:00</DtTm></BookgDt></Ntry>
<Ntry><NtryRef>RV-1</NtryRef><Amt Ccy="VND">150000</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2026-03-10T12:01:00+07:00</DtTm></BookgDt></Ntry>
<Ntry><NtryRef>RF-1</NtryRef><Amt Ccy="VND">20000</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>false</RvslInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2026-03-10T12:02:00+07:00</DtTm></BookgDt></Ntry>`)
	payments := []Payment{{ID: "p1", ProviderRef: "FT-1", Amount: 150000, BookedAt: time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC)}}
	r := Match(lines, payments, 15*time.Minute, false)
	var got []string
	for _, it := range r.Items {
		got = append(got, fmt.Sprintf("%s:%d:%s", it.Kind, it.Line.Number, it.PaymentID))
	}
	// The refund (entry 3) is money out the ledger initiated: not matched,
	// never a break.
	want := []string{"matched:1:p1", "missing_in_ledger:2:"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// On amount and time, as many lines are matched as can be within the
// window: closest first is kept only while it costs no match. Here the
// first line's closest payment is the only one within the window of the
// second, and the first has another within its own; taking the closest
// for the first left the second line missing in the ledger and a payment
// missing in the statement, two breaks where every line has its payment.
func TestMatchByTimeMatchesAsManyLinesAsItCan(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	lines := []statement.Line{
		{Number: 2, Ref: "BK-1", Amount: 50000, Credit: true, BookedAt: at(0)},
		{Number: 3, Ref: "BK-2", Amount: 50000, Credit: true, BookedAt: at(12)},
	}
	payments := []Payment{
		{ID: "p-early", Amount: 50000, BookedAt: at(-10)},
		{ID: "p-between", Amount: 50000, BookedAt: at(3)},
	}
	for _, providerRefs := range []bool{true, false} {
		r := Match(lines, payments, 15*time.Minute, providerRefs)
		var got []string
		for _, it := range r.Items {
			ref := ""
			if it.Line != nil {
				ref = it.Line.Ref
			}
			got = append(got, string(it.Kind)+":"+ref+":"+it.PaymentID)
		}
		if want := []string{"matched:BK-1:p-early", "matched:BK-2:p-between"}; !slices.Equal(got, want) {
			t.Errorf("provider references %t: got %v, want %v", providerRefs, got, want)
		}
	}
}

// Random lines and payments, few amounts and times minutes apart, some
// lines booked by date alone: every
// line and payment is accounted for once, pairs follow the rules, as many
// lines are matched on amount and time as any pairing could match, and
// the order the payments come in changes nothing.
func TestMatchAccountsForEverythingAndMatchesAsManyAsCan(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	const window = 15 * time.Minute
	for seed := range 3000 {
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		at := func() time.Time { return t0.Add(time.Duration(rng.IntN(3600)) * time.Second) }
		amount := func() int64 { return int64(1+rng.IntN(2)) * 10000 }
		var payments []Payment
		for j := range rng.IntN(8) {
			p := Payment{ID: fmt.Sprintf("p%02d", j), Amount: amount(), BookedAt: at()}
			switch rng.IntN(4) {
			case 0:
				p.ProviderRef = fmt.Sprintf("R%d", j)
			case 1:
				p.ProviderRef, p.Excluded = fmt.Sprintf("R%d", j), rng.IntN(2) == 0
			}
			payments = append(payments, p)
		}
		var lines []statement.Line
		for i := range rng.IntN(8) {
			l := statement.Line{Number: i + 1, Ref: fmt.Sprintf("L%d", i), Amount: amount(), Credit: rng.IntN(5) > 0, BookedAt: at()}
			l.Reversal = rng.IntN(6) == 0
			if rng.IntN(8) == 0 { // booked by date: the day starts half an hour in
				l.BookedAt, l.DateOnly = t0.Add(30*time.Minute).Add(-24*time.Hour*time.Duration(rng.IntN(2))), true
			}
			if k := rng.IntN(12); k < len(payments) {
				l.Ref = fmt.Sprintf("R%d", k) // a payment's reference, maybe
			}
			if slices.ContainsFunc(lines, func(o statement.Line) bool { return o.Ref == l.Ref }) {
				l.Ref = fmt.Sprintf("L%d", i)
			}
			lines = append(lines, l)
		}
		providerRefs := rng.IntN(2) == 0
		r := Match(lines, payments, window, providerRefs)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: "+format+"\nlines %+v\npayments %+v\nitems %+v", append(append([]any{seed}, args...), lines, payments, r.Items)...)
		}

		byID := map[string]Payment{}
		for _, p := range payments {
			byID[p.ID] = p
		}
		lineItems, paymentItems := map[int]Item{}, map[string]int{}
		for _, it := range r.Items {
			if it.Line != nil {
				if _, dup := lineItems[it.Line.Number]; dup {
					fail("line %d twice", it.Line.Number)
				}
				lineItems[it.Line.Number] = it
			}
			if it.PaymentID != "" {
				paymentItems[it.PaymentID]++
			}
		}
		for id, n := range paymentItems {
			if n != 1 || byID[id].Excluded {
				fail("payment %s in %d items", id, n)
			}
		}
		for _, p := range payments {
			if paymentItems[p.ID] != 1 && !p.Excluded {
				fail("payment %s not accounted for", p.ID)
			}
		}
		refOf := map[string]Payment{}
		for _, p := range payments {
			if p.ProviderRef != "" {
				refOf[p.ProviderRef] = p
			}
		}
		var rest []statement.Line // lines left to amount and time
		for _, l := range lines {
			it, ok := lineItems[l.Number]
			p, held := refOf[l.Ref]
			switch {
			case l.Reversal && !l.Credit:
				if !ok || it.Kind != MissingInLedger || it.PaymentID != "" {
					fail("debit reversal %d: %+v", l.Number, it)
				}
			case !l.Credit || l.Reversal:
				if ok {
					fail("line %d is no payment but has %+v", l.Number, it)
				}
			case held && p.Excluded:
				if !ok || it.Kind != MissingInLedger || it.PaymentID != "" {
					fail("line %d of an excluded payment: %+v", l.Number, it)
				}
			case held:
				want := Matched
				if p.Amount != l.Amount {
					want = AmountMismatch
				}
				if !ok || it.Kind != want || it.PaymentID != p.ID || !it.ByReference {
					fail("line %d by reference: %+v", l.Number, it)
				}
			default:
				rest = append(rest, l)
			}
		}
		free := func(p Payment, l statement.Line) bool {
			_, byRef := refOf[p.ProviderRef]
			gap := max(p.BookedAt.Sub(l.BookedAt), l.BookedAt.Sub(p.BookedAt))
			if day := l.BookedAt.Add(24 * time.Hour); l.DateOnly && !p.BookedAt.Before(l.BookedAt) {
				gap = max(0, p.BookedAt.Sub(day))
			}
			return !p.Excluded && !(byRef && slices.ContainsFunc(lines, func(o statement.Line) bool { return o.Ref == p.ProviderRef && o.Credit && !o.Reversal })) &&
				p.Amount == l.Amount && gap <= window && !(providerRefs && p.ProviderRef != "" && p.ProviderRef != l.Ref)
		}
		matched := 0
		for _, l := range rest {
			it := lineItems[l.Number]
			switch {
			case it.Kind == MissingInLedger && it.PaymentID == "":
			case it.Kind == Matched && !it.ByReference && free(byID[it.PaymentID], l):
				matched++
			default:
				fail("line %d on amount and time: %+v", l.Number, it)
			}
		}
		var most func(k int, taken map[string]bool) int
		most = func(k int, taken map[string]bool) int {
			if k == len(rest) {
				return 0
			}
			best := most(k+1, taken)
			for _, p := range payments {
				if !taken[p.ID] && free(p, rest[k]) {
					taken[p.ID] = true
					best = max(best, 1+most(k+1, taken))
					delete(taken, p.ID)
				}
			}
			return best
		}
		if n := most(0, map[string]bool{}); matched != n {
			fail("%d lines matched on amount and time, but %d can be", matched, n)
		}

		shuffled := slices.Clone(payments)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again := Match(lines, shuffled, window, providerRefs)
		key := func(r Report) []string {
			var out []string
			for _, it := range r.Items {
				n := 0
				if it.Line != nil {
					n = it.Line.Number
				}
				out = append(out, fmt.Sprintf("%s:%d:%s", it.Kind, n, it.PaymentID))
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(key(r), key(again)) {
			fail("payments in another order: %v", key(again))
		}
	}
}

// A camt statement may give every entry's booking by date alone, each line
// then as close to every payment of its day. Its 100,000 lines, the most a
// statement holds, sharing three amounts, are matched as far as they can
// be: every line of an amount with a payment in reach, and the leftovers
// searched for through the others. (Lines of one day and amount share their
// payments and how far their searches went, which keeps this test, and an
// import of such a statement, well under a second: going through the day's
// payments for every line took more than a minute.)
func TestMatchManyLinesBookedByDate(t *testing.T) {
	day := time.Date(2026, 11, 19, 17, 0, 0, 0, time.UTC) // 20 November in Vietnam
	const n = 100000
	amounts := []int64{20000, 30000, 50000}
	var lines []statement.Line
	var payments []Payment
	for i := range n {
		amount := amounts[i%len(amounts)]
		lines = append(lines, statement.Line{Number: i + 1, Ref: fmt.Sprintf("BK-%d", i), Amount: amount, Credit: true, BookedAt: day, DateOnly: true})
		if i >= len(amounts) { // the first line of each amount has no payment
			at := day.Add(time.Duration(i) * 24 * time.Hour / n)
			payments = append(payments, Payment{ID: fmt.Sprintf("p%06d", i), Amount: amount, BookedAt: at})
		}
	}
	for k, amount := range amounts { // nor any line: the day before, out of reach
		payments = append(payments, Payment{ID: fmt.Sprintf("q%d", k), Amount: amount, BookedAt: day.Add(-2 * time.Hour)})
	}

	r := Match(lines, payments, 15*time.Minute, false)

	want := map[Kind]int{Matched: n - len(amounts), MissingInLedger: len(amounts), MissingInStatement: len(amounts)}
	for k, c := range want {
		if got := r.Count(k); got != c {
			t.Errorf("%s: %d, want %d", k, got, c)
		}
	}
}
