/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  The only writer of tsnap.snapshots and tsnap.pending_deletes.
 *
 * A key moves one way: an upload intent (a pending delete, written before
 * the object can exist), then a recorded snapshot (the intent removed in
 * the same transaction), then, once retention lets it go, a pending delete
 * again, until retention.c has deleted the object.  Every such move is
 * here, with the rules that decide it:
 *	- keep_versions and keep_for (apply_retention);
 *	- a table untracked or dropped: its snapshots go, deletable after
 *	  keep_for, so that a key handed out just before stays readable;
 *	- a stale hit (its object vanished) is retired when the new one is
 *	  recorded.
 * Writes run through SPI as the catalog owner (common/catalog.c), whose
 * search_path rules apply; every operator is schema-qualified besides.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common/common.h"
#include "ledger/ledger.h"
#include "settings.h"

/* what a recorded snapshot's row gives back, by name (fill_result) */
#define RESULT_COLUMNS "key, rows_version, rows, bytes, etag, created_at, parts, timeline, bucket"

/* what the compression column adds to it, where there is one */
#define RESULT_COMPRESSION ", compression"

/*
 * pending_deletes.not_before for the snapshots of a table that is untracked
 * or dropped: a key handed out just before stays readable for
 * tsnap.keep_for (a printf format taking keep_for in seconds).
 */
#define AFTER_KEEP_FOR_SQL \
	"pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => %d)"

static Datum
result_value(const char *column, bool *isnull)
{
	int			col = SPI_fnumber(SPI_tuptable->tupdesc, column);

	if (col <= 0)
		elog(ERROR, "column \"%s\" missing from a tsnap.snapshots result", column);
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col,
						 isnull);
}

static void
result_text(const char *column, char *dst, size_t dstlen)
{
	bool		isnull;
	Datum		d = result_value(column, &isnull);

	if (isnull)
		dst[0] = '\0';
	else
		text_to_cstring_buffer(DatumGetTextPP(d), dst, dstlen);
}

