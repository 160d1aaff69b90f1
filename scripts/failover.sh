#!/usr/bin/env bash
# A real failover under load, managed by pg_auto_failover.
#
# Starts, in a temporary folder, a pg_auto_failover monitor and two PostgreSQL nodes on
# loopback ports (default 55444 for the monitor, 55445 and 55446 for the nodes, trust
# auth on 127.0.0.1 only), the second a synchronous standby of the first, then runs
# crates/repo/tests/failover.rs against them: four writer threads insert through one
# multi-host URL while the test kills the primary's node with SIGKILL (its pg_autoctl
# and its PostgreSQL, as a lost machine), the monitor promotes the standby, and the old
# primary's node is started again and rejoins as a standby. The monitor's health checks
# are tightened so that the failover takes seconds. Everything is stopped and removed
# afterwards, also on failure.
#
#   bash scripts/failover.sh          # from the repository root; prints
#                                     # "failover: N passed, M failed" last
#
# Installs pg_auto_failover (Debian: pg-auto-failover-cli, postgresql-15-auto-failover)
# with apt-get when pg_autoctl is missing and the script runs as root.
# Environment: JOBPREP_FAILOVER_PORT (default 55444: the monitor; the nodes take the
# next two ports), JOBPREP_PGBIN (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

fail_early() {
  echo "failover: $*" >&2
  echo "failover: 0 passed, 1 failed"
  exit 1
}

