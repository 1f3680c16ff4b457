package pg_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// mustExec runs sql on db and fails the test if it fails.
func mustExec(t *testing.T, db *pgtest.DB, sql string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// insertEntry is SQL for a posted entry of market M1, with no postings.
func insertEntry(seq int, key string) string {
	return fmt.Sprintf(`INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, idempotency_key, request_hash, occurred_at, recorded_at, hash)
		VALUES (%d, gen_random_uuid(), 'M1', 'test', 'posted', 'VND', '%s', '\x00', now(), now(), '\x00')`, seq, key)
}

// The database itself must refuse what the Go code never writes: changed or
// deleted journal rows and unbalanced entries.
func TestSchemaRefusesBadJournalWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	mustExec(t, db, `INSERT INTO ledger_accounts (code, type, currency, market) VALUES
		('a', 'asset', 'VND', 'M1'), ('b', 'liability', 'VND', 'M1'), ('c', 'liability', 'VND', 'M2'), ('d', 'liability', 'USD', 'M1')`)
	mustExec(t, db, insertEntry(1, "k1"))
	mustExec(t, db, `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
		SELECT 1, 0, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
		UNION ALL SELECT 1, 1, id, 'C', false, 100 FROM ledger_accounts WHERE code = 'b'`)

	for _, tc := range []struct {
		name, sql, code string
	}{
		{"update entry", `UPDATE ledger_entries SET kind = 'x'`, "42501"},
		{"delete entry", `DELETE FROM ledger_entries`, "42501"},
		{"truncate entries", `TRUNCATE ledger_entries CASCADE`, "42501"},
		{"update posting", `UPDATE ledger_postings SET amount = 1`, "42501"},
		{"delete posting", `DELETE FROM ledger_postings`, "42501"},
		{"unbalanced", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, id, 'C', false, 99 FROM ledger_accounts WHERE code = 'b'`, pg.CodeCheckViolation},
		{"single posting", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'`, pg.CodeCheckViolation},
		{"other market", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, id, 'C', false, 100 FROM ledger_accounts WHERE code = 'c'`, pg.CodeCheckViolation},
		{"other currency", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, id, 'C', false, 100 FROM ledger_accounts WHERE code = 'd'`, pg.CodeCheckViolation},
		{"pending flag on posted entry", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', true, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, id, 'C', true, 100 FROM ledger_accounts WHERE code = 'b'`, pg.CodeCheckViolation},
		{"zero amount", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 0 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, id, 'C', false, 0 FROM ledger_accounts WHERE code = 'b'`, pg.CodeCheckViolation},
		{"debits beyond credits", `UPDATE ledger_accounts SET flags = 1, debits_posted = 5 WHERE code = 'b'`, pg.CodeCheckViolation},
		// No foreign keys on postings: the statement check stands in for them.
		{"posting on an unknown account", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 1, 2, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 1, 3, 999999, 'C', false, 100`, pg.CodeCheckViolation},
		{"postings of an unknown entry", `INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
			SELECT 2, 0, id, 'D', false, 100 FROM ledger_accounts WHERE code = 'a'
			UNION ALL SELECT 2, 1, id, 'C', false, 100 FROM ledger_accounts WHERE code = 'b'`, pg.CodeCheckViolation},
		// Keys are unique by their digest (00012), which implies by their text.
		{"reused idempotency key", insertEntry(2, "k1"), pg.CodeUniqueViolation},
		{"delete account", `DELETE FROM ledger_accounts WHERE code = 'a'`, "42501"},
		{"truncate accounts", `TRUNCATE ledger_accounts CASCADE`, "42501"},
		{"renumber account", `UPDATE ledger_accounts SET id = DEFAULT WHERE code = 'a'`, "42501"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Pool.Exec(ctx, tc.sql)
			if got := pg.Code(err); got != tc.code {
				t.Fatalf("got SQLSTATE %q (%v), want %q", got, err, tc.code)
			}
		})
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_postings`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("postings after refused writes: %d, %v; want 2", n, err)
	}
}
