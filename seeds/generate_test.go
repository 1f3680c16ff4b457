package seeds

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The data set is generated once for the read-only checks; the determinism
// test generates its own copies.
var (
	datasetOnce sync.Once
	dataset     Dataset
)

func ds(t *testing.T) Dataset {
	t.Helper()
	datasetOnce.Do(func() { dataset = Generate() })
	return dataset
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := Generate(), Generate()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two Generate calls returned different data")
	}
	// A caller changing its copy must not change the next one.
	a.Merchants[0].Channels[0] = "CHANGED"
	a.Merchants[0].FeeBps["VIETQR"] = -1
	if c := Generate(); !reflect.DeepEqual(b, c) {
		t.Fatal("changing one result changed a later one")
	}
}

var realNames = []struct{ name, code string }{
	{"Chợ Thái", "TN-THAI"},
	{"Chợ Đồng Quang", "TN-DONGQUANG"},
	{"Chợ Đồng Quang 2", "TN-DONGQUANG2"},
	{"Chợ Đại Từ", "TN-DAITU"},
	{"Chợ Chu", "TN-CHU"},
	{"Chợ La Bằng", "TN-LABANG"},
	{"Chợ Đu", "TN-DU"},
	{"Chợ Đán", "TN-DAN"},
	{"Chợ Tân Khánh", "TN-TANKHANH"},
	{"Chợ Quang Vinh", "TN-QUANGVINH"},
	{"Chợ Quan Triều", "TN-QUANTRIEU"},
	{"Chợ Ba Hàng", "TN-BAHANG"},
	{"Chợ Phúc Thuận", "TN-PHUCTHUAN"},
	{"Chợ Sư Phạm", "TN-SUPHAM"},
	{"Chợ Núi Voi", "TN-NUIVOI"},
	{"Chợ Quyết Thắng", "TN-QUYETTHANG"},
	{"Chợ Chùa Hang", "TN-CHUAHANG"},
	{"Chợ Tân Long", "TN-TANLONG"},
	{"Chợ Tân Đức", "TN-TANDUC"},
	{"Chợ Úc Sơn", "TN-UCSON"},
	{"Chợ Trung Hội", "TN-TRUNGHOI"},
}

var marketCodeRE = regexp.MustCompile(`^TN-[A-Z0-9-]+$`)

func TestMarkets(t *testing.T) {
	d := ds(t)
	if len(d.Markets) != 107 {
		t.Fatalf("%d markets, want 107", len(d.Markets))
	}
	for i, want := range realNames {
		m := d.Markets[i]
		if m.Name != want.name || m.Code != want.code {
			t.Errorf("market %d = %q %q, want %q %q", i, m.Name, m.Code, want.name, want.code)
		}
	}
	if w := d.Markets[4].Ward; w != "Thị trấn Chợ Chu" {
		t.Errorf("Chợ Chu ward = %q", w)
	}
	for i := len(realNames); i < len(d.Markets); i++ {
		m := d.Markets[i]
		if !strings.HasPrefix(m.Name, "Chợ Mẫu ") || !strings.HasPrefix(m.Code, "TN-MAU-") {
			t.Errorf("market %d = %q %q, want a plainly synthetic one", i, m.Name, m.Code)
		}
	}
	if m := d.Markets[21]; m.Name != "Chợ Mẫu 022" || m.Code != "TN-MAU-022" {
		t.Errorf("first synthetic market = %q %q", m.Name, m.Code)
	}
	if m := d.Markets[106]; m.Name != "Chợ Mẫu 107" || m.Code != "TN-MAU-107" {
		t.Errorf("last synthetic market = %q %q", m.Name, m.Code)
	}
	codes := map[string]bool{}
	for _, m := range d.Markets {
		if !marketCodeRE.MatchString(m.Code) || len(m.Code) > 32 {
			t.Errorf("market code %q", m.Code)
		}
		if codes[m.Code] {
			t.Errorf("market code %q repeated", m.Code)
		}
		codes[m.Code] = true
		if m.Province != "Thái Nguyên" || m.Ward == "" || !utf8.ValidString(m.Name+m.Ward) {
			t.Errorf("market %s: province %q ward %q", m.Code, m.Province, m.Ward)
		}
		// Every QR of the market pays into its collection account.
		if m.CollectionBIN != "970436" || len(m.CollectionAccount) != 13 ||
			!strings.HasPrefix(m.CollectionHolder, "BQL CHO ") || len(m.CollectionHolder) > 50 {
			t.Errorf("market %s: collection account %s %s %q", m.Code, m.CollectionBIN, m.CollectionAccount, m.CollectionHolder)
		}
		if codes[m.CollectionAccount] {
			t.Errorf("market %s: collection account %s repeated", m.Code, m.CollectionAccount)
		}
		codes[m.CollectionAccount] = true
	}
	if m := d.Markets[0]; m.CollectionAccount != "0071000000001" || m.CollectionHolder != "BQL "+bankHolder(m.Name) {
		t.Errorf("first market's collection account %s %q", m.CollectionAccount, m.CollectionHolder)
	}
}

