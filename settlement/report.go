package settlement

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// ChannelTotals are the posted payments and refunds of one channel.
type ChannelTotals struct {
	Channel      merchant.Channel
	PaymentCount int64
	Payments     int64 // gross: what the payers paid
	FeesCharged  int64
	RefundCount  int64
	Refunds      int64 // what went back to the payers
	FeesReturned int64 // the part of the fees that came back with the refunds
}

func (c *ChannelTotals) add(o *ChannelTotals) {
	c.PaymentCount += o.PaymentCount
	c.Payments += o.Payments
	c.FeesCharged += o.FeesCharged
	c.RefundCount += o.RefundCount
	c.Refunds += o.Refunds
	c.FeesReturned += o.FeesReturned
}

// Totals settle a merchant's payable account (or the sum of a market's)
// over a day or a period, in đồng. Fees are netted in the entries (the
// payable is credited a payment less its fee, and debited a refund less the
// fee it returns), so the payable moves by exactly
//
//	Payments - Refunds - Fees() - Payouts + Adjustments
//
// and Opening plus that is Closing, to the đồng (see Balanced).
type Totals struct {
	// Opening and Closing are the payable's posted balance at the start and
	// the end: what is owed to the merchant.
	Opening int64
	// Channels split payments and refunds by channel, in the order of
	// merchant.Channels, leaving out channels with neither.
	Channels     []ChannelTotals
	PaymentCount int64
	Payments     int64
	RefundCount  int64
	Refunds      int64
	FeesCharged  int64
	FeesReturned int64
	PayoutCount  int64
	Payouts      int64
	// Adjustments are the payable's movements by entries that are neither
	// payments, refunds nor payouts (an operator's adjustment through the
	// ledger). Zero unless someone posted one.
	Adjustments int64
	Closing     int64
	// Pending is what stall-recorded payments not yet confirmed by the bank
	// would add (the payable's credits pending) at the end.
	Pending int64
}

// Fees are the fees charged less the fees returned with refunds.
func (t Totals) Fees() int64 { return t.FeesCharged - t.FeesReturned }

// Balanced reports whether Opening + Payments - Refunds - Fees - Payouts +
// Adjustments = Closing.
func (t Totals) Balanced() bool {
	return t.Opening+t.Payments-t.Refunds-t.Fees()-t.Payouts+t.Adjustments == t.Closing
}

// Equation writes the settlement arithmetic out with the figures.
func (t Totals) Equation() string {
	f := func(v int64) string { return ledger.FormatAmount(Currency, v) }
	return fmt.Sprintf("opening %s + payments %s - refunds %s - fees %s (charged %s - returned %s) - payouts %s + adjustments %s = closing %s",
		f(t.Opening), f(t.Payments), f(t.Refunds), f(t.Fees()), f(t.FeesCharged), f(t.FeesReturned), f(t.Payouts), f(t.Adjustments), f(t.Closing))
}

// DayTotals are one business day's totals.
type DayTotals struct {
	Day Day
	Totals
}

// Period is what a report covers.
type Period struct {
	// Start and End are the first and last business days reported. End is
	// the requested end_day, or the day of the as-of point when that cuts
	// the period short.
	Start, End Day
	// StartTime is 00:00 of Start in Asia/Ho_Chi_Minh. EndTime is the last
	// instant counted: the last microsecond of End, or the as-of point.
	// LedgerService.GetBalance as of EndTime gives Closing, once the period
	// is over.
	StartTime, EndTime time.Time
	// AsOfSeq is the last ledger entry counted: GetBalance as of this
	// sequence gives Closing, always.
	AsOfSeq int64
}

// MerchantSettlement is a merchant's settlement for a period.
type MerchantSettlement struct {
	Merchant string
	Market   string
	Period   Period
	Totals   Totals
	Days     []DayTotals
}

