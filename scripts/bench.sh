#!/usr/bin/env bash
# `npm run bench`: installs and builds, sets up the real world (root), runs bench/bench.mjs (the
# backup's downtime, snapshot mode, list), then bench/restore.mjs (restore, restore test), which
# appends to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-installed.sh
if [ "$(id -u)" != 0 ]; then
  echo "The benchmark runs in the real world of the test suite and needs root (sudo npm run bench)." >&2
  exit 2
fi
bash test/world/setup.sh
bash test/world/setup.sh default-stacks
node bench/bench.mjs
node bench/restore.mjs
