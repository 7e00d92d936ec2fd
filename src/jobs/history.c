/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The durable record of snapshot jobs, tsnap.job_history, which this
 *	  file alone reads and writes, as the catalog owner.
 *
 * Shared memory holds the jobs in flight (queue.c, pool.c); two tables hold
 * what must outlive a restart or a crash, and what callers may read after
 * shared memory has let a job go:
 *
 * - tsnap.job_requests: the request of every tsnap_snapshot_async miss,
 *	 written by its caller in the caller's transaction, so that a job is as
 *	 durable as the transaction that asked for it: once that commits, a
 *	 crash or restart before the job ends leaves the row, from which the
 *	 housekeeping (tsnap_jobs_maintain) queues the job again, up to
 *	 tsnap.job_max_attempts.  Workers never write this table, so they never
 *	 wait for a caller's open transaction; the housekeeping deletes a row
 *	 once its job's end is recorded.
 * - tsnap.job_history: every job a worker takes, as running (so that the
 *	 attempts survive a crash), and every job's end: key, counts, or the
 *	 error's SQLSTATE, message, detail and hint, so that tsnap_wait raises it
 *	 as it was.  An asynchronous hit is written by its caller, already
 *	 succeeded; an end nobody could write (its worker died, it was cancelled
 *	 while queued) by the next housekeeping.  Finished jobs older than
 *	 tsnap.job_history_max_age are pruned.
 *
 * A job is written to the history as a whole row each time (an upsert by
 * job id), so that no order of writes can leave a row half old.  The
 * request is kept as the bytes of TsnapBuildRequest: only this library
 * reads it back, and a row whose bytes are not of this build's size is
 * failed, not guessed at.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "export/export.h"
#include "jobs/shmem.h"
#include "settings.h"

static const char *const state_names[] = {
	[SLOT_QUEUED] = "queued",
	[SLOT_RUNNING] = "running",
	[SLOT_DONE] = "succeeded",
	[SLOT_FAILED] = "failed",
	[SLOT_CANCELLED] = "cancelled",
};

const char *
tsnap_jobs_state_name(int state)
{
	if (state <= SLOT_FREE || state > SLOT_CANCELLED)
		return "unknown";
	return state_names[state];
}

static SlotState
state_by_name(const char *name)
{
	int			i;

	for (i = SLOT_QUEUED; i <= SLOT_CANCELLED; i++)
		if (strcmp(state_names[i], name) == 0)
			return (SlotState) i;
	return SLOT_FAILED;
}

/* Has this database's tsnap the job history (0.3.0 and later)? */
bool
tsnap_history_available(void)
{
	return OidIsValid(tsnap_catalog_relid("job_history"));
}

/* A new job id, from tsnap.job_id_seq; in the caller's transaction. */
int64
tsnap_history_next_id(void)
{
	Oid			seq = tsnap_catalog_relid("job_id_seq");

	if (!OidIsValid(seq))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap in this database has no snapshot jobs"),
				 errhint("Run ALTER EXTENSION tsnap UPDATE.")));
	return nextval_internal(seq, false);
}

#define HISTORY_COLUMNS "job_id, tbl, table_name, requested_by, state, " \
	"attempts, requested_at, started_at, finished_at, rows_version, key, " \
	"compression, rows_done, bytes_done, parts_done, rows_estimate, " \
	"worker_pid, error_sqlstate, error_message, error_detail, error_hint"
#define NCOLUMNS TSNAP_JOB_COLUMNS

static Datum
text_or_null(const char *s, bool *null)
{
	*null = s == NULL || s[0] == '\0';
	return *null ? (Datum) 0 : CStringGetTextDatum(s);
}

/*
 * job's columns, in tsnap.job_history's order (HISTORY_COLUMNS), which is
 * also tsnap.jobs' up to error_message; table_name may be NULL.  For the
 * record here and for the view (jobs_sql.c).
 */
