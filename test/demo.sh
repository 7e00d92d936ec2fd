#!/bin/bash
# test/demo.sh - tsnap in two minutes, on a throwaway cluster.
#
# Installs what it needs (Debian 12, as root), builds and installs tsnap,
# starts a local S3 server (Ceph RGW) and a PostgreSQL 15 cluster with tsnap
# preloaded, tracks a sample table, snapshots it to S3 and reads the object
# back with awscli, changes the table and snapshots it again (a new key),
# shows that an unchanged table is a cache hit, then stops everything and
# removes its files.
source "$(dirname "$0")/lib.sh"

tsnap_install_deps
tsnap_make_workdir demo
trap tsnap_cleanup EXIT
trap 'exit 130' INT TERM
tsnap_build_install
tsnap_start_rgw
tsnap_start_cluster

export AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_DEFAULT_REGION=$S3_REGION
s3() { aws --endpoint-url "$S3_ENDPOINT" "$@"; }
psql_demo() { as_pg psql -X -v ON_ERROR_STOP=1 "$@"; }

log "the S3 server answers (bucket $S3_BUCKET at $S3_ENDPOINT):"
s3 s3api head-bucket --bucket "$S3_BUCKET" && echo "bucket $S3_BUCKET: ok"

log "tracking a table"
psql_demo -e <<'SQL'
CREATE EXTENSION tsnap;
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear, "green"', 1);
SELECT tsnap_track('orders');
SELECT tsnap_version('orders');
INSERT INTO orders VALUES (3, 'fig', 7);
UPDATE orders SET qty = qty + 1 WHERE id = 1;
SELECT tsnap_version('orders');
BEGIN;
DELETE FROM orders;
ROLLBACK;
SELECT * FROM tsnap.tracked;
SELECT * FROM orders ORDER BY id;
SQL

log "snapshotting the table: a background worker writes it to S3 as CSV"
psql_demo -x -e -c "SELECT * FROM tsnap_snapshot_info('orders')"
key=$(psql_demo -At -c "SELECT tsnap_snapshot('orders')")
log "reading s3://$S3_BUCKET/$key back with awscli:"
s3 s3 cp "s3://$S3_BUCKET/$key" -
log "the same bytes as COPY (FORMAT csv, HEADER):"
if cmp <(s3 s3 cp "s3://$S3_BUCKET/$key" -) \
	<(psql_demo -Atq -c "COPY orders TO STDOUT (FORMAT csv, HEADER)"); then
	echo "identical"
fi

log "unchanged: the next call is a cache hit, no rows read"
psql_demo -e -c "SELECT key = '$key' AS same_key, hit FROM tsnap_snapshot_info('orders')"

log "a write bumps the version, so the next snapshot has a new key"
psql_demo -e <<'SQL'
INSERT INTO orders VALUES (4, 'quince', 2);
SELECT rows_version, rows, hit, key FROM tsnap_snapshot_info('orders');
SQL
key=$(psql_demo -At -c "SELECT tsnap_snapshot('orders')")
s3 s3 cp "s3://$S3_BUCKET/$key" -

log "an asynchronous snapshot: a job, watched in tsnap.jobs, then waited for"
psql_demo -e <<'SQL'
INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(5, 200000) g;
SELECT tsnap_snapshot_async('orders') AS job \gset
SELECT job_id, state, rows_estimate, rows_done, bytes_done, parts_done FROM tsnap.jobs WHERE job_id = :job;
SELECT tsnap_wait(:job) IS NOT NULL AS got_key;
SELECT job_id, state, attempts, rows_done, bytes_done, finished_at - started_at AS took FROM tsnap.jobs WHERE job_id = :job;
SQL
log "demo done; cleaning up"
