package api

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/settlement"
	"github.com/choledger/choledger/settlement/reconcile"
	"github.com/choledger/choledger/settlement/statement"
)

// MaxRecvMsgBytes is the largest request the server must accept: an
// ImportStatement carrying a statement of settlement.MaxStatementBytes (10
// MiB), with room for the rest of the message. gRPC's default of 4 MiB
// would refuse such a statement before it could be told what is wrong.
const MaxRecvMsgBytes = settlement.MaxStatementBytes + 1<<20

var statementFormats = map[pb.StatementFormat]statement.Format{
	pb.StatementFormat_STATEMENT_FORMAT_CSV:     statement.FormatCSV,
	pb.StatementFormat_STATEMENT_FORMAT_CAMT053: statement.FormatCamt053,
	pb.StatementFormat_STATEMENT_FORMAT_CAMT054: statement.FormatCamt054,
}

var itemKinds = map[pb.ReconciliationItemKind]reconcile.Kind{
	pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MATCHED:              reconcile.Matched,
	pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_AMOUNT_MISMATCH:      reconcile.AmountMismatch,
	pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_LEDGER:    reconcile.MissingInLedger,
	pb.ReconciliationItemKind_RECONCILIATION_ITEM_KIND_MISSING_IN_STATEMENT: reconcile.MissingInStatement,
}

// callerMarkets is what a call that names no market covers: a bound bank's
// or auditor's markets, or every market (nil).
func callerMarkets(p access.Principal) []string {
	if (p.Role == access.RoleBank || p.Role == access.RoleAuditor) && len(p.Markets) > 0 {
		return p.Markets
	}
	return nil
}

func (s *SettlementServer) ImportStatement(ctx context.Context, req *pb.ImportStatementRequest) (*pb.ImportStatementResponse, error) {
	p, _ := principalOf(ctx)
	start, err := optionalTime("period_start", req.GetPeriodStart())
	if err != nil {
		return nil, err
	}
	end, err := optionalTime("period_end", req.GetPeriodEnd())
	if err != nil {
		return nil, err
	}
	format, ok := statementFormats[req.GetFormat()]
	if !ok && req.GetFormat() != pb.StatementFormat_STATEMENT_FORMAT_UNSPECIFIED {
		return nil, fieldError("format", errors.New("must be STATEMENT_FORMAT_CSV, STATEMENT_FORMAT_CAMT053 or STATEMENT_FORMAT_CAMT054"))
	}
	ch, ok := channelFromProto(req.GetChannel())
	if !ok && req.GetChannel() != pb.Channel_CHANNEL_UNSPECIFIED {
		return nil, fieldError("channel", errors.New("must be a known channel, e.g. CHANNEL_VIETQR (NAPAS)"))
	}
	res, err := s.Settlement.ImportStatement(ctx, settlement.StatementImport{
		Format:      format,
		Content:     req.GetContent(),
		Channel:     ch,
		Market:      req.GetMarket(),
		Markets:     callerMarkets(p),
		PeriodStart: start,
		PeriodEnd:   end,
		CreatedBy:   p.Scope(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.ImportStatementResponse{
		Report:   reportToProto(res.Report),
		Breaks:   itemsToProto(res.Breaks),
		Replayed: res.Replayed,
	}, nil
}

func (s *SettlementServer) GetReconciliationReport(ctx context.Context, req *pb.GetReconciliationReportRequest) (*pb.GetReconciliationReportResponse, error) {
	r, items, next, err := s.Settlement.ReconciliationReport(ctx, req.GetId(), settlement.ItemQuery{
		IncludeMatched: req.GetIncludeMatched(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetReconciliationReportResponse{Report: reportToProto(r), Items: itemsToProto(items), NextPageToken: next}, nil
}

func (s *SettlementServer) ListReconciliationReports(ctx context.Context, req *pb.ListReconciliationReportsRequest) (*pb.ListReconciliationReportsResponse, error) {
	p, _ := principalOf(ctx)
	var ch merchant.Channel
	if req.GetChannel() != pb.Channel_CHANNEL_UNSPECIFIED {
		var ok bool
		if ch, ok = channelFromProto(req.GetChannel()); !ok {
			return nil, fieldError("channel", errors.New("must be a known channel, e.g. CHANNEL_VIETQR (NAPAS)"))
		}
	}
	f := settlement.ReportFilter{
		Channel: ch, Market: req.GetMarket(), Within: callerMarkets(p),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	}
	if p.Role == access.RoleBank {
		f.Provider = p.Provider
	}
	reports, next, err := s.Settlement.ListReconciliationReports(ctx, f)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.ListReconciliationReportsResponse{NextPageToken: next}
	for _, r := range reports {
		out.Reports = append(out.Reports, reportToProto(r))
	}
	return out, nil
}

func reportToProto(r settlement.ReconciliationReport) *pb.ReconciliationReport {
	return &pb.ReconciliationReport{
		Id:                      r.ID,
		Format:                  reverse(statementFormats, r.Format),
		StatementId:             r.StatementID,
		Digest:                  r.Digest,
		Channel:                 channelToProto(r.Channel),
		Provider:                r.Provider,
		Market:                  r.Market,
		PeriodStart:             timestamppb.New(r.PeriodStart),
		PeriodEnd:               timestamppb.New(r.PeriodEnd),
		LineCount:               int32(r.LineCount),
		PaymentCount:            int32(r.PaymentCount),
		MatchedCount:            int32(r.Matched),
		AmountMismatchCount:     int32(r.AmountMismatch),
		MissingInLedgerCount:    int32(r.MissingInLedger),
		MissingInStatementCount: int32(r.MissingInStatement),
		CreateTime:              timestamppb.New(r.CreatedAt),
	}
}

func itemsToProto(items []settlement.ReconciliationItem) []*pb.ReconciliationItem {
	out := make([]*pb.ReconciliationItem, len(items))
	for i, it := range items {
		x := &pb.ReconciliationItem{Kind: reverse(itemKinds, it.Kind), PaymentId: it.PaymentID, ByReference: it.ByReference}
		if it.Line != 0 {
			x.LineNumber = int32(it.Line)
			x.StatementRef = it.StatementRef
			x.StatementAmount = amountString(it.StatementAmount)
			x.BookedTime = timestamppb.New(it.BookedAt)
		}
		if it.PaymentID != "" {
			x.LedgerAmount = amountString(it.LedgerAmount)
		}
		out[i] = x
	}
	return out
}
