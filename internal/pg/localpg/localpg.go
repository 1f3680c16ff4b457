// Package localpg runs a private PostgreSQL cluster for development and
// tests, from the PostgreSQL server binaries installed on the machine.
//
// The cluster lives in a folder of its own and listens only on a Unix socket
// inside that folder, so it never collides with another cluster's port. When
// the process runs as root it runs the server as the postgres user, since
// PostgreSQL refuses to run as root. It is for development only: it trusts
// every local connection.
package localpg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
)

// ErrNoBinaries says the machine lacks the PostgreSQL server binaries.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: apt-get install postgresql) or set LEDGER_DATABASE_URL")

// Cluster is a private cluster in a folder.
type Cluster struct {
	Dir    string // holds data/, the socket folder and the server log
	binDir string
	runAs  *user.User // non-nil when commands must run as the postgres user
}

const serverUser = "postgres"

// Open finds the server binaries and settles where the cluster lives: dir,
// or, when the server's user cannot reach dir, a folder under the system's
// temporary folder named after dir.
func Open(dir string) (*Cluster, error) {
	binDir, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, binDir: binDir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(serverUser)
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the %q user to run as: %w", serverUser, err)
		}
		c.runAs = u
		if !c.userCanReach(filepath.Dir(dir)) {
			c.Dir = fallbackDir(dir)
		}
	}
	// A Unix socket path is limited to about 100 bytes.
	if len(c.socketDir())+len("/.s.PGSQL.5432") > 100 {
		c.Dir = fallbackDir(dir)
	}
	return c, nil
}

func fallbackDir(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "choledger-pg-"+hex.EncodeToString(sum[:6]))
}

func findBinaries() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	// Debian keeps the server binaries out of PATH, one folder per version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func (c *Cluster) dataDir() string   { return filepath.Join(c.Dir, "data") }
func (c *Cluster) socketDir() string { return filepath.Join(c.Dir, "run") }
func (c *Cluster) logFile() string   { return filepath.Join(c.Dir, "postgres.log") }

// URL is the connection URL of database name in the cluster.
func (c *Cluster) URL(name string) string {
	q := url.Values{"host": {c.socketDir()}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(serverUser), Path: "/" + name, RawQuery: q.Encode()}).String()
}

// Start initialises the cluster if it has no data yet and starts it unless it
// is running. Concurrent callers, in this process or others, are serialised
// by a lock file, so parallel test packages start one server.
func (c *Cluster) Start(ctx context.Context) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(c.Dir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()

	if c.running(ctx) {
		return nil
	}
	if err := os.MkdirAll(c.socketDir(), 0o755); err != nil {
		return err
	}
	if err := c.chown(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", serverUser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
	}
	// Durable settings are PostgreSQL's defaults (fsync and synchronous_commit
	// on) and are left alone; only sizes and the listening socket are set.
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c max_connections=300 -c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=15min", c.socketDir())
	if err := c.run(ctx, "pg_ctl", "start", "-D", c.dataDir(), "-l", c.logFile(), "-w", "-t", "120", "-o", opts); err != nil {
		return fmt.Errorf("pg_ctl start (log: %s): %w", c.logFile(), err)
	}
	return nil
}

// Stop stops the cluster if it runs.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.running(ctx) {
		return nil
	}
	return c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "fast", "-w")
}

func (c *Cluster) running(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err != nil {
		return false
	}
	return c.run(ctx, "pg_ctl", "status", "-D", c.dataDir()) == nil
}

// EnsureDatabase creates database name unless it exists and returns its URL.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to local cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil && !isDuplicateDatabase(err) {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return c.URL(name), nil
}

func isDuplicateDatabase(err error) bool { return pg.Code(err) == "42P04" }

func (c *Cluster) run(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(c.binDir, tool)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", serverUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server started by pg_ctl must not hold our output open, or callers
	// that wait for our output to close (CI, make) would wait for it.
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (c *Cluster) userCanReach(dir string) bool {
	if c.runAs == nil {
		return true
	}
	return exec.Command("runuser", "-u", serverUser, "--", "test", "-x", dir).Run() == nil
}

func (c *Cluster) chown() error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return filepath.Walk(c.Dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// RepoDir returns the folder holding go.mod, searching up from the working
// directory, so tests in any package find the same cluster folder.
func RepoDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// DefaultDir is where the project keeps its cluster: .pgdata in the
// repository, unless LEDGER_PGDATA names another folder.
func DefaultDir() (string, error) {
	if d := os.Getenv("LEDGER_PGDATA"); d != "" {
		return d, nil
	}
	repo, err := RepoDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(repo, ".pgdata"), nil
}
