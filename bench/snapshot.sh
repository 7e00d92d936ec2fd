#!/bin/bash
# bench/snapshot.sh - what a snapshot costs, against plain COPY.
#
# On pgbench_accounts (scale 10: 1M rows, 96 MB of CSV), on one throwaway
# cluster (shared_buffers 1GB, so every method reads the table from shared
# buffers) and one throwaway Ceph RGW, in alternating rounds after a warm-up
# of each method:
#  (a) COPY pgbench_accounts TO STDOUT (FORMAT csv, HEADER) into /dev/null
#      (psql, wall clock);
#  (b) the same COPY piped into `aws s3 cp - s3://bucket/key` (Debian's
#      awscli, multipart with its defaults: 8 MiB chunks, 10 in flight);
#  (c) a tsnap_snapshot() miss: a one-row UPDATE makes a new version
#      (untimed), then SELECT tsnap_snapshot('pgbench_accounts') is timed;
#  (d) hits: pgbench -M prepared -T SECS -c CLIENTS of SELECT
#      tsnap_snapshot(...) on the unchanged table, against SELECT 1 (and,
#      for reference, SELECT tsnap_version(...));
#  (e) the worker's memory during a miss, on its own (untimed) run: its
#      /proc/PID/status is read every ~50 ms from start to exit.  VmHWM is the
#      kernel's peak of the whole RSS, which includes the shared_buffers pages
#      the scan touched (RssShmem); the figure compared with the bound is the
#      private part, RssAnon + RssFile, at its largest sample.  Also printed:
#      VmHWM - RssShmem(last), which can only understate the private peak,
#      and VmHWM - RssShmem(first), which can only overstate it.
# The warm-up checks that the snapshot's object has COPY's bytes (md5).  Each
# timed run of (a)-(c) also prints, as a diagnostic for this 2-core machine,
# the CPU seconds PostgreSQL and the S3 server spent on it.
# Prints every run, then medians and the ratios with their targets:
# (c) <= 1.25 x (a); (d) hit >= 0.5 x SELECT 1; (e) private peak <=
# 48 MiB + part_size x (max_parts_in_flight + 1)  (88 MiB by default).
#
# Further scales (e.g. 100: ~1.3 GB of table, ~1 GB of CSV, a few minutes)
# re-initialize pgbench at that scale afterwards and measure one COPY into
# /dev/null, one miss, and the worker's memory during a second miss.
#
# Env: ROUNDS (3), SECS (10, per pgbench run), CLIENTS (2).
# Usage: bash bench/snapshot.sh [scale (10)] [further scale ...]
#        e.g. bash bench/snapshot.sh 10 100
source "$(dirname "$0")/../test/lib.sh"
shopt -s inherit_errexit
SCALE=${1:-10}
EXTRA_SCALES=("${@:2}")
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-2}
AWS=/usr/bin/aws
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
for s in "$SCALE" "${EXTRA_SCALES[@]}"; do
	[[ $s =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/snapshot.sh [scale] [further scale ...]" >&2; exit 2; }
done

WATCHER=
bench_cleanup() {
	local rc=$?
	set +e
	[ -n "$WATCHER" ] && kill "$WATCHER" 2>/dev/null
	if [ $rc != 0 ] && [ -f "${TSNAP_WORK:-/nonexistent}/postgres.log" ]; then
		echo "== last lines of postgres.log:" >&2
		tail -n 30 "$TSNAP_WORK/postgres.log" >&2
	fi
	(exit $rc)
	tsnap_cleanup
}

tsnap_install_deps
[ -x "$AWS" ] || { echo "$AWS missing (apt-get install awscli)" >&2; exit 1; }
tsnap_make_workdir bench-snapshot
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
tsnap_build_install
# memstore keeps objects in RAM.  Room for every object this run writes
# (~10 MiB of CSV per scale unit), so RGW's garbage collector, which reclaims
# deleted objects' data (tsnap's retention deletes one per miss), can stay off:
# it would otherwise wake every 60 s and compete for the two cores in
# whichever round it lands (seen: S3 server CPU per miss 0.44 s -> 0.6-0.9 s).
export RGW_GC_MIN_WAIT=86400
mib=$((2 * (ROUNDS + 3) * SCALE * 10 + 1024))
for s in "${EXTRA_SCALES[@]}"; do mib=$((mib + 3 * s * 10)); done
export MEMSTORE_BYTES=$((mib * 1024 * 1024))
tsnap_start_rgw
tsnap_start_cluster "max_connections = 50
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min"

export AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET
export AWS_DEFAULT_REGION=$S3_REGION AWS_EC2_METADATA_DISABLED=true
aws_s3() { "$AWS" --endpoint-url "$S3_ENDPOINT" s3 "$@"; }

for f in hit select1 version; do
	case $f in
	hit) echo "SELECT tsnap_snapshot('pgbench_accounts');" ;;
	select1) echo "SELECT 1;" ;;
	version) echo "SELECT tsnap_version('pgbench_accounts');" ;;
	esac >"$TSNAP_WORK/$f.sql"
	[ "$(id -u)" = 0 ] && chown postgres: "$TSNAP_WORK/$f.sql"
