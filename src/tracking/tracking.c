/*-------------------------------------------------------------------------
 *
 * tracking.c
 *	  tsnap_track and tsnap_untrack, and the event triggers that keep
 *	  tracking whole while tables change around it.
 *
 * Tracking a table puts the statement-level trigger tsnap_tracking, enabled
 * ALWAYS, on the table and on every relative (see inheritance.c), and the
 * row-level trigger tsnap_tracking_replica, enabled REPLICA, on every
 * relative that holds rows: logical replication apply runs with
 * session_replication_role = replica and fires statement-level triggers only
 * for TRUNCATE.  The triggers are created by the catalog owner and tied to
 * the extension by an automatic dependency so that DROP EXTENSION removes
 * them.
 * pg_dump dumps them as ordinary triggers; when pg_restore re-creates them,
 * the ddl_command_end event trigger ties them to the extension again.
 *
 * Who may do what: only the table's owner (or a superuser) may track or
 * untrack; all catalog work then runs as the catalog owner (catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "common/common.h"
#include "tracking/tracking.h"
#include "ledger/ledger.h"

PG_FUNCTION_INFO_V1(tsnap_track);
PG_FUNCTION_INFO_V1(tsnap_untrack);
PG_FUNCTION_INFO_V1(tsnap_on_ddl_command_end);
PG_FUNCTION_INFO_V1(tsnap_on_sql_drop);

/* set while tsnap itself runs DDL, so the event trigger does not recurse */
static bool ensuring = false;

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Open relid for (un)tracking with the lock CREATE TRIGGER takes, so writers
 * that started before us finish first.  Raises 42P01 for a missing relation
 * and 42501 unless the current user owns it.
 */
static Relation
open_owned_relation(Oid relid)
{
	Relation	rel = tsnap_open_relation(relid, ShareRowExclusiveLock);

	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER,
					   get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	return rel;
}

/*
 * tsnap's statement-level (row = false) or row-level (row = true) trigger on
 * relid: its OID and tgenabled, or InvalidOid.
 */
static Oid
find_tracking_trigger(Oid relid, bool row, char *tgenabled)
{
	Relation	tgrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	Oid			result = InvalidOid;
	Oid			funcoid = tsnap_trigger_function_oid();

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tuple);

		if (trig->tgfoid == funcoid && TRIGGER_FOR_ROW(trig->tgtype) == row)
		{
			result = trig->oid;
			*tgenabled = trig->tgenabled;
			break;
		}
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);

	return result;
}

/*
 * Raise sqlerrcode with message if relid's triggers are still needed by a
 * tracked table (relid itself or a relative): the guard for what a user may
 * not do to tsnap's triggers.
 */
static void
refuse_while_tracked(Oid relid, int sqlerrcode, const char *message)
{
	List	   *tracked = tsnap_tracked_among(tsnap_relatives(relid));

	if (tracked == NIL)
		return;
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", message),
			 errdetail("Table \"%s\" is tracked by tsnap; without the trigger its version would stop changing.",
					   get_rel_name(linitial_oid(tracked))),
			 errhint("Call tsnap_untrack(%s) first.",
					 tsnap_relation_literal(linitial_oid(tracked)))));
}

static void
run_ddl(const char *fmt, const char *target)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, fmt, target);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql.data);
	pfree(sql.data);
}

/*
 * Make one of tsnap's triggers enabled as it should be (the statement-level
 * one ALWAYS, the row-level one for REPLICA sessions) and, if create_missing,
 * present.  from_user_ddl says a user's DDL just ran: a trigger the user
 * disabled is then an error, not something to quietly undo; any other state
 * is quietly set back.
 */
