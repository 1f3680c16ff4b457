package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// principal is a credential the bench calls with, and the scope under
// which the API stores its idempotency keys (api/auth.go clientKey:
// Principal.Scope() + "/" + key).
type principal struct {
	name  string
	md    metadata.MD
	scope string
}

func newPrincipal(name, secret, scope string) principal {
	return principal{name: name, md: metadata.Pairs("authorization", "Bearer "+secret), scope: scope}
}

func (p *principal) ctx(parent context.Context) context.Context {
	return metadata.NewOutgoingContext(parent, p.md)
}

// scenarioRun is one scenario's run: its clients, its measurement window,
// its counters and what it saw acknowledged.
type scenarioRun struct {
	name    string
	clients int
	timeout time.Duration // per call

	start, windowStart, windowEnd time.Time
	finished                      time.Time

	maxOps     int64
	opsStarted atomic.Int64
	// Completed within the measurement window: units of the scenario (a
	// payment, a pair, a bulk call's payments, an operation of the mix) and
	// new payments among them.
	units, payments atomic.Int64
	lastInWindow    atomic.Int64 // unix nanos of the last counted completion
	checked         atomic.Int64 // reports whose answer was checked

	mu         sync.Mutex
	stats      map[string]*rpcStats
	acks       ackSet
	unresolved []resend
	anomalies  []string
	cpu        cpuUse
	resolved   int // unresolved writes whose outcome a resend settled
	lost       int // unresolved writes whose outcome stayed unknown
}

// resend repeats a write whose outcome the client did not learn (deadline,
// connection lost, internal error), with the same idempotency key: the
// ledger answers with what was recorded, or records it now. Either way the
// write is then acknowledged exactly once.
type resend struct {
	p    *principal
	send func(ctx context.Context) error
}

func (sc *scenarioRun) anomaly(format string, args ...any) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.anomalies) < 1000 {
		sc.anomalies = append(sc.anomalies, fmt.Sprintf(format, args...))
	}
}

// elapsed is the measurement window's length: to its end, or to the last
// completion when the op budget ran out first.
func (sc *scenarioRun) elapsed() time.Duration {
	end := sc.windowEnd
	if sc.finished.Before(end) {
		end = sc.finished
	}
	return max(end.Sub(sc.windowStart), time.Millisecond)
}

// worker is one client: it makes one call at a time.
type worker struct {
	b     *bench
	sc    *scenarioRun
	id    int
	rng   *rand.Rand
	conn  *grpc.ClientConn
	pay   pb.PaymentServiceClient
	led   pb.LedgerServiceClient
	set   pb.SettlementServiceClient
	stats map[string]*rpcStats
	seq   int

	// For the mixed scenario: payments this client saw confirmed (it may
	// refund them) and recorded (it may read them).
	confirmed []*pb.Payment
	recent    []string
}

func (b *bench) newWorker(sc *scenarioRun, id int) *worker {
	conn := b.conns[id%len(b.conns)]
	return &worker{
		b: b, sc: sc, id: id,
		rng:   rand.New(rand.NewPCG(b.cfg.Seed, uint64(id)<<32|uint64(len(sc.name)))),
		conn:  conn,
		pay:   pb.NewPaymentServiceClient(conn),
		led:   pb.NewLedgerServiceClient(conn),
		set:   pb.NewSettlementServiceClient(conn),
		stats: map[string]*rpcStats{},
	}
}

// call makes one RPC as p, bounded by the scenario's call timeout, and
// records its latency and code if it started inside the measurement window.
func (w *worker) call(rpc string, p *principal, fn func(ctx context.Context) error) error {
	_, err := w.measuredCall(rpc, p, fn)
	return err
}

// measuredCall is call, and says whether the call started inside the
// measurement window: what is counted of its answer is counted only then.
func (w *worker) measuredCall(rpc string, p *principal, fn func(ctx context.Context) error) (bool, error) {
	ctx, cancel := context.WithTimeout(p.ctx(context.Background()), w.sc.timeout)
	start := time.Now()
	err := fn(ctx)
	d := time.Since(start)
	cancel()
	measured := !start.Before(w.sc.windowStart) && start.Before(w.sc.windowEnd)
	if measured {
		w.stat(rpc).record(d, status.Code(err))
	} else if serverBug(status.Code(err)) {
		w.sc.anomaly("%s outside the measurement window: %v", rpc, err)
	}
	return measured, err
}

func (w *worker) stat(rpc string) *rpcStats {
	s, ok := w.stats[rpc]
	if !ok {
		s = &rpcStats{}
		w.stats[rpc] = s
	}
	return s
}

