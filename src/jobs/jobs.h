/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  Snapshot jobs and the workers that serve them: the callers' side of
 *	  the shared-memory jobs, with single flight, waits, asynchronous jobs
 *	  and cancel (queue.c); the pool of workers, which launches them and
 *	  through which they take and finish jobs and publish the keys they
 *	  write (pool.c); the worker's main loop and a database's housekeeping
 *	  steps (worker.c); the durable record of jobs, tsnap.job_history and
 *	  tsnap.job_requests, with restarts after a crash and pruning
 *	  (history.c); and the SQL functions tsnap_wait, tsnap_cancel and
 *	  tsnap.job_list (jobs_sql.c).
 *
 * This folder calls common/, build/ (a worker builds) and ledger/ (a
 * worker's housekeeping).  snapshot/ and launcher/ call it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_JOBS_H
#define TSNAP_JOBS_H

#include "fmgr.h"

#include "build/build.h"
#include "ledger/ledger.h"

/* queue.c */
extern void tsnap_jobs_request_shmem(void);
extern bool tsnap_jobs_available(void);
extern void tsnap_jobs_run(const TsnapBuildRequest *request,
						   int64 rows_estimate, TsnapSnapshotResult *result);
extern int64 tsnap_jobs_submit(const TsnapBuildRequest *request,
							   int64 rows_estimate);
extern char *tsnap_jobs_wait(int64 job_id, int64 timeout_ms);
extern bool tsnap_jobs_cancel(int64 job_id);

/* history.c */
extern int64 tsnap_jobs_record_hit(const TsnapBuildRequest *request,
								   const TsnapSnapshotResult *hit);

/* pool.c */
extern bool tsnap_jobs_key_in_flight(const char *key);

/*
 * pool.c, for the launcher: launch workers for queued jobs of any database
 * while the pool has room (never raises for want of a worker); and the
 * housekeeping of a database, one process at a time, released at exit
 */
extern void tsnap_jobs_start_queued(void);
extern bool tsnap_jobs_begin_housekeeping(Oid dboid);

/*
 * history.c, for a database's housekeeper, outside any transaction:
 * restart jobs that a crash or restart interrupted, and prune the history
 * of finished jobs older than tsnap.job_history_max_age
 */
extern void tsnap_jobs_maintain(void);

/* worker.c */
extern PGDLLEXPORT void tsnap_worker_main(Datum arg);

/*
 * worker.c: a database's housekeeping steps (the upload sweep, retention,
 * the queued deletes, the jobs' history), each a unit of work for a
 * caught runner, which the worker runs after its request and the
 * launcher's housekeeper every tsnap.housekeeping_interval
 */
extern void tsnap_jobs_step_sweep_uploads(void *arg);
extern void tsnap_jobs_step_retention(void *arg);
extern void tsnap_jobs_step_delete_pending(void *arg);
extern void tsnap_jobs_step_maintain(void *arg);

#endif							/* TSNAP_JOBS_H */
