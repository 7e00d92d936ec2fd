/*-------------------------------------------------------------------------
 *
 * bump.c
 *	  The tracking trigger, and the once-per-transaction version bump.
 *
 * A hot version row that every writing statement updates serializes all
 * writers of a table: each holds the row lock from its statement until its
 * commit has been flushed (bench/tracking.sh showed it with 8 clients).  So
 * the trigger writes nothing.  It counts the statement in a backend-local
 * list, and just before commit (XACT_EVENT_PRE_COMMIT, after deferred
 * triggers have run) the counts are added to the version shard row that
 * this backend's BackendId maps to (shards.c), once per tracked table and
 * transaction.  The version of a table is the sum of its shards.
 *
 * A transaction being prepared inserts a shard row of its own instead, keyed
 * by its transaction ID beyond the regular shards: a prepared transaction
 * keeps its row locks until someone commits or rolls it back, and a role
 * that may only INSERT could otherwise take every shard of a table and
 * block all its writers at commit.
 *
 * Why this keeps versions exact (MVCC consistency): the bump commits
 * atomically with the writes it counts, and every transaction that writes a
 * tracked table adds at least one.  On a primary, a later snapshot sees every
 * transaction an earlier one saw, so two snapshots that differ in committed
 * contents differ in the set of committed writers, and the later one's sum
 * is strictly larger.  A statement rolled back to a savepoint loses its
 * count with the subtransaction, so it never reaches the version.
 *
 * State: the pending list lives in TopMemoryContext, is owned by this module,
 * and is emptied at every top-level commit, abort and prepare.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "storage/backendid.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common/common.h"
#include "tracking/tracking.h"

PG_FUNCTION_INFO_V1(tsnap_tracking_trigger);

/* statements counted against one relation at one subtransaction level */
typedef struct PendingBump
{
	Oid			relid;			/* relation the statement named */
	int			nestlevel;		/* subtransaction level it ran at */
	int64		count;			/* statements counted */
} PendingBump;

static PendingBump *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;

/* set while tsnap_untrack drops triggers, so the drop guard lets it */
static bool untracking = false;

static void
note_write(Oid relid)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;

	for (i = 0; i < npending; i++)
	{
		if (pending[i].relid == relid && pending[i].nestlevel == level)
		{
			pending[i].count++;
			return;
		}
	}

	if (npending == maxpending)
	{
		int			newmax = Max(8, maxpending * 2);

		if (pending == NULL)
			pending = MemoryContextAlloc(TopMemoryContext,
										 sizeof(PendingBump) * newmax);
		else
			pending = repalloc(pending, sizeof(PendingBump) * newmax);
		maxpending = newmax;
	}
	pending[npending].relid = relid;
	pending[npending].nestlevel = level;
	pending[npending].count = 1;
	npending++;
}

/*
 * tsnap.tracking_trigger(): AFTER ... FOR EACH STATEMENT on every relation
 * whose writes can change a tracked table, and AFTER ... FOR EACH ROW
 * (enabled REPLICA) on the leaf ones, for logical replication apply, which
 * fires no statement-level triggers for row changes.  Counting is all it
 * does.
 */
Datum
tsnap_tracking_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tsnap.tracking_trigger() was not called by the trigger manager")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tsnap.tracking_trigger() must be fired AFTER")));

	note_write(RelationGetRelid(trigdata->tg_relation));

	return PointerGetDatum(NULL);
}

/*
 * Add count to shard row (tbl, shard) through SQL, creating the row if it
 * is missing: a prepared transaction's own row, or a regular shard of a
 * catalog restored from a dump made by hand.  It only touches tables that
 * are tracked.
 */
static void
upsert_shard(Oid tbl, int64 shard, int64 count)
{
	TsnapCatalogUser saved;
	Oid			argtypes[3] = {REGCLASSOID, INT8OID, INT8OID};
	Datum		values[3];
	bool		pushed;

	values[0] = ObjectIdGetDatum(tbl);
	values[1] = Int64GetDatum(shard);
	values[2] = Int64GetDatum(count);
	if (!tsnap_catalog_enter(&saved))
		return;
	pushed = tsnap_push_snapshot_if_none();
	tsnap_exec("INSERT INTO tsnap.version_shards AS s (tbl, shard, bumps) "
			   "SELECT t.tbl, $2, $3 FROM tsnap.tracked_tables t "
			   "WHERE t.tbl OPERATOR(pg_catalog.=) $1 "
			   "ON CONFLICT (tbl, shard) DO UPDATE "
			   "SET bumps = s.bumps OPERATOR(pg_catalog.+) excluded.bumps",
			   3, argtypes, values, NULL);
	if (pushed)
		PopActiveSnapshot();
	tsnap_catalog_leave(&saved);
}

