package seeds

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Market is a market of the province.
type Market struct {
	Code     string // "TN-" + ASCII slug of the name, e.g. "TN-DAITU"
	Name     string // e.g. "Chợ Đại Từ"
	Province string
	Ward     string
	// The account at the market's collecting bank that every QR of the
	// market pays into: at Vietcombank, the demo's settlement bank, 13
	// digits, so it is no merchant's (theirs there have 10).
	CollectionBIN     string
	CollectionAccount string
	CollectionHolder  string // "BQL " (the market's management board) and its name as banks print it
}

// Merchant is one stall keeper of a market and how they are paid.
type Merchant struct {
	Code          string // market code + "-" + 4 digits, e.g. "TN-DAITU-0042"
	MarketCode    string
	Stalls        []string // one or two stall codes like "A-012", unique within the market
	DisplayName   string   // what buyers call the stall, e.g. "Hàng rau cô Lan"
	Owner         string   // e.g. "Nguyễn Thị Lan"
	Phone         string   // 10 digits, a Vietnamese mobile number
	BankBIN       string   // NAPAS BIN of the merchant's bank
	AccountNumber string   // 8-14 digits
	AccountHolder string   // Owner as banks print it, e.g. "NGUYEN THI LAN"
	Channels      []string // "VIETQR" first, then any of the others in canonical order
	FeeBps        map[string]int
	MinFee        int64 // VND
}

// Flow is how a payment reaches the ledger, which decides what the loader
// must write for it: the four flows are the cases reconciliation handles.
type Flow string

const (
	FlowStallConfirmed Flow = "stall_confirmed" // stall app records it, the bank confirms it
	FlowBankDirect     Flow = "bank_direct"     // the bank reports a payment the stall never recorded
	FlowStallRejected  Flow = "stall_rejected"  // stall records it, the bank says it failed
	FlowStallPending   Flow = "stall_pending"   // stall records it, no word from the bank yet
)

// Payment is one payment of the demo day.
type Payment struct {
	MerchantCode string
	Channel      string
	Amount       int64 // VND
	OccurredAt   time.Time
	Flow         Flow
	ProviderRef  string // what the provider calls it; set for every flow, unique in the data set
}

// Dataset is everything Generate makes, in the order the loader should
// write it: markets before their merchants, payments in time order.
type Dataset struct {
	Markets   []Market
	Merchants []Merchant
	Payments  []Payment
}

// demoZone is shared by every time in the data set so that two Generate
// results compare equal with reflect.DeepEqual, which looks at the
// *Location pointer. Vietnam has kept UTC+7 without daylight saving since
// 1975, so the fixed zone is exact when the system has no tzdata.
var demoZone = loadZone()

func loadZone() *time.Location {
	if loc, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return loc
	}
	return time.FixedZone("ICT", 7*3600)
}

// DemoDay is the calendar day (Asia/Ho_Chi_Minh) of the demo payments,
// midnight at its start.
var DemoDay = time.Date(2026, time.November, 20, 0, 0, 0, 0, demoZone)

const (
	marketCount     = 107
	merchantTotal   = 9300
	minMerchants    = 20 // per market: even a village market has a few dozen stalls
	paymentsPerDay  = 15000
	twoStallPercent = 8

	// The market day: first payments at dawn, last before the halls close.
	dayOpens  = 5 * time.Hour
	dayCloses = 19 * time.Hour

	minAmount = 5_000
	maxAmount = 170_000
	// amountSigma spreads tickets around each category's median; with the
	// medians in categories it leaves roughly three in four under 60,000.
	amountSigma = 0.55

	// The payment distribution over merchants is 1/(rank+zipfOffset)^zipfExponent.
	// A pure 1/rank law would give one stall a tenth of the province's
	// payments; these give the busiest about 170 (one every five minutes)
	// and leave about four in ten stalls without a cashless sale all day,
	// which is what a new scheme's uptake looks like.
	zipfOffset   = 5
	zipfExponent = 0.8
)

// Each part of the data set has its own stream, so retuning payments does
// not reshuffle the merchants the demo script refers to by code.
var (
	seedMarkets   = [2]uint64{20261120, 1}
	seedMerchants = [2]uint64{20261120, 2}
	seedPayments  = [2]uint64{20261120, 3}
)

