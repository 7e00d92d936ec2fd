/*-------------------------------------------------------------------------
 *
 * scan.c
 *	  Building one snapshot in a worker: scan, encode, upload, record.
 *
 * The scan runs in a REPEATABLE READ, read-only transaction as the calling
 * role, so the version, the fingerprint and every row come from one MVCC
 * snapshot and privileges and row-level security apply as they would to the
 * caller.  An SPI cursor fetches rows in batches into a receiver that encodes
 * each row to CSV as the executor produces it; every WRITE_CHUNK bytes go to
 * the streaming uploader, which sends parts while the scan goes on and
 * blocks the scan when max_parts_in_flight parts are in the air.  Memory is
 * therefore the uploader's bound plus one row and one chunk.
 *
 * The upload is owned by this file until it completes: any error (a failed
 * part, the size cap, cancel, a type output function raising) aborts it
 * before the error propagates, so no object appears at the key and no
 * multipart upload stays open.  Three transactions: the scan's; then one
 * that queues the key for deletion before the upload is completed (so a
 * worker that dies before recording its object still has it deleted); then,
 * once the object exists, one that records it and unqueues the key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "nodes/plannodes.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "tsnap.h"
#include "s3_adapter.h"
#include "snapshot.h"

/* rows per cursor fetch; rows are encoded as they come, so memory is one row */
#define FETCH_BATCH		1000
/* CSV bytes gathered before each hand-over to the uploader */
#define WRITE_CHUNK		(256 * 1024)

/* the upload in progress, so the exit callback can abort it */
static tsnap_s3_upload *volatile current_upload = NULL;

/*
 * Raise an uploader error; the size cap gets its own message, naming the
 * table and the limit.
 */
static void
raise_upload_error(const tsnap_s3_error *err, const char *relname,
				   int64 max_bytes)
{
	if (err->kind == S3_ERR_TOO_LARGE && max_bytes > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("snapshot of table \"%s\" exceeds tsnap.max_snapshot_size (" INT64_FORMAT "kB)",
						relname, max_bytes / 1024),
				 errhint("Raise tsnap.max_snapshot_size, or set it to 0 for no limit.")));
	tsnap_s3_raise(err, ERROR);
}

static void
write_or_raise(tsnap_s3_upload *upload, StringInfo buf, const char *relname,
			   int64 max_bytes)
{
	tsnap_s3_error err;

	if (buf->len == 0)
		return;
	if (!tsnap_s3_upload_write(upload, buf->data, buf->len, &err))
		raise_upload_error(&err, relname, max_bytes);
	resetStringInfo(buf);
}

/*
 * Abort and free the upload in progress, if any.  Used on error and from
 * the worker's exit path; never raises (it runs while an error is handled).
 */
void
tsnap_scan_abort_upload(void)
{
	tsnap_s3_upload *upload = current_upload;
	tsnap_s3_error err;

	if (upload == NULL)
		return;
	current_upload = NULL;
	if (!tsnap_s3_upload_abort(upload, &err))
	{
		char		text[1024];

		tsnap_s3_error_format(&err, text, sizeof(text));
		ereport(WARNING,
				(errmsg("could not abort an unfinished snapshot upload"),
				 errdetail_internal("%s", text)));
	}
	tsnap_s3_upload_free(upload);
}

/*
 * The cursor's rows go to this receiver, which encodes each one straight
 * from the executor's slot.  SPI_cursor_fetch would first copy every row
 * into an SPI tuple table and the encoder would deform it again; going
 * through the same PortalRunFetch that SPI_cursor_fetch calls, with this
 * receiver instead of SPI's, made a miss at scale 10 about 3% faster
 * (bench/snapshot.sh) and keeps the scan's memory at one row.
 */
typedef struct CsvReceiver
{
	DestReceiver pub;
	TsnapCsvEncoder enc;
	bool		begun;			/* header written */
	StringInfoData buf;
	tsnap_s3_upload *upload;
	Relation	rel;
	int64		max_bytes;
} CsvReceiver;

/*
 * Called by every ExecutorRun, so once per batch: check that the pinned
 * output settings still hold (output_settings.c), and write the header once.
 */
static void
csv_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CsvReceiver *r = (CsvReceiver *) self;

	tsnap_check_output_settings(RelationGetRelationName(r->rel));
	if (r->begun)
		return;
	tsnap_csv_begin(&r->enc, CreateTupleDescCopy(typeinfo));
	tsnap_csv_header(&r->enc, &r->buf);
	r->begun = true;
}

static bool
csv_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CsvReceiver *r = (CsvReceiver *) self;

	slot_getallattrs(slot);
	tsnap_csv_row(&r->enc, slot->tts_values, slot->tts_isnull, &r->buf);
	if (r->buf.len >= WRITE_CHUNK)
		write_or_raise(r->upload, &r->buf, RelationGetRelationName(r->rel),
					   r->max_bytes);
	return true;
}

