#!/usr/bin/env bash
# Applies every migration, reverts them down to the baseline (where revert stops: it is
# the original app's schema), drops the baseline with `migrate drop-app-schema`, and
# applies everything again through the CLI, on a throwaway SQLite file and a throwaway
# PostgreSQL database, comparing schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p jobprep-cli
jobprep=target/debug/jobprep
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
db=jobprep_ci_migrations_$$
cleanup() {
  rm -rf "$work"
  psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$admin" -qAtc "CREATE DATABASE $db"

check() { # URL NAME DUMP-COMMAND...
  local url=$1 name=$2; shift 2
  "$jobprep" --database-url "$url" migrate
  "$@" > "$work/$name.first"
  while "$jobprep" --database-url "$url" migrate revert 2>"$work/revert.err" | grep -q '^reverted'; do :; done
  grep -q 'refusing to revert the baseline' "$work/revert.err" || { echo "$name: revert did not stop at the baseline"; cat "$work/revert.err"; exit 1; }
  [ "$("$jobprep" --database-url "$url" migrate status | grep -c '^applied')" = 1 ] || { echo "$name: more than the baseline left applied"; exit 1; }
  if [[ $url == postgres* ]]; then
    # drizzle's journal makes drop-app-schema refuse; dropping it stands for "the app is gone".
    "$jobprep" --database-url "$url" migrate drop-app-schema 2>/dev/null && { echo "$name: dropped despite drizzle's journal"; exit 1; }
    psql "$url" -qAtc "DROP SCHEMA drizzle CASCADE" >/dev/null 2>&1
  fi
  "$jobprep" --database-url "$url" migrate drop-app-schema > "$work/drop.out"
  grep -q '^reverted 2026-11-25-000001_existing_app_schema' "$work/drop.out"
  "$jobprep" --database-url "$url" migrate status > "$work/status.out"
  grep -q '^applied' "$work/status.out" && { echo "$name: migrations left applied"; exit 1; }
  "$jobprep" --database-url "$url" migrate >/dev/null
  "$jobprep" --database-url "$url" migrate check >/dev/null
  "$@" > "$work/$name.second"
  diff -u "$work/$name.first" "$work/$name.second"
  echo "$name: up, down to the baseline, drop-app-schema, up gives the same schema"
}

# pg_dump (15.14+) brackets its output with a random \restrict key; drop those lines.
pg_schema() { pg_dump --schema-only --no-owner --exclude-table=__diesel_schema_migrations "$1" | grep -v '^\\\(un\)\?restrict '; }

pg_url="${admin%/*}/$db"
check "$pg_url" postgres-catalog "$jobprep" --database-url "$pg_url" migrate schema
check "$pg_url" postgres-pg_dump pg_schema "$pg_url"
sqlite_url="sqlite://$work/ci.sqlite3"
check "$sqlite_url" sqlite "$jobprep" --database-url "$sqlite_url" migrate schema

# The diesel CLI on our folders, when it is installed (CI does not install it: building
# it takes minutes). `redo --all` reverts the baseline through its down.sql, which
# refuses tables holding rows.
if command -v diesel >/dev/null 2>&1; then
  diesel_check() { # URL FOLDER NAME
    local url=$1 dir=$2 name=$3
    diesel migration run --migration-dir "$dir" --database-url "$url" >/dev/null
    diesel migration redo --all --migration-dir "$dir" --database-url "$url" >/dev/null
    local all
    all=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$(diesel migration list --migration-dir "$dir" --database-url "$url" | grep -c '\[X\]')" = "$all" ]
    [ "$("$jobprep" --database-url "$url" migrate status | grep -c '^applied')" = "$all" ]
    "$jobprep" --database-url "$url" migrate check >/dev/null
    echo "$name: diesel migration run, redo --all and list agree with jobprep migrate status and check"
  }
  psql "$admin" -qAtc "DROP DATABASE $db WITH (FORCE)" -c "CREATE DATABASE $db"
  diesel_check "$pg_url" migrations/postgres postgres-diesel-cli
  diesel_check "$work/diesel.sqlite3" migrations/sqlite sqlite-diesel-cli
else
  echo "diesel CLI not installed: skipping its round trip"
fi