pgbin=${JOBPREP_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || fail_early "no PostgreSQL server binaries (initdb, pg_ctl) in '$pgbin'"
major=$("$pgbin/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if ! command -v pg_autoctl >/dev/null 2>&1 || [ ! -e "/usr/share/postgresql/$major/extension/pgautofailover.control" ]; then
  [ "$(id -u)" -eq 0 ] || fail_early "pg_autoctl is missing; install pg-auto-failover-cli and postgresql-$major-auto-failover"
  echo "== installing pg_auto_failover (apt-get install pg-auto-failover-cli postgresql-$major-auto-failover)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pg-auto-failover-cli "postgresql-$major-auto-failover" >/dev/null \
    || fail_early "apt-get could not install pg_auto_failover"
fi

monitor_port=${JOBPREP_FAILOVER_PORT:-55444}
node1_port=$((monitor_port + 1))
node2_port=$((monitor_port + 2))
dbname=jobprep_failover
tmp=${TMPDIR:-/tmp}
prefix=jobprep-failover

# PostgreSQL refuses to run as root: the cluster belongs to postgres when we are root.
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner_prefix="runuser -u postgres --"
else
  owner=$(id -un)
  as_owner_prefix=""
fi

# Stops every process of a pg_autoctl service (its supervisor, PostgreSQL and the
# backends share one process group) and the PostgreSQL of a data directory.
stop_node() { # WORK NAME
  local pgid_file="$1/$2.pgid" pgid
  pgid=$(cat "$pgid_file" 2>/dev/null || true)
  if [ -n "$pgid" ] && grep -qa pg_autoctl "/proc/$pgid/cmdline" 2>/dev/null; then
    kill -9 -- "-$pgid" 2>/dev/null || true
  fi
  if [ -f "$1/$2/postmaster.pid" ]; then
    $as_owner_prefix "$pgbin/pg_ctl" stop -D "$1/$2" -m immediate -t 30 >/dev/null 2>&1 || true
  fi
}

# A run killed before its cleanup leaves its folder (and maybe servers) behind: remove
# those whose script is gone. A run still in progress is left alone.
for old in "$tmp/$prefix".*; do
  [ -d "$old" ] || continue
  old_pid=$(cat "$old/script.pid" 2>/dev/null || true)
  if [ -n "$old_pid" ] && kill -0 "$old_pid" 2>/dev/null; then continue; fi
  for name in node1 node2 monitor; do stop_node "$old" "$name"; done
  rm -rf "$old"
done

for port in "$monitor_port" "$node1_port" "$node2_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail_early "something already listens on 127.0.0.1:$port (another run?); set JOBPREP_FAILOVER_PORT"
  fi
done

work=$(mktemp -d "$tmp/$prefix.XXXXXX")
echo $$ > "$work/script.pid"
cleanup() {
  local status=$?
  for name in node1 node2 monitor; do stop_node "$work" "$name"; done
  if [ "$status" -ne 0 ]; then
    for name in monitor node1 node2; do
      [ -f "$work/$name.log" ] || continue
      echo "--- last lines of $name's pg_autoctl log"
      tail -n 25 "$work/$name.log" || true
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$work/config" "$work/share" "$work/run"
chown -R "$owner" "$work"
chmod 700 "$work" "$work/run"

# pg_autoctl keeps its configuration, state and pid files under these, here in $work.
# `ha start NAME` runs a node's pg_autoctl service in its own process group (recorded in
# NAME.pgid); `ha kill NAME` SIGKILLs that whole group, as if the machine was lost.
cat >"$work/ha" <<EOF
#!/usr/bin/env bash
set -euo pipefail
export XDG_CONFIG_HOME='$work/config' XDG_DATA_HOME='$work/share' XDG_RUNTIME_DIR='$work/run' PGHOST='$work'
as_owner() { $as_owner_prefix env XDG_CONFIG_HOME="\$XDG_CONFIG_HOME" XDG_DATA_HOME="\$XDG_DATA_HOME" \\
  XDG_RUNTIME_DIR="\$XDG_RUNTIME_DIR" PGHOST="\$PGHOST" "\$@"; }
case "\$1" in
  start)
    as_owner setsid sh -c 'echo \$\$ > "\$1"; exec pg_autoctl run --pgdata "\$2"' sh '$work/'"\$2.pgid" '$work/'"\$2" \\
      >>'$work/'"\$2.log" 2>&1 </dev/null &
    for _ in \$(seq 1 100); do [ -s '$work/'"\$2.pgid" ] && exit 0; sleep 0.05; done
    echo "ha: \$2 did not start" >&2; exit 1 ;;
  kill)
    pgid=\$(cat '$work/'"\$2.pgid")
    postmaster=\$(head -n 1 '$work/'"\$2/postmaster.pid" 2>/dev/null || true)
    kill -9 -- "-\$pgid"
    rm -f '$work/'"\$2.pgid"
    # Returns once the node's PostgreSQL is gone.
    for _ in \$(seq 1 200); do
      if [ -z "\$postmaster" ] || ! kill -0 "\$postmaster" 2>/dev/null; then exit 0; fi
      sleep 0.05
    done
    echo "ha: \$2's postmaster \$postmaster is still there" >&2; exit 1 ;;
  *) as_owner pg_autoctl "\$@" ;;
esac
EOF
chmod 755 "$work/ha"
ha() { "$work/ha" "$@"; }

# Each data directory is made here so that PostgreSQL listens on 127.0.0.1 only and
# puts its socket in $work from its first start (postgresql.auto.conf is read last;
# pg_basebackup copies it to the standby).
new_pgdata() { # NAME [initdb options]
  local dir="$work/$1"
  shift
  $as_owner_prefix "$pgbin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 --no-sync "$@" >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
  printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$work" >>"$dir/postgresql.auto.conf"
}
psql_at() { "$pgbin/psql" -h 127.0.0.1 -U postgres -qAtX -v ON_ERROR_STOP=1 "$@"; }
# Polls a query until it prints the expected text.
wait_for() { # SECONDS EXPECTED PSQL-ARGS...
  local seconds=$1 expected=$2 got=""
  shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    got=$(psql_at "$@" 2>/dev/null || true)
    [ "$got" = "$expected" ] && return 0
    sleep 0.25
  done
  echo "failover: waited ${seconds}s for '$expected', last saw '$got' (psql $*)" >&2
  return 1
}
monitor_url="postgres://autoctl_node@127.0.0.1:$monitor_port/pg_auto_failover"
common=(--auth trust --no-ssl --pgctl "$pgbin/pg_ctl" --hostname 127.0.0.1 --listen 127.0.0.1)

