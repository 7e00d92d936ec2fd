/*-------------------------------------------------------------------------
 *
 * testutil.h
 *	  Helpers shared by the S3 client's integration tests and tools: the
 *	  configuration from the environment (S3_ENDPOINT, S3_REGION, S3_BUCKET,
 *	  S3_ACCESS, S3_SECRET), a unique per-run key prefix, deterministic
 *	  test data, and sinks for GetObject.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_TESTUTIL_H
#define TSNAP_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/s3/s3.h"

static inline const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return (v && *v) ? v : dflt;
}

static inline void
test_config(tsnap_s3_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->endpoint = env_or("S3_ENDPOINT", "http://127.0.0.1:7480");
	cfg->region = env_or("S3_REGION", "us-east-1");
	cfg->bucket = env_or("S3_BUCKET", "tsnap");
	cfg->access_key_id = env_or("S3_ACCESS", "TSNAPACCESSKEY");
	cfg->secret_access_key = env_or("S3_SECRET", "TSNAPSECRETKEY0123456789");
	cfg->url_style = "path";
	cfg->part_size = S3_MIN_PART_SIZE;
	cfg->stall_timeout_ms = 10000;
}

/* "tsnap-test/<prog>-<time>-<pid>/": unique per run. */
static inline void
test_prefix(char *buf, size_t len, const char *prog)
{
	snprintf(buf, len, "tsnap-test/%s-%ld-%d/", prog, (long) time(NULL),
			 (int) getpid());
}

/* Byte i of a deterministic, non-repeating-looking test stream. */
static inline unsigned char
test_byte(uint64_t i, uint32_t seed)
{
	uint64_t	x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ seed;

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return (unsigned char) (x >> (8 * (i % 8)));
}

static inline void
test_fill(unsigned char *buf, size_t len, uint64_t offset, uint32_t seed)
{
	size_t		i;

	for (i = 0; i < len; i++)
		buf[i] = test_byte(offset + i, seed);
}

/* Collect a GetObject into memory (tests only; sizes are small). */
typedef struct mem_sink
{
	unsigned char *data;
	size_t		len;
	size_t		cap;
} mem_sink;

static inline int
mem_sink_cb(const char *data, size_t len, void *arg)
{
	mem_sink   *s = arg;

	if (s->len + len > s->cap)
	{
		size_t		cap = s->cap ? s->cap * 2 : 65536;
		unsigned char *p;

		while (cap < s->len + len)
			cap *= 2;
		p = realloc(s->data, cap);
		if (p == NULL)
			return 1;
		s->data = p;
		s->cap = cap;
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
	return 0;
}

/* Compare a GetObject stream with the generated data, without storing it. */
typedef struct check_sink
{
	uint64_t	pos;
	uint32_t	seed;
	uint64_t	first_bad;		/* UINT64_MAX = none */
} check_sink;

static inline int
check_sink_cb(const char *data, size_t len, void *arg)
{
	check_sink *s = arg;
	size_t		i;

	for (i = 0; i < len; i++)
		if ((unsigned char) data[i] != test_byte(s->pos + i, s->seed) &&
			s->first_bad == UINT64_MAX)
			s->first_bad = s->pos + i;
	s->pos += len;
	return 0;
}

static inline int64_t
tsnap_s3_now_ms_for_test(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *
errstr(const tsnap_s3_error *err)
{
	static char buf[2048];

	tsnap_s3_error_format(err, buf, sizeof(buf));
	return buf;
}

#endif							/* TSNAP_TESTUTIL_H */
