package merchant_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/merchant/vietqr"
)

func newStore(t *testing.T) (*merchant.Store, *pgtest.DB) {
	t.Helper()
	db := pgtest.New(t)
	l := ledger.New(db.Pool, ledger.Options{ExpiryInterval: -1})
	t.Cleanup(l.Close)
	return merchant.NewStore(db.Pool, l), db
}

func market(t *testing.T, s *merchant.Store, code string) merchant.Market {
	t.Helper()
	m, err := s.CreateMarket(context.Background(), merchant.Market{Code: code, Name: "Chợ " + code, Province: "Thái Nguyên",
		Collection: &collection})
	if err != nil {
		t.Fatalf("create market %s: %v", code, err)
	}
	return m
}

// collection is the collection account of the markets tests create: at
// VietinBank, so that a QR naming it names no merchant's account (theirs are
// at Vietcombank).
var collection = merchant.BankAccount{BankBIN: "970415", AccountNumber: "113600001234", HolderName: "BQL CHO"}

func newMerchant(code, market string, stalls ...string) merchant.Merchant {
	return merchant.Merchant{
		Code: code, Market: market, Stalls: stalls,
		DisplayName: "Bún chả Cô Lan", Owner: "Nguyễn Thị Lan", Phone: "0912345678",
		Payout:   &merchant.BankAccount{BankBIN: "970436", AccountNumber: "0123456789", HolderName: "NGUYEN THI LAN"},
		Fees:     merchant.FeePlan{BasisPoints: map[merchant.Channel]int{merchant.ChannelVietQR: 50}, MinFee: 100},
		Channels: []merchant.Channel{merchant.ChannelVietQR, merchant.ChannelMoMo},
	}
}

func create(t *testing.T, s *merchant.Store, m merchant.Merchant) merchant.Merchant {
	t.Helper()
	out, err := s.CreateMerchant(context.Background(), m)
	if err != nil {
		t.Fatalf("create merchant %s: %v", m.Code, err)
	}
	return out
}

func wantErr(t *testing.T, err, kind error, field string) {
	t.Helper()
	var le *ledger.Error
	if !errors.Is(err, kind) || !errors.As(err, &le) || le.Field != field {
		t.Fatalf("got %v, want %v about %s", err, kind, field)
	}
}

func TestCreateAndReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	market(t, s, "TN-DAITU")
	in := newMerchant("TN-DAITU-0042", "TN-DAITU", "B-07", "A-012")
	in.Phone = "+84912345678"
	got := create(t, s, in)
	read, err := s.GetMerchant(ctx, "TN-DAITU-0042")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, read) {
		t.Errorf("create returned %+v, get %+v", got, read)
	}
	want := in
	want.Stalls = []string{"A-012", "B-07"}
	want.Phone = "0912345678"
	want.Status = merchant.StatusActive
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	if !reflect.DeepEqual(got, want) || got.CreatedAt.IsZero() {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := s.CreateMerchant(ctx, newMerchant("TN-DAITU-0042", "TN-DAITU", "C-1")); !errors.Is(err, merchant.ErrMerchantExists) {
		t.Errorf("second create: %v, want ErrMerchantExists", err)
	}
	if _, err := s.CreateMarket(ctx, merchant.Market{Code: "TN-DAITU", Name: "x", Province: "y"}); !errors.Is(err, merchant.ErrMarketExists) {
		t.Errorf("second market: %v, want ErrMarketExists", err)
	}
}

