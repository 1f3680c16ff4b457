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
	mustExec(t, db, `ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_idempotency_key_key UNIQUE (idempotency_key)`)
	mustExec(t, db, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ledger_entries_key_digest'::regclass`)
	mustExec(t, db, `DELETE FROM goose_db_version WHERE version_id = 12`)

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
	mustExec(t, db, insertEntry(1, "k1"))
	_, err = db.Pool.Exec(ctx, insertEntry(2, "k1"))
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
	mustExec(t, db, `DELETE FROM goose_db_version WHERE version_id = 12`)
	if _, err := pg.Migrate(ctx, db.URL); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if after := oid(); after != before {
		t.Fatalf("the valid index was built again (oid %d, then %d)", before, after)
	}
}
