/*-------------------------------------------------------------------------
 *
 * s3_upload.c
 *	  The streaming uploader: the producer writes bytes as it makes them;
 *	  the uploader cuts them into parts and keeps up to max_parts_in_flight
 *	  parts uploading at once on its own curl multi handle, in the
 *	  producer's own thread.  An object smaller than one part is sent as a
 *	  single PutObject at finish.
 *
 * Memory: one fill buffer plus one buffer per in-flight slot, each at most
 * the current part size, so part_size * (max_parts_in_flight + 1) plus the
 * ETag list (at most 10,000 short strings).  Buffers are swapped, not
 * copied: a slot whose part succeeded lends its buffer to the producer.
 *
 * Failure: each part is retried on its own (backoff without blocking the
 * other parts); a part that succeeded is never sent again.  On any
 * permanent failure, interrupt, size overflow or tsnap_s3_upload_abort(), the
 * transfers in flight are cancelled and the multipart upload is aborted,
 * so no object appears at the key and no upload stays listed.  The first
 * error sticks: later calls return it.
 *
 * Waits: when every slot is busy, the producer blocks in curl_multi_poll in
 * slices of at most 100 ms and polls the interrupt hook between slices.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_int.h"

#define WAIT_SLICE_MS		100
#define DRIVE_EVERY_BYTES	(256 * 1024)
#define DRIVE_EVERY_MS		10
#define FILL_MIN_CAP		(256 * 1024)
#define ETAG_LEN			80

typedef enum slot_state
{
	SLOT_IDLE,					/* free; buf may hold a reusable buffer */
	SLOT_RUNNING,				/* easy handle is in the multi */
	SLOT_BACKOFF				/* failed transiently; retried at not_before */
} slot_state;

typedef struct up_slot
{
	slot_state	state;
	CURL	   *easy;
	char	   *buf;
	size_t		cap;
	size_t		len;
	int			part_number;
	int			attempt;
	int64_t		not_before;
	char		payload_hash[65];
	char		num[16];
	tsnap_s3_kv query[2];
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	bool		xfer_live;		/* x needs tsnap_s3_xfer_cleanup */
} up_slot;

typedef enum upload_state
{
	UP_OPEN,
	UP_FAILED,
	UP_DONE,
	UP_ABORTED
} upload_state;

struct tsnap_s3_upload
{
	tsnap_s3_client *c;
	CURLM	   *multi;			/* the parts' transfers, their connections */
	char	   *key;
	char	   *content_type;
	char	   *upload_id;		/* NULL until the first part is cut */
	upload_state state;
	tsnap_s3_error failure;		/* sticky, once state is UP_FAILED */
	up_slot    *slots;
	int			nslots;
	char	   *fill;
	size_t		fill_cap;
	size_t		fill_len;
	int			next_part;		/* part number the fill buffer will get */
	uint64_t	total;
	char		(*etags)[ETAG_LEN];
	int			etags_cap;
	int			parts_done;		/* parts S3 has acknowledged */
	size_t		since_drive;
	int64_t		last_drive_ms;
};

/*
 * Size of part part_number (from 1) for a first part size: it doubles
 * every S3_PART_SIZE_GROWTH_INTERVAL parts, capped at 5 GiB.  With the
 * 5 MiB minimum, 10,000 parts then hold more than S3's 5 TiB maximum
 * object (doubling every 1,000 parts would stop at 4.88 TiB).
 */
/* Parts of the upload that S3 has acknowledged so far, for progress. */
int
tsnap_s3_upload_parts_done(const tsnap_s3_upload *upload)
{
	return upload->parts_done;
}

size_t
tsnap_s3_part_size_for(size_t first_part_size, int part_number)
{
	size_t		size = first_part_size < S3_MIN_PART_SIZE ?
		S3_MIN_PART_SIZE : first_part_size;
	int			doublings = part_number > 1 ?
		(part_number - 1) / S3_PART_SIZE_GROWTH_INTERVAL : 0;

	while (doublings-- > 0 && size < S3_MAX_PART_SIZE)
		size *= 2;
	return size > S3_MAX_PART_SIZE ? S3_MAX_PART_SIZE : size;
}

static void
copy_error(tsnap_s3_error *dst, const tsnap_s3_error *src)
{
	if (dst && dst != src)
		*dst = *src;
}

/* Take a running slot out of the multi and free its attempt's state. */
static void
slot_stop(tsnap_s3_upload *u, up_slot *s)
{
	if (s->state == SLOT_RUNNING)
		curl_multi_remove_handle(u->multi, s->easy);
	if (s->xfer_live)
		tsnap_s3_xfer_cleanup(&s->x);
	s->xfer_live = false;
	s->state = SLOT_IDLE;
}

