#!/bin/bash
# Adapted from the project recipe (shared/tools/rgw) so the project runs without ../shared.
# start-rgw.sh - bring up a throw-away single-node Ceph (Pacific 16.2, Debian
# bookworm packages) with 1 mon + 1 memstore OSD + radosgw (beast) serving S3
# on 127.0.0.1:7480. Everything binds to 127.0.0.1 only. No ceph-mgr.
#
# Needs (as root): apt-get install -y --no-install-recommends \
#                    ceph-mon ceph-osd radosgw ceph-common
# Idempotent: stops only the daemons whose pid files live in $BASE/run
# (written by a previous run of this script), wipes $BASE/cluster, starts anew.
#
# Env overrides: RGWLAB_DIR (state directory, default /tmp/tsnap-rgw), RGW_PORT (7480),
#   MON_PORT (v2 messenger, 3300) / MON_V1_PORT (6789): change them to run two
#   instances side by side (the test suite does, so it never meets a developer's),
#   S3_ACCESS / S3_SECRET / S3_UID / S3_BUCKET, MEMSTORE_BYTES (1 GiB),
#   OBJECTSTORE (memstore | bluestore), RGW_GC_MIN_WAIT (seconds before deleted
#   objects' data is reclaimed, 60; a benchmark that sized MEMSTORE_BYTES for
#   everything it writes sets it high, so reclaiming never runs mid-measurement)
set -euo pipefail

T0=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${RGWLAB_DIR:-/tmp/tsnap-rgw}     # all state lives here, never beside the script
C=$BASE/cluster                  # all cluster state (wiped on every start)
RUN=$BASE/run                    # pid files + admin sockets (kept for stop)
CONF=$BASE/ceph.conf
PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
MON_V1_PORT=${MON_V1_PORT:-6789}
S3_ACCESS=${S3_ACCESS:-TSNAPACCESSKEY}
S3_SECRET=${S3_SECRET:-TSNAPSECRETKEY0123456789}
S3_UID=${S3_UID:-tsnap}
S3_BUCKET=${S3_BUCKET:-tsnap}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-1073741824}
OBJECTSTORE=${OBJECTSTORE:-memstore}
GC_MIN_WAIT=${RGW_GC_MIN_WAIT:-60}
export CEPH_CONF=$CONF
CEPH="ceph -c $CONF --connect-timeout 10"

log() { printf '[%6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{print a-b}')" "$*"; }
die() { log "ERROR: $*"; for f in "$C"/log/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done; "$HERE/stop-rgw.sh" --kill >/dev/null 2>&1; exit 1; }

for b in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool ceph curl; do
  command -v "$b" >/dev/null || { echo "missing $b (install ceph-mon ceph-osd radosgw ceph-common)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }

# ---- 1. stop previous instance (only our own pids) -------------------------
[ -x "$HERE/stop-rgw.sh" ] || { echo "$BASE/stop-rgw.sh missing"; exit 1; }
"$HERE/stop-rgw.sh" --kill | sed 's/^/  previous instance: /' || true
for port in "$MON_PORT" "$MON_V1_PORT" "$PORT"; do
  if ss -ltnH "sport = :$port" | grep -q .; then
    echo "port $port still in use by a process that is not ours:"; ss -ltnp "sport = :$port"; exit 1
  fi
done
rm -rf "$C" "$RUN"
mkdir -p "$C"/{mon.a,osd.0,rgw,log,crash} "$RUN"

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)

# ---- 2. ceph.conf -----------------------------------------------------------
cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.1/32
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $C/\$name.keyring
run dir = $RUN
admin socket = $RUN/\$name.asok
pid file = $RUN/\$name.pid
log file = $C/log/\$name.log
crash dir = $C/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000
mon osd min down reporters = 1
auth allow insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
osd max object name len = 460
osd max object namespace len = 64

# faster bring-up: mon batches map updates every paxos_propose_interval (1s)
paxos propose interval = 0.05
paxos min wait = 0.01
mon osd report timeout = 900

[mon]
mon data = $C/mon.\$id
keyring = $C/mon.\$id/keyring
mon cluster log file = $C/log/cluster.log

