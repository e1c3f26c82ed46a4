#!/bin/sh
# The restore of the Duplicati stand-in (busybox sh + awk), one implementation
# for `duplicati-cli restore` and for restores queued through the REST API
# (worker.sh runs it as the container's root, as Duplicati's server does).
#
#   restore.sh REQUEST RESULT
#
# REQUEST: key=value lines (the caller has resolved the options):
#   backup=ID            the backup whose versions are restored
#   db=local|recreate|other:ID   the job's own database, none (Duplicati
#                        rebuilds a temporary one from the remote files: slow,
#                        control file recreate_seconds), or another job's
#   time=EPOCH_SECONDS   --time (UTC, whole seconds), empty for none
#   versions=0,2-3       --version, empty for none
#   restore_path=PATH    empty: original locations
#   overwrite= permissions= skip_metadata= dont_compress= allow_outside=
#   no_backend_verification=   true|false
#   passphrase=ok|wrong  whether the caller supplied the job's passphrase
#   task=TASK            the REST task (stop/abort, pause), empty for the CLI
#   filter=+PATTERN / filter=-PATTERN   include/exclude filters in order
# RESULT: Outcome=Success|Warning|Error|Fatal and the counts (KEY=VALUE), the
# log entries base64-encoded (M64= messages, W64= warnings, E64= errors, as
# BasicResults.WriteMessage keeps them: LogEntry.AsString(false)), B64= broken
# files; ExceptionType/ExceptionMessage/HelpId when it threw. Standard output:
# what Duplicati's console shows at the default console-log-level (Warning):
# warnings and errors, phase messages, backend events (Commands.cs Restore,
# ConsoleOutput.cs). Exit 0, or 3 when the restore threw.
#
# Sources (duplicati/duplicati at v2.3.0.4_stable_2026-07-09 unless said):
# Library/Main/Operation/RestoreHandler.cs (DoRunNewAsync, PrepareBlockAndFileList,
# CreateDirectoryStructure), Library/Main/Database/LocalRestoreDatabase.cs
# (PrepareRestoreFilelist, GetLargestPrefix, SetTargetPaths),
# Library/Main/Database/LocalDatabase.cs (GetFilesetIDs, GetFilelistWhereClause),
# Library/Main/Operation/Restore/FileProcessor.cs, FileLister.cs,
# Library/SourceProvider/Builtin/FileRestoreDestinationProvider.cs (WriteMetadata),
# Library/Common/IO/SystemIOLinux.cs (SetMetadata), PosixFile.cs,
# Library/Utility/FilterExpression.cs.
here=$(dirname "$(readlink -f "$0")")
. "$here/standin-lib.sh"
. "$here/versions.sh"

REQ=$1
RES=$2
[ -f "$REQ" ] && [ -n "$RES" ] || { echo "usage: restore.sh REQUEST RESULT" >&2; exit 2; }

