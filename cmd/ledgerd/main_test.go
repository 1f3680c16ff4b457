package main

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// The payment timeouts ledgerd accepts are the ones the ledger accepts: a
// stall payment is recorded at either bound.
func TestStallPaymentAtPaymentTimeoutBounds(t *testing.T) {
	db := pgtest.New(t)
	t.Setenv("LEDGER_DATABASE_URL", db.URL)
	ctx := context.Background()
	for i, timeout := range []string{"1s", ledger.MaxPendingTimeout.String()} {
		cfg, err := loadConfig([]string{"--payment-timeout=" + timeout})
		if err != nil {
			t.Fatal(err)
		}
		app, err := open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(app.close)
		if i == 0 {
			if _, err := app.merchants.CreateMarket(ctx, merchant.Market{Code: "TN-TEST", Name: "Chợ Thử", Province: "Thái Nguyên", Ward: "Phường Thử"}); err != nil {
				t.Fatal(err)
			}
			if _, err := app.merchants.CreateMerchant(ctx, merchant.Merchant{
				Code: "TN-TEST-0001", Market: "TN-TEST", Stalls: []string{"A-001"}, DisplayName: "Hàng rau", Owner: "Nguyễn Thị Lan", Phone: "0912345678",
				Payout:   &merchant.PayoutAccount{BankBIN: "970436", AccountNumber: "0011001234567", HolderName: "NGUYEN THI LAN"},
				Channels: []merchant.Channel{merchant.ChannelVietQR},
			}); err != nil {
				t.Fatal(err)
			}
		}
		p, _, err := app.payments.Record(ctx, payment.RecordRequest{
			Key: "stall-" + timeout, Merchant: "TN-TEST-0001", Channel: merchant.ChannelVietQR,
			Amount: decimal.NewFromInt(50000), Source: payment.SourceStall,
		})
		if err != nil {
			t.Fatalf("payment timeout %s: stall payment refused: %v", timeout, err)
		}
		if p.Status != payment.StatusPending {
			t.Errorf("payment timeout %s: status %s, want pending", timeout, p.Status)
		}
		app.close()
	}
}
