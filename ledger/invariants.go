package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Violation is one broken invariant.
type Violation struct {
	Invariant string
	Detail    string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// invariantChecks are SQL queries that return one row per violation, as
// (detail text). Each names the invariant of DESIGN.md it checks.
var invariantChecks = []struct {
	name  string
	query string
}{
	{"1 debits equal credits per currency (accounts)", `
SELECT format('%s: debits pending %s, credits pending %s, debits posted %s, credits posted %s',
              currency, SUM(debits_pending), SUM(credits_pending), SUM(debits_posted), SUM(credits_posted))
  FROM ledger_accounts GROUP BY currency
HAVING SUM(debits_pending) <> SUM(credits_pending) OR SUM(debits_posted) <> SUM(credits_posted)`},
	{"1 every entry balances", `
SELECT format('entry %s (seq %s): debits %s, credits %s', e.id, e.seq,
              SUM(p.amount) FILTER (WHERE p.direction = 'D'), SUM(p.amount) FILTER (WHERE p.direction = 'C'))
  FROM ledger_entries e JOIN ledger_postings p ON p.entry_seq = e.seq
 GROUP BY e.seq, e.id
HAVING COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'D'), 0) <> COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'C'), 0)
    OR count(*) < 2`},
	{"1 entries of a posting phase have postings", `
SELECT format('entry %s (seq %s, %s) has no postings', e.id, e.seq, e.phase)
  FROM ledger_entries e
 WHERE e.phase <> 'void_pending' AND NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.entry_seq = e.seq)`},
	{"2 account totals equal the sum of their postings", `
WITH sums AS (
    SELECT p.account_id,
           COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'D' AND p.pending AND o.entry_seq IS NOT NULL), 0) AS dp,
           COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'C' AND p.pending AND o.entry_seq IS NOT NULL), 0) AS cp,
           COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'D' AND NOT p.pending), 0) AS dpo,
           COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'C' AND NOT p.pending), 0) AS cpo
      FROM ledger_postings p LEFT JOIN ledger_open_pending o ON o.entry_seq = p.entry_seq
     GROUP BY p.account_id)
SELECT format('account %s: totals %s/%s/%s/%s, postings %s/%s/%s/%s (debits pending/credits pending/debits posted/credits posted)',
              a.code, a.debits_pending, a.credits_pending, a.debits_posted, a.credits_posted,
              COALESCE(s.dp, 0), COALESCE(s.cp, 0), COALESCE(s.dpo, 0), COALESCE(s.cpo, 0))
  FROM ledger_accounts a LEFT JOIN sums s ON s.account_id = a.id
 WHERE (a.debits_pending, a.credits_pending, a.debits_posted, a.credits_posted)
       <> (COALESCE(s.dp, 0), COALESCE(s.cp, 0), COALESCE(s.dpo, 0), COALESCE(s.cpo, 0))`},
	{"3 limited accounts within their limits", `
SELECT format('account %s (flags %s): debits pending %s, credits pending %s, debits posted %s, credits posted %s',
              code, flags, debits_pending, credits_pending, debits_posted, credits_posted)
  FROM ledger_accounts
 WHERE (flags & 1 <> 0 AND debits_pending + debits_posted > credits_posted)
    OR (flags & 2 <> 0 AND credits_pending + credits_posted > debits_posted)`},
	// The sweeper expires what the open list says is due: its time must be
	// the entry's own, or an entry is voided before its timeout, or never.
	{"open pending entries are exactly the unclosed pending entries", `
SELECT format('entry %s (seq %s): phase %s, in open list %s, closed by %s, expires at %s, in open list at %s',
              e.id, e.seq, e.phase, o.entry_seq IS NOT NULL, c.id, e.expires_at, o.expires_at)
  FROM ledger_entries e
  LEFT JOIN ledger_open_pending o ON o.entry_seq = e.seq
  LEFT JOIN ledger_entries c ON c.pending_seq = e.seq
 WHERE (e.phase = 'pending' AND (o.entry_seq IS NULL) = (c.seq IS NULL))
    OR (e.phase <> 'pending' AND o.entry_seq IS NOT NULL)
    OR o.expires_at <> e.expires_at`},
	{"closing entries close pending entries of their market", `
SELECT format('entry %s (seq %s) closes entry %s of phase %s, market %s', e.id, e.seq, p.id, p.phase, p.market)
  FROM ledger_entries e JOIN ledger_entries p ON p.seq = e.pending_seq
 WHERE p.phase <> 'pending' OR p.market <> e.market OR p.seq >= e.seq`},
	{"5 sequences are gapless and end at the head", `
SELECT format('head %s, entries %s, highest sequence %s', h.last_seq, count(e.seq), COALESCE(max(e.seq), 0))
  FROM ledger_head h LEFT JOIN ledger_entries e ON true
 GROUP BY h.last_seq
HAVING count(e.seq) <> h.last_seq OR COALESCE(max(e.seq), 0) <> h.last_seq`},
	{"chain heads point at the newest entry of their market", `
SELECT format('market %s: head at %s, newest entry %s', h.market, h.last_seq, COALESCE(m.seq, 0))
  FROM ledger_chain_heads h
  LEFT JOIN LATERAL (SELECT seq, hash FROM ledger_entries e WHERE e.market = h.market ORDER BY seq DESC LIMIT 1) m ON true
 WHERE h.last_seq <> COALESCE(m.seq, 0) OR (m.hash IS NOT NULL AND m.hash <> h.hash)`},
}

// CheckInvariants checks the ledger's invariants (DESIGN.md section 3: 1,
// 2, 3 for flagged accounts, 5 as far as the database alone can tell) and
// every market's hash chain, in one consistent snapshot. It returns every
// violation found; none means the ledger is sound. It is meant for tests,
// benchmarks and auditors, and reads the whole journal.
func CheckInvariants(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var out []Violation
	for _, c := range invariantChecks {
		rows, err := tx.Query(ctx, c.query)
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", c.name, err)
		}
		details, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", c.name, err)
		}
		for _, d := range details {
			out = append(out, Violation{Invariant: c.name, Detail: d})
		}
	}
	// Every market the journal or the accounts name, not only those with a
	// chain head: a head is a row like any other, and a market whose head
	// was deleted would otherwise have its chain verified by nobody.
	rows, err := tx.Query(ctx, `
SELECT market FROM ledger_chain_heads
 UNION SELECT market FROM ledger_accounts
 UNION SELECT market FROM ledger_entries
 ORDER BY market`)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	markets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	l := &Ledger{pool: pool}
	for _, m := range markets {
		v, err := l.VerifyJournal(ctx, m, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("verify chain of %s: %w", m, err)
		}
		if v.Broken != nil {
			out = append(out, Violation{Invariant: "hash chain", Detail: fmt.Sprintf("market %s: entry %s (seq %d): %s", m, v.Broken.EntryID, v.Broken.Seq, v.Broken.Reason)})
		}
	}
	return out, nil
}

// checkAcknowledged returns the keys of $1 that are not in the ledger
// exactly once.
var checkAcknowledged = `
SELECT k FROM unnest($1::text[]) AS k
 WHERE (SELECT count(*) FROM ledger_entries e WHERE ` + entryKeyIs("k") + `) <> 1`

// CheckAcknowledged checks invariant 5 for writes a client saw succeed:
// each key is in the ledger exactly once. It returns the keys that are not.
func CheckAcknowledged(ctx context.Context, pool *pgxpool.Pool, keys []string) ([]string, error) {
	rows, err := pool.Query(ctx, checkAcknowledged, keys)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