/*
 * Add this transaction's statement counts to the tracked tables they
 * change.  Runs inside the committing transaction, so an error here aborts
 * it: a write is never committed without its bump.
 */
static void
flush_pending(bool prepare)
{
	Oid			shards_relid;
	Oid			pkey_relid;
	int			shard;
	Oid		   *tbls;
	int64	   *counts;
	int			ntbls = 0;
	int			maxtbls = 8;
	int			i;

	if (npending == 0)
		return;
	shards_relid = tsnap_catalog_relid("version_shards");
	pkey_relid = tsnap_catalog_relid("version_shards_pkey");
	if (!OidIsValid(shards_relid) || !OidIsValid(pkey_relid))
		return;					/* extension dropped in this transaction */

	/* sum the counts per tracked table, so each shard row is written once */
	tbls = palloc(sizeof(Oid) * maxtbls);
	counts = palloc(sizeof(int64) * maxtbls);
	for (i = 0; i < npending; i++)
	{
		ListCell   *lc;

		/* a relation written and then dropped in this transaction */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(pending[i].relid)))
			continue;

		foreach(lc, tsnap_targets_of(pending[i].relid))
		{
			Oid			tbl = lfirst_oid(lc);
			int			j;

			for (j = 0; j < ntbls && tbls[j] != tbl; j++)
				;
			if (j == ntbls)
			{
				if (ntbls == maxtbls)
				{
					maxtbls *= 2;
					tbls = repalloc(tbls, sizeof(Oid) * maxtbls);
					counts = repalloc(counts, sizeof(int64) * maxtbls);
				}
				tbls[ntbls] = tbl;
				counts[ntbls++] = 0;
			}
			counts[j] += pending[i].count;
		}
	}

	shard = (MyBackendId > 0 ? MyBackendId - 1 : 0) % TSNAP_VERSION_SHARDS;
	for (i = 0; i < ntbls; i++)
	{
		if (prepare)
			upsert_shard(tbls[i], TSNAP_VERSION_SHARDS +
						 (int64) U64FromFullTransactionId(GetTopFullTransactionId()),
						 counts[i]);
		else if (!tsnap_shard_add(shards_relid, pkey_relid, tbls[i], shard,
								  counts[i]))
			upsert_shard(tbls[i], shard, counts[i]);
	}
}

static void
tsnap_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			flush_pending(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			flush_pending(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			npending = 0;
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
	}
}

static void
tsnap_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;
	int			kept = 0;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			/* counts now belong to the parent */
			for (i = 0; i < npending; i++)
				if (pending[i].nestlevel >= level)
					pending[i].nestlevel = level - 1;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			/* the statements were rolled back: forget them */
			for (i = 0; i < npending; i++)
				if (pending[i].nestlevel < level)
					pending[kept++] = pending[i];
			npending = kept;
			break;
		default:
			break;
	}
}

void
tsnap_register_xact_callbacks(void)
{
	RegisterXactCallback(tsnap_xact_callback, NULL);
	RegisterSubXactCallback(tsnap_subxact_callback, NULL);
	tsnap_targets_init();
}

/*
 * Statements of the current transaction, not yet committed, that count
 * toward relid's version.  Non-zero means the transaction has written the
 * table (or a relative) and a snapshot taken elsewhere would not show it.
 */
int64
tsnap_pending_bumps_for(Oid relid)
{
	int64		total = 0;
	int			i;

	for (i = 0; i < npending; i++)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(pending[i].relid)))
			continue;
		if (list_member_oid(tsnap_targets_of(pending[i].relid), relid))
			total += pending[i].count;
	}
	return total;
}

void
tsnap_set_untracking(bool on)
{
	untracking = on;
}

bool
tsnap_untracking(void)
{
	return untracking;
}
