package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// pgLink stands between ledgerd and its database, so that a test can put
// the database out of reach and back.
type pgLink struct {
	url    string // the database's URL through the link
	socket string
	target func() (net.Conn, error)

	mu    sync.Mutex
	lis   net.Listener
	conns []net.Conn
}

func newPGLink(t *testing.T, dbURL string) *pgLink {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(cfg.Port))
	l := &pgLink{target: func() (net.Conn, error) {
		if strings.HasPrefix(cfg.Host, "/") {
			return net.Dial("unix", filepath.Join(cfg.Host, ".s.PGSQL."+port))
		}
		return net.Dial("tcp", net.JoinHostPort(cfg.Host, port))
	}}
	dir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l.socket = filepath.Join(dir, ".s.PGSQL."+port)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("host", dir)
	q.Set("port", port)
	u.Host, u.RawQuery = "", q.Encode()
	l.url = u.String()
	l.restore(t)
	t.Cleanup(l.cut)
	return l
}

// restore lets connections through again.
func (l *pgLink) restore(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("unix", l.socket)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.lis = lis
	l.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			db, err := l.target()
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, c, db)
			l.mu.Unlock()
			go func() { io.Copy(db, c); db.Close() }() //nolint:errcheck // ends when either side closes
			go func() { io.Copy(c, db); c.Close() }()  //nolint:errcheck // ends when either side closes
		}
	}()
}

// cut ends every connection and refuses new ones, as a database down does.
func (l *pgLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lis != nil {
		l.lis.Close()
		l.lis = nil
	}
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// Stopped while its database is out of reach, ledgerd ends within its
// shutdown timeout, logging the audit events it could not write. Calls
// refused meanwhile fill the trail's queue, and then wait for room in it;
// the trail went on retrying each batch for half a minute until Close,
// which came only once those calls had ended, so shutdown waited 30 s a
// batch of a few events past its timeout.
func TestServeEndsInTimeWhileTheDatabaseIsOutOfReach(t *testing.T) {
	db := pgtest.New(t)
	link := newPGLink(t, db.URL)
	// Thousands of refusals and lost events are logged: how long the test's
	// output takes to print them is not what is measured.
	defaultLog := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { slog.SetDefault(defaultLog) })
	isolate(t)
	t.Setenv("LEDGER_DATABASE_URL", link.url)
	addr := freeAddr(t)
	const timeout = 2 * time.Second
	cfg, err := loadConfig([]string{"--grpc-addr=" + addr, "--plaintext", "--metrics-addr=off", "--shutdown-timeout=" + timeout.String()})
	if err != nil {
		t.Fatal(err)
	}
	_, auditor, err := access.NewStore(db.Pool, nil).Issue(context.Background(), access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	ctx, shutdown := context.WithCancel(context.Background())
	defer shutdown()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, insecure.NewCredentials()) }()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(auditor)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewLedgerServiceClient(conn)
	if _, err := client.ListAccounts(ctx, &pb.ListAccountsRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}

	link.cut()
	// Every call is now refused, each refusal an event for the trail, until
	// its queue is full and the calls wait.
	callCtx, stopCalling := context.WithCancel(context.Background())
	defer stopCalling()
	var calls sync.WaitGroup
	for range 64 {
		calls.Add(1)
		go func() {
			defer calls.Done()
			for callCtx.Err() == nil {
				client.GetEntry(callCtx, &pb.GetEntryRequest{Id: "01a21f57-d61a-7b7d-aeaf-0b36ac85abb5"}) //nolint:errcheck // refused, or cut short by shutdown
			}
		}()
	}
	time.Sleep(3 * time.Second)

	start := time.Now()
	shutdown()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		if took := time.Since(start); took > timeout+3*time.Second {
			t.Errorf("serve took %s to stop with a shutdown timeout of %s", took.Round(time.Millisecond), timeout)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Errorf("serve still stopping %s after shutdown, with a shutdown timeout of %s", time.Since(start).Round(time.Millisecond), timeout)
		link.restore(t)
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("serve: %v", err)
		}
	}
	stopCalling()
	calls.Wait()
}
