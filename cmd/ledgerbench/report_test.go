package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(lat, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one sample = %v", got)
	}
}

func TestSummarize(t *testing.T) {
	var s rpcStats
	s.record(2*time.Millisecond, codes.OK)
	s.record(time.Millisecond, codes.OK)
	s.record(time.Second, codes.DeadlineExceeded)
	var o rpcStats
	o.record(3*time.Millisecond, codes.OK)
	o.record(0, codes.Internal)
	s.merge(&o)
	sum := s.summarize("RecordPayment")
	if sum.Calls != 5 || sum.OK != 3 || sum.P50 != 2*time.Millisecond || sum.Max != 3*time.Millisecond {
		t.Errorf("summary %+v", sum)
	}
	if got := formatCodes(sum.ErrorsByCode); got != "DeadlineExceeded 1, Internal 1" {
		t.Errorf("errors %q", got)
	}
	if !sum.UnexpectedCode {
		t.Error("Internal is a server bug the run must fail on")
	}
}

func TestRewriteResults(t *testing.T) {
	prose := "# Performance\n\nWhy it is fast.\n\n## Results\n\n"
	first := rewriteSection(prose, benchSection, "run 1")
	if !strings.HasPrefix(first, "# Performance\n\nWhy it is fast.") || !strings.Contains(first, "run 1") {
		t.Fatalf("first rewrite:\n%s", first)
	}
	second := rewriteSection(first+"\nAfter the results.\n", benchSection, "run 2")
	if strings.Contains(second, "run 1") || !strings.Contains(second, "run 2") || !strings.Contains(second, "After the results.") ||
		!strings.Contains(second, "Why it is fast.") || strings.Count(second, resultsEnd) != 1 {
		t.Fatalf("second rewrite:\n%s", second)
	}
	if got := rewriteSection("", benchSection, "x"); !strings.HasPrefix(got, "# Performance\n") || !strings.Contains(got, resultsBegin) {
		t.Fatalf("empty document:\n%s", got)
	}
}

func TestReadCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials.env")
	body := "# demo\n# operator\nexport CHOLEDGER_ADMIN='chl_a'\nexport CHOLEDGER_BANK='chl_b'\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHOLEDGER_AUDITOR", "")
	got, err := readCredentials(file)
	if err != nil {
		t.Fatal(err)
	}
	if got["CHOLEDGER_ADMIN"] != "chl_a" || got["CHOLEDGER_BANK"] != "chl_b" || got["CHOLEDGER_AUDITOR"] != "chl_a" {
		t.Errorf("credentials %v", got)
	}
	if _, err := readCredentials(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing file must be an error")
	}
}

// ledgerbench -h lists -credentials as taking a file, as docs/performance.md
// does; the backquotes in its usage had the flag package list it as
// "-credentials ledgerd demo-credentials", as if that were its value.
func TestUsageNamesTheCredentialsFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	_, err = loadConfig([]string{"-h"})
	os.Stderr = stderr
	w.Close()
	usage, _ := io.ReadAll(r)
	if err == nil || !strings.Contains(string(usage), "\n  -credentials file\n") {
		t.Errorf("ledgerbench -h: %v, usage:\n%s\nwant -credentials listed as taking a file", err, usage)
	}
}

