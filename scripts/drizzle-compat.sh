#!/usr/bin/env bash
# Proves with the original app's real tools (drizzle-kit 0.31, drizzle-orm 0.44 and pg,
# pinned by compat/drizzle/package-lock.json) that jobprep and drizzle-kit share one
# PostgreSQL database, each on throwaway databases made here and dropped at the end:
#
#   1. `drizzle-kit push --verbose --strict` with the app's schema and config
#      (compat/drizzle) proposes nothing on a database jobprep created or adopted;
#      without them it proposes dropping jobprep's table and indexes (the control).
#   2. `drizzle-kit generate` then `drizzle-kit migrate` succeed on a database jobprep
#      created and leave it unchanged; with the generated `when` left at "now" the same
#      migrate fails (the control: the journal is what makes it pass). The app's next
#      generated migration, declaring our indexes, fails as generated and applies as a
#      no-op with `CREATE INDEX IF NOT EXISTS` (docs/beside-the-app.md, "What the app's team adds").
#   3. `jobprep migrate` adopts what `drizzle-kit migrate` made on an empty database.
#   4. `jobprep migrate` recovers from the states other tools leave: `push --force`
#      without the app's additions, push dropping only the indexes, an empty bookkeeping
#      table, indexes without bookkeeping. No row is touched.
#   5. `jobprep migrate revert` never drops the app's tables; `drop-app-schema` refuses.
#
# Needs Node.js 18+ with npm (installed with apt-get when missing), a PostgreSQL server
# (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres) and cargo.
# Prints `drizzle-compat: N passed, M failed` last; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if ! command -v npm >/dev/null 2>&1; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq && $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
# The lockfile pins every package; `npm ci` reinstalls exactly it (a few seconds).
npm ci --prefix compat/drizzle --no-audit --no-fund --loglevel=error >/dev/null
cargo build -q -p jobprep-cli
jobprep=$root/target/debug/jobprep
# drizzle-kit resolves the config's relative paths from where it runs: the app's folder.
kit=(env -C "$root/compat/drizzle" ./node_modules/.bin/drizzle-kit)

admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
prefix=jobprep_drizzle_$$
work=$(mktemp -d)
cleanup() {
  # new_db runs in a subshell ($(...)), so the names come from the server.
  local db
  for db in $(psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE '${prefix}\_%'"); do
    psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# Databases left by a run that was killed before its cleanup.
for db in $(psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'jobprep\_drizzle\_%'"); do
  pid=${db#jobprep_drizzle_}
  kill -0 "${pid%%_*}" 2>/dev/null || psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

# A fresh empty database; prints its URL.
new_db() {
  local name=${prefix}_$1
  psql "$admin" -qAtc "CREATE DATABASE $name" >/dev/null
  echo "${admin%/*}/$name"
}
q() { psql "$1" -qAtc "$2"; }
seed() { # one row in each of the app's tables
  q "$1" "INSERT INTO users (id, name, email) VALUES ('user_kept', 'Kept', 'kept@example.com');
          INSERT INTO job_info (id, name, \"experienceLevel\", description, \"userId\")
            VALUES ('0190b6a4-0000-7000-8000-000000000001', 'Kept', 'senior', 'd', 'user_kept');
          INSERT INTO interviews (id, \"jobInfoId\", duration)
            VALUES ('0190b6a4-0000-7000-8000-000000000002', '0190b6a4-0000-7000-8000-000000000001', '00:01:00');
          INSERT INTO questions (id, \"jobInfoId\", text, difficulty)
            VALUES ('0190b6a4-0000-7000-8000-000000000003', '0190b6a4-0000-7000-8000-000000000001', 'q', 'easy');"
}
rows() { q "$1" "SELECT (SELECT count(*) FROM users) || ',' || (SELECT count(*) FROM job_info) || ',' || (SELECT count(*) FROM interviews) || ',' || (SELECT count(*) FROM questions)"; }
journal() { q "$1" "SELECT string_agg(hash || ':' || created_at, ' ' ORDER BY created_at, id) FROM drizzle.__drizzle_migrations"; }
schema() { "$jobprep" --database-url "$1" migrate schema; }
clean() { "$jobprep" --database-url "$1" migrate check >"$work/check.out" 2>&1; }

# The app's files (compat/drizzle) and, for the controls, the app as it is without
# them: its schema without the lines marked "jobprep index", its config without the
# table filter. Generated configs need no import, so they work from $work; the schema
# resolves drizzle-orm through the symlinked node_modules.
ln -s "$root/compat/drizzle/node_modules" "$work/node_modules"
grep -v 'jobprep index' compat/drizzle/schema.ts >"$work/schema-without-indexes.ts"
config() { # NAME SCHEMA OUT FILTERED
  local filter=""
  [ "$4" = filtered ] && filter='tablesFilter: ["!__diesel_schema_migrations"],'
  cat >"$work/$1.config.ts" <<EOF
export default {
  dialect: "postgresql",
  schema: "$2",
  out: "$3",
  dbCredentials: { url: process.env.DATABASE_URL ?? "" },
  $filter
};
EOF
  echo "$work/$1.config.ts"
}
app_config=$root/compat/drizzle/drizzle.config.ts
bare_config=$(config bare "$work/schema-without-indexes.ts" "$work/bare-migrations" unfiltered)
unindexed_config=$(config unindexed "$work/schema-without-indexes.ts" "$work/unindexed-migrations" filtered)

# `drizzle-kit push` as a dry run. It prints the statements it would run (--verbose)
# and, with --strict, asks before running any; its prompt needs a TTY, and with stdin
# at /dev/null it reads end-of-file and exits without running anything (exit code 0
# either way, so the output is what tells). "No changes detected" is printed only
# when the diff is empty. The timeout guards against a prompt that waits anyway.
push_dry_run() { # URL CONFIG -> output in $work/push.out
  DATABASE_URL=$1 timeout 120 "${kit[@]}" push --verbose --strict --config "$2" \
    </dev/null >"$work/push.out" 2>&1 || true
  # Strip colours and spinner redraws so statements start their line.
  sed -i 's/\x1b\[[0-9;?]*[A-Za-z]//g' "$work/push.out"
}
proposes_nothing() {
  grep -q 'No changes detected' "$work/push.out" &&
    ! grep -Eq '^(CREATE|ALTER|DROP|TRUNCATE|COMMENT|INSERT|UPDATE|DELETE) ' "$work/push.out"
}
push_force() { # URL CONFIG
  DATABASE_URL=$1 timeout 120 "${kit[@]}" push --force --config "$2" </dev/null >"$work/push.out" 2>&1
}
kit_migrate() { # URL CONFIG MIGRATIONS-FOLDER
  DATABASE_URL=$1 DRIZZLE_OUT=$3 timeout 120 "${kit[@]}" migrate --config "$2" >"$work/migrate.out" 2>&1
}

# A freshly generated migration gets `when` = now. The app's real history is four
# migrations, the last at 1758289962544, which jobprep's baseline writes to drizzle's
# journal. To stand for that history the generated migration (the same schema in one
# file) takes the last `when`: drizzle's migrator runs only migrations whose `when` is
# later than the newest `created_at` in its journal, so it is exactly as "already
# applied" as the real 0003_lush_wolfsbane. Hashes are not compared.
app_last_when=1758289962544
generate() { # CONFIG OUT-FOLDER WHEN
  rm -rf "$2"
  DRIZZLE_OUT=$2 "${kit[@]}" generate --config "$1" >"$work/generate.out" 2>&1
  node -e '
    const fs = require("fs"), file = process.argv[1] + "/meta/_journal.json";
    const journal = JSON.parse(fs.readFileSync(file, "utf8"));
    if (journal.entries.length !== 1) throw new Error("expected one generated migration");
    if (process.argv[2] !== "now") journal.entries[0].when = Number(process.argv[2]);
    fs.writeFileSync(file, JSON.stringify(journal, null, 2));
  ' "$2" "$3"
}
generate "$app_config" "$work/app-migrations" "$app_last_when"
generate "$bare_config" "$work/bare-migrations" "$app_last_when"
generate "$app_config" "$work/app-migrations-now" now

echo "== 1. drizzle-kit push proposes nothing on a jobprep database"
created=$(new_db created)
"$jobprep" --database-url "$created" migrate >/dev/null
seed "$created"
before=$(schema "$created")
push_dry_run "$created" "$app_config"
if proposes_nothing; then pass "push on a jobprep-created database: No changes detected"
else fail "push on a jobprep-created database proposed:"; cat "$work/push.out"; fi

adopted=$(new_db adopted)
psql "$adopted" -qX -v ON_ERROR_STOP=1 -f crates/repo/tests/fixtures/original_app_schema.sql >/dev/null
"$jobprep" --database-url "$adopted" migrate >"$work/adopt.out"
grep -q '^adopted' "$work/adopt.out" || fail "fixture database not adopted"
push_dry_run "$adopted" "$app_config"
if proposes_nothing; then pass "push on a jobprep-adopted database: No changes detected"
else fail "push on a jobprep-adopted database proposed:"; cat "$work/push.out"; fi

push_dry_run "$created" "$bare_config"
if grep -q 'DROP TABLE "__diesel_schema_migrations" CASCADE;' "$work/push.out" &&
  [ "$(grep -c '^DROP INDEX "' "$work/push.out")" = 5 ] && ! proposes_nothing; then
  pass "control: without the app's additions push proposes dropping our table and five indexes"
else fail "control: push without the additions did not propose the drops"; cat "$work/push.out"; fi
if [ "$(schema "$created")" = "$before" ] && clean "$created"; then
  pass "the --strict dry runs without a TTY ran nothing"
else fail "a dry run changed the database"; cat "$work/check.out"; fi

echo "== 2. drizzle-kit generate, then migrate, on a jobprep-created database"
journal_before=$(journal "$created")
if kit_migrate "$created" "$app_config" "$work/app-migrations" &&
  [ "$(schema "$created")" = "$before" ] && [ "$(journal "$created")" = "$journal_before" ] &&
  [ "$(rows "$created")" = 1,1,1,1 ] && clean "$created"; then
  pass "drizzle-kit migrate accepts the jobprep-created database as up to date and changes nothing"
else fail "drizzle-kit migrate on the jobprep-created database"; cat "$work/migrate.out" "$work/check.out"; fi
if ! kit_migrate "$created" "$app_config" "$work/app-migrations-now" &&
  grep -q 'already exists' "$work/migrate.out" && [ "$(schema "$created")" = "$before" ] &&
  [ "$(journal "$created")" = "$journal_before" ]; then
  pass "control: a migration dated after the app's history is applied (and fails: already exists), changing nothing"
else fail "control: the migration dated now"; cat "$work/migrate.out"; fi

# The app's team adds the index declarations (docs/beside-the-app.md, "What the app's team adds"); its
# next `drizzle-kit generate` writes a migration with five plain CREATE INDEX, dated now.
history=$work/history
mkdir -p "$history"
# drizzle-kit prefixes `out` with "./" when it reads earlier snapshots: give it a path
# relative to the folder it runs in.
history_out=$(realpath --relative-to="$root/compat/drizzle" "$history")
"${kit[@]}" generate --config "$(config history-before "$work/schema-without-indexes.ts" "$history_out" filtered)" >"$work/generate.out" 2>&1
node -e '
  const fs = require("fs"), file = process.argv[1] + "/meta/_journal.json";
  const journal = JSON.parse(fs.readFileSync(file, "utf8"));
  journal.entries[0].when = Number(process.argv[2]);
  fs.writeFileSync(file, JSON.stringify(journal, null, 2));
' "$history" "$app_last_when"
"${kit[@]}" generate --config "$(config history-after "$root/compat/drizzle/schema.ts" "$history_out" filtered)" >"$work/generate.out" 2>&1
next_sql=$(ls "$history"/0001_*.sql)
next=$(new_db next)
"$jobprep" --database-url "$next" migrate >/dev/null && seed "$next"
if [ "$(grep -c '^CREATE INDEX "' "$next_sql")" = 5 ] && ! kit_migrate "$next" "$app_config" "$history" &&
  grep -q 'already exists' "$work/migrate.out" && [ "$(schema "$next")" = "$before" ] && clean "$next"; then
  pass "the app's generated index migration, as generated, fails on a jobprep database and changes nothing"
else fail "the app's generated index migration as generated"; cat "$next_sql" "$work/migrate.out"; fi
sed -i 's/^CREATE INDEX "/CREATE INDEX IF NOT EXISTS "/' "$next_sql"
if kit_migrate "$next" "$app_config" "$history" && [ "$(schema "$next")" = "$before" ] &&
  [ "$(q "$next" "SELECT count(*) FROM drizzle.__drizzle_migrations")" = 5 ] && clean "$next" &&
  [ "$(rows "$next")" = 1,1,1,1 ]; then
  pass "with IF NOT EXISTS it applies, changes nothing, and drizzle's journal records it"
else fail "the app's index migration with IF NOT EXISTS"; cat "$work/migrate.out" "$work/check.out"; fi

echo "== 3. jobprep adopts what drizzle-kit migrate made"
theirs=$(new_db theirs)
if kit_migrate "$theirs" "$bare_config" "$work/bare-migrations" && seed "$theirs" &&
  "$jobprep" --database-url "$theirs" migrate >"$work/adopt.out" && grep -q '^adopted' "$work/adopt.out" &&
  [ "$(grep -c '^applied' "$work/adopt.out")" = 6 ] && clean "$theirs" &&
  [ "$(schema "$theirs")" = "$before" ] && [ "$(rows "$theirs")" = 1,1,1,1 ]; then
  pass "jobprep migrate adopted drizzle-kit migrate's database and added its indexes"
else fail "adoption of drizzle-kit migrate's database"; cat "$work/migrate.out" "$work/adopt.out" "$work/check.out"; fi
push_dry_run "$theirs" "$app_config"
if proposes_nothing && kit_migrate "$theirs" "$bare_config" "$work/bare-migrations" &&
  [ "$(schema "$theirs")" = "$before" ]; then
  pass "after adoption push proposes nothing and drizzle-kit migrate still has nothing to do"
else fail "push or migrate after adoption"; cat "$work/push.out" "$work/migrate.out"; fi

echo "== 4. jobprep migrate recovers from what other tools leave"
recover() { # URL WHAT EXPECTED-LINE
  if ! clean "$1" && "$jobprep" --database-url "$1" migrate >"$work/recover.out" &&
    grep -q "$3" "$work/recover.out" && clean "$1" && [ "$(schema "$1")" = "$before" ] &&
    [ "$(rows "$1")" = 1,1,1,1 ]; then
    pass "$2: migrate check saw it, migrate repaired it, rows kept"
  else fail "$2"; cat "$work/recover.out" "$work/check.out"; fi
}
forced=$(new_db forced)
"$jobprep" --database-url "$forced" migrate >/dev/null && seed "$forced"
push_force "$forced" "$bare_config"
[ -z "$(q "$forced" "SELECT to_regclass('__diesel_schema_migrations')")" ] || fail "push --force kept the bookkeeping"
recover "$forced" "push --force dropped bookkeeping and indexes" '^adopted'

push_force "$forced" "$unindexed_config"
[ -n "$(q "$forced" "SELECT to_regclass('__diesel_schema_migrations')")" ] || fail "the table filter did not keep the bookkeeping"
recover "$forced" "push with the table filter but without the index declarations dropped the indexes" '^repaired questions_jobInfoId_createdAt_idx'

emptied=$(new_db emptied)
psql "$emptied" -qX -v ON_ERROR_STOP=1 -f crates/repo/tests/fixtures/original_app_schema.sql >/dev/null
seed "$emptied"
if command -v diesel >/dev/null 2>&1; then
  # What a Rust user tries first; it fails on the app's tables and leaves an empty table.
  ! diesel migration run --migration-dir migrations/postgres --database-url "$emptied" >/dev/null 2>&1 ||
    fail "diesel migration run succeeded on the app's database"
else
  q "$emptied" "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
fi
[ "$(q "$emptied" "SELECT count(*) FROM __diesel_schema_migrations")" = 0 ] || fail "bookkeeping not empty"
recover "$emptied" "an empty bookkeeping table (a failed diesel migration run)" '^adopted'

q "$forced" "DROP TABLE __diesel_schema_migrations"
recover "$forced" "our indexes present without bookkeeping" '^adopted'

echo "== 5. revert never drops the app's tables"
n=0
while "$jobprep" --database-url "$created" migrate revert >/dev/null 2>"$work/revert.err"; do
  n=$((n + 1))
  [ $n -le 6 ] || break
done
if [ $n = 6 ] && grep -q 'refusing to revert the baseline' "$work/revert.err" &&
  [ "$(rows "$created")" = 1,1,1,1 ] &&
  ! "$jobprep" --database-url "$created" migrate drop-app-schema 2>"$work/drop.err" &&
  grep -q 'holds rows' "$work/drop.err" && grep -q '__drizzle_migrations" exists' "$work/drop.err" &&
  [ "$(rows "$created")" = 1,1,1,1 ] && kit_migrate "$created" "$app_config" "$work/app-migrations" &&
  "$jobprep" --database-url "$created" migrate >/dev/null && clean "$created" &&
  [ "$(schema "$created")" = "$before" ]; then
  pass "revert stopped at the baseline, drop-app-schema refused, the app's tables and rows stayed"
else fail "revert or drop-app-schema"; cat "$work/revert.err" "$work/drop.err" 2>/dev/null || true; fi

echo "drizzle-compat: $passed passed, $failed failed"
[ "$failed" = 0 ]
