#!/usr/bin/env bash
# Latency per use case over a simulated network: one client, each call waiting for its
# answer, through scripts/latency-proxy.py adding half the round-trip time each way.
# Three stacks do the same jobs on one scratch database: jobprep
# (crates/cli/examples/latency.rs), pgbench sending jobprep's statements (-M prepared,
# libpq, the floor for those statements), and the original app's stack, drizzle-orm
# 0.44 over node-postgres (compat/drizzle/latency.mjs, pinned by its package-lock.json).
# Prints p50 and p99 per use case and stack, as a Markdown table.
#
#   bash scripts/latency-bench.sh           # 2 ms and 20 ms RTT, release build
#   bash scripts/latency-bench.sh --short   # 2 ms RTT, 20 calls, debug build (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
rtts="2 20" profile=release
calls_at() { if [ "$1" -le 2 ]; then echo "${LATENCY_CALLS:-200}"; else echo "${LATENCY_CALLS_FAR:-50}"; fi; }
if [ "${1:-}" = --short ]; then
  rtts=2 profile=debug
  calls_at() { echo 20; }
fi
cases="get_job_info insert_job_info insert_question_within_quota delete_job_info"

if ! command -v pgbench >/dev/null 2>&1; then
  echo "installing pgbench (Debian's PostgreSQL server package holds it)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
npm ci --prefix compat/drizzle --no-audit --no-fund --loglevel=error >/dev/null
if [ "$profile" = release ]; then
  cargo build -q --release -p jobprep-cli --example latency
  bin=target/release
else
  cargo build -q -p jobprep-cli --example latency
  bin=target/debug
fi

work=$(mktemp -d)
db=jobprep_latency_$$
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  rm -rf "$work"
  psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$admin" -qAtc "CREATE DATABASE $db"
direct="${admin%/*}/$db?sslmode=disable"
"$bin/jobprep" --database-url "$direct" migrate >/dev/null

# lat_user owns the job info the reads and inserts use; each stack deletes job infos of
# its own user, each with an interview and a question, so every delete has a cascade.
doomed=0
for rtt in $rtts; do doomed=$((doomed + $(calls_at "$rtt") + 10)); done
psql "$direct" -qAt -v ON_ERROR_STOP=1 <<SQL
INSERT INTO users (id, name, email)
SELECT u, u, u || '@latency.example'
FROM unnest(ARRAY['lat_user', 'lat_doomed_jobprep', 'lat_doomed_drizzle', 'lat_doomed_pgbench']) u;
INSERT INTO job_info (id, name, "experienceLevel", description, "userId")
VALUES ('00000000-0000-4000-8000-000000000001', 'Latency', 'senior', 'Seeded', 'lat_user');
INSERT INTO job_info (id, name, "experienceLevel", description, "userId")
SELECT gen_random_uuid(), 'Doomed', 'junior', 'Seeded', o
FROM unnest(ARRAY['lat_doomed_jobprep', 'lat_doomed_drizzle', 'lat_doomed_pgbench']) o,
     generate_series(1, $doomed);
INSERT INTO interviews (id, "jobInfoId", duration)
SELECT gen_random_uuid(), id, '00:10:00' FROM job_info WHERE "userId" LIKE 'lat_doomed_%';
INSERT INTO questions (id, "jobInfoId", text, difficulty)
SELECT gen_random_uuid(), id, 'Doomed', 'easy' FROM job_info WHERE "userId" LIKE 'lat_doomed_%';
VACUUM ANALYZE;
SQL

