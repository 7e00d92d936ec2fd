#!/bin/bash
# test/demo.sh - tsnap in two minutes, on a throwaway cluster.
#
# Installs what it needs (Debian 12, as root), builds and installs tsnap,
# starts a local S3 server (Ceph RGW) and a PostgreSQL 15 cluster with tsnap
# preloaded, tracks a sample table, changes it and shows the versions, then
# stops everything and removes its files.
source "$(dirname "$0")/lib.sh"

tsnap_install_deps
tsnap_make_workdir demo
trap tsnap_cleanup EXIT
trap 'exit 130' INT TERM
tsnap_build_install
tsnap_start_rgw
tsnap_start_cluster

log "the S3 server answers (bucket $S3_BUCKET at $S3_ENDPOINT):"
AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_DEFAULT_REGION=$S3_REGION \
	aws --endpoint-url "$S3_ENDPOINT" s3api head-bucket --bucket "$S3_BUCKET" && echo "bucket $S3_BUCKET: ok"

log "tracking a table"
as_pg psql -X -v ON_ERROR_STOP=1 -e <<'SQL'
CREATE EXTENSION tsnap;
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 1);
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
log "demo done; cleaning up"