backup= db=local rtime= versions= rpath= overwrite=false permissions=false skip_metadata=false
dont_compress=false allow_outside=false no_verify=false passphrase=ok task=
W=/tmp/.restore.$$
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT
trap 'exit 143' TERM INT
: >"$W/filters"
while IFS= read -r _l || [ -n "$_l" ]; do
	case "$_l" in
	filter=*) printf '%s\n' "${_l#filter=}" >>"$W/filters" ;;
	backup=*) backup=${_l#*=} ;;
	db=*) db=${_l#*=} ;;
	time=*) rtime=${_l#*=} ;;
	versions=*) versions=${_l#*=} ;;
	restore_path=*) rpath=${_l#*=} ;;
	overwrite=*) overwrite=${_l#*=} ;;
	permissions=*) permissions=${_l#*=} ;;
	skip_metadata=*) skip_metadata=${_l#*=} ;;
	dont_compress=*) dont_compress=${_l#*=} ;;
	allow_outside=*) allow_outside=${_l#*=} ;;
	no_backend_verification=*) no_verify=${_l#*=} ;;
	passphrase=*) passphrase=${_l#*=} ;;
	task=*) task=${_l#*=} ;;
	esac
done <"$REQ"

job=$(find_job_by_id "$backup")
name=$(echo "$job" | awk '{ print $2 }')
SDIR=$(storage_dir "$backup")
OFF=$(utc_offset_seconds)
GNU=$here/gnu
BEGIN_MS=$(now_ms)

restored=0 restored_size=0 restored_data=0 folders=0 unmodified=0 unmodified_size=0
nwarn=0 nerr=0 stopped=0
: >"$W/log"

# per-job fault switches: NAME_<job> wins over NAME (read on use)
fault_on() { flag_on "$1_$name" || flag_on "$1"; }
fault_value() { setting "$1_$name" "$(setting "$1" "$2")"; }

# stamp: LogEntry.AsString's "yyyy-MM-dd HH:mm:ss zz" in the container's local time
stamp() {
	awk -v t="$(date +%s)" -v o="$OFF" 'BEGIN { h = int((o < 0 ? -o : o) / 3600)
		printf "%s %s%02d\n", strftime("%Y-%m-%d %H:%M:%S", t + o, 1), (o < 0 ? "-" : "+"), h }'
}
# logentry KEY LEVEL TAG ID MESSAGE [EXTYPE EXMESSAGE]
logentry() {
	_e="$(stamp) - [$2-$3-$4]: $5"
	[ -n "${6:-}" ] && _e="$_e
${6##*.}: $7"
	printf '%s=%s\n' "$1" "$(printf '%s' "$_e" | base64 | tr -d '\n')" >>"$W/log"
}
info() { logentry M64 Information "$@"; }
# warn TAG ID MESSAGE [EXTYPE EXMESSAGE]: result Warnings, and the console
warn() {
	nwarn=$((nwarn + 1))
	logentry W64 Warning "$@"
	if [ -n "${4:-}" ]; then printf '%s => %s\n' "$3" "$5"; else printf '%s\n' "$3"; fi
}
err() {
	nerr=$((nerr + 1))
	logentry E64 Error "$@"
	if [ -n "${4:-}" ]; then printf '%s => %s\n' "$3" "$5"; else printf '%s\n' "$3"; fi
}

# finish OUTCOME: writes RESULT
finish() {
	{
		echo "Outcome=$1"
		echo "BeginMs=$BEGIN_MS"
		echo "EndMs=$(now_ms)"
		echo "RestoredFiles=$restored"
		echo "SizeOfRestoredFiles=$restored_size"
		echo "SizeOfRestoredData=$restored_data"
		echo "RestoredFolders=$folders"
		echo "UnmodifiedFiles=$unmodified"
		echo "SizeOfUnmodifiedFiles=$unmodified_size"
		echo "RestorePath=$rpath"
		echo "FilesetVersion=${fs_version:-}"
		echo "FilesetTime=${fs_time:-}"
		echo "Stopped=$stopped"
		echo "ExceptionType=${ex_type:-}"
		echo "ExceptionMessage=${ex_message:-}"
		echo "HelpId=${ex_help:-}"
		cat "$W/log"
		[ -f "$W/broken" ] && while IFS= read -r _b; do printf 'B64=%s\n' "$(printf '%s' "$_b" | base64 | tr -d '\n')"; done <"$W/broken"
	} >"$RES.tmp.$$"
	mv -f "$RES.tmp.$$" "$RES"
}

# throw TYPE MESSAGE [HELPID]: Controller.RunAction's catch logs FailedOperation
# with the exception, writes the result as Fatal, and the exception goes on
# (task Failed; duplicati-cli exit 100)
throw() {
	ex_type=$1 ex_message=$2 ex_help=${3:-}
	err Duplicati.Library.Main.Controller FailedOperation "The operation Restore has failed" "$1" "$2"
	finish Fatal
	exit 3
}

# stop_asked: "stop" or "abort" when the REST API asked to end this task
stop_asked() {
	[ -n "$task" ] && [ -f "$ST/stop" ] || return 0
	# shellcheck disable=SC2046
	set -- $(cat "$ST/stop" 2>/dev/null)
	[ "$1" = "$task" ] && echo "$2"
}
# check_abort: an abort cancels the task's token (TaskControl.Terminate): the
# restore throws where it is. A stop does not end the file restore of the new
# engine (FileLister and FileProcessor do not look at it); only the end,
# ProgressRendevouz, sees it (RestoreHandler.DoRunNewAsync returns early).
check_abort() {
	case "$(stop_asked)" in
	abort) throw System.OperationCanceledException "The operation was canceled." ;;
	stop) stopped=1 ;;
	esac
}
# pause_ms MS: a slice of restore_seconds, abort checked every 0.1 s
pause_ms() {
	_left=$1
	while [ "$_left" -gt 0 ]; do
		_s=$_left
		[ "$_s" -gt 100 ] && _s=100
		usleep $((_s * 1000))
		_left=$((_left - _s))
		check_abort
	done
}

