/*-------------------------------------------------------------------------
 *
 * s3_int.h
 *	  Declarations shared by the files of the S3 client, not part of its
 *	  public interface (see s3.h for that).
 *
 * The helpers here allocate with malloc.  A string buffer (tsnap_s3_buf)
 * owns its data until tsnap_s3_buf_release() hands it over or
 * tsnap_s3_buf_free() frees it; an allocation failure latches buf->oom so
 * callers test once at the end instead of after every append.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_S3_INT_H
#define TSNAP_S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "s3.h"

/* s3_util.c: growable strings, encodings, hashes, clocks */
typedef struct tsnap_s3_buf
{
	char	   *data;			/* always NUL-terminated when non-NULL */
	size_t		len;
	size_t		cap;
	bool		oom;
} tsnap_s3_buf;

typedef struct tsnap_s3_kv
{
	const char *name;
	const char *value;			/* NULL = valueless query parameter */
} tsnap_s3_kv;

extern void tsnap_s3_buf_init(tsnap_s3_buf *buf);
extern void tsnap_s3_buf_free(tsnap_s3_buf *buf);
extern char *tsnap_s3_buf_release(tsnap_s3_buf *buf);
extern bool tsnap_s3_buf_reserve(tsnap_s3_buf *buf, size_t more);
extern void tsnap_s3_buf_append(tsnap_s3_buf *buf, const char *data,
								size_t len);
extern void tsnap_s3_buf_puts(tsnap_s3_buf *buf, const char *s);
extern void tsnap_s3_buf_printf(tsnap_s3_buf *buf, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void tsnap_s3_uri_encode(tsnap_s3_buf *buf, const char *s, size_t len,
								bool keep_slash);
extern void tsnap_s3_hex(const unsigned char *bin, size_t len, char *out);
extern void tsnap_s3_sha256_hex(const void *data, size_t len, char out[65]);
extern void tsnap_s3_strlcpy(char *dst, const char *src, size_t size);
extern char *tsnap_s3_strdup(const char *s);
extern int64_t tsnap_s3_now_ms(void);
extern void tsnap_s3_amz_date(time_t t, char out[17]);
extern bool tsnap_s3_parse_time(const char *s, int64_t *out);

/* s3_sigv4.c: AWS Signature Version 4 */
typedef struct tsnap_s3_sigv4_input
{
	const char *method;
	const char *canonical_uri;	/* path, already percent-encoded */
	const tsnap_s3_kv *query;	/* raw (not encoded) parameters */
	int			nquery;
	const tsnap_s3_kv *headers; /* every header to sign, any case/order */
	int			nheaders;
	const char *payload_hash;	/* hex SHA-256 or "UNSIGNED-PAYLOAD" */
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;
	const char *service;
	const char *amz_date;		/* YYYYMMDD'T'HHMMSS'Z' */
} tsnap_s3_sigv4_input;

typedef struct tsnap_s3_sigv4_output
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers;
	char	   *authorization;	/* value of the Authorization header */
	char		signature[65];
} tsnap_s3_sigv4_output;

extern bool tsnap_s3_sigv4_sign(const tsnap_s3_sigv4_input *in,
								tsnap_s3_sigv4_output *out);
extern void tsnap_s3_sigv4_output_free(tsnap_s3_sigv4_output *out);
extern void tsnap_s3_canonical_query(tsnap_s3_buf *buf,
									 const tsnap_s3_kv *query, int nquery);
extern char *tsnap_s3_sigv4_presign(const tsnap_s3_sigv4_input *in,
									const char *url_base, long expires_seconds,
									const char *session_token);

/* s3_xml.c: S3 replies */
typedef struct tsnap_s3_xml_list
{
	bool		truncated;
	char	   *next_token;		/* NextContinuationToken or NextKeyMarker */
	char	   *next_upload_id; /* NextUploadIdMarker */
	int			count;
} tsnap_s3_xml_list;

extern bool tsnap_s3_xml_error(const char *body, size_t len, char *code,
							   size_t codelen, char *message, size_t msglen);
extern char *tsnap_s3_xml_upload_id(const char *body, size_t len);
extern bool tsnap_s3_xml_complete(const char *body, size_t len, char *etag,
								  size_t etaglen, bool *is_error);
extern int	tsnap_s3_xml_list_objects(const char *body, size_t len,
									  tsnap_s3_object_cb cb, void *arg,
									  tsnap_s3_xml_list *list);
extern int	tsnap_s3_xml_list_uploads(const char *body, size_t len,
									  tsnap_s3_upload_cb cb, void *arg,
									  tsnap_s3_xml_list *list);
extern void tsnap_s3_xml_list_free(tsnap_s3_xml_list *list);

/* s3_client.c: the client handle */
struct tsnap_s3_client
{
	char	   *endpoint;		/* scheme://host[:port], no trailing slash */
	char	   *scheme;
	char	   *host;			/* Host header value, host[:port] */
	char	   *region;
	char	   *bucket;
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *ca_file;
	bool		virtual_style;
	long		connect_timeout_ms;
	long		request_timeout_ms;
	long		stall_timeout_ms;
	int			max_attempts;
	size_t		part_size;
	int			max_parts_in_flight;
	uint64_t	max_object_size;
	int			(*interrupt_cb) (void *arg);
	void	   *interrupt_arg;
	CURLM	   *multi;			/* owns the connection cache */
	CURL	   *easy;			/* reused by one-at-a-time requests */
	uint64_t	rng;			/* backoff jitter */
	time_t		fixed_time;		/* tests only: nonzero = sign at this time */
};

