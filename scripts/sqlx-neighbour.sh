#!/usr/bin/env bash
# jobprep beside sqlx 0.8: builds compat/sqlx, a crate outside the workspace that depends
# on jobprep and on sqlx 0.8 (runtime-tokio, postgres, sqlite), and runs its test, which
# uses both on one SQLite file. Only one crate may link `sqlite3`, so this fails when
# jobprep's libsqlite3-sys range stops admitting the version sqlx 0.8 needs. Cargo adds
# to compat/sqlx/Cargo.lock what jobprep's own dependencies gained, keeping the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=$PWD/target/compat-sqlx
cargo fmt --manifest-path compat/sqlx/Cargo.toml -- --check
cargo test -q --manifest-path compat/sqlx/Cargo.toml
echo "jobprep and sqlx $(grep -A1 '^name = "sqlx"$' compat/sqlx/Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p') build together," \
  "on libsqlite3-sys $(grep -A1 '^name = "libsqlite3-sys"$' compat/sqlx/Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
