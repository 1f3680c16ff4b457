package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/coalesce"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Role is what a principal is.
type Role string

const (
	RoleMerchant Role = "merchant"
	RoleBank     Role = "bank"
	RoleAuditor  Role = "auditor"
	RoleAdmin    Role = "admin"
)

func (r Role) valid() bool {
	switch r {
	case RoleMerchant, RoleBank, RoleAuditor, RoleAdmin:
		return true
	}
	return false
}

// Errors of authentication. A call without a usable credential is refused
// the same way whatever the reason, so a caller learns nothing about which
// credentials exist.
var (
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrCredentialNotFound = errors.New("credential not found")
)

// ErrLastAdmin refuses to revoke the last working admin credential.
var ErrLastAdmin = errors.New("last working admin credential")

// Principal is who a credential stands for.
type Principal struct {
	CredentialID string
	Name         string
	Role         Role
	Merchant     string   // RoleMerchant
	Provider     string   // RoleBank
	Bank         string   // RoleBank: the settlement bank it acts for; empty is none
	Markets      []string // RoleBank, RoleAuditor: empty is all
	CertSHA256   string   // required client certificate, when set
}

// InMarket reports whether the principal's binding covers market.
func (p Principal) InMarket(market string) bool {
	return len(p.Markets) == 0 || slices.Contains(p.Markets, market)
}

// clone copies p, so that calls that authenticated with one credential at
// the same moment never share its markets.
func (p Principal) clone() Principal {
	p.Markets = slices.Clone(p.Markets)
	return p
}

// Scope namespaces the principal's idempotency keys, so that one client's
// key never answers for another's request, and names the creator of a
// payout batch, which only its creator's scope sees. A merchant's and a
// bank's keys survive the rotation of their credentials; operators share
// one scope.
//
// A bank bound to markets is a client apart from its provider's other
// credentials: two integrations of one provider, each for its own markets,
// may send the same keys, and neither must be answered with the other's
// writes. Its scope adds its binding, as a digest of its markets (sorted,
// each once, joined by commas, which no market code holds), so that the
// scope stays short however many markets it has: a scoped key must fit in
// ledger.MaxKey. An unbound bank's scope is its provider alone.
//
// A bank bound to a settlement bank is a client apart too: the payout
// batches it creates at its bank are not another bank's to read or
// complete. Its scope ends in "#" and the bank's code. A scope holds no
// "/", which ends it in a scoped key, so no scope's key is another's.
//
// Nothing changes a credential's markets or bank once it is issued, so its
// scope is fixed. A new credential of the same provider, markets and bank
// carries on the keys and payout batches of the one it replaces; one with
// other markets or another bank starts afresh: keys sent with the old one
// are neither replayed nor refused, and the batches the old one made are
// not its own.
func (p Principal) Scope() string {
	switch p.Role {
	case RoleMerchant:
		return "merchant:" + p.Merchant
	case RoleBank:
		scope := "bank:" + p.Provider
		if len(p.Markets) > 0 {
			markets := slices.Compact(slices.Sorted(slices.Values(p.Markets)))
			sum := sha256.Sum256([]byte(strings.Join(markets, ",")))
			scope += "@" + hex.EncodeToString(sum[:16])
		}
		if p.Bank != "" {
			scope += "#" + p.Bank
		}
		return scope
	}
	return string(p.Role)
}

// Credential is a stored credential, without its secret.
type Credential struct {
	Principal
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// Store keeps credentials.
type Store struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	reader *coalesce.Reader[string, storedCredential] // Authenticate's reads
}

// NewStore returns the credential store; now is the clock (nil: time.Now).
func NewStore(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{pool: pool, now: now}
	s.reader = coalesce.New(s.readCredentials)
	return s
}

const secretPrefix = "chl_"

// A secret reads chl_<credential id, 32 hex>_<32 random bytes, base64url>:
// the id finds the row, the random part proves possession.
func formatSecret(id string, random []byte) string {
	return secretPrefix + strings.ReplaceAll(id, "-", "") + "_" + base64.RawURLEncoding.EncodeToString(random)
}

func parseSecret(s string) (id string, random []byte, ok bool) {
	rest, found := strings.CutPrefix(s, secretPrefix)
	if !found || len(rest) < 34 || rest[32] != '_' {
		return "", nil, false
	}
	// Lower-case, as PostgreSQL writes a uuid: the id is also the key its
	// row is found by in a shared read (readCredentials).
	h := strings.ToLower(rest[:32])
	if _, err := hex.DecodeString(h); err != nil {
		return "", nil, false
	}
	random, err := base64.RawURLEncoding.DecodeString(rest[33:])
	if err != nil || len(random) != 32 {
		return "", nil, false
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], random, true
}

// secretInText is a credential secret within a text, its id kept apart.
var secretInText = regexp.MustCompile(secretPrefix + `([0-9a-fA-F]{32})_[A-Za-z0-9_-]+`)