static void
free_buffers(tsnap_s3_upload *u)
{
	int			i;

	for (i = 0; u->slots && i < u->nslots; i++)
	{
		free(u->slots[i].buf);
		u->slots[i].buf = NULL;
		u->slots[i].cap = 0;
	}
	free(u->fill);
	u->fill = NULL;
	u->fill_cap = u->fill_len = 0;
}

/*
 * Cancel everything and abort the multipart upload (if one was started).
 * Returns false if the abort itself failed (err then says why).
 */
static bool
cancel_all(tsnap_s3_upload *u, tsnap_s3_error *err)
{
	int			i;
	bool		ok = true;

	for (i = 0; u->slots && i < u->nslots; i++)
		slot_stop(u, &u->slots[i]);
	free_buffers(u);
	if (u->upload_id)
	{
		ok = tsnap_s3_abort_multipart_upload(u->c, u->key, u->upload_id, err);
		free(u->upload_id);
		u->upload_id = NULL;
	}
	return ok;
}

/*
 * Record the first failure, cancel and abort.  Returns false so callers
 * can "return fail(...)".
 */
static bool
fail(tsnap_s3_upload *u, const tsnap_s3_error *cause, tsnap_s3_error *err)
{
	tsnap_s3_error abort_err;

	if (u->state == UP_OPEN)
	{
		u->failure = *cause;
		u->state = UP_FAILED;
		tsnap_s3_error_clear(&abort_err);
		if (!cancel_all(u, &abort_err))
		{
			size_t		n = strlen(u->failure.detail);
			char		msg[300];

			tsnap_s3_error_format(&abort_err, msg, sizeof(msg));
			snprintf(u->failure.detail + n, sizeof(u->failure.detail) - n,
					 "%sthe upload may remain open: %s", n ? "; " : "", msg);
		}
	}
	copy_error(err, &u->failure);
	return false;
}

static bool
state_error(tsnap_s3_upload *u, tsnap_s3_error *err)
{
	if (u->state == UP_FAILED)
		copy_error(err, &u->failure);
	else
		tsnap_s3_error_set(err, S3_ERR_INVALID, "upload", u->key,
						   u->state == UP_DONE ? "upload already finished"
						   : "upload was aborted");
	return false;
}

/* Start (or restart) the part in slot s. */
static bool
slot_start(tsnap_s3_upload *u, up_slot *s, tsnap_s3_error *err)
{
	if (!tsnap_s3_xfer_setup(&s->x, u->c, s->easy, &s->req, err))
	{
		s->xfer_live = true;
		return false;
	}
	s->xfer_live = true;
	s->attempt++;
	if (curl_multi_add_handle(u->multi, s->easy) != CURLM_OK)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "UploadPart", u->key,
						   "could not add transfer");
		return false;
	}
	s->state = SLOT_RUNNING;
	return true;
}

/* A slot's attempt ended with rc: record the part, or schedule a retry. */
static bool
slot_done(tsnap_s3_upload *u, up_slot *s, CURLcode rc, tsnap_s3_error *err)
{
	tsnap_s3_outcome outcome;
	tsnap_s3_error e;

	curl_multi_remove_handle(u->multi, s->easy);
	s->state = SLOT_IDLE;
	outcome = tsnap_s3_xfer_outcome(&s->x, rc, &e);
	e.attempts = s->attempt;
	if (outcome == S3_DONE)
	{
		if (s->x.etag[0] == '\0' || strlen(s->x.etag) >= ETAG_LEN)
		{
			tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "UploadPart", u->key,
							   "part %d: reply has no usable ETag",
							   s->part_number);
			outcome = S3_FAIL;
		}
		else
		{
			tsnap_s3_strlcpy(u->etags[s->part_number - 1], s->x.etag,
							 ETAG_LEN);
			u->parts_done++;
		}
	}
	tsnap_s3_xfer_cleanup(&s->x);
	s->xfer_live = false;
	if (outcome == S3_DONE)
		return true;
	if (outcome == S3_RETRY && s->attempt < u->c->max_attempts)
	{
		s->state = SLOT_BACKOFF;
		s->not_before = tsnap_s3_now_ms() +
			tsnap_s3_backoff_ms(u->c, s->attempt);
		return true;
	}
	if (e.detail[0] == '\0')
		snprintf(e.detail, sizeof(e.detail), "part %d", s->part_number);
	return fail(u, &e, err);
}

/*
 * Let curl move data, collect finished parts, cut stalled ones, restart
 * parts whose backoff has elapsed.  Never blocks.
 */
