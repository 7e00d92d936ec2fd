/*-------------------------------------------------------------------------
 *
 * request_queue.c
 *	  The shared-memory queue between callers of tsnap_snapshot and the
 *	  workers that build snapshots.
 *
 * A caller that misses puts a request in a slot, makes sure a worker will
 * serve it, and sleeps on the queue's condition variable until the slot is
 * DONE or FAILED.  Requests travel through shared memory, not a catalog row,
 * because a worker cannot see rows of the caller's uncommitted transaction.
 *
 * Single flight: a caller joins a QUEUED or RUNNING request for the same
 * table in the same database instead of adding its own, so concurrent
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
 * Workers: at most tsnap.max_workers run at once, each bound to a database
 * and serving one request.  A worker takes the oldest QUEUED request of its
 * database, and a free place in the pool goes to the database of the oldest
 * QUEUED request that has no worker yet, so requests are served in arrival
 * order across the cluster.  Waiting callers re-check every second (and
 * whenever a worker finishes or exits) and launch a worker when one is
 * needed and the pool has room.
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
 * it wait on her behalf (worker.c checks every 100 ms); no caller joins it
 * then.  Once it streams rows it finishes and is recorded, so the work
 * serves later calls.
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

#include "settings.h"
#include "snapshot.h"

#define TSNAP_WORKERS_LIMIT 64	/* upper bound of tsnap.max_workers */

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_QUEUED,
	SLOT_RUNNING,
	SLOT_DONE,
	SLOT_FAILED
} SlotState;

typedef struct RequestSlot
{
	SlotState	state;
	uint64		generation;		/* tells reuses of the slot apart */
	int			waiters;
	int			worker;			/* index in workers[], or -1 */
	bool		preparing;		/* RUNNING, not yet streaming rows */
	int64		version_seen;	/* TSNAP_VERSION_UNKNOWN, _PENDING, or the
								 * version the worker scans */
	TsnapRequestParams params;
	TsnapSnapshotResult result;
	TsnapRequestError error;
} RequestSlot;

typedef struct WorkerEntry
{
	bool		in_use;
	bool		started;
	bool		finished;		/* its one request is answered */
	pid_t		pid;
	Oid			dboid;
	int			slot;			/* request being served, or -1 */
	char		upload_key[TSNAP_KEY_MAX];	/* key being uploaded, or "" */
} WorkerEntry;

typedef struct TsnapQueue
{
	LWLock	   *lock;
	ConditionVariable cv;
	uint64		next_generation;
	int			nslots;
	WorkerEntry workers[TSNAP_WORKERS_LIMIT];
	RequestSlot slots[FLEXIBLE_ARRAY_MEMBER];
} TsnapQueue;

