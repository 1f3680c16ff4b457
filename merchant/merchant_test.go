package merchant

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant/vietqr"
)

func TestFee(t *testing.T) {
	t.Parallel()
	plan := FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 50, ChannelMoMo: 150, ChannelZaloPay: 0}, MinFee: 0}
	withMin := FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 50}, MinFee: 500}
	for _, tc := range []struct {
		name   string
		plan   FeePlan
		ch     Channel
		amount int64
		want   int64
	}{
		{"exact", plan, ChannelVietQR, 150_000, 750},
		{"half rounds up", plan, ChannelVietQR, 1_100, 6},              // 5.5
		{"just under half rounds down", plan, ChannelVietQR, 1_099, 5}, // 5.495
		{"just over half rounds up", plan, ChannelVietQR, 1_101, 6},    // 5.505
		{"small ticket rounds to zero", plan, ChannelVietQR, 99, 0},    // 0.495
		{"small ticket rounds to one", plan, ChannelVietQR, 100, 1},    // 0.5
		{"other rate", plan, ChannelMoMo, 170_000, 2_550},
		{"zero bps", plan, ChannelZaloPay, 170_000, 0},
		{"channel without a rate", plan, ChannelVNPTMoney, 170_000, 0},
		{"min fee raises", withMin, ChannelVietQR, 5_000, 500}, // 25 < 500
		{"min fee on a channel without a rate", withMin, ChannelMoMo, 5_000, 500},
		{"rate above min fee", withMin, ChannelVietQR, 2_000_000, 10_000},
		{"capped at amount", withMin, ChannelVietQR, 300, 300},
		{"zero amount", withMin, ChannelVietQR, 0, 0},
		{"negative amount", withMin, ChannelVietQR, -5_000, 0},
		{"max rate", FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 1000}}, ChannelVietQR, 12_345, 1_235}, // 1234.5
		{"huge amount does not overflow", FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 1000}}, ChannelVietQR, 9_000_000_000_000_000_000, 900_000_000_000_000_000},
		{"absurd rate is capped", FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 1 << 40}}, ChannelVietQR, 9_000_000_000_000_000_000, 9_000_000_000_000_000_000},
		{"negative rate charges nothing", FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: -50}}, ChannelVietQR, 10_000, 0},
		{"nil map", FeePlan{}, ChannelVietQR, 10_000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.plan.Fee(tc.ch, tc.amount); got != tc.want {
				t.Errorf("Fee(%s, %d) = %d, want %d", tc.ch, tc.amount, got, tc.want)
			}
		})
	}
}

func TestMasked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, owner, phone, account, holder        string
		wantOwner, wantPhone, wantAcct, wantHolder string
	}{
		{"three names", "Nguyễn Thị Lan", "0912345678", "0123456789", "NGUYEN THI LAN",
			"Nguyễn T. L.", "091****678", "******6789", "NGUYEN T. L."},
		{"four names, initials with diacritics", "Trần Đức Ánh Dương", "0381234567", "19036655778899", "Trần Đức Ánh Dương",
			"Trần Đ. Á. D.", "038****567", "**********8899", "Trần Đ. Á. D."},
		{"one name stays", "Hoa", "0701234567", "1234", "HOA",
			"Hoa", "070****567", "1234", "HOA"},
		{"extra spaces", "  Lê   Văn  Tám ", "0987654321", "12345", "Lê Văn Tám",
			"Lê V. T.", "098****321", "*2345", "Lê V. T."},
		{"short phone masked whole", "Phạm Minh", "091234", "ABCDEFGH", "Phạm Minh",
			"Phạm M.", "******", "****EFGH", "Phạm M."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Merchant{
				Code: "M-1", Owner: tc.owner, Phone: tc.phone, Stalls: []string{"A-1"}, Channels: []Channel{ChannelVietQR},
				Payout: &BankAccount{BankBIN: "970436", AccountNumber: tc.account, HolderName: tc.holder},
				Fees:   FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 50}},
			}
			got := m.Masked()
			if got.Owner != tc.wantOwner || got.Phone != tc.wantPhone || got.Payout.AccountNumber != tc.wantAcct || got.Payout.HolderName != tc.wantHolder {
				t.Errorf("Masked() = owner %q phone %q account %q holder %q, want %q %q %q %q",
					got.Owner, got.Phone, got.Payout.AccountNumber, got.Payout.HolderName, tc.wantOwner, tc.wantPhone, tc.wantAcct, tc.wantHolder)
			}
			if got.Payout.BankBIN != "970436" || got.Code != "M-1" {
				t.Errorf("Masked() changed what is not personal: %+v", got)
			}
			// The copy shares nothing with the original.
			got.Stalls[0], got.Channels[0], got.Fees.BasisPoints[ChannelVietQR] = "X", ChannelMoMo, 1
			if m.Owner != tc.owner || m.Payout.AccountNumber != tc.account || m.Stalls[0] != "A-1" || m.Channels[0] != ChannelVietQR || m.Fees.BasisPoints[ChannelVietQR] != 50 {
				t.Errorf("Masked() changed the original: %+v", m)
			}
		})
	}
	if got := (Merchant{Owner: "Lan"}).Masked(); got.Payout != nil {
		t.Errorf("Masked() invented a payout account: %+v", got.Payout)
	}
}

func TestAccountCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{PayableAccount("TN-DAITU-0042"), "merchant:TN-DAITU-0042:payable"},
		{ClearingAccount(ChannelVietQR, "TN-DAITU"), "provider:napas:market:TN-DAITU:clearing"},
		{ClearingAccount(ChannelMobifoneMoney, "TN-DAITU"), "provider:mobifonemoney:market:TN-DAITU:clearing"},
		{FeesAccount("TN-DAITU"), "market:TN-DAITU:fees"},
		{SuspenseAccount("TN-DAITU"), "market:TN-DAITU:suspense"},
		{SettlementAccount("970436", "TN-DAITU"), "bank:970436:market:TN-DAITU:settlement"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if !ledger.ValidAccountCode(tc.got) {
			t.Errorf("%q is not a valid ledger account code", tc.got)
		}
	}
	providers := map[string]bool{}
	for _, ch := range Channels {
		if !ch.Valid() || ch.Provider() == "" || providers[ch.Provider()] {
			t.Errorf("channel %s: valid %v, provider %q (each channel needs its own)", ch, ch.Valid(), ch.Provider())
		}
		providers[ch.Provider()] = true
	}
	if Channel("CASH").Valid() || Channel("").Valid() {
		t.Error("unknown channels are valid")
	}
	// Longest codes still fit the ledger's 200 characters.
	if c := ClearingAccount(ChannelMobifoneMoney, strings.Repeat("M", 32)); !ledger.ValidAccountCode(c) {
		t.Errorf("%q is not a valid ledger account code", c)
	}
}

func validMarket() Market {
	return Market{Code: "TN-DAITU", Name: "Chợ Đại Từ", Province: "Thái Nguyên", Ward: "Thị trấn Hùng Sơn"}
}

func validMerchant() Merchant {
	return Merchant{
		Code: "TN-DAITU-0042", Market: "TN-DAITU", Stalls: []string{"B-07", "A-012"},
		DisplayName: "Bún chả Cô Lan", Owner: "Nguyễn Thị Lan", Phone: "0912345678",
		Payout:   &BankAccount{BankBIN: "970436", AccountNumber: "0123456789", HolderName: "NGUYEN THI LAN"},
		Fees:     FeePlan{BasisPoints: map[Channel]int{ChannelVietQR: 50, ChannelMoMo: 150}, MinFee: 100},
		Channels: []Channel{ChannelVietQR, ChannelMoMo},
	}
}

// wantField checks that err is an invalid-argument *ledger.Error about
// field.
func wantField(t *testing.T, err error, kind error, field string) {
	t.Helper()
	var le *ledger.Error
	if !errors.As(err, &le) || !errors.Is(err, kind) || le.Field != field {
		t.Fatalf("got %v, want a %v error about %s", err, kind, field)
	}
}

