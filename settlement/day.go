package settlement

import (
	"time"
)

// zone is the market's clock. Vietnam has kept UTC+7 without daylight
// saving since 1975, so a fixed zone gives the same dates as
// Asia/Ho_Chi_Minh for every entry the ledger can hold (none is before
// 2000) without depending on the host's time zone database. CheckRollups
// recomputes the days with PostgreSQL's Asia/Ho_Chi_Minh, which checks the
// two agree.
var zone = time.FixedZone("ICT", 7*60*60)

// Day is a calendar day in Asia/Ho_Chi_Minh. It holds midnight UTC of that
// date, so that days compare, add and map to SQL DATE without any time zone
// taking part.
type Day struct{ t time.Time }

// DayOf is the business day an instant belongs to: its date in
// Asia/Ho_Chi_Minh. 2026-11-20T16:59:59Z is still 2026-11-20; 17:00:00Z is
// 2026-11-21.
func DayOf(t time.Time) Day {
	y, m, d := t.In(zone).Date()
	return Day{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// dayFromDate turns a DATE as pgx scans it (midnight UTC) into a Day.
func dayFromDate(t time.Time) Day {
	y, m, d := t.Date()
	return Day{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDay reads a day as the API writes it, "2026-11-20".
func ParseDay(s string) (Day, bool) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Day{}, false
	}
	return Day{t}, true
}

func (d Day) String() string { return d.t.Format(time.DateOnly) }

// IsZero reports whether d is the zero Day.
func (d Day) IsZero() bool { return d.t.IsZero() }

// Start is the first instant of the day: 00:00 in Asia/Ho_Chi_Minh.
func (d Day) Start() time.Time {
	y, m, dd := d.t.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, zone).UTC()
}

// AddDays returns the day n days later (earlier for negative n).
func (d Day) AddDays(n int) Day { return Day{d.t.AddDate(0, 0, n)} }

func (d Day) Before(e Day) bool { return d.t.Before(e.t) }
func (d Day) After(e Day) bool  { return d.t.After(e.t) }

// date is the value pgx writes as a DATE.
func (d Day) date() time.Time { return d.t }

// daysBetween counts the days from d to e, inclusive of both; 0 when e is
// before d.
func daysBetween(d, e Day) int {
	if e.Before(d) {
		return 0
	}
	return int(e.t.Sub(d.t)/(24*time.Hour)) + 1
}
