// Package coalesce merges concurrent reads of one row each into one query.
//
// Under load, every call reads a row or two before it does its work: the
// credential that signs it, the merchant it names. Each such read is a round
// trip to PostgreSQL, a backend woken and a statement begun and ended, which
// costs the machine far more than the row itself. A Reader sends the keys
// asked for while its queries are busy as one query instead, the way the
// ledger's committer sends the writes queued during a round as one
// transaction.
//
// It caches nothing. A key is read by a query that starts after the key was
// asked for, so an answer is as fresh as a read of its own: a credential
// revoked, or a merchant suspended, before a call arrives is seen by that
// call.
package coalesce

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// ReadFunc reads the rows of keys, which are distinct; a key without a row
// is absent from the map.
type ReadFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// Reader coalesces reads by key. Its zero value is not usable; use New.
type Reader[K comparable, V any] struct {
	read     ReadFunc[K, V]
	maxReads int
	maxKeys  int
	timeout  time.Duration

	mu      sync.Mutex
	waiting []*request[K, V] // asked for, in no query yet
	reads   int              // queries in flight
}

type request[K comparable, V any] struct {
	key   K
	done  chan struct{}
	value V
	found bool
	err   error
}

// What a Reader allows itself. Two queries in flight keep a read from
// waiting behind a slow one without spreading a burst of calls over many
// small queries; a query of a few hundred keys is still one index scan; a
// query that has not answered in ten seconds is failed, not waited on.
const (
	maxReads    = 2
	maxKeys     = 256
	readTimeout = 10 * time.Second
)

// New returns a Reader over read. It runs at most two queries at once; a
// key asked for meanwhile waits for the next query, which takes every key
// waiting by then. An idle Reader reads a lone key at once.
func New[K comparable, V any](read ReadFunc[K, V]) *Reader[K, V] {
	return newReader(read, maxReads, maxKeys, readTimeout)
}

func newReader[K comparable, V any](read ReadFunc[K, V], maxReads, maxKeys int, timeout time.Duration) *Reader[K, V] {
	return &Reader[K, V]{read: read, maxReads: maxReads, maxKeys: maxKeys, timeout: timeout}
}

// Get returns key's row, and whether there is one. Calls that ask for the
// same key in one query get the same value: one that holds references must
// be copied before it is changed. A caller whose ctx ends stops waiting; the
// query it was in goes on for the others.
func (r *Reader[K, V]) Get(ctx context.Context, key K) (V, bool, error) {
	req := &request[K, V]{key: key, done: make(chan struct{})}
	r.mu.Lock()
	r.waiting = append(r.waiting, req)
	start := r.reads < r.maxReads
	if start {
		r.reads++
	}
	r.mu.Unlock()
	if start {
		go r.run()
	}
	select {
	case <-req.done:
		return req.value, req.found, req.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// run sends queries until nothing waits.
func (r *Reader[K, V]) run() {
	for {
		r.mu.Lock()
		n := min(len(r.waiting), r.maxKeys)
		if n == 0 {
			r.reads--
			r.mu.Unlock()
			return
		}
		batch := make([]*request[K, V], n)
		copy(batch, r.waiting)
		r.waiting = append(r.waiting[:0], r.waiting[n:]...)
		r.mu.Unlock()
		r.serve(batch)
	}
}

// serve reads batch's keys in one query and answers each request. The
// query runs under a context of its own: the callers' contexts differ, and
// one caller giving up must not fail the others.
func (r *Reader[K, V]) serve(batch []*request[K, V]) {
	keys := make([]K, 0, len(batch))
	seen := make(map[K]bool, len(batch))
	for _, req := range batch {
		if !seen[req.key] {
			seen[req.key] = true
			keys = append(keys, req.key)
		}
	}
	rows, err := r.readSafely(keys)
	for _, req := range batch {
		if err != nil {
			req.err = err
		} else {
			req.value, req.found = rows[req.key]
		}
		close(req.done)
	}
}

// readSafely runs the query, under its own deadline. A panic in it becomes
// every caller's error, as a panic in a call's own handler would be that
// call's: the query runs on a goroutine of its own, where a panic would
// otherwise end the process, and the Reader would stop.
func (r *Reader[K, V]) readSafely(keys []K) (rows map[K]V, err error) {
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("read of %d keys panicked: %v\n%s", len(keys), p, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	return r.read(ctx, keys)
}
