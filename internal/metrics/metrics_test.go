package metrics_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/choledger/choledger/internal/metrics"
)

// The registry writes Prometheus's text format: counters by method and code,
// cumulative latency buckets ending in +Inf with their sum and count, and
// the gauges as read at the scrape.
func TestWriteTextFormat(t *testing.T) {
	reg := &metrics.Registry{}
	const m = "/choledger.v1.PaymentService/RecordPayment"
	reg.RPCs.Observe(m, codes.OK, 2*time.Millisecond)
	reg.RPCs.Observe(m, codes.OK, 10*time.Millisecond) // on a bucket's bound: in it
	reg.RPCs.Observe(m, codes.InvalidArgument, 20*time.Second)
	queued := 3.0
	reg.AddGauge(metrics.Gauge{Name: "choledger_ledger_queued_writes", Help: "Writes waiting.", Read: func() float64 { return queued }})
	var b strings.Builder
	if err := reg.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP choledger_grpc_requests_total gRPC calls answered, by method and status code.
# TYPE choledger_grpc_requests_total counter
choledger_grpc_requests_total{method="/choledger.v1.PaymentService/RecordPayment",code="OK"} 2
choledger_grpc_requests_total{method="/choledger.v1.PaymentService/RecordPayment",code="InvalidArgument"} 1
# HELP choledger_grpc_request_duration_seconds How long gRPC calls took, by method.
# TYPE choledger_grpc_request_duration_seconds histogram
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.001"} 0
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.0025"} 1
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.005"} 1
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.01"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.025"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.05"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.1"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.25"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="0.5"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="1"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="2.5"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="5"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="10"} 2
choledger_grpc_request_duration_seconds_bucket{method="/choledger.v1.PaymentService/RecordPayment",le="+Inf"} 3
choledger_grpc_request_duration_seconds_sum{method="/choledger.v1.PaymentService/RecordPayment"} 20.012
choledger_grpc_request_duration_seconds_count{method="/choledger.v1.PaymentService/RecordPayment"} 3
# HELP choledger_ledger_queued_writes Writes waiting.
# TYPE choledger_ledger_queued_writes gauge
choledger_ledger_queued_writes 3
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
