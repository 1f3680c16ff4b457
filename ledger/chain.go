package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/jackc/pgx/v5"
)

// genesisHash is the previous hash of each market's first entry.
var genesisHash = make([]byte, sha256.Size)

// canonicalBytes is the stable encoding of everything an entry records; its
// hash, chained to the previous entry of the market, is what VerifyJournal
// recomputes. Every field is length-prefixed, and times are whole
// microseconds in UTC, which is what PostgreSQL stores. docs/design.md
// ("Hash chain") spells it out for auditors who verify exports offline,
// and api's TestJournalExportFollowsAndVerifiesOffline holds the two to
// each other.
func canonicalBytes(e *Entry) []byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	str("choledger.entry.v1")
	num(e.Seq)
	str(e.ID)
	str(e.Market)
	str(e.Kind)
	str(string(e.Phase))
	str(e.Currency)
	num(e.PendingSeq)
	str(e.IdempotencyKey)
	str(e.ExternalRef)
	num(e.OccurredAt.UnixMicro())
	num(e.RecordedAt.UnixMicro())
	if e.ExpiresAt.IsZero() {
		num(0)
	} else {
		num(e.ExpiresAt.UnixMicro())
	}
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	num(int64(len(keys)))
	for _, k := range keys {
		str(k)
		str(e.Metadata[k])
	}
	num(int64(len(e.Postings)))
	for _, p := range e.Postings {
		str(p.AccountCode)
		num(int64(p.Direction))
		num(p.Amount)
	}
	return b
}

func chainHash(prev []byte, e *Entry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonicalBytes(e))
	return h.Sum(nil)
}

// Verification is the outcome of recomputing a range of a market's chain.
type Verification struct {
	Market         string
	EntriesChecked int64
	LastSeq        int64
	LastHash       []byte
	// Broken is the first entry whose stored hash is not the hash of its
	// recorded content chained to its predecessor or, at the end of an open
	// range, where the journal and the market's chain head disagree; nil
	// when all hold.
	Broken *BrokenLink
}

// BrokenLink names the first entry where the chain does not hold. Where the
// journal ends short of its chain head, it names the sequence the head
// does, with no entry id (the entry is gone), the head's hash as stored and
// the hash the journal ends with as computed. Where the stored rows are
// wrong in what the hash does not cover, ComputedHash is empty; a posting
// that belongs to no entry of the market is named by the sequence it is
// stored under, with no entry id and no hashes.
type BrokenLink struct {
	EntryID      string
	Seq          int64
	Reason       string
	StoredHash   []byte
	ComputedHash []byte
}

// verifyPage bounds how many entries VerifyJournal holds in memory at once.
const verifyPage = 2000

