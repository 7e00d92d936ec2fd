/*-------------------------------------------------------------------------
 *
 * s3_request.c
 *	  One S3 HTTP exchange with libcurl (URL, signature, headers, body,
 *	  reply capture), the classification of its outcome (done, retry,
 *	  fail), and the blocking retry loop used by single requests.
 *
 * A tsnap_s3_xfer holds everything one attempt allocates (header list, URL,
 * reply buffer); tsnap_s3_xfer_cleanup() frees it, and must be called after
 * every tsnap_s3_xfer_setup(), whatever happened.  The easy handle is
 * borrowed.
 *
 * Requests always carry Content-Length (never chunked), no "Expect:", and
 * are signed over host, x-amz-content-sha256, x-amz-date, the session
 * token and the caller's headers.  curl callbacks only copy bytes, record
 * progress and poll the interrupt hook (which must not longjmp); they
 * return curl's abort code to stop.  Waits happen in tsnap_s3_perform's
 * loop, in 100 ms slices, where the interrupt hook is polled as well.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "s3_int.h"

#define WAIT_SLICE_MS 100

/*
 * curl's upload buffer for request bodies (its default is 64 kB).  The
 * streaming uploader runs curl only between the producer's writes, and curl
 * moves at most one buffer per transfer each time; at 64 kB the parts in
 * flight drained no faster than the scan filled them.  512 kB per handle
 * made misses faster in bench/snapshot.sh; 2 MB (curl's maximum) gained
 * nothing more.
 */
#define UPLOAD_BUFFER 524288L

/* ---- curl callbacks: copy bytes, record progress, poll the interrupt flag ---- */

/*
 * One curl_multi_perform can run many callbacks (a slow sink can keep it
 * busy for seconds), so the callbacks poll the interrupt hook too, at most
 * every 100 ms.  The hook only reads a flag (it must not longjmp); a true
 * result makes the callback return curl's abort code.
 */
static bool
poll_interrupt(tsnap_s3_xfer *x, int64_t now)
{
	if (x->req->no_interrupt || now - x->last_check_ms < 100)
		return false;
	x->last_check_ms = now;
	if (tsnap_s3_interrupted(x->client))
		x->interrupted = true;
	return x->interrupted;
}

static size_t
read_cb(char *dest, size_t size, size_t nmemb, void *arg)
{
	tsnap_s3_xfer *x = arg;
	size_t		want = size * nmemb;
	size_t		left = x->req->body_len - x->body_off;

	if (want > left)
		want = left;
	if (want > 0)
	{
		memcpy(dest, x->req->body + x->body_off, want);
		x->body_off += want;
	}
	return want;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	tsnap_s3_xfer *x = arg;
	size_t		n = size * nmemb;
	long		status = 0;

	if (poll_interrupt(x, tsnap_s3_now_ms()))
		return 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->streaming = x->req->sink != NULL && status >= 200 && status < 300;
	if (x->streaming)
	{
		if (x->range && status != 206)
		{
			/* The server ignored our Range: resuming would duplicate data. */
			x->sink_stopped = true;
			return 0;
		}
		if (x->req->sink(data, n, x->req->sink_arg) != 0)
		{
			x->sink_stopped = true;
			return 0;			/* aborts the transfer: CURLE_WRITE_ERROR */
		}
		x->delivered += n;
		return n;
	}
	if (x->reply.len + n > S3_MAX_REPLY_SIZE)
	{
		x->reply_too_large = true;
		return 0;
	}
	tsnap_s3_buf_append(&x->reply, data, n);
	return x->reply.oom ? 0 : n;
}

/* Strip white space and CR/LF around a header value, in place. */
static char *
trim(char *s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char) *s))
	{
		s++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char) s[*len - 1]))
		(*len)--;
	return s;
}

