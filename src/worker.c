/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers that build snapshots.
 *
 * Workers are dynamic background workers, launched on demand by callers
 * (request_queue.c) and bound to one database each.  A worker connects as
 * the bootstrap superuser, which needs no LOGIN, and switches to each
 * caller's role for the scan itself (scan.c); PostgreSQL 15 cannot start a
 * worker as a NOLOGIN role, and the caller's current user may be one.
 *
 * A worker serves one request, then does housekeeping (deletes that
 * retention queued) and exits.  Planning the scan can run the table owner's
 * code in the worker; scan.c confines it to a security-restricted GUC nest
 * level, and a fresh process for every request makes sure that no state it
 * could leave in a session (extension state, caches) meets another
 * request.  A failed request is copied for the caller and its transaction
 * aborted.  FATAL errors (terminate, shutdown) are not caught; the exit
 * callback fails the request in hand, and any multipart upload left open is
 * aborted by scan.c's cleanup or, after a crash, by the next worker's sweep
 * (retention.c).
 *
 * A request whose callers have all left while it still prepares (waits for
 * a lock, plans) is cancelled: a timeout checks every ABANDON_CHECK_MS and
 * raises a query cancel, and if the request's own code holds out against
 * that (a PL/pgSQL handler for query_canceled), terminates the worker
 * ABANDON_DIE_MS later.  So no role can hold a worker by making it wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
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

#include "settings.h"
#include "snapshot.h"

#define ABANDON_CHECK_MS	100
#define WORKER_LOCK_TIMEOUT	"10s"
#define ABANDON_DIE_MS		2000

static int	my_worker = -1;
static TimeoutId abandon_timeout;
static volatile TimestampTz abandoned_at = 0;

/*
 * Timeout handler (signal context): cancel a request nobody waits for any
 * more, and terminate the worker if that did not end it.
 */
static void
check_abandoned(void)
{
	TimestampTz now;

	if (!tsnap_queue_abandoned(my_worker))
		return;
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
	tsnap_queue_worker_exit(DatumGetInt32(arg));
}

/*
 * Registered after the connection, so it runs before PostgreSQL's own exit
 * callback aborts the transaction and frees the S3 client with its memory.
 */
static void
abort_upload_at_exit(int code, Datum arg)
{
	tsnap_scan_abort_upload();
}

/*
 * Register a dynamic worker for queue entry w and wait until it started (or
 * stopped already).  False if it could not be registered or never ran.
 */
bool
tsnap_worker_launch(int worker)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "tsnap", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "tsnap_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "tsnap worker %d", worker);
	strlcpy(bgw.bgw_type, "tsnap worker", BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(worker);
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return false;
	return WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED;
}

/*
 * Copy the error being handled into *error, in the caller's terms.
 */
static void
capture_error(TsnapRequestError *error)
{
	ErrorData  *edata;

	edata = CopyErrorData();
	memset(error, 0, sizeof(*error));
	error->sqlerrcode = edata->sqlerrcode;
	strlcpy(error->message, edata->message ? edata->message : "unknown error",
			sizeof(error->message));
	if (edata->detail)
		strlcpy(error->detail, edata->detail, sizeof(error->detail));
	if (edata->hint)
		strlcpy(error->hint, edata->hint, sizeof(error->hint));
	FreeErrorData(edata);
}

static void
run_request(const TsnapRequestParams *params)
{
	MemoryContext cxt = CurrentMemoryContext;
	TsnapSnapshotResult result;
	TsnapRequestError error;
	bool		failed = false;

	memset(&result, 0, sizeof(result));
	PG_TRY();
	{
		enable_timeout_every(abandon_timeout,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 ABANDON_CHECK_MS),
							 ABANDON_CHECK_MS);
		tsnap_build_snapshot(my_worker, params, &result);
		disable_timeout(abandon_timeout, false);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		disable_timeout(abandon_timeout, false);
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		capture_error(&error);
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
		failed = true;
	}
	PG_END_TRY();

	tsnap_queue_finish(my_worker, failed ? NULL : &result,
					   failed ? &error : NULL);
}

/*
 * Housekeeping after a request; its failures are logged, never fatal.
 */
static void
housekeeping(void (*fn) (void))
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		fn();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
}

void
tsnap_worker_main(Datum arg)
{
	TsnapRequestParams params;
	MemoryContext cxt;
	Oid			dboid;

	my_worker = DatumGetInt32(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	dboid = tsnap_queue_worker_database(my_worker, MyProcPid);
	before_shmem_exit(worker_exit, Int32GetDatum(my_worker));

	/* InvalidOid: the bootstrap superuser, which needs no LOGIN */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	before_shmem_exit(abort_upload_at_exit, (Datum) 0);
	pgstat_report_appname("tsnap worker");
	abandon_timeout = RegisterTimeout(USER_TIMEOUT, check_abandoned);

	/*
	 * The worker's own catalog work (intents, records, retention) never
	 * waits long for a lock; what waits on the caller's behalf is bounded by
	 * the callers instead (scan.c lifts this for the caller's part).
	 */
	SetConfigOption("lock_timeout", WORKER_LOCK_TIMEOUT, PGC_SUSET,
					PGC_S_SESSION);

	cxt = AllocSetContextCreate(TopMemoryContext, "tsnap worker",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	if (tsnap_queue_take(my_worker, &params))
	{
		CHECK_FOR_INTERRUPTS();
		run_request(&params);
		pgstat_report_activity(STATE_IDLE, NULL);
		housekeeping(tsnap_sweep_abandoned_uploads);
		housekeeping(tsnap_apply_retention_all);
		housekeeping(tsnap_delete_pending);
	}

	proc_exit(0);
}
