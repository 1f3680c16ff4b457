package settlement

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Arguments of the checks: the head alone, or the journal queries'
// (after, through, market, filter) over the whole journal.
func headOnly(head int64) []any     { return []any{head} }
func allAccounts(head int64) []any  { return []any{int64(0), head, "", nil} }
func allMerchants(head int64) []any { return []any{int64(0), head, "", ""} }

// rollupChecks return one row per violation, as (detail text).
var rollupChecks = []struct {
	name  string
	query string
	args  func(head int64) []any
}{
	{"rollups: an account's daily rows sum to its totals", `
WITH s AS (SELECT account_id, sum(debits_pending) AS dp, sum(credits_pending) AS cp,
                  sum(debits_posted) AS dpo, sum(credits_posted) AS cpo
             FROM ledger_daily_totals GROUP BY account_id)
SELECT format('account %s: totals %s/%s/%s/%s, daily rows %s/%s/%s/%s (debits pending/credits pending/debits posted/credits posted)',
              a.code, a.debits_pending, a.credits_pending, a.debits_posted, a.credits_posted,
              COALESCE(s.dp, 0), COALESCE(s.cp, 0), COALESCE(s.dpo, 0), COALESCE(s.cpo, 0))
  FROM ledger_accounts a LEFT JOIN s ON s.account_id = a.id
 WHERE $1::bigint >= 0
   AND (a.debits_pending, a.credits_pending, a.debits_posted, a.credits_posted)
       <> (COALESCE(s.dp, 0), COALESCE(s.cp, 0), COALESCE(s.dpo, 0), COALESCE(s.cpo, 0))`, headOnly},
	{"rollups: an account's daily rows match the journal day by day", `
SELECT format('account %s, %s: rows %s/%s/%s/%s/%s, journal %s/%s/%s/%s/%s (debits pending/credits pending/debits posted/credits posted/entries)',
              a.code, COALESCE(d.day, j.day), d.debits_pending, d.credits_pending, d.debits_posted, d.credits_posted, d.entries,
              j.dp, j.cp, j.dpo, j.cpo, j.n)
  FROM ledger_daily_totals d
  FULL JOIN (` + journalDailyTotals + `) AS j (account_id, day, dp, cp, dpo, cpo, n) ON j.account_id = d.account_id AND j.day = d.day
  JOIN ledger_accounts a ON a.id = COALESCE(d.account_id, j.account_id)
 WHERE (COALESCE(d.debits_pending, 0), COALESCE(d.credits_pending, 0), COALESCE(d.debits_posted, 0), COALESCE(d.credits_posted, 0), COALESCE(d.entries, 0))
       <> (COALESCE(j.dp, 0), COALESCE(j.cp, 0), COALESCE(j.dpo, 0), COALESCE(j.cpo, 0), COALESCE(j.n, 0))`, allAccounts},
	{"rollups: settlement kinds match the journal day by day", `
SELECT format('account %s, %s, %s: rows %s/%s/%s, journal %s/%s/%s (entries/debits posted/credits posted)',
              a.code, COALESCE(d.kind, j.kind), COALESCE(d.day, j.day), d.entries, d.debits_posted, d.credits_posted, j.n, j.dpo, j.cpo)
  FROM settlement_daily_totals d
  FULL JOIN (` + journalKindTotals + `) AS j (account_id, kind, day, n, dpo, cpo)
       ON j.account_id = d.account_id AND j.kind = d.kind AND j.day = d.day
  JOIN ledger_accounts a ON a.id = COALESCE(d.account_id, j.account_id)
 WHERE (COALESCE(d.entries, 0), COALESCE(d.debits_posted, 0), COALESCE(d.credits_posted, 0))
       <> (COALESCE(j.n, 0), COALESCE(j.dpo, 0), COALESCE(j.cpo, 0))`, allAccounts},
	{"rollups: payment totals match the journal day by day", `
SELECT format('merchant %s, %s, %s: rows %s/%s/%s/%s/%s/%s, journal %s/%s/%s/%s/%s/%s (payments/gross/fees/refunds/refunded/fees returned)',
              COALESCE(d.merchant, j.merchant), COALESCE(d.channel, j.channel), COALESCE(d.day, j.day),
              d.payments, d.gross, d.fees, d.refunds, d.refunded, d.fees_returned, j.n, j.gross, j.fees, j.rn, j.refunded, j.fr)
  FROM payment_daily_totals d
  FULL JOIN (` + journalPaymentTotals + `) AS j (merchant, channel, day, n, gross, fees, rn, refunded, fr)
       ON j.merchant = d.merchant AND j.channel = d.channel AND j.day = d.day
 WHERE (COALESCE(d.payments, 0), COALESCE(d.gross, 0), COALESCE(d.fees, 0), COALESCE(d.refunds, 0), COALESCE(d.refunded, 0), COALESCE(d.fees_returned, 0))
       <> (COALESCE(j.n, 0), COALESCE(j.gross, 0), COALESCE(j.fees, 0), COALESCE(j.rn, 0), COALESCE(j.refunded, 0), COALESCE(j.fr, 0))`, allMerchants},
	// The journal's totals above are keyed by merchant, channel and day;
	// a market report reads a merchant's rows by the market they name.
	{"rollups: payment totals are in their entries' market", `
WITH j AS (SELECT DISTINCT metadata->>'merchant' AS merchant, market
             FROM ledger_entries
            WHERE kind IN ('payment', 'payment_confirm', 'refund') AND phase <> 'pending' AND metadata ? 'payment_id' AND seq <= $1)
SELECT format('merchant %s, %s, %s: in market %s, its entries in %s', d.merchant, d.channel, d.day, d.market, j.market)
  FROM payment_daily_totals d JOIN j ON j.merchant = d.merchant
 WHERE j.market <> d.market`, headOnly},
	{"rollups: payment totals match the payments table", `
WITH r AS (SELECT merchant, channel, sum(payments) AS n, sum(gross) AS gross, sum(fees) AS fees,
                  sum(refunds) AS rn, sum(refunded) AS refunded, sum(fees_returned) AS fr
             FROM payment_daily_totals GROUP BY 1, 2),
     p AS (SELECT merchant, channel,
                  count(*) FILTER (WHERE status IN ('confirmed', 'partially_refunded', 'refunded')) AS n,
                  sum(confirmed_amount) AS gross,
                  COALESCE(sum(fee) FILTER (WHERE status IN ('confirmed', 'partially_refunded', 'refunded')), 0) AS fees,
                  sum(refunded_amount) AS refunded, sum(fee_refunded) AS fr
             FROM payments GROUP BY 1, 2),
     x AS (SELECT p.merchant, p.channel, count(*) AS rn
             FROM payment_refunds f JOIN payments p ON p.id = f.payment_id GROUP BY 1, 2)
SELECT format('merchant %s, %s: rollups %s/%s/%s/%s/%s/%s, payments %s/%s/%s/%s/%s/%s (payments/gross/fees/refunds/refunded/fees returned)',
              merchant, channel, r.n, r.gross, r.fees, r.rn, r.refunded, r.fr, p.n, p.gross, p.fees, x.rn, p.refunded, p.fr)
  FROM r FULL JOIN p USING (merchant, channel) LEFT JOIN x USING (merchant, channel)
 WHERE $1::bigint >= 0
   AND (COALESCE(r.n, 0), COALESCE(r.gross, 0), COALESCE(r.fees, 0), COALESCE(r.rn, 0), COALESCE(r.refunded, 0), COALESCE(r.fr, 0))
       <> (COALESCE(p.n, 0), COALESCE(p.gross, 0), COALESCE(p.fees, 0), COALESCE(x.rn, 0), COALESCE(p.refunded, 0), COALESCE(p.fr, 0))`, headOnly},
	{"payments are their entries", `
WITH recorded AS (
    SELECT (e.metadata->>'payment_id')::uuid AS id, e.seq, e.id AS entry_id, e.phase, e.market, e.currency, e.occurred_at, e.expires_at,
           e.metadata->>'merchant' AS merchant, e.metadata->>'channel' AS channel, e.metadata->>'source' AS source,
           (e.metadata->>'amount')::bigint AS amount, (e.metadata->>'fee')::bigint AS fee,
           NULLIF(e.metadata->>'provider_ref', '') AS provider_ref, NULLIF(e.metadata->>'request_id', '')::uuid AS request_id
      FROM ledger_entries e
     WHERE e.kind = 'payment' AND e.metadata ? 'payment_id' AND e.seq <= $1),
     refunds AS (
    SELECT (metadata->>'payment_id')::uuid AS id, sum((metadata->>'amount')::bigint) AS refunded,
           sum((metadata->>'fee_returned')::bigint) AS fee_returned, array_agg(id ORDER BY seq) AS entry_ids
      FROM ledger_entries WHERE kind = 'refund' AND metadata ? 'payment_id' AND seq <= $1 GROUP BY 1),
     figures AS (
    SELECT r.*, c.kind AS closed_by, COALESCE(f.refunded, 0) AS refunded, COALESCE(f.fee_returned, 0) AS fee_returned,
           ARRAY[r.entry_id] || CASE WHEN c.id IS NULL THEN '{}' ELSE ARRAY[c.id] END || COALESCE(f.entry_ids, '{}') AS entry_ids,
           CASE WHEN r.phase = 'posted' THEN r.amount WHEN c.kind = 'payment_confirm' THEN (c.metadata->>'amount')::bigint ELSE 0 END AS confirmed,
           CASE WHEN c.kind = 'payment_confirm' THEN (c.metadata->>'fee')::bigint ELSE r.fee END AS charged,
           COALESCE(r.provider_ref, NULLIF(c.metadata->>'provider_ref', '')) AS ref
      FROM recorded r
      LEFT JOIN ledger_entries c ON c.pending_seq = r.seq AND c.seq <= $1
      LEFT JOIN refunds f ON f.id = r.id),
     j AS (
    SELECT id, merchant, market, channel, source, currency, amount, confirmed, charged AS fee, refunded, fee_returned, ref, request_id,
           CASE WHEN phase = 'pending' THEN entry_id END AS pending_entry_id, occurred_at,
           CASE WHEN phase = 'pending' AND closed_by IS NULL THEN expires_at END AS expires_at, entry_ids,
           CASE WHEN phase = 'posted' OR closed_by = 'payment_confirm' THEN
                     CASE WHEN refunded = 0 THEN 'confirmed' WHEN refunded = confirmed THEN 'refunded' ELSE 'partially_refunded' END
                WHEN closed_by IS NULL THEN 'pending'
                WHEN closed_by = 'payment_reject' THEN 'rejected'
                WHEN closed_by = 'expire' THEN 'expired' END AS status
      FROM figures),
     p AS (
    SELECT id, merchant, market, channel, source, currency, amount, confirmed_amount, fee, refunded_amount, fee_refunded, provider_ref,
           request_id, pending_entry_id, occurred_at, expires_at, entry_ids, status
      FROM payments)
SELECT format('payment %s: in the journal %s, in payments %s (status/merchant/market/channel/source/currency/amount/confirmed/fee/refunded/fee returned/provider reference/request/pending entry/occurred/expires/entries)',
              COALESCE(j.id, p.id), CASE WHEN j.id IS NULL THEN 'none' ELSE
              ROW(j.status, j.merchant, j.market, j.channel, j.source, j.currency, j.amount, j.confirmed, j.fee, j.refunded, j.fee_returned,
                  j.ref, j.request_id, j.pending_entry_id, j.occurred_at, j.expires_at, j.entry_ids)::text END,
              CASE WHEN p.id IS NULL THEN 'none' ELSE
              ROW(p.status, p.merchant, p.market, p.channel, p.source, p.currency, p.amount, p.confirmed_amount, p.fee, p.refunded_amount,
                  p.fee_refunded, p.provider_ref, p.request_id, p.pending_entry_id, p.occurred_at, p.expires_at, p.entry_ids)::text END)
  FROM j FULL JOIN p ON p.id = j.id
 WHERE ROW(j.id, j.status, j.merchant, j.market, j.channel, j.source, j.currency, j.amount, j.confirmed, j.fee, j.refunded, j.fee_returned,
           j.ref, j.request_id, j.pending_entry_id, j.occurred_at, j.expires_at, j.entry_ids)
       IS DISTINCT FROM
       ROW(p.id, p.status, p.merchant, p.market, p.channel, p.source, p.currency, p.amount, p.confirmed_amount, p.fee, p.refunded_amount,
           p.fee_refunded, p.provider_ref, p.request_id, p.pending_entry_id, p.occurred_at, p.expires_at, p.entry_ids)`, headOnly},
	{"payout lines are their entries", `
WITH reserved AS (
    SELECT e.id, e.market, (e.metadata->>'payout_batch')::uuid AS batch_id, e.metadata->>'merchant' AS merchant,
           (SELECT sum(p.amount) FROM ledger_postings p WHERE p.entry_seq = e.seq AND p.direction = 'D')::bigint AS amount,
           CASE c.kind WHEN '` + KindPayout + `' THEN 'paid' WHEN '` + KindPayoutFailed + `' THEN 'failed' WHEN '` + ledger.KindExpire + `' THEN 'expired'
                       ELSE CASE WHEN c.seq IS NULL THEN 'open' ELSE 'closed by ' || c.kind END END AS status,
           c.id AS close_id, c.metadata->>'bank_ref' AS bank_ref
      FROM ledger_entries e
      LEFT JOIN ledger_entries c ON c.pending_seq = e.seq AND c.seq <= $1
     WHERE e.kind = '` + KindPayout + `' AND e.phase = 'pending' AND e.seq <= $1),
     lines AS (SELECT * FROM payout_lines WHERE entry_id IS NOT NULL)
SELECT format('payout entry %s: in the journal %s, in payout_lines %s (batch/market/merchant/amount/status/closing entry/bank reference)',
              COALESCE(r.id, l.entry_id),
              CASE WHEN r.id IS NULL THEN 'none' ELSE ROW(r.batch_id, r.market, r.merchant, r.amount, r.status, r.close_id, r.bank_ref)::text END,
              CASE WHEN l.entry_id IS NULL THEN 'none' ELSE ROW(l.batch_id, l.market, l.merchant, l.amount, l.status, l.close_entry_id, l.bank_ref)::text END)
  FROM reserved r FULL JOIN lines l ON l.entry_id = r.id
 WHERE ROW(r.id, r.batch_id, r.market, r.merchant, r.amount, r.status, r.close_id, r.bank_ref)
       IS DISTINCT FROM ROW(l.entry_id, l.batch_id, l.market, l.merchant, l.amount, l.status, l.close_entry_id, l.bank_ref)`, headOnly},
	{"provider settlements are exactly the provider_settlement entries", `
WITH e AS (SELECT id, market, metadata->>'channel' AS channel, metadata->>'provider' AS provider, metadata->>'bank' AS bank,
                  metadata->>'bank_ref' AS bank_ref, (metadata->>'amount')::bigint AS amount, COALESCE((metadata->>'unmatched')::bigint, 0) AS unmatched
             FROM ledger_entries WHERE kind = 'provider_settlement' AND seq <= $1)
SELECT format('entry %s: in the journal %s, in provider_settlements %s (market/channel/provider/bank/bank reference/amount/unmatched)',
              COALESCE(e.id, s.entry_id),
              CASE WHEN e.id IS NULL THEN 'none' ELSE ROW(e.market, e.channel, e.provider, e.bank, e.bank_ref, e.amount, e.unmatched)::text END,
              CASE WHEN s.entry_id IS NULL THEN 'none' ELSE ROW(s.market, s.channel, s.provider, s.bank, s.bank_ref, s.amount, s.unmatched)::text END)
  FROM e FULL JOIN provider_settlements s ON s.entry_id = e.id
 WHERE ROW(e.id, e.market, e.channel, e.provider, e.bank, e.bank_ref, e.amount, e.unmatched)
       IS DISTINCT FROM ROW(s.entry_id, s.market, s.channel, s.provider, s.bank, s.bank_ref, s.amount, s.unmatched)`, headOnly},
	{"reclassifications are exactly the suspense_reclassification entries", `
WITH e AS (SELECT id, market, metadata->>'channel' AS channel, metadata->>'provider' AS provider, (metadata->>'amount')::bigint AS amount
             FROM ledger_entries WHERE kind = 'suspense_reclassification' AND seq <= $1)
SELECT format('entry %s: in the journal %s, in suspense_reclassifications %s (market/channel/provider/amount)',
              COALESCE(e.id, s.entry_id),
              CASE WHEN e.id IS NULL THEN 'none' ELSE ROW(e.market, e.channel, e.provider, e.amount)::text END,
              CASE WHEN s.entry_id IS NULL THEN 'none' ELSE ROW(s.market, s.channel, s.provider, s.amount)::text END)
  FROM e FULL JOIN suspense_reclassifications s ON s.entry_id = e.id
 WHERE ROW(e.id, e.market, e.channel, e.provider, e.amount) IS DISTINCT FROM ROW(s.entry_id, s.market, s.channel, s.provider, s.amount)`, headOnly},
}