# size_string BYTES: Library.Utility.Utility.FormatSizeString ("{0:N} MiB", "12 bytes")
size_string() {
	awk -v s="$1" 'function n(x,   i, t, r) { t = sprintf("%.2f", x); i = index(t, ".")
			r = substr(t, i); t = substr(t, 1, i - 1)
			while (length(t) > 3) { r = "," substr(t, length(t) - 2) r; t = substr(t, 1, length(t) - 3) }
			return t r }
		BEGIN { a = s < 0 ? -s : s
		if (a >= 1099511627776) print n(s / 1099511627776) " TiB"; else if (a >= 1073741824) print n(s / 1073741824) " GiB"
		else if (a >= 1048576) print n(s / 1048576) " MiB"; else if (a >= 1024) print n(s / 1024) " KiB"; else print int(s) " bytes" }'
}

# set_mtime TS PATH: utimensat with 100 ns precision, the atime kept (GNU
# touch from the host's coreutils, through its loader; busybox touch has whole
# seconds only)
set_mtime() {
	if [ -x "$GNU/ld.so" ]; then
		"$GNU/ld.so" --library-path "$GNU" "$GNU/touch" -c -m -d "@$1" -- "$2"
	else
		touch -c -d "$(date -u -d "@${1%%.*}" '+%Y-%m-%d %H:%M:%S')" "$2"
	fi
}

# user_id NAME / group_id NAME: the id of a name in the container, empty if unknown
user_id() { awk -F: -v n="$1" '$1 == n { print $3; exit }' /etc/passwd 2>/dev/null; }
group_id() { awk -F: -v n="$1" '$1 == n { print $3; exit }' /etc/group 2>/dev/null; }

# apply_meta TARGET MODE UID GID CREATE ATTR OWNER GROUP: FileRestoreDestinationProvider.
# WriteMetadata: the mtime (CoreLastWritetime), then the "creation time"
# (CoreCreatetime, which on Linux .NET writes to the mtime too), the
# attributes (.NET SetAttributes: ReadOnly strips the write bits, anything else
# gives the owner write when it can read), then SystemIOLinux.SetMetadata: only
# with permissions, the owner by name where it resolves, else by id, and
# PosixFile.SetUserGroupAndPermissions: chown, then chmod; a refused chown
# leaves the mode unset. Any failure is one MetadataWriteFailed warning.
apply_meta() {
	_tp=$1 _md=$2 _ui=$3 _gi=$4 _cr=$5 _at=$6 _ow=$7 _gr=$8
	_fail=
	_fail=$(set_mtime "$_cr" "$_tp" 2>&1) || { meta_failed "$_tp" "$_fail"; return; }
	_cur=$(stat -c %a "$_tp" 2>/dev/null)
	_new=$(awk -v c="$_cur" -v ro="$_at" 'function oct(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 8 + substr(s, i, 1); return v }
		BEGIN { m = oct(c); if (ro == "ReadOnly") m = and(m, compl(146)); else if (and(m, 256)) m = or(m, 128); printf "%o\n", m }')
	[ "$_new" = "$_cur" ] || chmod "$_new" "$_tp" 2>/dev/null
	if [ "$permissions" = true ] && ! fault_on lose_owners; then
		[ "$_ow" != - ] && _x=$(user_id "$_ow") && [ -n "$_x" ] && _ui=$_x
		[ "$_gr" != - ] && _x=$(group_id "$_gr") && [ -n "$_x" ] && _gi=$_x
		if ! _fail=$(chown -h "$_ui:$_gi" "$_tp" 2>&1); then
			meta_failed "$_tp" "$_fail"
			return
		fi
		chmod "$_md" "$_tp" 2>/dev/null
	fi
}
# meta_failed PATH ERROR: Mono's UnixIOException message for the errno
meta_failed() {
	case "$2" in
	*"not permitted"*) _m="Operation not permitted [EPERM]." ;;
	*"nvalid argument"*) _m="Invalid argument [EINVAL]." ;;
	*"ead-only"*) _m="Read-only file system [EROFS]." ;;
	*"denied"*) _m="Permission denied [EACCES]." ;;
	*) _m="${2:-Unknown error}" ;;
	esac
	warn Duplicati.Library.Main.Operation.Restore.FileProcessor MetadataWriteFailed \
		"Failed to apply metadata to file: \"$1\", message: $_m" Mono.Unix.UnixIOException "$_m"
}

# local_time EPOCH FORMAT: a fileset time as the container's local time
local_time() { awk -v t="$1" -v o="$OFF" -v f="$2" 'BEGIN { print strftime(f, t + o, 1) }'; }

info Duplicati.Library.Main.Controller StartingOperation "The operation Restore has started"

# -------------------------------------------------------------- the database
if [ -z "$job" ]; then
	throw Duplicati.Library.Interface.UserInformationException "No backup at the specified date" NoBackupAtDate