static void
ensure_trigger(Oid relid, Oid tracked_relid, bool row, bool from_user_ddl,
			   bool create_missing)
{
	const char *trigname = row ? TSNAP_ROW_TRIGGER_NAME : TSNAP_TRIGGER_NAME;
	char		wanted = row ? TRIGGER_FIRES_ON_REPLICA : TRIGGER_FIRES_ALWAYS;
	char		tgenabled = 0;
	char	   *name = qualified_name(relid);
	StringInfoData sql;

	initStringInfo(&sql);
	if (!OidIsValid(find_tracking_trigger(relid, row, &tgenabled)))
	{
		if (!create_missing)
			return;
		appendStringInfo(&sql, "CREATE TRIGGER %s %s ON %s FOR EACH %s "
						 "EXECUTE FUNCTION tsnap.tracking_trigger()",
						 trigname,
						 row ? "AFTER INSERT OR UPDATE OR DELETE"
						 : "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE",
						 name, row ? "ROW" : "STATEMENT");
	}
	else if (tgenabled == wanted)
		return;
	else if (from_user_ddl && tgenabled == TRIGGER_DISABLED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trigger \"%s\" on table \"%s\" must stay enabled",
						trigname, get_rel_name(relid)),
				 errdetail("Table \"%s\" is tracked by tsnap; without the trigger its version would stop changing.",
						   get_rel_name(tracked_relid)),
				 errhint("Call tsnap_untrack(%s) first.",
						 tsnap_relation_literal(tracked_relid))));
	if (sql.len > 0 && SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create trigger \"%s\" on \"%s\"", trigname, name);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ENABLE %s TRIGGER %s", name,
					 row ? "REPLICA" : "ALWAYS", trigname);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not enable trigger \"%s\" on \"%s\"", trigname, name);
	pfree(sql.data);
}

/*
 * Make sure every relative of the tracked table carries tsnap's triggers:
 * the statement-level one everywhere, the row-level one on the relatives
 * that hold rows (row triggers on a partitioned table would only be cloned
 * to its partitions, which are relatives themselves).  Must run as the
 * catalog owner.
 */
static void
ensure_triggers(Oid tracked_relid, bool from_user_ddl, bool create_missing)
{
	List	   *relatives = tsnap_relatives(tracked_relid);
	ListCell   *lc;
	bool		save_ensuring = ensuring;

	/* an error must not leave the flag set for the rest of the session */
	ensuring = true;
	PG_TRY();
	{
		SPI_connect();
		foreach(lc, relatives)
		{
			Oid			relid = lfirst_oid(lc);
			char		relkind = get_rel_relkind(relid);

			if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
				continue;		/* gone, or a foreign table partition */
			ensure_trigger(relid, tracked_relid, false, from_user_ddl,
						   create_missing);
			if (relkind == RELKIND_RELATION)
				ensure_trigger(relid, tracked_relid, true, from_user_ddl,
							   create_missing);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		ensuring = save_ensuring;
	}
	PG_END_TRY();
}

/*
 * Is this pg_trigger row exactly a trigger tsnap_track installs: its
 * function, its name, AFTER, every event, no column list, no WHEN clause?
 */
static bool
trigger_intact(HeapTuple tuple)
{
	Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tuple);
	bool		row = TRIGGER_FOR_ROW(trig->tgtype);
	int16		wanted = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_DELETE |
		TRIGGER_TYPE_UPDATE | (row ? TRIGGER_TYPE_ROW : TRIGGER_TYPE_TRUNCATE);

	return trig->tgfoid == tsnap_trigger_function_oid() &&
		trig->tgtype == wanted &&
		strcmp(NameStr(trig->tgname),
			   row ? TSNAP_ROW_TRIGGER_NAME : TSNAP_TRIGGER_NAME) == 0 &&
		trig->tgattr.dim1 == 0 &&
		heap_attisnull(tuple, Anum_pg_trigger_tgqual, NULL) &&
		!OidIsValid(trig->tgconstraint);
}

/*
 * For a trigger a DDL command created or altered: a trigger under tsnap's
 * names on a table a tracked table needs must stay exactly tsnap's (CREATE
 * OR REPLACE TRIGGER could swap its function or events), and tsnap's own
 * trigger must keep its name, which the drop guard in tsnap_on_sql_drop goes
 * by (a renamed trigger could otherwise be dropped and tracking would stop
 * silently).  Then record that tsnap's trigger goes when the extension goes.  Triggers on user tables cannot be extension members
 * (pg_dump would skip them), so an automatic dependency does it: DROP
 * EXTENSION drops them without CASCADE.
 */
