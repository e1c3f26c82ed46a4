#!/bin/bash
# Exercises a running world end to end (about a minute and a half), the
# snapshot filesystems and stacks included (btrfs snapshots and reflink copies
# as the user and inside "podman unshare") and ends with reset.sh,
# so the world is back at baseline. Disruptive: it stops/starts stacks and
# resets the stand-in; do not run it while tests use the same world.
#   WORLD_DIR=... selfcheck.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids
S="$HERE/standin.sh"
FAILS=0
ok() { printf '  ok   %s\n' "$*"; }
bad() {
	printf '  FAIL %s\n' "$*"
	FAILS=$((FAILS + 1))
}
check() { # check DESCRIPTION CMD...
	local d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
eq() { # eq DESCRIPTION ACTUAL EXPECTED
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got [$2] want [$3]"; fi
}
active() { uctl is-active "$1" 2>/dev/null; }
util() { upodman exec duplicati duplicati-server-util "$@"; }
hbseq() { cut -d' ' -f2 "$WORLD_DIR/data/$1/heartbeat.$2" 2>/dev/null; }
hb_advancing() { # hb_advancing STACK CONTAINER
	local a
	a=$(hbseq "$1" "$2")
	sleep 0.5
	[ "$(hbseq "$1" "$2")" != "$a" ]
}
status_body() { util status | grep -v '^Connecting to ' | tr '\n' '|'; }

echo "== baseline"
"$HERE/reset.sh" --quiet >/dev/null || die "reset.sh failed; is the world set up?"
for u in $STACK_UNITS $SNAP_UNITS ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do eq "$u active" "$(active "$u")" active; done
eq "ondemand-proxy.service inactive" "$(active ondemand-proxy.service)" inactive
eq "composeapp containers" "$(project_running composeapp)" 2
eq "plainapp containers" "$(project_running plainapp)" 2
eq "ondemand containers" "$(project_running ondemand)" 1
check "composeapp heartbeat advancing" hb_advancing composeapp web
check "podman API _ping" test "$(as_user curl -s --unix-socket "$XDG_RUNTIME_DIR/podman/podman.sock" http://d/_ping)" = OK
n=$(as_user curl -s --unix-socket "$XDG_RUNTIME_DIR/podman/podman.sock" -G http://d/containers/json \
	--data-urlencode 'filters={"label":["io.podman.compose.project=composeapp"]}' | grep -o '"Id"' | wc -l)
eq "API label filter finds 2 composeapp containers" "$n" 2

echo "== stacks stop/start"
for s in composeapp ondemand; do
	uctl stop "$s-stack.service"
	# a stopped ondemand unit may read failed (podman run cannot forward systemd's
	# SIGTERM to a container ExecStop already removed; see test/e2e/world.ts downStates)
	case "$(active "$s-stack.service")" in inactive | failed) ok "$s down after stop" ;; *) bad "$s down after stop: $(active "$s-stack.service")" ;; esac
	eq "$s no containers after stop" "$(project_running "$s")" 0
	uctl start "$s-stack.service"
	eq "$s active after start" "$(active "$s-stack.service")" active
done
eq "composeapp containers after restart" "$(project_running composeapp)" 2
uctl stop ondemand-proxy.service 2>/dev/null

echo "== plainapp: slow container outlives its unit"
uctl stop plainapp-stack.service
t_stop=$(date +%s%N)
eq "plainapp inactive right after stop" "$(active plainapp-stack.service)" inactive
eq "plainapp-slow still running" "$(upodman ps -q --filter name=plainapp-slow | wc -l)" 1
check "plainapp-slow heartbeat still advancing" hb_advancing plainapp slow
no_plainapp() { [ "$(project_running plainapp)" = 0 ]; }
wait_for 10 no_plainapp
gone=$((($(date +%s%N) - t_stop) / 1000000))
if [ "$gone" -ge 2000 ] && [ "$gone" -le 6000 ]; then ok "plainapp-slow exited on its own after $gone ms"; else bad "plainapp-slow exit after $gone ms"; fi
a=$(hbseq plainapp slow)
sleep 0.5
eq "plainapp heartbeat stopped" "$(hbseq plainapp slow)" "$a"
uctl start plainapp-stack.service
eq "plainapp containers after start" "$(project_running plainapp)" 2

echo "== ondemand: socket activation"
uctl stop ondemand-stack.service
case "$(active ondemand-stack.service)" in inactive | failed) ok "ondemand stack down" ;; *) bad "ondemand stack down: $(active ondemand-stack.service)" ;; esac
body=$(curl -s --max-time 30 "http://127.0.0.1:$FRONTPORT/heartbeat")
case "$body" in *" app") ok "connection to $FRONTPORT served by the stack ($body)" ;; *) bad "front port answer [$body]" ;; esac
eq "ondemand stack started by the socket" "$(active ondemand-stack.service)" active
eq "ondemand proxy active" "$(active ondemand-proxy.service)" active
uctl stop ondemand-proxy.socket ondemand-proxy.service
check "front port closed with the socket stopped" sh -c "! curl -s --max-time 2 http://127.0.0.1:$FRONTPORT/"
uctl start ondemand-proxy.socket

echo "== stand-in"
"$S" reset >/dev/null
out=$(util status)
eq "status idle" "$(echo "$out" | tr '\n' '|')" "Connecting to http://localhost:8200/...|Server state: Running|Active task: None|Scheduler tasks: Empty|"
out=$(util run nosuchjob)
rc=$?
eq "unknown job exit code" "$rc" 2
eq "unknown job output" "$(echo "$out" | tail -n1)" "No backup found with supplied ID or name"
"$S" set pickup_delay 3
out=$(util run COMPOSEAPP)
rc=$?
eq "run exit 0" "$rc" 0
eq "run line (name case-insensitive)" "$(echo "$out" | tail -n1)" "Running backup composeapp (ID: 1)"
task=$(awk '$2 == "ENQUEUE" { print $3 }' "$WORLD_DIR/duplicati/events.log" | tail -n1)
eq "queued during pickup delay" "$(status_body)" "Server state: Running|Active task: None|Scheduled tasks:|  [Task $task]: BackupId = 1|"
eq "run again = de-duplicated (queued)" "$(util run 1 | tail -n1)" "Running backup composeapp (ID: 1)"
eq "still one queued task" "$(status_body)" "Server state: Running|Active task: None|Scheduled tasks:|  [Task $task]: BackupId = 1|"
wait_for 5 sh -c "grep -q '^$task ' '$WORLD_DIR/duplicati/state/active'"
eq "active after pickup" "$(status_body)" "Server state: Running|Active task: [Task $task]: BackupId = 1|Scheduler tasks: Empty|"
util run composeapp >/dev/null
eq "run while active = de-duplicated" "$(grep -c "DEDUP $task " "$WORLD_DIR/duplicati/events.log")" 2
"$S" wait-idle 10 || bad "stand-in did not become idle"
eq "idle again" "$(status_body)" "Server state: Running|Active task: None|Scheduler tasks: Empty|"
eq "record DIRTY while the stack runs" "$(awk -v t="$task" '$1 == t { print $6 }' "$WORLD_DIR/duplicati/records.log")" DIRTY
"$S" set pickup_delay 0
"$S" set duration 0.5
uctl stop composeapp-stack.service
util run composeapp >/dev/null
"$S" wait-idle 10
eq "record CLEAN while the stack is stopped" "$(tail -n1 "$WORLD_DIR/duplicati/records.log" | cut -d' ' -f3,6)" "composeapp CLEAN"
r=$(tail -n1 "$WORLD_DIR/duplicati/records.log")
d=$(($(echo "$r" | cut -d' ' -f5) - $(echo "$r" | cut -d' ' -f4)))
if [ "$d" -ge 450 ] && [ "$d" -le 900 ]; then ok "fractional duration 0.5 s took $d ms"; else bad "duration 0.5 s took $d ms"; fi
uctl start composeapp-stack.service

