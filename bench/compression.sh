#!/bin/bash
# bench/compression.sh - what compression saves and costs, side by side.
#
# On two tables, on one throwaway cluster (shared_buffers 1GB, so every miss
# reads the table from shared buffers) and one throwaway Ceph RGW:
#  - pgbench_accounts at scale SCALE (10: 1M rows, ~92 MiB of CSV; mostly
#    digits and blank padding);
#  - events: ROWS (600000) rows of text-heavy, log-like lines (HTTP
#    requests, user agents, session ids, English text from pg_description).
# For each table and each codec in CODECS, in alternating rounds after a
# warm-up: a one-row UPDATE makes a new version (untimed), then
# SELECT tsnap_snapshot(tbl, codec) is timed (a miss: the worker scans,
# compresses and uploads).  The object's size comes from
# tsnap_snapshot_info.  The warm-up also checks that each object,
# decompressed with gunzip or zstd -d, has COPY's bytes (md5).
# Prints every run, then per table the medians with the ratios to the
# uncompressed snapshot: size (compressed / CSV) and miss time (codec /
# none), and the CPU seconds PostgreSQL and the S3 server spent per miss.
#
# A codec is none, gzip[:level] or zstd[:level]; a level is set with ALTER
# SYSTEM and a reload before the codec's miss (the worker reads it).
# Env: ROUNDS (3), ROWS (600000), CODECS ("none gzip:1 gzip:6 zstd:1 zstd:3").
# With S3_ENDPOINT (and S3_REGION, S3_BUCKET, S3_ACCESS, S3_SECRET) set, that
# S3 server is used instead of a throwaway RGW.
# Usage: bash bench/compression.sh [scale (10)]
source "$(dirname "$0")/../test/lib.sh"
shopt -s inherit_errexit
SCALE=${1:-10}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-600000}
CODECS=(${CODECS:-none gzip:1 gzip:6 zstd:1 zstd:3})
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/compression.sh [scale]" >&2; exit 2; }
for c in "${CODECS[@]}"; do
	[[ $c =~ ^(none|gzip(:[1-9])?|zstd(:([1-9]|1[0-9]))?)$ ]] ||
		{ echo "bad codec '$c' in CODECS: none, gzip[:1-9] or zstd[:1-19]" >&2; exit 2; }
done

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
tsnap_make_workdir bench-compression
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
tsnap_build_install
if [ -z "${S3_ENDPOINT:-}" ]; then
	# room for what a run keeps at once (retention deletes at once, and
	# RGW's garbage collector stays off, as in bench/snapshot.sh)
	export RGW_GC_MIN_WAIT=86400
	export MEMSTORE_BYTES=$((((ROUNDS + 2) * (SCALE * 10 + ROWS / 2500) * 2 + 1024) * 1024 * 1024))
	tsnap_start_rgw
fi
tsnap_start_cluster "max_connections = 50
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
tsnap.key_prefix = 'bench-compression'"

