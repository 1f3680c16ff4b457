// Command ledgerd is the choledger server: it migrates the database and
// serves the gRPC API.
//
//	ledgerd [serve] [flags]   migrate, then serve until SIGINT or SIGTERM
//	ledgerd migrate           apply pending migrations and exit
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/choledger/choledger/api"
	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate") {
		cmd, args = args[0], args[1:]
	}
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	setupLogging(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	applied, err := pg.Migrate(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	slog.Info("database migrated", "applied", applied)
	if cmd == "migrate" {
		return nil
	}
	return serve(ctx, cfg)
}

func setupLogging(cfg config) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	slog.SetDefault(slog.New(h))
}

func serve(ctx context.Context, cfg config) error {
	pool, err := pg.Connect(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	l := ledger.New(pool, ledger.Options{MaxBatch: cfg.MaxBatch, Committers: cfg.Committers})

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		l.Close()
		return fmt.Errorf("listen on %s: %w", cfg.GRPCAddr, err)
	}
	srv := api.NewServer(api.Services{Ledger: l})
	served := make(chan error, 1)
	go func() { served <- srv.GRPC.Serve(lis) }()
	slog.Info("serving gRPC", "addr", lis.Addr().String())

	select {
	case err := <-served:
		l.Close()
		return fmt.Errorf("gRPC server stopped: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: say NOT_SERVING so balancers drain us, stop taking calls,
	// let in-flight calls finish (their writes are committed by the ledger's
	// committers), then stop the committers and close the pool.
	slog.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	srv.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		srv.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout):
		slog.Warn("in-flight calls did not finish in time; cancelling them")
		srv.GRPC.Stop()
	}
	l.Close()
	slog.Info("stopped")
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