"$S" flag paused on
util run plainapp >/dev/null
util run ondemand >/dev/null
util run composeapp >/dev/null
sleep 1
b=$(status_body)
case "$b" in "Server state: Paused|Active task: None|Scheduled tasks:|  [Task "*"]: BackupId = 2|  [Task "*"]: BackupId = 3|  [Task "*"]: BackupId = 1|")
	ok "paused: nothing starts, queue in run order" ;;
*) bad "paused status [$b]" ;; esac
util run --skip-queue composeapp >/dev/null
eq "de-dup also with --skip-queue" "$(grep -c . "$WORLD_DIR/duplicati/state/queue")" 3
"$S" flag paused off
"$S" wait-idle 10 || bad "queue did not drain after resume"
eq "records in queue order" "$(tail -n3 "$WORLD_DIR/duplicati/records.log" | cut -d' ' -f3 | tr '\n' ' ')" "plainapp ondemand composeapp "
t1=$(tail -n3 "$WORLD_DIR/duplicati/records.log" | cut -d' ' -f1 | tr '\n' ' ')
eq "task ids increase" "$(echo "$t1" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')" "$t1"

"$S" flag hang_run on
timeout 3 "$WORLD_DIR/bin/as-user" podman exec duplicati duplicati-server-util run plainapp >"/tmp/sbworld-hang.$$"
rc=$?
eq "hang_run: run does not exit" "$rc" 124
eq "hang_run: line printed" "$(tail -n1 "/tmp/sbworld-hang.$$")" "Running backup plainapp (ID: 2)"
rm -f "/tmp/sbworld-hang.$$"
"$S" flag hang_run off
"$S" wait-idle 10

"$S" add-job 7 extra composeapp 0.3
eq "added job runs" "$(util run Extra | tail -n1)" "Running backup extra (ID: 7)"
"$S" wait-idle 10
last_task=$(tail -n1 "$WORLD_DIR/duplicati/records.log" | cut -d' ' -f1)
"$S" reset >/dev/null
util run plainapp >/dev/null
new_task=$(awk '$2 == "ENQUEUE" { print $3 }' "$WORLD_DIR/duplicati/events.log" | tail -n1)
if [ "$new_task" -gt "$last_task" ]; then ok "task ids stay monotonic across reset ($last_task -> $new_task)"; else bad "task id $new_task after $last_task"; fi

echo "== concurrency"
"$S" reset >/dev/null
"$S" flag paused on
for i in $(seq 1 6); do
	for j in composeapp plainapp ondemand; do util run "$j" >/dev/null & done
	util status >/dev/null &
done
wait
eq "18 concurrent runs of 3 jobs -> 3 tasks" "$(grep -c . "$WORLD_DIR/duplicati/state/queue")" 3
eq "distinct task ids" "$(cut -d' ' -f1 "$WORLD_DIR/duplicati/state/queue" | sort -u | wc -l)" 3

echo "== REST API stand-in"
"$S" reset >/dev/null
API=http://127.0.0.1:$APIPORT
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
hcode() { as_user curl -s -o /dev/null -w '%{http_code}' "$@"; }
eq "GET /health" "$(as_user curl -s "$API/health")" Healthy
eq "login with a wrong password -> 401" "$(hcode -X POST "$API/api/v1/auth/login" -d '{"Password":"x"}')" 401
tok=$(as_user curl -s -X POST "$API/api/v1/auth/login" -d '{"Password":"sbworld-secret","RememberMe":true}' | jget 'd["AccessToken"]')
api() { as_user curl -s -X "$1" "$API$2" -H "Authorization: Bearer $tok"; }
eq "no token -> 401" "$(hcode "$API/api/v1/serverstate")" 401
eq "backups list" "$(api GET /api/v1/backups | jget '[x["Backup"]["ID"] + ":" + x["Backup"]["Name"] for x in d]')" "['1:composeapp', '2:plainapp', '3:ondemand', '4:snapbtrfs', '5:snapxfs']"
eq "absolute source listed as is" "$(api GET /api/v1/backup/4 | jget 'd["Backup"]["Sources"]')" "['/snapshots/btrfs/snapbtrfs/']"
"$S" flag paused on
util run plainapp >/dev/null
task=$(awk '$2 == "ENQUEUE" { print $3 }' "$WORLD_DIR/duplicati/events.log" | tail -n1)
eq "API run de-duplicated against util's queued task" "$(api POST /api/v1/backup/2/run | jget 'd["ID"]')" "$task"
eq "serverstate while paused" "$(api GET /api/v1/serverstate | jget '(d["ProgramState"], d["ActiveTask"], d["SchedulerQueueIds"])')" "('Paused', None, [{'Item1': $task, 'Item2': '2'}])"
eq "task Waiting" "$(api GET "/api/v1/task/$task" | jget 'd["Status"]')" Waiting
ev=$(api GET /api/v1/serverstate | jget 'd["LastEventID"]')
"$S" set outcome Warning
"$S" set duration 0.5
(sleep 1; "$S" flag paused off) &
t0=$(date +%s%N)
ev2=$(api GET "/api/v1/serverstate?longpoll=true&lastEventId=$ev&duration=20s" | jget 'd["LastEventID"]')
waited=$((($(date +%s%N) - t0) / 1000000))
wait
if [ "${ev2:-0}" -gt "$ev" ] && [ "$waited" -ge 900 ] && [ "$waited" -le 2500 ]; then ok "long poll answered ${waited} ms after the request (resume after 1 s)"; else bad "long poll: event $ev -> $ev2 after $waited ms"; fi
"$S" wait-idle 10 || bad "API-queued task did not run"
sleep 0.2
eq "task Completed" "$(api GET "/api/v1/task/$task" | jget 'd["Status"]')" Completed
eq "log: newest ParsedResult = outcome" "$(api GET "/api/v1/backup/2/log?pagesize=1" | jget 'json.loads(d[0]["Message"])["ParsedResult"]')" Warning
eq "LastBackupFinished set" "$(api GET /api/v1/backups | jget '"LastBackupFinished" in d[1]["Backup"]["Metadata"]')" True
eq "record written for the task" "$(awk -v t="$task" '$1 == t { print $3 }' "$WORLD_DIR/duplicati/records.log")" plainapp

