/*-------------------------------------------------------------------------
 *
 * targets.c
 *	  Per-backend cache: which tracked tables a write to a relation bumps.
 *
 * Working that out takes a pg_inherits walk and a catalog query, far too
 * much to repeat at every commit (bench/tracking.sh).  The answer only changes when relations are
 * tracked, untracked, attached, detached, created or dropped, and each of
 * those sends a relcache invalidation for the relations involved
 * (tsnap_track and tsnap_untrack send them explicitly).  So the cache is
 * dropped whole on any relcache invalidation.
 *
 * The invalidation callback only marks the cache stale; the cache is reset
 * at the next lookup, never while a caller is using an entry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "common/common.h"
#include "tracking/tracking.h"

typedef struct TargetsEntry
{
	Oid			relid;			/* hash key: the relation written */
	int			ntargets;
	Oid		   *targets;		/* tracked tables it bumps */
} TargetsEntry;

static HTAB *targets_cache = NULL;
static MemoryContext targets_cxt = NULL;
static bool targets_stale = true;

static void
targets_invalidate(Datum arg, Oid relid)
{
	targets_stale = true;
}

void
tsnap_targets_init(void)
{
	CacheRegisterRelcacheCallback(targets_invalidate, (Datum) 0);
}

static void
targets_reset(void)
{
	HASHCTL		ctl;

	if (targets_cxt == NULL)
		targets_cxt = AllocSetContextCreate(CacheMemoryContext,
											"tsnap targets cache",
											ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(targets_cxt);

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(TargetsEntry);
	ctl.hcxt = targets_cxt;
	targets_cache = hash_create("tsnap targets", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	targets_stale = false;
}

/*
 * The tracked tables among relid's relatives, as a list in the caller's
 * memory context.  A miss runs catalog queries as the catalog owner.
 */
List *
tsnap_targets_of(Oid relid)
{
	TargetsEntry *entry;
	TsnapCatalogUser saved;
	List	   *targets;
	ListCell   *lc;
	bool		found;
	bool		pushed;
	int			i;

	if (targets_stale || targets_cache == NULL)
		targets_reset();

	entry = hash_search(targets_cache, &relid, HASH_FIND, NULL);
	if (entry != NULL)
	{
		targets = NIL;
		for (i = 0; i < entry->ntargets; i++)
			targets = lappend_oid(targets, entry->targets[i]);
		return targets;
	}

	if (!tsnap_catalog_enter(&saved))
		return NIL;
	pushed = tsnap_push_snapshot_if_none();
	targets = tsnap_tracked_among(tsnap_relatives(relid));
	if (pushed)
		PopActiveSnapshot();
	tsnap_catalog_leave(&saved);

	/* an invalidation that arrived meanwhile may postdate what we read */
	if (targets_stale)
		return targets;

	entry = hash_search(targets_cache, &relid, HASH_ENTER, &found);
	entry->ntargets = list_length(targets);
	entry->targets = MemoryContextAlloc(targets_cxt,
										sizeof(Oid) * Max(entry->ntargets, 1));
	i = 0;
	foreach(lc, targets)
		entry->targets[i++] = lfirst_oid(lc);

	return targets;
}

/*
 * Make every backend (this one at its next command) recompute the targets
 * of relid and its relatives.  Transactional: sent at commit.
 */
void
tsnap_targets_invalidate_family(Oid relid)
{
	ListCell   *lc;

	foreach(lc, tsnap_relatives(relid))
		CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
}
