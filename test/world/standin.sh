#!/bin/bash
# Host-side control of the Duplicati stand-in (run as root). Writes files in
# $WORLD_DIR/duplicati (the container's /control); changes apply at once.
#
#   standin.sh reset [--keep-versions]    queue, active task, flags, settings,
#                                         jobs, records and events back to
#                                         defaults (task counter keeps counting);
#                                         every stored backup version, the jobs'
#                                         databases and restore results are
#                                         removed, unless --keep-versions
#   standin.sh set KEY VALUE              KEY: duration | pickup_delay | start_delay | hosturl |
#                                         connect_error | extra_lines |
#                                         outcome | outcome_<JOBNAME> | outcome_<ID>
#                                         (Success|Warning|Error|Fatal) |
#                                         api_password | token_ttl | token_clock_skew |
#                                         hang_seconds (how long a hang lasts; default
#                                         until the flag is off) | version (e.g.
#                                         2.2.0.3_stable_2025-12-04) | log_locked
#                                         (seconds the log stays locked after a task) |
#                                         restores: recreate_seconds | restore_seconds[_<JOB>] |
#                                         cli_lock_seconds | timezone (+HH:MM) |
#                                         culture (invariant | en-US) |
#                                         restore_prefix (largest | keep-folder) |
#                                         passphrase_<JOB> | job_settings_<JOB>
#                                         (lines "--name=value") |
#                                         keep_out_<JOB> PATH | corrupt_<JOB> PATH
#                                         (one path per line: container path or
#                                         relative to the job's source)
#                                         (VALUE "" or "-" removes the setting)
#   standin.sh flag NAME on|off           NAME: paused | hang_run (after it queued) |
#                                         hang_run_before (before it queued) |
#                                         restore_zero[_<JOB>] | restore_fail[_<JOB>] |
#                                         lose_owners[_<JOB>]
#   standin.sh versions JOB               the job's stored versions: VERSION EPOCH_S ENTRIES
#   standin.sh cli ARGS...                podman exec duplicati duplicati-cli ARGS
#   standin.sh add-job ID NAME SOURCE [DURATION]   (SOURCE under /source, or
#                                         an absolute path in the container)
#   standin.sh remove-job ID-OR-NAME
#   standin.sh jobs | records | results | events    print the file
#   standin.sh wait-idle [SECONDS]        wait until no active task and empty
#                                         queue (default 60 s; exit 1 on timeout)
#   standin.sh util ARGS...               podman exec duplicati duplicati-server-util ARGS
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids

CTL=$WORLD_DIR/duplicati
ST=$CTL/state
DEFAULT_JOBS="# ID NAME SOURCE [DURATION]  (SOURCE is a folder under /source, or absolute)
1 composeapp composeapp
2 plainapp plainapp
3 ondemand ondemand
4 snapbtrfs /snapshots/btrfs/snapbtrfs
5 snapxfs /snapshots/xfs/snapxfs
6 quadpod quadpod
7 quadgroup quadgroup"

[ -d "$CTL" ] || die "$CTL missing; run setup.sh"
mkdir -p "$ST"

lock() {
	local n=0 m
	until mkdir "$ST/lock" 2>/dev/null; do
		n=$((n + 1))
		if [ $((n % 50)) = 0 ]; then
			m=$(stat -c %Y "$ST/lock" 2>/dev/null) && [ $(($(date +%s) - m)) -ge 3 ] && rmdir "$ST/lock" 2>/dev/null
		fi
		sleep 0.02
	done
}
unlock() { rmdir "$ST/lock" 2>/dev/null || true; }

# put NAME CONTENT: atomic write of $CTL/NAME, readable/writable by the container
put() {
	local tmp
	tmp=$(mktemp "$CTL/.$(basename "$1").XXXXXX")
	printf '%s\n' "$2" >"$tmp"
	chmod 644 "$tmp"
	chown "$WORLD_USER:" "$tmp"
	mv -f "$tmp" "$CTL/$1"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
reset)
	keep=0
	[ "${1:-}" = --keep-versions ] && keep=1
	lock
	gen=$(cat "$ST/generation" 2>/dev/null || echo 0)
	echo $((gen + 1)) >"$ST/generation"
	[ -f "$ST/counter" ] || echo 10 >"$ST/counter"
	: >"$ST/queue"
	rm -f "$ST/active" "$ST"/*.tmp.* "$CTL/paused" "$CTL/hang_run" "$CTL/connect_error" \
		"$CTL/extra_lines" "$CTL/hosturl" "$CTL/outcome" "$CTL"/outcome_* "$CTL/api_password" \
		"$CTL/token_ttl" "$CTL/token_clock_skew" "$CTL/hang_run_before" "$CTL/hang_seconds" \
		"$CTL/version" "$CTL/log_locked" "$CTL/start_delay" "$ST/stop" "$ST/progress" "$ST"/restore.* \
		"$CTL/recreate_seconds" "$CTL"/restore_seconds* "$CTL/cli_lock_seconds" "$CTL/timezone" \
		"$CTL/culture" "$CTL/restore_prefix" "$CTL"/passphrase_* "$CTL"/job_settings_* "$CTL"/keep_out_* \
		"$CTL"/corrupt_* "$CTL"/restore_zero* "$CTL"/restore_fail* "$CTL"/lose_owners*
	if [ "$keep" = 0 ]; then
		rm -rf "$CTL/storage" "$CTL/db" "$CTL/restores"
	else
		rm -f "$CTL"/storage/*/pending.*
	fi
	mkdir -p "$CTL/storage" "$CTL/db" "$CTL/restores"
	put jobs "$DEFAULT_JOBS"
	put duration 2
	put pickup_delay 0
	: >"$CTL/records.log"
	: >"$CTL/results.log"
	echo "$(now_ms) RESET" >"$CTL/events.log"
	chown -R "$WORLD_USER:" "$CTL"
	chmod 644 "$CTL/records.log" "$CTL/results.log" "$CTL/events.log"
	unlock
	echo "stand-in reset (next task id $(($(cat "$ST/counter") + 1)))"
	;;
