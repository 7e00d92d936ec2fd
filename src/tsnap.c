/*-------------------------------------------------------------------------
 *
 * tsnap.c
 *	  Module entry point: settings, transaction callbacks, workers.
 *
 * The code is in folders by concern; README.md ("Layout") draws them and
 * the one way data flows between them.
 *
 * tsnap is meant to be loaded through shared_preload_libraries, which is
 * what lets it reserve shared memory for its request queue and start
 * background workers, the housekeeping launcher among them.  Loaded any
 * other way (on the first call of one of its functions), change tracking
 * still works, since the transaction callbacks it needs are per backend,
 * and tsnap_snapshot explains that it needs the preload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "jobs/jobs.h"
#include "launcher/launcher.h"
#include "settings.h"
#include "store/store.h"
#include "tracking/tracking.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* pg_upgrade runs no user writes, and must not start workers */
	if (IsBinaryUpgrade)
		return;

	tsnap_define_settings();
	MarkGUCPrefixReserved("tsnap");

	tsnap_register_xact_callbacks();
	tsnap_store_init();

	/*
	 * The request queue and the launcher need shared memory, and a static
	 * worker can only be registered now, so only when preloaded.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		tsnap_jobs_request_shmem();
		tsnap_launcher_register();
	}
}
