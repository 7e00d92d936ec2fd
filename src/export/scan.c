/*-------------------------------------------------------------------------
 *
 * scan.c
 *	  Reading a table through an SPI cursor into a format and a sink.
 *
 * The caller (build/build.c) runs this in the transaction, snapshot and
 * role of the request; this file only plans the query, checks the plan and
 * streams the rows.  The cursor's rows go to a DestReceiver that encodes
 * each row straight from the executor's slot; every TSNAP_SCAN_CHUNK bytes
 * go to the sink, which may block (the uploader has max_parts_in_flight
 * parts in the air).  Memory is therefore one row and one chunk, whatever
 * the table's size.
 *
 * Rows are read with PortalRunFetch, which SPI_cursor_fetch calls too, but
 * with this receiver instead of SPI's: SPI_cursor_fetch would first copy
 * every row into an SPI tuple table, and the format would deform it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "export/export.h"

/* rows per cursor fetch; rows are encoded as they come, so memory is one row */
#define FETCH_BATCH		1000

struct TsnapScan
{
	Relation	rel;
	Portal		portal;
};

typedef struct FormatReceiver
{
	DestReceiver pub;
	const TsnapFormat *format;
	void	   *state;			/* the format's; NULL until the header */
	const TsnapSink *sink;
	Relation	rel;
	StringInfoData buf;
	int64		rows;
} FormatReceiver;

static void
drain(FormatReceiver *r)
{
	if (r->buf.len == 0)
		return;
	r->sink->write(r->sink->arg, r->buf.data, r->buf.len, r->rows);
	resetStringInfo(&r->buf);
}

/*
 * Called by every ExecutorRun, so once per batch: check that the pinned
 * output settings still hold (output_settings.c), and write the header once.
 */
static void
receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	FormatReceiver *r = (FormatReceiver *) self;

	tsnap_check_output_settings(RelationGetRelationName(r->rel));
	if (r->state != NULL)
		return;
	r->state = r->format->begin(CreateTupleDescCopy(typeinfo));
	r->format->header(r->state, &r->buf);
}

static bool
receiver_receive(TupleTableSlot *slot, DestReceiver *self)
{
	FormatReceiver *r = (FormatReceiver *) self;

	slot_getallattrs(slot);
	r->format->row(r->state, slot->tts_values, slot->tts_isnull, &r->buf);
	r->rows++;
	if (r->buf.len >= TSNAP_SCAN_CHUNK)
		drain(r);
	return true;
}

static void
receiver_noop(DestReceiver *self)
{
}

/*
 * Is plan a sequential scan (of a table, or an Append of them for a
 * partitioned or inherited one)?  COPY reads a table in that order; any
 * other plan would give other bytes for the same key.
 */
static bool
is_sequential(Plan *plan)
{
	ListCell   *lc;

	if (IsA(plan, SeqScan))
		return true;
	if (IsA(plan, Append))
	{
		foreach(lc, ((Append *) plan)->appendplans)
			if (!is_sequential(lfirst(lc)))
				return false;
		return true;
	}
	/* a partitioned table without partitions: a Result with no rows */
	if (IsA(plan, Result))
		return plan->lefttree == NULL || is_sequential(plan->lefttree);
	return false;
}

/*
 * Plan SELECT * FROM rel and open its cursor; the caller must be connected
 * to SPI.  Planning is where the table owner's code can run (functions in
 * index expressions and predicates are constant-folded), so the caller
 * runs this in the request's security-restricted part; that code could
 * disable sequential scans, so a plan that would not read in COPY's order
 * raises 55000.
 */
TsnapScan *
tsnap_scan_open(Relation rel)
{
	TsnapScan  *scan = palloc(sizeof(TsnapScan));
	char	   *query;
	PlannedStmt *stmt;

	query = psprintf("SELECT * FROM %s",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	scan->rel = rel;
	scan->portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL,
											 true, CURSOR_OPT_NO_SCROLL);
	stmt = linitial_node(PlannedStmt, scan->portal->stmts);
	if (!is_sequential(stmt->planTree))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the scan of table \"%s\" was not planned as a sequential scan",
						RelationGetRelationName(rel)),
				 errdetail("A snapshot has COPY's row order only when read sequentially; a function run while planning, such as one in an index expression, changed the planner's settings.")));
	return scan;
}

/*
 * Fetch every row into format and sink (header first), close the cursor,
 * and return the row count.
 */
int64
tsnap_scan_run(TsnapScan *scan, const TsnapFormat *format,
			   const TsnapSink *sink)
{
	MemoryContext cxt = CurrentMemoryContext;
	FormatReceiver r;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = receiver_receive;
	r.pub.rStartup = receiver_startup;
	r.pub.rShutdown = receiver_noop;
	r.pub.rDestroy = receiver_noop;
	r.pub.mydest = DestNone;
	r.format = format;
	r.sink = sink;
	r.rel = scan->rel;
	initStringInfo(&r.buf);

	/* PortalRunFetch leaves the portal's context current */
	while (PortalRunFetch(scan->portal, FETCH_FORWARD, FETCH_BATCH,
						  (DestReceiver *) &r) > 0)
	{
		MemoryContextSwitchTo(cxt);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(cxt);
	drain(&r);
	SPI_cursor_close(scan->portal);
	pfree(r.buf.data);
	return r.rows;
}