void
tsnap_jobs_columns(const RequestSlot *job, const char *table_name,
				   Datum *values, bool *nulls)
{
	ErrorData	edata;
	bool		done = job->state == SLOT_DONE;

	memset(nulls, 0, sizeof(bool) * TSNAP_JOB_COLUMNS);
	memset(&edata, 0, sizeof(edata));
	if (job->state == SLOT_FAILED || job->state == SLOT_CANCELLED)
		tsnap_error_unflatten(&job->error, &edata);

	values[0] = Int64GetDatum(job->job_id);
	nulls[0] = job->job_id == 0;
	values[1] = ObjectIdGetDatum(job->request.relid);
	values[2] = text_or_null(table_name, &nulls[2]);
	values[3] = ObjectIdGetDatum(job->request.roleid);
	values[4] = CStringGetTextDatum(tsnap_jobs_state_name(job->state));
	values[5] = Int32GetDatum(job->attempts);
	values[6] = TimestampTzGetDatum(job->requested_at);
	nulls[6] = job->requested_at == 0;
	values[7] = TimestampTzGetDatum(job->started_at);
	nulls[7] = job->started_at == 0;
	values[8] = TimestampTzGetDatum(job->finished_at);
	nulls[8] = job->finished_at == 0;
	values[9] = Int64GetDatum(done ? job->result.rows_version :
							  job->version_seen);
	nulls[9] = !done && job->version_seen < 0;
	values[10] = text_or_null(done ? job->result.key : NULL, &nulls[10]);
	values[11] = CStringGetTextDatum(tsnap_codec(job->request.compression)->name);
	values[12] = Int64GetDatum(done ? job->result.rows : job->rows_done);
	values[13] = Int64GetDatum(done ? job->result.bytes : job->bytes_done);
	values[14] = Int32GetDatum(done ? job->result.parts : job->parts_done);
	values[15] = Int64GetDatum(job->rows_estimate);
	values[16] = Int32GetDatum(job->worker_pid);
	nulls[16] = job->worker_pid == 0;
	values[17] = text_or_null(edata.message ?
							  unpack_sql_state(edata.sqlerrcode) : NULL,
							  &nulls[17]);
	values[18] = text_or_null(edata.message, &nulls[18]);
	values[19] = text_or_null(edata.detail, &nulls[19]);
	values[20] = text_or_null(edata.hint, &nulls[20]);
}

/* The qualified name of relid now, or NULL if it is gone. */
char *
tsnap_jobs_table_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		return NULL;
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * Write job as it is now, in the current transaction.  The job must have
 * an id.
 */
void
tsnap_history_record(const RequestSlot *job)
{
	static const Oid types[NCOLUMNS] = {
		INT8OID, OIDOID, TEXTOID, OIDOID, TEXTOID,
		INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, TEXTOID,
		TEXTOID, INT8OID, INT8OID, INT4OID, INT8OID,
		INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID
	};
	Datum		values[NCOLUMNS];
	bool		isnull[NCOLUMNS];
	char		nulls[NCOLUMNS + 1];
	TsnapCatalogUser saved;
	bool		pushed;
	int			i;

	Assert(job->job_id != 0);
	tsnap_jobs_columns(job, tsnap_jobs_table_name(job->request.relid),
					   values, isnull);
	for (i = 0; i < NCOLUMNS; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';
	nulls[NCOLUMNS] = '\0';

	tsnap_catalog_enter_or_raise(&saved);
	pushed = tsnap_push_snapshot_if_none();
	tsnap_exec("INSERT INTO tsnap.job_history AS h (" HISTORY_COLUMNS ") "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
			   "$13, $14, $15, $16, $17, $18, $19, $20, $21) "
			   "ON CONFLICT (job_id) DO UPDATE SET "
			   "table_name = COALESCE(EXCLUDED.table_name, h.table_name), "
			   "state = EXCLUDED.state, attempts = EXCLUDED.attempts, "
			   "started_at = EXCLUDED.started_at, "
			   "finished_at = EXCLUDED.finished_at, "
			   "rows_version = EXCLUDED.rows_version, key = EXCLUDED.key, "
			   "rows_done = EXCLUDED.rows_done, "
			   "bytes_done = EXCLUDED.bytes_done, "
			   "parts_done = EXCLUDED.parts_done, "
			   "worker_pid = EXCLUDED.worker_pid, "
			   "error_sqlstate = EXCLUDED.error_sqlstate, "
			   "error_message = EXCLUDED.error_message, "
			   "error_detail = EXCLUDED.error_detail, "
			   "error_hint = EXCLUDED.error_hint",
			   NCOLUMNS, (Oid *) types, values, nulls);
	if (pushed)
		PopActiveSnapshot();
	tsnap_catalog_leave(&saved);
}

/*
 * Write job (queued again, or failed) unless the history holds its end
 * already: the worker of an attempt nobody knew of may have written it.
 * True if it was written.  In a transaction, as the catalog owner.
 */
static bool
record_if_unfinished(const RequestSlot *job)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job->job_id)};

	if (tsnap_query_oids("SELECT tbl FROM tsnap.job_history"
						 " WHERE job_id OPERATOR(pg_catalog.=) $1"
						 " AND state OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,cancelled}')",
						 1, types, values) != NIL)
		return false;
	tsnap_history_record(job);
	return true;
}

