package settlement

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement/reconcile"
	"github.com/choledger/choledger/settlement/statement"
)

// ReconcileWindow is how far apart a statement's booking time and a
// payment's occurred_at may be and still be the same transaction. It is
// the clock skew the ledger already grants a payment's sender
// (ledger.MaxFutureSkew): a stall's or bank's clock that far off is normal,
// and NAPAS 247 transfers and wallet payments are booked by the provider
// within seconds of the customer paying. It also sets the margins at the
// period's edges; see docs/reconciliation.md.
const ReconcileWindow = ledger.MaxFutureSkew

// MaxStatementBytes bounds an imported statement; MaxStatementLines its
// lines (CSV rows, camt entries).
const (
	MaxStatementBytes = statement.DefaultMaxBytes
	MaxStatementLines = statement.DefaultMaxLines
)

// statementExponents: the markets take đồng only, so a statement in any
// other currency is refused line by line, and "1000.5" is refused as a
// fraction of a đồng.
var statementExponents = map[string]int32{Currency: 0}

// StatementImport asks to reconcile one statement.
type StatementImport struct {
	Format  statement.Format
	Content []byte
	// Channel whose provider issued the statement.
	Channel merchant.Channel
	// Market is the one market to reconcile; "" means Markets.
	Market string
	// Markets the caller covers, used when Market is ""; nil is every
	// market.
	Markets []string
	// PeriodStart (inclusive) and PeriodEnd (exclusive); required for CSV,
	// for camt both unset means the statement's FrToDt.
	PeriodStart, PeriodEnd time.Time
	// CreatedBy is the importer's idempotency scope.
	CreatedBy string
}

// ReconciliationReport sums up one imported statement.
type ReconciliationReport struct {
	ID          string
	Format      statement.Format
	StatementID string
	Digest      string
	Channel     merchant.Channel
	Provider    string
	// Market is the one market covered, "" when several or every market.
	Market string
	// Markets covered, sorted; nil for every market.
	Markets            []string
	PeriodStart        time.Time
	PeriodEnd          time.Time
	LineCount          int
	PaymentCount       int
	Matched            int
	AmountMismatch     int
	MissingInLedger    int
	MissingInStatement int
	CreatedBy          string
	CreatedAt          time.Time
}

// ReconciliationItem is one statement line, one payment, or a matched pair.
type ReconciliationItem struct {
	Kind reconcile.Kind
	// The statement's side; Line is 0 for a payment missing in the
	// statement.
	Line            int
	StatementRef    string
	StatementAmount int64
	BookedAt        time.Time
	// The ledger's side; PaymentID is "" for a line missing in the ledger.
	PaymentID    string
	LedgerAmount int64
	ByReference  bool
}

// ImportResult is what ImportStatement answers.
type ImportResult struct {
	Report ReconciliationReport
	// Breaks are the report's items that are not matched, in report order.
	Breaks []ReconciliationItem
	// Replayed: the same file had been imported for the same channel and
	// markets; the kept report is returned and nothing was written.
	Replayed bool
}

