package coalesce

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// source is a table of rows whose reads the test holds until it lets them
// go, and which records the keys of every query.
type source struct {
	mu      sync.Mutex
	queries [][]string
	started chan []string // each query's keys, as it starts
	release chan struct{} // one receive lets one query answer
	fail    error
}

func newSource() *source {
	return &source{started: make(chan []string, 100), release: make(chan struct{})}
}

func (s *source) read(ctx context.Context, keys []string) (map[string]string, error) {
	s.mu.Lock()
	s.queries = append(s.queries, slices.Clone(keys))
	s.mu.Unlock()
	s.started <- slices.Clone(keys)
	<-s.release
	if s.fail != nil {
		return nil, s.fail
	}
	out := map[string]string{}
	for _, k := range keys {
		if k != "absent" {
			out[k] = "row " + k
		}
	}
	return out, nil
}

// next returns the keys of the next query to start.
func (s *source) next(t *testing.T) []string {
	t.Helper()
	select {
	case keys := <-s.started:
		return keys
	case <-time.After(5 * time.Second):
		t.Fatal("no query started")
		return nil
	}
}

type answer struct {
	key, value string
	found      bool
	err        error
}

// recv returns the next answer.
func recv(t *testing.T, out <-chan answer) answer {
	t.Helper()
	select {
	case a := <-out:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
		return answer{}
	}
}

// wantRows receives n answers, each its key's row.
func wantRows(t *testing.T, out <-chan answer, n int) {
	t.Helper()
	for range n {
		if a := recv(t, out); a.err != nil || !a.found || a.value != "row "+a.key {
			t.Fatalf("got %+v", a)
		}
	}
}

func get(r *Reader[string, string], ctx context.Context, key string, out chan<- answer) {
	v, found, err := r.Get(ctx, key)
	out <- answer{key, v, found, err}
}

// waitQueued waits until n keys wait for a query.
func waitQueued(t *testing.T, r *Reader[string, string], n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		r.mu.Lock()
		queued := len(r.waiting)
		r.mu.Unlock()
		if queued == n {
			return
		}
	}
	t.Fatalf("%d keys never queued", n)
}

func TestLoneKeyIsReadAtOnce(t *testing.T) {
	src := newSource()
	r := newReader(src.read, 1, 10, time.Second)
	out := make(chan answer, 2)
	go get(r, context.Background(), "a", out)
	if keys := src.next(t); !slices.Equal(keys, []string{"a"}) {
		t.Fatalf("first query read %v", keys)
	}
	src.release <- struct{}{}
	if a := recv(t, out); a.value != "row a" || !a.found || a.err != nil {
		t.Fatalf("got %+v", a)
	}
	go get(r, context.Background(), "absent", out)
	src.next(t)
	src.release <- struct{}{}
	if a := recv(t, out); a.found || a.err != nil || a.value != "" {
		t.Fatalf("a key without a row: %+v", a)
	}
}

// Keys asked for while the queries are busy go in one query; each caller
// gets its own row, a repeated key is read once, and a key asked for after
// a query started is never answered by it.
func TestKeysAskedMeanwhileShareOneQuery(t *testing.T) {
	src := newSource()
	r := newReader(src.read, 1, 100, time.Second)
	out := make(chan answer, 100)
	go get(r, context.Background(), "first", out)
	src.next(t) // the only query allowed is in flight

	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	keys = append(keys, "k07", "k07", "absent")
	for _, k := range keys {
		go get(r, context.Background(), k, out)
	}
	waitQueued(t, r, len(keys))
	src.release <- struct{}{}
	second := src.next(t)
	if len(second) != 41 || slices.Contains(second, "first") {
		t.Fatalf("the second query read %d keys %v; want the 41 distinct keys asked for meanwhile", len(second), second)
	}
	src.release <- struct{}{}
	for range len(keys) + 1 {
		a := recv(t, out)
		want := "row " + a.key
		if a.key == "absent" {
			want = ""
		}
		if a.err != nil || a.value != want || a.found != (a.key != "absent") {
			t.Fatalf("got %+v", a)
		}
	}
	if len(src.queries) != 2 {
		t.Fatalf("%d queries, want 2", len(src.queries))
	}
}