static void
csv_noop(DestReceiver *self)
{
}

/*
 * Open the scan's cursor: this plans the query, which is where the table
 * owner's code can run (functions in index expressions and predicates are
 * constant-folded), so it happens in the caller's security-restricted part.
 */
static Portal
open_scan(Relation rel)
{
	char	   *query;

	query = psprintf("SELECT * FROM %s",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	return SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL,
									 true, CURSOR_OPT_NO_SCROLL);
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
 * Raise 55000 unless the cursor's plan reads in COPY's order.  Planning can
 * run the table owner's code, which could disable sequential scans.
 */
static void
check_plan(Portal portal, const char *relname)
{
	PlannedStmt *stmt = linitial_node(PlannedStmt, portal->stmts);

	if (!is_sequential(stmt->planTree))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the scan of table \"%s\" was not planned as a sequential scan",
						relname),
				 errdetail("A snapshot has COPY's row order only when read sequentially; a function run while planning, such as one in an index expression, changed the planner's settings.")));
}

/*
 * Fetch the cursor's rows into the upload: header and rows.  Returns the
 * row count.
 */
static int64
scan_into(Portal portal, Relation rel, tsnap_s3_upload *upload, int64 max_bytes)
{
	MemoryContext cxt = CurrentMemoryContext;
	CsvReceiver r;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = csv_receive;
	r.pub.rStartup = csv_startup;
	r.pub.rShutdown = csv_noop;
	r.pub.rDestroy = csv_noop;
	r.pub.mydest = DestNone;
	initStringInfo(&r.buf);
	r.upload = upload;
	r.rel = rel;
	r.max_bytes = max_bytes;

	/* PortalRunFetch leaves the portal's context current */
	while (PortalRunFetch(portal, FETCH_FORWARD, FETCH_BATCH,
						  (DestReceiver *) &r) > 0)
	{
		MemoryContextSwitchTo(cxt);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(cxt);
	write_or_raise(upload, &r.buf, RelationGetRelationName(rel), max_bytes);
	SPI_cursor_close(portal);
	return r.enc.rows;
}

/*
 * The caller's part of a request: from the table lock to the last row, the
 * worker runs as the calling role, as a security-restricted operation (no
 * SET ROLE, PREPARE, temp tables, cursors WITH HOLD), in a GUC nest level of
 * its own that holds the pinned output settings, as REFRESH MATERIALIZED
 * VIEW runs the owner's code.  Ending it undoes every setting the caller's
 * code changed (also set_config(..., false)) and drops the session advisory
 * locks it took, before the worker's own catalog SQL runs.  The worker exits
 * after each request besides (worker.c), so nothing else can outlive it.
 */
typedef struct CallersPart
{
	Oid			save_userid;
	int			save_sec;
	int			save_nestlevel;
} CallersPart;

static void
begin_callers_part(CallersPart *cp, Oid roleid)
{
	if (!OidIsValid(roleid) || GetUserNameFromId(roleid, true) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", roleid)));
	GetUserIdAndSecContext(&cp->save_userid, &cp->save_sec);
	SetUserIdAndSecContext(roleid, cp->save_sec |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	cp->save_nestlevel = NewGUCNestLevel();
	tsnap_pin_output_settings();
	/* waits here end when the callers leave (worker.c), not on a timer */
	(void) set_config_option("lock_timeout", "0", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static void
end_callers_part(CallersPart *cp)
{
	AtEOXact_GUC(false, cp->save_nestlevel);
	SetUserIdAndSecContext(cp->save_userid, cp->save_sec);
	LockReleaseSession(USER_LOCKMETHOD);
}

/* End the scan's transaction (the caller's part must have ended). */
static void
commit_scan(Relation rel)
{
	table_close(rel, NoLock);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Build the snapshot the request asks for and fill result.  Runs in worker
 * `worker`, outside any transaction; raises on failure with nothing left in
 * the bucket.
 */
void
tsnap_build_snapshot(int worker, const TsnapRequestParams *params,
					 TsnapSnapshotResult *result)
{
	CallersPart cp;
	Relation	rel;
	pg_uuid_t	tracking_id;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
	tsnap_s3_client *client;
	tsnap_s3_upload *upload;
	tsnap_s3_upload_result up;
	tsnap_s3_error err;
	char	   *relname;
	Portal		portal;
	MemoryContext upload_cxt;
	MemoryContext old_cxt;
	int			save_iso = DefaultXactIsoLevel;
	bool		save_read_only = DefaultXactReadOnly;

	SetCurrentStatementStartTimestamp();
	DefaultXactIsoLevel = XACT_REPEATABLE_READ;
	DefaultXactReadOnly = true;
	StartTransactionCommand();
	DefaultXactIsoLevel = save_iso;
	DefaultXactReadOnly = save_read_only;
	SPI_connect();

	/* from here on, privileges and RLS are the caller's */
	begin_callers_part(&cp, params->roleid);

	/*
	 * Lock the table before taking the transaction snapshot.  Callers that
	 * joined this request while the lock was awaited saw only commits that
	 * the snapshot, taken afterwards, also sees; once it is taken, the queue
	 * lets only callers whose view is no newer join (request_queue.c).  If
	 * every caller leaves while we wait, the worker is cancelled (worker.c).
	 */
	rel = try_relation_open(params->relid, AccessShareLock);
	if (rel == NULL)
		tsnap_raise_no_relation(params->relid);
	relname = pstrdup(RelationGetRelationName(rel));
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("tsnap snapshot of %s", relname));
	tsnap_queue_publish_version(worker, TSNAP_VERSION_PENDING);
	PushActiveSnapshot(GetTransactionSnapshot());

	tsnap_check_select(rel);
	tsnap_check_rls(rel);

	result->rows_version = tsnap_read_tracking(params->relid, &tracking_id);
	if (result->rows_version < 0)
		tsnap_raise_not_tracked(params->relid);
	tsnap_queue_publish_version(worker, result->rows_version);
	tsnap_fingerprint(rel, fingerprint);

	/* someone may have built it meanwhile */
	if (params->stale_key[0] == '\0' &&
		tsnap_lookup_snapshot(params->relid, &tracking_id, result->rows_version,
							  fingerprint, result))
	{
		end_callers_part(&cp);
		commit_scan(rel);
		result->hit = true;
		return;
	}

	tsnap_build_key(params->relid, &tracking_id, result->rows_version,
					fingerprint, result->key);
	tsnap_queue_set_upload_key(worker, result->key);

	portal = open_scan(rel);
	check_plan(portal, relname);

	/*
	 * Planning locked every partition; if one was attached or detached (or
	 * rewritten) since the fingerprint was taken, the key would not describe
	 * the rows, so give up rather than guess.
	 */
	{
		char		planned[TSNAP_FINGERPRINT_LEN + 1];

		tsnap_fingerprint(rel, planned);
		if (strcmp(planned, fingerprint) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("table \"%s\" changed while its snapshot was prepared",
							relname),
					 errdetail("A partition was attached, detached or rewritten concurrently."),
					 errhint("Call tsnap_snapshot again.")));
	}

	/*
	 * From here on the work is streaming rows, and goes on for later callers
	 * even if the current ones leave.
	 */
	if (!tsnap_queue_begin_streaming(worker))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling snapshot of table \"%s\" because every caller has left",
						relname)));

	/* the client and upload outlive the scan's transaction */
	upload_cxt = AllocSetContextCreate(TopMemoryContext, "tsnap upload",
									   ALLOCSET_SMALL_SIZES);
	old_cxt = MemoryContextSwitchTo(upload_cxt);
	relname = pstrdup(relname);
	client = tsnap_s3_open((uint64) params->max_bytes);
	MemoryContextSwitchTo(old_cxt);

	PG_TRY();
	{
		upload = tsnap_s3_upload_begin(client, result->key, "text/csv", &err);
		if (upload == NULL)
			tsnap_s3_raise(&err, ERROR);
		current_upload = upload;
		result->rows = scan_into(portal, rel, upload, params->max_bytes);

		end_callers_part(&cp);
		commit_scan(rel);

		/*
		 * The object appears only once finish completes it.  If this worker
		 * died between that and recording it (a crash, SIGKILL), nothing
		 * would know of the object; so its key goes to tsnap.pending_deletes
		 * first, in a committed transaction, and recording it removes the
		 * key in the same transaction that inserts the snapshot.  Until then
		 * retention skips the key, since this worker publishes it
		 * (retention.c).
		 */
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		tsnap_record_upload_intent(result->key);
		PopActiveSnapshot();
		CommitTransactionCommand();

		if (!tsnap_s3_upload_finish(upload, &up, &err))
			raise_upload_error(&err, relname, params->max_bytes);
	}
	PG_CATCH();
	{
		tsnap_scan_abort_upload();
		MemoryContextDelete(upload_cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	current_upload = NULL;
	tsnap_s3_upload_free(upload);
	MemoryContextDelete(upload_cxt);

	result->bytes = (int64) up.bytes;
	result->parts = up.parts;
	strlcpy(result->etag, up.etag, sizeof(result->etag));
	result->hit = false;

	/* the object exists; record it */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	tsnap_record_snapshot(params->relid, &tracking_id, fingerprint,
						  params->stale_key, result);
	PopActiveSnapshot();
	CommitTransactionCommand();
	tsnap_queue_set_upload_key(worker, "");
}