// ImportStatement parses a provider's or bank's statement, matches its
// lines against the payments the ledger recorded for the channel in the
// covered markets over the statement's period, and keeps the report with
// all its items in one transaction. A malformed statement is refused
// (InvalidArgument on "content", naming the line and the reason) before
// anything is read or written. Importing the same file again for the same
// channel and markets returns the kept report, replayed, even when two
// imports race; with another period it is refused.
func (s *Service) ImportStatement(ctx context.Context, r StatementImport) (ImportResult, error) {
	if err := r.validate(); err != nil {
		return ImportResult{}, err
	}
	markets, coverage, err := s.coverage(ctx, r.Market, r.Markets)
	if err != nil {
		return ImportResult{}, err
	}
	st, err := statement.Parse(bytes.NewReader(r.Content), r.Format, statement.Options{
		MaxBytes:    MaxStatementBytes,
		MaxLines:    MaxStatementLines,
		PeriodStart: r.PeriodStart,
		PeriodEnd:   r.PeriodEnd,
		Exponents:   statementExponents,
	})
	if errors.Is(err, statement.ErrMalformed) {
		return ImportResult{}, invalid("content", "%v", err)
	}
	if err != nil {
		return ImportResult{}, fmt.Errorf("parse statement: %w", err)
	}
	if st.PeriodStart.IsZero() || st.PeriodEnd.IsZero() {
		return ImportResult{}, invalid("period_start", "the statement states no period (FrToDt): give period_start and period_end")
	}
	// The period as PostgreSQL keeps it, in whole microseconds: a period
	// given in nanoseconds (a client's clock, a camt FrDtTm) is then the
	// report's, answered as it reads back, and the same request sent again
	// finds it equal instead of another period. So are the lines' booking
	// times (a camt DtTm of seven digits), which the items keep.
	st.PeriodStart, st.PeriodEnd = st.PeriodStart.Truncate(time.Microsecond), st.PeriodEnd.Truncate(time.Microsecond)
	for i := range st.Lines {
		st.Lines[i].BookedAt = st.Lines[i].BookedAt.Truncate(time.Microsecond)
	}
	if err := checkStatementPeriod(st.PeriodStart, st.PeriodEnd); err != nil {
		return ImportResult{}, err
	}
	if err := checkLineChannels(st.Lines, r.Channel); err != nil {
		return ImportResult{}, err
	}

	// A file imported before is answered from the kept report, without
	// matching it again against payments that may have changed since.
	if kept, ok, err := s.reportByKey(ctx, s.pool, st.Digest, r.Channel, coverage); err != nil {
		return ImportResult{}, err
	} else if ok {
		return s.replay(ctx, kept, st)
	}

	payments, err := s.statementPayments(ctx, r.Channel, markets, st)
	if err != nil {
		return ImportResult{}, err
	}
	// A CSV's ref is the provider's reference (docs/reconciliation.md); a
	// camt entry's may be the bank's own.
	items := itemsOf(reconcile.Match(st.Lines, payments, ReconcileWindow, st.Format == statement.FormatCSV), payments, st.PeriodStart, st.PeriodEnd)
	now := s.now().UTC().Truncate(time.Microsecond)
	rep := ReconciliationReport{
		ID:          ledger.NewID(now),
		Format:      st.Format,
		StatementID: st.ID,
		Digest:      st.Digest,
		Channel:     r.Channel,
		Provider:    r.Channel.Provider(),
		Markets:     markets,
		PeriodStart: st.PeriodStart,
		PeriodEnd:   st.PeriodEnd,
		LineCount:   len(st.Lines),
		CreatedBy:   r.CreatedBy,
		CreatedAt:   now,
	}
	if len(markets) == 1 {
		rep.Market = markets[0]
	}
	var breaks []ReconciliationItem
	for _, it := range items {
		switch it.Kind {
		case reconcile.Matched:
			rep.Matched++
		case reconcile.AmountMismatch:
			rep.AmountMismatch++
		case reconcile.MissingInLedger:
			rep.MissingInLedger++
		case reconcile.MissingInStatement:
			rep.MissingInStatement++
		}
		if it.PaymentID != "" {
			rep.PaymentCount++
		}
		if it.Kind != reconcile.Matched {
			breaks = append(breaks, it)
		}
	}

	inserted := false
	err = pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		inserted, err = insertReport(ctx, tx, rep, coverage, items)
		return err
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("keep reconciliation report: %w", err)
	}
	if !inserted {
		// Another import of the same file committed first: its report is
		// the one.
		kept, ok, err := s.reportByKey(ctx, s.pool, st.Digest, r.Channel, coverage)
		if err != nil {
			return ImportResult{}, err
		}
		if !ok {
			return ImportResult{}, fmt.Errorf("reconciliation report of %s vanished after a conflict", st.Digest)
		}
		return s.replay(ctx, kept, st)
	}
	return ImportResult{Report: rep, Breaks: breaks}, nil
}