echo "== snapshot filesystems and stacks"
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
"$S" reset >/dev/null
B=$BTRFS_DIR
X=$XFS_DIR
UID1000=$(subuid_of 1000)
GID1000=$(subgid_of 1000)
# Local-mode podman as the user: "podman unshare" is refused by the remote client
# (with CONTAINER_HOST set: 'cannot use command "podman unshare" with the remote podman client').
unshare() { as_user podman --remote=false unshare "$@"; }
snaphb() { cut -d' ' -f2 "$(snap_live "$1")/heartbeat.app" 2>/dev/null; }
snap_hb_advancing() {
	local a
	a=$(snaphb "$1")
	sleep 0.5
	[ "$(snaphb "$1")" != "$a" ]
}
statof() { stat -c '%a %u:%g' "$1" 2>/dev/null; }
last_result() { tail -n1 "$WORLD_DIR/duplicati/results.log" | cut -d' ' -f3,6-; }
last_record() { tail -n1 "$WORLD_DIR/duplicati/records.log" | cut -d' ' -f3,6; }
run_job() { util run "$1" >/dev/null && "$S" wait-idle 60; }
eq "env BTRFS_DIR" "$(sed -n 's/^BTRFS_DIR=//p' "$WORLD_DIR/env")" "$B"
eq "env XFS_DIR" "$(sed -n 's/^XFS_DIR=//p' "$WORLD_DIR/env")" "$X"
eq "btrfs mounted with user_subvol_rm_allowed" "$(findmnt -n -o FSTYPE,OPTIONS "$B" | grep -o '^btrfs\|user_subvol_rm_allowed' | tr '\n' ' ')" "btrfs user_subvol_rm_allowed "
eq "xfs mounted, reflink=1" "$(findmnt -n -o FSTYPE "$X") $(xfs_info "$X" 2>/dev/null | grep -o 'reflink=[01]')" "xfs reflink=1"
eq "live subvolume (inode 256, owned by the user)" "$(stat -c '%i %U' "$B/snapbtrfs")" "256 $WORLD_USER"
for s in $SNAP_STACKS; do
	eq "$s-stack.service active" "$(active "$s-stack.service")" active
	eq "$s containers (label io.podman.compose.project=$s)" "$(project_running "$s")" 1
	check "$s heartbeat advancing" snap_hb_advancing "$s"
	live=$(snap_live "$s")
	eq "$s db/ 0700, container user 1000" "$(statof "$live/db")" "700 $UID1000:$GID1000"
	eq "$s db/state 0600, container user 1000" "$(statof "$live/db/state")" "600 $UID1000:$GID1000"
	check "$s db/state unreadable to the plain user" sh -c "! '$WORLD_DIR/bin/as-user' cat '$live/db/state'"
	a=$(md5sum <"$live/db/state")
	sleep 0.5
	check "$s db/state keeps changing while the stack runs" test "$(md5sum <"$live/db/state")" != "$a"
done
eq "stand-in jobs" "$(grep -v '^#' "$WORLD_DIR/duplicati/jobs" | grep snap | tr '\n' '|')" "4 snapbtrfs /snapshots/btrfs/snapbtrfs|5 snapxfs /snapshots/xfs/snapxfs|"
eq "stand-in has no snapshot parent btrfs/hidden" "$(upodman exec duplicati sh -c 'ls -d /snapshots/*/hidden /hidden 2>/dev/null | wc -l')" 0
eq "stand-in sees the parents of the data writable at /restore" \
	"$(upodman exec duplicati sh -c 'for d in /restore/data /restore/btrfs /restore/xfs; do t=$d/.w$$; touch $t && rm $t && ls -d $d/composeapp $d/snapbtrfs $d/snapxfs 2>/dev/null; done' | tr '\n' ' ')" \
	"/restore/data/composeapp /restore/btrfs/snapbtrfs /restore/xfs/snapxfs "

echo "-- btrfs as the user"
out=$(as_user btrfs subvolume snapshot -r "$B/snapbtrfs" "$B/snapshots/snapbtrfs" 2>&1)
eq "btrfs subvolume snapshot -r as the user (rc)" "$?" 0
eq "snapshot is read-only" "$(as_user btrfs property get -ts "$B/snapshots/snapbtrfs" ro 2>/dev/null)" "ro=true"
eq "snapshot keeps db/state 0600 of container user 1000" "$(statof "$B/snapshots/snapbtrfs/db/state")" "600 $UID1000:$GID1000"
eq "stand-in sees /snapshots/btrfs/snapbtrfs/db/state (uid 1000, 0600)" \
	"$(upodman exec duplicati stat -c '%a %u' /snapshots/btrfs/snapbtrfs/db/state 2>&1)" "600 1000"
check "stand-in (container root) reads the 0600 file" upodman exec duplicati md5sum /snapshots/btrfs/snapbtrfs/db/state
"$S" set duration 1
run_job snapbtrfs
eq "job snapbtrfs on the snapshot while the stack runs: CLEAN" "$(last_record)" "snapbtrfs CLEAN"
eq "job snapbtrfs: Success" "$(last_result)" "snapbtrfs Success"
as_user btrfs property set -ts "$B/snapshots/snapbtrfs" ro false
eq "btrfs property set -ts ro false as the user (rc)" "$?" 0
as_user btrfs -q subvolume delete "$B/snapshots/snapbtrfs" >/dev/null 2>&1
eq "btrfs subvolume delete as the user (rc)" "$?" 0
check "snapshot gone on the host" test ! -e "$B/snapshots/snapbtrfs"
check "snapshot gone in the stand-in" upodman exec duplicati test ! -e /snapshots/btrfs/snapbtrfs
run_job snapbtrfs
eq "job on a missing snapshot: Fatal SourceIsMissing" "$(last_result)" "snapbtrfs Fatal The source folder /snapshots/btrfs/snapbtrfs/ does not exist, aborting backup"
task=$(tail -n1 "$WORLD_DIR/duplicati/results.log" | cut -d' ' -f1)
eq "API: the task Failed with the message" "$(api GET "/api/v1/task/$task" | jget '(d["Status"], d["ErrorMessage"])')" \
	"('Failed', 'The source folder /snapshots/btrfs/snapbtrfs/ does not exist, aborting backup')"
