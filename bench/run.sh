#!/usr/bin/env bash
# The performance claims P1–P7 in one run, printed as a Markdown table at the end. Starts its own
# PostgreSQL, API and Worker (scripts/run.sh under a temporary folder) and a fake OpenAI-compatible
# provider at a fixed 200 ms per call, all on loopback; takes about five minutes.
#   bench/run.sh
set -euo pipefail
exec "$(dirname "$0")/../scripts/bench.sh" proof