// flowShares are per mille of the day's payments; they are exact quotas
// rather than draws so the demo numbers are the same round shares every run.
var flowShares = []struct {
	flow     Flow
	perMille int
}{
	{FlowStallConfirmed, 750},
	{FlowBankDirect, 170},
	{FlowStallRejected, 40},
	{FlowStallPending, 40},
}

// hourWeights shapes the day from 05:00 (index 0) to 18:00: the morning rush
// for fresh food, a lull at noon and a smaller rush after work.
var hourWeights = []int{6, 12, 14, 11, 8, 6, 5, 3, 3, 4, 6, 9, 10, 5}

// channelWeights make VietQR the most used channel wherever it competes,
// as it is in the markets: every buyer's bank app can scan it.
var channelWeights = map[string]int{
	chanVietQR:   10,
	chanViettel:  2,
	chanVNPT:     2,
	chanMobifone: 2,
	chanMoMo:     3,
	chanZaloPay:  2,
}

// Generate returns the demo data set. Every call returns equal data, built
// afresh so callers may change it.
func Generate() Dataset {
	markets, counts := genMarkets()
	merchants, cats := genMerchants(markets, counts)
	return Dataset{
		Markets:   markets,
		Merchants: merchants,
		Payments:  genPayments(merchants, cats),
	}
}

func newRand(seed [2]uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed[0], seed[1]))
}

// genMarkets returns the markets and how many merchants each has.
func genMarkets() ([]Market, []int) {
	r := newRand(seedMarkets)
	markets := make([]Market, 0, marketCount)
	counts := make([]int, 0, marketCount)
	for _, rm := range realMarkets {
		markets = append(markets, Market{
			Code:     "TN-" + slug(rm.name),
			Name:     "Chợ " + rm.name,
			Province: province,
			Ward:     rm.ward,
		})
		counts = append(counts, rm.merchants)
	}

	// The synthetic markets share what the real ones leave, every one
	// getting the minimum and the rest split by weights of 1-18, since
	// village markets differ in size by a factor of a few, not of a hundred.
	// The arithmetic is integer so no floating-point rounding can move a
	// merchant from one market to another between platforms.
	synthetic := marketCount - len(realMarkets)
	left := merchantTotal
	for _, c := range counts {
		left -= c
	}
	spare := left - synthetic*minMerchants
	if spare < 0 {
		panic("seeds: real markets leave too few merchants for the synthetic ones")
	}
	weights := make([]int, synthetic)
	sum := 0
	for i := range weights {
		weights[i] = (1 + r.IntN(6)) * (1 + r.IntN(3))
		sum += weights[i]
	}
	given := 0
	for i := range synthetic {
		n := len(realMarkets) + i + 1
		c := minMerchants + spare*weights[i]/sum
		given += c
		markets = append(markets, Market{
			Code:     fmt.Sprintf("TN-MAU-%03d", n),
			Name:     fmt.Sprintf("Chợ Mẫu %03d", n),
			Province: province,
			Ward:     syntheticWards[r.IntN(len(syntheticWards))],
		})
		counts = append(counts, c)
	}
	// Rounding down left fewer than one merchant per market over; hand
	// them out in order so the total is exact.
	for i := 0; given < left; i++ {
		counts[len(realMarkets)+i%synthetic]++
		given++
	}
	// Numbered in market order, drawing nothing, so the rest stays as it
	// was generated before markets had collection accounts.
	for i := range markets {
		markets[i].CollectionBIN = collectionBIN
		markets[i].CollectionAccount = fmt.Sprintf("0071000%06d", i+1)
		markets[i].CollectionHolder = "BQL " + bankHolder(markets[i].Name)
	}
	return markets, counts
}

