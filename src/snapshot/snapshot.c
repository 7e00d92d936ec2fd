/*-------------------------------------------------------------------------
 *
 * snapshot.c
 *	  SQL entry points: tsnap_snapshot and tsnap_snapshot_info.
 *
 * This folder is the top of tsnap's snapshot side: it calls common/ (the
 * checks), tracking/ (the version), ledger/ (keys, the hit path), store/
 * (verifying a hit) and jobs/ (a miss), and nothing calls it.
 *
 * The caller's side of a snapshot.  Everything that can be decided without
 * a worker is decided here, in the caller's transaction: the table must be
 * tracked, the caller must be allowed to read all of it, and the worker must
 * be able to see what the caller sees.  Then a hit (current version and
 * fingerprint already uploaded) is one catalog probe: no table row is read
 * and no request is sent, unless tsnap.verify_hits asks for a HEAD.  A miss
 * goes through jobs/ to a worker.
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

#include "common/common.h"
#include "jobs/jobs.h"
#include "ledger/ledger.h"
#include "settings.h"
#include "store/store.h"
#include "tracking/tracking.h"

PG_FUNCTION_INFO_V1(tsnap_snapshot);
PG_FUNCTION_INFO_V1(tsnap_snapshot_info);

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
		ctl.keysize = TSNAP_KEY_SIZE;
		ctl.entrysize = TSNAP_KEY_SIZE;
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
	TsnapBuildRequest request;
	int64		version;

	if (!tsnap_jobs_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap must be loaded through shared_preload_libraries to build snapshots"),
				 errhint("Add tsnap to shared_preload_libraries in postgresql.conf and restart the server.")));

	rel = tsnap_open_relation(relid, AccessShareLock);
	tsnap_check_relation_kind(rel, TSNAP_USE_SNAPSHOT);
	tsnap_check_select(rel);
	tsnap_check_rls(rel);

	version = tsnap_read_tracking(relid, &tracking_id);
	if (version < 0)
		tsnap_raise_not_tracked(relid);
	check_worker_can_see(rel);
	tsnap_fingerprint(rel, &tsnap_format_csv, fingerprint);

	memset(&request, 0, sizeof(request));
	if (tsnap_lookup_snapshot(relid, &tracking_id, version, fingerprint, result))
	{
		bool		check = hit_needs_check(result);

		if (!check ||
			tsnap_store_exists(tsnap_store_open(NULL, NULL, 0), result->key))
		{
			if (check && !tsnap_verify_hits)
				remember_verified(result->key);
			result->hit = true;
			table_close(rel, NoLock);
			return;
		}
		/* gone from the bucket: build anew, and retire the stale row */
		strlcpy(request.stale_key, result->key, sizeof(request.stale_key));
	}

	/* workers start only once recovery has finished: never wait for one */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot build a snapshot of table \"%s\" during recovery",
						RelationGetRelationName(rel)),
				 request.stale_key[0] ?
				 errdetail("This server is a standby; the snapshot the primary built at this version is no longer in the bucket.") :
				 errdetail("This server is a standby; it answers from snapshots the primary built, and this version has none."),
				 errhint("Call tsnap_snapshot on the primary.")));

	request.dboid = MyDatabaseId;
	request.relid = relid;
	request.roleid = GetUserId();
	request.min_version = version;
	request.max_bytes = (int64) tsnap_max_snapshot_size * 1024;
	tsnap_jobs_run(&request, result);
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