static int64
result_int8(const char *column)
{
	bool		isnull;
	Datum		d = result_value(column, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * RESULT_COLUMNS of the first row of SPI's result, and its compression if
 * the result has that column (none otherwise: see catalog_has_compression).
 */
static void
fill_result(TsnapSnapshotResult *result)
{
	bool		isnull;
	char		compression[NAMEDATALEN];

	result_text("key", result->key, sizeof(result->key));
	result->rows_version = result_int8("rows_version");
	result->rows = result_int8("rows");
	result->bytes = result_int8("bytes");
	result_text("etag", result->etag, sizeof(result->etag));
	result->created_at = DatumGetTimestampTz(result_value("created_at", &isnull));
	result->parts = DatumGetInt32(result_value("parts", &isnull));
	result->timeline = result_int8("timeline");
	result_text("bucket", result->bucket, sizeof(result->bucket));
	result->compression = TSNAP_COMPRESSION_NONE;
	if (SPI_fnumber(SPI_tuptable->tupdesc, "compression") > 0)
	{
		result_text("compression", compression, sizeof(compression));
		if (!tsnap_codec_by_name(compression, &result->compression))
			elog(ERROR, "tsnap.snapshots has a row with unknown compression \"%s\"",
				 compression);
	}
}

/*
 * Has this database's tsnap.snapshots the compression column of 0.2.0?  A
 * database whose extension is still on 0.1.0's SQL (the library was
 * updated, ALTER EXTENSION tsnap UPDATE not run yet) has not; every
 * snapshot it records is uncompressed, since 0.1.0's functions ask for
 * nothing else, and it goes on working as before.
 */
static bool
catalog_has_compression(void)
{
	return get_attnum(tsnap_catalog_relid("snapshots"), "compression") !=
		InvalidAttrNumber;
}

/* Run sql in the current SPI connection; its result stays in SPI_tuptable. */
static void
exec_write(const char *sql, int nargs, Oid *argtypes, Datum *values,
		   const char *nulls)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values,
										   nulls, false, 0);

	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

/* Become the catalog owner and connect to SPI, for a write. */
static void
begin_write(TsnapCatalogUser *saved)
{
	tsnap_catalog_enter_or_raise(saved);
	SPI_connect();
}

static void
end_write(TsnapCatalogUser *saved)
{
	SPI_finish();
	tsnap_catalog_leave(saved);
}

/*
 * Before an object can appear at key: queue it for deletion, in the current
 * transaction, which the caller commits before completing the upload.
 * tsnap_ledger_record takes it off the queue again; if the worker dies in
 * between, retention deletes the unrecorded object.
 */
void
tsnap_ledger_record_intent(const char *key)
{
	TsnapCatalogUser saved;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	tsnap_catalog_enter_or_raise(&saved);
	values[0] = CStringGetTextDatum(key);
	values[1] = CStringGetTextDatum(tsnap_store_endpoint());
	values[2] = CStringGetTextDatum(tsnap_store_bucket());
	tsnap_exec("INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
			   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", 3, argtypes, values,
			   NULL);
	tsnap_catalog_leave(&saved);
}

/*
 * The snapshots of relids (tables untracked or dropped in this command) go
 * to tsnap.pending_deletes, deletable after keep_for: a later tsnap_track
 * gets a new tracking_id, so they are never hits again.  The caller is
 * inside tsnap_catalog_enter.
 */
void
tsnap_ledger_retire_tables(List *relids)
{
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1];

	if (relids == NIL)
		return;
	values[0] = tsnap_oid_array(relids);
	tsnap_exec(psprintf("WITH r AS (DELETE FROM tsnap.snapshots "
						"  WHERE tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
						"  RETURNING key, endpoint, bucket) "
						"INSERT INTO tsnap.pending_deletes (key, endpoint, bucket, not_before) "
						"SELECT key, endpoint, bucket, " AFTER_KEEP_FOR_SQL " FROM r "
						"ON CONFLICT DO NOTHING", tsnap_keep_for),
			   1, argtypes, values, NULL);
}

/*
 * Retention, inside begin_write: move the snapshots of relid (of every
 * table, if InvalidOid) that may go to tsnap.pending_deletes, oldest first.
 * A snapshot may go once tsnap.keep_versions newer ones exist and it was
 * superseded (or recorded, if that was later: a slow build of an older
 * version is recorded after newer ones) at least tsnap.keep_for ago; since
 * a hit returns only a snapshot nothing supersedes yet (lookup.c), every
 * key handed out stays readable for at least keep_for.  keep_key, the key
 * being returned, never goes.
 *
 * Newer means of a later version, in any compression, or of the same
 * version and compression and recorded later (a fingerprint that changed
 * without a write).  The other compressions of the same version are beside
 * a snapshot, not newer: each stays a hit for its callers.  A compression
 * nobody asks for any more still goes once the table has moved on.
 * Superseded means when the first newer one was recorded.
 */
