package access

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/choledger/choledger/internal/pg"
	"github.com/choledger/choledger/ledger"
)

// Event is one line of the audit trail: a write or a denied call.
type Event struct {
	ID           int64
	At           time.Time
	CredentialID string
	Role         Role
	Method       string
	Target       string
	Code         string
	Message      string
}

// Audit writes the trail in the background, many events per insert, so
// that recording a call never adds a disk flush to it. Close (and Sync)
// wait for what was recorded to be written; a crash loses at most the
// events of the last flush interval, never a ledger write.
type Audit struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	events  chan auditItem
	closing chan struct{} // closed by Stopping: a batch is tried once more, not retried
	done    chan struct{}
	once    sync.Once
	stopped sync.Once
}

type auditItem struct {
	event  Event
	synced chan struct{} // set on a Sync marker instead of an event
}

const (
	auditQueue    = 8192
	auditBatch    = 1000
	auditInterval = 100 * time.Millisecond
)

// NewAudit starts the audit writer.
func NewAudit(pool *pgxpool.Pool, log *slog.Logger) *Audit {
	a := &Audit{pool: pool, log: log, events: make(chan auditItem, auditQueue), closing: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// Record queues an event. It waits when the queue is full rather than drop
// the event.
func (a *Audit) Record(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	// What a call named is the request's field as sent: any caller may put
	// in it what PostgreSQL refuses, and would so erase its own denied call,
	// and every other event of the batch, from the trail. It, and a message
	// echoing it, may be a secret sent in the wrong field, which the trail's
	// readers must not learn.
	e.Role = Role(storable(string(e.Role), maxName))
	e.Method = storable(e.Method, maxName)
	e.Target = storable(redact(e.Target), maxTarget)
	e.Code = storable(e.Code, maxName)
	e.Message = storable(redact(e.Message), maxMessage)
	a.events <- auditItem{event: e}
}

// Bounds of an event's text, in bytes.
const (
	maxName    = 200 // role, method, code: the service's own names
	maxTarget  = 200 // a code, an id, an account: never longer than this
	maxMessage = 500
)

// storable makes s fit the trail. PostgreSQL text holds neither a NUL nor
// bytes that are not UTF-8, and a control character could forge or hide a
// line where the trail is printed, so these are escaped as Go writes them
// (\x00, \xff, \u0085). s is then cut to at most max bytes, on a character
// boundary and never inside an escape: half a character is not UTF-8
// either. A cut s ends in "…".
func storable(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	fits := 0 // the length of b that leaves room for "…"
	for i := 0; i < len(s) && b.Len() <= max; {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < utf8.RuneSelf && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
		if b.Len() <= max-len("…") {
			fits = b.Len()
		}
	}
	if b.Len() <= max {
		return b.String()
	}
	return b.String()[:fits] + "…"
}

// Sync waits until every event recorded before it is written.
func (a *Audit) Sync(ctx context.Context) error {
	c := make(chan struct{})
	select {
	case a.events <- auditItem{synced: c}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopping tells the writer that ledgerd is stopping: from then on a batch
// the database cannot take is no longer tried again for half a minute,
// only once more, and logged. ledgerd stopped while the database is out of
// reach would otherwise wait 30 s a batch past its shutdown timeout, for
// the calls waiting for room in a full queue, and one killed meanwhile
// loses its queued events without a line in the log. Events are still
// recorded and written until Close.
func (a *Audit) Stopping() {
	a.stopped.Do(func() { close(a.closing) })
}

// Close writes what is queued and stops the writer, trying a batch the
// database cannot take once more, as once Stopping.
func (a *Audit) Close() {
	a.once.Do(func() {
		a.Stopping()
		close(a.events)
		<-a.done
	})
}

func (a *Audit) run() {
	defer close(a.done)
	var batch []Event
	var waiting []chan struct{}
	tick := time.NewTicker(auditInterval)
	defer tick.Stop()
	flush := func() {
		if len(batch) > 0 {
			a.write(batch)
			batch = batch[:0]
		}
		for _, c := range waiting {
			close(c)
		}
		waiting = waiting[:0]
	}
	for {
		select {
		case it, ok := <-a.events:
			if !ok {
				flush()
				return
			}
			if it.synced != nil {
				waiting = append(waiting, it.synced)
				flush()
				continue
			}
			batch = append(batch, it.event)
			if len(batch) >= auditBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

func (a *Audit) write(batch []Event) {
	// While the database cannot be reached (a restart, a failover), the
	// batch is tried again, for up to half a minute; events recorded
	// meanwhile wait in the queue, and once it is full, so do the calls. A
	// batch whose insert committed just before its connection was cut is
	// then written twice: the trail prefers a repeated event to a lost one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := a.insert(ctx, batch)
	if refused(ctx, err) {
		// The database refused an event of the batch: one event it cannot
		// store must not lose the others.
		for _, e := range batch {
			a.writeOne(ctx, e)
		}
		return
	}
	if err != nil {
		// The trail must not silently lose events: say so loudly, with the
		// events, so they survive in the logs.
		for _, e := range batch {
			a.lost(e, err)
		}
	}
}

// writeOne stores an event of a batch the database refused. An event it
// refuses alone is stored as a placeholder, and logged in full.
func (a *Audit) writeOne(ctx context.Context, e Event) {
	err := a.insert(ctx, []Event{e})
	if refused(ctx, err) {
		a.log.Error("audit event refused by the database; storing a placeholder", "err", err,
			"credential", e.CredentialID, "role", e.Role, "method", e.Method, "target", e.Target, "code", e.Code, "message", e.Message, "at", e.At)
		err = a.insert(ctx, []Event{placeholder(e, err)})
	}
	if err != nil {
		a.lost(e, err)
	}
}

// refused reports whether err is the database refusing what was inserted,
// rather than a database out of reach or out of time.
func refused(ctx context.Context, err error) bool {
	return err != nil && !pg.Unavailable(err) && ctx.Err() == nil
}

// placeholder stands for an event the database refused: it keeps what
// cannot fail to be stored, and its message tells the rest.
func placeholder(e Event, err error) Event {
	msg := fmt.Sprintf("event not storable as recorded (%v): credential %q, at %s; message: %s",
		err, e.CredentialID, e.At.Format(time.RFC3339Nano), e.Message)
	return Event{
		At: time.Now(), Role: Role(storable(string(e.Role), maxName)), Method: storable(e.Method, maxName),
		Target: storable(e.Target, maxTarget), Code: storable(e.Code, maxName), Message: storable(msg, maxMessage),
	}
}

func (a *Audit) lost(e Event, err error) {
	a.log.Error("audit event not stored", "err", err, "credential", e.CredentialID, "method", e.Method, "target", e.Target, "code", e.Code)
}

// insert writes events in one statement, trying again while the database
// cannot be reached.
func (a *Audit) insert(ctx context.Context, events []Event) error {
	n := len(events)
	at, cred, role, method, target, code, msg := make([]time.Time, n), make([]*string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range events {
		at[i], role[i], method[i], target[i], code[i], msg[i] = e.At, string(e.Role), e.Method, e.Target, e.Code, e.Message
		if e.CredentialID != "" {
			id := e.CredentialID
			cred[i] = &id
		}
	}
	for attempt := 1; ; attempt++ {
		_, err := a.pool.Exec(ctx, `
INSERT INTO audit_events (at, credential_id, role, method, target, code, message)
SELECT at, credential_id::uuid, role, method, target, code, message
  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
       AS t(at, credential_id, role, method, target, code, message)`,
			at, cred, role, method, target, code, msg)
		if err == nil || !pg.Unavailable(err) || a.isClosing() || pg.Backoff(ctx, attempt) != nil {
			return err
		}
	}
}

func (a *Audit) isClosing() bool {
	select {
	case <-a.closing:
		return true
	default:
		return false
	}
}

// ListEvents returns a page of the trail, newest first.
func ListEvents(ctx context.Context, pool *pgxpool.Pool, credentialID string, deniedOnly bool, pageSize int, pageToken string) ([]Event, string, error) {
	size, err := ledger.PageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	if credentialID != "" {
		id, ok := ledger.CanonicalUUID(credentialID)
		if !ok {
			return nil, "", invalid("credential_id", "must be a credential id (UUID), got %q", redact(credentialID))
		}
		credentialID = id
	}
	query := credentialID + "," + strconv.FormatBool(deniedOnly)
	place, err := ledger.PageAfter("audit", query, pageToken, "credential_id and denied_only")
	if err != nil {
		return nil, "", err
	}
	before := int64(1<<63 - 1)
	if place != "" {
		if before, err = strconv.ParseInt(place, 10, 64); err != nil {
			return nil, "", invalid("page_token", "is not a token of this list")
		}
	}
	where := `id < $1 AND ($2 = '' OR credential_id = NULLIF($2, '')::uuid)`
	if deniedOnly {
		// Written out, not a parameter, so that every plan can walk the
		// partial index of the refusals rather than the whole trail.
		where += ` AND code IN ('PermissionDenied', 'Unauthenticated')`
	}
	rows, err := pool.Query(ctx, `
SELECT id, at, COALESCE(credential_id::text, ''), role, method, target, code, message FROM audit_events
 WHERE `+where+`
 ORDER BY id DESC LIMIT $3`, before, credentialID, size+1)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var role string
		if err := rows.Scan(&e.ID, &e.At, &e.CredentialID, &role, &e.Method, &e.Target, &e.Code, &e.Message); err != nil {
			return nil, "", err
		}
		e.Role, e.At = Role(role), e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = ledger.PageToken("audit", query, strconv.FormatInt(out[size-1].ID, 10))
	}
	return out, next, nil
}
