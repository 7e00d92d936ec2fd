/*-------------------------------------------------------------------------
 *
 * history.c
 *	  Which version of which source each table holds: tsnap.restores, read
 *	  before a replace (never regress without force) and written by every
 *	  restore, in the caller's transaction; and the event trigger that
 *	  forgets a table when it is dropped.
 *
 * A source is a tracked table, named by the system identifier of its
 * cluster and its tracking_id (names can be reused, these cannot).  A
 * table that is itself the tracked source of the snapshot holds its own
 * rows_version, which counts every write since, so that is what an older
 * snapshot of it is compared with.
 *
 * The rows are tsnap's catalog: ordinary users have no rights on them, and
 * this file writes them as the catalog owner with search_path pinned and
 * every operator qualified (common/catalog.c).  They hold regclass, which
 * pg_dump writes by name, so a dump keeps them true; a dropped table's
 * rows go with it, or a later table given the same OID would inherit them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "common/common.h"
#include "restore/restore.h"
#include "tracking/tracking.h"

PG_FUNCTION_INFO_V1(tsnap_restores_on_sql_drop);

/*
 * The version of the manifest's source that target holds, or -1 when
 * nothing says.  The caller holds a lock on target that keeps other
 * restores (and, for the tracked source itself, writers) out.
 */
int64
tsnap_restore_current_version(Oid target, const TsnapManifest *m)
{
	TsnapCatalogUser saved;
	pg_uuid_t	tracking_id;
	int64		version;
	char		sysid[32];
	Oid			argtypes[3] = {OIDOID, TEXTOID, UUIDOID};
	Datum		values[3];

	snprintf(sysid, sizeof(sysid), UINT64_FORMAT, GetSystemIdentifier());
	version = tsnap_read_tracking(target, &tracking_id);
	if (version >= 0 && strcmp(m->system_identifier, sysid) == 0 &&
		memcmp(&tracking_id, &m->tracking_id, sizeof(pg_uuid_t)) == 0)
		return version + tsnap_pending_bumps_for(target);

	if (!tsnap_catalog_enter(&saved))
		return -1;
	values[0] = ObjectIdGetDatum(target);
	values[1] = CStringGetTextDatum(m->system_identifier);
	values[2] = UUIDPGetDatum(&m->tracking_id);
	version = -1;
	SPI_connect();
	if (SPI_execute_with_args("SELECT rows_version FROM tsnap.restores "
							  "WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1 "
							  "AND source_system_identifier OPERATOR(pg_catalog.=) $2 "
							  "AND source_tracking_id OPERATOR(pg_catalog.=) $3",
							  3, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap.restores");
	if (SPI_processed > 0)
	{
		bool		isnull;

		version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1,
											  &isnull));
	}
	SPI_finish();
	tsnap_catalog_leave(&saved);
	return version;
}

/*
 * Record that target now holds the manifest's source at its version.
 * After require_empty and replace the table holds that source alone, so
 * every other row of target goes; after append it holds the newest version
 * appended so far.
 */
void
tsnap_restore_record(Oid target, const TsnapManifest *m,
					 TsnapRestoreMode mode, int64 rows)
{
	TsnapCatalogUser saved;
	Oid			argtypes[10] = {REGCLASSOID, TEXTOID, UUIDOID, TEXTOID,
		TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID, BOOLOID};
	Datum		values[10];

	tsnap_catalog_enter_or_raise(&saved);
	if (mode != TSNAP_RESTORE_APPEND)
	{
		Oid			oidtype[1] = {OIDOID};
		Datum		oidvalue[1] = {ObjectIdGetDatum(target)};

		tsnap_exec("DELETE FROM tsnap.restores "
				   "WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
				   1, oidtype, oidvalue, NULL);
	}
	values[0] = ObjectIdGetDatum(target);
	values[1] = CStringGetTextDatum(m->system_identifier);
	values[2] = UUIDPGetDatum(&m->tracking_id);
	values[3] = CStringGetTextDatum(m->database);
	values[4] = CStringGetTextDatum(m->schema);
	values[5] = CStringGetTextDatum(m->table);
	values[6] = Int64GetDatum(m->rows_version);
	values[7] = CStringGetTextDatum(m->key);
	values[8] = Int64GetDatum(rows);
	values[9] = BoolGetDatum(mode == TSNAP_RESTORE_APPEND);
	tsnap_exec("INSERT INTO tsnap.restores AS r (target, source_system_identifier, "
			   "source_tracking_id, source_database, source_schema, source_table, "
			   "rows_version, key, rows) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
			   "ON CONFLICT (target, source_system_identifier, source_tracking_id) "
			   "DO UPDATE SET rows_version = CASE WHEN $10 "
			   "  THEN pg_catalog.int8larger(r.rows_version, excluded.rows_version) "
			   "  ELSE excluded.rows_version END, "
			   "key = excluded.key, rows = excluded.rows, "
			   "source_database = excluded.source_database, "
			   "source_schema = excluded.source_schema, "
			   "source_table = excluded.source_table, "
			   "restored_at = pg_catalog.now()",
			   10, argtypes, values, NULL);
	tsnap_catalog_leave(&saved);
}

/*
 * Event trigger on sql_drop: a dropped table's rows in tsnap.restores go
 * with it.
 */
Datum
tsnap_restores_on_sql_drop(PG_FUNCTION_ARGS)
{
	TsnapCatalogUser saved;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tsnap.restores_on_sql_drop() was not called by the event trigger manager")));
	if (!tsnap_catalog_enter(&saved))
		PG_RETURN_VOID();
	/* during DROP EXTENSION the table may be gone already */
	if (OidIsValid(tsnap_catalog_relid("restores")))
		tsnap_exec("DELETE FROM tsnap.restores WHERE target::pg_catalog.oid "
				   "OPERATOR(pg_catalog.=) ANY ("
				   "SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
				   "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
				   "AND objsubid OPERATOR(pg_catalog.=) 0)",
				   0, NULL, NULL, NULL);
	tsnap_catalog_leave(&saved);
	PG_RETURN_VOID();
}
