/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The callers' side of the shared-memory request slots between callers
 *	  of tsnap_snapshot and the workers that build snapshots (pool.c has
 *	  the workers' side; shmem.h the structure).
 *
 * A caller that misses puts a request in a slot (a job), makes sure a
 * worker will serve it, and sleeps on the queue's condition variable until
 * the job is DONE, FAILED or CANCELLED.  Requests travel through shared
 * memory, not a catalog row, because a worker cannot see rows of the
 * caller's uncommitted transaction (history.c records them durably).
 *
 * Asynchronous jobs (tsnap_snapshot_async) are detached: they run whether
 * or not anyone waits, and stay after they end until their slot is needed.
 * tsnap_wait finds a job by id and waits as one more waiter; tsnap_cancel
 * ends a queued job at once and asks a running one's worker to stop.
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "jobs/shmem.h"
#include "settings.h"

TsnapJobs  *tsnap_jobs = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Jobs shared memory holds at once: queued, running and finished ones,
 * and at least one per backend, which waits for one request at a time.
 */
static int
queue_slots(void)
{
	return Max(MaxBackends, tsnap_max_jobs);
}

/* A job to enter: the request, and how. */
typedef struct NewJob
{
	const TsnapBuildRequest *request;
	int64		job_id;			/* 0: the worker gives it one */
	int64		rows_estimate;
	bool		detached;		/* tsnap_snapshot_async's */
	bool		same_role_only; /* join only the caller's role's jobs */
} NewJob;

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
 * Under the lock: a slot this request can join (counted as one more waiter,
 * or made detached for an asynchronous job), else a slot set up for it,
 * else -1.  A slot is free, or holds a finished detached job already
 * recorded that nobody waits for (the one that finished first goes).
 */
#define SLOT_RETRY	(-2)

static pg_noinline int
find_slot(const NewJob *job)
{
	const TsnapBuildRequest *request = job->request;
	int			free_slot = -1;
	int			reusable = -1;
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
		if (SLOT_FINISHED(s->state))
		{
			if (s->recorded && s->waiters <= 0 &&
				(reusable < 0 ||
				 s->finished_at < tsnap_jobs->slots[reusable].finished_at))
				reusable = i;
			continue;
		}
		if (s->request.dboid != request->dboid ||
			s->request.relid != request->relid ||
			(job->same_role_only && s->request.roleid != request->roleid) ||
			s->request.max_bytes != request->max_bytes ||
			s->request.compression != request->compression ||
			s->request.stale_key[0] != '\0' || request->stale_key[0] != '\0' ||
			s->cancel_requested)
			continue;
		if (s->state == SLOT_RUNNING && s->preparing && s->waiters <= 0 &&
			!s->detached)
			continue;			/* abandoned: being cancelled */
		if (s->state == SLOT_QUEUED ||
			(s->state == SLOT_RUNNING &&
			 (s->version_seen == TSNAP_VERSION_UNKNOWN ||
			  s->version_seen >= request->min_version)))
		{
			if (job->detached)
				s->detached = true;
			else
				s->waiters++;
			if (s->job_id == 0)
				s->job_id = job->job_id;
			return i;
		}
		if (s->state == SLOT_RUNNING &&
			s->version_seen == TSNAP_VERSION_PENDING)
			version_pending = true;
	}
	if (version_pending)
		return SLOT_RETRY;
	if (free_slot < 0)
		free_slot = reusable;
	if (free_slot >= 0)
	{
		RequestSlot *s = &tsnap_jobs->slots[free_slot];

		memset(s, 0, sizeof(*s));
		s->state = SLOT_QUEUED;
		s->generation = ++tsnap_jobs->next_generation;
		s->queue_order = s->generation;
		s->job_id = job->job_id;
		s->detached = job->detached;
		s->waiters = job->detached ? 0 : 1;
		s->worker = -1;
		s->version_seen = TSNAP_VERSION_UNKNOWN;
		s->rows_estimate = job->rows_estimate;
		s->requested_at = GetCurrentTimestamp();
		s->request = *request;
	}
	return free_slot;
}

