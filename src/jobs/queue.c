/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The callers' side of the shared-memory request slots between callers
 *	  of tsnap_snapshot and the workers that build snapshots (pool.c has
 *	  the workers' side; shmem.h the structure).
 *
 * A caller that misses puts a request in a slot, makes sure a worker will
 * serve it, and sleeps on the queue's condition variable until the slot is
 * DONE or FAILED.  Requests travel through shared memory, not a catalog row,
 * because a worker cannot see rows of the caller's uncommitted transaction.
 *
 * Single flight: a caller joins a QUEUED or RUNNING request for the same
 * table in the same database, and the same compression (each is a
 * snapshot with a key of its own), instead of adding its own, so concurrent
 * callers cause one upload and all get the same key.  It joins a RUNNING
 * request only while the worker has not yet taken its snapshot (which will
 * then see everything the caller saw), or once the worker has published a
 * version at least as new as the caller's; otherwise the answer could be
 * older than the caller's own view.
 *
 * A caller that finds a RUNNING request for its table whose worker is taking
 * its snapshot right now waits until the version is published and then
 * decides, so that it never starts a second upload of the same version.
 *
 * Workers: waiting callers re-check every second (and whenever a worker
 * finishes or exits) and ask the pool (pool.c) to launch a worker when one
 * is needed and it has room.
 *
 * Deadlocks: a caller waits on a condition variable, which PostgreSQL's
 * deadlock detector cannot see, while holding its locks on the table.  If
 * the worker then waits, directly or through other sessions, for a lock
 * the caller holds, neither would ever move; so after deadlock_timeout the
 * caller follows pg_blocking_pids from its worker and raises 40P01 if it
 * finds itself.  Only while the request prepares: that is when the worker
 * takes locks on the caller's behalf, and pg_blocking_pids locks the whole
 * lock table, too much to repeat every second of a long upload (the
 * worker's own catalog work after the scan gives up on a lock_timeout).
 *
 * Slot lifetime: a slot is freed by whoever is last among its waiters and its
 * worker.  A caller that leaves (cancel, statement_timeout) drops a request
 * nobody else waits for if it is still QUEUED.  A RUNNING one that nobody
 * waits for any more is cancelled while it is still preparing (waiting for
 * a lock, planning its scan), so that no role can hold a worker by making
 * it wait on her behalf (worker.c checks every TSNAP_CHECK_INTERVAL_MS); no
 * caller joins it then.  Once it streams rows it finishes and is recorded,
 * so the work serves later calls.
 *
 * Errors: a failed request's error reaches every caller whole, raised as if
 * in the caller (common/error_transport.c); but never another role's (see
 * tsnap_jobs_run).
 *
 * Locking: one LWLock guards the whole structure; it is held only to read or
 * change a few fields, never across I/O.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "jobs/shmem.h"
#include "settings.h"

TsnapJobs  *tsnap_jobs = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One slot per backend is enough: a backend waits for one request at once. */
static int
queue_slots(void)
{
	return MaxBackends;
}

static Size
queue_size(void)
{
	return add_size(offsetof(TsnapJobs, slots),
					mul_size(sizeof(RequestSlot), queue_slots()));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(queue_size());
	RequestNamedLWLockTranche("tsnap", 1);
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	tsnap_jobs = ShmemInitStruct("tsnap request queue", queue_size(), &found);
	if (!found)
	{
		int			i;

		memset(tsnap_jobs, 0, queue_size());
		tsnap_jobs->lock = &(GetNamedLWLockTranche("tsnap"))->lock;
		ConditionVariableInit(&tsnap_jobs->cv);
		tsnap_jobs->nslots = queue_slots();
		for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
			tsnap_jobs->workers[i].slot = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the shared memory hooks; from _PG_init while preloading only.
 */
void
tsnap_jobs_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/* Is the queue there, that is, was tsnap preloaded? */
bool
tsnap_jobs_available(void)
{
	return tsnap_jobs != NULL;
}

/*
 * Under the lock: a slot this request can join (counted as one more waiter),
 * else a free slot set up for it, else -1.
 */
#define SLOT_RETRY	(-2)

static pg_noinline int
find_slot(const TsnapBuildRequest *request, bool same_role_only)
{
	int			free_slot = -1;
	bool		version_pending = false;
	int			i;

	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];

		if (s->state == SLOT_FREE)
		{
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (s->request.dboid != request->dboid ||
			s->request.relid != request->relid ||
			(same_role_only && s->request.roleid != request->roleid) ||
			s->request.max_bytes != request->max_bytes ||
			s->request.compression != request->compression ||
			s->request.stale_key[0] != '\0' || request->stale_key[0] != '\0')
			continue;
		if (s->state == SLOT_RUNNING && s->preparing && s->waiters <= 0)
			continue;			/* abandoned: being cancelled */
		if (s->state == SLOT_QUEUED ||
			(s->state == SLOT_RUNNING &&
			 (s->version_seen == TSNAP_VERSION_UNKNOWN ||
			  s->version_seen >= request->min_version)))
		{
			s->waiters++;
			return i;
		}
		if (s->state == SLOT_RUNNING &&
			s->version_seen == TSNAP_VERSION_PENDING)
			version_pending = true;
	}
	if (version_pending)
		return SLOT_RETRY;
	if (free_slot >= 0)
	{
		RequestSlot *s = &tsnap_jobs->slots[free_slot];

		memset(s, 0, sizeof(*s));
		s->state = SLOT_QUEUED;
		s->generation = ++tsnap_jobs->next_generation;
		s->waiters = 1;
		s->worker = -1;
		s->version_seen = TSNAP_VERSION_UNKNOWN;
		s->request = *request;
	}
	return free_slot;
}

/*
 * Does process pid wait, directly or through other sessions, for a lock
 * this backend holds?  Follows pg_blocking_pids, which also counts waiters
 * queued ahead for a conflicting lock, through at most 64 processes.
 */
static bool
blocked_by_me(int pid)
{
	List	   *todo = list_make1_int(pid);
	List	   *seen = NIL;

	while (todo != NIL && list_length(seen) < 64)
	{
		int			p = linitial_int(todo);
		ArrayType  *blockers;
		Datum	   *elems;
		int			n;
		int			i;

		todo = list_delete_first(todo);
		if (list_member_int(seen, p))
			continue;
		seen = lappend_int(seen, p);
		blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
														  Int32GetDatum(p)));
		deconstruct_array(blockers, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &elems, NULL, &n);
		for (i = 0; i < n; i++)
		{
			if (DatumGetInt32(elems[i]) == MyProcPid)
				return true;
			todo = lappend_int(todo, DatumGetInt32(elems[i]));
		}
	}
	return false;
}