// MerchantQuery asks for a merchant's settlement.
type MerchantQuery struct {
	Merchant string
	// Start and End are days "YYYY-MM-DD" in Asia/Ho_Chi_Minh, inclusive;
	// End defaults to Start.
	Start, End string
	// AsOf, when set and inside the period, cuts the period at that point.
	AsOf ledger.AsOf
}

// movement is an account's four totals' change, or sum.
type movement struct{ dp, cp, dpo, cpo int64 }

func (m *movement) add(o movement) {
	m.dp += o.dp
	m.cp += o.cp
	m.dpo += o.dpo
	m.cpo += o.cpo
}

// kindMove is an account's posted movement by one settlement kind.
type kindMove struct{ entries, debits, credits int64 }

// figures are what one day brings to a payable (or to several summed).
type figures struct {
	payable     movement
	channels    channelSet
	payoutCount int64
	payouts     int64
}

// channelSet holds totals per channel. A payable sees a handful of channels
// at most, so a slice searched in order does without a map per day and
// merchant (a market report builds tens of thousands of them).
type channelSet []ChannelTotals

// get returns ch's totals, added empty if absent. The pointer is good until
// the next get.
func (s *channelSet) get(ch merchant.Channel) *ChannelTotals {
	for i := range *s {
		if (*s)[i].Channel == ch {
			return &(*s)[i]
		}
	}
	*s = append(*s, ChannelTotals{Channel: ch})
	return &(*s)[len(*s)-1]
}

func (s *channelSet) addAll(o channelSet) {
	for i := range o {
		s.get(o[i].Channel).add(&o[i])
	}
}

// ordered lists the channels in the order of merchant.Channels (any
// unknown channel last).
func (s channelSet) ordered() []ChannelTotals {
	var out []ChannelTotals
	for _, ch := range merchant.Channels {
		for _, c := range s {
			if c.Channel == ch {
				out = append(out, c)
			}
		}
	}
	for _, c := range s {
		if !c.Channel.Valid() {
			out = append(out, c)
		}
	}
	return out
}

// setChannels sets t's channels, and its payments, fees and refunds to
// theirs, summed.
func (t *Totals) setChannels(s channelSet) {
	t.Channels = s.ordered()
	for _, c := range t.Channels {
		t.PaymentCount += c.PaymentCount
		t.Payments += c.Payments
		t.FeesCharged += c.FeesCharged
		t.RefundCount += c.RefundCount
		t.Refunds += c.Refunds
		t.FeesReturned += c.FeesReturned
	}
}

// summarize walks the days from an opening balance, carrying each day's
// closing into the next day's opening, and returns the period's totals and
// each day's. A day without figures carries the balance unchanged.
func summarize(opening, openingPending int64, days []Day, byDay map[Day]*figures) (Totals, []DayTotals) {
	total := Totals{Opening: opening}
	var channels channelSet
	balance, pending := opening, openingPending
	out := make([]DayTotals, 0, len(days))
	for _, d := range days {
		f := byDay[d]
		if f == nil {
			f = &figures{}
		}
		t := Totals{Opening: balance}
		t.setChannels(f.channels)
		channels.addAll(f.channels)
		t.PayoutCount, t.Payouts = f.payoutCount, f.payouts
		// The payable is a liability: credits raise what is owed.
		t.Closing = balance + f.payable.cpo - f.payable.dpo
		pending += f.payable.cp
		t.Pending = pending
		t.Adjustments = t.Closing - t.Opening - (t.Payments - t.Refunds - t.Fees() - t.Payouts)
		balance = t.Closing
		out = append(out, DayTotals{Day: d, Totals: t})

		total.PaymentCount += t.PaymentCount
		total.Payments += t.Payments
		total.FeesCharged += t.FeesCharged
		total.RefundCount += t.RefundCount
		total.Refunds += t.Refunds
		total.FeesReturned += t.FeesReturned
		total.PayoutCount += t.PayoutCount
		total.Payouts += t.Payouts
		total.Adjustments += t.Adjustments
	}
	total.Channels = channels.ordered()
	total.Closing, total.Pending = balance, pending
	return total, out
}

