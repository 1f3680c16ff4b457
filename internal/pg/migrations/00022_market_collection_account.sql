-- A market's collection account: the account at its collecting bank that
-- customers' VietQR transfers to its merchants are paid into, and that
-- every QR of the market names. NULL is none: a market registered before
-- this migration has none until UpdateMarket sets it, and its merchants get
-- no QR meanwhile.
--
-- Columns without a default are added to the catalogue only, without
-- rewriting the table; the rules are added NOT VALID, checked for every row
-- written from now on, as every row there holds NULL.

-- +goose Up
ALTER TABLE markets
    ADD COLUMN collection_bank_bin       TEXT,
    ADD COLUMN collection_account_number TEXT,
    ADD COLUMN collection_holder_name    TEXT;
ALTER TABLE markets ADD CONSTRAINT markets_collection_account CHECK (
    (collection_bank_bin IS NULL) = (collection_account_number IS NULL)
    AND (collection_bank_bin IS NULL) = (collection_holder_name IS NULL)
    AND collection_bank_bin ~ '^[0-9]{6}$'
    AND collection_account_number ~ '^[0-9A-Za-z]{1,19}$'
    AND char_length(collection_holder_name) BETWEEN 1 AND 50) NOT VALID;

-- +goose Down
ALTER TABLE markets
    DROP COLUMN collection_bank_bin,
    DROP COLUMN collection_account_number,
    DROP COLUMN collection_holder_name;
