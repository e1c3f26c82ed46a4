#!/bin/sh
# Runs inside a snapshot-mode stack container (busybox sh, as container root).
# Like heartbeat.sh, and it also keeps a "database" the way real stacks do:
# /data/db is mode 0700 and /data/db/state mode 0600, both owned by container
# user 1000:1000 (a subordinate UID on the host, unreadable to the plain user),
# and state is rewritten with every beat, so a backup that reads the live data
# while the stack runs sees it change.
#   dbheartbeat.sh NAME
# /data/heartbeat, /data/heartbeat.NAME, /data/db/state   "<epoch_s> <seq> <NAME>"
# On SIGTERM/SIGINT it writes once more and exits 0.
name=${1:?name}
stopping=0
trap 'stopping=1' TERM INT

mkdir -p /data/db
seq=0
while :; do
	seq=$((seq + 1))
	line="$(date +%s) $seq $name"
	echo "$line" >/data/heartbeat
	echo "$line" >"/data/heartbeat.$name"
	echo "$line" >/data/db/state
	if [ "$seq" = 1 ]; then
		chown 1000:1000 /data/db /data/db/state
		chmod 700 /data/db
		chmod 600 /data/db/state
	fi
	[ "$stopping" = 1 ] && exit 0
	usleep 200000
done
