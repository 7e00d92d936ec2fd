/*-------------------------------------------------------------------------
 *
 * store_s3.c
 *	  The object store (store.h) on S3: the boundary between PostgreSQL and
 *	  tsnap's plain-C S3 client in src/s3/.
 *
 * This file turns tsnap's settings (and the credentials file, if one is
 * set: credentials_file.c) into a client configuration, lets the
 * client's waits notice PostgreSQL interrupts, and turns the client's error
 * values into ereport() with an SQLSTATE.  Nothing else on the PostgreSQL
 * side includes s3/s3.h or builds a configuration.
 *
 * Ownership: a client comes from malloc, not palloc.  tsnap_store_open ties
 * it to the current memory context through a reset callback, so the client
 * lives exactly as long as that context, and an error anywhere frees it.
 * A put stream (a multipart upload) is malloc'd too, and owned by whoever
 * began it until finish or abort frees it.  A get stream is malloc'd and
 * tied to the store's memory context like the client (its callback runs
 * first, callbacks running in reverse order), so an error frees it too.
 *
 * Interrupts: the client calls interrupt_pending() between its wait slices
 * and inside curl callbacks, where a longjmp would corrupt curl's state.
 * So it only reads flags; once the client has unwound and returned
 * S3_ERR_INTERRUPTED, raise_error runs CHECK_FOR_INTERRUPTS, which raises
 * the cancel, timeout or shutdown error itself.  A process that is
 * terminating (SIGTERM, fast shutdown, DROP DATABASE ... FORCE, an exit
 * callback) or whose postmaster died tells the client so: its cleanup
 * (aborting an upload) then gets one short try, and an upload left open is
 * aborted by a later worker's sweep (ledger/retention.c), so the process
 * exits within seconds even when S3 stalls.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"

#include "s3/s3.h"
#include "settings.h"
#include "store/credentials_file.h"
#include "store/store.h"

/* room for every field of a tsnap_s3_error, with their labels */
#define ERROR_TEXT_MAX	(sizeof(tsnap_s3_error) + 128)

struct TsnapStore
{
	tsnap_s3_client *client;
	char	   *bucket;			/* for messages */
	MemoryContextCallback cb;
};

struct TsnapPut
{
	TsnapStore *store;
	tsnap_s3_upload *upload;
};

struct TsnapGet
{
	TsnapStore *store;
	tsnap_s3_get *stream;		/* NULL once closed */
	MemoryContextCallback cb;
};

StaticAssertDecl(TSNAP_OBJECT_KEY_MAX == S3_MAX_KEY_LEN,
				 "store and S3 client disagree on the longest key");
StaticAssertDecl(TSNAP_ETAG_MAX == sizeof(((tsnap_s3_upload_result *) 0)->etag),
				 "store and S3 client disagree on the ETag size");

static int	sqlstate_for(const tsnap_s3_error *err);
static void raise_error(TsnapStore *store, const tsnap_s3_error *err,
						int elevel);
static const char *verb_for(const tsnap_s3_error *err);

static bool
is_set(const char *setting)
{
	return setting != NULL && setting[0] != '\0';
}

/*
 * Stop the client's waits for what ends the statement or the session: a
 * cancel or timeout, a lost client, a parallel worker's message (which may
 * carry its error).  Other interrupts (a ProcSignal barrier, as DROP
 * DATABASE sends every backend, or pg_log_backend_memory_contexts) are
 * served at the next CHECK_FOR_INTERRUPTS after the request: stopping the
 * request for them would fail a statement, a long restore say, for nothing.
 */
static bool yield_to_barriers = false;

static int
interrupt_pending(void *arg)
{
	if (ProcDiePending || proc_exit_inprogress || !PostmasterIsAlive())
		return S3_INTERRUPT_TERMINATE;
	if (yield_to_barriers && ProcSignalBarrierPending)
		return S3_INTERRUPT_CANCEL;
	if (InterruptPending &&
		(QueryCancelPending || ClientConnectionLost ||
		 CheckClientConnectionPending ||
		 IdleInTransactionSessionTimeoutPending ||
		 IdleSessionTimeoutPending || ParallelMessagePending))
		return S3_INTERRUPT_CANCEL;
	return 0;
}

/*
 * For background housekeeping, whose requests can fail and be tried again
 * next round: stop a request for a ProcSignal barrier too, so that a
 * stalled S3 server never holds up DROP DATABASE, which waits for every
 * process to absorb one (raise_error serves it).
 */
