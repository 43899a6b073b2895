#!/usr/bin/env bash
# Runs Afnio on this machine: PostgreSQL (a local cluster under .afnio/, unless
# ConnectionStrings__Postgres is given), the migrator, then the API and the Worker.
# Data survives restarts. Ctrl-C stops everything this script started.
#
# Settings (environment):
#   ConnectionStrings__Postgres  use this database instead of the local cluster
#   Afnio__AdminKey              the admin key (default: generated once, kept in .afnio/admin-key)
#   Afnio__Worker__InProcess     true: the API runs the jobs itself, no separate Worker process
#   AFNIO_PORT                   API port (default 8080)
#   AFNIO_PG_PORT                port of the local PostgreSQL (default 55433)
#   AFNIO_PG_MAX_CONNECTIONS     max_connections of the local PostgreSQL (default 200: one API and
#                                one Worker with the default pools; docs/decisions/016-connection-budget.md)
#   AFNIO_HOME                   state folder (default ./.afnio)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

state=${AFNIO_HOME:-$PWD/.afnio}
port=${AFNIO_PORT:-8080}
pg_port=${AFNIO_PG_PORT:-55433}
mkdir -p "$state"
pids=()
started_pg=""

stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$started_pg" ]; then
    echo "==> stopping PostgreSQL (data kept in $pg_dir)"
    pg_stop "$pg_dir/data"
  fi
}
trap stop_all EXIT INT TERM

pg_dir="$state/pg"
if [ -z "${ConnectionStrings__Postgres:-}" ]; then
  pg_bin_dir >/dev/null
  # As root the cluster runs as 'postgres', which must be able to reach its folder.
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null; then
    pg_dir=/var/lib/afnio/pg
  fi
  if pg_running "$pg_dir/data"; then
    echo "==> PostgreSQL already running on $pg_dir/data"
  else
    echo "==> starting PostgreSQL on 127.0.0.1:$pg_port (data in $pg_dir/data)"
    pg_start "$pg_dir/data" "$pg_port" "-c max_connections=${AFNIO_PG_MAX_CONNECTIONS:-200}" || { echo "error: PostgreSQL did not start; see $pg_dir/postgres.log" >&2; exit 1; }
    started_pg=1
  fi
  pg_create_db "$pg_port" "$pg_dir" afnio
  export ConnectionStrings__Postgres="Host=127.0.0.1;Port=$pg_port;Database=afnio;Username=afnio;Password=afnio"
fi

if [ -z "${Afnio__AdminKey:-}" ]; then
  if [ ! -s "$state/admin-key" ]; then
    (umask 077; echo "adm_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$state/admin-key")
  fi
  export Afnio__AdminKey=$(cat "$state/admin-key")
fi

echo "==> building"
dotnet build Afnio.sln -c Release -nologo -clp:ErrorsOnly -v quiet

echo "==> migrating"
dotnet migrations/Afnio.Migrations/bin/Release/net10.0/Afnio.Migrations.dll

export ASPNETCORE_ENVIRONMENT=${ASPNETCORE_ENVIRONMENT:-Production} DOTNET_ENVIRONMENT=${DOTNET_ENVIRONMENT:-Production}
if [ "${Afnio__Worker__InProcess:-false}" != "true" ]; then
  echo "==> starting the worker"
  (cd src/Afnio.Worker/bin/Release/net10.0 && exec dotnet Afnio.Worker.dll) &
  pids+=($!)
  echo $! > "$state/worker.pid"
fi
echo "==> starting the API"
(cd src/Afnio.Api/bin/Release/net10.0 && exec dotnet Afnio.Api.dll --urls "http://127.0.0.1:$port") &
pids+=($!)
echo $! > "$state/api.pid"

ready=""
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "error: the API did not become ready on port $port within 60 s (see the output above)" >&2
  exit 1
fi

cat <<MSG

Afnio is running.
  API:         http://127.0.0.1:$port/v1
  Swagger UI:  http://127.0.0.1:$port/swagger
  OpenAPI:     http://127.0.0.1:$port/swagger/v1/swagger.json
  Admin key:   ${state}/admin-key (or Afnio__AdminKey)
  afnio SDK:   TELLURIO_BACKEND_HTTP_BASE_URL=http://127.0.0.1 TELLURIO_BACKEND_WS_BASE_URL=ws://127.0.0.1 TELLURIO_BACKEND_*_PORT=$port
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