static size_t
header_cb(char *line, size_t size, size_t nmemb, void *arg)
{
	tsnap_s3_xfer *x = arg;
	size_t		n = size * nmemb;

	/* A new status line (after a 100 Continue, say) starts over. */
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
	{
		x->etag[0] = '\0';
		x->have_length = false;
	}
	else if (n > 5 && strncasecmp(line, "ETag:", 5) == 0)
	{
		size_t		vlen = n - 5;
		char	   *v = trim(line + 5, &vlen);

		if (vlen >= sizeof(x->etag))
			vlen = sizeof(x->etag) - 1;
		memcpy(x->etag, v, vlen);
		x->etag[vlen] = '\0';
	}
	else if (n > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
	{
		size_t		vlen = n - 15;
		char	   *v = trim(line + 15, &vlen);
		char		num[32];

		if (vlen < sizeof(num))
		{
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			x->content_length = strtoull(num, NULL, 10);
			x->have_length = true;
		}
	}
	return n;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	tsnap_s3_xfer *x = arg;
	int64_t		now = tsnap_s3_now_ms();

	(void) dltotal;
	(void) ultotal;
	if (dlnow + ulnow != x->last_now)
	{
		x->last_now = dlnow + ulnow;
		x->last_progress_ms = now;
	}

	return poll_interrupt(x, now) ? 1 : 0;
}

/* ---- setting up one attempt ---- */

/*
 * Append one line to a curl header list; a failure sets *failed and keeps
 * the list as it was (curl_slist_append returns NULL and frees nothing).
 */
static void
add_line(struct curl_slist **list, bool *failed, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (l == NULL)
		*failed = true;
	else
		*list = l;
}

/* "name: value"; our copy is wiped, as value may be the Authorization. */
static void
add_header(struct curl_slist **list, bool *failed, const char *name,
		   const char *value)
{
	tsnap_s3_buf b;

	tsnap_s3_buf_init(&b);
	tsnap_s3_buf_printf(&b, "%s: %s", name, value);
	if (b.oom)
	{
		*failed = true;
		return;
	}
	add_line(list, failed, b.data);
	OPENSSL_cleanse(b.data, b.len);
	tsnap_s3_buf_free(&b);
}

/*
 * curl gives a POST "application/x-www-form-urlencoded" unless told
 * otherwise; for CreateMultipartUpload that would become the object's type.
 */
static bool
has_content_type(const tsnap_s3_request *req)
{
	int			i;

	for (i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, "Content-Type") == 0)
			return true;
	return false;
}

/*
 * Append the percent-encoded path of key (NULL = the bucket itself):
 * /bucket/key in path style, /key in virtual-hosted style.  Requests and
 * presigned URLs both sign this path, so both build it here.
 */
void
tsnap_s3_build_path(tsnap_s3_buf *path, tsnap_s3_client *c, const char *key)
{
	if (!c->virtual_style)
	{
		tsnap_s3_buf_puts(path, "/");
		tsnap_s3_uri_encode(path, c->bucket, strlen(c->bucket), false);
	}
	if (key != NULL)
	{
		tsnap_s3_buf_puts(path, "/");
		tsnap_s3_uri_encode(path, key, strlen(key), true);
	}
	else if (c->virtual_style)
		tsnap_s3_buf_puts(path, "/");
}

/*
 * The URL of req: the endpoint, the already encoded path, then the query
 * parameters in the caller's order, each name and value encoded once (the
 * signature sorts its own copy).  Returns malloc'd, or NULL when out of
 * memory.
 */
static char *
build_url(tsnap_s3_client *c, const char *path, const tsnap_s3_request *req)
{
	tsnap_s3_buf url;
	int			i;

	tsnap_s3_buf_init(&url);
	tsnap_s3_buf_printf(&url, "%s%s", c->endpoint, path);
	for (i = 0; i < req->nquery; i++)
	{
		tsnap_s3_buf_puts(&url, i == 0 ? "?" : "&");
		tsnap_s3_uri_encode(&url, req->query[i].name,
							strlen(req->query[i].name), false);
		if (req->query[i].value)
		{
			tsnap_s3_buf_puts(&url, "=");
			tsnap_s3_uri_encode(&url, req->query[i].value,
								strlen(req->query[i].value), false);
		}
	}
	if (url.oom)
	{
		tsnap_s3_buf_free(&url);
		return NULL;
	}
	return tsnap_s3_buf_release(&url);
}

