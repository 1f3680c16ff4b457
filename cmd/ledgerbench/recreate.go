package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// recreateDatabase drops and creates the benchmark's database, so that
// every `make bench` starts from the same freshly seeded ledger (the seed is
// deterministic) and runs stay comparable, instead of each run measuring a
// ledger the previous ones grew. It refuses a database whose name does not
// say it is a benchmark's.
//
//	ledgerbench recreate-database URL
func recreateDatabase(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: ledgerbench recreate-database URL")
	}
	u, err := url.Parse(args[0])
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !strings.Contains(name, "bench") {
		return fmt.Errorf("refusing to drop database %q: only a benchmark's database (its name contains \"bench\") is recreated", name)
	}
	u.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
