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
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

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
 * Raise 42501 unless the current user holds some privilege on relid (or on
 * one of its columns): a version says when a table was written, which is
 * not for roles that have no business with it.
 */
static void
check_any_privilege(Oid relid)
{
	Oid			userid = GetUserId();

	if (pg_class_aclmask(relid, userid, ACL_ALL_RIGHTS_RELATION,
						 ACLMASK_ANY) != 0)
		return;
	if (pg_attribute_aclcheck_all(relid, userid,
								  ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_REFERENCES,
								  ACLMASK_ANY) == ACLCHECK_OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for table %s", get_rel_name(relid)),
			 errdetail("tsnap_version needs some privilege on the table or one of its columns.")));
}

/*
 * tsnap_version(tbl regclass) RETURNS bigint
 *
 * Like any query, it sees the current transaction's own writes: statements
 * counted but not yet committed are added to the committed version.
 * Raises 42P01 for a relation that does not exist, 42501 without any
 * privilege on it, 55000 for a table that is not tracked.
 */
Datum
tsnap_version(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		version;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		tsnap_raise_no_relation(relid);
	check_any_privilege(relid);
	version = tsnap_read_version(relid);
	if (version < 0)
		tsnap_raise_not_tracked(relid);

	PG_RETURN_INT64(version + tsnap_pending_bumps_for(relid));
}