void
tsnap_store_yield_to_barriers(void)
{
	yield_to_barriers = true;
}

static void
release_client(void *arg)
{
	TsnapStore *h = (TsnapStore *) arg;

	if (h->client)
		tsnap_s3_client_free(h->client);
	h->client = NULL;
}

/*
 * One-time initialization of libcurl and OpenSSL, from _PG_init.  libcurl's
 * global init is not thread-safe and must run before any thread exists.
 */
void
tsnap_store_init(void)
{
	tsnap_s3_error err;

	if (!tsnap_s3_global_init(&err))
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize tsnap's S3 client"),
				 errdetail_internal("%s", err.detail)));
}

/*
 * Fill config from the current settings.  max_object_size is the caller's
 * business (the snapshot size cap).  Raises 55000 when the bucket or the
 * credentials are not configured.
 */
static void
config_from_settings(tsnap_s3_config *config, TsnapCredentials *file_creds)
{
	if (tsnap_s3_bucket == NULL || tsnap_s3_bucket[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap.s3_bucket is not set"),
				 errhint("Set tsnap.s3_bucket and the other tsnap.s3_* settings in postgresql.conf, then reload.")));
	/* the ledger hands bucket names around in buffers of this size */
	if (strlen(tsnap_s3_bucket) > TSNAP_BUCKET_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tsnap.s3_bucket is longer than %d bytes",
						TSNAP_BUCKET_NAME_MAX),
				 errhint("S3 bucket names have at most 63 characters.")));

	memset(config, 0, sizeof(*config));
	memset(file_creds, 0, sizeof(*file_creds));
	if (is_set(tsnap_s3_credentials_file))
	{
		if (is_set(tsnap_s3_access_key_id) ||
			is_set(tsnap_s3_secret_access_key) ||
			is_set(tsnap_s3_session_token))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tsnap.s3_credentials_file and the tsnap.s3_* credential settings are both set"),
					 errhint("Keep the credentials in one place: clear tsnap.s3_access_key_id, tsnap.s3_secret_access_key and tsnap.s3_session_token, or tsnap.s3_credentials_file.")));
		tsnap_read_credentials_file(tsnap_s3_credentials_file, file_creds);
		config->access_key_id = file_creds->access_key_id;
		config->secret_access_key = file_creds->secret_access_key;
		config->session_token = file_creds->session_token;
	}
	else if (is_set(tsnap_s3_access_key_id) && is_set(tsnap_s3_secret_access_key))
	{
		config->access_key_id = tsnap_s3_access_key_id;
		config->secret_access_key = tsnap_s3_secret_access_key;
		config->session_token = tsnap_s3_session_token;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsnap's S3 credentials are not set"),
				 errhint("Set tsnap.s3_credentials_file, or tsnap.s3_access_key_id and tsnap.s3_secret_access_key, in postgresql.conf, then reload.")));

	config->endpoint = tsnap_s3_endpoint;
	config->region = tsnap_s3_region;
	config->bucket = tsnap_s3_bucket;
	/* auto: NULL lets the client choose, virtual for AWS, path elsewhere */
	config->url_style = tsnap_s3_url_style == TSNAP_URL_STYLE_VIRTUAL ?
		"virtual" : tsnap_s3_url_style == TSNAP_URL_STYLE_PATH ? "path" : NULL;
	config->ca_file = (tsnap_s3_ca_file && tsnap_s3_ca_file[0]) ?
		tsnap_s3_ca_file : NULL;
	config->connect_timeout_ms = tsnap_s3_connect_timeout;
	config->request_timeout_ms = tsnap_s3_request_timeout;
	config->max_attempts = tsnap_s3_max_attempts;
	config->part_size = (size_t) tsnap_part_size * 1024 * 1024;
	config->max_parts_in_flight = tsnap_max_parts_in_flight;
	config->interrupt_cb = interrupt_pending;
	config->interrupt_arg = NULL;
}

/* Where objects go now: the configured endpoint ("" = AWS) and bucket. */
const char *
tsnap_store_endpoint(void)
{
	return tsnap_s3_endpoint ? tsnap_s3_endpoint : "";
}

const char *
tsnap_store_bucket(void)
{
	return tsnap_s3_bucket ? tsnap_s3_bucket : "";
}

