// Command ledgerbench is choledger's benchmark: it drives real gRPC load at
// a running ledgerd, then checks against the database that every write it
// saw acknowledged is in the ledger exactly once and that the ledger's
// invariants hold, measures pgbench on the same PostgreSQL cluster as the
// yardstick, and reports throughput, latency per RPC, the server's peak
// memory and the database's growth per payment.
//
//	ledgerbench -addr localhost:50061 -credentials .run/bench-credentials.env \
//	    -database-url "$LEDGER_DATABASE_URL" -scenario all -duration 20s -out docs/performance.md
//
// `make bench` runs it against a private ledgerd and database, which
// `ledgerbench recreate-database URL` drops and creates before the seed.
// `make bench-settlement` runs the settlement scenarios (-report
// settlement) against a database that `ledgerbench fill-history` (see
// history.go) has filled with weeks of market days. Scenarios:
//
//	direct      bank-direct payments, one RecordPayment each
//	twostep     stall RecordPayment, then bank ConfirmPayment (a unit is the pair)
//	bulk        bank RecordPayments of -bulk-size payments per call
//	hot         every client pays the one busiest stall; its payable must move
//	            by exactly the acknowledged nets
//	mixed       stall+confirm, bank-direct, refunds and reads
//	settlement         GetMerchantSettlement over -settlement-days days
//	settlement-market  GetMarketSettlement over the same days
//
// It exits non-zero when a check fails or the server answered Internal,
// Unknown or DataLoss; missed performance targets are reported, not fatal.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "recreate-database" {
		if err := recreateDatabase(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "ledgerbench:", err)
			os.Exit(2)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "fill-history" {
		if err := fillHistory(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "ledgerbench fill-history:", err)
			os.Exit(1)
		}
		return
	}
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

// config is every setting of a run.
type config struct {
	Addr            string
	CredentialsFile string
	Concurrency     int
	BulkConcurrency int
	BulkSize        int
	Duration        time.Duration
	Warmup          time.Duration
	Scenarios       []string
	RPCTimeout      time.Duration
	BulkTimeout     time.Duration
	MaxOps          int
	Conns           int
	DatabaseURL     string
	ServerPID       int
	Pgbench         string
	PgbenchScale    int
	PgbenchTPS      float64
	Out             string
	Wait            time.Duration
	Seed            uint64
	Note            string
	// The settlement scenarios: the period, and the clients of each run
	// (one run per number; default -concurrency).
	SettlementDays    int
	SettlementEnd     string
	SettlementClients []int
	// Report is "bench" (the write scenarios' report, `make bench`) or
	// "settlement" (`make bench-settlement`): which section of -out a run
	// rewrites, and what it measures besides the scenarios.
	Report string
}

var allScenarios = []string{"direct", "twostep", "bulk", "hot", "mixed", "settlement", "settlement-market"}

func isSettlement(scenario string) bool { return strings.HasPrefix(scenario, "settlement") }

