/*-------------------------------------------------------------------------
 *
 * jobs_sql.c
 *	  SQL entry points of snapshot jobs: tsnap_wait, tsnap_cancel, and
 *	  tsnap.job_list, behind the tsnap.jobs view: the jobs shared memory
 *	  holds and those tsnap.job_history keeps.  tsnap_snapshot_async is in
 *	  snapshot/, with the checks it shares with tsnap_snapshot.
 *
 * Who sees what: a job is visible to members of the role that requested
 * it and to roles that may SELECT its table (queue.c,
 * tsnap_jobs_visible); a job's error message only to the former, as
 * tsnap_snapshot never shows another role's error.  A job the caller may
 * not see is reported as not existing, so ids reveal nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "jobs/shmem.h"

PG_FUNCTION_INFO_V1(tsnap_wait);
PG_FUNCTION_INFO_V1(tsnap_cancel);
PG_FUNCTION_INFO_V1(tsnap_job_list);

static void
check_preloaded(void)
{
	if (!tsnap_jobs_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap must be loaded through shared_preload_libraries to run snapshot jobs"),
				 errhint("Add tsnap to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* An interval as milliseconds, for a timeout; negative ones are refused. */
static int64
interval_ms(const Interval *span)
{
	int64		us;

	if (span->month != 0)
		us = (int64) span->month * DAYS_PER_MONTH * USECS_PER_DAY;
	else
		us = 0;
	us += (int64) span->day * USECS_PER_DAY + span->time;
	if (us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative"),
				 errhint("NULL waits without a limit other than statement_timeout.")));
	return (us + 999) / 1000;
}

/*
 * tsnap_wait(job_id bigint, timeout interval DEFAULT NULL) RETURNS text
 */
Datum
tsnap_wait(PG_FUNCTION_ARGS)
{
	int64		timeout_ms = -1;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	check_preloaded();
	if (!PG_ARGISNULL(1))
		timeout_ms = interval_ms(PG_GETARG_INTERVAL_P(1));
	PG_RETURN_TEXT_P(cstring_to_text(tsnap_jobs_wait(PG_GETARG_INT64(0),
													 timeout_ms)));
}

/*
 * tsnap_cancel(job_id bigint) RETURNS boolean, STRICT
 */
Datum
tsnap_cancel(PG_FUNCTION_ARGS)
{
	check_preloaded();
	PG_RETURN_BOOL(tsnap_jobs_cancel(PG_GETARG_INT64(0)));
}

/* tsnap.jobs' columns: the history's without error_detail and error_hint */
#define VIEW_COLUMNS 19
#define VIEW_ERROR_MESSAGE 18

/* what tsnap_job_list gathers rows with */
typedef struct JobList
{
	ReturnSetInfo *rsinfo;
	Oid			userid;			/* the caller, whatever user runs now */
	int64	   *live_ids;		/* jobs shared memory holds, sorted */
	int			nlive;
} JobList;

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Add job as a row of tsnap.jobs if list's user may see it; its error
 * message only if it is the user's own.
 */
static void
put_job(JobList *list, const RequestSlot *job, const char *table_name)
{
	Datum		values[TSNAP_JOB_COLUMNS];
	bool		nulls[TSNAP_JOB_COLUMNS];

	StaticAssertStmt(VIEW_COLUMNS <= TSNAP_JOB_COLUMNS,
					 "tsnap.jobs shows a prefix of the history's columns");
	if (!tsnap_jobs_visible(list->userid, job->request.roleid,
							job->request.relid))
		return;
	tsnap_jobs_columns(job, table_name, values, nulls);
	if (!has_privs_of_role(list->userid, job->request.roleid))
		nulls[VIEW_ERROR_MESSAGE] = true;
	tuplestore_putvalues(list->rsinfo->setResult, list->rsinfo->setDesc,
						 values, nulls);
}

/* a row of the history, unless shared memory has the job (fresher) */
static void
put_recorded_job(RequestSlot *job, char *table_name, void *arg)
{
	JobList    *list = (JobList *) arg;

	if (bsearch(&job->job_id, list->live_ids, list->nlive, sizeof(int64),
				cmp_int64) == NULL)
		put_job(list, job, table_name);
}

/*
 * tsnap.job_list(): the rows of tsnap.jobs, that is the jobs of this
 * database that shared memory holds and those tsnap.job_history keeps,
 * each once, as far as the caller may see them.
 */
Datum
tsnap_job_list(PG_FUNCTION_ARGS)
{
	JobList		list;
	RequestSlot *jobs;
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	list.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	list.userid = GetUserId();
	list.nlive = 0;

	jobs = tsnap_jobs_available() ? tsnap_jobs_copy_all(&n) : NULL;
	list.live_ids = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		put_job(&list, &jobs[i], tsnap_jobs_table_name(jobs[i].request.relid));
		if (jobs[i].job_id != 0)
			list.live_ids[list.nlive++] = jobs[i].job_id;
	}
	qsort(list.live_ids, list.nlive, sizeof(int64), cmp_int64);
	tsnap_history_scan(put_recorded_job, &list);
	return (Datum) 0;
}
