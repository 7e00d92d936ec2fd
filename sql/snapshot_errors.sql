-- tsnap_snapshot: every bad input gets a clear error and an SQLSTATE.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE TABLE tracked (a int, b text);
SELECT tsnap_track('tracked');
CREATE TABLE untracked (a int);

-- untracked: 55000 with a hint to track
SELECT tsnap_snapshot('untracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- not a table: the same errors as tsnap_track
CREATE VIEW v AS SELECT 1 AS a;
SELECT tsnap_snapshot('v');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE SEQUENCE s;
SELECT tsnap_snapshot('s');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TEMP TABLE tmp (a int);
SELECT tsnap_snapshot('tmp');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a missing table is regclass's own error
SELECT tsnap_snapshot('no_such_table');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot(0::oid::regclass);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- NULL in, NULL out (STRICT)
SELECT tsnap_snapshot(NULL) IS NULL AS null_in_null_out;

-- the caller's uncommitted writes: 55000, the worker could not see them
BEGIN;
INSERT INTO tracked VALUES (1, 'x');
SELECT tsnap_snapshot('tracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- also through a subtransaction that is still open
BEGIN;
SAVEPOINT sp;
DELETE FROM tracked;
SELECT tsnap_snapshot('tracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a savepoint rolled back leaves nothing uncommitted: that works
BEGIN;
SAVEPOINT sp;
INSERT INTO tracked VALUES (2, 'y');
ROLLBACK TO SAVEPOINT sp;
SELECT tsnap_snapshot('tracked') ~ '/v0-' AS version_0;
COMMIT;

-- a lock the worker would wait for forever: 55P03, not a hang
BEGIN;
LOCK TABLE tracked IN ACCESS EXCLUSIVE MODE;
SELECT tsnap_snapshot('tracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
ALTER TABLE tracked ADD COLUMN c int;
SELECT tsnap_snapshot('tracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- the size cap: 54000, naming the table and the limit; nothing recorded
CREATE TABLE big (a int, b text);
INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100) g;
SELECT tsnap_track('big');
SET tsnap.max_snapshot_size = '1kB';
SELECT tsnap_snapshot('big');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET tsnap.max_snapshot_size;
SELECT count(*) AS recorded FROM tsnap.snapshots WHERE tbl = 'big'::regclass;
SELECT tsnap_snapshot('big') IS NOT NULL AS works_without_cap;

-- settings: ordinary users cannot change the cap or the checks
CREATE ROLE snap_user;
GRANT SELECT ON tracked TO snap_user;
SELECT tsnap_snapshot('tracked') AS owner_key \gset
SET ROLE snap_user;
-- a hit needs SELECT too; with it, the same key as the owner's
SELECT tsnap_snapshot('big');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot('tracked') = :'owner_key' AS same_key_as_owner;
SET tsnap.max_snapshot_size = '1MB';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET tsnap.verify_hits = on;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET tsnap.key_prefix = 'elsewhere';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SHOW tsnap.s3_secret_access_key;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the catalog is not theirs to read or write
SELECT count(*) FROM tsnap.snapshots;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM tsnap.pending_deletes;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- key_prefix must be a plain relative path
ALTER SYSTEM SET tsnap.key_prefix = '../up';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET tsnap.key_prefix = '/abs';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET tsnap.key_prefix = '';
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- compression: none, gzip or zstd; anything else is 22023 with the list
SELECT tsnap_snapshot('tracked', 'lz4');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM tsnap_snapshot_info('tracked', '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET tsnap.compression = 'brotli';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT right(tsnap_snapshot('tracked', 'GZIP'), 7) AS gzip_suffix;
SELECT right(key, 8) AS zstd_suffix, compression FROM tsnap_snapshot_info('tracked', 'zstd');

-- presigned URLs: expires_in positive, at most 7 days and at most
-- tsnap.keep_for, which is 0 on the test cluster; checked before any work
SELECT tsnap_snapshot_url('tracked', '0');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot_url('tracked', '-1 hour');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot_url('tracked', '8 days');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot_url('tracked');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot_url('tracked', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tsnap_snapshot_url(NULL) IS NULL AS null_in_null_out;

DROP TABLE tracked, untracked, big;
DROP ROLE snap_user;
DROP VIEW v;
DROP SEQUENCE s;
