package settlement

import (
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
}

// Service answers settlement reports and records provider settlements.
type Service struct {
	pool      *pgxpool.Pool
	ledger    *ledger.Ledger
	merchants *merchant.Store
	now       func() time.Time
}

// NewService returns the settlement service over a ledger whose options
// include Rollups{} and Projector{} (and payment.Projector{}).
func NewService(pool *pgxpool.Pool, l *ledger.Ledger, merchants *merchant.Store, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{pool: pool, ledger: l, merchants: merchants, now: opts.Now}
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