func (r StatementImport) validate() error {
	switch r.Format {
	case statement.FormatCSV, statement.FormatCamt053, statement.FormatCamt054:
	case "":
		return invalid("format", "is required: CSV, camt.053 or camt.054")
	default:
		return invalid("format", "must be CSV, camt.053 or camt.054, got %q", r.Format)
	}
	if r.Channel == "" {
		return invalid("channel", "is required: the channel whose provider issued the statement, one of %v", merchant.Channels)
	}
	if !r.Channel.Valid() {
		return invalid("channel", "must be one of %v, got %q", merchant.Channels, r.Channel)
	}
	if len(r.Content) == 0 {
		return invalid("content", "is required: the statement file as received")
	}
	startSet, endSet := !r.PeriodStart.IsZero(), !r.PeriodEnd.IsZero()
	switch {
	case r.Format == statement.FormatCSV && !startSet:
		return invalid("period_start", "is required for CSV: a CSV states no period of its own")
	case r.Format == statement.FormatCSV && !endSet:
		return invalid("period_end", "is required for CSV: a CSV states no period of its own")
	case startSet && !endSet:
		return invalid("period_end", "is required with period_start (or leave both unset to use the statement's FrToDt)")
	case endSet && !startSet:
		return invalid("period_start", "is required with period_end (or leave both unset to use the statement's FrToDt)")
	case startSet:
		return checkStatementPeriod(r.PeriodStart, r.PeriodEnd)
	}
	return nil
}

