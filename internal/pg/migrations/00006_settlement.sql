-- Settlement: per-account and per-merchant daily rollups of the journal, and
-- the provider settlements banks record. Package settlement's projectors
-- write every row here in the same transaction as the entries it derives
-- from, so a period's figures can be read in O(days) without summing
-- postings, and settlement.CheckRollups can recompute them from the journal.
--
-- A day is the Asia/Ho_Chi_Minh calendar date of the entry's recorded_at
-- (the ledger's booking time), never of occurred_at: recorded_at rises with
-- the sequence, so a day's rows are final once the day is over, and the sum
-- of an account's rows up to a day is exactly its balance as of the end of
-- that day.

-- +goose Up

-- Movements of each account, per day. The pending columns are deltas: a
-- pending entry adds its amounts on the day it is recorded, and the entry
-- that posts or voids it takes them off again on the day that entry is
-- recorded, so they can be negative; summed up to a day they are the
-- account's pending totals at the end of that day. entries counts the
-- entries with postings on the account that day (a void has none).
CREATE TABLE ledger_daily_totals (
    account_id      BIGINT NOT NULL REFERENCES ledger_accounts (id),
    day             DATE NOT NULL,
    debits_pending  BIGINT NOT NULL DEFAULT 0,
    credits_pending BIGINT NOT NULL DEFAULT 0,
    debits_posted   BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    entries         INTEGER NOT NULL DEFAULT 0 CHECK (entries >= 0),
    PRIMARY KEY (account_id, day)
);

-- Posted movements of settlement kinds (payouts, provider settlements) per
-- account and day: the part of ledger_daily_totals a settlement report must
-- tell apart from payments and refunds.
CREATE TABLE settlement_daily_totals (
    account_id     BIGINT NOT NULL REFERENCES ledger_accounts (id),
    kind           TEXT NOT NULL,
    day            DATE NOT NULL,
    entries        INTEGER NOT NULL DEFAULT 0 CHECK (entries >= 0),
    debits_posted  BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    PRIMARY KEY (account_id, kind, day)
);

-- Posted payments and refunds per merchant, channel and day, from the
-- payment entries' metadata: the per-channel split a merchant's payable
-- account cannot give. gross is what the payers paid, fees the merchant
-- discount charged on it; refunded is what went back to payers and
-- fees_returned the part of the fees that came back with it.
CREATE TABLE payment_daily_totals (
    merchant      TEXT NOT NULL,
    market        TEXT NOT NULL,
    channel       TEXT NOT NULL,
    day           DATE NOT NULL,
    payments      INTEGER NOT NULL DEFAULT 0 CHECK (payments >= 0),
    gross         BIGINT NOT NULL DEFAULT 0 CHECK (gross >= 0),
    fees          BIGINT NOT NULL DEFAULT 0 CHECK (fees >= 0),
    refunds       INTEGER NOT NULL DEFAULT 0 CHECK (refunds >= 0),
    refunded      BIGINT NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    fees_returned BIGINT NOT NULL DEFAULT 0 CHECK (fees_returned >= 0),
    PRIMARY KEY (merchant, channel, day)
);
CREATE INDEX payment_daily_totals_market_day ON payment_daily_totals (market, day);

-- Money a provider paid to a settlement bank for a market: one row per
-- provider_settlement entry. remaining_owed is the provider's clearing
-- balance right after the entry; the CHECK is what guarantees that a
-- settlement never takes more than the provider owes, even when two race
-- past the service's own check: the loser's transaction fails here.
CREATE TABLE provider_settlements (
    entry_id       UUID PRIMARY KEY,
    market         TEXT NOT NULL,
    channel        TEXT NOT NULL,
    provider       TEXT NOT NULL,
    bank           TEXT NOT NULL,
    bank_ref       TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    remaining_owed BIGINT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT provider_settlements_within_owed CHECK (remaining_owed >= 0),
    CONSTRAINT provider_settlements_bank_ref_unique UNIQUE (bank, bank_ref)
);
CREATE INDEX provider_settlements_market_time ON provider_settlements (market, recorded_at);

-- A database that already holds entries gets its rollups from the journal,
-- by the rules the projectors follow (settlement/journal.go holds the same
-- queries; settlement.CheckRollups compares the two).
INSERT INTO ledger_daily_totals (account_id, day, debits_pending, credits_pending, debits_posted, credits_posted, entries)
SELECT account_id, day, sum(dp), sum(cp), sum(dpo), sum(cpo), count(DISTINCT seq)
  FROM (SELECT p.account_id, (e.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
               CASE WHEN p.pending AND p.direction = 'D' THEN p.amount ELSE 0 END AS dp,
               CASE WHEN p.pending AND p.direction = 'C' THEN p.amount ELSE 0 END AS cp,
               CASE WHEN NOT p.pending AND p.direction = 'D' THEN p.amount ELSE 0 END AS dpo,
               CASE WHEN NOT p.pending AND p.direction = 'C' THEN p.amount ELSE 0 END AS cpo,
               e.seq
          FROM ledger_entries e JOIN ledger_postings p ON p.entry_seq = e.seq
        UNION ALL
        SELECT p.account_id, (c.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
               CASE WHEN p.direction = 'D' THEN -p.amount ELSE 0 END,
               CASE WHEN p.direction = 'C' THEN -p.amount ELSE 0 END,
               0, 0, NULL
          FROM ledger_entries c JOIN ledger_postings p ON p.entry_seq = c.pending_seq) m
 GROUP BY account_id, day;

INSERT INTO settlement_daily_totals (account_id, kind, day, entries, debits_posted, credits_posted)
SELECT p.account_id, e.kind, (e.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, count(DISTINCT e.seq),
       COALESCE(sum(p.amount) FILTER (WHERE p.direction = 'D'), 0), COALESCE(sum(p.amount) FILTER (WHERE p.direction = 'C'), 0)
  FROM ledger_entries e JOIN ledger_postings p ON p.entry_seq = e.seq
 WHERE e.kind IN ('payout', 'provider_settlement') AND NOT p.pending
 GROUP BY 1, 2, 3;

INSERT INTO payment_daily_totals (merchant, market, channel, day, payments, gross, fees, refunds, refunded, fees_returned)
SELECT e.metadata->>'merchant', e.market, e.metadata->>'channel', (e.recorded_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
       count(*) FILTER (WHERE e.kind <> 'refund'),
       COALESCE(sum((e.metadata->>'amount')::bigint) FILTER (WHERE e.kind <> 'refund'), 0),
       COALESCE(sum((e.metadata->>'fee')::bigint) FILTER (WHERE e.kind <> 'refund'), 0),
       count(*) FILTER (WHERE e.kind = 'refund'),
       COALESCE(sum((e.metadata->>'amount')::bigint) FILTER (WHERE e.kind = 'refund'), 0),
       COALESCE(sum((e.metadata->>'fee_returned')::bigint) FILTER (WHERE e.kind = 'refund'), 0)
  FROM ledger_entries e
 WHERE e.kind IN ('payment', 'payment_confirm', 'refund') AND e.phase <> 'pending' AND e.metadata ? 'payment_id'
 GROUP BY 1, 2, 3, 4;

-- +goose Down
DROP TABLE provider_settlements, payment_daily_totals, settlement_daily_totals, ledger_daily_totals;