static bool
drive(tsnap_s3_upload *u, tsnap_s3_error *err)
{
	int			running;
	int			left;
	CURLMsg    *msg;
	int64_t		now;
	int			i;

	if (curl_multi_perform(u->multi, &running) != CURLM_OK)
	{
		tsnap_s3_error e;

		tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "UploadPart", u->key,
						   "curl_multi_perform failed");
		return fail(u, &e, err);
	}
	while ((msg = curl_multi_info_read(u->multi, &left)) != NULL)
	{
		if (msg->msg != CURLMSG_DONE)
			continue;
		for (i = 0; i < u->nslots; i++)
			if (u->slots[i].state == SLOT_RUNNING &&
				u->slots[i].easy == msg->easy_handle)
			{
				if (!slot_done(u, &u->slots[i], msg->data.result, err))
					return false;
				break;
			}
	}
	now = tsnap_s3_now_ms();
	for (i = 0; i < u->nslots; i++)
	{
		up_slot    *s = &u->slots[i];

		if (s->state == SLOT_RUNNING && tsnap_s3_xfer_stalled(&s->x, now))
		{
			snprintf(s->x.curl_errbuf, sizeof(s->x.curl_errbuf),
					 "no data moved for %ld ms", u->c->stall_timeout_ms);
			if (!slot_done(u, s, CURLE_OPERATION_TIMEDOUT, err))
				return false;
		}
		if (s->state == SLOT_BACKOFF && now >= s->not_before)
		{
			tsnap_s3_error e;

			if (!slot_start(u, s, &e))
				return fail(u, &e, err);
		}
	}
	u->since_drive = 0;
	u->last_drive_ms = now;
	return true;
}

/* Milliseconds to wait next: a slice, shortened by any pending backoff. */
static long
wait_timeout(tsnap_s3_upload *u)
{
	int64_t		now = tsnap_s3_now_ms();
	long		t = WAIT_SLICE_MS;
	int			i;

	for (i = 0; i < u->nslots; i++)
		if (u->slots[i].state == SLOT_BACKOFF)
		{
			int64_t		d = u->slots[i].not_before - now;

			if (d < t)
				t = d < 0 ? 0 : (long) d;
		}
	return t;
}

/*
 * Block until a slot is free (want_all = false) or all are (true),
 * polling the interrupt hook every slice.  Returns the free slot, or NULL
 * on failure (upload already failed and aborted).
 */
static up_slot *
wait_slots(tsnap_s3_upload *u, bool want_all, tsnap_s3_error *err)
{
	for (;;)
	{
		int			i;
		int			idle = 0;
		up_slot    *free_slot = NULL;

		if (!drive(u, err))
			return NULL;
		for (i = 0; i < u->nslots; i++)
			if (u->slots[i].state == SLOT_IDLE)
			{
				idle++;
				if (free_slot == NULL)
					free_slot = &u->slots[i];
			}
		if (want_all ? idle == u->nslots : free_slot != NULL)
			return free_slot;
		if (tsnap_s3_interrupted(u->c))
		{
			tsnap_s3_error e;

			tsnap_s3_error_set(&e, S3_ERR_INTERRUPTED, "UploadPart", u->key,
							   NULL);
			fail(u, &e, err);
			return NULL;
		}
		curl_multi_poll(u->multi, NULL, 0, (int) wait_timeout(u), NULL);
	}
}

