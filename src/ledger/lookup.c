/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  The read-only lookups of tsnap.snapshots: a table's current snapshot,
 *	  for the hit path, and the snapshot a key names, for tsnap_restore.
 *
 * It reads with a direct index scan rather than SPI: a hit is meant to
 * cost about as much as a trivial SELECT, and executor start-up for a query
 * cost more than the rest of the call together.  It needs no privilege
 * check: tsnap reads its own catalog, and the caller has checked the table.
 *
 * It reads the latest snapshot of the catalog, not the transaction's, so
 * that a REPEATABLE READ caller never gets a key that retention removed
 * (and deleted from the bucket) after its transaction began.  The version
 * it is asked for comes from the transaction's snapshot (tracking/version.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common/common.h"
#include "ledger/ledger.h"
#include "ledger/snapshots_columns.h"

/* Does a text datum equal a C string? */
static bool
text_equals(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);

	return strlen(s) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(VARDATA_ANY(t), s, VARSIZE_ANY_EXHDR(t)) == 0;
}

/*
 * The uploaded snapshot of relid at (version, fingerprint) in the bucket
 * and endpoint tsnap is configured with now, if the latest committed state
 * of the catalog has one and nothing there supersedes it: no snapshot of a
 * newer version (in any compression), and none of this version and
 * compression recorded later.  A snapshot written to another bucket
 * (before tsnap.s3_bucket was changed) is not there to be read.  An older
 * snapshot whose fingerprint has come back (a column renamed and renamed
 * back) is not returned either: retention reckons from when a snapshot was
 * superseded (ledger.c), so only a key that is not superseded when it is
 * handed out is sure to stay readable for keep_for.  The other
 * compressions of the same version are snapshots beside it, not newer ones.
 */
bool
tsnap_lookup_snapshot(Oid relid, const pg_uuid_t *tracking_id, int64 version,
					  const char *fingerprint, TsnapCompression compression,
					  TsnapSnapshotResult *result)
{
	const char *compression_name = tsnap_codec(compression)->name;
	bool		has_compression;
	Oid			relid_snapshots;
	Relation	snapshots;
	Snapshot	latest;
	SysScanDesc scan;
	ScanKeyData keys[2];
	HeapTuple	tuple;
	bool		found = false;
	bool		higher = false;		/* a snapshot of a newer version */
	bool		other = false;		/* another at this version ... */
	TimestampTz other_created = 0;	/* ... made this late */

	relid_snapshots = tsnap_catalog_relid("snapshots");
	if (!OidIsValid(relid_snapshots))
		return false;
	snapshots = table_open(relid_snapshots, AccessShareLock);
	/* a database still on 0.1.0's SQL: no column, every snapshot none */
	has_compression = RelationGetDescr(snapshots)->natts >= Anum_snapshots_compression;
	if (!has_compression && compression != TSNAP_COMPRESSION_NONE)
	{
		table_close(snapshots, AccessShareLock);
		return false;
	}
	latest = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&keys[0], Anum_snapshots_tbl, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_snapshots_rows_version, BTGreaterEqualStrategyNumber, F_INT8GE,
				Int64GetDatum(version));
	scan = systable_beginscan(snapshots, tsnap_catalog_index("snapshots_content_key"),
							  true, latest, 2, keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Datum		values[Natts_snapshots];
		bool		nulls[Natts_snapshots];
		TimestampTz created;

		heap_deform_tuple(tuple, RelationGetDescr(snapshots), values, nulls);
		if (memcmp(DatumGetUUIDP(values[Anum_snapshots_tracking_id - 1]), tracking_id,
				   sizeof(pg_uuid_t)) != 0 ||
			!text_equals(values[Anum_snapshots_endpoint - 1], tsnap_store_endpoint()) ||
			!text_equals(values[Anum_snapshots_bucket - 1], tsnap_store_bucket()))
			continue;
		if (DatumGetInt64(values[Anum_snapshots_rows_version - 1]) != version)
		{
			higher = true;		/* in any compression */
			continue;
		}
		if (has_compression &&
			!text_equals(values[Anum_snapshots_compression - 1], compression_name))
			continue;
		created = DatumGetTimestampTz(values[Anum_snapshots_created_at - 1]);
		if (!text_equals(values[Anum_snapshots_fingerprint - 1], fingerprint))
		{
			if (!other || created > other_created)
				other_created = created;
			other = true;
			continue;
		}
		if (found && created <= result->created_at)
			continue;
		text_to_cstring_buffer(DatumGetTextPP(values[Anum_snapshots_key - 1]), result->key,
							   sizeof(result->key));
		result->rows_version = version;
		result->rows = DatumGetInt64(values[Anum_snapshots_rows - 1]);
		result->bytes = DatumGetInt64(values[Anum_snapshots_bytes - 1]);
		text_to_cstring_buffer(DatumGetTextPP(values[Anum_snapshots_etag - 1]), result->etag,
							   sizeof(result->etag));
		result->parts = DatumGetInt32(values[Anum_snapshots_parts - 1]);
		result->created_at = created;
		result->timeline = DatumGetInt64(values[Anum_snapshots_timeline - 1]);
		result->compression = compression;
		text_to_cstring_buffer(DatumGetTextPP(values[Anum_snapshots_bucket - 1]),
							   result->bucket, sizeof(result->bucket));
		found = true;
	}
	systable_endscan(scan);
	UnregisterSnapshot(latest);
	table_close(snapshots, AccessShareLock);

	return found && !higher && !(other && other_created > result->created_at);
}

/*
 * Is key a snapshot this database recorded?  Fills *recorded (strings
 * palloc'd in the caller's context) if so.  This is no hot path, so it
 * runs SQL, as the catalog owner with every operator qualified; the
 * caller's snapshot decides what it sees.
 */
bool
tsnap_lookup_key(const char *key, TsnapRecordedKey *recorded)
{
	MemoryContext callercxt = CurrentMemoryContext;
	TsnapCatalogUser saved;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found = false;

	if (!tsnap_catalog_enter(&saved))
		return false;
	values[0] = CStringGetTextDatum(key);
	SPI_connect();
	if (SPI_execute_with_args("SELECT tbl::pg_catalog.oid, tracking_id, rows_version, "
							  "endpoint, bucket FROM tsnap.snapshots "
							  "WHERE key OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up key \"%s\" in tsnap.snapshots", key);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old;

		old = MemoryContextSwitchTo(callercxt);
		recorded->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		memcpy(&recorded->tracking_id,
			   DatumGetUUIDP(SPI_getbinval(tuple, desc, 2, &isnull)),
			   sizeof(pg_uuid_t));
		recorded->rows_version = DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull));
		recorded->endpoint = SPI_getvalue(tuple, desc, 4);
		recorded->bucket = SPI_getvalue(tuple, desc, 5);
		MemoryContextSwitchTo(old);
		found = true;
	}
	SPI_finish();
	tsnap_catalog_leave(&saved);
	return found;
}
