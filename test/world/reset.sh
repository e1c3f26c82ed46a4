#!/bin/bash
# Brings the running world back to its baseline state (seconds; run as root):
#   stand-in reset (standin.sh reset), the three stack units active with all
#   their containers running, ondemand-proxy.socket listening,
#   ondemand-proxy.service inactive, the duplicati container running, the REST
#   API stand-in (sbworld-duplicati-api.service) answering; the snapshot stacks
#   (snapbtrfs, snapxfs): no snapshot targets or markers left in
#   btrfs/snapshots, btrfs/hidden and xfs/snapshots, live data without bulk/
#   and with db/ (0700) and db/state (0600) owned by container user 1000,
#   units active and heartbeats advancing; the stacks' fixed data for restore
#   tests (db/ 0700 and db/state 0600 of container user 1000, bin/run.sh 0755,
#   a relative symlink current -> db/state); no stored backup versions and no
#   restore staging folders (data/*.* beside the stacks' data, and such
#   folders beside the snapshot stacks' live data), nothing else in the data
#   folders; a stack, or the duplicati container, that still sees a data folder
#   swapped away by rename is restarted.
# Does not touch $WORLD_DIR/root (stack files, hooks, logs, locks).
#   reset.sh [--quiet]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids
quiet=0
[ "${1:-}" = --quiet ] && quiet=1

manager_answers || die "the systemd --user manager of $WORLD_USER does not answer; run setup.sh"

"$HERE/standin.sh" reset >/dev/null
rm -f "$WORLD_DIR/ondemand-activation-delay"
# Containers a test left stuck (stuck-container.sh) carry this label.
for c in $(upodman ps -a -q --filter label=sbworld.stuck=1 2>/dev/null); do upodman rm -f --ignore "$c" >/dev/null 2>&1 || true; done
uctl reset-failed 2>/dev/null || true

# Snapshot stacks: the filesystems must be there (setup.sh mounts them).
# (Few processes here: reset.sh should stay around a second.)
mounted=$(awk -v b="$BTRFS_DIR" -v x="$XFS_DIR" '$5 == b || $5 == x { n++ } END { print n + 0 }' /proc/self/mountinfo)
[ "$mounted" -ge 2 ] || die "reset: $BTRFS_DIR and $XFS_DIR must be mounted; run setup.sh"
# Leftover snapshot targets and markers: btrfs snapshots are deleted as the
# user (read-only ones made writable first; user_subvol_rm_allowed), anything
# else (plain folders with subordinate-UID files, *.stack-backup* markers) by root.
# is_subvol PATH: the root directory of a btrfs subvolume has inode 256
is_subvol() { [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %i "$1")" = 256 ]; }
del_subvol() {
	as_user btrfs property set -ts "$1" ro false 2>/dev/null || true
	as_user btrfs -q subvolume delete "$1" >/dev/null 2>&1 || btrfs -q subvolume delete "$1" >/dev/null 2>&1 || true
}
for dir in "$BTRFS_DIR/snapshots" "$BTRFS_DIR/hidden" "$XFS_DIR/snapshots"; do
	for t in "$dir"/* "$dir"/.[!.]*; do
		[ -e "$t" ] || [ -L "$t" ] || continue
		if is_subvol "$t"; then
			del_subvol "$t"
		elif [ -d "$t" ] && [ ! -L "$t" ] && [ "$dir" != "$XFS_DIR/snapshots" ]; then
			# a folder holding subvolumes: those first, deepest first
			find "$t" -mindepth 1 -depth -type d -inum 256 2>/dev/null | while read -r v; do del_subvol "$v"; done
		fi
		[ -e "$t" ] || [ -L "$t" ] || continue
		rm -rf "$t"
	done
	[ -d "$dir" ] || install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$dir"
done
# Anything beside the stacks' data that a test left (restore staging folders,
# data swapped aside): data/ holds the stack folders only, btrfs/ and xfs/
# their live folders and the snapshot parents.
extra_entries() {
	local dir=$1 keep=" $2 " t
	for t in "$dir"/* "$dir"/.[!.]*; do
		[ -e "$t" ] || [ -L "$t" ] || continue
		case "$keep" in *" ${t##*/} "*) continue ;; esac
		echo "$t"
	done
}
for t in $(extra_entries "$WORLD_DIR/data" "$STACKS $QUADLET_STACKS") $(extra_entries "$BTRFS_DIR" "snapbtrfs snapshots hidden") $(extra_entries "$XFS_DIR" "snapxfs snapshots"); do
	if is_subvol "$t"; then del_subvol "$t"; elif [ -d "$t" ] && [ ! -L "$t" ] && [ "${t#"$BTRFS_DIR"/}" != "$t" ]; then
		find "$t" -mindepth 1 -depth -type d -inum 256 2>/dev/null | while read -r v; do del_subvol "$v"; done
	fi
	rm -rf "$t"
