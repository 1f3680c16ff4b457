package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
)

// AccountType is the accounting nature of an account.
type AccountType string

const (
	Asset     AccountType = "asset"
	Liability AccountType = "liability"
	Revenue   AccountType = "revenue"
	Expense   AccountType = "expense"
	Equity    AccountType = "equity"
)

func (t AccountType) valid() bool {
	switch t {
	case Asset, Liability, Revenue, Expense, Equity:
		return true
	}
	return false
}

// DebitNormal reports whether the account's balance grows with debits.
func (t AccountType) DebitNormal() bool { return t == Asset || t == Expense }

// Account flags, as stored.
const (
	FlagDebitsMustNotExceedCredits = 1 << 0
	FlagCreditsMustNotExceedDebits = 1 << 1
)

// Totals are an account's four running sums, in minor units.
type Totals struct {
	DebitsPending  int64
	CreditsPending int64
	DebitsPosted   int64
	CreditsPosted  int64
}

// Posted is the posted balance on the account's normal side.
func (t Totals) Posted(typ AccountType) int64 {
	if typ.DebitNormal() {
		return t.DebitsPosted - t.CreditsPosted
	}
	return t.CreditsPosted - t.DebitsPosted
}

// Account is a ledger account with its totals.
type Account struct {
	ID        int64
	Code      string
	Type      AccountType
	Currency  string
	Market    string
	Flags     int
	Totals    Totals
	CreatedAt time.Time
}

// AccountSpec describes an account to open.
type AccountSpec struct {
	Code     string
	Type     AccountType
	Currency string
	Market   string
	Flags    int
}

func (s AccountSpec) validate() *Error {
	if !ValidAccountCode(s.Code) {
		return invalid("code", "must be 1-200 of [A-Za-z0-9:._-], got %q", s.Code)
	}
	if !s.Type.valid() {
		return invalid("type", "must be one of asset, liability, revenue, expense, equity, got %q", s.Type)
	}
	if _, ok := currencyExponents[s.Currency]; !ok {
		return invalid("currency", "unknown or unsupported currency %q", s.Currency)
	}
	if !ValidMarket(s.Market) {
		return invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", s.Market)
	}
	if s.Flags&^(FlagDebitsMustNotExceedCredits|FlagCreditsMustNotExceedDebits) != 0 {
		return invalid("flags", "unknown flag bits %#x", s.Flags)
	}
	if s.Flags == FlagDebitsMustNotExceedCredits|FlagCreditsMustNotExceedDebits {
		return invalid("flags", "an account cannot limit both sides: it could never be written")
	}
	return nil
}

const accountColumns = `id, code, type, currency, market, flags, debits_pending, credits_pending, debits_posted, credits_posted, created_at`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	var typ string
	err := row.Scan(&a.ID, &a.Code, &typ, &a.Currency, &a.Market, &a.Flags,
		&a.Totals.DebitsPending, &a.Totals.CreditsPending, &a.Totals.DebitsPosted, &a.Totals.CreditsPosted, &a.CreatedAt)
	a.Type = AccountType(typ)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

// CreateAccount opens an account, or returns the existing one when an
// account with the same code and attributes exists (created is false then).
// It also starts the market's hash chain, so that writes never have to.
func (l *Ledger) CreateAccount(ctx context.Context, s AccountSpec) (acct Account, created bool, err error) {
	err = pg.Transact(ctx, l.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		acct, created, err = OpenAccount(ctx, tx, s)
		return err
	})
	return acct, created, err
}