// checkStatementPeriod bounds a period: in order, after 2000 like every
// ledger time, and at most MaxPeriodDays long, which bounds the payments
// one import reads.
func checkStatementPeriod(start, end time.Time) error {
	switch {
	case start.Before(earliestDay.Start()):
		return invalid("period_start", "must be on or after %s, got %s", earliestDay, start.UTC().Format(time.RFC3339))
	case !end.After(start):
		return invalid("period_end", "%s is not after period_start %s", end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	case end.Sub(start) > MaxPeriodDays*24*time.Hour:
		return invalid("period_end", "a statement period is at most %d days, got [%s, %s)", MaxPeriodDays,
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkLineChannels refuses a statement with a line that names another
// channel than the one it is imported for: its lines would all be reported
// missing in the ledger, matched against the wrong provider's payments.
func checkLineChannels(lines []statement.Line, ch merchant.Channel) error {
	for _, l := range lines {
		if l.Channel != "" && !strings.EqualFold(l.Channel, string(ch)) {
			return invalid("content", "%v", &statement.Error{Line: l.Number, Field: "channel",
				Reason: fmt.Sprintf("the line is %s but the statement is imported for %s", strconv.Quote(l.Channel), ch)})
		}
	}
	return nil
}

// coverage resolves the markets an import covers (sorted; nil for every
// market) and their uniqueness key.
func (s *Service) coverage(ctx context.Context, market string, scope []string) ([]string, string, error) {
	if market != "" {
		mk, err := s.merchants.GetMarket(ctx, market)
		if err != nil {
			return nil, "", ledger.RenameField(err, "code", "market")
		}
		return []string{mk.Code}, mk.Code, nil
	}
	if len(scope) == 0 {
		return nil, "*", nil
	}
	ms := slices.Clone(scope)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	return ms, strings.Join(ms, ","), nil
}

// statementPayments reads the payments a statement is matched against: the
// channel's, in the covered markets, that the provider moved money for
// (confirmed, then possibly refunded: the refund is a separate movement),
// at what the provider confirmed. A payment is taken when it occurred
// within ReconcileWindow of the period, or when its provider reference is
// on the statement, wherever its time: a reference is the provider's own
// word that the payment is this line. A payment of the channel whose
// reference is on the statement but that is not matched (another market's,
// or one that moved no money) is read too, Excluded, so that its line is
// not paired with another payment. More than s.maxReconciled payments are
// refused, naming the period: the caller narrows it, or the markets.
func (s *Service) statementPayments(ctx context.Context, ch merchant.Channel, markets []string, st statement.Statement) ([]reconcile.Payment, error) {
	// References are found through the journal, where each is the unique
	// external reference of the entry that brought it (payment.ExternalRef).
	refs := make([]string, 0, len(st.Lines))
	for _, l := range st.Lines {
		if l.Credit && !l.Reversal {
			refs = append(refs, payment.ExternalRef(ch, l.Ref))
		}
	}
	const matched = `status IN ('confirmed', 'partially_refunded', 'refunded') AND ($2::text[] IS NULL OR market = ANY($2::text[]))`
	q := `
SELECT id::text, COALESCE(provider_ref, ''), confirmed_amount, occurred_at, NOT (` + matched + `)
  FROM payments
 WHERE channel = $1
   AND id IN (SELECT id FROM payments WHERE channel = $1 AND occurred_at >= $3 AND occurred_at < $4 AND ` + matched + `
              UNION ` + payment.IDsByExternalRef("= ANY($5::text[])") + `)
 ORDER BY id
 LIMIT $6`
	rows, err := s.pool.Query(ctx, q, string(ch), markets,
		st.PeriodStart.Add(-ReconcileWindow), st.PeriodEnd.Add(ReconcileWindow), refs, s.maxReconciled+1)
	if err != nil {
		return nil, fmt.Errorf("read payments to reconcile: %w", err)
	}
	payments, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reconcile.Payment, error) {
		var p reconcile.Payment
		err := row.Scan(&p.ID, &p.ProviderRef, &p.Amount, &p.BookedAt, &p.Excluded)
		p.BookedAt = p.BookedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read payments to reconcile: %w", err)
	}
	if len(payments) > s.maxReconciled {
		return nil, invalid("period_start", "the ledger holds more than %d %s payments in [%s, %s) in the markets covered, more than one statement of at most %d lines can reconcile; import the statement by shorter periods or by market",
			s.maxReconciled, ch, st.PeriodStart.Format(time.RFC3339), st.PeriodEnd.Format(time.RFC3339), MaxStatementLines)
	}
	return payments, nil
}

// itemsOf turns a match into the report's items, in report order (lines
// by number, then payments by id). A payment left unmatched is a break
// only when it occurred at least ReconcileWindow inside the period: one
// nearer an edge, or in the margins beyond it, may have been booked by the
// provider on the other side of the edge, so it belongs to the
// neighbouring statement as much as to this one, and is left out of this
// report rather than reported as a false break.
func itemsOf(m reconcile.Report, payments []reconcile.Payment, start, end time.Time) []ReconciliationItem {
	occurred := make(map[string]time.Time, len(payments))
	for _, p := range payments {
		occurred[p.ID] = p.BookedAt
	}
	coreStart, coreEnd := start.Add(ReconcileWindow), end.Add(-ReconcileWindow)
	items := make([]ReconciliationItem, 0, len(m.Items))
	for _, it := range m.Items {
		if it.Kind == reconcile.MissingInStatement {
			if t := occurred[it.PaymentID]; t.Before(coreStart) || !t.Before(coreEnd) {
				continue
			}
		}
		out := ReconciliationItem{Kind: it.Kind, PaymentID: it.PaymentID, ByReference: it.ByReference}
		if it.PaymentID != "" {
			out.LedgerAmount = it.LedgerAmount
		}
		if it.Line != nil {
			out.Line, out.StatementRef, out.StatementAmount, out.BookedAt = it.Line.Number, it.Line.Ref, it.Line.Amount, it.Line.BookedAt
		}
		items = append(items, out)
	}
	slices.SortFunc(items, func(a, b ReconciliationItem) int {
		switch {
		case a.Line != 0 && b.Line != 0:
			return a.Line - b.Line
		case a.Line != 0:
			return -1
		case b.Line != 0:
			return 1
		}
		return strings.Compare(a.PaymentID, b.PaymentID)
	})
	return items
}

const insertReportSQL = `
INSERT INTO reconciliation_reports (id, digest, format, statement_id, channel, provider, market, markets, coverage,
       period_start, period_end, line_count, payment_count, matched_count, amount_mismatch_count,
       missing_in_ledger_count, missing_in_statement_count, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (digest, channel, coverage) DO NOTHING`

var itemColumns = []string{"report_id", "idx", "kind", "line_number", "statement_ref", "statement_amount", "booked_at",
	"payment_id", "ledger_amount", "by_reference"}

// insertReport writes a report and its items; false means a report of the
// same file, channel and markets exists (or a racing import just committed
// one), and nothing was written.
func insertReport(ctx context.Context, tx pgx.Tx, r ReconciliationReport, coverage string, items []ReconciliationItem) (bool, error) {
	tag, err := tx.Exec(ctx, insertReportSQL, r.ID, r.Digest, string(r.Format), r.StatementID, string(r.Channel), r.Provider,
		r.Market, r.Markets, coverage, r.PeriodStart, r.PeriodEnd, r.LineCount, r.PaymentCount, r.Matched, r.AmountMismatch,
		r.MissingInLedger, r.MissingInStatement, r.CreatedBy, r.CreatedAt)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"reconciliation_items"}, itemColumns,
		pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
			it := items[i]
			row := []any{r.ID, i + 1, string(it.Kind), nil, nil, nil, nil, nil, nil, it.ByReference}
			if it.Line != 0 {
				row[3], row[4], row[5], row[6] = it.Line, it.StatementRef, it.StatementAmount, it.BookedAt
			}
			if it.PaymentID != "" {
				row[7], row[8] = it.PaymentID, it.LedgerAmount
			}
			return row, nil
		}))
	return true, err
}

