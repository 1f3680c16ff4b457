package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/settlement"
)

// verification is what the checks after the run found. Any failure makes
// ledgerbench exit non-zero.
type verification struct {
	Keys, PaymentIDs, Refs, Confirmed, Refunds int // acknowledged, distinct
	FoundPaymentIDs, FoundRefs, FoundConfirmed int
	FoundRefunds                               int
	MissingKeys                                []string // a sample
	MissingKeyCount                            int
	Violations                                 []ledger.Violation
	InvariantsTime                             time.Duration
	RollupViolations                           []ledger.Violation
	RollupsTime                                time.Duration
	Failures                                   []string
}

func (v *verification) fail(format string, args ...any) {
	v.Failures = append(v.Failures, fmt.Sprintf(format, args...))
}

// verify checks, against the database, that every write a client saw
// acknowledged is in the ledger exactly once (ledger.CheckAcknowledged on
// the keys as stored, and the payments projection by id with the merchant
// and amount acknowledged, provider reference, status, and refund entry
// with the payment and amount acknowledged), then the ledger's invariants
// (ledger.CheckInvariants: balances, totals, limits, pending list, gapless
// sequence, every market's hash chain) and that every payment is what its
// entries say (settlement.CheckRollups, with the daily rollups).
func verify(ctx context.Context, pool *pgxpool.Pool, a *ackSet) (*verification, error) {
	v := &verification{}
	keys := distinct(a.keys)
	v.Keys = len(keys)
	if len(keys) != len(a.keys) {
		v.fail("%d acknowledged ledger keys were acknowledged more than once", len(a.keys)-len(keys))
	}
	const chunk = 20_000
	for lo := 0; lo < len(keys); lo += chunk {
		missing, err := ledger.CheckAcknowledged(ctx, pool, keys[lo:min(lo+chunk, len(keys))])
		if err != nil {
			return nil, fmt.Errorf("check acknowledged keys: %w", err)
		}
		v.MissingKeyCount += len(missing)
		for _, k := range missing {
			if len(v.MissingKeys) < 5 {
				v.MissingKeys = append(v.MissingKeys, k)
			}
		}
	}
	if v.MissingKeyCount > 0 {
		v.fail("%d of %d acknowledged writes are not in the ledger exactly once (e.g. %q)", v.MissingKeyCount, v.Keys, v.MissingKeys)
	}

	count := func(what *int, query string, list []string) error {
		for lo := 0; lo < len(list); lo += chunk {
			var n int
			if err := pool.QueryRow(ctx, query, list[lo:min(lo+chunk, len(list))]).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", query, err)
			}
			*what += n
		}
		return nil
	}
	// A payment is found when its row is for the merchant, amount and fee
	// its answer acknowledged, and its entries moved that money: the
	// stall's payable credited what the row says it is owed, the market's
	// fees the fee, the provider's clearing debited what the provider
	// owes, and nothing else. A row that is there by id but credits
	// another stall, or another amount, is the payment projected wrong;
	// entries that moved other money than their row, metadata and answer
	// say are the payment recorded wrong, which no other check sees, the
	// balances and rollups adding up the postings as they are.
	payments := slices.Clone(a.payments)
	slices.SortFunc(payments, func(x, y ackedPayment) int { return strings.Compare(x.id, y.id) })
	payments = slices.CompactFunc(payments, func(x, y ackedPayment) bool { return x.id == y.id })
	v.PaymentIDs = len(payments)
	if len(payments) != len(a.payments) {
		v.fail("%d payment ids were acknowledged for two different writes", len(a.payments)-len(payments))
	}
	for lo := 0; lo < len(payments); lo += chunk {
		var ids, merchants []string
		var amounts, fees []int64
		for _, p := range payments[lo:min(lo+chunk, len(payments))] {
			ids, merchants, amounts, fees = append(ids, p.id), append(merchants, p.merchant), append(amounts, p.amount), append(fees, p.fee)
		}
		var n int
		err := pool.QueryRow(ctx, `
SELECT count(*)
  FROM payments p
  JOIN unnest($1::text[]::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS a(id, merchant, amount, fee)
    ON p.id = a.id AND p.merchant = a.merchant AND p.amount = a.amount AND p.fee = a.fee
 CROSS JOIN LATERAL (
       SELECT COALESCE(sum(CASE po.direction WHEN 'C' THEN po.amount ELSE -po.amount END) FILTER (WHERE ac.code = 'merchant:' || p.merchant || ':payable'), 0) AS payable,
              COALESCE(sum(CASE po.direction WHEN 'C' THEN po.amount ELSE -po.amount END) FILTER (WHERE ac.code = 'market:' || p.market || ':fees'), 0) AS fees,
              COALESCE(sum(CASE po.direction WHEN 'D' THEN po.amount ELSE -po.amount END) FILTER (WHERE ac.code = 'provider:' || $5 || ':market:' || p.market || ':clearing'), 0) AS clearing,
              count(*) FILTER (WHERE ac.code NOT IN ('merchant:' || p.merchant || ':payable', 'market:' || p.market || ':fees', 'provider:' || $5 || ':market:' || p.market || ':clearing')) AS elsewhere
         FROM ledger_entries e
         JOIN ledger_postings po ON po.entry_seq = e.seq AND NOT po.pending
         JOIN ledger_accounts ac ON ac.id = po.account_id
        WHERE e.id = ANY(p.entry_ids)) m
 CROSS JOIN LATERAL (SELECT p.status IN ('confirmed', 'partially_refunded', 'refunded') AS settled) s
 WHERE m.payable = CASE WHEN s.settled THEN p.confirmed_amount - p.fee - p.refunded_amount + p.fee_refunded ELSE 0 END
   AND m.fees = CASE WHEN s.settled THEN p.fee - p.fee_refunded ELSE 0 END
   AND m.clearing = CASE WHEN s.settled THEN p.confirmed_amount - p.refunded_amount ELSE 0 END
   AND m.elsewhere = 0`, ids, merchants, amounts, fees, benchProvider).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("count acknowledged payments: %w", err)
		}
		v.FoundPaymentIDs += n
	}
	if v.FoundPaymentIDs != v.PaymentIDs {
		v.fail("payments: %d acknowledged, %d found by id for the merchant, amount and fee acknowledged, their entries moving that money", v.PaymentIDs, v.FoundPaymentIDs)
	}
	refs := distinct(a.refs)
	v.Refs = len(refs)
	if err := count(&v.FoundRefs, `SELECT count(*) FROM payments WHERE channel = 'VIETQR' AND provider_ref = ANY($1)`, refs); err != nil {
		return nil, err
	}
	if v.FoundRefs != v.Refs || len(refs) != len(a.refs) {
		v.fail("bank-direct payments: %d references acknowledged (%d distinct), %d payments found by reference", len(a.refs), v.Refs, v.FoundRefs)
	}
	confirmed := distinct(a.confirmedIDs)
	v.Confirmed = len(confirmed)
	// The bench confirms in full.
	if err := count(&v.FoundConfirmed, `SELECT count(*) FROM payments WHERE id = ANY($1::text[]::uuid[]) AND status IN ('confirmed', 'partially_refunded', 'refunded')
		AND confirmed_amount = amount`, confirmed); err != nil {
		return nil, err
	}
	if v.FoundConfirmed != v.Confirmed || len(confirmed) != len(a.confirmedIDs) {
		v.fail("confirmations: %d acknowledged, %d payments found confirmed in full", len(a.confirmedIDs), v.FoundConfirmed)
	}
	// A refund is found when its row is of the payment and amount its
	// answer acknowledged.
	refunds := slices.Clone(a.refunds)
	slices.SortFunc(refunds, func(x, y ackedRefund) int { return strings.Compare(x.entryID, y.entryID) })
	refunds = slices.CompactFunc(refunds, func(x, y ackedRefund) bool { return x.entryID == y.entryID })
	v.Refunds = len(refunds)
	for lo := 0; lo < len(refunds); lo += chunk {
		var entries, ids []string
		var amounts []int64
		for _, f := range refunds[lo:min(lo+chunk, len(refunds))] {
			entries, ids, amounts = append(entries, f.entryID), append(ids, f.paymentID), append(amounts, f.amount)
		}
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM payment_refunds f JOIN unnest($1::text[]::uuid[], $2::text[]::uuid[], $3::bigint[]) AS a(entry_id, payment_id, amount)
			ON f.entry_id = a.entry_id AND f.payment_id = a.payment_id AND f.amount = a.amount`, entries, ids, amounts).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("count acknowledged refunds: %w", err)
		}
		v.FoundRefunds += n
	}
	if v.FoundRefunds != v.Refunds || len(refunds) != len(a.refunds) {
		v.fail("refunds: %d acknowledged, %d found by entry for the payment and amount acknowledged", len(a.refunds), v.FoundRefunds)
	}

	start := time.Now()
	violations, err := ledger.CheckInvariants(ctx, pool)
	v.InvariantsTime = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("check invariants: %w", err)
	}
	v.Violations = violations
	if len(violations) > 0 {
		v.fail("%d ledger invariant violations, first: %s", len(violations), violations[0])
	}

	// The payments projection as a whole against the journal: a refund the
	// ledger posted but its payment's row never counted, or a payment row
	// no entry made, is found only there.
	start = time.Now()
	violations, err = settlement.CheckRollups(ctx, pool)
	v.RollupsTime = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("check rollups: %w", err)
	}
	v.RollupViolations = violations
	if len(violations) > 0 {
		v.fail("%d settlement rollup and projection violations, first: %s", len(violations), violations[0])
	}
	return v, nil
}

// benchProvider is the provider of every payment the bench makes: it pays
// by VietQR only, and an answer of another channel is an anomaly.
var benchProvider = merchant.ChannelVietQR.Provider()

func distinct(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// dbState is the database's size and payment count at a point of the run.
type dbState struct {
	Size     int64
	Payments int64
}

// snapshot vacuums and analyzes the ledger's database (so that dead rows
// left by updates are reusable space, not growth) and reads its size and
// payment count.
func snapshot(ctx context.Context, pool *pgxpool.Pool) (dbState, error) {
	var s dbState
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return s, fmt.Errorf("vacuum: %w", err)
	}
	err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database()), (SELECT count(*) FROM payments)`).Scan(&s.Size, &s.Payments)
	return s, err
}

