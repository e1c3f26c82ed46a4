#!/bin/sh
# Main process of the "duplicati" stand-in container: one worker that takes the
# head of the queue (after pickup_delay), "backs it up" for its duration while
# sampling the job's source folder, then records CLEAN or DIRTY (records.log)
# and the job's outcome (results.log, read by the REST API stand-in).
here=$(dirname "$(readlink -f "$0")")
. "$here/standin-lib.sh"

trap 'exit 0' TERM INT

init_state
event WORKER_START

# Fingerprint of a source folder: names, sizes, modes, owners, ns mtimes and
# the contents of every file (md5sum reads all of it; container root reads the
# subordinate-UID 0600 files too). An unreadable file changes the fingerprint
# ("unreadable" line) rather than being skipped silently.
snapshot() {
	_d=$(source_dir "$1")
	if [ -z "$1" ] || [ ! -d "$_d" ]; then
		echo missing
		return
	fi
	{
		find "$_d" -exec stat -c '%n %s %a %u:%g %y' {} + 2>/dev/null
		find "$_d" -type f -exec md5sum {} + 2>&1
	} | md5sum
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
	_snap0=$(snapshot "$_src")
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
		[ "$(gen_now)" = "$_gen" ] || return 1
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
	t=$1 b=$2 enq=${3:-0}
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
	sed 1d "$ST/queue" >"$ST/queue.tmp.$$" && mv -f "$ST/queue.tmp.$$" "$ST/queue"
	start=$(now_ms)
	write_file "$ST/active" "$t $b $start
"
	gen=$(gen_now)
	unlock

	run_job "$t" "$b" "$start" "$gen"

	lock
	if [ -f "$ST/active" ] && [ "$(cut -d' ' -f1 "$ST/active")" = "$t" ]; then
		rm -f "$ST/active"
	fi
	unlock
	idle_since=$(now_ms)
done
