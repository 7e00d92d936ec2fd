/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The main loop of the background workers that build snapshots.
 *
 * Workers are dynamic background workers, launched on demand by the pool
 * (pool.c) and bound to one database each.  A worker connects as the
 * bootstrap superuser, which needs no LOGIN, and switches to each caller's
 * role for the caller's part of the build (build/build.c); PostgreSQL 15
 * cannot start a worker as a NOLOGIN role, and the caller's current user
 * may be one.
 *
 * A worker serves one request, gives its place in the pool back, then does
 * housekeeping (the sweep of abandoned uploads, retention, the deletes it
 * queued) unless another worker of its database is doing it, and exits.  Planning
 * the scan can run the table owner's code in the worker; the build confines
 * it to a security-restricted GUC nest level, and a fresh process for every
 * request makes sure that no state it could leave in a session (extension
 * state, caches) meets another request.  A failed request's error is handed
 * whole to its callers and its transaction aborted.  FATAL errors
 * (terminate, shutdown) are not caught; the exit callback fails the request
 * in hand, and any multipart upload left open is aborted by the build's
 * cleanup or, after a crash, by the next worker's sweep (ledger/retention.c).
 *
 * A request whose callers have all left while it still prepares (waits for
 * a lock, plans) is cancelled: a timeout checks every
 * TSNAP_CHECK_INTERVAL_MS and raises a query cancel, and if the request's
 * own code holds out against that (a PL/pgSQL handler for query_canceled),
 * terminates the worker ABANDON_DIE_MS later.  So no role can hold a worker
 * by making it wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "build/build.h"
#include "jobs/shmem.h"
#include "ledger/ledger.h"
#include "settings.h"

#define WORKER_LOCK_TIMEOUT	"10s"
#define ABANDON_DIE_MS		2000

static int	my_worker = -1;
static TimeoutId abandon_timeout;
static volatile TimestampTz abandoned_at = 0;
static volatile bool gave_up_preparing = false;
static bool connected = false;

/*
 * Timeout handler (signal context): cancel a request nobody waits for any
 * more, and terminate the worker if that did not end it.
 */
static void
check_abandoned(void)
{
	TimestampTz now;

	bool		gave_up = false;

	if (!tsnap_pool_abandoned(my_worker, &gave_up))
		return;
	if (gave_up)
		gave_up_preparing = true;
	now = GetCurrentTimestamp();
	if (abandoned_at == 0)
	{
		abandoned_at = now;
		QueryCancelPending = true;
	}
	else if (TimestampDifferenceExceeds(abandoned_at, now, ABANDON_DIE_MS))
		ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

static void
worker_exit(int code, Datum arg)
{
	tsnap_pool_worker_exit(DatumGetInt32(arg), connected);
}

/*
 * Registered after the connection, so it runs before PostgreSQL's own exit
 * callback aborts the transaction and frees the upload's memory.
 */
static void
abort_upload_at_exit(int code, Datum arg)
{
	tsnap_build_abort_upload();
}

/*
 * What the build reports goes to the request's waiters: the version its
 * snapshot sees (for callers who would join), the moment it starts
 * streaming (after which it is no longer cancelled when they leave), and
 * rows and bytes written.  Progress also goes to PostgreSQL's own
 * pg_stat_progress_copy, as a COPY TO of the table into a callback, which
 * is what the worker does, so tools that watch COPY see snapshots too.
 */
static bool
report_to_waiters(TsnapBuildPhase phase, const TsnapBuildProgress *progress,
				  void *arg)
{
	const TsnapBuildRequest *request = (const TsnapBuildRequest *) arg;

	switch (phase)
	{
		case TSNAP_BUILD_LOCKED:
			tsnap_pool_publish_version(my_worker, TSNAP_VERSION_PENDING);
			break;
		case TSNAP_BUILD_VERSION:
			tsnap_pool_publish_version(my_worker, progress->rows_version);
			break;
		case TSNAP_BUILD_STREAMING:
			if (!tsnap_pool_begin_streaming(my_worker, progress->key))
				return false;
			pgstat_progress_start_command(PROGRESS_COMMAND_COPY,
										  request->relid);
			pgstat_progress_update_param(PROGRESS_COPY_COMMAND,
										 PROGRESS_COPY_COMMAND_TO);
			pgstat_progress_update_param(PROGRESS_COPY_TYPE,
										 PROGRESS_COPY_TYPE_CALLBACK);
			break;
		case TSNAP_BUILD_PROGRESS:
			{
				const int	index[] = {PROGRESS_COPY_TUPLES_PROCESSED,
				PROGRESS_COPY_BYTES_PROCESSED};
				int64		values[] = {progress->rows, progress->bytes};

				pgstat_progress_update_multi_param(2, index, values);
				tsnap_pool_report_progress(my_worker, progress->rows,
										   progress->bytes, progress->parts);
			}
			break;
	}
	return true;
}

/*
 * Run fn(arg) and, if it fails, log its error, copy it into *error (if not
 * NULL) and abort its transaction.  Returns whether it succeeded.
 */
static bool
run_caught(void (*fn) (void *arg), void *arg, TsnapFlatError *error)
{
	ErrorData  *edata;

	if (tsnap_run_caught(fn, arg, true, error ? &edata : NULL))
		return true;
	if (error)
	{
		tsnap_error_flatten(edata, error);
		FreeErrorData(edata);
	}
	return false;
}

typedef struct BuildArgs
{
	const TsnapBuildRequest *request;
	TsnapSnapshotResult *result;
} BuildArgs;

/* The build, cancelled if every caller leaves while it prepares. */
static void
build_watched(void *arg)
{
	BuildArgs  *a = (BuildArgs *) arg;

	enable_timeout_every(abandon_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 TSNAP_CHECK_INTERVAL_MS),
						 TSNAP_CHECK_INTERVAL_MS);
	PG_TRY();
	{
		tsnap_build(a->request, report_to_waiters, (void *) a->request,
					a->result);
	}
	PG_FINALLY();
	{
		disable_timeout(abandon_timeout, false);
		pgstat_progress_end_command();
	}
	PG_END_TRY();
}