fi
times=$(fileset_times "$backup")
case "$db" in
recreate)
	# RestoreHandler.RunAsync: "No local database, building a temporary
	# database": every dlist is downloaded and decrypted first
	info Duplicati.Library.Main.Operation.RestoreHandler NoLocalDatabase "No local database, building a temporary database"
	echo "  Listing remote folder ..."
	[ -n "$times" ] || throw Duplicati.Library.Interface.UserInformationException "No filelists found on the remote destination" EmptyRemoteLocation
	for _t in $times; do
		echo "  Downloading file duplicati-$(date -u -d "@$_t" '+%Y%m%dT%H%M%SZ').dlist.zip.aes ($(size_string $(($(wc -l <"$SDIR/filesets/$_t") * 180)))) ..."
		if [ "$passphrase" != ok ]; then
			throw System.Security.Cryptography.CryptographicException "Failed to decrypt data (invalid passphrase?): Invalid password or corrupted data"
		fi
	done
	# the temporary database is built from every remote volume: slow
	pause_ms "$(sec_to_ms "$(setting recreate_seconds 20)")"
	if [ "$no_verify" != true ]; then
		echo "Checking remote backup ..."
		echo "  Listing remote folder ..."
	fi
	;;
other:*)
	# another job's database: its remote volumes are not this storage's
	# (FilelistProcessor.VerifyRemoteList)
	if [ "$no_verify" != true ]; then
		echo "Checking remote backup ..."
		echo "  Listing remote folder ..."
		_n=$(($(echo "$times" | grep -c .) * 3))
		[ "$_n" -gt 0 ] || _n=1
		err Duplicati.Library.Main.Operation.FilelistProcessor ExtraRemoteFiles "Found $_n remote files that are not recorded in local storage. This can be caused by having two backups sharing a destination folder which is not supported. It can also be caused by restoring an old database. If you are certain that only one backup uses the folder and you have the most updated version of the database, you can use repair to delete the unknown files."
		throw Duplicati.Library.Interface.RemoteListVerificationException "Found $_n remote files that are not recorded in local storage. This can be caused by having two backups sharing a destination folder which is not supported. It can also be caused by restoring an old database. If you are certain that only one backup uses the folder and you have the most updated version of the database, you can use repair to delete the unknown files." ExtraRemoteFiles
	fi
	times=$(fileset_times "${db#other:}")
	SDIR=$(storage_dir "${db#other:}")
	;;
*)
	if [ "$no_verify" != true ]; then
		echo "Checking remote backup ..."
		echo "  Listing remote folder ..."
	fi
	;;
esac
[ -n "$times" ] || throw Duplicati.Library.Interface.UserInformationException "No backup at the specified date" NoBackupAtDate

# -------------------------------------------------------------- which version
# LocalDatabase.GetFilesetIDs: the filesets at or before the time, OR'ed with
# the valid versions, newest first; a version out of range is skipped with a
# warning; when neither selects any fileset: every fileset, newest first, and
# only a RestoreTimeNoMatch warning. (A WHERE left empty by invalid versions
# alone selects every fileset without that warning.)
echo "$times" >"$W/times"
awk -v t="$rtime" -v vs="$versions" '
	{ time[NR - 1] = $1; n = NR }
	END {
		nv = 0
		if (vs != "") {
			k = split(vs, parts, ",")
			for (i = 1; i <= k; i++) {
				if (parts[i] ~ /^[0-9]+-[0-9]+$/) { split(parts[i], r, "-"); for (j = r[1] + 0; j <= r[2] + 0; j++) want[++nv] = j }
				else if (parts[i] ~ /^-?[0-9]+$/) want[++nv] = parts[i] + 0
			}
		}
		cond = 0
		for (i = 1; i <= nv; i++) {
			if (want[i] >= 0 && want[i] < n) { ok[want[i]] = 1; cond = 1 } else print "SKIP " want[i]
		}
		if (t != "") cond = 1
		c = 0
		for (v = 0; v < n; v++) if (!cond || (t != "" && time[v] <= t + 0) || (v in ok)) { print "SEL " v " " time[v]; c++ }
		if (c == 0) { print "NOMATCH"; for (v = 0; v < n; v++) print "SEL " v " " time[v] }
	}' "$W/times" >"$W/candidates"
while read -r _k _v _t; do
	case "$_k" in
	SKIP) warn Duplicati.Library.Main.Database.LocalDatabase SkipInvalidVersion "Skipping invalid version: $_v" ;;
	NOMATCH) warn Duplicati.Library.Main.Database.LocalDatabase RestoreTimeNoMatch "Restore time or version did not match any existing backups, selecting newest backup" ;;
	esac
