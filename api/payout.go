package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/settlement"
)

var batchStatuses = map[settlement.BatchStatus]pb.PayoutBatchStatus{
	settlement.BatchCreating:  pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_CREATING,
	settlement.BatchOpen:      pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_OPEN,
	settlement.BatchCompleted: pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_COMPLETED,
}

var lineStatuses = map[settlement.LineStatus]pb.PayoutLineStatus{
	settlement.LineReserving: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_RESERVING,
	settlement.LineOpen:      pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN,
	settlement.LinePaid:      pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID,
	settlement.LineFailed:    pb.PayoutLineStatus_PAYOUT_LINE_STATUS_FAILED,
	settlement.LineSkipped:   pb.PayoutLineStatus_PAYOUT_LINE_STATUS_SKIPPED,
	settlement.LineExpired:   pb.PayoutLineStatus_PAYOUT_LINE_STATUS_EXPIRED,
}

// timeOrNil leaves an unset time unset.
func timeOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func payoutBatchToProto(b settlement.PayoutBatch) *pb.PayoutBatch {
	return &pb.PayoutBatch{
		Id:             b.ID,
		Bank:           b.Bank,
		Market:         b.Market,
		CutOff:         timestamppb.New(b.CutOff),
		CutOffSequence: b.CutOffSeq,
		Status:         batchStatuses[b.Status],
		LineCount:      int32(b.Lines),
		Total:          amountString(b.Total),
		OpenCount:      int32(b.Open + b.Reserving),
		PaidCount:      int32(b.Paid),
		Paid:           amountString(b.PaidAmount),
		FailedCount:    int32(b.Failed),
		Failed:         amountString(b.FailedAmount),
		SkippedCount:   int32(b.Skipped),
		Skipped:        amountString(b.SkippedAmount),
		ExpiredCount:   int32(b.Expired),
		CreateTime:     timestamppb.New(b.CreatedAt),
		CompleteTime:   timeOrNil(b.CompletedAt),
	}
}

// payoutLinesToProto maps a batch's lines, their payout accounts masked
// unless inFull: only the bank that pays them and admins read them in
// full, as only they and the merchant itself read a merchant's.
func payoutLinesToProto(lines []settlement.PayoutLine, inFull bool) []*pb.PayoutLine {
	out := make([]*pb.PayoutLine, len(lines))
	for i, l := range lines {
		out[i] = &pb.PayoutLine{
			Merchant:     l.Merchant,
			Market:       l.Market,
			Amount:       amountString(l.Amount),
			Status:       lineStatuses[l.Status],
			Reason:       l.Reason,
			BankRef:      l.BankRef,
			EntryId:      l.EntryID,
			CloseEntryId: l.CloseEntryID,
			ResolveTime:  timeOrNil(l.ResolvedAt),
		}
		if a := l.Account; a != nil {
			if !inFull {
				masked := a.Masked()
				a = &masked
			}
			out[i].PayoutAccount = bankAccountToProto(a)
		}
	}
	return out
}

func (s *SettlementServer) CreatePayoutBatch(ctx context.Context, req *pb.CreatePayoutBatchRequest) (*pb.CreatePayoutBatchResponse, error) {
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	if req.GetCutOff() == nil {
		return nil, fieldError("cut_off", errors.New("is required: money recorded up to it is paid out"))
	}
	cutOff, err := optionalTime("cut_off", req.GetCutOff())
	if err != nil {
		return nil, err
	}
	if _, err := ledger.PageSize(int(req.GetPageSize())); err != nil {
		return nil, toStatus(ctx, err)
	}
	p, _ := principalOf(ctx)
	b, replayed, err := s.Settlement.CreatePayoutBatch(ctx, settlement.PayoutBatchRequest{
		Key: key, Creator: p.Scope(), Bank: req.GetBank(), CutOff: cutOff,
		// A batch of every market covers the creator's markets only.
		Market: req.GetMarket(), Markets: boundMarkets(p.Markets),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	// The batch is made, its money reserved, even if the caller gave up
	// while it was: its lines are read to answer with it, not refused for
	// the caller's cancel.
	b, lines, next, err := s.Settlement.PayoutBatch(context.WithoutCancel(ctx), b.ID, int(req.GetPageSize()), "")
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreatePayoutBatchResponse{Batch: payoutBatchToProto(b), Lines: payoutLinesToProto(lines, true), NextPageToken: next, Replayed: replayed}, nil
}

// boundMarkets is nil (every market) for a principal bound to none.
func boundMarkets(markets []string) []string {
	if len(markets) == 0 {
		return nil
	}
	return markets
}

func (s *SettlementServer) GetPayoutBatch(ctx context.Context, req *pb.GetPayoutBatchRequest) (*pb.GetPayoutBatchResponse, error) {
	b, lines, next, err := s.Settlement.PayoutBatch(ctx, req.GetId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	// Auditors read it too, and see accounts as GetMerchant shows them.
	p, _ := principalOf(ctx)
	inFull := p.Role == access.RoleAdmin || p.Role == access.RoleBank
	return &pb.GetPayoutBatchResponse{Batch: payoutBatchToProto(b), Lines: payoutLinesToProto(lines, inFull), NextPageToken: next}, nil
}

func (s *SettlementServer) CompletePayoutBatch(ctx context.Context, req *pb.CompletePayoutBatchRequest) (*pb.CompletePayoutBatchResponse, error) {
	results := make([]settlement.PayoutResult, len(req.GetResults()))
	for i, r := range req.GetResults() {
		switch r.GetStatus() {
		case pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID:
			results[i].Paid = true
		case pb.PayoutLineStatus_PAYOUT_LINE_STATUS_FAILED:
		default:
			return nil, fieldError(fmt.Sprintf("results[%d].status", i), errors.New("must be PAYOUT_LINE_STATUS_PAID or PAYOUT_LINE_STATUS_FAILED"))
		}
		results[i].Merchant, results[i].BankRef, results[i].Reason = r.GetMerchant(), r.GetBankRef(), r.GetFailureReason()
	}
	b, lines, err := s.Settlement.CompletePayoutBatch(ctx, req.GetBatchId(), results)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CompletePayoutBatchResponse{Batch: payoutBatchToProto(b), Lines: payoutLinesToProto(lines, true)}, nil
}