func TestQueriesHoldAtMostMaxKeys(t *testing.T) {
	src := newSource()
	r := newReader(src.read, 1, 4, time.Second)
	out := make(chan answer, 20)
	go get(r, context.Background(), "first", out)
	src.next(t)
	for i := range 10 {
		go get(r, context.Background(), fmt.Sprint(i), out)
	}
	waitQueued(t, r, 10)
	var sizes []int
	for range 4 {
		src.release <- struct{}{}
		if len(sizes) < 3 {
			sizes = append(sizes, len(src.next(t)))
		}
	}
	if !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Fatalf("queries of %v keys, want 4, 4, 2", sizes)
	}
	wantRows(t, out, 11)
}

func TestMaxReadsInFlight(t *testing.T) {
	src := newSource()
	r := newReader(src.read, 2, 10, time.Second)
	out := make(chan answer, 3)
	go get(r, context.Background(), "a", out)
	src.next(t)
	go get(r, context.Background(), "b", out)
	src.next(t) // a second query of its own: two may be in flight
	go get(r, context.Background(), "c", out)
	waitQueued(t, r, 1)
	select {
	case keys := <-src.started:
		t.Fatalf("a third query started with %v", keys)
	case <-time.After(20 * time.Millisecond):
	}
	for range 3 {
		src.release <- struct{}{}
	}
	wantRows(t, out, 3)
}

// A failed query fails every call in it; a caller that gives up returns at
// once, and the query it was in still answers the others.
func TestErrorsAndCallersGivingUp(t *testing.T) {
	src := newSource()
	r := newReader(src.read, 1, 10, time.Second)
	out := make(chan answer, 3)
	go get(r, context.Background(), "first", out)
	src.next(t)
	ctx, cancel := context.WithCancel(context.Background())
	go get(r, ctx, "quitter", out)
	go get(r, context.Background(), "stayer", out)
	waitQueued(t, r, 2)
	cancel()
	if a := recv(t, out); a.key != "quitter" || !errors.Is(a.err, context.Canceled) {
		t.Fatalf("the caller that gave up got %+v", a)
	}
	src.release <- struct{}{}
	if a := recv(t, out); a.key != "first" || a.value != "row first" {
		t.Fatalf("got %+v", a)
	}
	src.next(t)
	src.release <- struct{}{}
	if a := recv(t, out); a.key != "stayer" || a.value != "row stayer" || a.err != nil {
		t.Fatalf("the caller in the same query got %+v", a)
	}

	src.fail = errors.New("connection lost")
	go get(r, context.Background(), "x", out)
	src.next(t)
	go get(r, context.Background(), "y", out)
	waitQueued(t, r, 1)
	src.release <- struct{}{}
	src.next(t)
	src.release <- struct{}{}
	for range 2 {
		if a := recv(t, out); !errors.Is(a.err, src.fail) || a.found {
			t.Fatalf("after a failed query: %+v", a)
		}
	}
}

// The query runs under its own deadline, whatever the callers' contexts.
func TestQueryTimeout(t *testing.T) {
	var deadline time.Time
	r := newReader(func(ctx context.Context, keys []string) (map[string]string, error) {
		deadline, _ = ctx.Deadline()
		return nil, nil
	}, 1, 10, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, found, err := r.Get(ctx, "a"); found || err != nil {
		t.Fatal(found, err)
	}
	if left := time.Until(deadline); left > time.Minute || left < 50*time.Second {
		t.Fatalf("the query's deadline was %v away, want the reader's minute", left)
	}
}

// A query that panics fails the calls in it, and the Reader goes on.
func TestPanickingQuery(t *testing.T) {
	calls := 0
	r := newReader(func(ctx context.Context, keys []string) (map[string]string, error) {
		calls++
		if calls == 1 {
			panic("bad row")
		}
		return map[string]string{keys[0]: "row " + keys[0]}, nil
	}, 1, 10, time.Second)
	if _, _, err := r.Get(context.Background(), "a"); err == nil || !strings.Contains(err.Error(), "bad row") {
		t.Fatalf("a query that panicked answered %v", err)
	}
	if v, found, err := r.Get(context.Background(), "b"); err != nil || !found || v != "row b" {
		t.Fatalf("the next query: %q, %v, %v", v, found, err)
	}
}
