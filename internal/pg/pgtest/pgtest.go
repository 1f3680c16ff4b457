// Package pgtest gives each test a fresh, migrated PostgreSQL database.
//
// It uses LEDGER_DATABASE_URL's server when that is set, and otherwise starts
// the project's private cluster (package localpg). A migrated template
// database is made once per schema version; each test database is a copy of
// it (CREATE DATABASE ... TEMPLATE), which takes milliseconds, and is dropped
// when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/localpg"
)

var (
	setupOnce sync.Once
	serverURL string // the maintenance database of the server
	template  string
	setupErr  error
)

// DB is a test's own database.
type DB struct {
	Pool *pgxpool.Pool
	URL  string
	Name string
}

// New returns a fresh migrated database that is dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setupOnce.Do(func() { setupErr = setup(ctx) })
	if setupErr != nil {
		t.Fatalf("test database: %v", setupErr)
	}
	name := "test_" + randomHex(8)
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	dbURL := withDatabase(serverURL, name)
	pool, err := pg.Connect(ctx, dbURL, 40)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return &DB{Pool: pool, URL: dbURL, Name: name}
}

func setup(ctx context.Context) error {
	if u := os.Getenv("LEDGER_DATABASE_URL"); u != "" {
		serverURL = u
	} else {
		dir, err := localpg.DefaultDir()
		if err != nil {
			return err
		}
		c, err := localpg.Open(dir)
		if err != nil {
			return err
		}
		if err := c.Start(ctx); err != nil {
			return err
		}
		serverURL = c.URL("postgres")
	}
	fp, err := pg.MigrationsFingerprint()
	if err != nil {
		return err
	}
	template = "tmpl_" + fp
	return ensureTemplate(ctx)
}

// ensureTemplate makes the template database once per schema version, under
// an advisory lock so that parallel test binaries do not race to make it.
func ensureTemplate(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(7331001)`); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7331001)`) //nolint:errcheck // closing the connection unlocks too
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	// A half-made template from an interrupted run is not marked as a
	// template yet; start it over.
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+template+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+template); err != nil {
		return err
	}
	if _, err := pg.Migrate(ctx, withDatabase(serverURL, template)); err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "ALTER DATABASE "+template+" WITH is_template true")
	return err
}

func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
