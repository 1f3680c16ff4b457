package settlement

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// Entry kinds settlement reports tell apart from payments and refunds.
const (
	// KindPayout pays a merchant out: its debits to a merchant's payable
	// are the payouts of a settlement report (see payout.go).
	KindPayout = "payout"
	// KindProviderSettlement records money a provider paid to a settlement
	// bank: Dr bank settlement, Cr the provider's clearing account.
	KindProviderSettlement = "provider_settlement"
)

// settlementKinds are the kinds whose posted movements settlement_daily_totals
// keeps apart.
var settlementKinds = []string{KindPayout, KindProviderSettlement, KindSuspenseReclassification}

// Rollups keeps ledger_daily_totals and settlement_daily_totals: every
// account's movements per business day, in the same transaction as the
// entries. Register it in ledger.Options.Projectors.
//
// A posting lands on the day of its entry's RecordedAt in Asia/Ho_Chi_Minh.
// Pending postings add to the pending columns; the post_pending or
// void_pending entry that closes a pending entry takes the pending entry's
// amounts off them again, on the closing entry's day. Summed up to a day,
// an account's rows are therefore its four totals as of the end of that day,
// exactly what ledger.Balance returns as of that time.
type Rollups struct{}

type accountDay struct {
	code string
	day  Day
}

type dayMoves struct {
	debitsPending, creditsPending, debitsPosted, creditsPosted int64
	entries                                                    int32
}

type kindDay struct {
	code, kind string
	day        Day
}

const (
	// Each (account, day) row is touched once per statement: the round's
	// postings come summed per row from Go, and the releases of the pending
	// entries it closes (whose postings only the database holds) are added
	// to them before the insert. An unknown account code yields a NULL id
	// and fails the statement rather than dropping the movement.
	projectDailyTotals = `
WITH moves (account_id, day, dp, cp, dpo, cpo, n) AS (
    SELECT (SELECT a.id FROM ledger_accounts a WHERE a.code = t.code), t.day, t.dp, t.cp, t.dpo, t.cpo, t.n
      FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[])
           AS t(code, day, dp, cp, dpo, cpo, n)
    UNION ALL
    SELECT p.account_id, r.day,
           CASE WHEN p.direction = 'D' THEN -p.amount ELSE 0 END,
           CASE WHEN p.direction = 'C' THEN -p.amount ELSE 0 END,
           0, 0, 0
      FROM unnest($8::text[], $9::date[]) AS r(pending_id, day)
      JOIN ledger_entries e ON e.id = r.pending_id::uuid
      JOIN ledger_postings p ON p.entry_seq = e.seq)
INSERT INTO ledger_daily_totals AS d (account_id, day, debits_pending, credits_pending, debits_posted, credits_posted, entries)
SELECT account_id, day, sum(dp), sum(cp), sum(dpo), sum(cpo), sum(n)
  FROM moves
 GROUP BY account_id, day
 ORDER BY account_id, day
    ON CONFLICT (account_id, day) DO UPDATE
   SET debits_pending  = d.debits_pending + EXCLUDED.debits_pending,
       credits_pending = d.credits_pending + EXCLUDED.credits_pending,
       debits_posted   = d.debits_posted + EXCLUDED.debits_posted,
       credits_posted  = d.credits_posted + EXCLUDED.credits_posted,
       entries         = d.entries + EXCLUDED.entries`

	projectKindTotals = `
INSERT INTO settlement_daily_totals AS d (account_id, kind, day, entries, debits_posted, credits_posted)
SELECT (SELECT a.id FROM ledger_accounts a WHERE a.code = t.code), t.kind, t.day, t.n, t.dpo, t.cpo
  FROM unnest($1::text[], $2::text[], $3::date[], $4::int[], $5::bigint[], $6::bigint[]) AS t(code, kind, day, n, dpo, cpo)
 ORDER BY 1, 2, 3
    ON CONFLICT (account_id, kind, day) DO UPDATE
   SET entries        = d.entries + EXCLUDED.entries,
       debits_posted  = d.debits_posted + EXCLUDED.debits_posted,
       credits_posted = d.credits_posted + EXCLUDED.credits_posted`
)

