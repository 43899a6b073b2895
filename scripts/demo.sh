#!/usr/bin/env bash
# The Facility Support sentiment optimization, end to end: starts the service as ./scripts/run.sh does
# (PostgreSQL, migrations, worker, API), then trains the afnio quickstart's analyzer over REST and
# prints per-epoch metrics and the promoted prompt.
#   OPENAI_API_KEY set:   real OpenAI calls with afnio's quickstart settings (this costs money).
#   OPENAI_API_KEY unset: a SIMULATED model on loopback; its figures are not meaningful.
#   DEMO_EPOCHS           epochs (default 5); AFNIO_PORT as for run.sh.
#   DEMO_WEBHOOK_URL      with OpenAI: an https URL to receive the nightly schedule's signed webhooks.
# Afterwards it schedules the same training nightly (02:00 Europe/Rome) with a webhook endpoint; the
# simulated demo fires that schedule once and prints the signed webhooks it receives.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${AFNIO_PORT:-8080}
if [ -z "${OPENAI_API_KEY:-}" ]; then
  export Afnio__Models__AllowPrivateAddresses=true # the simulated model listens on loopback
  export Afnio__Webhooks__AllowPrivateAddresses=true Afnio__Webhooks__AllowHttp=true # and so does the demo's webhook receiver
fi
log=.afnio/demo-service.log
mkdir -p .afnio
./scripts/run.sh > "$log" 2>&1 &
service=$!
trap 'kill -TERM $service 2>/dev/null; wait $service 2>/dev/null || true' EXIT
echo "==> starting the service (log: $log)"
for _ in $(seq 1 600); do
  if grep -q "Afnio is running" "$log" 2>/dev/null; then break; fi
  if ! kill -0 $service 2>/dev/null; then cat "$log" >&2; echo "error: the service did not start" >&2; exit 1; fi
  sleep 0.5
done
grep -q "Afnio is running" "$log" || { cat "$log" >&2; echo "error: the service did not start in time" >&2; exit 1; }
dotnet build tools/Afnio.Demo -c Release -nologo -clp:ErrorsOnly -v quiet
AFNIO_URL="http://127.0.0.1:$port" dotnet tools/Afnio.Demo/bin/Release/net10.0/Afnio.Demo.dll "$PWD"