// A refused merchant's message goes to the audit trail, which auditors
// read, and they see a merchant's personal data masked: the message names
// the field and the rule, and shows the value at most masked as Masked
// does.
func TestValidationMasksPersonalData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		edit   func(*Merchant)
		field  string
		secret string // must not be in the message
		masked string // must be, if set
	}{
		{"phone with spaces", func(m *Merchant) { m.Phone = " 0912 345 678 " }, "merchant.phone", "0912 345 678", `"091******678"`},
		{"phone too short", func(m *Merchant) { m.Phone = "091234567" }, "merchant.phone", "091234567", `"091***567"`},
		{"international phone too long", func(m *Merchant) { m.Phone = "+849123456789" }, "merchant.phone", "9123456789", ""},
		{"account with dashes", func(m *Merchant) { m.Payout.AccountNumber = "0011-0012-34569" }, "merchant.payout_account.account_number", "0011-0012", `"***********4569"`},
		{"account of 20", func(m *Merchant) { m.Payout.AccountNumber = "12345678901234567890" }, "merchant.payout_account.account_number", "1234567890123456", ""},
		{"owner too long", func(m *Merchant) { m.Owner = strings.Repeat("Nguyễn ", 20) }, "merchant.owner_name", "Nguyễn", ""},
		{"owner with a tab", func(m *Merchant) { m.Owner = "Nguyễn\tThị Lan" }, "merchant.owner_name", "Nguyễn", ""},
		{"holder with a newline", func(m *Merchant) { m.Payout.HolderName = "NGUYEN\nTHI LAN" }, "merchant.payout_account.holder_name", "NGUYEN", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validMerchant()
			tc.edit(&m)
			_, err := m.validate()
			wantField(t, err, ledger.ErrInvalid, tc.field)
			if strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), tc.masked) {
				t.Errorf("message %q: want no %q and %q", err.Error(), tc.secret, tc.masked)
			}
		})
	}
}

func TestMarketValidate(t *testing.T) {
	t.Parallel()
	got, err := Market{Code: " TN-DAITU ", Name: " Chợ Đại Từ ", Province: "Thái Nguyên"}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Market{Code: "TN-DAITU", Name: "Chợ Đại Từ", Province: "Thái Nguyên", Status: MarketActive}); got != want {
		t.Errorf("validate() = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Market)
		field string
	}{
		{"empty code", func(m *Market) { m.Code = "" }, "market.code"},
		{"one-character code", func(m *Market) { m.Code = "T" }, "market.code"},
		{"lower-case code", func(m *Market) { m.Code = "tn-daitu" }, "market.code"},
		{"code with a dot", func(m *Market) { m.Code = "TN.DAITU" }, "market.code"},
		{"code too long", func(m *Market) { m.Code = strings.Repeat("A", 33) }, "market.code"},
		{"empty name", func(m *Market) { m.Name = "  " }, "market.name"},
		{"name too long", func(m *Market) { m.Name = strings.Repeat("ợ", 101) }, "market.name"},
		{"name with a control character", func(m *Market) { m.Name = "Chợ\x00Đại Từ" }, "market.name"},
		{"name with a newline", func(m *Market) { m.Name = "Chợ\nĐại Từ" }, "market.name"},
		{"name not UTF-8", func(m *Market) { m.Name = "Ch\xff" }, "market.name"},
		{"empty province", func(m *Market) { m.Province = "" }, "market.province"},
		{"ward too long", func(m *Market) { m.Ward = strings.Repeat("x", 101) }, "market.ward"},
		{"unknown status", func(m *Market) { m.Status = "open" }, "market.status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validMarket()
			tc.edit(&m)
			_, err := m.validate()
			wantField(t, err, ledger.ErrInvalid, tc.field)
		})
	}
	// 100 Vietnamese characters are 100, however many bytes.
	m := validMarket()
	m.Name = strings.Repeat("ợ", 100)
	if _, err := m.validate(); err != nil {
		t.Errorf("100-character name: %v", err)
	}
}

