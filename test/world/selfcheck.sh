#!/bin/bash
# Exercises a running world end to end (about a minute) and ends with reset.sh,
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
for u in $STACK_UNITS ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do eq "$u active" "$(active "$u")" active; done
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
eq "backups list" "$(api GET /api/v1/backups | jget '[x["Backup"]["ID"] + ":" + x["Backup"]["Name"] for x in d]')" "['1:composeapp', '2:plainapp', '3:ondemand']"
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

echo "== back to baseline"
"$HERE/reset.sh" --quiet >/dev/null || bad "reset.sh"
for u in $STACK_UNITS ondemand-proxy.socket $DUPLICATI_UNIT $DUPLICATI_API_UNIT; do eq "$u active" "$(active "$u")" active; done
eq "ondemand-proxy.service inactive" "$(active ondemand-proxy.service)" inactive

if [ "$FAILS" = 0 ]; then echo "selfcheck: all ok"; else echo "selfcheck: $FAILS failed"; exit 1; fi
