package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// fill-history writes weeks of market days into an empty benchmark
// database, so that settlement reports can be measured on a ledger of
// millions of postings:
//
//	ledgerbench fill-history -database-url URL -postings 5000000 -days 45
//
// It creates the demo data set's 107 markets and 9,300 merchants (not its
// payments: `ledgerd seed` adds those afterwards, today), then records the
// days through the same code ledgerd runs: the ledger's batching committer
// with ledgerd's projectors (payments, daily rollups, payment totals), the
// payment flows (payment.Service.RecordMany in bulk, Confirm, Reject,
// Refund), settlement.Service for the providers' settlements, and the
// ledger's expiry, all in this process against the database, on a virtual
// clock that walks through the days (clock.go). Rollups, hash chains and
// invariants are therefore real; it ends with ledger.CheckInvariants and
// settlement.CheckRollups and fails if either finds anything.
//
// A ledger's history must come first (recorded_at rises with the
// sequence), so it refuses a database whose ledger has entries, unless
// they are a complete fill of at least as many postings, which it reuses.

type historyConfig struct {
	DatabaseURL  string
	Postings     int64
	Days         int
	LastDay      string
	Seed         uint64
	MaxBatch     int
	Committers   int
	DBConns      int
	BulkSize     int
	BulkInFlight int
	ChunkSpan    time.Duration
	Callers      int
	CheckRollups bool
}

func loadHistoryConfig(args []string) (historyConfig, error) {
	c := historyConfig{DatabaseURL: os.Getenv("LEDGER_DATABASE_URL")}
	fs := flag.NewFlagSet("ledgerbench fill-history", flag.ContinueOnError)
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "the benchmark's database (LEDGER_DATABASE_URL); its name must contain \"bench\"")
	fs.Int64Var(&c.Postings, "postings", 5_000_000, "postings to write, at least")
	fs.IntVar(&c.Days, "days", 45, "market days of history, ending with -last-day")
	fs.StringVar(&c.LastDay, "last-day", "", "last day of the history, YYYY-MM-DD in Asia/Ho_Chi_Minh; default yesterday")
	fs.Uint64Var(&c.Seed, "seed", 20261120, "random seed of the history")
	fs.IntVar(&c.MaxBatch, "max-batch", 512, "the ledger's LEDGER_MAX_BATCH")
	fs.IntVar(&c.Committers, "committers", 2, "the ledger's LEDGER_COMMITTERS")
	fs.IntVar(&c.DBConns, "db-max-conns", 32, "database pool size (LEDGER_DB_MAX_CONNS)")
	fs.IntVar(&c.BulkSize, "bulk-size", 500, "payments and bank notifications per RecordMany call")
	fs.IntVar(&c.BulkInFlight, "bulk-in-flight", 2, "RecordMany calls in flight at once")
	fs.DurationVar(&c.ChunkSpan, "chunk-span", 15*time.Minute, "most virtual time one RecordMany call covers: what it records lands at most this much after it happened, plus the calls in flight")
	fs.IntVar(&c.Callers, "callers", 16, "concurrent single calls (confirmations, rejections, refunds, provider settlements)")
	fs.BoolVar(&c.CheckRollups, "check-rollups", true, "end with settlement.CheckRollups as well as ledger.CheckInvariants")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.DatabaseURL == "":
		return c, errors.New("no database: pass -database-url or set LEDGER_DATABASE_URL")
	case c.Postings < 1 || c.Days < 2:
		return c, errors.New("-postings must be positive and -days at least 2")
	case c.BulkSize < 1 || c.BulkSize > payment.MaxBulk || c.BulkInFlight < 1 || c.Callers < 1:
		return c, fmt.Errorf("-bulk-size must be 1 to %d, -bulk-in-flight and -callers at least 1", payment.MaxBulk)
	}
	return c, nil
}

