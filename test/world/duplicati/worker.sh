#!/bin/sh
# Main process of the "duplicati" stand-in container: one worker that takes the
# head of the queue (after pickup_delay), "backs it up" for its duration while
# sampling the job's source folder, then records CLEAN or DIRTY (records.log)
# and the job's outcome (results.log, read by the REST API stand-in). A job
# that completes keeps a version of what it read at its start (versions.sh).
# A queued restore (from POST /api/v1/backup/ID/restore) runs restore.sh here,
# as the container's root, as Duplicati's server runs it in its container.
here=$(dirname "$(readlink -f "$0")")
. "$here/standin-lib.sh"
. "$here/versions.sh"

trap 'exit 0' TERM INT

init_state
mkdir -p "$CTL/db" "$STORE" "$CTL/restores" 2>/dev/null
# the server's data folder in the official image (XDG_CONFIG_HOME=/data): the
# jobs' databases live there (Backup.DBPath)
mkdir -p /data 2>/dev/null && ln -sfn "$CTL/db" /data/Duplicati
event WORKER_START

# snapshot SOURCE [RAWFILE]: fingerprint of a source folder: names, types,
# sizes, modes, owners, ns mtimes and the contents of every file (md5sum reads
# all of it; container root reads the subordinate-UID 0600 files too). An
# unreadable file changes the fingerprint (its error line) rather than being
# skipped silently. With RAWFILE the scan is kept there (the version is built
# from the first sample).
snapshot() {
	_d=$(source_dir "$1")
	if [ -z "$1" ] || [ ! -d "$_d" ]; then
		echo missing
		return
	fi
	_raw=${2:-/tmp/.scan.$$}
	scan_raw "$_d" >"$_raw"
	fingerprint "$_raw"
	[ -n "$2" ] || rm -f "$_raw"
}

gen_now() { cat "$ST/generation" 2>/dev/null; }

# outcome_for NAME BACKUPID: the job's result (Success|Warning|Error|Fatal) from
# outcome_<NAME>, else outcome_<BACKUPID>, else outcome; anything else is Success.
outcome_for() {
	_o=$(setting "outcome_$1" "")
	[ -n "$_o" ] || _o=$(setting "outcome_$2" "")
	[ -n "$_o" ] || _o=$(setting outcome Success)
	case "$(echo "$_o" | tr 'A-Z' 'a-z')" in
	warning) echo Warning ;;
	error) echo Error ;;
	fatal) echo Fatal ;;
	*) echo Success ;;
	esac
}

# stop_request TASK: "stop" or "abort" when the REST API stand-in asked to end
# TASK (state/stop, TaskQueueService.StopTaskAsync / AbortTaskAsync).
stop_request() {
	[ -f "$ST/stop" ] || return 0
	# shellcheck disable=SC2046
	set -- $(cat "$ST/stop" 2>/dev/null)
	[ "$1" = "$_t" ] && echo "$2"
}