/* Hand the fill buffer to a free slot as part next_part and start it. */
static bool
dispatch_fill(tsnap_s3_upload *u, tsnap_s3_error *err)
{
	up_slot    *s;
	char	   *tmp;
	size_t		tmpcap;
	tsnap_s3_error e;

	if (u->upload_id == NULL)
	{
		u->upload_id = tsnap_s3_create_multipart_upload(u->c, u->key,
														u->content_type, &e);
		if (u->upload_id == NULL)
			return fail(u, &e, err);
	}
	if (u->next_part > S3_MAX_PARTS)
	{
		tsnap_s3_error_set(&e, S3_ERR_TOO_LARGE, "UploadPart", u->key,
						   "object needs more than %d parts", S3_MAX_PARTS);
		return fail(u, &e, err);
	}
	if (u->next_part > u->etags_cap)
	{
		int			cap = u->etags_cap ? u->etags_cap * 2 : 64;
		void	   *p;

		if (cap > S3_MAX_PARTS)
			cap = S3_MAX_PARTS;
		p = realloc(u->etags, (size_t) cap * ETAG_LEN);
		if (p == NULL)
		{
			tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "UploadPart", u->key,
							   "out of memory");
			return fail(u, &e, err);
		}
		u->etags = p;
		u->etags_cap = cap;
	}

	s = wait_slots(u, false, err);
	if (s == NULL)
		return false;

	/* Swap buffers: the slot's old one (if any) becomes the fill buffer. */
	tmp = s->buf;
	tmpcap = s->cap;
	s->buf = u->fill;
	s->cap = u->fill_cap;
	s->len = u->fill_len;
	u->fill = tmp;
	u->fill_cap = tmpcap;
	u->fill_len = 0;

	s->part_number = u->next_part++;
	s->attempt = 0;
	snprintf(s->num, sizeof(s->num), "%d", s->part_number);
	s->query[0].name = "partNumber";
	s->query[0].value = s->num;
	s->query[1].name = "uploadId";
	s->query[1].value = u->upload_id;
	tsnap_s3_sha256_hex(s->buf, s->len, s->payload_hash);
	memset(&s->req, 0, sizeof(s->req));
	s->req.operation = "UploadPart";
	s->req.method = "PUT";
	s->req.key = u->key;
	s->req.query = s->query;
	s->req.nquery = 2;
	s->req.body = s->buf;
	s->req.body_len = s->len;
	s->req.payload_hash = s->payload_hash;
	if (!slot_start(u, s, &e))
		return fail(u, &e, err);
	return true;
}

/*
 * Start an upload to key.  Nothing is sent yet: a small object goes out
 * as one PutObject at finish.  Returns NULL with err filled on failure.
 */
tsnap_s3_upload *
tsnap_s3_upload_begin(tsnap_s3_client *c, const char *key,
					  const char *content_type, tsnap_s3_error *err)
{
	tsnap_s3_upload *u;
	int			i;

	tsnap_s3_error_clear(err);
	if (key == NULL || key[0] == '\0' || strlen(key) > S3_MAX_KEY_LEN)
	{
		tsnap_s3_error_set(err, S3_ERR_INVALID, "upload", key,
						   "key must be 1 to 1024 bytes long");
		return NULL;
	}
	u = calloc(1, sizeof(tsnap_s3_upload));
	if (u == NULL)
		goto oom;
	u->c = c;
	u->state = UP_OPEN;
	u->next_part = 1;
	u->last_drive_ms = tsnap_s3_now_ms();
	u->key = strdup(key);
	u->content_type = strdup(content_type ?
							 content_type : "application/octet-stream");
	u->nslots = c->max_parts_in_flight;
	u->multi = curl_multi_init();
	u->slots = calloc(u->nslots, sizeof(up_slot));
	if (u->key == NULL || u->content_type == NULL || u->slots == NULL ||
		u->multi == NULL)
		goto oom;
	for (i = 0; i < u->nslots; i++)
		if ((u->slots[i].easy = curl_easy_init()) == NULL)
			goto oom;
	return u;

oom:
	tsnap_s3_error_set(err, S3_ERR_INTERNAL, "upload", key, "out of memory");
	tsnap_s3_upload_free(u);
	return NULL;
}

/* Grow the fill buffer geometrically, never past the current part size. */
static bool
grow_fill(tsnap_s3_upload *u, size_t need, size_t part_size)
{
	size_t		cap = u->fill_cap ? u->fill_cap : FILL_MIN_CAP;
	char	   *p;

	while (cap < need)
		cap *= 2;
	if (cap > part_size)
		cap = part_size;
	p = realloc(u->fill, cap);
	if (p == NULL)
		return false;
	u->fill = p;
	u->fill_cap = cap;
	return true;
}

/*
 * Append len bytes.  Cuts a part whenever the fill buffer is full and more
 * data arrives (so an object of exactly one part stays a PutObject), and
 * lets transfers progress.  Blocks only when every slot is busy.
 */
