-- Provider money the ledger cannot yet set against payments: a credit above
-- what the provider owes a market (its payments not all recorded yet) may
-- hold its excess in the market's suspense account, and a reclassification
-- later moves it to the provider's clearing account.
--
-- A provider settlement records its whole credit (amount) and the part of
-- it held in suspense (unmatched). Its remaining_owed may be below zero
-- only when it settled nothing against the clearing account: the clearing
-- balance is then not its doing (a refund after an earlier settlement).

-- +goose Up
ALTER TABLE provider_settlements
    ADD COLUMN unmatched BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT provider_settlements_unmatched_within_amount CHECK (unmatched >= 0 AND unmatched <= amount),
    DROP CONSTRAINT provider_settlements_within_owed,
    ADD CONSTRAINT provider_settlements_within_owed CHECK (remaining_owed >= 0 OR unmatched = amount);

-- One row per suspense_reclassification entry, written by the settlement
-- projector in the entry's transaction. The balances right after the entry
-- are computed from the accounts as the round left them, so the checks
-- hold against every write committed before, concurrent ones included.
CREATE TABLE suspense_reclassifications (
    entry_id           UUID PRIMARY KEY,
    market             TEXT NOT NULL,
    channel            TEXT NOT NULL,
    provider           TEXT NOT NULL,
    amount             BIGINT NOT NULL CHECK (amount > 0),
    reason             TEXT NOT NULL,
    remaining_suspense BIGINT NOT NULL,
    remaining_owed     BIGINT NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT suspense_reclassifications_within_suspense CHECK (remaining_suspense >= 0),
    CONSTRAINT suspense_reclassifications_within_owed CHECK (remaining_owed >= 0)
);
CREATE INDEX suspense_reclassifications_market_time ON suspense_reclassifications (market, recorded_at);

-- +goose Down
DROP TABLE suspense_reclassifications;
ALTER TABLE provider_settlements
    DROP CONSTRAINT provider_settlements_within_owed,
    ADD CONSTRAINT provider_settlements_within_owed CHECK (remaining_owed >= 0),
    DROP CONSTRAINT provider_settlements_unmatched_within_amount,
    DROP COLUMN unmatched;
