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

// verifyFixture is a ledger with the projectors ledgerd registers, a
// market and two of its stalls, and a bench client whose acknowledgements
// verify checks.
type verifyFixture struct {
	ctx          context.Context
	db           *pgtest.DB
	ledger       *ledger.Ledger
	payments     *payment.Service
	stall, other seeds.Merchant
	b            *bench
	sc           *scenarioRun
	w            *worker
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: settlement.Projectors()})
	t.Cleanup(l.Close)
	merchants := merchant.NewStore(db.Pool, l)
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
	sc := &scenarioRun{name: "mixed"}
	return &verifyFixture{ctx: ctx, db: db, ledger: l, payments: payment.NewService(db.Pool, l, merchants, payment.Options{}),
		stall: stall, other: other, b: b, sc: sc, w: b.newWorker(sc, 0)}
}

// recordBank records a bank-direct payment at the stall and acknowledges it
// as the API answers it.
func (f *verifyFixture) recordBank(t *testing.T, key string, amount int64) payment.Payment {
	t.Helper()
	req := &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: f.stall.Code, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: strconv.FormatInt(amount, 10), Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "LBTESTREF" + key}
	p, _, err := f.payments.Record(f.ctx, payment.RecordRequest{Key: f.b.bank.scope + "/" + key, Merchant: f.stall.Code,
		Channel: merchant.ChannelVietQR, Amount: decimal.NewFromInt(amount), Source: payment.SourceBank, ProviderRef: req.ProviderRef})
	if err != nil {
		t.Fatal(err)
	}
	f.w.ackRecord(&f.b.bank, keyRecordBank, req, &pb.Payment{Id: p.ID, Merchant: p.Merchant, Channel: req.Channel, Source: req.Source,
		Amount: strconv.FormatInt(p.Amount, 10), Fee: strconv.FormatInt(p.Fee, 10), ProviderRef: p.ProviderRef}, false, false)
	if len(f.sc.anomalies) > 0 {
		t.Fatal(f.sc.anomalies)
	}
	return p
}

// refund refunds amount of the payment and acknowledges it as the API
// answers it.
func (f *verifyFixture) refund(t *testing.T, key string, p payment.Payment, amount int64) {
	t.Helper()
	req := &pb.RefundPaymentRequest{IdempotencyKey: key, PaymentId: p.ID, Amount: strconv.FormatInt(amount, 10), Reason: "khách trả lại hàng"}
	d := decimal.NewFromInt(amount)
	after, refund, _, err := f.payments.Refund(f.ctx, payment.RefundRequest{Key: f.b.bank.scope + "/" + key, PaymentID: p.ID, Amount: &d, Reason: req.Reason})
	if err != nil {
		t.Fatal(err)
	}
	f.w.ackRefund(&f.b.bank, req, &pb.RefundPaymentResponse{Payment: &pb.Payment{Id: after.ID, Merchant: after.Merchant, Amount: strconv.FormatInt(after.Amount, 10)},
		Amount: strconv.FormatInt(refund.Amount, 10), FeeReturned: strconv.FormatInt(refund.FeeReturned, 10), EntryId: refund.EntryID}, false)
	if len(f.sc.anomalies) > 0 {
		t.Fatal(f.sc.anomalies)
	}
}

