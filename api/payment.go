package api

import (
	"context"
	"errors"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/payment"
)

// PaymentServer serves PaymentService.
type PaymentServer struct {
	pb.UnimplementedPaymentServiceServer
	Payments *payment.Service
}

var paymentStatuses = map[payment.Status]pb.PaymentStatus{
	payment.StatusPending:           pb.PaymentStatus_PAYMENT_STATUS_PENDING,
	payment.StatusConfirmed:         pb.PaymentStatus_PAYMENT_STATUS_CONFIRMED,
	payment.StatusRejected:          pb.PaymentStatus_PAYMENT_STATUS_REJECTED,
	payment.StatusExpired:           pb.PaymentStatus_PAYMENT_STATUS_EXPIRED,
	payment.StatusPartiallyRefunded: pb.PaymentStatus_PAYMENT_STATUS_PARTIALLY_REFUNDED,
	payment.StatusRefunded:          pb.PaymentStatus_PAYMENT_STATUS_REFUNDED,
}

var paymentSources = map[payment.Source]pb.PaymentSource{
	payment.SourceStall: pb.PaymentSource_PAYMENT_SOURCE_STALL,
	payment.SourceBank:  pb.PaymentSource_PAYMENT_SOURCE_BANK,
}

func paymentToProto(p payment.Payment) *pb.Payment {
	out := &pb.Payment{
		Id:               p.ID,
		Merchant:         p.Merchant,
		Market:           p.Market,
		Channel:          channelToProto(p.Channel),
		Source:           paymentSources[p.Source],
		Status:           paymentStatuses[p.Status],
		Currency:         p.Currency,
		Amount:           ledger.FormatAmount(p.Currency, p.Amount),
		ConfirmedAmount:  ledger.FormatAmount(p.Currency, p.ConfirmedAmount),
		Fee:              ledger.FormatAmount(p.Currency, p.Fee),
		RefundedAmount:   ledger.FormatAmount(p.Currency, p.RefundedAmount),
		FeeRefunded:      ledger.FormatAmount(p.Currency, p.FeeRefunded),
		ProviderRef:      p.ProviderRef,
		PaymentRequestId: p.RequestID,
		BillNumber:       p.BillNumber,
		OccurTime:        timestamppb.New(p.OccurredAt),
		CreateTime:       timestamppb.New(p.CreatedAt),
		UpdateTime:       timestamppb.New(p.UpdatedAt),
		EntryIds:         p.EntryIDs,
	}
	if !p.ExpiresAt.IsZero() {
		out.ExpireTime = timestamppb.New(p.ExpiresAt)
	}
	return out
}

// optionalAmount parses an amount a request may leave empty: nil when it
// does. An amount given as "0" is given, and refused by the flow, never
// taken for an empty one.
func optionalAmount(field, s string) (*decimal.Decimal, error) {
	if s == "" {
		return nil, nil
	}
	d, err := ledger.ParseDecimal(s)
	if err != nil {
		return nil, fieldError(field, err)
	}
	return &d, nil
}

func recordFromProto(ctx context.Context, field string, r *pb.RecordPaymentRequest) (payment.RecordRequest, error) {
	key, err := clientKey(ctx, r.GetIdempotencyKey())
	if err != nil {
		return payment.RecordRequest{}, err
	}
	amount, err := ledger.ParseDecimal(r.GetAmount())
	if err != nil {
		return payment.RecordRequest{}, fieldError(field+"amount", err)
	}
	ch, ok := channelFromProto(r.GetChannel())
	if !ok {
		return payment.RecordRequest{}, fieldError(field+"channel", errors.New("must be a known channel, e.g. CHANNEL_VIETQR"))
	}
	var source payment.Source
	switch r.GetSource() {
	case pb.PaymentSource_PAYMENT_SOURCE_STALL:
		source = payment.SourceStall
	case pb.PaymentSource_PAYMENT_SOURCE_BANK:
		source = payment.SourceBank
	default:
		return payment.RecordRequest{}, fieldError(field+"source", errors.New("must be PAYMENT_SOURCE_STALL or PAYMENT_SOURCE_BANK"))
	}
	occurred, err := optionalTime(field+"occur_time", r.GetOccurTime())
	if err != nil {
		return payment.RecordRequest{}, err
	}
	return payment.RecordRequest{
		Key: key, Merchant: r.GetMerchant(), Channel: ch, Amount: amount, Source: source,
		ProviderRef: r.GetProviderRef(), RequestID: r.GetPaymentRequestId(), BillNumber: r.GetBillNumber(), OccurredAt: occurred,
	}, nil
}

