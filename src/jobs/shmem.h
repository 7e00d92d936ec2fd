/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The shared memory of jobs/, private to its files: request slots and
 *	  worker entries under one LWLock, and one condition variable that every
 *	  change a waiter may care about is broadcast on.  queue.c sets it up
 *	  and owns the callers' side; pool.c owns the workers' side.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_JOBS_SHMEM_H
#define TSNAP_JOBS_SHMEM_H

#include "storage/condition_variable.h"
#include "storage/lwlock.h"

#include "common/common.h"
#include "jobs/jobs.h"
#include "settings.h"

/*
 * How long a waiter or worker sleeps between checks of things nobody
 * signals (a worker that could be launched, callers that left), in ms.
 */
#define TSNAP_CHECK_INTERVAL_MS	100

/*
 * version_seen of a request whose worker is taking its snapshot; before
 * that it is TSNAP_VERSION_UNKNOWN, after it the version.
 */
#define TSNAP_VERSION_UNKNOWN	(-1)
#define TSNAP_VERSION_PENDING	(-2)

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
	int64		rows_done;		/* progress of a RUNNING request */
	int64		bytes_done;
	TsnapBuildRequest request;
	TsnapSnapshotResult result;
	TsnapFlatError error;
} RequestSlot;

typedef struct WorkerEntry
{
	bool		in_use;
	bool		started;
	pid_t		pid;
	Oid			dboid;
	int			slot;			/* request being served, or -1 */
	char		upload_key[TSNAP_KEY_SIZE];	/* key being written, or "" */
} WorkerEntry;

/* a worker that answered its request and now does housekeeping */
typedef struct Housekeeper
{
	pid_t		pid;			/* 0 = free */
	Oid			dboid;
} Housekeeper;

typedef struct TsnapJobs
{
	LWLock	   *lock;
	ConditionVariable cv;
	uint64		next_generation;
	int			nslots;
	WorkerEntry workers[TSNAP_WORKERS_LIMIT];
	Housekeeper housekeepers[TSNAP_WORKERS_LIMIT];
	RequestSlot slots[FLEXIBLE_ARRAY_MEMBER];
} TsnapJobs;

extern TsnapJobs *tsnap_jobs;

/* pool.c, for queue.c */
extern void tsnap_pool_ensure_worker(Oid my_dboid);

/* pool.c, for worker.c */
extern Oid	tsnap_pool_bind(int worker, pid_t pid);
extern bool tsnap_pool_take(int worker, TsnapBuildRequest *request);
extern bool tsnap_pool_abandoned(int worker);
extern bool tsnap_pool_begin_streaming(int worker, const char *key);
extern void tsnap_pool_publish_version(int worker, int64 version);
extern void tsnap_pool_report_progress(int worker, int64 rows, int64 bytes);
extern void tsnap_pool_finish(int worker, const TsnapSnapshotResult *result,
							  const TsnapFlatError *error);
extern bool tsnap_pool_begin_housekeeping(Oid dboid);
extern void tsnap_pool_worker_exit(int worker);

#endif							/* TSNAP_JOBS_SHMEM_H */
