package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// Unavailable tells a database out of reach from a statement it refused:
// the first is answered "retry", the second must not be.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)

	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	_, refused := conn.Exec(ctx, `SELECT 1/0`)
	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	_, cut := conn.Exec(ctx, `SELECT 1`)    // the server's goodbye, or the closed socket
	_, closed := conn.Exec(ctx, `SELECT 1`) // a connection already known closed
	_, refusedTwice := db.Pool.Exec(ctx, `SELECT 'x'::int`)
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = t.TempDir() // a socket directory no server listens in
	_, unreachable := pgx.ConnectConfig(ctx, cfg)

	for _, c := range []struct {
		what string
		err  error
		want bool
	}{
		{"division by zero", refused, false},
		{"a bad cast", refusedTwice, false},
		{"the backend terminated", cut, true},
		{"the connection closed", closed, true},
		{"no server", unreachable, true},
		{"no error", nil, false},
		{"the caller gave up", context.Canceled, false},
	} {
		if (c.err == nil) != (c.what == "no error") {
			t.Fatalf("%s: got error %v", c.what, c.err)
		}
		if got := pg.Unavailable(c.err); got != c.want {
			t.Errorf("%s (%v): Unavailable says %v", c.what, c.err, got)
		}
	}
}

// Unstorable tells a text PostgreSQL cannot store, which the caller sent,
// from other refusals.
func TestUnstorable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	var s string
	nul := db.Pool.QueryRow(ctx, `SELECT $1::text`, "A\x00B").Scan(&s)
	if !pg.Unstorable(nul) {
		t.Errorf("a NUL in a text: Unstorable(%v) = false", nul)
	}
	other := db.Pool.QueryRow(ctx, `SELECT 'x'::int::text`).Scan(&s)
	if other == nil || pg.Unstorable(other) || pg.Unstorable(nil) {
		t.Errorf("another refusal: Unstorable(%v) = true", other)
	}
}

// Backoff waits at most 200 ms however many attempts came before: the
// audit trail tries a batch again while the database is out of reach, and
// at the 44th attempt, some four seconds into an outage, 2 ms shifted
// that far overflowed to a ceiling below zero: Backoff panicked, and
// ledgerd ended.
func TestBackoffAfterManyAttempts(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for attempt := 1; attempt <= 1000; attempt++ {
		if err := pg.Backoff(done, attempt); err == nil {
			t.Fatalf("attempt %d: Backoff under an ended context returned nil", attempt)
		}
	}
	for _, attempt := range []int{8, 44, 64, 100, 1 << 20} {
		start := time.Now()
		if err := pg.Backoff(context.Background(), attempt); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if waited := time.Since(start); waited > 300*time.Millisecond {
			t.Errorf("attempt %d waited %v, more than the 200 ms cap", attempt, waited)
		}
	}
}
