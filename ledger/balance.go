package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AsOf names a point of the ledger's history: right after the entry with
// sequence Seq, or after every entry recorded at or before Time. The zero
// value means now.
type AsOf struct {
	Seq  int64
	Time time.Time
}

// resolveAsOf turns a point into a sequence, checked against the head read
// in the same snapshot. It returns the head too: at the head, the accounts'
// running totals are the answer and no posting needs to be summed.
func resolveAsOf(ctx context.Context, q querier, at AsOf) (seq, head int64, err error) {
	if err := q.QueryRow(ctx, `SELECT last_seq FROM ledger_head`).Scan(&head); err != nil {
		return 0, 0, fmt.Errorf("read ledger head: %w", err)
	}
	switch {
	case at.Seq < 0:
		return 0, 0, invalid("as_of.sequence", "must be positive, got %d", at.Seq)
	case at.Seq > 0 && !at.Time.IsZero():
		return 0, 0, invalid("as_of", "give a sequence or a time, not both")
	case at.Seq > head:
		return 0, 0, invalid("as_of.sequence", "is beyond the ledger's last sequence %d", head)
	case at.Seq > 0:
		return at.Seq, head, nil
	case !at.Time.IsZero():
		// recorded_at rises with seq (both are assigned under the head lock),
		// so the newest entry at or before the time bounds the state.
		err := q.QueryRow(ctx, `
SELECT COALESCE((SELECT seq FROM ledger_entries WHERE recorded_at <= $1 ORDER BY recorded_at DESC, seq DESC LIMIT 1), 0)`, at.Time).Scan(&seq)
		if err != nil {
			return 0, 0, fmt.Errorf("find sequence at %s: %w", at.Time, err)
		}
		return seq, head, nil
	}
	return head, head, nil
}

// Sums of postings up to sequence $2. A pending posting counts while its
// entry was still open at $2.
const (
	sumsAsOf = `
       COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'D' AND p.pending), 0),
       COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'C' AND p.pending), 0),
       COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'D' AND NOT p.pending), 0),
       COALESCE(SUM(p.amount) FILTER (WHERE p.direction = 'C' AND NOT p.pending), 0)`
	openAsOf = `p.entry_seq <= $2 AND (NOT p.pending OR NOT EXISTS (
        SELECT 1 FROM ledger_entries c WHERE c.pending_seq = p.entry_seq AND c.seq <= $2))`
	totalsAsOf = `SELECT p.account_id,` + sumsAsOf + `
  FROM ledger_postings p
 WHERE p.account_id = ANY($1) AND ` + openAsOf + `
 GROUP BY p.account_id`
	// Every currency of the selected accounts has its sums, zero where
	// nothing was posted by $2, as the sums of the accounts' running
	// totals at the head have: a trial balance as of a sequence answers
	// the same once the ledger has moved past it.
	currencyTotalsAsOf = `SELECT a.currency,` + sumsAsOf + `
  FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_id = a.id AND ` + openAsOf + `
 WHERE ($1 = '' OR a.market = $1)
 GROUP BY a.currency ORDER BY a.currency`
)

