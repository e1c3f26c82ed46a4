#!/bin/bash
# Brings the running world back to its baseline state (seconds; run as root):
#   stand-in reset (standin.sh reset), the three stack units active with all
#   their containers running, ondemand-proxy.socket listening,
#   ondemand-proxy.service inactive, the duplicati container running, the REST
#   API stand-in (sbworld-duplicati-api.service) answering.
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
uctl stop ondemand-proxy.service 2>/dev/null
uctl start $USERNS_UNIT podman.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT $STACK_UNITS ondemand-proxy.socket

# Every stack must have all its containers running (a test may have killed or
# stopped some behind systemd's back).
expected() { case "$1" in composeapp | plainapp) echo 2 ;; ondemand) echo 1 ;; esac; }
for s in $STACKS; do
	if [ "$(project_running "$s")" != "$(expected "$s")" ]; then
		say "reset: $s has $(project_running "$s") of $(expected "$s") containers, restarting $s-stack.service"
		uctl restart "$s-stack.service"
	fi
done
if [ "$(upodman inspect -f '{{.State.Running}}' duplicati 2>/dev/null || true)" != true ]; then
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
fresh() { [ $(($(date +%s) - $(stat -c %Y "$WORLD_DIR/data/$1/heartbeat" 2>/dev/null || echo 0))) -le 1 ]; }
for s in $STACKS; do
	wait_for 15 fresh "$s" || die "reset: $s heartbeat is not advancing"
done
wait_for 20 upodman exec duplicati true || die "reset: cannot exec into the duplicati container"
wait_for 10 api_answers || die "reset: the REST API stand-in does not answer on 127.0.0.1:$APIPORT"

if [ "$quiet" = 0 ]; then
	for u in $STACK_UNITS ondemand-proxy.socket ondemand-proxy.service $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do
		printf '%-30s %s\n' "$u" "$(uctl is-active "$u" 2>/dev/null || true)"
	done
fi
say "reset: baseline"
