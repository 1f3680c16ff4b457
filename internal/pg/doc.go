// Package pg holds what every package that talks to PostgreSQL shares: the
// connection pool, the embedded schema migrations and the transaction helper
// that retries serialization failures and deadlocks.
//
// It knows no table of its own; each domain package owns its SQL.
package pg
