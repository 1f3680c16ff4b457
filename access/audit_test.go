package access_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// storeEvents records events, waits for them to be written and returns the
// trail, oldest first.
func storeEvents(t *testing.T, events ...access.Event) []access.Event {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.New(t).Pool
	a := access.NewAudit(pool, slog.New(slog.DiscardHandler))
	defer a.Close()
	for _, e := range events {
		a.Record(e)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _, err := access.ListEvents(ctx, pool, "", false, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(stored)-1; i < j; i, j = i+1, j-1 {
		stored[i], stored[j] = stored[j], stored[i]
	}
	return stored
}

// A message too long for the trail is cut on a character boundary: half
// of a Vietnamese letter is not UTF-8, which PostgreSQL refuses, and with
// it every other event of the batch.
func TestAuditCutsLongMessageOnCharacterBoundary(t *testing.T) {
	t.Parallel()
	long := "metadata key " + strings.Repeat("ễ", 300) // "ễ" is 3 bytes
	stored := storeEvents(t,
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "before", Code: "OK"},
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "long", Code: "InvalidArgument", Message: long},
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "after", Code: "OK"},
	)
	if len(stored) != 3 {
		t.Fatalf("the trail holds %d of 3 events", len(stored))
	}
	msg := stored[1].Message
	if len(msg) > 500 || !utf8.ValidString(msg) || !strings.HasSuffix(msg, "…") || !strings.HasPrefix(long, strings.TrimSuffix(msg, "…")) {
		t.Errorf("the long message is stored as %d bytes, valid UTF-8: %v: %q", len(msg), utf8.ValidString(msg), msg)
	}
}
