-- Every page of a market's settlement is as of its first page's point, but
-- registering a merchant writes no ledger entry, so no ledger sequence says
-- whether a merchant registered between two pages existed at that point.
-- A market now numbers its merchants as they are registered: the
-- registration takes the market's row to count itself, so the numbers
-- commit in order, and a snapshot that sees the market's count sees every
-- merchant up to it and none after. The first page's token keeps the count
-- it saw, and the later pages list the merchants up to it.
--
-- Merchants registered before are numbered in the order they were.

-- +goose Up
ALTER TABLE markets ADD COLUMN merchants_registered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE merchants ADD COLUMN registration BIGINT;
UPDATE merchants m SET registration = r.n
  FROM (SELECT code, row_number() OVER (PARTITION BY market ORDER BY created_at, code) AS n FROM merchants) r
 WHERE r.code = m.code;
UPDATE markets k SET merchants_registered = (SELECT count(*) FROM merchants m WHERE m.market = k.code);
ALTER TABLE merchants ALTER COLUMN registration SET NOT NULL;
ALTER TABLE merchants ADD CONSTRAINT merchants_registration UNIQUE (market, registration);

-- +goose Down
ALTER TABLE merchants DROP COLUMN registration;
ALTER TABLE markets DROP COLUMN merchants_registered;
