#!/usr/bin/env bash
# `make bench`: a private ledgerd on its own database (choledger_bench, in
# the project's development cluster, so `make run`'s database is left
# alone), loaded by ledgerbench with the standard scenarios; the results go
# to docs/performance.md. ledgerd is stopped on exit, whatever happens; the
# cluster is left running, as `make run` leaves it (`make db-stop` stops it).
#
# Overrides: BENCH_DURATION (20s per scenario), BENCH_CONCURRENCY (64),
# BENCH_SCENARIOS (all), BENCH_ADDR (localhost:50061), BENCH_DATABASE
# (choledger_bench), BENCH_DATABASE_URL (another database instead of the
# private cluster; its name must contain "bench"), BENCH_OUT (docs/performance.md; empty prints only),
# BENCH_KEEP_DB=1 (keep the database of the previous run instead of
# starting from a freshly seeded one).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${BIN:-$PWD/bin}"
addr="${BENCH_ADDR:-localhost:50061}"
db="${BENCH_DATABASE:-choledger_bench}"
creds=".run/bench-credentials.env"
log=".run/bench-ledgerd.log"
out="${BENCH_OUT-docs/performance.md}"

port="${addr##*:}"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "bench: something already listens on port $port; stop it or set BENCH_ADDR" >&2
  exit 1
fi

url="${BENCH_DATABASE_URL:-$("$BIN/devdb" start "$db")}"
echo "bench: database $url"
export LEDGER_DATABASE_URL="$url"
mkdir -p .run
if [[ -z "${BENCH_KEEP_DB:-}" ]]; then
  # Every run starts from the same deterministic seed, so runs compare.
  "$BIN/ledgerbench" recreate-database "$url"
  rm -f "$creds"
fi
"$BIN/ledgerd" seed
"$BIN/ledgerd" demo-credentials "$creds"

LEDGER_GRPC_ADDR="$addr" LEDGER_PLAINTEXT=true "$BIN/ledgerd" serve >"$log" 2>&1 &
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

note="ledgerd (\`make bench\`): plaintext gRPC on $addr, LEDGER_DB_MAX_CONNS=${LEDGER_DB_MAX_CONNS:-32}, LEDGER_MAX_BATCH=${LEDGER_MAX_BATCH:-512}, LEDGER_COMMITTERS=${LEDGER_COMMITTERS:-2}, log level ${LEDGER_LOG_LEVEL:-info}; database $db of the project's development cluster (.pgdata), shared with whatever else runs there."
args=(-addr "$addr" -credentials "$creds" -database-url "$url" -server-pid "$pid"
  -duration "${BENCH_DURATION:-20s}" -concurrency "${BENCH_CONCURRENCY:-64}"
  -scenario "${BENCH_SCENARIOS:-all}" -note "$note")
if [[ -n "$out" ]]; then
  args+=(-out "$out")
fi
"$BIN/ledgerbench" "${args[@]}"
