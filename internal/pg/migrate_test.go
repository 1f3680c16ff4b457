package pg_test

import (
	"context"
	"fmt"
	"os"
	"slices"
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

// During a rolling deploy the release before migration 00017 keeps serving
// once a newer ledgerd has applied it, and registers merchants without a
// number. Such a merchant is numbered next in its market, as the newer
// ledgerd numbers its own, before and after it; it was refused (a NOT NULL
// violation, answered Internal), so no merchant could be registered until
// every older ledgerd had stopped.
func TestMerchantRegisteredByTheReleaseBeforeNumbering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	mustExec(t, db, `INSERT INTO markets (code, name, province, status) VALUES ('M1', 'Chợ 1', 'Thái Nguyên', 'active'), ('M2', 'Chợ 2', 'Thái Nguyên', 'active')`)
	const columns = `code, market, display_name, owner_name, phone, status, channels`
	registerNow := func(code, market string) {
		t.Helper()
		mustExec(t, db, fmt.Sprintf(`
WITH n AS (UPDATE markets SET merchants_registered = merchants_registered + 1 WHERE code = '%[2]s' RETURNING merchants_registered)
INSERT INTO merchants (%[3]s, registration) SELECT '%[1]s', '%[2]s', 'Stall', 'Nguyen Van A', '0912345678', 'active', '{VIETQR}', merchants_registered FROM n`,
			code, market, columns))
	}
	registerBefore := func(code, market string) {
		t.Helper()
		mustExec(t, db, fmt.Sprintf(`
INSERT INTO merchants (%[3]s) VALUES ('%[1]s', '%[2]s', 'Stall', 'Nguyen Van A', '0912345678', 'active', '{VIETQR}')
ON CONFLICT (code) DO NOTHING RETURNING code`, code, market, columns))
	}
	registerNow("M1-0001", "M1")
	registerBefore("M1-0002", "M1")
	registerBefore("M2-0001", "M2")
	registerNow("M1-0003", "M1")

	rows, err := db.Pool.Query(ctx, `SELECT m.code, m.registration, k.merchants_registered FROM merchants m JOIN markets k ON k.code = m.market ORDER BY m.code`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var code string
		var registration, registered int64
		err := r.Scan(&code, &registration, &registered)
		return fmt.Sprintf("%s #%d of %d", code, registration, registered), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"M1-0001 #1 of 3", "M1-0002 #2 of 3", "M1-0003 #3 of 3", "M2-0001 #1 of 1"}
	if !slices.Equal(got, want) {
		t.Errorf("merchants: %q; want %q", got, want)
	}
}

// The same for the release before migration 00015: its projector records a
// reclassification without provider_remaining, and every ReclassifySuspense
// it served after 00015 broke the NOT NULL rule, answered Unavailable ("send
// it again"), which failed again every time. Its row is given what the
// provider's own credits leave in suspense, as the newer projector gives
// its own, and a reclassification beyond them is refused.
func TestSuspenseReclassifiedByTheReleaseBeforeProviderRemaining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	mustExec(t, db, `INSERT INTO provider_settlements (entry_id, market, channel, provider, bank, bank_ref, amount, unmatched, remaining_owed, recorded_at) VALUES
		(gen_random_uuid(), 'M1', 'VIETQR', 'napas', 'vcb', 'IN-1', 5000, 3000, 0, now()),
		(gen_random_uuid(), 'M1', 'MOMO', 'momo', 'vcb', 'IN-2', 9000, 9000, -100, now())`)
	reclassifyBefore := func(provider, channel string, amount int64) error {
		_, err := db.Pool.Exec(ctx, fmt.Sprintf(`
INSERT INTO suspense_reclassifications (entry_id, market, channel, provider, amount, reason, remaining_suspense, remaining_owed, recorded_at)
VALUES (gen_random_uuid(), 'M1', '%s', '%s', %d, 'matched', 0, 0, now())`, channel, provider, amount))
		return err
	}
	for _, amount := range []int64{1000, 1500} {
		if err := reclassifyBefore("napas", "VIETQR", amount); err != nil {
			t.Fatalf("a reclassification of %d đồng recorded as the release before 00015 did: %v", amount, err)
		}
	}
	if err := reclassifyBefore("napas", "VIETQR", 501); pg.Code(err) != pg.CodeCheckViolation {
		t.Errorf("a reclassification of 501 đồng, beyond the 500 napas's credits leave: %v; want a check violation", err)
	}
	var remaining []int64
	rows, err := db.Pool.Query(ctx, `SELECT provider_remaining FROM suspense_reclassifications ORDER BY amount`)
	if err != nil {
		t.Fatal(err)
	}
	if remaining, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	if want := []int64{2000, 500}; !slices.Equal(remaining, want) {
		t.Errorf("provider_remaining: %v; want %v", remaining, want)
	}
}

// Migration 00021 binds a bank credential to a settlement bank. A
// credential issued before it, or by a ledgerd of the release before it
// still serving, names no bank: it is bound to its provider alone, as it
// was. The binding is a bank's code, of a bank credential only.
func TestCredentialBankBinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	insert := func(role, provider, bank string) error {
		columns, values := "", ""
		if bank != "-" {
			columns, values = ", bank", ", '"+bank+"'"
		}
		_, err := db.Pool.Exec(ctx, fmt.Sprintf(`
INSERT INTO credentials (id, name, role, provider, merchant, secret_hash, created_at%s)
VALUES (gen_random_uuid(), 'c', '%[2]s', NULLIF('%[3]s', ''), CASE WHEN '%[2]s' = 'merchant' THEN 'TN-TEST-0001' END, '\x00', now()%[4]s)`,
			columns, role, provider, values))
		return err
	}
	if err := insert("bank", "napas", "-"); err != nil {
		t.Fatalf("a bank credential issued as the release before 00021 did: %v", err)
	}
	var bank string
	if err := db.Pool.QueryRow(ctx, `SELECT bank FROM credentials`).Scan(&bank); err != nil || bank != "" {
		t.Errorf("its bank: %q, %v; want none", bank, err)
	}
	if err := insert("bank", "napas", "vcb"); err != nil {
		t.Errorf("a bank credential of vcb: %v", err)
	}
	for _, tc := range []struct{ role, provider, bank string }{
		{"merchant", "", "vcb"}, {"auditor", "", "vcb"}, {"admin", "", "vcb"},
		{"bank", "napas", "VCB"}, {"bank", "napas", "v"}, {"bank", "napas", "vcb "},
	} {
		if err := insert(tc.role, tc.provider, tc.bank); pg.Code(err) != pg.CodeCheckViolation {
			t.Errorf("a %s credential of bank %q: %v; want a check violation", tc.role, tc.bank, err)
		}
	}
}
