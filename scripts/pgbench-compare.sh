#!/usr/bin/env bash
# The C ceiling: each single-row operation of `jobprep bench` as the same statement sent
# by pgbench with prepared statements (libpq, `-M prepared`), on a scratch database
# migrated by the jobprep CLI, seeded with scripts/pgbench/seed.sql and VACUUM ANALYZEd;
# and `jobprep bench --existing` on that same database, each cell right after pgbench's.
# TLS is off on both sides (sslmode=disable): libpq's default uses TLS on loopback too.
#
#   bash scripts/pgbench-compare.sh            # 5 s per cell, median of 3, release build
#   bash scripts/pgbench-compare.sh --short    # 1 s per cell, once, debug build (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${PGBENCH_COMPARE_SECONDS:-5} reps=${PGBENCH_COMPARE_REPS:-3} profile=release
bench_seconds=$seconds # per side: jobprep bench splits each in two halves per side
if [ "${1:-}" = --short ]; then
  seconds=1 bench_seconds=0.4 reps=1 profile=debug
fi
ops="get_job_info list_job_infos list_interviews count_interviews_for_user upsert_user insert_job_info insert_question"
reads="get_job_info list_job_infos list_interviews count_interviews_for_user"

if ! command -v pgbench >/dev/null 2>&1; then
  echo "installing pgbench (Debian's PostgreSQL server package holds it)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ "$profile" = release ]; then
  cargo build -q --release -p jobprep-cli
else
  cargo build -q -p jobprep-cli
fi
jobprep=target/$profile/jobprep

admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=jobprep_pgbench_$$
# SYNCHRONOUS_COMMIT=off: commits do not wait for the WAL flush, on every side alike, so
# a shared disk's flush latency does not drown what the clients cost.
opts="sslmode=disable&options=-c%20synchronous_commit%3D${SYNCHRONOUS_COMMIT:-on}"
url="${admin%/*}/$db?$opts"
export PGSSLMODE=disable
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$admin" -qAtc "CREATE DATABASE $db"
"$jobprep" --database-url "$url" migrate >/dev/null
psql "$url" -qX -v ON_ERROR_STOP=1 -f scripts/pgbench/seed.sql
psql "$url" -qAtc "VACUUM ANALYZE"

# A script's statement with its variables replaced, for psql.
statement() { # OP K
  local k=$2
  grep -v '^\(--\|\\\)' "scripts/pgbench/$1.sql" |
    sed -e "s/:k\b/$k/g" -e "s/:u\b/$((k / 2))/g" -e "s/:r\b/$((k + 1))/g"
}

# Every read names rows that exist: at both ends of the id range, and in its middle.
for op in $reads; do
  for k in 0 1001 1999; do
    rows=$(statement "$op" "$k" | psql "$url" -qAtX)
    if [ -z "$rows" ] || [ "$rows" = 0 ]; then
      echo "$op finds nothing for job info $k: the ids of the scripts and the seed differ"
      exit 1
    fi
  done
done

echo "synchronous_commit: $(psql "$url" -qAtXc 'SHOW synchronous_commit'), TLS: $(psql "$url" -qAtXc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')"
echo "plans on the analyzed data (the scans of each read):"
for op in $reads; do
  printf '  %-28s %s\n' "$op" "$(statement "$op" 1001 | sed 's/^/EXPLAIN (COSTS OFF) /' |
    psql "$url" -qAtX | grep -oE '(Seq|Index|Index Only|Bitmap Heap) Scan( using [^ ]+)? on [a-z_]+' |
    paste -sd ';' | sed 's/;/; /g')"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
count() { psql "$url" -qAtXc "SELECT count(*) FROM $1"; }

# Each cell: pgbench, then jobprep bench on the same database at once. Reads first, then
# writes (which grow the tables on both sides alike), as `jobprep bench` orders them.
for op in $ops; do
  for clients in 1 4; do
    for _ in $(seq "$reps"); do
      before=$(count questions)
      pgbench -n -M prepared -c "$clients" -j "$clients" -T "$seconds" \
        -f "scripts/pgbench/$op.sql" "$url" >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
      done_tx=$(awk '/^number of transactions actually processed:/ { print $6 }' "$work/out")
      failed=$(awk '/^number of failed transactions:/ { print $5 }' "$work/out")
      if [ "${failed:-0}" != 0 ]; then cat "$work/out"; exit 1; fi
      if [ "$op" = insert_question ] && [ $(($(count questions) - before)) != "$done_tx" ]; then
        echo "insert_question: $done_tx transactions but $(($(count questions) - before)) new questions"
        exit 1
      fi
      awk '/^tps = .*without initial connection time/ { print $3 }' "$work/out" >>"$work/pgbench.$op.$clients"

      "$jobprep" --database-url "$url" bench --existing --seconds "$bench_seconds" \
        --clients "$clients" --ops "$op" --json 2>/dev/null | tail -n 1 >"$work/json"
      for side in dal raw; do
        grep -o "\"${side}_ops\":[0-9.]*" "$work/json" | sed 's/.*://' >>"$work/$side.$op.$clients"
      done
    done
  done
done
if [ "$(count users)" != 1000 ]; then
  echo "upsert_user inserted users: its ids missed the seeded ones"
  exit 1
fi

echo
echo "pgbench -M prepared vs jobprep (sync), transactions per second, median of $reps runs" \
  "(pgbench ${seconds}s, jobprep bench ${bench_seconds}s per side), the same database;" \
  "baseline: jobprep's repository functions on a bare connection (jobprep bench's raw side)"
printf '%-26s %9s %9s %6s %9s %6s %9s %9s %6s %9s %6s\n' operation \
  "pgbench 1" "jobprep" ratio baseline ratio "pgbench 4" "jobprep" ratio baseline ratio
for op in $ops; do
  line=$(printf '%-26s' "$op")
  for clients in 1 4; do
    p=$(median <"$work/pgbench.$op.$clients")
    j=$(median <"$work/dal.$op.$clients")
    b=$(median <"$work/raw.$op.$clients")
    [ -n "$p" ] && [ -n "$j" ] && [ -n "$b" ] || { echo "no result for $op at $clients clients"; exit 1; }
    line+=$(awk -v p="$p" -v j="$j" -v b="$b" 'BEGIN { printf " %9.0f %9.0f %6.2f %9.0f %6.2f", p, j, j / p, b, b / p }')
  done
  echo "$line"
done
