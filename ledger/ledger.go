package ledger

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune the ledger. Zero values take the defaults.
type Options struct {
	// MaxBatch bounds how many writes share one transaction.
	MaxBatch int
	// Committers is how many batches may be in flight at once: while one
	// holds its locks, writes and commits, the next reads what it needs.
	Committers int
	// QueueSize bounds the writes waiting for a committer; beyond it,
	// writers wait (back-pressure) until their context ends.
	QueueSize int
	// ExpiryInterval is how often pending entries past their timeout are
	// voided. Negative turns the sweeper off (tests that drive it by hand).
	ExpiryInterval time.Duration
	// Projectors keep derived tables in step with the journal.
	Projectors []Projector
	// Now is the clock; tests set it.
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.Committers <= 0 {
		o.Committers = 2
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.ExpiryInterval == 0 {
		o.ExpiryInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Projector keeps tables derived from the journal (payments, rollups) in
// step with it: for every transaction that writes entries, Project is given
// the new entries, in sequence order, and queues its own statements on the
// same batch, so the derived rows commit with the entries or not at all. A
// statement that fails fails the writes of its transaction, which are then
// retried one by one so that only the write at fault fails.
type Projector interface {
	Project(entries []*Entry, b *pgx.Batch)
}

// Ledger is the double-entry engine on one PostgreSQL database.
type Ledger struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	// mu guards closed and sends on queue, so Close never races a send.
	mu     sync.RWMutex
	closed bool
	queue  chan *op

	workers sync.WaitGroup
	stop    chan struct{}

	// committed is closed and replaced after every commit, waking readers
	// that follow the journal.
	commitMu  sync.Mutex
	committed chan struct{}

	// What the committers did, for Stats.
	rounds, entries atomic.Uint64
}

// Stats is what the committers have done since the ledger started, and the
// writes waiting for one: for monitoring.
type Stats struct {
	Rounds  uint64 // transactions that wrote entries
	Entries uint64 // entries they wrote
	Queued  int    // writes waiting for a committer
}

// Stats reads the committers' counts.
func (l *Ledger) Stats() Stats {
	return Stats{Rounds: l.rounds.Load(), Entries: l.entries.Load(), Queued: len(l.queue)}
}

// New starts a ledger on pool: its committers and its expiry sweeper. Call
// Close to finish in-flight writes and stop them.
func New(pool *pgxpool.Pool, opts Options) *Ledger {
	opts.defaults()
	l := &Ledger{
		pool:      pool,
		opts:      opts,
		log:       opts.Logger,
		queue:     make(chan *op, opts.QueueSize),
		stop:      make(chan struct{}),
		committed: make(chan struct{}),
	}
	for range opts.Committers {
		l.workers.Add(1)
		go l.commitLoop()
	}
	if opts.ExpiryInterval > 0 {
		l.workers.Add(1)
		go l.expiryLoop()
	}
	return l
}

// Close stops taking writes, commits every write already taken, and waits
// for the committers and the sweeper to end.
func (l *Ledger) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.stop)
	close(l.queue)
	l.mu.Unlock()
	l.workers.Wait()
}

// Committed returns a channel that is closed at the next commit of entries.
func (l *Ledger) Committed() <-chan struct{} {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	return l.committed
}

func (l *Ledger) signalCommitted() {
	l.commitMu.Lock()
	close(l.committed)
	l.committed = make(chan struct{})
	l.commitMu.Unlock()
}

// Post writes a new entry, posted or pending.
func (l *Ledger) Post(ctx context.Context, r EntryRequest) (Result, error) {
	postings, verr := r.validate(l.opts.Now())
	if verr != nil {
		return Result{}, verr
	}
	return l.submit(ctx, &op{entry: &r, postings: postings, key: r.IdempotencyKey, hash: r.hash()})
}

// Close posts or voids a pending entry.
func (l *Ledger) ClosePending(ctx context.Context, r CloseRequest) (Result, error) {
	if err := r.validate(l.opts.Now()); err != nil {
		return Result{}, err
	}
	return l.submit(ctx, &op{close: &r, key: r.IdempotencyKey, hash: r.hash()})
}

// CheckClose checks what CloseRequest can be checked without the ledger's
// state, so that callers can refuse a malformed request before looking
// anything up.
func (l *Ledger) CheckClose(r CloseRequest) error {
	if err := r.validate(l.opts.Now()); err != nil {
		return err
	}
	return nil
}

// Write submits several writes at once and returns each one's outcome, in
// order; one failing never fails the others.
func (l *Ledger) Write(ctx context.Context, reqs []any) []Outcome {
	out := make([]Outcome, len(reqs))
	ops := make([]*op, 0, len(reqs))
	idx := make([]int, 0, len(reqs))
	now := l.opts.Now()
	for i, req := range reqs {
		switch r := req.(type) {
		case EntryRequest:
			postings, err := r.validate(now)
			if err != nil {
				out[i].Err = err
				continue
			}
			ops = append(ops, &op{entry: &r, postings: postings, key: r.IdempotencyKey, hash: r.hash()})
		case CloseRequest:
			if err := r.validate(now); err != nil {
				out[i].Err = err
				continue
			}
			ops = append(ops, &op{close: &r, key: r.IdempotencyKey, hash: r.hash()})
		default:
			out[i].Err = invalid("", "unknown request type %T", req)
			continue
		}
		idx = append(idx, i)
	}
	for j, o := range ops {
		o.ctx = ctx
		o.done = make(chan Outcome, 1)
		if err := l.enqueue(ctx, o); err != nil {
			for _, rest := range ops[j:] {
				rest.done = nil
			}
			for k := j; k < len(ops); k++ {
				out[idx[k]].Err = err
			}
			ops = ops[:j]
			break
		}
	}
	for j, o := range ops {
		out[idx[j]] = <-o.done // as submit waits
	}
	return out
}

// Outcome is one write's result or error.
type Outcome struct {
	Result
	Err error
}

func (l *Ledger) submit(ctx context.Context, o *op) (Result, error) {
	o.ctx = ctx
	o.done = make(chan Outcome, 1)
	if err := l.enqueue(ctx, o); err != nil {
		return Result{}, err
	}
	// A write taken by a committer is answered with what became of it,
	// even once its writer gave up: a round already under way commits it,
	// and the caller's answer (the audit trail's record of the call) must
	// say so rather than that it failed. The wait is short: a committer
	// answers a write whose context is done without writing it when its
	// round has not begun, and a round is bounded.
	res := <-o.done
	return res.Result, res.Err
}

func (l *Ledger) enqueue(ctx context.Context, o *op) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errorf(ErrUnavailable, "", "the ledger is shutting down; retry with the same idempotency key")
	}
	select {
	case l.queue <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
