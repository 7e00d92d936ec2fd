#!/bin/bash
# Adapted from the project recipe (shared/tools/rgw) so the project runs without ../shared.
# stop-rgw.sh - stop only the daemons started by start-rgw.sh, using the pid
# files in $BASE/run (radosgw, then osd, then mon; SIGTERM, SIGKILL after 10s). A pid is killed only if it
# is still a radosgw/ceph-osd/ceph-mon process (guards against pid reuse).
# Cluster data in $BASE/cluster is left in place (start-rgw.sh wipes it).
BASE=${RGWLAB_DIR:-/tmp/tsnap-rgw}
RUN=$BASE/run
FAST=0; [ "${1:-}" = "--kill" ] && FAST=1   # --kill: SIGKILL at once (used by start-rgw.sh, which wipes the data anyway)
# "alive" = exists and not a zombie (PID 1 here reaps orphans only every ~2s)
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
stop_one() {   # $1 = pid file
  local f=$1 pid comm i
  [ -f "$f" ] || return 0
  pid=$(cat "$f"); comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  case "$comm" in
    radosgw|ceph-osd|ceph-mon)
      if [ $FAST = 1 ]; then kill -9 "$pid"; for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
        echo "killed $(basename "$f" .pid) pid $pid"; rm -f "$f"; return 0; fi
      kill "$pid" 2>/dev/null
      for i in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
      if alive "$pid"; then kill -9 "$pid"; echo "SIGKILLed $(basename "$f" .pid) pid $pid"
      else echo "stopped $(basename "$f" .pid) pid $pid"; fi ;;
    *) echo "$(basename "$f" .pid): pid $pid not running" ;;
  esac
  rm -f "$f"
}
for f in "$RUN"/client.rgw.*.pid; do stop_one "$f"; done
for f in "$RUN"/osd.*.pid;        do stop_one "$f"; done
for f in "$RUN"/mon.*.pid;        do stop_one "$f"; done
exit 0