// replay answers an import of a file already reconciled for the same
// channel and markets: the kept report, if the import asked for the same
// period.
func (s *Service) replay(ctx context.Context, kept ReconciliationReport, st statement.Statement) (ImportResult, error) {
	for _, b := range []struct {
		field     string
		kept, got time.Time
	}{{"period_start", kept.PeriodStart, st.PeriodStart}, {"period_end", kept.PeriodEnd, st.PeriodEnd}} {
		if !b.kept.Equal(b.got) {
			return ImportResult{}, fail(ledger.ErrIdempotencyConflict, b.field,
				"this file was imported for %s with %s %s (report %s), not %s",
				kept.Channel, b.field, b.kept.UTC().Format(time.RFC3339), kept.ID, b.got.UTC().Format(time.RFC3339))
		}
	}
	breaks, _, err := s.readItems(ctx, kept.ID, 0, -1, false)
	if err != nil {
		return ImportResult{}, err
	}
	return ImportResult{Report: kept, Breaks: breaks, Replayed: true}, nil
}

const reportColumns = `id::text, digest, format, statement_id, channel, provider, COALESCE(market, ''), markets,
       period_start, period_end, line_count, payment_count, matched_count, amount_mismatch_count,
       missing_in_ledger_count, missing_in_statement_count, created_by, created_at`

func scanReport(row pgx.Row) (ReconciliationReport, error) {
	var (
		r               ReconciliationReport
		format, channel string
	)
	err := row.Scan(&r.ID, &r.Digest, &format, &r.StatementID, &channel, &r.Provider, &r.Market, &r.Markets,
		&r.PeriodStart, &r.PeriodEnd, &r.LineCount, &r.PaymentCount, &r.Matched, &r.AmountMismatch,
		&r.MissingInLedger, &r.MissingInStatement, &r.CreatedBy, &r.CreatedAt)
	r.Format, r.Channel = statement.Format(format), merchant.Channel(channel)
	r.PeriodStart, r.PeriodEnd, r.CreatedAt = r.PeriodStart.UTC(), r.PeriodEnd.UTC(), r.CreatedAt.UTC()
	return r, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Service) reportByKey(ctx context.Context, q querier, digest string, ch merchant.Channel, coverage string) (ReconciliationReport, bool, error) {
	r, err := scanReport(q.QueryRow(ctx, `SELECT `+reportColumns+` FROM reconciliation_reports
 WHERE digest = $1 AND channel = $2 AND coverage = $3`, digest, string(ch), coverage))
	if errors.Is(err, pgx.ErrNoRows) {
		return ReconciliationReport{}, false, nil
	}
	if err != nil {
		return ReconciliationReport{}, false, fmt.Errorf("read reconciliation report of %s: %w", digest, err)
	}
	return r, true, nil
}

