package settlement_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
	"github.com/choledger/choledger/settlement/statement"
)

// A statement import reads at most MaxReconciledPayments of the ledger's
// payments: a period and markets holding more are refused naming the
// period, so that an import's memory follows its file, not the ledger.
func TestStatementImportReadsBoundedPayments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1, Projectors: settlement.Projectors()})
	t.Cleanup(l.Close)
	store := merchant.NewStore(db.Pool, l)
	payments := payment.NewService(db.Pool, l, store, payment.Options{})
	const mk, mc = "TS-REC", "TS-REC-01"
	if _, err := store.CreateMarket(ctx, merchant.Market{Code: mk, Name: "Chợ Đối Soát", Province: "Thái Nguyên"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateMerchant(ctx, merchant.Merchant{Code: mc, Market: mk, Stalls: []string{"01"}, DisplayName: "Sạp", Owner: "Chủ",
		Phone: "0912345678", Channels: []merchant.Channel{merchant.ChannelVietQR}, Fees: merchant.FeePlan{MinFee: 0}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	csv := "ref,amount,currency,booked_at\n"
	for i := range 5 {
		ref := fmt.Sprint("FT-REC-", i)
		if _, _, err := payments.Record(ctx, payment.RecordRequest{Key: ref, Merchant: mc, Channel: merchant.ChannelVietQR,
			Amount: decimalOf(10000), Source: payment.SourceBank, ProviderRef: ref}); err != nil {
			t.Fatal(err)
		}
		csv += fmt.Sprintf("%s,10000,VND,%s\n", ref, start.Add(30*time.Minute).Format(time.RFC3339))
	}
	imp := settlement.StatementImport{Format: statement.FormatCSV, Content: []byte(csv), Channel: merchant.ChannelVietQR, Market: mk,
		PeriodStart: start, PeriodEnd: start.Add(2 * time.Hour), CreatedBy: "bank:napas/"}

	narrow := settlement.NewService(db.Pool, l, store, settlement.Options{MaxReconciledPayments: 4})
	_, err := narrow.ImportStatement(ctx, imp)
	var fe *ledger.Error
	if !errors.Is(err, ledger.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "period_start" || !strings.Contains(err.Error(), "more than 4 VIETQR payments") {
		t.Fatalf("a period of 5 payments with at most 4 read: %v, want InvalidArgument naming period_start and the bound", err)
	}
	wide := settlement.NewService(db.Pool, l, store, settlement.Options{MaxReconciledPayments: 5})
	res, err := wide.ImportStatement(ctx, imp)
	if err != nil || res.Report.Matched != 5 {
		t.Fatalf("the same with at most 5 read: %+v, %v; want 5 matched", res.Report, err)
	}
}
