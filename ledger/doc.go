// Package ledger is the double-entry engine: accounts with running totals,
// balanced entries of postings, two-phase (pending, then posted or voided)
// entries, idempotent writes, a hash chain per market, balances as of any
// point of the journal, and the batching committer that groups concurrent
// writes into one PostgreSQL transaction.
//
// It knows nothing of merchants, payments or providers: the market is only
// the key that partitions accounts, entries and hash chains. It never updates
// or deletes an entry or a posting; a mistake is corrected by a new entry.
package ledger