/* Under the lock: the slot if it is still the caller's request */
static RequestSlot *
my_slot(int idx, uint64 generation)
{
	RequestSlot *s = &tsnap_jobs->slots[idx];

	return (s->state != SLOT_FREE && s->generation == generation) ? s : NULL;
}

static void
leave_slot(int idx, uint64 generation)
{
	RequestSlot *s;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	s = my_slot(idx, generation);
	if (s && --s->waiters <= 0 && s->state != SLOT_RUNNING)
		s->state = SLOT_FREE;
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * Sleep until the request in slot idx is DONE or FAILED; copy out what it
 * produced.  Every second (or deadlock_timeout, if shorter), make sure a
 * worker will take it; once deadlock_timeout has passed, raise 40P01 if
 * its worker waits for this backend; while it streams rows, send a NOTICE
 * with its progress every tsnap.progress_notice_interval, so that a person
 * waiting in psql sees that it is working.
 */
static SlotState
wait_for(int idx, uint64 generation, Oid dboid, Oid relid,
		 TsnapSnapshotResult *result, TsnapFlatError *error,
		 Oid *served_as)
{
	SlotState	state;
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz last_notice = started;

	ConditionVariablePrepareToSleep(&tsnap_jobs->cv);
	for (;;)
	{
		RequestSlot *s;
		int			worker_pid = 0;
		bool		streaming = false;
		int64		rows_done = 0;
		int64		bytes_done = 0;

		LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
		s = my_slot(idx, generation);
		if (s == NULL)
			elog(ERROR, "tsnap request slot %d was lost", idx);
		state = s->state;
		*served_as = s->request.roleid;
		if (state == SLOT_DONE)
			*result = s->result;
		else if (state == SLOT_FAILED)
			*error = s->error;
		else if (state == SLOT_RUNNING && s->worker >= 0 && s->preparing)
			worker_pid = tsnap_jobs->workers[s->worker].pid;
		else if (state == SLOT_RUNNING)
		{
			streaming = true;
			rows_done = s->rows_done;
			bytes_done = s->bytes_done;
		}
		LWLockRelease(tsnap_jobs->lock);

		if (state == SLOT_DONE || state == SLOT_FAILED)
			break;
		if (state == SLOT_QUEUED)
			tsnap_pool_ensure_worker(dboid);
		if (worker_pid != 0 &&
			TimestampDifferenceExceeds(started, GetCurrentTimestamp(),
									   DeadlockTimeout) &&
			blocked_by_me(worker_pid))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
					 errmsg("deadlock detected"),
					 errdetail("This session waits for tsnap worker %d to snapshot table \"%s\", and the worker waits, directly or through other sessions, for a lock this session holds.",
							   worker_pid, get_rel_name(relid)),
					 errhint("Take tsnap_snapshot before other locks on the table in a transaction, or commit first.")));
		if (streaming && tsnap_progress_notice_interval > 0 &&
			TimestampDifferenceExceeds(last_notice, GetCurrentTimestamp(),
									   tsnap_progress_notice_interval))
		{
			last_notice = GetCurrentTimestamp();
			ereport(NOTICE,
					(errmsg("snapshot of table \"%s\" in progress: " INT64_FORMAT " rows, " INT64_FORMAT " bytes written",
							get_rel_name(relid), rows_done, bytes_done)));
		}
		ConditionVariableTimedSleep(&tsnap_jobs->cv, Min(1000, DeadlockTimeout),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return state;
}

static SlotState submit_and_wait(const TsnapBuildRequest *request,
								 bool same_role_only,
								 TsnapSnapshotResult *result,
								 TsnapFlatError *error, Oid *served_as);

/*
 * Submit a request (or join an equal one) and wait for its result.  The wait
 * ends with the result, with the worker's error re-raised here, or with the
 * caller's own cancel or statement_timeout, which leaves the request.
 */
void
tsnap_jobs_run(const TsnapBuildRequest *request, TsnapSnapshotResult *result)
{
	bool		same_role_only = false;
	SlotState	state;
	TsnapFlatError error;

	/*
	 * A request shared with another role ran that role's part as that role:
	 * code planning ran (a table owner's function) may have put what only
	 * that role can read into its error.  So another role's error is never
	 * shown; the caller asks again, sharing only with its own role.
	 */
	for (;;)
	{
		Oid			served_as;

		state = submit_and_wait(request, same_role_only, result, &error,
								&served_as);
		if (state != SLOT_FAILED || served_as == request->roleid || same_role_only)
			break;
		same_role_only = true;
	}

	if (state == SLOT_FAILED)
		tsnap_error_throw(&error);
}

/*
 * One submission (or join) and wait, for tsnap_queue_run.
 */
static SlotState
submit_and_wait(const TsnapBuildRequest *request, bool same_role_only,
				TsnapSnapshotResult *result, TsnapFlatError *error,
				Oid *served_as)
{
	int			idx;
	uint64		generation;
	volatile SlotState state = SLOT_QUEUED;

	for (;;)
	{
		LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
		idx = find_slot(request, same_role_only);
		generation = idx >= 0 ? tsnap_jobs->slots[idx].generation : 0;
		LWLockRelease(tsnap_jobs->lock);
		if (idx != SLOT_RETRY)
			break;
		/* a worker publishes its version within moments */
		ConditionVariableTimedSleep(&tsnap_jobs->cv, 10, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (idx < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("too many tsnap snapshot requests at once")));

	PG_TRY();
	{
		state = wait_for(idx, generation, request->dboid, request->relid,
						 result, error, served_as);
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		leave_slot(idx, generation);
	}
	PG_END_TRY();
	return state;
}
