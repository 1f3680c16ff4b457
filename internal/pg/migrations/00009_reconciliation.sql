-- Reconciliation: one report per imported provider or bank statement, and
-- its items (matched pairs and breaks). Package settlement writes a report
-- and all its items in one transaction, so a report is either whole or
-- absent, and never changes afterwards. See docs/reconciliation.md.

-- +goose Up

CREATE TABLE reconciliation_reports (
    id            UUID PRIMARY KEY,
    -- Hex SHA-256 of the file as received.
    digest        TEXT NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    format        TEXT NOT NULL CHECK (format IN ('csv', 'camt.053', 'camt.054')),
    -- camt's Stmt/Id or Ntfctn/Id; the digest for CSV.
    statement_id  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    -- The one market covered; NULL when the report covers several or every
    -- market.
    market        TEXT,
    -- The markets covered, sorted; NULL for every market.
    markets       TEXT[] CHECK (markets IS NULL OR cardinality(markets) > 0),
    -- markets as the uniqueness key needs it: '*' for every market, else
    -- the sorted codes joined by ',' (codes hold neither character). A NULL
    -- markets would make every import of the same file distinct.
    coverage      TEXT NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    -- Booked lines on the statement (credit and debit); payments the report
    -- accounts for (matched, mismatched or missing in the statement).
    line_count                 INTEGER NOT NULL CHECK (line_count >= 0),
    payment_count              INTEGER NOT NULL CHECK (payment_count >= 0),
    matched_count              INTEGER NOT NULL CHECK (matched_count >= 0),
    amount_mismatch_count      INTEGER NOT NULL CHECK (amount_mismatch_count >= 0),
    missing_in_ledger_count    INTEGER NOT NULL CHECK (missing_in_ledger_count >= 0),
    missing_in_statement_count INTEGER NOT NULL CHECK (missing_in_statement_count >= 0),
    -- The idempotency scope of the principal that imported it
    -- (access.Principal.Scope).
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT reconciliation_reports_period CHECK (period_end > period_start),
    CONSTRAINT reconciliation_reports_market CHECK (market IS NULL OR markets = ARRAY[market]),
    CONSTRAINT reconciliation_reports_counts CHECK (
        matched_count + amount_mismatch_count + missing_in_statement_count = payment_count
        AND matched_count + amount_mismatch_count + missing_in_ledger_count <= line_count),
    -- Re-importing the same file for the same channel and markets returns
    -- the kept report; two imports racing insert one row, and the loser
    -- reads the winner's.
    CONSTRAINT reconciliation_reports_once UNIQUE (digest, channel, coverage)
);
CREATE INDEX reconciliation_reports_newest ON reconciliation_reports (created_at DESC, id DESC);

-- One row per statement line, payment, or matched pair of a report, in the
-- report's order: lines by number, then payments missing in the statement
-- by id.
CREATE TABLE reconciliation_items (
    report_id        UUID NOT NULL REFERENCES reconciliation_reports (id),
    idx              INTEGER NOT NULL CHECK (idx > 0),
    kind             TEXT NOT NULL CHECK (kind IN ('matched', 'amount_mismatch', 'missing_in_ledger', 'missing_in_statement')),
    -- The statement line; NULL (line 0) for a payment missing in the
    -- statement.
    line_number      INTEGER CHECK (line_number > 0),
    statement_ref    TEXT,
    statement_amount BIGINT CHECK (statement_amount > 0),
    booked_at        TIMESTAMPTZ,
    -- The ledger's payment; NULL for a line missing in the ledger.
    payment_id       UUID,
    ledger_amount    BIGINT CHECK (ledger_amount >= 0),
    by_reference     BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (report_id, idx),
    CONSTRAINT reconciliation_items_sides CHECK (
        (line_number IS NULL) = (kind = 'missing_in_statement')
        AND (payment_id IS NULL) = (kind = 'missing_in_ledger')
        AND (line_number IS NULL) = (statement_ref IS NULL)
        AND (line_number IS NULL) = (statement_amount IS NULL)
        AND (line_number IS NULL) = (booked_at IS NULL)
        AND (payment_id IS NULL) = (ledger_amount IS NULL))
);
-- Reading a report's breaks without its matched items.
CREATE INDEX reconciliation_items_breaks ON reconciliation_items (report_id, idx) WHERE kind <> 'matched';

-- The payments a statement is matched against: one channel's over a period,
-- in every market (payments_market_time serves a single market).
CREATE INDEX payments_channel_time ON payments (channel, occurred_at);

-- +goose Down
DROP INDEX payments_channel_time;
DROP TABLE reconciliation_items, reconciliation_reports;
