package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// The payment timeouts ledgerd accepts are the ones the ledger accepts: a
// stall payment is recorded at either bound.
func TestStallPaymentAtPaymentTimeoutBounds(t *testing.T) {
	db := pgtest.New(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	ctx := context.Background()
	for i, timeout := range []string{"1s", ledger.MaxPendingTimeout.String()} {
		cfg, err := loadConfig([]string{"--payment-timeout=" + timeout})
		if err != nil {
			t.Fatal(err)
		}
		app, err := open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(app.close)
		if i == 0 {
			if _, err := app.merchants.CreateMarket(ctx, merchant.Market{Code: "TN-TEST", Name: "Chợ Thử", Province: "Thái Nguyên", Ward: "Phường Thử"}); err != nil {
				t.Fatal(err)
			}
			if _, err := app.merchants.CreateMerchant(ctx, merchant.Merchant{
				Code: "TN-TEST-0001", Market: "TN-TEST", Stalls: []string{"A-001"}, DisplayName: "Hàng rau", Owner: "Nguyễn Thị Lan", Phone: "0912345678",
				Payout:   &merchant.BankAccount{BankBIN: "970436", AccountNumber: "0011001234567", HolderName: "NGUYEN THI LAN"},
				Channels: []merchant.Channel{merchant.ChannelVietQR},
			}); err != nil {
				t.Fatal(err)
			}
		}
		p, _, err := app.payments.Record(ctx, payment.RecordRequest{
			Key: "stall-" + timeout, Merchant: "TN-TEST-0001", Channel: merchant.ChannelVietQR,
			Amount: decimal.NewFromInt(50000), Source: payment.SourceStall,
		})
		if err != nil {
			t.Fatalf("payment timeout %s: stall payment refused: %v", timeout, err)
		}
		if p.Status != payment.StatusPending {
			t.Errorf("payment timeout %s: status %s, want pending", timeout, p.Status)
		}
		app.close()
	}
}

// A word on the command line that is neither a command nor a flag stops
// ledgerd naming it, before anything is served: a mistyped command was read
// as serve ("ledgerd migrat" served, with LEDGER_PLAINTEXT set), and a word
// after a command went unread. demo-credentials takes flags before its FILE,
// as every command does.
func TestRunRefusesUnknownWords(t *testing.T) {
	for _, args := range [][]string{
		{"migrat"},
		{"--plaintext", "sed"},
		{"serve", "extra"},
		{"migrate", "extra"},
		{"seed", "--log-level=warn", "extra"},
		{"demo-credentials", "extra", "creds.env"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			isolate(t)
			t.Setenv("LEDGER_PLAINTEXT", "true")
			word := args[len(args)-1]
			if args[0] == "demo-credentials" {
				word = args[1]
			}
			err := run(args)
			if err == nil || !strings.Contains(err.Error(), "unknown command or argument "+fmt.Sprintf("%q", word)) {
				t.Fatalf("ledgerd %s: got %v; want it refused naming %q", strings.Join(args, " "), err, word)
			}
		})
	}

	db := pgtest.New(t)
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	file := filepath.Join(t.TempDir(), "creds.env")
	if err := run([]string{"demo-credentials", "--log-level=warn", file}); err != nil {
		t.Fatalf("ledgerd demo-credentials --log-level=warn FILE: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), "export CHOLEDGER_ADMIN=") {
		t.Fatalf("demo credentials file: %q, %v", b, err)
	}
}

// ledgerd -help, which the README gives to list the flags, lists them and
// succeeds, as -h does; it ended "ledgerd: flag: help requested", status 1,
// as if the flags were wrong.
func TestHelpIsNoError(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"-help"}, {"-h"}, {"serve", "--help"}, {"migrate", "-h"}} {
		if err := run(args); err != nil {
			t.Errorf("ledgerd %s: %v; want the usage and no error", strings.Join(args, " "), err)
		}
	}
}

