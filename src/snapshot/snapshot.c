/*-------------------------------------------------------------------------
 *
 * snapshot.c
 *	  SQL entry points: tsnap_snapshot, tsnap_snapshot_info and
 *	  tsnap_snapshot_url.
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
 * Each compression (none, gzip, zstd) is a snapshot of its own, with its
 * own key and its own single flight.  tsnap_snapshot_url then presigns a
 * GET of the key with the store's credentials, locally: the URL lets
 * anyone who holds it read the object until it expires, so it is checked
 * to expire before the object may be deleted (tsnap.keep_for), and it is
 * never written to a log or an error message; it leaves only as the
 * function's result.
 *
 * C symbols: 0.1.0's SQL functions call tsnap_snapshot and
 * tsnap_snapshot_info with one argument (and seven result columns), and a
 * database keeps calling them so until ALTER EXTENSION tsnap UPDATE; they
 * keep 0.1.0's meaning, uncompressed CSV, which is all that database's
 * catalog can record (ledger/).  0.2.0's functions call the _0_2 symbols,
 * which take the compression and return more columns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "common/common.h"
#include "jobs/jobs.h"
#include "ledger/ledger.h"
#include "settings.h"
#include "store/store.h"
#include "tracking/tracking.h"

PG_FUNCTION_INFO_V1(tsnap_snapshot);
PG_FUNCTION_INFO_V1(tsnap_snapshot_0_2);
PG_FUNCTION_INFO_V1(tsnap_snapshot_async);
PG_FUNCTION_INFO_V1(tsnap_snapshot_info);
PG_FUNCTION_INFO_V1(tsnap_snapshot_info_0_2);
PG_FUNCTION_INFO_V1(tsnap_snapshot_url);

/* tsnap_snapshot_info's columns, by release */
#define INFO_COLUMNS_0_1	7
#define INFO_COLUMNS_0_2	10

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

/*
 * The compression a call asks for: the argument (NULL: tsnap.compression).
 * An unknown name raises 22023 with the valid ones.
 */
static TsnapCompression
compression_arg(FunctionCallInfo fcinfo, int argno)
{
	TsnapCompression compression;
	char	   *name;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return (TsnapCompression) tsnap_compression;
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (!tsnap_codec_by_name(name, &compression))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown compression \"%s\"", name),
				 errhint("Valid compressions are %s; NULL means tsnap.compression.",
						 TSNAP_COMPRESSION_NAMES)));
	return compression;
}

/*
 * The planner's estimate of the rows a scan of rel returns (with its
 * inheritors or partitions), for the progress of jobs: what
 * estimate_rel_size says from pg_class and the table's current size.
 */
static int64
estimate_rows(Relation rel)
{
	ListCell   *lc;
	double		total = 0;

	foreach(lc, rel->rd_rel->relhassubclass ?
			tsnap_relatives(RelationGetRelid(rel)) :
			list_make1_oid(RelationGetRelid(rel)))
	{
		Relation	r = try_relation_open(lfirst_oid(lc), AccessShareLock);
		BlockNumber pages;
		double		tuples;
		double		allvisfrac;

		if (r == NULL)
			continue;			/* dropped since: the scan will not see it */
		if (RELKIND_HAS_STORAGE(r->rd_rel->relkind))
		{
			estimate_rel_size(r, NULL, &pages, &tuples, &allvisfrac);
			total += Max(tuples, 0);
		}
		relation_close(r, NoLock);
	}
	return (int64) rint(total);
}

/* What a call asks for: a key now (tsnap_snapshot), or a job's id. */
typedef enum SnapshotMode
{
	SNAPSHOT_WAIT,
	SNAPSHOT_ASYNC
} SnapshotMode;

/*
 * The checks and the hit path, common to every way of asking; then a miss
 * waits for its key (SNAPSHOT_WAIT, into *result) or becomes a job whose
 * id is returned (SNAPSHOT_ASYNC; a hit then gives a job that has
 * succeeded already).
 */
