package settlement

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Order is the order of a market settlement's merchant lines.
type Order int

const (
	// OrderMerchant lists merchants by code.
	OrderMerchant Order = iota
	// OrderAmountDue lists the merchants owed most first (closing balance,
	// descending), then by code.
	OrderAmountDue
)

// MarketQuery asks for a market's settlement and a page of its merchant
// lines.
type MarketQuery struct {
	Market     string
	Start, End string
	AsOf       ledger.AsOf
	Order      Order
	PageSize   int
	// PageToken continues a listing. It pins the point of the first page,
	// so that every page of a listing is as of the same ledger sequence.
	PageToken string
}

// MerchantLine is one merchant's settlement within a market's.
type MerchantLine struct {
	Merchant string
	Totals   Totals
}

// ProviderClearing is what a provider owes a market: the balance of its
// clearing account (an asset: debited the gross of every payment by the
// provider's channels, credited refunds, the provider's settlements and
// the money matched to it from the market's suspense account), so
//
//	Opening + Payments - Refunds - Settled - Reclassified + Adjustments = Closing.
type ProviderClearing struct {
	Provider        string
	Channels        []merchant.Channel
	ClearingAccount string
	Opening         int64
	PaymentCount    int64
	Payments        int64
	RefundCount     int64
	Refunds         int64
	SettlementCount int64
	Settled         int64
	// Reclassified is what ReclassifySuspense matched to the provider.
	Reclassified int64
	// Adjustments are movements by other entries; zero unless an operator
	// posted one.
	Adjustments int64
	// Closing is what the provider still owes at the end of the period.
	Closing int64
	// Pending is the gross of stall-recorded payments the bank has not
	// confirmed yet (the clearing account's debits pending).
	Pending int64
}

// Equation writes the provider's arithmetic out with the figures.
func (p ProviderClearing) Equation() string {
	f := func(v int64) string { return ledger.FormatAmount(Currency, v) }
	return fmt.Sprintf("opening %s + payments %s - refunds %s - settled %s - reclassified %s + adjustments %s = closing %s",
		f(p.Opening), f(p.Payments), f(p.Refunds), f(p.Settled), f(p.Reclassified), f(p.Adjustments), f(p.Closing))
}

// MarketSettlement is a market's settlement for a period.
type MarketSettlement struct {
	Market string
	Period Period
	// Totals and Days are the sums over every merchant of the market (not
	// only this page's), with the channel split.
	Totals    Totals
	Days      []DayTotals
	Providers []ProviderClearing
	// Merchants is one page of lines; TotalMerchants counts them all.
	Merchants      []MerchantLine
	TotalMerchants int
	NextPage       string
}

// pageToken is what a market settlement's page token holds: the query it
// continues, the window of its first page, and the last line listed.
type pageToken struct {
	Market       string `json:"market"`
	Start        string `json:"start"`
	End          string `json:"end"`
	Order        Order  `json:"order"`
	AsOf         string `json:"as_of,omitempty"` // the first page's, as ledger.AsOf.Key writes it
	Seq          int64  `json:"seq"`
	Cut          bool   `json:"cut,omitempty"`
	CutDay       string `json:"cut_day,omitempty"`
	CutAfter     int64  `json:"cut_after,omitempty"`
	LastDay      string `json:"last_day"`
	EndMicros    int64  `json:"end_time"`
	LastDue      int64  `json:"due"`
	LastMerchant string `json:"merchant"`
	// Registered counts the market's merchants the first page saw (see
	// merchant.Store.CreateMerchant). Tokens issued before they held it
	// have none, and list every merchant.
	Registered *int64 `json:"registered,omitempty"`
}

const tokenPrefix = "settlement1:"

func encodePageToken(t pageToken) string {
	b, _ := json.Marshal(t) // plain fields: cannot fail
	return base64.RawURLEncoding.EncodeToString(append([]byte(tokenPrefix), b...))
}

func decodePageToken(s string) (pageToken, error) {
	bad := invalid("page_token", "is not a token this service issued")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return pageToken{}, bad
	}
	rest, ok := strings.CutPrefix(string(b), tokenPrefix)
	if !ok {
		return pageToken{}, bad
	}
	var t pageToken
	if err := json.Unmarshal([]byte(rest), &t); err != nil {
		return pageToken{}, bad
	}
	return t, nil
}

// window rebuilds the first page's window from a token.
func (t pageToken) window(start, end Day) (window, error) {
	bad := invalid("page_token", "is not a token this service issued")
	last, ok := ParseDay(t.LastDay)
	if !ok || last.Before(start) || last.After(end) || t.Seq < 0 {
		return window{}, bad
	}
	w := window{start: start, end: end, fullEnd: last, seq: t.Seq, lastDay: last, endTime: time.UnixMicro(t.EndMicros).UTC()}
	if t.Cut {
		cut, ok := ParseDay(t.CutDay)
		if !ok || cut.Before(start) || cut.After(last) || t.CutAfter < 0 || t.CutAfter > t.Seq {
			return window{}, bad
		}
		w.cut, w.cutDay, w.cutAfter, w.fullEnd = true, cut, t.CutAfter, cut.AddDays(-1)
	}
	return w, nil
}

