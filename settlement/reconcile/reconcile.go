// Package reconcile matches a provider's or bank's statement against the
// payments the ledger recorded for the same period, and reports the breaks:
// lines the ledger lacks, payments the statement lacks, and amounts that
// disagree.
//
// It is pure: it reads nothing and writes nothing, so the rules can be
// tested line by line; the settlement package feeds it and keeps its
// reports.
package reconcile

import (
	"slices"
	"sort"
	"time"

	"github.com/choledger/choledger/settlement/statement"
)

// Payment is what the ledger recorded, as reconciliation sees it.
type Payment struct {
	ID          string
	ProviderRef string
	Amount      int64 // what the provider confirmed, in minor units
	BookedAt    time.Time
	// Excluded: the ledger holds the reference, but for a payment the
	// statement is not matched against (another market's, or one that
	// moved no money: pending, rejected, expired). It is never matched
	// nor reported; it only tells that the line with its reference is that
	// transfer, and no other payment.
	Excluded bool
}

// Kind is the outcome of one line or payment.
type Kind string

const (
	// Matched: same reference (or, without one, same amount close in time)
	// and same amount.
	Matched Kind = "matched"
	// AmountMismatch: matched by reference, but the amounts differ.
	AmountMismatch Kind = "amount_mismatch"
	// MissingInLedger: the statement has it, the ledger does not: a
	// payment, or a debit reversal taking one back.
	MissingInLedger Kind = "missing_in_ledger"
	// MissingInStatement: the ledger has it, the statement does not.
	MissingInStatement Kind = "missing_in_statement"
)

// Item is one outcome: a statement line, a payment, or both.
type Item struct {
	Kind      Kind
	Line      *statement.Line // nil for MissingInStatement
	PaymentID string          // "" for MissingInLedger
	// ByReference says a match was made on the provider's reference rather
	// than on amount and time.
	ByReference bool
	// LedgerAmount is the payment's amount, for mismatches.
	LedgerAmount int64
}

// Report is the outcome of a reconciliation.
type Report struct {
	Items []Item
}

// Count returns how many items are of kind k.
func (r Report) Count(k Kind) int {
	n := 0
	for _, it := range r.Items {
		if it.Kind == k {
			n++
		}
	}
	return n
}

// Breaks are the items that are not matched.
func (r Report) Breaks() []Item {
	var out []Item
	for _, it := range r.Items {
		if it.Kind != Matched {
			out = append(out, it)
		}
	}
	return out
}

