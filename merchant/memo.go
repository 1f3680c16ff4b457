package merchant

import (
	"context"
	"sync"
)

// A memo lets the steps of one call share the merchants they read: access
// control reads the merchant a request names, and the handler that follows
// needs the same row. Scoped to one call, it is as fresh as reading twice,
// without the second statement.
type memo struct {
	mu        sync.Mutex
	merchants map[string]Merchant
}

type memoKey struct{}

// WithMemo returns a context in which GetMerchant and GetMerchants remember
// the merchants they read and answer from them. Give it to one call only.
func WithMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &memo{merchants: map[string]Merchant{}})
}

func memoOf(ctx context.Context) *memo {
	m, _ := ctx.Value(memoKey{}).(*memo)
	return m
}

func (m *memo) get(code string) (Merchant, bool) {
	if m == nil {
		return Merchant{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	got, ok := m.merchants[code]
	return got.clone(), ok
}

func (m *memo) put(mc Merchant) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.merchants[mc.Code] = mc.clone()
	m.mu.Unlock()
}
