package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/choledger/choledger/internal/pg"
)

// expireBatchSize bounds how many expired entries one round of a sweep
// voids.
const expireBatchSize = 500

func (l *Ledger) expiryLoop() {
	defer l.workers.Done()
	t := time.NewTicker(l.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			// A sweep that fails is the next tick's to do; a database out of
			// reach (a restart, a failover) is worth a warning, not an error
			// at every tick.
			switch _, err := l.ExpireDue(ctx); {
			case err == nil:
			case errors.Is(err, ErrUnavailable) || pg.Unavailable(err):
				l.log.Warn("expire pending entries: the database is out of reach; the next sweep tries again", "err", err)
			default:
				l.log.Error("expire pending entries", "err", err)
			}
			cancel()
		}
	}
}

// ExpireDue voids the pending entries whose timeout has passed and returns
// how many it voided. Each void's idempotency key is derived from the
// pending entry, so concurrent sweepers (several ledgerd) void it once. It
// goes on, a batch at a time, until none is left: entries fall due at the
// rate they were written, which can be more than a batch between two
// ticks, and one left for a later sweep would stay pending after its
// expiry, released in the reports on a later day.
func (l *Ledger) ExpireDue(ctx context.Context) (int, error) {
	voided := 0
	for {
		n, more, err := l.expireBatch(ctx)
		voided += n
		if err != nil || !more {
			return voided, err
		}
	}
}

// expireBatch voids up to expireBatchSize due entries, the longest overdue
// first, and reports whether there may be more.
func (l *Ledger) expireBatch(ctx context.Context) (int, bool, error) {
	rows, err := l.pool.Query(ctx, `
SELECT e.id::text FROM ledger_open_pending o JOIN ledger_entries e ON e.seq = o.entry_seq
 WHERE o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2`, l.opts.Now(), expireBatchSize)
	if err != nil {
		return 0, false, err
	}
	var reqs []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, false, err
		}
		reqs = append(reqs, CloseRequest{IdempotencyKey: "expire:" + id, PendingID: id, Void: true, Kind: KindExpire})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	voided := 0
	for _, out := range l.Write(ctx, reqs) {
		switch {
		case out.Err == nil && !out.Replayed:
			voided++
		case out.Err == nil, errors.Is(out.Err, ErrPendingClosed):
			// Closed meanwhile by a post, a void or another sweeper.
		default:
			return voided, false, out.Err
		}
	}
	return voided, len(reqs) == expireBatchSize, nil
}