set)
	[ $# -eq 2 ] || die "usage: standin.sh set KEY VALUE"
	key=$1 val=$2
	case "$key" in
	duration | pickup_delay | start_delay | hosturl | connect_error | extra_lines | api_password) ;;
	token_ttl | token_clock_skew | log_locked | hang_seconds)
		case "$val" in "" | -) ;; *[!0-9]*) die "$key must be whole seconds" ;; esac
		;;
	version)
		case "$val" in "" | - | [0-9]*.[0-9]*.[0-9]*.[0-9]*) ;; *) die "version looks like 2.3.0.4_stable_2026-07-09" ;; esac
		;;
	recreate_seconds | restore_seconds | restore_seconds_* | cli_lock_seconds)
		case "$val" in "" | -) ;; *[!0-9.]* | .*) die "$key must be seconds (fractions allowed)" ;; esac
		;;
	timezone)
		case "$val" in "" | - | [+-][0-9][0-9]:[0-9][0-9]) ;; *) die "timezone looks like +02:00 or -05:30" ;; esac
		;;
	culture)
		case "$val" in "" | - | invariant | en-US) ;; *) die "culture is invariant or en-US" ;; esac
		;;
	restore_prefix)
		case "$val" in "" | - | largest | keep-folder) ;; *) die "restore_prefix is largest or keep-folder" ;; esac
		;;
	passphrase_* | job_settings_* | keep_out_* | corrupt_*)
		case "$key" in *_ | *[!A-Za-z0-9._-]*) die "bad job name in $key" ;; esac
		;;
	outcome | outcome_*)
		case "$key" in outcome_*[!A-Za-z0-9._-]* | outcome_) die "bad job name in $key" ;; esac
		case "$(echo "$val" | tr 'A-Z' 'a-z')" in
		success) val=Success ;;
		warning) val=Warning ;;
		error) val=Error ;;
		fatal) val=Fatal ;;
		"" | -) ;;
		*) die "outcome must be Success, Warning, Error or Fatal" ;;
		esac
		;;
	*) die "unknown setting $key" ;;
	esac
	if [ -z "$val" ] || [ "$val" = - ]; then rm -f "${CTL:?}/$key"; else put "$key" "$val"; fi
	;;
flag)
	[ $# -eq 2 ] || die "usage: standin.sh flag NAME on|off"
	case "$1" in
	paused | hang_run | hang_run_before | restore_zero | restore_fail | lose_owners) ;;
	restore_zero_* | restore_fail_* | lose_owners_*) case "$1" in *_ | *[!A-Za-z0-9._-]*) die "bad job name in $1" ;; esac ;;
	*) die "unknown flag $1" ;;
	esac
	case "$2" in
	on) put "$1" on ;;
	off) rm -f "${CTL:?}/$1" ;;
	*) die "flag value must be on or off" ;;
	esac
	;;
add-job)
	[ $# -ge 3 ] && [ $# -le 4 ] || die "usage: standin.sh add-job ID NAME SOURCE [DURATION]"
	lock
	jobs=$(grep -v -E "^[[:space:]]*$1[[:space:]]" "$CTL/jobs" 2>/dev/null || true)
	put jobs "$jobs
$*"
	unlock
	;;
remove-job)
	[ $# -eq 1 ] || die "usage: standin.sh remove-job ID-OR-NAME"
	lock
	jobs=$(awk -v q="$1" 'BEGIN { lq = tolower(q) } /^[ \t]*(#|$)/ { print; next }
		!($1 == q || tolower($2) == lq) { print }' "$CTL/jobs")
	put jobs "$jobs"
	unlock
	;;
jobs) cat "$CTL/jobs" ;;
records) cat "$CTL/records.log" 2>/dev/null || true ;;
results) cat "$CTL/results.log" 2>/dev/null || true ;;
events) cat "$CTL/events.log" 2>/dev/null || true ;;
wait-idle)
	secs=${1:-60}
	end=$(($(date +%s) + secs))
	while [ -s "$ST/queue" ] || [ -e "$ST/active" ]; do
		[ "$(date +%s)" -ge "$end" ] && { echo "stand-in not idle after $secs s" >&2; exit 1; }
		sleep 0.1
	done
	;;
util)
	as_user podman exec duplicati duplicati-server-util "$@"
	;;
cli)
	as_user podman exec duplicati duplicati-cli "$@"
	;;
versions)
	[ $# -eq 1 ] || die "usage: standin.sh versions JOB"
	id=$(awk -v q="$1" 'BEGIN { lq = tolower(q) } /^[ \t]*(#|$)/ { next } $1 == q || tolower($2) == lq { print $1; exit }' "$CTL/jobs")
	[ -n "$id" ] || die "no job $1"
	ls "$CTL/storage/$id/filesets" 2>/dev/null | grep '^[0-9][0-9]*$' | sort -rn | awk '{ print NR - 1, $1 }' |
		while read -r v t; do echo "$v $t $(grep -c '' "$CTL/storage/$id/filesets/$t")"; done
	;;
*)
	awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || exit 2
	;;
esac
