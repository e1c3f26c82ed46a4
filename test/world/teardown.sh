#!/bin/bash
# Stops what setup.sh started: the stack units and their containers, the
# Duplicati stand-in and its REST API, podman.socket, and the user's systemd manager (only the
# one whose PID setup.sh recorded in $WORLD_DIR/systemd.pid, plus whatever is
# left in the cgroup setup.sh created for it); then unmounts (lazily) the btrfs
# and XFS loop filesystems. Leaves packages, the user, the image and $WORLD_DIR
# (data, records, root/, the filesystem images in fs/) in place. Run as root.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
if ! id -u "$WORLD_USER" >/dev/null 2>&1; then
	say "teardown: no user $WORLD_USER, nothing to do"
	exit 0
fi
world_ids
pid=$(recorded_manager_pid)

if manager_answers; then
	say "teardown: stopping units"
	uctl stop ondemand-proxy.socket ondemand-proxy.service $STACK_UNITS $SNAP_UNITS $QUADLET_UNITS $DUPLICATI_UNIT $DUPLICATI_API_UNIT 2>/dev/null
	# plainapp-slow lingers ~3 s after its unit stops; remove every world container
	ids=$(upodman ps -aq --filter "label=$WORLD_LABEL=1" 2>/dev/null)
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086
		upodman rm -f -t 0 $ids >/dev/null 2>&1
	fi
	uctl stop podman.socket podman.service 2>/dev/null
else
	say "teardown: systemd --user manager not answering"
fi

if [ -f "$WORLD_DIR/systemd.pid" ]; then
	if [ -n "$pid" ]; then
		say "teardown: stopping systemd --user (pid $pid)"
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 150); do
			pid_alive "$pid" || break
			sleep 0.1
		done
		if pid_alive "$pid"; then
			say "teardown: manager still running, SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# leftovers inside the cgroup setup.sh created for the manager
	kill_cgroup_leftovers
	rmdir "$CG_DIR" 2>/dev/null
	rm -f "$WORLD_DIR/systemd.pid"
elif manager_answers; then
	say "teardown: the running manager was not started by setup.sh; left running"
fi
for m in "$BTRFS_DIR" "$XFS_DIR"; do
	if mountpoint -q "$m"; then
		umount -l "$m" && say "teardown: unmounted $m"
	fi
done
say "teardown: done"