done <"$W/candidates"

# -------------------------------------------------------------- which entries
# LocalRestoreDatabase.PrepareRestoreFilelist: for each candidate fileset,
# newest first, the entries the filter selects; the first fileset in which it
# selects at least one file (the count joins Blockset: folders and symlinks do
# not count) is restored; if none has one, the last one tried.
# FilterExpression: [regex] matches whole paths, @path literally, * and ? are
# wildcards (also across /), anything else must equal the path; the first
# filter that matches decides; a path none matches is left out when there are
# only includes, kept otherwise. All-simple includes take the fast path
# (LocalRestoreDatabase "Path IN"), which warns FilesNotFoundInBackupList when
# some but not all were found.
select_entries() {
	awk -F "$TAB" -v OFS="$TAB" -v ffile="$W/filters" '
	function torx(s, wild,   i, c, r) {
		r = ""
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (wild && c == "*") r = r ".*"
			else if (wild && c == "?") r = r "."
			else if (index("\\.+()^$|{}[]*?", c)) r = r "\\" c
			else r = r c
		}
		return "^" r "$"
	}
	BEGIN {
		simple = 1
		while ((getline l < ffile) > 0) {
			if (l == "") continue
			nf++; sign[nf] = substr(l, 1, 1); f = substr(l, 2)
			if (sign[nf] == "X") excl = 1; else incl = 1
			if (f ~ /^\[.*\]$/) { f = substr(f, 2, length(f) - 2); kind[nf] = "rx"; rx[nf] = (f ~ /^\^/ && f ~ /\$$/) ? f : "^(" f ")$" }
			else if (f ~ /^@/) { kind[nf] = "eq"; val[nf] = substr(f, 2) }
			else if (f ~ /[*?]/) { kind[nf] = "rx"; rx[nf] = torx(f, 1) }
			else { kind[nf] = "eq"; val[nf] = f }
			if (kind[nf] != "eq" || sign[nf] != "+") simple = 0
		}
	}
	{
		p = $13; keep = -1
		for (i = 1; i <= nf; i++) {
			m = (kind[i] == "eq") ? (p == val[i]) : (p ~ rx[i])
			if (m) { keep = (sign[i] != "X"); if (kind[i] == "eq") found[i] = 1; break }
		}
		if (keep == -1) keep = (nf == 0) ? 1 : !(incl && !excl)
		if (!keep) next
		print; n++
	}
	END {
		if (nf > 0 && simple && n > 0 && n != nf)
			for (i = 1; i <= nf; i++) if (!(i in found)) print val[i] > "/dev/stderr"
	}' "$1"
}
fs_version= fs_time=
grep '^SEL ' "$W/candidates" >"$W/sel"
while read -r _k _v _t; do
	fs_version=$_v fs_time=$_t
	info Duplicati.Library.Main.Database.LocalRestoreDatabase SearchingBackup "Searching backup $_v ($(local_time "$_t" '%m/%d/%Y %H:%M:%S')) ..."
	select_entries "$SDIR/filesets/$_t" >"$W/entries" 2>"$W/notfound"
	[ "$(awk -F "$TAB" '$1 == "f"' "$W/entries" | grep -c .)" -gt 0 ] && break
done <"$W/sel"
if [ -s "$W/notfound" ]; then
	warn Duplicati.Library.Main.Database.LocalRestoreDatabase FilesNotFoundInBackupList \
		"$(grep -c . "$W/notfound") File(s) were not found in list of files for backup at $(local_time "$fs_time" '%m/%d/%Y %H:%M:%S'), will not be restored: 
$(cat "$W/notfound")
"
fi

# -------------------------------------------------------------- where they land
# Without a restore path: at their original paths. With one: the longest common
# folder prefix of the selected entries (GetLargestPrefix: from the longest
# path, up one folder at a time until every entry starts with it) is replaced
# by the restore path (SetTargetPaths); dont-compress-restore-paths keeps whole
# paths below it. Control file restore_prefix = keep-folder: master's rule
# (fc2e039b9 "Preserve selected folder during restore", only in 2.3.0.109
# canary): a single selected folder keeps its name when the version has
# entries outside it (RestoreHandler.GetRestorePathPrefixAsync).
prefix_rule=$(setting restore_prefix largest)
sel_folder=
if [ "$(grep -c . "$W/filters")" = 1 ]; then
	_f=$(sed 's/^.//' "$W/filters")
	case "$_f" in
	*/) sel_folder=$_f ;;
	\[*'.*]') _u=$(printf '%s' "$_f" | sed -e 's/^\[//' -e 's/\.\*\]$//' -e 's/\\\(.\)/\1/g')
		case "$_u" in */) sel_folder=$_u ;; esac ;;
	esac
