// Package seeds is the demo data set: the 107 markets of Thái Nguyên
// province, about 9,300 merchants across them, and one market day
// (DemoDay) of about 15,000 payments. `make run` and `ledgerd seed` load it
// so that a fresh service has something worth showing: busy stalls and idle
// ones, every payment channel, and every way a payment can reach the ledger
// (confirmed, reported by the bank alone, rejected, still pending).
//
// It is demo data. The market names of the first 21 markets are real; the
// others are plainly made up ("Chợ Mẫu 022"). Every person, phone number and
// bank account is synthetic, drawn from name lists and random digits, and
// stands for no one; only the bank BINs are real, so that VietQR payloads
// built from the data are well formed. Never use it as, or mix it with,
// production data.
//
// Generate is deterministic: fixed-seed PCG streams and no map iteration, so
// every call and every run yields the same merchants and payments, and a
// demo script or a test can name "TN-DAITU-0042" and find the same stall.
// Changing any table or seed here changes the data set for everyone who
// relies on it.
//
// The package must never do I/O (no files, network, clock or environment)
// and knows nothing of the database or the ledger: writing the data is the
// loader's job. Keeping it a pure function is what makes it deterministic and
// cheap to test.
package seeds
