#!/bin/bash
# bench/s3_throughput.sh - upload throughput of tsnap's S3 client.
#
# Times uploads of one ~100 MiB file: a single PutObject (s3cli put), the
# streaming multipart uploader (s3cli upload), and, for comparison,
# `curl -T` signing with its own --aws-sigv4 (payload unsigned).  Prints
# seconds and MiB/s for each; deletes what it creates.  s3cli is built from
# test/s3 (the S3 client's test harness) first.
#
# Without S3_ENDPOINT it starts a throwaway Ceph RGW of its own (as root,
# through test/lib.sh), sized for the run, and stops it at exit: each run
# writes 3 x SIZE_MIB and RGW reclaims deleted data only after 1-2 minutes,
# so a shared instance (the one the tests use) would fill up.  With
# S3_ENDPOINT (and S3_REGION S3_BUCKET S3_ACCESS S3_SECRET, which default to
# the local RGW's) it uses that endpoint: give it room for RUNS x 3 x
# SIZE_MIB.
#
# Env: SIZE_MIB (100), RUNS (3), S3_PART_SIZE (8388608), S3_IN_FLIGHT (4).
# Usage: bash bench/s3_throughput.sh
source "$(dirname "$0")/../test/lib.sh"
: "${SIZE_MIB:=100}" "${RUNS:=3}"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

log "building s3cli"
make -s -C "$TSNAP_SRC/test/s3" s3cli
S3CLI=$TSNAP_SRC/test/s3/s3cli

FILE=
PREFIX="tsnap-test/throughput-$(date +%s)-$$"
UPLOADING=
OWN_RGW=

# Delete what a run left behind (while the endpoint is still up), then stop
# the RGW if this script started it.  Only then: tsnap_cleanup also removes
# $TSNAP_WORK, which a caller may have exported for its own instance.
cleanup() {
	local rc=$? k
	set +e
	if [ -n "$UPLOADING" ]; then
		for k in put upload curl; do
			"$S3CLI" rm "$PREFIX/$k" >/dev/null 2>&1
		done
	fi
	[ -n "$FILE" ] && rm -f "$FILE"
	[ -n "$OWN_RGW" ] && tsnap_cleanup
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${S3_ENDPOINT:-}" ]; then
	tsnap_install_deps
	OWN_RGW=1
	tsnap_make_workdir bench-s3
	export MEMSTORE_BYTES=${MEMSTORE_BYTES:-$(((3 * RUNS * SIZE_MIB + 512) * 1024 * 1024))}
	tsnap_start_rgw
fi
: "${S3_REGION:=us-east-1}" "${S3_BUCKET:=tsnap}"
: "${S3_ACCESS:=TSNAPACCESSKEY}" "${S3_SECRET:=TSNAPSECRETKEY0123456789}"
export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS S3_SECRET

FILE=$(mktemp "${TMPDIR:-/tmp}/tsnap-throughput.XXXXXX")
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$FILE"

now() { date +%s.%N; }
report() {
	awk -v n="$1" -v t0="$2" -v t1="$3" -v mib="$SIZE_MIB" \
		'BEGIN { printf "%-38s %6.2f s  %7.1f MiB/s\n", n, t1 - t0, mib / (t1 - t0) }'
}

echo "# $SIZE_MIB MiB to $S3_ENDPOINT/$S3_BUCKET, $RUNS runs each"
UPLOADING=1
for run in $(seq "$RUNS"); do
	t0=$(now); "$S3CLI" put "$PREFIX/put" "$FILE" >/dev/null; t1=$(now)
	report "s3cli put (single PutObject)" "$t0" "$t1"
	"$S3CLI" rm "$PREFIX/put"
	t0=$(now); "$S3CLI" upload "$PREFIX/upload" "$FILE" >/dev/null; t1=$(now)
	report "s3cli upload (multipart ${S3_PART_SIZE:-8388608}B x ${S3_IN_FLIGHT:-4})" "$t0" "$t1"
	"$S3CLI" rm "$PREFIX/upload"
	t0=$(now)
	curl -sS -f -o /dev/null -T "$FILE" \
		--aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS:$S3_SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		"$S3_ENDPOINT/$S3_BUCKET/$PREFIX/curl"
	t1=$(now)
	report "curl -T (single PUT, unsigned)" "$t0" "$t1"
	"$S3CLI" rm "$PREFIX/curl"
done
