/*-------------------------------------------------------------------------
 *
 * snapshot_catalog.c
 *	  Reading and recording snapshots in tsnap.snapshots.
 *
 * Writes run through SPI as the catalog owner (tsnap_catalog_enter); the
 * two reads of the hit path are direct index scans.  They use deliberately
 * different snapshots:
 *	- the version and tracking_id come from the current snapshot, so that a
 *	  worker's version matches the rows it scans in the same transaction;
 *	- the lookup of an uploaded snapshot uses the latest snapshot, so that a
 *	  REPEATABLE READ caller never gets a key that retention removed (and
 *	  deleted from the bucket) after its transaction began.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "tsnap.h"
#include "settings.h"
#include "snapshot.h"

static void
copy_text(SPITupleTable *tt, int col, char *dst, size_t dstlen)
{
	char	   *s = SPI_getvalue(tt->vals[0], tt->tupdesc, col);

	strlcpy(dst, s ? s : "", dstlen);
}

static int64
get_int8(SPITupleTable *tt, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tt->vals[0], tt->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static bool
get_bool(SPITupleTable *tt, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tt->vals[0], tt->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

/* RESULT_COLUMNS of the first row */
static void
fill_result(TsnapSnapshotResult *result)
{
	bool		isnull;

	copy_text(SPI_tuptable, 1, result->key, sizeof(result->key));
	result->rows_version = get_int8(SPI_tuptable, 2);
	result->rows = get_int8(SPI_tuptable, 3);
	result->bytes = get_int8(SPI_tuptable, 4);
	copy_text(SPI_tuptable, 5, result->etag, sizeof(result->etag));
	result->created_at =
		DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 6, &isnull));
	result->parts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 7, &isnull));
	result->timeline = get_int8(SPI_tuptable, 8);
}

#define RESULT_COLUMNS "key, rows_version, rows, bytes, etag, created_at, parts, timeline"
#define RESULT_NCOLUMNS 8

/* columns of tsnap.snapshots, as heap_deform_tuple numbers them */
#define SNAPSHOTS_NATTS		13
#define SNAP_KEY			0
#define SNAP_TRACKING_ID	2
#define SNAP_ROWS_VERSION	3
#define SNAP_FINGERPRINT	4
#define SNAP_ROWS			5
#define SNAP_BYTES			6
#define SNAP_ETAG			7
#define SNAP_PARTS			8
#define SNAP_CREATED_AT		9
#define SNAP_ENDPOINT		10
#define SNAP_BUCKET			11
#define SNAP_TIMELINE		12

/* Does a text datum equal a C string? */
static bool
text_equals(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);

	return strlen(s) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(VARDATA_ANY(t), s, VARSIZE_ANY_EXHDR(t)) == 0;
}

/*
 * The hit path reads the catalog with direct index scans rather than SPI:
 * a hit is meant to cost about as much as a trivial SELECT, and executor
 * start-up for two queries cost more than the rest of the call together
 * (perf, pgbench on a hit: SPI_execute_plan was 37% of the backend's time).
 * These scans need no privilege checks: tsnap reads its own catalog.
 */
static Relation
open_catalog(const char *relname)
{
	Oid			relid = tsnap_catalog_relid(relname);

	if (!OidIsValid(relid))
		return NULL;
	return table_open(relid, AccessShareLock);
}

static Oid
catalog_index(const char *indexname)
{
	Oid			indexid = tsnap_catalog_relid(indexname);

	if (!OidIsValid(indexid))
		elog(ERROR, "index tsnap.%s is missing", indexname);
	return indexid;
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
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(tracked, catalog_index("tracked_tables_pkey"),
							  true, snapshot, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, 2, RelationGetDescr(tracked), &isnull);

		memcpy(tracking_id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
		version = 0;
	}
	systable_endscan(scan);
	table_close(tracked, AccessShareLock);
	if (version < 0)
		return -1;

	shards = open_catalog("version_shards");
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(shards, catalog_index("version_shards_pkey"),
							  true, snapshot, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, 3, RelationGetDescr(shards), &isnull);

		if (!isnull)
			version += DatumGetInt64(d);
	}
	systable_endscan(scan);
	table_close(shards, AccessShareLock);

	return version;
}