/*
 * The attempt's curl header list, in x->headers: the signed headers, the
 * Authorization, and the empty headers that keep curl from adding its own.
 * Returns false if an allocation failed.
 */
static bool
build_header_list(tsnap_s3_xfer *x, const tsnap_s3_request *req,
				  const tsnap_s3_kv *hdrs, int nh, const char *authorization)
{
	bool		failed = false;
	int			i;

	for (i = 0; i < nh; i++)
		add_header(&x->headers, &failed, hdrs[i].name, hdrs[i].value);
	add_header(&x->headers, &failed, "Authorization", authorization);
	/* Empty values make curl drop these headers. */
	add_line(&x->headers, &failed, "Expect:");
	if (strcmp(req->method, "POST") == 0 && !has_content_type(req))
		add_line(&x->headers, &failed, "Content-Type:");
	return !failed;
}

/*
 * Sign req (path: its encoded path) over Host, x-amz-content-sha256,
 * x-amz-date, the session token, a resumed GET's Range and the caller's
 * headers, and build the attempt's header list.  Our copies of the
 * Authorization value are wiped; curl's list keeps one until
 * tsnap_s3_xfer_cleanup frees it.  On failure err is filled.
 */
static bool
sign_headers(tsnap_s3_xfer *x, tsnap_s3_client *c, const char *path,
			 const tsnap_s3_request *req, tsnap_s3_error *err)
{
	tsnap_s3_kv *hdrs;
	int			nh = 0;
	int			i;
	char		amz_date[17];
	char		payload_hash[65];
	tsnap_s3_sigv4_input in;
	tsnap_s3_sigv4_output out;
	bool		ok;

	if (req->payload_hash)
		tsnap_s3_strlcpy(payload_hash, req->payload_hash,
						 sizeof(payload_hash));
	else
		tsnap_s3_sha256_hex(req->body ? req->body : "", req->body_len,
							payload_hash);
	tsnap_s3_amz_date(c->fixed_time ? c->fixed_time : time(NULL), amz_date);

	hdrs = calloc(req->nheaders + 5, sizeof(tsnap_s3_kv));
	if (hdrs == NULL || payload_hash[0] == '\0')
	{
		free(hdrs);
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, req->operation, req->key,
						   "out of memory");
		return false;
	}
	hdrs[nh].name = "Host";
	hdrs[nh++].value = c->host;
	hdrs[nh].name = "x-amz-content-sha256";
	hdrs[nh++].value = payload_hash;
	hdrs[nh].name = "x-amz-date";
	hdrs[nh++].value = amz_date;
	if (c->session_token)
	{
		hdrs[nh].name = "x-amz-security-token";
		hdrs[nh++].value = c->session_token;
	}
	if (x->range)
	{
		hdrs[nh].name = "Range";
		hdrs[nh++].value = x->range;
	}
	for (i = 0; i < req->nheaders; i++)
		hdrs[nh++] = req->headers[i];

	memset(&in, 0, sizeof(in));
	in.method = req->method;
	in.canonical_uri = path;
	in.query = req->query;
	in.nquery = req->nquery;
	in.headers = hdrs;
	in.nheaders = nh;
	in.payload_hash = payload_hash;
	in.access_key_id = c->access_key_id;
	in.secret_access_key = c->secret_access_key;
	in.region = c->region;
	in.service = "s3";
	in.amz_date = amz_date;
	ok = tsnap_s3_sigv4_sign(&in, &out) &&
		build_header_list(x, req, hdrs, nh, out.authorization);
	if (out.authorization)
		OPENSSL_cleanse(out.authorization, strlen(out.authorization));
	tsnap_s3_sigv4_output_free(&out);
	free(hdrs);
	if (!ok)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, req->operation, req->key,
						   "could not sign the request");
		return false;
	}
	return true;
}

