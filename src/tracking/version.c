/*-------------------------------------------------------------------------
 *
 * version.c
 *	  Reading a tracked table's rows_version and tracking_id, and which
 *	  tables are tracked.
 *
 * The committed version is the sum of the table's version shards as the
 * current snapshot sees them (see bump.c for why that sum is exact).  It is
 * read with direct index scans in the active snapshot, so that a worker's
 * version matches the rows it scans in the same REPEATABLE READ
 * transaction, and so that a hit costs about as much as a trivial SELECT
 * (executor start-up for SPI queries cost more than the rest of a hit).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common/common.h"
#include "tracking/tracking.h"

PG_FUNCTION_INFO_V1(tsnap_version);

/* tsnap.<relname>, or NULL when the extension is not installed here */
static Relation
open_catalog(const char *relname)
{
	Oid			relid = tsnap_catalog_relid(relname);

	if (!OidIsValid(relid))
		return NULL;
	return table_open(relid, AccessShareLock);
}

/*
 * Committed rows_version of relid and its tracking_id, in the current
 * snapshot; -1 when the table is not tracked.
 */
int64
tsnap_read_tracking(Oid relid, pg_uuid_t *tracking_id)
{
	Snapshot	snapshot = GetActiveSnapshot();
	Relation	tracked;
	Relation	shards;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	int64		version = -1;

	tracked = open_catalog("tracked_tables");
	if (tracked == NULL)
		return -1;
	ScanKeyInit(&key, Anum_tracked_tbl, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(tracked, tsnap_catalog_index("tracked_tables_pkey"),
							  true, snapshot, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_tracked_tracking_id,
								 RelationGetDescr(tracked), &isnull);

		memcpy(tracking_id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
		version = 0;
	}
	systable_endscan(scan);
	table_close(tracked, AccessShareLock);
	if (version < 0)
		return -1;

	shards = open_catalog("version_shards");
	ScanKeyInit(&key, Anum_shard_tbl, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(shards, tsnap_catalog_index("version_shards_pkey"),
							  true, snapshot, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_shard_bumps, RelationGetDescr(shards),
								 &isnull);

		if (!isnull)
			version += DatumGetInt64(d);
	}
	systable_endscan(scan);
	table_close(shards, AccessShareLock);

	return version;
}

/*
 * The members of relids that are tracked, as a list allocated in the caller's
 * memory context.  The caller must be inside tsnap_catalog_enter.  The query
 * runs in SPI's read-write mode so that it sees what the current command
 * itself just changed (tsnap_untrack, DDL in event triggers).
 */
List *
tsnap_tracked_among(List *relids)
{
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1];

	if (relids == NIL)
		return NIL;
	values[0] = tsnap_oid_array(relids);
	return tsnap_query_oids("SELECT tbl FROM tsnap.tracked_tables "
							"WHERE tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)",
							1, argtypes, values);
}

/*
 * Is relid itself tracked?  The caller must be inside tsnap_catalog_enter.
 */
bool
tsnap_is_tracked(Oid relid)
{
	return tsnap_tracked_among(list_make1_oid(relid)) != NIL;
}

/*
 * The table tracked under tracking_id, or InvalidOid (untracked since, or
 * dropped).  The caller must be inside tsnap_catalog_enter.
 */
Oid
tsnap_tracked_table_by_id(const pg_uuid_t *tracking_id)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	List	   *found;

	values[0] = UUIDPGetDatum(tracking_id);
	found = tsnap_query_oids("SELECT tbl FROM tsnap.tracked_tables "
							 "WHERE tracking_id OPERATOR(pg_catalog.=) $1",
							 1, argtypes, values);
	return found != NIL ? linitial_oid(found) : InvalidOid;
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
	pg_uuid_t	tracking_id;
	int64		version;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		tsnap_raise_no_relation(relid);
	check_any_privilege(relid);
	version = tsnap_read_tracking(relid, &tracking_id);
	if (version < 0)
		tsnap_raise_not_tracked(relid);

	PG_RETURN_INT64(version + tsnap_pending_bumps_for(relid));
}
