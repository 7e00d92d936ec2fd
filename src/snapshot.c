/*-------------------------------------------------------------------------
 *
 * snapshot.c
 *	  SQL entry points: tsnap_snapshot and tsnap_snapshot_info.
 *
 * The caller's side of a snapshot.  Everything that can be decided without
 * a worker is decided here, in the caller's transaction: the table must be
 * tracked, the caller must be allowed to read all of it, and the worker must
 * be able to see what the caller sees.  Then a hit (current version and
 * fingerprint already uploaded) is one catalog probe: no table row is read
 * and no request is sent, unless tsnap.verify_hits asks for a HEAD.  A miss
 * goes through the request queue to a worker.
 *
 * Row-level security: a snapshot is shared by every caller of the same
 * table, so a table whose policies apply to the caller is refused, on hits
 * as on misses.  Keying by role would not be enough, because policies often
 * depend on session settings (current_setting('app.tenant')) that a worker
 * cannot reproduce.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "tsnap.h"
#include "settings.h"
#include "s3_adapter.h"
#include "snapshot.h"

PG_FUNCTION_INFO_V1(tsnap_snapshot);
PG_FUNCTION_INFO_V1(tsnap_snapshot_info);

/*
 * Raise 42501 unless the current user may read every column of rel, as
 * SELECT * FROM schema.rel would require: USAGE on the schema and SELECT
 * on the table or on every column.  A hit checks exactly what the scan
 * would.
 */
void
tsnap_check_select(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			nspid = RelationGetNamespace(rel);

	if (pg_namespace_aclcheck(nspid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_SCHEMA,
					   get_namespace_name(nspid));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_SELECT,
								  ACLMASK_ALL) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						RelationGetRelationName(rel)),
				 errdetail("A snapshot contains every column, so it needs SELECT on all of them.")));
}

/*
 * Raise 0A000 if row-level security applies to the current user on rel.
 */
void
tsnap_check_rls(Relation rel)
{
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot snapshot table \"%s\" because row-level security applies to role \"%s\"",
						RelationGetRelationName(rel),
						GetUserNameFromId(GetUserId(), false)),
				 errdetail("A snapshot is shared by every role that may read the whole table."),
				 errhint("Call tsnap_snapshot as the table owner or a role with BYPASSRLS.")));
}

/*
 * Raise 42809 or 0A000 for relations that can never be snapshotted; the
 * same rules as tsnap_track.
 */
static void
check_snapshottable(Relation rel)
{
	char		relkind = rel->rd_rel->relkind;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot snapshot \"%s\"", RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(relkind),
				 errhint("Only tracked tables and partitioned tables can be snapshotted.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot snapshot temporary table \"%s\"",
						RelationGetRelationName(rel))));
}

/*
 * The worker cannot see this transaction's writes, and would wait forever
 * for a lock this transaction holds.  Raise 55000 or 55P03 instead.
 */
static void
check_worker_can_see(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	ListCell   *lc;

	if (tsnap_pending_bumps_for(relid) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has uncommitted writes in this transaction",
						RelationGetRelationName(rel)),
				 errdetail("Snapshots are built by a background worker, which cannot see them."),
				 errhint("Commit the transaction first, then call tsnap_snapshot.")));

	/*
	 * Only ACCESS EXCLUSIVE conflicts with the worker's ACCESS SHARE.  The
	 * scan also locks inheritors and partitions; look them up only if there
	 * can be any.
	 */
	foreach(lc, rel->rd_rel->relhassubclass ? tsnap_relatives(relid) :
			list_make1_oid(relid))
	{
		Oid			other = lfirst_oid(lc);
		LOCKTAG		tag;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, other);
		if (LockHeldByMe(&tag, AccessExclusiveLock))
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot snapshot table \"%s\" while this transaction holds an ACCESS EXCLUSIVE lock on \"%s\"",
							RelationGetRelationName(rel), get_rel_name(other)),
					 errdetail("The background worker that builds the snapshot would wait for that lock forever."),
					 errhint("Commit the transaction first, then call tsnap_snapshot.")));
	}
}

/*
 * Is the hit's object still in the bucket?
 */
static bool
object_exists(const char *key)
{
	tsnap_s3_client *client = tsnap_s3_open(0);
	tsnap_s3_error err;
	uint64		size;
	char		etag[TSNAP_ETAG_MAX];

	if (tsnap_s3_head_object(client, key, &size, etag, sizeof(etag), &err))
		return true;
	if (tsnap_s3_error_is_not_found(&err))
		return false;
	tsnap_s3_raise(&err, ERROR);
	return false;				/* not reached */
}

