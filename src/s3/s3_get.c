/*-------------------------------------------------------------------------
 *
 * s3_get.c
 *	  A GetObject that the caller pulls from: open, read as much as it
 *	  wants when it wants, close.  For consumers that ask for bytes (COPY
 *	  FROM's data-source callback) rather than take them as they come, which
 *	  is what tsnap_s3_get_object's callback does.
 *
 * Memory: one buffer of S3_GET_BUFFER bytes.  curl hands the body to
 * write_cb; what fits goes into the buffer, and when it is full the
 * callback returns CURL_WRITEFUNC_PAUSE, so curl stops reading the socket
 * (and keeps the one chunk it could not deliver) until a read has made
 * room and unpaused it.  However slowly the caller reads, the body never
 * piles up in memory.
 *
 * Waits: a read with an empty buffer runs the stream's own multi handle in
 * slices of at most 100 ms and polls the interrupt hook between slices (and
 * progress_cb polls it inside curl).  A stream has no overall time limit,
 * since it lasts as long as its reader takes; the connect timeout and the
 * stall timeout (no byte arrived for stall_timeout_ms while the reader was
 * waiting for one) bound every wait.  The time the transfer spends paused
 * because the reader is busy elsewhere is not a stall.
 *
 * Retries: a transient failure (connection refused or reset, 5xx,
 * SlowDown, a stall) is retried with backoff, from the first byte, as long
 * as the caller has not consumed a byte; bytes that had only reached the
 * buffer are dropped.  After that a failure is final: the caller has acted
 * on the bytes it read and could not be handed the same ones twice without
 * knowing.  tsnap_s3_get_open drives the transfer until the first bytes
 * (or the end) arrive, so a missing object, refused credentials and every
 * failure before the body are reported by open.
 *
 * Ownership: the stream, its multi and easy handles and its buffer are
 * malloc'd and owned by the caller until tsnap_s3_get_close, which frees
 * them without any network request, whatever state the stream is in.  The
 * first error sticks: later reads return it.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_int.h"

#define WAIT_SLICE_MS		100
#define ERROR_BODY_MAX		(64 * 1024)

/* Drop the attempt's transfer (if any) and its per-attempt state. */
static void
attempt_stop(tsnap_s3_get *g)
{
	if (g->in_multi)
		curl_multi_remove_handle(g->multi, g->easy);
	g->in_multi = false;
	if (g->xfer_live)
		tsnap_s3_xfer_cleanup(&g->x);
	g->xfer_live = false;
	g->paused = false;
	g->done = false;
	g->start = g->end = 0;
}

/* Record the first failure and stop the transfer.  Returns false. */
static bool
get_fail(tsnap_s3_get *g, const tsnap_s3_error *cause, tsnap_s3_error *err)
{
	if (g->state == S3_GET_OPEN)
	{
		g->failure = *cause;
		g->state = S3_GET_FAILED;
		attempt_stop(g);
	}
	if (err && err != &g->failure)
		*err = g->failure;
	return false;
}

/*
 * The body goes into the buffer while it fits; a chunk that does not fit
 * pauses the transfer, and curl delivers it again once a read unpaused it.
 * Bodies of error replies go to the reply buffer, for their S3 error code.
 */
static size_t
get_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	tsnap_s3_get *g = arg;
	size_t		n = size * nmemb;
	long		status = 0;

	curl_easy_getinfo(g->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300)
	{
		if (g->x.reply.len + n > ERROR_BODY_MAX)
		{
			g->x.reply_too_large = true;
			return 0;
		}
		tsnap_s3_buf_append(&g->x.reply, data, n);
		return g->x.reply.oom ? 0 : n;
	}

	if (!g->x.streaming)
	{
		/* the headers are in: the size this attempt announced */
		g->x.streaming = true;
		g->have_size = g->x.have_length;
		g->size = g->x.content_length;
	}
	if (g->cap - g->end < n && g->start > 0)
	{
		memmove(g->buf, g->buf + g->start, g->end - g->start);
		g->end -= g->start;
		g->start = 0;
	}
	if (g->cap - g->end < n)
	{
		char	   *bigger;

		if (g->end > g->start)
		{
			g->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}

		/*
		 * An empty buffer that cannot take one chunk: curl's chunks are at
		 * most CURL_MAX_WRITE_SIZE (16 kB), far below S3_GET_BUFFER, so this
		 * does not happen; if it ever did, grow to the chunk once rather
		 * than pause forever.
		 */
		bigger = realloc(g->buf, n);
		if (bigger == NULL)
		{
			g->x.reply.oom = true;
			return 0;
		}
		g->buf = bigger;
		g->cap = n;
	}
	memcpy(g->buf + g->end, data, n);
	g->end += n;
	g->x.delivered += n;
	return n;
}

