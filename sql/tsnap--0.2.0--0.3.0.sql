/* tsnap--0.2.0--0.3.0.sql: from release 0.2.0 to 0.3.0 (snapshot jobs) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tsnap UPDATE TO '0.3.0'" to load this file. \quit

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