done
# Live data: the subvolume (re-made by the user if a test removed it), no bulk/,
# db/ 0700 and db/state 0600 owned by container user 1000.
# (A stack whose live folder was made anew is restarted below: its container
# still has the old one as /data.)
remade=""
if [ ! -e "$BTRFS_DIR/snapbtrfs" ]; then
	as_user btrfs -q subvolume create "$BTRFS_DIR/snapbtrfs" >/dev/null
	remade="$remade snapbtrfs-stack.service"
fi
if [ ! -d "$XFS_DIR/snapxfs" ]; then
	install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$XFS_DIR/snapxfs"
	remade="$remade snapxfs-stack.service"
fi
db_uid=$(subuid_of 1000)
db_gid=$(subgid_of 1000)
for s in $SNAP_STACKS; do
	live=$(snap_live "$s")
	[ -e "$live/bulk" ] && rm -rf "$live/bulk"
	if [ "$(stat --printf '%u:%g:%a ' "$live/db" "$live/db/state" 2>/dev/null)" != "$db_uid:$db_gid:700 $db_uid:$db_gid:600 " ]; then
		install -d -m 700 -o "$db_uid" -g "$db_gid" "$live/db"
		[ -f "$live/db/state" ] || install -m 600 -o "$db_uid" -g "$db_gid" /dev/null "$live/db/state"
		chown "$db_uid:$db_gid" "$live/db/state"
		chmod 600 "$live/db/state"
	fi
done
# What a rootless stack's data holds, for the restore tests: the stop-mode
# stacks get db/ (0700) and db/state (0600) owned by container user 1000 (a
# subordinate UID), bin/run.sh (0755) and a relative symlink current ->
# db/state, owned by the user; the snapshot stacks the symlink (their db/ is
# above). Made anew when anything differs.
# Anything else in a stack's data (a test's files, a restore's extras) goes:
# the data holds the heartbeats and the fixed restore-test data only.
strays() {
	local t
	for t in "$1"/* "$1"/.[!.]*; do
		[ -e "$t" ] || [ -L "$t" ] || continue
		case "${t##*/}" in heartbeat | heartbeat.* | db | current | $2) continue ;; esac
		echo "$t"
	done
}
for t in $(for s in $STACKS $QUADLET_STACKS; do strays "$WORLD_DIR/data/$s" bin; done) $(for s in $SNAP_STACKS; do strays "$(snap_live "$s")" bulk; done); do
	rm -rf "$t"
done
for s in $STACKS $QUADLET_STACKS; do
	d=$WORLD_DIR/data/$s
	[ -d "$d" ] || install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$d"
	want="$db_uid:$db_gid:700 $db_uid:$db_gid:600 $WORLD_UID:$WORLD_GID:755 $WORLD_UID:$WORLD_GID:755 db/state"
	have="$(stat --printf '%u:%g:%a ' "$d/db" "$d/db/state" "$d/bin" "$d/bin/run.sh" 2>/dev/null || true)$(readlink "$d/current" 2>/dev/null || true)"
	if [ "$have" != "$want" ] || [ "$(cat "$d/db/state" 2>/dev/null)" != "state of $s" ] || [ "$(stat -c %U "$d/current" 2>/dev/null)" != "$WORLD_USER" ]; then
		rm -rf "${d:?}/db" "$d/bin" "$d/current"
		install -d -m 700 -o "$db_uid" -g "$db_gid" "$d/db"
		printf 'state of %s\n' "$s" | install -m 600 -o "$db_uid" -g "$db_gid" /dev/stdin "$d/db/state"
		install -d -m 755 -o "$WORLD_UID" -g "$WORLD_GID" "$d/bin"
		printf '#!/bin/sh\necho %s\n' "$s" | install -m 755 -o "$WORLD_UID" -g "$WORLD_GID" /dev/stdin "$d/bin/run.sh"
		ln -s db/state "$d/current"
		chown -h "$WORLD_UID:$WORLD_GID" "$d/current"
	fi
done
for s in $SNAP_STACKS; do
	live=$(snap_live "$s")
	if [ "$(readlink "$live/current" 2>/dev/null)" != db/state ] || [ "$(stat -c %U "$live/current" 2>/dev/null)" != "$WORLD_USER" ]; then
		rm -rf "${live:?}/current"
		ln -s db/state "$live/current"
		chown -h "$WORLD_UID:$WORLD_GID" "$live/current"
	fi
done
uctl start $USERNS_UNIT podman.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT $STACK_UNITS $SNAP_UNITS $QUADLET_UNITS ondemand-proxy.socket
if [ -n "$remade" ]; then
	say "reset: live data made anew, restarting$remade and $DUPLICATI_UNIT (they mount it)"
	# shellcheck disable=SC2086
	uctl restart $remade $DUPLICATI_UNIT