/*
 * A store for the bucket and endpoint an object was written to (NULL: the
 * configured ones), with the configured credentials and timeouts, freed
 * when the current memory context is reset or deleted.  max_object_size
 * caps uploads; 0 means S3's own limit.
 */
TsnapStore *
tsnap_store_open(const char *endpoint, const char *bucket,
				 int64 max_object_size)
{
	tsnap_s3_config config;
	TsnapCredentials file_creds;
	tsnap_s3_error err;
	TsnapStore *h;

	config_from_settings(&config, &file_creds);
	config.max_object_size = (uint64) max_object_size;
	if (endpoint)
		config.endpoint = endpoint;
	if (bucket)
		config.bucket = bucket;

	h = MemoryContextAllocZero(CurrentMemoryContext, sizeof(TsnapStore));
	h->bucket = pstrdup(config.bucket);
	h->client = tsnap_s3_client_new(&config, &err);
	/* the client keeps its own copies */
	tsnap_wipe_credentials(&file_creds);
	if (h->client == NULL)
		raise_error(h, &err, ERROR);
	h->cb.func = release_client;
	h->cb.arg = h;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &h->cb);
	return h;
}

/* The bucket a store reads and writes, for messages. */
const char *
tsnap_store_bucket_of(TsnapStore *store)
{
	return store->bucket;
}

/*
 * Begin the object at key.  The stream is the caller's until finish or
 * abort frees it.
 */
TsnapPut *
tsnap_store_put_begin(TsnapStore *store, const char *key,
					  const char *content_type)
{
	TsnapPut   *put;
	tsnap_s3_error err;

	put = MemoryContextAllocZero(GetMemoryChunkContext(store),
								 sizeof(TsnapPut));
	put->store = store;
	put->upload = tsnap_s3_upload_begin(store->client, key, content_type,
										&err);
	if (put->upload == NULL)
	{
		pfree(put);
		raise_error(store, &err, ERROR);
	}
	return put;
}

bool
tsnap_store_put_write(TsnapPut *put, const char *data, size_t len)
{
	tsnap_s3_error err;

	if (tsnap_s3_upload_write(put->upload, data, len, &err))
		return true;
	if (err.kind != S3_ERR_TOO_LARGE)
		raise_error(put->store, &err, ERROR);
	return false;
}

int
tsnap_store_put_parts_done(TsnapPut *put)
{
	return tsnap_s3_upload_parts_done(put->upload);
}

bool
tsnap_store_put_finish(TsnapPut *put, TsnapPutResult *result)
{
	tsnap_s3_upload_result up;
	tsnap_s3_error err;

	if (!tsnap_s3_upload_finish(put->upload, &up, &err))
	{
		if (err.kind != S3_ERR_TOO_LARGE)
			raise_error(put->store, &err, ERROR);
		return false;
	}
	result->bytes = (int64) up.bytes;
	result->parts = up.parts;
	strlcpy(result->etag, up.etag, sizeof(result->etag));
	tsnap_s3_upload_free(put->upload);
	pfree(put);
	return true;
}

/*
 * Abort the stream (no object appears at its key) and free it.  Runs while
 * an error is handled and from exit callbacks, so it never raises: a
 * failure is a warning, and a later sweep aborts what is left open.
 */
void
tsnap_store_put_abort(TsnapPut *put)
{
	tsnap_s3_error err;

	if (!tsnap_s3_upload_abort(put->upload, &err))
	{
		char		text[ERROR_TEXT_MAX];

		tsnap_s3_error_format(&err, text, sizeof(text));
		ereport(WARNING,
				(errmsg("could not abort an unfinished snapshot upload"),
				 errdetail_internal("%s", text)));
	}
	tsnap_s3_upload_free(put->upload);
	pfree(put);
}

static void
release_get(void *arg)
{
	TsnapGet   *get = (TsnapGet *) arg;

	if (get->stream)
		tsnap_s3_get_close(get->stream);
	get->stream = NULL;
}

/*
 * Open the object at key for reading; NULL if there is none.  Waits for
 * the first bytes, so every failure before the body (refused credentials,
 * a server that does not answer) raises here.
 */
