#!/bin/bash
# Leaves a container in Podman's "removing" state with no process, as a real host can have it
# (see the ondemand unit in setup.sh): a remover that dies between saving "removing" and
# deleting the container's row leaves it listed so.
#   stuck-container.sh NAME PROJECT
# The container carries io.podman.compose.project=PROJECT (it counts as one of that stack's) and
# sbworld.stuck=1 (reset.sh removes it).
#
# Deterministic, not a race: Podman 4.3's removeContainer (libpod/runtime_ctr.go, v4.3.1) saves
# ContainerStateRemoving, then tears down storage, whose first act is os.RemoveAll of the
# container's "artifacts" folder (teardownStorage, libpod/container_internal.go), and only then
# deletes the row. strace kills the remover at its first system call on that folder, which is
# therefore always after the save and before the row is gone, however fast or loaded the disk.
# (An earlier version raced a kill against the storage teardown, watching files vanish; on a
# loaded machine the removal won about one run in two and the test failed: issue 31.)
# Run as root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids
name=${1:?name}
project=${2:?project}
command -v strace >/dev/null || die "stuck-container: strace is missing (setup.sh installs it)"

upodman rm -f --ignore "$name" >/dev/null
upodman run -d --name "$name" --label "io.podman.compose.project=$project" --label sbworld.stuck=1 --network=none \
	"$WORLD_IMAGE" /bin/sh -c 'exec sleep 100000' >/dev/null
# Stopped first, so the removal below has no process to stop and its storage is unmounted: the
# next system call on the artifacts folder is teardownStorage's.
upodman stop -t 1 "$name" >/dev/null
static_dir=$(upodman inspect --format '{{.StaticDir}}' "$name")
[ -n "$static_dir" ] || die "stuck-container: Podman gave no StaticDir for $name"
artifacts=$static_dir/artifacts

# Local mode (no CONTAINER_HOST): the removal runs in this process tree, which strace follows
# (-f: Podman re-executes itself into the user's namespace). -P keeps the injection to system
# calls on the artifacts folder; signal=KILL ends the remover there. strace then exits as its
# tracee did (137), which is the expected outcome, not a failure.
trace_log=$(mktemp /tmp/sbworld-stuck.XXXXXX)
set +e
strace -f -qq -o "$trace_log" -P "$artifacts" -e inject=all:signal=KILL \
	setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- env -i HOME="$WORLD_HOME" \
	PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" podman rm -f "$name" >/dev/null 2>&1
code=$?
set -e
state=$(upodman ps -a --filter "name=^$name\$" --format '{{.State}}')
case "$state" in
removing | Removing)
	rm -f "$trace_log"
	say "stuck-container: $name is removing"
	;;
*)
	# Say everything that explains it: the remover's exit and the system calls strace saw.
	printf '[world] stuck-container: strace on %s:\n' "$artifacts" >&2
	grep -v -e '--- SIG' "$trace_log" | tail -n 20 >&2 || true
	rm -f "$trace_log"
	die "stuck-container: $name is \"${state:-gone}\" after the remover was killed at its first call on its artifacts folder (exit $code), not \"removing\""
	;;
esac
