package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// genesisHash is the previous hash of each market's first entry.
var genesisHash = make([]byte, sha256.Size)

// canonicalBytes is the stable encoding of everything an entry records; its
// hash, chained to the previous entry of the market, is what VerifyJournal
// recomputes. Every field is length-prefixed, and times are whole
// microseconds in UTC, which is what PostgreSQL stores.
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
	num(e.pendingSeq)
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
	// recorded content chained to its predecessor; nil when all hold.
	Broken *BrokenLink
}

// BrokenLink names the first entry where the chain does not hold.
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
// so a range can be checked without reading all history.
func (l *Ledger) VerifyJournal(ctx context.Context, market string, fromSeq, toSeq int64) (Verification, error) {
	if !ValidMarket(market) {
		return Verification{}, invalid("market", "must be 1-64 of [A-Za-z0-9_.-], got %q", market)
	}
	if fromSeq < 0 || toSeq < 0 || (toSeq != 0 && toSeq < fromSeq) {
		return Verification{}, invalid("to_sequence", "the range [%d, %d] is empty or negative", fromSeq, toSeq)
	}
	v := Verification{Market: market}
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return v, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only

	prev := genesisHash
	err = tx.QueryRow(ctx, `SELECT hash FROM ledger_entries WHERE market = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1`, market, fromSeq).Scan(&prev)
	if err != nil && err != pgx.ErrNoRows {
		return v, fmt.Errorf("read predecessor: %w", err)
	}
	if toSeq == 0 {
		toSeq = 1<<63 - 1
	}
	after := fromSeq - 1
	for {
		entries, err := loadEntries(ctx, tx, `e.market = $1 AND e.seq > $2 AND e.seq <= $3 ORDER BY e.seq LIMIT `+fmt.Sprint(verifyPage), market, after, toSeq)
		if err != nil {
			return v, err
		}
		for i := range entries {
			e := &entries[i]
			computed := chainHash(prev, e)
			v.EntriesChecked++
			if !bytes.Equal(computed, e.Hash) {
				v.Broken = &BrokenLink{
					EntryID: e.ID, Seq: e.Seq, StoredHash: e.Hash, ComputedHash: computed,
					Reason: "stored hash does not match the entry's content chained to the previous hash: the entry or its postings were changed",
				}
				return v, nil
			}
			prev = e.Hash
			v.LastSeq = e.Seq
			v.LastHash = e.Hash
			after = e.Seq
		}
		if len(entries) < verifyPage {
			return v, nil
		}
	}
}

// HexHash renders a hash for people.
func HexHash(h []byte) string { return hex.EncodeToString(h) }
