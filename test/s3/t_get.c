/*-------------------------------------------------------------------------
 *
 * t_get.c
 *	  Integration test of the pull-style GetObject (s3_get.c) against a live
 *	  endpoint: objects of 0 bytes to several buffers round-trip through
 *	  reads of every size, byte for byte; a reader that stops reading leaves
 *	  at most one buffer in memory (the transfer pauses); a missing key
 *	  fails at open with 404 and is not retried; an interrupt stops a read;
 *	  closing a stream halfway frees it without reading the rest.
 *
 * The stream's failures through a faulty network (retry before the first
 * byte, no retry after it, stalls) are in t_faults.c.
 *
 *-------------------------------------------------------------------------
 */
#include "../../src/s3/s3_int.h"
#include "testutil.h"
#include "tap.h"

#define MiB ((size_t) 1024 * 1024)

static char prefix[256];
static unsigned char *data;
static int	interrupt_now = 0;

static int
interrupt_flag(void *arg)
{
	(void) arg;
	return interrupt_now ? S3_INTERRUPT_CANCEL : 0;
}

/*
 * Read the whole stream with read sizes cycling through sizes[]; check the
 * bytes against test_byte(seed 5) and that the unread part of the buffer
 * never held more than one buffer.  Returns the bytes read, or -1.
 */
static long long
read_all(tsnap_s3_get *g, const size_t *sizes, int nsizes, bool *intact,
		 size_t *most_buffered, tsnap_s3_error *err)
{
	static unsigned char chunk[2 * 1024 * 1024];
	uint64_t	pos = 0;
	int			i = 0;

	*intact = true;
	*most_buffered = 0;
	for (;;)
	{
		size_t		want = sizes[i++ % nsizes];
		long		n = tsnap_s3_get_read(g, chunk, want, err);
		long		j;

		if (n < 0)
			return -1;
		if (n == 0)
			return (long long) pos;
		if ((size_t) n > want)
			*intact = false;
		for (j = 0; j < n; j++)
			if (chunk[j] != test_byte(pos + j, 5))
				*intact = false;
		pos += n;
		if (g->end - g->start > *most_buffered)
			*most_buffered = g->end - g->start;
		if (g->cap != S3_GET_BUFFER)
			*most_buffered = g->cap;
	}
}

static void
round_trips(tsnap_s3_client *c)
{
	static const size_t sizes_list[] = {0, 1, 100000, S3_GET_BUFFER + 12345,
	6 * MiB + 7};
	static const size_t reads[] = {1, 7, 4096, 65536, 1000003, 2 * MiB};
	size_t		i;

	for (i = 0; i < sizeof(sizes_list) / sizeof(sizes_list[0]); i++)
	{
		char		key[512];
		size_t		size = sizes_list[i];
		tsnap_s3_error err;
		tsnap_s3_get *g;
		bool		intact;
		size_t		most;
		long long	got;
		uint64_t	announced = 0;
		bool		known;
		unsigned char b;

		snprintf(key, sizeof(key), "%sobj-%zu", prefix, size);
		if (!ok(tsnap_s3_put_object(c, key, data, size, NULL, NULL, 0, &err),
				"put %zu bytes", size))
		{
			diag("%s", errstr(&err));
			continue;
		}
		g = tsnap_s3_get_open(c, key, &err);
		if (!ok(g != NULL, "open %zu-byte object", size))
		{
			diag("%s", errstr(&err));
			continue;
		}
		known = tsnap_s3_get_size(g, &announced);
		ok(known && announced == size,
		   "  size announced: %llu", (unsigned long long) announced);
		got = read_all(g, reads, 6, &intact, &most, &err);
		ok(got == (long long) size && intact,
		   "  %lld bytes read in reads of 1 B to 2 MiB, byte for byte", got);
		if (got < 0)
			diag("%s", errstr(&err));
		ok(most <= S3_GET_BUFFER, "  at most one buffer held (%zu bytes)", most);
		ok(tsnap_s3_get_read(g, &b, 1, &err) == 0, "  a read after the end gives 0");
		tsnap_s3_get_close(g);
		tsnap_s3_delete_object(c, key, &err);
	}
}

/*
 * A reader that stops: the transfer pauses with the buffer full, however
 * long the reader waits, and goes on where it stopped.
 */