func TestCredentialID(t *testing.T) {
	id, ok := credentialID("chl_0123456789abcdef0123456789abcdef_c2VjcmV0")
	if !ok || id != "0123456789abcdef0123456789abcdef" {
		t.Errorf("credentialID = %q, %v", id, ok)
	}
	if _, ok := credentialID("Bearer x"); ok {
		t.Error("not a secret")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, addr := range []string{"localhost:50061", "127.0.0.1:1", "[::1]:2"} {
		if err := checkLoopback(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := checkLoopback("192.0.2.1:50051"); err == nil {
		t.Error("a non-loopback address must be refused")
	}
}

func TestMerchantPicker(t *testing.T) {
	p := newMerchantPicker()
	if len(p.stalls) != 9300 {
		t.Fatalf("%d merchants, want the seed's 9,300", len(p.stalls))
	}
	if s := p.share(10); s < 0.02 || s > 0.2 {
		t.Errorf("the 10 busiest stalls take %.3f of payments: not a market day's skew", s)
	}
}

func TestRewriteSections(t *testing.T) {
	doc := rewriteSection("# Performance\n\nProse.\n", benchSection, "bench run 1")
	doc = rewriteSection(doc, settlementSection, "settlement run 1")
	doc = rewriteSection(doc, benchSection, "bench run 2")
	doc = rewriteSection(doc, settlementSection, "settlement run 2")
	for _, want := range []string{"Prose.", "bench run 2", "settlement run 2", "## Results", "## Settlement results"} {
		if !strings.Contains(doc, want) {
			t.Errorf("missing %q:\n%s", want, doc)
		}
	}
	for _, gone := range []string{"bench run 1", "settlement run 1"} {
		if strings.Contains(doc, gone) {
			t.Errorf("%q was not replaced:\n%s", gone, doc)
		}
	}
	if strings.Count(doc, settlementSection.end) != 1 || strings.Count(doc, resultsEnd) != 1 {
		t.Errorf("sections repeated:\n%s", doc)
	}
}

func TestSummarizeAll(t *testing.T) {
	stats := map[string]*rpcStats{"GetMerchantSettlement/busy": {}, "GetMerchantSettlement/tail": {}, "RecordPayments item": {}}
	stats["GetMerchantSettlement/busy"].record(2*time.Millisecond, 0)
	stats["GetMerchantSettlement/tail"].record(4*time.Millisecond, 0)
	stats["RecordPayments item"].record(time.Millisecond, 0)
	var names []string
	for _, s := range summarizeAll(stats) {
		names = append(names, s.RPC)
		if s.RPC == "GetMerchantSettlement" && (s.OK != 2 || s.Max != 4*time.Millisecond) {
			t.Errorf("all calls: %+v", s)
		}
	}
	if strings.Join(names, ",") != "GetMerchantSettlement,GetMerchantSettlement/busy,GetMerchantSettlement/tail,RecordPayments item" {
		t.Errorf("summaries %v", names)
	}
}

// The CPU a scenario used over its measurement window is shared by the
// units completed in it, however soon the op budget ended them: 6 CPU
// seconds over a 30 s window for 9,000 payments made in its first 3 s is
// 0.67 ms a payment.
func TestCPUPerUnit(t *testing.T) {
	start := time.Now()
	a := cpuSample{at: start, machineAll: 0}
	b := cpuSample{at: start.Add(30 * time.Second), ledgerd: 4 * time.Second, dbBackends: 2 * time.Second,
		machineBusy: 6 * time.Second, machineAll: 60 * time.Second}
	for _, s := range []scenarioResult{
		{Name: "the whole window", Elapsed: 30 * time.Second, Units: 9_000, CPU: a.use(b)},
		{Name: "the op budget spent in 3 s", Elapsed: 3 * time.Second, Units: 9_000, CPU: a.use(b)},
	} {
		if got := s.cpuPerUnit(); got != "0.67 ms" {
			t.Errorf("%s: %s a payment, want 0.67 ms", s.Name, got)
		}
	}
	if got := (scenarioResult{Elapsed: 30 * time.Second, CPU: a.use(b)}).cpuPerUnit(); got != "n/a" {
		t.Errorf("no units: %s a unit", got)
	}
}

// A round every so long is the measured time shared by the rounds in it.
func TestRoundInterval(t *testing.T) {
	r := rounds{Count: 1_000, Entries: 40_000, Window: 20 * time.Second}
	if r.perRound() != 40 || r.interval() != 20 {
		t.Errorf("%.1f entries a round, a round every %.1f ms; want 40 and 20", r.perRound(), r.interval())
	}
}