/*
 * The uploaded snapshot of relid at (version, fingerprint) in the bucket
 * and endpoint tsnap is configured with now, if the latest committed state
 * of the catalog has one and it is the table's newest snapshot there.  A
 * snapshot written to another bucket (before tsnap.s3_bucket was changed)
 * is not there to be read.  An older snapshot whose fingerprint has come
 * back (a column renamed and renamed back) is not returned either:
 * retention reckons from the newest snapshot, so only a key that is the
 * newest when it is handed out is sure to stay readable for keep_for.
 */
bool
tsnap_lookup_snapshot(Oid relid, const pg_uuid_t *tracking_id, int64 version,
					  const char *fingerprint, TsnapSnapshotResult *result)
{
	Relation	snapshots;
	Snapshot	latest;
	SysScanDesc scan;
	ScanKeyData keys[2];
	HeapTuple	tuple;
	bool		found = false;
	bool		higher = false;		/* a snapshot of a newer version */
	bool		other = false;		/* another at this version ... */
	TimestampTz other_created = 0;	/* ... made this late */

	snapshots = open_catalog("snapshots");
	if (snapshots == NULL)
		return false;
	latest = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&keys[0], 2, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], 4, BTGreaterEqualStrategyNumber, F_INT8GE,
				Int64GetDatum(version));
	scan = systable_beginscan(snapshots, catalog_index("snapshots_content_key"),
							  true, latest, 2, keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Datum		values[SNAPSHOTS_NATTS];
		bool		nulls[SNAPSHOTS_NATTS];
		TimestampTz created;

		heap_deform_tuple(tuple, RelationGetDescr(snapshots), values, nulls);
		if (memcmp(DatumGetUUIDP(values[SNAP_TRACKING_ID]), tracking_id,
				   sizeof(pg_uuid_t)) != 0 ||
			!text_equals(values[SNAP_ENDPOINT], tsnap_s3_endpoint) ||
			!text_equals(values[SNAP_BUCKET], tsnap_s3_bucket))
			continue;
		if (DatumGetInt64(values[SNAP_ROWS_VERSION]) != version)
		{
			higher = true;
			continue;
		}
		created = DatumGetTimestampTz(values[SNAP_CREATED_AT]);
		if (!text_equals(values[SNAP_FINGERPRINT], fingerprint))
		{
			if (!other || created > other_created)
				other_created = created;
			other = true;
			continue;
		}
		if (found && created <= result->created_at)
			continue;
		text_to_cstring_buffer(DatumGetTextPP(values[SNAP_KEY]), result->key,
							   sizeof(result->key));
		result->rows_version = version;
		result->rows = DatumGetInt64(values[SNAP_ROWS]);
		result->bytes = DatumGetInt64(values[SNAP_BYTES]);
		text_to_cstring_buffer(DatumGetTextPP(values[SNAP_ETAG]), result->etag,
							   sizeof(result->etag));
		result->parts = DatumGetInt32(values[SNAP_PARTS]);
		result->created_at = created;
		result->timeline = DatumGetInt64(values[SNAP_TIMELINE]);
		found = true;
	}
	systable_endscan(scan);
	UnregisterSnapshot(latest);
	table_close(snapshots, AccessShareLock);

	return found && !higher && !(other && other_created > result->created_at);
}

static void
exec_write(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values,
										   NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

/* Become the catalog owner and connect to SPI, for a write. */
static void
begin_write(TsnapCatalogUser *saved)
{
	if (!tsnap_catalog_enter(saved))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tsnap\" is not installed in this database")));
	SPI_connect();
}

/*
 * Before an object can appear at key: queue it for deletion, in the current
 * transaction, which the caller commits before completing the upload.
 * tsnap_record_snapshot takes it off the queue again; if the worker dies in
 * between, retention deletes the unrecorded object (scan.c).
 */
