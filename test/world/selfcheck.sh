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
	eq "$s inactive after stop" "$(active "$s-stack.service")" inactive
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
eq "ondemand stack inactive" "$(active ondemand-stack.service)" inactive
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
eq "stand-in does not see btrfs/hidden" "$(upodman exec duplicati sh -c 'ls -d /snapshots/*/hidden /hidden 2>/dev/null | wc -l')" 0

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

echo "== back to baseline"
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
for u in $STACK_UNITS $SNAP_UNITS ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do eq "$u active" "$(active "$u")" active; done
eq "ondemand-proxy.service inactive" "$(active ondemand-proxy.service)" inactive

if [ "$FAILS" = 0 ]; then echo "selfcheck: all ok"; else echo "selfcheck: $FAILS failed"; exit 1; fi
