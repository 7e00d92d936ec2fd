/*-------------------------------------------------------------------------
 *
 * t_upload.c
 *	  Integration test of the streaming uploader against a live endpoint:
 *	  byte-identical round trips around the part boundaries with 1 and 4
 *	  parts in flight, multipart ETags ending in -N, and every way an upload
 *	  can end early (abort, size cap, interrupt, free without finish)
 *	  leaving neither an object nor an open multipart upload.
 *
 * Part size is S3's minimum, 5 MiB, to keep the test fast.
 *
 *-------------------------------------------------------------------------
 */
#include "../../src/s3/s3_int.h"
#include "testutil.h"
#include "tap.h"

#define MiB ((size_t) 1024 * 1024)

static char prefix[256];
static unsigned char *data;

static int
count_upload(const tsnap_s3_upload_info *u, void *arg)
{
	(void) u;
	(*(int *) arg)++;
	return 0;
}

/* Number of open multipart uploads whose key starts with key. */
static int
open_uploads(tsnap_s3_client *c, const char *key)
{
	int			n = 0;
	tsnap_s3_error	err;

	if (!tsnap_s3_list_multipart_uploads(c, key, count_upload, &n, &err))
	{
		diag("%s", errstr(&err));
		return -1;
	}
	return n;
}

static bool
object_absent(tsnap_s3_client *c, const char *key)
{
	tsnap_s3_error	err;

	return !tsnap_s3_head_object(c, key, NULL, NULL, 0, &err) && tsnap_s3_error_is_not_found(&err);
}

/* Write size bytes of test data in uneven chunks. */
static bool
write_data(tsnap_s3_upload *u, size_t size, tsnap_s3_error *err)
{
	static const size_t chunks[] = {1, 7919, 65536, 1000003, 3 * MiB, 12345};
	size_t		off = 0;
	int			i = 0;

	while (off < size)
	{
		size_t		n = chunks[i++ % 6];

		if (n > size - off)
			n = size - off;
		if (!tsnap_s3_upload_write(u, data + off, n, err))
			return false;
		off += n;
	}
	return true;
}

static void
round_trip(tsnap_s3_client *c, int inflight, const char *label, size_t size, int want_parts)
{
	char		key[512];
	tsnap_s3_upload  *u;
	tsnap_s3_upload_result r;
	tsnap_s3_error	err;
	uint64_t	hsize = 0;
	char		hetag[128] = "";
	check_sink	cs = {0, 1, UINT64_MAX};
	bool		ok_up;
	char		suffix[16];

	snprintf(key, sizeof(key), "%srt/%d/%s", prefix, inflight, label);
	u = tsnap_s3_upload_begin(c, key, "text/csv", &err);
	ok_up = u && write_data(u, size, &err) && tsnap_s3_upload_finish(u, &r, &err);
	if (!ok(ok_up, "%d in flight, %s (%zu bytes): upload", inflight, label, size))
	{
		diag("%s", errstr(&err));
		tsnap_s3_upload_free(u);
		return;
	}
	tsnap_s3_upload_free(u);
	ok(r.bytes == size && r.parts == want_parts, "  result: %llu bytes, %d parts (want %d)",
	   (unsigned long long) r.bytes, r.parts, want_parts);
	ok(tsnap_s3_head_object(c, key, &hsize, hetag, sizeof(hetag), &err) && hsize == size &&
	   strcmp(hetag, r.etag) == 0, "  HeadObject: size %llu, ETag %s", (unsigned long long) hsize, hetag);
	if (want_parts > 0)
	{
		snprintf(suffix, sizeof(suffix), "-%d\"", want_parts);
		ok(strlen(r.etag) > strlen(suffix) &&
		   strcmp(r.etag + strlen(r.etag) - strlen(suffix), suffix) == 0,
		   "  multipart ETag ends in -%d", want_parts);
	}
	ok(tsnap_s3_get_object(c, key, check_sink_cb, &cs, NULL, &err) && cs.pos == size &&
	   cs.first_bad == UINT64_MAX, "  GetObject returns the same %zu bytes", size);
	tsnap_s3_delete_object(c, key, &err);
}

static int	interrupt_now;

static int
interrupt_flag(void *arg)
{
	(void) arg;
	return interrupt_now;
}

