/*-------------------------------------------------------------------------
 *
 * relation_checks.c
 *	  The checks a relation and the current user must pass before tsnap
 *	  tracks or snapshots it, written once for every entry point.
 *
 * tsnap_track, tsnap_snapshot and the worker's scan (which repeats the
 * caller's checks as the caller) all call these, so that one condition
 * always gives one error.
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

#include "access/relation.h"
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "common.h"

/*
 * Open relid with lockmode; 42P01 if it does not exist.
 */
Relation
tsnap_open_relation(Oid relid, LOCKMODE lockmode)
{
	Relation	rel = try_relation_open(relid, lockmode);

	if (rel == NULL)
		tsnap_raise_no_relation(relid);
	return rel;
}

/*
 * Raise 42809 or 0A000 for relations that can never be tracked or
 * snapshotted.  Only tables and partitioned tables hold rows that a
 * statement-level trigger sees; a worker cannot read another session's
 * temporary table.  Tracking refuses more: system catalogs (changed without
 * triggers) and unlogged tables (emptied by a crash without triggers);
 * neither can be tracked, so a snapshot never meets them.
 */
void
tsnap_check_relation_kind(Relation rel, TsnapRelationUse use)
{
	const char *relname = RelationGetRelationName(rel);
	char		relkind = rel->rd_rel->relkind;
	bool		track = (use == TSNAP_USE_TRACK);

	if (track && IsSystemRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot track system catalog \"%s\"", relname),
				 errdetail("System catalogs are changed by PostgreSQL itself, without firing triggers.")));

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 track ?
				 errmsg("cannot track \"%s\"", relname) :
				 errmsg("cannot snapshot \"%s\"", relname),
				 errdetail_relkind_not_supported(relkind),
				 track ?
				 errhint("Only tables and partitioned tables can be tracked.") :
				 errhint("Only tracked tables and partitioned tables can be snapshotted.")));

	if (track && rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track unlogged table \"%s\"", relname),
				 errdetail("A crash empties an unlogged table without firing any trigger, so its version could not follow its rows.")));

	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 track ?
				 errmsg("cannot track temporary table \"%s\"", relname) :
				 errmsg("cannot snapshot temporary table \"%s\"", relname),
				 track ?
				 errdetail("Snapshots are built by background workers, which cannot read another session's temporary tables.") : 0));
}

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