/*
 * Put a job in a slot (or join an equal one); its index, with its
 * generation in *generation.  Raises 53000 when every slot is taken.
 */
static int
enter_job(const NewJob *job, uint64 *generation)
{
	int			idx;

	for (;;)
	{
		LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
		idx = find_slot(job);
		*generation = idx >= 0 ? tsnap_jobs->slots[idx].generation : 0;
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
				 errmsg("too many tsnap snapshot jobs at once"),
				 errdetail("Shared memory holds %d jobs, queued, running or finished and not yet recorded.",
						   tsnap_jobs->nslots),
				 errhint("Raise tsnap.max_jobs, or wait for jobs to finish.")));
	return idx;
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
	if (s && --s->waiters <= 0 && s->state != SLOT_RUNNING && !s->detached)
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
		int			parts_done = 0;

		LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
		s = my_slot(idx, generation);
		if (s == NULL)
			elog(ERROR, "tsnap request slot %d was lost", idx);
		state = s->state;
		*served_as = s->request.roleid;
		if (state == SLOT_DONE)
			*result = s->result;
		else if (state == SLOT_FAILED || state == SLOT_CANCELLED)
			*error = s->error;
		else if (state == SLOT_RUNNING && s->worker >= 0 && s->preparing)
			worker_pid = tsnap_jobs->workers[s->worker].pid;
		else if (state == SLOT_RUNNING)
		{
			streaming = true;
			rows_done = s->rows_done;
			bytes_done = s->bytes_done;
			parts_done = s->parts_done;
		}
		LWLockRelease(tsnap_jobs->lock);

		if (SLOT_FINISHED(state))
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
					(errmsg("snapshot of table \"%s\" in progress: " INT64_FORMAT " rows, " INT64_FORMAT " bytes, %d parts written",
							get_rel_name(relid), rows_done, bytes_done,
							parts_done)));
		}
		ConditionVariableTimedSleep(&tsnap_jobs->cv, Min(1000, DeadlockTimeout),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return state;
}

static SlotState submit_and_wait(const NewJob *job,
								 TsnapSnapshotResult *result,
								 TsnapFlatError *error, Oid *served_as);

/*
 * A job id for a new job, or 0 where none can be taken (a read-only
 * transaction, a database on a release without job history): the worker
 * then gives it one when it records the job.
 */
static int64
new_job_id(void)
{
	if (XactReadOnly || !tsnap_history_available())
		return 0;
	return tsnap_history_next_id();
}

/*
 * Submit a request (or join an equal one) and wait for its result.  The wait
 * ends with the result, with the worker's error re-raised here, or with the
 * caller's own cancel or statement_timeout, which leaves the request.
 */
void
tsnap_jobs_run(const TsnapBuildRequest *request, int64 rows_estimate,
			   TsnapSnapshotResult *result)
{
	NewJob		job;
	SlotState	state;
	TsnapFlatError error;

	job.request = request;
	job.rows_estimate = rows_estimate;
	job.detached = false;
	job.same_role_only = false;
	job.job_id = new_job_id();

	/*
	 * A request shared with another role ran that role's part as that role:
	 * code planning ran (a table owner's function) may have put what only
	 * that role can read into its error.  So another role's error is never
	 * shown; the caller asks again, sharing only with its own role.  So
	 * also when that role cancelled its job: its cancel is not this
	 * caller's.
	 */
	for (;;)
	{
		Oid			served_as;

		state = submit_and_wait(&job, result, &error, &served_as);
		if (state == SLOT_DONE || served_as == request->roleid ||
			job.same_role_only)
			break;
		job.same_role_only = true;
		/* the id may have gone to the other role's job: a new one */
		job.job_id = new_job_id();
	}

	if (state != SLOT_DONE)
		tsnap_error_throw(&error);
}

/*
 * One submission (or join) and wait, for tsnap_jobs_run.
 */
