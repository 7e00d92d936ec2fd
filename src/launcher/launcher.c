/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The tsnap launcher: a static background worker, registered at preload
 *	  (pg_cron's model), that keeps tsnap's housekeeping going whether or
 *	  not anyone takes snapshots.
 *
 * About every second it launches workers for queued jobs (jobs/), so that
 * jobs whose callers left still run.  Every tsnap.housekeeping_interval it
 * runs a round: it notes the round's start, reads pg_database, and visits
 * the databases one at a time, each with a dynamic "tsnap housekeeper"
 * worker connected to it (housekeeper.c) that writes the database's marks
 * and, where tsnap is installed, retries queued deletes, sweeps abandoned
 * uploads, applies retention and maintains the jobs.  If every housekeeper
 * reported its marks, a "tsnap sweeper" connected to no database deletes
 * the objects that no database marked (sweeper.c, ledger/orphans.c).
 *
 * The launcher itself connects to no database (as PostgreSQL's logical
 * replication launcher does) and reads pg_database, a shared catalog, with
 * a heap scan, so it never blocks DROP DATABASE.  A housekeeper holds a
 * connection only for its visit, which is short; CREATE DATABASE and DROP
 * DATABASE wait up to 5 s for other sessions to leave their database
 * before failing, so a visit rarely makes them fail, and never for good.
 * Databases that refuse connections are not visited; template0 is left
 * out, but any other keeps the round from sweeping, since its objects
 * cannot be told from orphans.  Templates that allow connections
 * (template1) are visited, since a table tracked there has objects too,
 * but their housekeeper only writes marks, which takes no S3 request, so
 * that a stalled object store never keeps a template busy while someone
 * creates a database from it.
 *
 * Waits: the launcher waits on its latch, which the postmaster sets when a
 * worker it launched starts or stops, at most a second at a time, so
 * SIGTERM (exit) and SIGHUP (reload) are served within a second.  A visit
 * that lasts longer than VISIT_TIMEOUT_MS (a stalled object store) is cut:
 * the housekeeper is terminated and the round goes on.  The launcher uses
 * one max_worker_processes slot, and one more while a visit is under way.
 *
 * Exit: SIGTERM ends the launcher with FATAL; the postmaster restarts it
 * RESTART_SECONDS later, as it does after any failure (except at
 * shutdown).  An ERROR escaping the main loop ends it the same way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/common.h"
#include "jobs/jobs.h"
#include "launcher/launcher.h"
#include "settings.h"

/* how long the postmaster waits before restarting a launcher that died */
#define RESTART_SECONDS		10
/* how often queued jobs are looked at, and the longest single wait */
#define TICK_MS				1000
/* the longest visit of a housekeeper, and of the sweeper */
#define VISIT_TIMEOUT_MS	(5 * 60 * 1000)
#define SWEEP_TIMEOUT_MS	(10 * 60 * 1000)
/* how long a terminated housekeeper or sweeper is given to stop */
#define STOP_TIMEOUT_MS		(60 * 1000)

/* a database the round visits */
typedef struct LauncherDatabase
{
	Oid			dboid;
	char		name[NAMEDATALEN];
	bool		is_template;
	bool		allows_connections;
} LauncherDatabase;

static TimestampTz last_start_queued = 0;
static bool told_unswept = false;

/*
 * Register the launcher, and its shared memory; from _PG_init, only while
 * shared_preload_libraries is being processed.
 */
void
tsnap_launcher_register(void)
{
	BackgroundWorker bgw;

	tsnap_launcher_request_shmem();

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = RESTART_SECONDS;
	strlcpy(bgw.bgw_library_name, "tsnap", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "tsnap_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "tsnap launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "tsnap launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

static void
start_queued(void *arg)
{
	tsnap_jobs_start_queued();
}

/*
 * Serve what may have arrived while waiting: interrupts (SIGTERM exits
 * here), a reload, and, at most once a TICK_MS, queued jobs that no worker
 * has taken.  A failure to start them is logged and retried next time.
 */
static void
tick(void)
{
	TimestampTz now;

	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds(last_start_queued, now, TICK_MS))
	{
		last_start_queued = now;
		(void) tsnap_run_caught(start_queued, NULL, true, NULL);
	}
}

/* Sleep on the latch for at most ms, then tick. */
static void
wait_tick(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(ms, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	tick();
}

/*
 * Wait until the worker behind handle has stopped, ticking meanwhile;
 * false if it still runs after timeout_ms.
 */
static bool
wait_for_stop(BackgroundWorkerHandle *handle, long timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);

	for (;;)
	{
		pid_t		pid;
		long		left;

		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			return true;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			return false;
		wait_tick(Min(left, TICK_MS));
	}
}

/*
 * Launch a dynamic worker of this visit running function, and wait until
 * it exits, at most timeout_ms; a worker that runs longer is terminated.
 * dboid is the housekeeper's database (InvalidOid for the sweeper), what
 * names the database in messages.  Returns false if no worker could be
 * started.
 */
static bool
run_visit(const char *function, const char *type, Oid dboid,
		  const char *what, uint64 visit, long timeout_ms)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "tsnap", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, function, BGW_MAXLEN);
	if (OidIsValid(dboid))
		snprintf(bgw.bgw_name, BGW_MAXLEN, "%s for database %u", type, dboid);
	else
		strlcpy(bgw.bgw_name, type, BGW_MAXLEN);
	strlcpy(bgw.bgw_type, type, BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	StaticAssertStmt(sizeof(visit) <= BGW_EXTRALEN, "bgw_extra too small");
	memcpy(bgw.bgw_extra, &visit, sizeof(visit));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the %s for %s", type, what),
				 errhint("Raise max_worker_processes; tsnap's launcher needs one more while it visits a database.")));
		return false;
	}

	if (!wait_for_stop(handle, timeout_ms))
	{
		ereport(WARNING,
				(errmsg("%s for %s still runs after %ld s; terminating it",
						type, what, timeout_ms / 1000),
				 errhint("The object store may be stalling; the next round tries again.")));
		TerminateBackgroundWorker(handle);
		if (!wait_for_stop(handle, STOP_TIMEOUT_MS))
			ereport(WARNING,
					(errmsg("%s for %s did not stop; going on without it",
							type, what)));
	}
	pfree(handle);
	return true;
}

