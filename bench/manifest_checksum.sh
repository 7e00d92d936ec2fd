#!/bin/bash
# bench/manifest_checksum.sh - what the manifest's checksum costs a miss.
#
# Every snapshot's manifest carries a checksum of the object, computed in
# the worker as the bytes go to S3 (src/ledger/checksum.c).  This times a
# tsnap_snapshot() miss on pgbench_accounts (scale 10: 1M rows, 91.5 MiB of
# CSV) with each value of tsnap.manifest_checksum, side by side on one
# throwaway cluster (shared_buffers 1GB: the table is read from shared
# buffers) and one throwaway Ceph RGW:
#   none    no checksum (the manifest is still written: "checksum": null)
#   sha256  SHA-256 through OpenSSL's EVP
#   md5     MD5 through EVP
#   crc32   gzip's CRC-32, through libdeflate
# The setting is changed with ALTER SYSTEM and a reload between runs (each
# miss is served by a new worker, which reads it); each run checks that its
# manifest names the algorithm it was meant to use.  After one warm-up miss
# per variant, ROUNDS rounds each time one miss per variant, in an order
# that rotates from round to round; a one-row UPDATE (untimed) before each
# miss makes a new version.  Prints every run with the CPU seconds
# PostgreSQL and the S3 server spent on it (a diagnostic for this 2-core
# machine, where both compete), then the median of each variant and its
# ratio to none; the target is a checksum costing under 5% of a miss
# (ratio < 1.05).
#
# Then, in the same run, bench/checksum_cpu.c computes each candidate over
# the last miss's object, as the sink sees it (256 kB pieces), and prints
# the CPU seconds of one pass: SHA-256 and MD5 through EVP, and CRC-32
# through zlib's crc32() and through libdeflate (the same value).  Each is
# shown as a share of the median miss without a checksum, and of the
# median CPU seconds PostgreSQL spent on such a miss.  On a busy machine
# the first flatters (other work stretches the miss, not the checksum's
# CPU time); the second does not depend on the machine's other work, and
# stands for the miss on a quiet machine, where the worker's CPU is the
# critical path (a miss takes about as long as COPY to /dev/null).  The
# verdict goes by the second.  It also checks that the value it computes
# for the last object's algorithm is the one in its manifest.
#
# Env: ROUNDS (7), PG_BIN (the PostgreSQL to build against and run),
#      TSNAP_PORTS (LOW-HIGH: the ports to pick from, see test/lib.sh).
# Usage: bash bench/manifest_checksum.sh [scale (10)]
source "$(dirname "$0")/../test/lib.sh"
shopt -s inherit_errexit
SCALE=${1:-10}
ROUNDS=${ROUNDS:-7}
VARIANTS=(none sha256 md5 crc32)
AWS=/usr/bin/aws
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/manifest_checksum.sh [scale]" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }

bench_cleanup() {
	local rc=$?
	set +e
	if [ $rc != 0 ] && [ -f "${TSNAP_WORK:-/nonexistent}/postgres.log" ]; then
		echo "== last lines of postgres.log:" >&2
		tail -n 30 "$TSNAP_WORK/postgres.log" >&2
	fi
	(exit $rc)
	tsnap_cleanup
}

