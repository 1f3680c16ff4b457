package main

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/seeds"
	"github.com/choledger/choledger/settlement"
)

// What fill-history's days hold and how they are sent to the ledger: the
// payments drawn for each day with what follows them, as events in time
// order, dispatched on the virtual clock (clock.go) to RecordMany calls and
// single calls.

// The flows of a history, in per mille of payments, and how often a posted
// payment is later refunded.
type histFlow uint8

const (
	flowDirect    histFlow = iota // the bank reports a payment nobody recorded
	flowNotified                  // the stall records it, the bank's notification (same reference) posts it
	flowConfirmed                 // the stall records it, the bank confirms it by payment id (ConfirmPayment)
	flowRejected                  // the stall records it, the bank rejects it
	flowExpired                   // the stall records it, nobody confirms it: it expires after a day
)

var flowNames = []string{"bank_direct", "stall_notified", "stall_confirmed", "stall_rejected", "stall_expired"}

var flowShares = []int{560, 320, 60, 30, 30}

const (
	refundPerMille     = 15
	fullRefundPercent  = 70
	pendingTimeout     = 24 * time.Hour // ledgerd's LEDGER_PAYMENT_TIMEOUT
	callClockStep      = 10 * time.Second
	expirySweepEvery   = 10 * time.Minute
	providerSettleHour = 10
)

// marketHours weighs the hours from 04:00 to 19:59: wholesale before dawn,
// the morning rush, a quiet noon, the afternoon market.
var marketHours = []float64{3, 8, 12, 13, 11, 8, 6, 5, 3, 3, 4, 6, 8, 7, 4, 2}

const firstMarketHour = 4

// channelWeights: most stalls are paid by VietQR transfer; e-wallets take
// the rest, where the merchant accepts them.
var channelWeights = map[merchant.Channel]float64{
	merchant.ChannelVietQR: 70, merchant.ChannelViettelMoney: 8, merchant.ChannelVNPTMoney: 4,
	merchant.ChannelMobifoneMoney: 3, merchant.ChannelMoMo: 10, merchant.ChannelZaloPay: 5,
}

// settlementBanks: each market settles at one bank.
var settlementBanks = []string{"vcb", "bidv", "agribank", "vietinbank"}

// histMerchant is a merchant a history pays.
type histMerchant struct {
	m        merchant.Merchant
	channels []merchant.Channel
	chCum    []float64
}

func (hm *histMerchant) channel(r *rand.Rand) merchant.Channel {
	x := r.Float64() * hm.chCum[len(hm.chCum)-1]
	i, _ := slices.BinarySearch(hm.chCum, x)
	return hm.channels[min(i, len(hm.channels)-1)]
}

// hpay is one payment of the history.
type hpay struct {
	idx    int
	at     time.Time // when the customer paid
	m      *histMerchant
	ch     merchant.Channel
	amount int64
	flow   histFlow
	refund int64 // to refund later; 0 for none, amount for all

	id    string
	state atomic.Int32
}

const (
	stFailed   = -1
	stPlanned  = 0
	stRecorded = 1 // pending, waiting for the bank
	stPosted   = 2
)

// key is the idempotency key of one of the payment's writes: the record
// (no suffix) or the bank's answer or refund (a suffix after a dot).
func (p *hpay) key(suffix string) string {
	k := "h" + strconv.FormatInt(int64(p.idx), 36)
	if suffix != "" {
		k += "." + suffix
	}
	return k
}

// ref is the provider's reference in the style of each provider, with an
// H that the demo seed's references never have.
func (p *hpay) ref() string {
	d := p.at.In(ict)
	var prefix string
	switch p.ch {
	case merchant.ChannelVietQR:
		prefix = "FT" + d.Format("06") + fmt.Sprintf("%03d", d.YearDay())
	case merchant.ChannelViettelMoney:
		prefix = "MMVT" + d.Format("060102")
	case merchant.ChannelVNPTMoney:
		prefix = "MMVN" + d.Format("060102")
	case merchant.ChannelMobifoneMoney:
		prefix = "MMMF" + d.Format("060102")
	case merchant.ChannelMoMo:
		prefix = "MOMO" + d.Format("060102")
	default:
		prefix = "ZP" + d.Format("060102")
	}
	return fmt.Sprintf("%sH%07d", prefix, p.idx)
}

