package main

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A history has to be recorded on past days, but the ledger takes an
// entry's recorded_at, which decides its business day, from the database:
// `clock_timestamp()` in the statement that advances the ledger head
// (ledger/committer.go), under that row's lock. Only the rest of the
// ledger (entry ids, occurred_at, expires_at, expiry) follows
// ledger.Options.Now.
//
// So fill-history runs the ledger unchanged over connections whose
// search_path puts a schema of its own before pg_catalog, where a function
// clock_timestamp() returns a virtual time held in a one-row table; the Go
// clock handed to the ledger, the payment flows and settlement reads the
// same time. The virtual time only moves forward, and every batch reads it
// after taking the ledger head's lock, so recorded_at rises with the
// sequence exactly as with the real clock. No other connection sees the
// schema, and the fill drops it when it is done.

const clockSchema = "ledgerbench_clock"

// virtualClock is the fill's clock: the Go side for the services' Now, the
// database side for recorded_at.
type virtualClock struct {
	mu   sync.Mutex // serializes Advance
	conn *pgx.Conn
	now  atomic.Int64 // unix microseconds
}

// startVirtualClock creates the shadowing function in the database at url
// (replacing one a failed fill left) and sets the clock to t.
func startVirtualClock(ctx context.Context, dbURL string, t time.Time) (*virtualClock, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("virtual clock: %w", err)
	}
	t = t.UTC().Truncate(time.Microsecond)
	for _, stmt := range []string{
		`DROP SCHEMA IF EXISTS ` + clockSchema + ` CASCADE`,
		`CREATE SCHEMA ` + clockSchema,
		`CREATE TABLE ` + clockSchema + `.now (id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id), at TIMESTAMPTZ NOT NULL)`,
		// VOLATILE and reading a table: never inlined or folded, and run
		// with a fresh snapshot each time, so it returns the time as of
		// the moment it is called.
		`CREATE FUNCTION ` + clockSchema + `.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS
		 $$ SELECT at FROM ` + clockSchema + `.now $$`,
		// The clock is advanced thousands of times; none of it needs to
		// survive a crash, so none of it waits for a disk flush.
		`SET synchronous_commit = off`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("virtual clock: %s: %w", stmt, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+clockSchema+`.now (at) VALUES ($1)`, t); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("virtual clock: %w", err)
	}
	c := &virtualClock{conn: conn}
	c.now.Store(t.UnixMicro())
	return c, nil
}

// Now is the virtual time: what the ledger and the services take for now.
func (c *virtualClock) Now() time.Time { return time.UnixMicro(c.now.Load()).UTC() }

// Advance moves the clock forward to t; a t not after the clock is ignored.
// The database moves first, so the Go clock is never ahead of what the
// next batch will record.
func (c *virtualClock) Advance(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	us := t.UnixMicro()
	if us <= c.now.Load() {
		return nil
	}
	if _, err := c.conn.Exec(ctx, `UPDATE `+clockSchema+`.now SET at = $1`, time.UnixMicro(us).UTC()); err != nil {
		return fmt.Errorf("advance the virtual clock: %w", err)
	}
	c.now.Store(us)
	return nil
}

// Drop removes the shadowing function and closes the clock's connection.
func (c *virtualClock) Drop(ctx context.Context) error {
	defer c.conn.Close(ctx)
	if _, err := c.conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+clockSchema+` CASCADE`); err != nil {
		return fmt.Errorf("drop the virtual clock: %w", err)
	}
	return nil
}

// withVirtualClock returns dbURL with a search_path that finds the virtual
// clock_timestamp() before PostgreSQL's. The ledger's tables are in public,
// which stays on the path.
func withVirtualClock(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", clockSchema+",pg_catalog,public")
	u.RawQuery = q.Encode()
	return u.String(), nil
}