// done counts a completed unit of work if it completed inside the window.
func (w *worker) done(units, payments int) {
	now := time.Now()
	if now.Before(w.sc.windowStart) || !now.Before(w.sc.windowEnd) {
		return
	}
	w.sc.units.Add(int64(units))
	w.sc.payments.Add(int64(payments))
	for {
		last := w.sc.lastInWindow.Load()
		if now.UnixNano() <= last || w.sc.lastInWindow.CompareAndSwap(last, now.UnixNano()) {
			return
		}
	}
}

// failed notes a failed write: one whose outcome is unknown is resent after
// the run.
func (w *worker) failed(err error, p *principal, send func(ctx context.Context) error) {
	if !unknownOutcome(err) {
		return
	}
	w.sc.mu.Lock()
	defer w.sc.mu.Unlock()
	w.sc.unresolved = append(w.sc.unresolved, resend{p: p, send: send})
}

// unknownOutcome reports whether a failed write may nevertheless have been
// recorded.
func unknownOutcome(err error) bool {
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Canceled, codes.Unavailable, codes.Unknown, codes.Internal:
		return true
	}
	return false
}

// key is a fresh idempotency key, unique across runs (runID) and clients.
func (w *worker) key(kind string) string {
	w.seq++
	return w.b.runID + "-" + w.sc.name + "-" + kind + "-" + strconv.Itoa(w.id) + "-" + strconv.Itoa(w.seq)
}

// ref is a fresh provider reference, in the style of a NAPAS transfer id
// but never one the seed uses.
func (w *worker) ref(kind string) string {
	w.seq++
	return "LB" + strings.ToUpper(w.b.runID+w.sc.name[:2]) + kind + strconv.Itoa(w.id) + "X" + strconv.Itoa(w.seq)
}

// amount is a ticket at a market stall: 5,000 to 170,000 đồng in whole
// thousands, log-normal around 35,000 (most tickets are small).
func (w *worker) amount() int64 { return ticketAmount(w.rng) }

func ticketAmount(r *rand.Rand) int64 {
	v := 35_000 * math.Exp(0.6*r.NormFloat64())
	a := int64(v/1000+0.5) * 1000
	return min(max(a, 5_000), 170_000)
}

// run drives a scenario: clients workers each loop on op until the window
// closes or the op budget is spent, then the writes whose outcome is unknown
// are resent.
func (b *bench) run(sc *scenarioRun, op func(w *worker)) {
	sc.stats = map[string]*rpcStats{}
	sc.maxOps = int64(b.cfg.MaxOps)
	sc.start = time.Now()
	sc.windowStart = sc.start.Add(b.cfg.Warmup)
	sc.windowEnd = sc.windowStart.Add(b.cfg.Duration)
	// CPU use over the measurement window, sampled at its edges.
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		time.Sleep(time.Until(sc.windowStart))
		a := takeCPUSample(b.serverPID, b.dbName)
		time.Sleep(time.Until(sc.windowEnd))
		sc.cpu = a.use(takeCPUSample(b.serverPID, b.dbName))
	}()
	var wg sync.WaitGroup
	for i := range sc.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := b.newWorker(sc, i)
			for time.Now().Before(sc.windowEnd) && sc.opsStarted.Add(1) <= sc.maxOps {
				op(w)
			}
			sc.mu.Lock()
			for rpc, s := range w.stats {
				if sc.stats[rpc] == nil {
					sc.stats[rpc] = &rpcStats{}
				}
				sc.stats[rpc].merge(s)
			}
			sc.mu.Unlock()
		}()
	}
	wg.Wait()
	sc.finished = time.Now()
	sampled.Wait()
	if last := sc.lastInWindow.Load(); sc.opsStarted.Load() > sc.maxOps && last > 0 {
		sc.finished = time.Unix(0, last)
	}
	b.resolve(sc)
}

// resolve resends the writes whose outcome was unknown, a few at a time,
// each bounded in time.
func (b *bench) resolve(sc *scenarioRun) {
	if len(sc.unresolved) == 0 {
		return
	}
	const maxResends = 20_000
	todo := sc.unresolved
	if len(todo) > maxResends {
		sc.lost += len(todo) - maxResends
		todo = todo[:maxResends]
	}
	b.logf("%s: resending %d writes whose outcome was unknown", sc.name, len(todo))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) {
					return
				}
				r := todo[i]
				var err error
				for attempt := range 3 {
					ctx, cancel := context.WithTimeout(r.p.ctx(context.Background()), 60*time.Second)
					err = r.send(ctx)
					cancel()
					if serverBug(status.Code(err)) {
						sc.anomaly("a write resent: %v", err)
					}
					if err == nil || !unknownOutcome(err) {
						break
					}
					time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
				}
				mu.Lock()
				if err == nil {
					sc.resolved++
				} else {
					sc.lost++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sc.unresolved = nil
}