func TestMerchantCounts(t *testing.T) {
	d := ds(t)
	if n := len(d.Merchants); n < 9250 || n > 9350 {
		t.Errorf("%d merchants, want 9,250-9,350", n)
	}
	per := map[string]int{}
	for _, m := range d.Merchants {
		per[m.MarketCode]++
	}
	if n := per["TN-DAITU"]; n < 380 || n > 420 {
		t.Errorf("Chợ Đại Từ has %d merchants, want 380-420", n)
	}
	for _, m := range d.Markets {
		if per[m.Code] < 20 {
			t.Errorf("%s has %d merchants, want at least 20", m.Code, per[m.Code])
		}
		if m.Code != "TN-THAI" && per[m.Code] >= per["TN-THAI"] {
			t.Errorf("%s has %d merchants, not fewer than Chợ Thái's %d", m.Code, per[m.Code], per["TN-THAI"])
		}
	}
	if n := per["TN-DONGQUANG"]; n < 200 || n > 400 {
		t.Errorf("Chợ Đồng Quang has %d merchants, want 200-400", n)
	}
}

var (
	merchantCodeRE = regexp.MustCompile(`^(TN-[A-Z0-9-]+)-(\d{4})$`)
	stallRE        = regexp.MustCompile(`^[A-Z]-\d{3}$`)
	phoneRE        = regexp.MustCompile(`^0[35789]\d{8}$`)
	accountRE      = regexp.MustCompile(`^\d{8,14}$`)
	holderRE       = regexp.MustCompile(`^[A-Z]+( [A-Z]+)+$`)
	bins           = []string{"970436", "970415", "970418", "970405", "970422", "970407", "970416", "970432"}
	channelOrder   = []string{"VIETQR", "VIETTEL_MONEY", "VNPT_MONEY", "MOBIFONE_MONEY", "MOMO", "ZALOPAY"}
)

