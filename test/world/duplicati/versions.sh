# shellcheck shell=sh
# Backup versions of the Duplicati stand-in (busybox sh, sourced after
# standin-lib.sh by worker.sh, duplicati-cli and restore.sh).
#
# A job run that completes (Success, Warning, Error) keeps a version (a
# fileset) of what the job read at its start: every folder, regular file and
# symlink under its source, with the metadata Duplicati records per entry, and
# the contents stored content-addressed (one blob per distinct content):
#
#   /control/storage/<backup id>/blobs/<md5>          contents
#   /control/storage/<backup id>/filesets/<epoch s>   one manifest per version
#   /control/storage/<backup id>/pending.<task>       the manifest of a job under way
#
# Manifest: one entry per line, tab-separated (names with tabs or newlines are
# not supported):
#   TYPE SIZE UID GID MODE MTIME CREATE MD5 OWNER GROUP ATTR TARGET PATH
# TYPE d|f|l; MODE the permission bits in octal (Mono's FileAccessPermissions,
# 0777 only); MTIME and CREATE "SECONDS.FFFFFFF", whole .NET ticks (100 ns):
# Duplicati stores CoreLastWritetime and CoreCreatetime as DateTime ticks
# (Library/Main/Operation/Backup/MetadataGenerator.cs), read through .NET, which
# on Linux has no birth time and gives the older of mtime and ctime as the
# creation time (dotnet/runtime FileStatus.Unix.cs GetCreationTime); a restore
# sets the mtime, then the "creation time", which on Linux sets the mtime again
# (FileStatus.SetTimes.OtherUnix.cs), so a file comes back with CREATE as its
# mtime, truncated to 100 ns. OWNER/GROUP the names where they resolve in the
# container, else "-" (unix:owner-name, SystemIOLinux.cs GetMetadata); ATTR
# "ReadOnly" or "-": .NET's ReadOnly attribute as the container's root reads
# the file (CoreAttributes; FileStatus.Unix.cs IsModeReadOnlyCore), which a
# restore applies even without permissions (SetAttributes strips or adds write
# bits); TARGET the symlink target or "-"; PATH as Duplicati records it, the
# absolute container path, folders with a trailing "/".

STORE=$CTL/storage
TAB=$(printf '\t')

storage_dir() { echo "$STORE/$1"; }

# scan_raw DIR: every entry under DIR as stat lines, md5 lines (container root
# reads every file; an unreadable one gives an md5sum error line instead) and
# symlink lines. Reading all contents is what makes a job "read its data".
scan_raw() {
	find "$1" -exec stat -c "S${TAB}%F${TAB}%s${TAB}%u${TAB}%g${TAB}%a${TAB}%Y${TAB}%y${TAB}%Z${TAB}%z${TAB}%U${TAB}%G${TAB}%n" {} + 2>/dev/null
	find "$1" -type f -exec md5sum {} + 2>&1
	find "$1" -type l -exec stat -c "L${TAB}%N" {} + 2>/dev/null
}

# fingerprint RAWFILE: the sample's fingerprint for CLEAN/DIRTY (names, types,
# sizes, modes, owners, ns mtimes, contents; not ctimes, which change when
# nothing a backup keeps does).
fingerprint() {
	awk -F "$TAB" 'BEGIN { OFS = "\t" } $1 == "S" { $9 = ""; $10 = "" } { print }' "$1" | md5sum | cut -d' ' -f1
}

