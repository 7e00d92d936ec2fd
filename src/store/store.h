/*-------------------------------------------------------------------------
 *
 * store.h
 *	  The object store, as the rest of tsnap sees it: put an object as a
 *	  stream, read one as a stream (or whole, when it is small), check that
 *	  one exists, delete one, list the objects below a prefix, list and
 *	  abort the uploads left open below a prefix, and presign a download.  Backend-neutral; store_s3.c
 *	  implements it with the plain-C S3 client in src/s3/, and is the only
 *	  file on the PostgreSQL side that includes s3/s3.h.
 *
 * Errors are ereport()s with an SQLSTATE; interrupts (cancel,
 * statement_timeout, terminate) stop every wait and raise PostgreSQL's own
 * error.  A store handle lives as long as the memory context that was
 * current when it was opened, and is freed with it, also on error.
 *
 * This folder calls common/ and settings only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_STORE_H
#define TSNAP_STORE_H

#include "nodes/pg_list.h"
#include "pgtime.h"

/* the longest key an object store takes, in bytes (S3's limit) */
#define TSNAP_OBJECT_KEY_MAX	1024
#define TSNAP_ETAG_MAX			128
/* the longest bucket name tsnap takes, in bytes (S3's is 63) */
#define TSNAP_BUCKET_NAME_MAX	255

typedef struct TsnapStore TsnapStore;
typedef struct TsnapPut TsnapPut;
typedef struct TsnapGet TsnapGet;

typedef struct TsnapPutResult
{
	int64		bytes;
	int			parts;			/* 0 = written in one request */
	char		etag[TSNAP_ETAG_MAX];
} TsnapPutResult;

/* an upload left open below a prefix */
typedef struct TsnapOpenUpload
{
	char	   *key;
	char	   *upload_id;
} TsnapOpenUpload;

extern void tsnap_store_init(void);
extern void tsnap_store_yield_to_barriers(void);
extern const char *tsnap_store_endpoint(void);
extern const char *tsnap_store_bucket(void);
extern TsnapStore *tsnap_store_open(const char *endpoint, const char *bucket,
									int64 max_object_size);
extern const char *tsnap_store_bucket_of(TsnapStore *store);

/*
 * Streams: write returns false (and finish too) only when the object would
 * exceed max_object_size; every other failure raises.  After finish
 * succeeded, the object exists and the stream is freed; otherwise the
 * caller must call abort, which never raises.
 */
extern TsnapPut *tsnap_store_put_begin(TsnapStore *store, const char *key,
									   const char *content_type);
extern bool tsnap_store_put_write(TsnapPut *put, const char *data, size_t len);
extern bool tsnap_store_put_finish(TsnapPut *put, TsnapPutResult *result);
extern void tsnap_store_put_abort(TsnapPut *put);
/* parts of a multipart upload the store has acknowledged, for progress */
extern int	tsnap_store_put_parts_done(TsnapPut *put);

/*
 * Get streams: open returns NULL when there is no object at key (every
 * other failure raises) and has waited for the first bytes; read returns
 * the bytes copied, at least one, or 0 at the end of the object, and
 * raises on failure; memory is a fixed buffer whatever the object's size.
 * A failure after the caller has read a byte is not retried.  close frees
 * the stream and never raises; an error frees it with the store.
 */
extern TsnapGet *tsnap_store_get_open(TsnapStore *store, const char *key);
extern size_t tsnap_store_get_read(TsnapGet *get, char *buf, size_t len);
extern bool tsnap_store_get_size(TsnapGet *get, int64 *size);
extern void tsnap_store_get_close(TsnapGet *get);

/*
 * The whole object at key, palloc'd and NUL-terminated (*len without the
 * NUL), or NULL when there is none; raises 54000 when it is larger than
 * max_len.
 */
extern char *tsnap_store_get_small(TsnapStore *store, const char *key,
								   size_t max_len, size_t *len);

extern bool tsnap_store_exists(TsnapStore *store, const char *key);
extern bool tsnap_store_delete(TsnapStore *store, const char *key,
							   char **failure);
extern List *tsnap_store_list_uploads(TsnapStore *store, const char *prefix);

/*
 * Every object below prefix, in key order: visit gets its key, its size
 * and when it was last written (Unix seconds, as the store's clock saw it,
 * rounded down; TSNAP_STORE_TIME_UNKNOWN, which is later than any time,
 * when the store did not say), and returns false to stop the listing.
 * Memory is one page of the listing (at most 1000 objects) whatever the
 * number of objects; interrupts are served between pages; visit runs
 * outside the store's client, so it may raise.  A failure raises.
 */
#define TSNAP_STORE_TIME_UNKNOWN	PG_INT64_MAX

typedef bool (*TsnapStoreVisit) (const char *key, int64 size,
								 pg_time_t last_modified, void *arg);

extern void tsnap_store_list_objects(TsnapStore *store, const char *prefix,
									 TsnapStoreVisit visit, void *arg);
extern bool tsnap_store_abort_upload(TsnapStore *store,
									 const TsnapOpenUpload *upload);

/*
 * A URL that lets anyone who has it GET the object at key for seconds
 * (1 to TSNAP_PRESIGN_MAX_SECONDS), palloc'd in the current memory
 * context.  Made locally: no request is sent.  The URL is a credential:
 * never put it in a log line or an error message.
 */
#define TSNAP_PRESIGN_MAX_SECONDS	(7 * 24 * 3600)	/* SigV4's limit */

extern char *tsnap_store_presign_get(TsnapStore *store, const char *key,
									 int seconds);

#endif							/* TSNAP_STORE_H */
