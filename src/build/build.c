/*-------------------------------------------------------------------------
 *
 * build.c
 *	  Building one snapshot in a worker, in phases: the caller's part (lock,
 *	  checks, version, fingerprint, plan, rows), then the upload's intent,
 *	  completion, manifest and record.
 *
 * The scan runs in a REPEATABLE READ, read-only transaction as the calling
 * role, so the version, the fingerprint and every row come from one MVCC
 * snapshot, and privileges and row-level security apply as they would to
 * the caller.  Rows go through the format (export/), and the compressor if
 * the request asks for one, into a sink that writes them to the store's
 * streaming upload, which sends parts while the scan goes on and blocks it
 * when max_parts_in_flight parts are in the air.
 *
 * The upload is owned by this file until it completes: any error (a failed
 * part, the size cap, cancel, a type output function raising) aborts it
 * before the error propagates, so no object appears at the key and no
 * multipart upload stays open.  Three transactions: the scan's; then one
 * that queues the key for deletion before the upload is completed (so a
 * worker that dies before recording its object still has it deleted); then,
 * once the object and its manifest exist, one that records it and unqueues
 * the key.
 *
 * The manifest (ledger/manifest.c) describes the table from the caller's
 * part, while the relation is open; the sink computes the object's checksum
 * as the bytes go to the store (after the compressor, so of the object as
 * stored); and the manifest is written at
 * <key>.manifest.json between the object's completion and the record.  If
 * that fails, the build fails, and the intent that still covers the key
 * has retention delete the object and any manifest with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "build/build.h"
#include "common/common.h"
#include "export/export.h"
#include "ledger/ledger.h"
#include "settings.h"
#include "store/store.h"
#include "tracking/tracking.h"

/* the upload in progress, so the exit callback can abort it */
static TsnapPut *volatile current_put = NULL;

/*
 * The caller's part of a request: from the table lock to the last row, the
 * worker runs as the calling role, as a security-restricted operation (no
 * SET ROLE, PREPARE, temp tables, cursors WITH HOLD), in a GUC nest level of
 * its own that holds the pinned output settings, as REFRESH MATERIALIZED
 * VIEW runs the owner's code.  Ending it undoes every setting the caller's
 * code changed (also set_config(..., false)) and drops the session advisory
 * locks it took, before the worker's own catalog SQL runs.  The worker exits
 * after each request besides (jobs/worker.c), so nothing else can outlive
 * it.
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
	/* waits here end when the callers leave (jobs/worker.c), not on a timer */
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

/*
 * Start the scan's transaction: REPEATABLE READ and read-only, whatever the
 * session's defaults, which are put back at once (they apply only when a
 * transaction starts).
 */
static void
start_scan_transaction(void)
{
	int			save_iso = DefaultXactIsoLevel;
	bool		save_read_only = DefaultXactReadOnly;

	SetCurrentStatementStartTimestamp();
	DefaultXactIsoLevel = XACT_REPEATABLE_READ;
	DefaultXactReadOnly = true;
	StartTransactionCommand();
	DefaultXactIsoLevel = save_iso;
	DefaultXactReadOnly = save_read_only;
	SPI_connect();
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

/* Run fn(arg) in a read-write transaction of its own. */
static void
in_transaction(void (*fn) (void *arg), void *arg)
{
	tsnap_begin_transaction();
	fn(arg);
	tsnap_commit_transaction();
}

/*
 * What the sink needs: the upload, the checksum of what went into it, and
 * whom to tell about progress.
 */
typedef struct UploadSink
{
	TsnapPut   *put;
	TsnapObjectChecksum *checksum;
	const char *relname;
	int64		max_bytes;
	TsnapBuildReport report;
	void	   *report_arg;
	TsnapBuildProgress progress;
} UploadSink;

static void
raise_too_large(const char *relname, int64 max_bytes)
{
	if (max_bytes > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("snapshot of table \"%s\" exceeds tsnap.max_snapshot_size (" INT64_FORMAT "kB)",
						relname, max_bytes / 1024),
				 errhint("Raise tsnap.max_snapshot_size, or set it to 0 for no limit.")));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("snapshot of table \"%s\" exceeds the largest object the object store takes",
					relname)));
}

static void
sink_write(void *arg, const char *data, size_t len, int64 rows_so_far)
{
	UploadSink *s = (UploadSink *) arg;

	if (!tsnap_store_put_write(s->put, data, len))
		raise_too_large(s->relname, s->max_bytes);
	/* these bytes are the object's next ones, as stored */
	tsnap_checksum_update(s->checksum, data, len);
	s->progress.rows = rows_so_far;
	s->progress.bytes += len;
	s->progress.parts = tsnap_store_put_parts_done(s->put);
	(void) s->report(TSNAP_BUILD_PROGRESS, &s->progress, s->report_arg);
}

