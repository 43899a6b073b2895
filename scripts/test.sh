#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and prints one closing line:
#   tests: N passed, N failed, N skipped
# Uses AFNIO_TEST_POSTGRES (a connection string to a server where the user may create databases)
# when given; otherwise starts a throwaway PostgreSQL and removes it afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work=$(mktemp -d /tmp/afnio-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  if [ -n "${pg_data:-}" ]; then pg_stop "$pg_data"; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${AFNIO_TEST_POSTGRES:-}" ]; then
  port=$(free_port)
  pg_data="$work/pg/data"
  echo "==> starting a throwaway PostgreSQL on 127.0.0.1:$port"
  pg_start "$pg_data" "$port" "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
    || { echo "error: could not start PostgreSQL"; cat "$work/pg/postgres.log" 2>/dev/null; echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; }
  export AFNIO_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Database=postgres;Username=afnio;Password=afnio"
fi

failed_steps=0
echo "==> dotnet build (warnings are errors)"
if ! dotnet build Afnio.sln -c Release -warnaserror -nologo -clp:ErrorsOnly; then
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

echo "==> dotnet format --verify-no-changes"
if ! dotnet format Afnio.sln --verify-no-changes --no-restore -v quiet; then
  echo "error: formatting differs from .editorconfig; run 'dotnet format Afnio.sln'"
  failed_steps=$((failed_steps + 1))
fi

echo "==> generated C# and TypeScript clients are current and compile"
if ! bash scripts/generate-clients.sh --check; then
  failed_steps=$((failed_steps + 1))
fi

echo "==> dotnet test"
log="$work/test.log"
dotnet test Afnio.sln -c Release --no-build --nologo "$@" 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}

passed=0; failed=0; skipped=0
while read -r f p s; do
  failed=$((failed + f)); passed=$((passed + p)); skipped=$((skipped + s))
done < <(sed -nE 's/.*(Passed|Failed)! +- Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\2 \3 \4/p' "$log")
if ! grep -qE "(Passed|Failed)! +- Failed:" "$log"; then
  # The detailed console logger (scripts/faults.sh) ends each assembly with "Passed: N" lines instead.
  passed=$(sed -nE 's/^ +Passed: +([0-9]+)$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  failed=$(sed -nE 's/^ +Failed: +([0-9]+)$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  skipped=$(sed -nE 's/^ +Skipped: +([0-9]+)$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
fi

failed=$((failed + failed_steps))
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The runner failed without reporting a failed test (a crashed test host, say): count it.
  failed=1
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
