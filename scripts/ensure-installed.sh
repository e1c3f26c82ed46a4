#!/usr/bin/env bash
# Installs the npm dependencies when they are missing or older than the lockfile, then builds.
# Sourced by the other scripts so that one command does all the set-up on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm dependencies (the versions pinned in package-lock.json)"
  # `npm ci`: exactly the lockfile, which holds every platform's optional packages (rollup's,
  # esbuild's), so a clean machine of any platform gets the same tree. Install scripts follow
  # package.json's allowScripts (none is needed; see README "Install").
  npm ci --no-audit --no-fund
fi
echo "== building (tsc)"
npx tsc -p tsconfig.json
chmod +x dist/cli.js
