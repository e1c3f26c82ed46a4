#!/bin/bash
# Leaves a container in Podman's "removing" state with no process, as a real host can have it
# (see the ondemand unit in setup.sh): Podman 4.3 saves "removing" before it tears down the
# container's storage and deletes its row, so a remover killed in between leaves it listed.
#   stuck-container.sh NAME PROJECT
# The container carries io.podman.compose.project=PROJECT (it counts as one of that stack's) and
# sbworld.stuck=1 (reset.sh removes it). The remover is killed once its storage teardown is seen
# under way (files vanishing), not after a guessed delay; a removal that outran the look is tried
# again with more files. Run as root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids
name=${1:?name}
project=${2:?project}

# leave_removing FILES: one attempt; exit 0 when the container is left "removing", 1 when the
# removal finished before it could be killed (it deleted FILES files faster than they were
# seen going), anything else dies.
leave_removing() {
	local files=$1 layer remover state
	upodman rm -f --ignore "$name" >/dev/null
	# Many files in the container's own layer make the teardown last long enough to be seen.
	upodman run -d --name "$name" --label "io.podman.compose.project=$project" --label sbworld.stuck=1 --network=none \
		"$WORLD_IMAGE" /bin/sh -c "mkdir /junk; i=0; while [ \$i -lt $files ]; do : > /junk/f\$i; i=\$((i+1)); done; echo filled; exec sleep 100000" >/dev/null
	filled() { upodman logs "$name" 2>/dev/null | grep -q filled; }
	wait_for 300 filled || die "stuck-container: $name did not fill its layer"
	upodman stop -t 1 "$name" >/dev/null
	layer=$(ls -d "$WORLD_HOME"/.local/share/containers/storage/*/dir/*/junk 2>/dev/null | while read -r d; do
		[ "$(ls "$d" | wc -l)" -eq "$files" ] && echo "$d"; done | head -n1)
	[ -n "$layer" ] || die "stuck-container: cannot find $name's layer"
	# Local mode (no CONTAINER_HOST): the removal runs in this process tree, which can be killed.
	setsid setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- env -i HOME="$WORLD_HOME" \
		PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" podman rm -f "$name" >/dev/null 2>&1 &
	remover=$!
	# The first file gone says the teardown is under way (f0 is listed first and goes early;
	# a test of one name is quicker than counting them all, so the kill comes sooner).
	for _ in $(seq 1 3000); do
		[ -e "$layer/f0" ] && [ -e "$layer/f1" ] && [ -e "$layer/f$((files - 1))" ] || break
		[ "$(ls "$layer" 2>/dev/null | wc -l)" -lt "$files" ] && break
		sleep 0.02
	done
	# Already gone (it outran the look): say so, the caller tries again with more files.
	kill -KILL -- "-$remover" 2>/dev/null || kill -KILL "$remover" 2>/dev/null || true
	wait "$remover" 2>/dev/null || true
	state=$(upodman ps -a --filter "name=^$name\$" --format '{{.State}}')
	case "$state" in
	removing | Removing) return 0 ;;
	'') return 1 ;;
	*) die "stuck-container: $name is \"$state\", not removing" ;;
	esac
}

# A removal that finished before the kill leaves no container: try again with three times the
# files (a slower teardown), so the outcome does not hang on how fast this machine deletes.
for files in 20000 60000 180000; do
	if leave_removing "$files"; then
		say "stuck-container: $name is removing"
		exit 0
	fi
	say "stuck-container: the removal of $name ended before it was killed ($files files); again with more"
done
die "stuck-container: the removal of $name always ended before it could be killed"
