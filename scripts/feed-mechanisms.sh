#!/usr/bin/env bash
# What recording changes costs a writer, mechanism by mechanism (BENCHMARKS.md, "Cache
# feed"). pgbench sends the single-row insert of `jobprep bench`
# (scripts/pgbench/insert_job_info.sql) to a throwaway PostgreSQL with
# wal_level = logical, in rounds that visit each side in turn (the order reversed every
# other round):
#   off       nothing installed
#   feed      the cache feed (`jobprep cache-feed install`) with `jobprep cache-feed listen`
#             draining it
#   trigger   only an empty statement trigger with a transition table on job_info: what
#             any trigger costs before it does anything
#   decoding  no trigger: logical decoding of the four tables (pgoutput), streamed by
#             pg_recvlogical to /dev/null, as a listener reading the WAL would
# Each round prints every side's transactions per second and its ratio to "off" in the
# same round.
#
#   bash scripts/feed-mechanisms.sh           # 6 s per cell, 3 rounds, release build
#   bash scripts/feed-mechanisms.sh --short   # 1 s per cell, 1 round, debug build (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FEED_MECHANISMS_SECONDS:-6} rounds=${FEED_MECHANISMS_ROUNDS:-3} profile=release
if [ "${1:-}" = --short ]; then seconds=1 rounds=1 profile=debug; fi

if ! command -v pgbench >/dev/null 2>&1 || ! command -v pg_recvlogical >/dev/null 2>&1; then
  echo "installing pgbench and pg_recvlogical (Debian's PostgreSQL packages hold them)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ "$profile" = release ]; then cargo build -q --release -p jobprep-cli; else cargo build -q -p jobprep-cli; fi
jobprep=target/$profile/jobprep

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${FEED_MECHANISMS_PORT:-55460}
work=$(mktemp -d /tmp/jobprep-feed-mechanisms.XXXXXX)
chown postgres "$work"
as_postgres() { runuser -u postgres -- "$@"; }
drain=""
cleanup() {
  if [ -n "$drain" ]; then kill "$drain" 2>/dev/null || true; fi
  as_postgres "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The server as the machine's own runs it: fsync and synchronous_commit on.
as_postgres "$bin/initdb" -D "$work/data" -U postgres --auth=trust >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
wal_level = logical
max_replication_slots = 4
CONF
as_postgres "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export PGSSLMODE=disable

"$jobprep" --database-url "$url" migrate >/dev/null
psql "$url" -qX -v ON_ERROR_STOP=1 -f scripts/pgbench/seed.sql
psql "$url" -qX -v ON_ERROR_STOP=1 <<'SQL'
VACUUM ANALYZE;
CREATE PUBLICATION feed_mechanisms FOR TABLE users, job_info, interviews, questions;
CREATE FUNCTION feed_mechanisms_nothing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;
END $$;
SQL

# Puts one side in place; a side that runs a reader leaves its pid in $drain.
enter() {
  case $1 in
  off) ;;
  feed)
    "$jobprep" --database-url "$url" cache-feed install >/dev/null
    "$jobprep" --database-url "$url" cache-feed listen >/dev/null &
    drain=$!
    ;;
  trigger)
    psql "$url" -qXc 'CREATE TRIGGER feed_mechanisms_nothing AFTER INSERT ON job_info
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_mechanisms_nothing()'
    ;;
  decoding)
    pg_recvlogical -d "$url" --slot feed_mechanisms --create-slot -P pgoutput
    pg_recvlogical -d "$url" --slot feed_mechanisms --start -o proto_version=1 \
      -o publication_names=feed_mechanisms -f /dev/null &
    drain=$!
    ;;
  esac
  sleep 0.5
}
leave() {
  if [ -n "$drain" ]; then
    kill "$drain"
    wait "$drain" 2>/dev/null || true
    drain=""
  fi
  case $1 in
  feed) "$jobprep" --database-url "$url" cache-feed remove >/dev/null ;;
  trigger) psql "$url" -qXc 'DROP TRIGGER feed_mechanisms_nothing ON job_info' ;;
  decoding) psql "$url" -qAtXc "SELECT pg_drop_replication_slot('feed_mechanisms')" >/dev/null ;;
  esac
}

sides="off feed trigger decoding"
echo "pgbench insert_job_info, ${seconds} s per cell, transactions/s (ratio to off in the same round)"
for clients in 1 4; do
  for round in $(seq "$rounds"); do
    order=$sides
    if [ $((round % 2)) = 0 ]; then order=$(echo "$sides" | tr ' ' '\n' | tac | paste -sd ' '); fi
    declare -A tps=()
    for side in $order; do
      enter "$side"
      out=$(pgbench -n -M prepared -c "$clients" -j "$clients" -T "$seconds" \
        -f scripts/pgbench/insert_job_info.sql "$url" 2>&1) || { echo "$out"; exit 1; }
      leave "$side"
      tps[$side]=$(awk '/^tps = .*without initial connection time/ { print $3 }' <<<"$out")
      if [ -z "${tps[$side]}" ]; then echo "$out"; exit 1; fi
    done
    line=$(printf 'clients %d, round %d:' "$clients" "$round")
    for side in $sides; do
      line+=$(awk -v s="$side" -v t="${tps[$side]}" -v o="${tps[off]}" \
        'BEGIN { printf "  %s %.0f (%.2f)", s, t, t / o }')
    done
    echo "$line"
    unset tps
  done
done