[osd]
osd data = $C/osd.\$id
osd objectstore = $OBJECTSTORE
memstore device bytes = $MEMSTORE_BYTES
osd crush update on start = true
bluestore block path = $C/osd.\$id.block
bluestore block create = true
bluestore block size = 4294967296
bluestore fsck on mount = false
osd memory target = 939524096

[client.rgw.gw]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $C/rgw
rgw dns name = localhost
rgw enable usage log = false
# reclaim deleted/overwritten tail objects after 60s instead of 2h (memstore = RAM)
rgw gc obj min wait = $GC_MIN_WAIT
rgw gc processor period = $GC_MIN_WAIT
rgw thread pool size = 64
log file = $C/log/rgw.log
EOF

# ---- 3. keyrings + mon ------------------------------------------------------
log "creating keys + monitor (fsid $FSID)"
ceph-authtool --create-keyring "$C/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$C/client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool --create-keyring "$C/client.rgw.gw.keyring" --gen-key -n client.rgw.gw \
  --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
ceph-authtool --create-keyring "$C/osd.0.keyring" --gen-key -n osd.0 \
  --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
cp "$C/mon.keyring" "$C/mkfs.keyring"
for k in client.admin client.rgw.gw osd.0; do
  ceph-authtool "$C/mkfs.keyring" --import-keyring "$C/$k.keyring" >/dev/null
done
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" "$C/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$C/monmap" --keyring "$C/mkfs.keyring"
ceph-mon -c "$CONF" -i a 2>>"$C/log/mon.a.stderr"
for i in $(seq 1 100); do $CEPH mon stat >/dev/null 2>&1 && break; sleep 0.2; done
$CEPH mon stat >/dev/null 2>&1 || die "monitor did not come up"
log "mon up"

# ---- 4. OSD -----------------------------------------------------------------
# osd.0's key was imported into the mon at mkfs; "osd new" just allocates id 0.
OSD_ID=$($CEPH osd new "$OSD_UUID" 0)
[ "$OSD_ID" = 0 ] || die "unexpected osd id $OSD_ID"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" --keyring "$C/osd.0.keyring" >/dev/null 2>"$C/log/osd-mkfs.err" \
  || die "osd mkfs failed: $(tail -5 "$C/log/osd-mkfs.err")"
ceph-osd -c "$CONF" -i 0 2>>"$C/log/osd.0.stderr"
for i in $(seq 1 150); do
  [ "$($CEPH osd stat -f json 2>/dev/null | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')" = 1 ] && break; sleep 0.2
done
[ "$($CEPH osd stat -f json | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')" = 1 ] || die "osd.0 did not come up"
log "osd.0 up ($OBJECTSTORE)"

# ---- 5. radosgw -------------------------------------------------------------
radosgw -c "$CONF" -n client.rgw.gw --keyring "$C/client.rgw.gw.keyring" 2>>"$C/log/rgw.stderr"
for i in $(seq 1 300); do
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" && break; sleep 0.2
done
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" || die "radosgw not answering on 127.0.0.1:$PORT"
log "radosgw answering on http://127.0.0.1:$PORT"

# ---- 6. S3 user + bucket ----------------------------------------------------
radosgw-admin -c "$CONF" -n client.admin user create --uid="$S3_UID" --display-name="$S3_UID" \
  --access-key="$S3_ACCESS" --secret="$S3_SECRET" >/dev/null 2>"$C/log/user-create.err" \
  || die "user create failed: $(tail -5 "$C/log/user-create.err")"
code=000
for i in $(seq 1 50); do
  code=$(curl -s -o "$C/log/bucket-create.out" -w '%{http_code}' --max-time 10 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS:$S3_SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$PORT/$S3_BUCKET") || true
  [ "$code" = 200 ] && break; sleep 0.2
done
[ "$code" = 200 ] || die "bucket create returned $code: $(cat "$C/log/bucket-create.out")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS:$S3_SECRET" \
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$PORT/$S3_BUCKET?list-type=2")
[ "$code" = 200 ] || die "ListObjectsV2 on $S3_BUCKET returned $code"
log "READY  endpoint=http://127.0.0.1:$PORT  region=us-east-1  access=$S3_ACCESS  secret=$S3_SECRET  bucket=$S3_BUCKET"
echo "pids: $(cd "$RUN" && for p in *.pid; do printf '%s=%s ' "${p%.pid}" "$(cat "$p")"; done)"
