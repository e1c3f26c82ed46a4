#!/usr/bin/env bash
# The test command (`npm test`): installs what it needs, builds, runs the unit tests (with them
# the alert rules through promtool and the metrics file through node_exporter), then sets up
# the real world (rootless Podman, systemd --user, the Duplicati stand-in; needs root) and runs
# the end-to-end tests against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-installed.sh
# promtool and node_exporter for the monitoring tests (test/unit/prometheus.test.ts).
bash scripts/ensure-prometheus-tools.sh
echo "== type check of the tests"
npx tsc -p tsconfig.test.json
echo "== unit tests"
npx vitest run --project unit
if [ "$(id -u)" != 0 ]; then
  echo "The end-to-end tests set up a rootless Podman world and need root (sudo npm test)." >&2
  exit 1
fi
echo "== setting up the real world (test/world/setup.sh)"
bash test/world/setup.sh
echo "== end-to-end tests"
npx vitest run --project e2e --no-file-parallelism