bool
tsnap_s3_upload_write(tsnap_s3_upload *u, const void *data, size_t len,
					  tsnap_s3_error *err)
{
	const char *p = data;
	tsnap_s3_error e;

	if (u->state != UP_OPEN)
		return state_error(u, err);
	if (len > u->c->max_object_size || u->total > u->c->max_object_size - len)
	{
		tsnap_s3_error_set(&e, S3_ERR_TOO_LARGE, "upload", u->key,
						   "object exceeds the size limit of %llu bytes",
						   (unsigned long long) u->c->max_object_size);
		return fail(u, &e, err);
	}
	while (len > 0)
	{
		size_t		part_size = tsnap_s3_part_size_for(u->c->part_size,
													   u->next_part);
		size_t		n;

		if (u->fill_len >= part_size)
		{
			if (!dispatch_fill(u, err))
				return false;
			continue;
		}
		n = part_size - u->fill_len;
		if (n > len)
			n = len;
		if (u->fill_len + n > u->fill_cap &&
			!grow_fill(u, u->fill_len + n, part_size))
		{
			tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "upload", u->key,
							   "out of memory");
			return fail(u, &e, err);
		}
		memcpy(u->fill + u->fill_len, p, n);
		u->fill_len += n;
		u->total += n;
		u->since_drive += n;
		p += n;
		len -= n;
	}
	/* Keep transfers moving while the producer works, but cheaply. */
	if (u->upload_id &&
		(u->since_drive >= DRIVE_EVERY_BYTES ||
		 tsnap_s3_now_ms() - u->last_drive_ms >= DRIVE_EVERY_MS))
		return drive(u, err);
	return true;
}

/*
 * Send what is left and complete the object.  For a multipart upload,
 * waits for every part, completes, and if the reply has no ETag (Ceph
 * RGW) asks HeadObject for it.  On failure the upload is aborted.
 */
bool
tsnap_s3_upload_finish(tsnap_s3_upload *u, tsnap_s3_upload_result *result,
					   tsnap_s3_error *err)
{
	tsnap_s3_error e;
	const char **etags;
	int			nparts;
	int			i;
	bool		ok;

	memset(result, 0, sizeof(*result));
	if (u->state != UP_OPEN)
		return state_error(u, err);

	if (u->upload_id == NULL)
	{
		ok = tsnap_s3_put_object(u->c, u->key, u->fill, u->fill_len,
								 u->content_type, result->etag,
								 sizeof(result->etag), &e);
		if (!ok)
		{
			u->failure = e;
			u->state = UP_FAILED;
			free_buffers(u);
			copy_error(err, &e);
			return false;
		}
		result->bytes = u->total;
		result->parts = 0;
		u->state = UP_DONE;
		free_buffers(u);
		return true;
	}

	if (u->fill_len > 0 && !dispatch_fill(u, err))
		return false;
	if (wait_slots(u, true, err) == NULL)
		return false;

	nparts = u->next_part - 1;
	etags = malloc(sizeof(char *) * (nparts > 0 ? nparts : 1));
	if (etags == NULL)
	{
		tsnap_s3_error_set(&e, S3_ERR_INTERNAL, "CompleteMultipartUpload",
						   u->key, "out of memory");
		return fail(u, &e, err);
	}
	for (i = 0; i < nparts; i++)
		etags[i] = u->etags[i];
	free_buffers(u);
	ok = tsnap_s3_complete_multipart_upload(u->c, u->key, u->upload_id, etags,
											nparts, result->etag,
											sizeof(result->etag), &e);
	free(etags);
	if (!ok)
		return fail(u, &e, err);

	/* Completed: the upload id is gone, nothing left to abort. */
	free(u->upload_id);
	u->upload_id = NULL;
	u->state = UP_DONE;
	result->bytes = u->total;
	result->parts = nparts;
	if (result->etag[0] == '\0' &&
		!tsnap_s3_head_object(u->c, u->key, NULL, result->etag,
							  sizeof(result->etag), &e))
	{
		/* The object is complete; only its ETag is unknown. */
		copy_error(err, &e);
		return false;
	}
	return true;
}

/*
 * Abandon the upload: cancel transfers and abort the multipart upload.
 * Ignores the interrupt hook (this is cleanup).  Returns false only if
 * S3 refused or failed the abort.
 */
bool
tsnap_s3_upload_abort(tsnap_s3_upload *u, tsnap_s3_error *err)
{
	bool		ok;

	tsnap_s3_error_clear(err);
	if (u->state != UP_OPEN)
		return true;
	u->state = UP_ABORTED;
	ok = cancel_all(u, err);
	return ok;
}

/* Free everything; an upload still open is aborted first. */
void
tsnap_s3_upload_free(tsnap_s3_upload *u)
{
	int			i;

	if (u == NULL)
		return;
	if (u->state == UP_OPEN && u->c)
	{
		tsnap_s3_error e;

		tsnap_s3_upload_abort(u, &e);
	}
	for (i = 0; u->slots && i < u->nslots; i++)
	{
		slot_stop(u, &u->slots[i]);
		if (u->slots[i].easy)
			curl_easy_cleanup(u->slots[i].easy);
	}
	free_buffers(u);
	if (u->multi)
		curl_multi_cleanup(u->multi);
	free(u->slots);
	free(u->etags);
	free(u->upload_id);
	free(u->key);
	free(u->content_type);
	free(u);
}
