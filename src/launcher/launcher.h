/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The housekeeping launcher: a static background worker that starts
 *	  queued jobs every second and, every tsnap.housekeeping_interval, visits
 *	  each database with a short-lived housekeeper, then sweeps the objects
 *	  no database records (launcher.c); the housekeeper (housekeeper.c); the
 *	  sweeper (sweeper.c); and the shared memory through which the launcher
 *	  hands them the round and they report back, with the state of an
 *	  object store outage (shared.c); and the steps they run, whose
 *	  failures are logged without ending the process (steps.c).
 *
 * This folder calls jobs/ (queued jobs, a database's housekeeping, keys in
 * flight), ledger/ (retention, deletes, the sweeps, orphans), common/ and
 * settings.  Only src/tsnap.c calls it, from _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_LAUNCHER_H
#define TSNAP_LAUNCHER_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/elog.h"

/* launcher.c, for _PG_init while preloading */
extern void tsnap_launcher_register(void);

/* the processes' entry points */
extern PGDLLEXPORT void tsnap_launcher_main(Datum arg);
extern PGDLLEXPORT void tsnap_housekeeper_main(Datum arg);
extern PGDLLEXPORT void tsnap_sweeper_main(Datum arg);

/*
 * Private to launcher/ from here on.
 *
 * shared.c: the launcher's shared memory.  A round publishes its start and
 * its databases; each visit (one housekeeper, or the sweeper) has a number,
 * which the launcher passes in bgw_extra, so that a process that outlived
 * its visit (the launcher gave up waiting) cannot report for a later one.
 */

/* databases a round can hand its sweeper; beyond it, no sweep */
#define TSNAP_LAUNCHER_MAX_DATABASES	8192

extern void tsnap_launcher_request_shmem(void);
extern void tsnap_launcher_begin_round(TimestampTz round_start,
									   const Oid *dboids, int ndboids);
extern uint64 tsnap_launcher_begin_visit(void);
extern bool tsnap_launcher_visit_marked(uint64 visit);
extern int	tsnap_launcher_visit_swept(uint64 visit);
extern bool tsnap_launcher_visit_current(uint64 visit,
										 TimestampTz *round_start);
extern int	tsnap_launcher_round_databases(uint64 visit,
										   TimestampTz *round_start,
										   Oid **dboids);
extern void tsnap_launcher_report_marked(uint64 visit);
extern void tsnap_launcher_report_swept(uint64 visit, int swept);

extern bool tsnap_launcher_set_store_down(bool down);

/*
 * steps.c: a housekeeping step, run so that its failure is logged as a
 * warning and the next step runs; for steps that talk to the object
 * store, its failures are told apart and an outage is logged once
 */
extern bool tsnap_launcher_step(void (*fn) (void *arg), void *arg);
extern bool tsnap_launcher_store_step(void (*fn) (void *arg), void *arg,
									  bool *store_failed);
extern void tsnap_launcher_store_answered(void);

#endif							/* TSNAP_LAUNCHER_H */
