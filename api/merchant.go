package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// MerchantServer serves MerchantService.
type MerchantServer struct {
	pb.UnimplementedMerchantServiceServer
	Merchants *merchant.Store
}

func (s *MerchantServer) CreateMarket(ctx context.Context, req *pb.CreateMarketRequest) (*pb.CreateMarketResponse, error) {
	m, err := marketFromProto(req.GetMarket(), func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	out, err := s.Merchants.CreateMarket(ctx, m)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreateMarketResponse{Market: marketToProto(out)}, nil
}

func (s *MerchantServer) GetMarket(ctx context.Context, req *pb.GetMarketRequest) (*pb.GetMarketResponse, error) {
	m, err := s.Merchants.GetMarket(ctx, req.GetCode())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetMarketResponse{Market: marketToProto(m)}, nil
}

func (s *MerchantServer) ListMarkets(ctx context.Context, req *pb.ListMarketsRequest) (*pb.ListMarketsResponse, error) {
	var status merchant.MarketStatus
	if req.GetStatus() != pb.MarketStatus_MARKET_STATUS_UNSPECIFIED {
		var ok bool
		if status, ok = marketStatuses[req.GetStatus()]; !ok {
			return nil, fieldError("status", fmt.Errorf("unknown market status %d", req.GetStatus()))
		}
	}
	markets, next, err := s.Merchants.ListMarkets(ctx, merchant.MarketFilter{
		Province: req.GetProvince(), Status: status, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListMarketsResponse{NextPageToken: next}
	for _, m := range markets {
		resp.Markets = append(resp.Markets, marketToProto(m))
	}
	return resp, nil
}

func (s *MerchantServer) UpdateMarket(ctx context.Context, req *pb.UpdateMarketRequest) (*pb.UpdateMarketResponse, error) {
	paths := req.GetUpdateMask().GetPaths()
	// Fields outside the mask are ignored (AIP-134), so only masked ones
	// are mapped, and only they can be refused.
	m, err := marketFromProto(req.GetMarket(), func(p string) bool { return slices.Contains(paths, p) })
	if err != nil {
		return nil, err
	}
	out, err := s.Merchants.UpdateMarket(ctx, m, paths)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.UpdateMarketResponse{Market: marketToProto(out)}, nil
}

func (s *MerchantServer) CreateMerchant(ctx context.Context, req *pb.CreateMerchantRequest) (*pb.CreateMerchantResponse, error) {
	m, err := merchantFromProto(req.GetMerchant(), func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	out, err := s.Merchants.CreateMerchant(ctx, m)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreateMerchantResponse{Merchant: merchantToProto(out)}, nil
}

// GetMerchant returns personal data in full only to the merchant itself
// and to admins. Banks and auditors get it masked, as ListMerchants shows
// it: otherwise reading the listed codes one by one would undo the list's
// masking. None of them needs more: a payout batch line carries the account
// to pay, copied when the batch was made.
func (s *MerchantServer) GetMerchant(ctx context.Context, req *pb.GetMerchantRequest) (*pb.GetMerchantResponse, error) {
	m, err := s.Merchants.GetMerchant(ctx, req.GetCode())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if !seesPersonalData(ctx, m) {
		m = m.Masked()
	}
	return &pb.GetMerchantResponse{Merchant: merchantToProto(m)}, nil
}

// seesPersonalData reports whether the caller may read m's personal data
// unmasked: an admin, or m's own credential. A call with no principal sees
// it masked.
func seesPersonalData(ctx context.Context, m merchant.Merchant) bool {
	p, ok := principalOf(ctx)
	if !ok {
		return false
	}
	return p.Role == access.RoleAdmin || (p.Role == access.RoleMerchant && p.Merchant == m.Code)
}

// ListMerchants masks personal data: a list is for finding merchants, not
// for reading who runs them.
func (s *MerchantServer) ListMerchants(ctx context.Context, req *pb.ListMerchantsRequest) (*pb.ListMerchantsResponse, error) {
	var status merchant.Status
	if req.GetStatus() != pb.MerchantStatus_MERCHANT_STATUS_UNSPECIFIED {
		var ok bool
		if status, ok = merchantStatuses[req.GetStatus()]; !ok {
			return nil, fieldError("status", fmt.Errorf("unknown merchant status %d", req.GetStatus()))
		}
	}
	merchants, next, err := s.Merchants.ListMerchants(ctx, merchant.MerchantFilter{
		Market: req.GetMarket(), Status: status, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListMerchantsResponse{NextPageToken: next}
	for _, m := range merchants {
		resp.Merchants = append(resp.Merchants, merchantToProto(m.Masked()))
	}
	return resp, nil
}

func (s *MerchantServer) UpdateMerchant(ctx context.Context, req *pb.UpdateMerchantRequest) (*pb.UpdateMerchantResponse, error) {
	paths := req.GetUpdateMask().GetPaths()
	// Fields outside the mask are ignored (AIP-134), so only masked ones
	// are mapped, and only they can be refused.
	m, err := merchantFromProto(req.GetMerchant(), func(p string) bool { return slices.Contains(paths, p) })
	if err != nil {
		return nil, err
	}
	out, err := s.Merchants.UpdateMerchant(ctx, m, paths)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.UpdateMerchantResponse{Merchant: merchantToProto(out)}, nil
}

func (s *MerchantServer) SuspendMerchant(ctx context.Context, req *pb.SuspendMerchantRequest) (*pb.SuspendMerchantResponse, error) {
	m, err := s.Merchants.Suspend(ctx, req.GetCode(), req.GetReason())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.SuspendMerchantResponse{Merchant: merchantToProto(m)}, nil
}

func (s *MerchantServer) ReinstateMerchant(ctx context.Context, req *pb.ReinstateMerchantRequest) (*pb.ReinstateMerchantResponse, error) {
	m, err := s.Merchants.Reinstate(ctx, req.GetCode())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.ReinstateMerchantResponse{Merchant: merchantToProto(m)}, nil
}

func (s *MerchantServer) CloseMerchant(ctx context.Context, req *pb.CloseMerchantRequest) (*pb.CloseMerchantResponse, error) {
	m, err := s.Merchants.Close(ctx, req.GetCode(), req.GetReason())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CloseMerchantResponse{Merchant: merchantToProto(m)}, nil
}

func (s *MerchantServer) GetMerchantQr(ctx context.Context, req *pb.GetMerchantQrRequest) (*pb.GetMerchantQrResponse, error) {
	payload, err := s.Merchants.StaticQR(ctx, req.GetCode())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetMerchantQrResponse{Payload: payload}, nil
}

// Mapping between the proto messages and package merchant.

var marketStatuses = map[pb.MarketStatus]merchant.MarketStatus{
	pb.MarketStatus_MARKET_STATUS_ACTIVE: merchant.MarketActive,
	pb.MarketStatus_MARKET_STATUS_CLOSED: merchant.MarketClosed,
}

var merchantStatuses = map[pb.MerchantStatus]merchant.Status{
	pb.MerchantStatus_MERCHANT_STATUS_PENDING:   merchant.StatusPending,
	pb.MerchantStatus_MERCHANT_STATUS_ACTIVE:    merchant.StatusActive,
	pb.MerchantStatus_MERCHANT_STATUS_SUSPENDED: merchant.StatusSuspended,
	pb.MerchantStatus_MERCHANT_STATUS_CLOSED:    merchant.StatusClosed,
}

var merchantChannels = map[pb.Channel]merchant.Channel{
	pb.Channel_CHANNEL_VIETQR:         merchant.ChannelVietQR,
	pb.Channel_CHANNEL_VIETTEL_MONEY:  merchant.ChannelViettelMoney,
	pb.Channel_CHANNEL_VNPT_MONEY:     merchant.ChannelVNPTMoney,
	pb.Channel_CHANNEL_MOBIFONE_MONEY: merchant.ChannelMobifoneMoney,
	pb.Channel_CHANNEL_MOMO:           merchant.ChannelMoMo,
	pb.Channel_CHANNEL_ZALOPAY:        merchant.ChannelZaloPay,
}

// channelFromProto maps a channel; UNSPECIFIED and unknown values are not
// channels.
func channelFromProto(c pb.Channel) (merchant.Channel, bool) {
	ch, ok := merchantChannels[c]
	return ch, ok
}

func channelToProto(ch merchant.Channel) pb.Channel { return reverse(merchantChannels, ch) }

// reverse returns the proto value of a domain value, or the zero
// (UNSPECIFIED) one.
func reverse[P comparable, D comparable](m map[P]D, d D) P {
	for k, v := range m {
		if v == d {
			return k
		}
	}
	var zero P
	return zero
}

// marketFromProto maps a market, its collection account and status only
// when want names them. An
// unset status maps to none, which CreateMarket takes as active and
// UpdateMarket refuses.
func marketFromProto(in *pb.Market, want func(path string) bool) (merchant.Market, error) {
	if in == nil {
		return merchant.Market{}, fieldError("market", errors.New("is required"))
	}
	m := merchant.Market{Code: in.GetCode(), Name: in.GetName(), Province: in.GetProvince(), Ward: in.GetWard()}
	if a := in.GetCollectionAccount(); want("collection_account") && a != nil {
		m.Collection = bankAccountFromProto(a)
	}
	if st := in.GetStatus(); want("status") && st != pb.MarketStatus_MARKET_STATUS_UNSPECIFIED {
		var ok bool
		if m.Status, ok = marketStatuses[st]; !ok {
			return merchant.Market{}, fieldError("market.status", fmt.Errorf("must be MARKET_STATUS_ACTIVE or MARKET_STATUS_CLOSED, got %v", st))
		}
	}
	return m, nil
}

func marketToProto(m merchant.Market) *pb.Market {
	return &pb.Market{
		Code:       m.Code,
		Name:       m.Name,
		Province:   m.Province,
		Ward:       m.Ward,
		Status:     reverse(marketStatuses, m.Status),
		CreateTime: timestamppb.New(m.CreatedAt),
		// Never masked: every QR of the market shows it.
		CollectionAccount: bankAccountToProto(m.Collection),
	}
}

func bankAccountFromProto(a *pb.PayoutAccount) *merchant.BankAccount {
	return &merchant.BankAccount{BankBIN: a.GetBankBin(), AccountNumber: a.GetAccountNumber(), HolderName: a.GetHolderName()}
}

// bankAccountToProto maps a bank account; nil is none.
func bankAccountToProto(a *merchant.BankAccount) *pb.PayoutAccount {
	if a == nil {
		return nil
	}
	return &pb.PayoutAccount{BankBin: a.BankBIN, AccountNumber: a.AccountNumber, HolderName: a.HolderName}
}

// merchantFromProto maps the merchant's code and market and the fields
// want names (by their update_mask path). An unset status means active,
// which CreateMerchant takes as the default.
func merchantFromProto(in *pb.Merchant, want func(path string) bool) (merchant.Merchant, error) {
	if in == nil {
		return merchant.Merchant{}, fieldError("merchant", errors.New("is required"))
	}
	m := merchant.Merchant{Code: in.GetCode(), Market: in.GetMarket()}
	if want("stalls") {
		m.Stalls = in.GetStalls()
	}
	if want("display_name") {
		m.DisplayName = in.GetDisplayName()
	}
	if want("owner_name") {
		m.Owner = in.GetOwnerName()
	}
	if want("phone") {
		m.Phone = in.GetPhone()
	}
	if want("status") && in.GetStatus() != pb.MerchantStatus_MERCHANT_STATUS_UNSPECIFIED {
		var ok bool
		if m.Status, ok = merchantStatuses[in.GetStatus()]; !ok {
			return merchant.Merchant{}, fieldError("merchant.status", fmt.Errorf("unknown merchant status %v", in.GetStatus()))
		}
	}
	if p := in.GetPayoutAccount(); want("payout_account") && p != nil {
		m.Payout = bankAccountFromProto(p)
	}
	if want("fee_plan") {
		fees, err := feePlanFromProto(in.GetFeePlan())
		if err != nil {
			return merchant.Merchant{}, err
		}
		m.Fees = fees
	}
	if want("channels") {
		for i, c := range in.GetChannels() {
			ch, ok := channelFromProto(c)
			if !ok {
				return merchant.Merchant{}, fieldError(fmt.Sprintf("merchant.channels[%d]", i), fmt.Errorf("must be a CHANNEL_ value other than UNSPECIFIED, got %v", c))
			}
			m.Channels = append(m.Channels, ch)
		}
	}
	return m, nil
}

// feePlanFromProto maps a fee plan; an unset plan charges nothing.
func feePlanFromProto(in *pb.FeePlan) (merchant.FeePlan, error) {
	var p merchant.FeePlan
	for i, f := range in.GetFees() {
		field := fmt.Sprintf("merchant.fee_plan.fees[%d]", i)
		ch, ok := channelFromProto(f.GetChannel())
		if !ok {
			return p, fieldError(field+".channel", fmt.Errorf("must be a CHANNEL_ value other than UNSPECIFIED, got %v", f.GetChannel()))
		}
		if _, dup := p.BasisPoints[ch]; dup {
			return p, fieldError(field+".channel", fmt.Errorf("%v has a fee twice", f.GetChannel()))
		}
		if p.BasisPoints == nil {
			p.BasisPoints = map[merchant.Channel]int{}
		}
		p.BasisPoints[ch] = int(f.GetBasisPoints())
	}
	if s := in.GetMinFee(); s != "" {
		d, err := ledger.ParseDecimal(s)
		if err != nil {
			return p, fieldError("merchant.fee_plan.min_fee", err)
		}
		if !d.IsInteger() {
			return p, fieldError("merchant.fee_plan.min_fee", fmt.Errorf("VND has no minor unit: must be whole đồng, got %q", s))
		}
		if d.GreaterThan(decimal.NewFromInt(merchant.MaxMinFee)) {
			return p, fieldError("merchant.fee_plan.min_fee", fmt.Errorf("must be 0-%d đồng, got %q", merchant.MaxMinFee, s))
		}
		p.MinFee = d.IntPart()
	}
	return p, nil
}

func merchantToProto(m merchant.Merchant) *pb.Merchant {
	out := &pb.Merchant{
		Code:           m.Code,
		Market:         m.Market,
		Stalls:         m.Stalls,
		DisplayName:    m.DisplayName,
		OwnerName:      m.Owner,
		Phone:          m.Phone,
		Status:         reverse(merchantStatuses, m.Status),
		FeePlan:        &pb.FeePlan{MinFee: strconv.FormatInt(m.Fees.MinFee, 10)},
		CreateTime:     timestamppb.New(m.CreatedAt),
		UpdateTime:     timestamppb.New(m.UpdatedAt),
		PayableAccount: merchant.PayableAccount(m.Code),
		PayoutAccount:  bankAccountToProto(m.Payout),
	}
	for _, ch := range merchant.Channels { // one order, whatever the map's
		if bps, ok := m.Fees.BasisPoints[ch]; ok {
			out.FeePlan.Fees = append(out.FeePlan.Fees, &pb.ChannelFee{Channel: channelToProto(ch), BasisPoints: int32(bps)})
		}
	}
	for _, ch := range m.Channels {
		out.Channels = append(out.Channels, channelToProto(ch))
	}
	return out
}
