/*-------------------------------------------------------------------------
 *
 * inheritance.c
 *	  The set of relations whose writes can change a tracked table.
 *
 * A statement-level trigger fires only on the relation a statement names:
 * not on partitions when the statement names their parent, and not on the
 * parent when it names a partition.  So a table's contents can change through
 * any of its ancestors (rows routed down to it) and any of its descendants
 * (rows it shows through inheritance).  tsnap_relatives() returns that set;
 * tracking puts a trigger on each member, and a write to a member bumps every
 * tracked table among the member's own relatives.  The relation is symmetric,
 * which is what lets untrack decide which triggers are still needed.
 *
 * No locks are taken: callers run at commit or in DDL that already holds the
 * locks it needs, and a race with a concurrent ATTACH or DETACH only adds a
 * harmless extra bump.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_inherits.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "common/common.h"
#include "tracking/tracking.h"

/*
 * Direct parents of relid (more than one only with multiple inheritance).
 */
static List *
inheritance_parents(Oid relid)
{
	Relation	inhrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	List	   *parents = NIL;

	inhrel = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(inhrel, InheritsRelidSeqnoIndexId, true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_inherits inh = (Form_pg_inherits) GETSTRUCT(tuple);

		parents = lappend_oid(parents, inh->inhparent);
	}
	systable_endscan(scan);
	table_close(inhrel, AccessShareLock);

	return parents;
}

/*
 * relid itself, all its ancestors and all its descendants, without
 * duplicates.  Returns a list of OIDs allocated in the current context.
 */
List *
tsnap_relatives(Oid relid)
{
	List	   *result = list_make1_oid(relid);
	List	   *queue = inheritance_parents(relid);

	/* ancestors, breadth first; list_append_unique guards diamonds */
	while (queue != NIL)
	{
		Oid			parent = linitial_oid(queue);

		queue = list_delete_first(queue);
		if (list_member_oid(result, parent))
			continue;
		result = lappend_oid(result, parent);
		queue = list_concat(queue, inheritance_parents(parent));
	}

	/* descendants: relhassubclass is a syscache lookup, the scan is not */
	if (has_subclass(relid))
	{
		List	   *children = find_all_inheritors(relid, NoLock, NULL);

		result = list_concat_unique_oid(result, children);
	}

	return result;
}
