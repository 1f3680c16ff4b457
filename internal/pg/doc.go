// Package pg holds what every package that talks to PostgreSQL shares: the
// connection pool, the embedded schema migrations and the transaction helper
// that retries serialization failures and deadlocks.
//
// It knows no table of its own; each domain package owns its SQL. One
// convention holds for all of it: ids (uuid columns) travel as Go strings,
// and an array of them is a text[] parameter cast in SQL ("= ANY($1::text[]::uuid[])",
// or "unnest($1::text[])" and "id::uuid"). pgx cannot encode a []string as
// a binary uuid[]: given "$1::uuid[]" it builds an error quoting every id,
// then encodes the array again as text, at every execution.
package pg