// window is the part of the journal a report reads: whole days from the
// rollups, and the days from the one an as-of point falls in (in practice
// that day alone) from the journal, up to that point.
type window struct {
	start, end Day
	// fullEnd is the last day read from the rollups; none are when it is
	// before start.
	fullEnd Day
	// cut: the entries with sequence in (cutAfter, seq] are read from the
	// journal; they were recorded on cutDay or later.
	cut      bool
	cutDay   Day
	cutAfter int64
	// seq is the last entry counted.
	seq int64
	// lastDay is the last day reported; days after fullEnd and cutDay have
	// nothing in them.
	lastDay Day
	endTime time.Time
}

func (w window) days() []Day {
	days := make([]Day, 0, daysBetween(w.start, w.lastDay))
	for d := w.start; !d.After(w.lastDay); d = d.AddDays(1) {
		days = append(days, d)
	}
	return days
}

func (w window) period() Period {
	return Period{Start: w.start, End: w.lastDay, StartTime: w.start.Start(), EndTime: w.endTime, AsOfSeq: w.seq}
}

// recorded_at rises with the sequence (both are assigned under the ledger
// head's lock), so the newest entry before a time bounds everything before
// it.
const (
	seqBefore     = `SELECT COALESCE((SELECT seq FROM ledger_entries WHERE recorded_at < $1 ORDER BY recorded_at DESC, seq DESC LIMIT 1), 0)`
	seqAtOrBefore = `SELECT COALESCE((SELECT seq FROM ledger_entries WHERE recorded_at <= $1 ORDER BY recorded_at DESC, seq DESC LIMIT 1), 0)`
)

// resolveWindow decides what a report over [start, end] as of at reads.
// Without at, or with a point at or after the period's end, the period is
// whole: every day from the rollups, which a day's end makes final (an
// entry recorded later lands on a later day). A point inside the period
// cuts it there: the days before the point's day come from the rollups,
// the point's day from the journal up to the point, and the days after are
// not reported.
func resolveWindow(ctx context.Context, tx pgx.Tx, start, end Day, at ledger.AsOf) (window, error) {
	periodEnd := end.AddDays(1).Start()
	w := window{start: start, end: end, fullEnd: end, lastDay: end, endTime: periodEnd.Add(-time.Microsecond)}
	var head int64
	if err := tx.QueryRow(ctx, `SELECT (SELECT last_seq FROM ledger_head), (`+seqBefore+`)`, periodEnd).Scan(&head, &w.seq); err != nil {
		return window{}, fmt.Errorf("read the ledger head and the period's last entry: %w", err)
	}
	var seq int64
	var at0 time.Time
	switch {
	case at.Seq > head:
		return window{}, invalid("as_of.sequence", "is beyond the ledger's last sequence %d", head)
	case at.Seq > 0:
		if at.Seq >= w.seq {
			return w, nil
		}
		seq = at.Seq
		if err := tx.QueryRow(ctx, `SELECT recorded_at FROM ledger_entries WHERE seq = $1`, seq).Scan(&at0); err != nil {
			return window{}, fmt.Errorf("read entry %d: %w", seq, err)
		}
	case !at.Time.IsZero():
		if !at.Time.Before(w.endTime) {
			return w, nil
		}
		at0 = at.Time
		if err := tx.QueryRow(ctx, seqAtOrBefore, at0).Scan(&seq); err != nil {
			return window{}, fmt.Errorf("find the entry at %s: %w", at0, err)
		}
	default:
		return w, nil
	}
	day := DayOf(at0)
	if day.Before(start) {
		return window{}, invalid("as_of", "%s is before the period starts (%s 00:00 in Asia/Ho_Chi_Minh)", at0.Format(time.RFC3339Nano), start)
	}
	w.cut, w.cutDay, w.seq, w.lastDay, w.endTime, w.fullEnd = true, day, seq, day, at0.UTC(), day.AddDays(-1)
	if err := tx.QueryRow(ctx, seqBefore, day.Start()).Scan(&w.cutAfter); err != nil {
		return window{}, fmt.Errorf("find the first entry of %s: %w", day, err)
	}
	return w, nil
}

