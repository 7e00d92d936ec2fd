#!/bin/bash
# test/run-all.sh - run every tsnap test suite; exits non-zero on any failure.
#
# On a fresh Debian 12 machine, as root: installs the packages, builds and
# installs tsnap, starts a local Ceph RGW (S3) and a PostgreSQL 15 cluster
# with tsnap preloaded, then runs
#   - the version check (tsnap.control, META.json, install script agree),
#   - pg_regress (sql/, expected/) and the isolation specs (test/specs/)
#     against that cluster, all of them: also the _HARNESS ones that need
#     its S3 settings or prepared transactions, which "make installcheck"
#     leaves out (see the Makefile),
#   - the TAP tests (test/t/), which start clusters of their own,
#   - the S3 client's unit and integration tests (test/s3/), when present,
# and stops everything it started, also on failure or interrupt.
#
# Usage: bash test/run-all.sh            (TSNAP_KEEP=1 keeps the work dir)
source "$(dirname "$0")/lib.sh"

tsnap_install_deps
tsnap_make_workdir test
trap tsnap_cleanup EXIT
trap 'exit 130' INT TERM

tsnap_build_install
tsnap_start_rgw
tsnap_start_cluster

B=$TSNAP_WORK/src
MK=(make -C "$B" PG_CONFIG="$PG_CONFIG")
passed=0
failed=0
failures=()

# suite NAME CMD...: run one suite and count its tests from its own output:
# pg_regress's "... ok" / "... FAILED" lines, prove's "Tests=N" summary and
# "Failed X/Y subtests" lines.
suite() {
	local name=$1 out rc p f total tf
	shift
	out=$TSNAP_WORK/suite-$(echo "$name" | tr ' ' '-').log
	log "suite: $name"
	set +e
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	p=$(grep -cE ' \.\.\. ok' "$out" || true)
	f=$(grep -cE ' \.\.\. FAILED' "$out" || true)
	total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$out" | awk '{s += $1} END {print s + 0}')
	tf=$(sed -n 's/.*Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$out" | awk '{s += $1} END {print s + 0}')
	p=$((p + total - tf))
	f=$((f + tf))
	if [ "$rc" != 0 ]; then
		# a suite that failed without a failing test (a crash, a build error)
		[ "$f" = 0 ] && f=1
		failures+=("$name")
		for d in "$B/regression.diffs" "$B/test/output_iso/regression.diffs"; do
			[ -s "$d" ] && { echo "---- $d"; cat "$d"; rm -f "$d"; }
		done
		ls "$B"/tmp_check/log/*.log >/dev/null 2>&1 && tail -n 50 "$B"/tmp_check/log/*.log
	elif [ "$((p + f))" = 0 ]; then
		p=1		# a check with no test lines of its own (the version check)
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

suite "version check" as_pg "${MK[@]}" -s check-version
suite "pg_regress" as_pg "${MK[@]}" installcheck-regress
suite "isolation" as_pg "${MK[@]}" installcheck-isolation
ls "$B"/test/t/*.pl >/dev/null 2>&1 &&
	suite "TAP" as_pg "${MK[@]}" installcheck-tap

if [ -f "$TSNAP_SRC/test/s3/Makefile" ]; then
	suite "S3 client unit tests" as_pg make -s -C "$B/test/s3" check
	suite "S3 client integration tests" as_pg make -s -C "$B/test/s3" integration
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ ${#failures[@]} = 0 ]
