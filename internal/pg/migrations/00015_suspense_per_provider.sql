-- A reclassification moves to a provider only what that provider's own
-- credits left in suspense: suspense is one account per market, and money
-- another provider paid must not lower this one's debt. provider_remaining
-- is what they leave after the entry.

-- +goose Up
ALTER TABLE suspense_reclassifications
    ADD COLUMN provider_remaining BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT suspense_reclassifications_within_provider CHECK (provider_remaining >= 0);
ALTER TABLE suspense_reclassifications ALTER COLUMN provider_remaining DROP DEFAULT;
CREATE INDEX provider_settlements_market_provider ON provider_settlements (market, provider) WHERE unmatched > 0;
CREATE INDEX suspense_reclassifications_market_provider ON suspense_reclassifications (market, provider);

-- +goose Down
DROP INDEX suspense_reclassifications_market_provider;
DROP INDEX provider_settlements_market_provider;
ALTER TABLE suspense_reclassifications
    DROP CONSTRAINT suspense_reclassifications_within_provider,
    DROP COLUMN provider_remaining;