/*
 * A database's housekeeping steps, one unit each for run_caught here and
 * for the launcher's housekeeper (launcher/housekeeper.c).
 */
void
tsnap_jobs_step_sweep_uploads(void *arg)
{
	tsnap_sweep_abandoned_uploads(tsnap_jobs_key_in_flight);
}

void
tsnap_jobs_step_retention(void *arg)
{
	tsnap_ledger_apply_retention_all();
}

void
tsnap_jobs_step_delete_pending(void *arg)
{
	tsnap_delete_pending(tsnap_jobs_key_in_flight);
}

void
tsnap_jobs_step_maintain(void *arg)
{
	tsnap_jobs_maintain();
}

/*
 * Write the job to tsnap.job_history (history.c), giving it an id if its
 * caller could not; in a transaction of its own.
 */
static void
record_job(void *arg)
{
	RequestSlot *job = (RequestSlot *) arg;

	tsnap_begin_transaction();
	if (tsnap_history_available())
	{
		if (job->job_id == 0)
		{
			job->job_id = tsnap_history_next_id();
			tsnap_pool_set_job_id(my_worker, job->job_id);
		}
		tsnap_history_record(job);
	}
	tsnap_commit_transaction();
}

void
tsnap_worker_main(Datum arg)
{
	RequestSlot job;
	TsnapSnapshotResult result;
	TsnapFlatError error;
	BuildArgs	build;
	MemoryContext cxt;
	Oid			dboid;

	my_worker = DatumGetInt32(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	dboid = tsnap_pool_bind(my_worker, MyProcPid);
	before_shmem_exit(worker_exit, Int32GetDatum(my_worker));

	/* InvalidOid: the bootstrap superuser, which needs no LOGIN */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	connected = true;
	before_shmem_exit(abort_upload_at_exit, (Datum) 0);
	pgstat_report_appname("tsnap worker");
	abandon_timeout = RegisterTimeout(USER_TIMEOUT, check_abandoned);

	/*
	 * The worker's own catalog work (intents, records, retention) never
	 * waits long for a lock; what waits on the caller's behalf is bounded by
	 * the callers instead (the build lifts this for the caller's part).
	 */
	SetConfigOption("lock_timeout", WORKER_LOCK_TIMEOUT, PGC_SUSET,
					PGC_S_SESSION);

	cxt = AllocSetContextCreate(TopMemoryContext, "tsnap worker",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	if (tsnap_pool_take(my_worker, &job))
	{
		bool		ok;

		CHECK_FOR_INTERRUPTS();

		/* a detached job leaves a trace that survives a crash */
		if (job.detached)
			(void) run_caught(record_job, &job, NULL);

		memset(&result, 0, sizeof(result));
		build.request = &job.request;
		build.result = &result;
		ok = run_caught(build_watched, &build, &error);
		if (!ok && gave_up_preparing)
			tsnap_error_set(&error, ERRCODE_LOCK_NOT_AVAILABLE,
							psprintf(_("tsnap job " INT64_FORMAT " waited longer than tsnap.job_lock_timeout to lock its table, with nobody waiting for it"),
									 job.job_id),
							_("A job waits for locks that long unless a session waits for it with tsnap_wait; ask again when the table is not locked."));
		tsnap_pool_finish(my_worker, ok ? &result : NULL, ok ? NULL : &error,
						  &job);
		if (SLOT_FINISHED(job.state) &&
			run_caught(record_job, &job, NULL) && job.detached)
			tsnap_pool_mark_recorded(tsnap_jobs_slot_of(job.job_id,
														job.generation),
									 job.generation);

		/* the next queued job, of any database, gets this place */
		tsnap_jobs_start_queued();

		/* housekeeping: failures are logged, never fatal */
		pgstat_report_activity(STATE_IDLE, NULL);
		if (tsnap_pool_begin_housekeeping(dboid))
		{
			(void) run_caught(tsnap_jobs_step_sweep_uploads, NULL, NULL);
			(void) run_caught(tsnap_jobs_step_retention, NULL, NULL);
			(void) run_caught(tsnap_jobs_step_delete_pending, NULL, NULL);
			(void) run_caught(tsnap_jobs_step_maintain, NULL, NULL);
		}
	}

	proc_exit(0);
}