/*
 * The databases of the round: every row of pg_database but templates that
 * refuse connections (template0: nobody ever snapshotted there) and
 * databases half dropped (an interrupted DROP DATABASE leaves one that can
 * only be dropped; its objects are as good as orphaned).  A database that
 * refuses connections and is no template is listed, though it cannot be
 * visited: it may hold objects from when it allowed them, so it must stop
 * the sweep (ledger.h).  Read with a heap scan of the shared catalog in a
 * transaction of its own, as the logical replication launcher reads
 * pg_subscription; the list is palloc'd in the caller's memory context.
 */
static LauncherDatabase *
read_databases(int *ndatabases)
{
	MemoryContext cxt = CurrentMemoryContext;
	LauncherDatabase *dbs;
	int			n = 0;
	int			size = 16;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	dbs = palloc(sizeof(LauncherDatabase) * size);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if ((db->datistemplate && !db->datallowconn) ||
			database_is_invalid_form(db))
			continue;
		if (n == size)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			size *= 2;
			dbs = repalloc(dbs, sizeof(LauncherDatabase) * size);
			MemoryContextSwitchTo(old);
		}
		dbs[n].dboid = db->oid;
		strlcpy(dbs[n].name, NameStr(db->datname), NAMEDATALEN);
		dbs[n].is_template = db->datistemplate;
		dbs[n].allows_connections = db->datallowconn;
		n++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);

	*ndatabases = n;
	return dbs;
}

/*
 * One round: visit every database, then sweep if every one of them
 * reported its marks.  The round starts before pg_database is read, so
 * that a database created after the read only has objects newer than the
 * round's start, which the sweep leaves alone.
 */
