-- Idempotency keys indexed by a 16-byte digest instead of their text. A key
-- is its caller's scope and key, 53 characters on average, and its unique
-- B-tree took 118-126 bytes an entry on the benchmark ledgers, the largest
-- index of the journal; the digest's takes 39. It also compares 16 bytes
-- where the text index compared strings under the database's collation at
-- every step of every insert and lookup.
--
-- md5 here is a digest for an index, not a security boundary. Every lookup
-- compares the full key as well (ledger_key_digest(k) = ... AND
-- idempotency_key = k), so one key is never answered with another's entry;
-- two keys with one digest, which only someone choosing both could make,
-- would only see the later write refused by the unique index. md5 is
-- IMMUTABLE and takes text as it is, so PostgreSQL inlines the function
-- into the index and every query, and the planner matches the two.

-- The index is built CONCURRENTLY, so that payments keep being recorded
-- while it is built on a long journal; that cannot run in a transaction.
-- Each statement can be run again after a failure: a build that failed
-- leaves an invalid index, which is dropped first.

-- +goose NO TRANSACTION
-- +goose Up
CREATE OR REPLACE FUNCTION ledger_key_digest(key TEXT) RETURNS UUID
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT md5(key)::uuid $$;

DROP INDEX CONCURRENTLY IF EXISTS ledger_entries_key_digest;
CREATE UNIQUE INDEX CONCURRENTLY ledger_entries_key_digest ON ledger_entries (ledger_key_digest(idempotency_key));
ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_idempotency_key_key;

-- +goose Down
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_idempotency_key_key UNIQUE (idempotency_key);
DROP INDEX ledger_entries_key_digest;
DROP FUNCTION ledger_key_digest(TEXT);
