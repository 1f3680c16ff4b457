package merchant

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/choledger/choledger/merchant/vietqr"
)

// StaticQR returns the merchant's static VietQR payload: the one printed and
// stuck on the stall, into which the buyer types the amount. It pays into
// the market's collection account, not the merchant's own (see qrPayload),
// so a merchant of a market without one has none (ErrNoCollectionAccount);
// a merchant without a payout account has one, and is paid out once it
// registers an account. A closed merchant gets none (ErrBadTransition) so
// that no new QR can bring money for a business that no longer trades.
// Nor does a merchant that does not accept VIETQR (ErrChannelNotAccepted):
// the buyer's transfer would go through, and the payment be refused. A
// pending or suspended merchant does get one: the stall prints it before
// opening, and keeps the one it has while suspended.
func (s *Store) StaticQR(ctx context.Context, code string) (string, error) {
	m, err := s.GetMerchant(ctx, code)
	if err != nil {
		return "", err
	}
	if m.Status == StatusClosed {
		return "", errorf(ErrBadTransition, "code", "merchant %s is closed", m.Code)
	}
	if !m.Accepts(ChannelVietQR) {
		return "", errorf(ErrChannelNotAccepted, "code", "merchant %s does not accept %s", m.Code, ChannelVietQR)
	}
	mk, err := getMarket(ctx, s.pool, "code", m.Market, "")
	if err != nil {
		return "", err
	}
	p, err := qrPayload(mk, m, "code")
	if err != nil {
		return "", err
	}
	// Tag 62/08, which banking apps carry into the transfer's description,
	// names the merchant: by it the collecting bank's notification says
	// whose payment the transfer is.
	if err := vietqr.CheckPurpose(m.Code); err != nil {
		return "", errorf(ErrCodeNotInQR, "code", "merchant %s: its code is %d characters, and a QR carries at most %d in tag 62/08, by which the bank tells whose transfer it is",
			m.Code, len(m.Code), MaxQRPurpose)
	}
	p.Purpose = m.Code
	payload, err := vietqr.Encode(p)
	if err != nil {
		// The collection account was validated when stored and the code
		// is checked above; this is a bug.
		return "", fmt.Errorf("static QR of merchant %s: %w", m.Code, err)
	}
	return payload, nil
}

// DynamicQR returns the VietQR payload of one payment request to m, of the
// market mk: its amount in whole đồng and its bill number (tag 62/01), by
// which the bank's notification is matched back to the request, and in tag
// 62/08 the bill number again, then the purpose as QRPurpose folds it, cut
// to 25 characters: many banking apps carry only 62/08 into the transfer's
// description, which the collecting bank's notification must name the bill
// by. It reads nothing: whether m may take the payment is the caller's to
// decide. What the payload cannot carry is refused naming amount,
// bill_number or purpose; a market without a collection account is refused
// ErrNoCollectionAccount.
func DynamicQR(mk Market, m Merchant, amount int64, billNumber, purpose string) (string, error) {
	p, err := qrPayload(mk, m, "merchant")
	if err != nil {
		return "", err
	}
	if amount <= 0 {
		return "", invalid("amount", "must be positive, got %d", amount)
	}
	if amount > maxQRAmount {
		return "", invalid("amount", "at most %d đồng (13 digits) in a QR, got %d", int64(maxQRAmount), amount)
	}
	if billNumber == "" {
		return "", invalid("bill_number", "is required: it matches the bank's notification to the request")
	}
	if err := vietqr.CheckBillNumber(billNumber); err != nil {
		return "", invalid("bill_number", "%v", err)
	}
	purpose, err = QRPurpose(purpose)
	if err != nil {
		return "", err
	}
	p.Initiation = vietqr.Dynamic
	p.Amount = strconv.FormatInt(amount, 10)
	p.BillNumber = billNumber
	p.Purpose = billPurpose(billNumber, purpose)
	payload, err := vietqr.Encode(p)
	if err != nil {
		// The market's part was validated when stored and the request's
		// is checked above; this is a bug.
		return "", fmt.Errorf("dynamic QR of merchant %s: %w", m.Code, err)
	}
	return payload, nil
}

// billPurpose is tag 62/08 of a payment request's QR: the bill number, then
// a space and the folded purpose, cut to MaxQRPurpose characters (ASCII, so
// bytes), with no space at the end. The bill number, at most 25
// characters, always fits whole.
func billPurpose(billNumber, purpose string) string {
	out := billNumber
	if purpose != "" {
		out += " " + purpose
	}
	if len(out) > MaxQRPurpose {
		out = strings.TrimRight(out[:MaxQRPurpose], " ")
	}
	return out
}

