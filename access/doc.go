// Package access knows who is calling: credentials (issued, listed, revoked,
// stored only as hashes of their secrets), the principal a bearer secret
// stands for, and the audit trail of writes and denied calls.
//
// What a principal may do is decided in one policy table in the api
// package; this package never decides it.
package access
