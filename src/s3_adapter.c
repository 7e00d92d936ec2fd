/*-------------------------------------------------------------------------
 *
 * s3_adapter.c
 *	  The boundary between PostgreSQL and tsnap's plain-C S3 client.
 *
 * This file turns tsnap's settings (and the credentials file, if one is
 * set: credentials_file.c) into a client configuration, lets the
 * client's waits notice PostgreSQL interrupts, and turns the client's error
 * values into ereport() with an SQLSTATE.  Nothing else on the PostgreSQL
 * side includes s3/s3.h's error details or builds a configuration.
 *
 * Ownership: a client comes from malloc, not palloc.  tsnap_s3_open ties it
 * to the current memory context through a reset callback, so the client
 * lives exactly as long as that context, and an error anywhere frees it.
 *
 * Interrupts: the client calls interrupt_pending() between 100 ms wait
 * slices and inside curl callbacks, where a longjmp would corrupt curl's
 * state.  So it only reads flags; once the client has unwound and returned
 * S3_ERR_INTERRUPTED, tsnap_s3_raise runs CHECK_FOR_INTERRUPTS, which
 * raises the cancel, timeout or shutdown error itself.  A process that is
 * terminating (SIGTERM, fast shutdown, DROP DATABASE ... FORCE, an exit
 * callback) or whose postmaster died tells the client so: its cleanup
 * (aborting an upload) then gets one short try, and an upload left open is
 * aborted by a later worker's sweep (retention.c), so the process exits
 * within seconds even when S3 stalls.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"

#include "credentials_file.h"
#include "tsnap.h"
#include "settings.h"
#include "s3_adapter.h"

typedef struct TsnapS3Handle
{
	tsnap_s3_client *client;
	MemoryContextCallback cb;
} TsnapS3Handle;

static int	sqlstate_for(const tsnap_s3_error *err);

static bool
is_set(const char *setting)
{
	return setting != NULL && setting[0] != '\0';
}

static int
interrupt_pending(void *arg)
{
	if (ProcDiePending || proc_exit_inprogress || !PostmasterIsAlive())
		return S3_INTERRUPT_TERMINATE;
	return InterruptPending ? S3_INTERRUPT_CANCEL : 0;
}

static void
release_client(void *arg)
{
	TsnapS3Handle *h = (TsnapS3Handle *) arg;

	if (h->client)
		tsnap_s3_client_free(h->client);
	h->client = NULL;
}

/*
 * One-time initialization of libcurl and OpenSSL, from _PG_init.  libcurl's
 * global init is not thread-safe and must run before any thread exists.
 */
void
tsnap_s3_init(void)
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

/*
 * A client configured from the current settings, freed when the current
 * memory context is reset or deleted.  max_object_size caps uploads; 0
 * means S3's own limit.
 */
tsnap_s3_client *
tsnap_s3_open(uint64 max_object_size)
{
	return tsnap_s3_open_at(max_object_size, NULL, NULL);
}

/*
 * The same, for the bucket and endpoint an object was written to (NULL:
 * the configured ones), with the configured credentials and timeouts.
 */
tsnap_s3_client *
tsnap_s3_open_at(uint64 max_object_size, const char *endpoint,
				 const char *bucket)
{
	tsnap_s3_config config;
	TsnapCredentials file_creds;
	tsnap_s3_error err;
	TsnapS3Handle *h;

	config_from_settings(&config, &file_creds);
	config.max_object_size = max_object_size;
	if (endpoint)
		config.endpoint = endpoint;
	if (bucket)
		config.bucket = bucket;

	h = MemoryContextAllocZero(CurrentMemoryContext, sizeof(TsnapS3Handle));
	h->client = tsnap_s3_client_new(&config, &err);
	/* the client keeps its own copies */
	tsnap_wipe_credentials(&file_creds);
	if (h->client == NULL)
		tsnap_s3_raise(&err, ERROR);
	h->cb.func = release_client;
	h->cb.arg = h;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &h->cb);
	return h->client;
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
 * Report a client error at elevel.  An interruption first lets PostgreSQL
 * raise its own error (cancel, statement_timeout, terminate), so the user
 * sees the usual message.  The client's text never holds a secret or a
 * signature (s3.h), so it may go into the detail.
 */
void
tsnap_s3_raise(const tsnap_s3_error *err, int elevel)
{
	char		text[2048];

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
					tsnap_s3_verb(err), err->key, tsnap_s3_bucket) :
			 errmsg("could not %s in bucket \"%s\"",
					tsnap_s3_verb(err), tsnap_s3_bucket),
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
const char *
tsnap_s3_verb(const tsnap_s3_error *err)
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
	};
	size_t		i;

	for (i = 0; err->operation && i < lengthof(verbs); i++)
		if (strcmp(err->operation, verbs[i].operation) == 0)
			return verbs[i].verb;
	return "upload object";
}