// demo-credentials takes its FILE after its flags, so a last word that is
// a flag is that flag, and no file: "ledgerd demo-credentials -h" issued
// four credentials, an operator's among them, that never expire, and wrote
// their secrets to a file named "-h".
func TestDemoCredentialsFlagIsNoFile(t *testing.T) {
	db := pgtest.New(t)
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	t.Chdir(t.TempDir())
	if err := run([]string{"demo-credentials", "-h"}); err != nil {
		t.Errorf("ledgerd demo-credentials -h: %v; want the usage", err)
	}
	for _, args := range [][]string{{"--plaintext"}, {"--log-level", "warn"}} {
		if err := run(append([]string{"demo-credentials"}, args...)); err == nil {
			t.Errorf("ledgerd demo-credentials %s: no error; want it refused for want of FILE", strings.Join(args, " "))
		}
	}
	if files, err := os.ReadDir("."); err != nil || len(files) > 0 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Errorf("files written: %q, %v; want none", names, err)
	}
	var issued int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM credentials`).Scan(&issued); err != nil {
		t.Fatal(err)
	}
	if issued != 0 {
		t.Errorf("%d credentials issued; want none", issued)
	}
}

// demo-credentials keeps its file only while every credential in it
// works. It looked at the operator's alone: once the demo bank's was
// revoked (as trying RevokeCredential does), every later make run said
// "demo credentials kept", and the README's bank calls were refused
// Unauthenticated for good.
func TestDemoCredentialsReplacedWhenOneStopsWorking(t *testing.T) {
	db := pgtest.New(t)
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "creds.env")
	secrets := func() map[string]string {
		t.Helper()
		if err := run([]string{"demo-credentials", "--log-level=warn", file}); err != nil {
			t.Fatalf("ledgerd demo-credentials: %v", err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if name, secret, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && !strings.HasPrefix(line, "#") {
				out[name] = strings.Trim(secret, "'")
			}
		}
		return out
	}
	creds := access.NewStore(db.Pool, nil)
	first := secrets()
	if again := secrets(); again["CHOLEDGER_BANK"] != first["CHOLEDGER_BANK"] {
		t.Fatal("working demo credentials were replaced")
	}
	bank, err := creds.Authenticate(ctx, first["CHOLEDGER_BANK"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creds.Revoke(ctx, bank.CredentialID); err != nil {
		t.Fatal(err)
	}
	for name, secret := range secrets() {
		if _, err := creds.Authenticate(ctx, secret); err != nil {
			t.Errorf("%s in the demo credentials file after the bank's was revoked: %v", name, err)
		}
	}
}

// The demo bank pays out at VCB, as the README's payout batch does. A file
// written before credentials were bound to a settlement bank holds a bank
// credential of none, which still works but is refused that batch: it is
// replaced.
func TestDemoBankCredentialIsVCBs(t *testing.T) {
	db := pgtest.New(t)
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "creds.env")
	creds := access.NewStore(db.Pool, nil)
	var b strings.Builder
	for _, r := range []access.IssueRequest{
		{Name: "demo operator", Role: access.RoleAdmin},
		{Name: "demo stall app", Role: access.RoleMerchant, Merchant: "TN-DAITU-0001"},
		{Name: "demo VietQR bank", Role: access.RoleBank, Provider: "napas"},
		{Name: "demo auditor", Role: access.RoleAuditor},
	} {
		_, secret, err := creds.Issue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		env := map[access.Role]string{access.RoleAdmin: "CHOLEDGER_ADMIN", access.RoleMerchant: "CHOLEDGER_MERCHANT", access.RoleBank: "CHOLEDGER_BANK", access.RoleAuditor: "CHOLEDGER_AUDITOR"}[r.Role]
		fmt.Fprintf(&b, "export %s='%s'\n", env, secret)
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"demo-credentials", "--log-level=warn", file}); err != nil {
		t.Fatalf("ledgerd demo-credentials: %v", err)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(written), "\n") {
		if secret, ok := strings.CutPrefix(line, "export CHOLEDGER_BANK="); ok {
			p, err := creds.Authenticate(ctx, strings.Trim(secret, "'"))
			if err != nil || p.Provider != "napas" || p.Bank != "vcb" {
				t.Errorf("the demo bank: %+v, %v; want NAPAS's at VCB", p, err)
			}
			return
		}
	}
	t.Fatalf("no CHOLEDGER_BANK in %q", written)
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// ledgerd is serve running in the test on a database of its own.
type ledgerd struct {
	addr           string
	admin, auditor string // credentials' secrets
	shutdown       context.CancelFunc
	served         chan error
	client         func(secret string) pb.LedgerServiceClient
	postedEntry    *pb.Entry
}

// startLedgerd serves on a free port with args, and posts one entry.
func startLedgerd(t *testing.T, args ...string) *ledgerd {
	t.Helper()
	db := pgtest.New(t)
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	d := &ledgerd{addr: freeAddr(t), served: make(chan error, 1)}
	cfg, err := loadConfig(append([]string{"--grpc-addr=" + d.addr, "--plaintext", "--shutdown-timeout=20s"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	creds := access.NewStore(db.Pool, nil)
	if _, d.admin, err = creds.Issue(context.Background(), access.IssueRequest{Name: "operator", Role: access.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if _, d.auditor, err = creds.Issue(context.Background(), access.IssueRequest{Name: "auditor", Role: access.RoleAuditor}); err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, d.shutdown = context.WithCancel(context.Background())
	t.Cleanup(d.shutdown)
	go func() { d.served <- serve(ctx, cfg, insecure.NewCredentials()) }()

	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.client = func(secret string) pb.LedgerServiceClient {
		conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(secret)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewLedgerServiceClient(conn)
	}
	operator := d.client(d.admin)
	for _, a := range []*pb.CreateAccountRequest{
		{Code: "cash:M1", Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: "M1"},
		{Code: "payable:M1", Type: pb.AccountType_ACCOUNT_TYPE_LIABILITY, Currency: "VND", Market: "M1"},
	} {
		if _, err := operator.CreateAccount(cctx, a, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	posted, err := operator.PostEntry(cctx, &pb.PostEntryRequest{
		IdempotencyKey: "sale-1", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{
			{AccountCode: "cash:M1", Direction: pb.Direction_DIRECTION_DEBIT, Amount: "10000"},
			{AccountCode: "payable:M1", Direction: pb.Direction_DIRECTION_CREDIT, Amount: "10000"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.postedEntry = posted.Entry
	return d
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// On SIGTERM serve ends an auditor's following StreamEntries, telling it
// where to resume, and returns at once instead of waiting out its shutdown
// timeout for a call that never ends by itself.
func TestServeShutdownEndsFollowingStream(t *testing.T) {
	d := startLedgerd(t, "--metrics-addr=off")
	posted, shutdown, served := d.postedEntry, d.shutdown, d.served
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := d.client(d.auditor).StreamEntries(cctx, &pb.StreamEntriesRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.Entry.Id != posted.Id {
		t.Fatalf("stream: got %v, %v; want entry %s", msg, err, posted.Id)
	}

	start := time.Now()
	shutdown()
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != fmt.Sprintf("server shutting down; resume from sequence %d", posted.Sequence+1) {
		t.Errorf("following stream ended with %v; want Unavailable naming the sequence to resume from", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("serve took %s to shut down", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
}

// serve exposes its calls, its committers and its database pool to
// Prometheus on the metrics address.
func TestServeExposesMetrics(t *testing.T) {
	metricsAddr := freeAddr(t)
	d := startLedgerd(t, "--metrics-addr="+metricsAddr)
	if _, err := d.client(d.auditor).GetBalance(context.Background(), &pb.GetBalanceRequest{AccountCode: "no:such"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetBalance of no account: %v", err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s %q, %v", resp.Status, resp.Header.Get("Content-Type"), err)
	}
	for _, want := range []string{
		`choledger_grpc_requests_total{method="/choledger.v1.LedgerService/PostEntry",code="OK"} 1`,
		`choledger_grpc_requests_total{method="/choledger.v1.LedgerService/CreateAccount",code="OK"} 2`,
		`choledger_grpc_requests_total{method="/choledger.v1.LedgerService/GetBalance",code="NotFound"} 1`,
		`choledger_grpc_request_duration_seconds_count{method="/choledger.v1.LedgerService/PostEntry"} 1`,
		"choledger_ledger_rounds_total 1\n",
		"choledger_ledger_entries_total 1\n",
		"choledger_db_connections_max ",
		"choledger_heavy_reads_running 0\n",
		"choledger_heavy_reads_waiting 0\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// A following StreamEntries its client gives up on is counted as the
// client was answered, Canceled, not as a stream that ended OK.
func TestServeCountsAFollowerThatLeftAsCanceled(t *testing.T) {
	metricsAddr := freeAddr(t)
	d := startLedgerd(t, "--metrics-addr="+metricsAddr)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := d.client(d.auditor).StreamEntries(cctx, &pb.StreamEntriesRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.Entry.Id != d.postedEntry.Id {
		t.Fatalf("stream: got %v, %v; want entry %s", msg, err, d.postedEntry.Id)
	}
	cancel()

	const counted = `choledger_grpc_requests_total{method="/choledger.v1.LedgerService/StreamEntries",`
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.Lines(string(body)) {
			if strings.HasPrefix(l, counted) {
				line = strings.TrimSpace(l)
			}
		}
	}
	if want := counted + `code="Canceled"} 1`; line != want {
		t.Errorf("the follower that left is counted as %q; want %q", line, want)
	}
}