extern bool tsnap_s3_interrupted(tsnap_s3_client *client);
extern bool tsnap_s3_terminating(tsnap_s3_client *client);
extern long tsnap_s3_backoff_ms(tsnap_s3_client *client, int attempt);
extern bool tsnap_s3_sleep_ms(tsnap_s3_client *client, long ms,
							  bool interruptible);

/* s3_request.c: one HTTP exchange, and the retry loop around it */
typedef struct tsnap_s3_request
{
	const char *operation;		/* for errors: "PutObject" */
	const char *method;
	const char *key;			/* NULL = bucket-level request */
	const tsnap_s3_kv *query;
	int			nquery;
	const tsnap_s3_kv *headers; /* extra headers, signed */
	int			nheaders;
	const char *body;			/* request payload (PUT/POST), borrowed */
	size_t		body_len;
	const char *payload_hash;	/* NULL = compute from body */
	tsnap_s3_data_cb sink;		/* stream a 2xx body here instead of keeping */
	void	   *sink_arg;
	bool		no_interrupt;	/* cleanup requests: ignore interrupt_cb */
	int			max_attempts;	/* 0 = client's */
} tsnap_s3_request;

/* One transfer's state; lives as long as its easy handle's transfer. */
typedef struct tsnap_s3_xfer
{
	tsnap_s3_client *client;
	const tsnap_s3_request *req;
	CURL	   *easy;			/* borrowed */
	struct curl_slist *headers;
	char	   *url;
	size_t		body_off;		/* read position in req->body */
	long		status;
	char		etag[128];
	uint64_t	content_length;
	bool		have_length;
	tsnap_s3_buf reply;			/* non-streamed body, bounded */
	bool		reply_too_large;
	bool		sink_stopped;	/* the caller's sink asked to stop */
	bool		streaming;		/* 2xx body goes to the sink */
	uint64_t	delivered;		/* bytes handed to the sink */
	curl_off_t	last_now;		/* progress counters, for stall detection */
	int64_t		last_progress_ms;
	char		curl_errbuf[CURL_ERROR_SIZE];
	const char *range;			/* "bytes=N-" when resuming a GET */
	int			attempts;		/* attempts the request took (on success) */
	bool		interrupted;	/* the interrupt hook stopped the transfer */
	int64_t		last_check_ms;	/* last interrupt poll from progress_cb */
} tsnap_s3_xfer;

/* What to do after one attempt. */
typedef enum tsnap_s3_outcome
{
	S3_DONE,					/* success: 2xx */
	S3_RETRY,					/* transient failure, err filled */
	S3_FAIL						/* permanent failure, err filled */
} tsnap_s3_outcome;

extern bool tsnap_s3_xfer_setup(tsnap_s3_xfer *x, tsnap_s3_client *client,
								CURL *easy, const tsnap_s3_request *req,
								tsnap_s3_error *err);
extern void tsnap_s3_build_path(tsnap_s3_buf *path, tsnap_s3_client *c,
								const char *key);
extern void tsnap_s3_xfer_cleanup(tsnap_s3_xfer *x);
extern tsnap_s3_outcome tsnap_s3_xfer_outcome(tsnap_s3_xfer *x, CURLcode rc,
											  tsnap_s3_error *err);
extern bool tsnap_s3_xfer_stalled(tsnap_s3_xfer *x, int64_t now_ms);
extern bool tsnap_s3_perform(tsnap_s3_client *client,
							 const tsnap_s3_request *req,
							 tsnap_s3_xfer *result, tsnap_s3_error *err);
extern void tsnap_s3_error_set(tsnap_s3_error *err, tsnap_s3_error_kind kind,
							   const char *operation, const char *key,
							   const char *fmt,...)
			__attribute__((format(printf, 5, 6)));

#define S3_MAX_REPLY_SIZE	((size_t) 32 * 1024 * 1024)

/* s3_get.c: a GetObject the caller reads from (see s3.h) */
typedef enum tsnap_s3_get_state
{
	S3_GET_OPEN,
	S3_GET_FAILED
} tsnap_s3_get_state;

struct tsnap_s3_get
{
	tsnap_s3_client *c;
	CURLM	   *multi;			/* the stream's own, so the client's stays free */
	CURL	   *easy;
	char	   *key;
	tsnap_s3_request req;
	tsnap_s3_xfer x;			/* the current attempt */
	bool		xfer_live;		/* x needs tsnap_s3_xfer_cleanup */
	bool		in_multi;		/* easy is in multi */
	bool		paused;			/* write_cb returned CURL_WRITEFUNC_PAUSE */
	bool		done;			/* the attempt succeeded and has ended */
	tsnap_s3_get_state state;
	tsnap_s3_error failure;		/* sticky, once state is S3_GET_FAILED */
	char	   *buf;			/* unread body bytes: buf[start, end) */
	size_t		cap;
	size_t		start;
	size_t		end;
	int			attempt;
	uint64_t	consumed;		/* bytes handed to the caller */
	bool		have_size;
	uint64_t	size;			/* Content-Length of the current attempt */
};

#endif							/* TSNAP_S3_INT_H */
