/*-------------------------------------------------------------------------
 *
 * s3_int.h
 *	  Declarations shared by the files of the S3 client, not part of its
 *	  public interface (see s3.h for that).
 *
 * The helpers here allocate with malloc.  A string buffer (s3_buf) owns its
 * data until s3_buf_release() hands it over or s3_buf_free() frees it; an
 * allocation failure latches buf->oom so callers test once at the end
 * instead of after every append.
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
typedef struct s3_buf
{
	char	   *data;			/* always NUL-terminated when non-NULL */
	size_t		len;
	size_t		cap;
	bool		oom;
} s3_buf;

typedef struct s3_kv
{
	const char *name;
	const char *value;			/* NULL = valueless query parameter */
} s3_kv;

extern void s3_buf_init(s3_buf *buf);
extern void s3_buf_free(s3_buf *buf);
extern char *s3_buf_release(s3_buf *buf);
extern bool s3_buf_reserve(s3_buf *buf, size_t more);
extern void s3_buf_append(s3_buf *buf, const char *data, size_t len);
extern void s3_buf_puts(s3_buf *buf, const char *s);
extern void s3_buf_printf(s3_buf *buf, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void s3_uri_encode(s3_buf *buf, const char *s, size_t len,
						  bool keep_slash);
extern void s3_hex(const unsigned char *bin, size_t len, char *out);
extern void s3_sha256_hex(const void *data, size_t len, char out[65]);
extern void s3_strlcpy(char *dst, const char *src, size_t size);
extern char *s3_strdup(const char *s);
extern int64_t s3_now_ms(void);
extern void s3_amz_date(time_t t, char out[17]);

/* s3_sigv4.c: AWS Signature Version 4 */
typedef struct s3_sigv4_input
{
	const char *method;
	const char *canonical_uri;	/* path, already percent-encoded */
	const s3_kv *query;			/* raw (not encoded) parameters */
	int			nquery;
	const s3_kv *headers;		/* every header to sign, any case/order */
	int			nheaders;
	const char *payload_hash;	/* hex SHA-256 or "UNSIGNED-PAYLOAD" */
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;
	const char *service;
	const char *amz_date;		/* YYYYMMDD'T'HHMMSS'Z' */
} s3_sigv4_input;

typedef struct s3_sigv4_output
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers;
	char	   *authorization;	/* value of the Authorization header */
	char		signature[65];
} s3_sigv4_output;

extern bool s3_sigv4_sign(const s3_sigv4_input *in, s3_sigv4_output *out);
extern void s3_sigv4_output_free(s3_sigv4_output *out);
extern void s3_canonical_query(s3_buf *buf, const s3_kv *query, int nquery);
extern char *s3_sigv4_presign(const s3_sigv4_input *in, const char *url_base,
							  long expires_seconds, const char *session_token);

/* s3_xml.c: S3 replies */
typedef struct s3_xml_list
{
	bool		truncated;
	char	   *next_token;		/* NextContinuationToken or NextKeyMarker */
	char	   *next_upload_id; /* NextUploadIdMarker */
	int			count;
} s3_xml_list;

extern bool s3_xml_error(const char *body, size_t len, char *code,
						 size_t codelen, char *message, size_t msglen);
extern char *s3_xml_upload_id(const char *body, size_t len);
extern bool s3_xml_complete(const char *body, size_t len, char *etag,
							size_t etaglen, bool *is_error);
extern int	s3_xml_list_objects(const char *body, size_t len, s3_object_cb cb,
								void *arg, s3_xml_list *list);
extern int	s3_xml_list_uploads(const char *body, size_t len, s3_upload_cb cb,
								void *arg, s3_xml_list *list);
extern void s3_xml_list_free(s3_xml_list *list);

/* s3_client.c: the client handle */
struct s3_client
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

extern bool s3_interrupted(s3_client *client);
extern long s3_backoff_ms(s3_client *client, int attempt);
extern bool s3_sleep_ms(s3_client *client, long ms, bool interruptible);

/* s3_request.c: one HTTP exchange, and the retry loop around it */
typedef struct s3_request
{
	const char *operation;		/* for errors: "PutObject" */
	const char *method;
	const char *key;			/* NULL = bucket-level request */
	const s3_kv *query;
	int			nquery;
	const s3_kv *headers;		/* extra headers, signed */
	int			nheaders;
	const char *body;			/* request payload (PUT/POST), borrowed */
	size_t		body_len;
	const char *payload_hash;	/* NULL = compute from body */
	s3_data_cb	sink;			/* stream a 2xx body here instead of keeping */
	void	   *sink_arg;
	bool		no_interrupt;	/* cleanup requests: ignore interrupt_cb */
	int			max_attempts;	/* 0 = client's */
} s3_request;

/* One transfer's state; lives as long as its easy handle's transfer. */
typedef struct s3_xfer
{
	s3_client  *client;
	const s3_request *req;
	CURL	   *easy;			/* borrowed */
	struct curl_slist *headers;
	char	   *url;
	size_t		body_off;		/* read position in req->body */
	long		status;
	char		etag[128];
	uint64_t	content_length;
	bool		have_length;
	s3_buf		reply;			/* non-streamed body, bounded */
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
} s3_xfer;

/* What to do after one attempt. */
typedef enum s3_outcome
{
	S3_DONE,					/* success: 2xx */
	S3_RETRY,					/* transient failure, err filled */
	S3_FAIL						/* permanent failure, err filled */
} s3_outcome;

extern bool s3_xfer_setup(s3_xfer *x, s3_client *client, CURL *easy,
						  const s3_request *req, s3_error *err);
extern void s3_xfer_cleanup(s3_xfer *x);
extern s3_outcome s3_xfer_outcome(s3_xfer *x, CURLcode rc, s3_error *err);
extern bool s3_xfer_stalled(s3_xfer *x, int64_t now_ms);
extern bool s3_perform(s3_client *client, const s3_request *req,
					   s3_xfer *result, s3_error *err);
extern void s3_error_set(s3_error *err, s3_error_kind kind,
						 const char *operation, const char *key,
						 const char *fmt,...)
			__attribute__((format(printf, 5, 6)));

#define S3_MAX_REPLY_SIZE	((size_t) 32 * 1024 * 1024)

#endif							/* TSNAP_S3_INT_H */