static SlotState
submit_and_wait(const NewJob *job, TsnapSnapshotResult *result,
				TsnapFlatError *error, Oid *served_as)
{
	int			idx;
	uint64		generation;
	volatile SlotState state = SLOT_QUEUED;

	idx = enter_job(job, &generation);
	PG_TRY();
	{
		state = wait_for(idx, generation, job->request->dboid,
						 job->request->relid, result, error, served_as);
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		leave_slot(idx, generation);
	}
	PG_END_TRY();
	return state;
}

/*
 * tsnap_snapshot_async's miss: a detached job, or an equal one of the same
 * role that is queued or running (which becomes detached too); its id.
 * Only the same role's: the job's error goes to whoever waits for it, and
 * another role's must not (see tsnap_jobs_run).
 */
int64
tsnap_jobs_submit(const TsnapBuildRequest *request, int64 rows_estimate)
{
	NewJob		job;
	uint64		generation;
	int			idx;
	int64		job_id;
	RequestSlot copy;

	job.request = request;
	job.rows_estimate = rows_estimate;
	job.detached = true;
	job.same_role_only = true;
	job.job_id = tsnap_history_next_id();

	idx = enter_job(&job, &generation);
	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	copy = tsnap_jobs->slots[idx];
	LWLockRelease(tsnap_jobs->lock);
	job_id = copy.job_id;

	/* a job of its own: durable once this transaction commits */
	if (job_id == job.job_id)
		tsnap_history_record_request(&copy);

	/*
	 * Never raises for want of a worker: the job is queued already, and
	 * the launcher starts it once max_worker_processes has room.
	 */
	tsnap_pool_ensure_worker(InvalidOid);
	return job_id;
}

/* The error a cancelled job ends with. */
void
tsnap_jobs_cancelled_error(int64 job_id, TsnapFlatError *error)
{
	tsnap_error_set(error, ERRCODE_QUERY_CANCELED,
					psprintf(_("tsnap job " INT64_FORMAT " was cancelled"),
							 job_id),
					NULL);
}

/*
 * Under the lock: the slot of job job_id of this database, or -1.
 */
static int
find_job_locked(int64 job_id)
{
	int			i;

	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];

		if (s->state != SLOT_FREE && s->job_id == job_id &&
			s->request.dboid == MyDatabaseId)
			return i;
	}
	return -1;
}

/*
 * May userid see a job: a member of the role that requested it, or
 * allowed to SELECT its table (tsnap.jobs' rule)?
 */
bool
tsnap_jobs_visible(Oid userid, Oid requested_by, Oid relid)
{
	bool		is_missing = false;

	if (has_privs_of_role(userid, requested_by))
		return true;
	return pg_class_aclcheck_ext(relid, userid, ACL_SELECT,
								 &is_missing) == ACLCHECK_OK && !is_missing;
}

static void pg_attribute_noreturn()
raise_no_job(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("tsnap job " INT64_FORMAT " does not exist", job_id),
			 errhint("tsnap.jobs lists the jobs of this database that you may see; finished jobs are kept for tsnap.job_history_max_age.")));
}

/*
 * The answer of a finished job: its key, or its error raised here whole.
 * Another role's error (one only SELECT on the table makes visible) is
 * raised with its SQLSTATE alone, as tsnap_jobs_run never shows it.
 */
static char *
job_answer(const RequestSlot *job)
{
	if (job->state == SLOT_DONE)
		return pstrdup(job->result.key);
	if (job->state == SLOT_FAILED &&
		!has_privs_of_role(GetUserId(), job->request.roleid))
		ereport(ERROR,
				(errcode(job->error.sqlerrcode),
				 errmsg("tsnap job " INT64_FORMAT " failed", job->job_id),
				 errdetail("The job's error is shown only to the role that requested it.")));
	tsnap_error_throw(&job->error);
}

