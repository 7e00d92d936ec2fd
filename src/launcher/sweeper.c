/*-------------------------------------------------------------------------
 *
 * sweeper.c
 *	  The end of a launcher's round: a dynamic background worker, connected
 *	  to no database, that deletes the objects under this cluster's prefix
 *	  that no database marked (ledger/orphans.c), then exits.
 *
 * The launcher starts it only after every database of the round reported
 * its marks, and hands it the round's start and databases through its
 * shared memory (shared.c); the sweep itself checks the marks again and
 * sweeps nothing if one is missing.  Connected to no database, it blocks
 * no DROP DATABASE however long the listing takes.  Keys a live worker is
 * writing are never deleted.  Whether the object store answered goes to
 * the outage state (steps.c), as a housekeeper's would.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"

#include "common/common.h"
#include "jobs/jobs.h"
#include "launcher/launcher.h"
#include "ledger/ledger.h"

typedef struct Sweep
{
	TimestampTz round_start;
	Oid		   *dboids;
	int			ndboids;
	int			swept;
} Sweep;

static void
sweep(void *arg)
{
	Sweep	   *s = (Sweep *) arg;

	s->swept = tsnap_orphans_sweep(s->round_start, s->dboids, s->ndboids,
								   tsnap_jobs_key_in_flight);
}

void
tsnap_sweeper_main(Datum arg)
{
	uint64		visit_number;
	Sweep		s;
	bool		store_failed;
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: a long sweep must not block DROP DATABASE */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	tsnap_store_yield_to_barriers();

	cxt = AllocSetContextCreate(TopMemoryContext, "tsnap sweeper",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	memcpy(&visit_number, MyBgworkerEntry->bgw_extra, sizeof(visit_number));
	memset(&s, 0, sizeof(s));
	s.ndboids = tsnap_launcher_round_databases(visit_number, &s.round_start,
											   &s.dboids);
	/* a visit the launcher gave up on has nothing to do */
	if (s.ndboids < 0)
		proc_exit(0);

	pgstat_report_activity(STATE_RUNNING, "tsnap orphan sweep");
	if (tsnap_launcher_store_step(sweep, &s, &store_failed))
	{
		tsnap_launcher_report_swept(visit_number, s.swept);
		/* -1: marks were missing, and the sweep asked the store nothing */
		if (s.swept >= 0 && !store_failed)
			tsnap_launcher_store_answered();
		if (s.swept > 0)
			ereport(LOG,
					(errmsg_plural("tsnap orphan sweep deleted %d object that no database records",
								   "tsnap orphan sweep deleted %d objects that no database records",
								   s.swept, s.swept)));
		else if (s.swept < 0)
			ereport(DEBUG1,
					(errmsg_internal("tsnap orphan sweep skipped: a database's marks of this round are missing")));
	}

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
