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
// so the result does not depend on input order. Debit lines (refunds) and
// credit reversals (money back from a failed debit, such as a bounced
// refund) are not payments and are left out of the match. A debit
// reversal takes back an earlier credit, a payment the ledger counts as
// received; the ledger records no such movement, so the line is
// MissingInLedger, paired with no payment: its reference may be the
// bank's, and pairing on amount and time would be a guess.
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
	sort.SliceStable(rest, func(a, b int) bool { return lines[rest[a]].BookedAt.Before(lines[rest[b]].BookedAt) })
	for _, i := range rest {
		l := &lines[i]
		best, bestGap := -1, time.Duration(0)
		for j, p := range payments {
			if used[j] || p.Amount != l.Amount {
				continue
			}
			if providerRefs && p.ProviderRef != "" && p.ProviderRef != l.Ref {
				continue // another transfer of the provider's
			}
			gap := p.BookedAt.Sub(l.BookedAt)
			if gap < 0 {
				gap = -gap
			}
			if gap > window {
				continue
			}
			if best < 0 || gap < bestGap || (gap == bestGap && p.ID < payments[best].ID) {
				best, bestGap = j, gap
			}
		}
		if best < 0 {
			r.Items = append(r.Items, Item{Kind: MissingInLedger, Line: l})
			continue
		}
		used[best] = true
		r.Items = append(r.Items, Item{Kind: Matched, Line: l, PaymentID: payments[best].ID, LedgerAmount: payments[best].Amount})
	}
	for j, p := range payments {
		if !used[j] {
			r.Items = append(r.Items, Item{Kind: MissingInStatement, PaymentID: p.ID, LedgerAmount: p.Amount})
		}
	}
	return r
}