static void
apply_retention(Oid relid, const char *keep_key, bool has_compression)
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
	if (SPI_execute_with_args(psprintf("WITH old AS ("
							  "  SELECT s.key, s.rows_version FROM tsnap.snapshots s,"
							  "  LATERAL (SELECT pg_catalog.count(*) AS newer,"
							  "                  pg_catalog.min(n.created_at) AS superseded_at"
							  "    FROM tsnap.snapshots n"
							  "    WHERE n.tbl OPERATOR(pg_catalog.=) s.tbl"
							  "    AND (n.rows_version OPERATOR(pg_catalog.>) s.rows_version"
							  "         OR (n.rows_version OPERATOR(pg_catalog.=) s.rows_version"
							  "             %s"
							  "             AND (n.created_at OPERATOR(pg_catalog.>) s.created_at"
							  "                  OR (n.created_at OPERATOR(pg_catalog.=) s.created_at"
							  "                      AND n.key OPERATOR(pg_catalog.>) s.key))))) x"
							  "  WHERE ($1 IS NULL OR s.tbl OPERATOR(pg_catalog.=) $1)"
							  "  AND x.newer OPERATOR(pg_catalog.>=) $2"
							  "  AND GREATEST(x.superseded_at, s.created_at) OPERATOR(pg_catalog.<=)"
							  "      (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $3))"
							  "  AND s.key OPERATOR(pg_catalog.<>) $4), "
							  "locked AS (SELECT s.key, old.rows_version FROM tsnap.snapshots s, old"
							  "      WHERE s.key OPERATOR(pg_catalog.=) old.key"
							  "      FOR UPDATE OF s SKIP LOCKED), "
							  "r AS (DELETE FROM tsnap.snapshots s USING locked"
							  "      WHERE s.key OPERATOR(pg_catalog.=) locked.key"
							  "      RETURNING s.key, s.endpoint, s.bucket, s.rows_version) "
							  "INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
							  "SELECT key, endpoint, bucket FROM r ORDER BY rows_version "
							  "ON CONFLICT DO NOTHING",
							  has_compression ?
							  "AND n.compression OPERATOR(pg_catalog.=) s.compression" : ""),
							  4, argtypes, values, nulls, false, 0) < 0)
		elog(ERROR, "could not apply retention");
}

/*
 * Retention for every table of this database, in a transaction of its own:
 * snapshots become deletable as time passes, not only when a newer one is
 * recorded.  Run by workers after each request.
 */
void
tsnap_ledger_apply_retention_all(void)
{
	TsnapCatalogUser saved;

	tsnap_begin_transaction();
	if (tsnap_catalog_enter(&saved))
	{
		SPI_connect();
		apply_retention(InvalidOid, NULL, catalog_has_compression());
		end_write(&saved);
	}
	tsnap_commit_transaction();
}

/*
 * Inside begin_write: lock relid's tracking row if it is still tracked
 * under tracking_id, else raise 55000.  The table's lock went with the
 * scan's transaction, so it may have been dropped or untracked since; then
 * nothing is recorded, the upload intent stays queued and retention
 * deletes the object.  The row lock also makes recorders of one table take
 * turns.
 */
static void
lock_tracking(Oid relid, const pg_uuid_t *tracking_id)
{
	Oid			argtypes[2] = {REGCLASSOID, UUIDOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = UUIDPGetDatum(tracking_id);
	exec_write("SELECT 1 FROM tsnap.tracked_tables WHERE tbl OPERATOR(pg_catalog.=) $1 "
			   "AND tracking_id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
			   2, argtypes, values, NULL);
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
}

/* Inside begin_write: the snapshot at key goes to the delete queue. */
static void
retire_key(const char *key)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(key);
	exec_write("WITH r AS (DELETE FROM tsnap.snapshots WHERE key OPERATOR(pg_catalog.=) $1 "
			   "RETURNING key, endpoint, bucket) "
			   "INSERT INTO tsnap.pending_deletes (key, endpoint, bucket) "
			   "SELECT key, endpoint, bucket FROM r "
			   "ON CONFLICT DO NOTHING", 1, argtypes, values, NULL);
}

/*
 * Inside begin_write: insert the snapshot in result, unless the table's
 * newest snapshot here in its compression already has this content
 * (another worker was quicker): that one wins, and the upload intent keeps
 * our copy queued for deletion.  An older snapshot with this content (a
 * fingerprint that came back) does not: ours becomes the newest.  Either
 * way result becomes the row that stands; returns whether it is ours.
 */