// historySummary is what a fill did, kept in the database beside the
// history (ledgerbench.history_fills) for the reports of later runs.
type historySummary struct {
	FirstDay, LastDay      string
	Days                   int
	Started, Finished      time.Time
	Markets, Merchants     int
	TargetPostings         int64
	Planned                int64 // payments planned
	Postings, Entries      int64 // in the ledger after the fill
	Payments               int64
	ByFlow                 map[string]int64
	Refunds, Settlements   int64
	Expired                int64
	SetupSeconds           float64 // markets and merchants
	FillSeconds            float64 // the days
	VacuumSeconds          float64
	InvariantsSeconds      float64
	RollupsSeconds         float64 // 0 when not checked
	Violations             int
	FirstViolations        []string
	DatabaseBytes          int64
	MaxBatch, Committers   int
	BulkSize, BulkInFlight int
	ChunkSpan              string
	Callers, DBConns       int
	CPUs                   int
	Memory                 string
	PostgreSQL             string
}

func (s historySummary) postingsPerSecond() float64 {
	return float64(s.Postings) / max(s.FillSeconds, 1e-9)
}
func (s historySummary) paymentsPerSecond() float64 {
	return float64(s.Payments) / max(s.FillSeconds, 1e-9)
}
func (s historySummary) entriesPerSecond() float64 {
	return float64(s.Entries) / max(s.FillSeconds, 1e-9)
}

const historyTable = `ledgerbench.history_fills`

// readHistory returns the database's fill, if it has one, and whether it
// completed with clean checks.
func readHistory(ctx context.Context, db *pgxpool.Pool) (*historySummary, bool, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, historyTable).Scan(&exists); err != nil || !exists {
		return nil, false, err
	}
	var raw []byte
	var finished *time.Time
	err := db.QueryRow(ctx, `SELECT summary, finished_at FROM `+historyTable).Scan(&raw, &finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", historyTable, err)
	}
	s := &historySummary{}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", historyTable, err)
	}
	return s, finished != nil && s.Violations == 0, nil
}

func writeHistory(ctx context.Context, db *pgxpool.Pool, s *historySummary, finished bool) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var fin *time.Time
	if finished {
		fin = &s.Finished
	}
	_, err = db.Exec(ctx, `
INSERT INTO `+historyTable+` (started_at, finished_at, summary) VALUES ($1, $2, $3)
    ON CONFLICT (id) DO UPDATE SET finished_at = EXCLUDED.finished_at, summary = EXCLUDED.summary`, s.Started, fin, raw)
	return err
}

