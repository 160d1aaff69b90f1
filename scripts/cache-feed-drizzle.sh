#!/usr/bin/env bash
# The cache feed (its triggers, and its tables in their own schema) is invisible to the
# original app's tooling: on a migrated database, `drizzle-kit pull` (0.31, with
# drizzle-orm 0.44, the app's versions) gives the same schema before and after
# `jobprep cache-feed install`, and `drizzle-kit push` of that schema finds nothing to
# change. Uses the pinned drizzle-kit of compat/drizzle
# (`npm ci` from its lockfile); needs node, npm and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p jobprep-cli
jobprep=$PWD/target/debug/jobprep
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
db=jobprep_ci_feed_drizzle_$$
url="${admin%/*}/$db"
[ "$url" != "$admin" ] || { echo "cannot derive a scratch database URL from $admin"; exit 1; }
cleanup() {
  cd /
  psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$admin" -qAtc "CREATE DATABASE $db"
"$jobprep" --database-url "$url" migrate >/dev/null

npm ci --prefix "$PWD/compat/drizzle" --no-audit --no-fund --loglevel=error >/dev/null
ln -s "$PWD/compat/drizzle/node_modules" "$work/node_modules"
cd "$work"
cat > pull.config.js <<JS
module.exports = { dialect: "postgresql", out: process.env.OUT, dbCredentials: { url: "$url" } };
JS
cat > push.config.js <<JS
module.exports = { dialect: "postgresql", schema: "./with/schema.ts", dbCredentials: { url: "$url" } };
JS
OUT=./without ./node_modules/.bin/drizzle-kit pull --config pull.config.js >/dev/null
"$jobprep" --database-url "$url" cache-feed install
OUT=./with ./node_modules/.bin/drizzle-kit pull --config pull.config.js >/dev/null
diff -u without/schema.ts with/schema.ts
diff -u without/relations.ts with/relations.ts
echo "drizzle-kit pull: the same schema with the cache feed installed"
pushed=$(./node_modules/.bin/drizzle-kit push --config push.config.js </dev/null 2>&1)
if ! grep -q "No changes detected" <<<"$pushed"; then
  echo "drizzle-kit push wants to change the database:"
  echo "$pushed" | tail -n 20
  exit 1
fi
echo "drizzle-kit push: no changes detected with the cache feed installed"