fi
awk -F "$TAB" -v OFS="$TAB" -v dest="$rpath" -v nocompress="$dont_compress" -v rule="$prefix_rule" \
	-v selfolder="$sel_folder" -v version="$SDIR/filesets/$fs_time" '
	{ line[++n] = $0; path[n] = $13; if (length($13) > length(maxpath)) maxpath = $13 }
	END {
		prefix = ""
		if (dest != "" && nocompress != "true" && n > 0) {
			mp = maxpath
			while (mp != "") {
				cand = mp; if (cand !~ /\/$/) cand = cand "/"
				c = 0; for (i = 1; i <= n; i++) if (substr(path[i], 1, length(cand)) == cand) c++
				if (c == n) break
				old = length(mp); lix = 0
				for (i = length(mp) - 1; i >= 1; i--) if (substr(mp, i, 1) == "/") { lix = i; break }
				mp = substr(mp, 1, lix)
				if (mp == "" || length(mp) == old) mp = ""
			}
			prefix = mp == "" ? "" : (mp ~ /\/$/ ? mp : mp "/")
			if (rule == "keep-folder" && selfolder != "" && prefix == selfolder) {
				f = selfolder; sub(/\/$/, "", f); k = 0
				for (i = length(f); i >= 1; i--) if (substr(f, i, 1) == "/") { k = i; break }
				if (k > 0) {
					outside = 0
					while ((getline l < version) > 0) { split(l, a, "\t"); if (substr(a[13], 1, length(selfolder)) != selfolder) { outside = 1; break } }
					if (outside) prefix = substr(f, 1, k)
				}
			}
		}
		if (dest != "" && dest !~ /\/$/) dest = dest "/"
		for (i = 1; i <= n; i++) {
			if (dest == "") t = path[i]
			else if (prefix == "") t = dest path[i]
			else t = dest substr(path[i], length(prefix) + 1)
			print t, line[i]
		}
	}' "$W/entries" >"$W/targets"

# -------------------------------------------------------------- restore
fault_on restore_zero && zero=1 || zero=
if [ -n "$zero" ]; then
	# fault: the restore "succeeds" and restores nothing
	: >"$W/targets"
fi
# symlink target outside the restore path (2.3.0.0 and later; FileRestoreDestinationProvider.WriteMetadata)
check_links=
[ -n "$rpath" ] && [ "$allow_outside" != true ] && version_at_least 2.3.0.0 && check_links=1
rroot=$(printf '%s' "$rpath" | sed 's:/*$::')

# CreateDirectoryStructure: the restore root (not protected: a failure throws),
# then every selected folder; each folder made counts in RestoredFolders
if [ -n "$rpath" ] && [ -z "$zero" ]; then
	if [ ! -d "$rpath" ]; then
		mkdir -p "$rpath" 2>/dev/null || throw System.UnauthorizedAccessException "Access to the path '$rroot' is denied."
		folders=$((folders + 1))
	fi
fi
awk -F "$TAB" '$2 == "d" { print $1 }' "$W/targets" >"$W/folders"
while IFS= read -r _d; do
	_d=${_d%/}
	[ -n "$_d" ] || _d=/
	[ -d "$_d" ] && continue
	if _e=$(mkdir -p "$_d" 2>&1); then folders=$((folders + 1)); else
		warn Duplicati.Library.Main.Operation.RestoreHandler FolderCreateFailed "Failed to create folder: \"$_d\", message: $_e" System.IO.IOException "$_e"
	fi
done <"$W/folders"
check_abort

# the files, largest first (GetFilesAndSymlinksToRestore: ORDER BY Length DESC,
# symlinks last), then the folders' metadata once every file is done
awk -F "$TAB" -v OFS="$TAB" '$2 == "f" { print 1, $3, $0 } $2 == "l" { print 0, 0, $0 }' "$W/targets" |
	sort -t "$TAB" -k1,1nr -k2,2nr | cut -f3- >"$W/files"
nfiles=$(grep -c . "$W/files")
total=$(awk -F "$TAB" '$2 == "f" { s += $3 } END { print s + 0 }' "$W/files")
echo "  $nfiles files need to be restored ($(size_string "$total"))"

if [ "$passphrase" != ok ]; then
	# the first volume that is decrypted (VolumeDecryptor): the folders exist, no file
	err Duplicati.Library.Main.Operation.Restore.VolumeDecryptor DecryptionError "Error during decryption" \
		System.Security.Cryptography.CryptographicException "Failed to decrypt data (invalid passphrase?): Invalid password or corrupted data"
	throw System.Security.Cryptography.CryptographicException "Failed to decrypt data (invalid passphrase?): Invalid password or corrupted data"
