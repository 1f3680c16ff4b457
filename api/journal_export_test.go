package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// offlineHash is an entry's hash recomputed from its export alone, chained
// to prev, as docs/design.md ("Hash chain") spells it out, with nothing of
// the service's code: what an auditor runs on a copy of the journal.
func offlineHash(prev []byte, en *pb.Entry) ([]byte, error) {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	micros := func(ts *timestamppb.Timestamp) {
		if ts == nil {
			num(0)
			return
		}
		num(ts.AsTime().UnixMicro())
	}
	phases := map[pb.EntryPhase]string{
		pb.EntryPhase_ENTRY_PHASE_POSTED: "posted", pb.EntryPhase_ENTRY_PHASE_PENDING: "pending",
		pb.EntryPhase_ENTRY_PHASE_POST_PENDING: "post_pending", pb.EntryPhase_ENTRY_PHASE_VOID_PENDING: "void_pending",
	}
	str("choledger.entry.v1")
	num(en.Sequence)
	str(en.Id)
	str(en.Market)
	str(en.Kind)
	str(phases[en.Phase])
	str(en.Currency)
	num(en.PendingEntrySequence)
	str(en.IdempotencyKey)
	str(en.ExternalRef)
	micros(en.OccurTime)
	micros(en.RecordTime)
	micros(en.ExpireTime)
	keys := make([]string, 0, len(en.Metadata))
	for k := range en.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	num(int64(len(keys)))
	for _, k := range keys {
		str(k)
		str(en.Metadata[k])
	}
	num(int64(len(en.Postings)))
	for _, p := range en.Postings {
		str(p.AccountCode)
		switch p.Direction {
		case pb.Direction_DIRECTION_DEBIT:
			num('D')
		case pb.Direction_DIRECTION_CREDIT:
			num('C')
		default:
			return nil, fmt.Errorf("posting direction %v", p.Direction)
		}
		minor, err := minorUnits(en.Currency, p.Amount)
		if err != nil {
			return nil, err
		}
		num(minor)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(b)
	return h.Sum(nil), nil
}

// minorUnits reads an exported amount as an integer of the currency's
// minor unit, by its ISO 4217 exponent.
func minorUnits(currency, amount string) (int64, error) {
	exp := map[string]int64{"VND": 0, "JPY": 0, "KRW": 0, "USD": 2, "EUR": 2, "SGD": 2, "THB": 2, "CNY": 2}
	e, ok := exp[currency]
	r, okAmount := new(big.Rat).SetString(amount)
	if !ok || !okAmount {
		return 0, fmt.Errorf("amount %q of %q", amount, currency)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(e), nil)))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("amount %q of %s is no whole number of minor units", amount, currency)
	}
	return r.Num().Int64(), nil
}

// verifyOffline checks entries, one market's in ledger order, chained to
// prev: each balances, closes a pending entry before it, and has the
// stored hash recomputed. It returns the last hash.
func verifyOffline(t *testing.T, prev []byte, entries []*pb.Entry) []byte {
	t.Helper()
	for _, en := range entries {
		sums := map[pb.Direction]int64{}
		for _, p := range en.Postings {
			m, err := minorUnits(en.Currency, p.Amount)
			if err != nil {
				t.Fatalf("entry %d: %v", en.Sequence, err)
			}
			sums[p.Direction] += m
		}
		if sums[pb.Direction_DIRECTION_DEBIT] != sums[pb.Direction_DIRECTION_CREDIT] {
			t.Fatalf("entry %d does not balance: %v", en.Sequence, sums)
		}
		if closes := en.PendingEntryId != ""; closes != (en.PendingEntrySequence > 0) || en.PendingEntrySequence >= en.Sequence {
			t.Fatalf("entry %d closes pending entry %q, of sequence %d", en.Sequence, en.PendingEntryId, en.PendingEntrySequence)
		}
		h, err := offlineHash(prev, en)
		if err != nil {
			t.Fatalf("entry %d: %v", en.Sequence, err)
		}
		if got := hex.EncodeToString(h); got != en.Hash {
			t.Fatalf("entry %d (%s): recomputed hash %s, exported %s", en.Sequence, en.Phase, got, en.Hash)
		}
		prev = h
	}
	return prev
}

