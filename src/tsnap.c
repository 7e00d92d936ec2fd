/*-------------------------------------------------------------------------
 *
 * tsnap.c
 *	  Module entry point: settings, transaction callbacks, workers.
 *
 * tsnap is meant to be loaded through shared_preload_libraries, which is
 * what lets it reserve shared memory for its request queue and start
 * background workers.  Loaded any other way (on the first call of one of its
 * functions), change tracking still works, since the transaction callbacks
 * it needs are per backend, and tsnap_snapshot explains that it needs the
 * preload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "tsnap.h"
#include "s3_adapter.h"
#include "snapshot.h"

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
	tsnap_s3_init();

	/* the request queue needs shared memory, so only when preloaded */
	if (process_shared_preload_libraries_in_progress)
		tsnap_queue_request_shmem();
}
