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
 * Per request: build the snapshot, answer the caller, then do housekeeping
 * (deletes that retention queued).  A failed request does not kill the
 * worker: the error is copied for the caller, the transaction aborted, and
 * the worker moves on.  FATAL errors (terminate, shutdown) are not caught;
 * the exit callback fails the request in hand, and any multipart upload left
 * open is aborted by scan.c's cleanup or, after a crash, by the next
 * worker's sweep (retention.c).
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
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "settings.h"
#include "snapshot.h"

static int	my_worker = -1;

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
 * Pin the settings that shape type output (snapshot_key.c lists them and
 * puts them in every fingerprint).
 */
static void
pin_output_settings(void)
{
	int			i;

	for (i = 0; tsnap_output_settings[i][0]; i++)
		SetConfigOption(tsnap_output_settings[i][0], tsnap_output_settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
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
		tsnap_build_snapshot(my_worker, params, &result);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
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
	bool		swept = false;

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
	pin_output_settings();

	cxt = AllocSetContextCreate(TopMemoryContext, "tsnap worker",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	while (tsnap_queue_take(my_worker, &params))
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			pin_output_settings();
		}

		run_request(&params);
		pgstat_report_activity(STATE_IDLE, NULL);

		if (!swept)
		{
			housekeeping(tsnap_sweep_abandoned_uploads);
			swept = true;
		}
		housekeeping(tsnap_delete_pending);
		MemoryContextReset(cxt);
	}

	proc_exit(0);
}
