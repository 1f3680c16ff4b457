package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/choledger/choledger/internal/pg"
)

// op is one write waiting for a committer.
type op struct {
	entry    *EntryRequest
	postings []Posting // entry's postings in minor units, checked
	close    *CloseRequest
	key      string
	hash     []byte
	ctx      context.Context
	done     chan Outcome
}

func (o *op) finish(res Outcome) {
	if o.done != nil {
		o.done <- res
	}
}

// commitLoop takes whatever writes are queued, up to MaxBatch, and commits
// them together: under load, one transaction and one WAL flush carry many
// writes; when idle, a write commits alone without waiting for company.
func (l *Ledger) commitLoop() {
	defer l.workers.Done()
	for {
		first, ok := <-l.queue
		if !ok {
			return
		}
		batch := []*op{first}
	fill:
		for len(batch) < l.opts.MaxBatch {
			select {
			case o, ok := <-l.queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		l.commitBatch(batch)
	}
}

// commitBatch commits a batch in rounds in which every idempotency key is
// unique, so that a repeated key in one batch sees its first use committed
// and is answered as a replay or a conflict.
func (l *Ledger) commitBatch(batch []*op) {
	live := batch[:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.finish(Outcome{Err: err}) // the writer gave up before anything was written
			continue
		}
		live = append(live, o)
	}
	for len(live) > 0 {
		seen := make(map[string]bool, len(live))
		var round, later []*op
		for _, o := range live {
			if seen[o.key] {
				later = append(later, o)
				continue
			}
			seen[o.key] = true
			round = append(round, o)
		}
		l.commitRound(round)
		live = later
	}
}

// maxUniqueRetries bounds the retries of a round that collided on a unique
// key with a concurrent transaction; the retry reads the winner's row and
// answers with a replay or a precise error.
const maxUniqueRetries = 3

func (l *Ledger) commitRound(ops []*op) {
	// The batch runs to completion even if a writer stops waiting: the other
	// writers in it are still owed an answer.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var outs []Outcome
	var wrote bool
	var err error
	for attempt := 1; ; attempt++ {
		err = pg.Transact(ctx, l.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var terr error
			outs, wrote, terr = l.applyRound(ctx, tx, ops)
			return terr
		})
		if err == nil || pg.Code(err) != pg.CodeUniqueViolation || attempt > maxUniqueRetries {
			break
		}
	}
	if err == nil {
		if wrote {
			l.signalCommitted()
			l.rounds.Add(1)
			for _, out := range outs {
				if out.Err == nil && !out.Replayed {
					l.entries.Add(1)
				}
			}
		}
		for i, o := range ops {
			o.finish(outs[i])
		}
		return
	}
	if len(ops) > 1 {
		// Something in the round broke the transaction in a way the Go checks
		// did not foresee. Commit each write alone so that only the culprit
		// fails.
		l.log.Warn("batch failed; committing its writes one by one", "writes", len(ops), "err", err)
		for _, o := range ops {
			l.commitRound([]*op{o})
		}
		return
	}
	ops[0].finish(Outcome{Err: classifyCommitError(err)})
}

func classifyCommitError(err error) error {
	switch pg.Code(err) {
	case pg.CodeNumericOverflow:
		return errorf(ErrOverflow, "", "an account total would leave the representable range")
	case pg.CodeCheckViolation, pg.CodeUniqueViolation:
		return errorf(ErrRefused, "", "refused by the database (%s): %v", pg.Constraint(err), err)
	}
	// A connection cut while COMMIT was on its way leaves the outcome
	// unknown: say so, and how to settle it.
	return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("the write may not have been recorded (%v); send it again with the same idempotency key, which records it once", err)}
}

// accountState is an account read under the ledger head and its totals as
// the round changes them.
type accountState struct {
	Account
	changed bool
	// opening: an entry of the round opens it (EntryRequest.Opens); it is
	// written, and has an id, only once the round's entries are decided.
	opening bool
}

// pendingInfo is a pending entry that a close op in the round refers to.
type pendingInfo struct {
	entry  Entry
	open   bool
	closer string // id of the entry that closed it, when not open
}