func (s *Service) report(ctx context.Context, id string) (ReconciliationReport, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return ReconciliationReport{}, invalid("id", "must be a reconciliation report id (a UUID), got %q", id)
	}
	r, err := scanReport(s.pool.QueryRow(ctx, `SELECT `+reportColumns+` FROM reconciliation_reports WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return ReconciliationReport{}, fail(ErrReportNotFound, "id", "no reconciliation report %s", id)
	}
	if err != nil {
		return ReconciliationReport{}, fmt.Errorf("read reconciliation report %s: %w", id, err)
	}
	return r, nil
}

// readItems reads a report's items after index after, at most limit of
// them (all when limit < 0), breaks only unless matched, with their
// indexes.
func (s *Service) readItems(ctx context.Context, id string, after, limit int, matched bool) ([]ReconciliationItem, []int, error) {
	q := `
SELECT idx, kind, COALESCE(line_number, 0), COALESCE(statement_ref, ''), COALESCE(statement_amount, 0), booked_at,
       COALESCE(payment_id::text, ''), COALESCE(ledger_amount, 0), by_reference
  FROM reconciliation_items
 WHERE report_id = $1 AND idx > $2`
	if !matched {
		q += ` AND kind <> 'matched'`
	}
	q += ` ORDER BY idx`
	args := []any{id, after}
	if limit >= 0 {
		q += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read items of reconciliation report %s: %w", id, err)
	}
	var idxs []int
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReconciliationItem, error) {
		var (
			it     ReconciliationItem
			idx    int
			kind   string
			booked *time.Time
		)
		err := row.Scan(&idx, &kind, &it.Line, &it.StatementRef, &it.StatementAmount, &booked, &it.PaymentID, &it.LedgerAmount, &it.ByReference)
		it.Kind = reconcile.Kind(kind)
		if booked != nil {
			it.BookedAt = booked.UTC()
		}
		idxs = append(idxs, idx)
		return it, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read items of reconciliation report %s: %w", id, err)
	}
	return items, idxs, nil
}

// ItemQuery asks for a page of a report's items.
type ItemQuery struct {
	// IncludeMatched lists matched items too; by default only breaks.
	IncludeMatched bool
	PageSize       int
	PageToken      string
}

// ReconciliationReport returns a kept report and a page of its items in
// report order, with the next page's token ("" after the last).
func (s *Service) ReconciliationReport(ctx context.Context, id string, q ItemQuery) (ReconciliationReport, []ReconciliationItem, string, error) {
	size, err := ledger.PageSize(q.PageSize)
	if err != nil {
		return ReconciliationReport{}, nil, "", err
	}
	// The token is read first, for the report as the id names it (s.report
	// refuses an id that is not a report's).
	rid, _ := ledger.CanonicalUUID(id)
	query := rid + "," + strconv.FormatBool(q.IncludeMatched)
	place, err := ledger.PageAfter("report items", query, q.PageToken, "id and include_matched")
	if err != nil {
		return ReconciliationReport{}, nil, "", err
	}
	after := 0
	if place != "" {
		if after, err = strconv.Atoi(place); err != nil || after < 1 {
			return ReconciliationReport{}, nil, "", invalid("page_token", "is not a token of this list")
		}
	}
	r, err := s.report(ctx, id)
	if err != nil {
		return ReconciliationReport{}, nil, "", err
	}
	items, idxs, err := s.readItems(ctx, r.ID, after, size+1, q.IncludeMatched)
	if err != nil {
		return ReconciliationReport{}, nil, "", err
	}
	next := ""
	if len(items) > size {
		items = items[:size]
		next = ledger.PageToken("report items", query, strconv.Itoa(idxs[size-1]))
	}
	return r, items, next, nil
}

// ReportFilter selects reports for ListReconciliationReports; zero fields
// select all.
type ReportFilter struct {
	Channel  merchant.Channel
	Provider string
	// Market: reports covering it (a report of every market covers all).
	Market string
	// Within, when not nil, keeps only reports whose markets all lie in it
	// (so never a report of every market): a bound caller's view.
	Within    []string
	PageSize  int
	PageToken string
}

// ListReconciliationReports returns a page of kept reports, newest first,
// and the next page's token ("" after the last).
func (s *Service) ListReconciliationReports(ctx context.Context, f ReportFilter) ([]ReconciliationReport, string, error) {
	size, err := ledger.PageSize(f.PageSize)
	if err != nil {
		return nil, "", err
	}
	if f.Channel != "" && !f.Channel.Valid() {
		return nil, "", invalid("channel", "must be one of %v, got %q", merchant.Channels, f.Channel)
	}
	if f.Market != "" {
		if err := merchant.CheckMarketCode("market", f.Market); err != nil {
			return nil, "", err
		}
	}
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Channel != "" {
		conds = append(conds, "channel = "+arg(string(f.Channel)))
	}
	if f.Provider != "" {
		conds = append(conds, "provider = "+arg(f.Provider))
	}
	if f.Market != "" {
		conds = append(conds, "(markets IS NULL OR "+arg(f.Market)+" = ANY(markets))")
	}
	if f.Within != nil {
		conds = append(conds, "markets <@ "+arg(f.Within)+"::text[]")
	}
	place, err := ledger.PageAfter("reports", f.query(), f.PageToken, "channel and market, with the same credential,")
	if err != nil {
		return nil, "", err
	}
	if place != "" {
		at, id, err := decodeReportPlace(place)
		if err != nil {
			return nil, "", err
		}
		conds = append(conds, "(created_at, id) < ("+arg(at)+", "+arg(id)+"::uuid)")
	}
	q := `SELECT ` + reportColumns + ` FROM reconciliation_reports`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC LIMIT " + arg(size+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list reconciliation reports: %w", err)
	}
	reports, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReconciliationReport, error) { return scanReport(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list reconciliation reports: %w", err)
	}
	next := ""
	if len(reports) > size {
		reports = reports[:size]
		last := reports[size-1]
		next = ledger.PageToken("reports", f.query(), strconv.FormatInt(last.CreatedAt.UnixMicro(), 10)+":"+last.ID)
	}
	return reports, next, nil
}

// query writes what a page token keeps of the filter, the query its pages
// continue: every field but the page's size and token, the caller's
// provider and markets included.
func (f ReportFilter) query() string {
	within := "*"
	if f.Within != nil {
		within = strings.Join(f.Within, " ")
	}
	return strings.Join([]string{string(f.Channel), f.Provider, f.Market, within}, ",")
}

// decodeReportPlace reads a report's place in a listing: its creation
// time and id.
func decodeReportPlace(place string) (time.Time, string, error) {
	micros, id, ok := strings.Cut(place, ":")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || !ledger.ValidUUID(id) {
		return time.Time{}, "", invalid("page_token", "is not a token of this list")
	}
	return time.UnixMicro(us).UTC(), id, nil
}

// ReconciliationScope returns who may see a reconciliation report.
func (s *Service) ReconciliationScope(ctx context.Context, id string) (ReportScope, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return ReportScope{}, invalid("id", "must be a reconciliation report id (a UUID), got %q", id)
	}
	var scope ReportScope
	err := s.pool.QueryRow(ctx, `SELECT provider, markets FROM reconciliation_reports WHERE id = $1`, id).Scan(&scope.Provider, &scope.Markets)
	if errors.Is(err, pgx.ErrNoRows) {
		return ReportScope{}, fail(ErrReportNotFound, "id", "no reconciliation report %s", id)
	}
	if err != nil {
		return ReportScope{}, fmt.Errorf("read reconciliation report %s: %w", id, err)
	}
	return scope, nil
}
