#!/usr/bin/env bash
# Benchmarks the service as the run script starts it (API and worker as separate processes, on a
# fresh PostgreSQL under a temporary folder), over loopback, with bounded request counts.
#   scripts/bench.sh [REQUESTS=2000] [CONCURRENCY=16] [GRAPH_NODES=10000]   latency tables
#   scripts/bench.sh llm | optimizer                                         one language-model scenario
#   scripts/bench.sh adversarial [SCALE=1]                                   one tenant's attacks: memory, CPU, the other tenant's latency
#   scripts/bench.sh proof [ROWS]                                            every claim as a Markdown table (bench/run.sh), or only ROWS (e.g. P1,S3)
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(mktemp -d /tmp/afnio-bench.XXXXXX); chmod 755 "$home"
port=${AFNIO_BENCH_PORT:-18080}
export AFNIO_HOME=$home AFNIO_PORT=$port AFNIO_PG_PORT=${AFNIO_BENCH_PG_PORT:-55499}
export Afnio__RateLimit__TokenLimit=1000000 Afnio__RateLimit__TokensPerSecond=1000000
export Afnio__Models__AllowPrivateAddresses=true  # the fake provider listens on loopback
export Afnio__Webhooks__AllowPrivateAddresses=true Afnio__Webhooks__AllowHttp=true  # and so does the webhook receiver
export Logging__LogLevel__Default=Warning Logging__LogLevel__Afnio=Information
export Afnio__Limits__MaxVariablesPerRequest=10000  # P5 sums 3,333 variables in one request
./scripts/run.sh > "$home/run.log" 2>&1 &
runner=$!
trap 'kill $runner 2>/dev/null; wait $runner 2>/dev/null || true; rm -rf "$home"' EXIT
# The run script builds the solution first: allow it a few minutes on a busy machine.
ready=""
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1 && { ready=1; break; }
  kill -0 $runner 2>/dev/null || break
  sleep 0.5
done
[ -n "$ready" ] || { cat "$home/run.log"; echo "error: the service did not become ready" >&2; exit 1; }
dotnet build bench/Afnio.Bench -c Release -nologo -v quiet -clp:ErrorsOnly
# P4 loads the API from wrk, a native client like pgbench (installed with apt when missing and allowed).
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1) || echo "wrk not installed: P4 uses the .NET client" >&2
fi
# The graph benchmark reads job timestamps from the database and the worker's peak memory from /proc.
export AFNIO_BENCH_DATABASE="Host=127.0.0.1;Port=$AFNIO_PG_PORT;Database=afnio;Username=afnio;Password=afnio"
export AFNIO_BENCH_WORKER_PID=$(cat "$home/worker.pid" 2>/dev/null || echo "")
export AFNIO_BENCH_API_PID=$(cat "$home/api.pid" 2>/dev/null || echo "")
export AFNIO_BENCH_PG_PID=$(head -1 "$(find "$home" -name postmaster.pid | head -1)" 2>/dev/null || echo "")  # S3 reads PostgreSQL's CPU time
export AFNIO_BENCH_WORKER_DLL=$PWD/src/Afnio.Worker/bin/Release/net10.0/Afnio.Worker.dll  # S1 starts two more Workers
dotnet bench/Afnio.Bench/bin/Release/net10.0/Afnio.Bench.dll "http://127.0.0.1:$port" "$(cat "$home/admin-key")" "$@"
cp "$home/run.log" "${AFNIO_BENCH_LOG:-/tmp/afnio-bench-run.log}"
grep -o "Backward job [0-9a-f-]*: [0-9]* nodes.*" "$home/run.log" | sort -t: -k2 -n | tail -1 | sed 's/^/worker log: /' || true
