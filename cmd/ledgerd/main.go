// Command ledgerd is the choledger server: it migrates the database and
// serves the gRPC API.
//
//	ledgerd [serve] [flags]   migrate, then serve until SIGINT or SIGTERM
//	ledgerd migrate [flags]   apply pending migrations and exit
//	ledgerd seed [flags]      migrate, load the demo data set once, and exit
//	ledgerd demo-credentials [flags] FILE
//	                          write demo admin, merchant, bank and auditor
//	                          credentials to FILE unless it holds valid ones
//
// Anything else on the command line is refused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/api"
	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/seeds"
	"github.com/choledger/choledger/settlement"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate" || args[0] == "seed" || args[0] == "demo-credentials") {
		cmd, args = args[0], args[1:]
	}
	// demo-credentials' FILE comes after its flags: a last word that is a
	// flag ("ledgerd demo-credentials -h") is no file to write secrets to.
	var file string
	var operands []*string
	if cmd == "demo-credentials" {
		operands = append(operands, &file)
	}
	cfg, err := loadConfig(args, operands...)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flags are listed, as asked
	}
	if err != nil {
		return err
	}
	if cmd == "demo-credentials" && file == "" {
		return errors.New("usage: ledgerd demo-credentials [flags] FILE")
	}
	setupLogging(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The transport is checked before the database is touched, so a TLS
	// setting that cannot work stops ledgerd at once.
	var transport credentials.TransportCredentials
	if cmd == "serve" {
		if transport, err = transportCredentials(cfg); err != nil {
			return err
		}
	}
	applied, err := pg.Migrate(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	slog.Info("database migrated", "applied", applied)
	switch cmd {
	case "migrate":
		return nil
	case "seed":
		return seed(ctx, cfg)
	case "demo-credentials":
		return demoCredentials(ctx, cfg, file)
	}
	return serve(ctx, cfg, transport)
}

func setupLogging(cfg config) {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	slog.SetDefault(slog.New(h))
}

func serve(ctx context.Context, cfg config, transport credentials.TransportCredentials) error {
	app, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.close()

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.GRPCAddr, err)
	}
	reg := app.metrics()
	srv := api.NewServer(api.Services{
		Credentials: app.credentials, Audit: app.audit,
		Ledger: app.ledger, Merchants: app.merchants, Payments: app.payments, Settlement: app.settlement,
		RPCs: &reg.RPCs,
	}, grpc.Creds(transport), grpc.MaxRecvMsgSize(api.MaxRecvMsgBytes),
		// Stop cancels the calls in flight; waiting for their handlers to
		// return keeps them from writing to the audit trail or the pool
		// that app.close closes next.
		grpc.WaitForHandlers(true))
	addHeavyReadGauges(reg, srv)
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, reg)
	if err != nil {
		lis.Close()
		return err
	}
	defer stopMetrics()
	served := make(chan error, 1)
	go func() { served <- srv.GRPC.Serve(lis) }()
	slog.Info("serving gRPC", "addr", lis.Addr().String(), "security", transport.Info().SecurityProtocol)

	select {
	case err := <-served:
		return fmt.Errorf("gRPC server stopped: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: say NOT_SERVING so balancers drain us; end the calls that
	// never end by themselves (following StreamEntries, health watches),
	// which GracefulStop would otherwise wait for until the timeout; stop
	// taking calls and let those in flight finish (their writes are
	// committed by the ledger's committers), cancelling what is left at the
	// timeout; then stop the committers and the audit writer, and close the
	// pool.
	slog.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	srv.Health.Shutdown()
	srv.Drain()
	// Calls in flight may be waiting for room in the audit trail's queue,
	// which a database out of reach keeps full: the trail stops retrying
	// now, not once they have ended.
	app.audit.Stopping()
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
	app.close()
	slog.Info("stopped")
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// app is the service stack: the pool, the ledger with its projectors, and
// the domain services on top.
type app struct {
	pool        *pgxpool.Pool
	ledger      *ledger.Ledger
	merchants   *merchant.Store
	payments    *payment.Service
	settlement  *settlement.Service
	credentials *access.Store
	audit       *access.Audit
	closeOnce   sync.Once
}

func open(ctx context.Context, cfg config) (*app, error) {
	pool, err := pg.Connect(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns))
	if err != nil {
		return nil, err
	}
	l := ledger.New(pool, ledger.Options{
		MaxBatch: cfg.MaxBatch, Committers: cfg.Committers,
		Projectors: settlement.Projectors(),
	})
	merchants := merchant.NewStore(pool, l)
	return &app{
		pool:        pool,
		ledger:      l,
		merchants:   merchants,
		payments:    payment.NewService(pool, l, merchants, payment.Options{PendingTimeout: cfg.PaymentTimeout}),
		settlement:  settlement.NewService(pool, l, merchants, settlement.Options{}),
		credentials: access.NewStore(pool, nil),
		audit:       access.NewAudit(pool, slog.Default()),
	}, nil
}

// close finishes the ledger's in-flight batches, then writes the audit
// events still queued, then closes the pool.
func (a *app) close() {
	a.closeOnce.Do(func() {
		a.ledger.Close()
		a.audit.Close()
		a.pool.Close()
	})
}

func seed(ctx context.Context, cfg config) error {
	app, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.close()
	loader := &seeds.Loader{Pool: app.pool, Merchants: app.merchants, Payments: app.payments, Log: slog.Default()}
	st, err := loader.Load(ctx)
	if err != nil {
		return fmt.Errorf("load demo data: %w", err)
	}
	if st.AlreadyLoaded {
		slog.Info("demo data already loaded", "seed", seeds.Name)
		return nil
	}
	slog.Info("demo data loaded", "seed", seeds.Name, "markets", st.Markets, "merchants", st.Merchants, "payments", st.Payments, "duration", st.Duration.Round(time.Millisecond))
	return nil
}