// CheckRollups checks, in one snapshot, that the settlement rollups agree
// with the ledger: every account's daily rows sum to its four totals and
// match, day by day, what the journal says they should be; the payment
// totals match the journal and the payments table; every payment is, field
// by field, what its entries say (a sum kept whole can hide a row changed
// against another); every payout line is what the entry that reserved it,
// and the one that closed it, say, as the bank pays what the line says;
// every merchant's payment totals name the market of its entries, which
// market reports read them by; and every provider settlement and
// reclassification entry has its row, naming the provider and channel
// (and bank) the entry does, by which suspense money is told apart. None
// means the reports can be trusted. It reads the whole journal: it is
// meant for tests, benchmarks and audits.
func CheckRollups(ctx context.Context, pool *pgxpool.Pool) ([]ledger.Violation, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var head int64
	if err := tx.QueryRow(ctx, `SELECT last_seq FROM ledger_head`).Scan(&head); err != nil {
		return nil, fmt.Errorf("read ledger head: %w", err)
	}
	var out []ledger.Violation
	for _, c := range rollupChecks {
		rows, err := tx.Query(ctx, c.query, c.args(head)...)
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", c.name, err)
		}
		details, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", c.name, err)
		}
		for _, d := range details {
			out = append(out, ledger.Violation{Invariant: c.name, Detail: d})
		}
	}
	accounts, err := checkAccounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("check accounts: %w", err)
	}
	return append(out, accounts...), nil
}

