#!/bin/sh
# End-to-end tests: the official npm `openai` SDKs against a real `tunery serve`
# started by each test on a free loopback port. Installs the pinned SDKs on first
# run (package.json pins exact versions; package-lock.json is committed).
set -e
cd "$(dirname "$0")"
if [ ! -f package.json ]; then
  echo "e2e: no SDK tests yet"
  echo "e2e: 0 passed, 0 failed"
  exit 0
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test --test-concurrency=1 *.test.mjs