q() { as_pg psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

export AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET
export AWS_DEFAULT_REGION=$S3_REGION AWS_EC2_METADATA_DISABLED=true
s3_cat() { aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "s3://$S3_BUCKET/$1" -; }

wait_workers() {
	local i
	for i in $(seq 1 1200); do
		[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'")" = 0 ] && return 0
		sleep 0.1
	done
	echo "WARNING: a tsnap worker still runs 120 s after its request returned" >&2
}

# CPU seconds of PostgreSQL (children of the postmaster that exited) and of
# the S3 server (only a throwaway RGW's processes are known), as in
# bench/snapshot.sh
PM_PID=$(head -1 "$PGDATA/postmaster.pid")
S3_PIDS=$(cat "${RGWLAB_DIR:-/nonexistent}"/run/*.pid 2>/dev/null || true)
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

# set_codec CODEC[:LEVEL]: CODEC, and the level the workers will use
CODEC=
set_codec() {
	local name=${1%%:*} level=${1#*:} want
	CODEC=$name
	[ "$level" = "$1" ] && return 0
	q "ALTER SYSTEM SET tsnap.${name}_level = $level" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		want=$(q "SHOW tsnap.${name}_level")
		[ "$want" = "$level" ] && return 0
		sleep 0.05
	done
	echo "ERROR: tsnap.${name}_level did not become $level" >&2; exit 1
}

# miss TABLE CODEC[:LEVEL]: a new version, then one timed miss; sets RES
# (seconds), RES_BYTES, RES_KEY, RES_PG, RES_S3 (CPU seconds)
miss() {
	local tbl=$1 key
	set_codec "$2"
	if [ "$tbl" = events ]; then
		q "UPDATE events SET status = status WHERE id = 1" >/dev/null
	else
		q "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1" >/dev/null
	fi
	wait_workers
	settle
	local c0 s0 t0 t1
	c0=$(cpu_pg) s0=$(cpu_s3) t0=$(now)
	key=$(q "SELECT tsnap_snapshot('$tbl', '$CODEC')")
	t1=$(now)
	wait_workers
	settle
	RES=$(secs "$t0" "$t1")
	RES_PG=$(awk -v a="$c0" -v b="$(cpu_pg)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
	RES_S3=$(awk -v a="$s0" -v b="$(cpu_s3)" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
	RES_KEY=$key
	RES_BYTES=$(q "SELECT bytes FROM tsnap.snapshots WHERE key = '$key'")
}

decompress() {  # codec: stdin -> stdout
	case $1 in
	none) cat ;;
	gzip) gunzip -c ;;
	zstd) zstd -d -c -q ;;
	esac
}

log "pgbench -i -s $SCALE"
q "CREATE EXTENSION tsnap"
as_pg pgbench -i -q -s "$SCALE" >"$TSNAP_WORK/pgbench-init.log" 2>&1 ||
	{ cat "$TSNAP_WORK/pgbench-init.log"; exit 1; }
log "events: $ROWS rows"
q "CREATE TABLE events AS
WITH d AS (SELECT array_agg(description ORDER BY objoid, classoid, objsubid) AS a
           FROM pg_description)
SELECT g AS id,
       timestamp '2024-01-01' + g * interval '37 seconds' AS at,
       (ARRAY['GET','POST','PUT','DELETE'])[1 + g % 4] || ' /api/v1/' ||
         (ARRAY['orders','customers','items','invoices','payments'])[1 + (g / 7) % 5] || '/' ||
         (g::bigint * 7919 % 100000) AS request,
       CASE WHEN g % 17 = 0 THEN 404 WHEN g % 101 = 0 THEN 500 ELSE 200 END AS status,
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/' ||
         (100 + g % 25) || '.0.' || (g % 5000) || '.0 Safari/537.36' AS user_agent,
       'session ' || md5((g / 20)::text) || ' user ' || (g::bigint * 31 % 50000) AS who,
       d.a[1 + (g::bigint * 13) % cardinality(d.a)] AS note
FROM d, generate_series(1, $ROWS) g" >/dev/null
q "ALTER TABLE events ADD PRIMARY KEY (id)" >/dev/null
for t in pgbench_accounts events; do q "SELECT tsnap_track('$t')" >/dev/null; done
q "VACUUM ANALYZE"
q "CHECKPOINT"

TABLES=(pgbench_accounts events)
declare -A CSV T B PG S3
echo "# $(nproc) cores, $(uname -r); shared_buffers 1GB; tsnap.part_size $(q "SHOW tsnap.part_size")" \
	"x max_parts_in_flight $(q "SHOW tsnap.max_parts_in_flight"); $ROUNDS rounds; codecs ${CODECS[*]}"
for t in "${TABLES[@]}"; do
	CSV[$t]=$(q "COPY $t TO STDOUT (FORMAT csv, HEADER)" | wc -c)
	echo "# $t: $(q "SELECT count(*) FROM $t") rows, table $(mib "$(q "SELECT pg_table_size('$t')")") MiB, CSV $(mib "${CSV[$t]}") MiB"
done

log "warm-up"
for t in "${TABLES[@]}"; do
	for c in "${CODECS[@]}"; do
		miss "$t" "$c"
		copy_md5=$(q "COPY $t TO STDOUT (FORMAT csv, HEADER)" | md5sum | cut -d' ' -f1)
		obj_md5=$(s3_cat "$RES_KEY" | decompress "$CODEC" | md5sum | cut -d' ' -f1)
		[ "$obj_md5" = "$copy_md5" ] ||
			{ echo "ERROR: $t $c: the object decompresses to md5 $obj_md5, COPY's is $copy_md5" >&2; exit 1; }
		printf 'warm-up %-16s %-7s %8.3f s  %10d bytes; decompressed md5 = COPY'"'"'s\n' "$t" "$c" "$RES" "$RES_BYTES"
	done
done

for r in $(seq 1 "$ROUNDS"); do
	for t in "${TABLES[@]}"; do
		n=${#CODECS[@]}
		for i in $(seq 0 $((n - 1))); do
			c=${CODECS[$(((i + r - 1) % n))]}   # rotate the order each round
			miss "$t" "$c"
			T[$t,$c]="${T[$t,$c]:-} $RES"
			B[$t,$c]=$RES_BYTES
			PG[$t,$c]="${PG[$t,$c]:-} $RES_PG"
			S3[$t,$c]="${S3[$t,$c]:-} $RES_S3"
			printf 'round %d  %-16s %-7s %8.3f s  %10d bytes  (CPU s: postgres %s, S3 server %s)\n' \
				"$r" "$t" "$c" "$RES" "$RES_BYTES" "$RES_PG" "$RES_S3"
		done
	done
done

echo
echo "SUMMARY  medians of $ROUNDS alternating rounds; ratios against the uncompressed snapshot"
for t in "${TABLES[@]}"; do
	base=$(echo "${T[$t,none]:-}" | median)
	echo "  $t (CSV $(mib "${CSV[$t]}") MiB)"
	printf '    %-7s %10s %9s %11s %10s   %s\n' codec "MiB" "size/CSV" "miss s" "miss/none" "CPU s per miss: postgres, S3 server"
	for c in "${CODECS[@]}"; do
		m=$(echo "${T[$t,$c]}" | median)
		awk -v c="$c" -v b="${B[$t,$c]}" -v csv="${CSV[$t]}" -v m="$m" -v base="${base:-0}" \
			-v pg="$(echo "${PG[$t,$c]}" | median)" -v s3="$(echo "${S3[$t,$c]}" | median)" 'BEGIN {
			printf "    %-7s %10.1f %9.3f %11.3f %10s   %s, %s\n", c, b / 1048576, b / csv, m,
				(base > 0) ? sprintf("%.2f", m / base) : "-", pg, s3 }'
	done
done
