#!/usr/bin/env bash
# The whole test suite: set up, build, then ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# The openai npm client for the server's end-to-end test, from the committed lockfile; again only
# when node_modules is missing or older than the lockfile.
e2e=tests/server/e2e
if [ ! -f "$e2e/node_modules/.package-lock.json" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; then
  (cd "$e2e" && npm ci --no-audit --no-fund)
fi
jobs=$(nproc 2>/dev/null || echo 2)
ctest --test-dir build --output-on-failure -j"$jobs"
