package payment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// PaymentRequest is an amount asked of a payer, with the dynamic VietQR
// that carries it and a bill number the bank's notification echoes back.
type PaymentRequest struct {
	ID         string
	Merchant   string
	Market     string
	Amount     int64
	BillNumber string
	Purpose    string // as given; QRPayload carries it folded to ASCII
	QRPayload  string
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// NewRequest asks for a payment.
type NewRequest struct {
	Key      string
	Merchant string
	Amount   decimal.Decimal
	Purpose  string
}

const requestColumns = `id::text, merchant, market, amount, bill_number, purpose, qr_payload, expires_at, created_at`

func scanRequest(row interface{ Scan(...any) error }) (PaymentRequest, error) {
	var r PaymentRequest
	err := row.Scan(&r.ID, &r.Merchant, &r.Market, &r.Amount, &r.BillNumber, &r.Purpose, &r.QRPayload, &r.ExpiresAt, &r.CreatedAt)
	r.ExpiresAt, r.CreatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC()
	return r, err
}

// CreateRequest makes a payment request with its dynamic QR. The same key
// with the same request returns the original.
func (s *Service) CreateRequest(ctx context.Context, r NewRequest) (PaymentRequest, bool, error) {
	if err := checkClientKey(r.Key); err != nil {
		return PaymentRequest{}, false, err
	}
	if r.Merchant == "" {
		return PaymentRequest{}, false, invalid("merchant", "is required")
	}
	if err := merchant.CheckMerchantCode("merchant", r.Merchant); err != nil {
		return PaymentRequest{}, false, err
	}
	amount, err := wholeDong("amount", r.Amount, s.opts.MinAmount, s.opts.MaxAmount)
	if err != nil {
		return PaymentRequest{}, false, err
	}
	// The purpose is checked as the QR will carry it, so that a purpose no
	// QR can carry is refused naming it, before anything is read.
	if _, err := merchant.QRPurpose(r.Purpose); err != nil {
		return PaymentRequest{}, false, err
	}
	want := PaymentRequest{Merchant: r.Merchant, Amount: amount, Purpose: r.Purpose}
	if existing, ok, err := s.requestByKey(ctx, r.Key, want); ok || err != nil {
		return existing, ok, err
	}
	m, err := s.merchants.GetMerchant(ctx, r.Merchant)
	if err != nil {
		return PaymentRequest{}, false, ledger.RenameField(err, "code", "merchant")
	}
	if !m.CanTakePayments() {
		return PaymentRequest{}, false, fail(ErrMerchantInactive, "merchant", "merchant %s is %s and cannot take payments", m.Code, m.Status)
	}
	if !m.Accepts(merchant.ChannelVietQR) {
		// The payer could pay the QR; the payment would then be refused.
		return PaymentRequest{}, false, fail(ErrChannelRefused, "merchant", "merchant %s does not accept %s, by which a payment request is paid", m.Code, merchant.ChannelVietQR)
	}
	// The QR pays into the market's collection account.
	mk, err := s.merchants.GetMarket(ctx, m.Market)
	if err != nil {
		return PaymentRequest{}, false, ledger.RenameField(err, "code", "merchant")
	}
	now := s.opts.Now().UTC().Truncate(time.Microsecond)
	// The request stores the purpose as given, diacritics and all: it is
	// the merchant's record of what was asked, the idempotency hash is of
	// it, and a conflict quotes it back. What the payer saw, folded to
	// ASCII, is in the QR payload stored beside it.
	req := PaymentRequest{
		ID: ledger.NewID(now), Merchant: m.Code, Market: m.Market, Amount: amount, BillNumber: newBillNumber(), Purpose: r.Purpose,
		ExpiresAt: now.Add(s.opts.RequestTTL), CreatedAt: now,
	}
	if req.QRPayload, err = merchant.DynamicQR(mk, m, amount, req.BillNumber, r.Purpose); err != nil {
		return PaymentRequest{}, false, err
	}
	const insert = `
INSERT INTO payment_requests (id, idempotency_key, request_hash, merchant, market, amount, bill_number, purpose, qr_payload, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (idempotency_key) DO NOTHING`
	tag, err := s.pool.Exec(ctx, insert, req.ID, "request:"+r.Key, requestHash(want), req.Merchant, req.Market, req.Amount, req.BillNumber, req.Purpose, req.QRPayload, req.ExpiresAt, req.CreatedAt)
	if err != nil {
		return PaymentRequest{}, false, fmt.Errorf("create payment request: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// A concurrent request with the same key won.
		existing, _, err := s.requestByKey(ctx, r.Key, want)
		return existing, true, err
	}
	return req, false, nil
}

// requestHash is the idempotency hash of a payment request as asked for.
func requestHash(r PaymentRequest) []byte {
	h := sha256.Sum256([]byte(r.Merchant + "\x00" + strconv.FormatInt(r.Amount, 10) + "\x00" + r.Purpose))
	return h[:]
}

// requestByKey reads the payment request key created, if any. One key is
// one request: asked for another, it is refused naming the first field
// that differs, as every write's key is.
func (s *Service) requestByKey(ctx context.Context, key string, want PaymentRequest) (PaymentRequest, bool, error) {
	var stored []byte
	var r PaymentRequest
	row := s.pool.QueryRow(ctx, `SELECT request_hash, `+requestColumns+` FROM payment_requests WHERE idempotency_key = $1`, "request:"+key)
	err := row.Scan(&stored, &r.ID, &r.Merchant, &r.Market, &r.Amount, &r.BillNumber, &r.Purpose, &r.QRPayload, &r.ExpiresAt, &r.CreatedAt)
	if isNoRows(err) {
		return PaymentRequest{}, false, nil
	}
	if err != nil {
		return PaymentRequest{}, false, err
	}
	if string(stored) != string(requestHash(want)) {
		for _, f := range []struct{ field, stored, got string }{
			{"merchant", r.Merchant, want.Merchant},
			{"amount", strconv.FormatInt(r.Amount, 10), strconv.FormatInt(want.Amount, 10)},
			{"purpose", r.Purpose, want.Purpose},
		} {
			if f.stored != f.got {
				return PaymentRequest{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key",
					"key %q already created payment request %s with %s %q, got %q", key, r.ID, f.field, f.stored, f.got)
			}
		}
		return PaymentRequest{}, false, fail(ledger.ErrIdempotencyConflict, "idempotency_key",
			"key %q already created payment request %s (merchant %s, %d đồng, purpose %q)", key, r.ID, r.Merchant, r.Amount, r.Purpose)
	}
	r.ExpiresAt, r.CreatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC()
	return r, true, nil
}

// findRequest finds merchant's payment request by id or bill number.
// Another merchant's request is not found, as one that does not exist: a
// bill number is on its stall's QR for every payer to read, and a stall or
// a bank naming it learns neither that the request exists nor what it
// holds.
func (s *Service) findRequest(ctx context.Context, merchantCode, id, bill string) (PaymentRequest, error) {
	r, field, named, err := s.requestNamed(ctx, id, bill)
	if isNoRows(err) || (err == nil && r.Merchant != merchantCode) {
		return PaymentRequest{}, fail(ErrRequestNotFound, field, "merchant %s has no payment request %s", merchantCode, named)
	}
	if err == nil && id != "" && bill != "" && r.BillNumber != bill {
		return r, fail(ErrRequestNotFound, "bill_number", "payment request %s has bill number %s, got %s", id, r.BillNumber, bill)
	}
	return r, err
}

// MerchantOfRequest is the merchant of the payment request named by id, or
// else by bill number (in any letter case), for a bank's notification that
// names the request and no merchant: a payment request's QR pays the
// market's collection account, and the transfer tells the collecting bank
// its bill number, not whose stall it is. One that does not exist is
// ErrRequestNotFound.
func (s *Service) MerchantOfRequest(ctx context.Context, id, bill string) (string, error) {
	if id != "" {
		canonical, ok := ledger.CanonicalUUID(id)
		if !ok {
			return "", invalid("payment_request_id", "must be a payment request id (UUID), got %q", id)
		}
		id = canonical
	} else if err := checkRef("bill_number", bill); err != nil {
		return "", err
	}
	r, field, named, err := s.requestNamed(ctx, id, strings.ToUpper(bill))
	if isNoRows(err) {
		return "", fail(ErrRequestNotFound, field, "no payment request %s", named)
	}
	return r.Merchant, err
}

// requestNamed reads the payment request named by id, or else by bill
// number, with the field that named it and what it named.
func (s *Service) requestNamed(ctx context.Context, id, bill string) (r PaymentRequest, field, named string, err error) {
	field, named, column := "bill_number", bill, "bill_number"
	if id != "" {
		field, named, column = "payment_request_id", id, "id"
	}
	r, err = scanRequest(s.pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM payment_requests WHERE `+column+` = $1`, named))
	return r, field, named, err
}

// newBillNumber returns a bill number for tag 62: "CL" and 10 characters of
// an alphabet without look-alikes, about 50 bits of randomness.
func newBillNumber() string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	out := []byte("CL")
	for _, c := range b {
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}
