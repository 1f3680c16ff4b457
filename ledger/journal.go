package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/choledger/choledger/internal/pg"
)

// querier is what reads need: a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// selectEntries reads entries with the ids of the pending entry they close
// (p) and of the entry that closed them (c).
const selectEntries = `
SELECT e.seq, e.id, e.market, e.kind, e.phase, e.currency, COALESCE(e.pending_seq, 0), COALESCE(p.id::text, ''),
       e.idempotency_key, COALESCE(e.external_ref, ''), e.occurred_at, e.recorded_at, e.expires_at,
       e.metadata, e.hash, COALESCE(c.id::text, ''), COALESCE(c.phase, '')
  FROM ledger_entries e
  LEFT JOIN ledger_entries p ON p.seq = e.pending_seq
  LEFT JOIN ledger_entries c ON c.pending_seq = e.seq
 WHERE `

const selectPostings = `
SELECT p.entry_seq, a.code, p.direction, p.amount, p.pending
  FROM ledger_postings p
  JOIN ledger_accounts a ON a.id = p.account_id
 WHERE p.entry_seq = ANY($1)
 ORDER BY p.entry_seq, p.idx`

// loadEntries reads the entries matching where (a condition on e, with its
// ORDER BY and LIMIT) and their postings.
func loadEntries(ctx context.Context, q querier, where string, args ...any) ([]Entry, error) {
	return readEntries(ctx, q, false, where, args...)
}

