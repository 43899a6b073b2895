# Shared PostgreSQL helpers for run.sh and test.sh. Source it; do not run it.

# Prints the newest installed PostgreSQL bin directory, installing the server with apt if missing.
pg_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    echo "PostgreSQL server binaries not found; installing them with apt..." >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: run as root or install the 'postgresql' package first" >&2
      return 1
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || return 1
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$dir"
}

# Runs a PostgreSQL binary as the cluster owner: 'postgres' when we are root (initdb refuses root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Finds a free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $(( 20000 + RANDOM % 20000 ))
}

# pg_start DATA_DIR PORT [extra postgres options]: initializes the cluster on first use
# (role 'afnio', password 'afnio'), then starts it on 127.0.0.1:PORT. Pass max_connections in the
# options: run.sh sizes it for the service's pools (docs/decisions/016-connection-budget.md), test.sh
# for the many hosts one test run starts.
pg_start() {
  local data_dir=$1 port=$2 extra=${3:-}
  local bin; bin=$(pg_bin_dir) || return 1
  local base; base=$(dirname "$data_dir")
  mkdir -p "$base"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$base"; fi
  if [ ! -f "$data_dir/PG_VERSION" ]; then
    local pwfile; pwfile=$(mktemp); echo "afnio" > "$pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$pwfile"; fi
    pg_as_owner "$bin/initdb" -D "$data_dir" -U afnio --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null || { rm -f "$pwfile"; return 1; }
    rm -f "$pwfile"
  fi
  pg_as_owner "$bin/pg_ctl" -D "$data_dir" -l "$base/postgres.log" -w -t 60 \
    -o "-p $port -k '$base' -c listen_addresses=127.0.0.1 $extra" start >/dev/null
}

pg_stop() {
  local data_dir=$1
  local bin; bin=$(pg_bin_dir) || return 0
  pg_as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_create_db PORT SOCKET_DIR NAME: creates the database if it does not exist.
pg_create_db() {
  local port=$1 socket=$2 name=$3
  local bin; bin=$(pg_bin_dir) || return 1
  if ! pg_as_owner "$bin/psql" -h "$socket" -p "$port" -U afnio -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$name'" | grep -q 1; then
    pg_as_owner "$bin/createdb" -h "$socket" -p "$port" -U afnio "$name"
  fi
}

# pg_running DATA_DIR: true when a server is already running on that data directory.
pg_running() {
  local data_dir=$1
  local bin; bin=$(pg_bin_dir) || return 1
  [ -f "$data_dir/PG_VERSION" ] && pg_as_owner "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1
}
