package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// rpcStats are one RPC's calls in one scenario: every latency of a call
// that succeeded (kept whole, not bucketed, so percentiles are exact) and
// the count of every status code. Each worker keeps its own, merged at the
// end, so recording takes no lock.
type rpcStats struct {
	latencies []time.Duration
	codes     map[codes.Code]int
}

func (s *rpcStats) record(d time.Duration, c codes.Code) {
	if s.codes == nil {
		s.codes = map[codes.Code]int{}
	}
	s.codes[c]++
	if c == codes.OK {
		s.latencies = append(s.latencies, d)
	}
}

func (s *rpcStats) merge(o *rpcStats) {
	s.latencies = append(s.latencies, o.latencies...)
	for c, n := range o.codes {
		if s.codes == nil {
			s.codes = map[codes.Code]int{}
		}
		s.codes[c] += n
	}
}

// summary is what the report prints of an RPC.
type summary struct {
	RPC            string
	Calls, OK      int
	P50, P95, P99  time.Duration
	Max, Mean      time.Duration
	ErrorsByCode   map[string]int
	UnexpectedCode bool // a code that means a server bug: Internal, Unknown, DataLoss
}

func (s *rpcStats) summarize(rpc string) summary {
	out := summary{RPC: rpc, ErrorsByCode: map[string]int{}}
	for c, n := range s.codes {
		out.Calls += n
		if c == codes.OK {
			out.OK += n
			continue
		}
		out.ErrorsByCode[c.String()] += n
		if serverBug(c) {
			out.UnexpectedCode = true
		}
	}
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	out.P50, out.P95, out.P99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
	if len(lat) > 0 {
		out.Max = lat[len(lat)-1]
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		out.Mean = sum / time.Duration(len(lat))
	}
	return out
}

// serverBug reports whether an answer's code means a server bug: it fails
// the run whenever it is answered, measured or not.
func serverBug(c codes.Code) bool {
	return c == codes.Internal || c == codes.Unknown || c == codes.DataLoss
}

// summarizeAll summarizes a scenario's RPCs, by name. An RPC measured per
// class of caller ("GetMerchantSettlement/busy") also gets a summary of all
// its calls, under its plain name, listed before its classes.
func summarizeAll(stats map[string]*rpcStats) []summary {
	all := map[string]*rpcStats{}
	for name, s := range stats {
		all[name] = s
	}
	for _, name := range sortedKeys(stats) {
		if rpc, _, ok := strings.Cut(name, "/"); ok {
			if all[rpc] == nil {
				all[rpc] = &rpcStats{}
			}
			all[rpc].merge(stats[name])
		}
	}
	out := make([]summary, 0, len(all))
	for _, name := range sortedKeys(all) {
		out = append(out, all[name].summarize(name))
	}
	return out
}

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample at or above which p per cent of the samples lie.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// formatCodes prints error counts as "DeadlineExceeded 3, Unavailable 1",
// or "none".
func formatCodes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// ms prints a duration in milliseconds with enough precision for
// sub-millisecond latencies.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
