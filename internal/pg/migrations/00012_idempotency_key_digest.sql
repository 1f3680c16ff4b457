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
-- while it is built on a long journal; that cannot run in a transaction,
-- so every statement must be safe to run again after a failure. A build
-- that failed leaves an invalid index, which is dropped first; a valid one
-- is kept. The text's unique constraint goes last, and only once the
-- digest's index is valid: keys are never without a unique index.

-- +goose NO TRANSACTION
-- +goose Up
CREATE OR REPLACE FUNCTION ledger_key_digest(key TEXT) RETURNS UUID
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT md5(key)::uuid $$;

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('ledger_entries_key_digest') AND NOT indisvalid) THEN
        DROP INDEX ledger_entries_key_digest;
    END IF;
END
$$;
-- +goose StatementEnd

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ledger_entries_key_digest ON ledger_entries (ledger_key_digest(idempotency_key));

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('ledger_entries_key_digest') AND indisvalid AND indisunique) THEN
        RAISE EXCEPTION 'ledger_entries_key_digest is not a valid unique index; run the migration again';
    END IF;
    ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_idempotency_key_key;
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_idempotency_key_key UNIQUE (idempotency_key);
DROP INDEX ledger_entries_key_digest;
DROP FUNCTION ledger_key_digest(TEXT);
