#!/usr/bin/env bash
# Starts a throwaway PostgreSQL primary and a streaming replica (pg_basebackup -R) on
# loopback ports, runs the replica routing tests against them, and removes both.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
primary_port=${JOBPREP_REPLICA_TEST_PRIMARY_PORT:-55440}
replica_port=${JOBPREP_REPLICA_TEST_REPLICA_PORT:-55441}
work=$(mktemp -d /tmp/jobprep-replicas.XXXXXX)
chown postgres "$work"
as_postgres() { runuser -u postgres -- "$@"; }

cleanup() {
  as_postgres "$bin/pg_ctl" -D "$work/replica" -m immediate stop >/dev/null 2>&1 || true
  as_postgres "$bin/pg_ctl" -D "$work/primary" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_postgres "$bin/initdb" -D "$work/primary" -U postgres --auth=trust >/dev/null
cat >> "$work/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$work'
wal_level = replica
max_wal_senders = 4
fsync = off
CONF
as_postgres "$bin/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null
as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$work/replica" -R -X stream
cat >> "$work/replica/postgresql.conf" <<CONF
port = $replica_port
CONF
as_postgres "$bin/pg_ctl" -D "$work/replica" -l "$work/replica.log" -w start >/dev/null
echo "primary on 127.0.0.1:$primary_port, replica on 127.0.0.1:$replica_port"

export JOBPREP_PRIMARY_URL="postgres://postgres@127.0.0.1:$primary_port/postgres"
export JOBPREP_REPLICA_URL="postgres://postgres@127.0.0.1:$replica_port/postgres"
export JOBPREP_REPLICA_PGDATA="$work/replica"
export JOBPREP_PG_CTL="$bin/pg_ctl"
export JOBPREP_REPLICA_LOG="$work/replica.log"
cargo test -q -p jobprep-repo --test replicas -- --ignored --test-threads=1 2>&1 | tail -n 25

# Read throughput through the replica router against raw reads on the primary, same
# client count (BENCHMARKS.md). Short by default so CI keeps it working.
# JOBPREP_BENCH_RELEASE=1 measures an optimized build (for BENCHMARKS.md).
seconds=${JOBPREP_REPLICA_BENCH_SECONDS:-0.5}
profile=debug
if [ "${JOBPREP_BENCH_RELEASE:-0}" = 1 ]; then profile=release; fi
cargo build -q --profile "$([ $profile = debug ] && echo dev || echo release)" -p jobprep-cli
for clients in 1 4; do
  "target/$profile/jobprep" --database-url "$JOBPREP_PRIMARY_URL" bench --users 200 --seconds "$seconds" \
    --clients "$clients" --ops get_job_info,list_job_infos,list_interviews --replica "$JOBPREP_REPLICA_URL" 2>/dev/null
done
