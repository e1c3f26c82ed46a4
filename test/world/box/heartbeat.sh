#!/bin/sh
# Runs inside a world stack container (busybox sh). Writes the stack's heartbeat
# into /data every 0.2 s while it runs.
#   heartbeat.sh NAME [LINGER_SECONDS]
# /data/heartbeat        "<epoch_s> <seq> <NAME>"  (shared by all containers of the stack)
# /data/heartbeat.NAME   same, per container
# On SIGTERM/SIGINT it keeps writing for LINGER_SECONDS (default 0), then exits 0.
# If HTTP_LISTEN is set (e.g. 127.0.0.1:18081) a busybox httpd serves /data there.
name=${1:?name}
linger=${2:-0}
stopping=0
trap 'stopping=1' TERM INT

if [ -n "$HTTP_LISTEN" ]; then
	httpd -p "$HTTP_LISTEN" -h /data || exit 1
fi

seq=0
left=$((linger * 5))
while :; do
	seq=$((seq + 1))
	line="$(date +%s) $seq $name"
	echo "$line" >/data/heartbeat
	echo "$line" >"/data/heartbeat.$name"
	if [ "$stopping" = 1 ]; then
		[ "$left" -le 0 ] && exit 0
		left=$((left - 1))
	fi
	usleep 200000
done
