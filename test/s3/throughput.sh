#!/bin/bash
# throughput.sh - time uploads of one ~100 MiB file to the S3 endpoint:
# a single PutObject and the streaming multipart uploader (s3cli), next to
# `curl -T` signing with its own --aws-sigv4 (payload unsigned).  Prints
# MiB/s for each; deletes what it creates.  Run from test/s3 after `make`.
#
# Env: S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS S3_SECRET (local RGW by
# default), SIZE_MIB (100), RUNS (3), S3_PART_SIZE, S3_IN_FLIGHT.
# Each run writes 3 x SIZE_MIB; RGW reclaims deleted data only after 1-2
# minutes, so use an instance with room (MEMSTORE_BYTES), not the dev one.
set -euo pipefail
cd "$(dirname "$0")"
: "${S3_ENDPOINT:=http://127.0.0.1:7480}" "${S3_REGION:=us-east-1}" "${S3_BUCKET:=tsnap}"
: "${S3_ACCESS:=TSNAPACCESSKEY}" "${S3_SECRET:=TSNAPSECRETKEY0123456789}"
: "${SIZE_MIB:=100}" "${RUNS:=3}"
export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS S3_SECRET
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

FILE=$(mktemp /tmp/tsnap-throughput.XXXXXX)
PREFIX="tsnap-test/throughput-$(date +%s)-$$"
trap 'rm -f "$FILE"; for k in put upload curl; do ./s3cli rm "$PREFIX/$k" >/dev/null 2>&1 || true; done' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$FILE"

now() { date +%s.%N; }
report() { awk -v n="$1" -v t0="$2" -v t1="$3" -v mib="$SIZE_MIB" \
	'BEGIN { printf "%-34s %6.2f s  %7.1f MiB/s\n", n, t1 - t0, mib / (t1 - t0) }'; }

echo "# $SIZE_MIB MiB to $S3_ENDPOINT/$S3_BUCKET, $RUNS runs each"
for run in $(seq "$RUNS"); do
	t0=$(now); ./s3cli put "$PREFIX/put" "$FILE" >/dev/null; t1=$(now)
	report "s3cli put (single PutObject)" "$t0" "$t1"
	./s3cli rm "$PREFIX/put"
	t0=$(now); ./s3cli upload "$PREFIX/upload" "$FILE" >/dev/null; t1=$(now)
	report "s3cli upload (multipart ${S3_PART_SIZE:-8388608}B x ${S3_IN_FLIGHT:-4})" "$t0" "$t1"
	./s3cli rm "$PREFIX/upload"
	t0=$(now)
	curl -sS -f -o /dev/null -T "$FILE" \
		--aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS:$S3_SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		"$S3_ENDPOINT/$S3_BUCKET/$PREFIX/curl"
	t1=$(now)
	report "curl -T (single PUT, unsigned)" "$t0" "$t1"
	./s3cli rm "$PREFIX/curl"
done
