package main

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/settlement"
)

func TestHistoryKeysAndRefsAreUnique(t *testing.T) {
	// A record's key must never be another payment's notification key:
	// h7 + suffix n once collided with payment 7n's record.
	keys := map[string]int{}
	refs := map[string]int{}
	at := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	for i := range 200_000 {
		p := &hpay{idx: i, at: at, ch: merchant.Channels[i%len(merchant.Channels)]}
		for _, k := range []string{p.key(""), p.key("n"), p.key("c"), p.key("x"), p.key("r")} {
			if j, ok := keys[k]; ok {
				t.Fatalf("key %s of payment %d is also one of payment %d", k, i, j)
			}
			keys[k] = i
		}
		ref := string(p.ch) + ":" + p.ref()
		if j, ok := refs[ref]; ok {
			t.Fatalf("reference %s of payment %d is also payment %d's", ref, i, j)
		}
		refs[ref] = i
		if len(p.ref()) > 64 || !strings.Contains(p.ref(), "H") {
			t.Fatalf("reference %q: too long, or one the demo seed could also make", p.ref())
		}
	}
}

func TestLegsAndPostings(t *testing.T) {
	hm := &histMerchant{m: merchant.Merchant{Fees: merchant.FeePlan{BasisPoints: map[merchant.Channel]int{merchant.ChannelVietQR: 0, merchant.ChannelMoMo: 100}}}}
	for _, tc := range []struct {
		p    *hpay
		want int64
	}{
		{&hpay{m: hm, ch: merchant.ChannelVietQR, amount: 10_000, flow: flowDirect}, 2},               // no fee leg
		{&hpay{m: hm, ch: merchant.ChannelMoMo, amount: 10_000, flow: flowDirect}, 3},                 // clearing, net, fee
		{&hpay{m: hm, ch: merchant.ChannelMoMo, amount: 10_000, flow: flowNotified}, 6},               // pending, then posted
		{&hpay{m: hm, ch: merchant.ChannelMoMo, amount: 10_000, flow: flowRejected}, 3},               // the void has none
		{&hpay{m: hm, ch: merchant.ChannelMoMo, amount: 10_000, flow: flowDirect, refund: 10_000}, 6}, // and a full refund
		{&hpay{m: hm, ch: merchant.ChannelMoMo, amount: 10_000, flow: flowDirect, refund: 5_000}, 6},
	} {
		if got := postingsOf(tc.p); got != tc.want {
			t.Errorf("%s %s flow %d refund %d: %d postings, want %d", tc.p.ch, group(tc.p.amount), tc.p.flow, tc.p.refund, got, tc.want)
		}
	}
}

func TestDayWeights(t *testing.T) {
	first, _ := settlement.ParseDay("2026-10-13") // a Tuesday
	w := dayWeights(first, 45, rand.New(rand.NewPCG(1, 2)))
	if len(w) != 45 {
		t.Fatalf("%d weights", len(w))
	}
	var firstWeek, lastWeek float64
	for i := range 7 {
		firstWeek += w[i]
		lastWeek += w[len(w)-7+i]
	}
	if lastWeek < 1.2*firstWeek || lastWeek > 1.8*firstWeek {
		t.Errorf("the last week weighs %.2f, the first %.2f: want growth of about half", lastWeek, firstWeek)
	}
	for i, x := range w {
		if x <= 0.5 || x > 2 {
			t.Errorf("day %d weighs %.2f", i, x)
		}
	}
}

func TestWithVirtualClock(t *testing.T) {
	got, err := withVirtualClock("postgres://postgres@/choledger_bench_history?host=%2Fwork%2F.pgdata%2Frun&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(got)
	q := u.Query()
	if q.Get("search_path") != clockSchema+",pg_catalog,public" || q.Get("host") != "/work/.pgdata/run" || q.Get("sslmode") != "disable" || u.Path != "/choledger_bench_history" {
		t.Errorf("url %s", got)
	}
}
