#!/bin/bash
# bench/restore.sh - what a restore costs, against plain COPY FROM.
#
# On pgbench_accounts (scale 10: 1M rows, 96 MB of CSV), loaded into an
# empty copy of the table without indexes, in alternating rounds after a
# warm-up of each method:
#  (a) COPY target FROM '<file>' (FORMAT csv, HEADER): the snapshot's CSV
#      from a local file, read by the server;
#  (b) aws s3 cp s3://bucket/<key> - | psql -c "COPY target FROM STDIN":
#      the same object through Debian's awscli and psql;
#  (c) SELECT tsnap_restore('target', <key>): the object as tsnap wrote it;
#  (d) the same with a gzip copy of the object (gzip -c, level 6);
#  (e) the same with a zstd copy (zstd -c, level 3).
# The target is emptied (TRUNCATE, untimed) before each run.  Each run of
# (a), (c), (d) and (e) also samples the backend's /proc/PID/status every
# ~50 ms: the peak of RssAnon (its private memory) is printed, for the claim
# that a restore's memory does not grow with the object.  The warm-up checks
# that (c), (d) and (e) load the rows COPY loads (md5 of the ordered table).
# Prints every run, then medians and each method's ratio to (a) and (b).
#
# The manifests beside the objects are written here (sha256 of the object as
# stored), as the test does, since the snapshot worker may not write them.
#
# By default it starts a throwaway cluster and Ceph RGW (test/lib.sh) and
# installs tsnap with PG_CONFIG.  BENCH_EXISTING=1 instead uses the running
# cluster that PGHOST/PGPORT/PGUSER name (tsnap installed and preloaded, its
# tsnap.s3_* settings pointing at the S3 server in S3_ENDPOINT, S3_REGION,
# S3_BUCKET, S3_ACCESS, S3_SECRET), in a database of its own, which it drops
# at the end along with its objects.
#
# Env: ROUNDS (3), BENCH_EXISTING.
# Usage: bash bench/restore.sh [scale (10)]
source "$(dirname "$0")/../test/lib.sh"
shopt -s inherit_errexit
SCALE=${1:-10}
ROUNDS=${ROUNDS:-3}
AWS=/usr/bin/aws
DB=tsnap_bench_restore
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/restore.sh [scale]" >&2; exit 2; }
[ -x "$AWS" ] || AWS=$(command -v aws) || { echo "awscli missing (apt-get install awscli)" >&2; exit 1; }

WATCHER=
KEYS=()
bench_cleanup() {
	local rc=$? k
	set +e
	[ -n "$WATCHER" ] && kill "$WATCHER" 2>/dev/null
	for k in "${KEYS[@]}"; do aws_s3 rm --only-show-errors "s3://$S3_BUCKET/$k"; done
	if [ -n "${BENCH_EXISTING:-}" ]; then
		as_pg psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null
		rm -rf "$TSNAP_WORK"
	else
		tsnap_cleanup
	fi
	return $rc
}

tsnap_make_workdir bench-restore
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${BENCH_EXISTING:-}" ]; then
	tsnap_install_deps
	tsnap_build_install
	export MEMSTORE_BYTES=$(((SCALE * 40 + 1024) * 1024 * 1024))
	tsnap_start_rgw
	tsnap_start_cluster "shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min"