fi

# the volumes downloaded (backend events on the console): one dblock per 50 MiB
_vols=$(((total + 52428799) / 52428800))
_i=0
while [ "$_i" -lt "$_vols" ]; do
	_left=$((total - _i * 52428800))
	[ "$_left" -gt 52428800 ] && _left=52428800
	echo "  Downloading file duplicati-b$(printf '%s-%s' "$backup" "$_i" | md5sum | cut -c1-32).dblock.zip.aes ($(size_string "$_left")) ..."
	_i=$((_i + 1))
done

slow_ms=$(sec_to_ms "$(fault_value restore_seconds 0)")
slice=0
[ "$slow_ms" -gt 0 ] && slice=$((slow_ms / (nfiles + 1)))
fail_at=-1
fault_on restore_fail && fail_at=$((nfiles / 2))
rdate=$(local_time "$fs_time" '%Y-%m-%d')
done_files=0

# count R|U SIZE WRITTEN: a file restored or left unmodified
count() { echo "$1 $2 $3" >>"$W/counts"; }
: >"$W/counts"

while IFS="$TAB" read -r tp t sz ui gi md mt cr h ow gr at tg op; do
	[ "$slice" -gt 0 ] && pause_ms "$slice"
	check_abort
	if [ "$t" = l ]; then
		# symlinks are made by WriteMetadata, which runs only without skip-metadata
		if [ "$skip_metadata" = true ]; then count U 0 0; continue; fi
		if [ -n "$check_links" ]; then
			_abs=$(awk -v p="$tp" -v k="$tg" 'BEGIN {
				if (substr(k, 1, 1) != "/") { d = p; sub(/\/[^\/]*$/, "", d); k = d "/" k }
				n = split(k, a, "/"); m = 0
				for (i = 1; i <= n; i++) { if (a[i] == "" || a[i] == ".") continue; if (a[i] == "..") { if (m > 0) m--; continue } b[++m] = a[i] }
				r = ""; for (i = 1; i <= m; i++) r = r "/" b[i]; print (r == "" ? "/" : r) }')
			case "$_abs" in
			"$rroot" | "$rroot"/*) ;;
			*)
				warn Duplicati.Library.SourceProvider.FileRestoreDestinationProvider SymlinkTargetOutside \
					"Skipping creation of symlink $tp -> $tg because it points outside the restore target"
				count U 0 0
				continue
				;;
			esac
		fi
		# an existing file or folder there is deleted first
		if [ -e "$tp" ] || [ -L "$tp" ]; then rm -rf -- "$tp"; fi
		mkdir -p "$(dirname "$tp")" 2>/dev/null
		ln -s -- "$tg" "$tp" 2>/dev/null || { meta_failed "$tp" "$(ln -s -- "$tg" "$tp" 2>&1)"; count U 0 0; continue; }
		count R 0 0
		continue
	fi
	blob=$SDIR/blobs/$h
	# FileProcessor.VerifyTargetBlocks: an existing identical file is left as is
	same=
	if [ -f "$tp" ] && [ "$(stat -c %s "$tp" 2>/dev/null)" = "$sz" ] && [ "$(md5sum <"$tp" | cut -d' ' -f1)" = "$h" ]; then same=1; fi
	target=$tp
	if [ -z "$same" ] && [ -e "$tp" ] && [ "$overwrite" != true ]; then
		# GenerateNewName: name.yyyy-MM-dd.ext (the version's date, local), then
		# "name.yyyy-MM-dd (N).ext"; a candidate that already holds the content is used as is
		_dir=${tp%/*} _base=${tp##*/}
		case "$_base" in
		*.*) _ext=.${_base##*.} _stem=${_base%.*} ;;
		*) _ext= _stem=$_base ;;
		esac
		[ "$_ext" = . ] && { _ext=; _stem=$_base; }
		_new=$_dir/$_stem.$rdate
		target=$_new$_ext
		_c=0
		while [ -e "$target" ] && [ "$_c" -lt 100 ]; do
			[ "$(md5sum <"$target" | cut -d' ' -f1)" = "$h" ] && { same=1; break; }
			target="$_new ($_c)$_ext"
			_c=$((_c + 1))
		done
		[ "$_c" -ge 100 ] && throw System.Exception "Too many conflicts when trying to find a new name for the target file"
	fi
	written=0
	if [ "$sz" = 0 ] || [ -z "$same" ]; then
		_pd=${target%/*}
		if [ -n "$_pd" ] && [ ! -d "$_pd" ]; then
			mkdir -p "$_pd" 2>/dev/null
			warn Duplicati.Library.Main.Operation.Restore.FileProcessor CreateMissingFolder "Creating missing folder \"$_pd\" for file \"$target\""
		fi
		if [ "$done_files" = "$fail_at" ]; then
			# fault: a corrupt volume; the file is left half written and the restore throws
			head -c $((sz / 2)) "$blob" >"$target" 2>/dev/null
			echo "$target" >>"$W/broken"
			err Duplicati.Library.Main.Operation.Restore.FileProcessor FileHashMismatch "File hash mismatch for $target - expected: $h, actual: $(head -c $((sz / 2)) "$blob" | md5sum | cut -d' ' -f1)"
			err Duplicati.Library.Main.Operation.Restore.FileProcessor FileProcessingError "Error during file processing" System.Exception "File hash mismatch"
			throw System.Exception "File hash mismatch"
		fi
		if ! _e=$(cat "$blob" 2>&1 >"$target"); then
			# the file's own error ends the restore (FileProcessor: BrokenLocalFiles, rethrown)
			echo "$target" >>"$W/broken"
			case "$_e" in
			*"No space left"*) _xt=System.IO.IOException _xm="No space left on device : '$target'" ;;
			*"ead-only"*) _xt=System.IO.IOException _xm="Read-only file system : '$target'" ;;
			*denied* | *"not permitted"*) _xt=System.UnauthorizedAccessException _xm="Access to the path '$target' is denied." ;;
			*) _xt=System.IO.IOException _xm="${_e:-I/O error} : '$target'" ;;
			esac
			err Duplicati.Library.Main.Operation.Restore.FileProcessor FileProcessingError "Error during file processing" "$_xt" "$_xm"
			throw "$_xt" "$_xm"
		fi
		written=$sz
		[ "$sz" = 0 ] && written=0
	fi
	done_files=$((done_files + 1))
	[ "$skip_metadata" = true ] || apply_meta "$target" "$md" "$ui" "$gi" "$cr" "$at" "$ow" "$gr"
	if [ "$sz" = 0 ] || [ "$written" -gt 0 ]; then count R "$sz" "$written"; else count U "$sz" 0; fi
done <"$W/files"
if [ "$fail_at" -ge 0 ]; then
	# fault restore_fail with no regular file to half-write: it throws all the same
	err Duplicati.Library.Main.Operation.Restore.FileProcessor FileProcessingError "Error during file processing" System.Exception "File hash mismatch"
	throw System.Exception "File hash mismatch"
fi
eval "$(awk '$1 == "R" { r++; rs += $2; rd += $3 } $1 == "U" { u++; us += $2 }
	END { printf "restored=%d restored_size=%.0f restored_data=%.0f unmodified=%d unmodified_size=%.0f\n", r, rs, rd, u, us }' "$W/counts")"

# folder metadata, after every file (FileProcessor rendezvous before folder metadata)
if [ "$skip_metadata" != true ] && [ -z "$zero" ]; then
	awk -F "$TAB" -v OFS="$TAB" '$2 == "d"' "$W/targets" >"$W/dirs"
	while IFS="$TAB" read -r tp t sz ui gi md mt cr h ow gr at tg op; do
		[ -d "$tp" ] && apply_meta "$tp" "$md" "$ui" "$gi" "$cr" "$at" "$ow" "$gr"
	done <"$W/dirs"
fi
check_abort

# a paused server holds the task at its end (TaskControl.ProgressRendevouz)
if [ -n "$task" ]; then
	while flag_on paused; do
		usleep 100000
		check_abort
	done
fi

if [ "$stopped" = 0 ]; then
	echo "  0 files need to be restored (0 bytes)"
	echo "Verifying restored files ..."
	if [ -z "$zero" ] && [ "$restored" = 0 ]; then
		if [ "$unmodified" = 0 ] || ! version_at_least 2.3.0.2; then
			warn Duplicati.Library.Main.Operation.RestoreHandler NoFilesRestored "Restore completed without errors but no files were restored"
		else
			info Duplicati.Library.Main.Operation.RestoreHandler NoFilesNeededRestore "Restore completed but all files were already present"
		fi
	fi
	echo "Completing restore on destination ..."
fi
info Duplicati.Library.Main.Controller CompletedOperation "The operation Restore has completed"
nwarn=$(grep -c '^W64=' "$W/log")
nerr=$(grep -c '^E64=' "$W/log")
if [ "$nerr" -gt 0 ]; then finish Error; elif [ "$nwarn" -gt 0 ]; then finish Warning; else finish Success; fi
exit 0