// genMerchants returns the merchants and, beside them, the index of each
// one's goods category, which the payments need and the Merchant type does
// not carry.
func genMerchants(markets []Market, counts []int) ([]Merchant, []int) {
	r := newRand(seedMerchants)
	total := 0
	for _, c := range counts {
		total += c
	}
	merchants := make([]Merchant, 0, total)
	cats := make([]int, 0, total)
	catWeights := make([]int, len(categories))
	for i, c := range categories {
		catWeights[i] = c.weight
	}
	carrierWeights := make([]int, len(carriers))
	for i, c := range carriers {
		carrierWeights[i] = c.weight
	}
	bankWeights := make([]int, len(banks))
	for i, b := range banks {
		bankWeights[i] = b.weight
	}
	// Phones and accounts are unique across the province so the loader
	// can use either to look a merchant up.
	phones := make(map[string]bool, total)
	accounts := make(map[string]bool, total)

	for mi, m := range markets {
		nextStall := make([]int, len(categories))
		for k := 1; k <= counts[mi]; k++ {
			ci := pickIndex(r, catWeights)
			cat := categories[ci]

			nStalls := 1
			if r.IntN(100) < twoStallPercent {
				nStalls = 2
			}
			stalls := make([]string, nStalls)
			for s := range stalls {
				nextStall[ci]++
				stalls[s] = fmt.Sprintf("%c-%03d", cat.zone, nextStall[ci])
			}

			female := r.IntN(100) < 72
			var middle, given, honorific string
			if female {
				middle = pick(r, femaleMiddle)
				given = femaleGiven[r.IntN(len(femaleGiven))]
				honorific = pick(r, femaleHonorifics)
			} else {
				middle = pick(r, maleMiddle)
				given = maleGiven[r.IntN(len(maleGiven))]
				honorific = pick(r, maleHonorifics)
			}
			owner := pick(r, familyNames) + " " + middle + " " + given
			display := cat.goods[r.IntN(len(cat.goods))] + " " + honorific + " " + given

			car := carriers[pickIndex(r, carrierWeights)]
			var phone string
			for phone == "" || phones[phone] {
				phone = car.prefixes[r.IntN(len(car.prefixes))] + digits(r, 7)
			}
			phones[phone] = true

			bk := banks[pickIndex(r, bankWeights)]
			var account string
			for account == "" || accounts[bk.bin+"/"+account] {
				account = bk.prefix + digits(r, bk.length-len(bk.prefix))
			}
			accounts[bk.bin+"/"+account] = true

			channels := []string{chanVietQR}
			if car.money != "" && r.Float64() < car.moneyPct {
				channels = append(channels, car.money)
			}
			if r.Float64() < 0.30 {
				channels = append(channels, chanMoMo)
			}
			if r.Float64() < 0.15 {
				channels = append(channels, chanZaloPay)
			}
			fees := make(map[string]int, len(channels))
			for _, ch := range channels {
				fees[ch] = feeBps(r, ch)
			}

			var minFee int64
			switch x := r.IntN(100); {
			case x < 12:
				minFee = 200
			case x < 20:
				minFee = 500
			}

			merchants = append(merchants, Merchant{
				Code:          fmt.Sprintf("%s-%04d", m.Code, k),
				MarketCode:    m.Code,
				Stalls:        stalls,
				DisplayName:   display,
				Owner:         owner,
				Phone:         phone,
				BankBIN:       bk.bin,
				AccountNumber: account,
				AccountHolder: bankHolder(owner),
				Channels:      channels,
				FeeBps:        fees,
				MinFee:        minFee,
			})
			cats = append(cats, ci)
		}
	}
	return merchants, cats
}

// feeBps draws a fee in steps of 5 bps within the channel's band: VietQR
// transfers cost the bank almost nothing, e-wallets charge the most.
func feeBps(r *rand.Rand, channel string) int {
	switch channel {
	case chanVietQR:
		if r.IntN(100) < 60 {
			return 0
		}
		return 5 * (1 + r.IntN(6)) // 5-30
	case chanMoMo, chanZaloPay:
		return 80 + 5*r.IntN(15) // 80-150
	default:
		return 30 + 5*r.IntN(11) // 30-80
	}
}

