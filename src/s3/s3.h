/*-------------------------------------------------------------------------
 *
 * s3.h
 *	  Public interface of tsnap's S3 client: a standalone C module (no
 *	  PostgreSQL headers) built on libcurl, OpenSSL and libxml2.
 *
 * The client signs requests with AWS Signature Version 4, retries transient
 * failures with full-jitter exponential backoff, and streams large objects
 * through a multipart uploader whose memory is bounded by
 * part_size * (max_parts_in_flight + 1) plus a constant.
 *
 * Ownership rules:
 *	- tsnap_s3_client_new() deep-copies the configuration; the caller's
 *	  strings may be freed afterwards.  The secret is wiped when the client
 *	  is freed.
 *	- A client (and every uploader made from it) is used by one thread at a
 *	  time.  All network waits happen in that thread, in slices of at most
 *	  100 ms, and call config->interrupt_cb between slices.
 *	- Every function that can fail takes a tsnap_s3_error *, fills it on
 *	  failure and returns false.  tsnap_s3_error holds only fixed-size
 *	  buffers: nothing to free.  It never contains the secret, a signature,
 *	  an Authorization header or a presigned URL.
 *	- interrupt_cb is called between wait slices and from inside curl
 *	  callbacks, so it must not longjmp (no ereport/CHECK_FOR_INTERRUPTS): it
 *	  returns nonzero, the S3 call unwinds, frees what it owns and returns
 *	  S3_ERR_INTERRUPTED, and the caller raises its own error afterwards.
 *	  S3_INTERRUPT_CANCEL stops every wait but cleanup (aborting a multipart
 *	  upload).  S3_INTERRUPT_TERMINATE says the process is going away:
 *	  cleanup then gets one attempt of at most S3_TERMINATE_GRACE_MS, and
 *	  what it could not finish is left for a later sweep.
 *	- Memory comes from malloc; everything a function returns is released
 *	  with the matching tsnap_s3_*_free function.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_S3_H
#define TSNAP_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* S3's limits, and this client's defaults. */
#define S3_MIN_PART_SIZE			((size_t) 5 * 1024 * 1024)
#define S3_MAX_PART_SIZE			((size_t) 5 * 1024 * 1024 * 1024)
#define S3_MAX_PARTS				10000
#define S3_MAX_KEY_LEN				1024	/* bytes */
#define S3_MAX_OBJECT_SIZE			((uint64_t) 5 * 1024 * 1024 * 1024 * 1024)
#define S3_DEFAULT_PART_SIZE		((size_t) 8 * 1024 * 1024)
#define S3_DEFAULT_PARTS_IN_FLIGHT	4
#define S3_DEFAULT_MAX_ATTEMPTS		5
#define S3_DEFAULT_CONNECT_TIMEOUT_MS	10000
#define S3_DEFAULT_STALL_TIMEOUT_MS		30000

/* Parts keep one size for this many part numbers, then the size doubles. */
#define S3_PART_SIZE_GROWTH_INTERVAL	900

typedef enum tsnap_s3_error_kind
{
	S3_OK = 0,
	S3_ERR_HTTP,				/* HTTP error status without an S3 error body */
	S3_ERR_S3,					/* S3 error reply (<Error><Code>...) */
	S3_ERR_CURL,				/* transport failure: connect, reset, timeout */
	S3_ERR_INTERRUPTED,			/* interrupt_cb returned nonzero */
	S3_ERR_TOO_LARGE,			/* object exceeds max_object_size or S3 limits */
	S3_ERR_CALLBACK,			/* a caller's callback asked to stop */
	S3_ERR_INVALID,				/* bad argument or configuration */
	S3_ERR_INTERNAL				/* out of memory, unparsable reply, ... */
} tsnap_s3_error_kind;

typedef struct tsnap_s3_error
{
	tsnap_s3_error_kind kind;
	const char *operation;		/* static string: "PutObject", "UploadPart" */
	char		key[S3_MAX_KEY_LEN + 1];	/* object key (truncated if
											 * needed) */
	long		http_status;	/* 0 if no HTTP answer */
	char		code[64];		/* S3 <Code>, e.g. "SlowDown" */
	char		message[512];	/* S3 <Message> */
	char		detail[512];	/* curl error text or internal detail */
	int			attempts;		/* attempts made by the failing request */
} tsnap_s3_error;