/* Start attempt number g->attempt + 1. */
static bool
attempt_start(tsnap_s3_get *g, tsnap_s3_error *err)
{
	attempt_stop(g);
	g->attempt++;
	g->xfer_live = true;
	if (!tsnap_s3_xfer_setup(&g->x, g->c, g->easy, &g->req, err))
		return false;
	/* the body goes to the buffer, and no limit on the whole transfer */
	curl_easy_setopt(g->easy, CURLOPT_WRITEFUNCTION, get_write_cb);
	curl_easy_setopt(g->easy, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(g->easy, CURLOPT_TIMEOUT_MS, 0L);
	if (curl_multi_add_handle(g->multi, g->easy) != CURLM_OK)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "GetObject", g->key,
						   "could not add transfer");
		return false;
	}
	g->in_multi = true;
	return true;
}

/*
 * The attempt ended (rc from curl): keep the outcome for the reads, or
 * retry it when the caller has consumed nothing yet.  Returns false with
 * err filled when the stream failed for good.
 */
static bool
attempt_done(tsnap_s3_get *g, CURLcode rc, tsnap_s3_error *err)
{
	tsnap_s3_error e;
	tsnap_s3_outcome outcome;

	if (g->in_multi)
		curl_multi_remove_handle(g->multi, g->easy);
	g->in_multi = false;
	outcome = tsnap_s3_xfer_outcome(&g->x, rc, &e);
	e.attempts = g->attempt;
	if (outcome == S3_DONE)
	{
		g->done = true;
		if (!g->x.streaming)
		{
			/* an empty object: no body reached write_cb */
			g->have_size = g->x.have_length;
			g->size = g->x.content_length;
		}
		return true;
	}
	if (outcome == S3_RETRY && g->consumed == 0 &&
		g->attempt < g->c->max_attempts)
	{
		if (!tsnap_s3_sleep_ms(g->c, tsnap_s3_backoff_ms(g->c, g->attempt),
							   true))
		{
			tsnap_s3_error_set(&e, S3_ERR_INTERRUPTED, "GetObject", g->key,
							   NULL);
			e.attempts = g->attempt;
			return get_fail(g, &e, err);
		}
		if (!attempt_start(g, &e))
			return get_fail(g, &e, err);
		return true;
	}
	if (outcome == S3_RETRY && g->consumed > 0)
	{
		size_t		n = strlen(e.detail);

		snprintf(e.detail + n, sizeof(e.detail) - n,
				 "%safter %llu bytes were read; not retried",
				 n ? "; " : "", (unsigned long long) g->consumed);
	}
	return get_fail(g, &e, err);
}

/*
 * Let curl work until the buffer holds bytes or the object has ended,
 * waiting in slices and retrying failed attempts as the file header says.
 * Returns false with err filled when the stream failed.
 */
