-- tsnap_snapshot: hits and misses, and when a key changes.
-- Keys carry the cluster's system identifier and a random nonce, so the
-- tests compare keys with each other and with the documented layout rather
-- than print them.
SET client_min_messages = warning;

CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 1000) g;
SELECT tsnap_track('orders');

-- a miss builds and uploads; the manifest says so
SELECT key AS k1, rows_version AS v1 FROM tsnap_snapshot_info('orders') \gset
SELECT :'k1' ~ ('^table-snapshots/[0-9]+/' || current_database() ||
	'/public/orders/[0-9a-f-]{36}/v0-[0-9a-f]{16}-[0-9a-f]{16}\.csv$') AS layout_ok;
SELECT rows_version, rows, bytes > 0 AS has_bytes, etag ~ '^"[0-9a-f]{32}"$' AS single_put_etag
FROM tsnap.snapshots WHERE key = :'k1';

-- the same version again is a hit with the same key
SELECT key = :'k1' AS same_key, hit, rows, rows_version FROM tsnap_snapshot_info('orders');
SELECT tsnap_snapshot('orders') = :'k1' AS same_key;

-- a write bumps the version: a new key
UPDATE orders SET qty = qty + 1 WHERE id = 1;
SELECT tsnap_snapshot('orders') AS k2 \gset
SELECT :'k2' <> :'k1' AS new_key, :'k2' ~ '/v1-' AS version_1;
-- a statement that changes no row still counts as a write
DELETE FROM orders WHERE id < 0;
SELECT tsnap_snapshot('orders') AS k3 \gset
SELECT :'k3' <> :'k2' AS new_key, :'k3' ~ '/v2-' AS version_2;

-- the fingerprint: every kind of column change gives a new key at the same
-- version (DDL does not bump the version)
SELECT tsnap_version('orders') AS v \gset
SELECT split_part(:'k3', '-', -2) AS fp0 \gset
ALTER TABLE orders ADD COLUMN note text;
SELECT tsnap_version('orders') = :v AS same_version;
SELECT tsnap_snapshot('orders') AS k4 \gset
SELECT :'k4' <> :'k3' AS new_key, split_part(:'k4', '-', -2) <> :'fp0' AS new_fingerprint;
ALTER TABLE orders RENAME COLUMN note TO remark;
SELECT tsnap_snapshot('orders') AS k5 \gset
SELECT :'k5' <> :'k4' AS renamed_new_key;
ALTER TABLE orders ALTER COLUMN qty TYPE bigint;
SELECT tsnap_snapshot('orders') AS k6 \gset
SELECT :'k6' <> :'k5' AS retyped_new_key;
ALTER TABLE orders DROP COLUMN remark;
SELECT tsnap_snapshot('orders') AS k7 \gset
SELECT :'k7' <> :'k6' AS dropped_new_key;
-- retype back: the original columns, but ALTER COLUMN TYPE rewrote the
-- table (a new file node, which can mean a new row order), so a new
-- fingerprint, and a new key at the same version
ALTER TABLE orders ALTER COLUMN qty TYPE int;
SELECT tsnap_snapshot('orders') AS k7 \gset
SELECT split_part(:'k7', '-', -2) <> :'fp0' AS rewritten_new_fingerprint,
       :'k7' <> :'k3' AS still_new_key;
-- a typmod change is a type change too
ALTER TABLE orders ALTER COLUMN item TYPE varchar(100);
SELECT tsnap_snapshot('orders') AS k8 \gset
SELECT :'k8' <> :'k7' AS typmod_new_key;

-- retention keeps tsnap.keep_versions (2) snapshots per table; the older
-- ones move to tsnap.pending_deletes, and the worker deletes them (the test
-- cluster runs with tsnap.keep_for = 0, so at once)
SELECT count(*) AS kept FROM tsnap.snapshots WHERE tbl = 'orders'::regclass;
SELECT count(*) = 0 AS old_keys_gone FROM tsnap.snapshots
WHERE key IN (:'k1', :'k2', :'k3', :'k4', :'k5', :'k6');

-- DROP and CREATE under the same name never reuses a key: a new tracking_id
SELECT tracking_id AS t1 FROM tsnap.tracked_tables WHERE tbl = 'orders'::regclass \gset
DROP TABLE orders;
SELECT count(*) AS catalog_rows_left FROM tsnap.snapshots WHERE key = :'k8';
SELECT count(*) AS queued_for_delete FROM tsnap.pending_deletes WHERE key = :'k8';
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 1000) g;
SELECT tsnap_track('orders');
SELECT tsnap_snapshot('orders') AS k9 \gset
SELECT :'k9' <> :'k1' AS new_key_same_version,
       position(:'t1' in :'k9') = 0 AS new_tracking_id;

-- untrack and track again: a new tracking_id, so the old key is no hit
SELECT tsnap_untrack('orders');
SELECT tsnap_track('orders');
SELECT tsnap_snapshot('orders') <> :'k9' AS retracked_new_key;

-- awkward names: keys stay one segment per name, percent-encoded
CREATE SCHEMA "we/ird sch""ema";
CREATE TABLE "we/ird sch""ema"."..tåble, ""x""" (a int);
INSERT INTO "we/ird sch""ema"."..tåble, ""x""" VALUES (1);
SELECT tsnap_track('"we/ird sch""ema"."..tåble, ""x"""');
SELECT regexp_replace(tsnap_snapshot('"we/ird sch""ema"."..tåble, ""x"""'),
	'^table-snapshots/[0-9]+/[^/]+/(.*)/[0-9a-f-]{36}/v0-.*$', '\1') AS encoded_names;

-- partitioned tables snapshot through the parent, every partition included
CREATE TABLE measurements (id int, region text) PARTITION BY LIST (region);
CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
INSERT INTO measurements SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END
FROM generate_series(1, 10) g;
SELECT tsnap_track('measurements');
SELECT rows, hit FROM tsnap_snapshot_info('measurements');
INSERT INTO measurements_eu VALUES (11, 'eu');
SELECT rows, rows_version, hit FROM tsnap_snapshot_info('measurements');

-- a caller in a REPEATABLE READ transaction gets its own version
CREATE TABLE rr (a int);
SELECT tsnap_track('rr');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT rows_version, rows FROM tsnap_snapshot_info('rr');
SELECT rows_version, rows, hit FROM tsnap_snapshot_info('rr');
COMMIT;

DROP TABLE rr, measurements, "we/ird sch""ema"."..tåble, ""x""", orders;
DROP SCHEMA "we/ird sch""ema";
