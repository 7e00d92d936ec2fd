/*-------------------------------------------------------------------------
 *
 * version.c
 *	  Reading a tracked table's rows_version.
 *
 * The committed version is the sum of the table's version shards as the
 * current snapshot sees them (see bump.c for why that sum is exact).  It is
 * read in the active snapshot (snapshot_catalog.c), so a version and rows
 * read in one REPEATABLE READ transaction always match.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tsnap.h"
#include "snapshot.h"

PG_FUNCTION_INFO_V1(tsnap_version);

/*
 * Committed rows_version of relid in the current snapshot, or -1 when the
 * table is not tracked (or the extension is absent).
 */
int64
tsnap_read_version(Oid relid)
{
	pg_uuid_t	tracking_id;

	return tsnap_read_tracking(relid, &tracking_id);
}

/*
 * tsnap_version(tbl regclass) RETURNS bigint
 *
 * Like any query, it sees the current transaction's own writes: statements
 * counted but not yet committed are added to the committed version.
 * Raises 55000 for a table that is not tracked.
 */
Datum
tsnap_version(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		version = tsnap_read_version(relid);

	if (version < 0)
	{
		char	   *relname = get_rel_name(relid);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 relname ? errmsg("table \"%s\" is not tracked", relname)
				 : errmsg("relation with OID %u does not exist", relid),
				 relname ? errhint("Call tsnap_track('%s') first.",
								   quote_identifier(relname)) : 0));
	}

	PG_RETURN_INT64(version + tsnap_pending_bumps_for(relid));
}