done

COPY_SQL="COPY pgbench_accounts TO STDOUT (FORMAT csv, HEADER)"
q() { as_pg psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

# Wait until no tsnap worker runs (they exit when their queue is empty, after
# housekeeping), so one run's tail never overlaps the next run.
wait_workers() {
	local i n
	for i in $(seq 1 1200); do
		n=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'")
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	echo "WARNING: a tsnap worker still runs 120 s after its request returned" >&2
	q "SELECT pid, state, query FROM pg_stat_activity WHERE backend_type = 'tsnap worker'" >&2
}

# The timed methods; each leaves its seconds in RES (not printed: a command
# substitution would run it in a subshell and lose LAST_KEY).  A hung
# snapshot ends the run (timeout) rather than the benchmark waiting forever.
MISS_TIMEOUT=${MISS_TIMEOUT:-900}
# Also CPU seconds, as a diagnostic on this 2-core machine: PostgreSQL's
# (backends and workers that exited meanwhile: the postmaster's cutime +
# cstime) and the S3 server's (radosgw, ceph-osd, ceph-mon), in RES_PG and
# RES_S3.  psql's and awscli's own CPU is not counted.
RES= RES_PG= RES_S3=
PM_PID=$(head -1 "$PGDATA/postmaster.pid")
S3_PIDS=$(cat "$RGWLAB_DIR"/run/*.pid)
TCK=$(getconf CLK_TCK)
cpu_pg() { awk '{print $16 + $17}' "/proc/$PM_PID/stat"; }
cpu_s3() { local p; for p in $S3_PIDS; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s + 0}'; }
# A backend is reaped (and its CPU added to cutime) a little after its client
# is gone: wait (untimed, up to 2 s) until no client backend (its title names
# the client's address) or tsnap worker is left.
settle() {
	local i
	for i in $(seq 1 40); do
		pgrep -P "$PM_PID" -f '\[local\]|127\.0\.0\.1|tsnap worker' >/dev/null || return 0
		sleep 0.05
	done
}
clock_start() { settle; T0=$(now); C0=$(cpu_pg); S0=$(cpu_s3); }
clock_stop() { T1=$(now); }
clock_cpu() {  # after the work's processes ended
	settle
	RES=$(secs "$T0" "$T1")
	RES_PG=$(awk -v a="$C0" -v b="$(cpu_pg)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
	RES_S3=$(awk -v a="$S0" -v b="$(cpu_s3)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
}
copy_null() {
	clock_start; q "$COPY_SQL" >/dev/null; clock_stop
	clock_cpu
}
copy_s3() {  # $1 = key
	clock_start; q "$COPY_SQL" | aws_s3 cp --only-show-errors - "s3://$S3_BUCKET/$1"; clock_stop
	clock_cpu
	aws_s3 rm --only-show-errors "s3://$S3_BUCKET/$1"
}
LAST_KEY=
miss() {
	local t0 t1 key rc=0
	q "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1" >/dev/null
	clock_start
	key=$(as_pg timeout "$MISS_TIMEOUT" psql -XAtq -v ON_ERROR_STOP=1 \
		-c "SELECT tsnap_snapshot('pgbench_accounts')") || rc=$?
	clock_stop
	if [ $rc = 124 ]; then
		echo "ERROR: tsnap_snapshot() did not return within ${MISS_TIMEOUT}s; activity:" >&2
		q "SELECT pid, backend_type, state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity WHERE datname IS NOT NULL" >&2
		exit 1
	fi
	[ $rc = 0 ] || { echo "ERROR: tsnap_snapshot() failed (psql exit $rc)" >&2; exit 1; }
	if [ -z "$key" ] || [ "$key" = "$LAST_KEY" ]; then
		echo "ERROR: the miss returned key '$key' (previous: '$LAST_KEY')" >&2; exit 1
	fi
	LAST_KEY=$key
	wait_workers
	clock_cpu
}
pgb() {  # $1 = script name -> tps
	local out=$TSNAP_WORK/pgbench-$1.out
	as_pg pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$2" -f "$TSNAP_WORK/$1.sql" >"$out" 2>&1 ||
		{ echo "ERROR: pgbench -f $1.sql failed:" >&2; cat "$out" >&2; exit 1; }
	sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out"
}

# Memory of the worker during one miss.  A background loop samples
# /proc/PID/status of every child of our postmaster whose title is "tsnap
# worker" every 50 ms, from before the call until the worker exited.
watch_workers() {  # $1 = samples file, $2 = stop file
	local pids pid line
	while kill -0 $$ 2>/dev/null; do
		pids=$(pgrep -P "$PM_PID" -f 'tsnap worker' || true)
		for pid in $pids; do
			line=$(awk '/^(VmHWM|VmRSS|RssAnon|RssFile|RssShmem):/ {v[$1] = $2}
				END {if (v["VmHWM:"] != "") print v["VmHWM:"], v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["RssShmem:"]}' \
				"/proc/$pid/status" 2>/dev/null) || true
			[ -n "$line" ] && echo "$pid $line" >>"$1"
		done
		[ -z "$pids" ] && [ -e "$2" ] && break
		sleep 0.05
	done
}
PART_MIB=$(q "SELECT round(pg_size_bytes(current_setting('tsnap.part_size')) / 1048576.0, 1)")
IN_FLIGHT=$(q "SHOW tsnap.max_parts_in_flight")
BOUND_MIB=$(awk -v p="$PART_MIB" -v n="$IN_FLIGHT" 'BEGIN {print 48 + p * (n + 1)}')
declare -A RSS
rss_run() {  # $1 = scale -> fills RSS[$1,*], prints a line
	local samples=$TSNAP_WORK/rss-$1.samples stop=$TSNAP_WORK/rss-$1.stop t
	rm -f "$samples" "$stop"
	wait_workers
	watch_workers "$samples" "$stop" &
	WATCHER=$!
	miss
	t=$RES
	touch "$stop"
	wait "$WATCHER" || true
	WATCHER=
	[ -s "$samples" ] || { echo "ERROR: no tsnap worker was seen during the miss" >&2; exit 1; }
	# one worker is expected; the one with the largest VmHWM is reported
	read -r "RSS[$1,pid]" "RSS[$1,n]" "RSS[$1,hwm]" "RSS[$1,priv]" "RSS[$1,anon]" "RSS[$1,file]" "RSS[$1,shm0]" "RSS[$1,shm1]" "RSS[$1,npids]" < <(
		awk '{ p = $1; n[p]++; if ($2 > hwm[p]) hwm[p] = $2
		       if ($4 + $5 > priv[p]) { priv[p] = $4 + $5; anon[p] = $4; file[p] = $5 }
		       if (!(p in shm0)) shm0[p] = $6; shm1[p] = $6 }
		     END { for (p in n) { k++; if (best == "" || hwm[p] > hwm[best]) best = p }
		           p = best; print p, n[p], hwm[p], priv[p], anon[p], file[p], shm0[p], shm1[p], k }' "$samples")
	RSS[$1,secs]=$t
	printf 'rss   scale %-4d worker pid %d, %d samples over a %.2f s miss: VmHWM %s MiB, RssShmem %s -> %s MiB; RssAnon+RssFile peak %s MiB (%s + %s)\n' \
		"$1" "${RSS[$1,pid]}" "${RSS[$1,n]}" "$t" "$(mib $((RSS[$1,hwm] * 1024)))" \
		"$(mib $((RSS[$1,shm0] * 1024)))" "$(mib $((RSS[$1,shm1] * 1024)))" \
		"$(mib $((RSS[$1,priv] * 1024)))" "$(mib $((RSS[$1,anon] * 1024)))" "$(mib $((RSS[$1,file] * 1024)))"
	[ "${RSS[$1,npids]}" = 1 ] || echo "note: ${RSS[$1,npids]} tsnap workers were seen during this miss"
}

setup_scale() {  # $1 = scale
	log "pgbench -i -s $1"
	as_pg pgbench -i -q -s "$1" >"$TSNAP_WORK/pgbench-init.log" 2>&1 ||
		{ cat "$TSNAP_WORK/pgbench-init.log"; exit 1; }
	q "SELECT tsnap_track('pgbench_accounts')" >/dev/null
	q "CHECKPOINT"
	LAST_KEY=
}

# ---------------------------------------------------------------- scale SCALE
q "CREATE EXTENSION tsnap"
setup_scale "$SCALE"
ROWS=$(q "SELECT count(*) FROM pgbench_accounts")
TBL_MIB=$(mib "$(q "SELECT pg_table_size('pgbench_accounts')")")
echo "# pgbench_accounts scale $SCALE: $ROWS rows, table $TBL_MIB MiB; shared_buffers 1GB;" \
	"tsnap.part_size ${PART_MIB} MiB x max_parts_in_flight $IN_FLIGHT; $ROUNDS rounds;" \
	"pgbench $CLIENTS clients x ${SECS}s; $(nproc) cores; $(uname -r)"

log "warm-up"
CSV_BYTES=$(q "$COPY_SQL" | wc -c)
copy_s3 bench/warmup.csv
miss
t=$RES
# after the miss: its UPDATE moved row aid=1, which changes COPY's row order
COPY_MD5=$(q "$COPY_SQL" | md5sum | cut -d' ' -f1)
read -r SNAP_BYTES SNAP_ROWS SNAP_HIT < <(q "SELECT bytes, rows, hit FROM tsnap_snapshot_info('pgbench_accounts')" | tr '|' ' ')
SNAP_MD5=$(aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$LAST_KEY" - | md5sum | cut -d' ' -f1)
echo "warm-up: COPY $CSV_BYTES bytes ($(mib "$CSV_BYTES") MiB); first miss ${t}s:" \
	"$SNAP_ROWS rows, $SNAP_BYTES bytes, object md5 $([ "$SNAP_MD5" = "$COPY_MD5" ] && echo "= COPY's" || echo "$SNAP_MD5 != COPY's $COPY_MD5"); then hit=$SNAP_HIT"
echo "key: $LAST_KEY"
for m in select1 hit version; do pgb $m 2 >/dev/null; done

declare -A T
METHODS=(copy_null copy_s3 miss)
PGB_METHODS=(select1 hit version)
for r in $(seq 1 "$ROUNDS"); do
	# rotate the order of the timed methods from round to round
	for i in 0 1 2; do
		m=${METHODS[$(((i + r - 1) % 3))]}
		"$m" "bench/copy-$r.csv"   # the key is for copy_s3
		t=$RES
		T[$m]="${T[$m]:-} $t"
		T[$m,pg]="${T[$m,pg]:-} $RES_PG"
		T[$m,s3]="${T[$m,s3]:-} $RES_S3"
		printf 'round %d  %-10s %8.3f s   (CPU s: postgres %s, S3 server %s)\n' "$r" "$m" "$t" "$RES_PG" "$RES_S3"
	done
	key0=$(q "SELECT tsnap_snapshot('pgbench_accounts')")
	for i in 0 1 2; do
		m=${PGB_METHODS[$(((i + r - 1) % 3))]}
		t=$(pgb "$m" "$SECS")
		T[$m]="${T[$m]:-} $t"
		printf 'round %d  %-10s %8.1f tps\n' "$r" "$m" "$t"
	done
	read -r key1 hit1 < <(q "SELECT key, hit FROM tsnap_snapshot_info('pgbench_accounts')" | tr '|' ' ')
	[ "$key1" = "$key0" ] && [ "$hit1" = t ] ||
		{ echo "ERROR: the hit runs were not hits: key $key0 -> $key1, hit=$hit1" >&2; exit 1; }
done

rss_run "$SCALE"

# ------------------------------------------------------------- further scales
declare -A X
for s in "${EXTRA_SCALES[@]}"; do
	q "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
	wait_workers
	setup_scale "$s"
	X[$s,rows]=$(q "SELECT count(*) FROM pgbench_accounts")
	X[$s,tbl]=$(mib "$(q "SELECT pg_table_size('pgbench_accounts')")")
	q "$COPY_SQL" >/dev/null      # warm-up (the table is larger than shared_buffers/4: ring buffer, OS cache)
	copy_null
	X[$s,copy]=$RES X[$s,copy_cpu]="postgres $RES_PG, S3 server $RES_S3"
	miss
	X[$s,miss]=$RES X[$s,miss_cpu]="postgres $RES_PG, S3 server $RES_S3"
	X[$s,bytes]=$(q "SELECT bytes FROM tsnap_snapshot_info('pgbench_accounts')")
	printf 'scale %d: %s rows, table %s MiB, CSV %s MiB: COPY -> /dev/null %.3f s (CPU s: %s), miss %.3f s (CPU s: %s)\n' \
		"$s" "${X[$s,rows]}" "${X[$s,tbl]}" "$(mib "${X[$s,bytes]}")" "${X[$s,copy]}" "${X[$s,copy_cpu]}" "${X[$s,miss]}" "${X[$s,miss_cpu]}"
	rss_run "$s"
done

# -------------------------------------------------------------------- summary
M_A=$(echo "${T[copy_null]}" | median)
M_B=$(echo "${T[copy_s3]}" | median)
M_C=$(echo "${T[miss]}" | median)
M_S=$(echo "${T[select1]}" | median)
M_H=$(echo "${T[hit]}" | median)
M_V=$(echo "${T[version]}" | median)
verdict() { awk -v v="$1" -v op="$2" -v lim="$3" 'BEGIN {ok = (op == "<=") ? v <= lim : v >= lim; print ok ? "met" : "NOT met"}'; }
echo
echo "SUMMARY  pgbench_accounts scale $SCALE ($ROWS rows, CSV $(mib "$CSV_BYTES") MiB), medians of $ROUNDS alternating rounds"
cpu() { printf 'CPU s: postgres %s, S3 server %s' "$(echo "${T[$1,pg]}" | median)" "$(echo "${T[$1,s3]}" | median)"; }
awk -v a="$M_A" -v b="$M_B" -v c="$M_C" -v mb="$(mib "$CSV_BYTES")" -v va="$(verdict "$(awk -v a="$M_A" -v c="$M_C" 'BEGIN {print c/a}')" '<=' 1.25)" \
	-v ca="$(cpu copy_null)" -v cb="$(cpu copy_s3)" -v cc="$(cpu miss)" 'BEGIN {
	printf "  (a) COPY csv -> /dev/null          %8.3f s   %6.1f MiB/s                                 (%s)\n", a, mb / a, ca
	printf "  (b) COPY csv | aws s3 cp -         %8.3f s   %6.1f MiB/s   (b)/(a) %.2f                  (%s)\n", b, mb / b, b / a, cb
	printf "  (c) tsnap_snapshot miss            %8.3f s   %6.1f MiB/s   (c)/(a) %.2f  target <= 1.25: %s  (%s);  (c)/(b) %.2f\n", c, mb / c, c / a, va, cc, c / b
}'
awk -v s="$M_S" -v h="$M_H" -v v="$M_V" -v cl="$CLIENTS" -v vd="$(verdict "$(awk -v s="$M_S" -v h="$M_H" 'BEGIN {print h/s}')" '>=' 0.5)" 'BEGIN {
	printf "  (d) SELECT 1                       %8.1f tps (%d clients)\n", s, cl
	printf "      tsnap_snapshot hit             %8.1f tps            hit/SELECT 1 %.2f  target >= 0.5: %s\n", h, h / s, vd
	printf "      tsnap_version (reference)      %8.1f tps            version/SELECT 1 %.2f\n", v, v / s
}'
printf '  (e) worker memory during a miss; bound 48 + %s x (%s + 1) = %s MiB, compared with RssAnon+RssFile peak\n' \
	"$PART_MIB" "$IN_FLIGHT" "$BOUND_MIB"
for s in "$SCALE" "${EXTRA_SCALES[@]}"; do
	priv=$(mib $((RSS[$s,priv] * 1024)))
	printf '      scale %-4d VmHWM %7s MiB (RssShmem %s MiB at exit); RssAnon+RssFile peak %6s MiB: %s;  VmHWM-RssShmem in [%s, %s] MiB\n' \
		"$s" "$(mib $((RSS[$s,hwm] * 1024)))" "$(mib $((RSS[$s,shm1] * 1024)))" "$priv" \
		"$(verdict "$priv" '<=' "$BOUND_MIB")" \
		"$(mib $(((RSS[$s,hwm] - RSS[$s,shm1]) * 1024)))" "$(mib $(((RSS[$s,hwm] - RSS[$s,shm0]) * 1024)))"
done
for s in "${EXTRA_SCALES[@]}"; do
	awk -v s="$s" -v a="${X[$s,copy]}" -v c="${X[$s,miss]}" -v mb="$(mib "${X[$s,bytes]}")" 'BEGIN {
		printf "  scale %d (one run each): COPY -> /dev/null %.3f s, miss %.3f s (%.1f MiB/s), miss/COPY %.2f\n", s, a, c, mb / c, c / a }'
done
