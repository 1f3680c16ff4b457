-- Postings without foreign keys. The two keys ran two lookups per posting
-- row (six per payment), each locking the row it found, so every new entry
-- took a row lock and a WAL record of its own. The statement-level check that already
-- joins every new posting to its entry and account now refuses a posting
-- whose entry or account does not exist, once per statement. What the keys
-- also guaranteed, that a referenced row is never removed, holds because
-- entries are append-only (00001) and accounts can no longer be deleted,
-- truncated or renumbered (below).

-- +goose Up
ALTER TABLE ledger_postings
    DROP CONSTRAINT ledger_postings_entry_seq_fkey,
    DROP CONSTRAINT ledger_postings_account_id_fkey;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_check_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad RECORD;
BEGIN
    -- Lookups fenced with OFFSET 0 run as index probes per new row (00005);
    -- the outer joins keep a posting whose account or entry is missing, so
    -- that it fails the check instead of dropping out of it.
    SELECT g.entry_seq, e.seq IS NOT NULL AS entry_found, g.unknown_accounts, e.phase, g.n, g.net,
           g.min_market, g.max_market, e.market, g.min_currency, g.max_currency, e.currency
      INTO bad
      FROM (SELECT n.entry_seq,
                   count(*) AS n,
                   count(*) FILTER (WHERE a.market IS NULL) AS unknown_accounts,
                   sum(CASE WHEN n.direction = 'D' THEN n.amount ELSE -n.amount END) AS net,
                   bool_and(n.pending) AS all_pending,
                   bool_or(n.pending) AS any_pending,
                   min(a.market) AS min_market, max(a.market) AS max_market,
                   min(a.currency) AS min_currency, max(a.currency) AS max_currency
              FROM new_postings n
                   LEFT JOIN LATERAL (SELECT market, currency FROM ledger_accounts WHERE id = n.account_id OFFSET 0) a ON true
             GROUP BY n.entry_seq) g
           LEFT JOIN LATERAL (SELECT seq, market, currency, phase FROM ledger_entries WHERE seq = g.entry_seq OFFSET 0) e ON true
     WHERE e.seq IS NULL
        OR g.unknown_accounts > 0
        OR g.n < 2
        OR g.net <> 0
        OR g.min_market <> e.market OR g.max_market <> e.market
        OR g.min_currency <> e.currency OR g.max_currency <> e.currency
        OR e.phase = 'void_pending'
        OR g.all_pending <> (e.phase = 'pending') OR g.any_pending <> (e.phase = 'pending')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % refused: entry found %, % postings on unknown accounts, % postings, net %, markets %..% (entry %), currencies %..% (entry %), phase %',
            bad.entry_seq, bad.entry_found, bad.unknown_accounts, bad.n, bad.net, bad.min_market, bad.max_market, bad.market,
            bad.min_currency, bad.max_currency, bad.currency, bad.phase
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- Accounts are never removed: postings and rollups name them by id.
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
-- Fires only for an UPDATE that names id (SET id = DEFAULT would renumber a
-- GENERATED ALWAYS identity); the totals updates of every round do not.
CREATE TRIGGER ledger_accounts_fixed_id BEFORE UPDATE OF id ON ledger_accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ledger_refuse_change();

-- +goose Down
DROP TRIGGER ledger_accounts_fixed_id ON ledger_accounts;
DROP TRIGGER ledger_accounts_no_truncate ON ledger_accounts;
DROP TRIGGER ledger_accounts_no_delete ON ledger_accounts;
ALTER TABLE ledger_postings
    ADD CONSTRAINT ledger_postings_entry_seq_fkey FOREIGN KEY (entry_seq) REFERENCES ledger_entries (seq),
    ADD CONSTRAINT ledger_postings_account_id_fkey FOREIGN KEY (account_id) REFERENCES ledger_accounts (id);
-- (00005 holds the previous body of ledger_check_postings, which still works
-- with the keys back.)