/*
 * Wait for job job_id of this database to finish, for at most timeout_ms
 * (-1: no limit), and copy it into *job.  While it waits it
 * counts as one of the job's waiters, so a synchronous request it waits
 * for is not given up.  A job that shared memory no longer holds is read
 * from tsnap.job_history; one recorded as queued or running there was
 * interrupted by a restart and is waited for until the housekeeping
 * launcher starts it again.
 */
static void
wait_finished(int64 job_id, int64 timeout_ms, RequestSlot *job)
{
	TimestampTz started = GetCurrentTimestamp();
	volatile int idx = -1;
	volatile uint64 generation = 0;
	bool		checked = false;

	PG_TRY();
	{
		ConditionVariablePrepareToSleep(&tsnap_jobs->cv);
		for (;;)
		{
			long		sleep_ms = 1000;

			LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
			if (idx < 0)
			{
				idx = find_job_locked(job_id);
				if (idx >= 0)
				{
					generation = tsnap_jobs->slots[idx].generation;
					tsnap_jobs->slots[idx].waiters++;
				}
			}
			if (idx >= 0)
				*job = tsnap_jobs->slots[idx];
			LWLockRelease(tsnap_jobs->lock);

			if (idx < 0)
			{
				char	   *table_name;

				if (!tsnap_history_lookup(job_id, job, &table_name))
					raise_no_job(job_id);
			}
			if (!checked)
			{
				if (!tsnap_jobs_visible(GetUserId(), job->request.roleid,
										job->request.relid))
					raise_no_job(job_id);
				checked = true;
			}
			if (SLOT_FINISHED(job->state))
				break;

			if (timeout_ms >= 0)
			{
				long		left;

				left = timeout_ms -
					(long) (TimestampDifferenceMilliseconds(started,
															GetCurrentTimestamp()));
				if (left <= 0)
					ereport(ERROR,
							(errcode(ERRCODE_QUERY_CANCELED),
							 errmsg("timed out waiting for tsnap job " INT64_FORMAT,
									job_id),
							 errdetail("The job goes on."),
							 errhint("Call tsnap_wait again to wait for it, or tsnap_cancel to stop it.")));
				sleep_ms = Min(sleep_ms, left);
			}
			if (job->state == SLOT_QUEUED)
				tsnap_pool_ensure_worker(MyDatabaseId);
			ConditionVariableTimedSleep(&tsnap_jobs->cv, sleep_ms,
										PG_WAIT_EXTENSION);
		}
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		if (idx >= 0)
			leave_slot(idx, generation);
	}
	PG_END_TRY();
}

/* tsnap_wait: the key of job job_id, or its error raised here */
char *
tsnap_jobs_wait(int64 job_id, int64 timeout_ms)
{
	RequestSlot *job = palloc(sizeof(RequestSlot));

	wait_finished(job_id, timeout_ms, job);
	return job_answer(job);
}

/*
 * Stop job job_id of this database: a queued job leaves the queue at once;
 * a running one is stopped by its worker within about a second (its upload
 * aborted) and this waits for that.  True if the job ended cancelled,
 * false if it had finished already (or finished before the worker saw the
 * request).  Members of the role that requested the job may cancel it, as
 * pg_cancel_backend allows for a backend.
 */
