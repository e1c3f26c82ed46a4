#!/bin/bash
# Builds (or refreshes) the stack-backup test world: an unprivileged user with a
# real `systemd --user` manager, rootless Podman, three stacks, two snapshot-mode
# stacks on loop-mounted btrfs and XFS, and a Duplicati stand-in container. Run
# as root. Idempotent: a re-run takes a few seconds.
#
#   setup.sh              full setup, ends in the baseline state (see README.md)
#   setup.sh default-stacks  rewrite root/stacks with the three default stack files
#   setup.sh install-app  only copy dist/, node_modules/, package.json,
#                         systemd-user/ from the checkout into $WORLD_DIR/app
#
# Env: WORLD_USER (sbworld), WORLD_DIR (/var/tmp/stack-backup-world),
#      FRONTPORT (18080), BACKPORT (18081), APIPORT (8200).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"

need_root
T0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - T0) / 1000000)) ms"; }

PACKAGES="podman runc uidmap slirp4netns fuse-overlayfs catatonit busybox-static podman-compose socat curl bindfs fuse3 btrfs-progs xfsprogs strace"
NODE=/usr/bin/node
CHANGED_UNITS=""

# ---------------------------------------------------------------- helpers
# put_file DEST MODE OWNER < content ; returns 0 when DEST changed
put_file() {
	local dest=$1 mode=$2 owner=$3 tmp
	tmp=$(mktemp "$dest.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	chown "$owner" "$tmp"
	if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a:%U "$dest")" = "$(stat -c %a:%U "$tmp")" ]; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$dest"
	return 0
}

# ---------------------------------------------------------------- steps
install_packages() {
	local missing="" p
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
	done
	# The REST API stand-in runs on the host's node (the app needs it anyway).
	[ -x "$NODE" ] || [ -z "$(command -v node)" ] || NODE=$(command -v node)
	[ -x "$NODE" ] || missing="$missing nodejs"
	if [ -z "$missing" ]; then
		say "packages: present"
		return
	fi
	say "packages: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -q --no-install-recommends $missing >"/tmp/sbworld-apt.log" 2>&1; then
		say "packages: apt-get update"
		apt-get update -q >>"/tmp/sbworld-apt.log" 2>&1
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $missing >>"/tmp/sbworld-apt.log" 2>&1 ||
			die "apt-get install failed, see /tmp/sbworld-apt.log"
	fi
	say "packages: installed ($(elapsed))"
}

# The Quadlet generator: Debian 12's Podman 4.3 has none. Podman 5.4.2's, from Debian 13's
# package, needs only libc: the package is downloaded (not installed) with Debian 13's source list
# given on apt-get's command line (never added to the machine's own sources), the one binary is
# taken out of it and installed as the user generator, so "systemctl --user daemon-reload" turns
# the files in ~/.config/containers/systemd/ into units, as on a host with Podman >= 4.4.
install_quadlet() {
	local cache=/var/cache/sbworld-quadlet generator=/usr/lib/systemd/user-generators/podman-user-generator
	if [ ! -x "$QUADLET_GENERATOR" ]; then
		say "quadlet: downloading Debian 13's podman package for its generator"
		rm -rf "$cache"
		install -d "$cache/lists/partial" "$cache/archives/partial" "$cache/debs" "$cache/root"
		echo "deb http://deb.debian.org/debian trixie main" >"$cache/sources.list"
		local apt_options=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/nonexistent
			-o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache" -o "Dir::Cache::archives=$cache/archives"
			-o APT::Sandbox::User=root)
		apt-get "${apt_options[@]}" update -q >"$cache/apt.log" 2>&1 || die "quadlet: apt-get update for Debian 13 failed, see $cache/apt.log"
		(cd "$cache/debs" && apt-get "${apt_options[@]}" download podman >>"$cache/apt.log" 2>&1) ||
			die "quadlet: apt-get download podman (Debian 13) failed, see $cache/apt.log"
		dpkg-deb -x "$cache"/debs/podman_*.deb "$cache/root"
		install -D -m 755 "$cache/root/usr/libexec/podman/quadlet" "$QUADLET_GENERATOR"
		rm -rf "$cache/root" "$cache/lists"
		say "quadlet: generator $("$QUADLET_GENERATOR" -version) installed ($(elapsed))"
	fi
	if [ "$(readlink /usr/lib/systemd/user-generators/podman-user-generator 2>/dev/null)" != "$QUADLET_GENERATOR" ]; then
		install -d "$(dirname "$generator")"
		ln -sfn "$QUADLET_GENERATOR" "$generator"
	fi
}

create_user() {
	if ! id -u "$WORLD_USER" >/dev/null 2>&1; then
		say "user: creating $WORLD_USER"
		useradd -m -s /bin/bash "$WORLD_USER"
	fi
	world_ids
	if ! grep -q "^$WORLD_USER:" /etc/subuid || ! grep -q "^$WORLD_USER:" /etc/subgid; then
		# useradd normally adds ranges; pick one above every existing range.
		local start
		start=$(awk -F: '{ e = $2 + $3; if (e > m) m = e } END { print (m < 100000 ? 100000 : m) }' /etc/subuid /etc/subgid)
		usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$WORLD_USER"
		say "user: added subuid/subgid range $start+65536"
	fi
	say "user: $WORLD_USER uid $WORLD_UID"
}