/* what interrupt_cb returns */
#define S3_INTERRUPT_CANCEL		1	/* stop, but finish cleanup */
#define S3_INTERRUPT_TERMINATE	2	/* stop; cleanup gets a short grace */
#define S3_TERMINATE_GRACE_MS	1000

typedef struct tsnap_s3_config
{
	const char *endpoint;		/* "http://127.0.0.1:7480"; NULL or "" = AWS */
	const char *region;			/* "us-east-1" */
	const char *bucket;
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL or "" = none */
	const char *url_style;		/* "path" or "virtual"; NULL = virtual for
								 * AWS, path for a custom endpoint */
	const char *ca_file;		/* CA bundle for https; NULL = system default */
	long		connect_timeout_ms; /* 0 = default */
	long		request_timeout_ms; /* whole attempt; 0 = no limit */
	long		stall_timeout_ms;	/* no byte moved for this long = timeout;
									 * 0 = default, <0 = off */
	int			max_attempts;	/* per request, including the first; 0 =
								 * default */
	size_t		part_size;		/* first part size; 0 = default, min 5 MiB */
	int			max_parts_in_flight;	/* 0 = default */
	uint64_t	max_object_size;	/* uploader cap; 0 = S3's 5 TiB */
	int			(*interrupt_cb) (void *arg);	/* S3_INTERRUPT_*, 0 = go on */
	void	   *interrupt_arg;
} tsnap_s3_config;

typedef struct tsnap_s3_client tsnap_s3_client;
typedef struct tsnap_s3_upload tsnap_s3_upload;
typedef struct tsnap_s3_get tsnap_s3_get;

/*
 * An object as a listing shows it.  last_modified is S3's LastModified in
 * Unix seconds (the fraction dropped), or S3_TIME_UNKNOWN when the reply
 * had none that parses: that value compares as later than any real time,
 * so a check of an object's age keeps such an object.
 */
#define S3_TIME_UNKNOWN				INT64_MAX

typedef struct tsnap_s3_object_info
{
	const char *key;
	uint64_t	size;
	const char *etag;
	int64_t		last_modified;
} tsnap_s3_object_info;

typedef struct tsnap_s3_upload_info
{
	const char *key;
	const char *upload_id;
} tsnap_s3_upload_info;

/* Callbacks return 0 to continue, nonzero to stop (S3_ERR_CALLBACK). */
typedef int (*tsnap_s3_data_cb) (const char *data, size_t len, void *arg);
typedef int (*tsnap_s3_object_cb) (const tsnap_s3_object_info *obj, void *arg);
typedef int (*tsnap_s3_upload_cb) (const tsnap_s3_upload_info *upload,
								   void *arg);

/* s3_client.c */
extern bool tsnap_s3_global_init(tsnap_s3_error *err);
extern tsnap_s3_client *tsnap_s3_client_new(const tsnap_s3_config *config,
											tsnap_s3_error *err);
extern void tsnap_s3_client_free(tsnap_s3_client *client);

/* s3_error.c */
extern void tsnap_s3_error_clear(tsnap_s3_error *err);
extern size_t tsnap_s3_error_format(const tsnap_s3_error *err, char *buf,
									size_t buflen);
extern bool tsnap_s3_error_is_not_found(const tsnap_s3_error *err);

/* s3_ops.c: single requests, each retried on its own */
extern bool tsnap_s3_put_object(tsnap_s3_client *client, const char *key,
								const void *data, size_t len,
								const char *content_type, char *etag_out,
								size_t etag_len, tsnap_s3_error *err);
extern bool tsnap_s3_head_object(tsnap_s3_client *client, const char *key,
								 uint64_t *size_out, char *etag_out,
								 size_t etag_len, tsnap_s3_error *err);
extern bool tsnap_s3_get_object(tsnap_s3_client *client, const char *key,
								tsnap_s3_data_cb cb, void *arg,
								uint64_t *size_out, tsnap_s3_error *err);