void
tsnap_record_upload_intent(const char *key)
{
	TsnapCatalogUser saved;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	begin_write(&saved);
	values[0] = CStringGetTextDatum(key);
	values[1] = CStringGetTextDatum(tsnap_s3_endpoint);
	values[2] = CStringGetTextDatum(tsnap_s3_bucket);
	exec_write("INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
			   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", 3, argtypes, values);
	SPI_finish();
	tsnap_catalog_leave(&saved);
}

/*
 * Retention, inside begin_write: move the snapshots of relid (of every
 * table, if InvalidOid) that may go to tsnap.pending_deletes, oldest first.
 * A snapshot may go once tsnap.keep_versions newer ones exist and it was
 * superseded (or recorded, if that was later: a slow build of an older
 * version is recorded after newer ones) at least tsnap.keep_for ago; since
 * a hit returns only a table's current snapshot, every key handed out stays
 * readable for at least keep_for.  keep_key, the key being returned, never
 * goes.
 */
static void
apply_retention(Oid relid, const char *keep_key)
{
	Oid			argtypes[4] = {REGCLASSOID, INT4OID, FLOAT8OID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = ObjectIdGetDatum(relid);
	if (!OidIsValid(relid))
		nulls[0] = 'n';
	values[1] = Int32GetDatum(tsnap_keep_versions);
	values[2] = Float8GetDatum((double) tsnap_keep_for);
	values[3] = CStringGetTextDatum(keep_key ? keep_key : "");
	if (SPI_execute_with_args("WITH ranked AS ("
							  "  SELECT key, rows_version, created_at,"
							  "         pg_catalog.row_number() OVER w AS newest_first,"
							  "         pg_catalog.lag(created_at) OVER w AS superseded_at"
							  "  FROM tsnap.snapshots"
							  "  WHERE $1 IS NULL OR tbl OPERATOR(pg_catalog.=) $1"
							  "  WINDOW w AS (PARTITION BY tbl ORDER BY rows_version DESC, created_at DESC)), "
							  "old AS (SELECT key, rows_version FROM ranked"
							  "  WHERE newest_first OPERATOR(pg_catalog.>) $2"
							  "  AND GREATEST(superseded_at, created_at) OPERATOR(pg_catalog.<=)"
							  "      (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $3))"
							  "  AND key OPERATOR(pg_catalog.<>) $4), "
							  "locked AS (SELECT s.key, old.rows_version FROM tsnap.snapshots s, old"
							  "      WHERE s.key OPERATOR(pg_catalog.=) old.key"
							  "      FOR UPDATE OF s SKIP LOCKED), "
							  "r AS (DELETE FROM tsnap.snapshots s USING locked"
							  "      WHERE s.key OPERATOR(pg_catalog.=) locked.key"
							  "      RETURNING s.key, s.endpoint, s.bucket, s.rows_version) "
							  "INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
							  "SELECT key, endpoint, bucket FROM r ORDER BY rows_version "
							  "ON CONFLICT DO NOTHING",
							  4, argtypes, values, nulls, false, 0) < 0)
		elog(ERROR, "could not apply retention");
}

/*
 * Retention for every table of this database, in a transaction of its own:
 * snapshots become deletable as time passes, not only when a newer one is
 * recorded.  Run by workers after each request.
 */
void
tsnap_apply_retention_all(void)
{
	TsnapCatalogUser saved;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (tsnap_catalog_enter(&saved))
	{
		SPI_connect();
		apply_retention(InvalidOid, NULL);
		SPI_finish();
		tsnap_catalog_leave(&saved);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Record a finished upload, in a read-write transaction of its own.
 *
 * If stale_key is set (a hit whose object had vanished), that row is retired
 * first.  If another worker recorded the same content meanwhile, its row
 * wins: result becomes that row, our object is queued for deletion, and the
 * function returns false.  Then retention runs for the table
 * (tsnap_apply_retention), never touching the key just recorded.
 */
bool
tsnap_record_snapshot(Oid relid, const pg_uuid_t *tracking_id,
					  const char *fingerprint, const char *stale_key,
					  TsnapSnapshotResult *result)
{
	TsnapCatalogUser saved;
	Oid			argtypes[12] = {TEXTOID, REGCLASSOID, UUIDOID, INT8OID, TEXTOID,
		INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[12];
	Oid			keyarg[1] = {TEXTOID};
	Datum		keyval[1];
	bool		inserted;

	begin_write(&saved);

	/*
	 * The table's lock went with the scan's transaction, so it may have been
	 * dropped or untracked since.  Then record nothing: the upload intent
	 * stays queued and retention deletes the object.
	 */
	values[0] = ObjectIdGetDatum(relid);
	values[1] = UUIDPGetDatum(tracking_id);
	/* and the row lock makes recorders of one table take turns */
	exec_write("SELECT 1 FROM tsnap.tracked_tables WHERE tbl OPERATOR(pg_catalog.=) $1 "
			   "AND tracking_id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
			   2, argtypes + 1, values);
	if (SPI_processed == 0)
	{
		char	   *relname = get_rel_name(relid);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 relname ?
				 errmsg("table \"%s\" was untracked while its snapshot was being built",
						relname) :
				 errmsg("table with OID %u was dropped while its snapshot was being built",
						relid)));
	}

	if (stale_key && stale_key[0])
	{
		keyval[0] = CStringGetTextDatum(stale_key);
		exec_write("WITH r AS (DELETE FROM tsnap.snapshots WHERE key OPERATOR(pg_catalog.=) $1 "
				   "RETURNING key, endpoint, bucket) "
				   "INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
				   "SELECT key, endpoint, bucket FROM r "
				   "ON CONFLICT DO NOTHING", 1, keyarg, keyval);
	}

	values[0] = CStringGetTextDatum(result->key);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = UUIDPGetDatum(tracking_id);
	values[3] = Int64GetDatum(result->rows_version);
	values[4] = CStringGetTextDatum(fingerprint);
	values[5] = Int64GetDatum(result->rows);
	values[6] = Int64GetDatum(result->bytes);
	values[7] = CStringGetTextDatum(result->etag);
	values[8] = Int32GetDatum(result->parts);
	values[9] = CStringGetTextDatum(tsnap_s3_endpoint);
	values[10] = CStringGetTextDatum(tsnap_s3_bucket);
	values[11] = Int64GetDatum((int64) GetWALInsertionTimeLine());

	/*
	 * If the table's newest snapshot here already has this content (another
	 * worker was quicker), it wins, and the upload intent keeps our copy
	 * queued for deletion.  An older snapshot with this content (a
	 * fingerprint that came back) does not: ours becomes the newest.
	 */
	exec_write("SELECT " RESULT_COLUMNS ", "
			   "rows_version OPERATOR(pg_catalog.=) $4 AND fingerprint OPERATOR(pg_catalog.=) $5 "
			   "FROM tsnap.snapshots "
			   "WHERE tbl OPERATOR(pg_catalog.=) $2 AND tracking_id OPERATOR(pg_catalog.=) $3 "
			   "AND endpoint OPERATOR(pg_catalog.=) $10 AND bucket OPERATOR(pg_catalog.=) $11 "
			   "ORDER BY rows_version DESC, created_at DESC LIMIT 1",
			   12, argtypes, values);
	inserted = !(SPI_processed == 1 && get_bool(SPI_tuptable, RESULT_NCOLUMNS + 1));
	if (inserted)
	{
		exec_write("INSERT INTO tsnap.snapshots (key, tbl, tracking_id, rows_version, "
				   "fingerprint, rows, bytes, etag, parts, endpoint, bucket, timeline) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
				   "RETURNING " RESULT_COLUMNS, 12, argtypes, values);
		fill_result(result);
		/* recorded: no longer a candidate for deletion */
		keyval[0] = values[0];
		exec_write("DELETE FROM tsnap.pending_deletes WHERE key OPERATOR(pg_catalog.=) $1",
				   1, keyarg, keyval);
	}
	else
		fill_result(result);

	apply_retention(relid, result->key);

	SPI_finish();
	tsnap_catalog_leave(&saved);
	return inserted;
}
