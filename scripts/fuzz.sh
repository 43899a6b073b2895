#!/usr/bin/env bash
# The fuzz suite, in full: malformed and hostile bodies and query values for every operation of the
# OpenAPI document (CsCheck), checking that none gets a 5xx, every refusal is a ProblemDetails with a
# code, and a refused request writes nothing; and every id-taking operation called with another
# project's ids, which must answer 404. Runs on a throwaway PostgreSQL like the tests. Bounded at 30 minutes.
#   scripts/fuzz.sh                                  500 generated requests per operation
#   AFNIO_FUZZ_ITERATIONS=2000 AFNIO_FUZZ_SEED=42 scripts/fuzz.sh
# CI runs the same tests with fewer requests per operation, as part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export AFNIO_FUZZ_ITERATIONS=${AFNIO_FUZZ_ITERATIONS:-500}
exec timeout 1800 bash scripts/test.sh --filter "FullyQualifiedName~Afnio.Api.Tests.Fuzz" --logger "console;verbosity=normal"