// reportPoint is the time a report over days up to end as of at is the
// state at: the period's end, or the point's time if it is earlier; none
// for a point given as a sequence, which names committed entries only.
func reportPoint(end Day, at ledger.AsOf) time.Time {
	if at.Seq > 0 {
		return time.Time{}
	}
	point := end.AddDays(1).Start()
	if !at.Time.IsZero() && at.Time.Before(point) {
		point = at.Time
	}
	return point
}

// settleTime is how long after a day's end its rollups are taken as final:
// an entry is timed before its transaction commits, so one recorded just
// before midnight may still be committing just after.
const settleTime = time.Minute

// pinWindow turns a whole window whose period may still gain entries into
// one that reads the days that may change from the journal, up to the
// window's sequence, so that reading it again later gives the same figures.
func pinWindow(ctx context.Context, tx pgx.Tx, w window) (window, error) {
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return window{}, err
	}
	settled := now.Add(-settleTime)
	if w.end.AddDays(1).Start().Before(settled) {
		return w, nil // over: its rollups are final
	}
	day := DayOf(settled)
	if day.Before(w.start) {
		day = w.start
	}
	if day.After(w.end) {
		day = w.end
	}
	w.cut, w.cutDay, w.fullEnd = true, day, day.AddDays(-1)
	if err := tx.QueryRow(ctx, seqBefore, day.Start()).Scan(&w.cutAfter); err != nil {
		return window{}, fmt.Errorf("find the first entry of %s: %w", day, err)
	}
	return w, nil
}

// reader reads a window's figures in one snapshot. Its reads are queued and
// sent together by read, in one round trip: a report makes four to eight of
// them, and on a busy server each round trip also waits for a CPU.
type reader struct {
	tx pgx.Tx
	w  window
	b  pgx.Batch
}

func (r *reader) hasFullDays() bool { return !r.w.fullEnd.Before(r.w.start) }

// read sends the queued reads and fills what they were queued into.
func (r *reader) read(ctx context.Context) error {
	return r.tx.SendBatch(ctx, &r.b).Close()
}

// each queues sql and hands every row to scan; what names the read in
// errors.
func (r *reader) each(what string, scan func(pgx.Rows) error, sql string, args ...any) {
	r.b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		return nil
	})
}

// onDay returns what byDay holds for day d, added empty if absent.
func onDay[V any](byDay map[Day]*V, d Day) *V {
	v := byDay[d]
	if v == nil {
		v = new(V)
		byDay[d] = v
	}
	return v
}

// dayValue returns what out holds for key on day d, added empty if absent.
func dayValue[K comparable, V any](out map[K]map[Day]*V, key K, d Day) *V {
	byDay := out[key]
	if byDay == nil {
		byDay = map[Day]*V{}
		out[key] = byDay
	}
	return onDay(byDay, d)
}

// openings queues the accounts' movements before the period, summed: their
// totals at its start. Summing every earlier day costs O(days of history)
// per account, which keeps a year's report to a few hundred rows an
// account; a monthly checkpoint table would bound it if histories grow
// long.
func (r *reader) openings(ids []int64, out map[int64]movement) {
	r.each("opening balances", func(rows pgx.Rows) error {
		var id int64
		var m movement
		if err := rows.Scan(&id, &m.dp, &m.cp, &m.dpo, &m.cpo); err != nil {
			return err
		}
		out[id] = m
		return nil
	}, `
SELECT account_id, sum(debits_pending)::bigint, sum(credits_pending)::bigint, sum(debits_posted)::bigint, sum(credits_posted)::bigint
  FROM ledger_daily_totals WHERE account_id = ANY($1) AND day < $2 GROUP BY account_id`, ids, r.w.start.date())
}