/*
 * Write the request of a new asynchronous job to tsnap.job_requests, in the
 * caller's transaction (see the header).
 */
void
tsnap_history_record_request(const RequestSlot *job)
{
	Oid			types[4] = {INT8OID, TIMESTAMPTZOID, INT8OID, BYTEAOID};
	Datum		values[4];
	TsnapCatalogUser saved;
	bytea	   *request;

	request = palloc(VARHDRSZ + sizeof(TsnapBuildRequest));
	SET_VARSIZE(request, VARHDRSZ + sizeof(TsnapBuildRequest));
	memcpy(VARDATA(request), &job->request, sizeof(TsnapBuildRequest));
	values[0] = Int64GetDatum(job->job_id);
	values[1] = TimestampTzGetDatum(job->requested_at);
	values[2] = Int64GetDatum(job->rows_estimate);
	values[3] = PointerGetDatum(request);
	tsnap_catalog_enter_or_raise(&saved);
	tsnap_exec("INSERT INTO tsnap.job_requests"
			   " (job_id, requested_at, rows_estimate, request)"
			   " VALUES ($1, $2, $3, $4)", 4, types, values, NULL);
	tsnap_catalog_leave(&saved);
}

/* column number of name in SPI's result, 1-based */
static char *
column_text(HeapTuple tuple, TupleDesc desc, const char *name)
{
	return SPI_getvalue(tuple, desc, SPI_fnumber(desc, name));
}

static int64
column_int(HeapTuple tuple, TupleDesc desc, const char *name)
{
	char	   *s = column_text(tuple, desc, name);

	return s ? strtoi64(s, NULL, 10) : 0;
}