static bool
insert_unless_recorded(Oid relid, const pg_uuid_t *tracking_id,
					   const char *fingerprint, bool has_compression,
					   TsnapSnapshotResult *result)
{
	Oid			argtypes[13] = {TEXTOID, REGCLASSOID, UUIDOID, INT8OID, TEXTOID,
		INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[13];
	bool		isnull;
	const char *columns;

	values[0] = CStringGetTextDatum(result->key);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = UUIDPGetDatum(tracking_id);
	values[3] = Int64GetDatum(result->rows_version);
	values[4] = CStringGetTextDatum(fingerprint);
	values[5] = Int64GetDatum(result->rows);
	values[6] = Int64GetDatum(result->bytes);
	values[7] = CStringGetTextDatum(result->etag);
	values[8] = Int32GetDatum(result->parts);
	values[9] = CStringGetTextDatum(tsnap_store_endpoint());
	values[10] = CStringGetTextDatum(tsnap_store_bucket());
	values[11] = Int64GetDatum((int64) GetWALInsertionTimeLine());
	values[12] = CStringGetTextDatum(tsnap_codec(result->compression)->name);
	columns = has_compression ? RESULT_COLUMNS RESULT_COMPRESSION : RESULT_COLUMNS;

	exec_write(psprintf("SELECT %s, "
						"rows_version OPERATOR(pg_catalog.=) $4 AND fingerprint OPERATOR(pg_catalog.=) $5 AS same "
						"FROM tsnap.snapshots "
						"WHERE tbl OPERATOR(pg_catalog.=) $2 AND tracking_id OPERATOR(pg_catalog.=) $3 "
						"AND endpoint OPERATOR(pg_catalog.=) $10 AND bucket OPERATOR(pg_catalog.=) $11 "
						"%s"
						"ORDER BY rows_version DESC, created_at DESC LIMIT 1",
						columns,
						has_compression ?
						"AND compression OPERATOR(pg_catalog.=) $13 " : ""),
			   13, argtypes, values, NULL);
	if (SPI_processed == 1 && DatumGetBool(result_value("same", &isnull)))
	{
		fill_result(result);
		return false;
	}

	exec_write(psprintf("INSERT INTO tsnap.snapshots (key, tbl, tracking_id, rows_version, "
						"fingerprint, rows, bytes, etag, parts, endpoint, bucket, timeline%s) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12%s) "
						"RETURNING %s",
						has_compression ? ", compression" : "",
						has_compression ? ", $13" : "", columns),
			   13, argtypes, values, NULL);
	fill_result(result);
	/* recorded: no longer a candidate for deletion */
	exec_write("DELETE FROM tsnap.pending_deletes WHERE key OPERATOR(pg_catalog.=) $1",
			   1, argtypes, values, NULL);
	return true;
}

/*
 * Record a finished upload, in the current transaction, which the caller
 * commits: retire stale_key if set (a hit whose object had vanished),
 * insert the snapshot unless another worker recorded the same content
 * meanwhile (then result becomes that row and false is returned), then
 * apply retention to the table, never touching the key that stands.
 */
bool
tsnap_ledger_record(Oid relid, const pg_uuid_t *tracking_id,
					const char *fingerprint, const char *stale_key,
					TsnapSnapshotResult *result)
{
	TsnapCatalogUser saved;
	bool		inserted;
	bool		has_compression;

	begin_write(&saved);
	has_compression = catalog_has_compression();
	if (!has_compression && result->compression != TSNAP_COMPRESSION_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap's catalog in this database cannot record compressed snapshots"),
				 errhint("Run ALTER EXTENSION tsnap UPDATE.")));
	lock_tracking(relid, tracking_id);
	if (stale_key && stale_key[0])
		retire_key(stale_key);
	inserted = insert_unless_recorded(relid, tracking_id, fingerprint,
									  has_compression, result);
	apply_retention(relid, result->key, has_compression);
	end_write(&saved);
	return inserted;
}

/*
 * The delete queue, for retention.c, which calls these inside
 * tsnap_catalog_enter in one transaction: the rows it locks stay locked
 * until it commits.
 */

/*
 * Snapshots whose table is no longer tracked under their tracking_id can
 * never be hits.  Untracking and DROP TABLE retire them; this catches one
 * recorded just as its table went (tsnap_ledger_record checks, but cannot
 * lock out a concurrent DROP).
 */