/*
 * Point easy at the attempt in x: URL and headers, TLS always verified, no
 * redirects, timeouts, the callbacks, then the method and how its body is
 * sent (always with a length, so never chunked).
 */
static void
set_curl_options(CURL *easy, tsnap_s3_xfer *x, tsnap_s3_client *c,
				 const tsnap_s3_request *req)
{
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, x->url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	/* Keys may hold "..": never let curl squash dot segments. */
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	if (c->request_timeout_ms > 0)
		curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->request_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->curl_errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);

	if (strcmp(req->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "PUT") == 0)
	{
		curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(easy, CURLOPT_READDATA, x);
		/* Always a Content-Length, so curl never chunks. */
		curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE,
						 (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "POST") == 0)
	{
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
						 (curl_off_t) req->body_len);
	}
	else
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
}

/*
 * Prepare easy for one attempt of req.  x->range, if the caller set it, is
 * kept (a resumed GET); the rest of x starts afresh.  On failure err is
 * filled; either way the caller runs tsnap_s3_xfer_cleanup(x) later.
 */
bool
tsnap_s3_xfer_setup(tsnap_s3_xfer *x, tsnap_s3_client *c, CURL *easy,
					const tsnap_s3_request *req, tsnap_s3_error *err)
{
	tsnap_s3_buf path;
	const char *range = x->range;
	bool		ok;

	memset(x, 0, sizeof(*x));
	x->client = c;
	x->req = req;
	x->easy = easy;
	x->range = range;
	x->last_progress_ms = tsnap_s3_now_ms();
	x->last_check_ms = x->last_progress_ms;
	tsnap_s3_buf_init(&x->reply);

	tsnap_s3_buf_init(&path);
	tsnap_s3_build_path(&path, c, req->key);
	if (!path.oom)
		x->url = build_url(c, path.data ? path.data : "/", req);
	if (x->url == NULL)
	{
		tsnap_s3_buf_free(&path);
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, req->operation, req->key,
						   "out of memory");
		return false;
	}
	ok = sign_headers(x, c, path.data ? path.data : "/", req, err);
	tsnap_s3_buf_free(&path);
	if (!ok)
		return false;
	set_curl_options(easy, x, c, req);
	return true;
}

void
tsnap_s3_xfer_cleanup(tsnap_s3_xfer *x)
{
	if (x->headers)
		curl_slist_free_all(x->headers);
	x->headers = NULL;
	free(x->url);
	x->url = NULL;
	tsnap_s3_buf_free(&x->reply);
}

/* No byte has moved for longer than the stall timeout. */
bool
tsnap_s3_xfer_stalled(tsnap_s3_xfer *x, int64_t now_ms)
{
	long		limit = x->client->stall_timeout_ms;

	return limit > 0 && now_ms - x->last_progress_ms > limit;
}

static bool
retryable_curl(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_WEIRD_SERVER_REPLY:
			return true;
		default:
			return false;
	}
}

/* Cheap pre-check before parsing a 2xx body as XML: does it hold "<Error"? */
static bool
has_error_tag(const char *data, size_t len)
{
	size_t		i;

	for (i = 0; i + 6 <= len; i++)
		if (data[i] == '<' && memcmp(data + i, "<Error", 6) == 0)
			return true;
	return false;
}

static bool
retryable_s3(long status, const char *code)
{
	if (status == 500 || status == 502 || status == 503 || status == 504 ||
		status == 429)
		return true;
	return strcmp(code, "SlowDown") == 0 ||
		strcmp(code, "RequestTimeout") == 0 ||
		strcmp(code, "InternalError") == 0 ||
		strcmp(code, "ServiceUnavailable") == 0;
}

