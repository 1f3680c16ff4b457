package api_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/api"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// env is a real ledgerd stack for one test: its own database, the ledger,
// a gRPC server on a loopback port and a client connected to it.
type env struct {
	db        *pgtest.DB
	ledger    *ledger.Ledger
	conn      *grpc.ClientConn
	client    pb.LedgerServiceClient
	merchants pb.MerchantServiceClient
	payments  pb.PaymentServiceClient
	settle    pb.SettlementServiceClient

	creds *access.Store
	addr  string
	srv   *api.Server

	mu    sync.Mutex
	clock time.Time
}

// bearer sends a credential's secret with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dial connects to the env's server presenting secret ("" presents none).
func (e *env) dial(t *testing.T, secret string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if secret != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(secret)))
	}
	conn, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// now is the env's clock: real time plus whatever advance added, so tests
// can expire pending payments without waiting.
func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Now().Add(e.clock.Sub(time.Time{}))
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
}

func newEnv(t *testing.T, opts ledger.Options) *env {
	t.Helper()
	return newEnvWith(t, opts)
}

// newEnvWith is newEnv with options for the gRPC server, e.g. TLS.
func newEnvWith(t *testing.T, opts ledger.Options, serverOpts ...grpc.ServerOption) *env {
	t.Helper()
	return newEnvOn(t, pgtest.New(t), opts, serverOpts...)
}

// newEnvOn is newEnvWith on a database of the caller's, whose pool the
// whole stack uses.
func newEnvOn(t *testing.T, db *pgtest.DB, opts ledger.Options, serverOpts ...grpc.ServerOption) *env {
	t.Helper()
	e := &env{db: db}
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = -1
	}
	opts.Now = e.now
	opts.Projectors = append(opts.Projectors, settlement.Projectors()...)
	l := ledger.New(db.Pool, opts)
	merchants := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, merchants, payment.Options{Now: e.now})
	settle := settlement.NewService(db.Pool, l, merchants, settlement.Options{Now: e.now})
	creds := access.NewStore(db.Pool, e.now)
	audit := access.NewAudit(db.Pool, slog.Default())
	// As ledgerd does: a statement of up to 10 MiB fits in a request.
	serverOpts = append([]grpc.ServerOption{grpc.MaxRecvMsgSize(api.MaxRecvMsgBytes)}, serverOpts...)
	srv := api.NewServer(api.Services{Credentials: creds, Audit: audit, Ledger: l, Merchants: merchants, Payments: payments, Settlement: settle}, serverOpts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.GRPC.Serve(lis) //nolint:errcheck // ends with Stop below
	// The env's own client acts as the operator; role tests dial with
	// other credentials.
	_, secret, err := creds.Issue(context.Background(), access.IssueRequest{Name: "test operator", Role: access.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	e.creds, e.addr, e.srv = creds, lis.Addr().String(), srv
	conn := e.dial(t, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.GRPC.Stop()
		l.Close()
		audit.Close()
	})
	e.ledger, e.conn = l, conn
	e.client = pb.NewLedgerServiceClient(conn)
	e.merchants = pb.NewMerchantServiceClient(conn)
	e.payments = pb.NewPaymentServiceClient(conn)
	e.settle = pb.NewSettlementServiceClient(conn)
	return e
}

func (e *env) account(t *testing.T, code string, typ pb.AccountType, currency, market string, noOverdraft bool) {
	t.Helper()
	_, err := e.client.CreateAccount(context.Background(), &pb.CreateAccountRequest{
		Code: code, Type: typ, Currency: currency, Market: market, DebitsMustNotExceedCredits: noOverdraft,
	})
	if err != nil {
		t.Fatalf("create account %s: %v", code, err)
	}
}

func (e *env) checkInvariants(t *testing.T) {
	t.Helper()
	v, err := ledger.CheckInvariants(context.Background(), e.db.Pool)
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
	for _, x := range v {
		t.Errorf("invariant broken: %s", x)
	}
}

func posting(code string, dir pb.Direction, amount string) *pb.PostingInput {
	return &pb.PostingInput{AccountCode: code, Direction: dir, Amount: amount}
}

const (
	debit  = pb.Direction_DIRECTION_DEBIT
	credit = pb.Direction_DIRECTION_CREDIT
)

func ledgerOptions() ledger.Options { return ledger.Options{} }

// TestMain keeps the per-call log lines out of test output; failures are
// reported by the tests themselves.
func TestMain(m *testing.M) {
	// Errors only; a test may watch its own server's (watchServerLog).
	slog.SetDefault(slog.New(watchingHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})}))
	os.Exit(m.Run())
}

// propertySeed is the seed a property test runs with: seed, unless the
// environment variable name gives another. A failure logs it, so that
// name=seed replays the run.
func propertySeed(t *testing.T, name string, seed uint64) uint64 {
	t.Helper()
	if s := os.Getenv(name); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (%s=%d replays it)", seed, name, seed)
		}
	})
	return seed
}