static int64
snapshot_of(Oid relid, TsnapCompression compression, SnapshotMode mode,
			TsnapSnapshotResult *result)
{
	Relation	rel;
	pg_uuid_t	tracking_id;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
	TsnapBuildRequest request;
	int64		version;
	int64		job_id = 0;

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
	if (mode == SNAPSHOT_ASYNC && XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot start a snapshot job of table \"%s\" in a read-only transaction",
						RelationGetRelationName(rel)),
				 errdetail("A job is recorded in tsnap.job_history."),
				 errhint("Call tsnap_snapshot, which waits for the key, or call tsnap_snapshot_async in a read-write transaction.")));
	tsnap_fingerprint(rel, &tsnap_format_csv, compression, fingerprint);

	memset(&request, 0, sizeof(request));
	request.dboid = MyDatabaseId;
	request.relid = relid;
	request.roleid = GetUserId();
	request.min_version = version;
	request.max_bytes = (int64) tsnap_max_snapshot_size * 1024;
	request.compression = compression;
	if (tsnap_lookup_snapshot(relid, &tracking_id, version, fingerprint,
							  compression, result))
	{
		bool		check = hit_needs_check(result);

		if (!check ||
			tsnap_store_exists(tsnap_store_open(NULL, NULL, 0), result->key))
		{
			if (check && !tsnap_verify_hits)
				remember_verified(result->key);
			result->hit = true;
			if (mode == SNAPSHOT_ASYNC)
				job_id = tsnap_jobs_record_hit(&request, result);
			table_close(rel, NoLock);
			return job_id;
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

	if (mode == SNAPSHOT_ASYNC)
		job_id = tsnap_jobs_submit(&request, estimate_rows(rel));
	else
		tsnap_jobs_run(&request, estimate_rows(rel), result);
	table_close(rel, NoLock);
	return job_id;
}

/*
 * tsnap_snapshot(tbl regclass) RETURNS text: 0.1.0's, STRICT, uncompressed
 * tsnap_snapshot(tbl regclass, compression text DEFAULT NULL): 0.2.0's, not
 * STRICT, so that a NULL compression means tsnap.compression
 */
Datum
tsnap_snapshot(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;

	snapshot_of(PG_GETARG_OID(0), TSNAP_COMPRESSION_NONE, SNAPSHOT_WAIT,
				&result);
	PG_RETURN_TEXT_P(cstring_to_text(result.key));
}

Datum
tsnap_snapshot_0_2(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;
	TsnapCompression compression;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	compression = compression_arg(fcinfo, 1);
	snapshot_of(PG_GETARG_OID(0), compression, SNAPSHOT_WAIT, &result);
	PG_RETURN_TEXT_P(cstring_to_text(result.key));
}

/*
 * tsnap_snapshot_async(tbl regclass, compression text DEFAULT NULL)
 * RETURNS bigint: 0.3.0's; the id of the job that builds the snapshot (or
 * of one that has succeeded already, on a hit)
 */
Datum
tsnap_snapshot_async(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;
	TsnapCompression compression;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	compression = compression_arg(fcinfo, 1);
	PG_RETURN_INT64(snapshot_of(PG_GETARG_OID(0), compression, SNAPSHOT_ASYNC,
								&result));
}

/*
 * tsnap_snapshot_info's row: key, rows_version, rows, bytes, etag, hit,
 * created_at, and from 0.2.0 on bucket, uri ("s3://bucket/key": keys hold
 * no byte that needs escaping there, see ledger/key.c) and compression.
 */
static Datum
info_row(FunctionCallInfo fcinfo, int ncolumns, TsnapCompression compression)
{
	TsnapSnapshotResult result;
	TupleDesc	tupdesc;
	Datum		values[INFO_COLUMNS_0_2];
	bool		nulls[INFO_COLUMNS_0_2] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != ncolumns)
		elog(ERROR, "tsnap_snapshot_info returns %d columns, expected %d; run ALTER EXTENSION tsnap UPDATE",
			 tupdesc->natts, ncolumns);

	snapshot_of(PG_GETARG_OID(0), compression, SNAPSHOT_WAIT, &result);
	values[0] = CStringGetTextDatum(result.key);
	values[1] = Int64GetDatum(result.rows_version);
	values[2] = Int64GetDatum(result.rows);
	values[3] = Int64GetDatum(result.bytes);
	values[4] = CStringGetTextDatum(result.etag);
	values[5] = BoolGetDatum(result.hit);
	values[6] = TimestampTzGetDatum(result.created_at);
	if (ncolumns >= INFO_COLUMNS_0_2)
	{
		values[7] = CStringGetTextDatum(result.bucket);
		values[8] = CStringGetTextDatum(psprintf("s3://%s/%s", result.bucket,
												 result.key));
		values[9] = CStringGetTextDatum(tsnap_codec(result.compression)->name);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * tsnap_snapshot_info(tbl regclass) RETURNS (key, rows_version, rows, bytes,
 * etag, hit, created_at): 0.1.0's, STRICT, uncompressed
 */
Datum
tsnap_snapshot_info(PG_FUNCTION_ARGS)
{
	return info_row(fcinfo, INFO_COLUMNS_0_1, TSNAP_COMPRESSION_NONE);
}

/*
 * tsnap_snapshot_info(tbl regclass, compression text DEFAULT NULL) RETURNS
 * (..., bucket, uri, compression): 0.2.0's
 */
Datum
tsnap_snapshot_info_0_2(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return info_row(fcinfo, INFO_COLUMNS_0_2, compression_arg(fcinfo, 1));
}

/*
 * expires_in in whole seconds (rounded up, as SigV4 counts them), checked
 * against SigV4's limit and tsnap.keep_for: a URL must not outlive the
 * object it names, and every key handed out stays readable for at least
 * keep_for (see ledger/ledger.c).  Raises 22023 with the limit in the hint.
 */
static int
url_lifetime(const Interval *expires_in)
{
	double		seconds;

	/* as EXTRACT(epoch FROM interval) counts months and days */
	seconds = (double) expires_in->time / USECS_PER_SEC +
		(double) (expires_in->month / MONTHS_PER_YEAR) * DAYS_PER_YEAR * SECS_PER_DAY +
		(double) (expires_in->month % MONTHS_PER_YEAR) * DAYS_PER_MONTH * SECS_PER_DAY +
		(double) expires_in->day * SECS_PER_DAY;
	seconds = ceil(seconds);

	if (seconds < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be positive"),
				 errhint("Pass an interval such as '15 minutes'.")));
	if (seconds > TSNAP_PRESIGN_MAX_SECONDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be at most 7 days"),
				 errhint("A presigned URL (SigV4) is valid for at most 7 days (%d seconds).",
						 TSNAP_PRESIGN_MAX_SECONDS)));
	if (seconds > tsnap_keep_for && tsnap_keep_for == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be at most tsnap.keep_for (0)"),
				 errdetail("With tsnap.keep_for = 0 a snapshot may be deleted as soon as it is superseded, so no URL can be sure to outlive its object."),
				 errhint("Raise tsnap.keep_for to at least the lifetime the URLs need.")));
	if (seconds > tsnap_keep_for)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be at most tsnap.keep_for (%s)",
						GetConfigOptionByName("tsnap.keep_for", NULL, false)),
				 errdetail("A superseded snapshot may be deleted tsnap.keep_for after it was superseded, and the URL must not outlive its object."),
				 errhint("Pass an interval of at most %s, or raise tsnap.keep_for.",
						 GetConfigOptionByName("tsnap.keep_for", NULL, false))));
	return (int) seconds;
}