// readEntries is loadEntries; with lenient, an entry whose metadata cannot
// be read is returned with that as its flaw instead of failing the read,
// for VerifyJournal to name.
func readEntries(ctx context.Context, q querier, lenient bool, where string, args ...any) ([]Entry, error) {
	rows, err := q.Query(ctx, selectEntries+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	entries, err := scanEntries(rows, lenient)
	if err != nil || len(entries) == 0 {
		return entries, err
	}
	seqs := make([]int64, len(entries))
	for i := range entries {
		seqs[i] = entries[i].Seq
	}
	rows, err = q.Query(ctx, selectPostings, seqs)
	if err != nil {
		return nil, fmt.Errorf("read postings: %w", err)
	}
	return entries, attachPostings(rows, entries)
}

// queueEntriesByID queues the reads of the entries with ids and of their
// postings into b, so that they share a round trip with other reads; into
// holds the entries once b has run.
func queueEntriesByID(b *pgx.Batch, ids []string, into *[]Entry) {
	b.Queue(selectEntries+`e.id = ANY($1::text[]::uuid[]) ORDER BY e.seq`, ids).Query(func(rows pgx.Rows) error {
		var err error
		*into, err = scanEntries(rows, false)
		return err
	})
	b.Queue(selectPostingsOfIDs, ids).Query(func(rows pgx.Rows) error {
		return attachPostings(rows, *into)
	})
}

const selectPostingsOfIDs = `
SELECT p.entry_seq, a.code, p.direction, p.amount, p.pending
  FROM ledger_postings p
  JOIN ledger_accounts a ON a.id = p.account_id
 WHERE p.entry_seq IN (SELECT seq FROM ledger_entries WHERE id = ANY($1::text[]::uuid[]))
 ORDER BY p.entry_seq, p.idx`

// scanEntries reads rows of selectEntries, and closes them. Metadata that
// is not an object of strings, which the ledger never writes, fails the
// read, or with lenient is the entry's flaw.
func scanEntries(rows pgx.Rows, lenient bool) ([]Entry, error) {
	defer rows.Close()
	var entries []Entry
	for rows.Next() {
		var (
			e           Entry
			phase       string
			expires     *time.Time
			metadata    []byte
			closedPhase string
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.Market, &e.Kind, &phase, &e.Currency, &e.PendingSeq, &e.PendingID,
			&e.IdempotencyKey, &e.ExternalRef, &e.OccurredAt, &e.RecordedAt, &expires,
			&metadata, &e.Hash, &e.ClosedBy, &closedPhase); err != nil {
			return nil, fmt.Errorf("read entries: %w", err)
		}
		e.Phase = Phase(phase)
		e.OccurredAt = e.OccurredAt.UTC()
		e.RecordedAt = e.RecordedAt.UTC()
		if expires != nil {
			e.ExpiresAt = expires.UTC()
		}
		if e.Phase == PhasePending {
			e.PendingState = pendingState(closedPhase)
		}
		if err := json.Unmarshal(metadata, &e.Metadata); err != nil {
			if !lenient {
				return nil, fmt.Errorf("entry %s metadata: %w", e.ID, err)
			}
			e.Metadata = nil
			e.flaw = fmt.Sprintf("metadata %.200s is not an object of strings, as the ledger writes it (%v): the entry was changed", string(metadata), err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	return entries, nil
}

// attachPostings reads rows of postings (entry_seq, account code,
// direction, amount, pending, in order) onto their entries, and closes
// them. Postings of other entries are skipped. Whether a posting moves the
// pending totals follows from its entry's phase, and the hash covers only
// that; a stored flag that disagrees is the entry's flaw.
func attachPostings(rows pgx.Rows, entries []Entry) error {
	defer rows.Close()
	index := make(map[int64]*Entry, len(entries))
	for i := range entries {
		index[entries[i].Seq] = &entries[i]
	}
	for rows.Next() {
		var (
			seq     int64
			p       Posting
			dir     string
			pending bool
		)
		if err := rows.Scan(&seq, &p.AccountCode, &dir, &p.Amount, &pending); err != nil {
			return fmt.Errorf("read postings: %w", err)
		}
		e := index[seq]
		if e == nil {
			// Read by id in a later statement than its entries, a posting can
			// belong to an entry committed in between: not one of ours.
			continue
		}
		p.Direction = Direction(dir[0])
		if pending != (e.Phase == PhasePending) && e.flaw == "" {
			e.flaw = fmt.Sprintf("postings[%d] (%s on %s) is stored with pending %t, but the postings of a %s entry have pending %t: the flag was changed, and with it the balances as of any later sequence",
				len(e.Postings), p.Direction, p.AccountCode, pending, e.Phase, !pending)
		}
		e.Postings = append(e.Postings, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	return nil
}

func pendingState(closedPhase string) PendingState {
	switch Phase(closedPhase) {
	case PhasePostPending:
		return PendingPosted
	case PhaseVoidPending:
		return PendingVoided
	}
	return PendingOpen
}

// GetEntry returns the entry with id.
func (l *Ledger) GetEntry(ctx context.Context, id string) (Entry, error) {
	id, ok := CanonicalUUID(id)
	if !ok {
		return Entry{}, invalid("id", "must be a UUID, got %q", id)
	}
	entries, err := loadEntries(ctx, l.pool, `e.id = $1`, id)
	if err != nil {
		return Entry{}, err
	}
	if len(entries) == 0 {
		return Entry{}, errorf(ErrEntryNotFound, "id", "no entry %s", id)
	}
	return entries[0], nil
}

// EntryFilter selects entries for ListEntries. Zero fields select all.
type EntryFilter struct {
	Market      string
	AccountCode string
	Kind        string
	FromSeq     int64 // inclusive
	ToSeq       int64 // inclusive
	Start       time.Time
	End         time.Time // exclusive
	PageSize    int
	PageToken   string
}

// Page sizes of list calls.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// PageSize applies the default and the bound to a requested page size.
func PageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "must not be negative, got %d", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}

// CheckTimeBounds refuses, naming end_time, the bounds [start, end) of a
// list that hold no instant: what they list is nothing whatever the ledger
// holds, so bounds given the wrong way round would read as a period
// without entries or payments. An unset bound is open.
func CheckTimeBounds(start, end time.Time) error {
	if !start.IsZero() && !end.IsZero() && !end.After(start) {
		return invalid("end_time", "%s is not after start_time %s", end.UTC().Format(time.RFC3339Nano), start.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Page tokens are opaque to clients. Inside, one holds the list it is of,
// the place of the last item listed, and the query its pages continue
// (every filter, as the list checked it), so that a token of another list
// or query is refused rather than taken as a place in this one: that
// would start the listing after an item of the other, and leave out, with
// no error, what comes before it. Neither list nor place holds a "|".

// PageToken is the token of list's page after the item at place last, for
// query.
func PageToken(list, query, last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + "|" + last + "|" + query))
}

// PageAfter reads a token of list for query: the place of the last item
// listed, "" for no token. resend names what a token of another query must
// be sent with instead.
func PageAfter(list, query, token, resend string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.SplitN(string(b), "|", 3)
	// What a token holds goes into a query: bytes this service never
	// issues (a NUL, not UTF-8) would be refused there, naming no field.
	if err != nil || len(parts) != 3 || parts[0] != list || !pg.Storable(b) {
		return "", invalid("page_token", "is not a token of this list")
	}
	if parts[2] != query {
		return "", invalid("page_token", "continues another query; send the same %s as the first page", resend)
	}
	return parts[1], nil
}

// ListEntries returns a page of entries in ledger order and the token of
// the next page ("" after the last).
func (l *Ledger) ListEntries(ctx context.Context, f EntryFilter) ([]Entry, string, error) {
	size, err := PageSize(f.PageSize)
	if err != nil {
		return nil, "", err
	}
	last, err := PageAfter("entries", f.query(), f.PageToken, "market, account_code, kind, sequences and times")
	if err != nil {
		return nil, "", err
	}
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if last != "" {
		after, err := strconv.ParseInt(last, 10, 64)
		if err != nil {
			return nil, "", invalid("page_token", "is not a token of this list")
		}
		conds = append(conds, "e.seq > "+arg(after))
	}
	if f.Market != "" {
		if !ValidMarket(f.Market) {
			return nil, "", invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", f.Market)
		}
		conds = append(conds, "e.market = "+arg(f.Market))
	}
	if f.Kind != "" {
		if err := checkKind(f.Kind); err != nil {
			return nil, "", err
		}
		conds = append(conds, "e.kind = "+arg(f.Kind))
	}
	if f.AccountCode != "" {
		if !ValidAccountCode(f.AccountCode) {
			return nil, "", invalid("account_code", "must be 1-200 of [A-Za-z0-9:._-], got %q", f.AccountCode)
		}
		// The entries closing a pending entry on the account are its too: a
		// void has no postings of its own, but releases the pending entry's,
		// and so moves the account's pending totals.
		code := arg(f.AccountCode)
		conds = append(conds, `e.seq IN (
SELECT p.entry_seq FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id WHERE a.code = `+code+`
 UNION ALL
SELECT c.seq FROM ledger_entries c JOIN ledger_postings p ON p.entry_seq = c.pending_seq JOIN ledger_accounts a ON a.id = p.account_id WHERE a.code = `+code+`)`)
	}
	if f.FromSeq < 0 {
		return nil, "", invalid("from_sequence", "must not be negative, got %d", f.FromSeq)
	}
	if f.ToSeq < 0 {
		return nil, "", invalid("to_sequence", "must not be negative, got %d", f.ToSeq)
	}
	if f.ToSeq > 0 && f.ToSeq < f.FromSeq {
		return nil, "", invalid("to_sequence", "the range [%d, %d] is empty", f.FromSeq, f.ToSeq)
	}
	if err := CheckTimeBounds(f.Start, f.End); err != nil {
		return nil, "", err
	}
	if f.FromSeq > 0 {
		conds = append(conds, "e.seq >= "+arg(f.FromSeq))
	}
	if f.ToSeq > 0 {
		conds = append(conds, "e.seq <= "+arg(f.ToSeq))
	}
	if !f.Start.IsZero() {
		conds = append(conds, "e.recorded_at >= "+arg(pg.CeilMicrosecond(f.Start)))
	}
	if !f.End.IsZero() {
		conds = append(conds, "e.recorded_at < "+arg(pg.CeilMicrosecond(f.End)))
	}
	where := "true"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	// The entries recorded before a time just past are all of them, one
	// still committing included.
	if err := l.AwaitRecorded(ctx, pg.CeilMicrosecond(f.End)); err != nil {
		return nil, "", err
	}
	entries, err := loadEntries(ctx, l.pool, where+" ORDER BY e.seq LIMIT "+arg(size+1), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(entries) > size {
		entries = entries[:size]
		next = PageToken("entries", f.query(), strconv.FormatInt(entries[size-1].Seq, 10))
	}
	return entries, next, nil
}

// query writes what a page token keeps of the filter, the query its pages
// continue: every field but the page's size and token.
func (f EntryFilter) query() string {
	return strings.Join([]string{f.Market, f.AccountCode, f.Kind, strconv.FormatInt(f.FromSeq, 10), strconv.FormatInt(f.ToSeq, 10),
		pg.BoundKey(f.Start), pg.BoundKey(f.End)}, ",")
}

// EntriesAfter returns up to limit entries with sequence above after, in
// order, optionally of one market: the feed that StreamEntries follows.
func (l *Ledger) EntriesAfter(ctx context.Context, after int64, market string, limit int) ([]Entry, error) {
	if market != "" {
		if !ValidMarket(market) {
			return nil, invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", market)
		}
		return loadEntries(ctx, l.pool, `e.seq > $1 AND e.market = $2 ORDER BY e.seq LIMIT $3`, after, market, limit)
	}
	return loadEntries(ctx, l.pool, `e.seq > $1 ORDER BY e.seq LIMIT $2`, after, limit)
}

// EntriesByKeys returns the entries recorded under the given idempotency
// keys, by key.
func (l *Ledger) EntriesByKeys(ctx context.Context, keys []string) (map[string]Entry, error) {
	var entries []Entry
	var err error
	if len(keys) == 1 {
		// One key, the common case, as a plain equality: PostgreSQL plans it
		// once per session, where an array parameter gets planned again at
		// every execution (see applyRound).
		entries, err = loadEntries(ctx, l.pool, entryKeyIs("$1"), keys[0])
	} else {
		entries, err = loadEntries(ctx, l.pool, entryKeyIn+` ORDER BY e.seq`, keys)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]Entry, len(entries))
	for _, e := range entries {
		out[e.IdempotencyKey] = e
	}
	return out, nil
}