// MarketSettlement reports a market's settlement for a period: the totals
// of all its merchants per day and per channel, what each provider owes,
// and a page of merchant lines. It reads the rollups of the market's
// payable and clearing accounts: O(merchants × days), whatever the number
// of payments.
func (s *Service) MarketSettlement(ctx context.Context, q MarketQuery) (MarketSettlement, error) {
	if q.Market == "" {
		return MarketSettlement{}, invalid("market", "is required")
	}
	start, end, err := s.period(q.Start, q.End)
	if err != nil {
		return MarketSettlement{}, err
	}
	if err := checkAsOf(q.AsOf); err != nil {
		return MarketSettlement{}, err
	}
	if q.Order != OrderMerchant && q.Order != OrderAmountDue {
		return MarketSettlement{}, invalid("order_by", "unknown order %d", q.Order)
	}
	size, err := ledger.PageSize(q.PageSize)
	if err != nil {
		return MarketSettlement{}, err
	}
	// Read first: the market's code, trimmed as every code is read, is
	// what a page token holds, not how one request spelled it.
	mk, err := s.merchants.GetMarket(ctx, q.Market)
	if err != nil {
		return MarketSettlement{}, ledger.RenameField(err, "code", "market")
	}
	var token *pageToken
	if q.PageToken != "" {
		t, err := decodePageToken(q.PageToken)
		if err != nil {
			return MarketSettlement{}, err
		}
		if t.Market != mk.Code || t.Start != start.String() || t.End != end.String() || t.Order != q.Order {
			return MarketSettlement{}, invalid("page_token", "continues another query (market %s, %s to %s); send the same market, days and order as the first page", t.Market, t.Start, t.End)
		}
		// A later page may leave the point out, or name the first page's;
		// another point is another report. (Tokens issued before they held
		// the point have none to compare.)
		if key := q.AsOf.Key(); key != "-" && t.AsOf != "" && key != t.AsOf {
			return MarketSettlement{}, invalid("page_token", "continues the report as of sequence %d: send the first page's as_of, or none", t.Seq)
		}
		token = &t
	}
	point := reportPoint(end, q.AsOf)
	if token != nil {
		point = time.Time{} // the first page's point, whose entries it read
	}
	tx, err := s.snapshot(ctx, point)
	if err != nil {
		return MarketSettlement{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var w window
	if token != nil {
		if w, err = token.window(start, end); err != nil {
			return MarketSettlement{}, err
		}
	} else if w, err = resolveWindow(ctx, tx, start, end, q.AsOf); err != nil {
		return MarketSettlement{}, err
	}

	// The market's merchants, closed ones included, with their payable
	// accounts, each opened with its merchant. Read from the merchants: an
	// account an operator opened under a code of that shape (a supplier's,
	// or one in dollars) is no merchant's, and its money is not owed to the
	// market's merchants. A later page lists the merchants registered by
	// the first page's point: registering one writes no ledger entry, so
	// the first page's sequence cannot tell one registered since.
	var registered *int64
	if token != nil {
		registered = token.Registered
	}
	rows, err := tx.Query(ctx, `
SELECT a.id, m.code FROM merchants m JOIN ledger_accounts a ON a.code = 'merchant:' || m.code || ':payable'
 WHERE m.market = $1 AND a.market = $1 AND ($2::bigint IS NULL OR m.registration <= $2)
 ORDER BY m.code`, mk.Code, registered)
	if err != nil {
		return MarketSettlement{}, fmt.Errorf("read payable accounts: %w", err)
	}
	type payable struct {
		id       int64
		merchant string
	}
	var payables []payable
	for rows.Next() {
		var p payable
		if err := rows.Scan(&p.id, &p.merchant); err != nil {
			rows.Close()
			return MarketSettlement{}, fmt.Errorf("read payable accounts: %w", err)
		}
		payables = append(payables, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return MarketSettlement{}, fmt.Errorf("read payable accounts: %w", err)
	}

	// One clearing account per provider; channels of one provider share it.
	var providers []*ProviderClearing
	byCode := map[string]*ProviderClearing{}
	for _, ch := range merchant.Channels {
		code := merchant.ClearingAccount(ch, mk.Code)
		p := byCode[code]
		if p == nil {
			p = &ProviderClearing{Provider: ch.Provider(), ClearingAccount: code}
			byCode[code] = p
			providers = append(providers, p)
		}
		p.Channels = append(p.Channels, ch)
	}
	codes := make([]string, 0, len(providers))
	for _, p := range providers {
		codes = append(codes, p.ClearingAccount)
	}
	clearingIDs, err := accountIDs(ctx, tx, codes)
	if err != nil {
		return MarketSettlement{}, err
	}

	ids := make([]int64, 0, len(payables)+len(clearingIDs))
	payableIDs := make([]int64, 0, len(payables))
	for _, p := range payables {
		ids, payableIDs = append(ids, p.id), append(payableIDs, p.id)
	}
	var clearing []int64
	for _, id := range clearingIDs {
		ids, clearing = append(ids, id), append(clearing, id)
	}
	r := reader{tx: tx, w: w}
	open, moves, pays := map[int64]movement{}, map[int64]map[Day]*movement{}, map[string]channelSet{}
	payouts, settled, reclassified := map[int64]map[Day]*kindMove{}, map[int64]map[Day]*kindMove{}, map[int64]map[Day]*kindMove{}
	market := map[Day]*figures{} // the market's days; the payables' are added below
	r.openings(ids, open)
	r.movements(ids, mk.Code, moves)
	r.marketPayments(mk.Code, pays, market)
	r.kindMoves(payableIDs, KindPayout, mk.Code, payouts)
	r.kindMoves(clearing, KindProviderSettlement, mk.Code, settled)
	r.kindMoves(clearing, KindSuspenseReclassification, mk.Code, reclassified)
	if err := r.read(ctx); err != nil {
		return MarketSettlement{}, err
	}

	days := w.days()
	out := MarketSettlement{Market: mk.Code, Period: w.period(), TotalMerchants: len(payables)}
	lines := make([]MerchantLine, 0, len(payables))
	var marketOpening, marketPending int64
	for _, p := range payables {
		o := open[p.id]
		t := periodTotals(w, o.cpo-o.dpo, o.cp, moves[p.id], pays[p.merchant], payouts[p.id])
		lines = append(lines, MerchantLine{Merchant: p.merchant, Totals: t})
		marketOpening += o.cpo - o.dpo
		marketPending += o.cp
		addPayableFigures(market, moves[p.id], payouts[p.id])
	}
	out.Totals, out.Days = summarize(marketOpening, marketPending, days, market)

	for _, p := range providers {
		id, ok := clearingIDs[p.ClearingAccount]
		if !ok {
			continue // a market opened before the provider's channel existed
		}
		o := open[id]
		p.Opening, p.Closing, p.Pending = o.dpo-o.cpo, o.dpo-o.cpo, o.dp
		for _, m := range moves[id] {
			p.Closing += m.dpo - m.cpo
			p.Pending += m.dp
		}
		for _, k := range settled[id] {
			p.SettlementCount += k.entries
			p.Settled += k.credits
		}
		for _, c := range out.Totals.Channels {
			if slices.Contains(p.Channels, c.Channel) {
				p.PaymentCount += c.PaymentCount
				p.Payments += c.Payments
				p.RefundCount += c.RefundCount
				p.Refunds += c.Refunds
			}
		}
		for _, k := range reclassified[id] {
			p.Reclassified += k.credits
		}
		p.Adjustments = p.Closing - p.Opening - (p.Payments - p.Refunds - p.Settled - p.Reclassified)
		out.Providers = append(out.Providers, *p)
	}

	less := func(a, b MerchantLine) int { return strings.Compare(a.Merchant, b.Merchant) }
	if q.Order == OrderAmountDue {
		less = func(a, b MerchantLine) int {
			if c := cmp.Compare(b.Totals.Closing, a.Totals.Closing); c != 0 {
				return c
			}
			return strings.Compare(a.Merchant, b.Merchant)
		}
	}
	slices.SortFunc(lines, less)
	from := 0
	if token != nil {
		last := MerchantLine{Merchant: token.LastMerchant, Totals: Totals{Closing: token.LastDue}}
		from, _ = slices.BinarySearchFunc(lines, last, less)
		for from < len(lines) && less(lines[from], last) <= 0 {
			from++
		}
	}
	to := min(from+size, len(lines))
	out.Merchants = lines[from:to]
	if to < len(lines) {
		lastLine := lines[to-1]
		t := pageToken{
			Market: mk.Code, Start: start.String(), End: end.String(), Order: q.Order, AsOf: q.AsOf.Key(),
			Seq: w.seq, LastDay: w.lastDay.String(), EndMicros: w.endTime.UnixMicro(),
			LastDue: lastLine.Totals.Closing, LastMerchant: lastLine.Merchant,
		}
		if !w.cut {
			// A period that is not over yet may still gain entries; the next
			// pages read its last days from the journal up to this page's
			// sequence, so that every page is as of the same point.
			if w, err = pinWindow(ctx, tx, w); err != nil {
				return MarketSettlement{}, err
			}
		}
		if token != nil {
			t.AsOf, t.Registered = token.AsOf, token.Registered
		} else if err := tx.QueryRow(ctx, `SELECT merchants_registered FROM markets WHERE code = $1`, mk.Code).Scan(&t.Registered); err != nil {
			return MarketSettlement{}, fmt.Errorf("count the market's merchants: %w", err)
		}
		if w.cut {
			t.Cut, t.CutDay, t.CutAfter = true, w.cutDay.String(), w.cutAfter
		}
		out.NextPage = encodePageToken(t)
	}
	return out, nil
}
