#!/usr/bin/env bash
# Database restart under load (issue "Reliability", item 1).
#
# Starts a throwaway PostgreSQL cluster on its own loopback port (default 55433, trust
# auth on 127.0.0.1 only) in a temporary folder, as the postgres user, then runs
# crates/repo/tests/fault_restart.rs against it: writer threads insert through the
# public API while the test takes the server away three times (`pg_ctl restart -m fast`,
# `pg_ctl restart -m immediate`, `pg_ctl stop -m immediate` + 5 s down + `pg_ctl start`),
# then crashes it once more under a cache-feed listener, which must reset and recover.
# The cluster is always stopped and removed afterwards, also on failure.
#
#   bash scripts/fault-restart.sh          # from the repository root; prints
#                                          # "fault-restart: N passed, M failed" last
#
# Environment: JOBPREP_FAULT_PORT (default 55433), JOBPREP_PGBIN (default: the newest
# /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${JOBPREP_FAULT_PORT:-55433}
pgbin=${JOBPREP_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
tmp=${TMPDIR:-/tmp}
prefix=jobprep-fault-restart
[ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || {
  echo "fault-restart: no PostgreSQL server binaries (initdb, pg_ctl) in '$pgbin'" >&2
  echo "fault-restart: 0 passed, 1 failed"
  exit 1
}

# The cluster belongs to postgres when we are root (PostgreSQL refuses to run as root),
# to the current user otherwise.
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

# A run killed before its cleanup leaves its folder (and maybe a server) behind:
# remove those whose script is gone. A run still in progress is left alone.
for old in "$tmp/$prefix".*; do
  [ -d "$old" ] || continue
  old_pid=$(cat "$old/script.pid" 2>/dev/null || true)
  if [ -n "$old_pid" ] && kill -0 "$old_pid" 2>/dev/null; then continue; fi
  if [ -f "$old/data/postmaster.pid" ]; then
    as_owner "$pgbin/pg_ctl" stop -D "$old/data" -m immediate -t 30 >/dev/null 2>&1 || true
  fi
  rm -rf "$old"
done

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "fault-restart: something already listens on 127.0.0.1:$port (another run?); set JOBPREP_FAULT_PORT" >&2
  echo "fault-restart: 0 passed, 1 failed"
  exit 1
fi

work=$(mktemp -d "$tmp/$prefix.XXXXXX")
data=$work/data
echo $$ > "$work/script.pid"
cleanup() {
  local status=$?
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$pgbin/pg_ctl" stop -D "$data" -m immediate -t 30 >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$data/server.log" ]; then
    echo "--- last lines of the throwaway server's log"
    tail -n 30 "$data/server.log" || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chown "$owner" "$work"
chmod 700 "$work"

echo "== throwaway PostgreSQL cluster in $work on 127.0.0.1:$port ($("$pgbin/postgres" --version))"
as_owner "$pgbin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
  --locale=C.UTF-8 --no-sync >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
max_connections = 40
fsync = on
synchronous_commit = on
EOF
cat >"$data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
as_owner "$pgbin/pg_ctl" start -D "$data" -l "$data/server.log" -w -t 60 >/dev/null

# The test restarts the server through this pg_ctl, as the cluster's owner.
cat >"$work/pg_ctl" <<EOF
#!/bin/sh
$(if [ "$owner" != "$(id -un)" ]; then printf 'exec runuser -u %s -- ' "$owner"; else printf 'exec '; fi)"$pgbin/pg_ctl" "\$@"
EOF
chmod 755 "$work/pg_ctl"

"$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qAtc "CREATE DATABASE jobprep_fault" postgres

echo "== cargo test -p jobprep-repo --features tokio --test fault_restart -- --ignored --nocapture --test-threads=1"
cargo test -q -p jobprep-repo --features tokio --test fault_restart --no-run
status=0
JOBPREP_FAULT_URL="postgres://postgres@127.0.0.1:$port/jobprep_fault" \
JOBPREP_FAULT_PGDATA="$data" \
JOBPREP_FAULT_PGCTL="$work/pg_ctl" \
  timeout -k 10 230 cargo test -q -p jobprep-repo --features tokio --test fault_restart -- --ignored --nocapture --test-threads=1 \
  2>&1 | tee "$work/test.log" || status=$?

passed=$(grep -cE '^check \(.*: ok' "$work/test.log" || true)
failed=$(grep -c '^check FAILED' "$work/test.log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the test stopped before its checks (panic, timeout, build failure)
fi
echo "fault-restart: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