fi

# Every stack must have all its containers running (a test may have killed or
# stopped some behind systemd's back).
expected() { case "$1" in composeapp | plainapp | quadpod | quadgroup) echo 2 ;; *) echo 1 ;; esac; }
# One "podman ps" for all (each call costs a few hundred ms on a busy machine);
# what looks wrong is listed once more before anything is restarted.
# A Quadlet stack's containers are named systemd-<unit> (Quadlet's --name systemd-%N) and carry
# no project label: they count by name (a pod's infra container, quadpod-infra, does not).
list_running() { upodman ps --format '{{.Names}} {{index .Labels "io.podman.compose.project"}}' 2>/dev/null || true; }
count() { printf '%s\n' "$running" | awk -v p="$1" '$2 == p || index($1, "systemd-" p "-") == 1 { n++ } END { print n + 0 }'; }
all_there() {
	local s
	for s in $STACKS $SNAP_STACKS $QUADLET_STACKS; do [ "$(count "$s")" = "$(expected "$s")" ] || return 1; done
	printf '%s\n' "$running" | grep -q '^duplicati '
}
running=$(list_running)
if ! all_there; then
	sleep 0.2
	running=$(list_running)
fi
for s in $STACKS $SNAP_STACKS $QUADLET_STACKS; do
	n=$(count "$s")
	if [ "$n" != "$(expected "$s")" ]; then
		say "reset: $s has $n of $(expected "$s") containers, restarting $(stack_unit "$s")"
		# A pod's member units read "failed" after their containers were removed: restarting
		# the pod's unit starts them again (its Wants=).
		uctl restart "$(stack_unit "$s")"
	fi
done
if ! printf '%s\n' "$running" | grep -q '^duplicati '; then
	say "reset: duplicati container not running, restarting $DUPLICATI_UNIT"
	uctl restart $DUPLICATI_UNIT
fi
if ! api_answers; then
	say "reset: REST API stand-in not answering, restarting $DUPLICATI_API_UNIT"
	uctl restart $DUPLICATI_API_UNIT
fi
# restarting a stack may have pulled the proxy in again
uctl stop ondemand-proxy.service 2>/dev/null

# Wait until every stack's heartbeat is fresh and the stand-in answers.
# A stack whose data folder was swapped (a restore renames a staging folder
# into place) writes into the old one until it restarts: restart it then.
fresh() { [ $(($(date +%s) - $(stat -c %Y "$1/heartbeat" 2>/dev/null || echo 0))) -le 1 ]; }
beating() {
	wait_for 3 fresh "$2" && return 0
	say "reset: $1 heartbeat is not advancing in $2, restarting $(stack_unit "$1")"
	uctl restart "$(stack_unit "$1")"
	[ "$1" = ondemand ] && uctl stop ondemand-proxy.service 2>/dev/null
	wait_for 15 fresh "$2"
}
for s in $STACKS; do
	beating "$s" "$WORLD_DIR/data/$s" || die "reset: $s heartbeat is not advancing"
done
for s in $SNAP_STACKS; do
	beating "$s" "$(snap_live "$s")" || die "reset: $s heartbeat is not advancing"
done
for s in $QUADLET_STACKS; do
	beating "$s" "$WORLD_DIR/data/$s" || die "reset: $s heartbeat is not advancing"
done
# One exec: the container answers, and its volumes of the snapshot stacks' live
# folders (volumes of the folders themselves) still show the live folders. A
# restore swaps a live folder by rename: the container then keeps showing the
# old one (or a deleted one) until it restarts.
seen=""
duplicati_sees() { seen=$(upodman exec duplicati sh -c 'stat -c %d:%i /live/snapbtrfs /live/snapxfs 2>/dev/null; true' | tr '\n' ' '); }
wait_for 20 duplicati_sees || die "reset: cannot exec into the duplicati container"
want_seen=$(for s in $SNAP_STACKS; do stat -c %d:%i "$(snap_live "$s")"; done | tr '\n' ' ')
if [ "$seen" != "$want_seen" ]; then
	say "reset: duplicati's /live volumes show old live folders ($seen, want $want_seen), restarting $DUPLICATI_UNIT"
	uctl restart $DUPLICATI_UNIT
	wait_for 20 duplicati_sees || die "reset: cannot exec into the duplicati container"
fi
wait_for 10 api_answers || die "reset: the REST API stand-in does not answer on 127.0.0.1:$APIPORT"

if [ "$quiet" = 0 ]; then
	for u in $STACK_UNITS $SNAP_UNITS $QUADLET_UNITS ondemand-proxy.socket ondemand-proxy.service $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do
		printf '%-30s %s\n' "$u" "$(uctl is-active "$u" 2>/dev/null || true)"
	done
fi
say "reset: baseline"
