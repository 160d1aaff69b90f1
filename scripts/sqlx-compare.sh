#!/usr/bin/env bash
# jobprep's async facade against sqlx 0.8 (compat/sqlx): a scratch PostgreSQL database
# migrated by the jobprep CLI, seeded with scripts/pgbench/seed.sql and VACUUM ANALYZEd,
# then each operation at 1, 4 and 16 concurrent tasks on a multi-threaded tokio runtime.
# TLS is off on both sides (sslmode=disable).
#
#   bash scripts/sqlx-compare.sh            # 3 s per side, median of 3 rounds, release build
#   bash scripts/sqlx-compare.sh --short    # 0.3 s per side, one round, debug build (CI)
# Further arguments go to the bench (`--ops a,b`, `--tasks 1,4`).
set -euo pipefail
cd "$(dirname "$0")/.."

args=(--seconds "${SQLX_COMPARE_SECONDS:-3}" --rounds "${SQLX_COMPARE_ROUNDS:-3}") profile=(--release) dir=release
if [ "${1:-}" = --short ]; then
  args=(--seconds 0.3 --rounds 1) profile=() dir=debug
  shift
fi
cargo build -q -p jobprep-cli
CARGO_TARGET_DIR=$PWD/target/compat-sqlx cargo build -q "${profile[@]}" --manifest-path compat/sqlx/Cargo.toml

admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=jobprep_sqlx_$$
# SYNCHRONOUS_COMMIT=off: commits do not wait for the WAL flush, on both sides alike.
url="${admin%/*}/$db?sslmode=disable&options=-c%20synchronous_commit%3D${SYNCHRONOUS_COMMIT:-on}"
export PGSSLMODE=disable
trap 'psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
psql "$admin" -qAtc "CREATE DATABASE $db"
target/debug/jobprep --database-url "$url" migrate >/dev/null
psql "$url" -qX -v ON_ERROR_STOP=1 -f scripts/pgbench/seed.sql
psql "$url" -qAtc "VACUUM ANALYZE"
echo "synchronous_commit: $(psql "$url" -qAtXc 'SHOW synchronous_commit'), TLS: $(psql "$url" -qAtXc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')"
"target/compat-sqlx/$dir/jobprep-sqlx-compat" "$url" "${args[@]}" "$@"