// redact hides the random part of every secret in s, keeping the id it
// names. An operator revoking a leaked secret may paste it where its id
// goes: the refusal, the call's log line and the audit trail, which every
// unbound auditor reads, must not pass on a secret that still works.
func redact(s string) string {
	if !strings.Contains(s, secretPrefix) {
		return s
	}
	return secretInText.ReplaceAllString(s, secretPrefix+"${1}_[redacted]")
}

func invalid(field, format string, args ...any) error {
	return &ledger.Error{Kind: ledger.ErrInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IssueRequest describes a credential to issue.
type IssueRequest struct {
	Name       string
	Role       Role
	Merchant   string
	Provider   string
	Bank       string
	Markets    []string
	CertSHA256 string
	TTL        time.Duration // 0: never expires
}

// Issue creates a credential and returns it with its secret, which is not
// stored and cannot be shown again.
func (s *Store) Issue(ctx context.Context, r IssueRequest) (Credential, string, error) {
	if r.Name == "" || len(r.Name) > 100 || !utf8.ValidString(r.Name) {
		return Credential{}, "", invalid("credential.name", "must be 1-100 bytes of UTF-8")
	}
	if i := strings.IndexFunc(r.Name, unicode.IsControl); i >= 0 {
		c, _ := utf8.DecodeRuneInString(r.Name[i:])
		return Credential{}, "", invalid("credential.name", "must not contain control characters, got %U", c)
	}
	if !r.Role.valid() {
		return Credential{}, "", invalid("credential.role", "must be merchant, bank, auditor or admin")
	}
	if (r.Role == RoleMerchant) != (r.Merchant != "") {
		return Credential{}, "", invalid("credential.merchant", "a merchant credential names its merchant, and only it does")
	}
	if r.Merchant != "" {
		if err := merchant.CheckMerchantCode("credential.merchant", r.Merchant); err != nil {
			return Credential{}, "", err
		}
	}
	if (r.Role == RoleBank) != (r.Provider != "") {
		return Credential{}, "", invalid("credential.provider", "a bank credential names its provider, and only it does")
	}
	// A bank credential acts for the provider of some channel; any other
	// name would match no channel's payments.
	if providers := merchant.Providers(); r.Provider != "" && !slices.Contains(providers, r.Provider) {
		return Credential{}, "", invalid("credential.provider", "must be one of %v, got %q", providers, r.Provider)
	}
	if r.Bank != "" {
		if r.Role != RoleBank {
			return Credential{}, "", invalid("credential.bank", "only bank credentials are bound to a settlement bank")
		}
		if err := merchant.CheckBankCode("credential.bank", r.Bank); err != nil {
			return Credential{}, "", err
		}
	}
	if len(r.Markets) > 0 && r.Role != RoleBank && r.Role != RoleAuditor {
		return Credential{}, "", invalid("credential.markets", "only bank and auditor credentials are bound to markets")
	}
	for _, m := range r.Markets {
		if err := merchant.CheckMarketCode("credential.markets", m); err != nil {
			return Credential{}, "", err
		}
	}
	if r.CertSHA256 != "" {
		if b, err := hex.DecodeString(r.CertSHA256); err != nil || len(b) != 32 || strings.ToLower(r.CertSHA256) != r.CertSHA256 {
			return Credential{}, "", invalid("credential.client_cert_sha256", "must be 64 lower-case hex digits")
		}
	}
	if r.TTL < 0 {
		return Credential{}, "", invalid("ttl", "must not be negative")
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return Credential{}, "", err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	id := ledger.NewID(now)
	c := Credential{
		Principal: Principal{CredentialID: id, Name: r.Name, Role: r.Role, Merchant: r.Merchant, Provider: r.Provider, Bank: r.Bank, Markets: r.Markets, CertSHA256: r.CertSHA256},
		CreatedAt: now,
	}
	var expires *time.Time
	if r.TTL > 0 {
		c.ExpiresAt = now.Add(r.TTL)
		expires = &c.ExpiresAt
	}
	hash := sha256.Sum256(random)
	_, err := s.pool.Exec(ctx, `
INSERT INTO credentials (id, name, role, merchant, provider, bank, markets, client_cert_sha256, secret_hash, created_at, expires_at)
VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), $6, $7, NULLIF($8, ''), $9, $10, $11)`,
		id, r.Name, string(r.Role), r.Merchant, r.Provider, r.Bank, nonNil(r.Markets), r.CertSHA256, hash[:], now, expires)
	if err != nil {
		return Credential{}, "", fmt.Errorf("issue credential: %w", err)
	}
	return c, formatSecret(id, random), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const credentialColumns = `id::text, name, role, COALESCE(merchant, ''), COALESCE(provider, ''), bank, markets,
       COALESCE(client_cert_sha256, ''), created_at, expires_at, revoked_at`

func scanCredential(row pgx.Row, hash *[]byte) (Credential, error) {
	var c Credential
	var role string
	var expires, revoked *time.Time
	dest := []any{&c.CredentialID, &c.Name, &role, &c.Merchant, &c.Provider, &c.Bank, &c.Markets, &c.CertSHA256, &c.CreatedAt, &expires, &revoked}
	if hash != nil {
		dest = append(dest, hash)
	}
	if err := row.Scan(dest...); err != nil {
		return c, err
	}
	c.Role = Role(role)
	c.CreatedAt = c.CreatedAt.UTC()
	if expires != nil {
		c.ExpiresAt = expires.UTC()
	}
	if revoked != nil {
		c.RevokedAt = revoked.UTC()
	}
	return c, nil
}

// Authenticate returns the principal a bearer secret stands for. Revocation
// and expiry take effect at once: every call reads the credential's row, by
// a query that starts after the call arrived (calls arriving together share
// one, internal/coalesce). A revoked or expired credential is refused with
// ErrUnauthenticated and returned with it, its secret being proven, so that
// the refusal is recorded as its own; it authorizes nothing.
func (s *Store) Authenticate(ctx context.Context, secret string) (Principal, error) {
	id, random, ok := parseSecret(secret)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	c, found, err := s.reader.Get(ctx, id)
	if err != nil {
		return Principal{}, err
	}
	if !found {
		return Principal{}, ErrUnauthenticated
	}
	hash := sha256.Sum256(random)
	if subtle.ConstantTimeCompare(hash[:], c.secretHash) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	if !c.RevokedAt.IsZero() || (!c.ExpiresAt.IsZero() && !s.now().Before(c.ExpiresAt)) {
		return c.Principal.clone(), ErrUnauthenticated
	}
	return c.Principal.clone(), nil
}

// A storedCredential is a credential with the hash of its secret.
type storedCredential struct {
	Credential
	secretHash []byte
}

// readCredentials reads the credentials with ids, which parseSecret has
// checked are uuids, in one query.
func (s *Store) readCredentials(ctx context.Context, ids []string) (map[string]storedCredential, error) {
	query, arg := `SELECT `+credentialColumns+`, secret_hash FROM credentials WHERE id = ANY($1::text[]::uuid[])`, any(ids)
	if len(ids) == 1 {
		// One credential as a plain equality, which PostgreSQL plans once
		// per session; an array is planned again at every execution.
		query, arg = `SELECT `+credentialColumns+`, secret_hash FROM credentials WHERE id = $1`, ids[0]
	}
	rows, err := s.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	defer rows.Close()
	out := make(map[string]storedCredential, len(ids))
	for rows.Next() {
		var c storedCredential
		if c.Credential, err = scanCredential(rows, &c.secretHash); err != nil {
			return nil, fmt.Errorf("read credentials: %w", err)
		}
		out[c.CredentialID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return out, nil
}

// List returns a page of credentials in id order.
func (s *Store) List(ctx context.Context, role Role, pageSize int, pageToken string) ([]Credential, string, error) {
	size, err := ledger.PageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	after, err := ledger.PageAfter("credentials", string(role), pageToken, "role")
	if err != nil {
		return nil, "", err
	}
	switch {
	case after == "":
		after = "00000000-0000-0000-0000-000000000000"
	case !ledger.ValidUUID(after):
		return nil, "", invalid("page_token", "is not a token of this list")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials
 WHERE id > $1::uuid AND ($2 = '' OR role = $2) ORDER BY id LIMIT $3`, after, string(role), size+1)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCredential(rows, nil)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = ledger.PageToken("credentials", string(role), out[size-1].CredentialID)
	}
	return out, next, nil
}

// Revoke makes a credential unusable from now on. Revoking a revoked
// credential keeps its first revocation time. The last working admin
// credential is not revoked (ErrLastAdmin): only an admin issues and
// revokes credentials, so without one a leaked secret could not be revoked
// again, nor a credential issued.
func (s *Store) Revoke(ctx context.Context, id string) (Credential, error) {
	id, ok := ledger.CanonicalUUID(id)
	if !ok {
		return Credential{}, invalid("id", "must be a credential id (UUID), got %q", redact(id))
	}
	now := s.now().UTC()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Credential{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once committed
	// The working admins, locked in one order: of two admins revoking each
	// other at once, the second waits for the first and then no longer
	// finds it working.
	rows, err := tx.Query(ctx, `
SELECT id::text FROM credentials
 WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)
 ORDER BY id FOR UPDATE`, now)
	if err != nil {
		return Credential{}, err
	}
	admins, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Credential{}, err
	}
	if len(admins) == 1 && admins[0] == id {
		return Credential{}, &ledger.Error{Kind: ErrLastAdmin, Msg: "credential " + id + " is the last working admin credential: issue another admin credential first"}
	}
	c, err := scanCredential(tx.QueryRow(ctx, `
UPDATE credentials SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1::uuid
RETURNING `+credentialColumns, id, now), nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return Credential{}, &ledger.Error{Kind: ErrCredentialNotFound, Field: "id", Msg: "no credential " + id}
	}
	if err != nil {
		return Credential{}, err
	}
	return c, tx.Commit(ctx)
}

// Pool is the store's database, which the audit listing reads too.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