# pgbench: jobprep's statements for the same calls (each one statement on PostgreSQL).
job="'00000000-0000-4000-8000-000000000001'::uuid"
new_id="(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid"
cat > "$work/get_job_info.sql" <<SQL
SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE (("job_info"."id" = $job) AND ("job_info"."userId" = 'lat_user'));
SQL
cat > "$work/insert_job_info.sql" <<SQL
\set r random(0, 9223372036854775806)
INSERT INTO "job_info" ("id", "title", "name", "experienceLevel", "description", "userId", "createdAt", "updatedAt") SELECT $new_id, NULL, 'Latency', 'mid-level', 'A job for the benchmark', "users"."id", now(), now() FROM "users" WHERE ("users"."id" = 'lat_user') ON CONFLICT ("id") DO NOTHING RETURNING "job_info"."id", "job_info"."userId";
SQL
cat > "$work/insert_question_within_quota.sql" <<SQL
\set r random(0, 9223372036854775806)
WITH turn AS MATERIALIZED (SELECT jobprep.questions_used_after_turn('lat_user') AS used), written AS (INSERT INTO "questions" ("id", "jobInfoId", "text", "difficulty", "createdAt", "updatedAt") SELECT $new_id, "job_info"."id", 'How do you size a pool?', 'medium', now(), now() FROM "job_info" WHERE ((("job_info"."userId" = 'lat_user') AND ("job_info"."id" = $job)) AND COALESCE((SELECT used FROM turn) < 1000000000, true)) ON CONFLICT ("id") DO NOTHING RETURNING "questions"."jobInfoId") SELECT turn.used, written.* FROM turn LEFT JOIN written ON true;
SQL
cat > "$work/delete_job_info.sql" <<SQL
SELECT removed_kind, removed_id, removed_job_info_id FROM jobprep.delete_job_info('lat_doomed_pgbench', (SELECT id FROM job_info WHERE "userId" = 'lat_doomed_pgbench' LIMIT 1));
SQL

percentiles() { # STACK CASE CALLS RTT < latencies in ms, one per line
  python3 -c '
import json, math, sys
stack, case, calls, rtt = sys.argv[1:]
times = sorted(float(line) for line in sys.stdin if line.strip())
at = lambda q: times[min(len(times), max(1, math.ceil(len(times) * q))) - 1]
print(json.dumps({"stack": stack, "case": case, "calls": int(calls), "p50_ms": at(0.5), "p99_ms": at(0.99), "rtt_ms": int(rtt)}))
' "$@"
}

results="$work/results.jsonl"
for rtt in $rtts; do
  calls=$(calls_at "$rtt")
  python3 scripts/latency-proxy.py --upstream 127.0.0.1:5432 --port 0 \
    --delay-ms "$(python3 -c "print($rtt / 2)")" > "$work/proxy-$rtt.out" &
  proxy_pid=$!
  for _ in $(seq 50); do grep -q listening "$work/proxy-$rtt.out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/^listening 127.0.0.1://p' "$work/proxy-$rtt.out")
  [ -n "$port" ] || { echo "the latency proxy did not start"; exit 1; }
  via="postgresql://postgres@127.0.0.1:$port/$db?sslmode=disable"
  echo "== $rtt ms RTT, $calls calls per use case"
  "$bin/examples/latency" "$via" "$calls" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); r['rtt_ms'] = $rtt; print(json.dumps(r))" | tee -a "$results"
  node compat/drizzle/latency.mjs "$via" "$calls" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); r['rtt_ms'] = $rtt; print(json.dumps(r))" | tee -a "$results"
  for case in $cases; do
    # Three more transactions than timed, dropped as the warm-up.
    (cd "$work" && pgbench -n -c 1 -t $((calls + 3)) -M prepared -l --log-prefix="$case" \
      -f "$case.sql" "$via" > "$case.out" 2>&1) || { cat "$work/$case.out"; exit 1; }
    cat "$work/$case".* | tail -n +4 | awk '{ print $3 / 1000 }' |
      percentiles pgbench "$case" "$calls" "$rtt" | tee -a "$results"
    rm -f "$work/$case".[0-9]*
  done
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=
done

echo
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
stacks = ["jobprep", "pgbench", "drizzle"]
print("| RTT | use case | " + " | ".join(f"{s} p50 / p99 (ms)" for s in stacks) + " | jobprep p50 / drizzle p50 |")
print("|---|---|" + "---|" * (len(stacks) + 1))
cells = {(r["rtt_ms"], r["case"], r["stack"]): r for r in rows}
for rtt in sorted({r["rtt_ms"] for r in rows}):
    for case in dict.fromkeys(r["case"] for r in rows):
        parts = []
        for s in stacks:
            r = cells.get((rtt, case, s))
            parts.append(f'{r["p50_ms"]:.1f} / {r["p99_ms"]:.1f}' if r else "-")
        j, d = cells.get((rtt, case, "jobprep")), cells.get((rtt, case, "drizzle"))
        ratio = f'{j["p50_ms"] / d["p50_ms"]:.2f}' if j and d else "-"
        print(f"| {rtt} ms | {case} | " + " | ".join(parts) + f" | {ratio} |")
PY