// Reads of single merchants made at the same moment share queries
// (internal/coalesce): each call must still get its own merchant, as it is
// now, and a code without a merchant its own NotFound.
func TestConcurrentReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	market(t, s, "M1")
	var want []merchant.Merchant
	for i := range 20 {
		m := newMerchant(fmt.Sprintf("M1-%02d", i), "M1", fmt.Sprintf("S-%02d", i))
		m.DisplayName = fmt.Sprintf("Quầy %d", i)
		m.Fees.BasisPoints[merchant.ChannelVietQR] = 10 + i
		want = append(want, create(t, s, m))
	}
	suspended, err := s.Suspend(ctx, "M1-07", "unpaid rent")
	if err != nil {
		t.Fatal(err)
	}
	want[7] = suspended

	errs := make(chan error, 20*21)
	var wg sync.WaitGroup
	for round := range 20 {
		for i := range 21 {
			wg.Go(func() {
				// GetMerchants of one code shares the same reads.
				get := s.GetMerchant
				if round%2 == 1 {
					get = func(ctx context.Context, code string) (merchant.Merchant, error) {
						got, err := s.GetMerchants(ctx, []string{code})
						if m, ok := got[code]; ok || err != nil {
							return m, err
						}
						return merchant.Merchant{}, merchant.ErrMerchantNotFound
					}
				}
				if i == 20 {
					if _, err := get(ctx, "M1-99"); !errors.Is(err, merchant.ErrMerchantNotFound) {
						errs <- fmt.Errorf("M1-99: %v, want ErrMerchantNotFound", err)
					}
					return
				}
				got, err := get(ctx, want[i].Code)
				if err != nil || !reflect.DeepEqual(got, want[i]) {
					errs <- fmt.Errorf("%s: got %+v, %v\nwant %+v", want[i].Code, got, err, want[i])
					return
				}
				got.Fees.BasisPoints[merchant.ChannelVietQR] = -1 // must change this call's copy only
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Merchants racing for one stall: the database lets exactly one have it,
// and every other is told who holds it.
func TestStallRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newStore(t)
	market(t, s, "M1")
	// The market's row held, every creator passes the early checks (the
	// stall is free) and waits in its transaction; released, they race.
	hold, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, `SELECT 1 FROM markets WHERE code = 'M1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateMerchant(ctx, newMerchant(fmt.Sprintf("M1-%d", i), "M1", fmt.Sprintf("OWN-%d", i), "HOT"))
		})
	}
	for waiting := 0; waiting < n; {
		time.Sleep(10 * time.Millisecond)
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, merchant.ErrStallTaken):
		default:
			t.Errorf("merchant %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d merchants got stall HOT, want 1 (errors %v)", won, errs)
	}
	var merchants, stalls int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM merchants), (SELECT count(*) FROM merchant_stalls)`).Scan(&merchants, &stalls); err != nil {
		t.Fatal(err)
	}
	if merchants != 1 || stalls != 2 {
		t.Errorf("%d merchants, %d stalls held; want 1 and 2: a loser kept a row", merchants, stalls)
	}
	// Nor an account: one left behind would be listed in the market's
	// reports as a merchant, and would keep its code from another market.
	var payables int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_accounts WHERE market = 'M1' AND code LIKE 'merchant:%:payable'`).Scan(&payables); err != nil {
		t.Fatal(err)
	}
	if payables != 1 {
		t.Errorf("market M1 holds %d payable accounts; want 1, the winner's", payables)
	}
	market(t, s, "M2")
	for i, err := range errs {
		if err != nil {
			create(t, s, newMerchant(fmt.Sprintf("M1-%d", i), "M2", "B-1"))
			break
		}
	}
}

// Copies of one merchant's creation sent at once (a retry of a call still
// in flight, two seed loads): one creates it, every other is told it
// exists.
func TestCreateMerchantRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newStore(t)
	market(t, s, "M1")
	const n = 16
	for round := range 100 {
		code := fmt.Sprintf("M1-R%d", round)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.CreateMerchant(ctx, newMerchant(code, "M1", "S-"+code))
			})
		}
		wg.Wait()
		created := 0
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case errors.Is(err, merchant.ErrMerchantExists):
			default:
				t.Errorf("%s, copy %d: %v; want it created or ErrMerchantExists", code, i, err)
			}
		}
		if created != 1 {
			t.Errorf("%s created by %d copies, want 1", code, created)
		}
	}
	var merchants, stalls int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM merchants), (SELECT count(*) FROM merchant_stalls)`).Scan(&merchants, &stalls); err != nil {
		t.Fatal(err)
	}
	if merchants != 100 || stalls != 100 {
		t.Errorf("%d merchants, %d stalls held; want 100 and 100", merchants, stalls)
	}
}

func TestStatusAndStalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	market(t, s, "M1")
	market(t, s, "M2")
	a := create(t, s, newMerchant("A-1", "M1", "S-1", "S-2"))

	// The same stall code in another market is another stall.
	create(t, s, newMerchant("B-1", "M2", "S-1"))
	_, err := s.CreateMerchant(ctx, newMerchant("C-1", "M1", "S-9", "S-2"))
	wantErr(t, err, merchant.ErrStallTaken, "merchant.stalls")

	// A changed stall list gives up stalls and takes new ones; a taken one
	// is refused and changes nothing.
	a.Stalls = []string{"S-2", "S-3"}
	if a, err = s.UpdateMerchant(ctx, a, []string{"stalls"}); err != nil || !reflect.DeepEqual(a.Stalls, []string{"S-2", "S-3"}) {
		t.Fatalf("update stalls: %v, %v", a.Stalls, err)
	}
	create(t, s, newMerchant("C-1", "M1", "S-1"))
	_, err = s.UpdateMerchant(ctx, merchant.Merchant{Code: "A-1", Stalls: []string{"S-1", "S-4"}}, []string{"stalls"})
	wantErr(t, err, merchant.ErrStallTaken, "merchant.stalls")
	if got, _ := s.GetMerchant(ctx, "A-1"); !reflect.DeepEqual(got.Stalls, []string{"S-2", "S-3"}) {
		t.Errorf("a refused update changed the stalls to %v", got.Stalls)
	}

	// A fee plan must stay within the channels, whichever of the two changes.
	_, err = s.UpdateMerchant(ctx, merchant.Merchant{Code: "A-1", Channels: []merchant.Channel{merchant.ChannelMoMo}}, []string{"channels"})
	wantErr(t, err, ledger.ErrInvalid, "merchant.fee_plan.fees")
	a, err = s.UpdateMerchant(ctx, merchant.Merchant{Code: "A-1", Channels: []merchant.Channel{merchant.ChannelMoMo}}, []string{"channels", "fee_plan"})
	if err != nil || a.Fees.BasisPoints != nil || a.Fees.MinFee != 0 {
		t.Fatalf("update channels and fees: %+v, %v", a.Fees, err)
	}

	for _, step := range []struct {
		name string
		do   func() (merchant.Merchant, error)
		want merchant.Status
		err  error
	}{
		{"reinstate active", func() (merchant.Merchant, error) { return s.Reinstate(ctx, "A-1") }, "", merchant.ErrBadTransition},
		{"suspend", func() (merchant.Merchant, error) { return s.Suspend(ctx, "A-1", "unpaid rent") }, merchant.StatusSuspended, nil},
		{"suspend twice", func() (merchant.Merchant, error) { return s.Suspend(ctx, "A-1", "again") }, "", merchant.ErrBadTransition},
		{"reinstate", func() (merchant.Merchant, error) { return s.Reinstate(ctx, "A-1") }, merchant.StatusActive, nil},
		{"close", func() (merchant.Merchant, error) { return s.Close(ctx, "A-1", "moved away") }, merchant.StatusClosed, nil},
		{"close twice", func() (merchant.Merchant, error) { return s.Close(ctx, "A-1", "") }, "", merchant.ErrBadTransition},
		{"reinstate closed", func() (merchant.Merchant, error) { return s.Reinstate(ctx, "A-1") }, "", merchant.ErrBadTransition},
		{"suspend closed", func() (merchant.Merchant, error) { return s.Suspend(ctx, "A-1", "") }, "", merchant.ErrBadTransition},
		{"update closed", func() (merchant.Merchant, error) {
			return s.UpdateMerchant(ctx, merchant.Merchant{Code: "A-1", Phone: "0987654321"}, []string{"phone"})
		}, "", merchant.ErrBadTransition},
		{"suspend unknown", func() (merchant.Merchant, error) { return s.Suspend(ctx, "NOBODY", "") }, "", merchant.ErrMerchantNotFound},
	} {
		got, err := step.do()
		if step.err != nil {
			if !errors.Is(err, step.err) {
				t.Fatalf("%s: %v, want %v", step.name, err, step.err)
			}
			continue
		}
		if err != nil || got.Status != step.want {
			t.Fatalf("%s: %s, %v; want %s", step.name, got.Status, err, step.want)
		}
	}
	closed, err := s.GetMerchant(ctx, "A-1")
	if err != nil || closed.StatusReason != "moved away" || !reflect.DeepEqual(closed.Stalls, []string{"S-2", "S-3"}) {
		t.Fatalf("closed merchant: %+v, %v; want its reason and the stalls it held", closed, err)
	}
	// Closing released the stalls.
	create(t, s, newMerchant("D-1", "M1", "S-2", "S-3"))
	if _, err := s.StaticQR(ctx, "A-1"); !errors.Is(err, merchant.ErrBadTransition) {
		t.Errorf("QR of a closed merchant: %v", err)
	}

	// A closed market takes no merchants, new or reinstated.
	if _, err := s.Suspend(ctx, "D-1", "inspection"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateMarket(ctx, merchant.Market{Code: "M1", Status: merchant.MarketClosed}, []string{"status"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateMerchant(ctx, newMerchant("E-1", "M1", "S-7"))
	wantErr(t, err, merchant.ErrMarketClosed, "merchant.market")
	_, err = s.Reinstate(ctx, "D-1")
	wantErr(t, err, merchant.ErrMarketClosed, "code")
	_, err = s.CreateMerchant(ctx, newMerchant("E-1", "NOWHERE", "S-7"))
	wantErr(t, err, merchant.ErrMarketNotFound, "merchant.market")
}

func TestQR(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	mk := market(t, s, "M1")
	m := newMerchant("A-1", "M1", "S-1")
	m.DisplayName = "Đồ khô Đức Hạnh – chợ Đại Từ"
	m = create(t, s, m)
	static, err := s.StaticQR(ctx, "A-1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := vietqr.Parse(static)
	if err != nil {
		t.Fatal(err)
	}
	want := vietqr.Payload{Initiation: vietqr.Static, BankBIN: "970415", Account: "113600001234", Service: vietqr.ServiceAccount,
		Currency: "704", Country: "VN", MerchantName: "DO KHO DUC HANH CHO DAI TU"[:25], Purpose: "A-1"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("static QR = %+v\nwant        %+v", p, want)
	}

	dynamic, err := merchant.DynamicQR(mk, m, 150000, "REQ12345", "Thanh toán")
	if err != nil {
		t.Fatal(err)
	}
	p, err = vietqr.Parse(dynamic)
	if err != nil {
		t.Fatal(err)
	}
	if p.Initiation != vietqr.Dynamic || p.Amount != "150000" || p.BillNumber != "REQ12345" || p.Purpose != "REQ12345 Thanh toan" || p.Account != "113600001234" {
		t.Errorf("dynamic QR = %+v", p)
	}
	if _, err := merchant.DynamicQR(mk, m, 0, "B", ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("dynamic QR of 0 đồng: %v", err)
	}
	if _, err := merchant.DynamicQR(merchant.Market{Code: "M1"}, m, 150000, "B", ""); !errors.Is(err, merchant.ErrNoCollectionAccount) {
		t.Errorf("dynamic QR in a market without a collection account: %v", err)
	}

	// The QR pays the market's account: a merchant without its own gets
	// one.
	if _, err := s.UpdateMerchant(ctx, merchant.Merchant{Code: "A-1"}, []string{"payout_account"}); err != nil {
		t.Fatal(err)
	}
	if _, err = s.StaticQR(ctx, "A-1"); err != nil {
		t.Errorf("static QR of a merchant without a payout account: %v", err)
	}
	_, err = s.StaticQR(ctx, "B-1")
	wantErr(t, err, merchant.ErrMerchantNotFound, "code")

	momo := newMerchant("A-2", "M1", "S-2")
	momo.Channels, momo.Fees = []merchant.Channel{merchant.ChannelMoMo}, merchant.FeePlan{}
	create(t, s, momo)
	_, err = s.StaticQR(ctx, "A-2")
	wantErr(t, err, merchant.ErrChannelNotAccepted, "code")

	// 26 characters: more than tag 62/08 carries.
	long := newMerchant("A-"+strings.Repeat("9", 24), "M1", "S-3")
	create(t, s, long)
	_, err = s.StaticQR(ctx, long.Code)
	wantErr(t, err, merchant.ErrCodeNotInQR, "code")

	if _, err := s.CreateMarket(ctx, merchant.Market{Code: "M2", Name: "Chợ M2", Province: "Thái Nguyên"}); err != nil {
		t.Fatal(err)
	}
	create(t, s, newMerchant("C-1", "M2", "S-1"))
	_, err = s.StaticQR(ctx, "C-1")
	wantErr(t, err, merchant.ErrNoCollectionAccount, "code")
}

// The schema refuses what the Go code never writes, so no other writer can
// store a merchant the package would refuse.
func TestSchemaRefusesBadMerchants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newStore(t)
	market(t, s, "M1")
	market(t, s, "M2")
	create(t, s, newMerchant("A-1", "M1", "S-1"))
	const cols = `INSERT INTO merchants (code, market, display_name, owner_name, phone, status, channels, fee_channels, fee_basis_points, payout_bank_bin, payout_account_number, payout_holder_name, registration) VALUES `
	for _, tc := range []struct{ name, sql, code string }{
		{"stall held twice", `INSERT INTO merchant_stalls (market, stall, merchant) VALUES ('M1', 'S-1', 'A-1')`, pg.CodeUniqueViolation},
		{"stall in another market than its merchant", `INSERT INTO merchant_stalls (market, stall, merchant) VALUES ('M2', 'S-5', 'A-1')`, "23503"},
		{"lower-case stall", `INSERT INTO merchant_stalls (market, stall, merchant) VALUES ('M1', 's-5', 'A-1')`, pg.CodeCheckViolation},
		{"merchant of no market", cols + `('B-1', 'M9', 'x', 'y', '0912345678', 'active', '{VIETQR}', '{}', '{}', NULL, NULL, NULL, 9)`, "23503"},
		{"bad phone", cols + `('B-1', 'M1', 'x', 'y', '091234567', 'active', '{VIETQR}', '{}', '{}', NULL, NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"no channels", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{}', '{}', '{}', NULL, NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"unknown channel", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{CASH}', '{}', '{}', NULL, NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"fee for a channel not accepted", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{VIETQR}', '{MOMO}', '{10}', NULL, NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"fee above 10%", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{VIETQR}', '{VIETQR}', '{1001}', NULL, NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"half a payout account", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{VIETQR}', '{}', '{}', '970436', NULL, NULL, 9)`, pg.CodeCheckViolation},
		{"number of another merchant of the market", cols + `('B-1', 'M1', 'x', 'y', '0912345678', 'active', '{VIETQR}', '{}', '{}', NULL, NULL, NULL, 1)`, pg.CodeUniqueViolation},
		{"unknown status", `UPDATE merchants SET status = 'deleted'`, pg.CodeCheckViolation},
		{"released stalls of an open merchant", `UPDATE merchants SET released_stalls = '{S-1}'`, pg.CodeCheckViolation},
		{"half a collection account", `UPDATE markets SET collection_holder_name = NULL WHERE code = 'M1'`, pg.CodeCheckViolation},
		{"bad collection account", `UPDATE markets SET collection_account_number = '12 34' WHERE code = 'M1'`, pg.CodeCheckViolation},
		{"bad market code", `INSERT INTO markets (code, name, province, status) VALUES ('m 1', 'x', 'y', 'active')`, pg.CodeCheckViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Pool.Exec(ctx, tc.sql)
			if got := pg.Code(err); got != tc.code {
				t.Fatalf("got SQLSTATE %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}