static bool
fill(tsnap_s3_get *g, tsnap_s3_error *err)
{
	/* a stall counts from now: the reader was busy, not the server slow */
	g->x.last_progress_ms = tsnap_s3_now_ms();
	while (g->state == S3_GET_OPEN && g->end == g->start && !g->done)
	{
		int			running = 0;
		int			left = 0;
		CURLMsg    *msg;
		bool		finished = false;
		CURLcode	rc = CURLE_OK;

		/* before curl runs: a stream that always has data must stop too */
		if (tsnap_s3_interrupted(g->c))
		{
			tsnap_s3_error e;

			tsnap_s3_error_set(&e, S3_ERR_INTERRUPTED, "GetObject", g->key,
							   NULL);
			e.attempts = g->attempt;
			return get_fail(g, &e, err);
		}
		if (g->paused)
		{
			/* the reader made room: take the chunk curl kept back */
			g->paused = false;
			curl_easy_pause(g->easy, CURLPAUSE_CONT);
			if (g->end > g->start)
				break;
		}
		if (curl_multi_perform(g->multi, &running) != CURLM_OK)
		{
			tsnap_s3_error e;

			tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "GetObject", g->key,
							   "curl_multi_perform failed");
			return get_fail(g, &e, err);
		}
		while ((msg = curl_multi_info_read(g->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == g->easy)
			{
				finished = true;
				rc = msg->data.result;
			}
		if (!finished && g->end == g->start &&
			tsnap_s3_xfer_stalled(&g->x, tsnap_s3_now_ms()))
		{
			snprintf(g->x.curl_errbuf, sizeof(g->x.curl_errbuf),
					 "no data moved for %ld ms", g->c->stall_timeout_ms);
			finished = true;
			rc = CURLE_OPERATION_TIMEDOUT;
		}
		if (finished)
		{
			/* bytes of a failed attempt count only if it is not retried */
			if (!attempt_done(g, rc, err))
				return false;
			continue;
		}
		if (g->end > g->start)
			break;
		curl_multi_poll(g->multi, NULL, 0, WAIT_SLICE_MS, NULL);
	}
	if (g->state == S3_GET_FAILED)
	{
		if (err && err != &g->failure)
			*err = g->failure;
		return false;
	}
	return true;
}

/*
 * Open the object at key for reading and wait for its first bytes.  Returns
 * NULL with err filled on failure: tsnap_s3_error_is_not_found(err) tells a
 * missing object.
 */
tsnap_s3_get *
tsnap_s3_get_open(tsnap_s3_client *c, const char *key, tsnap_s3_error *err)
{
	tsnap_s3_get *g;

	tsnap_s3_error_clear(err);
	g = calloc(1, sizeof(tsnap_s3_get));
	if (g == NULL)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "GetObject", key,
						   "out of memory");
		return NULL;
	}
	g->c = c;
	g->state = S3_GET_OPEN;
	g->key = tsnap_s3_strdup(key);
	g->cap = S3_GET_BUFFER;
	g->buf = malloc(g->cap);
	g->multi = curl_multi_init();
	g->easy = curl_easy_init();
	if (g->key == NULL || g->buf == NULL || g->multi == NULL ||
		g->easy == NULL)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "GetObject", key,
						   "out of memory");
		tsnap_s3_get_close(g);
		return NULL;
	}
	curl_multi_setopt(g->multi, CURLMOPT_MAXCONNECTS, 1L);
	g->req.operation = "GetObject";
	g->req.method = "GET";
	g->req.key = g->key;

	if (!attempt_start(g, err) || !fill(g, err))
	{
		if (g->state == S3_GET_OPEN)
			get_fail(g, err, err);
		tsnap_s3_get_close(g);
		return NULL;
	}
	return g;
}

/*
 * Copy up to len bytes into dst.  Returns how many (at least one, unless
 * the object has ended: then 0), or -1 with err filled.
 */
long
tsnap_s3_get_read(tsnap_s3_get *g, void *dst, size_t len,
				  tsnap_s3_error *err)
{
	size_t		n;

	if (len == 0)
		return 0;
	if (g->state == S3_GET_FAILED)
	{
		*err = g->failure;
		return -1;
	}
	if (g->end == g->start && !fill(g, err))
		return -1;
	n = g->end - g->start;
	if (n == 0)
		return 0;				/* done, and everything was read */
	if (n > len)
		n = len;
	if (n > (size_t) LONG_MAX)
		n = (size_t) LONG_MAX;
	memcpy(dst, g->buf + g->start, n);
	g->start += n;
	g->consumed += n;
	return (long) n;
}

/*
 * The object's size as its reply announced it (Content-Length), known once
 * open returned; false if the reply gave none.
 */
bool
tsnap_s3_get_size(tsnap_s3_get *g, uint64_t *size)
{
	*size = g->size;
	return g->have_size;
}

/* Stop the transfer (no request is sent) and free the stream. */
void
tsnap_s3_get_close(tsnap_s3_get *g)
{
	if (g == NULL)
		return;
	attempt_stop(g);
	if (g->easy)
		curl_easy_cleanup(g->easy);
	if (g->multi)
		curl_multi_cleanup(g->multi);
	free(g->buf);
	free(g->key);
	free(g);
}