func TestMerchantValidate(t *testing.T) {
	t.Parallel()
	in := validMerchant()
	in.Phone = "+84912345678"
	in.Owner = "  Nguyễn Thị Lan\t"
	got, err := in.validate()
	if err != nil {
		t.Fatal(err)
	}
	if got.Phone != "0912345678" || got.Owner != "Nguyễn Thị Lan" || got.Status != StatusActive ||
		!reflect.DeepEqual(got.Stalls, []string{"A-012", "B-07"}) {
		t.Errorf("validate() = %+v: want the national phone, a trimmed owner, active, stalls in order", got)
	}
	if in.Stalls[0] != "B-07" || in.Owner != "  Nguyễn Thị Lan\t" {
		t.Errorf("validate() changed its input: %+v", in)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Merchant)
		field string
	}{
		{"bad code", func(m *Merchant) { m.Code = "tn-daitu-0042" }, "merchant.code"},
		{"code too long", func(m *Merchant) { m.Code = strings.Repeat("A", 41) }, "merchant.code"},
		{"bad market", func(m *Merchant) { m.Market = "X" }, "merchant.market"},
		{"no stalls", func(m *Merchant) { m.Stalls = nil }, "merchant.stalls"},
		{"eleven stalls", func(m *Merchant) {
			m.Stalls = strings.Split("A,B,C,D,E,F,G,H,I,J,K", ",")
		}, "merchant.stalls"},
		{"bad stall", func(m *Merchant) { m.Stalls[1] = "a 12" }, "merchant.stalls[1]"},
		{"stall too long", func(m *Merchant) { m.Stalls[0] = strings.Repeat("A", 17) }, "merchant.stalls[0]"},
		{"duplicate stall", func(m *Merchant) { m.Stalls = []string{"A-1", "B-2", " A-1"} }, "merchant.stalls[2]"},
		{"empty display name", func(m *Merchant) { m.DisplayName = "" }, "merchant.display_name"},
		{"empty owner", func(m *Merchant) { m.Owner = " " }, "merchant.owner_name"},
		{"owner too long", func(m *Merchant) { m.Owner = strings.Repeat("ễ", 101) }, "merchant.owner_name"},
		{"landline", func(m *Merchant) { m.Phone = "02083851234" }, "merchant.phone"},
		{"phone too short", func(m *Merchant) { m.Phone = "091234567" }, "merchant.phone"},
		{"phone with unknown prefix", func(m *Merchant) { m.Phone = "0412345678" }, "merchant.phone"},
		{"phone with spaces inside", func(m *Merchant) { m.Phone = "091 234 5678" }, "merchant.phone"},
		{"international phone too long", func(m *Merchant) { m.Phone = "+849123456789" }, "merchant.phone"},
		{"BIN of five digits", func(m *Merchant) { m.Payout.BankBIN = "97043" }, "merchant.payout_account.bank_bin"},
		{"BIN with a letter", func(m *Merchant) { m.Payout.BankBIN = "97043A" }, "merchant.payout_account.bank_bin"},
		{"empty account", func(m *Merchant) { m.Payout.AccountNumber = "" }, "merchant.payout_account.account_number"},
		{"account of 20", func(m *Merchant) { m.Payout.AccountNumber = strings.Repeat("1", 20) }, "merchant.payout_account.account_number"},
		{"account with a dash", func(m *Merchant) { m.Payout.AccountNumber = "0123-456" }, "merchant.payout_account.account_number"},
		{"empty holder", func(m *Merchant) { m.Payout.HolderName = "" }, "merchant.payout_account.holder_name"},
		{"holder too long", func(m *Merchant) { m.Payout.HolderName = strings.Repeat("X", 51) }, "merchant.payout_account.holder_name"},
		{"negative basis points", func(m *Merchant) { m.Fees.BasisPoints[ChannelVietQR] = -1 }, "merchant.fee_plan.fees"},
		{"basis points above 1000", func(m *Merchant) { m.Fees.BasisPoints[ChannelVietQR] = 1001 }, "merchant.fee_plan.fees"},
		{"fee for an unknown channel", func(m *Merchant) { m.Fees.BasisPoints["CASH"] = 10 }, "merchant.fee_plan.fees"},
		{"fee for a channel not accepted", func(m *Merchant) { m.Fees.BasisPoints[ChannelZaloPay] = 10 }, "merchant.fee_plan.fees"},
		{"negative min fee", func(m *Merchant) { m.Fees.MinFee = -1 }, "merchant.fee_plan.min_fee"},
		{"min fee too high", func(m *Merchant) { m.Fees.MinFee = 1_000_001 }, "merchant.fee_plan.min_fee"},
		{"no channels", func(m *Merchant) { m.Channels = nil; m.Fees.BasisPoints = nil }, "merchant.channels"},
		{"unknown channel", func(m *Merchant) { m.Channels = append(m.Channels, "CASH") }, "merchant.channels[2]"},
		{"duplicate channel", func(m *Merchant) { m.Channels = append(m.Channels, ChannelVietQR) }, "merchant.channels[2]"},
		{"created suspended", func(m *Merchant) { m.Status = StatusSuspended }, "merchant.status"},
		{"created closed", func(m *Merchant) { m.Status = StatusClosed }, "merchant.status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validMerchant()
			tc.edit(&m)
			_, err := m.validate()
			wantField(t, err, ledger.ErrInvalid, tc.field)
		})
	}
	for _, ok := range []struct {
		name string
		edit func(*Merchant)
	}{
		{"pending", func(m *Merchant) { m.Status = StatusPending }},
		{"no payout account", func(m *Merchant) { m.Payout = nil }},
		{"no fees", func(m *Merchant) { m.Fees = FeePlan{} }},
		{"ten stalls", func(m *Merchant) { m.Stalls = strings.Split("A,B,C,D,E,F,G,H,I,J", ",") }},
		{"every prefix", func(m *Merchant) { m.Phone = "0312345678" }},
		{"letters in the account", func(m *Merchant) { m.Payout.AccountNumber = "VQRQ0012abc" }},
	} {
		m := validMerchant()
		ok.edit(&m)
		if _, err := m.validate(); err != nil {
			t.Errorf("%s: %v", ok.name, err)
		}
	}
}