func TestMerchantFields(t *testing.T) {
	d := ds(t)
	markets := map[string]bool{}
	for _, m := range d.Markets {
		markets[m.Code] = true
	}
	codes := map[string]bool{}
	stalls := map[string]bool{} // market + stall
	phones := map[string]bool{}
	accounts := map[string]bool{} // BIN + account
	next := map[string]int{}      // market -> last merchant number
	twoStalls := 0
	for _, m := range d.Merchants {
		sub := merchantCodeRE.FindStringSubmatch(m.Code)
		if sub == nil || sub[1] != m.MarketCode || !markets[m.MarketCode] {
			t.Errorf("merchant code %q of market %q", m.Code, m.MarketCode)
			continue
		}
		next[m.MarketCode]++
		if want := next[m.MarketCode]; sub[2] != fmt.Sprintf("%04d", want) {
			t.Errorf("merchant %s: want number %04d (numbered from 0001 per market)", m.Code, want)
		}
		if codes[m.Code] {
			t.Errorf("merchant code %s repeated", m.Code)
		}
		codes[m.Code] = true

		if len(m.Stalls) < 1 || len(m.Stalls) > 2 {
			t.Errorf("%s: %d stalls", m.Code, len(m.Stalls))
		}
		if len(m.Stalls) == 2 {
			twoStalls++
		}
		for _, s := range m.Stalls {
			if !stallRE.MatchString(s) {
				t.Errorf("%s: stall %q", m.Code, s)
			}
			if stalls[m.MarketCode+"/"+s] {
				t.Errorf("%s: stall %s already taken in %s", m.Code, s, m.MarketCode)
			}
			stalls[m.MarketCode+"/"+s] = true
		}

		if m.DisplayName == "" || utf8.RuneCountInString(m.DisplayName) > 60 {
			t.Errorf("%s: display name %q", m.Code, m.DisplayName)
		}
		given := m.Owner[strings.LastIndex(m.Owner, " ")+1:]
		if !strings.HasSuffix(m.DisplayName, " "+given) {
			t.Errorf("%s: display name %q does not name owner %q", m.Code, m.DisplayName, m.Owner)
		}
		if len(strings.Fields(m.Owner)) != 3 {
			t.Errorf("%s: owner %q", m.Code, m.Owner)
		}
		if !phoneRE.MatchString(m.Phone) || phones[m.Phone] {
			t.Errorf("%s: phone %q bad or repeated", m.Code, m.Phone)
		}
		phones[m.Phone] = true
		if !slices.Contains(bins, m.BankBIN) {
			t.Errorf("%s: BIN %q", m.Code, m.BankBIN)
		}
		if !accountRE.MatchString(m.AccountNumber) || accounts[m.BankBIN+"/"+m.AccountNumber] {
			t.Errorf("%s: account %q bad or repeated", m.Code, m.AccountNumber)
		}
		accounts[m.BankBIN+"/"+m.AccountNumber] = true
		if !holderRE.MatchString(m.AccountHolder) || len(strings.Fields(m.AccountHolder)) != len(strings.Fields(m.Owner)) {
			t.Errorf("%s: holder %q for owner %q", m.Code, m.AccountHolder, m.Owner)
		}

		checkChannels(t, m)
		if m.MinFee != 0 && m.MinFee != 200 && m.MinFee != 500 {
			t.Errorf("%s: min fee %d", m.Code, m.MinFee)
		}
	}
	// "1 (most) or 2"
	if twoStalls == 0 || twoStalls > len(d.Merchants)/5 {
		t.Errorf("%d of %d merchants have two stalls", twoStalls, len(d.Merchants))
	}
}

func checkChannels(t *testing.T, m Merchant) {
	t.Helper()
	if len(m.Channels) == 0 || m.Channels[0] != "VIETQR" {
		t.Errorf("%s: channels %v do not start with VIETQR", m.Code, m.Channels)
	}
	last := -1
	telecoms := 0
	for _, ch := range m.Channels {
		i := slices.Index(channelOrder, ch)
		if i <= last {
			t.Errorf("%s: channels %v unknown, repeated or out of order", m.Code, m.Channels)
		}
		last = i
		if strings.HasSuffix(ch, "_MONEY") {
			telecoms++
		}
		bps, ok := m.FeeBps[ch]
		lo, hi := 30, 80
		switch ch {
		case "VIETQR":
			lo, hi = 0, 30
		case "MOMO", "ZALOPAY":
			lo, hi = 80, 150
		}
		if !ok || bps < lo || bps > hi {
			t.Errorf("%s: fee for %s = %d (set %v), want %d-%d", m.Code, ch, bps, ok, lo, hi)
		}
	}
	if len(m.FeeBps) != len(m.Channels) {
		t.Errorf("%s: fees %v for channels %v", m.Code, m.FeeBps, m.Channels)
	}
	// A Mobile Money wallet belongs to the SIM of its carrier.
	if telecoms > 1 {
		t.Errorf("%s: %v has more than one Mobile Money service", m.Code, m.Channels)
	}
}

