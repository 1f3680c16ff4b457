package payment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
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

// ExternalRef is the ledger's external reference for a provider's
// transaction reference: unique per channel. The entry that carries it
// names its payment in its metadata ("payment_id").
func ExternalRef(ch merchant.Channel, providerRef string) string {
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
	// Every payment a round records, in one statement.
	projectRecorded = `
INSERT INTO payments (id, merchant, market, channel, source, status, currency, amount, confirmed_amount, fee,
                      provider_ref, request_id, bill_number, occurred_at, created_at, updated_at, expires_at,
                      pending_entry_id, entry_ids)
SELECT t.id::uuid, t.merchant, t.market, t.channel, t.source, t.status, t.currency, t.amount, t.confirmed, t.fee,
       NULLIF(t.provider_ref, ''), NULLIF(t.request_id, '')::uuid, NULLIF(t.bill_number, ''), t.occurred_at, t.created_at, t.created_at,
       t.expires_at, t.pending_entry_id::uuid, ARRAY[t.entry_id::uuid]
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[],
              $10::bigint[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
              $17::text[], $18::text[])
       AS t(id, merchant, market, channel, source, status, currency, amount, confirmed, fee, provider_ref, request_id,
            bill_number, occurred_at, created_at, expires_at, pending_entry_id, entry_id)`
	// Every confirmation a round records, in one statement.
	projectConfirmed = `
UPDATE payments p SET status = 'confirmed', confirmed_amount = t.amount, fee = t.fee,
       provider_ref = COALESCE(p.provider_ref, NULLIF(t.provider_ref, '')),
       expires_at = NULL, updated_at = t.at, entry_ids = p.entry_ids || t.entry_id::uuid
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[])
       AS t(id, amount, fee, provider_ref, at, entry_id)
 WHERE p.id = t.id::uuid`
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

// recorded is the payment a KindPayment entry records, as the projection
// stores it and as RecordPayment answers it.
func recorded(e *ledger.Entry) Payment {
	md := e.Metadata
	p := Payment{
		ID: md["payment_id"], Merchant: md["merchant"], Market: e.Market, Channel: merchant.Channel(md["channel"]),
		Source: Source(md["source"]), Status: StatusConfirmed, Currency: e.Currency,
		Amount: mdInt(md, "amount"), ConfirmedAmount: mdInt(md, "amount"), Fee: mdInt(md, "fee"),
		ProviderRef: md["provider_ref"], RequestID: md["request_id"], BillNumber: md["bill_number"],
		OccurredAt: e.OccurredAt.UTC(), CreatedAt: e.RecordedAt.UTC(), UpdatedAt: e.RecordedAt.UTC(),
		EntryIDs: []string{e.ID},
	}
	if e.Phase == ledger.PhasePending {
		p.Status, p.ConfirmedAmount = StatusPending, 0
		p.PendingEntryID, p.ExpiresAt = e.ID, e.ExpiresAt.UTC()
	}
	return p
}

// The payment after a confirmation, a rejection or expiry, and a refund:
// what the projection's statements below make of the row, so that a flow
// can answer without reading it back.
func confirmed(p Payment, e *ledger.Entry) Payment {
	md := e.Metadata
	p.Status, p.ConfirmedAmount, p.Fee = StatusConfirmed, mdInt(md, "amount"), mdInt(md, "fee")
	if p.ProviderRef == "" {
		p.ProviderRef = md["provider_ref"]
	}
	p.ExpiresAt, p.UpdatedAt = time.Time{}, e.RecordedAt.UTC()
	p.EntryIDs = append(slices.Clone(p.EntryIDs), e.ID)
	return p
}

func closed(p Payment, status Status, e *ledger.Entry) Payment {
	p.Status, p.ExpiresAt, p.UpdatedAt = status, time.Time{}, e.RecordedAt.UTC()
	p.EntryIDs = append(slices.Clone(p.EntryIDs), e.ID)
	return p
}

func refunded(p Payment, e *ledger.Entry) Payment {
	md := e.Metadata
	p.RefundedAmount += mdInt(md, "amount")
	p.FeeRefunded += mdInt(md, "fee_returned")
	p.Status = StatusPartiallyRefunded
	if p.RefundedAmount == p.ConfirmedAmount {
		p.Status = StatusRefunded
	}
	p.UpdatedAt = e.RecordedAt.UTC()
	p.EntryIDs = append(slices.Clone(p.EntryIDs), e.ID)
	return p
}

// Project implements ledger.Projector. Payment facts travel in the entries'
// metadata, which the hash chain covers, so the table can always be checked
// against (or rebuilt from) the journal. New payments and confirmations,
// most of the traffic, go in one statement each per round.
func (Projector) Project(entries []*ledger.Entry, b *pgx.Batch) {
	var rec struct {
		ids, merchants, markets, channels, sources, statuses, currencies, refs, requests, bills []string
		amounts, confirmed, fees                                                                []int64
		occurred, created                                                                       []time.Time
		expires                                                                                 []*time.Time
		pendings                                                                                []*string
		entries                                                                                 []string
	}
	var conf struct {
		ids, refs, entries []string
		amounts, fees      []int64
		at                 []time.Time
	}
	for _, e := range entries {
		md := e.Metadata
		if md["payment_id"] == "" && e.Kind != ledger.KindExpire {
			continue // not written by the payment flows
		}
		switch e.Kind {
		case KindPayment:
			p := recorded(e)
			var expires *time.Time
			var pending *string
			if p.Status == StatusPending {
				expires, pending = &p.ExpiresAt, &p.PendingEntryID
			}
			rec.ids, rec.merchants, rec.markets = append(rec.ids, p.ID), append(rec.merchants, p.Merchant), append(rec.markets, p.Market)
			rec.channels, rec.sources, rec.statuses = append(rec.channels, string(p.Channel)), append(rec.sources, string(p.Source)), append(rec.statuses, string(p.Status))
			rec.currencies, rec.amounts, rec.confirmed, rec.fees = append(rec.currencies, p.Currency), append(rec.amounts, p.Amount), append(rec.confirmed, p.ConfirmedAmount), append(rec.fees, p.Fee)
			rec.refs, rec.requests, rec.bills = append(rec.refs, p.ProviderRef), append(rec.requests, p.RequestID), append(rec.bills, p.BillNumber)
			rec.occurred, rec.created, rec.expires = append(rec.occurred, p.OccurredAt), append(rec.created, p.CreatedAt), append(rec.expires, expires)
			rec.pendings, rec.entries = append(rec.pendings, pending), append(rec.entries, e.ID)
		case KindConfirm:
			conf.ids, conf.amounts, conf.fees = append(conf.ids, md["payment_id"]), append(conf.amounts, mdInt(md, "amount")), append(conf.fees, mdInt(md, "fee"))
			conf.refs, conf.at, conf.entries = append(conf.refs, md["provider_ref"]), append(conf.at, e.RecordedAt), append(conf.entries, e.ID)
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
	if len(rec.ids) > 0 {
		b.Queue(projectRecorded, rec.ids, rec.merchants, rec.markets, rec.channels, rec.sources, rec.statuses, rec.currencies,
			rec.amounts, rec.confirmed, rec.fees, rec.refs, rec.requests, rec.bills, rec.occurred, rec.created, rec.expires,
			rec.pendings, rec.entries)
	}
	if len(conf.ids) > 0 {
		b.Queue(projectConfirmed, conf.ids, conf.amounts, conf.fees, conf.refs, conf.at, conf.entries)
	}
}

func mdInt(md map[string]string, key string) int64 {
	v, _ := strconv.ParseInt(md[key], 10, 64)
	return v
}