// OpenAccount is CreateAccount in the caller's transaction, so that an
// account and what it is opened for (a merchant) are made together or not
// at all: an account opened for a create that then failed would be left
// behind, listed in its market's reports as a merchant that does not exist.
func OpenAccount(ctx context.Context, tx pgx.Tx, s AccountSpec) (acct Account, created bool, err error) {
	if err := s.validate(); err != nil {
		return Account{}, false, err
	}
	const insert = `
INSERT INTO ledger_accounts (code, type, currency, market, flags)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (code) DO NOTHING
RETURNING ` + accountColumns
	const startChain = `
INSERT INTO ledger_chain_heads (market, last_seq, hash) VALUES ($1, 0, $2)
ON CONFLICT (market) DO NOTHING`
	acct, err = scanAccount(tx.QueryRow(ctx, insert, s.Code, string(s.Type), s.Currency, s.Market, s.Flags))
	if errors.Is(err, pgx.ErrNoRows) {
		existing, err := scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM ledger_accounts WHERE code = $1`, s.Code))
		if err != nil {
			return Account{}, false, fmt.Errorf("read account %s: %w", s.Code, err)
		}
		if existing.Type != s.Type || existing.Currency != s.Currency || existing.Market != s.Market || existing.Flags != s.Flags {
			return existing, false, errorf(ErrAccountExists, "code", "account %s exists as %s %s in market %s with flags %d", s.Code, existing.Type, existing.Currency, existing.Market, existing.Flags)
		}
		return existing, false, nil
	}
	if err != nil {
		return Account{}, false, fmt.Errorf("create account %s: %w", s.Code, err)
	}
	if _, err := tx.Exec(ctx, startChain, s.Market, genesisHash); err != nil {
		return Account{}, false, fmt.Errorf("start chain of market %s: %w", s.Market, err)
	}
	return acct, true, nil
}

// GetAccount returns the account with code and its current totals.
func (l *Ledger) GetAccount(ctx context.Context, code string) (Account, error) {
	if !ValidAccountCode(code) {
		return Account{}, invalid("code", "must be 1-200 of [A-Za-z0-9:._-], got %q", code)
	}
	a, err := scanAccount(l.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM ledger_accounts WHERE code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, errorf(ErrAccountNotFound, "code", "no account %s", code)
	}
	return a, err
}

// AccountFilter selects accounts for ListAccounts.
type AccountFilter struct {
	Market     string
	CodePrefix string
	PageSize   int
	PageToken  string
}

// ListAccounts returns a page of accounts in code order with their current
// totals, the sequence those are as of, and the next page's token.
func (l *Ledger) ListAccounts(ctx context.Context, f AccountFilter) ([]Account, int64, string, error) {
	size, err := PageSize(f.PageSize)
	if err != nil {
		return nil, 0, "", err
	}
	after, err := PageAfter("accounts", f.query(), f.PageToken, "market and code_prefix")
	if err != nil {
		return nil, 0, "", err
	}
	if f.Market != "" && !ValidMarket(f.Market) {
		return nil, 0, "", invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", f.Market)
	}
	if f.CodePrefix != "" && !ValidAccountCode(f.CodePrefix) {
		return nil, 0, "", invalid("code_prefix", "must be of [A-Za-z0-9:._-], got %q", f.CodePrefix)
	}
	// The head and the totals are read in one snapshot: a round moves both
	// in one transaction, so the totals are exactly those as of the head.
	tx, err := l.snapshot(ctx)
	if err != nil {
		return nil, 0, "", err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT last_seq FROM ledger_head`).Scan(&seq); err != nil {
		return nil, 0, "", fmt.Errorf("read ledger head: %w", err)
	}
	// The prefix has no LIKE wildcards (ValidAccountCode excludes % and _ is
	// escaped below), so it matches literally.
	prefix := strings.ReplaceAll(f.CodePrefix, "_", `\_`) + "%"
	rows, err := tx.Query(ctx, `
SELECT `+accountColumns+` FROM ledger_accounts
 WHERE code > $1 AND ($2 = '' OR market = $2) AND code LIKE $3
 ORDER BY code LIMIT $4`, after, f.Market, prefix, size+1)
	if err != nil {
		return nil, 0, "", err
	}
	defer rows.Close()
	var accounts []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, 0, "", err
		}
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, "", err
	}
	next := ""
	if len(accounts) > size {
		accounts = accounts[:size]
		next = PageToken("accounts", f.query(), accounts[size-1].Code)
	}
	return accounts, seq, next, nil
}

// query writes what a page token keeps of the filter, the query its pages
// continue: every field but the page's size and token. Neither a market nor
// a code holds a comma or a slash.
func (f AccountFilter) query() string { return f.Market + "," + f.CodePrefix }
