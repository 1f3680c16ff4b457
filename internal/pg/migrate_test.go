package pg_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// rollBackTo undoes the migrations after version, as an operator would
// before running one again: a migration that failed stopped the ones after
// it from running.
func rollBackTo(t *testing.T, db *pgtest.DB, version int64) {
	t.Helper()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.DownTo(context.Background(), version); err != nil {
		t.Fatalf("roll back to %d: %v", version, err)
	}
}

// wantApplied checks that migrating again applied 00012 first, then every
// later migration.
func wantApplied(t *testing.T, applied []string) {
	t.Helper()
	later, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range later {
		if f.Name() >= "00012" {
			want = append(want, f.Name())
		}
	}
	if len(applied) != len(want) || applied[0] != "00012_idempotency_key_digest.sql" {
		t.Fatalf("applied %v; want 00012 again, then %v", applied, want[1:])
	}
}

// Migration 00012 builds the key digest index outside a transaction, so a
// failure can leave its work half done. Run again, it must finish the job
// without a moment in which keys have no unique index. Here the build
// failed (the index invalid, as PostgreSQL leaves it, with the text's
// constraint still in place) and the version was not recorded.
func TestKeyDigestMigrationRunsAgainAfterAFailedBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	rollBackTo(t, db, 12)
	mustExec(t, db, `ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_idempotency_key_key UNIQUE (idempotency_key)`)
	mustExec(t, db, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ledger_entries_key_digest'::regclass`)
	mustExec(t, db, `DELETE FROM goose_db_version WHERE version_id = 12`)

	applied, err := pg.Migrate(ctx, db.URL)
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	wantApplied(t, applied)
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
	rollBackTo(t, db, 12)
	before := oid()
	mustExec(t, db, `DELETE FROM goose_db_version WHERE version_id = 12`)
	applied, err := pg.Migrate(ctx, db.URL)
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	wantApplied(t, applied)
	if after := oid(); after != before {
		t.Fatalf("the valid index was built again (oid %d, then %d)", before, after)
	}
}