// VerifyJournal recomputes the hash chain of market over sequences
// [fromSeq, toSeq] (0 is open) and reports the first broken link. The first
// entry of the range is chained to the stored hash of the entry before it,
// so a range can be checked without reading all history. An open range
// also checks that the journal ends where the market's chain head says,
// which is what shows newest entries deleted. A market without accounts or
// entries is ErrAccountNotFound.
func (l *Ledger) VerifyJournal(ctx context.Context, market string, fromSeq, toSeq int64) (Verification, error) {
	if !ValidMarket(market) {
		return Verification{}, invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", market)
	}
	if fromSeq < 0 {
		return Verification{}, invalid("from_sequence", "must not be negative, got %d", fromSeq)
	}
	if toSeq < 0 || (toSeq != 0 && toSeq < fromSeq) {
		return Verification{}, invalid("to_sequence", "the range [%d, %d] is empty or negative", fromSeq, toSeq)
	}
	v := Verification{Market: market}
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return v, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only

	// A market the ledger holds nothing of has no journal to verify:
	// answered intact, with no entry checked, an auditor who mistyped its
	// code would read that the market's journal holds.
	var known bool
	err = tx.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE market = $1)
    OR EXISTS (SELECT 1 FROM ledger_entries WHERE market = $1)
    OR EXISTS (SELECT 1 FROM ledger_chain_heads WHERE market = $1)`, market).Scan(&known)
	if err != nil {
		return v, fmt.Errorf("read market: %w", err)
	}
	if !known {
		return v, errorf(ErrAccountNotFound, "market", "the ledger holds no account or entry of market %s", market)
	}

	// end is the newest entry of the chain read so far: the predecessor of
	// the range, then each entry verified.
	var end struct {
		seq  int64
		id   string
		hash []byte
	}
	end.hash = genesisHash
	if fromSeq <= 1 {
		// A range from the beginning chains to the genesis hash. The ledger
		// numbers entries from 1: an entry below was added by hand, and must
		// not lend the range its stored hash as a predecessor's.
		var b BrokenLink
		err = tx.QueryRow(ctx, `SELECT seq, id::text, hash FROM ledger_entries WHERE market = $1 AND seq < 1 ORDER BY seq LIMIT 1`, market).Scan(&b.Seq, &b.EntryID, &b.StoredHash)
		if err == nil {
			b.Reason = fmt.Sprintf("seq %d is below 1, the ledger's first sequence: the entry was added behind the ledger's back", b.Seq)
			v.Broken = &b
			return v, nil
		}
	} else {
		err = tx.QueryRow(ctx, `SELECT seq, id::text, hash FROM ledger_entries WHERE market = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1`, market, fromSeq).Scan(&end.seq, &end.id, &end.hash)
	}
	if err != nil && err != pgx.ErrNoRows {
		return v, fmt.Errorf("read predecessor: %w", err)
	}
	openEnded := toSeq == 0
	if openEnded {
		toSeq = 1<<63 - 1
	}
	after := fromSeq - 1
	var postings int64 // of the entries verified
	for {
		entries, err := readEntries(ctx, tx, true, `e.market = $1 AND e.seq > $2 AND e.seq <= $3 ORDER BY e.seq LIMIT `+fmt.Sprint(verifyPage), market, after, toSeq)
		if err != nil {
			return v, err
		}
		for i := range entries {
			e := &entries[i]
			v.EntriesChecked++
			if e.flaw != "" {
				v.Broken = &BrokenLink{EntryID: e.ID, Seq: e.Seq, StoredHash: e.Hash, Reason: e.flaw}
				return v, nil
			}
			computed := chainHash(end.hash, e)
			if !bytes.Equal(computed, e.Hash) {
				v.Broken = &BrokenLink{
					EntryID: e.ID, Seq: e.Seq, StoredHash: e.Hash, ComputedHash: computed,
					Reason: "stored hash does not match the entry's content chained to the previous hash: the entry or its postings were changed",
				}
				return v, nil
			}
			postings += int64(len(e.Postings))
			end.seq, end.id, end.hash = e.Seq, e.ID, e.Hash
			v.LastSeq = e.Seq
			v.LastHash = e.Hash
			after = e.Seq
		}
		if len(entries) < verifyPage {
			break
		}
	}
	if v.Broken, err = strayPostings(ctx, tx, market, fromSeq, toSeq, postings); err != nil || v.Broken != nil {
		return v, err
	}
	if !openEnded {
		return v, nil
	}

	// Every commit moves the chain head with the entries it writes, so the
	// newest entry must be the one the head names. A market without a head
	// has never had an account, nor can it have entries.
	headSeq, headHash := int64(0), genesisHash
	err = tx.QueryRow(ctx, `SELECT last_seq, hash FROM ledger_chain_heads WHERE market = $1`, market).Scan(&headSeq, &headHash)
	if err != nil && err != pgx.ErrNoRows {
		return v, fmt.Errorf("read chain head: %w", err)
	}
	if headSeq == end.seq && bytes.Equal(headHash, end.hash) {
		return v, nil
	}
	ends := fmt.Sprintf("ends at seq %d (hash %s)", end.seq, HexHash(end.hash))
	if end.seq == 0 {
		ends = "has no entries"
	}
	b := &BrokenLink{Seq: headSeq, StoredHash: headHash, ComputedHash: end.hash}
	switch {
	case headSeq > end.seq:
		b.Reason = fmt.Sprintf("the chain head names seq %d (hash %s), but the market's journal %s: entries at its end were deleted",
			headSeq, HexHash(headHash), ends)
	case headSeq < end.seq:
		b.EntryID, b.Seq = end.id, end.seq
		b.Reason = fmt.Sprintf("the market's journal %s, past its chain head at seq %d (hash %s): entries were added behind the ledger's back",
			ends, headSeq, HexHash(headHash))
	default:
		b.EntryID = end.id
		b.Reason = fmt.Sprintf("the chain head names seq %d with hash %s, but that entry's hash is %s: the entry was replaced or the head changed",
			headSeq, HexHash(headHash), HexHash(end.hash))
	}
	v.Broken = b
	return v, nil
}

// strayPostings finds postings on market's accounts, under sequences in
// [fromSeq, toSeq], that belong to no entry of the market: no hash covers
// them, yet they move the accounts' balances. The entries verified hold
// n postings, all on the market's accounts (a posting on another
// market's would have broken its entry's hash), so the accounts hold as
// many unless some were added behind the ledger's back; they are only
// looked for then. A range from the first sequence also takes in
// sequences below it, which no entry can have.
func strayPostings(ctx context.Context, tx pgx.Tx, market string, fromSeq, toSeq, n int64) (*BrokenLink, error) {
	if fromSeq <= 1 {
		fromSeq = math.MinInt64
	}
	var held int64
	err := tx.QueryRow(ctx, `
SELECT count(*) FROM ledger_postings
 WHERE account_id IN (SELECT id FROM ledger_accounts WHERE market = $1) AND entry_seq BETWEEN $2 AND $3`, market, fromSeq, toSeq).Scan(&held)
	if err != nil {
		return nil, fmt.Errorf("count postings: %w", err)
	}
	if held == n {
		return nil, nil
	}
	var (
		seq     int64
		code    string
		dir     string
		amount  int64
		entryID string
	)
	err = tx.QueryRow(ctx, `
SELECT p.entry_seq, a.code, p.direction, p.amount, COALESCE(e.id::text, '')
  FROM ledger_postings p
  JOIN ledger_accounts a ON a.id = p.account_id
  LEFT JOIN ledger_entries e ON e.seq = p.entry_seq
 WHERE a.market = $1 AND p.entry_seq BETWEEN $2 AND $3 AND (e.seq IS NULL OR e.market <> $1)
 ORDER BY p.entry_seq, p.idx LIMIT 1`, market, fromSeq, toSeq).Scan(&seq, &code, &dir, &amount, &entryID)
	if errors.Is(err, pgx.ErrNoRows) {
		return &BrokenLink{Reason: fmt.Sprintf("the market's accounts hold %d postings in the range, its entries %d: accounts were moved into or out of the market", held, n)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find stray postings: %w", err)
	}
	reason := fmt.Sprintf("a posting (%s %d on %s) is stored under seq %d, where the market has no entry: it was added behind the ledger's back, and moves the account's balances", dir, amount, code, seq)
	if entryID != "" {
		reason = fmt.Sprintf("a posting (%s %d on %s) is stored under seq %d, entry %s of another market: it was added behind the ledger's back, and moves the account's balances", dir, amount, code, seq, entryID)
	}
	return &BrokenLink{Seq: seq, Reason: reason}, nil
}

// HexHash renders a hash for people.
func HexHash(h []byte) string { return hex.EncodeToString(h) }
