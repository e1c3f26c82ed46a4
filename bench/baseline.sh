#!/bin/sh
# The baseline the benchmark compares against: what a typical backup shell script does,
# polling every 5 s. Run as the stack's user: baseline.sh STACK JOB. Prints "EVENT epoch-ms"
# lines. Not for real use: it has no undo, no lock and no freeze.
set -eu
stack=$1
job=$2
interval=5
ms() { echo $(($(date +%s%N) / 1000000)); }
echo "stop_begin $(ms)"
systemctl --user stop "$stack-stack.service"
echo "stop_end $(ms)"
while [ -n "$(podman ps -q --filter "label=io.podman.compose.project=$stack")" ]; do sleep $interval; done
echo "containers_gone $(ms)"
echo "run_begin $(ms)"
podman exec duplicati duplicati-server-util run "$job" >/dev/null
echo "run_returned $(ms)"
sleep $interval
while ! podman exec duplicati duplicati-server-util status | grep -q 'Scheduler tasks: Empty' ||
  ! podman exec duplicati duplicati-server-util status | grep -q 'Active task: None'; do
  sleep $interval
done
echo "job_done $(ms)"
systemctl --user start "$stack-stack.service"
echo "start_end $(ms)"