func (f *verifyFixture) check(t *testing.T, what string, wantFailure bool) {
	t.Helper()
	v, err := verify(f.ctx, f.db.Pool, &f.sc.acks)
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

func (f *verifyFixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.db.Pool.Exec(f.ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// The payments projection must hold each acknowledged payment as it was
// acknowledged: a row that credits another stall, or another amount, fails
// the run even though the row is there by id.
func TestVerifyProjectionAsAcknowledged(t *testing.T) {
	f := newVerifyFixture(t)
	f.recordBank(t, "k1", 35_000)
	f.check(t, "the payment as acknowledged", false)
	for what, spoil := range map[string]string{
		"credited to another stall": `UPDATE payments SET merchant = '` + f.other.Code + `'`,
		"another amount":            `UPDATE payments SET amount = 350000, confirmed_amount = 350000`,
	} {
		f.exec(t, spoil)
		f.check(t, what, true)
		f.exec(t, `UPDATE payments SET merchant = $1, amount = $2, confirmed_amount = $2`, f.stall.Code, 35_000)
	}
}

// An acknowledged refund must be in the ledger as it was acknowledged: a
// refund row of another payment or amount, or a payment whose projection
// its refund never reached (still confirmed in full, though the stall's
// payable gave the money back), fails the run.
func TestVerifyRefundsAsAcknowledged(t *testing.T) {
	f := newVerifyFixture(t)
	paid := []payment.Payment{f.recordBank(t, "r0", 40_000), f.recordBank(t, "r1", 60_000)}
	f.refund(t, "f1", paid[0], 20_000)
	f.exec(t, `CREATE TABLE saved_payments AS SELECT * FROM payments; CREATE TABLE saved_refunds AS SELECT * FROM payment_refunds`)

	f.check(t, "the refund as acknowledged", false)
	for what, spoil := range map[string]string{
		"the payment's projection not refunded": `UPDATE payments SET status = 'confirmed', refunded_amount = 0, fee_refunded = 0, entry_ids = entry_ids[1:1] WHERE id = '` + paid[0].ID + `'`,
		"the refund of another payment":         `UPDATE payment_refunds SET payment_id = '` + paid[1].ID + `'`,
		"the refund of another amount":          `UPDATE payment_refunds SET amount = 40000`,
	} {
		f.exec(t, spoil)
		f.check(t, what, true)
		f.exec(t, `UPDATE payments p SET (status, refunded_amount, fee_refunded, entry_ids) = (s.status, s.refunded_amount, s.fee_refunded, s.entry_ids)
			FROM saved_payments s WHERE s.id = p.id; DELETE FROM payment_refunds; INSERT INTO payment_refunds SELECT * FROM saved_refunds`)
		f.check(t, what+", restored", false)
	}
}

// An acknowledged payment's entries must move the money its row and answer
// say: one whose entry credits the stall less than its amount less its fee,
// the rest to the market's fees, fails the run, though its row, its
// metadata and every balance agree with one another.
func TestVerifyMoneyAsAcknowledged(t *testing.T) {
	f := newVerifyFixture(t)
	refunded := f.recordBank(t, "m1", 40_000)
	f.refund(t, "m1f", refunded, 20_000)
	admin := newPrincipal("admin", "secret", "admin")
	for i, confirm := range []bool{true, false} {
		req := &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("s", i), Merchant: f.stall.Code, Channel: pb.Channel_CHANNEL_VIETQR,
			Amount: "27000", Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}
		p, _, err := f.payments.Record(f.ctx, payment.RecordRequest{Key: admin.scope + "/" + req.IdempotencyKey, Merchant: f.stall.Code,
			Channel: merchant.ChannelVietQR, Amount: decimal.NewFromInt(27_000), Source: payment.SourceStall})
		if err != nil {
			t.Fatal(err)
		}
		f.w.ackRecord(&admin, keyRecordStall, req, &pb.Payment{Id: p.ID, Merchant: p.Merchant, Channel: req.Channel, Source: req.Source,
			Amount: strconv.FormatInt(p.Amount, 10), Fee: strconv.FormatInt(p.Fee, 10)}, false, false)
		if !confirm {
			continue // acknowledged as recorded, still pending
		}
		key := fmt.Sprint("c", i)
		if _, _, err := f.payments.Confirm(f.ctx, payment.ConfirmRequest{Key: f.b.bank.scope + "/" + key, PaymentID: p.ID, ProviderRef: "LBTESTREFC"}); err != nil {
			t.Fatal(err)
		}
		f.sc.acks.keys = append(f.sc.acks.keys, keyConfirm+f.b.bank.scope+"/"+key)
		f.sc.acks.confirmedIDs = append(f.sc.acks.confirmedIDs, p.ID)
	}
	f.check(t, "payments, confirmed and pending, and a refund as acknowledged", false)

	// The payment layer's bank-direct entry, but for its postings.
	const amount, fee, skimmed = 35_000, 350, 5_000
	req := &pb.RecordPaymentRequest{IdempotencyKey: "m2", Merchant: f.stall.Code, Channel: pb.Channel_CHANNEL_VIETQR,
		Amount: strconv.Itoa(amount), Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: "LBTESTREFM2"}
	id := "0193a7c4-0000-8000-8000-000000000001"
	market := refunded.Market
	_, err := f.ledger.Post(f.ctx, ledger.EntryRequest{
		IdempotencyKey: keyRecordBank + f.b.bank.scope + "/" + req.IdempotencyKey, Market: market, Kind: payment.KindPayment, Currency: payment.Currency,
		Postings: []ledger.PostingInput{
			{AccountCode: merchant.ClearingAccount(merchant.ChannelVietQR, market), Direction: ledger.Debit, Amount: decimal.NewFromInt(amount)},
			{AccountCode: merchant.PayableAccount(f.stall.Code), Direction: ledger.Credit, Amount: decimal.NewFromInt(amount - fee - skimmed)},
			{AccountCode: merchant.FeesAccount(market), Direction: ledger.Credit, Amount: decimal.NewFromInt(fee + skimmed)},
		},
		ExternalRef: payment.ExternalRef(merchant.ChannelVietQR, req.ProviderRef),
		Metadata: map[string]string{"payment_id": id, "merchant": f.stall.Code, "channel": string(merchant.ChannelVietQR), "source": string(payment.SourceBank),
			"amount": strconv.Itoa(amount), "fee": strconv.Itoa(fee), "provider_ref": req.ProviderRef},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.w.ackRecord(&f.b.bank, keyRecordBank, req, &pb.Payment{Id: id, Merchant: f.stall.Code, Channel: req.Channel, Source: req.Source,
		Amount: strconv.Itoa(amount), Fee: strconv.Itoa(fee), ProviderRef: req.ProviderRef}, false, false)
	if len(f.sc.anomalies) > 0 {
		t.Fatal(f.sc.anomalies)
	}
	f.check(t, fmt.Sprintf("a payment crediting the stall %d đồng less than acknowledged", skimmed), true)
}
