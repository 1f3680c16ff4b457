package seeds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// Name is the seed's name in the seed_runs table, which records that it was
// loaded so that a second `make run` does not load it again.
const Name = "thai-nguyen-demo-v1"

// Stats says what a load did.
type Stats struct {
	AlreadyLoaded bool
	Markets       int
	Merchants     int
	Payments      int
	Duration      time.Duration
}

// Loader writes the data set through the same code the API uses, so the
// demo ledger obeys every rule a real one does.
type Loader struct {
	Pool      *pgxpool.Pool
	Merchants *merchant.Store
	Payments  *payment.Service
	Log       *slog.Logger
	// Workers bounds concurrent writes; concurrent writes share the
	// ledger's transactions.
	Workers int
}

// Load loads the data set once. Every write is idempotent, so a load that
// was interrupted is completed by the next one.
func (l *Loader) Load(ctx context.Context) (Stats, error) {
	start := time.Now()
	var st Stats
	var loaded bool
	if err := l.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM seed_runs WHERE name = $1)`, Name).Scan(&loaded); err != nil {
		return st, fmt.Errorf("read seed runs: %w", err)
	}
	data := Generate()
	if loaded {
		// Loaded by a release whose markets had no collection account:
		// they get theirs, so that the demo's QRs work.
		for _, m := range data.Markets {
			if err := l.addCollection(ctx, m); err != nil {
				return st, fmt.Errorf("market %s: %w", m.Code, err)
			}
		}
		st.AlreadyLoaded = true
		return st, nil
	}
	if l.Workers <= 0 {
		l.Workers = 32
	}

	for _, m := range data.Markets {
		_, err := l.Merchants.CreateMarket(ctx, m.Definition())
		if errors.Is(err, merchant.ErrMarketExists) {
			err = l.addCollection(ctx, m)
		}
		if err != nil {
			return st, fmt.Errorf("market %s: %w", m.Code, err)
		}
		st.Markets++
	}
	l.Log.Info("seed: markets loaded", "markets", st.Markets)

	err := l.parallel(ctx, len(data.Merchants), func(i int) error {
		_, err := l.Merchants.CreateMerchant(ctx, data.Merchants[i].Definition())
		if err != nil && !errors.Is(err, merchant.ErrMerchantExists) {
			return fmt.Errorf("merchant %s: %w", data.Merchants[i].Code, err)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.Merchants = len(data.Merchants)
	l.Log.Info("seed: merchants loaded", "merchants", st.Merchants)

	if err := l.loadPayments(ctx, data.Payments); err != nil {
		return st, err
	}
	st.Payments = len(data.Payments)
	if _, err := l.Pool.Exec(ctx, `INSERT INTO seed_runs (name, loaded_at) VALUES ($1, now()) ON CONFLICT DO NOTHING`, Name); err != nil {
		return st, fmt.Errorf("record seed run: %w", err)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// Definition is the market as the merchant store creates it: active, with
// its collection account.
func (m Market) Definition() merchant.Market {
	return merchant.Market{
		Code: m.Code, Name: m.Name, Province: m.Province, Ward: m.Ward,
		Collection: &merchant.BankAccount{BankBIN: m.CollectionBIN, AccountNumber: m.CollectionAccount, HolderName: m.CollectionHolder},
	}
}

// addCollection gives m, loaded by a release whose markets had no
// collection account, its own, so that its merchants get their QR; a
// market that has one keeps it, and one that is gone is left gone.
func (l *Loader) addCollection(ctx context.Context, m Market) error {
	cur, err := l.Merchants.GetMarket(ctx, m.Code)
	if errors.Is(err, merchant.ErrMarketNotFound) {
		return nil
	}
	if err != nil || cur.Collection != nil {
		return err
	}
	_, err = l.Merchants.UpdateMarket(ctx, m.Definition(), []string{"collection_account"})
	return err
}

// Definition is the merchant as the merchant store creates it: active,
// with its payout account, fee plan and channels.
func (m Merchant) Definition() merchant.Merchant {
	channels := make([]merchant.Channel, len(m.Channels))
	fees := make(map[merchant.Channel]int, len(m.FeeBps))
	for i, c := range m.Channels {
		channels[i] = merchant.Channel(c)
		fees[merchant.Channel(c)] = m.FeeBps[c]
	}
	return merchant.Merchant{
		Code: m.Code, Market: m.MarketCode, Stalls: m.Stalls, DisplayName: m.DisplayName, Owner: m.Owner, Phone: m.Phone,
		Status:   merchant.StatusActive,
		Payout:   &merchant.BankAccount{BankBIN: m.BankBIN, AccountNumber: m.AccountNumber, HolderName: m.AccountHolder},
		Fees:     merchant.FeePlan{BasisPoints: fees, MinFee: m.MinFee},
		Channels: channels,
	}
}

// loadPayments records the day in bulk, then has the bank confirm or reject
// what the stalls recorded, as it would through the API.
func (l *Loader) loadPayments(ctx context.Context, payments []Payment) error {
	const chunk = 500
	ids := make([]string, len(payments))
	for lo := 0; lo < len(payments); lo += chunk {
		hi := min(lo+chunk, len(payments))
		reqs := make([]payment.RecordRequest, 0, hi-lo)
		for i := lo; i < hi; i++ {
			p := payments[i]
			r := payment.RecordRequest{
				Key: fmt.Sprintf("seed:%s:%d", Name, i), Merchant: p.MerchantCode, Channel: merchant.Channel(p.Channel),
				Amount: decimal.NewFromInt(p.Amount), Source: payment.SourceStall, OccurredAt: p.OccurredAt,
			}
			if p.Flow == FlowBankDirect {
				r.Source, r.ProviderRef = payment.SourceBank, p.ProviderRef
			}
			reqs = append(reqs, r)
		}
		for j, o := range l.Payments.RecordMany(ctx, reqs) {
			if o.Err != nil {
				return fmt.Errorf("seed payment %d: %w", lo+j, o.Err)
			}
			ids[lo+j] = o.Payment.ID
		}
	}
	l.Log.Info("seed: payments recorded; the bank now confirms and rejects", "payments", len(payments))
	err := l.parallel(ctx, len(payments), func(i int) error {
		p := payments[i]
		key := fmt.Sprintf("seed:%s:%d:bank", Name, i)
		var err error
		switch p.Flow {
		case FlowStallConfirmed:
			_, _, err = l.Payments.Confirm(ctx, payment.ConfirmRequest{Key: key, PaymentID: ids[i], ProviderRef: p.ProviderRef})
		case FlowStallRejected:
			_, _, err = l.Payments.Reject(ctx, payment.RejectRequest{Key: key, PaymentID: ids[i], Reason: "declined by the payer's bank"})
		}
		if errors.Is(err, payment.ErrWrongState) {
			// A load stopped and run again after the payment timeout finds
			// the payment expired: the bank's word comes too late, as it
			// would for a real stall, and the payment stays expired.
			if now, gerr := l.Payments.Get(ctx, ids[i]); gerr == nil && now.Status == payment.StatusExpired {
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("seed payment %d (%s): %w", i, p.Flow, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.Log.Info("seed: payments loaded", "payments", len(payments))
	return nil
}

// parallel runs fn(0..n-1) on the loader's workers and returns the first
// error.
func (l *Loader) parallel(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range l.Workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			i = n
		}
	}
	close(next)
	wg.Wait()
	return firstErr
}
