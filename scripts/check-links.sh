#!/usr/bin/env bash
# Every relative Markdown link in the tracked *.md files must resolve: the file (or
# folder) exists, and a `#anchor` matches a heading of the target by GitHub's rules.
# The rules and what is skipped are in scripts/check-links.py. No network.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/check-links.py
