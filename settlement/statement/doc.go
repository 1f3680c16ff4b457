// Package statement reads the statements that payment providers and banks
// send us (a CSV export, or an ISO 20022 camt.053 end-of-day statement or
// camt.054 debit/credit notification) into a list of booked transactions,
// so that reconciliation can match each one against the payments the
// ledger recorded: by provider reference first, then by amount and time.
//
// # What it must never do
//
// It reads the io.Reader it is given and nothing else: no files, network,
// database or clock, and it knows nothing of the ledger. It never returns a
// partial statement: the first problem refuses the whole statement with an
// *Error naming the line (or camt entry) and the field, because a
// reconciliation run on half a file would report the other half's payments
// as missing. It never rounds or guesses an amount, a direction, a time
// zone or a reference: anything ambiguous is refused. It never expands XML
// entities or reads DTDs.
//
// Every refusal of the content satisfies errors.Is(err, ErrMalformed); any
// other error is the reader failing or invalid Options.
//
// # CSV format
//
// The file is UTF-8; a leading UTF-8 byte order mark is allowed and
// skipped, and any invalid UTF-8 is refused, naming its line. Fields are
// comma-separated and may be quoted as in RFC 4180 (a quoted field may hold
// commas, doubled quotes and line breaks). Empty lines are skipped. Line
// numbers count physical lines of the file, the header being line 1; a row
// is numbered by the line it starts on.
//
// The first row is a header naming each column exactly (case-sensitive, no
// surrounding spaces), in any order:
//
//	column       required  content
//	ref          yes       the provider's transaction reference:
//	                       1 to 64 printable ASCII characters (space to ~),
//	                       no leading or trailing space; unique within the
//	                       file (a repeated ref is refused, naming both lines)
//	amount       yes       positive plain decimal in the currency's major
//	                       unit: digits, optionally '.' and more digits; no
//	                       sign, exponent, spaces or thousands separators;
//	                       at most 10^15 minor units. Decimals beyond the
//	                       currency's exponent are refused unless they are
//	                       zeros: VND "150000" and "150000.00" are accepted
//	                       and equal, "1500.5" is refused; USD "12.50" is
//	                       1250 cents, "12.345" is refused. A point before
//	                       one group of three digits, "150.000", is refused
//	                       in a currency of fewer than three decimals: it is
//	                       how Vietnamese writes 150,000
//	currency     yes       ISO 4217 code of an accepted currency (by default
//	                       VND, USD, EUR; see Options.Exponents)
//	booked_at    yes       when the provider booked it: RFC 3339 with an
//	                       offset ("2026-03-10T08:15:00+07:00", "...Z",
//	                       fractional seconds allowed), or
//	                       "2026-03-10 08:15:00", meaning Vietnam time
//	                       (Asia/Ho_Chi_Minh, UTC+7); not before the
//	                       year 2000
//	direction    no        "credit" (money in, a payment; the default when
//	                       the column is absent or the field empty) or
//	                       "debit" (money out, a refund or reversal)
//	channel      no        how it was paid, e.g. "VIETQR", "MOMO": up to 64
//	                       printable ASCII characters, or empty
//	merchant     no        merchant code: up to 64 printable ASCII
//	                       characters, or empty
//	description  no        free text; control characters are dropped,
//	                       runs of white space become one space, and the
//	                       first 140 characters are kept
//
// A column not in this table, or named twice, is refused, so a misspelt
// optional column is reported rather than read as absent. Every row must
// have as many fields as the header. An empty required field is refused.
// When Options gives a period, a booked_at outside [PeriodStart, PeriodEnd)
// is refused. A file without data rows, or with more than Options.MaxLines
// of them, is refused, as is one larger than Options.MaxBytes.
//
// A CSV carries no statement id, so Statement.ID is the hex SHA-256 of the
// file, the same as Statement.Digest.
//
// Example:
//
//	ref,amount,currency,booked_at,direction,channel,merchant,description
//	FT26069A1B2C,150000,VND,2026-03-10T08:15:30+07:00,credit,VIETQR,TN-DAITU-0042,Thanh toán rau củ
//	FT26069Z9Y8X,150000,VND,2026-03-10 17:02:11,debit,VIETQR,TN-DAITU-0042,Hoàn tiền
//
// # camt.053 and camt.054
//
// ParseCamt accepts camt.053.001.02 to .13 (Document/BkToCstmrStmt/Stmt)
// and camt.054.001.02 to .13 (Document/BkToCstmrDbtCdtNtfctn/Ntfctn); the
// namespace and the root child must agree. Every element must be in that
// namespace, except the content of SplmtryData/Envlp, which ISO 20022
// leaves to any schema and which is not read: an element of another
// namespace named like a camt one (<Ntry xmlns="urn:other">) is not camt's
// and is refused, not read by its name. The document must be UTF-8 and
// hold exactly one Stmt or Ntfctn: one Statement is one account's report.
// Statement.ID is its Id. Its FrToDt, when present, is the period lines
// are checked against unless Options gives one; ToDtTm is taken as the
// last instant covered, so the period ends one second after it (rounded
// down to whole seconds).
//
// Only booked entries are kept: Ntry whose Sts is BOOK (<Sts>BOOK</Sts> up
// to version 07, <Sts><Cd>BOOK</Cd></Sts> from 08). Pending (PDNG),
// information (INFO), future (FUTR) and proprietary statuses are skipped
// unchecked, since nothing of them is used; they still count in
// Line.Number, which is the entry's ordinal among all the document's Ntry,
// so a person can find it. Of a booked entry:
//
//   - Amt and its Ccy give Amount and Currency, under the CSV amount rules.
//   - CdtDbtInd gives Credit: CRDT true, DBIT false, the direction the
//     money moved.
//   - RvslInd ("true" or "1"; absent, "false" or "0" is none) gives
//     Reversal: the entry undoes an earlier one of the other direction. A
//     credit reversal (a refund that bounced back) is money in but no
//     customer's payment, and a debit reversal takes a payment back, so
//     the direction alone does not say what the line is.
//   - BookgDt/DtTm gives BookedAt (without an offset it is Vietnam time);
//     a date-only BookgDt/Dt means 00:00 Vietnam time that day, and
//     DateOnly, the booking being at some time of that day.
//   - Ref is the first non-empty of NtryDtls/TxDtls/Refs/AcctSvcrRef,
//     NtryDtls/TxDtls/Refs/EndToEndId (ignoring "NOTPROVIDED"),
//     Ntry/AcctSvcrRef and NtryRef, and must be 1 to 64 printable ASCII
//     characters. An entry with several TxDtls (a batch) uses only the
//     entry-level references, as its amount is the batch total. Refs must be
//     unique within the statement.
//   - Description is NtryDtls/TxDtls/RmtInf/Ustrd (several joined by a
//     space), else AddtlNtryInf, cleaned as in CSV.
//   - Channel and Merchant are left empty: camt has no standard place for
//     them.
//
// An element read here that the schema allows once (Id, FrToDt and its
// FrDtTm and ToDtTm; of a booked entry Amt, CdtDbtInd, Sts, BookgDt,
// NtryRef, AcctSvcrRef, and TxDtls/Refs with its AcctSvcrRef and
// EndToEndId) is refused when repeated, naming it and the entry: reading
// one of several would be a guess.
//
// Unlike a CSV, a camt document with no booked entries is accepted with no
// lines: a bank reports a day without transactions that way, and the
// closing tags show the file is complete.
package statement
