package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
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
	MetricsAddr     string // "off": no metrics endpoint
	LogLevel        slog.Level
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

// loadConfig reads the settings from the environment and the flags in
// args. The words after the flags are the command's operands, one for each
// of operands (demo-credentials' FILE); any other is refused.
func loadConfig(args []string, operands ...*string) (config, error) {
	var env envReader
	c := config{
		DatabaseURL:     os.Getenv("LEDGER_DATABASE_URL"),
		GRPCAddr:        env.str("LEDGER_GRPC_ADDR", "localhost:50051"),
		MetricsAddr:     env.str("LEDGER_METRICS_ADDR", "localhost:9464"),
		LogLevel:        env.level("LEDGER_LOG_LEVEL", slog.LevelInfo),
		LogFormat:       env.str("LEDGER_LOG_FORMAT", "json"),
		DBMaxConns:      env.int("LEDGER_DB_MAX_CONNS", 32),
		MaxBatch:        env.int("LEDGER_MAX_BATCH", 512),
		Committers:      env.int("LEDGER_COMMITTERS", 2),
		ShutdownTimeout: env.duration("LEDGER_SHUTDOWN_TIMEOUT", 30*time.Second),
		PaymentTimeout:  env.duration("LEDGER_PAYMENT_TIMEOUT", 24*time.Hour),
		TLSCert:         os.Getenv("LEDGER_TLS_CERT"),
		TLSKey:          os.Getenv("LEDGER_TLS_KEY"),
		TLSClientCA:     os.Getenv("LEDGER_TLS_CLIENT_CA"),
		Plaintext:       env.bool("LEDGER_PLAINTEXT", false),
	}
	if err := errors.Join(env.errs...); err != nil {
		return c, err
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
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "Prometheus metrics listen address, GET /metrics; off for none (LEDGER_METRICS_ADDR)")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (LEDGER_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (LEDGER_LOG_FORMAT)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", c.DBMaxConns, "database pool size (LEDGER_DB_MAX_CONNS)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most writes per committed transaction (LEDGER_MAX_BATCH)")
	fs.IntVar(&c.Committers, "committers", c.Committers, "batches in flight at once (LEDGER_COMMITTERS)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight calls may take to finish on shutdown (LEDGER_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.PaymentTimeout, "payment-timeout", c.PaymentTimeout, "how long a stall-recorded payment waits for the bank before it expires, 1s to 720h (LEDGER_PAYMENT_TIMEOUT)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate file, PEM (LEDGER_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS private key file, PEM (LEDGER_TLS_KEY)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "CA file for client certificates; set, it requires mutual TLS (LEDGER_TLS_CLIENT_CA)")
	fs.BoolVar(&c.Plaintext, "plaintext", c.Plaintext, "serve without TLS, for local use only (LEDGER_PLAINTEXT=true)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	// Parsing stops at the first word that is not a flag: a mistyped
	// command ("ledgerd migrat") would otherwise serve, and a stray word
	// would go unread.
	if fs.NArg() > len(operands) {
		return c, fmt.Errorf("unknown command or argument %q: run ledgerd [serve|migrate|seed] [flags], or ledgerd demo-credentials [flags] FILE", fs.Arg(0))
	}
	for i, o := range operands {
		*o = fs.Arg(i)
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
	var errs []error
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format (LEDGER_LOG_FORMAT): must be json or text, got %q", c.LogFormat))
	}
	atLeastOne := []struct {
		flag, env string
		value     int
	}{
		{"--db-max-conns", "LEDGER_DB_MAX_CONNS", c.DBMaxConns},
		{"--max-batch", "LEDGER_MAX_BATCH", c.MaxBatch},
		{"--committers", "LEDGER_COMMITTERS", c.Committers},
	}
	for _, s := range atLeastOne {
		if s.value < 1 {
			errs = append(errs, fmt.Errorf("%s (%s): must be at least 1, got %d", s.flag, s.env, s.value))
		}
	}
	// The pool takes its size as an int32.
	if c.DBMaxConns > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("--db-max-conns (LEDGER_DB_MAX_CONNS): must be at most %d, got %d", math.MaxInt32, c.DBMaxConns))
	}
	// An empty address, which only a flag can give, listens on every
	// interface at a port the system picks: the metrics, which take no
	// credential, would be served to anyone, and the gRPC port found by no
	// client.
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("--grpc-addr (LEDGER_GRPC_ADDR): must be an address such as localhost:50051, got none"))
	}
	if c.MetricsAddr == "" {
		errs = append(errs, errors.New("--metrics-addr (LEDGER_METRICS_ADDR): must be an address such as localhost:9464, or off for none, got none"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout (LEDGER_SHUTDOWN_TIMEOUT): must be positive, got %s", c.ShutdownTimeout))
	}
	// The ledger refuses a pending entry whose timeout is outside these
	// bounds, so a payment timeout outside them would fail every
	// stall-recorded payment on a field the stall app never sent.
	if c.PaymentTimeout < time.Second || c.PaymentTimeout > ledger.MaxPendingTimeout {
		errs = append(errs, fmt.Errorf("--payment-timeout (LEDGER_PAYMENT_TIMEOUT): must be between 1s and %s, got %s", ledger.MaxPendingTimeout, c.PaymentTimeout))
	}
	return errors.Join(errs...)
}

// envReader reads settings from the environment. A variable that is unset
// or empty gets its default; one that is set but does not parse is an error
// naming it, never the default in its place.
type envReader struct{ errs []error }

func (e *envReader) str(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) int(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: must be a whole number, got %q", name, v))
		return def
	}
	return n
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: must be a duration with its unit, such as 30s, 15m or 24h, got %q", name, v))
		return def
	}
	return d
}

func (e *envReader) bool(name string, def bool) bool {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: must be true or false, got %q", name, v))
		return def
	}
	return b
}

func (e *envReader) level(name string, def slog.Level) slog.Level {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: must be debug, info, warn or error, got %q", name, v))
		return def
	}
	return l
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