prepare_dirs() {
	install -d -m 755 "$WORLD_DIR"
	chown "$WORLD_USER:" "$WORLD_DIR"
	local d
	for d in data compose compose/composeapp logs duplicati duplicati/state root root/stacks root/hooks root/logs image; do
		install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_DIR/$d"
	done
	for d in $STACKS $QUADLET_STACKS; do
		install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_DIR/data/$d"
	done
	# root-owned, read-only for the user: scripts mounted into containers
	install -d -m 755 "$WORLD_DIR/box" "$WORLD_DIR/standin" "$WORLD_DIR/bin" "$WORLD_DIR/api"

	# rootless podman configuration
	install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_HOME/.config" "$WORLD_HOME/.config/containers" \
		"$WORLD_HOME/.config/containers/systemd" "$WORLD_HOME/.config/systemd" "$WORLD_HOME/.config/systemd/user"
	put_file "$WORLD_HOME/.config/containers/containers.conf" 644 "$WORLD_USER:" <<'EOF' || true
# written by stack-backup test/world/setup.sh
[containers]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	[ -e /dev/net/tun ] && chmod 666 /dev/net/tun
	mkdir -p /run/systemd/system
	install -d -m 700 -o "$WORLD_USER" -g "$WORLD_GID" "$XDG_RUNTIME_DIR"
	chown "$WORLD_USER:" "$XDG_RUNTIME_DIR"
	chmod 700 "$XDG_RUNTIME_DIR"
}

# ---------------------------------------------------------------- snapshot filesystems
# mount_loop TYPE IMAGE DIR [OPTIONS]: a sparse image (IMAGE_SIZE) with a fresh
# TYPE filesystem (made once), mounted at DIR unless something is mounted there.
# A loop device still attached to IMAGE (e.g. after a lazy unmount another
# mount namespace still holds) is reused rather than a second one attached.
# An image made smaller by an earlier version is grown (and the filesystem
# with it, online): a restore of 1 GB beside 1 GB of data needs the room.
IMAGE_SIZE=4G
MOUNTED_NOW=""
mount_loop() {
	local type=$1 img=$2 dir=$3 opts=${4:-} dev want
	install -d -m 755 "$dir"
	want=$(numfmt --from=iec "$IMAGE_SIZE")
	if [ -f "$img" ] && [ "$(stat -c %s "$img")" -lt "$want" ]; then
		truncate -s "$IMAGE_SIZE" "$img"
		dev=$(losetup -n -O NAME -j "$img" 2>/dev/null | head -n1)
		[ -z "$dev" ] || losetup -c "$dev"
		GROW="$GROW $type:$dir"
	fi
	if ! mountpoint -q "$dir"; then
		if [ ! -f "$img" ]; then
			rm -f "$img.new"
			truncate -s "$IMAGE_SIZE" "$img.new"
			case "$type" in
			btrfs) mkfs.btrfs -q "$img.new" >/dev/null ;;
			xfs) mkfs.xfs -q -m reflink=1 "$img.new" ;;
			esac
			mv "$img.new" "$img"
			say "filesystems: made $type in $img (sparse $IMAGE_SIZE)"
		fi
		dev=$(losetup -n -O NAME -j "$img" 2>/dev/null | head -n1)
		if [ -n "$dev" ]; then
			mount -t "$type" ${opts:+-o "$opts"} "$dev" "$dir"
		else
			mount -t "$type" -o "loop${opts:+,$opts}" "$img" "$dir"
		fi
		MOUNTED_NOW="$MOUNTED_NOW $dir"
		say "filesystems: mounted $type $img at $dir${opts:+ ($opts)}"
	fi
	case " $GROW " in
	*" $type:$dir "*)
		case "$type" in
		btrfs) btrfs -q filesystem resize max "$dir" >/dev/null ;;
		xfs) xfs_growfs "$dir" >/dev/null ;;
		esac
		say "filesystems: grew $img and its $type to $IMAGE_SIZE"
		;;
	esac
}
GROW=""

# Before the user's first podman command (rootless Podman's mount namespace is
# made then, and filesystems mounted later are invisible in it).
mount_filesystems() {
	install -d -m 755 "$WORLD_DIR/fs"
	mount_loop btrfs "$WORLD_DIR/fs/btrfs.img" "$BTRFS_DIR" user_subvol_rm_allowed
	mount_loop xfs "$WORLD_DIR/fs/xfs.img" "$XFS_DIR"
	chown "$WORLD_USER:" "$BTRFS_DIR" "$XFS_DIR"
	chmod 755 "$BTRFS_DIR" "$XFS_DIR"
	# the live data of snapbtrfs is a subvolume the user made (and so owns)
	if [ ! -e "$BTRFS_DIR/snapbtrfs" ]; then
		as_user btrfs -q subvolume create "$BTRFS_DIR/snapbtrfs" >/dev/null
		say "filesystems: subvolume $BTRFS_DIR/snapbtrfs created by $WORLD_USER"
	fi
	[ "$(stat -c %i "$BTRFS_DIR/snapbtrfs")" = 256 ] ||
		say "filesystems: WARNING: $BTRFS_DIR/snapbtrfs is not a subvolume (remove it and re-run setup.sh)"
	install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$BTRFS_DIR/snapbtrfs" "$BTRFS_DIR/snapshots" \
		"$BTRFS_DIR/hidden" "$XFS_DIR/snapxfs" "$XFS_DIR/snapshots"
	[ -n "$MOUNTED_NOW" ] || say "filesystems: btrfs at $BTRFS_DIR, xfs at $XFS_DIR (mounted)"
}

