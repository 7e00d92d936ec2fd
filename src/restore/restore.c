/*-------------------------------------------------------------------------
 *
 * restore.c
 *	  SQL entry point: tsnap_restore(target, key, mode, force) loads the
 *	  snapshot at key into target, in the caller's transaction, and returns
 *	  the rows loaded.
 *
 * The order is the point: everything that can refuse does so before a row
 * changes and before a data byte is read.  First the arguments; then the
 * caller's rights on the target (USAGE on its schema, INSERT, and DELETE
 * for replace), checked before the target is locked so that a role without
 * them cannot even queue for the lock; then the lock; then whether the key
 * is a snapshot of a table here and the caller may read that table
 * (access.c), before anything is fetched; then the manifest, its source,
 * its columns against the target's, the INSERT privileges on exactly the
 * columns loaded, and for replace the version the target holds.  Only then
 * are rows deleted (replace) and the data streamed into COPY.
 *
 * Modes:
 *	- require_empty: the target must have no rows (55000 otherwise).
 *	  Whether it has rows is something only a role with SELECT (or DELETE,
 *	  which tells as much) may learn, so this mode needs one of them too.
 *	- append: COPY adds the rows to what is there.
 *	- replace: DELETE every row (of the target and its partitions or
 *	  children, as SELECT * FROM target sees them), then COPY.  Both happen
 *	  in the caller's transaction, so concurrent readers see the old rows
 *	  until it commits and the new ones after, never an empty table.
 *	  TRUNCATE would be faster but is not MVCC-safe: a REPEATABLE READ
 *	  transaction that began before it would find the table empty.
 *
 * require_empty and replace lock the target and all its partitions and
 * children with SHARE ROW EXCLUSIVE (writers wait, readers do not), so no
 * row can arrive between the check or the DELETE and the load; append
 * takes COPY's ROW EXCLUSIVE.  The checks for rows use the latest
 * snapshot, since a REPEATABLE READ caller's own snapshot may miss rows
 * committed before the lock was granted: a replace that finds such rows
 * raises 40001 (retry), as a serialization failure would.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common/common.h"
#include "restore/restore.h"
#include "store/store.h"

PG_FUNCTION_INFO_V1(tsnap_restore);

static TsnapRestoreMode
parse_mode(const char *mode)
{
	if (strcmp(mode, "require_empty") == 0)
		return TSNAP_RESTORE_REQUIRE_EMPTY;
	if (strcmp(mode, "append") == 0)
		return TSNAP_RESTORE_APPEND;
	if (strcmp(mode, "replace") == 0)
		return TSNAP_RESTORE_REPLACE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid restore mode \"%s\"", mode),
			 errhint("Valid modes are \"require_empty\", \"append\" and \"replace\".")));
	return TSNAP_RESTORE_REQUIRE_EMPTY; /* not reached */
}

static void
check_key(const char *key)
{
	if (key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the key of the snapshot to restore is empty")));
	if (strlen(key) + strlen(TSNAP_MANIFEST_SUFFIX) > TSNAP_OBJECT_KEY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%.64s...\" is too long", key),
				 errdetail("A key and \"%s\" together must fit in %d bytes.",
						   TSNAP_MANIFEST_SUFFIX, TSNAP_OBJECT_KEY_MAX)));
}

/*
 * The rights the mode needs on relid, by its catalog entry alone (no
 * lock): USAGE on the schema, as COPY by name would need, INSERT on the
 * table or some column (exact columns are checked once they are known),
 * DELETE for replace, SELECT or DELETE for require_empty.
 */
