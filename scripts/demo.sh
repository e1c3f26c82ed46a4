#!/usr/bin/env bash
# The main job (`npm run demo`). Installs what it needs and builds; then
#  - with a real host configured (STACK_BACKUP_ROOT pointing at a root with stacks/), runs
#    `stack-backup all` there;
#  - otherwise sets up the demo world (needs root: an unprivileged user with a real
#    systemd --user, rootless Podman, five stacks (two of them in snapshot mode, on a
#    loop-mounted btrfs and XFS) and a Duplicati stand-in) and runs
#    `stack-backup all` in it, as that user, with live progress and the summary table; each
#    stack's run ends with a restore test of 20 files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-installed.sh

if [ -n "${STACK_BACKUP_ROOT:-}" ] && [ -d "$STACK_BACKUP_ROOT/stacks" ]; then
  echo "== stack-backup all in $STACK_BACKUP_ROOT"
  exec node dist/cli.js --root "$STACK_BACKUP_ROOT" all
fi

if [ "$(id -u)" != 0 ]; then
  echo "No real host is configured (set STACK_BACKUP_ROOT to a folder with stacks/*.yaml)," >&2
  echo "and the demo world needs root to create its user and start systemd --user: sudo npm run demo" >&2
  exit 2
fi

echo "== setting up the demo world (test/world/setup.sh)"
bash test/world/setup.sh
bash test/world/setup.sh default-stacks
bash test/world/reset.sh --quiet
# shellcheck disable=SC1091
. /var/tmp/stack-backup-world/env
for stack in $WORLD_STACKS; do
  [ -f "$WORLD_ROOT/stacks/$stack.yaml" ] || { echo "missing $WORLD_ROOT/stacks/$stack.yaml" >&2; exit 1; }
done
# Snapshot mode beside stop mode: these two are down only while their data is snapshotted.
for stack in snapbtrfs snapxfs; do
  install -o "$WORLD_UID" -g "$WORLD_GID" -m 644 "$WORLD_DIR/examples/$stack.yaml" "$WORLD_ROOT/stacks/$stack.yaml"
done

# Every stack's run ends with a restore test: 20 files of its frozen source restored from the
# version just made and compared exactly (contents, owner, mode).
printf 'restore_test:\n  sample: 20\n' > "$WORLD_ROOT/stack-backup.yaml"
chown "$WORLD_UID:$WORLD_GID" "$WORLD_ROOT/stack-backup.yaml"
chmod 644 "$WORLD_ROOT/stack-backup.yaml"

echo
echo "== stack-backup list   (as $WORLD_USER, root $WORLD_ROOT)"
"$WORLD_AS_USER" node "$WORLD_CLI" --root "$WORLD_ROOT" list
echo
echo "== stack-backup all"
set +e
"$WORLD_AS_USER" node "$WORLD_CLI" --root "$WORLD_ROOT" all
code=$?
set -e
echo
echo "stack-backup exited $code."
echo "What the Duplicati stand-in saw (CLEAN: the data its job read did not change while it ran;"
echo "for the snapshot stacks that is the snapshot, read while the stack was running again):"
awk '/^[0-9]/ { printf "  task %s  %-11s %s\n", $1, $3, $6 }' "$STANDIN_RECORDS"
echo "Units now:"
for unit in composeapp-stack.service plainapp-stack.service ondemand-stack.service ondemand-proxy.socket snapbtrfs-stack.service snapxfs-stack.service; do
  printf '  %-26s %s\n' "$unit" "$("$WORLD_AS_USER" systemctl --user is-active "$unit" || true)"
done
echo "Logs: $WORLD_ROOT/logs/ (backup-<stack>-$(date +%F).log, JSON lines)"
exit "$code"