static void
record_intent(void *arg)
{
	tsnap_ledger_record_intent((const char *) arg);
}

typedef struct RecordArgs
{
	const TsnapBuildRequest *request;
	const pg_uuid_t *tracking_id;
	const char *fingerprint;
	TsnapSnapshotResult *result;
} RecordArgs;

static void
record_snapshot(void *arg)
{
	RecordArgs *a = (RecordArgs *) arg;

	tsnap_ledger_record(a->request->relid, a->tracking_id, a->fingerprint,
						a->request->stale_key, a->result);
}

/*
 * Abort and free the upload in progress, if any.  Used on error and from
 * the worker's exit path; never raises (it runs while an error is handled).
 */
void
tsnap_build_abort_upload(void)
{
	TsnapPut   *put = current_put;

	if (put == NULL)
		return;
	current_put = NULL;
	tsnap_store_put_abort(put);
}

/*
 * Stream the scan's rows to a new object at result->key, then end the scan's
 * transaction (and with it the caller's part), record the intent, complete
 * the object, and write its manifest.  On any error the upload is aborted
 * first.
 */
static void
upload(TsnapScan *scan, Relation rel, CallersPart *cp,
	   const TsnapBuildRequest *request, TsnapBuildReport report, void *arg,
	   TsnapNewManifest *manifest, TsnapSnapshotResult *result)
{
	MemoryContext upload_cxt;
	MemoryContext old_cxt;
	TsnapStore *store;
	TsnapStore *manifest_store;
	TsnapPutResult done;
	UploadSink	sink;
	TsnapSink	sink_api;
	TsnapSink	scan_sink;
	TsnapCompressor *compressor;
	const TsnapCodec *codec = tsnap_codec(request->compression);
	const char *content_type = codec->content_type ? codec->content_type :
		tsnap_format_csv.content_type;

	/* the store and the upload outlive the scan's transaction */
	upload_cxt = AllocSetContextCreate(TopMemoryContext, "tsnap upload",
									   ALLOCSET_SMALL_SIZES);
	old_cxt = MemoryContextSwitchTo(upload_cxt);
	memset(&sink, 0, sizeof(sink));
	sink.relname = pstrdup(RelationGetRelationName(rel));
	sink.max_bytes = request->max_bytes;
	sink.report = report;
	sink.report_arg = arg;
	sink.progress.rows_version = result->rows_version;
	sink.progress.key = result->key;
	store = tsnap_store_open(NULL, NULL, request->max_bytes);
	/* the size cap is the CSV's, not the manifest's */
	manifest_store = tsnap_store_open(NULL, NULL, 0);
	sink.checksum = tsnap_checksum_begin(tsnap_manifest_checksum);
	MemoryContextSwitchTo(old_cxt);
	sink_api.write = sink_write;
	sink_api.arg = &sink;

	PG_TRY();
	{
		/* format -> compressor (unless none) -> upload; freed with upload_cxt */
		old_cxt = MemoryContextSwitchTo(upload_cxt);
		compressor = tsnap_compressor_begin(request->compression, &sink_api,
											&scan_sink);
		MemoryContextSwitchTo(old_cxt);
		current_put = sink.put =
			tsnap_store_put_begin(store, result->key, content_type);
		result->rows = tsnap_scan_run(scan, &tsnap_format_csv, &scan_sink);
		tsnap_compressor_finish(compressor);
		end_callers_part(cp);
		commit_scan(rel);

		/*
		 * The object appears only once finish completes it.  If this worker
		 * died between that and recording it (a crash, SIGKILL), nothing
		 * would know of the object; so its key goes to the ledger's delete
		 * queue first, in a committed transaction, and recording it removes
		 * the key in the same transaction that inserts the snapshot.  Until
		 * then retention skips the key, since this worker is writing it.
		 */
		in_transaction(record_intent, result->key);

		if (!tsnap_store_put_finish(sink.put, &done))
			raise_too_large(sink.relname, request->max_bytes);
		current_put = NULL;

		/* the object exists; its manifest goes beside it */
		manifest->compression = codec->name;
		manifest->content_type = content_type;
		manifest->rows = result->rows;
		manifest->bytes = done.bytes;
		manifest->checksum_algorithm =
			tsnap_checksum_final(sink.checksum, manifest->checksum);
		manifest->created_at = GetCurrentTimestamp();
		{
			/* the scan's memory is gone; the manifest's goes with ours */
			MemoryContext outer = MemoryContextSwitchTo(upload_cxt);

			tsnap_manifest_write(manifest_store, manifest);
			MemoryContextSwitchTo(outer);
		}
	}
	PG_FINALLY();
	{
		tsnap_build_abort_upload();
		MemoryContextDelete(upload_cxt);
	}
	PG_END_TRY();

	result->bytes = done.bytes;
	result->parts = done.parts;
	strlcpy(result->etag, done.etag, sizeof(result->etag));
	/* the ledger records it (and fills in the bucket) */
	result->compression = request->compression;
}

