package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc"

	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/seeds"
	"github.com/choledger/choledger/settlement"
)

// The payments projection must hold each acknowledged payment as it was
// acknowledged: a row that credits another stall, or another amount, fails
// the run even though the row is there by id.
func TestVerifyProjectionAsAcknowledged(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: settlement.Projectors()})
	defer l.Close()
	merchants := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, merchants, payment.Options{})
	data := seeds.Generate()
	mk := data.Markets[0]
	if _, err := merchants.CreateMarket(ctx, merchant.Market{Code: mk.Code, Name: mk.Name, Province: mk.Province, Ward: mk.Ward}); err != nil {
		t.Fatal(err)
	}
	stall, other := data.Merchants[0], data.Merchants[1]
	for _, m := range []seeds.Merchant{stall, other} {
		if _, err := merchants.CreateMerchant(ctx, m.Definition()); err != nil {
			t.Fatal(err)
		}
	}

	b := &bench{bank: newPrincipal("bank", "secret", "napas"), conns: []*grpc.ClientConn{nil}}
	sc := &scenarioRun{name: "direct"}
	w := b.newWorker(sc, 0)
	req := &pb.RecordPaymentRequest{IdempotencyKey: "k1", Merchant: stall.Code, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "35000",
		Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "LBTESTREF1"}
	p, _, err := payments.Record(ctx, payment.RecordRequest{Key: b.bank.scope + "/" + req.IdempotencyKey, Merchant: stall.Code,
		Channel: merchant.ChannelVietQR, Amount: decimal.NewFromInt(35_000), Source: payment.SourceBank, ProviderRef: req.ProviderRef})
	if err != nil {
		t.Fatal(err)
	}
	w.ackRecord(&b.bank, keyRecordBank, req, &pb.Payment{Id: p.ID, Merchant: p.Merchant, Channel: req.Channel, Source: req.Source,
		Amount: strconv.FormatInt(p.Amount, 10), Fee: strconv.FormatInt(p.Fee, 10), ProviderRef: p.ProviderRef}, false, false)
	if len(sc.anomalies) > 0 {
		t.Fatal(sc.anomalies)
	}

	check := func(what string, wantFailure bool) {
		t.Helper()
		v, err := verify(ctx, db.Pool, &sc.acks)
		if err != nil {
			t.Fatal(err)
		}
		if wantFailure && len(v.Failures) == 0 {
			t.Errorf("%s: verify passed", what)
		}
		if !wantFailure && len(v.Failures) > 0 {
			t.Errorf("%s: %v", what, v.Failures)
		}
	}
	check("the payment as acknowledged", false)
	for what, spoil := range map[string]string{
		"credited to another stall": `UPDATE payments SET merchant = '` + other.Code + `'`,
		"another amount":            `UPDATE payments SET amount = 350000, confirmed_amount = 350000`,
	} {
		if _, err := db.Pool.Exec(ctx, spoil); err != nil {
			t.Fatal(err)
		}
		check(what, true)
		if _, err := db.Pool.Exec(ctx, `UPDATE payments SET merchant = $1, amount = $2, confirmed_amount = $2`, stall.Code, 35_000); err != nil {
			t.Fatal(err)
		}
	}
}

