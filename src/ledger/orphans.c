/*-------------------------------------------------------------------------
 *
 * orphans.c
 *	  STUB, replaced by the orphans branch: the mark and sweep of objects
 *	  that no database records (ledger.h says what the real one does).
 *
 * This stub marks nothing and never sweeps, so that the launcher builds
 * and runs before the orphans work is merged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "ledger/ledger.h"

void
tsnap_orphans_write_marks(TimestampTz round_start)
{
}

int
tsnap_orphans_sweep(TimestampTz round_start, const Oid *dboids, int ndboids,
					TsnapKeyInFlight in_flight)
{
	return -1;
}
