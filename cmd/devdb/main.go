// Command devdb runs the project's private PostgreSQL cluster for local
// development (see package localpg).
//
//	devdb start [database]   start the cluster, create the database (default
//	                         "choledger") and print its URL
//	devdb stop               stop the cluster
//	devdb url [database]     print the database URL without starting anything
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/choledger/choledger/internal/pg/localpg"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: devdb start|stop|url [database]")
	}
	name := "choledger"
	if len(args) > 1 {
		name = args[1]
	}
	dir, err := localpg.DefaultDir()
	if err != nil {
		return err
	}
	c, err := localpg.Open(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	switch args[0] {
	case "start":
		if err := c.Start(ctx); err != nil {
			return err
		}
		url, err := c.EnsureDatabase(ctx, name)
		if err != nil {
			return err
		}
		fmt.Println(url)
	case "stop":
		return c.Stop(ctx)
	case "url":
		fmt.Println(c.URL(name))
	default:
		return fmt.Errorf("unknown command %q: use start, stop or url", args[0])
	}
	return nil
}
