/*-------------------------------------------------------------------------
 *
 * shards.c
 *	  Adding a transaction's statement count to one version shard row.
 *
 * This runs at every commit of every transaction that writes a tracked
 * table, so it bypasses SPI and the executor: an index lookup and one
 * heap_update, usually HOT (fillfactor 50, no indexed column changes): an
 * SPI upsert cost writers a large share of a single-row UPDATE
 * (bench/tracking.sh).
 *
 * An increment commutes with every other increment, so it is always applied
 * to the latest committed version of the row, whatever the isolation level,
 * and any shard row will do: a row locked by another writer is skipped for
 * the next one, and a row another writer updated first is re-read.  (A
 * prepared transaction, which could hold a row for as long as its owner
 * likes, never updates a shard: bump.c gives it a row of its own.)
 * A REPEATABLE READ writer therefore never fails with a serialization error
 * because of a shard row, and the sum stays exact, since any snapshot that
 * sees our commit also sees the earlier one we built on.
 *
 * The row is written as the table's owner would write it, with no triggers
 * or constraints to fire (the catalog has none that an increment could
 * violate).  Locks: RowExclusiveLock on the table and its primary key, held
 * to the end of the transaction, as an UPDATE would.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/common.h"
#include "tracking/tracking.h"


/*
 * One attempt to add n to row (tbl, shard).  With wait = false, a row locked
 * by another transaction in progress (or prepared) is left alone.
 */
static TM_Result
try_shard_add(Relation rel, Relation idx, Oid tbl, int64 shard, int64 n,
			  bool wait)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (;;)
	{
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	oldtup;
		HeapTuple	newtup;
		ItemPointerData otid;
		Datum		values[3] = {0};
		bool		nulls[3] = {false};
		bool		replace[3] = {false};
		bool		isnull;
		int64		bumps;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		TM_Result	result;

		/*
		 * SnapshotSelf sees the latest committed version (and our own), with
		 * no snapshot to build.  Heap attribute numbers: systable_beginscan
		 * maps them to the index's.
		 */
		ScanKeyInit(&key[0], Anum_shard_tbl, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(tbl));
		ScanKeyInit(&key[1], Anum_shard_shard, BTEqualStrategyNumber,
					F_INT8EQ, Int64GetDatum(shard));
		scan = systable_beginscan(rel, RelationGetRelid(idx), true,
								  SnapshotSelf, 2, key);
		oldtup = systable_getnext(scan);
		if (!HeapTupleIsValid(oldtup))
		{
			systable_endscan(scan);
			return TM_Deleted;
		}

		bumps = DatumGetInt64(heap_getattr(oldtup, Anum_shard_bumps, desc, &isnull));
		values[Anum_shard_bumps - 1] = Int64GetDatum(bumps + n);
		replace[Anum_shard_bumps - 1] = true;
		newtup = heap_modify_tuple(oldtup, desc, values, nulls, replace);
		otid = oldtup->t_self;
		systable_endscan(scan);

		result = heap_update(rel, &otid, newtup, GetCurrentCommandId(true),
							 InvalidSnapshot, wait, &tmfd, &lockmode);
		if (result == TM_Ok && !HeapTupleIsHeapOnly(newtup))
		{
			Datum		keyvals[2];
			bool		keynulls[2] = {false, false};

			keyvals[0] = ObjectIdGetDatum(tbl);
			keyvals[1] = Int64GetDatum(shard);
			index_insert(idx, keyvals, keynulls, &newtup->t_self, rel,
						 UNIQUE_CHECK_YES, false, BuildIndexInfo(idx));
		}
		heap_freetuple(newtup);
		if (result != TM_Updated)
			return result;

		/* a concurrent bump committed first: add to its version */
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Add n to table tbl's version, in the shard row home_shard if it is free,
 * else in the next free one: a row stays locked until its writer commits,
 * and a prepared transaction may hold one indefinitely.  Only when every
 * shard is locked do we wait, on the home shard.  shards_relid and
 * pkey_relid are tsnap.version_shards and its primary key.  Returns false,
 * changing nothing, when the table has no shard rows.
 */
bool
tsnap_shard_add(Oid shards_relid, Oid pkey_relid, Oid tbl, int home_shard,
				int64 n)
{
	Relation	rel = table_open(shards_relid, RowExclusiveLock);
	Relation	idx = index_open(pkey_relid, RowExclusiveLock);
	TM_Result	result = TM_Deleted;
	int			i;

	for (i = 0; i < TSNAP_VERSION_SHARDS; i++)
	{
		int64		shard = (home_shard + i) % TSNAP_VERSION_SHARDS;

		result = try_shard_add(rel, idx, tbl, shard, n, false);
		if (result == TM_Ok || result == TM_Deleted)
			break;
		if (result != TM_BeingModified)
			elog(ERROR, "unexpected result %d updating tsnap version shard",
				 (int) result);
	}
	if (result == TM_BeingModified)
		result = try_shard_add(rel, idx, tbl, home_shard, n, true);
	if (result != TM_Ok && result != TM_Deleted)
		elog(ERROR, "unexpected result %d updating tsnap version shard",
			 (int) result);

	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return result == TM_Ok;
}
