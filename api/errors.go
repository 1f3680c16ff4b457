package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// codeOf is the one table from domain errors to gRPC codes.
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{ledger.ErrInvalid, codes.InvalidArgument},
	{ledger.ErrAccountMismatch, codes.InvalidArgument},
	{ledger.ErrIdempotencyConflict, codes.AlreadyExists},
	{ledger.ErrDuplicateExternalRef, codes.AlreadyExists},
	{ledger.ErrAccountExists, codes.AlreadyExists},
	{ledger.ErrAccountNotFound, codes.NotFound},
	{ledger.ErrEntryNotFound, codes.NotFound},
	{ledger.ErrPendingClosed, codes.FailedPrecondition},
	{ledger.ErrPendingExpired, codes.FailedPrecondition},
	{ledger.ErrExceedsPending, codes.FailedPrecondition},
	{ledger.ErrExceedsCredits, codes.FailedPrecondition},
	{ledger.ErrExceedsDebits, codes.FailedPrecondition},
	{ledger.ErrOverflow, codes.FailedPrecondition},
	{ledger.ErrRefused, codes.FailedPrecondition},
	{merchant.ErrMarketNotFound, codes.NotFound},
	{merchant.ErrMerchantNotFound, codes.NotFound},
	{merchant.ErrMarketExists, codes.AlreadyExists},
	{merchant.ErrMerchantExists, codes.AlreadyExists},
	{merchant.ErrStallTaken, codes.AlreadyExists},
	{merchant.ErrMarketClosed, codes.FailedPrecondition},
	{merchant.ErrBadTransition, codes.FailedPrecondition},
	{merchant.ErrNoCollectionAccount, codes.FailedPrecondition},
	{merchant.ErrCodeNotInQR, codes.FailedPrecondition},
	{merchant.ErrChannelNotAccepted, codes.FailedPrecondition},
	{payment.ErrPaymentNotFound, codes.NotFound},
	{payment.ErrRequestNotFound, codes.NotFound},
	{payment.ErrMerchantInactive, codes.FailedPrecondition},
	{payment.ErrChannelRefused, codes.FailedPrecondition},
	{payment.ErrWrongState, codes.FailedPrecondition},
	{payment.ErrAmountMismatch, codes.FailedPrecondition},
	{payment.ErrRequestExpired, codes.FailedPrecondition},
	{payment.ErrRefundTooLarge, codes.FailedPrecondition},
	{payment.ErrInsufficientFund, codes.FailedPrecondition},
	{settlement.ErrExceedsOwed, codes.FailedPrecondition},
	{settlement.ErrExceedsSuspense, codes.FailedPrecondition},
	{settlement.ErrPayoutResolved, codes.FailedPrecondition},
	{settlement.ErrBatchNotFound, codes.NotFound},
	{settlement.ErrReportNotFound, codes.NotFound},
	{access.ErrCredentialNotFound, codes.NotFound},
	{access.ErrLastAdmin, codes.FailedPrecondition},
	{ledger.ErrUnavailable, codes.Unavailable},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus turns an error from a domain package into the status a client
// gets. Errors no rule knows are internal: they are logged in full and the
// client gets no detail it could not act on anyway.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, rule := range codeOf {
		if errors.Is(err, rule.err) {
			st := status.New(rule.code, err.Error())
			var le *ledger.Error
			if rule.code == codes.InvalidArgument && errors.As(err, &le) && le.Field != "" {
				if withDetail, derr := st.WithDetails(&errdetails.BadRequest{
					FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: le.Field, Description: le.Msg}},
				}); derr == nil {
					st = withDetail
				}
			}
			return st.Err()
		}
	}
	if pg.Unstorable(err) {
		// Every field is checked before it reaches a query; this is the
		// backstop for one that was not. It names no field, but the caller
		// learns what to fix rather than "internal", and the refused
		// statement's transaction wrote nothing.
		slog.WarnContext(ctx, "a text field reached the database with a character it cannot store", "err", err)
		return status.Error(codes.InvalidArgument, "a text field holds a character the database cannot store (a NUL, or bytes that are not UTF-8); remove it and send the request again")
	}
	if pg.Unavailable(err) {
		slog.WarnContext(ctx, "database unavailable", "err", err)
		return status.Error(codes.Unavailable, "the database cannot be reached now; retry, with the same idempotency key for a write")
	}
	if pg.Cancelled(err) {
		slog.WarnContext(ctx, "database statement cancelled", "err", err)
		return status.Error(codes.Unavailable, "the database cancelled a statement that took too long (a statement or lock timeout); retry, with the same idempotency key for a write")
	}
	slog.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error; it has been logged")
}

// fieldError is an InvalidArgument about one field of a request, found
// while mapping it.
func fieldError(field string, err error) error {
	return toStatus(context.Background(), &ledger.Error{Kind: ledger.ErrInvalid, Field: field, Msg: err.Error()})
}
