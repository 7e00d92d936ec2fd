/*-------------------------------------------------------------------------
 *
 * housekeeper.c
 *	  The launcher's visit of one database: a dynamic background worker
 *	  that writes the database's marks for the orphan sweep and, where tsnap
 *	  is installed, does the database's housekeeping, then exits.
 *
 * It connects as the bootstrap superuser (which needs no LOGIN), like the
 * snapshot workers (jobs/worker.c), and with their 10 s lock_timeout, so a
 * catalog row someone holds (a prepared DROP TABLE) delays it, never stops
 * it.  The marks come first and always, since the sweep needs them from
 * every database, tsnap or not (an empty set where it is absent); they
 * take no S3 request.  Then, if tsnap is installed, this is no template
 * (see launcher.c), a bucket is configured and no snapshot worker is doing
 * this database's housekeeping right now (jobs/ lets one process at a
 * time), each step runs on its own, a failure logged and the next step
 * run all the same: the jobs' maintenance (restarting interrupted jobs,
 * pruning their history), the sweep of abandoned uploads, retention, and
 * the queued deletes.
 *
 * Older releases: a database still on 0.1.0 or 0.2.0 (the library was
 * updated, the extension not yet) has the catalog of its release.  The
 * ledger's steps work with every release's catalog (ledger/ledger.c checks
 * for what later releases added); the jobs' maintenance needs the job
 * history of 0.3.0, so it is skipped there.
 *
 * An object store that is out: the sweep of abandoned uploads asks it
 * every time, so its failure or success tells whether the store answers
 * (steps.c logs an outage once); after such a failure the queued deletes
 * wait for the next round rather than each failing with a warning.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common/common.h"
#include "jobs/jobs.h"
#include "launcher/launcher.h"
#include "ledger/ledger.h"
#include "settings.h"

#define HOUSEKEEPER_LOCK_TIMEOUT	"10s"

/* what the visit learns in its first transaction */
typedef struct Visit
{
	TimestampTz round_start;
	char	   *dbname;
	bool		is_template;
	char	   *extversion;		/* tsnap's release here, or NULL */
} Visit;

/* releases whose catalog has no jobs yet */
static const char *const releases_without_jobs[] = {"0.1.0", "0.2.0"};

/* every message of the visit says which database it is about */
static void
visit_context(void *arg)
{
	errcontext("tsnap housekeeping of database \"%s\"", (const char *) arg);
}

/*
 * tsnap's installed version in this database, palloc'd, or NULL; read
 * from pg_extension by its unique name index, inside a transaction.
 */
static char *
installed_version(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("tsnap"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* The visit's first transaction: who we are, and is tsnap here. */
static void
learn_visit(void *arg)
{
	Visit	   *v = (Visit *) arg;
	MemoryContext cxt = CurrentMemoryContext;
	HeapTuple	tup;
	char	   *version;

	tsnap_begin_transaction();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		v->dbname = MemoryContextStrdup(cxt, NameStr(db->datname));
		v->is_template = db->datistemplate;
		ReleaseSysCache(tup);
	}
	version = installed_version();
	if (version)
		v->extversion = MemoryContextStrdup(cxt, version);
	tsnap_commit_transaction();
}

static void
write_marks(void *arg)
{
	tsnap_orphans_write_marks(((Visit *) arg)->round_start);
}

static bool
release_has_jobs(const char *version)
{
	size_t		i;

	for (i = 0; i < lengthof(releases_without_jobs); i++)
		if (strcmp(version, releases_without_jobs[i]) == 0)
			return false;
	return true;
}

void
tsnap_housekeeper_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	uint64		visit_number;
	Visit		visit;
	ErrorContextCallback context;
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&visit_number, MyBgworkerEntry->bgw_extra, sizeof(visit_number));
	memset(&visit, 0, sizeof(visit));
	/* a visit the launcher gave up on has nothing to do */
	if (!tsnap_launcher_visit_current(visit_number, &visit.round_start))
		proc_exit(0);

	/* InvalidOid: the bootstrap superuser, which needs no LOGIN */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	tsnap_store_yield_to_barriers();
	pgstat_report_appname("tsnap housekeeper");
	SetConfigOption("lock_timeout", HOUSEKEEPER_LOCK_TIMEOUT, PGC_SUSET,
					PGC_S_SESSION);

	cxt = AllocSetContextCreate(TopMemoryContext, "tsnap housekeeper",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	visit.dbname = psprintf("%u", dboid);
	context.callback = visit_context;
	context.arg = visit.dbname;
	context.previous = error_context_stack;
	error_context_stack = &context;

	pgstat_report_activity(STATE_RUNNING, "tsnap housekeeping");
	if (!tsnap_launcher_step(learn_visit, &visit))
		proc_exit(0);
	context.arg = visit.dbname;

	if (tsnap_launcher_step(write_marks, &visit))
		tsnap_launcher_report_marked(visit_number);

	if (visit.extversion != NULL && !visit.is_template &&
		tsnap_s3_bucket != NULL && tsnap_s3_bucket[0] != '\0' &&
		tsnap_jobs_begin_housekeeping(MyDatabaseId))
	{
		bool		store_failed;

		if (release_has_jobs(visit.extversion))
			(void) tsnap_launcher_step(tsnap_jobs_step_maintain, NULL);
		/* the sweep lists the open uploads: it asks the store every time */
		if (tsnap_launcher_store_step(tsnap_jobs_step_sweep_uploads, NULL,
									  &store_failed) && !store_failed)
			tsnap_launcher_store_answered();
		(void) tsnap_launcher_step(tsnap_jobs_step_retention, NULL);
		if (!store_failed)
			(void) tsnap_launcher_store_step(tsnap_jobs_step_delete_pending, NULL,
											 &store_failed);
	}

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