tsnap_install_deps
[ -x "$AWS" ] || { echo "$AWS missing (apt-get install awscli)" >&2; exit 1; }
tsnap_make_workdir bench-checksum
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
tsnap_build_install
# memstore keeps objects in RAM: room for every object of the run (one
# ~10 MiB-per-scale-unit CSV per miss), so that RGW's garbage collector can
# stay off; it would otherwise wake every 60 s in whichever run it lands
# (see bench/snapshot.sh).
export RGW_GC_MIN_WAIT=86400
export MEMSTORE_BYTES=$((((ROUNDS + 1) * ${#VARIANTS[@]} * SCALE * 10 + 1024) * 1024 * 1024))
tsnap_start_rgw
tsnap_start_cluster "max_connections = 50
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min"

export AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET
export AWS_DEFAULT_REGION=$S3_REGION AWS_EC2_METADATA_DISABLED=true
aws_s3() { "$AWS" --endpoint-url "$S3_ENDPOINT" s3 "$@"; }

q() { as_pg psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Each worker exits after its request and housekeeping; wait for that, so
# that one run's retention never overlaps the next run.
wait_workers() {
	local i
	for i in $(seq 1 1200); do
		[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'")" = 0 ] && return 0
		sleep 0.1
	done
	echo "ERROR: a tsnap worker still runs 120 s after its request returned" >&2
	exit 1
}

# ALTER SYSTEM and reload; wait until new backends (so new workers, which
# the postmaster forks) see the value.
set_checksum() {
	local i
	q "ALTER SYSTEM SET tsnap.manifest_checksum = '$1'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	for i in $(seq 1 200); do
		[ "$(q "SHOW tsnap.manifest_checksum")" = "$1" ] && return 0
		sleep 0.05
	done
	echo "ERROR: tsnap.manifest_checksum did not become $1" >&2
	exit 1
}

# CPU seconds of PostgreSQL (backends and workers that exited: the
# postmaster's cutime + cstime) and of the S3 server, as diagnostics.
PM_PID=$(head -1 "$PGDATA/postmaster.pid")
S3_PIDS=$(cat "$RGWLAB_DIR"/run/*.pid)
TCK=$(getconf CLK_TCK)
cpu_pg() { awk '{print $16 + $17}' "/proc/$PM_PID/stat"; }
cpu_s3() { local p; for p in $S3_PIDS; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s + 0}'; }
settle() {
	local i
	for i in $(seq 1 40); do
		pgrep -P "$PM_PID" -f '\[local\]|127\.0\.0\.1|tsnap worker' >/dev/null || return 0
		sleep 0.05
	done
}

# One miss with tsnap.manifest_checksum = $1: its seconds in RES, CPU
# seconds in RES_PG and RES_S3.  Checks the key is new and its manifest
# names the algorithm.
LAST_KEY=
RES= RES_PG= RES_S3=
miss() {
	local t0 t1 c0 s0 key algorithm want
	set_checksum "$1"
	q "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1" >/dev/null
	settle
	c0=$(cpu_pg); s0=$(cpu_s3)
	t0=$(now)
	key=$(as_pg timeout 900 psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT tsnap_snapshot('pgbench_accounts')")
	t1=$(now)
	[ -n "$key" ] && [ "$key" != "$LAST_KEY" ] ||
		{ echo "ERROR: the miss returned key '$key' (previous: '$LAST_KEY')" >&2; exit 1; }
	LAST_KEY=$key
	wait_workers
	settle
	RES=$(secs "$t0" "$t1")
	RES_PG=$(awk -v a="$c0" -v b="$(cpu_pg)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
	RES_S3=$(awk -v a="$s0" -v b="$(cpu_s3)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
	algorithm=$(aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$key.manifest.json" - |
		sed -n 's/^  "checksum": {"algorithm": "\([a-z0-9]*\)".*/\1/p')
	want=$1; [ "$want" = none ] && want=
	[ "$algorithm" = "$want" ] ||
		{ echo "ERROR: the manifest of a miss with $1 names checksum '$algorithm'" >&2; exit 1; }
}

q "CREATE EXTENSION tsnap"
log "pgbench -i -s $SCALE"
as_pg pgbench -i -q -s "$SCALE" >"$TSNAP_WORK/pgbench-init.log" 2>&1 ||
	{ cat "$TSNAP_WORK/pgbench-init.log"; exit 1; }
q "SELECT tsnap_track('pgbench_accounts')" >/dev/null
q "CHECKPOINT"
ROWS=$(q "SELECT count(*) FROM pgbench_accounts")

log "building bench/checksum_cpu"
gcc -O2 -Wall -o "$TSNAP_WORK/checksum_cpu" "$(dirname "$0")/checksum_cpu.c" -lcrypto -lz -ldeflate

log "warm-up"
for v in "${VARIANTS[@]}"; do
	miss "$v"
	printf 'warm-up   %-7s %8.3f s\n' "$v" "$RES"
done
BYTES=$(q "SELECT bytes FROM tsnap_snapshot_info('pgbench_accounts')")
echo "# pgbench_accounts scale $SCALE: $ROWS rows, CSV $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MiB);" \
	"$ROUNDS rounds; $(nproc) cores; $(uname -r); $(openssl version)"

declare -A T
n=${#VARIANTS[@]}
for r in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		v=${VARIANTS[$(((i + r - 1) % n))]}
		miss "$v"
		T[$v]="${T[$v]:-} $RES"
		T[$v,pg]="${T[$v,pg]:-} $RES_PG"
		T[$v,s3]="${T[$v,s3]:-} $RES_S3"
		printf 'round %d  %-7s %8.3f s   (CPU s: postgres %s, S3 server %s)\n' "$r" "$v" "$RES" "$RES_PG" "$RES_S3"
	done
done

# each candidate's CPU time over the last object, and its manifest's value
log "checksums of the last object, CPU time"
aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$LAST_KEY" "$TSNAP_WORK/object.csv"
aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$LAST_KEY.manifest.json" "$TSNAP_WORK/manifest.json"
MANIFEST_SUM=$(sed -n 's/^  "checksum": {"algorithm": "\([a-z0-9]*\)", "value": "\([0-9a-f]*\)"}.*/\1 \2/p' "$TSNAP_WORK/manifest.json")
"$TSNAP_WORK/checksum_cpu" "$TSNAP_WORK/object.csv" 9 >"$TSNAP_WORK/checksum_cpu.out"
read -r MANIFEST_ALG MANIFEST_VALUE <<<"$MANIFEST_SUM"
if [ -n "$MANIFEST_ALG" ]; then
	grep -q "^$MANIFEST_ALG\(-[a-z]*\)\? $MANIFEST_VALUE " "$TSNAP_WORK/checksum_cpu.out" ||
		{ echo "ERROR: the manifest's $MANIFEST_ALG $MANIFEST_VALUE differs from checksum_cpu's:" >&2; cat "$TSNAP_WORK/checksum_cpu.out" >&2; exit 1; }
fi

echo
echo "SUMMARY  tsnap_snapshot() miss, pgbench_accounts scale $SCALE, medians of $ROUNDS rotating rounds"
BASE=$(echo "${T[none]}" | median)
for v in "${VARIANTS[@]}"; do
	m=$(echo "${T[$v]}" | median)
	awk -v v="$v" -v m="$m" -v b="$BASE" -v pg="$(echo "${T[$v,pg]}" | median)" \
		-v s3="$(echo "${T[$v,s3]}" | median)" 'BEGIN {
		r = m / b
		printf "  %-7s %8.3f s   ratio to none %.3f   %s   (CPU s: postgres %s, S3 server %s)\n", v, m, r,
			v == "none" ? "          " : (r < 1.05 ? "< 1.05 met" : "NOT < 1.05"), pg, s3 }'
done
PG_BASE=$(echo "${T[none,pg]}" | median)
echo "  one pass over the last object ($BYTES bytes), median CPU s of 9; as a share of the median miss"
echo "  without a checksum ($BASE s), and of PostgreSQL's median CPU s for it ($PG_BASE s):"
awk -v b="$BASE" -v p="$PG_BASE" '{
	printf "    %-17s %7.4f s   %5.1f%% of the miss   %5.1f%% of its CPU   %s\n", $1, $3, 100 * $3 / b,
		100 * $3 / p, (100 * $3 / p < 5) ? "< 5% met" : "NOT < 5%" }' "$TSNAP_WORK/checksum_cpu.out"
[ -n "$MANIFEST_ALG" ] && echo "  the last object's manifest ($MANIFEST_ALG) agrees with checksum_cpu"
echo
echo "the last object's manifest:"
cat "$TSNAP_WORK/manifest.json"
