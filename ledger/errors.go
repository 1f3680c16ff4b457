package ledger

import (
	"errors"
	"fmt"
)

// Kinds of failure. Each write fails with at most one, checked in the order
// below, so a client can tell whether retrying with the same idempotency key
// can ever succeed: only ErrUnavailable is worth retrying unchanged.
var (
	// ErrInvalid: the request itself is malformed; nothing about the ledger's
	// state can make it succeed.
	ErrInvalid = errors.New("invalid argument")
	// ErrIdempotencyConflict: the key was already used for another request.
	ErrIdempotencyConflict = errors.New("idempotency key reused for a different request")
	// ErrDuplicateExternalRef: another entry already carries the reference.
	ErrDuplicateExternalRef = errors.New("external reference already recorded")
	// ErrAccountNotFound / ErrEntryNotFound: the named thing does not exist.
	ErrAccountNotFound = errors.New("account not found")
	ErrEntryNotFound   = errors.New("entry not found")
	// ErrAccountExists: an account with the code exists with other attributes.
	ErrAccountExists = errors.New("account exists with other attributes")
	// ErrAccountMismatch: a posting's account is of another market or
	// currency than its entry.
	ErrAccountMismatch = errors.New("account does not match the entry")
	// ErrPendingClosed: the pending entry was already posted, voided or
	// expired.
	ErrPendingClosed = errors.New("pending entry already closed")
	// ErrPendingExpired: the pending entry's timeout passed.
	ErrPendingExpired = errors.New("pending entry expired")
	// ErrExceedsPending: a partial post asks for more than is pending.
	ErrExceedsPending = errors.New("post exceeds the pending amounts")
	// ErrExceedsCredits / ErrExceedsDebits: the write would break an
	// account's limit flag.
	ErrExceedsCredits = errors.New("debits would exceed credits")
	ErrExceedsDebits  = errors.New("credits would exceed debits")
	// ErrOverflow: an account total would leave the int64 range.
	ErrOverflow = errors.New("account total would overflow")
	// ErrRefused: a database constraint refused the write, e.g. one that a
	// projector's table enforces; the message names the constraint.
	ErrRefused = errors.New("refused by a ledger constraint")
	// ErrUnavailable: the ledger is shutting down or the database failed;
	// the write may be retried with the same key.
	ErrUnavailable = errors.New("ledger unavailable")
)

// Error is a failure of one kind about one field of a request, with a
// message a person can act on.
type Error struct {
	Kind  error  // one of the Err* sentinels
	Field string // the request field, e.g. "postings[1].amount"; may be empty
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	return errorf(ErrInvalid, field, format, args...)
}

// RenameField makes an error about field from name field to instead: a
// lookup shared by several requests reports the field of the request at
// hand.
func RenameField(err error, from, to string) error {
	var le *Error
	if errors.As(err, &le) && le.Field == from {
		c := *le
		c.Field = to
		return &c
	}
	return err
}
