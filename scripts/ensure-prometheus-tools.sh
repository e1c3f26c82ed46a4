#!/usr/bin/env bash
# Installs Debian's `prometheus` (for promtool) and `prometheus-node-exporter` when they are
# missing: the unit tests check monitoring/prometheus-rules.yml with promtool and scrape the
# metrics file through a real node_exporter (test/unit/prometheus.test.ts). Quiet when both
# are present. Needs root to install; without root it only says what is missing.
#
# Both packages start a system-wide daemon on install (their postinst runs `invoke-rc.d ...
# start`, listening on :9090 and :9100) unless /usr/sbin/policy-rc.d forbids it, or, where
# /run/systemd/system exists, try `systemctl start`. The tests need neither daemon (they run
# their own node_exporter on a loopback port), so whatever the install started is ended here,
# by PID, and its start at boot is disabled. A daemon that was running before is left alone.
set -euo pipefail

packages="prometheus prometheus-node-exporter"
binaries="/usr/bin/prometheus /usr/bin/prometheus-node-exporter"
services="prometheus prometheus-node-exporter"

missing=""
for package in $packages; do
	dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "warning: Debian's$missing missing: the alert-rule and node_exporter tests will fail; as root: bash scripts/ensure-prometheus-tools.sh" >&2
	exit 0
fi

# The PIDs of processes running one of the binaries (as /proc/PID/exe says).
daemon_pids() {
	local link pid target
	for link in /proc/[0-9]*/exe; do
		target=$(readlink "$link" 2>/dev/null) || continue
		pid=${link#/proc/}
		pid=${pid%/exe}
		for binary in $binaries; do
			[ "$target" = "$binary" ] && echo "$pid"
		done
	done
	return 0
}

before=" $(daemon_pids | tr '\n' ' ') "
echo "== installing Debian's$missing (promtool and node_exporter for the monitoring tests)"
log=/tmp/stack-backup-prometheus-apt.log
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >"$log" 2>&1; then
	apt-get update -q >>"$log" 2>&1
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1 || {
		echo "apt-get install$missing failed, see $log" >&2
		exit 1
	}
fi

# Nothing installed here may keep running system-wide: end what the install started, by PID.
started=""
for pid in $(daemon_pids); do
	case "$before" in *" $pid "*) continue ;; esac
	started="$started $pid"
done
for pid in $started; do
	echo "   ending $(readlink "/proc/$pid/exe" 2>/dev/null || echo "process") (pid $pid), started by the package's install"
	kill "$pid" 2>/dev/null || true
done
for pid in $started; do
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
done
# ... and keep it from starting at boot.
for service in $services; do
	case " $missing " in *" $service "*) ;; *) continue ;; esac
	if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
		systemctl disable --now "$service.service" >/dev/null 2>&1 || true
	else
		[ -x /usr/sbin/update-rc.d ] && update-rc.d "$service" disable >/dev/null 2>&1 || true
		[ -x /usr/bin/deb-systemd-helper ] && deb-systemd-helper disable "$service.service" >/dev/null 2>&1 || true
	fi
done
echo "   installed; no daemon of theirs runs"