static void
tie_trigger_to_extension(Oid trigoid, bool renaming)
{
	Relation	tgrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	bool		ours = false;
	bool		named = false;
	bool		intact = false;
	Oid			tgrelid = InvalidOid;
	Oid			extoid = get_extension_oid("tsnap", true);
	ObjectAddress trigaddr;
	ObjectAddress extaddr;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];

	if (!OidIsValid(extoid))
		return;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tuple);

		ours = trig->tgfoid == tsnap_trigger_function_oid();
		named = strcmp(NameStr(trig->tgname), TSNAP_TRIGGER_NAME) == 0 ||
			strcmp(NameStr(trig->tgname), TSNAP_ROW_TRIGGER_NAME) == 0;
		intact = trigger_intact(tuple);
		tgrelid = trig->tgrelid;
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	if (named && !intact)
		refuse_while_tracked(tgrelid, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
							 psprintf(_("cannot replace tsnap's trigger on table \"%s\""),
									  get_rel_name(tgrelid)));
	if (!ours)
		return;
	if (renaming && !named)
		refuse_while_tracked(tgrelid, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
							 psprintf(_("cannot rename tsnap's trigger on table \"%s\""),
									  get_rel_name(tgrelid)));

	values[0] = ObjectIdGetDatum(trigoid);
	values[1] = ObjectIdGetDatum(extoid);
	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_depend "
							  "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass "
							  "AND objid OPERATOR(pg_catalog.=) $1 "
							  "AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass "
							  "AND refobjid OPERATOR(pg_catalog.=) $2",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_depend");
	if (SPI_processed == 0)
	{
		ObjectAddressSet(trigaddr, TriggerRelationId, trigoid);
		ObjectAddressSet(extaddr, ExtensionRelationId, extoid);
		recordDependencyOn(&trigaddr, &extaddr, DEPENDENCY_AUTO);
		CommandCounterIncrement();
	}
	SPI_finish();
}

/* Run sql with $1 = relid. */
static void
exec_catalog(const char *sql, Oid relid)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	tsnap_exec(sql, 1, argtypes, values, NULL);
}

/* Run sql with $1 = relids as oid[]. */
static void
exec_catalog_oids(const char *sql, List *relids)
{
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1] = {tsnap_oid_array(relids)};

	tsnap_exec(sql, 1, argtypes, values, NULL);
}

/*
 * tsnap_track(tbl regclass) RETURNS void
 *
 * Raises 42501 unless the caller owns the table, 42809 or 0A000 for what
 * cannot be tracked; tracking a tracked table is a no-op with a NOTICE.
 */
Datum
tsnap_track(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel = open_owned_relation(relid);
	TsnapCatalogUser saved;

	tsnap_check_relation_kind(rel, TSNAP_USE_TRACK);
	/* keep the lock; ALTER TABLE below refuses a relation we hold open */
	table_close(rel, NoLock);

	tsnap_catalog_enter_or_raise(&saved);

	if (tsnap_is_tracked(relid))
	{
		tsnap_catalog_leave(&saved);
		ereport(NOTICE,
				(errmsg("table \"%s\" is already tracked, skipping",
						get_rel_name(relid))));
		PG_RETURN_VOID();
	}

	exec_catalog("INSERT INTO tsnap.tracked_tables (tbl) VALUES ($1)", relid);
	exec_catalog(psprintf("INSERT INTO tsnap.version_shards (tbl, shard, bumps) "
						  "SELECT $1, g, 0 FROM pg_catalog.generate_series(0, %d) g",
						  TSNAP_VERSION_SHARDS - 1), relid);
	ensure_triggers(relid, false, true);
	tsnap_targets_invalidate_family(relid);

	tsnap_catalog_leave(&saved);
	PG_RETURN_VOID();
}

/*
 * Drop tsnap's triggers from those of rels that no tracked table needs any
 * more.  Must run as the catalog owner.
 */
static void
drop_unneeded_triggers(List *rels)
{
	ListCell   *lc;
	char		tgenabled;

	tsnap_set_untracking(true);
	PG_TRY();
	{
		SPI_connect();
		foreach(lc, rels)
		{
			Oid			other = lfirst_oid(lc);

			if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(other)))
				continue;
			if (tsnap_tracked_among(tsnap_relatives(other)) != NIL)
				continue;		/* still needed by a tracked table */
			if (OidIsValid(find_tracking_trigger(other, false, &tgenabled)))
				run_ddl("DROP TRIGGER " TSNAP_TRIGGER_NAME " ON %s",
						qualified_name(other));
			if (OidIsValid(find_tracking_trigger(other, true, &tgenabled)))
				run_ddl("DROP TRIGGER " TSNAP_ROW_TRIGGER_NAME " ON %s",
						qualified_name(other));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		tsnap_set_untracking(false);
	}
	PG_END_TRY();
}

