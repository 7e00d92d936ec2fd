/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The workers' side of the request slots: the pool of workers, which
 *	  launches them, binds each to its entry, lets it take and finish a
 *	  request and publish what it does, and keeps the registry of keys in
 *	  flight.
 *
 * At most tsnap.max_workers workers run at once, each bound to a database
 * and serving one request.  A worker takes the oldest QUEUED request of its
 * database, and a free place in the pool goes to the database of the oldest
 * QUEUED request that has no worker yet, so requests are served in arrival
 * order across the cluster.  Waiting callers (queue.c) call
 * tsnap_pool_ensure_worker every second, and whenever a worker finishes or
 * exits, to launch a worker when one is needed and the pool has room.
 *
 * A worker publishes the key it writes before its upload begins, and clears
 * it when it finishes; retention skips those keys, in the delete queue and
 * among open uploads alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "jobs/shmem.h"
#include "settings.h"

/*
 * Register a dynamic worker for pool entry worker and wait until it started (or
 * stopped already).  False if it could not be registered or never ran.
 */
static bool
launch_worker(int worker)
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
 * Under the lock: does dboid have more QUEUED or RUNNING requests than
 * workers bound to it?
 */
static bool
database_needs_worker(Oid dboid)
{
	int			pending = 0;
	int			serving = 0;
	int			i;

	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		SlotState	st = tsnap_jobs->slots[i].state;

		if ((st == SLOT_QUEUED || st == SLOT_RUNNING) &&
			tsnap_jobs->slots[i].request.dboid == dboid)
			pending++;
	}
	for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
		if (tsnap_jobs->workers[i].in_use &&
			tsnap_jobs->workers[i].dboid == dboid)
			serving++;
	return pending > serving;
}

/*
 * If the pool has room, launch a worker for the database of the oldest
 * QUEUED request that has none, whichever database the caller is in.
 * Raises 53000 if a worker for the caller's own database was needed and
 * could not be started while none serves it.
 */
void
tsnap_pool_ensure_worker(Oid my_dboid)
{
	RequestSlot *oldest = NULL;
	Oid			dboid;
	int			entry = -1;
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	for (i = 0; i < tsnap_max_workers && i < TSNAP_WORKERS_LIMIT; i++)
		if (!tsnap_jobs->workers[i].in_use)
		{
			entry = i;
			break;
		}
	for (i = 0; entry >= 0 && i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];

		if (s->state == SLOT_QUEUED &&
			(oldest == NULL || s->queue_order < oldest->queue_order) &&
			database_needs_worker(s->request.dboid))
			oldest = s;
	}
	if (oldest == NULL)
	{
		LWLockRelease(tsnap_jobs->lock);
		return;
	}
	dboid = oldest->request.dboid;
	tsnap_jobs->workers[entry].in_use = true;
	tsnap_jobs->workers[entry].started = false;
	tsnap_jobs->workers[entry].pid = 0;
	tsnap_jobs->workers[entry].dboid = dboid;
	tsnap_jobs->workers[entry].slot = -1;
	tsnap_jobs->workers[entry].upload_key[0] = '\0';
	LWLockRelease(tsnap_jobs->lock);

	if (launch_worker(entry))
		return;

	/* it never ran: give the entry back */
	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (!tsnap_jobs->workers[entry].started)
		tsnap_jobs->workers[entry].in_use = false;
	LWLockRelease(tsnap_jobs->lock);
	if (dboid == my_dboid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a tsnap background worker"),
				 errhint("Raise max_worker_processes; tsnap needs up to twice tsnap.max_workers of them, and two more for its launcher.")));
}

/*
 * Worker side: bind worker entry w to its process and return its database.
 */
Oid
tsnap_pool_bind(int worker, pid_t pid)
{
	Oid			dboid;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	tsnap_jobs->workers[worker].started = true;
	tsnap_jobs->workers[worker].pid = pid;
	dboid = tsnap_jobs->workers[worker].dboid;
	LWLockRelease(tsnap_jobs->lock);
	return dboid;
}

