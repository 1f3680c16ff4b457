package api

import (
	"context"
	"errors"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/settlement"
)

// SettlementServer serves SettlementService.
type SettlementServer struct {
	pb.UnimplementedSettlementServiceServer
	Settlement *settlement.Service
}

func amountString(v int64) string { return ledger.FormatAmount(settlement.Currency, v) }

func settlementTotalsToProto(t settlement.Totals) *pb.SettlementTotals {
	out := &pb.SettlementTotals{
		OpeningBalance: amountString(t.Opening),
		PaymentCount:   t.PaymentCount,
		Payments:       amountString(t.Payments),
		RefundCount:    t.RefundCount,
		Refunds:        amountString(t.Refunds),
		FeesCharged:    amountString(t.FeesCharged),
		FeesReturned:   amountString(t.FeesReturned),
		Fees:           amountString(t.Fees()),
		PayoutCount:    t.PayoutCount,
		Payouts:        amountString(t.Payouts),
		Adjustments:    amountString(t.Adjustments),
		ClosingBalance: amountString(t.Closing),
		Pending:        amountString(t.Pending),
		Equation:       t.Equation(),
	}
	for _, c := range t.Channels {
		out.Channels = append(out.Channels, &pb.ChannelSettlement{
			Channel:      channelToProto(c.Channel),
			Provider:     c.Channel.Provider(),
			PaymentCount: c.PaymentCount,
			Payments:     amountString(c.Payments),
			FeesCharged:  amountString(c.FeesCharged),
			RefundCount:  c.RefundCount,
			Refunds:      amountString(c.Refunds),
			FeesReturned: amountString(c.FeesReturned),
		})
	}
	return out
}

func settlementDaysToProto(days []settlement.DayTotals) []*pb.SettlementDay {
	out := make([]*pb.SettlementDay, len(days))
	for i, d := range days {
		out[i] = &pb.SettlementDay{Day: d.Day.String(), Totals: settlementTotalsToProto(d.Totals)}
	}
	return out
}

func settlementPeriodToProto(p settlement.Period) *pb.SettlementPeriod {
	return &pb.SettlementPeriod{
		StartDay:     p.Start.String(),
		EndDay:       p.End.String(),
		StartTime:    timestamppb.New(p.StartTime),
		EndTime:      timestamppb.New(p.EndTime),
		AsOfSequence: p.AsOfSeq,
	}
}