// Match reconciles statement credit lines against payments. First by
// provider reference (a reference match with another amount is a mismatch,
// not a new pair); then each remaining line takes the remaining payment of
// the same amount booked closest to it within window, earliest line first,
// so the result does not depend on input order, and as many lines as can
// be are matched: a line left without a payment takes one another line
// took, when that line has another within its window. A line booked by
// date alone (statement.Line.DateOnly) may take a payment of any time of
// that day, or within window of it, after the lines booked at a time have
// taken theirs. Debit lines (refunds) and credit reversals (money back
// from a failed debit, such as a bounced refund) are not payments and are
// left out of the match. A debit reversal takes back an earlier credit, a
// payment the ledger counts as received; the ledger records no such
// movement, so the line is MissingInLedger, paired with no payment: its
// reference may be the bank's, and pairing on amount and time would be a
// guess.
//
// A line whose reference is an Excluded payment's is that transfer, which
// the ledger does not count as received here: MissingInLedger, never
// paired on amount and time with another payment, which would hide both
// breaks.
//
// providerRefs says each line's reference is the provider's own, as a
// CSV's ref column is. Then a line never takes, on amount and time, a
// payment with another provider reference: the provider gives each of its
// transfers one reference, so the two are different transfers, and
// pairing them would hide both breaks. Without it (camt, whose reference
// may be the bank's own AcctSvcrRef or NtryRef, or the payer's EndToEndId)
// a reference that differs says nothing.
func Match(lines []statement.Line, payments []Payment, window time.Duration, providerRefs bool) Report {
	var r Report
	byRef := make(map[string]int, len(payments))
	for i, p := range payments {
		if p.ProviderRef != "" {
			byRef[p.ProviderRef] = i
		}
	}
	used := make([]bool, len(payments))
	for j, p := range payments {
		used[j] = p.Excluded
	}
	var rest []int // lines with no reference match, by index
	for i := range lines {
		l := &lines[i]
		if l.Reversal && !l.Credit {
			r.Items = append(r.Items, Item{Kind: MissingInLedger, Line: l})
			continue
		}
		if !l.Credit || l.Reversal {
			continue
		}
		j, ok := byRef[l.Ref]
		if ok && payments[j].Excluded {
			r.Items = append(r.Items, Item{Kind: MissingInLedger, Line: l})
			continue
		}
		if !ok || used[j] {
			rest = append(rest, i)
			continue
		}
		used[j] = true
		it := Item{Kind: Matched, Line: l, PaymentID: payments[j].ID, ByReference: true, LedgerAmount: payments[j].Amount}
		if payments[j].Amount != l.Amount {
			it.Kind = AmountMismatch
		}
		r.Items = append(r.Items, it)
	}
	// Lines booked by date alone, which may take a payment of any time that
	// day, come after those booked at a time, which take only one near it;
	// lines of one time go by number, so their order in the input does not
	// decide which takes which payment.
	sort.Slice(rest, func(a, b int) bool {
		la, lb := &lines[rest[a]], &lines[rest[b]]
		switch {
		case la.DateOnly != lb.DateOnly:
			return lb.DateOnly
		case !la.BookedAt.Equal(lb.BookedAt):
			return la.BookedAt.Before(lb.BookedAt)
		}
		return la.Number < lb.Number
	})
	tm := newTimeMatch(lines, payments, used, window, providerRefs)
	for _, i := range rest {
		tm.takeClosest(i)
	}
	// A line left without a payment may still have one within its window
	// that another line took while a second was within that line's: that
	// line moves over, so no line is missing in the ledger, and a payment
	// in the statement, for want of a better pairing. The searches of one
	// pass skip the payments an earlier one went through; a pass that
	// finds nothing has changed nothing, so there is nothing left to find.
	// A line of an amount no payment is left of cannot succeed.
	for found := true; found; {
		found = false
		tm.newPass()
		for _, i := range rest {
			if tm.paid[i] < 0 && tm.free[lines[i].Amount] > 0 && tm.augment(i) {
				found = true
			}
		}
	}
	for _, i := range rest {
		l := &lines[i]
		j := tm.paid[i]
		if j < 0 {
			r.Items = append(r.Items, Item{Kind: MissingInLedger, Line: l})
			continue
		}
		used[j] = true
		r.Items = append(r.Items, Item{Kind: Matched, Line: l, PaymentID: payments[j].ID, LedgerAmount: payments[j].Amount})
	}
	for j, p := range payments {
		if !used[j] {
			r.Items = append(r.Items, Item{Kind: MissingInStatement, PaymentID: p.ID, LedgerAmount: p.Amount})
		}
	}
	return r
}

// timeMatch pairs lines with payments on amount and time.
type timeMatch struct {
	lines        []statement.Line
	payments     []Payment
	window       time.Duration
	providerRefs bool
	// byAmount holds the payments left after the reference match, by
	// amount, in order of time, then id.
	byAmount map[int64][]int
	free     map[int64]int // of them, how many no line holds
	paid     map[int]int   // line → payment, -1 for none
	owner    []int         // payment → line, -1 for none (a payment once held stays held)
	// seen marks the payments the searches of this pass went through.
	seen []bool
	pass int
	days map[dayKey]*day
}

// A line booked by date alone is as close to every payment of its day:
// the lines of one day and amount (and, when references are the
// provider's, one reference) may take the same payments, in the same
// order. They share them, with how far the lines went through them,
// rather than each going through the day's payments again: for a
// statement of 100,000 lines that takes minutes.
type dayKey struct {
	start  int64 // BookedAt, in Unix nanoseconds
	amount int64
	ref    string
}

type day struct {
	near    []int // the payments of the lines' window, in order of time
	closest []int // the same, closest first
	// closest[:held] are held by a line, for good, or are not the lines' to
	// take; near[:gone] are seen in this pass, or not the lines' to take.
	held, gone int
	pass       int
}

func newTimeMatch(lines []statement.Line, payments []Payment, used []bool, window time.Duration, providerRefs bool) *timeMatch {
	tm := &timeMatch{lines: lines, payments: payments, window: window, providerRefs: providerRefs,
		byAmount: make(map[int64][]int), free: make(map[int64]int), paid: make(map[int]int), owner: make([]int, len(payments)),
		seen: make([]bool, len(payments)), days: make(map[dayKey]*day)}
	for j, p := range payments {
		tm.owner[j] = -1
		if !used[j] {
			tm.byAmount[p.Amount] = append(tm.byAmount[p.Amount], j)
			tm.free[p.Amount]++
		}
	}
	for _, js := range tm.byAmount {
		// Payments of one time go by id, so that the searches, which go
		// through them in this order, do not depend on the input's.
		sort.Slice(js, func(a, b int) bool {
			pa, pb := &payments[js[a]], &payments[js[b]]
			if !pa.BookedAt.Equal(pb.BookedAt) {
				return pa.BookedAt.Before(pb.BookedAt)
			}
			return pa.ID < pb.ID
		})
	}
	return tm
}