TsnapGet *
tsnap_store_get_open(TsnapStore *store, const char *key)
{
	TsnapGet   *get;
	tsnap_s3_error err;

	get = MemoryContextAllocZero(GetMemoryChunkContext(store),
								 sizeof(TsnapGet));
	get->store = store;
	get->stream = tsnap_s3_get_open(store->client, key, &err);
	if (get->stream == NULL)
	{
		pfree(get);
		if (tsnap_s3_error_is_not_found(&err))
			return NULL;
		raise_error(store, &err, ERROR);
	}
	get->cb.func = release_get;
	get->cb.arg = get;
	MemoryContextRegisterResetCallback(GetMemoryChunkContext(store),
									   &get->cb);
	return get;
}

size_t
tsnap_store_get_read(TsnapGet *get, char *buf, size_t len)
{
	tsnap_s3_error err;
	long		n;

	Assert(get->stream != NULL);
	n = tsnap_s3_get_read(get->stream, buf, len, &err);
	if (n < 0)
		raise_error(get->store, &err, ERROR);
	return (size_t) n;
}

/* The object's size as S3 announced it; false if it did not. */
bool
tsnap_store_get_size(TsnapGet *get, int64 *size)
{
	uint64		announced;

	if (get->stream == NULL || !tsnap_s3_get_size(get->stream, &announced))
		return false;
	*size = (int64) announced;
	return true;
}

/* Free the stream; the transfer stops without another request. */
void
tsnap_store_get_close(TsnapGet *get)
{
	release_get(get);
}

/*
 * A small object whole: for manifests, read through a get stream into
 * palloc'd memory.  max_len bounds the memory, whatever S3 sends.
 */
char *
tsnap_store_get_small(TsnapStore *store, const char *key, size_t max_len,
					  size_t *len)
{
	TsnapGet   *get = tsnap_store_get_open(store, key);
	StringInfoData buf;
	char		chunk[8192];
	size_t		n;

	if (get == NULL)
		return NULL;
	initStringInfo(&buf);
	while ((n = tsnap_store_get_read(get, chunk, sizeof(chunk))) > 0)
	{
		if ((size_t) buf.len + n > max_len)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("object \"%s\" in bucket \"%s\" is larger than %zu bytes",
							key, store->bucket, max_len)));
		appendBinaryStringInfo(&buf, chunk, n);
	}
	tsnap_store_get_close(get);
	*len = buf.len;
	return buf.data;
}

/*
 * Is there an object at key?  Raises on any failure but "not found".
 */
bool
tsnap_store_exists(TsnapStore *store, const char *key)
{
	tsnap_s3_error err;
	uint64		size;
	char		etag[TSNAP_ETAG_MAX];

	if (tsnap_s3_head_object(store->client, key, &size, etag, sizeof(etag),
							 &err))
		return true;
	if (tsnap_s3_error_is_not_found(&err))
		return false;
	raise_error(store, &err, ERROR);
	return false;				/* not reached */
}

/*
 * Delete the object at key; true if it is gone (or was never there).  On
 * failure, *failure says why (palloc'd); interrupts raise.
 */
bool
tsnap_store_delete(TsnapStore *store, const char *key, char **failure)
{
	tsnap_s3_error err;
	char		text[ERROR_TEXT_MAX];

	if (tsnap_s3_delete_object(store->client, key, &err) ||
		tsnap_s3_error_is_not_found(&err))
		return true;
	if (err.kind == S3_ERR_INTERRUPTED)
		CHECK_FOR_INTERRUPTS();
	tsnap_s3_error_format(&err, text, sizeof(text));
	*failure = pstrdup(text);
	return false;
}

static int
collect_upload(const tsnap_s3_upload_info *upload, void *arg)
{
	List	  **list = (List **) arg;
	TsnapOpenUpload *u = palloc(sizeof(TsnapOpenUpload));

	u->key = pstrdup(upload->key);
	u->upload_id = pstrdup(upload->upload_id);
	*list = lappend(*list, u);
	return 0;
}

/*
 * The uploads open below prefix (TsnapOpenUpload *).  A failure is a
 * warning and gives what was listed so far: the next sweep tries again.
 */
List *
tsnap_store_list_uploads(TsnapStore *store, const char *prefix)
{
	List	   *uploads = NIL;
	tsnap_s3_error err;

	if (!tsnap_s3_list_multipart_uploads(store->client, prefix,
										 collect_upload, &uploads, &err))
		raise_error(store, &err, WARNING);
	return uploads;
}

