// Package merchant registers markets and the merchants (household businesses
// at market stalls) that take payments there: their stalls, payout bank
// accounts, fee plans, accepted channels and static VietQR. It also names the
// ledger accounts of the chart of accounts (DESIGN.md section 3), and opens
// them when a market or merchant is created, so that a market or merchant
// never exists without its accounts.
//
// Each market is one ledger partition: the ledger market of every account
// this package opens is the market code.
//
// It must never write a ledger entry (payments and payouts are settlement's
// business) and never import the generated protobuf types: the api package
// maps. Personal data (owner name, phone, payout account) is stored in full;
// Merchant.Masked is what a caller shows to anyone who is not entitled to it.
package merchant
