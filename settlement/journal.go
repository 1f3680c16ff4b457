package settlement

// What the projectors write, recomputed from the journal by the same rules.
// CheckRollups compares these with the stored rollups over the whole
// journal; reports use them for the one day an as-of point cuts in two,
// where the rollups (which hold whole days) cannot answer. The migration
// that created the rollups filled them with the same queries.
//
// Every query takes the sequence range ($1, $2], a market ($3, ” for all)
// and, for the account queries, the account ids ($4, NULL for all). Days are
// computed by PostgreSQL in Asia/Ho_Chi_Minh, independently of the Go code's
// fixed zone.
const (
	journalDailyTotals = `
SELECT account_id, (recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
       sum(dp)::bigint, sum(cp)::bigint, sum(dpo)::bigint, sum(cpo)::bigint, count(DISTINCT own)::int
  FROM (SELECT p.account_id, e.recorded_at,
               CASE WHEN p.pending AND p.direction = 'D' THEN p.amount ELSE 0 END AS dp,
               CASE WHEN p.pending AND p.direction = 'C' THEN p.amount ELSE 0 END AS cp,
               CASE WHEN NOT p.pending AND p.direction = 'D' THEN p.amount ELSE 0 END AS dpo,
               CASE WHEN NOT p.pending AND p.direction = 'C' THEN p.amount ELSE 0 END AS cpo,
               e.seq AS own
          FROM ledger_entries e JOIN ledger_postings p ON p.entry_seq = e.seq
         WHERE e.seq > $1 AND e.seq <= $2 AND p.entry_seq > $1 AND p.entry_seq <= $2
           AND ($3 = '' OR e.market = $3) AND ($4::bigint[] IS NULL OR p.account_id = ANY($4))
        UNION ALL
        SELECT p.account_id, c.recorded_at,
               CASE WHEN p.direction = 'D' THEN -p.amount ELSE 0 END,
               CASE WHEN p.direction = 'C' THEN -p.amount ELSE 0 END,
               0, 0, NULL
          FROM ledger_entries c JOIN ledger_postings p ON p.entry_seq = c.pending_seq
         WHERE c.pending_seq IS NOT NULL AND c.seq > $1 AND c.seq <= $2
           AND ($3 = '' OR c.market = $3) AND ($4::bigint[] IS NULL OR p.account_id = ANY($4))) m
 GROUP BY 1, 2`

	journalKindTotals = `
SELECT p.account_id, e.kind, (e.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day, count(DISTINCT e.seq)::int,
       COALESCE(sum(p.amount) FILTER (WHERE p.direction = 'D'), 0)::bigint,
       COALESCE(sum(p.amount) FILTER (WHERE p.direction = 'C'), 0)::bigint
  FROM ledger_entries e JOIN ledger_postings p ON p.entry_seq = e.seq
 WHERE e.kind IN ('payout', 'provider_settlement', 'suspense_reclassification') AND NOT p.pending
   AND e.seq > $1 AND e.seq <= $2 AND ($3 = '' OR e.market = $3) AND ($4::bigint[] IS NULL OR p.account_id = ANY($4))
 GROUP BY 1, 2, 3`

	// $4 here is a merchant code ('' for all).
	journalPaymentTotals = `
SELECT e.metadata->>'merchant', e.metadata->>'channel', (e.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
       count(*) FILTER (WHERE e.kind <> 'refund')::int,
       COALESCE(sum((e.metadata->>'amount')::bigint) FILTER (WHERE e.kind <> 'refund'), 0)::bigint,
       COALESCE(sum((e.metadata->>'fee')::bigint) FILTER (WHERE e.kind <> 'refund'), 0)::bigint,
       count(*) FILTER (WHERE e.kind = 'refund')::int,
       COALESCE(sum((e.metadata->>'amount')::bigint) FILTER (WHERE e.kind = 'refund'), 0)::bigint,
       COALESCE(sum((e.metadata->>'fee_returned')::bigint) FILTER (WHERE e.kind = 'refund'), 0)::bigint
  FROM ledger_entries e
 WHERE e.kind IN ('payment', 'payment_confirm', 'refund') AND e.phase <> 'pending' AND e.metadata ? 'payment_id'
   AND e.seq > $1 AND e.seq <= $2 AND ($3 = '' OR e.market = $3) AND ($4 = '' OR e.metadata->>'merchant' = $4)
 GROUP BY 1, 2, 3`
)