fi
export AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET
export AWS_DEFAULT_REGION=$S3_REGION AWS_EC2_METADATA_DISABLED=true
aws_s3() { "$AWS" --endpoint-url "$S3_ENDPOINT" s3 "$@"; }
q() { as_pg psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

as_pg psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
q "CREATE EXTENSION tsnap" >/dev/null
log "pgbench -i -s $SCALE"
as_pg pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
q "SELECT tsnap_track('pgbench_accounts')" >/dev/null
q "CREATE TABLE target (LIKE pgbench_accounts)" >/dev/null
KEY=$(q "SELECT tsnap_snapshot('pgbench_accounts')")
VERSION=$(q "SELECT tsnap_version('pgbench_accounts')")
CSV=$TSNAP_WORK/accounts.csv
aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$KEY" "$CSV"
chmod 644 "$CSV"
gzip -c "$CSV" >"$CSV.gz"
zstd -q -c "$CSV" >"$CSV.zst"
KEY_GZ=$KEY.bench.gz
KEY_ZST=$KEY.bench.zst
KEYS=("$KEY.manifest.json" "$KEY_GZ" "$KEY_GZ.manifest.json" "$KEY_ZST" "$KEY_ZST.manifest.json")

# manifest KEY FILE COMPRESSION: written beside KEY, for FILE as stored
manifest() {
	local m=$TSNAP_WORK/manifest.json
	q "SET search_path = pg_catalog;
	   SELECT json_build_object('format_version', 1,
		'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
		'database', current_database(), 'schema', 'public', 'table', 'pgbench_accounts',
		'tracking_id', (SELECT tracking_id FROM tsnap.tracked_tables WHERE tbl = 'public.pgbench_accounts'::regclass),
		'rows_version', $VERSION, 'key', '$1',
		'columns', (SELECT json_agg(json_build_object('name', attname, 'type', format_type(atttypid, atttypmod)) ORDER BY attnum)
			FROM pg_attribute WHERE attrelid = 'public.pgbench_accounts'::regclass AND attnum > 0 AND NOT attisdropped),
		'bytes', $(stat -c %s "$2"), 'compression', '$3',
		'csv', json_build_object('header', true, 'delimiter', ',', 'quote', '\"', 'escape', '\"', 'null', '', 'encoding', 'UTF8'),
		'output_settings', json_build_object('DateStyle', 'ISO, MDY', 'IntervalStyle', 'postgres', 'lc_monetary', 'C'),
		'checksum', json_build_object('algorithm', 'sha256', 'value', '$(sha256sum "$2" | cut -c1-64)'))" >"$m"
	aws_s3 cp --only-show-errors "$m" "s3://$S3_BUCKET/$1.manifest.json"
}
manifest "$KEY" "$CSV" none
aws_s3 cp --only-show-errors "$CSV.gz" "s3://$S3_BUCKET/$KEY_GZ"
manifest "$KEY_GZ" "$CSV.gz" gzip
aws_s3 cp --only-show-errors "$CSV.zst" "s3://$S3_BUCKET/$KEY_ZST"
manifest "$KEY_ZST" "$CSV.zst" zstd
log "object: $(stat -c %s "$CSV") bytes; gzip $(stat -c %s "$CSV.gz"), zstd $(stat -c %s "$CSV.zst")"

# The backend's peak RssAnon (kB) while SQL runs: a sampler polls the pid
# of the one backend of this database that runs a query.
PEAK=
run_sampled() {  # $1 = SQL
	local samples=$TSNAP_WORK/samples stop=$TSNAP_WORK/stop
	rm -f "$samples" "$stop"
	(
		pid=
		while [ ! -e "$stop" ]; do
			[ -z "$pid" ] && pid=$(as_pg psql -XAtq -d postgres -c "SELECT pid FROM pg_stat_activity
				WHERE datname = '$DB' AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%target%' LIMIT 1")
			[ -n "$pid" ] && awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" >>"$samples" 2>/dev/null
			sleep 0.05
		done
	) &
	WATCHER=$!
	q "$1" >/dev/null
	touch "$stop"
	wait "$WATCHER"
	WATCHER=
	PEAK=$(sort -n "$samples" 2>/dev/null | tail -1)
}

declare -A SQL=(
	[a]="COPY target FROM '$CSV' (FORMAT csv, HEADER)"
	[c]="SELECT tsnap_restore('target', '$KEY')"
	[d]="SELECT tsnap_restore('target', '$KEY_GZ')"
	[e]="SELECT tsnap_restore('target', '$KEY_ZST')"
)
RES= RSS=
one() {  # $1 = method
	local t0 t1
	q "TRUNCATE target" >/dev/null
	q "CHECKPOINT" >/dev/null
	t0=$(now)
	if [ "$1" = b ]; then
		aws_s3 cp --only-show-errors "s3://$S3_BUCKET/$KEY" - |
			as_pg psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "COPY target FROM STDIN (FORMAT csv, HEADER)" >/dev/null
		RSS=-
	else
		run_sampled "${SQL[$1]}"
		RSS=$PEAK
	fi
	t1=$(now)
	RES=$(secs "$t0" "$t1")
}

log "warm-up"
for m in a b c d e; do
	one $m
	sum=$(q "SELECT md5(string_agg(t::text, ',' ORDER BY aid)) FROM target t")
	[ -z "${WANT:-}" ] && WANT=$sum
	[ "$sum" = "$WANT" ] || { echo "ERROR: method $m loaded other rows" >&2; exit 1; }
	echo "warm-up $m: ${RES}s, rows identical"
done
declare -A ALL=()
for r in $(seq 1 "$ROUNDS"); do
	for m in a b c d e; do
		one $m
		ALL[$m]="${ALL[$m]:-} $RES"
		echo "round $r $m: ${RES}s, backend peak RssAnon ${RSS} kB"
	done
done
declare -A MED
for m in a b c d e; do MED[$m]=$(echo "${ALL[$m]}" | median); done
echo
echo "medians of $ROUNDS rounds, scale $SCALE ($(stat -c %s "$CSV") bytes of CSV):"
echo "(a) COPY FROM a local file          ${MED[a]} s"
echo "(b) aws s3 cp | COPY FROM STDIN     ${MED[b]} s   (b)/(a) $(ratio "${MED[b]}" "${MED[a]}")"
for m in c d e; do
	case $m in c) l='tsnap_restore, uncompressed' ;; d) l='tsnap_restore, gzip        ' ;; e) l='tsnap_restore, zstd        ' ;; esac
	echo "($m) $l     ${MED[$m]} s   ($m)/(a) $(ratio "${MED[$m]}" "${MED[a]}")   ($m)/(b) $(ratio "${MED[$m]}" "${MED[b]}")"
done