void
tsnap_ledger_retire_untracked(void)
{
	tsnap_exec(psprintf("WITH gone AS (SELECT s.key FROM tsnap.snapshots s WHERE NOT EXISTS "
						"  (SELECT FROM tsnap.tracked_tables t "
						"   WHERE t.tbl OPERATOR(pg_catalog.=) s.tbl "
						"   AND t.tracking_id OPERATOR(pg_catalog.=) s.tracking_id) "
						"  FOR UPDATE OF s SKIP LOCKED), "
						"r AS (DELETE FROM tsnap.snapshots s USING gone "
						"  WHERE s.key OPERATOR(pg_catalog.=) gone.key "
						"  RETURNING s.key, s.endpoint, s.bucket) "
						"INSERT INTO tsnap.pending_deletes (key, endpoint, bucket, not_before) "
						"SELECT key, endpoint, bucket, " AFTER_KEEP_FOR_SQL " FROM r "
						"ON CONFLICT DO NOTHING", tsnap_keep_for),
			   0, NULL, NULL, NULL);
}

/*
 * Up to limit pending deletes that are due, oldest first, locked, as
 * TsnapPendingDelete in the caller's memory context.  Keys a live worker
 * is writing (in_flight) are upload intents that its record will remove;
 * they are left out before anything is locked, since a lock held through
 * a batch of deletes would make that record wait.  A worker publishes its
 * key before it inserts the intent, so an intent this transaction can see
 * is already known to in_flight.  Rows another pass holds are skipped.
 */
List *
tsnap_ledger_due_deletes(int limit, TsnapKeyInFlight in_flight)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	List	   *candidates = NIL;
	List	   *due = NIL;
	uint64		i;

	values[0] = Int32GetDatum(limit);
	SPI_connect();
	exec_write("SELECT key FROM tsnap.pending_deletes "
			   "WHERE not_before OPERATOR(pg_catalog.<=) pg_catalog.now() "
			   "ORDER BY queued_at, key LIMIT $1", 1, argtypes, values, NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i],
									   SPI_tuptable->tupdesc, 1);

		if (!in_flight(key))
			candidates = lappend(candidates, key);
	}
	if (candidates != NIL)
	{
		Datum	   *keys = palloc(sizeof(Datum) * list_length(candidates));
		ListCell   *lc;
		int			n = 0;

		foreach(lc, candidates)
			keys[n++] = CStringGetTextDatum(lfirst(lc));
		argtypes[0] = TEXTARRAYOID;
		values[0] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1,
													false, TYPALIGN_INT));
		exec_write("SELECT key, endpoint, bucket FROM tsnap.pending_deletes "
				   "WHERE key OPERATOR(pg_catalog.=) ANY ($1) "
				   "ORDER BY queued_at, key FOR UPDATE SKIP LOCKED",
				   1, argtypes, values, NULL);
	}
	for (i = 0; candidates != NIL && i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(callercxt);
		TsnapPendingDelete *d = palloc(sizeof(TsnapPendingDelete));

		d->key = SPI_getvalue(tuple, desc, 1);
		d->endpoint = SPI_getvalue(tuple, desc, 2);
		d->bucket = SPI_getvalue(tuple, desc, 3);
		due = lappend(due, d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return due;
}

/*
 * The object at key is gone (failure NULL), or could not be deleted
 * (failure says why; a later pass retries).
 */
void
tsnap_ledger_delete_done(const char *key, const char *failure)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(key);
	if (failure == NULL)
		tsnap_exec("DELETE FROM tsnap.pending_deletes WHERE key OPERATOR(pg_catalog.=) $1",
				   1, argtypes, values, NULL);
	else
	{
		values[1] = CStringGetTextDatum(failure);
		tsnap_exec("UPDATE tsnap.pending_deletes "
				   "SET attempts = attempts OPERATOR(pg_catalog.+) 1, last_error = $2 "
				   "WHERE key OPERATOR(pg_catalog.=) $1",
				   2, argtypes, values, NULL);
	}
}
