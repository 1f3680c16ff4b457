package merchant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/coalesce"
	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
)

// Store keeps markets and merchants in PostgreSQL and opens their ledger
// accounts.
type Store struct {
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	reader *coalesce.Reader[string, Merchant] // GetMerchant's reads
}

// NewStore returns a store over pool, opening accounts in l.
func NewStore(pool *pgxpool.Pool, l *ledger.Ledger) *Store {
	s := &Store{pool: pool, ledger: l}
	s.reader = coalesce.New(s.readMerchants)
	return s
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// openAccounts opens specs, or finds them already open with the same
// attributes, which is what makes a retried create (or one that lost a race)
// safe. An account of that code with other attributes was not opened by this
// package, and is refused rather than adopted.
func (s *Store) openAccounts(ctx context.Context, field string, specs ...ledger.AccountSpec) error {
	for _, spec := range specs {
		a, created, err := s.ledger.CreateAccount(ctx, spec)
		if err != nil {
			return accountNotOpened(field, spec, err)
		}
		if !created {
			if err := unused(ctx, s.pool, field, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// unused refuses an account found open, with the attributes this package
// gives it, that entries were posted to. This package opens its accounts
// with what they are opened for, and writes to them only once that exists,
// so such an account was opened by hand for something else (a supplier's
// payable, a market's cash float), and the merchant or market would take
// its money for its own: a payout batch would pay a supplier's money to a
// stall. An empty one is taken over, as a create that failed after opening
// it leaves.
func unused(ctx context.Context, q querier, field string, a ledger.Account) error {
	var posted bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_postings WHERE account_id = $1)`, a.ID).Scan(&posted); err != nil {
		return fmt.Errorf("read the postings of account %s: %w", a.Code, err)
	}
	if posted {
		return errorf(ledger.ErrAccountExists, field, "the ledger already has an account %s, with entries posted to it before it was opened here", a.Code)
	}
	return nil
}

func accountNotOpened(field string, spec ledger.AccountSpec, err error) error {
	if errors.Is(err, ledger.ErrAccountExists) {
		return errorf(ledger.ErrAccountExists, field, "the ledger already has an account %s with other attributes (%v)", spec.Code, err)
	}
	return fmt.Errorf("open account %s: %w", spec.Code, err)
}

// Markets.

const marketColumns = `code, name, province, ward, status,
       collection_bank_bin, collection_account_number, collection_holder_name, created_at`

func scanMarket(row pgx.Row) (Market, error) {
	var m Market
	var status string
	var bin, acct, holder *string
	err := row.Scan(&m.Code, &m.Name, &m.Province, &m.Ward, &status, &bin, &acct, &holder, &m.CreatedAt)
	m.Status = MarketStatus(status)
	m.Collection = storedAccount(bin, acct, holder)
	m.CreatedAt = m.CreatedAt.UTC()
	return m, err
}

// storedAccount is the bank account of the columns accountColumns writes:
// none when they are NULL.
func storedAccount(bin, account, holder *string) *BankAccount {
	if bin == nil || account == nil || holder == nil {
		return nil
	}
	return &BankAccount{BankBIN: *bin, AccountNumber: *account, HolderName: *holder}
}

// accountColumns are a bank account's bank BIN, number and holder as
// stored: all NULL for none.
func accountColumns(a *BankAccount) (bin, account, holder *string) {
	if a == nil {
		return nil, nil, nil
	}
	return &a.BankBIN, &a.AccountNumber, &a.HolderName
}

// CreateMarket registers a market, active unless m says closed. Its ledger
// accounts (fees, suspense, one clearing account per channel) are opened
// first, so that a market never exists without them; a create that fails
// after opening them leaves empty accounts that a retry adopts.
func (s *Store) CreateMarket(ctx context.Context, m Market) (Market, error) {
	m, verr := m.validate()
	if verr != nil {
		return Market{}, verr
	}
	// Checked before opening accounts only to spare the work; the insert
	// below is what decides.
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM markets WHERE code = $1)`, m.Code).Scan(&exists); err != nil {
		return Market{}, fmt.Errorf("create market %s: %w", m.Code, err)
	}
	if exists {
		return Market{}, errorf(ErrMarketExists, "market.code", "market %s already exists", m.Code)
	}
	if err := s.openAccounts(ctx, "market.code", MarketAccounts(m.Code)...); err != nil {
		return Market{}, err
	}
	const insert = `
INSERT INTO markets (code, name, province, ward, status, collection_bank_bin, collection_account_number, collection_holder_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (code) DO NOTHING
RETURNING ` + marketColumns
	bin, account, holder := accountColumns(m.Collection)
	out, err := scanMarket(s.pool.QueryRow(ctx, insert, m.Code, m.Name, m.Province, m.Ward, string(m.Status), bin, account, holder))
	if errors.Is(err, pgx.ErrNoRows) {
		return Market{}, errorf(ErrMarketExists, "market.code", "market %s already exists", m.Code)
	}
	if err != nil {
		return Market{}, fmt.Errorf("create market %s: %w", m.Code, err)
	}
	return out, nil
}

// GetMarket returns the market with code.
func (s *Store) GetMarket(ctx context.Context, code string) (Market, error) {
	code, verr := marketCode("code", code)
	if verr != nil {
		return Market{}, verr
	}
	return getMarket(ctx, s.pool, "code", code, "")
}

// getMarket reads a market; lock is "" or a locking clause.
func getMarket(ctx context.Context, q querier, field, code, lock string) (Market, error) {
	m, err := scanMarket(q.QueryRow(ctx, `SELECT `+marketColumns+` FROM markets WHERE code = $1 `+lock, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Market{}, errorf(ErrMarketNotFound, field, "no market %s", code)
	}
	if err != nil {
		return Market{}, fmt.Errorf("read market %s: %w", code, err)
	}
	return m, nil
}

// MarketFilter selects markets for ListMarkets; zero fields select all.
type MarketFilter struct {
	Province  string
	Status    MarketStatus
	PageSize  int
	PageToken string
}

// ListMarkets returns a page of markets in code order and the next page's
// token ("" after the last page).
func (s *Store) ListMarkets(ctx context.Context, f MarketFilter) ([]Market, string, error) {
	size, err := ledger.PageSize(f.PageSize)
	if err != nil {
		return nil, "", err
	}
	province, verr := text("province", f.Province, 0, 100)
	if verr != nil {
		return nil, "", verr
	}
	if f.Status != "" && !f.Status.valid() {
		return nil, "", invalid("status", "must be active or closed, got %q", f.Status)
	}
	query := string(f.Status) + "," + province
	after, err := ledger.PageAfter("markets", query, f.PageToken, "province and status")
	if err != nil {
		return nil, "", err
	}
	const list = `
SELECT ` + marketColumns + ` FROM markets
 WHERE code > $1 AND ($2 = '' OR province = $2) AND ($3 = '' OR status = $3)
 ORDER BY code LIMIT $4`
	rows, err := s.pool.Query(ctx, list, after, province, string(f.Status), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list markets: %w", err)
	}
	markets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Market, error) { return scanMarket(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list markets: %w", err)
	}
	next := ""
	if len(markets) > size {
		markets = markets[:size]
		next = ledger.PageToken("markets", query, markets[size-1].Code)
	}
	return markets, next, nil
}

// UpdateMarket changes the fields of the market m.Code named by paths (name,
// province, ward, collection_account, status) to their values in m; a
// collection account named and left out is refused. A closed market takes no new
// merchants, and none back from suspension; its merchants keep their status.
func (s *Store) UpdateMarket(ctx context.Context, m Market, paths []string) (Market, error) {
	var verr *ledger.Error
	if m.Code, verr = marketCode("market.code", m.Code); verr != nil {
		return Market{}, verr
	}
	fields, verr := checkPaths(paths, marketUpdateFields)
	if verr != nil {
		return Market{}, verr
	}
	for _, f := range fields {
		if verr := f.check(&m); verr != nil {
			return Market{}, verr
		}
		if f.path == "collection_account" && m.Collection == nil {
			// The QRs already printed name it: it can be changed, and the
			// market's new QRs then name the new one, but not removed.
			return Market{}, invalid("market.collection_account", "is required when named in update_mask: the market's QRs pay into it")
		}
	}
	const update = `
UPDATE markets SET name = $2, province = $3, ward = $4, status = $5,
       collection_bank_bin = $6, collection_account_number = $7, collection_holder_name = $8
 WHERE code = $1
RETURNING ` + marketColumns
	var out Market
	err := pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		cur, err := getMarket(ctx, tx, "market.code", m.Code, "FOR UPDATE")
		if err != nil {
			return err
		}
		for _, f := range fields {
			f.copy(&cur, &m)
		}
		bin, account, holder := accountColumns(cur.Collection)
		out, err = scanMarket(tx.QueryRow(ctx, update, cur.Code, cur.Name, cur.Province, cur.Ward, string(cur.Status), bin, account, holder))
		return err
	})
	if err != nil {
		return Market{}, fmt.Errorf("update market %s: %w", m.Code, err)
	}
	return out, nil
}

// Merchants.

// A merchant's stalls are those it holds, or for a closed merchant those it
// held when it closed.
const merchantColumns = `m.code, m.market,
       ARRAY(SELECT s.stall FROM merchant_stalls s WHERE s.merchant = m.code ORDER BY s.stall) || m.released_stalls,
       m.display_name, m.owner_name, m.phone, m.status, m.status_reason,
       m.payout_bank_bin, m.payout_account_number, m.payout_holder_name,
       m.fee_channels, m.fee_basis_points, m.min_fee, m.channels, m.created_at, m.updated_at`

func scanMerchant(row pgx.Row) (Merchant, error) {
	var (
		m                   Merchant
		status              string
		bin, acct, holder   *string
		feeChannels, chans  []string
		feeBasisPoints      []int32
		createdAt, updateAt time.Time
	)
	err := row.Scan(&m.Code, &m.Market, &m.Stalls, &m.DisplayName, &m.Owner, &m.Phone, &status, &m.StatusReason,
		&bin, &acct, &holder, &feeChannels, &feeBasisPoints, &m.Fees.MinFee, &chans, &createdAt, &updateAt)
	if err != nil {
		return Merchant{}, err
	}
	m.Status = Status(status)
	m.Payout = storedAccount(bin, acct, holder)
	if len(feeChannels) > 0 {
		m.Fees.BasisPoints = make(map[Channel]int, len(feeChannels))
		for i, ch := range feeChannels {
			m.Fees.BasisPoints[Channel(ch)] = int(feeBasisPoints[i])
		}
	}
	for _, ch := range chans {
		m.Channels = append(m.Channels, Channel(ch))
	}
	m.CreatedAt, m.UpdatedAt = createdAt.UTC(), updateAt.UTC()
	return m, nil
}

// getMerchant reads a merchant; lock is "" or a locking clause.
func getMerchant(ctx context.Context, q querier, field, code, lock string) (Merchant, error) {
	m, err := scanMerchant(q.QueryRow(ctx, `SELECT `+merchantColumns+` FROM merchants m WHERE m.code = $1 `+lock, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Merchant{}, errorf(ErrMerchantNotFound, field, "no merchant %s", code)
	}
	if err != nil {
		return Merchant{}, fmt.Errorf("read merchant %s: %w", code, err)
	}
	return m, nil
}

// storedColumns are the merchant's columns as written, beside
// storedValues.
type storedColumns struct {
	bin, account, holder *string
	channels             []string
	feeChannels          []string
	feeBasisPoints       []int32
}

func stored(m Merchant) storedColumns {
	var c storedColumns
	c.bin, c.account, c.holder = accountColumns(m.Payout)
	c.channels = make([]string, len(m.Channels))
	for i, ch := range m.Channels {
		c.channels[i] = string(ch)
	}
	c.feeChannels, c.feeBasisPoints = []string{}, []int32{}
	for _, ch := range sortedChannels(m.Fees.BasisPoints) {
		c.feeChannels = append(c.feeChannels, string(ch))
		c.feeBasisPoints = append(c.feeBasisPoints, int32(m.Fees.BasisPoints[ch]))
	}
	return c
}

// marketOpen checks that market exists and takes merchants, locking its row
// against a concurrent close until the transaction ends.
func marketOpen(ctx context.Context, q querier, field, market, lock string) error {
	mk, err := getMarket(ctx, q, field, market, lock)
	if err != nil {
		return err
	}
	if mk.Status != MarketActive {
		return errorf(ErrMarketClosed, field, "market %s is %s", market, mk.Status)
	}
	return nil
}

// stallHolder finds the first of stalls held in market by a merchant other
// than self.
func stallHolder(ctx context.Context, q querier, market string, stalls []string, self string) (stall, holder string, err error) {
	const find = `
SELECT stall, merchant FROM merchant_stalls
 WHERE market = $1 AND stall = ANY ($2) AND merchant <> $3
 ORDER BY stall LIMIT 1`
	err = q.QueryRow(ctx, find, market, stalls, self).Scan(&stall, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	return stall, holder, err
}

func stallTaken(market, stall, holder string) error {
	return errorf(ErrStallTaken, "merchant.stalls", "stall %s of market %s is held by merchant %s", stall, market, holder)
}

// takeStalls gives the merchant its stalls. The primary key of
// merchant_stalls decides between merchants racing for a stall: the loser's
// insert does nothing, and it is told who holds the stall.
func takeStalls(ctx context.Context, tx pgx.Tx, market, merchant string, stalls []string) error {
	const insert = `
INSERT INTO merchant_stalls (market, stall, merchant)
SELECT $1, s, $3 FROM unnest($2::text[]) AS s
ON CONFLICT (market, stall) DO NOTHING
RETURNING stall`
	rows, err := tx.Query(ctx, insert, market, stalls, merchant)
	if err != nil {
		return err
	}
	taken, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, st := range stalls {
		if slices.Contains(taken, st) {
			continue
		}
		var holder string
		if err := tx.QueryRow(ctx, `SELECT merchant FROM merchant_stalls WHERE market = $1 AND stall = $2`, market, st).Scan(&holder); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return stallTaken(market, st, holder)
	}
	return nil
}

// CreateMerchant registers a merchant, active unless m says pending, in an
// active market. Its payable account is opened in the same transaction, so
// that a merchant never exists without it and a refused merchant, also one
// that lost a race for its stall, leaves no account behind.
func (s *Store) CreateMerchant(ctx context.Context, m Merchant) (Merchant, error) {
	m, verr := m.validate()
	if verr != nil {
		return Merchant{}, verr
	}
	if err := marketOpen(ctx, s.pool, "merchant.market", m.Market, ""); err != nil {
		return Merchant{}, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM merchants WHERE code = $1)`, m.Code).Scan(&exists); err != nil {
		return Merchant{}, fmt.Errorf("create merchant %s: %w", m.Code, err)
	}
	if exists {
		return Merchant{}, errorf(ErrMerchantExists, "merchant.code", "merchant %s already exists", m.Code)
	}
	stall, holder, err := stallHolder(ctx, s.pool, m.Market, m.Stalls, m.Code)
	if err != nil {
		return Merchant{}, fmt.Errorf("create merchant %s: %w", m.Code, err)
	}
	if stall != "" {
		return Merchant{}, stallTaken(m.Market, stall, holder)
	}

	// DO NOTHING names no index: a copy of this creation committing at the
	// same moment conflicts on (code, market) as well as on code, and an
	// index the clause does not name would refuse the insert with a unique
	// violation instead of leaving it undone.
	const insert = `
INSERT INTO merchants (code, market, display_name, owner_name, phone, status, status_reason,
                       payout_bank_bin, payout_account_number, payout_holder_name,
                       channels, fee_channels, fee_basis_points, min_fee, registration)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT DO NOTHING
RETURNING code`
	// A merchant is numbered in its market as it is registered, holding the
	// market's row until it commits, so the numbers commit in order: a
	// snapshot that sees the market's count sees every merchant numbered up
	// to it and none after, which is how a market's settlement keeps its
	// later pages to the merchants of its first.
	const count = `UPDATE markets SET merchants_registered = merchants_registered + 1 WHERE code = $1 RETURNING merchants_registered`
	c := stored(m)
	var out Merchant
	err = pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Opened with the merchant, so that a create that fails (a stall
		// taken meanwhile) leaves no account of a merchant that is not.
		payable, created, err := ledger.OpenAccount(ctx, tx, PayableSpec(m))
		if err != nil {
			return accountNotOpened("merchant.code", PayableSpec(m), err)
		}
		// The market's row is held from here to the commit: against a
		// concurrent close, and to number the merchant.
		if err := marketOpen(ctx, tx, "merchant.market", m.Market, "FOR NO KEY UPDATE"); err != nil {
			return err
		}
		var registration int64
		if err := tx.QueryRow(ctx, count, m.Market).Scan(&registration); err != nil {
			return err
		}
		var code string
		err = tx.QueryRow(ctx, insert, m.Code, m.Market, m.DisplayName, m.Owner, m.Phone, string(m.Status), m.StatusReason,
			c.bin, c.account, c.holder, c.channels, c.feeChannels, c.feeBasisPoints, m.Fees.MinFee, registration).Scan(&code)
		if errors.Is(err, pgx.ErrNoRows) {
			return errorf(ErrMerchantExists, "merchant.code", "merchant %s already exists", m.Code)
		}
		if err != nil {
			return err
		}
		// Checked once the merchant is known to be new: a copy of this
		// creation that committed meanwhile opened the payable, which may
		// have been paid since, and this one is told the merchant exists.
		if !created {
			if err := unused(ctx, tx, "merchant.code", payable); err != nil {
				return err
			}
		}
		if err := takeStalls(ctx, tx, m.Market, m.Code, m.Stalls); err != nil {
			return err
		}
		out, err = getMerchant(ctx, tx, "merchant.code", m.Code, "")
		return err
	})
	if err != nil {
		return Merchant{}, fmt.Errorf("create merchant %s: %w", m.Code, err)
	}
	return out, nil
}

// GetMerchant returns the merchant with code, personal data in full. Reads
// of single merchants made at the same moment go to PostgreSQL as one query
// (internal/coalesce), each as fresh as a read of its own.
func (s *Store) GetMerchant(ctx context.Context, code string) (Merchant, error) {
	code, verr := merchantCode("code", code)
	if verr != nil {
		return Merchant{}, verr
	}
	memo := memoOf(ctx)
	if m, ok := memo.get(code); ok {
		return m, nil
	}
	m, found, err := s.sharedRead(ctx, memo, code)
	if err == nil && !found {
		err = errorf(ErrMerchantNotFound, "code", "no merchant %s", code)
	}
	return m, err
}

// sharedRead reads one merchant through the reads shared with the calls
// asking for theirs at the same moment, and remembers it in the call's
// memo.
func (s *Store) sharedRead(ctx context.Context, memo *memo, code string) (Merchant, bool, error) {
	m, found, err := s.reader.Get(ctx, code)
	if err != nil || !found {
		return Merchant{}, false, err
	}
	memo.put(m)
	// Calls that asked for the same merchant in one query share its value.
	return m.clone(), true, nil
}

// GetMerchants returns the merchants with the given codes, by code, in one
// query; codes that name no merchant are absent from the map, and so are
// codes no merchant can have (which are not sent to PostgreSQL, which could
// not store a NUL in them anyway).
func (s *Store) GetMerchants(ctx context.Context, codes []string) (map[string]Merchant, error) {
	memo := memoOf(ctx)
	out := make(map[string]Merchant, len(codes))
	var missing []string
	for _, code := range codes {
		if !ValidMerchantCode(code) {
			continue
		}
		if m, ok := memo.get(code); ok {
			out[code] = m
		} else {
			missing = append(missing, code)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	if len(missing) == 1 {
		// A call's one merchant (a stall payment recorded by an operator).
		m, found, err := s.sharedRead(ctx, memo, missing[0])
		if err != nil {
			return nil, err
		}
		if found {
			out[m.Code] = m
		}
		return out, nil
	}
	read, err := s.readMerchants(ctx, missing)
	if err != nil {
		return nil, err
	}
	for code, m := range read {
		out[code] = m
		memo.put(m)
	}
	return out, nil
}

// readMerchants reads the merchants with codes in one query.
func (s *Store) readMerchants(ctx context.Context, codes []string) (map[string]Merchant, error) {
	query, arg := `SELECT `+merchantColumns+` FROM merchants m WHERE m.code = ANY($1)`, any(codes)
	if len(codes) == 1 {
		// One merchant as a plain equality, which PostgreSQL plans once per
		// session; an array is planned again at every execution.
		query, arg = `SELECT `+merchantColumns+` FROM merchants m WHERE m.code = $1`, codes[0]
	}
	rows, err := s.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("read merchants: %w", err)
	}
	defer rows.Close()
	out := make(map[string]Merchant, len(codes))
	for rows.Next() {
		m, err := scanMerchant(rows)
		if err != nil {
			return nil, fmt.Errorf("read merchants: %w", err)
		}
		out[m.Code] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read merchants: %w", err)
	}
	return out, nil
}

// MerchantFilter selects merchants for ListMerchants; zero fields select
// all.
type MerchantFilter struct {
	Market    string
	Status    Status
	PageSize  int
	PageToken string
}

// ListMerchants returns a page of merchants in code order, personal data in
// full (callers mask), and the next page's token ("" after the last page).
func (s *Store) ListMerchants(ctx context.Context, f MerchantFilter) ([]Merchant, string, error) {
	size, err := ledger.PageSize(f.PageSize)
	if err != nil {
		return nil, "", err
	}
	market := strings.TrimSpace(f.Market)
	if market != "" {
		var verr *ledger.Error
		if market, verr = marketCode("market", market); verr != nil {
			return nil, "", verr
		}
	}
	if f.Status != "" && !f.Status.valid() {
		return nil, "", invalid("status", "must be pending, active, suspended or closed, got %q", f.Status)
	}
	query := market + "," + string(f.Status)
	after, err := ledger.PageAfter("merchants", query, f.PageToken, "market and status")
	if err != nil {
		return nil, "", err
	}
	const list = `
SELECT ` + merchantColumns + ` FROM merchants m
 WHERE m.code > $1 AND ($2 = '' OR m.market = $2) AND ($3 = '' OR m.status = $3)
 ORDER BY m.code LIMIT $4`
	rows, err := s.pool.Query(ctx, list, after, market, string(f.Status), size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list merchants: %w", err)
	}
	merchants, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Merchant, error) { return scanMerchant(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list merchants: %w", err)
	}
	next := ""
	if len(merchants) > size {
		merchants = merchants[:size]
		next = ledger.PageToken("merchants", query, merchants[size-1].Code)
	}
	return merchants, next, nil
}

// UpdateMerchant changes the fields of merchant m.Code named by paths
// (stalls, display_name, owner_name, phone, payout_account, fee_plan,
// channels) to their values in m. Status has its own calls (Suspend,
// Reinstate, Close), so that every status change is a deliberate one. Of a
// closed merchant only the payout account can be changed: what it is still
// owed is paid out as usual, and the account it gave when it closed may no
// longer take the transfer.
func (s *Store) UpdateMerchant(ctx context.Context, m Merchant, paths []string) (Merchant, error) {
	m = m.clone()
	var verr *ledger.Error
	if m.Code, verr = merchantCode("merchant.code", m.Code); verr != nil {
		return Merchant{}, verr
	}
	fields, verr := checkPaths(paths, merchantFields)
	if verr != nil {
		return Merchant{}, verr
	}
	for _, f := range fields {
		if verr := f.check(&m); verr != nil {
			return Merchant{}, verr
		}
	}
	const update = `
UPDATE merchants
   SET display_name = $2, owner_name = $3, phone = $4,
       payout_bank_bin = $5, payout_account_number = $6, payout_holder_name = $7,
       channels = $8, fee_channels = $9, fee_basis_points = $10, min_fee = $11,
       updated_at = now()
 WHERE code = $1`
	var out Merchant
	err := pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		cur, err := getMerchant(ctx, tx, "merchant.code", m.Code, "FOR UPDATE OF m")
		if err != nil {
			return err
		}
		if cur.Status == StatusClosed && slices.ContainsFunc(fields, func(f maskField[Merchant]) bool { return f.path != "payout_account" }) {
			return errorf(ErrBadTransition, "merchant.code", "merchant %s is closed; of a closed merchant only the payout account can be changed", cur.Code)
		}
		for _, f := range fields {
			f.copy(&cur, &m)
		}
		// Either list may have changed; the other is the stored one.
		if err := checkFeesAccepted(cur); err != nil {
			return err
		}
		if slices.ContainsFunc(fields, func(f maskField[Merchant]) bool { return f.path == "stalls" }) {
			if _, err := tx.Exec(ctx, `DELETE FROM merchant_stalls WHERE merchant = $1`, cur.Code); err != nil {
				return err
			}
			if err := takeStalls(ctx, tx, cur.Market, cur.Code, cur.Stalls); err != nil {
				return err
			}
		}
		c := stored(cur)
		if _, err := tx.Exec(ctx, update, cur.Code, cur.DisplayName, cur.Owner, cur.Phone,
			c.bin, c.account, c.holder, c.channels, c.feeChannels, c.feeBasisPoints, cur.Fees.MinFee); err != nil {
			return err
		}
		out, err = getMerchant(ctx, tx, "merchant.code", cur.Code, "")
		return err
	})
	if err != nil {
		return Merchant{}, fmt.Errorf("update merchant %s: %w", m.Code, err)
	}
	return out, nil
}

// Suspend stops an active merchant from taking payments, for reason. Its
// history, balance and stalls stay.
func (s *Store) Suspend(ctx context.Context, code, reason string) (Merchant, error) {
	return s.transition(ctx, "suspend", code, reason, StatusSuspended, StatusActive)
}

// Reinstate makes a pending or suspended merchant active, in an active
// market.
func (s *Store) Reinstate(ctx context.Context, code string) (Merchant, error) {
	return s.transition(ctx, "reinstate", code, "", StatusActive, StatusPending, StatusSuspended)
}

// Close closes a merchant for good, for reason, and releases its stalls for
// another merchant to take. Its history and balance stay; what it is still
// owed is paid out as usual.
func (s *Store) Close(ctx context.Context, code, reason string) (Merchant, error) {
	return s.transition(ctx, "close", code, reason, StatusClosed, StatusPending, StatusActive, StatusSuspended)
}

func (s *Store) transition(ctx context.Context, verb, code, why string, to Status, from ...Status) (Merchant, error) {
	code, verr := merchantCode("code", code)
	if verr != nil {
		return Merchant{}, verr
	}
	if why, verr = reason("reason", why); verr != nil {
		return Merchant{}, verr
	}
	// Closing moves the stalls from merchant_stalls to released_stalls in
	// one statement: the subquery sees the rows the DELETE after it removes.
	const update = `
UPDATE merchants
   SET status = $2, status_reason = $3, updated_at = now(),
       released_stalls = CASE WHEN $2 = 'closed'
           THEN ARRAY(SELECT s.stall FROM merchant_stalls s WHERE s.merchant = $1 ORDER BY s.stall)
           ELSE released_stalls END
 WHERE code = $1`
	var out Merchant
	err := pg.Transact(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		cur, err := getMerchant(ctx, tx, "code", code, "FOR UPDATE OF m")
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.Status) {
			return errorf(ErrBadTransition, "code", "merchant %s is %s; only a %s merchant can become %s", code, cur.Status, joinStatuses(from), to)
		}
		if to == StatusActive {
			if err := marketOpen(ctx, tx, "code", cur.Market, "FOR SHARE"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, update, code, string(to), why); err != nil {
			return err
		}
		if to == StatusClosed {
			if _, err := tx.Exec(ctx, `DELETE FROM merchant_stalls WHERE merchant = $1`, code); err != nil {
				return err
			}
		}
		out, err = getMerchant(ctx, tx, "code", code, "")
		return err
	})
	if err != nil {
		return Merchant{}, fmt.Errorf("%s merchant %s: %w", verb, code, err)
	}
	return out, nil
}

func joinStatuses(ss []Status) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, " or ")
}
