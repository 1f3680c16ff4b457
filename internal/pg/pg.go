package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Connect opens a pool to url and checks that the database answers.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach database: %w", err)
	}
	return pool, nil
}

// Beginner is what Transact needs: a pool or a connection.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// MaxAttempts bounds how often Transact runs a function whose transaction
// failed with a retryable error.
const MaxAttempts = 8

// Transact runs fn in a transaction and commits it. When the transaction
// fails with a serialization failure or a deadlock, it is rolled back and fn
// runs again, at most MaxAttempts times in all, with jittered backoff; fn
// must therefore have no effect outside the transaction.
func Transact(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = transactOnce(ctx, db, opts, fn)
		if err == nil || !IsRetryable(err) || attempt == MaxAttempts {
			return err
		}
		if werr := Backoff(ctx, attempt); werr != nil {
			return err
		}
	}
}

func transactOnce(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// The rollback error says nothing the caller can act on; the
			// original error does.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Backoff sleeps before retry number attempt: exponential from 2 ms with
// full jitter, capped at 200 ms, so that colliding writers spread out.
// The doubling stops once past the cap (2 ms<<7 is 256 ms): the audit
// trail retries for as long as the database is out of reach, and 2 ms
// shifted by some 43 attempts overflows to a ceiling below zero.
func Backoff(ctx context.Context, attempt int) error {
	ceiling := min(2*time.Millisecond<<min(attempt-1, 7), 200*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(ceiling)) + 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SQLSTATE codes the project reacts to.
const (
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
	CodeUniqueViolation      = "23505"
	CodeCheckViolation       = "23514"
	CodeNumericOverflow      = "22003"
	CodeLockNotAvailable     = "55P03"
	CodeQueryCanceled        = "57014"
	// A text holds a character the database's encoding has no place for: a
	// NUL (or bytes that are not UTF-8) in a UTF-8 database.
	CodeCharacterNotInRepertoire = "22021"
	CodeUntranslatableCharacter  = "22P05"
)

// CeilMicrosecond rounds t up to a whole microsecond, for a lower bound
// ">= t" or an upper bound "< t" on a column of whole microseconds:
// PostgreSQL keeps microseconds and a time sent to it loses its
// nanoseconds, rounded down, so a row a nanosecond before such a bound
// would count as at it. Against whole microseconds, at or after t, or
// before it, is the same as against t rounded up.
func CeilMicrosecond(t time.Time) time.Time {
	if down := t.Truncate(time.Microsecond); !down.Equal(t) {
		return down.Add(time.Microsecond)
	}
	return t
}

// BoundKey writes a time bound as the whole microseconds it bounds
// (CeilMicrosecond), "" for none, for a page token to keep: bounds a
// nanosecond apart select the same rows, and are one query.
func BoundKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(CeilMicrosecond(t).UnixMicro(), 10)
}

// Storable reports whether PostgreSQL can take b as text: UTF-8 without a
// NUL.
func Storable(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }

// Unstorable reports whether err is PostgreSQL refusing a text it cannot
// store, whatever the statement: what was sent, not the database, is wrong.
func Unstorable(err error) bool {
	switch Code(err) {
	case CodeCharacterNotInRepertoire, CodeUntranslatableCharacter:
		return true
	}
	return false
}

// IsRetryable reports whether err is a transaction conflict that a fresh
// attempt of the same work can get past.
func IsRetryable(err error) bool {
	switch Code(err) {
	case CodeSerializationFailure, CodeDeadlockDetected, CodeLockNotAvailable:
		return true
	}
	return false
}

// Code returns err's SQLSTATE, or "" when err did not come from PostgreSQL.
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Unavailable reports whether err says that the database could not be
// reached or dropped the connection (a restart, a failover, a network cut,
// a backend terminated, too many connections) rather than refusing a
// statement: the same work may succeed when tried again. Whether a write
// sent on a connection that was cut was committed is unknown; only an
// idempotent retry settles it.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300": // admin or crash shutdown, starting up, too many connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exceptions
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err) ||
		errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Cancelled reports whether err is the database cancelling a statement
// that ran out of time: its statement_timeout or lock_timeout, or an
// operator's pg_cancel_backend. Its transaction wrote nothing, and the
// same work may succeed when tried again.
func Cancelled(err error) bool {
	switch Code(err) {
	case CodeQueryCanceled, CodeLockNotAvailable:
		return true
	}
	return false
}

// Constraint returns the name of the constraint err violated, if any.
func Constraint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	return ""
}
