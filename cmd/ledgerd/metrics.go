package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/choledger/choledger/api"
	"github.com/choledger/choledger/internal/metrics"
)

// metrics is what ledgerd exposes to Prometheus: its calls, counted by the
// gRPC server, and gauges of the committers and the database pool.
func (a *app) metrics() *metrics.Registry {
	reg := &metrics.Registry{}
	for _, g := range []metrics.Gauge{
		{Name: "choledger_ledger_rounds_total", Help: "Committer transactions that wrote entries.", Counter: true,
			Read: func() float64 { return float64(a.ledger.Stats().Rounds) }},
		{Name: "choledger_ledger_entries_total", Help: "Journal entries written.", Counter: true,
			Read: func() float64 { return float64(a.ledger.Stats().Entries) }},
		{Name: "choledger_ledger_queued_writes", Help: "Writes waiting for a committer.",
			Read: func() float64 { return float64(a.ledger.Stats().Queued) }},
		{Name: "choledger_db_connections", Help: "Database connections open.",
			Read: func() float64 { return float64(a.pool.Stat().TotalConns()) }},
		{Name: "choledger_db_connections_in_use", Help: "Database connections in use.",
			Read: func() float64 { return float64(a.pool.Stat().AcquiredConns()) }},
		{Name: "choledger_db_connections_max", Help: "The database pool's size.",
			Read: func() float64 { return float64(a.pool.Stat().MaxConns()) }},
		{Name: "choledger_db_acquire_waits_total", Help: "Connections a caller had to wait for, the pool being empty.", Counter: true,
			Read: func() float64 { return float64(a.pool.Stat().EmptyAcquireCount()) }},
		{Name: "choledger_db_acquire_wait_seconds_total", Help: "Time callers spent waiting for a connection.", Counter: true,
			Read: func() float64 { return a.pool.Stat().AcquireDuration().Seconds() }},
	} {
		reg.AddGauge(g)
	}
	return reg
}

// addHeavyReadGauges exposes the heavy reads the server runs and those
// waiting for their turn: auditors queueing behind each other show here,
// not as payments waiting for a connection.
func addHeavyReadGauges(reg *metrics.Registry, srv *api.Server) {
	reg.AddGauge(metrics.Gauge{Name: "choledger_heavy_reads_running", Help: "Heavy reads (VerifyJournal, reports, statement imports, journal pages) running; at most half the database pool.",
		Read: func() float64 { running, _ := srv.HeavyReads(); return float64(running) }})
	reg.AddGauge(metrics.Gauge{Name: "choledger_heavy_reads_waiting", Help: "Heavy reads waiting for their turn.",
		Read: func() float64 { _, waiting := srv.HeavyReads(); return float64(waiting) }})
}

// serveMetrics serves reg on addr at /metrics, unless addr is "off", and
// returns how to stop it. It listens before returning, so that a port
// already taken stops ledgerd at start-up.
func serveMetrics(addr string, reg *metrics.Registry) (stop func(), err error) {
	if addr == "off" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s (LEDGER_METRICS_ADDR, off for none): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server stopped", "err", err)
		}
	}()
	slog.Info("serving metrics", "addr", lis.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck // a scrape cut short at exit is harmless
	}, nil
}