// legs is how many postings a payment's entry has: the clearing debit, the
// merchant's net and the fee, less any zero leg.
func legs(amount, fee int64) int64 {
	n := int64(1)
	if amount-fee > 0 {
		n++
	}
	if fee > 0 {
		n++
	}
	return n
}

type evKind uint8

const (
	evRecord evKind = iota
	evNotify
	evConfirm
	evReject
	evRefund
	evSettle
	evExpire
)

type event struct {
	at   time.Time
	seq  int64
	kind evKind
	p    *hpay
	day  settlement.Day // evSettle: the day settled
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// history is a fill in progress.
type history struct {
	cfg               historyConfig
	logf              func(string, ...any)
	firstDay, lastDay settlement.Day
	end               time.Time

	data      seeds.Dataset
	picker    *merchantPicker
	merchants map[string]*histMerchant
	markets   []string
	banks     map[string]string

	clock    *virtualClock
	pool     *pgxpool.Pool
	ledger   *ledger.Ledger
	store    *merchant.Store
	payments *payment.Service
	settle   *settlement.Service

	rng      *rand.Rand
	perDay   []int
	nextIdx  int
	seq      int64
	events   eventHeap
	waiting  []*event
	chunk    []*event
	chunkAt  time.Time // first event of the chunk
	chunkEnd time.Time // latest
	bulk     chan struct{}
	calls    chan func(context.Context)
	inflight sync.WaitGroup
	callers  sync.WaitGroup
	done     atomic.Int64 // completed bulk calls and single calls
	seen     int64
	retried  time.Time
	expiring atomic.Bool

	cancel context.CancelFunc
	errMu  sync.Mutex
	errs   []string

	recorded             [5]atomic.Int64
	posted, refunds      atomic.Int64
	settlements, expired atomic.Int64
	rejected             atomic.Int64
}

func newHistory(ctx context.Context, cfg historyConfig, firstDay, lastDay settlement.Day, logf func(string, ...any)) (*history, error) {
	h := &history{
		cfg: cfg, logf: logf, firstDay: firstDay, lastDay: lastDay, end: lastDay.AddDays(1).Start(),
		data: seeds.Generate(), merchants: map[string]*histMerchant{}, banks: map[string]string{},
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x686973746f7279)),
		bulk: make(chan struct{}, cfg.BulkInFlight), calls: make(chan func(context.Context), cfg.Callers),
	}
	h.picker = pickerOf(h.data)
	for i, mk := range h.data.Markets {
		h.markets = append(h.markets, mk.Code)
		h.banks[mk.Code] = settlementBanks[i%len(settlementBanks)]
	}
	for _, sm := range h.data.Merchants {
		hm := &histMerchant{m: sm.Definition()}
		var total float64
		for _, ch := range hm.m.Channels {
			total += channelWeights[ch]
			hm.channels, hm.chCum = append(hm.channels, ch), append(hm.chCum, total)
		}
		h.merchants[sm.Code] = hm
	}

	var err error
	if h.clock, err = startVirtualClock(ctx, cfg.DatabaseURL, firstDay.Start()); err != nil {
		return nil, err
	}
	shadowed, err := withVirtualClock(cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if h.pool, err = pg.Connect(ctx, shadowed, int32(cfg.DBConns)); err != nil {
		return nil, err
	}
	var now time.Time
	if err := h.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil || !now.Equal(h.clock.Now()) {
		return nil, fmt.Errorf("the virtual clock does not shadow clock_timestamp() (%v, %v): the history would be recorded today", now, err)
	}
	// ledgerd's wiring (cmd/ledgerd/main.go open), on the virtual clock.
	// The sweeper is off: the fill runs ledger.ExpireDue itself as the
	// virtual time passes, so expiries land when they are due rather than
	// when a real second has passed.
	h.ledger = ledger.New(h.pool, ledger.Options{
		MaxBatch: cfg.MaxBatch, Committers: cfg.Committers, ExpiryInterval: -1, Now: h.clock.Now,
		Projectors: settlement.Projectors(),
	})
	h.store = merchant.NewStore(h.pool, h.ledger)
	h.payments = payment.NewService(h.pool, h.ledger, h.store, payment.Options{PendingTimeout: pendingTimeout, Now: h.clock.Now})
	h.settle = settlement.NewService(h.pool, h.ledger, h.store, settlement.Options{Now: h.clock.Now})
	return h, nil
}