eq "list-backups: Last error" "$(util list-backups --detailed | grep -A8 '^4: snapbtrfs' | sed -n 's/^  Last error: .* - //p')" \
	"The source folder /snapshots/btrfs/snapbtrfs/ does not exist, aborting backup"

echo "-- btrfs inside podman unshare (as stack-backup runs it)"
out=$(unshare btrfs subvolume snapshot -r "$B/snapbtrfs" "$B/snapshots/snapbtrfs" 2>&1)
rc=$?
if [ "$rc" = 0 ]; then ok "podman unshare btrfs subvolume snapshot -r works"; else bad "podman unshare btrfs subvolume snapshot -r FAILS (rc $rc): $out"; fi
eq "podman unshare snapshot: owned by the user, read-only" "$(stat -c '%i %U' "$B/snapshots/snapbtrfs") $(as_user btrfs property get -ts "$B/snapshots/snapbtrfs" ro 2>/dev/null)" "256 $WORLD_USER ro=true"
out=$(unshare btrfs subvolume delete "$B/snapshots/snapbtrfs" 2>&1)
case "$out" in *"Read-only file system"*) ok "podman unshare btrfs subvolume delete of a read-only snapshot is refused (EROFS): set ro false first" ;;
*) bad "podman unshare delete of a read-only snapshot: [$out]" ;; esac
out=$(unshare btrfs property set -ts "$B/snapshots/snapbtrfs" ro false 2>&1)
rc=$?
if [ "$rc" = 0 ]; then ok "podman unshare btrfs property set -ts ro false works"; else bad "podman unshare btrfs property set FAILS (rc $rc): $out"; fi
out=$(unshare btrfs subvolume delete "$B/snapshots/snapbtrfs" 2>&1)
rc=$?
if [ "$rc" = 0 ] && [ ! -e "$B/snapshots/snapbtrfs" ]; then ok "podman unshare btrfs subvolume delete works"; else bad "podman unshare btrfs subvolume delete FAILS (rc $rc): $out"; fi
out=$(as_user env CONTAINER_HOST="unix://$XDG_RUNTIME_DIR/podman/podman.sock" podman unshare true 2>&1)
case "$out" in *"remote podman client"*) ok "note: with CONTAINER_HOST set, podman unshare is refused (remote client); use --remote=false or unset it" ;;
*) bad "podman unshare with CONTAINER_HOST set: [$out]" ;; esac

echo "-- XFS reflinks"
out=$(as_user cp -a --reflink=always "$X/snapxfs" "$X/snapshots/plaincp" 2>&1)
case "$out" in *"Permission denied"*) ok "plain cp -a of the live data fails (0700 db/ of container user 1000)" ;; *) bad "plain cp -a: [$out]" ;; esac
as_user rm -rf "$X/snapshots/plaincp" 2>/dev/null
unshare rm -rf "$X/snapshots/plaincp"
"$HERE/fill-data.sh" snapxfs 1 1 >/dev/null
out=$(unshare cp -a --reflink=always "$X/snapxfs" "$X/snapshots/snapxfs" 2>&1)
rc=$?
if [ "$rc" = 0 ]; then ok "podman unshare cp -a --reflink=always works"; else bad "podman unshare cp -a --reflink=always FAILS (rc $rc): $out"; fi
eq "reflink copy keeps db/ and db/state (mode, container user 1000)" "$(statof "$X/snapshots/snapxfs/db") $(statof "$X/snapshots/snapxfs/db/state")" \
	"700 $UID1000:$GID1000 600 $UID1000:$GID1000"
eq "reflink copy keeps the user's files" "$(stat -c %U "$X/snapshots/snapxfs/heartbeat")" "$WORLD_USER"
shared_extents() { # every extent of FILE has FIEMAP_EXTENT_SHARED (0x2000)
	local f n=0
	for f in $(xfs_io -r -c 'fiemap -v' "$1" 2>/dev/null | awk 'NR > 2 && $NF ~ /^0x/ { print $NF }'); do
		[ $((f & 0x2000)) != 0 ] || return 1
		n=$((n + 1))
	done
	[ "$n" -gt 0 ]
}
check "a copied file's extents are shared with the live one (reflink, no new space)" shared_extents "$X/snapshots/snapxfs/bulk/part-00000"
out=$(unshare cp -a --reflink=always "$B/snapbtrfs" "$X/snapshots/crossdev" 2>&1)
case "$out" in *"Invalid cross-device link"*) ok "reflink across filesystems fails: Invalid cross-device link" ;; *) bad "cross-device reflink: [$out]" ;; esac
unshare rm -rf "$X/snapshots/crossdev"
run_job snapxfs
eq "job snapxfs on the copy while the stack runs: CLEAN" "$(last_record)" "snapxfs CLEAN"
unshare rm -rf "$X/snapshots/snapxfs"
eq "podman unshare rm -rf removes the copy" "$(ls -A "$X/snapshots")" ""

echo "-- live data and bulk"
"$S" add-job 9 livebtrfs /live/snapbtrfs
run_job livebtrfs
eq "a job on the live data while the stack runs: DIRTY" "$(last_record)" "livebtrfs DIRTY"
"$HERE/fill-data.sh" snapbtrfs 4 8 >/dev/null
eq "fill-data.sh snapbtrfs 4 8: 8 files, 4 MiB" "$(find "$B/snapbtrfs/bulk" -type f | wc -l) $(find "$B/snapbtrfs/bulk" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" "8 4194304"
eq "bulk owned by the user" "$(stat -c %U "$B/snapbtrfs/bulk/part-00007")" "$WORLD_USER"
as_user btrfs -q subvolume snapshot -r "$B/snapbtrfs" "$B/snapshots/snapbtrfs" >/dev/null
"$S" add-job 9 bulkcheck /snapshots/btrfs/snapbtrfs 0
util run bulkcheck >/dev/null
"$S" wait-idle 30
eq "stand-in reads the bulk of the snapshot" "$(upodman exec duplicati sh -c 'cat /snapshots/btrfs/snapbtrfs/bulk/* | wc -c')" 4194304