/*
 * Keys whose objects this backend has seen in the bucket (see
 * hit_needs_check); dropped whole once it holds VERIFIED_MAX of them.
 */
#define VERIFIED_MAX 1024

static HTAB *verified = NULL;

/*
 * Must a hit be checked with a HEAD before its key is returned?  Always
 * with tsnap.verify_hits.  Otherwise only when the catalog row may name an
 * object that is gone although the row is not: read during recovery (a
 * standby behind its primary, whose retention may have deleted the object
 * already), or recorded on an earlier timeline (a point-in-time recovery
 * to before some of the primary's deletes).  Those are checked once per
 * backend and key.
 */
static bool
hit_needs_check(const TsnapSnapshotResult *hit)
{
	if (tsnap_verify_hits)
		return true;
	if (!RecoveryInProgress() &&
		hit->timeline == (int64) GetWALInsertionTimeLine())
		return false;
	return verified == NULL ||
		hash_search(verified, hit->key, HASH_FIND, NULL) == NULL;
}

static void
remember_verified(const char *key)
{
	if (verified == NULL || hash_get_num_entries(verified) >= VERIFIED_MAX)
	{
		HASHCTL		ctl;

		if (verified)
			hash_destroy(verified);
		ctl.keysize = TSNAP_KEY_MAX;
		ctl.entrysize = TSNAP_KEY_MAX;
		verified = hash_create("tsnap verified hits", 64, &ctl,
							   HASH_ELEM | HASH_STRINGS);
	}
	(void) hash_search(verified, key, HASH_ENTER, NULL);
}

static void
snapshot_of(Oid relid, TsnapSnapshotResult *result)
{
	Relation	rel;
	pg_uuid_t	tracking_id;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
	TsnapRequestParams params;
	int64		version;

	if (!tsnap_queue_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap must be loaded through shared_preload_libraries to build snapshots"),
				 errhint("Add tsnap to shared_preload_libraries in postgresql.conf and restart the server.")));

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		tsnap_raise_no_relation(relid);
	check_snapshottable(rel);
	tsnap_check_select(rel);
	tsnap_check_rls(rel);

	version = tsnap_read_tracking(relid, &tracking_id);
	if (version < 0)
		tsnap_raise_not_tracked(relid);
	check_worker_can_see(rel);
	tsnap_fingerprint(rel, fingerprint);

	memset(&params, 0, sizeof(params));
	if (tsnap_lookup_snapshot(relid, &tracking_id, version, fingerprint, result))
	{
		bool		check = hit_needs_check(result);

		if (!check || object_exists(result->key))
		{
			if (check && !tsnap_verify_hits)
				remember_verified(result->key);
			result->hit = true;
			table_close(rel, NoLock);
			return;
		}
		/* gone from the bucket: build anew, and retire the stale row */
		strlcpy(params.stale_key, result->key, sizeof(params.stale_key));
	}

	/* workers start only once recovery has finished: never wait for one */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot build a snapshot of table \"%s\" during recovery",
						RelationGetRelationName(rel)),
				 params.stale_key[0] ?
				 errdetail("This server is a standby; the snapshot the primary built at this version is no longer in the bucket.") :
				 errdetail("This server is a standby; it answers from snapshots the primary built, and this version has none."),
				 errhint("Call tsnap_snapshot on the primary.")));

	params.dboid = MyDatabaseId;
	params.relid = relid;
	params.roleid = GetUserId();
	params.min_version = version;
	params.max_bytes = (int64) tsnap_max_snapshot_size * 1024;
	tsnap_queue_run(&params, result);
	table_close(rel, NoLock);
}

/*
 * tsnap_snapshot(tbl regclass) RETURNS text
 */
Datum
tsnap_snapshot(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;

	snapshot_of(PG_GETARG_OID(0), &result);
	PG_RETURN_TEXT_P(cstring_to_text(result.key));
}

/*
 * tsnap_snapshot_info(tbl regclass) RETURNS (key, rows_version, rows, bytes,
 * etag, hit, created_at)
 */
Datum
tsnap_snapshot_info(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	snapshot_of(PG_GETARG_OID(0), &result);
	values[0] = CStringGetTextDatum(result.key);
	values[1] = Int64GetDatum(result.rows_version);
	values[2] = Int64GetDatum(result.rows);
	values[3] = Int64GetDatum(result.bytes);
	values[4] = CStringGetTextDatum(result.etag);
	values[5] = BoolGetDatum(result.hit);
	values[6] = TimestampTzGetDatum(result.created_at);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
