package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg/pgtest"
)

// Keys are indexed by their digest only: a lookup whose condition does not
// match the index expression exactly still finds the right entries, slowly,
// by reading the whole journal. So the plans are checked, with sequential
// scans priced out so that only an unusable index shows one.
func TestKeyLookupsUseTheDigestIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		arg         any
	}{
		{"one key", `SELECT e.seq FROM ledger_entries e WHERE ` + entryKeyIs("$1"), "payment:record:bank:bank:napas/k1"},
		{"keys", `SELECT e.seq FROM ledger_entries e WHERE ` + entryKeyIn, []string{"payment:record:bank:bank:napas/k1", "admin/k2"}},
		{"acknowledged", checkAcknowledged, []string{"payment:record:bank:bank:napas/k1", "admin/k2"}},
	} {
		rows, _ := conn.Query(ctx, `EXPLAIN `+tc.query, tc.arg)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if plan := strings.Join(lines, "\n"); !strings.Contains(plan, " ledger_entries_key_digest") {
			t.Errorf("%s: the lookup does not use the key digest index:\n%s", tc.name, plan)
		}
	}
}
