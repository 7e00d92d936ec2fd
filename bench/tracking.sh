#!/bin/bash
# bench/tracking.sh - what tracking costs writers.
#
# pgbench single-row UPDATEs on pgbench_accounts (scale 10), with the table
# untracked and tracked, at 1 and 8 clients, in alternating rounds on one
# throwaway cluster (fsync and synchronous_commit on, as in production).
# Prints each run's tps and, per client count, the ratio of the medians
# tracked/untracked.  Targets (issue 2): >= 0.95 at 1 client, >= 0.90 at 8.
#
# Usage: bash bench/tracking.sh [rounds (3)] [seconds per run (10)]
source "$(dirname "$0")/../test/lib.sh"
ROUNDS=${1:-3}
SECS=${2:-10}

tsnap_install_deps
tsnap_make_workdir bench-tracking
trap tsnap_cleanup EXIT
tsnap_build_install
tsnap_start_cluster "max_connections = 50"

cat >"$TSNAP_WORK/update.sql" <<'SQL'
\set aid random(1, 100000 * :scale)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SQL
[ "$(id -u)" = 0 ] && chown postgres: "$TSNAP_WORK/update.sql"

as_pg pgbench -q -i -s 10 >/dev/null 2>&1
as_pg psql -Xq -c "CREATE EXTENSION tsnap"

run() {  # $1 = clients -> tps
	as_pg pgbench -n -M prepared -c "$1" -j "$1" -T "$SECS" -f "$TSNAP_WORK/update.sql" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

declare -A TPS
for r in $(seq 1 "$ROUNDS"); do
	for mode in untracked tracked; do
		if [ $mode = tracked ]; then
			as_pg psql -Xq -c "SELECT tsnap_track('pgbench_accounts')" >/dev/null
		else
			as_pg psql -Xq -c "SELECT tsnap_untrack('pgbench_accounts')" >/dev/null 2>&1
		fi
		as_pg psql -Xq -c "CHECKPOINT" >/dev/null
		for c in 1 8; do
			t=$(run "$c")
			TPS[$mode,$c]="${TPS[$mode,$c]:-} $t"
			printf 'round %d  %-9s  %d client(s)  %10.1f tps\n' "$r" "$mode" "$c" "$t"
		done
	done
done
v=$(as_pg psql -XAtc "SELECT tsnap_version('pgbench_accounts')")
echo "pgbench_accounts rows_version after the tracked runs: $v"

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for c in 1 8; do
	u=$(echo "${TPS[untracked,$c]}" | median)
	t=$(echo "${TPS[tracked,$c]}" | median)
	awk -v c="$c" -v u="$u" -v t="$t" 'BEGIN {printf "RESULT %d client(s): untracked %.1f tps, tracked %.1f tps, ratio %.3f\n", c, u, t, t/u}'
done