/*
 * Worker side: take the oldest QUEUED request of the worker's database, and
 * copy its slot into *job.  If there is none, the worker retires in the
 * same critical section and false is returned.
 */
bool
tsnap_pool_take(int worker, RequestSlot *job)
{
	WorkerEntry *w = &tsnap_jobs->workers[worker];
	RequestSlot *best = NULL;
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];

		if (s->state == SLOT_QUEUED && s->request.dboid == w->dboid &&
			(best == NULL || s->queue_order < best->queue_order))
			best = s;
	}
	if (best == NULL)
	{
		w->in_use = false;
		w->slot = -1;
		LWLockRelease(tsnap_jobs->lock);
		return false;
	}
	best->state = SLOT_RUNNING;
	best->preparing = true;
	best->worker = worker;
	best->worker_pid = w->pid;
	best->attempts++;
	best->started_at = GetCurrentTimestamp();
	best->rows_done = best->bytes_done = 0;
	best->parts_done = 0;
	w->slot = best - tsnap_jobs->slots;
	*job = *best;
	LWLockRelease(tsnap_jobs->lock);
	return true;
}

/* Worker side: the job id given to the request in hand (see history.c). */
void
tsnap_pool_set_job_id(int worker, int64 job_id)
{
	int			slot;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	slot = tsnap_jobs->workers[worker].slot;
	if (slot >= 0 && tsnap_jobs->slots[slot].job_id == 0)
		tsnap_jobs->slots[slot].job_id = job_id;
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * Worker side, from a timeout handler: must the request in hand stop,
 * because tsnap_cancel asked, or because nobody waits for it while it still
 * prepares (waits for a lock, plans)?  A synchronous request stops as soon
 * as its callers have all left; a detached one (nobody need wait for it)
 * once it has prepared for tsnap.job_lock_timeout with nobody waiting,
 * and *gave_up is then set: so no role can hold a worker by locking the
 * table of its own job.  Reads without the lock (a handler must not take
 * it); a stale answer is corrected at the next check.
 */
bool
tsnap_pool_abandoned(int worker, bool *gave_up)
{
	volatile RequestSlot *s;
	int			slot = ((volatile WorkerEntry *) &tsnap_jobs->workers[worker])->slot;

	if (slot < 0)
		return false;
	s = &tsnap_jobs->slots[slot];
	if (s->cancel_requested)
		return true;
	if (!s->preparing || s->waiters > 0)
		return false;
	if (!s->detached)
		return true;
	if (!TimestampDifferenceExceeds(s->started_at, GetCurrentTimestamp(),
									tsnap_job_lock_timeout))
		return false;
	*gave_up = true;
	return true;
}

/*
 * Worker side: the request starts streaming rows to key and will no longer
 * be cancelled when its callers leave.  The key is published first, so
 * that the sweep of abandoned uploads leaves it alone.  Returns false if
 * the callers have all left already; the worker then gives the request up.
 */
bool
tsnap_pool_begin_streaming(int worker, const char *key)
{
	int			slot;
	bool		wanted = true;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	strlcpy(tsnap_jobs->workers[worker].upload_key, key, TSNAP_KEY_SIZE);
	slot = tsnap_jobs->workers[worker].slot;
	if (slot >= 0)
	{
		RequestSlot *s = &tsnap_jobs->slots[slot];

		wanted = (s->waiters > 0 || s->detached) && !s->cancel_requested;
		if (wanted)
			s->preparing = false;
	}
	LWLockRelease(tsnap_jobs->lock);
	return wanted;
}

/* Worker side: the version the worker's snapshot sees, for joiners. */
void
tsnap_pool_publish_version(int worker, int64 version)
{
	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (tsnap_jobs->workers[worker].slot >= 0)
		tsnap_jobs->slots[tsnap_jobs->workers[worker].slot].version_seen = version;
	LWLockRelease(tsnap_jobs->lock);
	if (version != TSNAP_VERSION_PENDING)
		ConditionVariableBroadcast(&tsnap_jobs->cv);
}

/* Worker side: rows, bytes and parts written so far, for waiters. */
void
tsnap_pool_report_progress(int worker, int64 rows, int64 bytes, int parts)
{
	int			slot;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	slot = tsnap_jobs->workers[worker].slot;
	if (slot >= 0)
	{
		tsnap_jobs->slots[slot].rows_done = rows;
		tsnap_jobs->slots[slot].bytes_done = bytes;
		tsnap_jobs->slots[slot].parts_done = parts;
	}
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * Is some live worker writing key?  The registry of keys in flight, for
 * retention (ledger/retention.c).
 */
bool
tsnap_jobs_key_in_flight(const char *key)
{
	bool		found = false;
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_SHARED);
	for (i = 0; i < TSNAP_WORKERS_LIMIT && !found; i++)
		found = tsnap_jobs->workers[i].in_use &&
			strcmp(tsnap_jobs->workers[i].upload_key, key) == 0;
	LWLockRelease(tsnap_jobs->lock);
	return found;
}

/*
 * Under the lock: end the job in slot s with a result or an error (NULL
 * both: the worker died), and copy it into *copy if copy is not NULL.  A
 * job that tsnap_cancel asked to stop ends CANCELLED whatever stopped it;
 * a synchronous job nobody waits for any more is freed; a detached one
 * stays until its end is recorded and its slot needed.
 */
void
tsnap_pool_end_job_locked(RequestSlot *s, const TsnapSnapshotResult *result,
						  const TsnapFlatError *error, RequestSlot *copy)
{
	s->worker = -1;
	s->finished_at = GetCurrentTimestamp();
	if (s->cancel_requested)
	{
		tsnap_jobs_cancelled_error(s->job_id, &s->error);
		s->state = SLOT_CANCELLED;
	}
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
	if (copy)
		*copy = *s;
	if (s->waiters <= 0 && !s->detached)
		s->state = SLOT_FREE;
}

/*
 * Worker side: the request in hand is answered (error NULL) or failed.
 * Copies the job's end into *copy for the record (history.c).  The place in
 * the pool goes back at once: housekeeping holds none.
 */
void
tsnap_pool_finish(int worker, const TsnapSnapshotResult *result,
				  const TsnapFlatError *error, RequestSlot *copy)
{
	WorkerEntry *w = &tsnap_jobs->workers[worker];

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	w->upload_key[0] = '\0';
	if (w->slot >= 0)
		tsnap_pool_end_job_locked(&tsnap_jobs->slots[w->slot], result, error,
								  copy);
	else
		copy->state = SLOT_FREE;
	w->slot = -1;
	w->in_use = false;
	LWLockRelease(tsnap_jobs->lock);
	ConditionVariableBroadcast(&tsnap_jobs->cv);
}

/* The job in slot is recorded in tsnap.job_history; it may be reused. */
void
tsnap_pool_mark_recorded(int slot, uint64 generation)
{
	RequestSlot *s;

	if (slot < 0)
		return;
	s = &tsnap_jobs->slots[slot];
	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (s->generation == generation)
		s->recorded = true;
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * Worker side, once its request is answered: may it do its database's
 * housekeeping?  One worker per database at a time, at most
 * TSNAP_WORKERS_LIMIT databases at once; the others exit at once.  A
 * housekeeper holds no place in the pool, so however long a stalled S3
 * server makes it take, later requests get workers.
 */
bool
tsnap_pool_begin_housekeeping(Oid dboid)
{
	Housekeeper *free_one = NULL;
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
	{
		Housekeeper *h = &tsnap_jobs->housekeepers[i];

		if (h->pid == 0)
		{
			if (free_one == NULL)
				free_one = h;
		}
		else if (h->dboid == dboid)
		{
			free_one = NULL;
			break;
		}
	}
	if (free_one)
	{
		free_one->pid = MyProcPid;
		free_one->dboid = dboid;
	}
	LWLockRelease(tsnap_jobs->lock);
	return free_one != NULL;
}

/*
 * Under the lock: fail the queued jobs of database dboid, which a worker
 * could not connect to (dropped, or refusing connections); their end cannot
 * be recorded there, so they may leave shared memory.
 */
static void
fail_unreachable_locked(Oid dboid)
{
	int			i;

	for (i = 0; i < tsnap_jobs->nslots; i++)
	{
		RequestSlot *s = &tsnap_jobs->slots[i];
		TsnapFlatError error;

		if (s->state != SLOT_QUEUED || s->request.dboid != dboid)
			continue;
		tsnap_error_set(&error, ERRCODE_UNDEFINED_DATABASE,
						psprintf(_("tsnap worker could not connect to database with OID %u"),
								 dboid),
						_("The database was dropped, or refuses connections."));
		tsnap_pool_end_job_locked(s, NULL, &error, NULL);
		s->recorded = true;
	}
}

/*
 * Worker side, on any exit (before_shmem_exit): the worker dies with a
 * request in hand only by FATAL (terminate, shutdown, a dropped database,
 * or a cancel its request's code held out against).  The job goes back to
 * the queue for another attempt, up to tsnap.job_max_attempts, unless it
 * was cancelled or nobody wants it any more.  A worker that could not
 * connect to its database (and was not told to die) fails that database's
 * queued jobs, which would otherwise launch worker after worker.  Then give
 * back the worker's entry and its housekeeping.
 */
void
tsnap_pool_worker_exit(int worker, bool connected)
{
	WorkerEntry *w = &tsnap_jobs->workers[worker];
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	if (w->in_use && w->pid == MyProcPid)
	{
		w->upload_key[0] = '\0';
		if (!connected && !ProcDiePending)
			fail_unreachable_locked(w->dboid);
		if (w->slot >= 0)
		{
			RequestSlot *s = &tsnap_jobs->slots[w->slot];

			if (!s->cancel_requested && (s->waiters > 0 || s->detached) &&
				s->attempts < tsnap_job_max_attempts)
			{
				s->state = SLOT_QUEUED;
				s->worker = -1;
				s->preparing = false;
				s->version_seen = TSNAP_VERSION_UNKNOWN;
				/* joins the queue at its end, as a new arrival would */
				s->queue_order = ++tsnap_jobs->next_generation;
				s->recorded = false;
			}
			else
			{
				TsnapFlatError error;

				tsnap_error_set(&error, ERRCODE_ADMIN_SHUTDOWN,
								_("tsnap worker exited before the snapshot was finished"),
								psprintf(_("The job was tried %d times (tsnap.job_max_attempts); the server log may say why its workers stopped."),
										 s->attempts));
				tsnap_pool_end_job_locked(s, NULL, &error, NULL);
			}
		}
		w->slot = -1;
		w->in_use = false;
	}
	for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
		if (tsnap_jobs->housekeepers[i].pid == MyProcPid)
			tsnap_jobs->housekeepers[i].pid = 0;
	LWLockRelease(tsnap_jobs->lock);
	ConditionVariableBroadcast(&tsnap_jobs->cv);
}

/*
 * For the launcher: launch workers for queued jobs while the pool has
 * room, so that jobs whose callers left (or never waited) still run.
 */
void
tsnap_jobs_start_queued(void)
{
	tsnap_pool_ensure_worker(InvalidOid);
}

static void
end_housekeeping(int code, Datum arg)
{
	int			i;

	LWLockAcquire(tsnap_jobs->lock, LW_EXCLUSIVE);
	for (i = 0; i < TSNAP_WORKERS_LIMIT; i++)
		if (tsnap_jobs->housekeepers[i].pid == MyProcPid)
			tsnap_jobs->housekeepers[i].pid = 0;
	LWLockRelease(tsnap_jobs->lock);
}

/*
 * For a housekeeper that is not a pool worker: the database's
 * housekeeping, given back when the process exits.
 */
bool
tsnap_jobs_begin_housekeeping(Oid dboid)
{
	if (!tsnap_pool_begin_housekeeping(dboid))
		return false;
	before_shmem_exit(end_housekeeping, (Datum) 0);
	return true;
}