/*
 * tsnap_untrack(tbl regclass) RETURNS void
 *
 * Removes the catalog entry and every tracking trigger that no other tracked
 * table still needs.  Raises 42501 unless the caller owns the table;
 * untracking a table that is not tracked is a no-op with a NOTICE.
 */
Datum
tsnap_untrack(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	TsnapCatalogUser saved;

	/* keep the lock; DROP TRIGGER below refuses a relation we hold open */
	table_close(open_owned_relation(relid), NoLock);

	tsnap_catalog_enter_or_raise(&saved);

	if (!tsnap_is_tracked(relid))
	{
		tsnap_catalog_leave(&saved);
		ereport(NOTICE,
				(errmsg("table \"%s\" is not tracked, skipping",
						get_rel_name(relid))));
		PG_RETURN_VOID();
	}

	exec_catalog("DELETE FROM tsnap.version_shards WHERE tbl OPERATOR(pg_catalog.=) $1", relid);
	exec_catalog("DELETE FROM tsnap.tracked_tables WHERE tbl OPERATOR(pg_catalog.=) $1", relid);
	tsnap_ledger_retire_tables(list_make1_oid(relid));
	CommandCounterIncrement();
	tsnap_targets_invalidate_family(relid);

	drop_unneeded_triggers(tsnap_relatives(relid));

	tsnap_catalog_leave(&saved);
	PG_RETURN_VOID();
}

/*
 * What a user's CREATE TABLE or ALTER TABLE means for tracking, as flags:
 * one ALTER TABLE can detach, attach and disable triggers at once, and each
 * must be handled.  Only a table that joins a family (a new partition or
 * child, ATTACH PARTITION, INHERIT) gets missing triggers created:
 * pg_restore re-creates the dumped triggers itself, after ALTER TABLE ...
 * ENABLE TRIGGER commands that must then not have created them first.
 */
#define DDL_JOINS		0x01	/* relations joined a family: create triggers */
#define DDL_DETACHES	0x02	/* relations left a family: drop unneeded ones */
#define DDL_TRIGGERS	0x04	/* triggers enabled or disabled: check them */

static int
ddl_effect(Node *parsetree)
{
	ListCell   *lc;
	int			effect = 0;

	if (IsA(parsetree, CreateStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;

		return (stmt->inhRelations != NIL || stmt->partbound != NULL)
			? DDL_JOINS : 0;
	}
	if (!IsA(parsetree, AlterTableStmt))
		return 0;

	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_AttachPartition:
			case AT_AddInherit:
				effect |= DDL_JOINS;
				break;
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
			case AT_DropInherit:
				effect |= DDL_DETACHES;
				break;
			case AT_EnableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
			case AT_EnableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrig:
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
				effect |= DDL_TRIGGERS;
				break;
			default:
				break;
		}
	}
	return effect;
}

/*
 * The partitions that an ALTER TABLE detached, by the names its command
 * gave.  Called before search_path is pinned, so that an unqualified name
 * resolves as it did for the command itself.
 */
static List *
detached_partitions(Node *parsetree)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return NIL;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		Oid			relid;

		if (cmd->subtype != AT_DetachPartition &&
			cmd->subtype != AT_DetachPartitionFinalize)
			continue;
		relid = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
		if (OidIsValid(relid))
			result = lappend_oid(result, relid);
	}
	return result;
}

/*
 * The relations whose triggers an ALTER TABLE that detached something may
 * have made unneeded: the altered table's family as it is now, and the
 * detached partitions' (NO INHERIT detaches the altered table itself, which
 * is in the first).
 */
static List *
detached_relations(Oid altered, List *partitions)
{
	List	   *result = tsnap_relatives(altered);
	ListCell   *lc;

	foreach(lc, partitions)
		result = list_concat_unique_oid(result, tsnap_relatives(lfirst_oid(lc)));
	return result;
}

/*
 * Event trigger on ddl_command_end for CREATE TABLE, ALTER TABLE and CREATE
 * TRIGGER: a partition or child created or attached under a tracked table
 * gets its triggers, a detached one loses those it no longer needs, a
 * tracking trigger (ours, or re-created by pg_restore) is tied to the
 * extension, and a tracking trigger disabled by ALTER TABLE is refused.
 */
