package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// LedgerServer serves LedgerService.
type LedgerServer struct {
	pb.UnimplementedLedgerServiceServer
	Ledger *ledger.Ledger
	// draining is closed when the server shuts down (Server.Drain), so
	// that StreamEntries ends instead of holding GracefulStop.
	draining <-chan struct{}
	// reads gives StreamEntries its turn among the heavy reads page by
	// page.
	reads *readGate
}

func (s *LedgerServer) CreateAccount(ctx context.Context, req *pb.CreateAccountRequest) (*pb.CreateAccountResponse, error) {
	typ, ok := accountTypes[req.GetType()]
	if !ok {
		return nil, fieldError("type", errors.New("must be one of ACCOUNT_TYPE_ASSET, _LIABILITY, _REVENUE, _EXPENSE, _EQUITY"))
	}
	// Refused here, naming a field of the request: the ledger names its
	// flags, which the request has not.
	if req.GetDebitsMustNotExceedCredits() && req.GetCreditsMustNotExceedDebits() {
		return nil, fieldError("credits_must_not_exceed_debits", errors.New("an account cannot limit both sides, and debits_must_not_exceed_credits is set: it could never be written"))
	}
	flags := 0
	if req.GetDebitsMustNotExceedCredits() {
		flags |= ledger.FlagDebitsMustNotExceedCredits
	}
	if req.GetCreditsMustNotExceedDebits() {
		flags |= ledger.FlagCreditsMustNotExceedDebits
	}
	a, created, err := s.Ledger.CreateAccount(ctx, ledger.AccountSpec{
		Code: req.GetCode(), Type: typ, Currency: req.GetCurrency(), Market: req.GetMarket(), Flags: flags,
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	// As GetAccount gives it: an account that existed has a balance, which
	// is as of some sequence of the ledger.
	a, t, seq, err := s.Ledger.Balance(ctx, a.Code, ledger.AsOf{})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreateAccountResponse{Account: accountAsOf(a, t, seq), Created: created}, nil
}

func (s *LedgerServer) GetAccount(ctx context.Context, req *pb.GetAccountRequest) (*pb.GetAccountResponse, error) {
	a, t, seq, err := s.Ledger.Balance(ctx, req.GetCode(), ledger.AsOf{})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetAccountResponse{Account: accountAsOf(a, t, seq)}, nil
}

func (s *LedgerServer) ListAccounts(ctx context.Context, req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	accounts, seq, next, err := s.Ledger.ListAccounts(ctx, ledger.AccountFilter{
		Market: req.GetMarket(), CodePrefix: req.GetCodePrefix(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListAccountsResponse{NextPageToken: next}
	for _, a := range accounts {
		resp.Accounts = append(resp.Accounts, accountToProto(a, seq))
	}
	return resp, nil
}

func (s *LedgerServer) GetBalance(ctx context.Context, req *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	at, err := asOfFromProto(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	a, t, seq, err := s.Ledger.Balance(ctx, req.GetAccountCode(), at)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetBalanceResponse{Account: accountAsOf(a, t, seq), Balance: balanceToProto(a, t, seq)}, nil
}

func (s *LedgerServer) PostEntry(ctx context.Context, req *pb.PostEntryRequest) (*pb.PostEntryResponse, error) {
	if reservedKind(req.GetKind()) {
		return nil, fieldError("kind", fmt.Errorf("%q is reserved for the payment and settlement flows; use PaymentService or SettlementService, or another kind for an adjustment", req.GetKind()))
	}
	postings, err := postingsFromProto(req.GetPostings())
	if err != nil {
		return nil, err
	}
	occurred, err := optionalTime("occur_time", req.GetOccurTime())
	if err != nil {
		return nil, err
	}
	var timeout time.Duration
	if d := req.GetPendingTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, fieldError("pending_timeout", err)
		}
		timeout = d.AsDuration()
		if timeout <= 0 {
			return nil, fieldError("pending_timeout", errors.New("must be positive"))
		}
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	res, err := s.Ledger.Post(ctx, ledger.EntryRequest{
		IdempotencyKey: key,
		Market:         req.GetMarket(),
		Kind:           req.GetKind(),
		Currency:       req.GetCurrency(),
		Postings:       postings,
		Pending:        req.GetPending(),
		PendingTimeout: timeout,
		ExternalRef:    req.GetExternalRef(),
		OccurredAt:     occurred,
		Metadata:       req.GetMetadata(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.PostEntryResponse{Entry: entryToProto(res.Entry), Replayed: res.Replayed}, nil
}

func (s *LedgerServer) PostPendingEntry(ctx context.Context, req *pb.PostPendingEntryRequest) (*pb.PostPendingEntryResponse, error) {
	postings, err := postingsFromProto(req.GetPostings())
	if err != nil {
		return nil, err
	}
	occurred, err := optionalTime("occur_time", req.GetOccurTime())
	if err != nil {
		return nil, err
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	res, err := s.closePending(ctx, ledger.CloseRequest{
		IdempotencyKey: key,
		PendingID:      req.GetPendingEntryId(),
		Postings:       postings,
		Kind:           req.GetKind(),
		ExternalRef:    req.GetExternalRef(),
		OccurredAt:     occurred,
		Metadata:       req.GetMetadata(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.PostPendingEntryResponse{Entry: entryToProto(res.Entry), Replayed: res.Replayed}, nil
}

func (s *LedgerServer) VoidPendingEntry(ctx context.Context, req *pb.VoidPendingEntryRequest) (*pb.VoidPendingEntryResponse, error) {
	occurred, err := optionalTime("occur_time", req.GetOccurTime())
	if err != nil {
		return nil, err
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	res, err := s.closePending(ctx, ledger.CloseRequest{
		IdempotencyKey: key,
		PendingID:      req.GetPendingEntryId(),
		Void:           true,
		Kind:           req.GetKind(),
		ExternalRef:    req.GetExternalRef(),
		OccurredAt:     occurred,
		Metadata:       req.GetMetadata(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.VoidPendingEntryResponse{Entry: entryToProto(res.Entry), Replayed: res.Replayed}, nil
}

func (s *LedgerServer) GetEntry(ctx context.Context, req *pb.GetEntryRequest) (*pb.GetEntryResponse, error) {
	e, err := s.Ledger.GetEntry(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetEntryResponse{Entry: entryToProto(e)}, nil
}

func (s *LedgerServer) ListEntries(ctx context.Context, req *pb.ListEntriesRequest) (*pb.ListEntriesResponse, error) {
	start, err := optionalTime("start_time", req.GetStartTime())
	if err != nil {
		return nil, err
	}
	end, err := optionalTime("end_time", req.GetEndTime())
	if err != nil {
		return nil, err
	}
	entries, next, err := s.Ledger.ListEntries(ctx, ledger.EntryFilter{
		Market: req.GetMarket(), AccountCode: req.GetAccountCode(), Kind: req.GetKind(),
		FromSeq: req.GetFromSequence(), ToSeq: req.GetToSequence(), Start: start, End: end,
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListEntriesResponse{NextPageToken: next}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, entryToProto(e))
	}
	return resp, nil
}

// readPage reads StreamEntries' next page of entries after seq, in its
// turn among the heavy reads: the turn is held for the read only, never
// while the page is sent or the stream waits for commits.
func (s *LedgerServer) readPage(ctx context.Context, after int64, market string) ([]ledger.Entry, error) {
	release, err := s.reads.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	entries, err := s.Ledger.EntriesAfter(ctx, after, market, streamPage)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return entries, nil
}

// streamPage is how many entries StreamEntries reads per query.
const streamPage = 500

// followPoll bounds how long a following stream waits before looking for
// entries committed by another ledgerd process, which cannot wake it.
const followPoll = time.Second

func (s *LedgerServer) StreamEntries(req *pb.StreamEntriesRequest, stream pb.LedgerService_StreamEntriesServer) error {
	ctx := stream.Context()
	if req.GetFromSequence() < 0 {
		return fieldError("from_sequence", errors.New("must not be negative"))
	}
	after := max(req.GetFromSequence()-1, 0)
	// A stream, following or long, ends when the server drains, telling the
	// client where to pick up on another server or after the restart.
	drained := func() error {
		return toStatus(ctx, &ledger.Error{Kind: ledger.ErrUnavailable, Msg: fmt.Sprintf("server shutting down; resume from sequence %d", after+1)})
	}
	for {
		select {
		case <-s.draining:
			return drained()
		default:
		}
		// Take the wake-up channel before reading, so a commit between the
		// read and the wait is not missed.
		committed := s.Ledger.Committed()
		entries, err := s.readPage(ctx, after, req.GetMarket())
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := stream.Send(&pb.StreamEntriesResponse{Entry: entryToProto(e)}); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(entries) == streamPage {
			continue
		}
		if !req.GetFollow() {
			return nil
		}
		select {
		case <-ctx.Done():
			// Ended as its client was answered, Canceled or
			// DeadlineExceeded: the call's log line and metrics say so.
			return toStatus(ctx, ctx.Err())
		case <-s.draining:
			return drained()
		case <-committed:
		case <-time.After(followPoll):
		}
	}
}

func (s *LedgerServer) GetTrialBalance(ctx context.Context, req *pb.GetTrialBalanceRequest) (*pb.GetTrialBalanceResponse, error) {
	at, err := asOfFromProto(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	tb, err := s.Ledger.TrialBalance(ctx, req.GetMarket(), at, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.GetTrialBalanceResponse{AsOfSequence: tb.AsOfSeq, NextPageToken: tb.NextPage}
	for _, line := range tb.Lines {
		resp.Lines = append(resp.Lines, &pb.TrialBalanceLine{
			Account: accountAsOf(line.Account, line.Totals, tb.AsOfSeq),
			Balance: balanceToProto(line.Account, line.Totals, tb.AsOfSeq),
		})
	}
	for _, c := range tb.Totals {
		resp.Totals = append(resp.Totals, &pb.CurrencyTotals{
			Currency:       c.Currency,
			DebitsPending:  ledger.FormatAmount(c.Currency, c.DebitsPending),
			CreditsPending: ledger.FormatAmount(c.Currency, c.CreditsPending),
			DebitsPosted:   ledger.FormatAmount(c.Currency, c.DebitsPosted),
			CreditsPosted:  ledger.FormatAmount(c.Currency, c.CreditsPosted),
			Balanced:       c.Balanced(),
		})
	}
	return resp, nil
}

func (s *LedgerServer) VerifyJournal(ctx context.Context, req *pb.VerifyJournalRequest) (*pb.VerifyJournalResponse, error) {
	v, err := s.Ledger.VerifyJournal(ctx, req.GetMarket(), req.GetFromSequence(), req.GetToSequence())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.VerifyJournalResponse{
		Ok:             v.Broken == nil,
		EntriesChecked: v.EntriesChecked,
		LastHash:       ledger.HexHash(v.LastHash),
		LastSequence:   v.LastSeq,
	}
	if b := v.Broken; b != nil {
		resp.FirstBroken = &pb.BrokenLink{
			EntryId: b.EntryID, Sequence: b.Seq, Reason: b.Reason,
			StoredHash: ledger.HexHash(b.StoredHash), ComputedHash: ledger.HexHash(b.ComputedHash),
		}
	}
	return resp, nil
}

// reservedKind reports whether only PaymentService or SettlementService
// (or the ledger's expiry) may write entries of kind: their tables are
// projections of those entries.
func reservedKind(kind string) bool { return payment.Reserved(kind) || settlement.Reserved(kind) }

// notReservedEntry refuses to post or void a payment's or payout's pending
// entry through the ledger: only their services may, so that the payment or
// payout line follows.
func (s *LedgerServer) notReservedEntry(ctx context.Context, id string) error {
	e, err := s.Ledger.GetEntry(ctx, id)
	if err != nil {
		return toStatus(ctx, ledger.RenameField(err, "id", "pending_entry_id"))
	}
	if reservedKind(e.Kind) {
		return toStatus(ctx, &ledger.Error{Kind: ledger.ErrPendingClosed, Field: "pending_entry_id",
			Msg: fmt.Sprintf("entry %s is a %s entry: close it through PaymentService or SettlementService", e.ID, e.Kind)})
	}
	return nil
}

// closePending posts or voids a pending entry that is not a payment's,
// with a kind that is not the payment flows' either.
func (s *LedgerServer) closePending(ctx context.Context, r ledger.CloseRequest) (ledger.Result, error) {
	if reservedKind(r.Kind) {
		return ledger.Result{}, fieldError("kind", fmt.Errorf("%q is reserved for the payment and settlement flows and the ledger's expiry", r.Kind))
	}
	if err := s.Ledger.CheckClose(r); err != nil {
		return ledger.Result{}, err
	}
	if err := s.notReservedEntry(ctx, r.PendingID); err != nil {
		return ledger.Result{}, err
	}
	return s.Ledger.ClosePending(ctx, r)
}