/*
 * Classify a finished attempt.  rc is curl's result for the transfer
 * (CURLE_OPERATION_TIMEDOUT when we cut a stalled one).
 */
tsnap_s3_outcome
tsnap_s3_xfer_outcome(tsnap_s3_xfer *x, CURLcode rc, tsnap_s3_error *err)
{
	const tsnap_s3_request *req = x->req;

	x->status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->interrupted)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERRUPTED, req->operation, req->key,
						   NULL);
		return S3_FAIL;
	}
	if (rc != CURLE_OK)
	{
		if (x->sink_stopped)
		{
			tsnap_s3_error_set(err, S3_ERR_CALLBACK, req->operation, req->key,
							   x->range ?
							   "the server ignored the Range of a resumed download" :
							   "stopped by the data callback");
			return S3_FAIL;
		}
		if (x->reply_too_large || x->reply.oom)
		{
			tsnap_s3_error_set(err, S3_ERR_INTERNAL, req->operation, req->key,
							   "reply too large or out of memory");
			return S3_FAIL;
		}
		tsnap_s3_error_set(err, S3_ERR_CURL, req->operation, req->key, "%s",
						   x->curl_errbuf[0] ?
						   x->curl_errbuf : curl_easy_strerror(rc));
		return retryable_curl(rc) ? S3_RETRY : S3_FAIL;
	}
	if (x->status >= 200 && x->status < 300)
	{
		/*
		 * S3 may answer 200 and still fail, with an <Error> body (documented
		 * for CompleteMultipartUpload and CopyObject).  Treat such a reply as
		 * the error it carries, whatever the operation.  Streamed bodies are
		 * object data, never inspected.
		 */
		if (x->reply.len > 0 && has_error_tag(x->reply.data, x->reply.len))
		{
			tsnap_s3_error_set(err, S3_ERR_S3, req->operation, req->key, NULL);
			err->http_status = x->status;
			if (tsnap_s3_xml_error(x->reply.data, x->reply.len, err->code,
								   sizeof(err->code), err->message,
								   sizeof(err->message)))
				return retryable_s3(0, err->code) ? S3_RETRY : S3_FAIL;
			tsnap_s3_error_clear(err);
		}
		return S3_DONE;
	}

	tsnap_s3_error_set(err, S3_ERR_HTTP, req->operation, req->key, NULL);
	err->http_status = x->status;
	if (tsnap_s3_xml_error(x->reply.data, x->reply.len, err->code,
						   sizeof(err->code), err->message,
						   sizeof(err->message)))
		err->kind = S3_ERR_S3;
	return retryable_s3(x->status, err->code) ? S3_RETRY : S3_FAIL;
}

/*
 * Run one attempt on the client's multi handle, waiting in slices of at
 * most 100 ms.  Returns the curl result; *interrupted tells whether the
 * interrupt hook stopped it.  A cleanup request (not interruptible) still
 * stops once the process has been terminating for S3_TERMINATE_GRACE_MS.
 */
static CURLcode
run_attempt(tsnap_s3_client *c, tsnap_s3_xfer *x, bool interruptible,
			bool *interrupted)
{
	CURLcode	rc = CURLE_OK;
	bool		done = false;
	int64_t		started = tsnap_s3_now_ms();

	*interrupted = false;
	if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (!done)
	{
		int			running = 0;
		int			left = 0;
		CURLMsg    *msg;

		if (curl_multi_perform(c->multi, &running) != CURLM_OK)
		{
			rc = CURLE_FAILED_INIT;
			break;
		}
		while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->easy)
			{
				rc = msg->data.result;
				done = true;
			}
		if (done)
			break;
		if (tsnap_s3_xfer_stalled(x, tsnap_s3_now_ms()))
		{
			snprintf(x->curl_errbuf, sizeof(x->curl_errbuf),
					 "no data moved for %ld ms", c->stall_timeout_ms);
			rc = CURLE_OPERATION_TIMEDOUT;
			break;
		}
		if (interruptible ? tsnap_s3_interrupted(c) :
			(tsnap_s3_now_ms() - started >= S3_TERMINATE_GRACE_MS &&
			 tsnap_s3_terminating(c)))
		{
			*interrupted = true;
			break;
		}
		curl_multi_poll(c->multi, NULL, 0, WAIT_SLICE_MS, NULL);
	}
	curl_multi_remove_handle(c->multi, x->easy);
	return rc;
}