static void
slow_reader(tsnap_s3_client *c)
{
	char		key[512];
	size_t		size = 6 * MiB;
	tsnap_s3_error err;
	tsnap_s3_get *g;
	unsigned char b;
	bool		intact;
	size_t		most;
	long long	got;
	int			i;

	snprintf(key, sizeof(key), "%sslow", prefix);
	ok(tsnap_s3_put_object(c, key, data, size, NULL, NULL, 0, &err), "put 6 MiB");
	g = tsnap_s3_get_open(c, key, &err);
	if (!ok(g != NULL, "open"))
		return;
	ok(tsnap_s3_get_read(g, &b, 1, &err) == 1 && b == test_byte(0, 5),
	   "first byte");
	for (i = 0; i < 5; i++)
	{
		/* curl only runs inside reads; the socket fills, the buffer does not */
		usleep(100000);
		ok(g->cap == S3_GET_BUFFER && g->end - g->start <= S3_GET_BUFFER &&
		   g->consumed == 1,
		   "idle reader %d: %zu bytes buffered, buffer %zu", i,
		   g->end - g->start, g->cap);
	}
	/* the rest, checked from byte 1 on */
	{
		static unsigned char chunk[65536];
		uint64_t	pos = 1;
		long		n;

		intact = true;
		most = 0;
		while ((n = tsnap_s3_get_read(g, chunk, sizeof(chunk), &err)) > 0)
		{
			long		j;

			for (j = 0; j < n; j++)
				if (chunk[j] != test_byte(pos + j, 5))
					intact = false;
			pos += n;
			if (g->end - g->start > most)
				most = g->end - g->start;
		}
		got = n < 0 ? -1 : (long long) pos;
	}
	ok(got == (long long) size && intact && most <= S3_GET_BUFFER,
	   "the paused transfer resumes: %lld bytes intact", got);
	tsnap_s3_get_close(g);
	tsnap_s3_delete_object(c, key, &err);
}

static void
missing_and_interrupt(tsnap_s3_client *c)
{
	char		key[512];
	tsnap_s3_error err;
	tsnap_s3_config cfg;
	tsnap_s3_client *ic;
	tsnap_s3_get *g;
	unsigned char *chunk = malloc(65536);
	long		n = 0;
	size_t		got;
	size_t		size = 6 * MiB;

	snprintf(key, sizeof(key), "%smissing", prefix);
	g = tsnap_s3_get_open(c, key, &err);
	ok(g == NULL && tsnap_s3_error_is_not_found(&err) && err.attempts == 1,
	   "open of a missing key: not found, not retried");
	diag("%s", errstr(&err));
	tsnap_s3_get_close(g);

	snprintf(key, sizeof(key), "%sinterrupted", prefix);
	ok(tsnap_s3_put_object(c, key, data, size, NULL, NULL, 0, &err), "put 6 MiB");
	test_config(&cfg);
	cfg.interrupt_cb = interrupt_flag;
	ic = tsnap_s3_client_new(&cfg, &err);
	g = tsnap_s3_get_open(ic, key, &err);
	/* a read returns what has arrived, at least one byte: gather 64 kB */
	got = 0;
	while (g && got < 65536 &&
		   (n = tsnap_s3_get_read(g, chunk + got, 65536 - got, &err)) > 0)
		got += n;
	ok(g != NULL && got == 65536, "open and read 64 kB");
	interrupt_now = 1;
	while (g && (n = tsnap_s3_get_read(g, chunk, 65536, &err)) > 0)
		;
	ok(n < 0 && err.kind == S3_ERR_INTERRUPTED && g->consumed < size,
	   "an interrupt ends the reads before the end (%llu of %zu bytes)",
	   g ? (unsigned long long) g->consumed : 0ULL, size);
	diag("%s", errstr(&err));
	ok(g && tsnap_s3_get_read(g, chunk, 1, &err) < 0 &&
	   err.kind == S3_ERR_INTERRUPTED, "the error sticks");
	tsnap_s3_get_close(g);
	interrupt_now = 0;

	/* closing halfway: no hang, nothing leaks (run under valgrind to see) */
	g = tsnap_s3_get_open(ic, key, &err);
	ok(g != NULL && tsnap_s3_get_read(g, chunk, 100, &err) == 100,
	   "open and read 100 bytes");
	tsnap_s3_get_close(g);
	ok(true, "close halfway returns");
	tsnap_s3_client_free(ic);
	tsnap_s3_delete_object(c, key, &err);
	free(chunk);
}

int
main(void)
{
	tsnap_s3_config cfg;
	tsnap_s3_client *c;
	tsnap_s3_error err;

	test_prefix(prefix, sizeof(prefix), "get");
	test_config(&cfg);
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		bail_out(errstr(&err));
	if (!tsnap_s3_list_objects(c, prefix, NULL, NULL, &err))
	{
		printf("1..0 # skip no S3 endpoint at %s: %s\n", cfg.endpoint, errstr(&err));
		return 0;
	}
	data = malloc(7 * MiB);
	test_fill(data, 7 * MiB, 0, 5);
	round_trips(c);
	slow_reader(c);
	missing_and_interrupt(c);
	tsnap_s3_client_free(c);
	free(data);
	return done_testing();
}