static void
check_rights(Oid relid, TsnapRestoreMode mode)
{
	Oid			userid = GetUserId();
	Oid			nspid = get_rel_namespace(relid);
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		tsnap_raise_no_relation(relid);
	if (pg_namespace_aclcheck(nspid, userid, ACL_USAGE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_SCHEMA,
					   get_namespace_name(nspid));
	if (pg_class_aclcheck(relid, userid, ACL_INSERT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, userid, ACL_INSERT,
								  ACLMASK_ANY) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errdetail("tsnap_restore inserts rows as COPY FROM does, which needs INSERT.")));
	if (mode == TSNAP_RESTORE_REPLACE &&
		pg_class_aclcheck(relid, userid, ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errdetail("Mode \"replace\" deletes the table's rows first, which needs DELETE.")));
	if (mode == TSNAP_RESTORE_REQUIRE_EMPTY &&
		pg_class_aclcheck(relid, userid, ACL_DELETE) != ACLCHECK_OK &&
		pg_class_aclcheck(relid, userid, ACL_SELECT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, userid, ACL_SELECT,
								  ACLMASK_ANY) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errdetail("Mode \"require_empty\" tells whether the table has rows, which needs SELECT or DELETE."),
				 errhint("Use mode \"append\", which needs INSERT alone.")));
}

/* What the target must be: a table of this session's, loadable by COPY. */
static void
check_target(Relation rel)
{
	const char *relname = RelationGetRelationName(rel);
	char		relkind = rel->rd_rel->relkind;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot restore into \"%s\"", relname),
				 errdetail_relkind_not_supported(relkind),
				 errhint("Restore into a table or a partitioned table.")));
	if (IsSystemRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot restore into system catalog \"%s\"", relname)));
	if (RELATION_IS_OTHER_TEMP(rel))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot restore into temporary table \"%s\" of another session",
						relname)));

	/* as COPY FROM: row-level security is not supported */
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot restore into table \"%s\" because row-level security applies to role \"%s\"",
						relname, GetUserNameFromId(GetUserId(), false)),
				 errdetail("tsnap_restore loads rows as COPY FROM does, and COPY FROM is not supported with row-level security."),
				 errhint("Restore as the table owner or a role with BYPASSRLS.")));
}

/*
 * Lock the target's partitions and children as the target is locked, and
 * refuse foreign ones: their rows can neither be checked nor deleted here
 * with the lock's guarantee.  Returns the members, the target first.
 */
static List *
lock_members(Relation rel, LOCKMODE lockmode)
{
	List	   *members = find_all_inheritors(RelationGetRelid(rel), lockmode,
											  NULL);
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			member = lfirst_oid(lc);

		if (get_rel_relkind(member) == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot check or delete the rows of table \"%s\": its member \"%s\" is a foreign table",
							RelationGetRelationName(rel), get_rel_name(member)),
					 errhint("Use mode \"append\".")));
	}
	return members;
}

/* Does any member hold a row that snapshot sees? */
static bool
has_rows(List *members, Snapshot snapshot)
{
	ListCell   *lc;

	foreach(lc, members)
	{
		Relation	member = table_open(lfirst_oid(lc), NoLock);
		bool		found = false;

		if (RELKIND_HAS_STORAGE(member->rd_rel->relkind))
		{
			TableScanDesc scan = table_beginscan(member, snapshot, 0, NULL);
			TupleTableSlot *slot = table_slot_create(member, NULL);

			found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
			ExecDropSingleTupleTableSlot(slot);
			table_endscan(scan);
		}
		table_close(member, NoLock);
		if (found)
			return true;
	}
	return false;
}

/* Do the members have rows that the newest snapshot sees? */
static bool
has_rows_latest(List *members)
{
	Snapshot	latest = RegisterSnapshot(GetLatestSnapshot());
	bool		found = has_rows(members, latest);

	UnregisterSnapshot(latest);
	return found;
}

/*
 * replace: delete every row of the target as the caller, with SQL, so that
 * the DELETE's privileges, triggers and rules are the ones a DELETE would
 * meet.  Then no row may be left, in the caller's view (a trigger or rule
 * kept one: 55000) or in the newest (a REPEATABLE READ caller's snapshot
 * missed a row committed before the lock: 40001).
 */