// Project implements ledger.Projector.
//
// Like every projection, it runs in a round that holds the ledger head,
// the one lock rounds take: two transactions never update the same row
// concurrently, and the rollups add no lock that could deadlock.
func (Rollups) Project(entries []*ledger.Entry, b *pgx.Batch) {
	rows := map[accountDay]*dayMoves{}
	kinds := map[kindDay]*dayMoves{}
	var releaseIDs []string
	var releaseDays []time.Time
	for _, e := range entries {
		day := DayOf(e.RecordedAt)
		pending := e.Phase == ledger.PhasePending
		counted := map[string]bool{}
		keepKind := !pending && slices.Contains(settlementKinds, e.Kind)
		for _, p := range e.Postings {
			k := accountDay{p.AccountCode, day}
			r := rows[k]
			if r == nil {
				r = &dayMoves{}
				rows[k] = r
			}
			switch {
			case pending && p.Direction == ledger.Debit:
				r.debitsPending += p.Amount
			case pending:
				r.creditsPending += p.Amount
			case p.Direction == ledger.Debit:
				r.debitsPosted += p.Amount
			default:
				r.creditsPosted += p.Amount
			}
			if !counted[p.AccountCode] {
				counted[p.AccountCode] = true
				r.entries++
			}
			if keepKind {
				kk := kindDay{p.AccountCode, e.Kind, day}
				kr := kinds[kk]
				if kr == nil {
					kr = &dayMoves{}
					kinds[kk] = kr
				}
				if p.Direction == ledger.Debit {
					kr.debitsPosted += p.Amount
				} else {
					kr.creditsPosted += p.Amount
				}
			}
		}
		if keepKind {
			for code := range counted {
				kinds[kindDay{code, e.Kind, day}].entries++
			}
		}
		if e.Phase == ledger.PhasePostPending || e.Phase == ledger.PhaseVoidPending {
			releaseIDs = append(releaseIDs, e.PendingID)
			releaseDays = append(releaseDays, day.date())
		}
	}
	if len(rows) > 0 || len(releaseIDs) > 0 {
		keys := make([]accountDay, 0, len(rows))
		for k := range rows {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b accountDay) int {
			if c := strings.Compare(a.code, b.code); c != 0 {
				return c
			}
			return a.day.t.Compare(b.day.t)
		})
		n := len(keys)
		codes, days := make([]string, n), make([]time.Time, n)
		dp, cp, dpo, cpo, cnt := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int32, n)
		for i, k := range keys {
			r := rows[k]
			codes[i], days[i] = k.code, k.day.date()
			dp[i], cp[i], dpo[i], cpo[i], cnt[i] = r.debitsPending, r.creditsPending, r.debitsPosted, r.creditsPosted, r.entries
		}
		b.Queue(projectDailyTotals, codes, days, dp, cp, dpo, cpo, cnt, releaseIDs, releaseDays)
	}
	if len(kinds) > 0 {
		var codes, kindNames []string
		var days []time.Time
		var cnt []int32
		var dpo, cpo []int64
		for k, r := range kinds {
			codes, kindNames, days = append(codes, k.code), append(kindNames, k.kind), append(days, k.day.date())
			cnt, dpo, cpo = append(cnt, r.entries), append(dpo, r.debitsPosted), append(cpo, r.creditsPosted)
		}
		b.Queue(projectKindTotals, codes, kindNames, days, cnt, dpo, cpo)
	}
}

// Projectors are every projector a ledger serving payments and settlement
// registers in ledger.Options.Projectors: the payments projection, the
// daily rollups and the settlement projection. A ledger missing one writes
// entries whose reports would never add up.
func Projectors() []ledger.Projector {
	return []ledger.Projector{payment.Projector{}, Rollups{}, Projector{}}
}

// Projector keeps the tables settlement derives from entries' metadata:
// payment_daily_totals (posted payments and refunds per merchant, channel
// and day), provider_settlements and the status of payout lines. Register it in
// ledger.Options.Projectors beside Rollups.
type Projector struct{}

type paymentDay struct {
	merchant, market, channel string
	day                       Day
}

type paymentMoves struct {
	payments, refunds                   int32
	gross, fees, refunded, feesReturned int64
}

