/*-------------------------------------------------------------------------
 *
 * shared.c
 *	  The launcher's shared memory: the round under way (its start and its
 *	  databases), the visit under way and what its process reported, and
 *	  whether the object store is out, so that an outage is logged once.
 *
 * The launcher writes the round and starts each visit; the housekeeper or
 * sweeper of that visit reads the round and reports.  Visits are numbered,
 * and a process only reports for the visit that is current, so one the
 * launcher stopped waiting for cannot report for the next.  The outage
 * flag is set and cleared by whichever process saw S3 fail or answer.
 * This area is independent of jobs/' request queue, and lives as long as
 * the postmaster: a launcher restarted after a crash finds the outage
 * state its predecessor left.
 *
 * Locking: one spinlock guards everything; it is held only to copy a few
 * fields, never across a palloc, an ereport or I/O.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "launcher/launcher.h"

typedef struct LauncherShared
{
	slock_t		mutex;
	uint64		next_visit;		/* the last number handed out */

	/* the round under way */
	TimestampTz round_start;
	int			ndboids;		/* -1: too many to hand over */

	/* the visit under way */
	uint64		visit;
	bool		marked;			/* its housekeeper wrote its marks */
	int			swept;			/* its sweeper's result; -1: none */

	/* the object store failed, and has not answered since */
	bool		store_down;

	Oid			dboids[TSNAP_LAUNCHER_MAX_DATABASES];
} LauncherShared;

static LauncherShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(LauncherShared));
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("tsnap launcher", sizeof(LauncherShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(LauncherShared));
		SpinLockInit(&shared->mutex);
		shared->swept = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the shared memory hooks; from _PG_init while preloading only.
 */
void
tsnap_launcher_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * Launcher: a round starts at round_start and visits these databases.
 * More than TSNAP_LAUNCHER_MAX_DATABASES cannot be handed to a sweeper;
 * the round then has none (see tsnap_launcher_round_databases).
 */
void
tsnap_launcher_begin_round(TimestampTz round_start, const Oid *dboids,
						   int ndboids)
{
	SpinLockAcquire(&shared->mutex);
	shared->round_start = round_start;
	if (ndboids > TSNAP_LAUNCHER_MAX_DATABASES)
		shared->ndboids = -1;
	else
	{
		memcpy(shared->dboids, dboids, sizeof(Oid) * ndboids);
		shared->ndboids = ndboids;
	}
	SpinLockRelease(&shared->mutex);
}

/* Launcher: a new visit, of a housekeeper or the sweeper; its number. */
uint64
tsnap_launcher_begin_visit(void)
{
	uint64		visit;

	SpinLockAcquire(&shared->mutex);
	visit = ++shared->next_visit;
	shared->visit = visit;
	shared->marked = false;
	shared->swept = -1;
	SpinLockRelease(&shared->mutex);
	return visit;
}

/* Launcher: did the housekeeper of this visit write its marks? */
bool
tsnap_launcher_visit_marked(uint64 visit)
{
	bool		marked;

	SpinLockAcquire(&shared->mutex);
	marked = shared->visit == visit && shared->marked;
	SpinLockRelease(&shared->mutex);
	return marked;
}

/* Launcher: what the sweeper of this visit reported (-1: nothing). */
int
tsnap_launcher_visit_swept(uint64 visit)
{
	int			swept;

	SpinLockAcquire(&shared->mutex);
	swept = shared->visit == visit ? shared->swept : -1;
	SpinLockRelease(&shared->mutex);
	return swept;
}

/*
 * Housekeeper or sweeper: is this still the visit under way?  If so,
 * *round_start is its round's start.
 */
bool
tsnap_launcher_visit_current(uint64 visit, TimestampTz *round_start)
{
	bool		current;

	SpinLockAcquire(&shared->mutex);
	current = shared->visit == visit;
	*round_start = shared->round_start;
	SpinLockRelease(&shared->mutex);
	return current;
}

/*
 * Sweeper: the round's start and databases (*dboids palloc'd), if visit is
 * still under way; returns their number, or -1 if the visit is over or the
 * round had too many databases to hand over.
 */
int
tsnap_launcher_round_databases(uint64 visit, TimestampTz *round_start,
							   Oid **dboids)
{
	Oid		   *copy = palloc(sizeof(Oid) * TSNAP_LAUNCHER_MAX_DATABASES);
	int			n = -1;

	SpinLockAcquire(&shared->mutex);
	if (shared->visit == visit && shared->ndboids >= 0)
	{
		n = shared->ndboids;
		memcpy(copy, shared->dboids, sizeof(Oid) * n);
		*round_start = shared->round_start;
	}
	SpinLockRelease(&shared->mutex);
	*dboids = copy;
	return n;
}

/* Housekeeper: this visit's marks are written. */
void
tsnap_launcher_report_marked(uint64 visit)
{
	SpinLockAcquire(&shared->mutex);
	if (shared->visit == visit)
		shared->marked = true;
	SpinLockRelease(&shared->mutex);
}

/* Sweeper: what tsnap_orphans_sweep returned. */
void
tsnap_launcher_report_swept(uint64 visit, int swept)
{
	SpinLockAcquire(&shared->mutex);
	if (shared->visit == visit)
		shared->swept = swept;
	SpinLockRelease(&shared->mutex);
}

/*
 * Set whether the object store is out; returns what it was, so that of the
 * processes that see an outage begin or end, exactly one logs it.
 */
bool
tsnap_launcher_set_store_down(bool down)
{
	bool		was_down;

	SpinLockAcquire(&shared->mutex);
	was_down = shared->store_down;
	shared->store_down = down;
	SpinLockRelease(&shared->mutex);
	return was_down;
}