func readTotalsAsOf(ctx context.Context, q querier, ids []int64, seq int64) (map[int64]Totals, error) {
	rows, err := q.Query(ctx, totalsAsOf, ids, seq)
	if err != nil {
		return nil, fmt.Errorf("sum postings: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]Totals, len(ids))
	for rows.Next() {
		var id int64
		var t Totals
		if err := rows.Scan(&id, &t.DebitsPending, &t.CreditsPending, &t.DebitsPosted, &t.CreditsPosted); err != nil {
			return nil, err
		}
		out[id] = t
	}
	return out, rows.Err()
}

func (l *Ledger) snapshot(ctx context.Context) (pgx.Tx, error) {
	return l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// AwaitRecorded waits, when at may still gain entries, until every entry
// recorded by then has committed. A round takes its record time once it
// holds the ledger head, and holds the head until it commits, so taking
// the head's lock, even shared, waits for the round recording now; the
// next round takes the head after this statement began, and so records a
// later time than at. A read as of a time calls it first: otherwise an
// entry recorded just before that time, still committing, would be left
// out, and counted once it committed, and the state as of one past time
// would change from one read to the next.
//
// Only a time between the newest committed entry and now can gain
// entries: the round in progress recorded after the newest committed one,
// and a time still to come is read as now, final only once it has passed.
// So reads of the past and of a period not yet over (a report of today)
// take no lock on the row every write needs. The database's clock
// decides, as it dates the entries.
func (l *Ledger) AwaitRecorded(ctx context.Context, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	if _, err := l.pool.Exec(ctx, `
SELECT FROM ledger_head
 WHERE $1::timestamptz BETWEEN COALESCE((SELECT recorded_at FROM ledger_entries ORDER BY recorded_at DESC, seq DESC LIMIT 1), '-infinity') AND now()
   FOR KEY SHARE`, at); err != nil {
		return fmt.Errorf("wait for the entries recorded by %s: %w", at.Format(time.RFC3339Nano), err)
	}
	return nil
}

// Balance returns the account with code and its totals as of at, with the
// sequence they are as of.
func (l *Ledger) Balance(ctx context.Context, code string, at AsOf) (Account, Totals, int64, error) {
	if !ValidAccountCode(code) {
		return Account{}, Totals{}, 0, invalid("account_code", "must be 1-200 of [A-Za-z0-9:._-], got %q", code)
	}
	if err := l.AwaitRecorded(ctx, at.Time); err != nil {
		return Account{}, Totals{}, 0, err
	}
	tx, err := l.snapshot(ctx)
	if err != nil {
		return Account{}, Totals{}, 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	a, err := scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM ledger_accounts WHERE code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, Totals{}, 0, errorf(ErrAccountNotFound, "account_code", "no account %s", code)
	}
	if err != nil {
		return Account{}, Totals{}, 0, err
	}
	seq, head, err := resolveAsOf(ctx, tx, at)
	if err != nil {
		return Account{}, Totals{}, 0, err
	}
	if seq == head {
		return a, a.Totals, seq, nil
	}
	totals, err := readTotalsAsOf(ctx, tx, []int64{a.ID}, seq)
	if err != nil {
		return Account{}, Totals{}, 0, err
	}
	return a, totals[a.ID], seq, nil
}

// TrialBalanceLine is one account's totals in a trial balance.
type TrialBalanceLine struct {
	Account Account
	Totals  Totals
}

// CurrencyTotals sums a trial balance in one currency.
type CurrencyTotals struct {
	Currency string
	Totals
}

// Balanced reports whether debits equal credits, pending and posted apart.
func (c CurrencyTotals) Balanced() bool {
	return c.DebitsPending == c.CreditsPending && c.DebitsPosted == c.CreditsPosted
}

// TrialBalance is a page of account lines and the sums over all selected
// accounts.
type TrialBalance struct {
	Lines    []TrialBalanceLine
	Totals   []CurrencyTotals
	AsOfSeq  int64
	NextPage string
}

// TrialBalance lists the totals of the accounts of market (all markets when
// empty) as of at, in code order, and their sums per currency. Every page of
// a listing is as of the first page's sequence, which its page token
// carries: pages read while entries are posted still add up to one trial
// balance.
func (l *Ledger) TrialBalance(ctx context.Context, market string, at AsOf, pageSize int, pageToken string) (TrialBalance, error) {
	var tb TrialBalance
	if market != "" && !ValidMarket(market) {
		return tb, invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", market)
	}
	size, err := PageSize(pageSize)
	if err != nil {
		return tb, err
	}
	after, pinned, err := decodeTrialBalanceToken(pageToken, market, at)
	if err != nil {
		return tb, err
	}
	if pageToken == "" {
		if err := l.AwaitRecorded(ctx, at.Time); err != nil {
			return tb, err
		}
	}
	tx, err := l.snapshot(ctx)
	if err != nil {
		return tb, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if pageToken != "" {
		// The listing's point, not the request's resolved again: a time
		// still to come resolves further as entries are posted.
		at = AsOf{Seq: pinned}
	}
	seq, head, err := resolveAsOf(ctx, tx, at)
	if err != nil {
		return tb, err
	}
	if pageToken != "" {
		seq = pinned // a listing pinned at 0, an empty ledger, stays empty
	}
	tb.AsOfSeq = seq

	rows, err := tx.Query(ctx, `SELECT `+accountColumns+` FROM ledger_accounts
 WHERE code > $1 AND ($2 = '' OR market = $2) ORDER BY code LIMIT $3`, after, market, size+1)
	if err != nil {
		return tb, err
	}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return tb, err
		}
		tb.Lines = append(tb.Lines, TrialBalanceLine{Account: a, Totals: a.Totals})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return tb, err
	}
	if pageToken == "" && market != "" && len(tb.Lines) == 0 {
		// Balanced at zero, an auditor who mistyped a market's code would
		// read that it owes and is owed nothing.
		return tb, errorf(ErrAccountNotFound, "market", "the ledger holds no account of market %s", market)
	}
	if len(tb.Lines) > size {
		tb.Lines = tb.Lines[:size]
		tb.NextPage = PageToken("trial balance", "", fmt.Sprintf("%d:%s:%s:%s", seq, at.Key(), market, tb.Lines[size-1].Account.Code))
	}
	if seq != head && len(tb.Lines) > 0 {
		ids := make([]int64, len(tb.Lines))
		for i, line := range tb.Lines {
			ids[i] = line.Account.ID
		}
		totals, err := readTotalsAsOf(ctx, tx, ids, seq)
		if err != nil {
			return tb, err
		}
		for i := range tb.Lines {
			tb.Lines[i].Totals = totals[tb.Lines[i].Account.ID]
		}
	}

	// Sums over every selected account, not only this page.
	var sums pgx.Rows
	if seq == head {
		sums, err = tx.Query(ctx, `
SELECT currency, COALESCE(SUM(debits_pending), 0), COALESCE(SUM(credits_pending), 0), COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_posted), 0)
  FROM ledger_accounts WHERE ($1 = '' OR market = $1) GROUP BY currency ORDER BY currency`, market)
	} else {
		sums, err = tx.Query(ctx, currencyTotalsAsOf, market, seq)
	}
	if err != nil {
		return tb, fmt.Errorf("sum trial balance: %w", err)
	}
	defer sums.Close()
	for sums.Next() {
		var c CurrencyTotals
		if err := sums.Scan(&c.Currency, &c.DebitsPending, &c.CreditsPending, &c.DebitsPosted, &c.CreditsPosted); err != nil {
			return tb, err
		}
		tb.Totals = append(tb.Totals, c)
	}
	return tb, sums.Err()
}

// SequenceAt returns the sequence of the last entry recorded at or before t:
// the ledger's state at t is its state right after that entry.
func (l *Ledger) SequenceAt(ctx context.Context, t time.Time) (int64, error) {
	if err := l.AwaitRecorded(ctx, t); err != nil {
		return 0, err
	}
	seq, _, err := resolveAsOf(ctx, l.pool, AsOf{Time: t})
	return seq, err
}

// Key writes a point as a request gives it, for a page token to hold: "-"
// for none (the head).
func (at AsOf) Key() string {
	switch {
	case at.Seq != 0:
		return "s" + strconv.FormatInt(at.Seq, 10)
	case !at.Time.IsZero():
		return "t" + strconv.FormatInt(at.Time.UnixNano(), 10)
	}
	return "-"
}

// decodeTrialBalanceToken reads a trial balance's page token: the sequence
// its listing is as of, the point and market its first page asked for, and
// the last account code listed. A later page may leave the point out, or
// ask for the same one; another market or point is another listing.
func decodeTrialBalanceToken(token, market string, at AsOf) (after string, seq int64, err error) {
	if token == "" {
		return "", 0, nil
	}
	// Its point and market are checked below: a later page may leave the
	// point out.
	last, err := PageAfter("trial balance", "", token, "")
	if err != nil {
		return "", 0, err
	}
	bad := invalid("page_token", "is not a token of a trial balance")
	parts := strings.SplitN(last, ":", 4)
	if len(parts) != 4 {
		return "", 0, bad
	}
	if seq, err = strconv.ParseInt(parts[0], 10, 64); err != nil || seq < 0 {
		return "", 0, bad
	}
	if key := at.Key(); key != "-" && key != parts[1] {
		return "", 0, invalid("page_token", "continues the trial balance as of sequence %d: send the first page's as_of, or none", seq)
	}
	if parts[2] != market {
		return "", 0, invalid("page_token", "continues the trial balance of market %q, not %q", parts[2], market)
	}
	return parts[3], seq, nil
}
