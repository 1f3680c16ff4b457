package settlement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Currency of every settlement: the markets take đồng.
const Currency = "VND"

// MaxPeriodDays bounds a report's period, and so its per-day lines.
const MaxPeriodDays = 366

// ErrExceedsOwed: a provider settlement asks for more than the provider
// owes the market (its clearing balance).
var ErrExceedsOwed = errors.New("settlement exceeds what the provider owes")

// Options tune the service. Zero values take the defaults.
type Options struct {
	// Now is the clock that decides what "today" is for period checks.
	Now func() time.Time
	// MaxReconciledPayments bounds the ledger payments one statement import
	// reads; 0 means DefaultMaxReconciledPayments.
	MaxReconciledPayments int
}

// DefaultMaxReconciledPayments is twice the lines a statement may hold: a
// period and markets holding more of the channel's payments would report
// most of them missing from the statement, and reading them all would make
// an import's memory grow with the ledger rather than with its file.
const DefaultMaxReconciledPayments = 2 * MaxStatementLines

// Service answers settlement reports and records provider settlements.
type Service struct {
	pool      *pgxpool.Pool
	ledger    *ledger.Ledger
	merchants *merchant.Store
	now       func() time.Time
	// maxReconciled is Options.MaxReconciledPayments.
	maxReconciled int
}

// NewService returns the settlement service over a ledger whose options
// include Rollups{} and Projector{} (and payment.Projector{}).
func NewService(pool *pgxpool.Pool, l *ledger.Ledger, merchants *merchant.Store, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxReconciledPayments <= 0 {
		opts.MaxReconciledPayments = DefaultMaxReconciledPayments
	}
	return &Service{pool: pool, ledger: l, merchants: merchants, now: opts.Now, maxReconciled: opts.MaxReconciledPayments}
}

func invalid(field, format string, args ...any) error {
	return &ledger.Error{Kind: ledger.ErrInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func fail(kind error, field, format string, args ...any) error {
	return &ledger.Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// earliestDay bounds periods from below: the ledger holds nothing older.
var earliestDay = Day{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}

// period checks a requested period: start_day required, end_day defaulting
// to it (one business day), in order, at most MaxPeriodDays, and not after
// today in Asia/Ho_Chi_Minh (a day that has not begun has no balance yet).
func (s *Service) period(start, end string) (Day, Day, error) {
	if start == "" {
		return Day{}, Day{}, invalid("start_day", "is required, as a date YYYY-MM-DD in Asia/Ho_Chi_Minh")
	}
	from, ok := ParseDay(start)
	if !ok {
		return Day{}, Day{}, invalid("start_day", "must be a date YYYY-MM-DD, got %q", start)
	}
	if from.Before(earliestDay) {
		return Day{}, Day{}, invalid("start_day", "must be on or after %s, got %s", earliestDay, from)
	}
	to := from
	if end != "" {
		if to, ok = ParseDay(end); !ok {
			return Day{}, Day{}, invalid("end_day", "must be a date YYYY-MM-DD, got %q", end)
		}
	}
	if to.Before(from) {
		return Day{}, Day{}, invalid("end_day", "%s is before start_day %s", to, from)
	}
	if n := daysBetween(from, to); n > MaxPeriodDays {
		return Day{}, Day{}, invalid("end_day", "a period is at most %d days, got %d", MaxPeriodDays, n)
	}
	// A start_day that has not begun is its own fault, even when end_day,
	// unset, took its value.
	today := DayOf(s.now())
	if from.After(today) {
		return Day{}, Day{}, invalid("start_day", "%s has not begun: today is %s in Asia/Ho_Chi_Minh", from, today)
	}
	if to.After(today) {
		return Day{}, Day{}, invalid("end_day", "%s has not begun: today is %s in Asia/Ho_Chi_Minh", to, today)
	}
	return from, to, nil
}

func checkAsOf(at ledger.AsOf) error {
	switch {
	case at.Seq < 0:
		return invalid("as_of.sequence", "must be positive, got %d", at.Seq)
	case at.Seq > 0 && !at.Time.IsZero():
		return invalid("as_of", "give a sequence or a time, not both")
	}
	return nil
}

// recordOnce records a request under its idempotency key. What the key
// recorded is the answer (ofKey), whatever the balances are now, and a
// changed request is refused. A copy of the same request sent at once may
// record it while this one is refused for the balance the copy moved: the
// key's entry is the answer then too.
func recordOnce[T any](ofKey, record func() (T, bool, error)) (T, bool, error) {
	if v, ok, err := ofKey(); ok || err != nil {
		return v, ok, err
	}
	v, replayed, err := record()
	if err != nil {
		if v, ok, kerr := ofKey(); ok || kerr != nil {
			return v, ok, kerr
		}
	}
	return v, replayed, err
}

// answerOfKey answers a request with what ledgerKey recorded, read from its
// entry by read, if the key recorded anything (ok); same refuses a request
// that differs from the one the entry recorded.
func answerOfKey[T any](ctx context.Context, l *ledger.Ledger, ledgerKey string, same func(ledger.Entry) error, read func(context.Context, string) (T, error)) (T, bool, error) {
	var none T
	used, err := l.EntriesByKeys(ctx, []string{ledgerKey})
	if err != nil {
		return none, false, err
	}
	e, ok := used[ledgerKey]
	if !ok {
		return none, false, nil
	}
	if err := same(e); err != nil {
		return none, false, err
	}
	v, err := read(ctx, e.ID)
	return v, err == nil, err
}
