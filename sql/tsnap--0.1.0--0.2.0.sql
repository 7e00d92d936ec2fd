/* tsnap--0.1.0--0.2.0.sql: upgrade from tsnap 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tsnap UPDATE TO '0.2.0'" to load this file. \quit

/*
 * 0.2.0 has the same SQL objects as 0.1.0 so far, so this script changes
 * nothing.  Every later change to a SQL object in 0.2.0 goes into both this
 * file (for databases on 0.1.0) and tsnap--0.2.0.sql (for fresh installs);
 * sql/upgrade.sql compares the two results and fails when they differ.
 */

/*
 * Compression and presigned URLs.
 *
 * Each compression (none, gzip, zstd) is a snapshot of its own: its key
 * ends .csv, .csv.gz or .csv.zst, its fingerprint covers it (not for none,
 * so keys made before stay hits), and retention keeps tsnap.keep_versions
 * snapshots of each.  Rows recorded before compression existed are
 * uncompressed.
 */
ALTER TABLE tsnap.snapshots
	ADD COLUMN compression text NOT NULL DEFAULT 'none';

/*
 * tsnap_snapshot and tsnap_snapshot_info take the compression (NULL:
 * tsnap.compression), so they are no longer STRICT; tsnap_snapshot('t')
 * still works.  New C symbols, since 0.1.0's definitions call the old
 * ones with one argument.
 */
DROP FUNCTION tsnap_snapshot(regclass);
CREATE FUNCTION tsnap_snapshot(tbl regclass, compression text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'tsnap_snapshot_0_2'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot(regclass, text) IS
'object key of a CSV snapshot of the table at its current rows_version, compressed with none, gzip or zstd (NULL: tsnap.compression); built and uploaded by a background worker on a miss';

DROP FUNCTION tsnap_snapshot_info(regclass);
-- compression is INOUT: the argument, and as the last column the one used
CREATE FUNCTION tsnap_snapshot_info(tbl regclass,
	OUT key text, OUT rows_version bigint, OUT rows bigint, OUT bytes bigint,
	OUT etag text, OUT hit boolean, OUT created_at timestamptz,
	OUT bucket text, OUT uri text, INOUT compression text DEFAULT NULL)
RETURNS record
AS 'MODULE_PATHNAME', 'tsnap_snapshot_info_0_2'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot_info(regclass, text) IS
'like tsnap_snapshot, but returns the manifest: key, rows_version, row count, bytes of the object, ETag, whether it was a cache hit, when the object was created, its bucket, its s3:// URI and its compression';

/*
 * A presigned GET URL of a snapshot (or of its manifest object), valid for
 * expires_in: at most 7 days (SigV4) and at most tsnap.keep_for, so that
 * the object outlives the URL.  Made locally, without a request to S3.
 */
CREATE FUNCTION tsnap_snapshot_url(tbl regclass,
	expires_in interval DEFAULT '15 minutes',
	compression text DEFAULT NULL,
	manifest boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'tsnap_snapshot_url'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot_url(regclass, interval, text, boolean) IS
'presigned GET URL of the snapshot tsnap_snapshot returns (or of its manifest object), valid for expires_in; anyone holding it can download the object';