echo "-- reset removes leftovers"
as_user btrfs -q subvolume snapshot -r "$B/snapbtrfs" "$B/hidden/snapbtrfs" >/dev/null
unshare cp -a --reflink=always "$X/snapxfs" "$X/snapshots/snapxfs"
as_user sh -c "echo x >'$B/snapshots/snapbtrfs.stack-backup.json'; echo x >'$X/snapshots/.snapxfs.stack-backup-lock'"
t0=$(date +%s%N)
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
t=$((($(date +%s%N) - t0) / 1000000))
eq "btrfs/snapshots empty after reset" "$(ls -A "$B/snapshots")" ""
eq "btrfs/hidden empty after reset" "$(ls -A "$B/hidden")" ""
eq "xfs/snapshots empty after reset" "$(ls -A "$X/snapshots")" ""
eq "bulk/ removed by reset" "$(ls -A "$B/snapbtrfs" | grep -c bulk)" 0
eq "stand-in jobs back to defaults" "$(grep -c '^9 ' "$WORLD_DIR/duplicati/jobs")" 0
ok "reset with leftovers took $t ms"

echo "== backup versions and restores"
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
D=$WORLD_DIR/data/composeapp
URL=file:///backups/composeapp
# node reads JSON here: jn EXPR (d is the document on stdin)
jn() { node -e "const d = JSON.parse(require('fs').readFileSync(0, 'utf8')); const r = ($1); console.log(typeof r === 'string' ? r : JSON.stringify(r))" 2>/dev/null; }
tok=$(as_user curl -s -X POST "$API/api/v1/auth/login" -d '{"Password":"sbworld-secret","RememberMe":true}' | jn 'd.AccessToken')
# cli ARGS...: duplicati-cli in the container; output in $out, exit code in $rc
cli() { out=$(upodman exec duplicati duplicati-cli "$@" 2>&1); rc=$?; }
dbof() { upodman exec duplicati sh -c ". /opt/duplicati/standin-lib.sh; db_path $1"; }
DB=$(dbof composeapp)
PASS=standin-composeapp-passphrase
# tree ROOT: every entry below ROOT as "path type size uid:gid mode mtime(100 ns) target-or-md5",
# the way a restore test compares a restore with its source (symlinks: no mtime, no owner)
tree() {
	(cd "$1" && find . -exec stat -c '%n|%F|%s|%u:%g|%a|%Y|%y' {} +) | sort | while IFS='|' read -r n t sz o m y h; do
		f=${h#*.}
		f=${f%% *}
		case "$t" in
		"symbolic link") echo "$n link $(readlink "$1/$n")" ;;
		directory) echo "$n dir $o $m $y.$(echo "$f" | cut -c1-7)" ;;
		*) echo "$n file $sz $o $m $y.$(echo "$f" | cut -c1-7) $(md5sum <"$1/$n" | cut -d' ' -f1)" ;;
		esac
	done
}
restore_rest() { # restore_rest BODY -> task id
	as_user curl -s -X POST "$API/api/v1/backup/1/restore" -H "Authorization: Bearer $tok" -d "$1" | jn 'd.ID'
}
task_end() { # task_end TASK: waits until it is not Waiting/Running, prints its Status
	local i st
	for i in $(seq 1 150); do
		st=$(api GET "/api/v1/task/$1" | jn 'd.Status')
		case "$st" in Waiting | Running) sleep 0.2 ;; *) echo "$st"; return ;; esac
	done
	echo timeout
}
newest_result() { api GET "/api/v1/backup/1/log?pagesize=1" | jn 'JSON.parse(d[0].Message)' ; }

uctl stop composeapp-stack.service
"$S" set duration 0.3
echo v1 | as_user tee "$D/note.txt" >/dev/null
util run composeapp >/dev/null && "$S" wait-idle 30
sleep 1.1
echo v2 | as_user tee "$D/note.txt" >/dev/null
util run composeapp >/dev/null && "$S" wait-idle 30
eq "two versions kept" "$("$S" versions composeapp | wc -l)" 2
T0=$("$S" versions composeapp | awk '$1 == 0 { print $2 }')
T1=$("$S" versions composeapp | awk '$1 == 1 { print $2 }')
eq "versions numbered 0 = newest" "$([ "$T0" -gt "$T1" ] && echo yes)" yes
eq "blobs content-addressed (v1/v2 note and the heartbeats: one blob per content)" \
	"$(ls "$WORLD_DIR/duplicati/storage/1/blobs" | wc -l)" "$(cat "$WORLD_DIR/duplicati/storage/1/filesets/"* | awk -F '\t' '$1 == "f" { print $8 }' | sort -u | wc -l)"
eq "record follows the versions (BackupListCount, LastBackupDate)" \
	"$(util --json list-backups | jn 'd.Backups[0].Metadata.BackupListCount + " " + d.Backups[0].Metadata.LastBackupDate')" \
	"2 $(date -u -d "@$T0" +%Y%m%dT%H%M%SZ)"
fs=$(api GET /api/v1/backup/1/filesets)
eq "REST filesets: Version, IsFullBackup, Time (local, offset), FileCount/FileSizes -1" \
	"$(echo "$fs" | jn 'd.map(x => [x.Version, x.IsFullBackup, x.Time, x.FileCount, x.FileSizes].join(" ")).join("|")')" \
	"0 1 $(date -u -d "@$T0" +%Y-%m-%dT%H:%M:%S)+00:00 -1 -1|1 1 $(date -u -d "@$T1" +%Y-%m-%dT%H:%M:%S)+00:00 -1 -1"
nfiles=$(find "$D" -type f | wc -l)
eq "REST filesets include-metadata=true counts the files" "$(api GET '/api/v1/backup/1/filesets?include-metadata=true' | jn 'd[0].FileCount')" "$nfiles"
eq "REST files of a version" "$(api GET "/api/v1/backup/1/files?time=$(date -u -d "@$T1" +%Y-%m-%dT%H:%M:%SZ)&filter=*note.txt" | jn 'd.Files.map(f => f.Path + " " + f.Sizes).join()')" "/source/composeapp/note.txt 3"
cli find "$URL" --dbpath="$DB"
eq "duplicati-cli find: Listing filesets (invariant culture, UTC)" "$(echo "$out" | tr '\t' '~' | head -n2 | tr '\n' '|')" \
	"Listing filesets:|0~: $(date -u -d "@$T0" '+%m/%d/%Y %H:%M:%S') ($nfiles files, $(awk -v s="$(find "$D" -type f -exec cat {} + | wc -c)" 'BEGIN { print (s < 1024 ? s " bytes" : sprintf("%.2f KiB", s / 1024)) }'))|"

