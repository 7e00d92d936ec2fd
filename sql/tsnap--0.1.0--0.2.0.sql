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

/*
 * Restore (tsnap_restore): a snapshot loaded back into a table.
 *
 * tsnap.restores records which version of which source each table holds
 * (a source is a tracked table, named by its cluster's system identifier
 * and its tracking_id), so that a replace never goes back to an older
 * version without force => true.  Only tsnap's C code writes it, as the
 * catalog owner; ordinary users have no rights on it.  Its regclass
 * column is dumped by name, and a dropped table's rows go with it (the
 * event trigger below), so a later table given the same OID inherits
 * nothing.
 */
CREATE TABLE tsnap.restores (
	target		regclass NOT NULL,
	source_system_identifier text NOT NULL,
	source_tracking_id uuid NOT NULL,
	source_database text NOT NULL,
	source_schema text NOT NULL,
	source_table text NOT NULL,
	rows_version int8 NOT NULL,		-- the newest version of the source loaded
	key			text NOT NULL,		-- the snapshot last restored from this source
	rows		int8 NOT NULL,		-- the rows it loaded
	restored_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (target, source_system_identifier, source_tracking_id)
);
REVOKE ALL ON tsnap.restores FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tsnap.restores', '');

CREATE FUNCTION tsnap.restores_on_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'tsnap_restores_on_sql_drop'
LANGUAGE C;
REVOKE ALL ON FUNCTION tsnap.restores_on_sql_drop() FROM PUBLIC;

CREATE EVENT TRIGGER tsnap_restores_sql_drop ON sql_drop
	EXECUTE FUNCTION tsnap.restores_on_sql_drop();

-- Runs as the caller, with the caller's search_path (the table's triggers
-- fire during the load, as during COPY); its own SQL is schema-qualified.
-- Not strict: a null argument is an error, not a silent null.
CREATE FUNCTION tsnap_restore(target regclass, key text,
	mode text DEFAULT 'require_empty', force boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tsnap_restore'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION tsnap_restore(regclass, text, text, boolean) IS
'load the snapshot at key into a table, in the caller''s transaction (modes require_empty, append, replace); returns the rows loaded';

/*
 * Manifests (issue 12, part 3).  Every snapshot now has a manifest object
 * beside it, <key>.manifest.json, so tsnap_snapshot_info no longer calls
 * what it returns "the manifest".  No other SQL object changes: the
 * manifest is written and deleted by the worker's C code.
 */
COMMENT ON FUNCTION tsnap_snapshot_info(regclass, text) IS
'like tsnap_snapshot, but returns what tsnap recorded of the snapshot: key, rows_version, row count, bytes of the object, ETag, whether it was a cache hit, when it was recorded, its bucket, its s3:// URI and its compression; the manifest object beside it (<key>.manifest.json) describes it in full';