// span is when line i may have been booked: its time, or the whole day
// of a line booked by date alone, as close to every payment of the day.
func (tm *timeMatch) span(i int) (first, last time.Time) {
	l := &tm.lines[i]
	if l.DateOnly {
		return l.BookedAt, l.BookedAt.Add(24 * time.Hour)
	}
	return l.BookedAt, l.BookedAt
}

// gap is how far payment j is from line i's booking.
func (tm *timeMatch) gap(i, j int) time.Duration {
	first, last := tm.span(i)
	switch t := tm.payments[j].BookedAt; {
	case t.Before(first):
		return first.Sub(t)
	case t.After(last):
		return t.Sub(last)
	}
	return 0
}

// closer says payment a is closer to line i than b, ties to the smaller
// payment id.
func (tm *timeMatch) closer(i, a, b int) bool {
	ga, gb := tm.gap(i, a), tm.gap(i, b)
	return ga < gb || (ga == gb && tm.payments[a].ID < tm.payments[b].ID)
}

// near is the payments of line i's amount within the window of its
// booking, in order of time.
func (tm *timeMatch) near(i int) []int {
	first, last := tm.span(i)
	js := tm.byAmount[tm.lines[i].Amount]
	from := sort.Search(len(js), func(k int) bool { return !tm.payments[js[k]].BookedAt.Before(first.Add(-tm.window)) })
	to := sort.Search(len(js), func(k int) bool { return tm.payments[js[k]].BookedAt.After(last.Add(tm.window)) })
	return js[from:max(from, to)]
}

// may says line i may take payment j of its window.
func (tm *timeMatch) may(i, j int) bool {
	p := &tm.payments[j]
	return !tm.providerRefs || p.ProviderRef == "" || p.ProviderRef == tm.lines[i].Ref // else another transfer of the provider's
}

// day is what the lines booked by date alone like line i share; nil for
// a line booked at a time.
func (tm *timeMatch) day(i int) *day {
	l := &tm.lines[i]
	if !l.DateOnly {
		return nil
	}
	k := dayKey{start: l.BookedAt.UnixNano(), amount: l.Amount}
	if tm.providerRefs {
		k.ref = l.Ref
	}
	d := tm.days[k]
	if d == nil {
		d = &day{near: tm.near(i)}
		d.closest = slices.Clone(d.near)
		sort.SliceStable(d.closest, func(a, b int) bool { return tm.closer(i, d.closest[a], d.closest[b]) })
		tm.days[k] = d
	}
	return d
}

// closestFree is the closest payment line i may take that no line holds,
// -1 if none.
func (tm *timeMatch) closestFree(i int) int {
	if d := tm.day(i); d != nil {
		for ; d.held < len(d.closest); d.held++ {
			if j := d.closest[d.held]; tm.owner[j] < 0 && tm.may(i, j) {
				return j
			}
		}
		return -1
	}
	best := -1
	for _, j := range tm.near(i) {
		if tm.owner[j] < 0 && tm.may(i, j) && (best < 0 || tm.closer(i, j, best)) {
			best = j
		}
	}
	return best
}

func (tm *timeMatch) pair(i, j int) {
	if tm.owner[j] < 0 {
		tm.free[tm.payments[j].Amount]--
	}
	tm.paid[i], tm.owner[j] = j, i
}

// takeClosest gives line i the closest payment no line holds, if any.
func (tm *timeMatch) takeClosest(i int) {
	tm.paid[i] = -1
	if j := tm.closestFree(i); j >= 0 {
		tm.pair(i, j)
	}
}

// newPass starts a pass of searches, none of whose payments are seen.
func (tm *timeMatch) newPass() {
	clear(tm.seen)
	tm.pass++
}

// augment finds line i a payment, the closest free one or else one whose
// line can in turn be given another (an augmenting path), and reports
// whether it did; the payments it goes through are seen for the rest of
// the pass.
func (tm *timeMatch) augment(i int) bool {
	if j := tm.closestFree(i); j >= 0 {
		tm.pair(i, j)
		return true
	}
	if d := tm.day(i); d != nil {
		if d.pass != tm.pass {
			d.pass, d.gone = tm.pass, 0
		}
		for d.gone < len(d.near) {
			j := d.near[d.gone]
			d.gone++
			if tm.through(i, j) {
				return true
			}
		}
		return false
	}
	for _, j := range tm.near(i) {
		if tm.through(i, j) {
			return true
		}
	}
	return false
}

// through gives line i payment j if j's line can be given another, and
// reports whether it did.
func (tm *timeMatch) through(i, j int) bool {
	if tm.seen[j] || !tm.may(i, j) {
		return false
	}
	tm.seen[j] = true
	if tm.augment(tm.owner[j]) {
		tm.pair(i, j)
		return true
	}
	return false
}