func TestPayments(t *testing.T) {
	d := ds(t)
	if n := len(d.Payments); n < 14000 || n > 16000 {
		t.Fatalf("%d payments, want 14,000-16,000", n)
	}
	merchants := map[string]*Merchant{}
	for i := range d.Merchants {
		merchants[d.Merchants[i].Code] = &d.Merchants[i]
	}
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		loc = time.FixedZone("ICT", 7*3600)
	}
	if y, mo, dd := DemoDay.In(loc).Date(); y != 2026 || mo != time.November || dd != 20 {
		t.Errorf("DemoDay = %v", DemoDay)
	}
	opens := time.Date(2026, time.November, 20, 5, 0, 0, 0, loc)
	closes := time.Date(2026, time.November, 20, 19, 0, 0, 0, loc)

	refs := map[string]bool{}
	flows := map[Flow]int{}
	channels := map[string]int{}
	perMerchant := map[string]int{}
	under60k := 0
	var prev time.Time
	for i, p := range d.Payments {
		m := merchants[p.MerchantCode]
		if m == nil {
			t.Errorf("payment %d: unknown merchant %q", i, p.MerchantCode)
			continue
		}
		if !slices.Contains(m.Channels, p.Channel) {
			t.Errorf("payment %d: %s does not accept %s", i, m.Code, p.Channel)
		}
		if p.Amount < 5000 || p.Amount > 170000 || p.Amount%1000 != 0 {
			t.Errorf("payment %d: amount %d", i, p.Amount)
		}
		if p.Amount < 60000 {
			under60k++
		}
		if p.OccurredAt.Before(opens) || !p.OccurredAt.Before(closes) {
			t.Errorf("payment %d at %v, outside 05:00-19:00", i, p.OccurredAt)
		}
		if p.OccurredAt.Before(prev) {
			t.Errorf("payment %d at %v is before the one above it (%v)", i, p.OccurredAt, prev)
		}
		prev = p.OccurredAt
		if p.ProviderRef == "" || refs[p.ProviderRef] {
			t.Errorf("payment %d: provider ref %q empty or repeated", i, p.ProviderRef)
		}
		refs[p.ProviderRef] = true
		if p.Channel == "VIETQR" && !strings.HasPrefix(p.ProviderRef, "FT26324") {
			t.Errorf("payment %d: VietQR ref %q", i, p.ProviderRef)
		}
		flows[p.Flow]++
		channels[p.Channel]++
		perMerchant[p.MerchantCode]++
	}

	n := float64(len(d.Payments))
	for flow, want := range map[Flow]float64{
		FlowStallConfirmed: 75, FlowBankDirect: 17, FlowStallRejected: 4, FlowStallPending: 4,
	} {
		got := 100 * float64(flows[flow]) / n
		if got < want-2 || got > want+2 {
			t.Errorf("flow %s: %.1f%% of payments, want %.0f%% ± 2", flow, got, want)
		}
	}
	if len(flows) != 4 {
		t.Errorf("flows %v, want exactly the four", flows)
	}
	for _, ch := range channelOrder[1:] {
		if channels[ch] == 0 || channels[ch] >= channels["VIETQR"] {
			t.Errorf("channel %s: %d payments, VIETQR %d; want some, and VIETQR the most", ch, channels[ch], channels["VIETQR"])
		}
	}
	if share := float64(under60k) / n; share < 0.6 {
		t.Errorf("%.0f%% of payments under 60,000 VND, want most", 100*share)
	}
	// Skewed: some stalls take many, a long tail takes none.
	busiest := 0
	for _, c := range perMerchant {
		busiest = max(busiest, c)
	}
	idle := len(d.Merchants) - len(perMerchant)
	if busiest < 50 || idle < len(d.Merchants)/10 {
		t.Errorf("busiest merchant %d payments, %d merchants idle: want a Zipf-like skew", busiest, idle)
	}
	t.Logf("payments %d, flows %v, channels %v, under 60k %.1f%%, busiest %d, idle merchants %d",
		len(d.Payments), flows, channels, 100*float64(under60k)/n, busiest, idle)
}

func TestFolding(t *testing.T) {
	for in, want := range map[string]string{
		"Nguyễn Thị Lan":    "NGUYEN THI LAN",
		"Đặng Ngọc Ánh":     "DANG NGOC ANH",
		"Lương Thị Hường":   "LUONG THI HUONG",
		"Trịnh Văn Dũng":    "TRINH VAN DUNG",
		"Vũ  Thị   Thơm":    "VU THI THOM",
		"Ưng Ỷ Ợ Ắ Ẫ Ễ Ộ Ỹ": "UNG Y O A A E O Y",
	} {
		if got := bankHolder(in); got != want {
			t.Errorf("bankHolder(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Đồng Quang 2": "DONGQUANG2",
		"Sư Phạm":      "SUPHAM",
		"Úc Sơn":       "UCSON",
		"Quyết Thắng":  "QUYETTHANG",
		"Núi Voi":      "NUIVOI",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		Generate()
	}
}