// exportRange lists a market's entries in [from, to] page by page.
func exportRange(t *testing.T, c pb.LedgerServiceClient, market string, from, to int64) []*pb.Entry {
	t.Helper()
	var out []*pb.Entry
	token := ""
	for {
		resp, err := c.ListEntries(context.Background(), &pb.ListEntriesRequest{Market: market, FromSequence: from, ToSequence: to, PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Entries...)
		if token = resp.NextPageToken; token == "" {
			return out
		}
	}
}

// An auditor bound to one market follows its journal while writers post,
// hold, post in part and void entries in two markets through another
// ledgerd; the follower reads slowly, waits through idle periods, and
// resumes on the other ledgerd from the sequence its first one named when
// it shut down. It receives every entry of its market once, in order, and
// no other; the same range exported page by page is the same; and every
// entry balances and chains as docs/design.md describes, recomputed
// offline from the export alone, from the genesis hash and from a
// checkpoint in the middle.
func TestJournalExportFollowsAndVerifiesOffline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := newEnv(t, ledgerOptions())
	a.marketAccounts(t, "M1", "M2")
	b := newEnvOn(t, a.db, ledgerOptions())
	_, secret := a.issue(t, access.IssueRequest{Name: "auditor of M1", Role: access.RoleAuditor, Markets: []string{"M1"}})
	auditorA := pb.NewLedgerServiceClient(a.dial(t, secret))
	auditorB := pb.NewLedgerServiceClient(b.dial(t, secret))

	// Writers, on the second ledgerd.
	write := func(market string, w, n int) error {
		for i := range n {
			key := fmt.Sprintf("%s-%d-%d", market, w, i)
			amount := fmt.Sprint(1000 + 10*i + w)
			postings := []*pb.PostingInput{posting("cash:"+market, debit, amount), posting("payable:"+market, credit, amount)}
			if _, err := b.client.PostEntry(ctx, &pb.PostEntryRequest{
				IdempotencyKey: key, Market: market, Kind: "sale", Currency: "VND", Postings: postings,
				ExternalRef: "ref-" + key, Metadata: map[string]string{"stall": fmt.Sprint(w), "note": "bán hàng"},
			}); err != nil {
				return err
			}
			held, err := b.client.PostEntry(ctx, &pb.PostEntryRequest{
				IdempotencyKey: key + "-hold", Market: market, Kind: "hold", Currency: "VND", Postings: postings,
				Pending: true, PendingTimeout: durationpb.New(time.Hour),
			})
			if err != nil {
				return err
			}
			if i%2 == 0 {
				_, err = b.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{
					IdempotencyKey: key + "-post", PendingEntryId: held.Entry.Id, Kind: "hold.post",
					Postings: []*pb.PostingInput{posting("cash:"+market, debit, "500"), posting("payable:"+market, credit, "500")},
				})
			} else {
				_, err = b.client.VoidPendingEntry(ctx, &pb.VoidPendingEntryRequest{
					IdempotencyKey: key + "-void", PendingEntryId: held.Entry.Id, Kind: "hold.void", Metadata: map[string]string{"why": "khách hủy"},
				})
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	burst := func(n int) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 2 {
			for _, m := range []string{"M1", "M2"} {
				wg.Go(func() {
					if err := write(m, w, n); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	// The follower, on the first ledgerd until it shuts down, then on the
	// second from the sequence it was told.
	var (
		mu       sync.Mutex
		received []*pb.Entry
	)
	follow := func(c pb.LedgerServiceClient, from int64, slow bool) error {
		stream, err := c.StreamEntries(ctx, &pb.StreamEntriesRequest{FromSequence: from, Market: "M1", Follow: true})
		if err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				return err
			}
			mu.Lock()
			received = append(received, msg.Entry)
			mu.Unlock()
			if slow {
				time.Sleep(3 * time.Millisecond)
			}
		}
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- follow(auditorA, 0, true) }()

	burst(12)
	time.Sleep(2500 * time.Millisecond) // idle, the follower waiting
	burst(6)
	a.srv.Health.Shutdown()
	a.srv.Drain()
	var resume int64
	select {
	case err := <-firstDone:
		st := status.Convert(err)
		if st.Code() != codes.Unavailable {
			t.Fatalf("the first follower ended with %v, want Unavailable", err)
		}
		if _, err := fmt.Sscanf(st.Message()[strings.LastIndex(st.Message(), "sequence "):], "sequence %d", &resume); err != nil {
			t.Fatalf("no sequence to resume from in %q", st.Message())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the first follower did not end 20 s after its ledgerd drained")
	}
	secondDone := make(chan error, 1)
	go func() {
		err := follow(pb.NewLedgerServiceClient(b.dial(t, secret)), resume, false)
		if status.Code(err) == codes.Canceled || errors.Is(err, io.EOF) {
			err = nil
		}
		secondDone <- err
	}()
	burst(6)
	time.Sleep(1500 * time.Millisecond)
	burst(4)

	export := exportRange(t, auditorB, "M1", 0, 0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= len(export) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-secondDone; err != nil {
		t.Fatalf("the second follower: %v", err)
	}
	mu.Lock()
	got := received
	mu.Unlock()

	// Every entry of M1 once, in order, none of another market; the same
	// as the export, but for where a pending entry stands, which moves.
	if len(got) != len(export) {
		t.Fatalf("followed %d entries, the export has %d", len(got), len(export))
	}
	for i := range got {
		s, x := proto.Clone(got[i]).(*pb.Entry), proto.Clone(export[i]).(*pb.Entry)
		s.PendingState, s.ClosingEntryId, x.PendingState, x.ClosingEntryId = 0, "", 0, ""
		if s.Market != "M1" || !proto.Equal(s, x) {
			t.Fatalf("followed entry %d: %v; exported %v", i, got[i], export[i])
		}
		if i > 0 && got[i].Sequence <= got[i-1].Sequence {
			t.Fatalf("followed out of order: %d after %d", got[i].Sequence, got[i-1].Sequence)
		}
	}

	ctx = context.Background()
	v, err := auditorB.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M1"})
	if err != nil || !v.Ok {
		t.Fatalf("VerifyJournal: %v, %v", v, err)
	}
	last := verifyOffline(t, make([]byte, sha256.Size), export)
	if hex.EncodeToString(last) != v.LastHash {
		t.Fatalf("offline the chain ends at %x, VerifyJournal at %s", last, v.LastHash)
	}

	// From a checkpoint: the hash of an entry verified before, then only
	// the entries after it, as an auditor exports each day's.
	mid := len(export) / 2
	for export[mid].Phase != pb.EntryPhase_ENTRY_PHASE_PENDING {
		mid++
	}
	checkpoint, _ := hex.DecodeString(export[mid].Hash)
	rest := exportRange(t, auditorB, "M1", export[mid].Sequence+1, 0)
	if !slices.ContainsFunc(rest, func(en *pb.Entry) bool { return en.PendingEntryId == export[mid].Id }) {
		t.Fatalf("the export after the checkpoint does not close pending entry %d", export[mid].Sequence)
	}
	verifyOffline(t, checkpoint, rest)
}
