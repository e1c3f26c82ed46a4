#!/bin/bash
# Replaces a snapshot stack's bulk data (for benchmarks): <live data>/bulk/
# gets FILES files of random bytes totalling MEGABYTES (MiB), written as the
# world user (the stack's container root), so the Duplicati stand-in's job,
# which md5sums every file, reads real data. reset.sh removes bulk/ again.
# Run as root; the stack may keep running (it does not touch bulk/).
#   fill-data.sh STACK MEGABYTES FILES      STACK: snapbtrfs | snapxfs
# e.g. fill-data.sh snapbtrfs 50 50 ; fill-data.sh snapbtrfs 1024 50
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=world-lib.sh
. "$HERE/world-lib.sh"
need_root
world_ids

[ $# -eq 3 ] || die "usage: fill-data.sh snapbtrfs|snapxfs MEGABYTES FILES"
stack=$1 mb=$2 files=$3
live=$(snap_live "$stack") || die "unknown stack $stack (snapbtrfs or snapxfs)"
case "$mb$files" in *[!0-9]*) die "MEGABYTES and FILES are whole numbers" ;; esac
[ "$files" -ge 1 ] || die "FILES must be at least 1"
[ "$mb" -ge 1 ] || die "MEGABYTES must be at least 1"
[ "$files" -le $((mb * 1048576)) ] || die "more FILES than bytes"
mountpoint -q "$(dirname "$live")" || die "$(dirname "$live") is not mounted; run setup.sh"
[ -d "$live" ] || die "$live missing; run setup.sh"

t0=$(date +%s%N)
rm -rf "$live/bulk"
# Sizes in bytes: equal parts, the remainder on the last file.
total=$((mb * 1048576))
each=$((total / files))
last=$((total - each * (files - 1)))
# One stream of random bytes (a single reader of /dev/urandom), cut into the
# files by the user's own shell: split keeps it one process.
as_user sh -c '
	set -e
	live=$1 each=$2 last=$3 files=$4 total=$5
	mkdir "$live/bulk.tmp.$$"
	cd "$live/bulk.tmp.$$"
	if [ "$each" = "$last" ]; then
		head -c "$total" /dev/urandom | split -a 5 -d -b "$each" - part-
	else
		head -c "$((each * (files - 1)))" /dev/urandom | split -a 5 -d -b "$each" - part-
		head -c "$last" /dev/urandom >"part-$(printf %05d $((files - 1)))"
	fi
	cd /
	mv "$live/bulk.tmp.$$" "$live/bulk"
' fill "$live" "$each" "$last" "$files" "$total"
sync -f "$live/bulk" 2>/dev/null || true
n=$(find "$live/bulk" -type f | wc -l)
bytes=$(find "$live/bulk" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
say "fill-data: $live/bulk: $n files, $bytes bytes ($(($(date +%s%N) / 1000000 - t0 / 1000000)) ms)"