// An acknowledged refund must be in the ledger as it was acknowledged: a
// refund row of another payment or amount, or a payment whose projection
// its refund never reached (still confirmed in full, though the stall's
// payable gave the money back), fails the run.
func TestVerifyRefundsAsAcknowledged(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: settlement.Projectors()})
	defer l.Close()
	merchants := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, merchants, payment.Options{})
	data := seeds.Generate()
	mk := data.Markets[0]
	if _, err := merchants.CreateMarket(ctx, merchant.Market{Code: mk.Code, Name: mk.Name, Province: mk.Province, Ward: mk.Ward}); err != nil {
		t.Fatal(err)
	}
	stall := data.Merchants[0]
	if _, err := merchants.CreateMerchant(ctx, stall.Definition()); err != nil {
		t.Fatal(err)
	}

	b := &bench{bank: newPrincipal("bank", "secret", "napas"), conns: []*grpc.ClientConn{nil}}
	sc := &scenarioRun{name: "mixed"}
	w := b.newWorker(sc, 0)
	var paid []payment.Payment
	for i, amount := range []int64{40_000, 60_000} {
		req := &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("r", i), Merchant: stall.Code, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: strconv.FormatInt(amount, 10), Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("LBTESTREF", i)}
		p, _, err := payments.Record(ctx, payment.RecordRequest{Key: b.bank.scope + "/" + req.IdempotencyKey, Merchant: stall.Code,
			Channel: merchant.ChannelVietQR, Amount: decimal.NewFromInt(amount), Source: payment.SourceBank, ProviderRef: req.ProviderRef})
		if err != nil {
			t.Fatal(err)
		}
		w.ackRecord(&b.bank, keyRecordBank, req, &pb.Payment{Id: p.ID, Merchant: p.Merchant, Channel: req.Channel, Source: req.Source,
			Amount: strconv.FormatInt(p.Amount, 10), Fee: strconv.FormatInt(p.Fee, 10), ProviderRef: p.ProviderRef}, false, false)
		paid = append(paid, p)
	}
	req := &pb.RefundPaymentRequest{IdempotencyKey: "f1", PaymentId: paid[0].ID, Amount: "20000", Reason: "khách trả lại hàng"}
	half := decimal.NewFromInt(20_000)
	p, refund, _, err := payments.Refund(ctx, payment.RefundRequest{Key: b.bank.scope + "/" + req.IdempotencyKey, PaymentID: req.PaymentId, Amount: &half, Reason: req.Reason})
	if err != nil {
		t.Fatal(err)
	}
	w.ackRefund(&b.bank, req, &pb.RefundPaymentResponse{Payment: &pb.Payment{Id: p.ID, Merchant: p.Merchant, Amount: strconv.FormatInt(p.Amount, 10)},
		Amount: strconv.FormatInt(refund.Amount, 10), FeeReturned: strconv.FormatInt(refund.FeeReturned, 10), EntryId: refund.EntryID}, false)
	if len(sc.anomalies) > 0 {
		t.Fatal(sc.anomalies)
	}
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE saved_payments AS SELECT * FROM payments; CREATE TABLE saved_refunds AS SELECT * FROM payment_refunds`); err != nil {
		t.Fatal(err)
	}

	check := func(what string, wantFailure bool) {
		t.Helper()
		v, err := verify(ctx, db.Pool, &sc.acks)
		if err != nil {
			t.Fatal(err)
		}
		if wantFailure && len(v.Failures) == 0 {
			t.Errorf("%s: verify passed", what)
		}
		if !wantFailure && len(v.Failures) > 0 {
			t.Errorf("%s: %v", what, v.Failures)
		}
	}
	check("the refund as acknowledged", false)
	for what, spoil := range map[string]string{
		"the payment's projection not refunded": `UPDATE payments SET status = 'confirmed', refunded_amount = 0, fee_refunded = 0, entry_ids = entry_ids[1:1] WHERE id = '` + paid[0].ID + `'`,
		"the refund of another payment":         `UPDATE payment_refunds SET payment_id = '` + paid[1].ID + `'`,
		"the refund of another amount":          `UPDATE payment_refunds SET amount = 40000`,
	} {
		if _, err := db.Pool.Exec(ctx, spoil); err != nil {
			t.Fatal(err)
		}
		check(what, true)
		if _, err := db.Pool.Exec(ctx, `UPDATE payments p SET (status, refunded_amount, fee_refunded, entry_ids) = (s.status, s.refunded_amount, s.fee_refunded, s.entry_ids)
			FROM saved_payments s WHERE s.id = p.id; DELETE FROM payment_refunds; INSERT INTO payment_refunds SELECT * FROM saved_refunds`); err != nil {
			t.Fatal(err)
		}
		check(what+", restored", false)
	}
}