func loadConfig(args []string) (config, error) {
	c := config{DatabaseURL: os.Getenv("LEDGER_DATABASE_URL")}
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "localhost:50051", "ledgerd gRPC address; must be a loopback address")
	fs.StringVar(&c.CredentialsFile, "credentials", "", "credentials `file` as ledgerd demo-credentials writes it (export CHOLEDGER_ADMIN='...'); without it, CHOLEDGER_ADMIN, CHOLEDGER_BANK and CHOLEDGER_AUDITOR from the environment")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "clients, each making one call at a time")
	fs.IntVar(&c.BulkConcurrency, "bulk-concurrency", 8, "clients of the bulk scenario (each call carries -bulk-size payments)")
	fs.IntVar(&c.BulkSize, "bulk-size", 500, "payments per RecordPayments call")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured time per scenario (and pgbench's -T)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "load before the measurement window of each scenario, not counted")
	scen := fs.String("scenario", "all", "comma-separated scenarios, or all: "+strings.Join(allScenarios, ","))
	fs.DurationVar(&c.RPCTimeout, "rpc-timeout", 10*time.Second, "deadline of each call")
	fs.DurationVar(&c.BulkTimeout, "bulk-timeout", 60*time.Second, "deadline of each RecordPayments call")
	fs.IntVar(&c.MaxOps, "max-ops", 2_000_000, "most operations per scenario, whatever the duration")
	fs.IntVar(&c.Conns, "conns", 4, "gRPC connections the clients share")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "ledgerd's database, for the checks and the growth measurement (LEDGER_DATABASE_URL)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "ledgerd's process id, for its peak memory; 0 finds the ledgerd listening on -addr")
	fs.StringVar(&c.Pgbench, "pgbench", "", "pgbench binary; empty finds it on PATH or in /usr/lib/postgresql/*/bin")
	fs.IntVar(&c.PgbenchScale, "pgbench-scale", 10, "pgbench -i scale")
	fs.Float64Var(&c.PgbenchTPS, "pgbench-tps", 0, "use this pgbench tps instead of measuring it")
	fs.StringVar(&c.Out, "out", "", "markdown file whose results section to rewrite (e.g. docs/performance.md); its prose is kept")
	fs.DurationVar(&c.Wait, "wait", 60*time.Second, "how long to wait for ledgerd to report SERVING")
	fs.Uint64Var(&c.Seed, "seed", 20261120, "random seed of merchants and amounts")
	fs.StringVar(&c.Note, "note", "", "a line for the report, e.g. the ledgerd settings of the run")
	fs.IntVar(&c.SettlementDays, "settlement-days", 31, "days of the period the settlement scenarios report")
	fs.StringVar(&c.SettlementEnd, "settlement-end", "today", "last day of that period: today, yesterday or YYYY-MM-DD (Asia/Ho_Chi_Minh)")
	clients := fs.String("settlement-clients", "", "comma-separated client counts, one run of each settlement scenario per count; default -concurrency")
	fs.StringVar(&c.Report, "report", "bench", "bench (the write scenarios, pgbench, growth, every write checked) or settlement (the settlement scenarios on a filled ledger: its size and history instead)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Report != "bench" && c.Report != "settlement" {
		return c, fmt.Errorf("-report %q: want bench or settlement", c.Report)
	}
	for _, f := range strings.Split(*clients, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return c, fmt.Errorf("-settlement-clients %q: want positive numbers", *clients)
		}
		c.SettlementClients = append(c.SettlementClients, n)
	}
	switch {
	case (*scen == "all" || *scen == "") && c.Report == "settlement":
		c.Scenarios = []string{"settlement", "settlement-market"}
	case *scen == "all" || *scen == "":
		c.Scenarios = allScenarios
	default:
		for _, s := range strings.Split(*scen, ",") {
			s = strings.TrimSpace(s)
			if !contains(allScenarios, s) {
				return c, fmt.Errorf("unknown scenario %q: use %s or all", s, strings.Join(allScenarios, ","))
			}
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	switch {
	case c.Concurrency < 1 || c.BulkConcurrency < 1 || c.Conns < 1:
		return c, errors.New("-concurrency, -bulk-concurrency and -conns must be at least 1")
	case c.BulkSize < 1 || c.BulkSize > 1000:
		return c, errors.New("-bulk-size must be 1 to 1000 (the API's limit)")
	case c.Duration < time.Second:
		return c, errors.New("-duration must be at least 1s")
	case c.MaxOps < 1:
		return c, errors.New("-max-ops must be at least 1")
	case c.DatabaseURL == "":
		return c, errors.New("no database: pass -database-url or set LEDGER_DATABASE_URL (the checks need it)")
	case c.Report == "settlement" && slices.ContainsFunc(c.Scenarios, func(s string) bool { return !isSettlement(s) }):
		return c, errors.New("-report settlement runs only the settlement scenarios")
	}
	if len(c.SettlementClients) == 0 {
		c.SettlementClients = []int{c.Concurrency}
	}
	return c, checkLoopback(c.Addr)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkLoopback refuses an address that is not this machine's loopback: the
// bench is for a private ledgerd, never for a shared one.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-addr %q resolves to %s, not a loopback address: ledgerbench loads a local ledgerd only", addr, ip)
		}
	}
	return nil
}