// rounds are the committer's transactions that wrote entries in a window.
// A round stamps all its entries with one recorded_at, the database clock
// when it took the ledger head, and rounds take the head one after another,
// so distinct timestamps count rounds.
type rounds struct {
	Count, Entries int64
	Window         time.Duration
}

func readRounds(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) (rounds, error) {
	r := rounds{Window: to.Sub(from)}
	err := pool.QueryRow(ctx, `SELECT count(DISTINCT recorded_at), count(*) FROM ledger_entries WHERE recorded_at >= $1 AND recorded_at < $2`, from, to).
		Scan(&r.Count, &r.Entries)
	return r, err
}

func (r rounds) perRound() float64 { return float64(r.Entries) / float64(max(r.Count, 1)) }

// interval is the mean time from one round's taking the ledger head to the
// next one's, in milliseconds.
func (r rounds) interval() float64 {
	return float64(r.Window.Microseconds()) / 1000 / float64(max(r.Count, 1))
}

// serverInfo is the database server's version and durability settings.
type serverInfo struct {
	Version, Database                        string
	Fsync, SynchronousCommit, FullPageWrites string
	WalSyncMethod, SharedBuffers             string
}

func readServerInfo(ctx context.Context, pool *pgxpool.Pool) (serverInfo, error) {
	var s serverInfo
	err := pool.QueryRow(ctx, `SELECT version(), current_database(), current_setting('fsync'), current_setting('synchronous_commit'),
       current_setting('full_page_writes'), current_setting('wal_sync_method'), current_setting('shared_buffers')`).
		Scan(&s.Version, &s.Database, &s.Fsync, &s.SynchronousCommit, &s.FullPageWrites, &s.WalSyncMethod, &s.SharedBuffers)
	return s, err
}

func connectDB(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return pg.Connect(ctx, url, 4)
}