// movements queues the accounts' movements per day of the window.
func (r *reader) movements(ids []int64, market string, out map[int64]map[Day]*movement) {
	put := func(id int64, day time.Time, m movement) { dayValue(out, id, dayFromDate(day)).add(m) }
	if r.hasFullDays() {
		r.each("daily totals", func(rows pgx.Rows) error {
			var id int64
			var day time.Time
			var m movement
			if err := rows.Scan(&id, &day, &m.dp, &m.cp, &m.dpo, &m.cpo); err != nil {
				return err
			}
			put(id, day, m)
			return nil
		}, `
SELECT account_id, day, debits_pending, credits_pending, debits_posted, credits_posted
  FROM ledger_daily_totals WHERE account_id = ANY($1) AND day BETWEEN $2 AND $3`, ids, r.w.start.date(), r.w.fullEnd.date())
	}
	if r.w.cut {
		r.each(r.w.cutDay.String()+" from the journal", func(rows pgx.Rows) error {
			var id int64
			var day time.Time
			var m movement
			var entries int32
			if err := rows.Scan(&id, &day, &m.dp, &m.cp, &m.dpo, &m.cpo, &entries); err != nil {
				return err
			}
			put(id, day, m)
			return nil
		}, journalDailyTotals, r.w.cutAfter, r.w.seq, market, ids)
	}
}

// kindMoves queues the accounts' posted movements of one settlement kind
// per day of the window.
func (r *reader) kindMoves(ids []int64, kind, market string, out map[int64]map[Day]*kindMove) {
	put := func(id int64, day time.Time, m kindMove) {
		k := dayValue(out, id, dayFromDate(day))
		k.entries += m.entries
		k.debits += m.debits
		k.credits += m.credits
	}
	if r.hasFullDays() {
		r.each(kind+" totals", func(rows pgx.Rows) error {
			var id int64
			var day time.Time
			var m kindMove
			if err := rows.Scan(&id, &day, &m.entries, &m.debits, &m.credits); err != nil {
				return err
			}
			put(id, day, m)
			return nil
		}, `
SELECT account_id, day, entries, debits_posted, credits_posted
  FROM settlement_daily_totals WHERE account_id = ANY($1) AND kind = $2 AND day BETWEEN $3 AND $4`, ids, kind, r.w.start.date(), r.w.fullEnd.date())
	}
	if r.w.cut {
		r.each(kind+" of "+r.w.cutDay.String()+" from the journal", func(rows pgx.Rows) error {
			var id int64
			var k string
			var day time.Time
			var m kindMove
			if err := rows.Scan(&id, &k, &day, &m.entries, &m.debits, &m.credits); err != nil {
				return err
			}
			if k == kind {
				put(id, day, m)
			}
			return nil
		}, journalKindTotals, r.w.cutAfter, r.w.seq, market, ids)
	}
}

const (
	merchantPaymentTotals = `
SELECT merchant, channel, day, payments, gross, fees, refunds, refunded, fees_returned
  FROM payment_daily_totals WHERE merchant = $1 AND day BETWEEN $2 AND $3`
	// A market's, summed in one scan per merchant and channel (day NULL)
	// and per day and channel (merchant NULL): a market report needs the
	// merchants' periods and the market's days, not every merchant's days,
	// which are twenty thousand rows for the busiest market over a month.
	marketPaymentTotals = `
SELECT merchant, day, channel, sum(payments)::bigint, sum(gross)::bigint, sum(fees)::bigint,
       sum(refunds)::bigint, sum(refunded)::bigint, sum(fees_returned)::bigint
  FROM payment_daily_totals WHERE market = $1 AND day BETWEEN $2 AND $3
 GROUP BY GROUPING SETS ((merchant, channel), (day, channel))`
)