/*
 * Build the snapshot the request asks for and fill result, reporting each
 * phase to report(phase, progress, arg).  Runs outside any transaction;
 * raises on failure with nothing left in the store.
 */
void
tsnap_build(const TsnapBuildRequest *request, TsnapBuildReport report,
			void *arg, TsnapSnapshotResult *result)
{
	CallersPart cp;
	Relation	rel;
	pg_uuid_t	tracking_id;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
	char		planned[TSNAP_FINGERPRINT_LEN + 1];
	const char *relname;
	TsnapScan  *scan;
	TsnapBuildProgress progress;
	RecordArgs	record;
	MemoryContext manifest_cxt;
	MemoryContext old_cxt;
	TsnapNewManifest *manifest;

	/*
	 * The manifest is gathered in the scan's transaction and written after
	 * it, so it lives in a context of the worker's (which an error leaves to
	 * the worker's exit).
	 */
	manifest_cxt = AllocSetContextCreate(CurrentMemoryContext,
										 "tsnap manifest",
										 ALLOCSET_SMALL_SIZES);
	memset(&progress, 0, sizeof(progress));
	start_scan_transaction();

	/* from here on, privileges and RLS are the caller's */
	begin_callers_part(&cp, request->roleid);

	/*
	 * Lock the table before taking the transaction snapshot.  Callers that
	 * joined this request while the lock was awaited saw only commits that
	 * the snapshot, taken afterwards, also sees; once it is taken, only
	 * callers whose view is no newer may join (jobs/queue.c).  If every
	 * caller leaves while we wait, the worker is cancelled (jobs/worker.c).
	 */
	rel = tsnap_open_relation(request->relid, AccessShareLock);
	relname = RelationGetRelationName(rel);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("tsnap snapshot of %s", relname));
	(void) report(TSNAP_BUILD_LOCKED, &progress, arg);
	PushActiveSnapshot(GetTransactionSnapshot());

	tsnap_check_select(rel);
	tsnap_check_rls(rel);

	result->rows_version = tsnap_read_tracking(request->relid, &tracking_id);
	if (result->rows_version < 0)
		tsnap_raise_not_tracked(request->relid);
	progress.rows_version = result->rows_version;
	(void) report(TSNAP_BUILD_VERSION, &progress, arg);
	tsnap_fingerprint(rel, &tsnap_format_csv, request->compression,
					  fingerprint);

	/* someone may have built it meanwhile */
	if (request->stale_key[0] == '\0' &&
		tsnap_lookup_snapshot(request->relid, &tracking_id,
							  result->rows_version, fingerprint,
							  request->compression, result))
	{
		end_callers_part(&cp);
		commit_scan(rel);
		result->hit = true;
		MemoryContextDelete(manifest_cxt);
		return;
	}

	tsnap_build_key(request->relid, &tracking_id, result->rows_version,
					fingerprint, &tsnap_format_csv, request->compression,
					result->key);
	scan = tsnap_scan_open(rel);

	/*
	 * Planning locked every partition; if one was attached or detached (or
	 * rewritten) since the fingerprint was taken, the key would not describe
	 * the rows, so give up rather than guess.
	 */
	tsnap_fingerprint(rel, &tsnap_format_csv, request->compression, planned);
	if (strcmp(planned, fingerprint) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("table \"%s\" changed while its snapshot was prepared",
						relname),
				 errdetail("A partition was attached, detached or rewritten concurrently."),
				 errhint("Call tsnap_snapshot again.")));

	/*
	 * What the manifest says of the table and its columns, taken now: the
	 * relation is open and locked, and format_type follows the pinned
	 * settings.
	 */
	old_cxt = MemoryContextSwitchTo(manifest_cxt);
	manifest = tsnap_manifest_describe(rel, &tsnap_format_csv);
	MemoryContextSwitchTo(old_cxt);
	manifest->tracking_id = tracking_id;
	manifest->rows_version = result->rows_version;
	strlcpy(manifest->fingerprint, fingerprint, sizeof(manifest->fingerprint));
	manifest->key = result->key;

	/*
	 * From here on the work is streaming rows, and goes on for later callers
	 * even if the current ones leave.
	 */
	progress.key = result->key;
	if (!report(TSNAP_BUILD_STREAMING, &progress, arg))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling snapshot of table \"%s\" because every caller has left",
						relname)));

	upload(scan, rel, &cp, request, report, arg, manifest, result);
	result->hit = false;
	MemoryContextDelete(manifest_cxt);

	/* the object exists; record it */
	record.request = request;
	record.tracking_id = &tracking_id;
	record.fingerprint = fingerprint;
	record.result = result;
	in_transaction(record_snapshot, &record);
}
