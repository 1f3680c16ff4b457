package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
)

var accountTypes = map[pb.AccountType]ledger.AccountType{
	pb.AccountType_ACCOUNT_TYPE_ASSET:     ledger.Asset,
	pb.AccountType_ACCOUNT_TYPE_LIABILITY: ledger.Liability,
	pb.AccountType_ACCOUNT_TYPE_REVENUE:   ledger.Revenue,
	pb.AccountType_ACCOUNT_TYPE_EXPENSE:   ledger.Expense,
	pb.AccountType_ACCOUNT_TYPE_EQUITY:    ledger.Equity,
}

func accountTypeToProto(t ledger.AccountType) pb.AccountType {
	for k, v := range accountTypes {
		if v == t {
			return k
		}
	}
	return pb.AccountType_ACCOUNT_TYPE_UNSPECIFIED
}

var phases = map[ledger.Phase]pb.EntryPhase{
	ledger.PhasePosted:      pb.EntryPhase_ENTRY_PHASE_POSTED,
	ledger.PhasePending:     pb.EntryPhase_ENTRY_PHASE_PENDING,
	ledger.PhasePostPending: pb.EntryPhase_ENTRY_PHASE_POST_PENDING,
	ledger.PhaseVoidPending: pb.EntryPhase_ENTRY_PHASE_VOID_PENDING,
}

var pendingStates = map[ledger.PendingState]pb.PendingState{
	ledger.PendingOpen:   pb.PendingState_PENDING_STATE_OPEN,
	ledger.PendingPosted: pb.PendingState_PENDING_STATE_POSTED,
	ledger.PendingVoided: pb.PendingState_PENDING_STATE_VOIDED,
}

func directionToProto(d ledger.Direction) pb.Direction {
	if d == ledger.Debit {
		return pb.Direction_DIRECTION_DEBIT
	}
	return pb.Direction_DIRECTION_CREDIT
}

func balanceToProto(a ledger.Account, t ledger.Totals, seq int64) *pb.Balance {
	c := a.Currency
	return &pb.Balance{
		DebitsPending:  ledger.FormatAmount(c, t.DebitsPending),
		CreditsPending: ledger.FormatAmount(c, t.CreditsPending),
		DebitsPosted:   ledger.FormatAmount(c, t.DebitsPosted),
		CreditsPosted:  ledger.FormatAmount(c, t.CreditsPosted),
		Posted:         ledger.FormatAmount(c, t.Posted(a.Type)),
		AsOfSequence:   seq,
	}
}

// accountAsOf maps an account with its totals t as of seq, which an answer
// as of a past point gives beside it: its balance then, not now.
func accountAsOf(a ledger.Account, t ledger.Totals, seq int64) *pb.Account {
	a.Totals = t
	return accountToProto(a, seq)
}

func accountToProto(a ledger.Account, seq int64) *pb.Account {
	return &pb.Account{
		Code:                       a.Code,
		Type:                       accountTypeToProto(a.Type),
		Currency:                   a.Currency,
		Market:                     a.Market,
		DebitsMustNotExceedCredits: a.Flags&ledger.FlagDebitsMustNotExceedCredits != 0,
		CreditsMustNotExceedDebits: a.Flags&ledger.FlagCreditsMustNotExceedDebits != 0,
		Balance:                    balanceToProto(a, a.Totals, seq),
		CreateTime:                 timestamppb.New(a.CreatedAt),
	}
}

func entryToProto(e ledger.Entry) *pb.Entry {
	out := &pb.Entry{
		Id:                   e.ID,
		Sequence:             e.Seq,
		Market:               e.Market,
		Kind:                 e.Kind,
		Phase:                phases[e.Phase],
		Currency:             e.Currency,
		PendingEntryId:       e.PendingID,
		PendingEntrySequence: e.PendingSeq,
		PendingState:         pendingStates[e.PendingState],
		ClosingEntryId:       e.ClosedBy,
		IdempotencyKey:       e.IdempotencyKey,
		ExternalRef:          e.ExternalRef,
		OccurTime:            timestamppb.New(e.OccurredAt),
		RecordTime:           timestamppb.New(e.RecordedAt),
		Metadata:             e.Metadata,
		Hash:                 hex.EncodeToString(e.Hash),
	}
	if !e.ExpiresAt.IsZero() {
		out.ExpireTime = timestamppb.New(e.ExpiresAt)
	}
	for _, p := range e.Postings {
		out.Postings = append(out.Postings, &pb.Posting{
			AccountCode: p.AccountCode,
			Direction:   directionToProto(p.Direction),
			Amount:      ledger.FormatAmount(e.Currency, p.Amount),
		})
	}
	return out
}

func postingsFromProto(in []*pb.PostingInput) ([]ledger.PostingInput, error) {
	out := make([]ledger.PostingInput, len(in))
	for i, p := range in {
		field := fmt.Sprintf("postings[%d]", i)
		amount, err := ledger.ParseDecimal(p.GetAmount())
		if err != nil {
			return nil, fieldError(field+".amount", err)
		}
		var dir ledger.Direction
		switch p.GetDirection() {
		case pb.Direction_DIRECTION_DEBIT:
			dir = ledger.Debit
		case pb.Direction_DIRECTION_CREDIT:
			dir = ledger.Credit
		default:
			return nil, fieldError(field+".direction", errors.New("must be DIRECTION_DEBIT or DIRECTION_CREDIT"))
		}
		out[i] = ledger.PostingInput{AccountCode: p.GetAccountCode(), Direction: dir, Amount: amount}
	}
	return out, nil
}

// optionalTime maps an unset timestamp to the zero time and refuses one
// outside the range a timestamp can hold. The domain reads the zero time as
// unset (now, no bound), so a timestamp that is set to it,
// 0001-01-01T00:00:00Z, is refused rather than quietly read as unset.
func optionalTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fieldError(field, err)
	}
	t := ts.AsTime()
	if t.IsZero() {
		return time.Time{}, fieldError(field, errors.New("must be after 0001-01-01T00:00:00Z, or unset"))
	}
	return t, nil
}

func asOfFromProto(a *pb.AsOf) (ledger.AsOf, error) {
	if a == nil {
		return ledger.AsOf{}, nil
	}
	switch p := a.Point.(type) {
	case *pb.AsOf_Sequence:
		if p.Sequence <= 0 {
			return ledger.AsOf{}, fieldError("as_of.sequence", fmt.Errorf("must be positive, got %d", p.Sequence))
		}
		return ledger.AsOf{Seq: p.Sequence}, nil
	case *pb.AsOf_Time:
		t, err := optionalTime("as_of.time", p.Time)
		return ledger.AsOf{Time: t}, err
	}
	return ledger.AsOf{}, nil
}
