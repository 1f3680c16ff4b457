// Package settlement answers what is owed to whom over a period: a
// merchant's settlement (opening balance, payments by channel, refunds,
// fees, payouts, pending and closing balance, per day), a market's (the same
// summed over its merchants, per channel and per provider, with one line per
// merchant), and what each provider still owes a market. It records the
// money providers pay to a settlement bank, pays merchants out in batches
// (payout.go), and reconciles provider and bank statements against the
// payments (reconciliation.go; settlement/statement parses the files,
// settlement/reconcile matches them).
//
// Period reports read daily rollups, never raw postings: Rollups and
// Projector keep them in the same transaction as the entries they derive
// from (Projectors lists them for ledger.Options.Projectors), so a report costs
// O(days), and CheckRollups recomputes them from the journal for tests and
// audits. A day is the Asia/Ho_Chi_Minh calendar date of an entry's
// recorded_at, the ledger's booking time, so that a period's closing balance
// is to the đồng the ledger's balance as of the end of the period.
//
// The entries it writes are of its own reserved kinds (provider
// settlements, payouts); it never imports the generated protobuf types:
// the api package maps.
package settlement