static TimestampTz
column_timestamp(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, SPI_fnumber(desc, name), &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * A row of tsnap.job_history (in SPI's result) as a job, into *job, with
 * its table's name when it was written (or NULL), in the current memory
 * context.
 */
static void
row_to_job(HeapTuple t, TupleDesc d, RequestSlot *job, char **table_name)
{
	char	   *sqlstate = column_text(t, d, "error_sqlstate");
	char	   *key = column_text(t, d, "key");
	char	   *version = column_text(t, d, "rows_version");

	memset(job, 0, sizeof(*job));
	job->job_id = column_int(t, d, "job_id");
	job->state = state_by_name(column_text(t, d, "state"));
	job->request.dboid = MyDatabaseId;
	job->request.relid = (Oid) column_int(t, d, "tbl");
	job->request.roleid = (Oid) column_int(t, d, "requested_by");
	tsnap_codec_by_name(column_text(t, d, "compression"),
						&job->request.compression);
	job->attempts = (int) column_int(t, d, "attempts");
	job->requested_at = column_timestamp(t, d, "requested_at");
	job->started_at = column_timestamp(t, d, "started_at");
	job->finished_at = column_timestamp(t, d, "finished_at");
	job->version_seen = version ? strtoi64(version, NULL, 10) :
		TSNAP_VERSION_UNKNOWN;
	job->result.rows_version = job->version_seen;
	job->rows_done = job->result.rows = column_int(t, d, "rows_done");
	job->bytes_done = job->result.bytes = column_int(t, d, "bytes_done");
	job->parts_done = job->result.parts = (int) column_int(t, d, "parts_done");
	job->rows_estimate = column_int(t, d, "rows_estimate");
	job->worker_pid = (pid_t) column_int(t, d, "worker_pid");
	if (key)
		strlcpy(job->result.key, key, sizeof(job->result.key));
	if (sqlstate && strlen(sqlstate) == 5)
	{
		ErrorData	edata;

		memset(&edata, 0, sizeof(edata));
		edata.sqlerrcode = MAKE_SQLSTATE(sqlstate[0], sqlstate[1],
										 sqlstate[2], sqlstate[3],
										 sqlstate[4]);
		edata.message = column_text(t, d, "error_message");
		edata.detail = column_text(t, d, "error_detail");
		edata.hint = column_text(t, d, "error_hint");
		tsnap_error_flatten(&edata, &job->error);
	}
	*table_name = column_text(t, d, "table_name");
}

/*
 * Read tsnap.job_history (the row of job_id, or every row if job_id is 0)
 * and call visit(job, table_name, arg) for each, in the caller's memory
 * context and as the catalog owner: visit must not depend on the current
 * user.  Returns the number of rows.
 */
static uint64
scan_history(int64 job_id, void (*visit) (RequestSlot *job, char *table_name,
										   void *arg), void *arg)
{
	MemoryContext callercxt = CurrentMemoryContext;
	TsnapCatalogUser saved;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};
	RequestSlot *job = palloc(sizeof(RequestSlot));
	uint64		n;
	uint64		i;
	int			rc;

	if (!tsnap_history_available())
		return 0;
	tsnap_catalog_enter_or_raise(&saved);
	SPI_connect();
	rc = SPI_execute_with_args("SELECT " HISTORY_COLUMNS
							   " FROM tsnap.job_history"
							   " WHERE $1 OPERATOR(pg_catalog.=) 0"
							   " OR job_id OPERATOR(pg_catalog.=) $1"
							   " ORDER BY job_id",
							   1, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap.job_history: %s",
			 SPI_result_code_string(rc));
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(callercxt);
		char	   *table_name;

		row_to_job(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, job,
				   &table_name);
		visit(job, table_name, arg);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	tsnap_catalog_leave(&saved);
	pfree(job);
	return n;
}

typedef struct LookupArgs
{
	RequestSlot *job;
	char	  **table_name;
} LookupArgs;

static void
lookup_visit(RequestSlot *job, char *table_name, void *arg)
{
	LookupArgs *a = (LookupArgs *) arg;

	*a->job = *job;
	*a->table_name = table_name;
}

/*
 * Job job_id as tsnap.job_history records it, into *job (and its table's
 * name when it was written, palloc'd, or NULL); false if there is no such
 * row.  Reads in the current transaction.
 */
bool
tsnap_history_lookup(int64 job_id, RequestSlot *job, char **table_name)
{
	LookupArgs	a = {job, table_name};

	*table_name = NULL;
	return job_id != 0 && scan_history(job_id, lookup_visit, &a) > 0;
}

/* Every job tsnap.job_history holds, to visit (see scan_history). */
void
tsnap_history_scan(void (*visit) (RequestSlot *job, char *table_name,
								   void *arg), void *arg)
{
	(void) scan_history(0, visit, arg);
}

/*
 * tsnap_cancel of a job a restart interrupted, which waits in the history
 * for the launcher to start it again: it is cancelled there.  In the
 * caller's transaction.
 */
bool
tsnap_history_cancel_interrupted(int64 job_id)
{
	TsnapCatalogUser saved;
	TsnapFlatError error;
	ErrorData	edata;
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		cancelled;

	tsnap_jobs_cancelled_error(job_id, &error);
	tsnap_error_unflatten(&error, &edata);
	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(unpack_sql_state(edata.sqlerrcode));
	values[2] = CStringGetTextDatum(edata.message);
	tsnap_catalog_enter_or_raise(&saved);
	cancelled = tsnap_query_oids("UPDATE tsnap.job_history"
								 " SET state = 'cancelled',"
								 " finished_at = pg_catalog.now(),"
								 " error_sqlstate = $2, error_message = $3"
								 " WHERE job_id OPERATOR(pg_catalog.=) $1"
								 " AND state OPERATOR(pg_catalog.=) ANY ('{queued,running}')"
								 " RETURNING tbl",
								 3, types, values) != NIL;
	tsnap_catalog_leave(&saved);
	return cancelled;
}

/*
 * Housekeeping, step 1: write the ends nobody could write (a worker that
 * died, a job cancelled while queued).  In a transaction.
 */
static void
record_unrecorded(void)
{
	int			n;
	int			i;
	RequestSlot *jobs = tsnap_jobs_copy_all(&n);

	for (i = 0; i < n; i++)
	{
		RequestSlot *job = &jobs[i];
		int			idx;

		if (!SLOT_FINISHED(job->state) || job->recorded || !job->detached ||
			job->job_id == 0)
			continue;
		tsnap_history_record(job);
		idx = tsnap_jobs_slot_of(job->job_id, job->generation);
		if (idx >= 0)
			tsnap_pool_mark_recorded(idx, job->generation);
	}
}

/*
 * Jobs the history says are queued or running that shared memory does not
 * hold and whose request is not recorded (the transaction that asked rolled
 * back, and then a restart or crash came) cannot run again: they fail, so
 * that nobody waits for them for ever.  As the catalog owner.
 */
static void
fail_unrequested(void)
{
	int			n;
	int			i;
	RequestSlot *jobs = tsnap_jobs_copy_all(&n);
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	Oid			types[3] = {INT8ARRAYOID, TEXTOID, TEXTOID};
	Datum		values[3];
	int			nids = 0;

	for (i = 0; i < n; i++)
		if (jobs[i].job_id != 0)
			ids[nids++] = Int64GetDatum(jobs[i].job_id);
	values[0] = PointerGetDatum(construct_array(ids, nids, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = CStringGetTextDatum(unpack_sql_state(ERRCODE_ADMIN_SHUTDOWN));
	values[2] = CStringGetTextDatum(_("tsnap job was interrupted by a restart or a crash, and the transaction that requested it had not committed"));
	tsnap_exec("UPDATE tsnap.job_history h SET state = 'failed',"
			   " finished_at = pg_catalog.now(),"
			   " error_sqlstate = $2, error_message = $3"
			   " WHERE h.state OPERATOR(pg_catalog.=) ANY ('{queued,running}')"
			   " AND h.job_id OPERATOR(pg_catalog.<>) ALL ($1)"
			   " AND NOT EXISTS (SELECT FROM tsnap.job_requests r"
			   " WHERE r.job_id OPERATOR(pg_catalog.=) h.job_id)",
			   3, types, values, NULL);
}

/*
 * Housekeeping, step 2: asynchronous jobs whose request is recorded and
 * whose end is not, but that shared memory does not hold, were interrupted
 * by a restart or a crash.  Each goes back to the queue if it has attempts
 * left (returned, to be queued once this transaction commits), else it
 * fails.  The history row is changed first, with a check of its state, so
 * that a job whose worker recorded its end in the meantime is left alone.
 * Requests of jobs whose end is recorded are deleted.
 */
static List *
restart_interrupted(void)
{
	List	   *restart = NIL;
	TsnapCatalogUser saved;
	MemoryContext cxt = CurrentMemoryContext;
	List	   *rows = NIL;
	ListCell   *lc;
	uint64		i;
	int			rc;

	tsnap_catalog_enter_or_raise(&saved);
	tsnap_exec("DELETE FROM tsnap.job_requests r USING tsnap.job_history h"
			   " WHERE h.job_id OPERATOR(pg_catalog.=) r.job_id"
			   " AND h.state OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,cancelled}')",
			   0, NULL, NULL, NULL);
	fail_unrequested();
	SPI_connect();
	rc = SPI_execute("SELECT r.job_id, COALESCE(h.attempts, 0) AS attempts,"
					 " r.request, r.rows_estimate, r.requested_at"
					 " FROM tsnap.job_requests r LEFT JOIN tsnap.job_history h"
					 " ON h.job_id OPERATOR(pg_catalog.=) r.job_id"
					 " ORDER BY r.job_id", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap.job_requests: %s",
			 SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		req = SPI_getbinval(t, d, 3, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		RequestSlot *job = palloc0(sizeof(RequestSlot));
		bytea	   *bytes = isnull ? NULL : DatumGetByteaPCopy(req);

		job->job_id = column_int(t, d, "job_id");
		job->attempts = (int) column_int(t, d, "attempts");
		job->rows_estimate = column_int(t, d, "rows_estimate");
		job->requested_at = column_timestamp(t, d, "requested_at");
		job->state = SLOT_QUEUED;
		job->detached = true;
		/* a request of another build's layout is not read */
		if (bytes && VARSIZE_ANY_EXHDR(bytes) == sizeof(TsnapBuildRequest))
			memcpy(&job->request, VARDATA_ANY(bytes), sizeof(TsnapBuildRequest));
		else
			job->attempts = INT_MAX;
		rows = lappend(rows, job);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	foreach(lc, rows)
	{
		RequestSlot *job = lfirst(lc);

		if (tsnap_jobs_slot_of(job->job_id, 0) >= 0)
			continue;			/* in flight */
		if (job->attempts >= tsnap_job_max_attempts ||
			job->request.dboid != MyDatabaseId)
		{
			TsnapFlatError error;

			tsnap_error_set(&error, ERRCODE_ADMIN_SHUTDOWN,
							_("tsnap job was interrupted by a restart, a crash or its worker's exit"),
							psprintf(_("The job was tried %d times (tsnap.job_max_attempts)."),
									 job->attempts == INT_MAX ? 0 : job->attempts));
			job->error = error;
			job->state = SLOT_FAILED;
			job->finished_at = GetCurrentTimestamp();
		}
		job->request.dboid = MyDatabaseId;
		if (record_if_unfinished(job) && job->state == SLOT_QUEUED)
			restart = lappend(restart, job);
	}
	tsnap_catalog_leave(&saved);
	return restart;
}

/* Housekeeping, step 3: forget finished jobs older than the history's age. */
static void
prune(void)
{
	TsnapCatalogUser saved;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(tsnap_job_history_max_age)};

	tsnap_catalog_enter_or_raise(&saved);
	tsnap_exec("DELETE FROM tsnap.job_history"
			   " WHERE state OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,cancelled}')"
			   " AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
			   " OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))",
			   1, types, values, NULL);
	tsnap_catalog_leave(&saved);
	tsnap_jobs_forget(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  -(int64) tsnap_job_history_max_age * 1000));
}

/*
 * A database's job housekeeping, outside any transaction; each step in a
 * transaction of its own, so that one failing (logged by the caller) does
 * not undo the others'.  The restarted jobs' transaction commits before
 * they are queued, so that a worker sees them queued.
 */
void
tsnap_jobs_maintain(void)
{
	bool		available;
	List	   *restart;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	tsnap_begin_transaction();
	available = tsnap_history_available();
	if (available)
		record_unrecorded();
	tsnap_commit_transaction();
	MemoryContextSwitchTo(cxt);
	if (!available)
		return;

	tsnap_begin_transaction();
	MemoryContextSwitchTo(cxt);
	restart = restart_interrupted();
	tsnap_commit_transaction();
	MemoryContextSwitchTo(cxt);
	foreach(lc, restart)
		tsnap_jobs_restore((RequestSlot *) lfirst(lc));

	tsnap_begin_transaction();
	prune();
	tsnap_commit_transaction();
	MemoryContextSwitchTo(cxt);
}

/*
 * tsnap_snapshot_async's hit: a job that has succeeded already, written
 * in the caller's transaction; its id.
 */
int64
tsnap_jobs_record_hit(const TsnapBuildRequest *request,
					  const TsnapSnapshotResult *hit)
{
	RequestSlot *job = palloc0(sizeof(RequestSlot));

	job->job_id = tsnap_history_next_id();
	job->state = SLOT_DONE;
	job->detached = true;
	job->request = *request;
	job->result = *hit;
	job->version_seen = hit->rows_version;
	job->requested_at = job->started_at = job->finished_at =
		GetCurrentTimestamp();
	tsnap_history_record(job);
	return job->job_id;
}
