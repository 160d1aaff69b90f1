#!/usr/bin/env bash
# A few seconds of `jobprep bench --json` on both backends (and `bench --cache-feed` on
# PostgreSQL), so the benchmark cannot
# rot: it must run, clean up after itself, and report every operation.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p jobprep-cli
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
ops="get_job_info list_job_infos list_interviews count_interviews_for_user upsert_user insert_job_info insert_question bulk_insert_questions"
scratch() { psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'jobprep_bench_%' ORDER BY 1"; }
before=$(scratch)
for url in "$admin" "sqlite://$(mktemp -d)/bench.sqlite3"; do
  last=$(target/debug/jobprep --database-url "$url" bench --users 20 --seconds 0.2 --clients 2 --json 2>/dev/null | tail -n 1)
  for op in $ops; do
    if ! grep -q "\"$op\":{\"dal_ops\":[0-9]" <<<"$last"; then
      echo "bench on ${url%%:*}: no result for $op in: $last"
      exit 1
    fi
  done
  echo "bench on ${url%%:*}: all $(wc -w <<<"$ops") operations measured"
done
last=$(target/debug/jobprep --database-url "$admin" bench --cache-feed --seconds 0.4 --json 2>/dev/null | tail -n 1)
if ! grep -q '"feed_on_ops":[0-9].*"latency_samples":300' <<<"$last"; then
  echo "bench --cache-feed on postgres: no result in: $last"
  exit 1
fi
echo "bench --cache-feed on postgres: throughput off and on, and 300 latency samples"
# The listener by its own URL (here the same server): it must find the scratch database.
last=$(target/debug/jobprep --database-url "$admin" bench --cache-feed --seconds 0.4 --json \
  --listener-database-url "$admin" 2>/dev/null | tail -n 1)
if ! grep -q '"feed_on_ops":[0-9].*"latency_samples":300' <<<"$last"; then
  echo "bench --cache-feed --listener-database-url on postgres: no result in: $last"
  exit 1
fi
echo "bench --cache-feed with the listener's own URL: measured"
if [ "$(scratch)" != "$before" ]; then
  echo "bench left a scratch database behind: $(scratch)"
  exit 1
fi
