-- The same for a ledgerd of a release before 00015 still serving after it
-- (00019 for merchants): its projector records a reclassification without
-- provider_remaining, which broke the NOT NULL rule, so every
-- ReclassifySuspense it served failed. Such a row is given what the
-- provider's own credits leave in suspense after it, computed as the newer
-- projector computes it (rows of earlier entries are there, this one's is
-- not yet), so the row's check refuses a reclassification beyond them.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION suspense_reclassifications_provider_remaining() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.provider_remaining :=
        COALESCE((SELECT sum(unmatched) FROM provider_settlements WHERE market = NEW.market AND provider = NEW.provider AND unmatched > 0), 0)
      - COALESCE((SELECT sum(amount) FROM suspense_reclassifications WHERE market = NEW.market AND provider = NEW.provider), 0)
      - NEW.amount;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER suspense_reclassifications_provider_remaining BEFORE INSERT ON suspense_reclassifications
    FOR EACH ROW WHEN (NEW.provider_remaining IS NULL) EXECUTE FUNCTION suspense_reclassifications_provider_remaining();

-- +goose Down
DROP TRIGGER suspense_reclassifications_provider_remaining ON suspense_reclassifications;
DROP FUNCTION suspense_reclassifications_provider_remaining();