func fillHistory(args []string) error {
	cfg, err := loadHistoryConfig(args)
	if err != nil {
		return err
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	if name := strings.TrimPrefix(u.Path, "/"); !strings.Contains(name, "bench") {
		return fmt.Errorf("refusing to fill database %q: only a benchmark's database (its name contains \"bench\") gets a made-up history", name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "ledgerbench fill-history: "+format+"\n", args...)
	}

	lastDay := settlement.DayOf(time.Now()).AddDays(-1)
	if cfg.LastDay != "" {
		d, ok := settlement.ParseDay(cfg.LastDay)
		if !ok {
			return fmt.Errorf("-last-day %q: want YYYY-MM-DD", cfg.LastDay)
		}
		lastDay = d
	}
	// Later writes (the demo day, ledgerd) are recorded by the real clock:
	// the history must end before it.
	if !lastDay.AddDays(1).Start().Before(time.Now()) {
		return fmt.Errorf("-last-day %s has not ended yet: the history must lie in the past", lastDay)
	}
	firstDay := lastDay.AddDays(-(cfg.Days - 1))

	if _, err := pg.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := pg.Connect(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	prev, complete, err := readHistory(ctx, db)
	if err != nil {
		return err
	}
	switch {
	case complete && prev.Postings >= cfg.Postings:
		logf("reusing the history filled on %s: %s postings, %s to %s (recreate the database for a new one)",
			prev.Finished.UTC().Format(time.DateOnly), group(prev.Postings), prev.FirstDay, prev.LastDay)
		return nil
	case complete:
		return fmt.Errorf("the database holds a history of %s postings, fewer than -postings %s: recreate it", group(prev.Postings), group(cfg.Postings))
	case prev != nil:
		return errors.New("a previous fill of this database did not finish or failed its checks: recreate the database")
	}
	var entries int64
	if err := db.QueryRow(ctx, `SELECT last_seq FROM ledger_head`).Scan(&entries); err != nil {
		return err
	}
	if entries > 0 {
		return fmt.Errorf("the ledger already has %s entries: a history must be the ledger's oldest part (recorded_at rises with the sequence); fill an empty database, before `ledgerd seed`", group(entries))
	}

	sum := &historySummary{
		FirstDay: firstDay.String(), LastDay: lastDay.String(), Days: cfg.Days, Started: time.Now().UTC(), TargetPostings: cfg.Postings,
		MaxBatch: cfg.MaxBatch, Committers: cfg.Committers, BulkSize: cfg.BulkSize, BulkInFlight: cfg.BulkInFlight,
		ChunkSpan: cfg.ChunkSpan.String(), Callers: cfg.Callers, DBConns: cfg.DBConns, ByFlow: map[string]int64{},
	}
	m := readMachine()
	sum.CPUs, sum.Memory = m.CPUs, m.MemTotal
	if err := db.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&sum.PostgreSQL); err != nil {
		return err
	}
	if _, err := db.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS ledgerbench;
CREATE TABLE IF NOT EXISTS `+historyTable+` (
    id          BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    summary     JSONB NOT NULL)`); err != nil {
		return fmt.Errorf("create %s: %w", historyTable, err)
	}
	if err := writeHistory(ctx, db, sum, false); err != nil {
		return err
	}

	h, err := newHistory(ctx, cfg, firstDay, lastDay, logf)
	if err != nil {
		return err
	}
	runErr := h.fill(ctx, sum)
	h.close(context.WithoutCancel(ctx))
	if runErr != nil {
		return runErr
	}

	logf("vacuuming and analyzing")
	start := time.Now()
	if _, err := db.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	sum.VacuumSeconds = time.Since(start).Seconds()
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_postings), (SELECT last_seq FROM ledger_head), (SELECT count(*) FROM payments),
       pg_database_size(current_database())`).Scan(&sum.Postings, &sum.Entries, &sum.Payments, &sum.DatabaseBytes); err != nil {
		return err
	}
	logf("%s postings, %s entries, %s payments in %s: %s postings/s (%s payments/s); database %.2f GiB",
		group(sum.Postings), group(sum.Entries), group(sum.Payments), secs(sum.FillSeconds),
		num(sum.postingsPerSecond()), num(sum.paymentsPerSecond()), float64(sum.DatabaseBytes)/(1<<30))

	logf("checking the ledger's invariants")
	start = time.Now()
	violations, err := ledger.CheckInvariants(ctx, db)
	if err != nil {
		return fmt.Errorf("check invariants: %w", err)
	}
	sum.InvariantsSeconds = time.Since(start).Seconds()
	if cfg.CheckRollups {
		logf("checking the settlement rollups against the journal")
		start = time.Now()
		more, err := settlement.CheckRollups(ctx, db)
		if err != nil {
			return fmt.Errorf("check rollups: %w", err)
		}
		sum.RollupsSeconds = time.Since(start).Seconds()
		violations = append(violations, more...)
	}
	sum.Violations = len(violations)
	for _, v := range violations[:min(len(violations), 10)] {
		sum.FirstViolations = append(sum.FirstViolations, v.String())
	}
	sum.Finished = time.Now().UTC()
	if err := writeHistory(ctx, db, sum, true); err != nil {
		return err
	}
	if len(violations) > 0 {
		for _, v := range sum.FirstViolations {
			fmt.Fprintln(os.Stderr, "ledgerbench fill-history: VIOLATION:", v)
		}
		return fmt.Errorf("the filled ledger has %d invariant or rollup violations", len(violations))
	}
	logf("invariants clean (%s)%s; done in %s", secs(sum.InvariantsSeconds),
		map[bool]string{true: fmt.Sprintf(", rollups match the journal (%s)", secs(sum.RollupsSeconds)), false: ""}[cfg.CheckRollups],
		sum.Finished.Sub(sum.Started).Round(time.Second))
	b, _ := json.MarshalIndent(sum, "", "  ")
	fmt.Println(string(b))
	return nil
}

// dateOf is a day as pgx writes a DATE: midnight UTC of that date.
func dateOf(d settlement.Day) time.Time {
	t, _ := time.Parse(time.DateOnly, d.String())
	return t
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}