/*
 * Perform req with retries.  On success returns true and leaves the reply
 * (status, ETag, body) in *x, which the caller must
 * tsnap_s3_xfer_cleanup().  On failure returns false with err filled and *x
 * already cleaned up.
 *
 * A streamed GET that fails after delivering bytes resumes where it
 * stopped (Range, If-Match on the first ETag) instead of starting over.
 */
bool
tsnap_s3_perform(tsnap_s3_client *c, const tsnap_s3_request *req,
				 tsnap_s3_xfer *x, tsnap_s3_error *err)
{
	int			max_attempts = req->max_attempts > 0 ?
		req->max_attempts : c->max_attempts;
	bool		interruptible = !req->no_interrupt;
	uint64_t	delivered = 0;
	char		range[64];
	char		first_etag[128] = "";
	tsnap_s3_request resumed;
	tsnap_s3_kv if_match[1];
	int			attempt;

	/* a terminating process gets one short try at cleanup */
	if (!interruptible && tsnap_s3_terminating(c))
		max_attempts = 1;
	tsnap_s3_error_clear(err);
	for (attempt = 1;; attempt++)
	{
		const tsnap_s3_request *r = req;
		bool		interrupted;
		CURLcode	rc;
		tsnap_s3_outcome outcome;

		memset(x, 0, sizeof(*x));
		if (delivered > 0)
		{
			/* Resume after the bytes the sink already has. */
			snprintf(range, sizeof(range), "bytes=%llu-",
					 (unsigned long long) delivered);
			x->range = range;
			if (first_etag[0] && req->nheaders == 0)
			{
				resumed = *req;
				if_match[0].name = "If-Match";
				if_match[0].value = first_etag;
				resumed.headers = if_match;
				resumed.nheaders = 1;
				r = &resumed;
			}
		}
		if (!tsnap_s3_xfer_setup(x, c, c->easy, r, err))
		{
			tsnap_s3_xfer_cleanup(x);
			return false;
		}
		rc = run_attempt(c, x, interruptible, &interrupted);
		if (interrupted)
		{
			tsnap_s3_xfer_cleanup(x);
			tsnap_s3_error_set(err, S3_ERR_INTERRUPTED, req->operation,
							   req->key, NULL);
			err->attempts = attempt;
			return false;
		}
		outcome = tsnap_s3_xfer_outcome(x, rc, err);
		err->attempts = attempt;
		if (outcome == S3_DONE)
		{
			x->attempts = attempt;
			tsnap_s3_error_clear(err);
			return true;
		}
		if (req->sink && first_etag[0] == '\0' && x->etag[0] &&
			x->delivered > 0)
			tsnap_s3_strlcpy(first_etag, x->etag, sizeof(first_etag));
		delivered += x->delivered;
		tsnap_s3_xfer_cleanup(x);
		if (outcome == S3_FAIL || attempt >= max_attempts)
			return false;
		if (!tsnap_s3_sleep_ms(c, tsnap_s3_backoff_ms(c, attempt),
							   interruptible))
		{
			tsnap_s3_error_set(err, S3_ERR_INTERRUPTED, req->operation,
							   req->key, NULL);
			err->attempts = attempt;
			return false;
		}
	}
}