static void
early_endings(void)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_upload  *u;
	tsnap_s3_error	err;
	tsnap_s3_upload_result r;
	char		key[512];

	test_config(&cfg);
	cfg.max_parts_in_flight = 2;
	cfg.max_object_size = 13 * MiB;
	cfg.interrupt_cb = interrupt_flag;
	c = tsnap_s3_client_new(&cfg, &err);

	/* Producer abort after two parts went out. */
	snprintf(key, sizeof(key), "%send/aborted", prefix);
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	ok(u && write_data(u, 12 * MiB, &err), "abort: 12 MiB written");
	ok(open_uploads(c, key) == 1, "abort: a multipart upload is open meanwhile");
	ok(tsnap_s3_upload_abort(u, &err), "abort: tsnap_s3_upload_abort succeeds");
	ok(open_uploads(c, key) == 0, "abort: no upload listed afterwards");
	ok(object_absent(c, key), "abort: no object at the key");
	ok(!tsnap_s3_upload_write(u, data, 1, &err) && err.kind == S3_ERR_INVALID, "abort: later writes refused");
	tsnap_s3_upload_free(u);

	/* Size cap. */
	snprintf(key, sizeof(key), "%send/too-large", prefix);
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	ok(u && !write_data(u, 14 * MiB, &err) && err.kind == S3_ERR_TOO_LARGE,
	   "size cap: write fails with TOO_LARGE");
	diag("%s", errstr(&err));
	ok(!tsnap_s3_upload_finish(u, &r, &err) && err.kind == S3_ERR_TOO_LARGE, "size cap: error sticks");
	ok(open_uploads(c, key) == 0 && object_absent(c, key), "size cap: upload aborted, no object");
	tsnap_s3_upload_free(u);

	/* Interrupt while parts are in flight. */
	snprintf(key, sizeof(key), "%send/interrupted", prefix);
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	ok(u && write_data(u, 11 * MiB, &err), "interrupt: 11 MiB written");
	interrupt_now = 1;
	ok(!(write_data(u, 2 * MiB, &err) && tsnap_s3_upload_finish(u, &r, &err)) &&
	   err.kind == S3_ERR_INTERRUPTED, "interrupt: upload stops with INTERRUPTED");
	diag("%s", errstr(&err));
	interrupt_now = 0;
	ok(open_uploads(c, key) == 0 && object_absent(c, key), "interrupt: upload aborted, no object");
	tsnap_s3_upload_free(u);

	/* The owner frees an unfinished upload (error path in the caller). */
	snprintf(key, sizeof(key), "%send/freed", prefix);
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	ok(u && write_data(u, 11 * MiB, &err), "free: 11 MiB written");
	tsnap_s3_upload_free(u);
	ok(open_uploads(c, key) == 0 && object_absent(c, key), "free: upload aborted, no object");

	/* A small object never starts a multipart upload. */
	snprintf(key, sizeof(key), "%send/small-aborted", prefix);
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	ok(u && write_data(u, 1000, &err) && tsnap_s3_upload_abort(u, &err) && object_absent(c, key),
	   "small abort: nothing sent");
	tsnap_s3_upload_free(u);
	tsnap_s3_client_free(c);
}

int
main(void)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_error	err;
	int			inflight;
	size_t		part = 5 * MiB;

	test_prefix(prefix, sizeof(prefix), "upload");
	test_config(&cfg);
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		bail_out(errstr(&err));
	if (!tsnap_s3_list_objects(c, prefix, NULL, NULL, &err))
	{
		printf("1..0 # skip no S3 endpoint at %s: %s\n", cfg.endpoint, errstr(&err));
		return 0;
	}
	tsnap_s3_client_free(c);
	data = malloc(20 * MiB);
	test_fill(data, 20 * MiB, 0, 1);

	for (inflight = 1; inflight <= 4; inflight += 3)
	{
		cfg.max_parts_in_flight = inflight;
		c = tsnap_s3_client_new(&cfg, &err);
		round_trip(c, inflight, "empty", 0, 0);
		round_trip(c, inflight, "one-byte", 1, 0);
		round_trip(c, inflight, "part-minus-1", part - 1, 0);
		round_trip(c, inflight, "one-part", part, 0);
		round_trip(c, inflight, "part-plus-1", part + 1, 2);
		round_trip(c, inflight, "3.5-parts", part * 7 / 2, 4);
		tsnap_s3_client_free(c);
	}
	early_endings();
	free(data);
	return done_testing();
}
