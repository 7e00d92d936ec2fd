/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Deleting objects tsnap no longer keeps, and aborting abandoned uploads,
 *	  through the object store (store/) alone.
 *
 * Both run as housekeeping, after a worker has answered its caller, so they
 * never delay a snapshot.
 *
 * Deletes: the ledger first moves a key from tsnap.snapshots to
 * tsnap.pending_deletes in a committed transaction; only then is the object
 * deleted, with its manifest beside it (<key>.manifest.json, manifest.c),
 * and the pending row removed once the store confirmed both.  A hit can
 * only return keys in tsnap.snapshots, so no key is returned after its
 * delete began; a failed or interrupted delete leaves its row for the next
 * pass.  The same queue holds the key of every upload until it is recorded
 * (an upload intent, see build/build.c), so an object whose worker died
 * before recording it is deleted too, and so is the manifest of a build that
 * failed after writing it; keys that a live worker is still writing are
 * skipped.  An object that never had a manifest (one of an older release,
 * or an upload that failed earlier) is no exception: S3 answers the delete
 * of a missing object as done.
 *
 * Abandoned uploads: a worker killed mid-upload (SIGKILL, crash) cannot
 * abort its multipart upload.  Every worker, when it has answered, lists the
 * open uploads below this cluster's key prefix and aborts those that no
 * live worker is writing.  Other clusters' uploads lie under other prefixes
 * and are never touched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"


#include "common/common.h"
#include "ledger/ledger.h"
#include "store/store.h"

/* keys handled per pass, so one pass stays short */
#define DELETE_BATCH	100

/*
 * Delete the object at key and then its manifest; true once both are gone
 * (or were never there).  On failure, *failure says why, and the row stays
 * for a later pass, which deletes whatever is left.
 */
static bool
delete_with_manifest(TsnapStore *store, const char *key, char **failure)
{
	return tsnap_store_delete(store, key, failure) &&
		tsnap_store_delete(store, tsnap_manifest_key(key), failure);
}

/*
 * Delete up to DELETE_BATCH objects listed in tsnap.pending_deletes, with
 * their manifests, in a transaction of its own.  Failures are recorded in
 * the row and retried by a later pass; interrupts raise as usual.
 */
void
tsnap_delete_pending(TsnapKeyInFlight in_flight)
{
	TsnapCatalogUser saved;
	TsnapStore *store = NULL;
	const char *store_endpoint = NULL;
	const char *store_bucket = NULL;
	ListCell   *lc;

	tsnap_begin_transaction();
	if (!tsnap_catalog_enter(&saved))
	{
		tsnap_commit_transaction();
		return;
	}

	tsnap_ledger_retire_untracked();

	/* the due rows are locked now, but none a live worker is writing */
	foreach(lc, tsnap_ledger_due_deletes(DELETE_BATCH, in_flight))
	{
		TsnapPendingDelete *d = lfirst(lc);
		char	   *failure = NULL;

		/* each object is deleted where it was written */
		if (store == NULL || strcmp(d->endpoint, store_endpoint) != 0 ||
			strcmp(d->bucket, store_bucket) != 0)
		{
			store = tsnap_store_open(d->endpoint, d->bucket, 0);
			store_endpoint = d->endpoint;
			store_bucket = d->bucket;
		}

		if (!delete_with_manifest(store, d->key, &failure))
			ereport(WARNING,
					(errmsg("could not delete old snapshot \"%s\"; will retry",
							d->key),
					 errdetail_internal("%s", failure)));
		tsnap_ledger_delete_done(d->key, failure);
	}

	tsnap_catalog_leave(&saved);
	tsnap_commit_transaction();
}

/*
 * Abort the multipart uploads below this cluster's prefix that no live
 * worker is writing.  Failures are warnings: the next worker tries again.
 */
void
tsnap_sweep_abandoned_uploads(TsnapKeyInFlight in_flight)
{
	TsnapStore *store;
	ListCell   *lc;

	tsnap_begin_transaction();
	store = tsnap_store_open(NULL, NULL, 0);
	foreach(lc, tsnap_store_list_uploads(store, tsnap_cluster_key_prefix()))
	{
		TsnapOpenUpload *u = lfirst(lc);

		if (in_flight(u->key))
			continue;
		if (tsnap_store_abort_upload(store, u))
			ereport(LOG,
					(errmsg("aborted abandoned upload of \"%s\"", u->key)));
	}
	tsnap_commit_transaction();
}
