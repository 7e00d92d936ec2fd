/*-------------------------------------------------------------------------
 *
 * steps.c
 *	  The housekeeping steps of the launcher's processes, each run on its
 *	  own: a failure is logged as a WARNING (a cleanup's failures are
 *	  warnings, not the process's errors) and the next step runs.
 *
 * The object store: when it is out, every step that talks to it fails,
 * in every database, every round, for as long as the outage lasts.  That
 * is logged once.  The store's failures come with the SQLSTATEs that
 * store/store_s3.c gives the client's errors: a transport failure is a
 * connection exception (class 08), an HTTP or S3 error an I/O error
 * (58030), refused credentials 28000.  Most raise ERROR, but listing and
 * aborting uploads only warn, so that a sweep goes on with what it has;
 * so while a step that talks to the store runs, an emit_log_hook keeps
 * the WARNINGs that carry those SQLSTATEs out of the log and remembers the
 * first.  When the step ends, its first store failure, warning or error,
 * is logged: as a WARNING with the store's message if the store was not
 * known to be out (the flag in shared memory, shared.c, so once per
 * outage across processes and rounds), else at DEBUG1.  A step that asks
 * the store every time and met no failure ends the outage, with one LOG
 * line.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/elog.h"
#include "utils/memutils.h"

#include "common/common.h"
#include "launcher/launcher.h"

/* the first store failure of the step under way */
typedef struct StoreFailure
{
	bool		seen;
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *context;
} StoreFailure;

static emit_log_hook_type prev_emit_log_hook = NULL;
static bool hook_installed = false;
static bool watching = false;
static MemoryContext failure_cxt = NULL;
static StoreFailure failure;

static bool
is_store_error(const ErrorData *edata)
{
	return ERRCODE_TO_CATEGORY(edata->sqlerrcode) ==
		ERRCODE_CONNECTION_EXCEPTION ||
		edata->sqlerrcode == ERRCODE_IO_ERROR ||
		edata->sqlerrcode == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
}

static char *
keep(const char *s)
{
	return s ? MemoryContextStrdup(failure_cxt, s) : NULL;
}

static void
remember(const ErrorData *edata)
{
	if (failure.seen)
		return;
	failure.seen = true;
	failure.sqlerrcode = edata->sqlerrcode;
	failure.message = keep(edata->message);
	failure.detail = keep(edata->detail);
	failure.context = keep(edata->context);
}

/*
 * emit_log_hook: during a store step, a store WARNING is remembered
 * instead of logged.  edata->context already holds the step's context.
 */
static void
watch_store(ErrorData *edata)
{
	if (watching && edata->elevel == WARNING && is_store_error(edata))
	{
		remember(edata);
		edata->output_to_server = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Log a failed step's error as a WARNING, with its own SQLSTATE, message,
 * detail, hint and context.  The current error context (the database)
 * came with the error already; it is left out here so that it does not
 * appear twice.
 */
static void
log_failure(ErrorData *edata)
{
	ErrorContextCallback *saved_context = error_context_stack;

	error_context_stack = NULL;
	edata->elevel = WARNING;
	ThrowErrorData(edata);
	error_context_stack = saved_context;
}

/* The step's store failure: a WARNING if it starts an outage, else DEBUG1. */
static void
log_store_failure(void)
{
	ErrorContextCallback *saved_context = error_context_stack;
	bool		first = !tsnap_launcher_set_store_down(true);

	error_context_stack = NULL;
	ereport(first ? WARNING : DEBUG1,
			(errcode(failure.sqlerrcode),
			 first ?
			 errmsg("tsnap housekeeping cannot reach the object store: %s",
					failure.message) :
			 errmsg("tsnap housekeeping still cannot reach the object store: %s",
					failure.message),
			 failure.detail ? errdetail_internal("%s", failure.detail) : 0,
			 first ?
			 errhint("Housekeeping is retried every tsnap.housekeeping_interval; further failures are logged at DEBUG1 until the object store answers again.") : 0,
			 failure.context ? errcontext("%s", failure.context) : 0));
	error_context_stack = saved_context;
}

/*
 * Run a step that does not talk to the object store; returns whether it
 * succeeded.  Call it outside a transaction.
 */
bool
tsnap_launcher_step(void (*fn) (void *arg), void *arg)
{
	ErrorData  *edata;

	if (tsnap_run_caught(fn, arg, false, &edata))
		return true;
	log_failure(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * Run a step that talks to the object store; returns whether it returned
 * (it may have met store failures that it only warned of), and sets
 * *store_failed if the store failed during it.  Call it outside a
 * transaction.
 */
bool
tsnap_launcher_store_step(void (*fn) (void *arg), void *arg,
						  bool *store_failed)
{
	ErrorData  *edata;
	bool		ok;

	if (!hook_installed)
	{
		prev_emit_log_hook = emit_log_hook;
		emit_log_hook = watch_store;
		hook_installed = true;
		failure_cxt = AllocSetContextCreate(TopMemoryContext,
											"tsnap store failures",
											ALLOCSET_SMALL_SIZES);
	}
	MemoryContextReset(failure_cxt);
	memset(&failure, 0, sizeof(failure));

	watching = true;
	ok = tsnap_run_caught(fn, arg, false, &edata);
	watching = false;

	if (!ok)
	{
		if (is_store_error(edata))
			remember(edata);
		else
			log_failure(edata);
		FreeErrorData(edata);
	}
	if (failure.seen)
		log_store_failure();
	*store_failed = failure.seen;
	return ok;
}

/*
 * A step that asks the object store every time met no failure: the end of
 * an outage, if there was one, is logged once.
 */
void
tsnap_launcher_store_answered(void)
{
	if (tsnap_launcher_set_store_down(false))
		ereport(LOG,
				(errmsg("tsnap housekeeping reaches the object store again")));
}
