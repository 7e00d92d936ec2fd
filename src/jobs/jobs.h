/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  Requests for snapshots and the workers that serve them: the callers'
 *	  side of the shared-memory request slots, with single flight and waits
 *	  (queue.c); the pool of workers, which launches them and through which
 *	  they take and finish requests and publish the keys they write
 *	  (pool.c); and the worker's main loop (worker.c).
 *
 * This folder calls common/, build/ (a worker builds) and ledger/ (a
 * worker's housekeeping).  snapshot/ calls it.
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
						   TsnapSnapshotResult *result);

/* pool.c */
extern bool tsnap_jobs_key_in_flight(const char *key);

/* worker.c */
extern PGDLLEXPORT void tsnap_worker_main(Datum arg);

#endif							/* TSNAP_JOBS_H */