Datum
tsnap_on_ddl_command_end(PG_FUNCTION_ARGS)
{
	TsnapCatalogUser saved;
	List	   *relids = NIL;
	List	   *trigoids = NIL;
	List	   *partitions;
	Node	   *parsetree;
	ListCell   *lc;
	uint64		row;
	MemoryContext callercxt = CurrentMemoryContext;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tsnap.on_ddl_command_end() was not called by the event trigger manager")));
	parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;
	partitions = ensuring ? NIL : detached_partitions(parsetree);

	if (!tsnap_catalog_enter(&saved))
		PG_RETURN_VOID();

	/* see the catalog as the command left it */
	CommandCounterIncrement();

	SPI_connect();
	if (SPI_execute("SELECT classid, objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
					"WHERE objsubid OPERATOR(pg_catalog.=) 0 AND "
					"(classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					" OR classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass)",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_event_trigger_ddl_commands()");
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		Oid			classid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[row],
															 SPI_tuptable->tupdesc, 1, &isnull));
		Oid			objid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[row],
														   SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContext old = MemoryContextSwitchTo(callercxt);

		if (classid == TriggerRelationId)
			trigoids = lappend_oid(trigoids, objid);
		else
			relids = list_append_unique_oid(relids, objid);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	foreach(lc, trigoids)
		tie_trigger_to_extension(lfirst_oid(lc), IsA(parsetree, RenameStmt));

	/* our own CREATE TRIGGER and ALTER TABLE need no further checks */
	if (!ensuring && relids != NIL)
	{
		int			effect = ddl_effect(parsetree);

		if (effect & DDL_DETACHES)
			drop_unneeded_triggers(detached_relations(linitial_oid(relids),
													  partitions));
		if (effect & (DDL_JOINS | DDL_TRIGGERS))
		{
			foreach(lc, relids)
			{
				Oid			relid = lfirst_oid(lc);
				ListCell   *lc2;

				if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
					continue;
				foreach(lc2, tsnap_tracked_among(tsnap_relatives(relid)))
					ensure_triggers(lfirst_oid(lc2), true,
									(effect & DDL_JOINS) != 0);
			}
		}
	}

	tsnap_catalog_leave(&saved);
	PG_RETURN_VOID();
}

/*
 * Event trigger on sql_drop: a dropped table loses its catalog entry, and a
 * tracking trigger that a tracked table still needs cannot be dropped
 * (except by tsnap_untrack, or along with its table).
 */
Datum
tsnap_on_sql_drop(PG_FUNCTION_ARGS)
{
	TsnapCatalogUser saved;
	List	   *gone;
	List	   *guarded;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tsnap.on_sql_drop() was not called by the event trigger manager")));

	if (!tsnap_catalog_enter(&saved))
		PG_RETURN_VOID();

	/* the tables that went: their tracking and their snapshots go too */
	gone = tsnap_query_oids("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
							"WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
							"AND objsubid OPERATOR(pg_catalog.=) 0",
							0, NULL, NULL);
	if (gone != NIL)
	{
		exec_catalog_oids("DELETE FROM tsnap.version_shards "
						  "WHERE tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)", gone);
		exec_catalog_oids("DELETE FROM tsnap.tracked_tables "
						  "WHERE tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)", gone);
		tsnap_ledger_retire_tables(gone);
	}

	/* tsnap's triggers dropped from tables that stay (NULL: the table went) */
	guarded = tsnap_query_oids("SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(address_names[1]) "
							   "       OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) "
							   "       pg_catalog.quote_ident(address_names[2]))::pg_catalog.oid "
							   "FROM pg_catalog.pg_event_trigger_dropped_objects() "
							   "WHERE object_type OPERATOR(pg_catalog.=) 'trigger' "
							   "AND address_names[3] OPERATOR(pg_catalog.=) ANY (ARRAY['" TSNAP_TRIGGER_NAME "', '"
							   TSNAP_ROW_TRIGGER_NAME "'])",
							   0, NULL, NULL);

	if (!tsnap_untracking())
	{
		foreach(lc, guarded)
			refuse_while_tracked(lfirst_oid(lc),
								 ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
								 psprintf(_("cannot drop tsnap's triggers on table \"%s\""),
										  get_rel_name(lfirst_oid(lc))));
	}

	tsnap_catalog_leave(&saved);
	PG_RETURN_VOID();
}
