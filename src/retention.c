/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Deleting objects tsnap no longer keeps, and aborting abandoned uploads.
 *
 * Both run in a worker, after it has answered its caller, so they never
 * delay a snapshot.
 *
 * Deletes: the catalog first moves a key from tsnap.snapshots to
 * tsnap.pending_deletes in a committed transaction; only then is the object
 * deleted, and the pending row removed once S3 confirmed.  A hit can only
 * return keys in tsnap.snapshots, so no key is returned after its delete
 * began; a failed or interrupted delete leaves its row for the next worker.
 * The same queue holds the key of every upload until it is recorded (an
 * upload intent, see scan.c), so an object whose worker died before
 * recording it is deleted too; keys that a live worker is still uploading
 * are skipped.
 *
 * Abandoned uploads: a worker killed mid-upload (SIGKILL, crash) cannot
 * abort its multipart upload.  Every worker, when it starts, lists the open
 * uploads below this cluster's key prefix and aborts those that no live
 * request is writing (request_queue.c publishes each key before its upload
 * begins).  Other clusters' uploads lie under other prefixes and are never
 * touched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "tsnap.h"
#include "settings.h"
#include "s3_adapter.h"
#include "snapshot.h"

/* keys handled per worker pass, so one pass stays short */
#define DELETE_BATCH	100

/*
 * Delete up to DELETE_BATCH objects listed in tsnap.pending_deletes, in a
 * transaction of its own.  Failures are recorded in the row and retried by a
 * later pass; interrupts raise as usual.
 */
void
tsnap_delete_pending(void)
{
	TsnapCatalogUser saved;
	tsnap_s3_client *client = NULL;
	const char *client_endpoint = NULL;
	const char *client_bucket = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	List	   *keys = NIL;
	ListCell   *lc;
	uint64		i;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!tsnap_catalog_enter(&saved))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return;
	}
	SPI_connect();

	/*
	 * Snapshots whose table is no longer tracked under their tracking_id can
	 * never be hits.  Untracking and DROP TABLE queue them; this catches one
	 * recorded just as its table went (tsnap_record_snapshot checks, but
	 * cannot lock out a concurrent DROP).
	 */
	if (SPI_execute(psprintf("WITH gone AS (SELECT s.key FROM tsnap.snapshots s WHERE NOT EXISTS "
					"  (SELECT FROM tsnap.tracked_tables t "
					"   WHERE t.tbl OPERATOR(pg_catalog.=) s.tbl "
					"   AND t.tracking_id OPERATOR(pg_catalog.=) s.tracking_id) "
					"  FOR UPDATE OF s SKIP LOCKED), "
					"r AS (DELETE FROM tsnap.snapshots s USING gone "
					"  WHERE s.key OPERATOR(pg_catalog.=) gone.key "
					"  RETURNING s.key, s.endpoint, s.bucket) "
					"INSERT INTO tsnap.pending_deletes (key, endpoint, bucket, not_before) "
					"SELECT key, endpoint, bucket, " TSNAP_AFTER_KEEP_FOR_SQL " FROM r "
					"ON CONFLICT DO NOTHING", tsnap_keep_for),
					false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not queue snapshots of untracked tables");

	/*
	 * Lock the rows, then skip keys a live worker is uploading: their rows
	 * are upload intents (scan.c), removed by the transaction that records
	 * the snapshot, which our lock holds back until we are done.
	 */
	if (SPI_execute("SELECT key, endpoint, bucket FROM tsnap.pending_deletes "
					"WHERE not_before OPERATOR(pg_catalog.<=) pg_catalog.now() "
					"ORDER BY queued_at, key LIMIT " CppAsString2(DELETE_BATCH) " "
					"FOR UPDATE SKIP LOCKED",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tsnap.pending_deletes");
	for (i = 0; i < SPI_processed; i++)
	{
		/* allocated in SPI's context, which lives until SPI_finish */
		char	  **where = palloc(sizeof(char *) * 3);
		int			col;

		for (col = 0; col < 3; col++)
			where[col] = SPI_getvalue(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, col + 1);
		if (!tsnap_queue_key_in_progress(where[0]))
			keys = lappend(keys, where);
	}

	/* each object is deleted where it was written */
	foreach(lc, keys)
	{
		char	  **where = lfirst(lc);
		char	   *key = where[0];
		tsnap_s3_error err;
		Datum		values[2];

		if (client == NULL || strcmp(where[1], client_endpoint) != 0 ||
			strcmp(where[2], client_bucket) != 0)
		{
			client = tsnap_s3_open_at(0, where[1], where[2]);
			client_endpoint = where[1];
			client_bucket = where[2];
		}

		values[0] = CStringGetTextDatum(key);
		if (tsnap_s3_delete_object(client, key, &err) ||
			tsnap_s3_error_is_not_found(&err))
		{
			if (SPI_execute_with_args("DELETE FROM tsnap.pending_deletes WHERE key OPERATOR(pg_catalog.=) $1",
									  1, argtypes, values, NULL, false, 0) < 0)
				elog(ERROR, "could not update tsnap.pending_deletes");
			continue;
		}
		if (err.kind == S3_ERR_INTERRUPTED)
			CHECK_FOR_INTERRUPTS();

		{
			char		text[1024];

			tsnap_s3_error_format(&err, text, sizeof(text));
			values[1] = CStringGetTextDatum(text);
			ereport(WARNING,
					(errmsg("could not delete old snapshot \"%s\"; will retry", key),
					 errdetail_internal("%s", text)));
		}
		if (SPI_execute_with_args("UPDATE tsnap.pending_deletes "
								  "SET attempts = attempts OPERATOR(pg_catalog.+) 1, last_error = $2 "
								  "WHERE key OPERATOR(pg_catalog.=) $1",
								  2, argtypes, values, NULL, false, 0) < 0)
			elog(ERROR, "could not update tsnap.pending_deletes");
	}

	SPI_finish();
	tsnap_catalog_leave(&saved);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

typedef struct OpenUpload
{
	char	   *key;
	char	   *upload_id;
} OpenUpload;

static int
collect_upload(const tsnap_s3_upload_info *upload, void *arg)
{
	List	  **list = (List **) arg;
	OpenUpload *u = palloc(sizeof(OpenUpload));

	u->key = pstrdup(upload->key);
	u->upload_id = pstrdup(upload->upload_id);
	*list = lappend(*list, u);
	return 0;
}

/*
 * Abort the multipart uploads below this cluster's prefix that no live
 * request is writing.  Failures are warnings: the next worker tries again.
 */
void
tsnap_sweep_abandoned_uploads(void)
{
	tsnap_s3_client *client;
	tsnap_s3_error err;
	List	   *uploads = NIL;
	ListCell   *lc;

	StartTransactionCommand();
	client = tsnap_s3_open(0);
	if (!tsnap_s3_list_multipart_uploads(client, tsnap_cluster_key_prefix(),
										 collect_upload, &uploads, &err))
		tsnap_s3_raise(&err, WARNING);

	foreach(lc, uploads)
	{
		OpenUpload *u = lfirst(lc);

		if (tsnap_queue_key_in_progress(u->key))
			continue;
		if (tsnap_s3_abort_multipart_upload(client, u->key, u->upload_id, &err))
			ereport(LOG,
					(errmsg("aborted abandoned upload of \"%s\"", u->key)));
		else if (!tsnap_s3_error_is_not_found(&err))
			tsnap_s3_raise(&err, WARNING);
	}
	CommitTransactionCommand();
}
