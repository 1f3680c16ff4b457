package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/choledger/choledger/ledger"
)

// config is every setting of ledgerd. Each has a default, can be set by an
// environment variable, and a flag overrides the variable. The database URL
// may carry a password, so it is read from the environment (or a file named
// by LEDGER_DATABASE_URL_FILE), never from a flag.
type config struct {
	DatabaseURL     string
	GRPCAddr        string
	LogLevel        string
	LogFormat       string
	DBMaxConns      int
	MaxBatch        int
	Committers      int
	ShutdownTimeout time.Duration
	PaymentTimeout  time.Duration
	// Transport security: a certificate and key for TLS, plus a CA for
	// client certificates (mutual TLS). Plaintext only when asked for.
	TLSCert     string
	TLSKey      string
	TLSClientCA string
	Plaintext   bool
}

func loadConfig(args []string) (config, error) {
	c := config{
		DatabaseURL:     os.Getenv("LEDGER_DATABASE_URL"),
		GRPCAddr:        envOr("LEDGER_GRPC_ADDR", "localhost:50051"),
		LogLevel:        envOr("LEDGER_LOG_LEVEL", "info"),
		LogFormat:       envOr("LEDGER_LOG_FORMAT", "json"),
		DBMaxConns:      envInt("LEDGER_DB_MAX_CONNS", 32),
		MaxBatch:        envInt("LEDGER_MAX_BATCH", 512),
		Committers:      envInt("LEDGER_COMMITTERS", 2),
		ShutdownTimeout: envDuration("LEDGER_SHUTDOWN_TIMEOUT", 30*time.Second),
		PaymentTimeout:  envDuration("LEDGER_PAYMENT_TIMEOUT", 24*time.Hour),
		TLSCert:         os.Getenv("LEDGER_TLS_CERT"),
		TLSKey:          os.Getenv("LEDGER_TLS_KEY"),
		TLSClientCA:     os.Getenv("LEDGER_TLS_CLIENT_CA"),
		Plaintext:       os.Getenv("LEDGER_PLAINTEXT") == "true",
	}
	if f := os.Getenv("LEDGER_DATABASE_URL_FILE"); f != "" && c.DatabaseURL == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return c, fmt.Errorf("read LEDGER_DATABASE_URL_FILE: %w", err)
		}
		c.DatabaseURL = string(trimSpace(b))
	}
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (LEDGER_GRPC_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (LEDGER_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (LEDGER_LOG_FORMAT)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", c.DBMaxConns, "database pool size (LEDGER_DB_MAX_CONNS)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most writes per committed transaction (LEDGER_MAX_BATCH)")
	fs.IntVar(&c.Committers, "committers", c.Committers, "batches in flight at once (LEDGER_COMMITTERS)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight calls may take to finish on shutdown (LEDGER_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.PaymentTimeout, "payment-timeout", c.PaymentTimeout, "how long a stall-recorded payment waits for the bank before it expires (LEDGER_PAYMENT_TIMEOUT)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate file, PEM (LEDGER_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS private key file, PEM (LEDGER_TLS_KEY)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "CA file for client certificates; set, it requires mutual TLS (LEDGER_TLS_CLIENT_CA)")
	fs.BoolVar(&c.Plaintext, "plaintext", c.Plaintext, "serve without TLS, for local use only (LEDGER_PLAINTEXT=true)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("LEDGER_DATABASE_URL is not set: name the PostgreSQL database (make run starts a local one and sets it)")
	}
	if err := c.check(); err != nil {
		return c, err
	}
	return c, nil
}

// check refuses values that parse but cannot work, so that ledgerd stops at
// start-up naming the setting rather than failing every call that uses it.
func (c config) check() error {
	// The ledger refuses a pending entry whose timeout is outside these
	// bounds, so a payment timeout outside them would fail every
	// stall-recorded payment on a field the stall app never sent.
	if c.PaymentTimeout < time.Second || c.PaymentTimeout > ledger.MaxPendingTimeout {
		return fmt.Errorf("--payment-timeout (LEDGER_PAYMENT_TIMEOUT): must be between 1s and %s, got %s", ledger.MaxPendingTimeout, c.PaymentTimeout)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