func TestCheckPaths(t *testing.T) {
	t.Parallel()
	for _, paths := range [][]string{nil, {}, {"name", "code"}, {"status"}, {"Name"}} {
		_, err := checkPaths(paths, merchantFields)
		wantField(t, err, ledger.ErrInvalid, "update_mask")
	}
	fields, err := checkPaths([]string{"phone", "stalls", "phone"}, merchantFields)
	if err != nil || len(fields) != 2 {
		t.Errorf("checkPaths(phone, stalls, phone) = %d fields, %v; want 2, nil", len(fields), err)
	}
}

func TestQRName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Bún chả Cô Lan", "BUN CHA CO LAN"},
		{"Đồ khô Đức Hạnh", "DO KHO DUC HANH"},
		{"Rau sạch   Ngọc Ánh", "RAU SACH NGOC ANH"},
		{"Hoa quả tươi Thái Nguyên số 1", "HOA QUA TUOI THAI NGUYEN"}, // 25, trailing space cut
		{"Thịt lợn Ưng Ửng Ữ Ự", "THIT LON UNG UNG U U"},
		{"Cafe\u0301 decomposed", "CAFE DECOMPOSED"},
		{"Ðồ khô Ðức Hạnh", "DO KHO DUC HANH"}, // U+00D0, as Windows-1258 text read as Latin-1 has Đ
		{"Bánh Noël Françoise", "BANH NOEL FRANCOISE"},
		{"茶 Trà", "TRA"},
		{"茶", ""},
	} {
		if got := qrName(tc.in); got != tc.want {
			t.Errorf("qrName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The purpose goes into tag 62/08, which EMVCo and NAPAS define as
// printable ASCII: it is folded as the merchant name is, keeping its case,
// so that no banking app misreads the payload or its lengths.
func TestDynamicQRPurposeIsASCII(t *testing.T) {
	t.Parallel()
	mk := Market{Code: "M1", Collection: &BankAccount{BankBIN: "970415", AccountNumber: "113600001234", HolderName: "BQL CHO"}}
	m := Merchant{Code: "A-1", Market: "M1", DisplayName: "Bún chả Cô Lan"}
	for _, tc := range []struct{ in, want string }{
		{"Thanh toán rau cải", "Thanh toan rau cai"},
		{"phở 🍜", "pho"},
		{"ĐỒ KHÔ  Đức Hạnh", "DO KHO Duc Hanh"},
		{"Cafe\u0301 sữa", "Cafe sua"},
		// 25 characters typed decomposed, as composite-Unicode keyboards
		// write them: 30 code points.
		{"Thanh toa\u0301n đo\u031bn ha\u0300ng so\u0302\u0301 12", "Thanh toan don hang so 12"},
		{"🍜", ""},
		{"", ""},
	} {
		qr, err := DynamicQR(mk, m, 150000, "CL23456789AB", tc.in)
		if err != nil {
			t.Errorf("purpose %q: %v", tc.in, err)
			continue
		}
		for i := 0; i < len(qr); i++ {
			if qr[i] < 0x20 || qr[i] > 0x7e {
				t.Errorf("purpose %q: payload %q has byte %#x at %d, outside printable ASCII", tc.in, qr, qr[i], i)
				break
			}
		}
		p, err := vietqr.Parse(qr)
		if err != nil {
			t.Errorf("purpose %q: parse %q: %v", tc.in, qr, err)
		} else if want := strings.TrimSpace(("CL23456789AB " + tc.want)[:min(25, 13+len(tc.want))]); p.Purpose != want {
			t.Errorf("purpose %q is %q in the QR, want %q", tc.in, p.Purpose, want)
		}
	}
}

// What DynamicQR refuses of a request names the request's field, never
// none: the QR cannot carry it, and the caller must say which part to fix.
func TestDynamicQRNamesRefusedField(t *testing.T) {
	t.Parallel()
	mk := Market{Code: "M1", Collection: &BankAccount{BankBIN: "970415", AccountNumber: "113600001234", HolderName: "BQL CHO"}}
	m := Merchant{Code: "A-1", Market: "M1", DisplayName: "Bún chả Cô Lan"}
	for _, tc := range []struct {
		name          string
		amount        int64
		bill, purpose string
		field         string
	}{
		{"tab in purpose", 150000, "CL23456789AB", "rau\tcải", "purpose"},
		{"newline in purpose", 150000, "CL23456789AB", "rau cải\n", "purpose"},
		{"C1 control in purpose", 150000, "CL23456789AB", "rau\u0085cai", "purpose"},
		{"invalid UTF-8 in purpose", 150000, "CL23456789AB", "rau \xffcai", "purpose"},
		{"26 characters of purpose", 150000, "CL23456789AB", strings.Repeat("ả", 26), "purpose"},
		{"diacritic in bill number", 150000, "HĐ1", "", "bill_number"},
		{"26 characters of bill number", 150000, strings.Repeat("1", 26), "", "bill_number"},
		{"no bill number", 150000, "", "", "bill_number"},
		{"14 digits of amount", 10_000_000_000_000, "CL23456789AB", "", "amount"},
	} {
		qr, err := DynamicQR(mk, m, tc.amount, tc.bill, tc.purpose)
		var le *ledger.Error
		if !errors.As(err, &le) || !errors.Is(err, ledger.ErrInvalid) || le.Field != tc.field {
			t.Errorf("%s: got %q, %v; want ErrInvalid about %s", tc.name, qr, err, tc.field)
		}
	}
}
