package api_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/choledger/choledger/api"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
)

// env is a real ledgerd stack for one test: its own database, the ledger,
// a gRPC server on a loopback port and a client connected to it.
type env struct {
	db     *pgtest.DB
	ledger *ledger.Ledger
	conn   *grpc.ClientConn
	client pb.LedgerServiceClient
}

func newEnv(t *testing.T, opts ledger.Options) *env {
	t.Helper()
	db := pgtest.New(t)
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = -1
	}
	l := ledger.New(db.Pool, opts)
	srv := api.NewServer(api.Services{Ledger: l})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.GRPC.Serve(lis) //nolint:errcheck // ends with Stop below
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.GRPC.Stop()
		l.Close()
	})
	return &env{db: db, ledger: l, conn: conn, client: pb.NewLedgerServiceClient(conn)}
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
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
