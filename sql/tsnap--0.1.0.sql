/* tsnap--0.1.0.sql: change tracking */

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
-- transaction's statement count to the shard its backend ID maps to, once, just
-- before commit, so concurrent writers rarely touch the same row and never hold
-- a shared row lock for longer than their own commit.
CREATE TABLE tsnap.version_shards (
	tbl			regclass NOT NULL,
	shard		int2 NOT NULL,
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

CREATE FUNCTION tsnap_track(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tsnap_track'
LANGUAGE C STRICT;
COMMENT ON FUNCTION tsnap_track(regclass) IS
'start tracking writes to a table (and its partitions); owner only';

CREATE FUNCTION tsnap_untrack(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tsnap_untrack'
LANGUAGE C STRICT;
COMMENT ON FUNCTION tsnap_untrack(regclass) IS
'stop tracking a table: remove its triggers and its catalog entry; owner only';

CREATE FUNCTION tsnap_version(tbl regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tsnap_version'
LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION tsnap_version(regclass) IS
'current rows_version of a tracked table, as seen by the current snapshot';

CREATE VIEW tsnap.tracked AS
	SELECT t.tbl AS tbl,
		   @extschema@.tsnap_version(t.tbl) AS rows_version,
		   t.tracking_id,
		   t.tracked_at
	FROM tsnap.tracked_tables t;
GRANT SELECT ON tsnap.tracked TO PUBLIC;
COMMENT ON VIEW tsnap.tracked IS 'tracked tables with their current rows_version';

/*
 * Event triggers keep tracking whole: a partition (or inheritance child)
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
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TRIGGER')
	EXECUTE FUNCTION tsnap.on_ddl_command_end();

CREATE EVENT TRIGGER tsnap_sql_drop ON sql_drop
	EXECUTE FUNCTION tsnap.on_sql_drop();
