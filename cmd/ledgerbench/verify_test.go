package main

import (
	"context"
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
)

// The payments projection must hold each acknowledged payment as it was
// acknowledged: a row that credits another stall, or another amount, fails
// the run even though the row is there by id.
func TestVerifyProjectionAsAcknowledged(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: []ledger.Projector{payment.Projector{}}})
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
