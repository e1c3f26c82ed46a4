# shellcheck shell=sh
# Shared code of the Duplicati stand-in (busybox sh, runs inside the
# "duplicati" container). Sourced by duplicati-server-util and worker.sh.
#
# Control folder (/control, host: $WORLD_DIR/duplicati), see test/world/README.md:
#   jobs            "ID NAME SOURCE [DURATION]" per line ('#' comments);
#                   SOURCE is a folder under /source, or an absolute path in
#                   the container when it begins with / (a missing absolute
#                   source fails the job Fatal, as Duplicati's does)
#   duration        seconds a job runs (default 2, fractions allowed)
#   pickup_delay    seconds a queued job waits before the worker takes it (default 0)
#   paused          flag file: server state Paused, queued tasks never start
#   hang_run        flag file: `run` enqueues, prints its line, then hangs
#   hang_run_before flag file: `run` prints its line, then hangs BEFORE it
#                   enqueues (RunBackup.cs prints the line before the request)
#   hang_seconds    how long either hang lasts (default: until the flag is off);
#                   a `run` that outlives its hang goes on (and enqueues)
#   version         the server's version, `--version` and systeminfo
#                   (default 2.3.0.4_stable_2026-07-09); `run --wait` ends
#                   with "Backup status: ..." from 2.2.0.3, exits 2/3/4 for
#                   Warning/Error/Fatal from 2.3.1.0
#   start_delay     seconds every duplicati-server-util call sleeps before it
#                   does anything (a .NET start and a sign-in; default 0)
#   log_locked      seconds after a task ends during which GET backup/ID/log
#                   still answers DatabaseLockedException (default 0; while a
#                   task of that backup is active it always does)
#   connect_error   if non-empty: every command fails with
#                   "Failed to connect to server: <text>", exit 2
#   extra_lines     lines printed right after "Connecting to ..." (parser tests)
#   hosturl         default host URL shown in "Connecting to ..." lines
#   outcome         Success|Warning|Error|Fatal: how every job ends (default
#                   Success). Fatal is the failure that throws: the task ends
#                   Failed, the record gets LastErrorDate/LastErrorMessage and
#                   keeps its LastBackup* keys (Runner.cs UpdateMetadataError)
#   outcome_<NAME>, outcome_<ID>   the same for one job (wins over outcome)
#   records.log     one line per finished job (written here)
#   results.log     one line per ended task with its outcome (a Fatal one may
#                   carry its error message after the word), Interrupted for a
#                   stopped or aborted one (written here and by the REST API
#                   stand-in; the job records (Metadata) are computed from it)
#   events.log      one line per event (written here)
#   state/          queue, active, counter, generation, lock (written here);
#                   stop ("TASK stop|abort", written by the REST API stand-in),
#                   progress ("TASK DONE_MS TOTAL_MS", written by the worker)

CTL=${STANDIN_CONTROL:-/control}
ST=$CTL/state
SRC=${STANDIN_SOURCE:-/source}

