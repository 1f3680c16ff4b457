// Package payment turns what happens at a market stall into ledger entries:
// a payment recorded by the stall app (pending until the bank confirms it),
// one reported by the bank (posted at once, or posting the matching pending
// one), confirmations, rejections, expiries and refunds, and payment
// requests with their dynamic VietQR.
//
// Every payment entry nets the merchant discount in the same entry: the
// provider's clearing account is debited the gross amount, the merchant's
// payable credited the amount less the fee, and the market's fee account
// credited the fee. It never writes the payments table directly: the
// Projector derives it from the entries, in the same transaction.
package payment