/*
 * tsnap_snapshot_url(tbl regclass, expires_in interval DEFAULT '15 minutes',
 * compression text DEFAULT NULL, manifest boolean DEFAULT false) RETURNS text
 *
 * What tsnap_snapshot does (hit or miss, the same checks and single flight),
 * then a presigned GET URL of the key, or with manifest of the key's
 * manifest object beside it.  The limits are checked before anything is
 * built.
 */
Datum
tsnap_snapshot_url(PG_FUNCTION_ARGS)
{
	TsnapSnapshotResult result;
	TsnapCompression compression;
	TsnapStore *store;
	const char *key;
	int			seconds;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null",
						PG_ARGISNULL(1) ? "expires_in" : "manifest")));
	seconds = url_lifetime(PG_GETARG_INTERVAL_P(1));
	compression = compression_arg(fcinfo, 2);

	snapshot_of(PG_GETARG_OID(0), compression, SNAPSHOT_WAIT, &result);

	key = result.key;
	if (PG_GETARG_BOOL(3))
	{
		key = tsnap_manifest_key(result.key);
		if (strlen(key) > TSNAP_OBJECT_KEY_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("manifest key for table \"%s\" would be longer than %d bytes",
							get_rel_name(PG_GETARG_OID(0)), TSNAP_OBJECT_KEY_MAX),
					 errhint("Shorten tsnap.key_prefix.")));
	}

	/* the bucket the object was written to, with today's credentials */
	store = tsnap_store_open(NULL, result.bucket, 0);
	PG_RETURN_TEXT_P(cstring_to_text(tsnap_store_presign_get(store, key,
															 seconds)));
}