// checkAccounts compares the accounts of every market, merchant and
// settlement bank with what they were opened as. Nothing in the journal
// records an account's type, market or flags, yet its type decides the
// sign of the balance it shows, its market the report that lists it, and
// its flags what it may be overdrawn by: a payable made an asset showed
// what its merchant is owed as owed by it, and a merchant moved to
// another market left its market's report, and no hash or sum changed.
func checkAccounts(ctx context.Context, tx pgx.Tx) ([]ledger.Violation, error) {
	rows, err := tx.Query(ctx, `
SELECT 'market', code, '' FROM markets
 UNION ALL SELECT 'merchant', code, market FROM merchants
 UNION ALL SELECT DISTINCT 'bank', bank, market FROM provider_settlements`)
	if err != nil {
		return nil, err
	}
	var specs []ledger.AccountSpec
	var of []string // what each spec was opened for
	for rows.Next() {
		var what, code, market string
		if err := rows.Scan(&what, &code, &market); err != nil {
			rows.Close()
			return nil, err
		}
		switch what {
		case "market":
			for _, s := range merchant.MarketAccounts(code) {
				specs, of = append(specs, s), append(of, "market "+code)
			}
		case "merchant":
			specs, of = append(specs, merchant.PayableSpec(merchant.Merchant{Code: code, Market: market})), append(of, "merchant "+code)
		default:
			specs, of = append(specs, settlementAccountSpec(code, market)), append(of, "bank "+code+" in market "+market)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	codes := make([]string, len(specs))
	for i, s := range specs {
		codes[i] = s.Code
	}
	rows, err = tx.Query(ctx, `SELECT code, type, currency, market, flags FROM ledger_accounts WHERE code = ANY($1)`, codes)
	if err != nil {
		return nil, err
	}
	held := map[string]ledger.AccountSpec{}
	for rows.Next() {
		var a ledger.AccountSpec
		if err := rows.Scan(&a.Code, &a.Type, &a.Currency, &a.Market, &a.Flags); err != nil {
			rows.Close()
			return nil, err
		}
		held[a.Code] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []ledger.Violation
	for i, want := range specs {
		// A market opened before a channel, or suspense, existed has no
		// account of it; a merchant always has its payable, opened with it.
		got, ok := held[want.Code]
		if ok && got == want {
			continue
		}
		detail := fmt.Sprintf("account %s of %s: ", want.Code, of[i])
		if ok {
			detail += fmt.Sprintf("%s %s in market %s with flags %d", got.Type, got.Currency, got.Market, got.Flags)
		} else if strings.HasSuffix(want.Code, ":payable") {
			detail += "none"
		} else {
			continue
		}
		out = append(out, ledger.Violation{
			Invariant: "accounts are as their markets, merchants and banks opened them",
			Detail:    detail + fmt.Sprintf(", opened as %s %s in market %s with flags %d", want.Type, want.Currency, want.Market, want.Flags),
		})
	}
	return out, nil
}
