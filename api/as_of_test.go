package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
)

// holdingProjector holds the round of an entry whose metadata says hold,
// after it took its sequence and record time and before it commits, until
// release is closed; held is closed once it holds one.
type holdingProjector struct{ held, release chan struct{} }

func (h holdingProjector) Project(entries []*ledger.Entry, _ *pgx.Batch) {
	for _, e := range entries {
		if e.Metadata["hold"] == "yes" {
			close(h.held)
			<-h.release
		}
	}
}

// A balance or a settlement report as of a time already past counts every
// entry recorded by then, one still committing included: asked while the
// entry commits and asked again afterwards, it is the same.
func TestAsOfAPastTimeCountsWhatWasStillCommitting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := holdingProjector{held: make(chan struct{}), release: make(chan struct{})}
	opts := ledgerOptions()
	opts.Projectors = []ledger.Projector{h}
	e := newEnv(t, opts)
	e.setUpMarket(t)
	const merchantCode, payable = "TN-TEST-0001", "merchant:TN-TEST-0001:payable"
	e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: "p1", Merchant: merchantCode, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "FT-1"})

	posted := make(chan error, 1)
	go func() {
		_, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "adj-1", Market: testMarket, Kind: "adjustment", Currency: "VND",
			Postings: []*pb.PostingInput{posting("market:TN-TEST:fees", debit, "1000"), posting(payable, credit, "1000")},
			Metadata: map[string]string{"hold": "yes"}})
		posted <- err
	}()
	<-h.held
	// The adjustment is recorded, and still committing, at this point.
	time.Sleep(20 * time.Millisecond)
	at := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.Now()}}

	type answer struct {
		what    string
		closing string
		err     error
	}
	answers := make(chan answer, 3)
	go func() {
		r, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: payable, AsOf: at})
		answers <- answer{"GetBalance", r.GetBalance().GetPosted(), err}
	}()
	go func() {
		r, err := e.settle.GetMerchantSettlement(ctx, &pb.GetMerchantSettlementRequest{Merchant: merchantCode, StartDay: today(), AsOf: at})
		answers <- answer{"GetMerchantSettlement", r.GetTotals().GetClosingBalance(), err}
	}()
	go func() {
		r, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today(), AsOf: at})
		answers <- answer{"GetMarketSettlement", r.GetTotals().GetClosingBalance(), err}
	}()
	time.Sleep(300 * time.Millisecond)
	close(h.release)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}

	after, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: payable, AsOf: at})
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Balance.Posted; got != "100500" {
		t.Fatalf("balance as of %s once the adjustment committed: %s, want 100500", at.GetTime().AsTime(), got)
	}
	for range 3 {
		a := <-answers
		if a.err != nil {
			t.Errorf("%s: %v", a.what, a.err)
		} else if a.closing != "100500" {
			t.Errorf("%s as of %s, asked while the adjustment recorded before it committed: %s; asked after: 100500", a.what, at.GetTime().AsTime(), a.closing)
		}
	}
}

// A listing of the entries recorded before a time already past lists one
// still committing, as it does when asked later.
func TestEntriesRecordedBeforeAPastTimeListWhatWasStillCommitting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := holdingProjector{held: make(chan struct{}), release: make(chan struct{})}
	opts := ledgerOptions()
	opts.Projectors = []ledger.Projector{h}
	e := newEnv(t, opts)
	e.marketAccounts(t, "M1")

	posted := make(chan error, 1)
	go func() {
		_, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "sale-1", Market: "M1", Kind: "sale", Currency: "VND",
			Postings: []*pb.PostingInput{posting("cash:M1", debit, "15000"), posting("payable:M1", credit, "15000")},
			Metadata: map[string]string{"hold": "yes"}})
		posted <- err
	}()
	<-h.held
	// The sale is recorded, and still committing, at this point.
	time.Sleep(20 * time.Millisecond)
	end := timestamppb.Now()

	listed := make(chan int, 1)
	go func() {
		r, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1", EndTime: end})
		if err != nil {
			t.Error(err)
		}
		listed <- len(r.GetEntries())
	}()
	time.Sleep(300 * time.Millisecond)
	close(h.release)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	after, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1", EndTime: end})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Entries) != 1 {
		t.Fatalf("entries recorded before %s, listed once the sale committed: %d, want 1", end.AsTime(), len(after.Entries))
	}
	if n := <-listed; n != 1 {
		t.Errorf("entries recorded before %s, listed while the sale recorded before it committed: %d; listed after: 1", end.AsTime(), n)
	}
}
