-- Payout batches: what a settlement bank pays each merchant at a cut-off.
-- A batch's lines are frozen when it is created; each line to pay reserves
-- its amount with a pending ledger entry (Dr the merchant's payable / Cr the
-- bank's settlement account), which the bank's outcome posts (paid) or
-- voids (failed). Package settlement's projector moves a line from
-- 'reserving' to 'open' and from 'open' to 'paid', 'failed' or 'expired' in
-- the same transaction as the entry that does it, so a line's status is
-- never out of step with the ledger.

-- +goose Up

CREATE TABLE payout_batches (
    id              UUID PRIMARY KEY,
    -- The creator's idempotency key, scoped by the creator.
    idempotency_key TEXT NOT NULL UNIQUE,
    -- access.Principal.Scope of the creator: a bank sees its own batches.
    creator         TEXT NOT NULL,
    bank            TEXT NOT NULL CHECK (bank ~ '^[a-z0-9]{2,16}$'),
    -- The market asked for; NULL for every market the creator covered.
    market          TEXT,
    -- The markets covered; NULL for every market.
    markets         TEXT[],
    cut_off         TIMESTAMPTZ NOT NULL,
    cut_off_seq     BIGINT NOT NULL CHECK (cut_off_seq >= 0),
    -- 'creating' until every line is reserved or skipped.
    status          TEXT NOT NULL CHECK (status IN ('creating', 'open', 'completed')),
    created_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX payout_batches_created ON payout_batches (created_at);

CREATE TABLE payout_lines (
    batch_id       UUID NOT NULL REFERENCES payout_batches (id),
    merchant       TEXT NOT NULL,
    market         TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('reserving', 'open', 'paid', 'failed', 'skipped', 'expired')),
    -- The payout account as registered when the batch was created.
    bank_bin       TEXT,
    account_number TEXT,
    holder_name    TEXT,
    -- Why a line was skipped, failed or expired.
    reason         TEXT NOT NULL DEFAULT '',
    bank_ref       TEXT,
    entry_id       UUID UNIQUE,
    close_entry_id UUID UNIQUE,
    resolved_at    TIMESTAMPTZ,
    PRIMARY KEY (batch_id, market, merchant),
    CHECK ((status IN ('reserving', 'skipped')) = (entry_id IS NULL)),
    CHECK ((status IN ('paid', 'failed', 'expired')) = (close_entry_id IS NOT NULL)),
    CHECK ((status = 'paid') = (bank_ref IS NOT NULL)),
    CHECK (status IN ('reserving', 'open', 'paid') OR reason <> '')
);
-- A merchant's money is reserved by at most one unresolved line: the
-- pending entries already guarantee it cannot be paid twice; this makes a
-- merchant appear in one open batch at a time.
CREATE UNIQUE INDEX payout_lines_one_open ON payout_lines (merchant) WHERE status IN ('reserving', 'open');

-- +goose Down

DROP TABLE payout_lines;
DROP TABLE payout_batches;
