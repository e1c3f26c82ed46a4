#!/bin/bash
# Leaves a container in Podman's "removing" state with no process, as a real host can have it
# (see the ondemand unit in setup.sh): Podman 4.3 saves "removing" before it tears down the
# container's storage and deletes its row, so a remover killed in between leaves it listed.
#   stuck-container.sh NAME PROJECT
# The container carries io.podman.compose.project=PROJECT (it counts as one of that stack's) and
# sbworld.stuck=1 (reset.sh removes it). Deterministic: the remover is killed once its storage
# teardown is seen under way (files vanishing), not after a guessed delay. Run as root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids
name=${1:?name}
project=${2:?project}
files=20000

upodman rm -f --ignore "$name" >/dev/null
# Many files in the container's own layer make the teardown last long enough to be seen.
upodman run -d --name "$name" --label "io.podman.compose.project=$project" --label sbworld.stuck=1 --network=none \
	"$WORLD_IMAGE" /bin/sh -c "mkdir /junk; i=0; while [ \$i -lt $files ]; do : > /junk/f\$i; i=\$((i+1)); done; echo filled; exec sleep 100000" >/dev/null
filled() { upodman logs "$name" 2>/dev/null | grep -q filled; }
wait_for 120 filled || die "stuck-container: $name did not fill its layer"
upodman stop -t 1 "$name" >/dev/null
layer=$(ls -d "$WORLD_HOME"/.local/share/containers/storage/*/dir/*/junk 2>/dev/null | while read -r d; do
	[ "$(ls "$d" | wc -l)" -eq "$files" ] && echo "$d"; done | head -n1)
[ -n "$layer" ] || die "stuck-container: cannot find $name's layer"
# Local mode (no CONTAINER_HOST): the removal runs in this process tree, which can be killed.
setsid setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- env -i HOME="$WORLD_HOME" \
	PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" podman rm -f "$name" >/dev/null 2>&1 &
remover=$!
for _ in $(seq 1 600); do
	[ "$(ls "$layer" 2>/dev/null | wc -l)" -lt "$files" ] && break
	sleep 0.02
done
kill -KILL -- "-$remover" 2>/dev/null || kill -KILL "$remover"
wait "$remover" 2>/dev/null || true
state=$(upodman ps -a --filter "name=^$name\$" --format '{{.State}}')
[ "$state" = removing ] || [ "$state" = Removing ] || die "stuck-container: $name is \"$state\", not removing"
say "stuck-container: $name is removing"