func (s *SettlementServer) GetMerchantSettlement(ctx context.Context, req *pb.GetMerchantSettlementRequest) (*pb.GetMerchantSettlementResponse, error) {
	at, err := asOfFromProto(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	ms, err := s.Settlement.MerchantSettlement(ctx, settlement.MerchantQuery{
		Merchant: req.GetMerchant(), Start: req.GetStartDay(), End: req.GetEndDay(), AsOf: at,
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetMerchantSettlementResponse{
		Merchant: ms.Merchant,
		Market:   ms.Market,
		Currency: settlement.Currency,
		Period:   settlementPeriodToProto(ms.Period),
		Totals:   settlementTotalsToProto(ms.Totals),
		Days:     settlementDaysToProto(ms.Days),
	}, nil
}

var settlementOrders = map[pb.MerchantSettlementOrder]settlement.Order{
	pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_UNSPECIFIED: settlement.OrderMerchant,
	pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_MERCHANT:    settlement.OrderMerchant,
	pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE:  settlement.OrderAmountDue,
}

func (s *SettlementServer) GetMarketSettlement(ctx context.Context, req *pb.GetMarketSettlementRequest) (*pb.GetMarketSettlementResponse, error) {
	at, err := asOfFromProto(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	order, ok := settlementOrders[req.GetOrderBy()]
	if !ok {
		return nil, fieldError("order_by", errors.New("must be MERCHANT_SETTLEMENT_ORDER_MERCHANT or MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE"))
	}
	ms, err := s.Settlement.MarketSettlement(ctx, settlement.MarketQuery{
		Market: req.GetMarket(), Start: req.GetStartDay(), End: req.GetEndDay(), AsOf: at,
		Order: order, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.GetMarketSettlementResponse{
		Market:        ms.Market,
		Currency:      settlement.Currency,
		Period:        settlementPeriodToProto(ms.Period),
		Totals:        settlementTotalsToProto(ms.Totals),
		Days:          settlementDaysToProto(ms.Days),
		NextPageToken: ms.NextPage,
		TotalSize:     int32(ms.TotalMerchants),
	}
	for _, p := range ms.Providers {
		c := &pb.ProviderClearing{
			Provider:        p.Provider,
			ClearingAccount: p.ClearingAccount,
			OpeningOwed:     amountString(p.Opening),
			PaymentCount:    p.PaymentCount,
			Payments:        amountString(p.Payments),
			RefundCount:     p.RefundCount,
			Refunds:         amountString(p.Refunds),
			SettlementCount: p.SettlementCount,
			Settled:         amountString(p.Settled),
			Reclassified:    amountString(p.Reclassified),
			Adjustments:     amountString(p.Adjustments),
			ClosingOwed:     amountString(p.Closing),
			Pending:         amountString(p.Pending),
			Equation:        p.Equation(),
		}
		for _, ch := range p.Channels {
			c.Channels = append(c.Channels, channelToProto(ch))
		}
		resp.Providers = append(resp.Providers, c)
	}
	for _, l := range ms.Merchants {
		resp.Merchants = append(resp.Merchants, &pb.MerchantSettlementLine{Merchant: l.Merchant, Totals: settlementTotalsToProto(l.Totals)})
	}
	return resp, nil
}

// providerMoney reads what the requests that move a provider's money
// name alike: the caller's key, the channel and the amount.
func providerMoney(ctx context.Context, key string, channel pb.Channel, amount string) (string, merchant.Channel, decimal.Decimal, error) {
	key, err := clientKey(ctx, key)
	if err != nil {
		return "", "", decimal.Decimal{}, err
	}
	ch, ok := channelFromProto(channel)
	if !ok {
		return "", "", decimal.Decimal{}, fieldError("channel", errors.New("must be a known channel, e.g. CHANNEL_VIETQR (NAPAS)"))
	}
	d, err := ledger.ParseDecimal(amount)
	if err != nil {
		return "", "", decimal.Decimal{}, fieldError("amount", err)
	}
	return key, ch, d, nil
}

func (s *SettlementServer) RecordProviderSettlement(ctx context.Context, req *pb.RecordProviderSettlementRequest) (*pb.RecordProviderSettlementResponse, error) {
	key, ch, amount, err := providerMoney(ctx, req.GetIdempotencyKey(), req.GetChannel(), req.GetAmount())
	if err != nil {
		return nil, err
	}
	ps, replayed, err := s.Settlement.RecordProviderSettlement(ctx, settlement.ProviderSettlementRequest{
		Key: key, Channel: ch, Market: req.GetMarket(), Amount: amount, Bank: req.GetBank(), BankRef: req.GetBankRef(),
		AllowUnmatched: req.GetAllowUnmatched(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RecordProviderSettlementResponse{Replayed: replayed, Settlement: &pb.ProviderSettlement{
		EntryId:           ps.EntryID,
		Market:            ps.Market,
		Channel:           channelToProto(ps.Channel),
		Provider:          ps.Provider,
		Bank:              ps.Bank,
		BankRef:           ps.BankRef,
		Amount:            amountString(ps.Amount),
		RemainingOwed:     amountString(ps.RemainingOwed),
		ClearingAccount:   ps.ClearingAccount,
		SettlementAccount: ps.SettlementAccount,
		RecordTime:        timestamppb.New(ps.RecordedAt),
		Settled:           amountString(ps.Settled),
		Unmatched:         amountString(ps.Unmatched),
		SuspenseAccount:   ps.SuspenseAccount,
	}}, nil
}

func (s *SettlementServer) ReclassifySuspense(ctx context.Context, req *pb.ReclassifySuspenseRequest) (*pb.ReclassifySuspenseResponse, error) {
	key, ch, amount, err := providerMoney(ctx, req.GetIdempotencyKey(), req.GetChannel(), req.GetAmount())
	if err != nil {
		return nil, err
	}
	rc, replayed, err := s.Settlement.ReclassifySuspense(ctx, settlement.SuspenseReclassificationRequest{
		Key: key, Market: req.GetMarket(), Channel: ch, Amount: amount, Reason: req.GetReason(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.ReclassifySuspenseResponse{Replayed: replayed, Reclassification: &pb.SuspenseReclassification{
		EntryId:           rc.EntryID,
		Market:            rc.Market,
		Channel:           channelToProto(rc.Channel),
		Provider:          rc.Provider,
		Amount:            amountString(rc.Amount),
		Reason:            rc.Reason,
		SuspenseAccount:   rc.SuspenseAccount,
		ClearingAccount:   rc.ClearingAccount,
		RemainingSuspense: amountString(rc.RemainingSuspense),
		RemainingOwed:     amountString(rc.RemainingOwed),
		RecordTime:        timestamppb.New(rc.RecordedAt),
	}}, nil
}