/*
 * One page of a listing, collected inside the client's callback so that
 * the caller's visit runs after the client has returned: PostgreSQL code
 * may raise, and a longjmp out of the client would leak its reply and
 * parsed document.  The callback allocates without raising (an allocation
 * that fails stops the listing, and the error is raised afterwards).
 */
typedef struct ListedObject
{
	char	   *key;
	int64		size;
	pg_time_t	last_modified;
} ListedObject;

typedef struct ListPage
{
	MemoryContext cxt;			/* reset for every page */
	ListedObject *objects;		/* S3_LIST_MAX_KEYS of them */
	int			count;
	bool		overflow;		/* the store sent more than it was asked */
	bool		oom;
} ListPage;

StaticAssertDecl(TSNAP_STORE_TIME_UNKNOWN == S3_TIME_UNKNOWN,
				 "store and S3 client disagree on an unknown time");

static int
collect_object(const tsnap_s3_object_info *obj, void *arg)
{
	ListPage   *page = (ListPage *) arg;
	ListedObject *o;
	size_t		len = strlen(obj->key);

	if (page->count >= S3_LIST_MAX_KEYS)
	{
		page->overflow = true;
		return 1;
	}
	o = &page->objects[page->count];
	o->key = MemoryContextAllocExtended(page->cxt, len + 1, MCXT_ALLOC_NO_OOM);
	if (o->key == NULL)
	{
		page->oom = true;
		return 1;
	}
	memcpy(o->key, obj->key, len + 1);
	o->size = obj->size > (uint64) PG_INT64_MAX ? PG_INT64_MAX : (int64) obj->size;
	o->last_modified = obj->last_modified;
	page->count++;
	return 0;
}

/*
 * Every object below prefix, page by page (see store.h).  Each page asks
 * for at most S3_LIST_MAX_KEYS objects, and a reply with more is an error,
 * so memory stays one page's however large the bucket is.
 */
