-- A bank credential may be bound to the settlement bank it acts for: it
-- then creates payout batches and reports provider credits at that bank
-- only. '' is no bank: a credential of a provider only, as every credential
-- issued before this migration is, and as a ledgerd of an earlier release
-- still issues them.
--
-- A constant default is stored in the catalogue, so the column is added
-- without rewriting the table; the rule is added NOT VALID, checked for
-- every row written from now on, as every row there holds the default.

-- +goose Up
ALTER TABLE credentials ADD COLUMN bank TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD CONSTRAINT credentials_bank
    CHECK (bank = '' OR (role = 'bank' AND bank ~ '^[a-z0-9]{2,16}$')) NOT VALID;

-- +goose Down
ALTER TABLE credentials DROP COLUMN bank;
