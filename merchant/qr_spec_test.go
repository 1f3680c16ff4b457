package merchant_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/seeds"
)

// The payloads the service hands out are read here by a parser written from
// EMVCo's Merchant-Presented QR specification and NAPAS's VietQR profile
// alone, not by package vietqr, so that a mistake shared by its encoder and
// its parser cannot hide.

// emvTLV splits s into its data objects: a two-digit ID, a two-digit length
// counted in characters (the payload is printable ASCII, so bytes) of 01-99,
// and the value. IDs are unique within one template.
func emvTLV(t *testing.T, where, s string) (ids []string, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	for i := 0; i < len(s); {
		if len(s)-i < 4 {
			t.Fatalf("%s: %q: truncated data object at %d", where, s, i)
		}
		id, l := s[i:i+2], s[i+2:i+4]
		n, err := strconv.Atoi(l)
		if err != nil || !isDigits(id) || !isDigits(l) || n < 1 || n > 99 || i+4+n > len(s) {
			t.Fatalf("%s: %q: bad data object %q length %q at %d", where, s, id, l, i)
		}
		if _, dup := values[id]; dup {
			t.Fatalf("%s: %q: ID %s twice", where, s, id)
		}
		ids = append(ids, id)
		values[id] = s[i+4 : i+4+n]
		i += 4 + n
	}
	return ids, values
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ccittFalse is CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no
// reflection and no final XOR, computed a byte at a time through a table.
func ccittFalse(s string) uint16 {
	var table [256]uint16
	for i := range table {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		table[i] = c
	}
	crc := uint16(0xFFFF)
	for _, b := range []byte(s) {
		crc = crc<<8 ^ table[byte(crc>>8)^b]
	}
	return crc
}

// qrWant is what one payload must say.
type qrWant struct {
	dynamic      bool
	bin, account string // the market's collection account
	amount       int64  // dynamic only
	bill         string // dynamic only
	// purpose is tag 62/08 as the QR must carry it: the merchant's code
	// in a static QR, the bill number then the purpose in a dynamic one.
	purpose     string
	displayName string // the merchant's, as stored
}

// checkVietQR checks every rule of EMVCo and NAPAS a payload the service
// makes must follow.
func checkVietQR(t *testing.T, payload string, want qrWant) {
	t.Helper()
	if ccittFalse("123456789") != 0x29B1 {
		t.Fatal("ccittFalse is not CRC-16/CCITT-FALSE")
	}
	if len(payload) > 512 {
		t.Errorf("%q: %d characters; EMVCo's limit is 512", payload, len(payload))
	}
	for i := 0; i < len(payload); i++ {
		if payload[i] < 0x20 || payload[i] > 0x7e {
			t.Fatalf("%q: byte %#x at %d is not printable ASCII", payload, payload[i], i)
		}
	}
	ids, root := emvTLV(t, "root", payload)
	if len(ids) < 2 || ids[0] != "00" || ids[1] != "01" || ids[len(ids)-1] != "63" {
		t.Fatalf("%q: IDs %v; 00 first, 01 next and 63 last", payload, ids)
	}
	if crc := root["63"]; len(crc) != 4 || fmt.Sprintf("%04X", ccittFalse(payload[:len(payload)-4])) != crc {
		t.Errorf("%q: CRC %q, want %04X over everything up to and including 6304", payload, crc, ccittFalse(payload[:len(payload)-4]))
	}
	allowed := map[string]bool{"00": true, "01": true, "38": true, "53": true, "58": true, "59": true, "62": true, "63": true}
	if want.dynamic {
		allowed["54"] = true
	}
	for _, id := range ids {
		if !allowed[id] {
			t.Errorf("%q: unexpected ID %s", payload, id)
		}
	}
	initiation := "11"
	if want.dynamic {
		initiation = "12"
	}
	if root["00"] != "01" || root["01"] != initiation || root["53"] != "704" || root["58"] != "VN" {
		t.Errorf("%q: 00=%q 01=%q 53=%q 58=%q; want 01, %s, 704, VN", payload, root["00"], root["01"], root["53"], root["58"], initiation)
	}

	sub38ids, sub38 := emvTLV(t, "38", root["38"])
	if strings.Join(sub38ids, ",") != "00,01,02" || sub38["00"] != "A000000727" || sub38["02"] != "QRIBFTTA" {
		t.Errorf("%q: tag 38 is %v; want 00=A000000727, 01, 02=QRIBFTTA", payload, sub38)
	}
	beneficiaryIDs, beneficiary := emvTLV(t, "38/01", sub38["01"])
	if strings.Join(beneficiaryIDs, ",") != "00,01" || beneficiary["00"] != want.bin || beneficiary["01"] != want.account {
		t.Errorf("%q: beneficiary %v; want BIN %s, account %s", payload, beneficiary, want.bin, want.account)
	}

	if want.dynamic {
		if a := root["54"]; a != strconv.FormatInt(want.amount, 10) || len(a) > 13 || !isDigits(a) || a[0] == '0' {
			t.Errorf("%q: amount %q; want %d in whole đồng, digits only, at most 13", payload, a, want.amount)
		}
	}
	subIDs, sub := emvTLV(t, "62", root["62"])
	if sub["01"] != want.bill || len(sub["01"]) > 25 {
		t.Errorf("%q: bill number %q, want %q (at most 25)", payload, sub["01"], want.bill)
	}
	if sub["08"] != want.purpose || len(sub["08"]) > 25 {
		t.Errorf("%q: purpose %q, want %q (at most 25)", payload, sub["08"], want.purpose)
	}
	for _, id := range subIDs {
		if id != "08" && (id != "01" || !want.dynamic) {
			t.Errorf("%q: unexpected tag 62/%s", payload, id)
		}
	}

	// Tag 59 is the name in capitals without diacritics: every Latin
	// letter of the name is in it, to the 25th character.
	name, ok := root["59"]
	if ok && (len(name) > 25 || name != strings.ToUpper(name) || name != strings.TrimSpace(name) || strings.Contains(name, "  ")) {
		t.Errorf("%q: merchant name %q; want at most 25 capitals, single spaces, none at either end", payload, name)
	}
	letters := 0
	for _, r := range want.displayName {
		if unicode.IsLetter(r) && unicode.Is(unicode.Latin, r) {
			letters++
		}
	}
	got := 0
	for _, r := range name {
		if unicode.IsLetter(r) {
			got++
		}
	}
	if len(name) < 24 && got != letters {
		t.Errorf("%q: merchant name %q has %d letters, the merchant's %q has %d", payload, name, got, want.displayName, letters)
	}
}

// Every seeded merchant's dynamic QR, for the largest amount, the longest
// bill number and the longest purpose in Vietnamese.
func TestSeededMerchantsDynamicQRFollowSpec(t *testing.T) {
	t.Parallel()
	purposes := []struct{ in, want string }{
		{"", ""},
		{"Thanh toán đơn hàng số 12", "Thanh toan don hang so 12"},
		{"ĐẶT CỌC RAU CỦ QUẢ TƯƠI S", "DAT COC RAU CU QUA TUOI S"},
	}
	// Tag 62/08: the bill number, a space and the purpose, to 25
	// characters.
	bills := []struct{ in, want0, want1, want2 string }{
		{"CL23456789AB", "CL23456789AB", "CL23456789AB Thanh toan d", "CL23456789AB DAT COC RAU"},
		{strings.Repeat("Z", 25), strings.Repeat("Z", 25), strings.Repeat("Z", 25), strings.Repeat("Z", 25)},
		{"A", "A", "A Thanh toan don hang so", "A DAT COC RAU CU QUA TUOI"},
	}
	data := seeds.Generate()
	markets := map[string]merchant.Market{}
	for _, mk := range data.Markets {
		markets[mk.Code] = mk.Definition()
	}
	for i, s := range data.Merchants {
		m, mk := s.Definition(), markets[s.MarketCode]
		p, b := purposes[i%len(purposes)], bills[i/len(purposes)%len(bills)]
		qr, err := merchant.DynamicQR(mk, m, 9_999_999_999_999, b.in, p.in)
		if err != nil {
			t.Fatalf("%s: %v", m.Code, err)
		}
		purpose := []string{b.want0, b.want1, b.want2}[i%len(purposes)]
		checkVietQR(t, qr, qrWant{dynamic: true, bin: mk.Collection.BankBIN, account: mk.Collection.AccountNumber,
			amount: 9_999_999_999_999, bill: b.in, purpose: purpose, displayName: m.DisplayName})
	}
}

// Static QRs of merchants named in every way a stall is.
func TestStaticQRFollowsSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	market(t, s, "M1")
	for i, name := range []string{
		"Bún chả Cô Lan",
		"ĐỒ KHÔ ĐỨC HẠNH",
		"Hàng rau cô Lan – chợ Đại Từ, Thái Nguyên số 1",
		"Thịt lợn Ưng Ửng Ữ Ự Ỳ Ý Ỷ Ỹ Ỵ",
		"Nguyễn Văn Ánh\u00a0\u00a0Gà vịt",
		"Cafe\u0301 sữa đá",
		"Ðồ khô Ðức",
		"Bánh Noël Françoise",
		"Phở 🍜 Hà Nội",
		strings.Repeat("Ư", 100),
	} {
		m := newMerchant(fmt.Sprintf("A-%d", i), "M1", fmt.Sprintf("S-%d", i))
		m.DisplayName = name
		m.Payout.AccountNumber = strings.Repeat("9", 19)
		create(t, s, m)
		qr, err := s.StaticQR(ctx, m.Code)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		checkVietQR(t, qr, qrWant{bin: collection.BankBIN, account: collection.AccountNumber, purpose: m.Code, displayName: name})
	}
}
