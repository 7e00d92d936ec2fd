/*
 * tsnap--0.3.0.sql: the full install script of tsnap 0.3.0
 *
 * CREATE EXTENSION tsnap runs this file alone; a database on 0.2.0 gets the
 * same objects from tsnap--0.2.0--0.3.0.sql (and one on 0.1.0 through
 * tsnap--0.1.0--0.2.0.sql first).  A change to a SQL object goes into both
 * files; sql/upgrade.sql compares an updated install with a fresh one.
 * 0.3.0 = 0.2.0 (unchanged below) and the blocks at the end.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tsnap" to load this file. \quit

/*
 * The catalog lives in schema tsnap, whatever schema the API functions are
 * created in.  Ordinary users get no rights on its tables: versions are
 * written by tsnap's own C code, which switches to the catalog owner, so a
 * user who can write a tracked table bumps its version without being able to
 * forge or roll one back.
 */
CREATE SCHEMA tsnap;
GRANT USAGE ON SCHEMA tsnap TO PUBLIC;

-- One row per tracked table.  tracking_id names this incarnation of the
-- tracking (a table untracked and tracked again, or dropped and re-created
-- under the same name, gets a new one), so that later key layouts never reuse
-- a name for different contents.
CREATE TABLE tsnap.tracked_tables (
	tbl			regclass PRIMARY KEY,
	tracking_id	uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() UNIQUE,
	tracked_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- A table's rows_version is the sum of its shard rows.  Each backend adds its
-- transaction's statement count to the shard its backend ID maps to (0-15),
-- once, just before commit, so concurrent writers rarely touch the same row and
-- never hold a shared row lock for longer than their own commit.  A prepared
-- transaction inserts a row of its own (16 + its transaction ID) instead, so it
-- never holds a shard that other writers need.
CREATE TABLE tsnap.version_shards (
	tbl			regclass NOT NULL,
	shard		int8 NOT NULL,
	bumps		int8 NOT NULL CHECK (bumps >= 0),
	PRIMARY KEY (tbl, shard)
) WITH (fillfactor = 50);

REVOKE ALL ON tsnap.tracked_tables, tsnap.version_shards FROM PUBLIC;

-- regclass columns are dumped by name, so tracking survives pg_dump/pg_restore.
SELECT pg_catalog.pg_extension_config_dump('tsnap.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tsnap.version_shards', '');

CREATE FUNCTION tsnap.tracking_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tsnap_tracking_trigger'
LANGUAGE C;
REVOKE ALL ON FUNCTION tsnap.tracking_trigger() FROM PUBLIC;
COMMENT ON FUNCTION tsnap.tracking_trigger() IS
'statement-level trigger that counts writes to a tracked table; installed by tsnap_track';

/*
 * The C functions that run SQL as the catalog owner pin search_path there
 * themselves (catalog.c); those that need no hot path pin it here too.
 * tsnap_snapshot and tsnap_version are called on every cache hit, so they
 * keep the caller's search_path, which they never use.
 */
CREATE FUNCTION tsnap_track(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tsnap_track'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION tsnap_track(regclass) IS
'start tracking writes to a table (and its partitions); owner only';

CREATE FUNCTION tsnap_untrack(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tsnap_untrack'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION tsnap_untrack(regclass) IS
'stop tracking a table: remove its triggers and its catalog entry; owner only';

CREATE FUNCTION tsnap_version(tbl regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tsnap_version'
LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION tsnap_version(regclass) IS
'current rows_version of a tracked table, as seen by the current snapshot';

-- A role sees only the tables it holds some privilege on (as tsnap_version
-- requires); security_barrier keeps a caller's own (leaky) functions from
-- seeing the rows the filter removes.
CREATE VIEW tsnap.tracked WITH (security_barrier) AS
	SELECT t.tbl AS tbl,
		   @extschema@.tsnap_version(t.tbl) AS rows_version,
		   t.tracking_id,
		   t.tracked_at
	FROM tsnap.tracked_tables t
	WHERE pg_catalog.has_any_column_privilege(t.tbl,
			'SELECT, INSERT, UPDATE, REFERENCES')
	   OR pg_catalog.has_table_privilege(t.tbl, 'DELETE, TRUNCATE, TRIGGER');
GRANT SELECT ON tsnap.tracked TO PUBLIC;
COMMENT ON VIEW tsnap.tracked IS 'tracked tables on which the current role holds a privilege, with their current rows_version';

/*
 * Event triggers keep tracking whole (they pin search_path in C, once they
 * have resolved the names in the user's command with the user's own): a partition (or inheritance child)
 * created or attached under a tracked table gets the tracking trigger, a
 * trigger created by pg_restore is tied to the extension, and a dropped table
 * loses its catalog entry.
 */
CREATE FUNCTION tsnap.on_ddl_command_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'tsnap_on_ddl_command_end'
LANGUAGE C;
REVOKE ALL ON FUNCTION tsnap.on_ddl_command_end() FROM PUBLIC;

CREATE FUNCTION tsnap.on_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'tsnap_on_sql_drop'
LANGUAGE C;
REVOKE ALL ON FUNCTION tsnap.on_sql_drop() FROM PUBLIC;

CREATE EVENT TRIGGER tsnap_ddl_command_end ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER')
	EXECUTE FUNCTION tsnap.on_ddl_command_end();

CREATE EVENT TRIGGER tsnap_sql_drop ON sql_drop
	EXECUTE FUNCTION tsnap.on_sql_drop();

/*
 * Snapshots.  One row per object tsnap uploaded and still keeps.  The key is
 * unique forever (it carries a random nonce); a hit is one index range scan
 * on (tbl, rows_version).
 *
 * This table is deliberately not dumped: after pg_restore into another
 * cluster, versions start over from what the restore wrote, and an old row
 * could name an object whose rows differ from the restored table.  Keys also
 * carry the cluster's system identifier, so the new cluster never writes
 * under the old one's names.
 */
CREATE TABLE tsnap.snapshots (
	key			text PRIMARY KEY,
	tbl			regclass NOT NULL,
	tracking_id	uuid NOT NULL,
	rows_version int8 NOT NULL,
	fingerprint	text NOT NULL,
	rows		int8 NOT NULL,
	bytes		int8 NOT NULL,
	etag		text NOT NULL,
	parts		int4 NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	endpoint	text NOT NULL,		-- where the object lives: tsnap.s3_endpoint
	bucket		text NOT NULL,		-- and tsnap.s3_bucket when it was written
	timeline	int8 NOT NULL		-- the WAL timeline it was recorded on
);
-- not unique: the same content can be recorded again as a table's newest
-- snapshot (a fingerprint that came back), while the older row awaits
-- retention; tsnap_record_snapshot serializes recorders of a table
CREATE INDEX snapshots_content_key
	ON tsnap.snapshots (tbl, rows_version, fingerprint, bucket, endpoint);

/*
 * Objects to delete from the bucket: snapshots past tsnap.keep_versions, and
 * those of dropped or untracked tables.  A row leaves only once S3 confirmed
 * the delete, so a failed delete is retried by the next worker, never lost.
 * Each upload's key is also queued here before its object can appear, and
 * taken off when the snapshot is recorded: an object whose worker died
 * before recording it is deleted too.
 */
CREATE TABLE tsnap.pending_deletes (
	key			text PRIMARY KEY,
	endpoint	text NOT NULL,
	bucket		text NOT NULL,
	queued_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	not_before	timestamptz NOT NULL DEFAULT pg_catalog.now(),	-- keep_for after an untrack or DROP
	attempts	int4 NOT NULL DEFAULT 0,
	last_error	text
);

REVOKE ALL ON tsnap.snapshots, tsnap.pending_deletes FROM PUBLIC;

CREATE FUNCTION tsnap_snapshot(tbl regclass)
RETURNS text
AS 'MODULE_PATHNAME', 'tsnap_snapshot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot(regclass) IS
'object key of a CSV snapshot of the table at its current rows_version; built and uploaded by a background worker on a miss';

CREATE FUNCTION tsnap_snapshot_info(tbl regclass,
	OUT key text, OUT rows_version bigint, OUT rows bigint, OUT bytes bigint,
	OUT etag text, OUT hit boolean, OUT created_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'tsnap_snapshot_info'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot_info(regclass) IS
'like tsnap_snapshot, but returns the manifest: key, rows_version, row count, bytes, ETag, whether it was a cache hit, and when the object was created';

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

/*
 * Snapshot jobs (issue 13).  tsnap_snapshot_async starts a job and returns
 * its id; tsnap_wait and tsnap_cancel take the id; tsnap.jobs shows the
 * jobs in flight (from shared memory) and those tsnap.job_history keeps.
 * Only tsnap's C code, as the catalog owner, reads and writes the history
 * and the requests: their rows hold other roles' errors and requests, which
 * the view shows only as far as the caller may see them.  Job ids come from
 * tsnap.job_id_seq.
 */
CREATE SEQUENCE tsnap.job_id_seq;
REVOKE ALL ON SEQUENCE tsnap.job_id_seq FROM PUBLIC;

CREATE TABLE tsnap.job_history (
	job_id		int8 PRIMARY KEY,
	tbl			oid NOT NULL,
	table_name	text,			-- the table's name when the job was written
	requested_by oid NOT NULL,
	state		text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	attempts	int4 NOT NULL,
	requested_at timestamptz NOT NULL,
	started_at	timestamptz,
	finished_at	timestamptz,
	rows_version int8,
	key			text,
	compression	text NOT NULL,
	rows_done	int8 NOT NULL,
	bytes_done	int8 NOT NULL,
	parts_done	int4 NOT NULL,
	rows_estimate int8 NOT NULL,
	worker_pid	int4,
	error_sqlstate text,
	error_message text,
	error_detail text,
	error_hint	text
);
CREATE INDEX job_history_finished_at ON tsnap.job_history (finished_at);
REVOKE ALL ON tsnap.job_history FROM PUBLIC;

-- The request of each tsnap_snapshot_async miss, written in its caller's
-- transaction: a job is as durable as the transaction that asked for it.
CREATE TABLE tsnap.job_requests (
	job_id		int8 PRIMARY KEY,
	requested_at timestamptz NOT NULL,
	rows_estimate int8 NOT NULL,
	request		bytea NOT NULL	-- to queue the job again after a crash or restart
);
REVOKE ALL ON tsnap.job_requests FROM PUBLIC;

-- Not strict: a NULL compression means tsnap.compression.
CREATE FUNCTION tsnap_snapshot_async(tbl regclass, compression text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tsnap_snapshot_async'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION tsnap_snapshot_async(regclass, text) IS
'start a job that builds the snapshot tsnap_snapshot would return, and return its id at once; see tsnap.jobs, tsnap_wait and tsnap_cancel';

-- Not strict: a NULL timeout waits without a limit other than statement_timeout.
CREATE FUNCTION tsnap_wait(job_id bigint, timeout interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'tsnap_wait'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION tsnap_wait(bigint, interval) IS
'wait for a snapshot job and return its key, or raise its error; on timeout raise 57014 and leave the job running';

CREATE FUNCTION tsnap_cancel(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsnap_cancel'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION tsnap_cancel(bigint) IS
'stop a snapshot job, aborting its upload; false if it had finished already';

CREATE FUNCTION tsnap.job_list(
	OUT job_id int8, OUT tbl oid, OUT table_name text, OUT requested_by oid,
	OUT state text, OUT attempts int4, OUT requested_at timestamptz,
	OUT started_at timestamptz, OUT finished_at timestamptz,
	OUT rows_version int8, OUT key text, OUT compression text,
	OUT rows_done int8, OUT bytes_done int8, OUT parts_done int4,
	OUT rows_estimate int8, OUT worker_pid int4,
	OUT error_sqlstate text, OUT error_message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tsnap_job_list'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW tsnap.jobs AS
SELECT job_id, tbl::pg_catalog.regclass AS tbl, table_name,
	pg_catalog.pg_get_userbyid(requested_by) AS requested_by,
	state, attempts, requested_at, started_at, finished_at,
	rows_version, key, compression, rows_done, bytes_done, parts_done,
	rows_estimate, worker_pid, error_sqlstate, error_message
FROM tsnap.job_list();
GRANT SELECT ON tsnap.jobs TO PUBLIC;
COMMENT ON VIEW tsnap.jobs IS
'snapshot jobs of this database, queued, running and finished (for tsnap.job_history_max_age), that the current role requested or may SELECT the table of';