# source_dir SOURCE: the folder a job's SOURCE names in the container: an
# absolute path as is, anything else under /source.
source_dir() {
	case "$1" in
	/*) echo "$1" ;;
	*) echo "$SRC/$1" ;;
	esac
}

# Current epoch time in milliseconds. busybox date has no %N; a fresh file's
# mtime (busybox stat %y) carries nanoseconds.
now_ms() {
	_f=/tmp/.clock.$$
	: >"$_f"
	# shellcheck disable=SC2046
	set -- $(stat -c '%Y %y' "$_f")
	rm -f "$_f"
	case "$3" in
	*.*) _fr=${3#*.} ;;
	*) _fr=000000000 ;;
	esac
	_fr=$(echo "$_fr" | cut -c1-3)
	echo $(($1 * 1000 + 1$_fr - 1000))
}

# "2.5" -> 2500
sec_to_ms() {
	awk -v s="$1" 'BEGIN { v = s * 1000; if (v < 0) v = 0; printf "%d\n", v }'
}

# setting NAME DEFAULT: first line of $CTL/NAME, or DEFAULT when missing/empty.
setting() {
	_v=
	[ -f "$CTL/$1" ] && read -r _v <"$CTL/$1"
	_v=$(echo "$_v" | tr -d ' \t\r')
	if [ -n "$_v" ]; then echo "$_v"; else echo "$2"; fi
}

# flag_on NAME: file exists and does not say off/0/false/no.
flag_on() {
	[ -e "$CTL/$1" ] || return 1
	_v=
	read -r _v <"$CTL/$1" 2>/dev/null
	case "$_v" in off | 0 | false | no) return 1 ;; esac
	return 0
}

# mkdir-based lock over state/; a lock older than 3 s is considered stale.
lock() {
	_n=0
	until mkdir "$ST/lock" 2>/dev/null; do
		_n=$((_n + 1))
		if [ $((_n % 50)) = 0 ]; then
			_m=$(stat -c %Y "$ST/lock" 2>/dev/null) &&
				[ $(($(date +%s) - _m)) -ge 3 ] && rmdir "$ST/lock" 2>/dev/null
		fi
		usleep 20000
	done
}
unlock() { rmdir "$ST/lock" 2>/dev/null; }

# write_file PATH CONTENT (atomic replace; call with the lock held)
write_file() {
	printf '%s' "$2" >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}

# find_job ID-OR-NAME -> "ID NAME SOURCE [DURATION]" (first match, name case-insensitive)
find_job() {
	[ -f "$CTL/jobs" ] || return 0
	awk -v q="$1" 'BEGIN { lq = tolower(q) }
		/^[ \t]*(#|$)/ { next }
		tolower($2) == lq || $1 == q { print; exit }' "$CTL/jobs"
}

# find_job_by_id ID
find_job_by_id() {
	[ -f "$CTL/jobs" ] || return 0
	awk -v q="$1" '/^[ \t]*(#|$)/ { next } $1 == q { print; exit }' "$CTL/jobs"
}

event() {
	echo "$(now_ms) $*" >>"$CTL/events.log"
}

init_state() {
	mkdir -p "$ST" 2>/dev/null
	[ -f "$ST/counter" ] || echo 10 >"$ST/counter"
	[ -f "$ST/generation" ] || echo 0 >"$ST/generation"
	[ -f "$ST/queue" ] || : >"$ST/queue"
}

# The version the stand-in claims (Duplicati's `--version` / systeminfo ServerVersionName).
# The restore behaves as this version does where releases differ (see README).
standin_version() {
	setting version 2.3.0.4_stable_2026-07-09
}

# version_at_least 2.3.0.2: the claimed version is that or newer.
version_at_least() {
	awk -v have="$(standin_version)" -v need="$1" 'BEGIN {
		split(have, h, /[._-]/); split(need, n, /[._-]/)
		for (i = 1; i <= 4; i++) { if (h[i] + 0 > n[i] + 0) exit 0; if (h[i] + 0 < n[i] + 0) exit 1 }
		exit 0 }'
}

# The job's local database, as the server names it: /data/Duplicati/ and ten
# capital letters (the server picks them at random; here derived from the
# name, the same in duplicati-api/server.mjs). /data/Duplicati is a symlink to
# /control/db (worker.sh), so the files survive container restarts.
db_name() {
	printf '%s' "$1" | sha256sum | awk '{ for (i = 0; i < 10; i++) printf "%c", 65 + (("0x" substr($1, 2 * i + 1, 2)) + 0) % 26; print "" }'
}
db_path() { echo "/data/Duplicati/$(db_name "$1").sqlite"; }

# The job's storage URL (TargetURL) and passphrase (its "passphrase" setting;
# control file passphrase_<NAME> overrides the default).
job_url() { echo "file:///backups/$1"; }
job_passphrase() {
	_pp=
	[ -f "$CTL/passphrase_$1" ] && IFS= read -r _pp <"$CTL/passphrase_$1"
	if [ -n "$_pp" ]; then printf '%s\n' "$_pp"; else printf 'standin-%s-passphrase\n' "$1"; fi
}

# utc_offset_seconds: the container's local time offset (control file
# timezone, "+02:00" or "-05:30"; default UTC as in the official image, which
# sets no TZ).
utc_offset_seconds() {
	awk -v z="$(setting timezone +00:00)" 'BEGIN {
		s = substr(z, 1, 1) == "-" ? -1 : 1; sub(/^[+-]/, "", z); split(z, p, ":")
		print s * (p[1] * 3600 + p[2] * 60) }'
}

# backup_status ID: what Connection.GetBackupStatus reads, the ParsedResult of the
# backup's newest log row (results.log; a stopped run's row says Success, with
# Interrupted true; a restore's row its own result), or "No log generated" when
# it has none.
backup_status() {
	[ -f "$CTL/results.log" ] || { echo "No log generated"; return; }
	awk -v want="$1" 'NF >= 6 && $2 == want { last = $6; sub(/^Restore-/, "", last) }
		END { if (last == "") print "No log generated"; else if (last == "Interrupted") print "Success"; else print last }' "$CTL/results.log"
}

# log_locked_now ID: whether GET backup/ID/log would answer DatabaseLockedException
# now: while a task of that backup runs, and log_locked seconds after its last run
# ended (as the REST API stand-in answers).
log_locked_now() {
	[ -f "$ST/active" ] && [ "$(cut -d' ' -f2 "$ST/active")" = "$1" ] && return 0
	_ll=$(sec_to_ms "$(setting log_locked 0)")
	[ "$_ll" -gt 0 ] || return 1
	_end=$(awk -v want="$1" 'NF >= 6 && $2 == want { e = $5 } END { print e + 0 }' "$CTL/results.log" 2>/dev/null)
	[ $(($(now_ms) - ${_end:-0})) -lt "$_ll" ]
}

# metadata ID: the job's record (Metadata) as "KEY=VALUE" lines, computed from
# results.log as Runner.cs UpdateMetadataBase / UpdateMetadataError leave it:
# a completed run (any ParsedResult, not interrupted) sets LastBackupStarted,
# LastBackupFinished, LastBackupDuration (hh:mm:ss.fffffff), LastBackupDate,
# BackupListCount and sizes; a run that threw (Fatal) sets LastErrorDate and
# LastErrorMessage only; an interrupted one changes nothing. Dates are
# yyyyMMddTHHmmssZ (Library.Utility.Utility.SerializeDateTime).
metadata() {
	[ -f "$CTL/results.log" ] || return 0
	_times=$(ls "$CTL/storage/$1/filesets" 2>/dev/null | grep '^[0-9][0-9]*$' | sort -rn)
	awk -v want="$1" -v ctl="$CTL" -v newest="$(echo "$_times" | head -n1)" -v count="$(echo "$_times" | grep -c .)" '
	function exmsg(file,   l, v) { v = ""; while ((getline l < file) > 0) if (l ~ /^ExceptionMessage=/) v = substr(l, 18); close(file); return v }
	function d(ms) { return strftime("%Y%m%dT%H%M%SZ", int(ms / 1000), 1) }
	function span(ms,   s, f) {
		s = int(ms / 1000); f = ms % 1000
		return sprintf("%02d:%02d:%02d%s", int(s / 3600) % 24, int(s / 60) % 60, s % 60, f ? sprintf(".%03d0000", f) : "")
	}
	NF >= 6 && $2 == want {
		if ($6 == "Interrupted") next
		# a restore (Runner.UpdateMetadataBase / UpdateMetadataError): a REST one
		# sets LastRestore*, or LastError* when it threw; a CLI one ("-") none
		if ($6 ~ /^Restore-/) {
			if ($1 == "-") next
			if ($6 == "Restore-Fatal") {
				m["LastErrorDate"] = d($5)
				m["LastErrorMessage"] = exmsg(ctl "/" $7)
			} else {
				m["LastRestoreStarted"] = d($4); m["LastRestoreFinished"] = d($5); m["LastRestoreDuration"] = span($5 - $4)
			}
			next
		}
		if ($6 == "Fatal") {
			m["LastErrorDate"] = d($5)
			if (NF > 6) {
				msg = $7
				for (i = 8; i <= NF; i++) msg = msg " " $i
				m["LastErrorMessage"] = msg
			} else m["LastErrorMessage"] = "The stand-in was told to end " $3 " with Fatal (outcome setting)"
			next
		}
		m["SourceFilesSize"] = 0; m["SourceFilesCount"] = 0; m["TargetFilesSize"] = 0
		m["LastBackupStarted"] = d($4); m["LastBackupFinished"] = d($5); m["LastBackupDuration"] = span($5 - $4)
	}
	# the newest version and the number of versions: the stored filesets
	END {
		if (newest != "") { m["LastBackupDate"] = strftime("%Y%m%dT%H%M%SZ", newest, 1); m["BackupListCount"] = count }
		for (k in m) print k "=" m[k] }' "$CTL/results.log" | sort
}

# json_string TEXT: TEXT as a JSON string literal.
json_string() {
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' -e 's/\r/\\r/g' |
		awk 'BEGIN { ORS = ""; print "\"" } NR > 1 { print "\\n" } { print } END { print "\"" }'
}

# parse_time TEXT: Library.Utility.Timeparser.ParseTimeInterval(TEXT, now) as
# epoch seconds (UTC, whole seconds); exit 1 when it cannot be parsed. Empty
# or "now": now; "1D2h" and the like: now plus that (s m h D W M Y); a bare
# number: now plus that many SECONDS (not an epoch time); a date as
# DateTime.TryParse reads it (invariant culture: 2026-07-01, 2026-07-01T10:00:00Z,
# 2026-07-01 10:00:00+02:00, 07/01/2026 10:00:00), local time when it has no
# zone; or yyyyMMddTHHmmssZ.
parse_time() {
	awk -v s="$1" -v now="$(date +%s)" -v o="$(utc_offset_seconds)" 'BEGIN {
		gsub(/^[ \t]+|[ \t]+$/, "", s)
		if (s == "" || tolower(s) == "now") { print now; exit 0 }
		if (s ~ /^([0-9]+[smhDWMY])+$/) {
			t = now; rest = s
			while (match(rest, /^[0-9]+[smhDWMY]/)) {
				n = substr(rest, 1, RLENGTH - 1) + 0; u = substr(rest, RLENGTH, 1); rest = substr(rest, RLENGTH + 1)
				t += n * (u == "s" ? 1 : u == "m" ? 60 : u == "h" ? 3600 : u == "D" ? 86400 : u == "W" ? 604800 : u == "M" ? 2592000 : 31536000)
			}
			print t; exit 0
		}
		if (s ~ /^-?[0-9]+$/) { print now + s; exit 0 }
		if (s ~ /^[0-9]{8}T[0-9]{6}Z$/) {
			print mktime(substr(s, 1, 4) " " substr(s, 5, 2) " " substr(s, 7, 2) " " substr(s, 10, 2) " " substr(s, 12, 2) " " substr(s, 14, 2)); exit 0
		}
		zone = ""; local = 1
		if (match(s, /(Z|[+-][0-9][0-9]:?[0-9][0-9])$/)) { zone = substr(s, RSTART); s = substr(s, 1, RSTART - 1); local = 0 }
		H = 0; M = 0; S = 0
		if (s ~ /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$/) {
			split(s, a, /[-T :.]/); y = a[1]; mo = a[2]; d = a[3]; if (a[4] != "") { H = a[4]; M = a[5]; S = a[6] + 0 }
		} else if (s ~ /^[0-9]{1,2}\/[0-9]{1,2}\/[0-9]{4}( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?( ?[AaPp][Mm])?)?$/) {
			pm = (s ~ /[Pp][Mm]$/); am = (s ~ /[Aa][Mm]$/); sub(/ ?[AaPp][Mm]$/, "", s)
			split(s, a, /[\/ :]/); mo = a[1]; d = a[2]; y = a[3]; if (a[4] != "") { H = a[4] + 0; M = a[5]; S = a[6] + 0 }
			if (pm && H < 12) H += 12; if (am && H == 12) H = 0
		} else exit 1
		if (mo < 1 || mo > 12 || d < 1 || d > 31 || H > 23 || M > 59 || S > 59) exit 1
		t = mktime(y " " mo " " d " " H " " M " " S)
		if (local) t -= o
		else if (zone != "Z") { zs = substr(zone, 1, 1) == "-" ? -1 : 1; gsub(/[^0-9]/, "", zone); t -= zs * (substr(zone, 1, 2) * 3600 + substr(zone, 3, 2) * 60) }
		print t
	}'
}

# show_time EPOCH: a DateTime in local time as .NET's ToString() writes it in
# the container's culture (control file culture: "invariant", the official
# image, which sets no LANG: MM/dd/yyyy HH:mm:ss; "en-US", e.g. the
# LinuxServer image's LANG=en_US.UTF-8: M/d/yyyy h:mm:ss AM)
show_time() {
	awk -v t="$1" -v o="$(utc_offset_seconds)" -v c="$(setting culture invariant)" 'BEGIN {
		t += o
		if (c == "en-US") {
			h = strftime("%H", t, 1) + 0; ap = h < 12 ? "AM" : "PM"; h = h % 12; if (h == 0) h = 12
			printf "%d/%d/%s %d:%s %s\n", strftime("%m", t, 1), strftime("%d", t, 1), strftime("%Y", t, 1), h, strftime("%M:%S", t, 1), ap
		} else print strftime("%m/%d/%Y %H:%M:%S", t, 1) }'
}

# job_settings NAME: the job's Settings as "NAME=VALUE" lines, in order: what
# the web UI stores for an encrypted job (encryption-module, compression-module,
# dblock-size, passphrase), then the lines of control file job_settings_<NAME>
# ("--name=value" advanced options, e.g. --dont-compress-restore-paths=true)
job_settings() {
	echo "encryption-module=aes"
	echo "compression-module=zip"
	echo "dblock-size=50mb"
	echo "passphrase=$(job_passphrase "$1")"
	[ -f "$CTL/job_settings_$1" ] && grep -v '^[[:space:]]*\(#\|$\)' "$CTL/job_settings_$1"
	return 0
}
