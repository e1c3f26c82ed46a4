# shellcheck shell=bash
# Shared helpers for the stack-backup test world scripts (setup.sh, reset.sh,
# teardown.sh, standin.sh). Sourced, never executed. Everything runs as root.

WORLD_DIR=${WORLD_DIR:-/var/tmp/stack-backup-world}
# A world remembers its user and ports in its env file; the environment wins.
# A fresh machine has no env file yet: then nothing is remembered (and set -e must not stop here).
_world_env_get() { [ -f "$WORLD_DIR/env" ] || return 0; sed -n "s/^$1=//p" "$WORLD_DIR/env" | head -n1 || true; }
WORLD_USER=${WORLD_USER:-$(_world_env_get WORLD_USER)}
WORLD_USER=${WORLD_USER:-sbworld}
FRONTPORT=${FRONTPORT:-$(_world_env_get FRONTPORT)}
FRONTPORT=${FRONTPORT:-18080}
BACKPORT=${BACKPORT:-$(_world_env_get BACKPORT)}
BACKPORT=${BACKPORT:-18081}
APIPORT=${APIPORT:-$(_world_env_get APIPORT)}
APIPORT=${APIPORT:-8200}
WORLD_IMAGE=localhost/sbworld-box
WORLD_LABEL=sbworld.world
STACKS="composeapp plainapp ondemand"
STACK_UNITS="composeapp-stack.service plainapp-stack.service ondemand-stack.service"
DUPLICATI_UNIT=sbworld-duplicati.service
DUPLICATI_API_UNIT=sbworld-duplicati-api.service
USERNS_UNIT=sbworld-userns.service
# Snapshot mode: two stacks whose live data sit on loop-mounted btrfs and XFS
# (setup.sh mounts them; not in STACKS / the default stack files).
BTRFS_DIR=$WORLD_DIR/btrfs
XFS_DIR=$WORLD_DIR/xfs
SNAP_STACKS="snapbtrfs snapxfs"
SNAP_UNITS="snapbtrfs-stack.service snapxfs-stack.service"
# Quadlet stacks (issue 29): units the real Quadlet generator (Podman 5.4.2's, from Debian 13's
# package; setup.sh installs it as a user generator) makes from files in
# ~/.config/containers/systemd/. Their containers carry no label of ours, only Quadlet's
# PODMAN_SYSTEMD_UNIT. quadpod: a .pod with two .container members (unit quadpod-pod.service);
# quadgroup: a .target grouping two .container units (PartOf= it). Not in STACKS: their stack
# files are examples (root/stacks keeps the three default stacks).
QUADLET_STACKS="quadpod quadgroup"
QUADLET_UNITS="quadpod-pod.service quadgroup.target"
QUADLET_GENERATOR=/usr/local/libexec/sbworld/quadlet
# stack_unit STACK: the unit that runs a stack.
stack_unit() {
	case "$1" in
	quadpod) echo quadpod-pod.service ;;
	quadgroup) echo quadgroup.target ;;
	*) echo "$1-stack.service" ;;
	esac
}

say() { printf '[world] %s\n' "$*"; }
die() { printf '[world] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root"; }

# Fill WORLD_UID, WORLD_GID, WORLD_HOME, XDG_RUNTIME_DIR, CG_DIR (user must exist).
world_ids() {
	WORLD_UID=$(id -u "$WORLD_USER") || die "user $WORLD_USER does not exist (run setup.sh)"
	WORLD_GID=$(id -g "$WORLD_USER")
	WORLD_HOME=$(getent passwd "$WORLD_USER" | cut -d: -f6)
	XDG_RUNTIME_DIR=/run/user/$WORLD_UID
	CG_DIR=/sys/fs/cgroup/unified/user.slice/user-$WORLD_UID.slice/user@$WORLD_UID.service
}

# snap_live STACK: the live data folder of a snapshot stack (its /data).
snap_live() {
	case "$1" in
	snapbtrfs) echo "$BTRFS_DIR/snapbtrfs" ;;
	snapxfs) echo "$XFS_DIR/snapxfs" ;;
	*) return 1 ;;
	esac
}

# subuid_of N: the host UID of container UID N (N >= 1) in the user's rootless
# containers (first /etc/subuid range; container UID 0 is the user itself).
subuid_of() {
	local start
	start=$(awk -F: -v u="$WORLD_USER" -v i="$WORLD_UID" '$1 == u || $1 == i { print $2; exit }' /etc/subuid)
	[ -n "$start" ] || die "no /etc/subuid range for $WORLD_USER"
	echo $((start + $1 - 1))
}
subgid_of() {
	local start
	start=$(awk -F: -v u="$WORLD_USER" -v i="$WORLD_UID" '$1 == u || $1 == i { print $2; exit }' /etc/subgid)
	[ -n "$start" ] || die "no /etc/subgid range for $WORLD_USER"
	echo $((start + $1 - 1))
}

# Run a command as the world user with a clean, fixed environment.
as_user() {
	(cd / && setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- \
		env -i HOME="$WORLD_HOME" USER="$WORLD_USER" LOGNAME="$WORLD_USER" SHELL=/bin/sh \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" "$@")
}
uctl() { as_user systemctl --user "$@"; }
upodman() { as_user podman "$@"; }

# True when the user's systemd manager answers.
manager_answers() {
	[ -S "$XDG_RUNTIME_DIR/systemd/private" ] || return 1
	local st
	st=$(timeout 5 setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- \
		env -i XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" PATH=/usr/bin:/bin \
		systemctl --user is-system-running 2>/dev/null) || true
	case "$st" in running | degraded) return 0 ;; *) return 1 ;; esac
}

# PID of the manager setup.sh started (empty if none / dead).
recorded_manager_pid() {
	local pid
	pid=$(cat "$WORLD_DIR/systemd.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] &&
		[ "$(stat -c %u "/proc/$pid")" = "$WORLD_UID" ] && echo "$pid"
	return 0
}

# True when PID exists and is not a zombie.
pid_alive() {
	local st
	st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Live (non-zombie) processes of the world user.
user_live_pids() {
	local p
	for p in $(pgrep -u "$WORLD_UID" 2>/dev/null); do
		pid_alive "$p" && echo "$p"
	done
	return 0
}

# Kill every process left in the cgroup tree setup.sh created for the manager.
kill_cgroup_leftovers() {
	[ -d "$CG_DIR" ] || return 0
	local left
	left=$(find "$CG_DIR" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
	if [ -n "$left" ]; then
		say "killing leftover processes in $CG_DIR:" $left
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null
		sleep 0.2
	fi
	find "$CG_DIR" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
	return 0
}

# Wait until CMD... succeeds, polling every 0.1 s, at most $1 seconds.
wait_for() {
	local secs=$1 i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge $((secs * 10)) ] && return 1
		sleep 0.1
	done
}

# True when the REST API stand-in answers /health.
api_answers() {
	[ "$(curl -s --max-time 2 "http://127.0.0.1:$APIPORT/health" 2>/dev/null)" = Healthy ]
}

# Number of running containers of a compose project (label).
project_running() {
	upodman ps -q --filter "label=io.podman.compose.project=$1" 2>/dev/null | wc -l
}