static TsnapQueue *queue = NULL;
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
	return add_size(offsetof(TsnapQueue, slots),
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
	queue = ShmemInitStruct("tsnap request queue", queue_size(), &found);
	if (!found)
	{
		int			i;

		memset(queue, 0, queue_size());
		queue->lock = &(GetNamedLWLockTranche("tsnap"))->lock;
		ConditionVariableInit(&queue->cv);
		queue->nslots = queue_slots();
		for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
			queue->workers[i].slot = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the shared memory hooks; from _PG_init while preloading only.
 */
void
tsnap_queue_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/* Is the queue there, that is, was tsnap preloaded? */
bool
tsnap_queue_available(void)
{
	return queue != NULL;
}

/*
 * Under the lock: a slot this request can join (counted as one more waiter),
 * else a free slot set up for it, else -1.
 */
#define SLOT_RETRY	(-2)

static pg_noinline int
find_slot(const TsnapRequestParams *params, bool same_role_only)
{
	int			free_slot = -1;
	bool		version_pending = false;
	int			i;

	for (i = 0; i < queue->nslots; i++)
	{
		RequestSlot *s = &queue->slots[i];

		if (s->state == SLOT_FREE)
		{
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (s->params.dboid != params->dboid ||
			s->params.relid != params->relid ||
			(same_role_only && s->params.roleid != params->roleid) ||
			s->params.max_bytes != params->max_bytes ||
			s->params.stale_key[0] != '\0' || params->stale_key[0] != '\0')
			continue;
		if (s->state == SLOT_RUNNING && s->preparing && s->waiters <= 0)
			continue;			/* abandoned: being cancelled */
		if (s->state == SLOT_QUEUED ||
			(s->state == SLOT_RUNNING &&
			 (s->version_seen == TSNAP_VERSION_UNKNOWN ||
			  s->version_seen >= params->min_version)))
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
		RequestSlot *s = &queue->slots[free_slot];

		memset(s, 0, sizeof(*s));
		s->state = SLOT_QUEUED;
		s->generation = ++queue->next_generation;
		s->waiters = 1;
		s->worker = -1;
		s->version_seen = TSNAP_VERSION_UNKNOWN;
		s->params = *params;
	}
	return free_slot;
}

/*
 * Under the lock: does dboid have more QUEUED or RUNNING requests than
 * workers bound to it?
 */
static bool
database_needs_worker(Oid dboid)
{
	int			pending = 0;
	int			serving = 0;
	int			i;

	for (i = 0; i < queue->nslots; i++)
	{
		SlotState	st = queue->slots[i].state;

		if ((st == SLOT_QUEUED || st == SLOT_RUNNING) &&
			queue->slots[i].params.dboid == dboid)
			pending++;
	}
	/* a worker that answered its request only does housekeeping now */
	for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
		if (queue->workers[i].in_use && !queue->workers[i].finished &&
			queue->workers[i].dboid == dboid)
			serving++;
	return pending > serving;
}

/*
 * If the pool has room, launch a worker for the database of the oldest
 * QUEUED request that has none, whichever database the caller is in.
 * Raises 53000 if a worker for the caller's own database was needed and
 * could not be started while none serves it.
 */
static void
ensure_worker(Oid my_dboid)
{
	RequestSlot *oldest = NULL;
	Oid			dboid;
	int			entry = -1;
	int			i;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (i = 0; i < tsnap_max_workers && i < TSNAP_WORKERS_LIMIT; i++)
		if (!queue->workers[i].in_use)
		{
			entry = i;
			break;
		}
	for (i = 0; entry >= 0 && i < queue->nslots; i++)
	{
		RequestSlot *s = &queue->slots[i];

		if (s->state == SLOT_QUEUED &&
			(oldest == NULL || s->generation < oldest->generation) &&
			database_needs_worker(s->params.dboid))
			oldest = s;
	}
	if (oldest == NULL)
	{
		LWLockRelease(queue->lock);
		return;
	}
	dboid = oldest->params.dboid;
	queue->workers[entry].in_use = true;
	queue->workers[entry].started = false;
	queue->workers[entry].finished = false;
	queue->workers[entry].pid = 0;
	queue->workers[entry].dboid = dboid;
	queue->workers[entry].slot = -1;
	queue->workers[entry].upload_key[0] = '\0';
	LWLockRelease(queue->lock);

	if (tsnap_worker_launch(entry))
		return;

	/* it never ran: give the entry back */
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (!queue->workers[entry].started)
		queue->workers[entry].in_use = false;
	LWLockRelease(queue->lock);
	if (dboid == my_dboid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a tsnap background worker"),
				 errhint("Raise max_worker_processes; tsnap needs up to tsnap.max_workers of them.")));
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
	RequestSlot *s = &queue->slots[idx];

	return (s->state != SLOT_FREE && s->generation == generation) ? s : NULL;
}

static void
leave_slot(int idx, uint64 generation)
{
	RequestSlot *s;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	s = my_slot(idx, generation);
	if (s && --s->waiters <= 0 && s->state != SLOT_RUNNING)
		s->state = SLOT_FREE;
	LWLockRelease(queue->lock);
}

/*
 * Sleep until the request in slot idx is DONE or FAILED; copy out what it
 * produced.  Every second (or deadlock_timeout, if shorter), make sure a
 * worker will take it; once deadlock_timeout has passed, raise 40P01 if
 * its worker waits for this backend.
 */
static SlotState
wait_for(int idx, uint64 generation, Oid dboid, Oid relid,
		 TsnapSnapshotResult *result, TsnapRequestError *error,
		 Oid *served_as)
{
	SlotState	state;
	TimestampTz started = GetCurrentTimestamp();

	ConditionVariablePrepareToSleep(&queue->cv);
	for (;;)
	{
		RequestSlot *s;
		int			worker_pid = 0;

		LWLockAcquire(queue->lock, LW_SHARED);
		s = my_slot(idx, generation);
		if (s == NULL)
			elog(ERROR, "tsnap request slot %d was lost", idx);
		state = s->state;
		*served_as = s->params.roleid;
		if (state == SLOT_DONE)
			*result = s->result;
		else if (state == SLOT_FAILED)
			*error = s->error;
		else if (state == SLOT_RUNNING && s->worker >= 0 && s->preparing)
			worker_pid = queue->workers[s->worker].pid;
		LWLockRelease(queue->lock);

		if (state == SLOT_DONE || state == SLOT_FAILED)
			break;
		if (state == SLOT_QUEUED)
			ensure_worker(dboid);
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
		ConditionVariableTimedSleep(&queue->cv, Min(1000, DeadlockTimeout),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return state;
}

static SlotState submit_and_wait(const TsnapRequestParams *params,
								 bool same_role_only,
								 TsnapSnapshotResult *result,
								 TsnapRequestError *error, Oid *served_as);

/*
 * Submit a request (or join an equal one) and wait for its result.  The wait
 * ends with the result, with the worker's error re-raised here, or with the
 * caller's own cancel or statement_timeout, which leaves the request.
 */
void
tsnap_queue_run(const TsnapRequestParams *params, TsnapSnapshotResult *result)
{
	bool		same_role_only = false;
	SlotState	state;
	TsnapRequestError error;

	/*
	 * A request shared with another role ran that role's part as that role:
	 * code planning ran (a table owner's function) may have put what only
	 * that role can read into its error.  So another role's error is never
	 * shown; the caller asks again, sharing only with its own role.
	 */
	for (;;)
	{
		Oid			served_as;

		state = submit_and_wait(params, same_role_only, result, &error,
								&served_as);
		if (state != SLOT_FAILED || served_as == params->roleid || same_role_only)
			break;
		same_role_only = true;
	}

	if (state == SLOT_FAILED)
		ereport(ERROR,
				(errcode(error.sqlerrcode),
				 errmsg_internal("%s", error.message),
				 error.detail[0] ? errdetail_internal("%s", error.detail) : 0,
				 error.hint[0] ? errhint("%s", error.hint) : 0));
}

/*
 * One submission (or join) and wait, for tsnap_queue_run.
 */
static SlotState
submit_and_wait(const TsnapRequestParams *params, bool same_role_only,
				TsnapSnapshotResult *result, TsnapRequestError *error,
				Oid *served_as)
{
	int			idx;
	uint64		generation;
	volatile SlotState state = SLOT_QUEUED;

	for (;;)
	{
		LWLockAcquire(queue->lock, LW_EXCLUSIVE);
		idx = find_slot(params, same_role_only);
		generation = idx >= 0 ? queue->slots[idx].generation : 0;
		LWLockRelease(queue->lock);
		if (idx != SLOT_RETRY)
			break;
		/* a worker publishes its version within moments */
		ConditionVariableTimedSleep(&queue->cv, 10, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (idx < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("too many tsnap snapshot requests at once")));

	PG_TRY();
	{
		state = wait_for(idx, generation, params->dboid, params->relid,
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

/*
 * Worker side: bind worker entry w to its process and return its database.
 */
Oid
tsnap_queue_worker_database(int worker, pid_t pid)
{
	Oid			dboid;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	queue->workers[worker].started = true;
	queue->workers[worker].pid = pid;
	dboid = queue->workers[worker].dboid;
	LWLockRelease(queue->lock);
	return dboid;
}

/*
 * Worker side: take the oldest QUEUED request of the worker's database.  If
 * there is none, the worker retires in the same critical section and false
 * is returned.
 */
bool
tsnap_queue_take(int worker, TsnapRequestParams *params)
{
	WorkerEntry *w = &queue->workers[worker];
	RequestSlot *best = NULL;
	int			i;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (i = 0; i < queue->nslots; i++)
	{
		RequestSlot *s = &queue->slots[i];

		if (s->state == SLOT_QUEUED && s->params.dboid == w->dboid &&
			(best == NULL || s->generation < best->generation))
			best = s;
	}
	if (best == NULL)
	{
		w->in_use = false;
		w->slot = -1;
		LWLockRelease(queue->lock);
		return false;
	}
	best->state = SLOT_RUNNING;
	best->preparing = true;
	best->worker = worker;
	w->slot = best - queue->slots;
	*params = best->params;
	LWLockRelease(queue->lock);
	return true;
}

/*
 * Worker side, from a timeout handler: has every caller left the request
 * while it is still preparing?  Reads without the lock (a handler must not
 * take it); a stale answer is corrected at the next check.  Once true, it
 * stays true, since nobody joins such a request.
 */
bool
tsnap_queue_abandoned(int worker)
{
	volatile RequestSlot *s;
	int			slot = ((volatile WorkerEntry *) &queue->workers[worker])->slot;

	if (slot < 0)
		return false;
	s = &queue->slots[slot];
	return s->preparing && s->waiters <= 0;
}

/*
 * Worker side: the request starts streaming rows and will no longer be
 * cancelled when its callers leave.  Returns false if they have all left
 * already; the worker then gives the request up.
 */
bool
tsnap_queue_begin_streaming(int worker)
{
	int			slot;
	bool		wanted = true;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	slot = queue->workers[worker].slot;
	if (slot >= 0)
	{
		wanted = queue->slots[slot].waiters > 0;
		if (wanted)
			queue->slots[slot].preparing = false;
	}
	LWLockRelease(queue->lock);
	return wanted;
}

/* Worker side: the version the worker's snapshot sees, for joiners. */
void
tsnap_queue_publish_version(int worker, int64 version)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (queue->workers[worker].slot >= 0)
		queue->slots[queue->workers[worker].slot].version_seen = version;
	LWLockRelease(queue->lock);
	if (version != TSNAP_VERSION_PENDING)
		ConditionVariableBroadcast(&queue->cv);
}

/*
 * Worker side: announce the key about to be uploaded ("" when done), so
 * that the sweep of abandoned uploads leaves it alone.
 */
void
tsnap_queue_set_upload_key(int worker, const char *key)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	strlcpy(queue->workers[worker].upload_key, key, TSNAP_KEY_MAX);
	LWLockRelease(queue->lock);
}

/* Is some live worker uploading key? */
bool
tsnap_queue_key_in_progress(const char *key)
{
	bool		found = false;
	int			i;

	LWLockAcquire(queue->lock, LW_SHARED);
	for (i = 0; i < TSNAP_WORKERS_LIMIT && !found; i++)
		found = queue->workers[i].in_use &&
			strcmp(queue->workers[i].upload_key, key) == 0;
	LWLockRelease(queue->lock);
	return found;
}

/*
 * Under the lock: end the worker's current request with a result or an
 * error, or free it if nobody waits any more.
 */
static void
finish_locked(WorkerEntry *w, const TsnapSnapshotResult *result,
			  const TsnapRequestError *error)
{
	RequestSlot *s;

	w->upload_key[0] = '\0';
	if (w->slot < 0)
		return;
	s = &queue->slots[w->slot];
	w->slot = -1;
	s->worker = -1;
	if (s->waiters <= 0)
		s->state = SLOT_FREE;
	else if (error)
	{
		s->error = *error;
		s->state = SLOT_FAILED;
	}
	else
	{
		s->result = *result;
		s->state = SLOT_DONE;
	}
}

void
tsnap_queue_finish(int worker, const TsnapSnapshotResult *result,
				   const TsnapRequestError *error)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	finish_locked(&queue->workers[worker], result, error);
	queue->workers[worker].finished = true;
	LWLockRelease(queue->lock);
	ConditionVariableBroadcast(&queue->cv);
}

/*
 * Worker side, on any exit (before_shmem_exit): fail the request in hand,
 * which only happens when the worker dies with FATAL (terminate, shutdown,
 * a dropped database), and give the entry back.
 */
void
tsnap_queue_worker_exit(int worker)
{
	WorkerEntry *w = &queue->workers[worker];

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	if (w->in_use && w->pid == MyProcPid)
	{
		TsnapRequestError error;

		memset(&error, 0, sizeof(error));
		error.sqlerrcode = ERRCODE_ADMIN_SHUTDOWN;
		strlcpy(error.message, "tsnap worker exited before the snapshot was finished",
				sizeof(error.message));
		strlcpy(error.hint, "Try again; the server log may say why the worker stopped.",
				sizeof(error.hint));
		finish_locked(w, NULL, &error);
		w->in_use = false;
	}
	LWLockRelease(queue->lock);
	ConditionVariableBroadcast(&queue->cv);
}
