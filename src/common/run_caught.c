/*-------------------------------------------------------------------------
 *
 * run_caught.c
 *	  Running one unit of a background process's work so that its failure
 *	  ends the unit, not the process.
 *
 * The workers (jobs/worker.c) and the launcher's processes (launcher/) run
 * several independent units in a row: a build, then each housekeeping
 * step.  A unit that raises ERROR has its error logged or handed back and
 * its transaction aborted, and the process goes on with the next unit.
 * FATAL (terminate, shutdown) is never caught: PostgreSQL exits on it
 * without unwinding to here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"

#include "common/common.h"

/*
 * Run fn(arg).  If it raises, log its error first when report is true,
 * copy it into *edata when edata is not NULL (palloc'd in the memory
 * context current at the call, which must outlive any transaction fn
 * starts), abort whatever transaction it left open, release what it held
 * outside one (lightweight locks, a condition variable's sleep), and
 * return false.  Returns true if fn returned.  Call it outside a
 * transaction.
 */
bool
tsnap_run_caught(void (*fn) (void *arg), void *arg, bool report,
				 ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		if (report)
			EmitErrorReport();
		if (edata)
			*edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		/* a process outside a transaction has no abort to release these */
		ConditionVariableCancelSleep();
		LWLockReleaseAll();
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
