#!/usr/bin/env bash
# `make bench` (bench.sh) and `make bench-settlement` (bench.sh settlement):
# a private ledgerd on a database of its own in the project's development
# cluster (so `make run`'s database is left alone), loaded by ledgerbench;
# the results go to docs/performance.md, each mode into its own section.
# ledgerd is stopped on exit, whatever happens; the cluster is left
# running, as `make run` leaves it (`make db-stop` stops it).
#
# bench: the write scenarios on choledger_bench, recreated and seeded for
# every run so that runs compare.
#
# settlement: the settlement reports on choledger_bench_history, which
# `ledgerbench fill-history` fills with BENCH_DAYS (45) market days of at
# least BENCH_POSTINGS (5,000,000) postings before the demo seed. The fill
# takes about a quarter of an hour on two CPUs, so the database is kept:
# later runs reuse it (its history then ends on the day it was filled);
# BENCH_REFILL=1 drops it and fills a new one.
#
# Overrides: BENCH_DURATION (20s per scenario), BENCH_CONCURRENCY (64;
# settlement: 1,8,32, one run per number), BENCH_SCENARIOS (all),
# BENCH_ADDR (localhost:50061), BENCH_DATABASE (choledger_bench,
# choledger_bench_history), BENCH_DATABASE_URL (another database instead of
# the private cluster; its name must contain "bench"), BENCH_OUT
# (docs/performance.md; empty prints only), BENCH_KEEP_DB=1 (bench: keep
# the database of the previous run instead of starting from a freshly
# seeded one).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode="${1:-bench}"
case "$mode" in
bench | settlement) ;;
*)
  echo "usage: bench.sh [bench|settlement]" >&2
  exit 2
  ;;
esac

BIN="${BIN:-$PWD/bin}"
addr="${BENCH_ADDR:-localhost:50061}"
out="${BENCH_OUT-docs/performance.md}"
if [[ "$mode" == bench ]]; then
  db="${BENCH_DATABASE:-choledger_bench}"
  creds=".run/bench-credentials.env"
  log=".run/bench-ledgerd.log"
else
  db="${BENCH_DATABASE:-choledger_bench_history}"
  creds=".run/bench-history-credentials.env"
  log=".run/bench-history-ledgerd.log"
fi

port="${addr##*:}"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "bench: something already listens on port $port; stop it or set BENCH_ADDR" >&2
  exit 1
fi

url="${BENCH_DATABASE_URL:-$("$BIN/devdb" start "$db")}"
echo "bench: database $url"
export LEDGER_DATABASE_URL="$url"
mkdir -p .run
if [[ "$mode" == bench && -z "${BENCH_KEEP_DB:-}" ]] || [[ "$mode" == settlement && -n "${BENCH_REFILL:-}" ]]; then
  # Every run starts from the same deterministic seed, so runs compare.
  "$BIN/ledgerbench" recreate-database "$url"
  rm -f "$creds"
fi
if [[ "$mode" == settlement ]]; then
  # Writes the history unless the database holds a complete one, which it
  # reuses; refuses a database whose ledger holds anything else.
  echo "bench: filling the history unless $db has one (about 15 minutes on 2 CPUs the first time; kept for later runs)"
  "$BIN/ledgerbench" fill-history -database-url "$url" -postings "${BENCH_POSTINGS:-5000000}" -days "${BENCH_DAYS:-45}"
fi
"$BIN/ledgerd" seed
"$BIN/ledgerd" demo-credentials "$creds"

# No metrics endpoint: its port would clash with a `make run` beside it.
LEDGER_GRPC_ADDR="$addr" LEDGER_PLAINTEXT=true LEDGER_METRICS_ADDR="${LEDGER_METRICS_ADDR:-off}" "$BIN/ledgerd" serve >"$log" 2>&1 &
pid=$!
stop_ledgerd() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop_ledgerd EXIT
trap 'exit 130' INT TERM
echo "bench: ledgerd pid $pid on $addr, log $log"

target="make bench"
if [[ "$mode" == settlement ]]; then
  target="make bench-settlement"
fi
note="ledgerd (\`$target\`): plaintext gRPC on $addr, LEDGER_DB_MAX_CONNS=${LEDGER_DB_MAX_CONNS:-32}, LEDGER_MAX_BATCH=${LEDGER_MAX_BATCH:-512}, LEDGER_COMMITTERS=${LEDGER_COMMITTERS:-2}, log level ${LEDGER_LOG_LEVEL:-info}; database $db of the project's development cluster (.pgdata), shared with whatever else runs there."
args=(-addr "$addr" -credentials "$creds" -database-url "$url" -server-pid "$pid"
  -duration "${BENCH_DURATION:-20s}" -scenario "${BENCH_SCENARIOS:-all}" -note "$note")
if [[ "$mode" == bench ]]; then
  args+=(-concurrency "${BENCH_CONCURRENCY:-64}")
else
  args+=(-report settlement -settlement-clients "${BENCH_CONCURRENCY:-1,8,32}")
fi
if [[ -n "$out" ]]; then
  args+=(-out "$out")
fi
"$BIN/ledgerbench" "${args[@]}"
