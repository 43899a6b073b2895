#!/usr/bin/env bash
# The fault suite, in full: SIGKILLs of the Worker at random moments of backward passes, optimizer
# steps and training runs (20 trials each; each must end exactly like the uninterrupted job), a
# PostgreSQL restart during a training run, and a provider failing 30% of its attempts. Runs on a
# throwaway PostgreSQL like the tests, and prints each trial. Bounded at 30 minutes.
#   scripts/faults.sh                       20 trials per kind of job
#   AFNIO_FAULT_TRIALS=5 AFNIO_FAULT_SEED=7 scripts/faults.sh
# CI runs the same tests with 2 trials each, as part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export AFNIO_FAULT_TRIALS=${AFNIO_FAULT_TRIALS:-20}
exec timeout 1800 bash scripts/test.sh --filter "FullyQualifiedName~Afnio.Api.Tests.Faults" --logger "console;verbosity=detailed"