# run_job TASK BACKUPID START_MS GENERATION
# Like Duplicati's runner: a paused server holds the running task where it is
# (it goes on when the server resumes); "stop" ends it after the current file
# (here 0.3 s), "abort" at once; either way it ends Interrupted and the job's
# record is not updated.
run_job() {
	_t=$1 _b=$2 _start=$3 _gen=$4
	_job=$(find_job_by_id "$_b")
	_name=? _src= _dur=
	if [ -n "$_job" ]; then
		# shellcheck disable=SC2086
		set -- $_job
		_name=$2 _src=$3 _dur=$4
	fi
	[ -n "$_dur" ] || _dur=$(setting duration 2)
	_dur_ms=$(sec_to_ms "$_dur")
	event START "$_t" "$_b" "$_name"
	# An absolute source folder that is missing when the job starts: Duplicati's
	# Controller (ExpandInputSources) throws UserInformationException
	# SourceIsMissing "The source folder X does not exist, aborting backup"
	# within milliseconds: the job ends Fatal at once (task Failed,
	# LastErrorDate/LastErrorMessage), with the message in results.log.
	_missing=
	case "$_src" in
	/*)
		if [ ! -d "$_src" ]; then
			_missing="The source folder ${_src%/}/ does not exist, aborting backup"
			_dur_ms=0
		fi
		;;
	esac
	# the version is what the job read at its start: its first sample
	_raw0=/tmp/.scan0.$$
	_snap0=$(snapshot "$_src" "$_raw0")
	if [ "$_snap0" != missing ]; then
		[ -e "$CTL/db/$(db_name "$_name").sqlite" ] ||
			printf 'stand-in database of backup %s (%s)\n' "$_b" "$_name" >"$CTL/db/$(db_name "$_name").sqlite"
		store_version "$_b" "$_name" "$(source_dir "$_src")" "$_raw0" "$_t"
	fi
	rm -f "$_raw0"
	_samples=0 _changed=0 _stopped=
	_end=$((_start + _dur_ms))
	_prev=$_start
	while :; do
		_now=$(now_ms)
		if [ -z "$_stopped" ] && flag_on paused; then
			# held: the time paused does not count towards the job's duration (a
			# stop or abort releases the hold: Library/Main/Operation/Common/
			# TaskControl.cs Stop() completes a paused task's wait, Stopped)
			_end=$((_end + _now - _prev))
		fi
		_prev=$_now
		_req=$(stop_request)
		if [ -n "$_req" ] && [ -z "$_stopped" ]; then
			_stopped=$_req
			event STOP_REQUEST "$_t" "$_b" "$_name" "$_req"
			if [ "$_req" = abort ]; then _end=$_now; elif [ $((_now + 300)) -lt "$_end" ]; then _end=$((_now + 300)); fi
		fi
		[ "$_now" -ge "$_end" ] && break
		_left=$((_end - _now))
		[ "$_left" -gt 100 ] && _left=100
		usleep $((_left * 1000))
		[ "$(gen_now)" = "$_gen" ] || { drop_pending "$_b" "$_t"; return 1; }
		_done=$((_dur_ms - (_end - $(now_ms))))
		[ "$_done" -lt 0 ] && _done=0
		write_file "$ST/progress" "$_t $_done $_dur_ms
"
		_s=$(snapshot "$_src")
		_samples=$((_samples + 1))
		[ "$_s" = "$_snap0" ] || _changed=$((_changed + 1))
	done
	# A job of duration 0 ends at once (a real job that fails on start ends in
	# milliseconds): its one look at the source is the record.
	if [ "$_dur_ms" -gt 0 ]; then
		_s=$(snapshot "$_src")
		_samples=$((_samples + 1))
		[ "$_s" = "$_snap0" ] || _changed=$((_changed + 1))
	fi
	_stop=$(now_ms)
	_res=CLEAN
	[ "$_changed" -gt 0 ] && _res=DIRTY
	_out=$(outcome_for "$_name" "$_b")
	[ -n "$_missing" ] && _out="Fatal $_missing"
	[ -n "$_stopped" ] && _out=Interrupted
	# a run that completed (Success, Warning, Error) keeps its version; one that
	# threw (Fatal) or was stopped keeps none
	case "$_out" in
	Success | Warning | Error) [ "$(gen_now)" = "$_gen" ] && commit_version "$_b" "$_t" "$_start" ;;
	*) drop_pending "$_b" "$_t" ;;
	esac
	lock
	if [ "$(gen_now)" = "$_gen" ]; then
		if [ -n "$_stopped" ]; then
			event STOPPED "$_t" "$_b" "$_name" "$_res"
		else
			echo "$_t $_b $_name $_start $_stop $_res $_samples $_changed" >>"$CTL/records.log"
			event END "$_t" "$_b" "$_name" "$_res"
		fi
		# read by the REST API stand-in (duplicati-api/server.mjs) and by
		# `list-backups` (the job's record, standin-lib.sh metadata)
		echo "$_t $_b $_name $_start $_stop $_out" >>"$CTL/results.log"
	fi
	rm -f "$ST/stop" "$ST/progress"
	unlock
	return 0
}

# run_restore TASK BACKUPID START_MS GENERATION: a restore queued through the
# REST API (state/restore.TASK holds its request, see restore.sh). Duplicati
# runs it in the same one-worker queue as backups (Runner.CreateRestoreTask,
# QueueRunnerService); its "Result" goes into the backup's log, and the job's
# record gets LastRestore* (or LastError* when it threw; Runner.cs
# UpdateMetadataBase / UpdateMetadataError), computed from results.log.
run_restore() {
	_t=$1 _b=$2 _start=$3 _gen=$4
	_job=$(find_job_by_id "$_b")
	_name=?
	[ -n "$_job" ] && _name=$(echo "$_job" | awk '{ print $2 }')
	event RESTORE_START "$_t" "$_b" "$_name"
	_res=$CTL/restores/$_t.result
	"$here/restore.sh" "$ST/restore.$_t" "$_res" >/dev/null 2>&1
	_out=$(sed -n 's/^Outcome=//p' "$_res" 2>/dev/null)
	[ -n "$_out" ] || { _out=Fatal; printf 'Outcome=Fatal\nExceptionType=System.Exception\nExceptionMessage=The restore stand-in ended without a result\n' >"$_res"; }
	_stop=$(now_ms)
	lock
	if [ "$(gen_now)" = "$_gen" ]; then
		event RESTORE_END "$_t" "$_b" "$_name" "$_out"
		echo "$_t $_b $_name $_start $_stop Restore-$_out restores/$_t.result" >>"$CTL/results.log"
	fi
	rm -f "$ST/stop" "$ST/progress" "$ST/restore.$_t"
	unlock
}

idle_since=$(now_ms)
while :; do
	if flag_on paused; then
		idle_since=$(now_ms)
		usleep 100000
		continue
	fi
	head=$(head -n1 "$ST/queue" 2>/dev/null)
	if [ -z "$head" ]; then
		usleep 50000
		continue
	fi
	# shellcheck disable=SC2086
	set -- $head
	t=$1 b=$2 enq=${3:-0} kind=${4:-backup}
	delay_ms=$(sec_to_ms "$(setting pickup_delay 0)")
	base=$enq
	[ "$idle_since" -gt "$base" ] && base=$idle_since
	if [ "$(now_ms)" -lt $((base + delay_ms)) ]; then
		usleep 50000
		continue
	fi
	lock
	cur=$(head -n1 "$ST/queue" 2>/dev/null)
	if [ "$cur" != "$head" ] || flag_on paused; then
		unlock
		continue
	fi
	# active first, then off the queue: a reader without the lock (standin.sh
	# wait-idle) never sees the task in neither place
	start=$(now_ms)
	if [ "$kind" = restore ]; then
		write_file "$ST/active" "$t $b $start restore
"
	else
		write_file "$ST/active" "$t $b $start
"
	fi
	sed 1d "$ST/queue" >"$ST/queue.tmp.$$" && mv -f "$ST/queue.tmp.$$" "$ST/queue"
	gen=$(gen_now)
	unlock

	if [ "$kind" = restore ]; then
		run_restore "$t" "$b" "$start" "$gen"
	else
		run_job "$t" "$b" "$start" "$gen"
	fi

	lock
	if [ -f "$ST/active" ] && [ "$(cut -d' ' -f1 "$ST/active")" = "$t" ]; then
		rm -f "$ST/active"
	fi
	unlock
	idle_since=$(now_ms)
done
