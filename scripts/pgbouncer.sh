#!/usr/bin/env bash
# jobprep through a transaction-mode pooler (issue "Reliability", item 2).
#
# Starts PgBouncer (installed from Debian's packages if missing) on its own loopback
# port (default 6433) in front of the PostgreSQL server on 127.0.0.1:5432, with
# `pool_mode = transaction` and 2 server connections per database for 8 clients, then
# checks, in pooler-safe mode (`jobprep_pooler_safe=true`):
#   - `jobprep demo --json` through PgBouncer on a fresh database;
#   - crates/repo/tests/pooler.rs: 8 threads of mixed operations, all acknowledged and
#     nothing else in the database; and the negative: without pooler-safe mode a cached
#     prepared statement fails once PgBouncer moves the client to another server
#     connection, while pooler-safe mode passes the same interleaving;
#   - that pooling was exercised: more clients than server connections at once.
# PgBouncer and the databases are always removed afterwards, also on failure.
#
#   bash scripts/pgbouncer.sh      # from the repository root; prints
#                                  # "pgbouncer: N passed, M failed" last
#
# Environment: JOBPREP_PGBOUNCER_PORT (default 6433), TEST_DATABASE_URL (the server's
# admin URL, default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${JOBPREP_PGBOUNCER_PORT:-6433}
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pool_size=2 # server connections per database; the load test uses 8 clients
tmp=${TMPDIR:-/tmp}
prefix=jobprep-pgbouncer
db_prefix=jobprep_pgbouncer_
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "check $*: ok"; }
fail() { failed=$((failed + 1)); echo "check FAILED $*"; }
finish() { echo "pgbouncer: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

bash scripts/start-postgres.sh
if ! command -v pgbouncer >/dev/null 2>&1; then
  echo "installing PgBouncer from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
version=$(pgbouncer --version | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p' | head -n 1)
echo "PgBouncer $version"

# PgBouncer refuses to run as root: it runs as postgres when we are root.
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

# Leftovers of a run killed before its cleanup (its script is gone): its PgBouncer,
# its folder, its databases. Runs still in progress are left alone.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
for old in "$tmp/$prefix".*; do
  [ -d "$old" ] || continue
  alive "$(cat "$old/script.pid" 2>/dev/null || true)" && continue
  old_bouncer=$(cat "$old/pgbouncer.pid" 2>/dev/null || true)
  if alive "$old_bouncer" && [ "$(cat "/proc/$old_bouncer/comm" 2>/dev/null)" = pgbouncer ]; then
    kill "$old_bouncer" 2>/dev/null || true
  fi
  rm -rf "$old"
done
for old_db in $(psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE '${db_prefix}%'"); do
  old_pid=${old_db#"$db_prefix"}
  old_pid=${old_pid%%_*}
  alive "$old_pid" || psql "$admin" -qAtc "DROP DATABASE IF EXISTS \"$old_db\" WITH (FORCE)" >/dev/null
done

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "something already listens on 127.0.0.1:$port (another run?); set JOBPREP_PGBOUNCER_PORT" >&2
  fail "PgBouncer port $port is free"
  finish
fi

work=$(mktemp -d "$tmp/$prefix.XXXXXX")
echo $$ >"$work/script.pid"
db=$db_prefix$$
bouncer_pid=
sampler=
cleanup() {
  local status=$?
  if alive "$sampler"; then kill "$sampler" 2>/dev/null || true; fi
  [ -n "$bouncer_pid" ] || bouncer_pid=$(cat "$work/pgbouncer.pid" 2>/dev/null || true)
  if alive "$bouncer_pid"; then
    kill "$bouncer_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$bouncer_pid" || break; sleep 0.1; done
    alive "$bouncer_pid" && kill -9 "$bouncer_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/pgbouncer.log" ]; then
    echo "--- last lines of PgBouncer's log"
    tail -n 20 "$work/pgbouncer.log" || true
  fi
  # The tests' scratch databases are named after this one and dropped by the tests;
  # whatever a failed test left goes here.
  for name in $(psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE '${db}%'" 2>/dev/null); do
    psql "$admin" -qAtc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chown "$owner" "$work"
chmod 700 "$work"

# max_prepared_statements (PgBouncer 1.21+) would make PgBouncer track prepared
# statements itself; 0 keeps the behaviour of classic and Neon-style poolers.
prepared=""
if [ "$(printf '%s\n%s\n' 1.21 "$version" | sort -V | head -n 1)" = 1.21 ]; then
  prepared="max_prepared_statements = 0"
fi
printf '"%s" ""\n' postgres >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $pool_size
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
$prepared
EOF
chown "$owner" "$work"/*

psql "$admin" -qAtc "CREATE DATABASE $db"
as_owner pgbouncer -d -q "$work/pgbouncer.ini"
url="postgres://postgres@127.0.0.1:$port/$db"
# The daemon writes its pid file and starts answering shortly after `-d` returns.
for _ in $(seq 1 50); do
  bouncer_pid=$(cat "$work/pgbouncer.pid" 2>/dev/null || true)
  [ -n "$bouncer_pid" ] && psql "$url" -qAtc "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done
bouncer_pid=$(cat "$work/pgbouncer.pid")
psql "$url" -qAtc "SELECT 1" >/dev/null
echo "PgBouncer (pid $bouncer_pid) on 127.0.0.1:$port: pool_mode=transaction, default_pool_size=$pool_size"

cargo build -q -p jobprep-cli
cargo test -q -p jobprep-repo --test pooler --no-run

echo "== jobprep demo --json through PgBouncer (pooler-safe)"
# Migrations need a session: they run on the server directly, as users are told to.
direct="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
target/debug/jobprep --database-url "${direct%/*}/$db" migrate >/dev/null
if timeout -k 5 60 target/debug/jobprep --database-url "$url?jobprep_pooler_safe=true" demo --json \
  >"$work/demo.json" 2>"$work/demo.err" \
  && grep -q '"backend":"postgres"' "$work/demo.json" \
  && grep -q '"what is left for Alice"' "$work/demo.json"; then
  pass "jobprep demo --json through PgBouncer ($(wc -c <"$work/demo.json") bytes of JSON)"
else
  cat "$work/demo.err"
  fail "jobprep demo --json through PgBouncer"
fi

# Samples PgBouncer's pools while the tests run: clients and server connections per
# database (the admin console's SHOW POOLS, header line first).
sample_pools() {
  while :; do
    {
      psql "postgres://postgres@127.0.0.1:$port/pgbouncer" -AF' ' -P footer=off -c "SHOW POOLS" 2>/dev/null || true
    } | awk -v db="$db" '
          NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
          index($col["database"], db "_") == 1 {
            print $col["database"], $col["cl_active"] + $col["cl_waiting"],
                  $col["sv_active"] + $col["sv_idle"] + $col["sv_used"] + $col["sv_tested"] + $col["sv_login"]
          }'
    sleep 0.1
  done
}
sample_pools >"$work/pools.txt" &
sampler=$!

echo "== cargo test -p jobprep-repo --test pooler -- --ignored --nocapture"
status=0
JOBPREP_PGBOUNCER_URL="$url" JOBPREP_PGBOUNCER_POOL_SIZE=$pool_size \
  timeout -k 10 150 cargo test -q -p jobprep-repo --test pooler -- --ignored --nocapture --test-threads 1 \
  2>&1 | tee "$work/test.log" || status=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

tests_passed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$work/test.log" | tail -n 1)
tests_failed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$work/test.log" | tail -n 1)
passed=$((passed + ${tests_passed:-0}))
if [ "$status" -ne 0 ] || [ "${tests_failed:-1}" -ne 0 ] || [ "${tests_passed:-0}" -ne 5 ]; then
  failed=$((failed + ${tests_failed:-0}))
  [ "${tests_failed:-0}" -gt 0 ] || failed=$((failed + 1)) # stopped before reporting
  echo "check FAILED cargo test --test pooler (exit $status)"
else
  echo "check cargo test --test pooler: ok (4 tests)"
fi

# Pooling exercised: at some moment more clients than server connections on the load
# test's database, and never more server connections than the pool allows.
read -r max_clients max_servers < <(awk -v db="${db}_load" '$1 == db {
    if ($2 > c) c = $2; if ($3 > s) s = $3 } END { print c + 0, s + 0 }' "$work/pools.txt")
echo "PgBouncer pools during the load test: up to $max_clients clients on up to $max_servers server connections"
if [ "$max_clients" -gt "$max_servers" ] && [ "$max_servers" -ge 1 ] && [ "$max_servers" -le "$pool_size" ]; then
  pass "transaction pooling exercised ($max_clients clients, $max_servers server connections)"
else
  fail "transaction pooling exercised ($max_clients clients, $max_servers server connections; pool size $pool_size)"
fi

finish
