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

#include "datatype/timestamp.h"
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
	SLOT_FAILED,
	SLOT_CANCELLED
} SlotState;

#define SLOT_FINISHED(st) \
	((st) == SLOT_DONE || (st) == SLOT_FAILED || (st) == SLOT_CANCELLED)

/*
 * A job: one snapshot request, with its waiters.  A synchronous request
 * (tsnap_snapshot) lives as long as someone waits for it; a detached one
 * (tsnap_snapshot_async, or any request an async call joined) runs whether
 * or not anyone waits, and once finished stays until its slot is needed
 * again, so that tsnap_wait and tsnap.jobs see its end at once;
 * tsnap.job_history (history.c) keeps it after that.
 */
typedef struct RequestSlot
{
	SlotState	state;
	uint64		generation;		/* tells reuses of the slot apart */
	uint64		queue_order;	/* place in the queue: arrival, or retry */
	int64		job_id;			/* 0 until one is assigned */
	int			waiters;
	int			worker;			/* index in workers[], or -1 */
	pid_t		worker_pid;		/* of the last worker that ran it */
	bool		detached;		/* runs without waiters (see above) */
	bool		cancel_requested;	/* by tsnap_cancel */
	bool		recorded;		/* its end is in tsnap.job_history */
	bool		preparing;		/* RUNNING, not yet streaming rows */
	int			attempts;		/* workers that have taken it */
	int64		version_seen;	/* TSNAP_VERSION_UNKNOWN, _PENDING, or the
								 * version the worker scans */
	int64		rows_done;		/* progress of a RUNNING request */
	int64		bytes_done;
	int			parts_done;
	int64		rows_estimate;	/* from the planner's statistics */
	TimestampTz requested_at;
	TimestampTz started_at;
	TimestampTz finished_at;
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

/* queue.c, for pool.c */
extern void tsnap_jobs_cancelled_error(int64 job_id, TsnapFlatError *error);

/* history.c, for worker.c and queue.c */
extern bool tsnap_history_available(void);
extern int64 tsnap_history_next_id(void);
extern void tsnap_history_record(const RequestSlot *job);
extern void tsnap_history_record_request(const RequestSlot *job);
extern bool tsnap_history_lookup(int64 job_id, RequestSlot *job,
								 char **table_name);
extern bool tsnap_history_cancel_interrupted(int64 job_id);
extern void tsnap_history_scan(void (*visit) (RequestSlot *job,
											  char *table_name, void *arg),
							   void *arg);

/* queue.c, for history.c and jobs_sql.c */
extern RequestSlot *tsnap_jobs_copy_all(int *n);
extern bool tsnap_jobs_visible(Oid userid, Oid requested_by, Oid relid);
extern int	tsnap_jobs_slot_of(int64 job_id, uint64 generation);
extern void tsnap_jobs_restore(const RequestSlot *job);
extern void tsnap_jobs_forget(TimestampTz cutoff);
extern const char *tsnap_jobs_state_name(int state);

/* history.c, for jobs_sql.c: a job's columns, as the history holds them */
#define TSNAP_JOB_COLUMNS	21
extern void tsnap_jobs_columns(const RequestSlot *job, const char *table_name,
							   Datum *values, bool *nulls);
extern char *tsnap_jobs_table_name(Oid relid);

/* pool.c, for queue.c */
extern void tsnap_pool_ensure_worker(Oid my_dboid);

/* pool.c, for worker.c */
extern Oid	tsnap_pool_bind(int worker, pid_t pid);
extern bool tsnap_pool_take(int worker, RequestSlot *job);
extern void tsnap_pool_set_job_id(int worker, int64 job_id);
extern bool tsnap_pool_abandoned(int worker, bool *gave_up);
extern bool tsnap_pool_begin_streaming(int worker, const char *key);
extern void tsnap_pool_publish_version(int worker, int64 version);
extern void tsnap_pool_report_progress(int worker, int64 rows, int64 bytes,
									   int parts);
extern void tsnap_pool_finish(int worker, const TsnapSnapshotResult *result,
							  const TsnapFlatError *error, RequestSlot *copy);
extern void tsnap_pool_mark_recorded(int slot, uint64 generation);

/* pool.c, for queue.c */
extern void tsnap_pool_end_job_locked(RequestSlot *s,
									  const TsnapSnapshotResult *result,
									  const TsnapFlatError *error,
									  RequestSlot *copy);
extern bool tsnap_pool_begin_housekeeping(Oid dboid);
extern void tsnap_pool_worker_exit(int worker, bool connected);

#endif							/* TSNAP_JOBS_SHMEM_H */