// scanPaymentTotals reads a row of merchantPaymentTotals or
// journalPaymentTotals.
func scanPaymentTotals(rows pgx.Rows) (string, Day, ChannelTotals, error) {
	var m, ch string
	var day time.Time
	var c ChannelTotals
	err := rows.Scan(&m, &ch, &day, &c.PaymentCount, &c.Payments, &c.FeesCharged, &c.RefundCount, &c.Refunds, &c.FeesReturned)
	c.Channel = merchant.Channel(ch)
	return m, dayFromDate(day), c, err
}

// payments queues one merchant's posted payments and refunds per day and
// channel of the window into out.
func (r *reader) payments(market, merchantCode string, out map[Day]*figures) {
	scan := func(rows pgx.Rows) error {
		_, d, c, err := scanPaymentTotals(rows)
		if err == nil {
			onDay(out, d).channels.get(c.Channel).add(&c)
		}
		return err
	}
	if r.hasFullDays() {
		r.each("payment totals", scan, merchantPaymentTotals, merchantCode, r.w.start.date(), r.w.fullEnd.date())
	}
	if r.w.cut {
		r.each("payments of "+r.w.cutDay.String()+" from the journal", scan, journalPaymentTotals, r.w.cutAfter, r.w.seq, market, merchantCode)
	}
}

// marketPayments queues a market's posted payments and refunds of the
// window, summed per merchant and channel into lines and per day and
// channel into days.
func (r *reader) marketPayments(market string, lines map[string]channelSet, days map[Day]*figures) {
	addLine := func(m string, c *ChannelTotals) {
		s := lines[m]
		s.get(c.Channel).add(c)
		lines[m] = s
	}
	addDay := func(d Day, c *ChannelTotals) { onDay(days, d).channels.get(c.Channel).add(c) }
	if r.hasFullDays() {
		r.each("payment totals", func(rows pgx.Rows) error {
			var m *string
			var day *time.Time
			var ch string
			var c ChannelTotals
			if err := rows.Scan(&m, &day, &ch, &c.PaymentCount, &c.Payments, &c.FeesCharged, &c.RefundCount, &c.Refunds, &c.FeesReturned); err != nil {
				return err
			}
			c.Channel = merchant.Channel(ch)
			switch {
			case m != nil:
				addLine(*m, &c)
			case day != nil:
				addDay(dayFromDate(*day), &c)
			default:
				return fmt.Errorf("a row of %s totals names neither a merchant nor a day", ch)
			}
			return nil
		}, marketPaymentTotals, market, r.w.start.date(), r.w.fullEnd.date())
	}
	if r.w.cut {
		r.each("payments of "+r.w.cutDay.String()+" from the journal", func(rows pgx.Rows) error {
			m, d, c, err := scanPaymentTotals(rows)
			if err == nil {
				addLine(m, &c)
				addDay(d, &c)
			}
			return err
		}, journalPaymentTotals, r.w.cutAfter, r.w.seq, market, "")
	}
}

// addPayableFigures adds a payable's movements and payouts into into, by
// day: into holds the payable's payments already, or the market's.
func addPayableFigures(into map[Day]*figures, moves map[Day]*movement, payouts map[Day]*kindMove) {
	for d, m := range moves {
		onDay(into, d).payable.add(*m)
	}
	for d, k := range payouts {
		f := onDay(into, d)
		f.payoutCount += k.entries
		f.payouts += k.debits
	}
}