# stale_podman_ns: true (and prints a PID) when a process of the user that lives
# in rootless Podman's mount namespace (the pause process, conmon, podman) is in
# a mount namespace that lacks the btrfs or the XFS mount. Few processes: one
# look per namespace, not per process.
stale_podman_ns() {
	local pids pause p ns self seen=" " f
	pause=$(cat "$XDG_RUNTIME_DIR/libpod/tmp/pause.pid" 2>/dev/null || true)
	[ -n "$pause" ] && [ "$(stat -c %u "/proc/$pause" 2>/dev/null)" = "$WORLD_UID" ] || pause=""
	pids=$(pgrep -u "$WORLD_UID" -x 'conmon|podman|catatonit' 2>/dev/null || true)
	pids=$(echo $pause $pids)
	[ -n "$pids" ] || return 1
	self=$(stat -L -c %i /proc/self/ns/mnt)
	# shellcheck disable=SC2046
	while read -r f ns; do
		p=${f#/proc/}
		p=${p%%/*}
		[ "$ns" != "$self" ] || continue
		case "$seen" in *" $ns "*) continue ;; esac
		seen="$seen$ns "
		if ! awk -v b="$BTRFS_DIR" -v x="$XFS_DIR" '$5 == b { fb = 1 } $5 == x { fx = 1 } END { exit !(fb && fx) }' \
			"/proc/$p/mountinfo" 2>/dev/null; then
			[ -e "/proc/$p" ] || continue
			echo "$p"
			return 0
		fi
	done < <(stat -L -c '%n %i' $(printf '/proc/%s/ns/mnt ' $pids) 2>/dev/null)
	return 1
}

# A world whose user ran podman before the filesystems were mounted (an existing
# world, or mounts removed since): its containers cannot see them. Stop the
# world's units, then "podman system migrate" (stops the user's containers and
# the pause process); the next podman command makes a namespace with the mounts.
refresh_podman_ns() {
	local p
	p=$(stale_podman_ns) || return 0
	say "podman: $WORLD_USER's rootless mount namespace (pid $p) predates the btrfs/XFS mounts; podman system migrate"
	if manager_answers; then
		uctl stop ondemand-proxy.socket ondemand-proxy.service $STACK_UNITS $SNAP_UNITS $QUADLET_UNITS $DUPLICATI_UNIT \
			podman.socket podman.service $USERNS_UNIT 2>/dev/null || true
	fi
	as_user podman system migrate >/dev/null 2>&1 || say "podman: podman system migrate failed"
	no_stale_ns() { ! stale_podman_ns >/dev/null; }
	wait_for 10 no_stale_ns || true
	if p=$(stale_podman_ns); then
		die "podman: process $p of $WORLD_USER still lacks the btrfs/XFS mounts after podman system migrate"
	fi
	say "podman: namespace dropped ($(elapsed)); it is made again with the mounts"
}

start_manager() {
	local pid
	pid=$(recorded_manager_pid)
	if manager_answers; then
		say "systemd --user: running (pid ${pid:-not started by setup.sh}), reused"
		return
	fi
	if [ -n "$pid" ]; then
		say "systemd --user: pid $pid recorded but not answering yet, waiting"
		if wait_for 15 manager_answers; then return; fi
		die "systemd --user pid $pid does not answer; run teardown.sh"
	fi
	# A previous manager of ours is gone: clear what it left behind. With no
	# live process of the user left, start from a fresh runtime dir, as logind
	# does after a user's last session ends (stale podman state would point at
	# dead pause/conmon processes).
	kill_cgroup_leftovers
	if [ -z "$(user_live_pids)" ]; then
		find "$XDG_RUNTIME_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
	else
		say "systemd --user: note: $WORLD_USER has live processes, keeping $XDG_RUNTIME_DIR as is"
	fi
	mkdir -p "$CG_DIR"
	chown -R "$WORLD_USER:" "$CG_DIR"
	say "systemd --user: starting"
	# The shell moves itself into the user's own cgroup (unified hierarchy),
	# then becomes the manager (setpriv execs, so $! is the manager's PID).
	setsid /bin/sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG_DIR" \
		setpriv --reuid="$WORLD_UID" --regid="$WORLD_GID" --init-groups -- \
		env -i HOME="$WORLD_HOME" USER="$WORLD_USER" LOGNAME="$WORLD_USER" SHELL=/bin/sh \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" \
		/lib/systemd/systemd --user --log-target=console \
		</dev/null >>"$WORLD_DIR/systemd.log" 2>&1 &
	pid=$!
	if ! wait_for 30 manager_answers; then
		tail -20 "$WORLD_DIR/systemd.log" >&2 || true
		die "systemd --user did not come up (log: $WORLD_DIR/systemd.log)"
	fi
	if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != systemd ]; then
		pid=$(head -n1 "$CG_DIR/init.scope/cgroup.procs" 2>/dev/null || true)
	fi
	echo "$pid" >"$WORLD_DIR/systemd.pid"
	say "systemd --user: pid $pid, state $(uctl is-system-running 2>/dev/null || true) ($(elapsed))"
}

# User units. $1 = name; content on stdin.
put_unit() {
	if put_file "$WORLD_HOME/.config/systemd/user/$1" 644 "$WORLD_USER:"; then
		CHANGED_UNITS="$CHANGED_UNITS $1"
	fi
}

write_units() {
	local D=$WORLD_DIR B=$WORLD_DIR/box LOGS=$WORLD_DIR/logs
	local RUN="/usr/bin/podman run --rm --replace --init --label $WORLD_LABEL=1"

	put_unit $USERNS_UNIT <<EOF
# written by stack-backup test/world/setup.sh
# Keeps rootless Podman's pause process (user namespace holder) inside the
# manager's own cgroup tree, so it is neither in a stack unit nor outside.
[Unit]
Description=stack-backup world: rootless podman user namespace

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/podman unshare /bin/true
StandardOutput=append:$LOGS/$USERNS_UNIT.log
StandardError=inherit
EOF

	put_file "$WORLD_DIR/compose/composeapp/compose.yaml" 644 "$WORLD_USER:" <<EOF && CHANGED_UNITS="$CHANGED_UNITS composeapp-stack.service"
# written by stack-backup test/world/setup.sh
services:
  web:
    image: $WORLD_IMAGE
    init: true
    command: ["/bin/sh", "/world/heartbeat.sh", "web"]
    volumes:
      - $D/data/composeapp:/data
      - $B:/world:ro
    labels:
      $WORLD_LABEL: "1"
  worker:
    image: $WORLD_IMAGE
    init: true
    command: ["/bin/sh", "/world/heartbeat.sh", "worker"]
    volumes:
      - $D/data/composeapp:/data
      - $B:/world:ro
    labels:
      $WORLD_LABEL: "1"
EOF

	put_unit composeapp-stack.service <<EOF
# written by stack-backup test/world/setup.sh
[Unit]
Description=stack-backup world: composeapp (podman-compose, 2 services)
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=oneshot
RemainAfterExit=yes
WorkingDirectory=$D/compose/composeapp
ExecStart=/usr/bin/podman-compose -p composeapp -f compose.yaml up -d
ExecStop=/usr/bin/podman-compose -p composeapp -f compose.yaml down
TimeoutStartSec=120
TimeoutStopSec=60
StandardOutput=append:$LOGS/composeapp-stack.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF

	put_unit plainapp-stack.service <<EOF
# written by stack-backup test/world/setup.sh
# Two plain "podman run -d" containers. On stop, "fast" is stopped and waited
# for; "slow" only gets SIGTERM and keeps writing its heartbeat for 3 s after
# the unit already reads inactive (KillMode=process leaves it alone).
[Unit]
Description=stack-backup world: plainapp (plain podman run, one slow container)
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=oneshot
RemainAfterExit=yes
KillMode=process
ExecStart=$RUN --name plainapp-fast --label io.podman.compose.project=plainapp --network=none -v $D/data/plainapp:/data -v $B:/world:ro -d $WORLD_IMAGE /bin/sh /world/heartbeat.sh fast
ExecStart=$RUN --name plainapp-slow --label io.podman.compose.project=plainapp --network=none -v $D/data/plainapp:/data -v $B:/world:ro -d $WORLD_IMAGE /bin/sh /world/heartbeat.sh slow 3
ExecStop=/usr/bin/podman stop --ignore -t 10 plainapp-fast
ExecStop=-/usr/bin/podman kill --signal TERM plainapp-slow
TimeoutStartSec=120
TimeoutStopSec=60
StandardOutput=append:$LOGS/plainapp-stack.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF

	put_unit ondemand-stack.service <<EOF
# written by stack-backup test/world/setup.sh
# Foreground "podman run" (Type=simple), host network, busybox httpd serving
# the data folder on 127.0.0.1:$BACKPORT. Active once the port answers.
[Unit]
Description=stack-backup world: ondemand (backend of ondemand-proxy.socket)
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=simple
KillMode=mixed
ExecStart=$RUN --name ondemand-app --label io.podman.compose.project=ondemand --network=host -e HTTP_LISTEN=127.0.0.1:$BACKPORT -v $D/data/ondemand:/data -v $B:/world:ro $WORLD_IMAGE /bin/sh /world/heartbeat.sh app
ExecStartPost=$D/bin/wait-http http://127.0.0.1:$BACKPORT/heartbeat 30
# A test can hold the unit in "activating" (container up, start not finished) for N seconds.
ExecStartPost=/bin/sh -c 'delay=\$\$(cat $D/ondemand-activation-delay 2>/dev/null); [ -z "\$\$delay" ] || sleep "\$\$delay"'
ExecStop=/usr/bin/podman stop --ignore -t 10 ondemand-app
# A stop while the unit is still activating skips ExecStop: systemd sends SIGTERM to "podman run"
# and then kills the rest of the unit, conmon's "podman container cleanup --rm" included, which can
# leave the container "removing" (or "created"). Finish that removal before the unit reads inactive.
ExecStopPost=-/usr/bin/podman rm -f --ignore ondemand-app
SuccessExitStatus=143
TimeoutStartSec=120
TimeoutStopSec=60
StandardOutput=append:$LOGS/ondemand-stack.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF

	local st live
	for st in $SNAP_STACKS; do
		live=$(snap_live "$st")
		put_unit "$st-stack.service" <<EOF
# written by stack-backup test/world/setup.sh
# Snapshot mode: one foreground "podman run" (Type=simple, like a Quadlet unit)
# whose /data is the live data on $(case $st in snapbtrfs) echo "btrfs (a subvolume)" ;; *) echo "XFS (reflinks)" ;; esac); it rewrites
# /data/heartbeat and /data/db/state (0600, container user 1000) every 0.2 s.
# Active once a fresh heartbeat is written.
[Unit]
Description=stack-backup world: $st (snapshot mode, live data $live)
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=simple
KillMode=mixed
ExecStart=$RUN --name $st-app --label io.podman.compose.project=$st --network=none -v $live:/data -v $B:/world:ro $WORLD_IMAGE /bin/sh /world/dbheartbeat.sh app
ExecStartPost=$D/bin/wait-beat $live/heartbeat.app 30
ExecStop=/usr/bin/podman stop --ignore -t 10 $st-app
ExecStopPost=-/usr/bin/podman rm -f --ignore $st-app
SuccessExitStatus=143
TimeoutStartSec=120
TimeoutStopSec=60
StandardOutput=append:$LOGS/$st-stack.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF
	done

	put_unit ondemand-proxy.socket <<EOF
# written by stack-backup test/world/setup.sh
[Unit]
Description=stack-backup world: on-demand front socket for the ondemand stack

[Socket]
ListenStream=127.0.0.1:$FRONTPORT

[Install]
WantedBy=sockets.target
EOF

	put_unit ondemand-proxy.service <<EOF
# written by stack-backup test/world/setup.sh
[Unit]
Description=stack-backup world: proxy 127.0.0.1:$FRONTPORT -> 127.0.0.1:$BACKPORT
Requires=ondemand-stack.service ondemand-proxy.socket
After=ondemand-stack.service ondemand-proxy.socket

[Service]
ExecStart=/lib/systemd/systemd-socket-proxyd 127.0.0.1:$BACKPORT
StandardOutput=append:$LOGS/ondemand-proxy.log
StandardError=inherit
EOF

	put_unit $DUPLICATI_UNIT <<EOF
# written by stack-backup test/world/setup.sh
# The Duplicati stand-in: container "duplicati", data folders read-only at
# /source, the snapshot parent folders read-only at /snapshots/btrfs and
# /snapshots/xfs (not btrfs/hidden, which it sees only through /restore/btrfs),
# the snapshot stacks' live data read-only at
# /live/snapbtrfs and /live/snapxfs (for a job that reads live data: DIRTY),
# and, for restores, the PARENTS of the data writable: data/ at /restore/data,
# the btrfs and XFS mounts at /restore/btrfs and /restore/xfs (a staging folder
# made beside a stack's data is seen there, and stays seen after a swap by
# rename); control folder at /control, scripts at /opt/duplicati (on PATH).
[Unit]
Description=stack-backup world: Duplicati stand-in container
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=simple
KillMode=mixed
ExecStart=$RUN --name duplicati --network=none -v $D/data:/source:ro -v $BTRFS_DIR/snapshots:/snapshots/btrfs:ro -v $XFS_DIR/snapshots:/snapshots/xfs:ro -v $BTRFS_DIR/snapbtrfs:/live/snapbtrfs:ro -v $XFS_DIR/snapxfs:/live/snapxfs:ro -v $D/data:/restore/data -v $BTRFS_DIR:/restore/btrfs -v $XFS_DIR:/restore/xfs -v $D/duplicati:/control -v $D/standin:/opt/duplicati:ro -e PATH=/opt/duplicati:/usr/sbin:/usr/bin:/sbin:/bin $WORLD_IMAGE /bin/sh /opt/duplicati/worker.sh
ExecStop=/usr/bin/podman stop --ignore -t 10 duplicati
SuccessExitStatus=143
TimeoutStartSec=120
TimeoutStopSec=60
StandardOutput=append:$LOGS/$DUPLICATI_UNIT.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF
}

# put_quadlet FILE UNIT: a Quadlet file in ~/.config/containers/systemd/ from stdin; a change
# restarts the stack's UNIT (after daemon-reload, in apply_units).
put_quadlet() {
	put_file "$WORLD_HOME/.config/containers/systemd/$1" 644 "$WORLD_USER:" && CHANGED_UNITS="$CHANGED_UNITS $2"
	return 0
}

# The Quadlet stacks, as a user writes them. Two lines in each file are for this sandbox's
# Podman 4.3 only (Quadlet's own Podman, 5.x, needs neither): its hybrid cgroups refuse Quadlet's
# --cgroups=split ("could not find cgroup mount"), which PodmanArgs=--cgroups=enabled overrides;
# and it refuses an existing --cidfile / --pod-id-file while its "rm --cidfile" leaves the file,
# which ExecStartPre=-/bin/rm -f removes first.
write_quadlet_units() {
	local c D=$WORLD_DIR B=$WORLD_DIR/box
	put_quadlet quadpod.pod quadpod-pod.service <<EOF
# written by stack-backup test/world/setup.sh: a Quadlet pod (unit quadpod-pod.service)
[Pod]
PodName=quadpod
Network=none

[Service]
# Podman 4.3 only (see setup.sh)
ExecStartPre=-/bin/rm -f %t/%N.pod-id
EOF
	for c in web worker; do
		put_quadlet "quadpod-$c.container" quadpod-pod.service <<EOF
# written by stack-backup test/world/setup.sh: a member of the quadpod pod
[Container]
Image=$WORLD_IMAGE
Pod=quadpod.pod
RunInit=true
Volume=$D/data/quadpod:/data
Volume=$B:/world:ro
Exec=/bin/sh /world/heartbeat.sh $c
# Podman 4.3 only (see setup.sh)
PodmanArgs=--cgroups=enabled

[Service]
# Podman 4.3 only (see setup.sh)
ExecStartPre=-/bin/rm -f %t/%N.cid
EOF
	done
	put_unit quadgroup.target <<EOF
# written by stack-backup test/world/setup.sh
# A stack of two Quadlet .container units grouped by a target: each is PartOf= it (stopping or
# restarting the target does the same to them) and WantedBy= it (starting it starts them).
[Unit]
Description=stack-backup world: quadgroup (two Quadlet containers)
EOF
	for c in web worker; do
		put_quadlet "quadgroup-$c.container" quadgroup.target <<EOF
# written by stack-backup test/world/setup.sh: a member of quadgroup.target
[Unit]
PartOf=quadgroup.target

[Container]
Image=$WORLD_IMAGE
RunInit=true
Network=none
Volume=$D/data/quadgroup:/data
Volume=$B:/world:ro
Exec=/bin/sh /world/heartbeat.sh $c
# Podman 4.3 only (see setup.sh)
PodmanArgs=--cgroups=enabled

[Service]
# Podman 4.3 only (see setup.sh)
ExecStartPre=-/bin/rm -f %t/%N.cid

[Install]
WantedBy=quadgroup.target
EOF
	done
}

write_api_unit() {
	put_unit $DUPLICATI_API_UNIT <<EOF
# written by stack-backup test/world/setup.sh
# REST API stand-in (Duplicati /api/v1 subset) on 127.0.0.1:$APIPORT, sharing the
# control folder (queue, lock, records) with the duplicati container's worker.
[Unit]
Description=stack-backup world: Duplicati REST API stand-in

[Service]
Type=simple
Environment=STANDIN_CONTROL=$WORLD_DIR/duplicati API_LISTEN=127.0.0.1:$APIPORT
ExecStart=$NODE $WORLD_DIR/api/server.mjs
ExecStartPost=$WORLD_DIR/bin/wait-http http://127.0.0.1:$APIPORT/health 20
Restart=on-failure
RestartSec=1
TimeoutStopSec=10
StandardOutput=append:$WORLD_DIR/logs/$DUPLICATI_API_UNIT.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF
}

write_scripts() {
	# container-side scripts (root-owned, read-only mounts)
	put_file "$WORLD_DIR/box/heartbeat.sh" 755 root: <"$HERE/box/heartbeat.sh" &&
		CHANGED_UNITS="$CHANGED_UNITS composeapp-stack.service plainapp-stack.service ondemand-stack.service"
	put_file "$WORLD_DIR/box/dbheartbeat.sh" 755 root: <"$HERE/box/dbheartbeat.sh" &&
		CHANGED_UNITS="$CHANGED_UNITS $SNAP_UNITS"
	local f
	for f in duplicati-server-util duplicati-cli worker.sh standin-lib.sh versions.sh restore.sh; do
		put_file "$WORLD_DIR/standin/$f" 755 root: <"$HERE/duplicati/$f" &&
			CHANGED_UNITS="$CHANGED_UNITS $DUPLICATI_UNIT"
	done
	# The restore sets mtimes to 100 ns (.NET ticks, as Duplicati does); busybox
	# touch has whole seconds only, so the host's GNU touch runs in the
	# container through the host's loader (coreutils needs libc alone).
	install -d -m 755 "$WORLD_DIR/standin/gnu"
	local libc ld
	libc=$(ldd /usr/bin/touch | awk '$1 ~ /^libc\.so/ { print $3 }')
	ld=$(readlink -f "$(ldd /usr/bin/touch | awk '$1 ~ /ld-linux/ { print $1 }')")
	[ -f "$libc" ] && [ -f "$ld" ] || die "cannot find libc and the loader of /usr/bin/touch (ldd)"
	put_file "$WORLD_DIR/standin/gnu/touch" 755 root: </usr/bin/touch || true
	put_file "$WORLD_DIR/standin/gnu/libc.so.6" 755 root: <"$libc" || true
	put_file "$WORLD_DIR/standin/gnu/ld.so" 755 root: <"$ld" || true
	put_file "$WORLD_DIR/api/server.mjs" 644 root: <"$HERE/duplicati-api/server.mjs" &&
		CHANGED_UNITS="$CHANGED_UNITS $DUPLICATI_API_UNIT"
	# host-side helpers
	put_file "$WORLD_DIR/bin/wait-http" 755 root: <<'EOF' || true
#!/bin/sh
# wait-http URL SECONDS: wait until URL answers (used by ondemand-stack.service)
i=0
while ! curl -sf -o /dev/null --max-time 1 "$1"; do
	i=$((i + 1))
	[ "$i" -ge $(($2 * 10)) ] && { echo "wait-http: $1 did not answer in $2 s" >&2; exit 1; }
	sleep 0.1
done
EOF
	put_file "$WORLD_DIR/bin/wait-beat" 755 root: <<'EOF' || true
#!/bin/sh
# wait-beat FILE SECONDS: wait until FILE is written after this call started
# (used by the snapshot stacks' units: active once the container writes)
t0=$(date +%s%N)
i=0
while [ "$(date -r "$1" +%s%N 2>/dev/null || echo 0)" -lt "$t0" ]; do
	i=$((i + 1))
	[ "$i" -ge $(($2 * 10)) ] && { echo "wait-beat: $1 not written in $2 s" >&2; exit 1; }
	sleep 0.1
done
EOF
	put_file "$WORLD_DIR/bin/as-user" 755 root: <<EOF || true
#!/bin/sh
# as-user CMD...: run CMD as $WORLD_USER with the world environment (run as root)
cd /
exec setpriv --reuid=$WORLD_UID --regid=$WORLD_GID --init-groups -- env -i HOME=$WORLD_HOME USER=$WORLD_USER LOGNAME=$WORLD_USER SHELL=/bin/sh PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR CONTAINER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock "\$@"
EOF
	put_file "$WORLD_DIR/bin/stack-backup" 755 root: <<EOF || true
#!/bin/sh
# the installed CLI (copy in $WORLD_DIR/app); run it as $WORLD_USER
exec node $WORLD_DIR/app/dist/cli.js "\$@"
EOF
}

build_image() {
	if upodman image exists "$WORLD_IMAGE" 2>/dev/null; then
		say "image: $WORLD_IMAGE present"
		return
	fi
	say "image: building $WORLD_IMAGE from busybox-static"
	local r
	r=$(mktemp -d /tmp/sbworld-rootfs.XXXXXX)
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc" "$r/proc" "$r/sys" "$r/dev" \
		"$r/run" "$r/var/tmp" "$r/data" "$r/root"
	install -d -m 1777 "$r/tmp"
	cp /bin/busybox "$r/bin/busybox"
	local p
	for p in $(/bin/busybox --list-full); do
		[ "$p" = bin/busybox ] && continue
		mkdir -p "$r/$(dirname "$p")"
		ln -sf /bin/busybox "$r/$p"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
	tar -C "$r" --numeric-owner --owner=0 --group=0 -cf "$WORLD_DIR/image/rootfs.tar" .
	rm -rf "$r"
	chown "$WORLD_USER:" "$WORLD_DIR/image/rootfs.tar"
	upodman import -q --change 'CMD=["/bin/sh"]' "$WORLD_DIR/image/rootfs.tar" "$WORLD_IMAGE" >/dev/null
	say "image: built ($(elapsed))"
}

start_podman_api() {
	uctl start $USERNS_UNIT podman.socket
	local sock=$XDG_RUNTIME_DIR/podman/podman.sock
	api_ok() { [ "$(as_user curl -s --max-time 5 --unix-socket "$sock" http://d/_ping 2>/dev/null)" = OK ]; }
	wait_for 20 api_ok ||
		die "podman API at $sock does not answer /_ping"
	say "podman API: $sock answers OK"
}

default_stack_files() {
	local S=$WORLD_DIR/root/stacks
	[ -f "$S/composeapp.yaml" ] || printf '%s\n' '# default written by test/world/setup.sh' \
		'duplicati_jobs: [composeapp]' >"$S/composeapp.yaml"
	[ -f "$S/plainapp.yaml" ] || printf '%s\n' '# default written by test/world/setup.sh' \
		'duplicati_jobs: [plainapp]' >"$S/plainapp.yaml"
	[ -f "$S/ondemand.yaml" ] || printf '%s\n' '# default written by test/world/setup.sh' \
		'duplicati_jobs: [ondemand]' 'freeze_ondemand: true' \
		'ondemand_socket: ondemand-proxy.socket' 'ondemand_service: ondemand-proxy.service' >"$S/ondemand.yaml"
	chown "$WORLD_USER:" "$S"/*.yaml
}

# Example stack files of the snapshot stacks (not in root/stacks: the tests that
# run "all" expect the three default stacks). Rewritten on every run.
example_stack_files() {
	install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_DIR/examples"
	put_file "$WORLD_DIR/examples/snapbtrfs.yaml" 644 "$WORLD_USER:" <<EOF || true
# example written by test/world/setup.sh: snapshot mode on btrfs (copy into root/stacks/)
duplicati_jobs: [snapbtrfs]
snapshot:
  driver: btrfs
  paths:
    - source: $BTRFS_DIR/snapbtrfs
      target: $BTRFS_DIR/snapshots/snapbtrfs
EOF
	put_file "$WORLD_DIR/examples/quadpod.yaml" 644 "$WORLD_USER:" <<EOF || true
# example written by test/world/setup.sh: a Quadlet pod (copy into root/stacks/)
unit: quadpod-pod.service
duplicati_jobs: [quadpod]
EOF
	put_file "$WORLD_DIR/examples/quadgroup.yaml" 644 "$WORLD_USER:" <<EOF || true
# example written by test/world/setup.sh: Quadlet containers grouped by a target (copy into root/stacks/)
unit: quadgroup.target
duplicati_jobs: [quadgroup]
EOF
	put_file "$WORLD_DIR/examples/snapxfs.yaml" 644 "$WORLD_USER:" <<EOF || true
# example written by test/world/setup.sh: snapshot mode on XFS with reflinks (copy into root/stacks/)
duplicati_jobs: [snapxfs]
snapshot:
  driver: reflink
  paths:
    - source: $XFS_DIR/snapxfs
      target: $XFS_DIR/snapshots/snapxfs
EOF
}

# $WORLD_DIR/app is a symlink to app.<stamp>; it is swapped atomically, so a CLI
# run in progress keeps its files. The previous copy is kept, older ones removed.
install_app() {
	local app=$WORLD_DIR/app stamp new item copied="" old
	stamp=$(date +%Y%m%d%H%M%S%N)
	new=$WORLD_DIR/app.$stamp
	install -d -m 755 "$WORLD_DIR"
	install -d -m 755 "$new"
	for item in dist node_modules package.json systemd-user; do
		if [ -e "$CHECKOUT/$item" ]; then
			cp -a "$CHECKOUT/$item" "$new/"
			copied="$copied $item"
		fi
	done
	chown -R root:root "$new"
	chmod -R a+rX,go-w "$new"
	if [ -d "$app" ] && [ ! -L "$app" ]; then
		mv "$app" "$WORLD_DIR/app.0-previous"
	fi
	ln -sfn "app.$stamp" "$WORLD_DIR/app.link.$stamp"
	mv -T "$WORLD_DIR/app.link.$stamp" "$app"
	# keep the newest two copies
	for old in $(find "$WORLD_DIR" -maxdepth 1 -name 'app.*' -type d -printf '%f\n' | sort -r | tail -n +3); do
		rm -rf "${WORLD_DIR:?}/$old"
	done
	say "app: copied${copied:- nothing} from $CHECKOUT to $app -> app.$stamp"
}

write_env() {
	put_file "$WORLD_DIR/env" 644 root: <<EOF || true
# stack-backup test world (written by test/world/setup.sh); shell-sourceable
WORLD_USER=$WORLD_USER
WORLD_UID=$WORLD_UID
WORLD_GID=$WORLD_GID
WORLD_HOME=$WORLD_HOME
WORLD_DIR=$WORLD_DIR
WORLD_ROOT=$WORLD_DIR/root
WORLD_APP=$WORLD_DIR/app
WORLD_CLI=$WORLD_DIR/app/dist/cli.js
WORLD_AS_USER=$WORLD_DIR/bin/as-user
WORLD_TEST_DIR=$HERE
WORLD_STACKS="$STACKS"
WORLD_IMAGE=$WORLD_IMAGE
XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR
PODMAN_SOCKET=$XDG_RUNTIME_DIR/podman/podman.sock
CONTAINER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock
FRONTPORT=$FRONTPORT
BACKPORT=$BACKPORT
APIPORT=$APIPORT
DUPLICATI_CONTAINER=duplicati
DUPLICATI_UNIT=$DUPLICATI_UNIT
DUPLICATI_UTIL=duplicati-server-util
DUPLICATI_UTIL_PATH=/opt/duplicati/duplicati-server-util
STANDIN_CONTROL=$WORLD_DIR/duplicati
STANDIN_RECORDS=$WORLD_DIR/duplicati/records.log
STANDIN_EVENTS=$WORLD_DIR/duplicati/events.log
STANDIN_RESULTS=$WORLD_DIR/duplicati/results.log
DUPLICATI_API_URL=http://127.0.0.1:$APIPORT
DUPLICATI_API_UNIT=$DUPLICATI_API_UNIT
DUPLICATI_API_PASSWORD=sbworld-secret
BTRFS_DIR=$BTRFS_DIR
XFS_DIR=$XFS_DIR
SYSTEMD_PID=$(cat "$WORLD_DIR/systemd.pid" 2>/dev/null || true)
EOF
}

apply_units() {
	uctl daemon-reload
	uctl enable --quiet composeapp-stack.service plainapp-stack.service ondemand-stack.service $SNAP_UNITS \
		ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT 2>/dev/null || true
	local u done=" "
	for u in $CHANGED_UNITS; do
		case "$done" in *" $u "*) continue ;; esac
		# never restart the user-namespace holder (it would kill the pause process)
		[ "$u" = $USERNS_UNIT ] && continue
		done="$done$u "
		if [ "$(uctl is-active "$u" 2>/dev/null || true)" = active ]; then
			say "units: $u changed, restarting"
			uctl restart "$u"
		fi
	done
}

# ---------------------------------------------------------------- main
case "${1:-}" in
install-app)
	install_app
	exit 0
	;;
default-stacks)
	# The three default stack files and nothing else in root/stacks; no stack-backup.yaml.
	need_root
	world_ids
	rm -f "$WORLD_DIR/root/stacks/"*.yaml "$WORLD_DIR/root/stack-backup.yaml"
	default_stack_files
	exit 0
	;;
"" | all) ;;
*)
	echo "usage: $0 [install-app | default-stacks]" >&2
	exit 2
	;;
esac

install_packages
install_quadlet
create_user
prepare_dirs
mount_filesystems
refresh_podman_ns
start_manager
write_scripts
write_units
write_quadlet_units
write_api_unit
start_podman_api
build_image
default_stack_files
example_stack_files
install_app
write_env
apply_units
"$HERE/reset.sh" --quiet
say "setup done in $(elapsed); env: $WORLD_DIR/env"