void
tsnap_store_list_objects(TsnapStore *store, const char *prefix,
						 TsnapStoreVisit visit, void *arg)
{
	MemoryContext callercxt = CurrentMemoryContext;
	ListPage	page;
	char	   *token = NULL;	/* palloc'd in callercxt */
	bool		stop = false;

	memset(&page, 0, sizeof(page));
	page.cxt = AllocSetContextCreate(callercxt, "tsnap listing page",
									 ALLOCSET_DEFAULT_SIZES);
	while (!stop)
	{
		tsnap_s3_error err;
		char	   *next = NULL;
		int			i;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(page.cxt);
		page.objects = MemoryContextAlloc(page.cxt,
										  sizeof(ListedObject) * S3_LIST_MAX_KEYS);
		page.count = 0;
		if (!tsnap_s3_list_objects_page(store->client, prefix,
										S3_LIST_MAX_KEYS, token, &next,
										collect_object, &page, &err))
		{
			if (page.oom)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
			if (page.overflow)
				ereport(ERROR,
						(errcode(ERRCODE_IO_ERROR),
						 errmsg("could not list objects under prefix \"%s\" in bucket \"%s\"",
								prefix, store->bucket),
						 errdetail("A page of the listing held more than the %d objects asked for.",
								   S3_LIST_MAX_KEYS)));
			raise_error(store, &err, ERROR);
		}
		if (token)
			pfree(token);
		token = NULL;
		if (next)
		{
			size_t		len = strlen(next);

			/* the client's malloc'd token is freed before anything raises */
			token = MemoryContextAllocExtended(callercxt, len + 1,
											   MCXT_ALLOC_NO_OOM);
			if (token)
				memcpy(token, next, len + 1);
			free(next);
			if (token == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
		}
		for (i = 0; i < page.count && !stop; i++)
			stop = !visit(page.objects[i].key, page.objects[i].size,
						  page.objects[i].last_modified, arg);
		if (token == NULL)
			break;
	}
	if (token)
		pfree(token);
	MemoryContextDelete(page.cxt);
}

/*
 * Abort an open upload; true if this call aborted it.  Failures other than
 * "not found" are warnings.
 */
bool
tsnap_store_abort_upload(TsnapStore *store, const TsnapOpenUpload *upload)
{
	tsnap_s3_error err;

	if (tsnap_s3_abort_multipart_upload(store->client, upload->key,
										upload->upload_id, &err))
		return true;
	if (!tsnap_s3_error_is_not_found(&err))
		raise_error(store, &err, WARNING);
	return false;
}

/*
 * A presigned GET URL for key (see store.h).  SigV4 query authentication
 * with the store's credentials, computed here without a request.  The
 * client's error, if any, names the key and never the URL (s3.h).  The
 * client's malloc'd copy is wiped before it is freed, as the secret is.
 */
char *
tsnap_store_presign_get(TsnapStore *store, const char *key, int seconds)
{
	tsnap_s3_error err;
	char	   *url;
	char	   *copy;
	size_t		len;

	url = tsnap_s3_presign_url(store->client, "GET", key, (long) seconds,
							   &err);
	if (url == NULL)
		raise_error(store, &err, ERROR);
	len = strlen(url);
	copy = palloc_extended(len + 1, MCXT_ALLOC_NO_OOM);
	if (copy)
		memcpy(copy, url, len + 1);
	explicit_bzero(url, len);
	free(url);
	if (copy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return copy;
}

/*
 * SQLSTATE for a client error.  Transport failures are connection failures,
 * as postgres_fdw reports a server it cannot reach; refused credentials are
 * authorization failures; a missing bucket is an undefined object.
 */
static int
sqlstate_for(const tsnap_s3_error *err)
{
	switch (err->kind)
	{
		case S3_ERR_CURL:
			return ERRCODE_CONNECTION_FAILURE;
		case S3_ERR_TOO_LARGE:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case S3_ERR_INVALID:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case S3_ERR_INTERRUPTED:
			return ERRCODE_QUERY_CANCELED;
		case S3_ERR_HTTP:
		case S3_ERR_S3:
			if (err->http_status == 401 || err->http_status == 403)
				return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
			if (strcmp(err->code, "NoSuchBucket") == 0)
				return ERRCODE_UNDEFINED_OBJECT;
			return ERRCODE_IO_ERROR;
		default:
			return ERRCODE_INTERNAL_ERROR;
	}
}

/*
 * Report a client error at elevel, naming the store's bucket.  An interruption first lets PostgreSQL
 * raise its own error (cancel, statement_timeout, terminate), so the user
 * sees the usual message.  The client's text never holds a secret or a
 * signature (s3.h), so it may go into the detail.
 */
static void
raise_error(TsnapStore *store, const tsnap_s3_error *err, int elevel)
{
	char		text[ERROR_TEXT_MAX];

	if (err->kind == S3_ERR_INTERRUPTED && elevel >= ERROR)
	{
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			ereport(FATAL,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("terminating tsnap's S3 request because the postmaster exited")));
	}

	tsnap_s3_error_format(err, text, sizeof(text));
	ereport(elevel,
			(errcode(sqlstate_for(err)),
			 err->key[0] ?
			 errmsg("could not %s \"%s\" in bucket \"%s\"",
					verb_for(err), err->key, store->bucket) :
			 errmsg("could not %s in bucket \"%s\"",
					verb_for(err), store->bucket),
			 errdetail_internal("%s", text),
			 err->kind == S3_ERR_CURL ?
			 errhint("Check tsnap.s3_endpoint and that the S3 server is reachable.") :
			 sqlstate_for(err) == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION ?
			 (is_set(tsnap_s3_credentials_file) ?
			  errhint("Check the keys in tsnap.s3_credentials_file and the bucket's permissions.") :
			  errhint("Check tsnap.s3_access_key_id, tsnap.s3_secret_access_key and the bucket's permissions.")) : 0));
}

/*
 * A lower-case verb phrase for the failed operation, with the noun for its
 * key, for messages such as "could not upload object ...".  Listings name a
 * prefix, not an object.
 */
static const char *
verb_for(const tsnap_s3_error *err)
{
	static const struct
	{
		const char *operation;
		const char *verb;
	}			verbs[] = {
		{"HeadObject", "check object"},
		{"GetObject", "read object"},
		{"DeleteObject", "delete object"},
		{"ListObjectsV2", "list objects under prefix"},
		{"ListMultipartUploads", "list uploads under prefix"},
		{"AbortMultipartUpload", "abort the upload of object"},
		{"presign", "presign a download of object"},
	};
	size_t		i;

	for (i = 0; err->operation && i < lengthof(verbs); i++)
		if (strcmp(err->operation, verbs[i].operation) == 0)
			return verbs[i].verb;
	return "upload object";
}
