package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
)

// The database goes away for seconds (a restart, a failover) while banks
// write: every write answered meanwhile is Unavailable, and sent again
// with its key until answered; once the database is back, ledgerd serves
// again without a restart, every key recorded one payment, the merchants
// are owed what the answers add up to, the invariants hold, and the audit
// trail, which kept retrying its batch all along, is written again.
func TestServiceServesAgainAfterAnOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	proxy := newDBProxy(t, db.URL)
	e := newEnvOn(t, &pgtest.DB{Pool: proxy.pool, URL: db.URL, Name: db.Name}, ledgerOptions())
	e.setUpMarket(t)
	merchants := []string{"TN-TEST-0001", "TN-TEST-0002"}

	// Writers send bank notifications, each until it is answered, through
	// the outage.
	const writers = 4
	var (
		mu          sync.Mutex
		ids         = map[string]string{}
		payable     = map[string]int64{}
		refusals    []string
		unavailable int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				m := merchants[i%2]
				amount := strconv.Itoa(10000 + i)
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
					r, err := e.payments.RecordPayment(callCtx, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: m, Channel: pb.Channel_CHANNEL_VIETQR,
						Amount: amount, Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-" + key})
					cancel()
					mu.Lock()
					switch {
					case err == nil && (r.Payment.Amount != amount || r.Payment.Merchant != m):
						refusals = append(refusals, fmt.Sprintf("%s answered %v", key, r.Payment))
					case err == nil:
						ids[key] = r.Payment.Id
						payable[m] += num(r.Payment.ConfirmedAmount) - num(r.Payment.Fee)
					case status.Code(err) != codes.Unavailable || time.Now().After(deadline):
						refusals = append(refusals, fmt.Sprintf("%s: %v", key, err))
					default:
						unavailable++
					}
					mu.Unlock()
					if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
						break
					}
				}
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	proxy.cut()
	// Long enough for the audit writer, which has a batch of the writes
	// answered as the database went, to retry it some 60 times.
	time.Sleep(7 * time.Second)
	proxy.restore()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	for _, r := range refusals {
		t.Error(r)
	}
	if t.Failed() {
		t.FailNow()
	}
	if unavailable == 0 {
		t.Fatal("no write was answered Unavailable: the outage tested nothing")
	}

	var payments int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM payments`).Scan(&payments); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	if payments != len(ids) || len(distinct) != len(ids) {
		t.Errorf("%d keys answered with %d payments; the ledger holds %d", len(ids), len(distinct), payments)
	}
	e.checkOwed(ctx, t, merchants, payable)
	e.checkInvariants(t)
	if _, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1}); err != nil {
		t.Errorf("the audit trail after the outage: %v", err)
	}
	if resp, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after the outage: %v %v", resp, err)
	}
	t.Logf("%d payments recorded across the outage; %d writes answered Unavailable and sent again", payments, unavailable)
}

// dbProxy stands between a pool and the database, so that a test can take
// the database away from the pool alone: cut closes every connection and
// refuses new ones, as a stopped server does, until restore.
type dbProxy struct {
	pool   *pgxpool.Pool
	target string // the database's Unix socket

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newDBProxy(t *testing.T, url string) *dbProxy {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.Host == "" || cfg.ConnConfig.Host[0] != '/' {
		t.Skip("the proxy stands before a Unix socket; the test database is at", cfg.ConnConfig.Host)
	}
	p := &dbProxy{target: fmt.Sprintf("%s/.s.PGSQL.%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port), conns: map[net.Conn]bool{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.serve(lis)
	cfg.ConnConfig.Host = "127.0.0.1"
	cfg.ConnConfig.Port = uint16(lis.Addr().(*net.TCPAddr).Port)
	cfg.MaxConns = 40
	if p.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.pool.Close()
		lis.Close()
		p.cut()
	})
	return p
}

func (p *dbProxy) serve(lis net.Listener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *dbProxy) pipe(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		c.Close()
		return
	}
	s, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }() //nolint:errcheck // ends when either side closes
	io.Copy(c, s)                            //nolint:errcheck
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
