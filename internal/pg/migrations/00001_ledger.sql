-- The double-entry journal. Amounts are BIGINT minor units of the entry's
-- currency (VND: whole đồng), never floats.

-- +goose Up

-- One row. Every batch of entries takes the next sequence numbers from it
-- while holding its lock, so sequences are gapless and in commit order: a
-- reader that sees sequence N has seen every entry before it.
CREATE TABLE ledger_head (
    id       BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    last_seq BIGINT NOT NULL
);
INSERT INTO ledger_head (id, last_seq) VALUES (true, 0);

CREATE TABLE ledger_accounts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL CHECK (type IN ('asset', 'liability', 'revenue', 'expense', 'equity')),
    currency        TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    market          TEXT NOT NULL,
    -- bit 1: debits must not exceed credits; bit 2: credits must not exceed debits.
    flags           INTEGER NOT NULL DEFAULT 0 CHECK (flags BETWEEN 0 AND 3),
    debits_pending  BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    debits_posted   BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The limits are checked in Go before a write; these make the database
    -- refuse a write that slipped past.
    CONSTRAINT ledger_accounts_debits_limit
        CHECK (flags & 1 = 0 OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT ledger_accounts_credits_limit
        CHECK (flags & 2 = 0 OR credits_pending + credits_posted <= debits_posted)
);
CREATE INDEX ledger_accounts_market_code ON ledger_accounts (market, code);

CREATE TABLE ledger_entries (
    seq             BIGINT PRIMARY KEY,
    id              UUID NOT NULL UNIQUE,
    market          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    phase           TEXT NOT NULL CHECK (phase IN ('posted', 'pending', 'post_pending', 'void_pending')),
    currency        TEXT NOT NULL,
    -- The pending entry that a post_pending or void_pending entry closes.
    -- Unique: a pending entry is closed once.
    pending_seq     BIGINT REFERENCES ledger_entries (seq),
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash    BYTEA NOT NULL,
    external_ref    TEXT UNIQUE,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    metadata        JSONB NOT NULL DEFAULT '{}',
    hash            BYTEA NOT NULL,
    CHECK ((phase IN ('post_pending', 'void_pending')) = (pending_seq IS NOT NULL)),
    CHECK ((phase = 'pending') = (expires_at IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_entries_pending_seq ON ledger_entries (pending_seq) WHERE pending_seq IS NOT NULL;
CREATE INDEX ledger_entries_market_seq ON ledger_entries (market, seq);
CREATE INDEX ledger_entries_recorded_at ON ledger_entries (recorded_at, seq);

CREATE TABLE ledger_postings (
    entry_seq  BIGINT NOT NULL REFERENCES ledger_entries (seq),
    idx        SMALLINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES ledger_accounts (id),
    direction  CHAR(1) NOT NULL CHECK (direction IN ('D', 'C')),
    -- Postings of a pending entry move the pending totals; all others the
    -- posted totals.
    pending    BOOLEAN NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_seq, idx)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, entry_seq) INCLUDE (direction, pending, amount);

-- Pending entries not yet posted, voided or expired. The one mutable table of
-- the journal: a row goes when its entry is closed.
CREATE TABLE ledger_open_pending (
    entry_seq  BIGINT PRIMARY KEY REFERENCES ledger_entries (seq),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ledger_open_pending_expires_at ON ledger_open_pending (expires_at);

-- The newest hash of each market's chain.
CREATE TABLE ledger_chain_heads (
    market   TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    hash     BYTEA NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a new entry', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The database's own check of every statement that inserts postings: each
-- entry's postings balance, are on accounts of the entry's market and
-- currency, agree with its phase, and come at least two at a time. The Go
-- code checks all of this first; this catches any writer that does not.
-- +goose StatementBegin
CREATE FUNCTION ledger_check_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT n.entry_seq,
           e.phase,
           count(*) AS n,
           sum(CASE WHEN n.direction = 'D' THEN n.amount ELSE -n.amount END) AS net,
           bool_and(a.market = e.market) AS same_market,
           bool_and(a.currency = e.currency) AS same_currency,
           bool_and(n.pending = (e.phase = 'pending')) AS phase_ok
      INTO bad
      FROM new_postings n
      JOIN ledger_entries e ON e.seq = n.entry_seq
      JOIN ledger_accounts a ON a.id = n.account_id
     GROUP BY n.entry_seq, e.phase
    HAVING count(*) < 2
        OR sum(CASE WHEN n.direction = 'D' THEN n.amount ELSE -n.amount END) <> 0
        OR NOT bool_and(a.market = e.market)
        OR NOT bool_and(a.currency = e.currency)
        OR NOT bool_and(n.pending = (e.phase = 'pending'))
        OR e.phase = 'void_pending'
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % refused: % postings, net %, same market %, same currency %, phase % ok %',
            bad.entry_seq, bad.n, bad.net, bad.same_market, bad.same_currency, bad.phase, bad.phase_ok
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_postings();

-- +goose Down
DROP TABLE ledger_chain_heads, ledger_open_pending, ledger_postings, ledger_entries, ledger_accounts, ledger_head;
DROP FUNCTION ledger_check_postings, ledger_refuse_change;
