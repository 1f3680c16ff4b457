package api

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// heavyReads are the calls that may hold a database connection for long:
// a market's whole chain, a journal scanned for a filter, a trial
// balance or a settlement period summed in one snapshot, a statement
// matched against the ledger's payments. StreamEntries is one too, but
// only while it reads a page (LedgerServer.StreamEntries): a following
// stream would otherwise hold its turn for as long as it stays open.
var heavyReads = map[string]bool{
	pb.LedgerService_ListEntries_FullMethodName:               true,
	pb.LedgerService_GetTrialBalance_FullMethodName:           true,
	pb.LedgerService_VerifyJournal_FullMethodName:             true,
	pb.SettlementService_GetMerchantSettlement_FullMethodName: true,
	pb.SettlementService_GetMarketSettlement_FullMethodName:   true,
	pb.SettlementService_ImportStatement_FullMethodName:       true,
}

// heavy reports whether a call may hold a database connection for long:
// one of heavyReads, or a balance as of a past point, which sums the
// account's postings up to it (a market's clearing account has one for
// every payment).
func heavy(method string, req any) bool {
	if r, ok := req.(*pb.GetBalanceRequest); ok {
		return r.GetAsOf() != nil
	}
	return heavyReads[method]
}

// readGate bounds the heavy reads running at once to half the database
// pool, so that however many auditors and banks run them, the other half
// is left to the calls that take a connection for a moment: the
// committers' rounds, the sweeper, the audit writer, and the credential,
// merchant and payment reads of every call. Without it, as many slow
// reports as the pool has connections held every one of them, and a
// bank's payment notification waited for one of the reports to end,
// past its deadline. A heavy read beyond the bound waits for its turn for
// as long as its caller does.
type readGate struct {
	turns   chan struct{}
	waiting atomic.Int64
}

func newReadGate(poolSize int32) *readGate {
	return &readGate{turns: make(chan struct{}, max(1, poolSize/2))}
}

// enter waits for a turn until ctx ends, and returns how to give it back.
func (g *readGate) enter(ctx context.Context) (release func(), err error) {
	select {
	case g.turns <- struct{}{}:
	default:
		g.waiting.Add(1)
		defer g.waiting.Add(-1)
		select {
		case g.turns <- struct{}{}:
		case <-ctx.Done():
			return nil, toStatus(ctx, fmt.Errorf("waiting for one of the %d heavy reads ledgerd runs at once to end: %w", cap(g.turns), ctx.Err()))
		}
	}
	return func() { <-g.turns }, nil
}

// unary runs a heavy read in its turn, after its caller is authorized.
func (g *readGate) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !heavy(info.FullMethod, req) {
		return handler(ctx, req)
	}
	release, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return handler(ctx, req)
}
