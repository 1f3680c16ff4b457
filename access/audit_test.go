package access_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// storeEvents records events, waits for them to be written and returns the
// trail, oldest first.
func storeEvents(t *testing.T, events ...access.Event) []access.Event {
	t.Helper()
	return storeEventsLogging(t, slog.New(slog.DiscardHandler), events...)
}

func storeEventsLogging(t *testing.T, log *slog.Logger, events ...access.Event) []access.Event {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.New(t).Pool
	a := access.NewAudit(pool, log)
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

// What a call named is the request's field as sent, and any caller can put
// in it what PostgreSQL text cannot hold: a NUL (valid UTF-8, so gRPC
// delivers it), bytes that are not UTF-8. Such an event is stored with
// them escaped, as are control characters, and bounded; the events written
// with it are stored too.
func TestAuditStoresUnstorableTextEscaped(t *testing.T) {
	t.Parallel()
	denied := func(target, message string) access.Event {
		return access.Event{Role: access.RoleAuditor, Method: "/m/Read", Target: target, Code: "PermissionDenied", Message: message}
	}
	stored := storeEvents(t,
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "M1", Code: "OK"},
		denied("M2\x00", "a NUL"),
		denied("M2", "not UTF-8: \xff\xfe"),
		denied("M2\n2024-01-01 admin /m/Write OK", "a line\r\nand a C1 control \u0085"),
		denied(strings.Repeat("\x00", 1000), strings.Repeat("ễ\x00", 300)),
	)
	want := []struct{ target, message string }{
		{"M1", ""},
		{`M2\x00`, "a NUL"},
		{"M2", `not UTF-8: \xff\xfe`},
		{`M2\x0a2024-01-01 admin /m/Write OK`, `a line\x0d\x0aand a C1 control \u0085`},
	}
	if len(stored) != len(want)+1 {
		t.Fatalf("the trail holds %d of %d events", len(stored), len(want)+1)
	}
	for i, w := range want {
		if stored[i].Target != w.target || stored[i].Message != w.message {
			t.Errorf("event %d stored as target %q, message %q; want %q, %q", i, stored[i].Target, stored[i].Message, w.target, w.message)
		}
	}
	long := stored[len(want)]
	if len(long.Target) > 200 || !strings.HasPrefix(long.Target, `\x00\x00`) || !strings.HasSuffix(long.Target, `\x00…`) {
		t.Errorf("a target of 1000 NULs stored as %d bytes: %q", len(long.Target), long.Target)
	}
	if len(long.Message) > 500 || !strings.HasPrefix(long.Message, `ễ\x00ễ`) || !strings.HasSuffix(long.Message, "…") {
		t.Errorf("a long message of NULs stored as %d bytes: %q", len(long.Message), long.Message)
	}
}

// An event the database refuses even with its text made storable (here, a
// credential id that is no UUID) costs neither the events written with it
// nor itself: the others are stored, and it is stored as a placeholder
// that tells what was recorded, and logged.
func TestAuditStoresRefusedEventAsPlaceholder(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	stored := storeEventsLogging(t, slog.New(slog.NewTextHandler(&logged, nil)),
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "before", Code: "OK"},
		access.Event{CredentialID: "not-a-uuid", Role: access.RoleBank, Method: "/m/Write", Target: "refused", Code: "PermissionDenied", Message: "denied"},
		access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: "after", Code: "OK"},
	)
	var targets []string
	for _, e := range stored {
		targets = append(targets, e.Target)
	}
	if want := []string{"before", "refused", "after"}; !slices.Equal(targets, want) {
		t.Fatalf("the trail holds events naming %q, want %q", targets, want)
	}
	p := stored[1]
	if p.CredentialID != "" || p.Role != access.RoleBank || p.Method != "/m/Write" || p.Code != "PermissionDenied" ||
		!strings.Contains(p.Message, `credential "not-a-uuid"`) || !strings.Contains(p.Message, "denied") {
		t.Errorf("the refused event is stored as %+v", p)
	}
	if !strings.Contains(logged.String(), "placeholder") || !strings.Contains(logged.String(), "not-a-uuid") {
		t.Errorf("the refused event is not logged: %s", logged.String())
	}
}

// The refusals of the trail are listed from their own partial index, not
// by walking back through every event: refusals are rare, and the trail
// holds every write. The plan of the very statement ListEvents sends says
// so.
func TestDeniedEventsListedFromTheirIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO audit_events (at, role, method, target, code, message)
SELECT now(), 'bank', '/choledger.v1.PaymentService/RecordPayment', 'p-' || i, CASE WHEN i % 10000 = 0 THEN 'PermissionDenied' ELSE 'OK' END, ''
  FROM generate_series(1, 50000) AS i;
ANALYZE audit_events`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		sql  string
		args []any
	}
	cfg.ConnConfig.Tracer = queryTracer(func(sql string, args []any) { sent.sql, sent.args = sql, args })
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	denied, _, err := access.ListEvents(ctx, pool, "", true, 100, "")
	if err != nil || len(denied) != 5 {
		t.Fatalf("denied events: %d, %v; want the 5", len(denied), err)
	}
	rows, err := db.Pool.Query(ctx, "EXPLAIN "+sent.sql, sent.args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "audit_events_denied") {
		t.Errorf("ListEvents of the refusals plans %q; want it to read audit_events_denied", plan)
	}
}

// queryTracer hands every query a connection sends to its func.
type queryTracer func(sql string, args []any)

func (f queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	f(d.SQL, d.Args)
	return ctx
}

func (queryTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Closed while the database is out of reach, the trail tries what is
// queued once more and logs every event it could not write, at once: it
// retried each batch for half a minute, so ledgerd stopped during an
// outage waited 30 s a batch past its shutdown timeout, and one killed
// meanwhile lost its queued events without a line in the log.
func TestAuditClosesAtOnceWhileTheDatabaseIsOutOfReach(t *testing.T) {
	t.Parallel()
	// A socket folder no server listens in: every connection is refused.
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@/choledger?sslmode=disable&host="+url.QueryEscape(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var logged bytes.Buffer
	a := access.NewAudit(pool, slog.New(slog.NewTextHandler(&logged, nil)))
	targets := []string{"first", "second", "third"}
	for _, target := range targets {
		a.Record(access.Event{Role: access.RoleAdmin, Method: "/m/Write", Target: target, Code: "OK"})
		time.Sleep(150 * time.Millisecond) // a batch each: the writer flushes every 100 ms
	}
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close still retries the trail's batches after 5 s")
	}
	for _, target := range targets {
		if !strings.Contains(logged.String(), "target="+target) {
			t.Errorf("the event naming %s is neither written nor logged", target)
		}
	}
}