// maxQRAmount is the largest amount tag 54 holds: 13 digits.
const maxQRAmount = 9_999_999_999_999

// MaxQRPurpose is the length of a purpose, in characters, as given
// (composed: a letter with its diacritics is one) and as tag 62/08 carries
// it.
const MaxQRPurpose = 25

// QRPurpose is purpose as a dynamic QR carries it in tag 62/08: folded to
// printable ASCII by qrText. A purpose longer than MaxQRPurpose characters,
// not valid UTF-8, or holding a control character (a tab, a line break) is
// refused naming the field purpose: folding such a one would hide the
// client's mistake rather than carry what it meant.
func QRPurpose(purpose string) (string, error) {
	if !utf8.ValidString(purpose) {
		return "", invalid("purpose", "must be valid UTF-8")
	}
	// Counted composed, as the stall typed it: a keyboard that writes ố as
	// o and two combining marks writes the same 25 characters as one that
	// writes it as one.
	if n := utf8.RuneCountInString(norm.NFC.String(purpose)); n > MaxQRPurpose {
		return "", invalid("purpose", "at most %d characters, got %d", MaxQRPurpose, n)
	}
	for _, r := range purpose {
		if unicode.IsControl(r) {
			return "", invalid("purpose", "must not contain control character %U", r)
		}
	}
	folded := qrText(purpose)
	if err := vietqr.CheckPurpose(folded); err != nil {
		return "", invalid("purpose", "%v", err)
	}
	return folded, nil
}

// qrPayload is the static payload of m, a merchant of the market mk,
// without tag 62. Tag 38 names mk's collection account, not m's payout
// account: the customer's money is owed by the provider and paid to the
// market's settlement bank, and payout batches pay the merchant from there
// (docs/design.md, "QR codes"). A QR naming the merchant's own account
// put the money with the merchant while the ledger held it owed by the
// provider, which never received it, and owed to the merchant, to be paid
// out again. A market without a
// collection account is refused, naming field.
func qrPayload(mk Market, m Merchant, field string) (vietqr.Payload, error) {
	if mk.Collection == nil {
		return vietqr.Payload{}, errorf(ErrNoCollectionAccount, field, "market %s of merchant %s has no collection account for its QR to pay into", mk.Code, m.Code)
	}
	return vietqr.Payload{
		Initiation:   vietqr.Static,
		BankBIN:      mk.Collection.BankBIN,
		Account:      mk.Collection.AccountNumber,
		Service:      vietqr.ServiceAccount,
		Currency:     vietqr.CurrencyVND,
		Country:      vietqr.CountryVN,
		MerchantName: qrName(m.DisplayName),
	}, nil
}

// MaxQRName is the length of tag 59 (merchant name) of an EMVCo payload.
const MaxQRName = 25

// qrName is the merchant name printed in a QR: qrText in capitals, as
// Vietnamese banks show names, cut to MaxQRName characters. An empty result
// leaves the tag out.
func qrName(name string) string {
	out := strings.ToUpper(qrText(name))
	if len(out) > MaxQRName { // ASCII only: bytes are characters
		out = strings.TrimRight(out[:MaxQRName], " ")
	}
	return out
}

// qrText is text folded for a QR: without diacritics, as every banking app
// can render it and as EMVCo's "ans" fields (tag 62's) require, since an app
// that meets other bytes misreads the payload, and UTF-8 characters and
// UTF-16 units count lengths differently. A letter is split from its
// diacritics by canonical decomposition (ố is o, circumflex and acute), so
// every precomposed Latin letter, Vietnamese or not (ç, ñ, ü), and text that
// came decomposed fold alike. Case is kept; characters with no plain Latin
// form (emoji, other scripts) are left out, and runs of white space become
// one space, none at either end. The result is printable ASCII and never
// longer, in characters, than s.
func qrText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) { // a diacritic, split off its letter
			continue
		}
		if base, ok := strokedD[r]; ok {
			r = base
		}
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r < 0x21 || r > 0x7e:
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// strokedD maps the letters d with a stroke, which have no decomposition,
// to d. Ð and ð (U+00D0, U+00F0) look like Vietnamese Đ and đ and are what
// text keeps of them after passing through Latin-1 as Windows-1258.
var strokedD = map[rune]rune{'đ': 'd', 'Đ': 'D', 'ð': 'd', 'Ð': 'D'}