echo "== pg_auto_failover in $work: monitor on 127.0.0.1:$monitor_port, nodes on $node1_port and $node2_port ($(pg_autoctl --version | head -n 1))"
started=$(date +%s)
new_pgdata monitor
ha create monitor --pgdata "$work/monitor" --pgport "$monitor_port" "${common[@]}" >"$work/create-monitor.log" 2>&1 \
  || { cat "$work/create-monitor.log"; exit 1; }
ha start monitor
wait_for 30 t -p "$monitor_port" pg_auto_failover -c "SELECT true FROM pg_extension WHERE extname = 'pgautofailover'"
# The defaults take 20 s or more to call a node unhealthy and 30 s more before the
# standby may take over; on loopback a few hundred milliseconds tell as much.
psql_at -p "$monitor_port" pg_auto_failover <<'SQL'
ALTER SYSTEM SET pgautofailover.health_check_period = 500;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 500;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 200;
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 1500;
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 2000;
ALTER SYSTEM SET pgautofailover.startup_grace_period = 2000;
SELECT pg_reload_conf();
SQL

# pg_rewind, which the old primary needs to rejoin, wants checksums (or wal_log_hints).
new_pgdata node1 --data-checksums
for node in node1 node2; do
  port=$node1_port
  [ "$node" = node2 ] && port=$node2_port
  ha create postgres --pgdata "$work/$node" --pgport "$port" --pghost "$work" --name "$node" \
    --username postgres --dbname "$dbname" --monitor "$monitor_url" "${common[@]}" \
    >"$work/create-$node.log" 2>&1 || { cat "$work/create-$node.log"; exit 1; }
  ha start "$node"
  if [ "$node" = node1 ]; then
    wait_for 60 single -p "$monitor_port" pg_auto_failover -c "SELECT reportedstate FROM pgautofailover.node WHERE nodename = 'node1'"
  fi
done
wait_for 90 "primary,primary secondary,secondary" -p "$monitor_port" pg_auto_failover \
  -c "SELECT string_agg(reportedstate || ',' || goalstate, ' ' ORDER BY nodeid) FROM pgautofailover.node"
# The standby is synchronous: a commit on the primary waits for it.
wait_for 30 quorum -p "$node1_port" postgres -c "SELECT string_agg(sync_state, ',') FROM pg_stat_replication"
echo "synchronous_standby_names on node1: $(psql_at -p "$node1_port" postgres -c 'SHOW synchronous_standby_names')"
uri=$(ha show uri --pgdata "$work/monitor" --formation default)
echo "formation URI: $uri"
url=$(printf '%s' "$uri" | sed -E 's|^postgres(ql)?://|postgres://postgres@|')
echo "== the formation is up after $(($(date +%s) - started))s"

echo "== cargo test -p jobprep-repo --test failover -- --ignored --nocapture"
cargo test -q -p jobprep-repo --test failover --no-run
status=0
JOBPREP_FAILOVER_URL="$url" \
JOBPREP_FAILOVER_MONITOR_URL="$monitor_url" \
JOBPREP_FAILOVER_NODES="node1=postgres://postgres@127.0.0.1:$node1_port/$dbname node2=postgres://postgres@127.0.0.1:$node2_port/$dbname" \
JOBPREP_FAILOVER_HA="$work/ha" \
  timeout -k 10 240 cargo test -q -p jobprep-repo --test failover -- --ignored --nocapture --test-threads=1 \
  2>&1 | tee "$work/test.log" || status=$?

passed=$(grep -cE '^check \(.*: ok' "$work/test.log" || true)
failed=$(grep -c '^check FAILED' "$work/test.log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the test stopped before its checks (panic, timeout, build failure)
fi
echo "failover: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