func (h *history) close(ctx context.Context) {
	if h.ledger != nil {
		h.ledger.Close()
	}
	if h.pool != nil {
		h.pool.Close()
	}
	if h.clock != nil {
		if err := h.clock.Drop(ctx); err != nil {
			h.logf("%v", err)
		}
	}
}

func (h *history) fail(format string, args ...any) {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	if len(h.errs) >= 20 && h.cancel != nil {
		h.cancel()
	}
}

func (h *history) failures() []string {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	return slices.Clone(h.errs)
}

// fill creates the markets and merchants, then records the days.
func (h *history) fill(ctx context.Context, sum *historySummary) error {
	ctx, h.cancel = context.WithCancel(ctx)
	defer h.cancel()

	start := time.Now()
	if err := h.createMerchants(ctx); err != nil {
		return err
	}
	sum.Markets, sum.Merchants = len(h.data.Markets), len(h.data.Merchants)
	sum.SetupSeconds = time.Since(start).Seconds()
	h.logf("%d markets and %d merchants created in %s", sum.Markets, sum.Merchants, secs(sum.SetupSeconds))

	total := h.planPayments()
	sum.Planned = int64(total)
	h.logf("%s payments over %d days (%s to %s) for at least %s postings; %d RecordMany calls of %d in flight, %d callers, %d committers of up to %d",
		group(int64(total)), h.cfg.Days, h.firstDay, h.lastDay, group(h.cfg.Postings), h.cfg.BulkInFlight, h.cfg.BulkSize, h.cfg.Callers, h.cfg.Committers, h.cfg.MaxBatch)

	for range h.cfg.Callers {
		h.callers.Add(1)
		go func() {
			defer h.callers.Done()
			for fn := range h.calls {
				fn(ctx)
				h.done.Add(1)
				h.inflight.Done()
			}
		}()
	}
	progressDone := make(chan struct{})
	go h.progress(progressDone)

	start = time.Now()
	err := h.days(ctx)
	h.flush(ctx)
	h.inflight.Wait()
	close(h.calls)
	h.callers.Wait()
	close(progressDone)
	sum.FillSeconds = time.Since(start).Seconds()
	for f := range flowNames {
		sum.ByFlow[flowNames[f]] = h.recorded[f].Load()
	}
	sum.Refunds, sum.Settlements, sum.Expired = h.refunds.Load(), h.settlements.Load(), h.expired.Load()

	if fs := h.failures(); len(fs) > 0 {
		for _, f := range fs {
			fmt.Fprintln(os.Stderr, "ledgerbench fill-history: FAILED:", f)
		}
		return fmt.Errorf("%d writes of the history failed", len(fs))
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// createMerchants creates the demo data set's markets and merchants, as
// seeds.Loader does, without its payments.
func (h *history) createMerchants(ctx context.Context) error {
	for _, m := range h.data.Markets {
		_, err := h.store.CreateMarket(ctx, m.Definition())
		if err != nil && !errors.Is(err, merchant.ErrMarketExists) {
			return fmt.Errorf("market %s: %w", m.Code, err)
		}
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	errc := make(chan error, 1)
	for range h.cfg.Callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(h.data.Merchants) || ctx.Err() != nil {
					return
				}
				sm := h.data.Merchants[i]
				if _, err := h.store.CreateMerchant(ctx, h.merchants[sm.Code].m); err != nil && !errors.Is(err, merchant.ErrMerchantExists) {
					select {
					case errc <- fmt.Errorf("merchant %s: %w", sm.Code, err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return ctx.Err()
}

// drawPayment draws a payment's merchant, channel, amount and flow.
func (h *history) drawPayment(r *rand.Rand) *hpay {
	s := h.picker.pick(r)
	hm := h.merchants[s.code]
	p := &hpay{m: hm, ch: hm.channel(r), amount: ticketAmount(r)}
	x := r.IntN(1000)
	for f, share := range flowShares {
		if x < share {
			p.flow = histFlow(f)
			break
		}
		x -= share
	}
	if p.flow <= flowConfirmed && r.IntN(1000) < refundPerMille {
		p.refund = p.amount
		if r.IntN(100) >= fullRefundPercent {
			p.refund = max(p.amount/2000*1000, 1000)
		}
	}
	return p
}

// postingsOf is how many postings a payment's entries will have.
func postingsOf(p *hpay) int64 {
	fee := p.m.m.Fees.Fee(p.ch, p.amount)
	n := legs(p.amount, fee)
	if p.flow == flowNotified || p.flow == flowConfirmed {
		n *= 2 // the pending entry, then the confirmation posts its legs
	}
	if p.refund > 0 {
		back := fee
		if p.refund < p.amount {
			back = fee * p.refund / p.amount
		}
		n += legs(p.refund, back)
	}
	return n
}

// planPayments sizes the history: the payments whose entries make at
// least the postings asked for (estimated from a sample of the same
// draws, plus a margin), spread over the days.
func (h *history) planPayments() int {
	r := rand.New(rand.NewPCG(h.cfg.Seed, 1))
	const sample = 100_000
	var postings int64
	for range sample {
		postings += postingsOf(h.drawPayment(r))
	}
	perPayment := float64(postings) / sample
	total := int(math.Ceil(float64(h.cfg.Postings) / perPayment * 1.01))
	weights := dayWeights(h.firstDay, h.cfg.Days, r)
	var wsum float64
	for _, w := range weights {
		wsum += w
	}
	h.perDay = make([]int, h.cfg.Days)
	left := total
	for i, w := range weights {
		h.perDay[i] = int(float64(total) * w / wsum)
		left -= h.perDay[i]
	}
	h.perDay[len(h.perDay)-1] += left
	return total
}

// dayWeights: more stalls take cashless payments each week (the last day
// takes about half again the first's), weekends are busier, and no two days
// are alike.
func dayWeights(first settlement.Day, days int, r *rand.Rand) []float64 {
	out := make([]float64, days)
	for i := range out {
		w := 0.8 + 0.4*float64(i)/float64(max(days-1, 1))
		switch first.AddDays(i).Start().In(ict).Weekday() {
		case time.Saturday:
			w *= 1.15
		case time.Sunday:
			w *= 1.25
		}
		out[i] = w * min(max(1+0.06*r.NormFloat64(), 0.85), 1.15)
	}
	return out
}

func (h *history) push(e *event) {
	h.seq++
	e.seq = h.seq
	heap.Push(&h.events, e)
}

// planDay draws day d's payments, in time order, and schedules what
// follows each: the bank's answer minutes later, a refund hours or days
// later; the providers' settlement of the day before at 10:00; and expiry
// sweeps every ten minutes.
func (h *history) planDay(d int) {
	day := h.firstDay.AddDays(d)
	start := day.Start()
	n := h.perDay[d]
	var hourCum []float64
	var total float64
	for _, w := range marketHours {
		total += w
		hourCum = append(hourCum, total)
	}
	offsets := make([]time.Duration, n)
	for i := range offsets {
		hr, _ := slices.BinarySearch(hourCum, h.rng.Float64()*total)
		offsets[i] = time.Duration(firstMarketHour+min(hr, len(marketHours)-1))*time.Hour + time.Duration(h.rng.Int64N(int64(time.Hour)))
	}
	slices.Sort(offsets)
	within := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(h.rng.Int64N(int64(hi-lo))) }
	for _, off := range offsets {
		p := h.drawPayment(h.rng)
		p.idx = h.nextIdx
		h.nextIdx++
		p.at = start.Add(off).Truncate(time.Microsecond)
		h.push(&event{at: p.at, kind: evRecord, p: p})
		postedAt := p.at
		switch p.flow {
		case flowNotified:
			postedAt = p.at.Add(within(20*time.Second, 10*time.Minute))
			h.push(&event{at: postedAt, kind: evNotify, p: p})
		case flowConfirmed:
			postedAt = p.at.Add(within(30*time.Second, 15*time.Minute))
			h.push(&event{at: postedAt, kind: evConfirm, p: p})
		case flowRejected:
			h.push(&event{at: p.at.Add(within(time.Minute, 15*time.Minute)), kind: evReject, p: p})
		}
		if p.refund > 0 {
			delay := within(10*time.Minute, 6*time.Hour)
			if h.rng.IntN(100) < 40 {
				delay = within(24*time.Hour, 72*time.Hour)
			}
			h.push(&event{at: postedAt.Add(delay), kind: evRefund, p: p})
		}
	}
	if d > 0 {
		h.push(&event{at: start.Add(providerSettleHour * time.Hour), kind: evSettle, day: day.AddDays(-1)})
	}
	for t := start; t.Before(day.AddDays(1).Start()); t = t.Add(expirySweepEvery) {
		h.push(&event{at: t, kind: evExpire})
	}
}

// days dispatches the events in time order, day by day; whatever is
// scheduled after the history's end (a late refund) is dropped.
func (h *history) days(ctx context.Context) error {
	for d := range h.cfg.Days {
		h.planDay(d)
		dayEnd := h.firstDay.AddDays(d + 1).Start()
		for len(h.events) > 0 && h.events[0].at.Before(dayEnd) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.dispatch(ctx, heap.Pop(&h.events).(*event))
			h.retryWaiting(ctx, false)
		}
	}
	// What still waits for its payment's record: let the records land.
	for range 100 {
		if len(h.waiting) == 0 || ctx.Err() != nil {
			break
		}
		h.flush(ctx)
		h.inflight.Wait()
		h.retryWaiting(ctx, true)
	}
	if len(h.waiting) > 0 {
		h.fail("%d writes still wait for their payment's record at the end", len(h.waiting))
	}
	return nil
}

// ready reports whether the payment has reached the state the event needs;
// drop, that it never will.
func ready(p *hpay, need int32) (ok, drop bool) {
	s := p.state.Load()
	return s >= need, s == stFailed
}

func (h *history) dispatch(ctx context.Context, e *event) {
	// A chunk spans a few virtual minutes at most, so that what it records
	// lands close to when it happened, never on a later day.
	if len(h.chunk) > 0 && e.at.Sub(h.chunkAt) > h.cfg.ChunkSpan {
		h.flush(ctx)
	}
	need := int32(stPlanned)
	switch e.kind {
	case evNotify, evConfirm, evReject:
		need = stRecorded
	case evRefund:
		need = stPosted
	}
	if e.p != nil && need > stPlanned {
		ok, drop := ready(e.p, need)
		if drop {
			return
		}
		if !ok {
			h.waiting = append(h.waiting, e)
			return
		}
	}
	switch e.kind {
	case evRecord, evNotify:
		if len(h.chunk) == 0 {
			h.chunkAt = e.at
		}
		h.chunk = append(h.chunk, e)
		if e.at.After(h.chunkEnd) {
			h.chunkEnd = e.at
		}
		if len(h.chunk) >= h.cfg.BulkSize {
			h.flush(ctx)
		}
	case evConfirm:
		h.call(ctx, e.at, func(ctx context.Context) { h.confirm(ctx, e.p) })
	case evReject:
		h.call(ctx, e.at, func(ctx context.Context) { h.reject(ctx, e.p) })
	case evRefund:
		h.call(ctx, e.at, func(ctx context.Context) { h.refund(ctx, e.p) })
	case evSettle:
		h.settleDay(ctx, e)
	case evExpire:
		if h.expiring.CompareAndSwap(false, true) {
			h.call(ctx, e.at, h.expire)
		}
	}
}

// retryWaiting dispatches the events whose payment has since reached the
// state they need, at the current virtual time. It looks only when
// something completed since it last looked, and not more often than every
// 20 ms, unless forced.
func (h *history) retryWaiting(ctx context.Context, force bool) {
	if len(h.waiting) == 0 {
		return
	}
	if d := h.done.Load(); force || (d != h.seen && time.Since(h.retried) > 20*time.Millisecond) {
		h.seen, h.retried = d, time.Now()
	} else {
		return
	}
	list := h.waiting
	h.waiting = nil
	now := h.clock.Now()
	for _, e := range list {
		if e.at.Before(now) {
			e.at = now
		}
		h.dispatch(ctx, e)
	}
}

// flush sends the chunk as one RecordMany call, once the clock shows its
// latest event's time.
func (h *history) flush(ctx context.Context) {
	if len(h.chunk) == 0 {
		return
	}
	items := h.chunk
	h.chunk = nil
	if err := h.clock.Advance(ctx, h.chunkEnd); err != nil {
		h.fail("%v", err)
		return
	}
	select {
	case h.bulk <- struct{}{}:
	case <-ctx.Done():
		return
	}
	h.inflight.Add(1)
	go func() {
		defer func() {
			<-h.bulk
			h.done.Add(1)
			h.inflight.Done()
		}()
		h.record(ctx, items)
	}()
}

// call runs fn on a caller, once the clock shows at (to within a few
// virtual seconds, to spare the clock an update per call).
func (h *history) call(ctx context.Context, at time.Time, fn func(context.Context)) {
	if at.Sub(h.clock.Now()) >= callClockStep {
		if err := h.clock.Advance(ctx, at); err != nil {
			h.fail("%v", err)
			return
		}
	}
	h.inflight.Add(1)
	select {
	case h.calls <- fn:
	case <-ctx.Done():
		h.inflight.Done()
	}
}

// record sends stall records, bank-direct payments and bank notifications
// in one RecordMany call, as a bank integration or a stall app syncing
// would, and checks each answer.
func (h *history) record(ctx context.Context, items []*event) {
	reqs := make([]payment.RecordRequest, len(items))
	for i, e := range items {
		p := e.p
		r := payment.RecordRequest{
			Key: p.key(""), Merchant: p.m.m.Code, Channel: p.ch, Amount: decimal.NewFromInt(p.amount),
			Source: payment.SourceStall, ProviderRef: p.ref(), OccurredAt: p.at,
		}
		switch {
		case e.kind == evNotify:
			// The bank's notification of a payment the stall recorded with
			// the transfer's reference: it posts the pending payment.
			r.Key, r.Source, r.OccurredAt = p.key("n"), payment.SourceBank, e.at
		case p.flow == flowDirect:
			r.Source = payment.SourceBank
		case p.flow == flowConfirmed:
			r.ProviderRef = "" // the bank names it by payment id instead
		}
		reqs[i] = r
	}
	for i, o := range h.payments.RecordMany(ctx, reqs) {
		e, p := items[i], items[i].p
		switch {
		case o.Err != nil:
			h.fail("%s %s (%s, %s đồng): %v", map[bool]string{true: "notify", false: "record"}[e.kind == evNotify], reqs[i].Key, p.m.m.Code, group(p.amount), o.Err)
			p.state.Store(stFailed)
		case o.Replayed:
			h.fail("%s: replayed on a fresh key (payment %s, %s)", reqs[i].Key, o.Payment.ID, o.Payment.Status)
			p.state.Store(stFailed)
		case e.kind == evNotify && o.Payment.Status != payment.StatusConfirmed:
			h.fail("%s: the bank's notification left payment %s %s", reqs[i].Key, o.Payment.ID, o.Payment.Status)
			p.state.Store(stFailed)
		case e.kind == evNotify:
			h.posted.Add(1)
			p.state.Store(stPosted)
		default:
			p.id = o.Payment.ID
			h.recorded[p.flow].Add(1)
			if p.flow == flowDirect {
				p.state.Store(stPosted)
			} else {
				p.state.Store(stRecorded)
			}
		}
	}
}

func (h *history) confirm(ctx context.Context, p *hpay) {
	pay, replayed, err := h.payments.Confirm(ctx, payment.ConfirmRequest{Key: p.key("c"), PaymentID: p.id, ProviderRef: p.ref()})
	if err == nil && (replayed || pay.Status != payment.StatusConfirmed) {
		err = fmt.Errorf("answered %s, replayed %v", pay.Status, replayed)
	}
	if err != nil {
		h.fail("confirm %s: %v", p.id, err)
		p.state.Store(stFailed)
		return
	}
	h.posted.Add(1)
	p.state.Store(stPosted)
}

func (h *history) reject(ctx context.Context, p *hpay) {
	pay, replayed, err := h.payments.Reject(ctx, payment.RejectRequest{Key: p.key("x"), PaymentID: p.id, Reason: "declined by the payer's bank"})
	if err == nil && (replayed || pay.Status != payment.StatusRejected) {
		err = fmt.Errorf("answered %s, replayed %v", pay.Status, replayed)
	}
	if err != nil {
		h.fail("reject %s: %v", p.id, err)
		return
	}
	h.rejected.Add(1)
}

func (h *history) refund(ctx context.Context, p *hpay) {
	var amount *decimal.Decimal // nil: all of it
	if p.refund < p.amount {
		a := decimal.NewFromInt(p.refund)
		amount = &a
	}
	_, _, replayed, err := h.payments.Refund(ctx, payment.RefundRequest{Key: p.key("r"), PaymentID: p.id, Amount: amount, Reason: "the customer brought the goods back"})
	if err == nil && replayed {
		err = errors.New("replayed on a fresh key")
	}
	if err != nil {
		h.fail("refund %s (%s of %s đồng): %v", p.id, group(p.refund), group(p.amount), err)
		return
	}
	h.refunds.Add(1)
}

// expire voids the pending payments whose time is up, as ledgerd's sweeper
// does every second.
func (h *history) expire(ctx context.Context) {
	defer h.expiring.Store(false)
	for range 100 {
		n, err := h.ledger.ExpireDue(ctx)
		if err != nil {
			h.fail("expire: %v", err)
			return
		}
		h.expired.Add(int64(n))
		if n == 0 {
			return
		}
	}
}

// settleDay has every provider pay each market what it owed at the end of
// the day before (less anything refunded since), into the market's
// settlement bank, as the morning's settlement run does.
func (h *history) settleDay(ctx context.Context, e *event) {
	// The day before must be complete in the rollups.
	h.flush(ctx)
	h.inflight.Wait()
	if err := h.clock.Advance(ctx, e.at); err != nil {
		h.fail("%v", err)
		return
	}
	type clearing struct {
		market string
		ch     merchant.Channel
	}
	var codes []string
	byCode := map[string]clearing{}
	for _, mk := range h.markets {
		for _, ch := range merchant.Channels {
			code := merchant.ClearingAccount(ch, mk)
			if _, ok := byCode[code]; !ok {
				byCode[code] = clearing{mk, ch}
				codes = append(codes, code)
			}
		}
	}
	rows, err := h.pool.Query(ctx, `
SELECT a.code,
       COALESCE((SELECT sum(d.debits_posted - d.credits_posted) FROM ledger_daily_totals d WHERE d.account_id = a.id AND d.day <= $2), 0)::bigint,
       a.debits_posted - a.credits_posted
  FROM ledger_accounts a WHERE a.code = ANY($1) ORDER BY a.code`, codes, dateOf(e.day))
	if err != nil {
		h.fail("provider balances of %s: %v", e.day, err)
		return
	}
	type due struct {
		clearing
		amount int64
	}
	var dues []due
	for rows.Next() {
		var code string
		var atEnd, now int64
		if err := rows.Scan(&code, &atEnd, &now); err != nil {
			rows.Close()
			h.fail("provider balances of %s: %v", e.day, err)
			return
		}
		if a := min(atEnd, now); a > 0 {
			dues = append(dues, due{byCode[code], a})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		h.fail("provider balances of %s: %v", e.day, err)
		return
	}
	for i, d := range dues {
		at := e.at.Add(time.Duration(i) * 2 * time.Second)
		h.call(ctx, at, func(ctx context.Context) {
			provider := d.ch.Provider()
			ref := strings.ToUpper(provider) + "-" + e.day.Start().In(ict).Format("20060102") + "-" + d.market
			_, replayed, err := h.settle.RecordProviderSettlement(ctx, settlement.ProviderSettlementRequest{
				Key: "hs:" + ref, Channel: d.ch, Market: d.market, Amount: decimal.NewFromInt(d.amount),
				Bank: h.banks[d.market], BankRef: ref,
			})
			if err == nil && replayed {
				err = errors.New("replayed on a fresh key")
			}
			if err != nil {
				h.fail("provider settlement %s (%s đồng): %v", ref, group(d.amount), err)
				return
			}
			h.settlements.Add(1)
		})
	}
}

// progress logs where the fill is, every 15 seconds.
func (h *history) progress(done <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			var n int64
			for f := range h.recorded {
				n += h.recorded[f].Load()
			}
			el := time.Since(start).Seconds()
			h.logf("at %s: %s payments recorded (%s/s), %s posted by the bank, %s refunds, %s provider settlements, %s expired; %s",
				h.clock.Now().In(ict).Format("2006-01-02 15:04"), group(n), num(float64(n)/el), group(h.posted.Load()),
				group(h.refunds.Load()), group(h.settlements.Load()), group(h.expired.Load()), memNote())
		}
	}
}

func memNote() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("heap %d MiB", m.HeapAlloc>>20)
}