func (s *PaymentServer) CreatePaymentRequest(ctx context.Context, req *pb.CreatePaymentRequestRequest) (*pb.CreatePaymentRequestResponse, error) {
	amount, err := ledger.ParseDecimal(req.GetAmount())
	if err != nil {
		return nil, fieldError("amount", err)
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	pr, replayed, err := s.Payments.CreateRequest(ctx, payment.NewRequest{
		Key: key, Merchant: req.GetMerchant(), Amount: amount, Purpose: req.GetPurpose(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreatePaymentRequestResponse{Replayed: replayed, PaymentRequest: &pb.PaymentRequest{
		Id: pr.ID, Merchant: pr.Merchant, Amount: ledger.FormatAmount(payment.Currency, pr.Amount), BillNumber: pr.BillNumber,
		QrPayload: pr.QRPayload, ExpireTime: timestamppb.New(pr.ExpiresAt), CreateTime: timestamppb.New(pr.CreatedAt),
	}}, nil
}

func (s *PaymentServer) RecordPayment(ctx context.Context, req *pb.RecordPaymentRequest) (*pb.RecordPaymentResponse, error) {
	r, err := recordFromProto(ctx, "", req)
	if err != nil {
		return nil, err
	}
	p, replayed, err := s.Payments.Record(ctx, r)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RecordPaymentResponse{Payment: paymentToProto(p), Replayed: replayed}, nil
}

func (s *PaymentServer) RecordPayments(ctx context.Context, req *pb.RecordPaymentsRequest) (*pb.RecordPaymentsResponse, error) {
	items := req.GetPayments()
	if len(items) == 0 || len(items) > payment.MaxBulk {
		return nil, fieldError("payments", errors.New("must hold 1 to 1000 payments"))
	}
	resp := &pb.RecordPaymentsResponse{Results: make([]*pb.RecordPaymentResult, len(items))}
	var reqs []payment.RecordRequest
	var owners []int
	for i, item := range items {
		r, err := recordFromProto(ctx, "", item)
		if err != nil {
			resp.Results[i] = &pb.RecordPaymentResult{Error: itemError(err)}
			continue
		}
		reqs = append(reqs, r)
		owners = append(owners, i)
	}
	for j, o := range s.Payments.RecordMany(ctx, reqs) {
		i := owners[j]
		if o.Err != nil {
			resp.Results[i] = &pb.RecordPaymentResult{Error: itemError(toStatus(ctx, o.Err))}
			continue
		}
		resp.Results[i] = &pb.RecordPaymentResult{Payment: paymentToProto(o.Payment), Replayed: o.Replayed}
	}
	return resp, nil
}

func (s *PaymentServer) ConfirmPayment(ctx context.Context, req *pb.ConfirmPaymentRequest) (*pb.ConfirmPaymentResponse, error) {
	amount, err := optionalAmount("amount", req.GetAmount())
	if err != nil {
		return nil, err
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	p, replayed, err := s.Payments.Confirm(ctx, payment.ConfirmRequest{
		Key: key, PaymentID: req.GetPaymentId(), Amount: amount, ProviderRef: req.GetProviderRef(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.ConfirmPaymentResponse{Payment: paymentToProto(p), Replayed: replayed}, nil
}

func (s *PaymentServer) RejectPayment(ctx context.Context, req *pb.RejectPaymentRequest) (*pb.RejectPaymentResponse, error) {
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	p, replayed, err := s.Payments.Reject(ctx, payment.RejectRequest{Key: key, PaymentID: req.GetPaymentId(), Reason: req.GetReason()})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RejectPaymentResponse{Payment: paymentToProto(p), Replayed: replayed}, nil
}

func (s *PaymentServer) RefundPayment(ctx context.Context, req *pb.RefundPaymentRequest) (*pb.RefundPaymentResponse, error) {
	amount, err := optionalAmount("amount", req.GetAmount())
	if err != nil {
		return nil, err
	}
	key, err := clientKey(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	p, refund, replayed, err := s.Payments.Refund(ctx, payment.RefundRequest{
		Key: key, PaymentID: req.GetPaymentId(), Amount: amount, Reason: req.GetReason(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RefundPaymentResponse{
		Payment: paymentToProto(p), Replayed: replayed, EntryId: refund.EntryID,
		Amount:      ledger.FormatAmount(payment.Currency, refund.Amount),
		FeeReturned: ledger.FormatAmount(payment.Currency, refund.FeeReturned),
	}, nil
}

func (s *PaymentServer) GetPayment(ctx context.Context, req *pb.GetPaymentRequest) (*pb.GetPaymentResponse, error) {
	p, err := s.Payments.Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetPaymentResponse{Payment: paymentToProto(p)}, nil
}

func (s *PaymentServer) ListPayments(ctx context.Context, req *pb.ListPaymentsRequest) (*pb.ListPaymentsResponse, error) {
	f := payment.Filter{Merchant: req.GetMerchant(), Market: req.GetMarket(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if st := req.GetStatus(); st != pb.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED {
		for k, v := range paymentStatuses {
			if v == st {
				f.Status = k
			}
		}
		if f.Status == "" {
			return nil, fieldError("status", errors.New("unknown status"))
		}
	}
	if req.GetChannel() != pb.Channel_CHANNEL_UNSPECIFIED {
		ch, ok := channelFromProto(req.GetChannel())
		if !ok {
			return nil, fieldError("channel", errors.New("unknown channel"))
		}
		f.Channel = ch
	}
	var err error
	if f.Start, err = optionalTime("start_time", req.GetStartTime()); err != nil {
		return nil, err
	}
	if f.End, err = optionalTime("end_time", req.GetEndTime()); err != nil {
		return nil, err
	}
	payments, next, err := s.Payments.List(ctx, f)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListPaymentsResponse{NextPageToken: next}
	for _, p := range payments {
		resp.Payments = append(resp.Payments, paymentToProto(p))
	}
	return resp, nil
}

// itemError is the status of one failed item of a bulk call.
func itemError(err error) *pb.ItemError {
	st := status.Convert(err)
	return &pb.ItemError{Code: int32(st.Code()), Message: st.Message()}
}
