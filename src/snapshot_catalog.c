/*-------------------------------------------------------------------------
 *
 * snapshot_catalog.c
 *	  Reading and recording snapshots in tsnap.snapshots.
 *
 * All access runs as the catalog owner (tsnap_catalog_enter).  Two reads use
 * deliberately different snapshots:
 *	- the version and tracking_id come from the current snapshot, so that a
 *	  worker's version matches the rows it scans in the same transaction;
 *	- the lookup of an uploaded snapshot uses the latest snapshot, so that a
 *	  REPEATABLE READ caller never gets a key that retention removed (and
 *	  deleted from the bucket) after its transaction began.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
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

/* key, rows_version, rows, bytes, etag, created_at of the first row */
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
}

#define RESULT_COLUMNS "key, rows_version, rows, bytes, etag, created_at"

/*
 * Committed rows_version of relid and its tracking_id, in the current
 * snapshot; -1 when the table is not tracked.
 */
int64
tsnap_read_tracking(Oid relid, pg_uuid_t *tracking_id)
{
	TsnapCatalogUser saved;
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	int64		version = -1;

	if (!tsnap_catalog_enter(&saved))
		return -1;

	SPI_connect();
	if (SPI_execute_with_args("SELECT t.tracking_id, "
							  "(SELECT COALESCE(pg_catalog.sum(s.bumps), 0) "
							  " FROM tsnap.version_shards s WHERE s.tbl = t.tbl)::int8 "
							  "FROM tsnap.tracked_tables t WHERE t.tbl = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap version of relation %u", relid);
	if (SPI_processed == 1)
	{
		bool		isnull;

		memcpy(tracking_id,
			   DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull)),
			   sizeof(pg_uuid_t));
		version = get_int8(SPI_tuptable, 2);
	}
	SPI_finish();
	tsnap_catalog_leave(&saved);

	return version;
}

/*
 * The uploaded snapshot of relid at (version, fingerprint), if the latest
 * committed state of the catalog has one.
 */
bool
tsnap_lookup_snapshot(Oid relid, const pg_uuid_t *tracking_id, int64 version,
					  const char *fingerprint, TsnapSnapshotResult *result)
{
	TsnapCatalogUser saved;
	Oid			argtypes[4] = {REGCLASSOID, UUIDOID, INT8OID, TEXTOID};
	Datum		values[4];
	bool		found;

	values[0] = ObjectIdGetDatum(relid);
	values[1] = UUIDPGetDatum(tracking_id);
	values[2] = Int64GetDatum(version);
	values[3] = CStringGetTextDatum(fingerprint);

	if (!tsnap_catalog_enter(&saved))
		return false;

	PushActiveSnapshot(GetLatestSnapshot());
	SPI_connect();
	if (SPI_execute_with_args("SELECT " RESULT_COLUMNS " FROM tsnap.snapshots "
							  "WHERE tbl = $1 AND rows_version = $3 "
							  "AND fingerprint = $4 AND tracking_id = $2",
							  4, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap.snapshots");
	found = (SPI_processed == 1);
	if (found)
		fill_result(result);
	SPI_finish();
	PopActiveSnapshot();
	tsnap_catalog_leave(&saved);

	return found;
}

static void
exec_write(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values,
										   NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * Record a finished upload, in a read-write transaction of its own.
 *
 * If stale_key is set (a hit whose object had vanished), that row is retired
 * first.  If another worker recorded the same content meanwhile, its row
 * wins: result becomes that row, our object is queued for deletion, and the
 * function returns false.  Then snapshots beyond tsnap.keep_versions are
 * moved, oldest first, to tsnap.pending_deletes.
 */
bool
tsnap_record_snapshot(Oid relid, const pg_uuid_t *tracking_id,
					  const char *fingerprint, const char *stale_key,
					  TsnapSnapshotResult *result)
{
	TsnapCatalogUser saved;
	Oid			argtypes[9] = {TEXTOID, REGCLASSOID, UUIDOID, INT8OID, TEXTOID,
	INT8OID, INT8OID, TEXTOID, INT4OID};
	Datum		values[9];
	Oid			keyarg[1] = {TEXTOID};
	Datum		keyval[1];
	Oid			retarg[2] = {REGCLASSOID, INT4OID};
	Datum		retval[2];
	bool		inserted;

	if (!tsnap_catalog_enter(&saved))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tsnap\" is not installed in this database")));

	SPI_connect();

	if (stale_key && stale_key[0])
	{
		keyval[0] = CStringGetTextDatum(stale_key);
		exec_write("WITH r AS (DELETE FROM tsnap.snapshots WHERE key = $1 RETURNING key) "
				   "INSERT INTO tsnap.pending_deletes (key) SELECT key FROM r "
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
	exec_write("INSERT INTO tsnap.snapshots (key, tbl, tracking_id, rows_version, "
			   "fingerprint, rows, bytes, etag, parts) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
			   "ON CONFLICT (tbl, rows_version, fingerprint) DO NOTHING "
			   "RETURNING " RESULT_COLUMNS, 9, argtypes, values);
	inserted = (SPI_processed == 1);
	if (inserted)
		fill_result(result);
	else
	{
		keyval[0] = values[0];
		exec_write("INSERT INTO tsnap.pending_deletes (key) VALUES ($1) "
				   "ON CONFLICT DO NOTHING", 1, keyarg, keyval);
		exec_write("SELECT " RESULT_COLUMNS " FROM tsnap.snapshots "
				   "WHERE tbl = $2 AND rows_version = $4 AND fingerprint = $5",
				   5, argtypes, values);
		if (SPI_processed != 1)
			elog(ERROR, "conflicting snapshot of relation %u vanished", relid);
		fill_result(result);
	}

	retval[0] = ObjectIdGetDatum(relid);
	retval[1] = Int32GetDatum(tsnap_keep_versions);
	exec_write("WITH old AS (SELECT key FROM tsnap.snapshots WHERE tbl = $1 "
			   "             ORDER BY rows_version DESC, created_at DESC OFFSET $2), "
			   "r AS (DELETE FROM tsnap.snapshots s USING old "
			   "      WHERE s.key = old.key RETURNING s.key, s.rows_version) "
			   "INSERT INTO tsnap.pending_deletes (key) "
			   "SELECT key FROM r ORDER BY rows_version "
			   "ON CONFLICT DO NOTHING", 2, retarg, retval);

	SPI_finish();
	tsnap_catalog_leave(&saved);
	return inserted;
}
