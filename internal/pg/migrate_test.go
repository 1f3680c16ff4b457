package pg_test

import (
	"context"
	"testing"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// Migration 00012 builds the key digest index outside a transaction, so a
// failure can leave its work half done. Run again, it must finish the job
// without a moment in which keys have no unique index. Here the build
// failed (the index invalid, as PostgreSQL leaves it, with the text's
// constraint still in place) and the version was not recorded.
func TestKeyDigestMigrationRunsAgainAfterAFailedBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_idempotency_key_key UNIQUE (idempotency_key)`)
	exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ledger_entries_key_digest'::regclass`)
	exec(`DELETE FROM goose_db_version WHERE version_id = 12`)

	applied, err := pg.Migrate(ctx, db.URL)
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if len(applied) != 1 || applied[0] != "00012_idempotency_key_digest.sql" {
		t.Fatalf("applied %v; want 00012 again", applied)
	}
	var valid, textConstraint bool
	if err := db.Pool.QueryRow(ctx, `
SELECT (SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = 'ledger_entries_key_digest'::regclass),
       EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'ledger_entries_idempotency_key_key')`).Scan(&valid, &textConstraint); err != nil {
		t.Fatal(err)
	}
	if !valid || textConstraint {
		t.Fatalf("digest index valid and unique: %v, text constraint left: %v; want true, false", valid, textConstraint)
	}
	exec(`INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, idempotency_key, request_hash, occurred_at, recorded_at, hash)
		VALUES (1, gen_random_uuid(), 'M1', 'test', 'posted', 'VND', 'k1', '\x00', now(), now(), '\x00')`)
	_, err = db.Pool.Exec(ctx, `INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, idempotency_key, request_hash, occurred_at, recorded_at, hash)
		VALUES (2, gen_random_uuid(), 'M1', 'test', 'posted', 'VND', 'k1', '\x00', now(), now(), '\x00')`)
	if pg.Code(err) != pg.CodeUniqueViolation {
		t.Fatalf("a reused key after the migration ran again: %v; want a unique violation", err)
	}
}

// Here everything was done but the version was not recorded: the valid
// index, the keys' only unique index by then, must be kept as it is, not
// dropped and built again.
func TestKeyDigestMigrationKeepsAValidIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	oid := func() (oid uint32) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT 'ledger_entries_key_digest'::regclass::oid`).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		return oid
	}
	before := oid()
	if _, err := db.Pool.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = 12`); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Migrate(ctx, db.URL); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if after := oid(); after != before {
		t.Fatalf("the valid index was built again (oid %d, then %d)", before, after)
	}
}