// readCredentials reads the secrets from the file, else the environment.
func readCredentials(file string) (map[string]string, error) {
	out := map[string]string{}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			line := strings.TrimSpace(s.Text())
			name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			out[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `'"`)
		}
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
	}
	for _, name := range []string{"CHOLEDGER_ADMIN", "CHOLEDGER_BANK", "CHOLEDGER_AUDITOR"} {
		if out[name] == "" {
			out[name] = os.Getenv(name)
		}
	}
	for _, name := range []string{"CHOLEDGER_ADMIN", "CHOLEDGER_BANK"} {
		if out[name] == "" {
			return nil, fmt.Errorf("credentials: %s is not set (pass -credentials .run/credentials.env or export it)", name)
		}
	}
	if out["CHOLEDGER_AUDITOR"] == "" {
		out["CHOLEDGER_AUDITOR"] = out["CHOLEDGER_ADMIN"] // reads as the operator
	}
	return out, nil
}

// bench is a run's shared state.
type bench struct {
	cfg                  config
	conns                []*grpc.ClientConn
	admin, bank, auditor principal
	merchants            *merchantPicker
	hot                  stall
	settle               *settlementPlan
	runID                string
	db                   *pgxpool.Pool
	dbName               string
	serverPID            int
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ledgerbench: "+format+"\n", args...)
}

func run(args []string) (int, error) {
	cfg, err := loadConfig(args)
	if err != nil {
		return 2, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	secrets, err := readCredentials(cfg.CredentialsFile)
	if err != nil {
		return 2, err
	}
	rep := &report{Config: cfg, Machine: readMachine(), Started: time.Now(), LoadStart: loadAvg()}
	b := &bench{cfg: cfg, runID: strconv.FormatInt(time.Now().UnixMilli(), 36)}
	for range cfg.Conns {
		conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return 2, err
		}
		defer conn.Close()
		b.conns = append(b.conns, conn)
	}
	if err := b.waitServing(ctx); err != nil {
		return 2, err
	}
	b.db, err = connectDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return 2, err
	}
	defer b.db.Close()
	if rep.Server, err = readServerInfo(ctx, b.db); err != nil {
		return 2, err
	}
	b.dbName = rep.Server.Database
	b.serverPID = cfg.ServerPID
	if b.serverPID == 0 {
		if b.serverPID, err = findServer(cfg.Addr); err != nil {
			rep.RSSError = err.Error()
		}
	}
	if err := b.principals(ctx, secrets); err != nil {
		return 2, err
	}
	b.merchants = newMerchantPicker()
	b.hot = b.merchants.busiest()
	rep.HotMerchant, rep.Merchants, rep.Top10Share = b.hot.code, len(b.merchants.stalls), b.merchants.share(10)
	if err := b.checkSeeded(ctx); err != nil {
		return 2, err
	}
	if slices.ContainsFunc(cfg.Scenarios, isSettlement) {
		if b.settle, err = newSettlementPlan(b.merchants, cfg.SettlementDays, cfg.SettlementEnd, time.Now()); err != nil {
			return 2, err
		}
		rep.Settlement = b.settle
		if rep.Ledger, err = readLedgerInfo(ctx, b.db); err != nil {
			return 2, err
		}
	}

	// A settlement run only reads: no growth to measure, no writes to check.
	var first, prev dbState
	if cfg.Report == "bench" {
		if first, err = snapshot(ctx, b.db); err != nil {
			return 2, err
		}
		prev = first
	}
	all := &ackSet{}
	for _, name := range cfg.Scenarios {
		clients := []int{cfg.Concurrency}
		if isSettlement(name) {
			clients = cfg.SettlementClients
		}
		for _, n := range clients {
			if ctx.Err() != nil {
				return 2, ctx.Err()
			}
			res, acks, err := b.scenario(ctx, name, n)
			if err != nil {
				return 2, fmt.Errorf("scenario %s: %w", name, err)
			}
			if res.Skipped == "" && acks != nil {
				cur, err := snapshot(ctx, b.db)
				if err != nil {
					return 2, err
				}
				res.Growth = growth{Bytes: cur.Size - prev.Size, Payments: cur.Payments - prev.Payments}
				prev = cur
				all.merge(acks)
			}
			rep.Scenarios = append(rep.Scenarios, res)
			b.logf("%s", res.line())
		}
	}
	rep.Growth = growth{Bytes: prev.Size - first.Size, Payments: prev.Payments - first.Payments}

	if b.settle != nil {
		b.logf("comparing settlement reports with the ledger's balances and market reports with their merchant lines")
		rep.CrossChecked, rep.CrossProblems = b.settlementCrossCheck(ctx, b.settle)
	}
	if cfg.Report == "bench" {
		b.logf("verifying %d acknowledged writes and the ledger's invariants", len(all.keys))
		if rep.Verify, err = verify(ctx, b.db, all); err != nil {
			return 2, err
		}
	}

	if pid := b.serverPID; pid != 0 {
		if rep.PeakRSS, rep.RSS, err = memOf(pid); err != nil {
			rep.RSSError = err.Error()
		}
	}

	if cfg.Report == "bench" {
		if rep.Pgbench, err = runPgbench(ctx, cfg, b.db, b.logf); err != nil {
			rep.Pgbench.Skipped = "failed: " + err.Error()
			b.logf("pgbench: %v", err)
		}
	}
	rep.LoadEnd, rep.Finished = loadAvg(), time.Now()

	md, section := rep.markdown(), benchSection
	if cfg.Report == "settlement" {
		md, section = rep.settlementMarkdown(), settlementSection
	}
	fmt.Print(md)
	for _, t := range rep.targets() {
		fmt.Println(t.line())
	}
	if cfg.Out != "" {
		if err := writeSection(cfg.Out, section, md); err != nil {
			return 2, err
		}
		b.logf("results written to %s", cfg.Out)
	}
	if failures := rep.failures(); len(failures) > 0 {
		for _, f := range failures {
			fmt.Fprintln(os.Stderr, "ledgerbench: CHECK FAILED:", f)
		}
		return 1, fmt.Errorf("%d checks failed", len(failures))
	}
	return 0, nil
}