# build_manifest RAWFILE: the manifest lines (see above) of a raw scan, sorted by path.
build_manifest() {
	awk -F "$TAB" -v OFS="$TAB" '
	function oct(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 8 + substr(s, i, 1); return v }
	function frac(human,   f) {
		# "2026-07-01 10:20:30.123456789 +0000" -> "123456789"
		if (match(human, /\.[0-9]+/)) f = substr(human, RSTART + 1, RLENGTH - 1); else f = ""
		while (length(f) < 9) f = f "0"
		return f
	}
	# .NET GetAttributes ReadOnly as the container root (euid 0, in group 0 only) sees it
	function readonly(m, uid, gid,   u, g, o) {
		u = and(m, 256) && !and(m, 128); g = and(m, 32) && !and(m, 16); o = and(m, 4) && !and(m, 2)
		if (u == g && g == o) return u
		if (uid == 0) return u
		if (g == u) return g
		if (gid == 0) return g
		return o
	}
	$1 == "S" {
		t = $2
		if (t ~ /^regular/) t = "f"; else if (t == "directory") t = "d"; else if (t == "symbolic link") t = "l"; else next
		path = $13
		for (i = 14; i <= NF; i++) path = path "\t" $i
		if (t == "d") sub(/\/*$/, "/", path)
		m = and(oct($6), 511)
		mf = frac($8); cf = frac($10)
		ms = $7; cs = $9
		# creation time on Linux: the older of mtime and ctime (ns compare), then ticks
		if (ms + 0 < cs + 0 || (ms + 0 == cs + 0 && mf <= cf)) { crs = ms; crf = mf } else { crs = cs; crf = cf }
		type[path] = t; size[path] = (t == "f" ? $3 : 0); uid[path] = $4; gid[path] = $5
		mode[path] = sprintf("%o", m)
		mt[path] = ms "." substr(mf, 1, 7); ct[path] = crs "." substr(crf, 1, 7)
		own[path] = ($11 == "UNKNOWN" || $11 == "") ? "-" : $11
		grp[path] = ($12 == "UNKNOWN" || $12 == "") ? "-" : $12
		ro[path] = readonly(m, $4, $5) ? "ReadOnly" : "-"
		order[++n] = path
		next
	}
	$1 == "L" {
		s = $2
		for (i = 3; i <= NF; i++) s = s "\t" $i
		k = index(s, "'"'"' -> '"'"'")
		if (k > 0) { p = substr(s, 2, k - 2); tg = substr(s, k + 6); sub(/'"'"'$/, "", tg); target[p] = tg }
		next
	}
	/^[0-9a-f]{32}  / { md5[substr($0, 35)] = substr($0, 1, 32); next }
	END {
		for (i = 1; i <= n; i++) {
			p = order[i]; t = type[p]
			h = "-"
			if (t == "f") { if (!(p in md5)) continue; h = md5[p] }
			tg = (t == "l") ? ((p in target) ? target[p] : "") : "-"
			print t, size[p], uid[p], gid[p], mode[p], mt[p], ct[p], h, own[p], grp[p], ro[p], tg, p
		}
	}' "$1" | sort -t "$TAB" -k13
}

# lines_of FILE: the non-comment lines of a control file (paths), as is.
lines_of() {
	[ -f "$1" ] && grep -v '^[[:space:]]*\(#\|$\)' "$1"
}

# fault_paths NAME SRC KIND: absolute container paths listed in /control/KIND_<NAME>
# (absolute, or relative to the job's source folder SRC)
fault_paths() {
	lines_of "$CTL/$3_$1" | while IFS= read -r _p; do
		case "$_p" in
		/*) echo "$_p" ;;
		*) echo "${2%/}/$_p" ;;
		esac
	done
}

# store_version ID NAME SRC RAWFILE TASK: writes the pending manifest of TASK
# (what the job read: RAWFILE, its first sample) and stores every content not
# stored yet. keep_out_<NAME> paths are left out (as a filter would);
# corrupt_<NAME> files are stored with one byte changed, and the manifest holds
# the hash of what was stored, so a restore's own hash check passes.
store_version() {
	_sid=$1 _sname=$2 _ssrc=$3 _sraw=$4 _stask=$5
	_sdir=$(storage_dir "$_sid")
	mkdir -p "$_sdir/blobs" "$_sdir/filesets"
	_sman=$_sdir/pending.$_stask
	# (a reset may remove the storage while a job runs: every write below may
	# fail, and none may end the worker; no ":" with a redirection here, a
	# special builtin whose redirection error would exit the shell)
	build_manifest "$_sraw" >"$_sman.tmp" 2>/dev/null || return 0
	_keep=$(fault_paths "$_sname" "$_ssrc" keep_out)
	if [ -n "$_keep" ]; then
		printf '%s\n' "$_keep" >"$_sman.keep"
		awk -F "$TAB" 'NR == FNR { k = $0; sub(/\/+$/, "", k); out[k] = 1; next }
			{ p = $13; q = p; sub(/\/+$/, "", q)
			  for (k in out) if (q == k || index(p, k "/") == 1) next
			  print }' "$_sman.keep" "$_sman.tmp" >"$_sman.tmp2"
		mv -f "$_sman.tmp2" "$_sman.tmp"
		rm -f "$_sman.keep"
	fi
	_corrupt=$(fault_paths "$_sname" "$_ssrc" corrupt)
	printf '' >"$_sman.fix" 2>/dev/null || return 0
	while IFS="$TAB" read -r _vt _vsz _vu _vg _vm _vmt _vct _vh _vo _vgr _vro _vtg _vp; do
		[ "$_vt" = f ] || continue
		_bad=
		if [ -n "$_corrupt" ] && printf '%s\n' "$_corrupt" | grep -qxF -- "$_vp"; then _bad=1; fi
		if [ -z "$_bad" ] && [ -e "$_sdir/blobs/$_vh" ]; then continue; fi
		_tmp=$_sdir/blobs/.tmp.$$
		cat -- "$_vp" >"$_tmp" 2>/dev/null || { rm -f "$_tmp"; continue; }
		if [ -n "$_bad" ] && [ -s "$_tmp" ]; then
			# one byte changed: the first, to another value
			_vb=$(head -c1 "$_tmp" | od -An -tu1 | tr -d ' ')
			if [ "$_vb" = 65 ]; then _nb='B'; else _nb='A'; fi
			printf '%s' "$_nb" | dd of="$_tmp" bs=1 count=1 conv=notrunc 2>/dev/null
		fi
		_nh=$(md5sum "$_tmp" | cut -d' ' -f1)
		mv -f "$_tmp" "$_sdir/blobs/$_nh"
		# the file changed between its first read and the copy (or was corrupted):
		# the version holds what was stored
		[ "$_nh" = "$_vh" ] || printf '%s\t%s\n' "$_vp" "$_nh" >>"$_sman.fix"
	done <"$_sman.tmp"
	if [ -s "$_sman.fix" ]; then
		awk -F "$TAB" -v OFS="$TAB" 'NR == FNR { h[$1] = $2; next } ($13 in h) { $8 = h[$13] } { print }' \
			"$_sman.fix" "$_sman.tmp" >"$_sman"
		rm -f "$_sman.tmp"
	else
		mv -f "$_sman.tmp" "$_sman"
	fi
	rm -f "$_sman.fix"
}

# commit_version ID TASK START_MS: the pending version of TASK becomes a
# fileset. Its time is the operation's start in whole seconds (UTC), or one
# second after the newest fileset when that is not earlier (BackupHandler.cs:
# a fileset name already taken is retried one second later).
commit_version() {
	_cdir=$(storage_dir "$1")
	[ -f "$_cdir/pending.$2" ] || return 0
	_ct=$(($3 / 1000))
	_newest=$(ls "$_cdir/filesets" 2>/dev/null | sort -n | tail -n1)
	[ -n "$_newest" ] && [ "$_newest" -ge "$_ct" ] && _ct=$((_newest + 1))
	mv -f "$_cdir/pending.$2" "$_cdir/filesets/$_ct"
}

# drop_pending ID TASK: a job that threw or was stopped keeps no version.
drop_pending() { rm -f "$(storage_dir "$1")/pending.$2"; }

# fileset_times ID: the versions' times, newest first (version 0 first).
fileset_times() {
	ls "$(storage_dir "$1")/filesets" 2>/dev/null | grep '^[0-9][0-9]*$' | sort -rn
}
