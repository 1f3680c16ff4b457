package payment

import (
	"context"
	"sync"
)

// A memo lets the steps of one call share the payments they read: access
// control reads the payment a request names, and the flow that follows
// starts from the same row. Flows never answer from it after they write:
// they answer from the entry they wrote, or read again.
type memo struct {
	mu       sync.Mutex
	payments map[string]Payment
}

type memoKey struct{}

// WithMemo returns a context in which Get remembers the payments it reads
// and answers from them. Give it to one call only.
func WithMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &memo{payments: map[string]Payment{}})
}

func memoOf(ctx context.Context) *memo {
	m, _ := ctx.Value(memoKey{}).(*memo)
	return m
}

func (m *memo) get(id string) (Payment, bool) {
	if m == nil {
		return Payment{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.payments[id]
	p.EntryIDs = append([]string(nil), p.EntryIDs...)
	return p, ok
}

func (m *memo) put(p Payment) {
	if m == nil {
		return
	}
	p.EntryIDs = append([]string(nil), p.EntryIDs...)
	m.mu.Lock()
	m.payments[p.ID] = p
	m.mu.Unlock()
}
