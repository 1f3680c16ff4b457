// Package metrics counts what ledgerd does and serves it to Prometheus in
// its text exposition format (version 0.0.4), without a client library: a
// few counters, one latency histogram per RPC, and gauges read when they
// are scraped.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// latencyBuckets are the upper bounds, in seconds, of the RPC latency
// histogram: from a cached read to a bulk call of hundreds of payments.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// maxCode is the highest gRPC status code, Unauthenticated.
const maxCode = codes.Unauthenticated

// RPCs counts the calls of each method by status code, and their latency.
// It is safe for concurrent use and takes no lock on a call's path once a
// method has been seen.
type RPCs struct {
	methods sync.Map // full method name -> *method
}

type method struct {
	codes   [maxCode + 1]atomic.Uint64
	buckets []atomic.Uint64 // one per latency bucket, not cumulative
	over    atomic.Uint64   // above the last bucket
	sumNano atomic.Int64
}

// Observe records one call of fullMethod that ended with code after d.
func (r *RPCs) Observe(fullMethod string, code codes.Code, d time.Duration) {
	m, ok := r.methods.Load(fullMethod)
	if !ok {
		m, _ = r.methods.LoadOrStore(fullMethod, &method{buckets: make([]atomic.Uint64, len(latencyBuckets))})
	}
	mm := m.(*method)
	if code > maxCode {
		code = codes.Unknown
	}
	mm.codes[code].Add(1)
	mm.sumNano.Add(int64(d))
	if i, _ := slices.BinarySearch(latencyBuckets, d.Seconds()); i < len(latencyBuckets) {
		mm.buckets[i].Add(1)
	} else {
		mm.over.Add(1)
	}
}

// Gauge is a value read when the metrics are scraped.
type Gauge struct {
	Name, Help string
	Counter    bool // a count that only grows, rather than a level
	Read       func() float64
}

// Registry is what ledgerd exposes: the RPC counts and the gauges.
type Registry struct {
	RPCs   RPCs
	gauges []Gauge
}

// AddGauge exposes g. Gauges are added before the registry is served.
func (r *Registry) AddGauge(g Gauge) { r.gauges = append(r.gauges, g) }

// Handler serves the metrics on GET.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w) //nolint:errcheck // a scraper that went away gets nothing more
	})
}

// Write writes every metric in the text exposition format.
func (r *Registry) Write(w io.Writer) error {
	var b strings.Builder
	type entry struct {
		name string
		m    *method
	}
	var methods []entry
	r.RPCs.methods.Range(func(k, v any) bool {
		methods = append(methods, entry{k.(string), v.(*method)})
		return true
	})
	slices.SortFunc(methods, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	b.WriteString("# HELP choledger_grpc_requests_total gRPC calls answered, by method and status code.\n")
	b.WriteString("# TYPE choledger_grpc_requests_total counter\n")
	for _, e := range methods {
		for c := range e.m.codes {
			if n := e.m.codes[c].Load(); n > 0 {
				fmt.Fprintf(&b, "choledger_grpc_requests_total{method=%s,code=%s} %d\n", quote(e.name), quote(codes.Code(c).String()), n)
			}
		}
	}
	b.WriteString("# HELP choledger_grpc_request_duration_seconds How long gRPC calls took, by method.\n")
	b.WriteString("# TYPE choledger_grpc_request_duration_seconds histogram\n")
	for _, e := range methods {
		label := "method=" + quote(e.name)
		var cumulative uint64
		for i, le := range latencyBuckets {
			cumulative += e.m.buckets[i].Load()
			fmt.Fprintf(&b, "choledger_grpc_request_duration_seconds_bucket{%s,le=%s} %d\n", label, quote(formatFloat(le)), cumulative)
		}
		cumulative += e.m.over.Load()
		fmt.Fprintf(&b, "choledger_grpc_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", label, cumulative)
		fmt.Fprintf(&b, "choledger_grpc_request_duration_seconds_sum{%s} %s\n", label, formatFloat(time.Duration(e.m.sumNano.Load()).Seconds()))
		fmt.Fprintf(&b, "choledger_grpc_request_duration_seconds_count{%s} %d\n", label, cumulative)
	}
	for _, g := range r.gauges {
		typ := "gauge"
		if g.Counter {
			typ = "counter"
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", g.Name, g.Help, g.Name, typ, g.Name, formatFloat(g.Read()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// quote writes a label value: backslash, double quote and newline escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