extern bool tsnap_s3_delete_object(tsnap_s3_client *client, const char *key,
								   tsnap_s3_error *err);
extern bool tsnap_s3_list_objects(tsnap_s3_client *client, const char *prefix,
								  tsnap_s3_object_cb cb, void *arg,
								  tsnap_s3_error *err);

/*
 * One page of ListObjectsV2, for a caller that does its own work between
 * pages: max_keys entries at most (0 = S3's default, 1000; more is
 * S3_LIST_MAX_KEYS), from token (NULL = the first page).  *next_token gets
 * the malloc'd token of the next page, or NULL after the last one.
 */
#define S3_LIST_MAX_KEYS			1000

extern bool tsnap_s3_list_objects_page(tsnap_s3_client *client,
									   const char *prefix, int max_keys,
									   const char *token, char **next_token,
									   tsnap_s3_object_cb cb, void *arg,
									   tsnap_s3_error *err);
extern bool tsnap_s3_list_multipart_uploads(tsnap_s3_client *client,
											const char *prefix,
											tsnap_s3_upload_cb cb, void *arg,
											tsnap_s3_error *err);
extern char *tsnap_s3_create_multipart_upload(tsnap_s3_client *client,
											  const char *key,
											  const char *content_type,
											  tsnap_s3_error *err);
extern bool tsnap_s3_complete_multipart_upload(tsnap_s3_client *client,
											   const char *key,
											   const char *upload_id,
											   const char *const *etags,
											   int nparts, char *etag_out,
											   size_t etag_len,
											   tsnap_s3_error *err);
extern bool tsnap_s3_abort_multipart_upload(tsnap_s3_client *client,
											const char *key,
											const char *upload_id,
											tsnap_s3_error *err);
extern char *tsnap_s3_presign_url(tsnap_s3_client *client, const char *method,
								  const char *key, long expires_seconds,
								  tsnap_s3_error *err);

/* s3_upload.c: the streaming multipart uploader */
typedef struct tsnap_s3_upload_result
{
	char		etag[128];		/* as S3 reports it, quotes included */
	uint64_t	bytes;
	int			parts;			/* 0 = sent as a single PutObject */
} tsnap_s3_upload_result;

extern tsnap_s3_upload *tsnap_s3_upload_begin(tsnap_s3_client *client,
											  const char *key,
											  const char *content_type,
											  tsnap_s3_error *err);
extern bool tsnap_s3_upload_write(tsnap_s3_upload *upload, const void *data,
								  size_t len, tsnap_s3_error *err);
extern bool tsnap_s3_upload_finish(tsnap_s3_upload *upload,
								   tsnap_s3_upload_result *result,
								   tsnap_s3_error *err);
extern bool tsnap_s3_upload_abort(tsnap_s3_upload *upload,
								  tsnap_s3_error *err);
extern void tsnap_s3_upload_free(tsnap_s3_upload *upload);
extern int	tsnap_s3_upload_parts_done(const tsnap_s3_upload *upload);
extern size_t tsnap_s3_part_size_for(size_t first_part_size, int part_number);

/*
 * s3_get.c: a GetObject the caller pulls bytes from.  Memory is one buffer
 * of S3_GET_BUFFER bytes (the transfer pauses while it is full), whatever
 * the object's size.  Transient failures are retried until the caller has
 * read its first byte, never after.  read returns the bytes copied (0 at
 * the end of the object) or -1 with err filled; the first error sticks.
 */
#define S3_GET_BUFFER				((size_t) 1024 * 1024)

extern tsnap_s3_get *tsnap_s3_get_open(tsnap_s3_client *client,
									   const char *key, tsnap_s3_error *err);
extern long tsnap_s3_get_read(tsnap_s3_get *get, void *dst, size_t len,
							  tsnap_s3_error *err);
extern bool tsnap_s3_get_size(tsnap_s3_get *get, uint64_t *size);
extern void tsnap_s3_get_close(tsnap_s3_get *get);

#endif							/* TSNAP_S3_H */