// applyRound does one round's work inside tx and returns each op's outcome
// and whether anything was written. A round locks one row, the ledger head,
// and only then reads the rows it will write (step 4), so rounds cannot
// deadlock, also across processes, and the rounds of several committers
// overlap everywhere except between that lock and their commit: a round
// whose lock statement is waiting in PostgreSQL goes on the moment the
// previous round commits. A round makes five round trips: begin, the
// reads, the lock with the reads under it, the writes and the commit (a
// replayed key adds the read of its entry, a refused write the read of
// its key again, and an account an entry opens its insert).
func (l *Ledger) applyRound(ctx context.Context, tx pgx.Tx, ops []*op) ([]Outcome, bool, error) {
	outs := make([]Outcome, len(ops))
	now := l.opts.Now().UTC()
	pending := make([]bool, len(ops)) // still to be decided

	// 1. Keys already used (replays and conflicts), external references
	// already recorded and the pending entries to close, read in one round
	// trip.
	keys := make([]string, len(ops))
	var refs []string
	for i, o := range ops {
		keys[i] = o.key
		pending[i] = true
		if ref := o.externalRef(); ref != "" {
			refs = append(refs, ref)
		}
	}
	used := map[string]usedKey{}
	type holder struct {
		id, key string
		usedKey
	}
	taken := map[string]holder{}
	reads := &pgx.Batch{}
	// Every statement of a round takes arrays, whose custom plans
	// PostgreSQL's plan cache keeps preferring because it sees their
	// length: left to itself it plans them again at every execution, which
	// with the per-call lookups took about half of the database's CPU in
	// the online benchmark scenarios. They are keyed lookups and array
	// joins whose generic plan is the same index scans: plan them once.
	reads.Queue(`SET LOCAL plan_cache_mode = force_generic_plan`)
	reads.Queue(`SELECT e.idempotency_key, e.seq, e.request_hash FROM ledger_entries e WHERE `+entryKeyIn, keys).Query(func(rows pgx.Rows) error {
		var k string
		var v usedKey
		_, err := pgx.ForEachRow(rows, []any{&k, &v.seq, &v.hash}, func() error {
			used[k] = v
			return nil
		})
		return err
	})
	if len(refs) > 0 {
		reads.Queue(`SELECT external_ref, id::text, idempotency_key, seq, request_hash FROM ledger_entries WHERE external_ref = ANY($1)`, refs).Query(func(rows pgx.Rows) error {
			var ref string
			var h holder
			_, err := pgx.ForEachRow(rows, []any{&ref, &h.id, &h.key, &h.seq, &h.hash}, func() error {
				taken[ref] = h
				return nil
			})
			return err
		})
	}
	// The pending entries that close ops refer to, in the same round trip.
	var pendingIDs []string
	for _, o := range ops {
		if o.close != nil {
			pendingIDs = append(pendingIDs, o.close.PendingID)
		}
	}
	var found []Entry
	if len(pendingIDs) > 0 {
		queueEntriesByID(reads, pendingIDs, &found)
	}
	if err := tx.SendBatch(ctx, reads).Close(); err != nil {
		return nil, false, err
	}
	if err := answerUsed(ctx, tx, ops, used, outs, pending); err != nil {
		return nil, false, err
	}

	// 2. External references already recorded in the ledger. One recorded
	// by an earlier write of this round is checked when the ops are
	// decided (step 6): only a write that is accepted takes its reference.
	// One recorded under the op's own key is that key's use: a copy of the
	// write committed between the read of the keys and that of the
	// references, which each see what was committed when they began.
	ownRefs := map[string]usedKey{}
	for i, o := range ops {
		ref := o.externalRef()
		if !pending[i] || ref == "" {
			continue
		}
		if h, ok := taken[ref]; ok {
			if h.key == o.key {
				ownRefs[o.key] = h.usedKey
				continue
			}
			pending[i] = false
			outs[i].Err = errorf(ErrDuplicateExternalRef, "external_ref", "%q is already recorded by entry %s", ref, h.id)
		}
	}
	if err := answerUsed(ctx, tx, ops, ownRefs, outs, pending); err != nil {
		return nil, false, err
	}

	// 3. The pending entries that close ops refer to, read above.
	pendings := make(map[string]*pendingInfo, len(found))
	for _, e := range found {
		pendings[e.ID] = &pendingInfo{entry: e}
	}

	// 4. Lock the ledger head, then read, in the same round trip, every
	// account the round touches, the open-pending rows of the entries it
	// closes and the chain heads of its markets. Only a round holding the
	// head writes any of those rows, so the head is the one lock a round
	// needs: each read starts after the lock is granted (READ COMMITTED
	// gives every statement a fresh snapshot), sees every round committed
	// before, and stays true until this round commits. One lock cannot
	// deadlock, across processes too. An open-pending row that is gone was
	// closed by a round that committed first.
	codeSet := map[string]bool{}
	marketSet := map[string]bool{}
	for i, o := range ops {
		if !pending[i] {
			continue
		}
		if o.entry != nil {
			marketSet[o.entry.Market] = true
			for _, p := range o.postings {
				codeSet[p.AccountCode] = true
			}
		} else if p := pendings[o.close.PendingID]; p != nil {
			marketSet[p.entry.Market] = true
			for _, ps := range p.entry.Postings {
				codeSet[ps.AccountCode] = true
			}
		}
	}
	if len(marketSet) == 0 {
		// Nothing can be written: every op is answered already, or closes a
		// pending entry that does not exist, which applyClose says without
		// needing a lock.
		for i, o := range ops {
			if pending[i] {
				if _, err := l.applyClose(o, pendings, nil, now); err != nil {
					outs[i].Err = err
				}
			}
		}
		return outs, false, nil
	}
	codes := make([]string, 0, len(codeSet))
	for c := range codeSet {
		codes = append(codes, c)
	}
	markets := make([]string, 0, len(marketSet))
	for m := range marketSet {
		markets = append(markets, m)
	}
	slices.Sort(markets)
	var openSeqs []int64
	for _, p := range pendings {
		if p.entry.Phase == PhasePending {
			openSeqs = append(openSeqs, p.entry.Seq)
		}
	}

	accounts := make(map[string]*accountState, len(codeSet))
	open := map[int64]bool{}
	heads := make(map[string][]byte, len(markets))
	var lastSeq int64
	var recordedAt time.Time
	underHead := &pgx.Batch{}
	underHead.Queue(`SELECT last_seq FROM ledger_head FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&lastSeq)
	})
	// The record time is read once the head is held, by a statement of its
	// own: a lock statement's columns are computed before it waits, and
	// computed again only if the row changed meanwhile, so a round waiting
	// behind a read's shared lock (Ledger.AwaitRecorded), which changes
	// nothing, would record the time it asked. A read as of a later time
	// takes its shared lock beside the first at once, without waiting for
	// that round, and would leave out an entry recorded before its time.
	underHead.Queue(`SELECT clock_timestamp()`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&recordedAt)
	})
	underHead.Queue(`SELECT `+accountColumns+` FROM ledger_accounts WHERE code = ANY($1)`, codes).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				return err
			}
			accounts[a.Code] = &accountState{Account: a}
		}
		return rows.Err()
	})
	if len(openSeqs) > 0 {
		underHead.Queue(`SELECT entry_seq FROM ledger_open_pending WHERE entry_seq = ANY($1)`, openSeqs).Query(func(rows pgx.Rows) error {
			var seq int64
			_, err := pgx.ForEachRow(rows, []any{&seq}, func() error {
				open[seq] = true
				return nil
			})
			return err
		})
	}
	underHead.Queue(`SELECT market, hash FROM ledger_chain_heads WHERE market = ANY($1)`, markets).Query(func(rows pgx.Rows) error {
		var m string
		var h []byte
		_, err := pgx.ForEachRow(rows, []any{&m, &h}, func() error {
			heads[m] = h
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, underHead).Close(); err != nil {
		return nil, false, err
	}

	// 5. Who closed the pending entries that are no longer open, for the
	// error (rare: a confirmation racing a void or an expiry).
	var goneSeqs []int64
	for _, p := range pendings {
		p.open = open[p.entry.Seq]
		if !p.open && p.entry.Phase == PhasePending {
			goneSeqs = append(goneSeqs, p.entry.Seq)
		}
	}
	if len(goneSeqs) > 0 {
		rows, err := tx.Query(ctx, `SELECT pending_seq, id::text FROM ledger_entries WHERE pending_seq = ANY($1)`, goneSeqs)
		if err != nil {
			return nil, false, err
		}
		closer := map[int64]string{}
		var seq int64
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&seq, &id}, func() error {
			closer[seq] = id
			return nil
		}); err != nil {
			return nil, false, err
		}
		for _, p := range pendings {
			if c, ok := closer[p.entry.Seq]; ok {
				p.closer = c
			}
		}
	}

	// 6. Decide each op against the state read under the head, in order. A
	// reference is taken by the first write of the round that is accepted
	// with it; a refused write takes nothing.
	var fresh []*Entry
	var owners []int
	var closedSeqs []int64
	var refusedKeys []string
	claimed := map[string]bool{}
	for i, o := range ops {
		if !pending[i] {
			continue
		}
		ref := o.externalRef()
		if ref != "" && claimed[ref] {
			outs[i].Err = errorf(ErrDuplicateExternalRef, "external_ref", "%q is already recorded by another write", ref)
			continue
		}
		var e *Entry
		var err *Error
		if o.entry != nil {
			e, err = l.applyEntry(o, accounts, now)
		} else {
			e, err = l.applyClose(o, pendings, accounts, now)
			if err == nil {
				closedSeqs = append(closedSeqs, e.PendingSeq)
			}
		}
		if err != nil {
			outs[i].Err = err
			refusedKeys = append(refusedKeys, o.key)
			continue
		}
		if ref != "" {
			claimed[ref] = true
		}
		fresh = append(fresh, e)
		owners = append(owners, i)
	}
	// A copy of a write sent at once with it, that a round of another
	// committer recorded after step 1 read the key unused, is refused here
	// for what that copy did: it took the funds, or closed the pending
	// entry. Its key, read again under the head, answers it instead, as in
	// step 1. (A copy that is not refused fails on the key's unique index,
	// and its round is retried.)
	if len(refusedKeys) > 0 {
		usedMeanwhile := map[string]usedKey{}
		rows, err := tx.Query(ctx, `SELECT e.idempotency_key, e.seq, e.request_hash FROM ledger_entries e WHERE `+entryKeyIn, refusedKeys)
		if err != nil {
			return nil, false, err
		}
		var k string
		var u usedKey
		if _, err := pgx.ForEachRow(rows, []any{&k, &u.seq, &u.hash}, func() error {
			usedMeanwhile[k] = u
			return nil
		}); err != nil {
			return nil, false, err
		}
		if err := answerUsed(ctx, tx, ops, usedMeanwhile, outs, pending); err != nil {
			return nil, false, err
		}
	}
	if len(fresh) == 0 {
		return outs, false, nil
	}

	// 7. Sequences follow the ledger head, which the flush moves on.
	recordedAt = recordedAt.UTC().Truncate(time.Microsecond)
	firstSeq := lastSeq + 1
	lastSeq += int64(len(fresh))

	// 8. Open the accounts the accepted entries open, in code order; then
	// number, time and chain the new entries, and write everything.
	var opening []string
	for code, a := range accounts {
		if a.opening {
			opening = append(opening, code)
		}
	}
	slices.Sort(opening)
	for _, code := range opening {
		a := accounts[code]
		opened, _, err := OpenAccount(ctx, tx, AccountSpec{Code: a.Code, Type: a.Type, Currency: a.Currency, Market: a.Market, Flags: a.Flags})
		if err != nil {
			return nil, false, err
		}
		a.ID, a.CreatedAt = opened.ID, opened.CreatedAt
	}
	w := &roundWriter{}
	headSeq := make(map[string]int64, len(markets))
	for j, e := range fresh {
		e.Seq = firstSeq + int64(j)
		e.RecordedAt = recordedAt
		prev, ok := heads[e.Market]
		if !ok {
			// Accounts start their market's chain, so an entry's market always
			// has one; a missing head means the schema was changed by hand.
			return nil, false, fmt.Errorf("market %s has no chain head", e.Market)
		}
		e.Hash = chainHash(prev, e)
		heads[e.Market] = e.Hash
		headSeq[e.Market] = e.Seq
		if err := w.addEntry(e, accounts, ops[owners[j]].hash); err != nil {
			return nil, false, err
		}
	}
	for _, a := range accounts {
		if a.changed {
			w.addAccount(&a.Account)
		}
	}
	for _, m := range markets {
		if seq, ok := headSeq[m]; ok {
			w.addHead(m, seq, heads[m])
		}
	}
	w.lastSeq = lastSeq
	if err := w.flush(ctx, tx, closedSeqs, fresh, l.opts.Projectors); err != nil {
		return nil, false, err
	}
	for j, e := range fresh {
		outs[owners[j]] = Outcome{Result: Result{Entry: *e}}
	}
	return outs, true, nil
}

// usedKey is the entry an idempotency key already recorded: its sequence
// and the hash of the request that recorded it.
type usedKey struct {
	seq  int64
	hash []byte
}

// answerUsed answers each op whose key is in used with the entry the key
// recorded: as a replay when the request is the same, with a conflict
// naming the first difference otherwise. Answered ops are no longer
// pending.
func answerUsed(ctx context.Context, tx pgx.Tx, ops []*op, used map[string]usedKey, outs []Outcome, pending []bool) error {
	if len(used) == 0 {
		return nil
	}
	seqs := make([]int64, 0, len(used))
	for _, v := range used {
		seqs = append(seqs, v.seq)
	}
	stored, err := loadEntries(ctx, tx, `e.seq = ANY($1) ORDER BY e.seq`, seqs)
	if err != nil {
		return err
	}
	bySeq := make(map[int64]Entry, len(stored))
	for _, e := range stored {
		bySeq[e.Seq] = e
	}
	for i, o := range ops {
		u, ok := used[o.key]
		if !ok {
			continue
		}
		pending[i] = false
		e := bySeq[u.seq]
		if string(u.hash) == string(o.hash) {
			outs[i] = Outcome{Result: Result{Entry: e, Replayed: true}}
		} else {
			outs[i].Err = &Error{Kind: ErrIdempotencyConflict, Field: "idempotency_key",
				Msg: fmt.Sprintf("key %q was already used for entry %s with a different request: %s", o.key, e.ID, describeDifference(e, o))}
		}
	}
	return nil
}

func (o *op) externalRef() string {
	if o.entry != nil {
		return o.entry.ExternalRef
	}
	return o.close.ExternalRef
}

// applyEntry checks a new entry against the round's accounts and, if it
// holds, moves their totals. The accounts it opens join the round's only
// if it holds.
func (l *Ledger) applyEntry(o *op, accounts map[string]*accountState, now time.Time) (_ *Entry, refused *Error) {
	r := o.entry
	for i, spec := range r.Opens {
		a := accounts[spec.Code]
		if a == nil {
			accounts[spec.Code] = &accountState{Account: Account{Code: spec.Code, Type: spec.Type, Currency: spec.Currency, Market: spec.Market, Flags: spec.Flags}, opening: true}
			defer func() {
				if refused != nil {
					delete(accounts, spec.Code)
				}
			}()
			continue
		}
		if a.Type != spec.Type || a.Currency != spec.Currency || a.Market != spec.Market || a.Flags != spec.Flags {
			return nil, errorf(ErrAccountExists, fmt.Sprintf("opens[%d].code", i), "account %s exists as %s %s in market %s with flags %d", spec.Code, a.Type, a.Currency, a.Market, a.Flags)
		}
	}
	for i, p := range o.postings {
		field := fmt.Sprintf("postings[%d].account_code", i)
		a := accounts[p.AccountCode]
		if a == nil {
			return nil, errorf(ErrAccountNotFound, field, "no account %s", p.AccountCode)
		}
		if a.Market != r.Market {
			return nil, errorf(ErrAccountMismatch, field, "account %s belongs to market %s, the entry to market %s; an entry stays inside one market", p.AccountCode, a.Market, r.Market)
		}
		if a.Currency != r.Currency {
			return nil, errorf(ErrAccountMismatch, field, "account %s is in %s, the entry in %s; an entry never mixes currencies", p.AccountCode, a.Currency, r.Currency)
		}
	}
	moves := make([]move, len(o.postings))
	for i, p := range o.postings {
		moves[i] = move{code: p.AccountCode, dir: p.Direction, amount: p.Amount, pending: r.Pending}
	}
	if err := applyMoves(accounts, moves); err != nil {
		return nil, err
	}
	occurred := r.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	e := &Entry{
		ID:             NewID(now),
		Market:         r.Market,
		Kind:           r.Kind,
		Phase:          PhasePosted,
		Currency:       r.Currency,
		Postings:       o.postings,
		IdempotencyKey: r.IdempotencyKey,
		ExternalRef:    r.ExternalRef,
		OccurredAt:     occurred.UTC().Truncate(time.Microsecond),
		Metadata:       nonNil(r.Metadata),
	}
	if r.Pending {
		timeout := r.PendingTimeout
		if timeout == 0 {
			timeout = DefaultPendingTimeout
		}
		e.Phase = PhasePending
		e.PendingState = PendingOpen
		e.ExpiresAt = now.Add(timeout).UTC().Truncate(time.Microsecond)
	}
	return e, nil
}

// applyClose checks a post or void of a pending entry and, if it holds,
// releases the pending amounts and posts the posted ones.
func (l *Ledger) applyClose(o *op, pendings map[string]*pendingInfo, accounts map[string]*accountState, now time.Time) (*Entry, *Error) {
	r := o.close
	p := pendings[r.PendingID]
	if p == nil {
		return nil, errorf(ErrEntryNotFound, "pending_entry_id", "no entry %s", r.PendingID)
	}
	pe := &p.entry
	if pe.Phase != PhasePending {
		return nil, errorf(ErrPendingClosed, "pending_entry_id", "entry %s is a %s entry, not a pending one", pe.ID, pe.Phase)
	}
	if !p.open {
		if p.closer != "" {
			return nil, errorf(ErrPendingClosed, "pending_entry_id", "entry %s was already closed by entry %s", pe.ID, p.closer)
		}
		return nil, errorf(ErrPendingClosed, "pending_entry_id", "entry %s is already closed", pe.ID)
	}
	if !r.Void && !now.Before(pe.ExpiresAt) {
		return nil, errorf(ErrPendingExpired, "pending_entry_id", "entry %s expired at %s", pe.ID, pe.ExpiresAt.Format(time.RFC3339))
	}
	posted := pe.Postings
	if !r.Void && len(r.Postings) > 0 {
		var err *Error
		if posted, err = partialPostings(pe, r.Postings); err != nil {
			return nil, err
		}
	}
	moves := make([]move, 0, len(pe.Postings)+len(posted))
	for _, ps := range pe.Postings {
		moves = append(moves, move{code: ps.AccountCode, dir: ps.Direction, amount: -ps.Amount, pending: true})
	}
	e := &Entry{
		ID:             NewID(now),
		Market:         pe.Market,
		Kind:           r.Kind,
		Phase:          PhaseVoidPending,
		Currency:       pe.Currency,
		PendingID:      pe.ID,
		PendingSeq:     pe.Seq,
		IdempotencyKey: r.IdempotencyKey,
		ExternalRef:    r.ExternalRef,
		OccurredAt:     r.OccurredAt,
		Metadata:       nonNil(r.Metadata),
	}
	if !r.Void {
		e.Phase = PhasePostPending
		e.Postings = posted
		for _, ps := range posted {
			moves = append(moves, move{code: ps.AccountCode, dir: ps.Direction, amount: ps.Amount})
		}
	}
	if err := applyMoves(accounts, moves); err != nil {
		return nil, err
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	p.open = false
	p.closer = e.ID
	return e, nil
}

// partialPostings checks the postings of a partial post: balanced, in the
// pending entry's currency, and on each account and side at most what is
// pending there.
func partialPostings(pe *Entry, in []PostingInput) ([]Posting, *Error) {
	posted, err := convertPostings(pe.Currency, in)
	if err != nil {
		return nil, err
	}
	type side struct {
		code string
		dir  Direction
	}
	limit := map[side]int64{}
	for _, p := range pe.Postings {
		limit[side{p.AccountCode, p.Direction}] += p.Amount
	}
	asked := map[side]int64{}
	for i, p := range posted {
		s := side{p.AccountCode, p.Direction}
		max, ok := limit[s]
		if !ok {
			return nil, errorf(ErrExceedsPending, fmt.Sprintf("postings[%d]", i), "the pending entry has no %s on %s", p.Direction, p.AccountCode)
		}
		asked[s] += p.Amount
		if asked[s] > max {
			return nil, errorf(ErrExceedsPending, fmt.Sprintf("postings[%d].amount", i), "%s on %s would post %s, more than the %s pending",
				p.Direction, p.AccountCode, FormatAmount(pe.Currency, asked[s]), FormatAmount(pe.Currency, max))
		}
	}
	return posted, nil
}

// move is one change of one account total.
type move struct {
	code    string
	dir     Direction
	amount  int64 // negative releases pending amounts
	pending bool
}

// applyMoves changes the totals of the accounts and checks their limits
// after the whole set, as one entry is one atomic change. On failure the
// totals are left as they were.
func applyMoves(accounts map[string]*accountState, moves []move) *Error {
	saved := make(map[string]Totals, len(moves))
	restore := func() {
		for code, t := range saved {
			accounts[code].Totals = t
		}
	}
	for _, m := range moves {
		a := accounts[m.code]
		if _, ok := saved[m.code]; !ok {
			saved[m.code] = a.Totals
		}
		var total *int64
		switch {
		case m.dir == Debit && m.pending:
			total = &a.Totals.DebitsPending
		case m.dir == Debit:
			total = &a.Totals.DebitsPosted
		case m.pending:
			total = &a.Totals.CreditsPending
		default:
			total = &a.Totals.CreditsPosted
		}
		v, ok := addChecked(*total, m.amount)
		if !ok {
			restore()
			return errorf(ErrOverflow, "", "a total of account %s would overflow", m.code)
		}
		*total = v
	}
	for code := range saved {
		a := accounts[code]
		t := a.Totals
		if a.Flags&FlagDebitsMustNotExceedCredits != 0 {
			if d, ok := addChecked(t.DebitsPending, t.DebitsPosted); !ok || d > t.CreditsPosted {
				restore()
				return errorf(ErrExceedsCredits, "", "account %s would have debits above its posted credits (available %s %s)",
					code, FormatAmount(a.Currency, saved[code].CreditsPosted-saved[code].DebitsPosted-saved[code].DebitsPending), a.Currency)
			}
		}
		if a.Flags&FlagCreditsMustNotExceedDebits != 0 {
			if c, ok := addChecked(t.CreditsPending, t.CreditsPosted); !ok || c > t.DebitsPosted {
				restore()
				return errorf(ErrExceedsDebits, "", "account %s would have credits above its posted debits (available %s %s)",
					code, FormatAmount(a.Currency, saved[code].DebitsPosted-saved[code].CreditsPosted-saved[code].CreditsPending), a.Currency)
			}
		}
	}
	for code := range saved {
		accounts[code].changed = true
	}
	return nil
}

func nonNil(md map[string]string) map[string]string {
	if md == nil {
		return map[string]string{}
	}
	return md
}

// roundWriter collects a round's rows and writes them with one statement
// per table, sent in one round trip.
type roundWriter struct {
	eSeq, ePendingSeq                                                   []int64
	eID, eMarket, eKind, ePhase, eCurrency, eKey                        []string
	eRef                                                                []*string
	eHash, eReqHash                                                     [][]byte
	eOccurred, eRecorded                                                []time.Time
	eExpires                                                            []*time.Time
	eMeta                                                               []string
	pSeq, pAccount                                                      []int64
	pIdx                                                                []int16
	pDir                                                                []string
	pPending                                                            []bool
	pAmount                                                             []int64
	openSeq                                                             []int64
	openExpires                                                         []time.Time
	aID, aDebitsPending, aCreditsPending, aDebitsPosted, aCreditsPosted []int64
	hMarket                                                             []string
	hSeq                                                                []int64
	hHash                                                               [][]byte
	lastSeq                                                             int64
}

func (w *roundWriter) addEntry(e *Entry, accounts map[string]*accountState, reqHash []byte) error {
	meta, err := json.Marshal(e.Metadata)
	if err != nil {
		return err
	}
	w.eSeq = append(w.eSeq, e.Seq)
	w.ePendingSeq = append(w.ePendingSeq, e.PendingSeq)
	w.eID = append(w.eID, e.ID)
	w.eMarket = append(w.eMarket, e.Market)
	w.eKind = append(w.eKind, e.Kind)
	w.ePhase = append(w.ePhase, string(e.Phase))
	w.eCurrency = append(w.eCurrency, e.Currency)
	w.eKey = append(w.eKey, e.IdempotencyKey)
	if e.ExternalRef != "" {
		ref := e.ExternalRef
		w.eRef = append(w.eRef, &ref)
	} else {
		w.eRef = append(w.eRef, nil)
	}
	w.eHash = append(w.eHash, e.Hash)
	w.eReqHash = append(w.eReqHash, reqHash)
	w.eOccurred = append(w.eOccurred, e.OccurredAt)
	w.eRecorded = append(w.eRecorded, e.RecordedAt)
	if e.Phase == PhasePending {
		exp := e.ExpiresAt
		w.eExpires = append(w.eExpires, &exp)
		w.openSeq = append(w.openSeq, e.Seq)
		w.openExpires = append(w.openExpires, e.ExpiresAt)
	} else {
		w.eExpires = append(w.eExpires, nil)
	}
	w.eMeta = append(w.eMeta, string(meta))
	for i, p := range e.Postings {
		w.pSeq = append(w.pSeq, e.Seq)
		w.pIdx = append(w.pIdx, int16(i))
		w.pAccount = append(w.pAccount, accounts[p.AccountCode].ID)
		w.pDir = append(w.pDir, string(rune(p.Direction)))
		w.pPending = append(w.pPending, e.Phase == PhasePending)
		w.pAmount = append(w.pAmount, p.Amount)
	}
	return nil
}

func (w *roundWriter) addAccount(a *Account) {
	w.aID = append(w.aID, a.ID)
	w.aDebitsPending = append(w.aDebitsPending, a.Totals.DebitsPending)
	w.aCreditsPending = append(w.aCreditsPending, a.Totals.CreditsPending)
	w.aDebitsPosted = append(w.aDebitsPosted, a.Totals.DebitsPosted)
	w.aCreditsPosted = append(w.aCreditsPosted, a.Totals.CreditsPosted)
}

func (w *roundWriter) addHead(market string, seq int64, hash []byte) {
	w.hMarket = append(w.hMarket, market)
	w.hSeq = append(w.hSeq, seq)
	w.hHash = append(w.hHash, hash)
}

const (
	insertEntries = `
INSERT INTO ledger_entries (seq, id, market, kind, phase, currency, pending_seq, idempotency_key, request_hash,
                            external_ref, occurred_at, recorded_at, expires_at, metadata, hash)
SELECT seq, id::uuid, market, kind, phase, currency, NULLIF(pending_seq, 0), key, req_hash,
       ref, occurred_at, recorded_at, expires_at, meta::jsonb, hash
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bytea[],
              $10::text[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::text[], $15::bytea[])
       AS t(seq, id, market, kind, phase, currency, pending_seq, key, req_hash, ref, occurred_at, recorded_at, expires_at, meta, hash)`
	insertPostings = `
INSERT INTO ledger_postings (entry_seq, idx, account_id, direction, pending, amount)
SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::char[], $5::boolean[], $6::bigint[])`
	closePending = `DELETE FROM ledger_open_pending WHERE entry_seq = ANY($1)`
	openPending  = `INSERT INTO ledger_open_pending (entry_seq, expires_at) SELECT * FROM unnest($1::bigint[], $2::timestamptz[])`
	// The totals are set, not incremented: the round computed them from rows
	// read under the ledger head, which no other round can change before it
	// commits, and the CHECK constraints re-verify the limits.
	updateAccounts = `
UPDATE ledger_accounts a
   SET debits_pending = t.dp, credits_pending = t.cp, debits_posted = t.dpo, credits_posted = t.cpo
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS t(id, dp, cp, dpo, cpo)
 WHERE a.id = t.id`
	updateLedgerHead = `UPDATE ledger_head SET last_seq = $1`
	updateHeads      = `
UPDATE ledger_chain_heads h
   SET last_seq = t.seq, hash = t.hash
  FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS t(market, seq, hash)
 WHERE h.market = t.market`
)

func (w *roundWriter) flush(ctx context.Context, tx pgx.Tx, closedSeqs []int64, fresh []*Entry, projectors []Projector) error {
	b := &pgx.Batch{}
	b.Queue(insertEntries, w.eSeq, w.eID, w.eMarket, w.eKind, w.ePhase, w.eCurrency, w.ePendingSeq, w.eKey, w.eReqHash,
		w.eRef, w.eOccurred, w.eRecorded, w.eExpires, w.eMeta, w.eHash)
	if len(w.pSeq) > 0 {
		b.Queue(insertPostings, w.pSeq, w.pIdx, w.pAccount, w.pDir, w.pPending, w.pAmount)
	}
	if len(closedSeqs) > 0 {
		b.Queue(closePending, closedSeqs)
	}
	if len(w.openSeq) > 0 {
		b.Queue(openPending, w.openSeq, w.openExpires)
	}
	if len(w.aID) > 0 {
		b.Queue(updateAccounts, w.aID, w.aDebitsPending, w.aCreditsPending, w.aDebitsPosted, w.aCreditsPosted)
	}
	b.Queue(updateHeads, w.hMarket, w.hSeq, w.hHash)
	b.Queue(updateLedgerHead, w.lastSeq)
	for _, p := range projectors {
		p.Project(fresh, b)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return nil
}