// waitServing waits until ledgerd's health service reports SERVING.
func (b *bench) waitServing(ctx context.Context) error {
	deadline := time.Now().Add(b.cfg.Wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := healthpb.NewHealthClient(b.conns[0]).Check(cctx, &healthpb.HealthCheckRequest{Service: pb.PaymentService_ServiceDesc.ServiceName})
		cancel()
		if pid := b.cfg.ServerPID; pid != 0 {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr != nil {
				return fmt.Errorf("ledgerd (pid %d) is not running: see its log", pid)
			}
		}
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledgerd at %s is not serving PaymentService after %s: %v", b.cfg.Addr, b.cfg.Wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// principals sets up the credentials and the scopes their idempotency keys
// are stored under; the bank's provider and settlement bank are read from
// its credential, as the admin sees it.
func (b *bench) principals(ctx context.Context, secrets map[string]string) error {
	b.admin = newPrincipal("admin", secrets["CHOLEDGER_ADMIN"], "admin")
	b.auditor = newPrincipal("auditor", secrets["CHOLEDGER_AUDITOR"], "")
	id, ok := credentialID(secrets["CHOLEDGER_BANK"])
	if !ok {
		return errors.New("CHOLEDGER_BANK is not a choledger secret (chl_<id>_<random>)")
	}
	client := pb.NewAdminServiceClient(b.conns[0])
	token := ""
	for range 100 {
		cctx, cancel := context.WithTimeout(b.admin.ctx(ctx), 30*time.Second)
		resp, err := client.ListCredentials(cctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_BANK, PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return fmt.Errorf("list bank credentials as the admin: %w", err)
		}
		for _, c := range resp.GetCredentials() {
			if strings.ReplaceAll(c.GetId(), "-", "") != id {
				continue
			}
			if c.GetProvider() != merchant.ChannelVietQR.Provider() {
				return fmt.Errorf("CHOLEDGER_BANK is a credential of provider %q; the bench pays by VietQR and needs provider %q", c.GetProvider(), merchant.ChannelVietQR.Provider())
			}
			if len(c.GetMarkets()) > 0 {
				return fmt.Errorf("CHOLEDGER_BANK is limited to markets %v; the bench pays merchants of every market", c.GetMarkets())
			}
			// Its scope as the API makes it: a bank bound to a settlement
			// bank (the demo's, VCB) keeps its keys apart.
			scope := access.Principal{Role: access.RoleBank, Provider: c.GetProvider(), Bank: c.GetBank()}.Scope()
			b.bank = newPrincipal("bank", secrets["CHOLEDGER_BANK"], scope)
			return nil
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return errors.New("CHOLEDGER_BANK is not among the bank credentials the admin lists")
}

// credentialID is the id part of a secret chl_<32 hex>_<random>.
func credentialID(secret string) (string, bool) {
	rest, ok := strings.CutPrefix(secret, "chl_")
	if !ok || len(rest) < 34 || rest[32] != '_' {
		return "", false
	}
	return rest[:32], true
}

// checkSeeded makes sure the demo data set is loaded: the bench pays its
// merchants.
func (b *bench) checkSeeded(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(b.admin.ctx(ctx), 30*time.Second)
	defer cancel()
	_, err := pb.NewMerchantServiceClient(b.conns[0]).GetMerchant(cctx, &pb.GetMerchantRequest{Code: b.hot.code})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("merchant %s is not in this ledger: load the demo data first (ledgerd seed)", b.hot.code)
	}
	return err
}

// scenario runs one scenario and returns its result and what it saw
// acknowledged (nil when it writes nothing).
func (b *bench) scenario(ctx context.Context, name string, clients int) (scenarioResult, *ackSet, error) {
	res := scenarioResult{Name: name, Clients: clients, Unit: "payments", LoadBefore: loadAvg()}
	sc := &scenarioRun{name: name, clients: clients, timeout: b.cfg.RPCTimeout}
	var op func(*worker)
	switch name {
	case "direct":
		op = opDirect
	case "twostep":
		op, res.Unit = opTwoStep, "pairs"
	case "bulk":
		op = opBulk
		sc.clients, sc.timeout, res.Clients = b.cfg.BulkConcurrency, b.cfg.BulkTimeout, b.cfg.BulkConcurrency
	case "hot":
		op = opHot
	case "mixed":
		op, res.Unit = opMixed, "operations"
	case "settlement":
		op, res.Unit = opSettlement, "reports"
	case "settlement-market":
		op, res.Unit = opMarketSettlement, "reports"
	}
	b.logf("%s: %d clients, %s warm-up, %s measured", name, sc.clients, b.cfg.Warmup, b.cfg.Duration)

	var hotBefore int64
	hotAccount := merchant.PayableAccount(b.hot.code)
	if name == "hot" {
		var err error
		if hotBefore, err = b.balanceOf(ctx, hotAccount); err != nil {
			return res, nil, fmt.Errorf("balance of %s: %w", hotAccount, err)
		}
	}

	b.run(sc, op)
	if !isSettlement(name) {
		var err error
		if res.Rounds, err = readRounds(ctx, b.db, sc.windowStart, sc.windowEnd); err != nil {
			return res, nil, fmt.Errorf("rounds: %w", err)
		}
	}

	res.Elapsed, res.Units, res.Payments = sc.elapsed(), sc.units.Load(), sc.payments.Load()
	res.Resolved, res.Lost, res.Anomalies = sc.resolved, sc.lost, sc.anomalies
	res.Acknowledged = sc.acks.count()
	res.RPCs = summarizeAll(sc.stats)
	res.Checked = sc.checked.Load()
	res.LoadAfter, res.CPU = loadAvg(), sc.cpu
	if name == "hot" {
		after, err := b.balanceOf(ctx, hotAccount)
		if err != nil {
			return res, nil, fmt.Errorf("balance of %s: %w", hotAccount, err)
		}
		res.Hot = &hotCheck{Account: hotAccount, Before: hotBefore, After: after, Expected: sc.acks.net, Payments: len(sc.acks.payments), Unresolved: sc.lost}
	}
	if isSettlement(name) {
		return res, nil, nil
	}
	return res, &sc.acks, nil
}