bool
tsnap_jobs_cancel(int64 job_id)
{
	RequestSlot *job = palloc(sizeof(RequestSlot));
	int			idx;
	uint64		generation = 0;
	char	   *table_name;

	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	idx = find_job_locked(job_id);
	if (idx >= 0)
		*job = tsnap_jobs->slots[idx];
	LWLockRelease(tsnap_jobs->lock);
	if (idx < 0 && !tsnap_history_lookup(job_id, job, &table_name))
		raise_no_job(job_id);
	if (!tsnap_jobs_visible(GetUserId(), job->request.roleid,
							job->request.relid))
		raise_no_job(job_id);
	if (!has_privs_of_role(GetUserId(), job->request.roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to cancel tsnap job " INT64_FORMAT,
						job_id),
				 errdetail("Only members of the role that requested a job may cancel it.")));
	if (SLOT_FINISHED(job->state))
		return false;
	if (idx < 0)
		return tsnap_history_cancel_interrupted(job_id);

	generation = job->generation;
	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (tsnap_jobs->slots[idx].generation == generation &&
		!SLOT_FINISHED(tsnap_jobs->slots[idx].state))
	{
		RequestSlot *s = &tsnap_jobs->slots[idx];

		s->cancel_requested = true;
		if (s->state == SLOT_QUEUED)
			tsnap_pool_end_job_locked(s, NULL, NULL, NULL);
	}
	LWLockRelease(tsnap_jobs->lock);
	ConditionVariableBroadcast(&tsnap_jobs->cv);

	/* a running job: its worker sees the request within a moment */
	wait_finished(job_id, -1, job);
	return job->state == SLOT_CANCELLED;
}

/*
 * The slot of job job_id of this database (of that generation, unless
 * generation is 0), or -1.
 */
int
tsnap_jobs_slot_of(int64 job_id, uint64 generation)
{
	int			idx;

	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	idx = find_job_locked(job_id);
	if (idx >= 0 && generation != 0 &&
		tsnap_jobs->slots[idx].generation != generation)
		idx = -1;
	LWLockRelease(tsnap_jobs->lock);
	return idx;
}

/*
 * Let go of the finished jobs of this database that are recorded, nobody
 * waits for, and finished before cutoff: the history has pruned them, or
 * will.
 */
void
tsnap_jobs_forget(TimestampTz cutoff)
{
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];

		if (SLOT_FINISHED(s->state) && s->recorded && s->waiters <= 0 &&
			s->request.dboid == MyDatabaseId && s->finished_at < cutoff)
			s->state = SLOT_FREE;
	}
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * Queue again a detached job that a restart interrupted (history.c), with
 * the attempts it has had; nothing if it is in shared memory already or
 * no slot is free (the next housekeeping tries again).
 */
void
tsnap_jobs_restore(const RequestSlot *job)
{
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (find_job_locked(job->job_id) < 0)
		for (i = 0; i < tsnap_jobs->nslots; i++)
		{
			RequestSlot *s = &tsnap_jobs->slots[i];

			if (s->state != SLOT_FREE)
				continue;
			memset(s, 0, sizeof(*s));
			s->state = SLOT_QUEUED;
			s->generation = ++tsnap_jobs->next_generation;
			s->queue_order = s->generation;
			s->job_id = job->job_id;
			s->detached = true;
			s->worker = -1;
			s->attempts = job->attempts;
			s->version_seen = TSNAP_VERSION_UNKNOWN;
			s->rows_estimate = job->rows_estimate;
			s->requested_at = job->requested_at;
			s->request = job->request;
			break;
		}
	LWLockRelease(tsnap_jobs->lock);
	tsnap_pool_ensure_worker(InvalidOid);
}

/*
 * Copies of the jobs of this database that shared memory holds, for
 * tsnap.jobs; *n of them, palloc'd.
 */
RequestSlot *
tsnap_jobs_copy_all(int *n)
{
	RequestSlot *out;
	int			count = 0;
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	for (i = 0; i < tsnap_jobs->nslots; i++)
		if (tsnap_jobs->slots[i].state != SLOT_FREE &&
			tsnap_jobs->slots[i].request.dboid == MyDatabaseId)
			count++;
	LWLockRelease(tsnap_jobs->lock);

	/* jobs that arrive in between are left out: they were not there yet */
	out = palloc(sizeof(RequestSlot) * Max(count, 1));
	*n = 0;
	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	for (i = 0; i < tsnap_jobs->nslots && *n < count; i++)
		if (tsnap_jobs->slots[i].state != SLOT_FREE &&
			tsnap_jobs->slots[i].request.dboid == MyDatabaseId)
			out[(*n)++] = tsnap_jobs->slots[i];
	LWLockRelease(tsnap_jobs->lock);
	return out;
}
