package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ledgerInfo is the ledger a settlement run reads: its size, and the
// history fill-history wrote into it, if any.
type ledgerInfo struct {
	Postings, Entries, Payments, Bytes int64
	History                            *historySummary
	HistoryComplete                    bool
}

func readLedgerInfo(ctx context.Context, db *pgxpool.Pool) (*ledgerInfo, error) {
	l := &ledgerInfo{}
	err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_postings), (SELECT last_seq FROM ledger_head),
       (SELECT count(*) FROM payments), pg_database_size(current_database())`).Scan(&l.Postings, &l.Entries, &l.Payments, &l.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read the ledger's size: %w", err)
	}
	if l.History, l.HistoryComplete, err = readHistory(ctx, db); err != nil {
		return nil, err
	}
	return l, nil
}

// settlementTargets: the target, for each run of the merchant
// report. It is about a ledger of at least 5,000,000 postings; on a smaller
// one the figures are shown and the target is not evaluated.
func (r *report) settlementTargets() []target {
	days := 31
	if r.Settlement != nil {
		days = r.Settlement.Days
	}
	var out []target
	for _, s := range r.Scenarios {
		if s.Name != "settlement" || s.Skipped != "" {
			continue
		}
		t := target{Name: fmt.Sprintf("GetMerchantSettlement over %d days on ≥ %s postings, %s: p99 ≤ 10 ms", days, group(settlementPostingsTarget), clientsOf(s.Clients))}
		sum := s.rpc("GetMerchantSettlement")
		if sum == nil || sum.OK == 0 {
			t.Measured = "no successful calls"
		} else {
			t.Measured = fmt.Sprintf("p99 %s ms", ms(sum.P99))
			var parts []string
			for _, class := range []string{busyClass, tailClass} {
				if c := s.rpc("GetMerchantSettlement/" + class); c != nil && c.OK > 0 {
					parts = append(parts, fmt.Sprintf("%s %s", class, ms(c.P99)))
				}
			}
			if len(parts) > 0 {
				t.Measured += " (" + strings.Join(parts, ", ") + ")"
			}
			t.Pass = sum.P99 <= settlementP99Target
		}
		if r.Ledger == nil || r.Ledger.Postings < settlementPostingsTarget {
			var n int64
			if r.Ledger != nil {
				n = r.Ledger.Postings
			}
			t.NA = fmt.Sprintf("%s on %s postings: the target is for a ledger of at least %s (`make bench-settlement`)", t.Measured, group(n), group(settlementPostingsTarget))
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		out = append(out, target{Name: fmt.Sprintf("GetMerchantSettlement over %d days on ≥ %s postings: p99 ≤ 10 ms", days, group(settlementPostingsTarget)), NA: "scenario not run"})
	}
	return out
}

func clientsOf(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}

func (r *report) settlementChecksLine() string {
	var checked int64
	var problems int
	for _, s := range r.Scenarios {
		if isSettlement(s.Name) {
			checked += s.Checked
			problems += len(s.Anomalies)
		}
	}
	return fmt.Sprintf("Settlement reports: %s answers checked (the settlement equation holds for the period, each day and each channel split, and matches its equation text; the days chain; nothing is left to adjustments; a market's providers add up to its totals and its first page lists what it should): %d with problems. Afterwards %d reports compared with the ledger (merchants' opening, closing and pending against `GetBalance` at the period's edges; markets' totals against all their merchant lines, page by page, their providers' owed and pending against their clearing accounts' `GetBalance` at the period's edges, and their busiest line against that merchant's own report as of the same sequence): %d problems.",
		group(checked), problems, r.CrossChecked, len(r.CrossProblems))
}

// settlementMarkdown is the report of `make bench-settlement`.
func (r *report) settlementMarkdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m, c, plan := r.Machine, r.Config, r.Settlement
	p("### Run of %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	p("- Machine: %d CPUs (%s), %s RAM, Linux %s. Load average (1/5/15 min): %s at the start, %s at the end.\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, r.LoadStart, r.LoadEnd)
	p("- %s; fsync %s, synchronous_commit %s, shared_buffers %s. Go %s. ledgerd, PostgreSQL and ledgerbench (over %d loopback gRPC connections) share the machine.\n",
		r.Server.Version, r.Server.Fsync, r.Server.SynchronousCommit, r.Server.SharedBuffers, m.GoVer, c.Conns)
	if l := r.Ledger; l != nil {
		p("- Ledger read: **%s postings**, %s entries, %s payments; database `%s` %.2f GiB (`pg_database_size`).\n",
			group(l.Postings), group(l.Entries), group(l.Payments), r.Server.Database, float64(l.Bytes)/(1<<30))
		if h := l.History; h != nil {
			p("- %s\n", h.describe(l.HistoryComplete))
		} else {
			p("- No history written by `ledgerbench fill-history` in this database.\n")
		}
	}
	if plan != nil {
		p("- Reports: the %d days %s to %s (Asia/Ho_Chi_Minh), read as the auditor. Half the calls ask about busy ones (the %d busiest merchants; the %d busiest markets, %s), half about the long tail (the merchants outside the busiest tenth; the other %d markets). A market report answers with its first page of %d merchant lines.\n",
			plan.Days, plan.Start, plan.End, len(plan.busy), len(plan.busyMkts), strings.Join(plan.busyMkts, ", "), len(plan.tailMkts), plan.pageSize)
	}
	p("- Each run: %s warm-up (not counted), then %s measured, a closed loop of the given clients each with one call in flight; every call has a deadline of %s.\n",
		c.Warmup, c.Duration, c.RPCTimeout)
	if c.Note != "" {
		p("- %s\n", c.Note)
	}

	p("\n#### Latency and throughput\n\nSuccessful calls that started in the measurement window, in milliseconds; every sample is kept, so percentiles are exact (nearest rank). Calls/s counts them over the window.\n\n")
	p("| rpc | about | clients | calls | calls/s | p50 | p95 | p99 | max | errors by code |\n|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, s := range r.Scenarios {
		if !isSettlement(s.Name) {
			continue
		}
		for _, rpc := range s.RPCs {
			name, class, ok := strings.Cut(rpc.RPC, "/")
			about := "all"
			if ok {
				about = class
			} else {
				name = "**" + name + "**"
			}
			rate := float64(rpc.OK) / s.Elapsed.Seconds()
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", name, about, s.Clients, group(int64(rpc.Calls)), num(rate),
				ms(rpc.P50), ms(rpc.P95), ms(rpc.P99), ms(rpc.Max), formatCodes(rpc.ErrorsByCode))
		}
	}

	p("\n#### Where the CPU went\n\nCores busy during each measurement window (CPU seconds per second, from /proc; the machine has %d). \"PostgreSQL, ledger DB\" is the backends serving `%s`; \"PostgreSQL, rest\" is the WAL writer, checkpointer and every other database of the cluster; \"other\" is the rest of the machine.\n\n", m.CPUs, r.Server.Database)
	p("| rpc | clients | ledgerd | PostgreSQL, ledger DB | PostgreSQL, rest | ledgerbench | other | I/O wait | idle |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.Scenarios {
		if !isSettlement(s.Name) || s.Skipped != "" {
			continue
		}
		u := s.CPU
		rpc := "GetMerchantSettlement"
		if s.Name == "settlement-market" {
			rpc = "GetMarketSettlement"
		}
		p("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", rpc, s.Clients, u.Ledgerd, u.DBBackends, u.PGOther, u.Bench, u.Other, u.IOWait, u.Idle)
	}

	p("\n#### Target\n\n| target | measured | result |\n|---|---|---|\n")
	for _, t := range r.settlementTargets() {
		p("%s", t.row())
	}

	p("\n#### Checks\n\n- %s\n", r.settlementChecksLine())
	if f := r.failures(); len(f) > 0 {
		p("\n**CHECKS FAILED:**\n\n")
		for i, x := range f {
			if i == 20 {
				p("- … and %d more\n", len(f)-i)
				break
			}
			p("- %s\n", x)
		}
	} else {
		p("\nAll checks passed.\n")
	}
	return b.String()
}

// describe says how the history was written, for the report.
func (h *historySummary) describe(complete bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "History: %d market days, %s to %s, written by `ledgerbench fill-history`", h.Days, h.FirstDay, h.LastDay)
	if !complete {
		fmt.Fprintf(&b, " (**incomplete or failed its checks**: %d violations)", h.Violations)
		return b.String()
	}
	var flows []string
	for _, f := range []string{"bank_direct", "stall_notified", "stall_confirmed", "stall_rejected", "stall_expired"} {
		if n := h.ByFlow[f]; n > 0 {
			flows = append(flows, fmt.Sprintf("%s %s", strings.ReplaceAll(f, "_", " "), group(n)))
		}
	}
	fmt.Fprintf(&b, " on %s: %s payments (%s), %s refunds, %s provider settlements, %s expiries, across %d markets and %s merchants with the market-day skew. Fill: **%s postings/s** (%s payments/s, %s entries/s) over %s (%s entries in all), through the ledger's committer (%d committers, batches of up to %d) in process, RecordMany calls of %d (%d in flight) and %d concurrent callers, on %d CPUs; then VACUUM (ANALYZE) %s, `ledger.CheckInvariants` clean in %s",
		h.Finished.UTC().Format("2006-01-02 15:04 MST"), group(h.Planned), strings.Join(flows, ", "), group(h.Refunds), group(h.Settlements), group(h.Expired),
		h.Markets, group(int64(h.Merchants)), num(h.postingsPerSecond()), num(h.paymentsPerSecond()), num(h.entriesPerSecond()),
		(time.Duration(h.FillSeconds) * time.Second).String(), group(h.Entries), h.Committers, h.MaxBatch, h.BulkSize, h.BulkInFlight, h.Callers, h.CPUs,
		secs(h.VacuumSeconds), secs(h.InvariantsSeconds))
	if h.RollupsSeconds > 0 {
		fmt.Fprintf(&b, ", `settlement.CheckRollups` clean in %s", secs(h.RollupsSeconds))
	}
	b.WriteString(".")
	return b.String()
}