const (
	projectPaymentTotals = `
INSERT INTO payment_daily_totals AS d (merchant, market, channel, day, payments, gross, fees, refunds, refunded, fees_returned)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::int[], $6::bigint[], $7::bigint[], $8::int[], $9::bigint[], $10::bigint[])
 ORDER BY 1, 3, 4
    ON CONFLICT (merchant, channel, day) DO UPDATE
   SET payments      = d.payments + EXCLUDED.payments,
       gross         = d.gross + EXCLUDED.gross,
       fees          = d.fees + EXCLUDED.fees,
       refunds       = d.refunds + EXCLUDED.refunds,
       refunded      = d.refunded + EXCLUDED.refunded,
       fees_returned = d.fees_returned + EXCLUDED.fees_returned`

	// remaining_owed reads the clearing account as the round left it (the
	// ledger updates the totals before projectors run) and adds back what
	// later entries of the same round moved, giving the balance right after
	// this entry. An unknown clearing account yields NULL and fails the
	// insert.
	projectProviderSettlement = `
INSERT INTO provider_settlements (entry_id, market, channel, provider, bank, bank_ref, amount, unmatched, remaining_owed, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
        (SELECT a.debits_posted - a.credits_posted FROM ledger_accounts a WHERE a.code = $9) - $10, $11)`

	// The same for a reclassification, and for the suspense account (a
	// liability, so its balance is credits less debits).
	//
	// provider_remaining is what the provider's own credits left in
	// suspense after this entry: the rows of earlier entries, of this round
	// too, are there (each entry's row is its own statement), this one's
	// is not yet.
	projectReclassification = `
INSERT INTO suspense_reclassifications (entry_id, market, channel, provider, amount, reason, remaining_suspense, remaining_owed,
                                        provider_remaining, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6,
        (SELECT a.credits_posted - a.debits_posted FROM ledger_accounts a WHERE a.code = $7) + $8,
        (SELECT a.debits_posted - a.credits_posted FROM ledger_accounts a WHERE a.code = $9) - $10,
        COALESCE((SELECT sum(unmatched) FROM provider_settlements WHERE market = $2 AND provider = $4 AND unmatched > 0), 0)::bigint
          - COALESCE((SELECT sum(amount) FROM suspense_reclassifications WHERE market = $2 AND provider = $4), 0)::bigint - $5::bigint,
        $11)`
)

// Project implements ledger.Projector.
func (Projector) Project(entries []*ledger.Entry, b *pgx.Batch) {
	projectPayouts(entries, b)
	rows := map[paymentDay]*paymentMoves{}
	for i, e := range entries {
		md := e.Metadata
		switch {
		case e.Kind == KindProviderSettlement && e.Phase == ledger.PhasePosted:
			ch := merchant.Channel(md["channel"])
			clearing := merchant.ClearingAccount(ch, e.Market)
			b.Queue(projectProviderSettlement, e.ID, e.Market, string(ch), ch.Provider(), md["bank"], md["bank_ref"],
				mdInt(md, "amount"), mdInt(md, "unmatched"), clearing, postedAfter(entries[i+1:], clearing), e.RecordedAt)
			continue
		case e.Kind == KindSuspenseReclassification && e.Phase == ledger.PhasePosted:
			ch := merchant.Channel(md["channel"])
			suspense, clearing := merchant.SuspenseAccount(e.Market), merchant.ClearingAccount(ch, e.Market)
			b.Queue(projectReclassification, e.ID, e.Market, string(ch), ch.Provider(), mdInt(md, "amount"), md["reason"],
				suspense, postedAfter(entries[i+1:], suspense), clearing, postedAfter(entries[i+1:], clearing), e.RecordedAt)
			continue
		case md["payment_id"] == "":
			continue // not written by the payment flows
		}
		posted := (e.Kind == payment.KindPayment && e.Phase == ledger.PhasePosted) || e.Kind == payment.KindConfirm
		if !posted && e.Kind != payment.KindRefund {
			continue // pending, rejected or expired: nothing was paid
		}
		k := paymentDay{md["merchant"], e.Market, md["channel"], DayOf(e.RecordedAt)}
		r := rows[k]
		if r == nil {
			r = &paymentMoves{}
			rows[k] = r
		}
		if posted {
			r.payments++
			r.gross += mdInt(md, "amount")
			r.fees += mdInt(md, "fee")
		} else {
			r.refunds++
			r.refunded += mdInt(md, "amount")
			r.feesReturned += mdInt(md, "fee_returned")
		}
	}
	if len(rows) == 0 {
		return
	}
	var merchants, markets, channels []string
	var days []time.Time
	var payments, refunds []int32
	var gross, fees, refunded, feesReturned []int64
	for k, r := range rows {
		merchants, markets, channels, days = append(merchants, k.merchant), append(markets, k.market), append(channels, k.channel), append(days, k.day.date())
		payments, gross, fees = append(payments, r.payments), append(gross, r.gross), append(fees, r.fees)
		refunds, refunded, feesReturned = append(refunds, r.refunds), append(refunded, r.refunded), append(feesReturned, r.feesReturned)
	}
	b.Queue(projectPaymentTotals, merchants, markets, channels, days, payments, gross, fees, refunds, refunded, feesReturned)
}

// postedAfter is the net posted debit that entries made to the account
// code: what to take off the round's final balance to get the balance
// before them.
func postedAfter(entries []*ledger.Entry, code string) int64 {
	var net int64
	for _, e := range entries {
		if e.Phase == ledger.PhasePending {
			continue
		}
		for _, p := range e.Postings {
			if p.AccountCode != code {
				continue
			}
			if p.Direction == ledger.Debit {
				net += p.Amount
			} else {
				net -= p.Amount
			}
		}
	}
	return net
}

func mdInt(md map[string]string, key string) int64 {
	v, _ := strconv.ParseInt(md[key], 10, 64)
	return v
}