static void
run_round(void)
{
	TimestampTz round_start = GetCurrentTimestamp();
	LauncherDatabase *dbs;
	Oid		   *dboids;
	int			ndbs;
	int			i;
	bool		all_marked = true;
	uint64		visit;
	int			swept;

	dbs = read_databases(&ndbs);
	dboids = palloc(sizeof(Oid) * Max(ndbs, 1));
	for (i = 0; i < ndbs; i++)
		dboids[i] = dbs[i].dboid;
	tsnap_launcher_begin_round(round_start, dboids, ndbs);

	for (i = 0; i < ndbs; i++)
	{
		char	   *what = psprintf("database \"%s\"", dbs[i].name);

		if (!dbs[i].allows_connections)
		{
			/* said once per launcher, like the limit below */
			if (!told_unswept)
				ereport(LOG,
						(errmsg("tsnap does not sweep orphaned objects while database \"%s\" refuses connections",
								dbs[i].name),
						 errdetail("Objects of its tables could not be told from orphans."),
						 errhint("Allow connections to it, or drop it.")));
			told_unswept = true;
			all_marked = false;
			continue;
		}
		pgstat_report_activity(STATE_RUNNING, what);
		visit = tsnap_launcher_begin_visit();
		if (!run_visit("tsnap_housekeeper_main", "tsnap housekeeper",
					   dbs[i].dboid, what, visit, VISIT_TIMEOUT_MS) ||
			!tsnap_launcher_visit_marked(visit))
			all_marked = false;
	}

	/* with no bucket configured there is nothing to sweep */
	if (tsnap_s3_bucket == NULL || tsnap_s3_bucket[0] == '\0')
		all_marked = false;
	else if (ndbs > TSNAP_LAUNCHER_MAX_DATABASES)
	{
		if (!told_unswept)
			ereport(WARNING,
					(errmsg("tsnap does not sweep orphaned objects in a cluster of more than %d databases",
							TSNAP_LAUNCHER_MAX_DATABASES)));
		told_unswept = true;
		all_marked = false;
	}

	if (all_marked)
	{
		pgstat_report_activity(STATE_RUNNING, "orphan sweep");
		visit = tsnap_launcher_begin_visit();
		if (run_visit("tsnap_sweeper_main", "tsnap sweeper", InvalidOid,
					  "the orphan sweep", visit, SWEEP_TIMEOUT_MS))
		{
			swept = tsnap_launcher_visit_swept(visit);
			ereport(DEBUG1,
					(errmsg_internal("tsnap launcher: round of %d databases done, sweep returned %d",
									 ndbs, swept)));
		}
	}
	else
		ereport(DEBUG1,
				(errmsg_internal("tsnap launcher: round of %d databases done, no sweep (marks missing)",
								 ndbs)));
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
tsnap_launcher_main(Datum arg)
{
	MemoryContext round_cxt;
	TimestampTz last_round;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: the launcher must never block DROP DATABASE */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	round_cxt = AllocSetContextCreate(TopMemoryContext, "tsnap launcher round",
									  ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("tsnap launcher started")));

	/*
	 * The first round comes one interval after the start, like every other:
	 * a server that just started, or restarted after a crash, has more
	 * pressing work, and what a crash left behind (an upload open, a delete
	 * queued) keeps until then.
	 */
	last_round = GetCurrentTimestamp();
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz next_round;
		long		left;

		if (TimestampDifferenceExceeds(last_round, now,
									   tsnap_housekeeping_interval))
		{
			MemoryContext old = MemoryContextSwitchTo(round_cxt);

			last_round = now;
			run_round();
			MemoryContextSwitchTo(old);
			MemoryContextReset(round_cxt);
		}

		next_round = TimestampTzPlusMilliseconds(last_round,
												 tsnap_housekeeping_interval);
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
											   next_round);
		wait_tick(Min(left, TICK_MS));
	}
}
