package payment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Source says who recorded a payment first.
type Source string

const (
	// SourceStall: the stall app; the payment is pending until the bank
	// confirms it.
	SourceStall Source = "stall"
	// SourceBank: the bank or provider integration; the payment is posted.
	SourceBank Source = "bank"
)

// Status is where a payment stands.
type Status string

const (
	StatusPending           Status = "pending"
	StatusConfirmed         Status = "confirmed"
	StatusRejected          Status = "rejected"
	StatusExpired           Status = "expired"
	StatusPartiallyRefunded Status = "partially_refunded"
	StatusRefunded          Status = "refunded"
)

// Currency of every payment: the markets take đồng.
const Currency = "VND"

// Entry kinds the payment flows write.
const (
	KindPayment = "payment"
	KindConfirm = "payment_confirm"
	KindReject  = "payment_reject"
	KindRefund  = "refund"
)

// Reserved reports whether kind belongs to the payment flows: entries of
// these kinds are written only through them, so that the payments table
// stays the projection of real payments.
func Reserved(kind string) bool {
	switch kind {
	case KindPayment, KindConfirm, KindReject, KindRefund, ledger.KindExpire:
		return true
	}
	return false
}

// Errors of the payment flows. Invalid input is a *ledger.Error of kind
// ledger.ErrInvalid naming the field.
var (
	ErrPaymentNotFound  = errors.New("payment not found")
	ErrRequestNotFound  = errors.New("payment request not found")
	ErrMerchantInactive = errors.New("merchant cannot take payments")
	ErrChannelRefused   = errors.New("merchant does not accept the channel")
	ErrWrongState       = errors.New("payment is not in a state that allows this")
	ErrAmountMismatch   = errors.New("amount does not match")
	ErrRequestExpired   = errors.New("payment request expired")
	ErrRefundTooLarge   = errors.New("refund exceeds what remains")
	ErrInsufficientFund = errors.New("merchant balance cannot cover the refund")
)

// Payment is a payment taken at a stall, as the projection of its entries.
type Payment struct {
	ID              string
	Merchant        string
	Market          string
	Channel         merchant.Channel
	Source          Source
	Status          Status
	Currency        string
	Amount          int64
	ConfirmedAmount int64
	Fee             int64
	RefundedAmount  int64
	FeeRefunded     int64
	ProviderRef     string
	RequestID       string
	BillNumber      string
	OccurredAt      time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ExpiresAt       time.Time
	PendingEntryID  string
	EntryIDs        []string
}

// Refundable is what a refund may still return.
func (p Payment) Refundable() int64 { return p.ConfirmedAmount - p.RefundedAmount }

// Refund is one refund of a payment.
type Refund struct {
	EntryID     string
	Amount      int64
	FeeReturned int64
}

// paymentID derives a payment's id from the ledger idempotency key of the
// write that records it. The same request sent twice thus carries the same
// id, hashes the same, and is answered as a replay by the ledger, even when
// the two copies race.
func paymentID(ledgerKey string) string {
	sum := sha256.Sum256([]byte("choledger.payment:" + ledgerKey))
	sum[6] = (sum[6] & 0x0f) | 0x80 // version 8: application-defined
	sum[8] = (sum[8] & 0x3f) | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// externalRef is the ledger's external reference for a provider's
// transaction reference: unique per channel.
func externalRef(ch merchant.Channel, providerRef string) string {
	if providerRef == "" {
		return ""
	}
	return string(ch) + ":" + providerRef
}

// Projector writes the payments table from the journal. Register it with
// the ledger (ledger.Options.Projectors) so that every payment entry, and
// every expiry the ledger's sweeper writes, lands in the same transaction.
type Projector struct{}

const (
	projectRecorded = `
INSERT INTO payments (id, merchant, market, channel, source, status, currency, amount, confirmed_amount, fee,
                      provider_ref, request_id, bill_number, occurred_at, created_at, updated_at, expires_at,
                      pending_entry_id, entry_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), NULLIF($12, '')::uuid, NULLIF($13, ''), $14, $15, $15, $16,
        $17, ARRAY[$18::uuid])`
	projectConfirmed = `
UPDATE payments SET status = 'confirmed', confirmed_amount = $2, fee = $3, provider_ref = COALESCE(provider_ref, NULLIF($4, '')),
       expires_at = NULL, updated_at = $5, entry_ids = entry_ids || $6::uuid
 WHERE id = $1`
	projectClosed = `
UPDATE payments SET status = $2, expires_at = NULL, updated_at = $3, entry_ids = entry_ids || $4::uuid
 WHERE pending_entry_id = $1 AND status = 'pending'`
	projectRefunded = `
UPDATE payments SET refunded_amount = refunded_amount + $2, fee_refunded = fee_refunded + $3,
       status = CASE WHEN refunded_amount + $2 = confirmed_amount THEN 'refunded' ELSE 'partially_refunded' END,
       updated_at = $4, entry_ids = entry_ids || $5::uuid
 WHERE id = $1`
	projectRefund = `
INSERT INTO payment_refunds (entry_id, payment_id, amount, fee_returned, created_at) VALUES ($1, $2, $3, $4, $5)`
)

// Project implements ledger.Projector. Payment facts travel in the entries'
// metadata, which the hash chain covers, so the table can always be checked
// against (or rebuilt from) the journal.
func (Projector) Project(entries []*ledger.Entry, b *pgx.Batch) {
	for _, e := range entries {
		md := e.Metadata
		if md["payment_id"] == "" && e.Kind != ledger.KindExpire {
			continue // not written by the payment flows
		}
		switch e.Kind {
		case KindPayment:
			status, pendingID := StatusConfirmed, (*string)(nil)
			confirmed := mdInt(md, "amount")
			var expires *time.Time
			if e.Phase == ledger.PhasePending {
				status, confirmed = StatusPending, 0
				id := e.ID
				pendingID = &id
				exp := e.ExpiresAt
				expires = &exp
			}
			b.Queue(projectRecorded, md["payment_id"], md["merchant"], e.Market, md["channel"], md["source"], string(status),
				e.Currency, mdInt(md, "amount"), confirmed, mdInt(md, "fee"), md["provider_ref"], md["request_id"], md["bill_number"],
				e.OccurredAt, e.RecordedAt, expires, pendingID, e.ID)
		case KindConfirm:
			b.Queue(projectConfirmed, md["payment_id"], mdInt(md, "amount"), mdInt(md, "fee"), md["provider_ref"], e.RecordedAt, e.ID)
		case KindReject:
			b.Queue(projectClosed, e.PendingID, string(StatusRejected), e.RecordedAt, e.ID)
		case ledger.KindExpire:
			// The ledger's sweeper expires any pending entry; a payment's is
			// found by its pending entry.
			b.Queue(projectClosed, e.PendingID, string(StatusExpired), e.RecordedAt, e.ID)
		case KindRefund:
			b.Queue(projectRefunded, md["payment_id"], mdInt(md, "amount"), mdInt(md, "fee_returned"), e.RecordedAt, e.ID)
			b.Queue(projectRefund, e.ID, md["payment_id"], mdInt(md, "amount"), mdInt(md, "fee_returned"), e.RecordedAt)
		}
	}
}

func mdInt(md map[string]string, key string) int64 {
	v, _ := strconv.ParseInt(md[key], 10, 64)
	return v
}