static void
delete_all(Relation rel, List *members)
{
	char	   *name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel));
	bool		left;

	SPI_connect();
	if (SPI_execute(psprintf("DELETE FROM %s", name), false, 0) < 0)
		elog(ERROR, "could not delete the rows of \"%s\"", name);
	SPI_finish();
	CommandCounterIncrement();

	PushCopiedSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	left = has_rows(members, GetActiveSnapshot());
	PopActiveSnapshot();
	if (left)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rows of table \"%s\" remain after deleting all of them",
						RelationGetRelationName(rel)),
				 errdetail("A trigger or rule on the table kept them from being deleted, so mode \"replace\" cannot make it hold the snapshot's rows alone.")));
	if (has_rows_latest(members))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to rows committed to table \"%s\" after this transaction's snapshot",
						RelationGetRelationName(rel)),
				 errhint("Retry the transaction.")));
}

/*
 * tsnap_restore(target regclass, key text, mode text DEFAULT
 * 'require_empty', force boolean DEFAULT false) RETURNS bigint
 */
Datum
tsnap_restore(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *key;
	TsnapRestoreMode mode;
	bool		force;
	LOCKMODE	lockmode;
	Relation	rel;
	List	   *members = NIL;
	bool		temp;
	TsnapRestoreSource source;
	TsnapStore *store;
	TsnapManifest *m;
	List	   *attnames;
	TsnapLoad  *load;
	uint64		rows;
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the arguments of tsnap_restore must not be null")));
	relid = PG_GETARG_OID(0);
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	mode = parse_mode(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	force = PG_GETARG_BOOL(3);
	check_key(key);
	PreventCommandIfReadOnly("tsnap_restore()");
	PreventCommandIfParallelMode("tsnap_restore()");

	/* the store and the streams live, and die on error, with this context */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "tsnap restore",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	check_rights(relid, mode);
	lockmode = mode == TSNAP_RESTORE_APPEND ?
		RowExclusiveLock : ShareRowExclusiveLock;
	rel = tsnap_open_relation(relid, lockmode);
	check_rights(relid, mode);	/* again: the lock may have waited for a REVOKE */
	check_target(rel);
	temp = rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP;
	if (mode != TSNAP_RESTORE_APPEND)
		members = lock_members(rel, lockmode);

	tsnap_restore_find_source(key, &source);
	store = tsnap_store_open(source.endpoint, source.bucket, 0);
	m = tsnap_manifest_read(store, key);
	tsnap_restore_check_source(key, m, &source);
	attnames = tsnap_manifest_check_columns(m, rel);
	load = tsnap_load_prepare(rel, attnames, m);

	if (mode == TSNAP_RESTORE_REPLACE && !temp && !force)
	{
		int64		current = tsnap_restore_current_version(relid, m);

		if (current > m->rows_version)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" holds version " INT64_FORMAT " of table \"%s\".\"%s\", newer than version " INT64_FORMAT " in snapshot \"%s\"",
							RelationGetRelationName(rel), current,
							m->schema, m->table, m->rows_version, key),
					 errhint("Call tsnap_restore(..., force => true) to replace the newer rows with the older ones.")));
	}
	if (mode == TSNAP_RESTORE_REQUIRE_EMPTY && has_rows_latest(members))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not empty", RelationGetRelationName(rel)),
				 errhint("Use mode \"replace\" to replace its rows, or \"append\" to add to them.")));
	if (mode == TSNAP_RESTORE_REPLACE)
		delete_all(rel, members);

	rows = tsnap_load_run(load, tsnap_restore_stream_open(store, m));

	/* a temporary table goes without a sql_drop event: nothing to record */
	if (!temp)
		tsnap_restore_record(relid, m, mode, (int64) rows);
	table_close(rel, NoLock);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	PG_RETURN_INT64((int64) rows);
}
