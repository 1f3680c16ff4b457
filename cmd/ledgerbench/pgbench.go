package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/pg"
)

// pgbenchResult is PostgreSQL's own TPC-B-like benchmark on the same
// cluster, with the same durability settings, as the yardstick: a ledgerd
// payment is at least one durable transaction, and so is a pgbench one.
type pgbenchResult struct {
	Command    string
	Scale      int
	Clients    int
	Threads    int
	Duration   time.Duration
	TPS        float64
	LatencyAvg float64 // ms
	Skipped    string
}

const pgbenchDB = "ledgerbench_pgbench"

// runPgbench initialises a separate database at the given scale, runs the
// built-in script with prepared statements at the bench's concurrency and
// duration, and drops the database.
func runPgbench(ctx context.Context, cfg config, pool *pgxpool.Pool, logf func(string, ...any)) (pgbenchResult, error) {
	r := pgbenchResult{Scale: cfg.PgbenchScale, Clients: cfg.Concurrency, Threads: min(cfg.Concurrency, 2), Duration: cfg.Duration.Round(time.Second)}
	if cfg.PgbenchTPS > 0 {
		r.TPS, r.Skipped = cfg.PgbenchTPS, "given with -pgbench-tps, not measured"
		return r, nil
	}
	bin, err := findPgbench(cfg.Pgbench)
	if err != nil {
		return r, err
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return r, fmt.Errorf("database url: %w", err)
	}
	u.Path = "/" + pgbenchDB
	target := u.String()
	if _, err := pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{pgbenchDB}.Sanitize()); err != nil && pg.Code(err) != "42P04" {
		return r, fmt.Errorf("create database %s: %w", pgbenchDB, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := pool.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{pgbenchDB}.Sanitize()+" WITH (FORCE)"); err != nil {
			logf("pgbench: drop database %s: %v", pgbenchDB, err)
		}
	}()

	logf("pgbench: initialising scale %d in database %s", r.Scale, pgbenchDB)
	if _, err := pgbenchCmd(ctx, 15*time.Minute, bin, "-i", "-q", "-s", strconv.Itoa(r.Scale), target); err != nil {
		return r, err
	}
	secs := max(int(cfg.Duration.Round(time.Second)/time.Second), 1)
	args := []string{"-c", strconv.Itoa(r.Clients), "-j", strconv.Itoa(r.Threads), "-T", strconv.Itoa(secs), "-M", "prepared", target}
	r.Command = "pgbench " + strings.Join(args[:len(args)-1], " ")
	logf("pgbench: %s", r.Command)
	out, err := pgbenchCmd(ctx, time.Duration(secs)*time.Second+10*time.Minute, bin, args...)
	if err != nil {
		return r, err
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindStringSubmatch(out)
	if m == nil {
		m = regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out)
	}
	if m == nil {
		return r, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	r.TPS, _ = strconv.ParseFloat(m[1], 64)
	if m := regexp.MustCompile(`latency average = ([0-9.]+) ms`).FindStringSubmatch(out); m != nil {
		r.LatencyAvg, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

func pgbenchCmd(ctx context.Context, timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args[:len(args)-1], " "), err, out.String())
	}
	return out.String(), nil
}

// findPgbench uses the given path, else pgbench on PATH, else the newest
// Debian server binaries.
func findPgbench(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgbench not found: install the PostgreSQL server binaries, pass -pgbench PATH, or -pgbench-tps N")
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}