echo "-- restore with permissions (CLI, passphrase in a parameters file)"
upodman exec duplicati sh -c "printf -- '--passphrase=%s\n--dbpath=%s\n' '$PASS' '$DB' >/tmp/params"
cli restore "$URL" --restore-path=/restore/data/composeapp.cli --restore-permissions=true --parameters-file=/tmp/params
eq "exit 0" "$rc" 0
eq "Restored line" "$(echo "$out" | grep '^Restored ' | sed 's/(.*)/(SIZE)/')" "Restored $(($(find "$D" -type f | wc -l) + 1)) (SIZE) files to /restore/data/composeapp.cli"
eq "restored tree = source: contents, sizes, owners, modes, mtimes (100 ns), symlink" "$(tree "$WORLD_DIR/data/composeapp.cli" | md5sum)" "$(tree "$D" | md5sum)"
eq "db/state 0600 of container user 1000 restored" "$(stat -c '%a %u' "$WORLD_DIR/data/composeapp.cli/db/state")" "600 $UID1000"
y=$(stat -c %y "$D/db/state"); y=${y#*.}; y=${y%% *}
eq "mtime restored truncated to 100 ns (.NET ticks)" "$(stat -c %y "$WORLD_DIR/data/composeapp.cli/db/state" | cut -d. -f2 | cut -d' ' -f1)" "$(echo "$y" | cut -c1-7)00"
eq "a CLI restore with the job's database writes its Result into the job's log" "$(newest_result | jn 'd.MainOperation + " " + d.ParsedResult + " " + d.RestorePath')" "Restore Success /restore/data/composeapp.cli"

echo "-- restore without permissions (REST, all fields)"
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.rest","overwrite":false,"permissions":false,"skip_metadata":false}')
eq "REST restore task Completed" "$(task_end "$t")" Completed
eq "the process's owner and default modes; read-only attribute kept" \
	"$(stat -c '%U %a' "$WORLD_DIR/data/composeapp.rest/db" "$WORLD_DIR/data/composeapp.rest/db/state" "$WORLD_DIR/data/composeapp.rest/bin/run.sh" | tr '\n' ' ')" \
	"$WORLD_USER 755 $WORLD_USER 644 $WORLD_USER 644 "
eq "log row: Restore Result with the counts" "$(newest_result | jn '[d.MainOperation, d.ParsedResult, d.RestoredFiles, d.RestoredFolders, d.UnmodifiedFiles, d.RestoredSymlinks].join(" ")')" "Restore Success $((nfiles + 1)) 3 0 0"
eq "record: LastRestoreFinished" "$(api GET /api/v1/backup/1 | jn 'typeof d.Backup.Metadata.LastRestoreFinished')" string

echo "-- where files land"
t=$(restore_rest '{"paths":["/source/composeapp/db/state"],"time":"now","restore_path":"/restore/data/composeapp.one"}')
task_end "$t" >/dev/null
eq "one file: its folder is the prefix (lands as restore_path/state)" "$(cd "$WORLD_DIR/data/composeapp.one" && find . | sort | tr '\n' ' ')" ". ./state "
cli restore "$URL" /source/composeapp/db/ --restore-path=/restore/data/composeapp.db --dbpath="$DB" --passphrase=$PASS
eq "CLI folder/ (becomes folder/*): its contents land in restore_path" "$(cd "$WORLD_DIR/data/composeapp.db" && find . | sort | tr '\n' ' ')" ". ./state "
t=$(restore_rest '{"paths":["[/source/composeapp/db/.*]"],"time":"now","restore_path":"/restore/data/composeapp.rx"}')
task_end "$t" >/dev/null
eq "REST [folder/.*] (the web UI's form), stable: its contents land in restore_path" "$(cd "$WORLD_DIR/data/composeapp.rx" && find . | sort | tr '\n' ' ')" ". ./state "
"$S" set restore_prefix keep-folder
t=$(restore_rest '{"paths":["[/source/composeapp/db/.*]"],"time":"now","restore_path":"/restore/data/composeapp.keep"}')
task_end "$t" >/dev/null
eq "restore_prefix keep-folder (master fc2e039b9): the selected folder keeps its name" "$(cd "$WORLD_DIR/data/composeapp.keep" && find . | sort | tr '\n' ' ')" ". ./db ./db/state "
"$S" set restore_prefix -
t=$(restore_rest '{"paths":["/source/composeapp/db/"],"time":"now","restore_path":"/restore/data/composeapp.dironly"}')
task_end "$t" >/dev/null
eq "REST folder path alone selects the folder entry only (no files, NoFilesRestored)" \
	"$(newest_result | jn 'd.ParsedResult + " " + d.RestoredFiles + " " + d.Warnings.some(w => w.includes("NoFilesRestored"))')" "Warning 0 true"

echo "-- which version"
t=$(restore_rest '{"paths":["/source/composeapp/note.txt"],"time":"2020-01-01T00:00:00Z","restore_path":"/restore/data/composeapp.old"}')
eq "a time before every version: task Completed" "$(task_end "$t")" Completed
eq "  restores the NEWEST, with only a RestoreTimeNoMatch warning" \
	"$(cat "$WORLD_DIR/data/composeapp.old/note.txt") $(newest_result | jn 'd.ParsedResult + " " + d.Warnings.some(w => w.includes("RestoreTimeNoMatch"))')" "v2 Warning true"
t=$(restore_rest "{\"paths\":[\"/source/composeapp/note.txt\"],\"time\":\"$(date -u -d "@$T1" +%Y-%m-%dT%H:%M:%S)+00:00\",\"restore_path\":\"/restore/data/composeapp.v1\"}")
task_end "$t" >/dev/null
eq "the exact Time of version 1 restores version 1" "$(cat "$WORLD_DIR/data/composeapp.v1/note.txt")" v1
cli restore "$URL" /source/composeapp/note.txt --version=9 --restore-path=/restore/data/composeapp.v9 --dbpath="$DB" --passphrase=$PASS
eq "--version=9: exit 2, SkipInvalidVersion, the newest restored" "$rc $(echo "$out" | grep -c 'Skipping invalid version: 9') $(cat "$WORLD_DIR/data/composeapp.v9/note.txt")" "2 1 v2"

echo "-- existing files"
echo changed | as_user tee "$WORLD_DIR/data/composeapp.v1/note.txt" >/dev/null
cli restore "$URL" /source/composeapp/note.txt --version=1 --restore-path=/restore/data/composeapp.v1 --dbpath="$DB" --passphrase=$PASS
eq "overwrite=false: a differing file is left and the version written beside it as name.yyyy-MM-dd.ext" \
	"$(cat "$WORLD_DIR/data/composeapp.v1/note.txt") $(cat "$WORLD_DIR/data/composeapp.v1/note.$(date -u -d "@$T1" +%Y-%m-%d).txt")" "changed v1"
cli restore "$URL" /source/composeapp/note.txt --version=1 --restore-path=/restore/data/composeapp.v1 --dbpath="$DB" --passphrase=$PASS --overwrite=true
eq "overwrite=true replaces it" "$(cat "$WORLD_DIR/data/composeapp.v1/note.txt")" v1
cli restore "$URL" /source/composeapp/note.txt --version=1 --restore-path=/restore/data/composeapp.v1 --dbpath="$DB" --passphrase=$PASS
eq "an identical file is left (UnmodifiedFiles; 0 restored, exit 0)" "$rc $(echo "$out" | grep '^Restored ')" "0 Restored 0 (0 bytes) files to /restore/data/composeapp.v1"

echo "-- failures"
cli restore "$URL" --restore-path=/restore/data/composeapp.bad --dbpath="$DB" --passphrase=wrong
eq "wrong passphrase: exit 100, CryptographicException" "$rc $(echo "$out" | grep -c 'Failed to decrypt data (invalid passphrase?)')" "100 3"
cli restore "$URL" --restore-path=/restore/data/composeapp.bad --dbpath="$DB"
eq "no passphrase (no TTY): exit 100" "$rc $(echo "$out" | grep -c 'Cannot read keys')" "100 1"
out=$(printf '%s\n' "$PASS" | upodman exec -i duplicati duplicati-cli restore "$URL" /source/composeapp/note.txt --restore-path=/restore/data/composeapp.stdin --dbpath="$DB" --force-passphrase-from-stdin 2>&1)
eq "--force-passphrase-from-stdin reads it from standard input" "$(cat "$WORLD_DIR/data/composeapp.stdin/note.txt" 2>/dev/null)" v2
"$S" set recreate_seconds 1
t0=$(date +%s%N)
cli restore "$URL" /source/composeapp/note.txt --restore-path=/restore/data/composeapp.nodb --passphrase=$PASS
eq "no --dbpath: a temporary database is recreated (recreate_seconds), then it restores" \
	"$rc $(echo "$out" | grep -c 'dlist.zip.aes') $([ $(($(date +%s%N) - t0)) -ge 1000000000 ] && echo slow)" "0 2 slow"
"$S" set recreate_seconds -
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.bad2","passphrase":"wrong"}')
eq "REST wrong passphrase: task Failed with the message" "$(task_end "$t") $(api GET "/api/v1/task/$t" | jn 'd.ErrorMessage')" \
	"Failed Failed to decrypt data (invalid passphrase?): Invalid password or corrupted data"
eq "  and the record's LastErrorMessage" "$(api GET /api/v1/backup/1 | jn 'd.Backup.Metadata.LastErrorMessage')" "Failed to decrypt data (invalid passphrase?): Invalid password or corrupted data"
util run plainapp >/dev/null && "$S" wait-idle 30
cli restore "$URL" --restore-path=/restore/data/composeapp.otherdb --dbpath="$(dbof plainapp)" --passphrase=$PASS
eq "another job's database: exit 100, ExtraRemoteFiles (remote files not in it)" "$rc $(echo "$out" | grep -c '^ErrorID: ExtraRemoteFiles')" "100 1"
F0=$WORLD_DIR/duplicati/storage/1/filesets/$T0
cp "$F0" "$F0.orig"
awk -F '\t' -v OFS='\t' '$13 == "/source/composeapp/db/state" { $3 = 70000 } { print }' "$F0.orig" >"$F0"
cli restore "$URL" /source/composeapp/db/state --version=0 --restore-path=/restore/data/composeapp.chown --dbpath="$DB" --passphrase=$PASS --restore-permissions
eq "a refused chown (uid 70000 is not mapped): MetadataWriteFailed warning, exit 2, and no chmod (0644, not 0600)" \
	"$rc $(echo "$out" | grep -c 'Failed to apply metadata to file: "/restore/data/composeapp.chown/state", message: Invalid argument') $(stat -c '%a %U' "$WORLD_DIR/data/composeapp.chown/state")" \
	"2 1 644 $WORLD_USER"
mv -f "$F0.orig" "$F0"
"$S" set restore_seconds 5
out=$(upodman exec duplicati timeout -s TERM 2 duplicati-cli restore "$URL" --restore-path=/restore/data/composeapp.term --dbpath="$DB" --passphrase=$PASS 2>&1)
rc=$?
n=$(find "$WORLD_DIR/data/composeapp.term" -type f 2>/dev/null | wc -l)
eq "SIGTERM mid-restore (timeout in the container): the CLI ends (143), a partial copy, nothing left running" \
	"$rc $([ "$n" -lt "$nfiles" ] && echo partial) $(upodman exec duplicati sh -c 'ps | grep -c "[r]estore.sh"')" "143 partial 0"
"$S" set restore_seconds -
"$S" set duration 4
util run composeapp >/dev/null
wait_for 5 sh -c "[ -s '$WORLD_DIR/duplicati/state/active' ]"
"$S" set cli_lock_seconds 1
cli restore "$URL" --restore-path=/restore/data/composeapp.locked --dbpath="$DB" --passphrase=$PASS
eq "the job's database while the server runs its task: exit 100, database is locked" "$rc $(echo "$out" | grep -c 'database is locked')" "100 1"
eq "REST filesets while a task of the backup runs: DatabaseLocked" "$(api GET /api/v1/backup/1/filesets | jn 'd.HelpId')" DatabaseLocked
"$S" wait-idle 30
"$S" set cli_lock_seconds -
"$S" set duration 0.3

echo "-- queue"
"$S" flag paused on
t=$(restore_rest '{"paths":["/source/composeapp/note.txt"],"time":"now","restore_path":"/restore/data/composeapp.q"}')
eq "a restore is queued and does not start while paused" "$(api GET "/api/v1/task/$t" | jn 'd.Status') $(api GET /api/v1/serverstate | jn 'JSON.stringify(d.SchedulerQueueIds)')" "Waiting [{\"Item1\":$t,\"Item2\":\"1\"}]"
eq "run of that backup returns the queued RESTORE task (de-duplicated by backup ID)" "$(api POST /api/v1/backup/1/run | jn 'd.ID')" "$t"
api POST "/api/v1/task/$t/stop" >/dev/null
eq "stop of a queued restore does nothing (no controller yet): still Waiting" "$(api GET "/api/v1/task/$t" | jn 'd.Status')" Waiting
"$S" flag paused off
eq "it runs once resumed" "$(task_end "$t")" Completed
"$S" set restore_seconds 4
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.abort"}')
wait_for 10 sh -c "grep -q '^$t .* restore\$' '$WORLD_DIR/duplicati/state/active'"
eq "a running restore is the active task with its backup ID" "$(api GET /api/v1/serverstate | jn 'd.ActiveTask.Item1 + " " + d.ActiveTask.Item2')" "$t 1"
sleep 1
api POST "/api/v1/task/$t/abort" >/dev/null
eq "abort: task Failed, The operation was canceled." "$(task_end "$t") $(api GET "/api/v1/task/$t" | jn 'd.ErrorMessage')" "Failed The operation was canceled."
n=$(find "$WORLD_DIR/data/composeapp.abort" -type f | wc -l)
if [ "$n" -lt "$nfiles" ]; then ok "  a partial copy is left ($n of $nfiles files)"; else bad "  abort left $n of $nfiles files"; fi
"$S" set restore_seconds 2
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.stop"}')
wait_for 10 sh -c "grep -q '^$t ' '$WORLD_DIR/duplicati/state/active'"
api POST "/api/v1/task/$t/stop" >/dev/null
eq "stop: the restore engine goes on to the end; task Completed, every file there" "$(task_end "$t") $(find "$WORLD_DIR/data/composeapp.stop" -type f | wc -l)" "Completed $nfiles"
"$S" set restore_seconds -

echo "-- symlinks"
as_user ln -s /etc/hostname "$D/abs.link"
util run composeapp >/dev/null && "$S" wait-idle 30
cli restore "$URL" --restore-path=/restore/data/composeapp.links --dbpath="$DB" --passphrase=$PASS
eq "an absolute symlink outside the restore path is skipped with a warning (2.3.0+), exit 2" \
	"$rc $(echo "$out" | grep -c 'Skipping creation of symlink /restore/data/composeapp.links/abs.link -> /etc/hostname') $([ -L "$WORLD_DIR/data/composeapp.links/abs.link" ] && echo made || echo skipped) $(readlink "$WORLD_DIR/data/composeapp.links/current")" \
	"2 1 skipped db/state"
"$S" set version 2.2.0.3_stable_2026-01-06
cli restore "$URL" --restore-path=/restore/data/composeapp.links22 --dbpath="$DB" --passphrase=$PASS
eq "version 2.2.0.3: made, and the result has no UnmodifiedFiles member" "$rc $(readlink "$WORLD_DIR/data/composeapp.links22/abs.link") $(newest_result | jn '"UnmodifiedFiles" in d')" "0 /etc/hostname false"
"$S" set version -
rm -f "$D/abs.link"

echo "-- faults"
"$S" set keep_out_composeapp note.txt
"$S" set corrupt_composeapp db/state
util run composeapp >/dev/null && "$S" wait-idle 30
"$S" set keep_out_composeapp -
"$S" set corrupt_composeapp -
eq "keep_out: the file is not in the version" "$(api GET '/api/v1/backup/1/files?time=now&filter=*note.txt' | jn 'd.Files.length')" 0
cli restore "$URL" /source/composeapp/db/state --restore-path=/restore/data/composeapp.corrupt --dbpath="$DB" --passphrase=$PASS
eq "corrupt: restore succeeds (exit 0), contents differ from the source in one byte" \
	"$rc $(cmp -l "$D/db/state" "$WORLD_DIR/data/composeapp.corrupt/state" | wc -l) $(stat -c %s "$WORLD_DIR/data/composeapp.corrupt/state")" "0 1 $(stat -c %s "$D/db/state")"
"$S" flag restore_zero on
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.zero"}')
eq "restore_zero: Completed, Success, 0 files, nothing there" \
	"$(task_end "$t") $(newest_result | jn 'd.ParsedResult + " " + d.RestoredFiles') $(ls "$WORLD_DIR/data/composeapp.zero" 2>/dev/null | wc -l)" "Completed Success 0 0"
"$S" flag restore_zero off
"$S" flag restore_fail_composeapp on
cli restore "$URL" --restore-path=/restore/data/composeapp.fail --dbpath="$DB" --passphrase=$PASS
n=$(find "$WORLD_DIR/data/composeapp.fail" -type f | wc -l)
eq "restore_fail: exit 100, File hash mismatch, part of the files written" "$rc $(echo "$out" | grep -c 'File hash mismatch') $([ "$n" -gt 0 ] && [ "$n" -lt "$nfiles" ] && echo partial)" "100 4 partial"
"$S" flag restore_fail_composeapp off
"$S" flag lose_owners on
t=$(restore_rest '{"paths":[],"time":"now","restore_path":"/restore/data/composeapp.lost","permissions":true}')
eq "lose_owners: permissions asked, Success, yet the process's owner and default modes" \
	"$(task_end "$t") $(newest_result | jn 'd.ParsedResult') $(stat -c '%U %a' "$WORLD_DIR/data/composeapp.lost/db/state")" "Completed Success $WORLD_USER 644"
"$S" flag lose_owners off

echo "-- export"
upodman exec duplicati rm -rf /tmp/exp
out=$(util export composeapp --unencrypted --export-passwords --destination /tmp/exp)
eq "duplicati-server-util export: the job's JSON with passphrase and DBPath" \
	"$(upodman exec duplicati cat /tmp/exp/1-composeapp.json | jn '[d.Backup.DBPath, d.Backup.TargetURL, d.Backup.Settings.find(s => s.Name === "passphrase").Value].join(" ")')" "$DB $URL $PASS"
eq "REST export-argsonly" "$(api GET '/api/v1/backup/1/export-argsonly?export-passwords=true' | jn 'd.Options.filter(o => /^--(dbpath|passphrase)=/.test(o)).join(" ")')" "--dbpath=$DB --passphrase=$PASS"
uctl start composeapp-stack.service

echo "-- a restore of 1 GB"
"$HERE/fill-data.sh" snapxfs 1024 20 >/dev/null
"$S" add-job 9 bigxfs /live/snapxfs 0
util run bigxfs >/dev/null && "$S" wait-idle 300
t0=$(date +%s%N)
cli restore file:///backups/bigxfs --restore-path=/restore/xfs/snapxfs.staging --dbpath="$(dbof bigxfs)" --passphrase=standin-bigxfs-passphrase --restore-permissions
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 5 | sed 's/^/       | /'
eq "1 GiB restored (exit 0, 1.00 GiB)" "$rc $(echo "$out" | grep '^Restored ' | grep -o '(1.0[0-9] GiB)')" "0 (1.00 GiB)"
if [ "$ms" -le 30000 ]; then ok "restore of 1 GiB took $ms ms"; else bad "restore of 1 GiB took $ms ms"; fi

echo "== back to baseline"
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
for u in $STACK_UNITS $SNAP_UNITS ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do eq "$u active" "$(active "$u")" active; done
eq "ondemand-proxy.service inactive" "$(active ondemand-proxy.service)" inactive

if [ "$FAILS" = 0 ]; then echo "selfcheck: all ok"; else echo "selfcheck: $FAILS failed"; exit 1; fi