// periodTotals are a payable's totals over the window's days, given its
// payments and refunds per channel summed over them (pays): summarize's
// total, without the days. A market report needs the days of the market
// only, not of every merchant line.
func periodTotals(w window, opening, openingPending int64, moves map[Day]*movement, pays channelSet, payouts map[Day]*kindMove) Totals {
	in := func(d Day) bool { return !d.Before(w.start) && !d.After(w.lastDay) }
	t := Totals{Opening: opening}
	var payable movement
	for d, m := range moves {
		if in(d) {
			payable.add(*m)
		}
	}
	t.setChannels(pays)
	for d, k := range payouts {
		if in(d) {
			t.PayoutCount += k.entries
			t.Payouts += k.debits
		}
	}
	// The payable is a liability: credits raise what is owed.
	t.Closing = opening + payable.cpo - payable.dpo
	t.Pending = openingPending + payable.cp
	t.Adjustments = t.Closing - t.Opening - (t.Payments - t.Refunds - t.Fees() - t.Payouts)
	return t
}

// snapshot begins a report's read once every entry recorded before its
// point has committed: a period, or an as-of point, that ended a moment
// ago then counts an entry recorded just before its end, still committing
// when the report was asked, as it does when asked later.
func (s *Service) snapshot(ctx context.Context, point time.Time) (pgx.Tx, error) {
	if err := s.ledger.AwaitRecorded(ctx, point); err != nil {
		return nil, err
	}
	return s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// accountIDs maps account codes to ids; codes without an account are
// absent.
func accountIDs(ctx context.Context, tx pgx.Tx, codes []string) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT code, id FROM ledger_accounts WHERE code = ANY($1)`, codes)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64, len(codes))
	for rows.Next() {
		var code string
		var id int64
		if err := rows.Scan(&code, &id); err != nil {
			return nil, fmt.Errorf("read accounts: %w", err)
		}
		out[code] = id
	}
	return out, rows.Err()
}

// MerchantSettlement reports a merchant's settlement for a period, in total
// and per day. It reads the rollups of the merchant's payable account, its
// payment totals and its payouts: O(days), whatever the number of payments.
func (s *Service) MerchantSettlement(ctx context.Context, q MerchantQuery) (MerchantSettlement, error) {
	if q.Merchant == "" {
		return MerchantSettlement{}, invalid("merchant", "is required")
	}
	start, end, err := s.period(q.Start, q.End)
	if err != nil {
		return MerchantSettlement{}, err
	}
	if err := checkAsOf(q.AsOf); err != nil {
		return MerchantSettlement{}, err
	}
	m, err := s.merchants.GetMerchant(ctx, q.Merchant)
	if err != nil {
		return MerchantSettlement{}, ledger.RenameField(err, "code", "merchant")
	}
	tx, err := s.snapshot(ctx, reportPoint(end, q.AsOf))
	if err != nil {
		return MerchantSettlement{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	w, err := resolveWindow(ctx, tx, start, end, q.AsOf)
	if err != nil {
		return MerchantSettlement{}, err
	}
	code := merchant.PayableAccount(m.Code)
	ids, err := accountIDs(ctx, tx, []string{code})
	if err != nil {
		return MerchantSettlement{}, err
	}
	id, ok := ids[code]
	if !ok {
		return MerchantSettlement{}, fmt.Errorf("merchant %s has no payable account %s", m.Code, code)
	}
	r := reader{tx: tx, w: w}
	open, moves, payouts := map[int64]movement{}, map[int64]map[Day]*movement{}, map[int64]map[Day]*kindMove{}
	byDay := map[Day]*figures{} // the payments' figures; the payable's are added below
	r.openings([]int64{id}, open)
	r.movements([]int64{id}, m.Market, moves)
	r.payments(m.Market, m.Code, byDay)
	r.kindMoves([]int64{id}, KindPayout, m.Market, payouts)
	if err := r.read(ctx); err != nil {
		return MerchantSettlement{}, err
	}
	o := open[id]
	addPayableFigures(byDay, moves[id], payouts[id])
	totals, days := summarize(o.cpo-o.dpo, o.cp, w.days(), byDay)
	return MerchantSettlement{Merchant: m.Code, Market: m.Market, Period: w.period(), Totals: totals, Days: days}, nil
}
