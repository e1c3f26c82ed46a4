#!/bin/bash
# Builds (or refreshes) the stack-backup test world: an unprivileged user with a
# real `systemd --user` manager, rootless Podman, three stacks, and a Duplicati
# stand-in container. Run as root. Idempotent: a re-run takes a few seconds.
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

PACKAGES="podman runc uidmap slirp4netns fuse-overlayfs catatonit busybox-static podman-compose socat curl bindfs fuse3"
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
	for d in $STACKS; do
		install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_DIR/data/$d"
	done
	# root-owned, read-only for the user: scripts mounted into containers
	install -d -m 755 "$WORLD_DIR/box" "$WORLD_DIR/standin" "$WORLD_DIR/bin" "$WORLD_DIR/api"

	# rootless podman configuration
	install -d -m 755 -o "$WORLD_USER" -g "$WORLD_GID" "$WORLD_HOME/.config" "$WORLD_HOME/.config/containers" \
		"$WORLD_HOME/.config/systemd" "$WORLD_HOME/.config/systemd/user"
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
# /source, control folder at /control, scripts at /opt/duplicati (on PATH).
[Unit]
Description=stack-backup world: Duplicati stand-in container
Wants=$USERNS_UNIT
After=$USERNS_UNIT

[Service]
Type=simple
KillMode=mixed
ExecStart=$RUN --name duplicati --network=none -v $D/data:/source:ro -v $D/duplicati:/control -v $D/standin:/opt/duplicati:ro -e PATH=/opt/duplicati:/usr/sbin:/usr/bin:/sbin:/bin $WORLD_IMAGE /bin/sh /opt/duplicati/worker.sh
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
	local f
	for f in duplicati-server-util worker.sh standin-lib.sh; do
		put_file "$WORLD_DIR/standin/$f" 755 root: <"$HERE/duplicati/$f" &&
			CHANGED_UNITS="$CHANGED_UNITS $DUPLICATI_UNIT"
	done
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
SYSTEMD_PID=$(cat "$WORLD_DIR/systemd.pid" 2>/dev/null || true)
EOF
}

apply_units() {
	uctl daemon-reload
	uctl enable --quiet composeapp-stack.service plainapp-stack.service ondemand-stack.service \
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
create_user
prepare_dirs
start_manager
write_scripts
write_units
write_api_unit
start_podman_api
build_image
default_stack_files
install_app
write_env
apply_units
"$HERE/reset.sh" --quiet
say "setup done in $(elapsed); env: $WORLD_DIR/env"