func genPayments(merchants []Merchant, cats []int) []Payment {
	r := newRand(seedPayments)
	n := paymentsPerDay

	// Zipf-like weights over a random ranking of all merchants: a few stalls
	// are busy all day, most take a handful of payments, many take none.
	cum := make([]float64, len(merchants))
	weights := make([]float64, len(merchants))
	for rank, mi := range r.Perm(len(merchants)) {
		weights[mi] = math.Pow(float64(rank+zipfOffset), -zipfExponent)
	}
	var total float64
	for i, w := range weights {
		total += w
		cum[i] = total
	}

	if time.Duration(len(hourWeights))*time.Hour != dayCloses-dayOpens {
		panic("seeds: hourWeights does not cover the market day")
	}
	offsets := make([]time.Duration, n)
	for i := range offsets {
		h := pickIndex(r, hourWeights)
		offsets[i] = dayOpens + time.Duration(h)*time.Hour + time.Duration(r.IntN(3600))*time.Second
	}
	slices.Sort(offsets)

	flows := make([]Flow, 0, n)
	for _, fs := range flowShares {
		for range n * fs.perMille / 1000 {
			flows = append(flows, fs.flow)
		}
	}
	for len(flows) < n { // only if the shares do not divide n
		flows = append(flows, FlowStallConfirmed)
	}
	r.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })

	refPrefix := map[string]string{
		chanVietQR:   "FT" + DemoDay.Format("06") + fmt.Sprintf("%03d", DemoDay.YearDay()),
		chanViettel:  "MMVT" + DemoDay.Format("060102"),
		chanVNPT:     "MMVN" + DemoDay.Format("060102"),
		chanMobifone: "MMMF" + DemoDay.Format("060102"),
		chanMoMo:     "MOMO" + DemoDay.Format("060102"),
		chanZaloPay:  "ZP" + DemoDay.Format("060102"),
	}
	refs := make(map[string]bool, n)

	payments := make([]Payment, n)
	chWeights := make([]int, 0, 6)
	for i := range payments {
		u := r.Float64() * total
		mi := sort.SearchFloat64s(cum, u)
		if mi == len(cum) { // u rounded up to total
			mi--
		}
		m := &merchants[mi]

		chWeights = chWeights[:0]
		for _, ch := range m.Channels {
			chWeights = append(chWeights, channelWeights[ch])
		}
		ch := m.Channels[pickIndex(r, chWeights)]

		var ref string
		for ref == "" || refs[ref] {
			ref = refPrefix[ch] + digits(r, 7)
		}
		refs[ref] = true

		payments[i] = Payment{
			MerchantCode: m.Code,
			Channel:      ch,
			Amount:       amount(r, categories[cats[mi]].median),
			OccurredAt:   DemoDay.Add(offsets[i]),
			Flow:         flows[i],
			ProviderRef:  ref,
		}
	}
	return payments
}

// amount draws a log-normal ticket around the category's median, redrawn
// rather than clamped when out of range so the bounds do not pile up.
// Larger tickets are mostly round to 5,000, as stall prices are.
func amount(r *rand.Rand, median int) int64 {
	for {
		x := float64(median) * math.Exp(amountSigma*r.NormFloat64())
		if x < minAmount || x > maxAmount {
			continue
		}
		step := 1_000.0
		if x >= 50_000 && r.IntN(10) < 7 {
			step = 5_000
		}
		a := int64(math.Round(x/step) * step)
		if a >= minAmount && a <= maxAmount {
			return a
		}
	}
}

func pick(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	x := r.IntN(total)
	for _, w := range ws {
		if x < w.w {
			return w.v
		}
		x -= w.w
	}
	panic("unreachable")
}

func pickIndex(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	panic("unreachable")
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

var foldTable = func() map[rune]rune {
	t := make(map[rune]rune)
	for _, g := range foldGroups {
		for _, c := range g.from {
			t[c] = g.to
		}
	}
	return t
}()

// fold returns the lower-case ASCII letter or digit a bank would print for
// r, or -1 for anything else (spaces, punctuation, stray combining marks).
func fold(r rune) rune {
	r = unicode.ToLower(r)
	if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
		return r
	}
	if a, ok := foldTable[r]; ok {
		return a
	}
	return -1
}

// slug is the code form of a market name: "Đồng Quang 2" -> "DONGQUANG2".
func slug(name string) string {
	var b strings.Builder
	for _, c := range name {
		if a := fold(c); a >= 0 {
			b.WriteRune(unicode.ToUpper(a))
		}
	}
	return b.String()
}

// bankHolder is a name as Vietnamese banks print it on an account:
// "Nguyễn Thị Lan" -> "NGUYEN THI LAN".
func bankHolder(name string) string {
	words := strings.Fields(name)
	for i, w := range words {
		words[i] = slug(w)
	}
	return strings.Join(words, " ")
}
