package main

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/choledger/choledger/seeds"
)

// stall is a merchant the bench pays.
type stall struct {
	code, market string
}

// merchantPicker draws merchants with the skew of a market day: a few busy
// stalls and a long tail. Merchants are ranked by how many payments the
// demo day gives them (so the busy stalls are the seed's busy stalls) and
// drawn with weight 1/(rank+5)^0.8, the law the seed itself uses.
type merchantPicker struct {
	stalls []stall
	cum    []float64
}

func newMerchantPicker() *merchantPicker { return pickerOf(seeds.Generate()) }

// pickerOf ranks the merchants of a generated data set.
func pickerOf(data seeds.Dataset) *merchantPicker {
	count := map[string]int{}
	for _, p := range data.Payments {
		count[p.MerchantCode]++
	}
	ms := make([]seeds.Merchant, 0, len(data.Merchants))
	for _, m := range data.Merchants {
		// Every seeded merchant takes VietQR; the check keeps the bench
		// honest should the seed change.
		if len(m.Channels) > 0 && m.Channels[0] == "VIETQR" {
			ms = append(ms, m)
		}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if count[ms[i].Code] != count[ms[j].Code] {
			return count[ms[i].Code] > count[ms[j].Code]
		}
		return ms[i].Code < ms[j].Code
	})
	p := &merchantPicker{stalls: make([]stall, len(ms)), cum: make([]float64, len(ms))}
	var total float64
	for rank, m := range ms {
		p.stalls[rank] = stall{code: m.Code, market: m.MarketCode}
		total += math.Pow(float64(rank+5), -0.8)
		p.cum[rank] = total
	}
	return p
}

func (p *merchantPicker) pick(r *rand.Rand) stall {
	x := r.Float64() * p.cum[len(p.cum)-1]
	i := sort.SearchFloat64s(p.cum, x)
	return p.stalls[min(i, len(p.stalls)-1)]
}

// busiest is the merchant of rank 0: the hot scenario's target.
func (p *merchantPicker) busiest() stall { return p.stalls[0] }

// weight is the chance that a draw picks the merchant of this rank.
func (p *merchantPicker) weight(rank int) float64 {
	w := p.cum[rank]
	if rank > 0 {
		w -= p.cum[rank-1]
	}
	return w / p.cum[len(p.cum)-1]
}

// share is the fraction of draws that go to the busiest n merchants.
func (p *merchantPicker) share(n int) float64 {
	return p.cum[min(n, len(p.cum))-1] / p.cum[len(p.cum)-1]
}
