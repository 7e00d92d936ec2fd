/*-------------------------------------------------------------------------
 *
 * s3_client.c
 *	  The client handle: validated copy of the configuration, the curl
 *	  multi handle that owns the connection cache, the easy handle reused by
 *	  one-at-a-time requests, and the waits (backoff, interrupt checks).
 *
 * tsnap_s3_client_new() copies every string of the configuration, so the
 * caller may free its own afterwards; tsnap_s3_client_free() wipes the
 * secret and frees everything.  A client is used by one thread at a time.
 * Its blocking requests run one at a time on its multi handle, whose
 * connection cache keeps connections alive between requests; each uploader
 * has its own multi handle for its parallel parts.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "s3_int.h"

#define BACKOFF_BASE_MS		100
#define BACKOFF_CAP_MS		5000
#define WAIT_SLICE_MS		100

static bool global_done = false;

/*
 * Initialise libcurl and libxml2 once per process.  Not thread-safe: call
 * it at load time (_PG_init), before any other thread exists.
 */
bool
tsnap_s3_global_init(tsnap_s3_error *err)
{
	CURLcode	rc;

	if (global_done)
		return true;
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "init", NULL,
						   "curl_global_init failed: %s",
						   curl_easy_strerror(rc));
		return false;
	}
	xmlInitParser();
	global_done = true;
	return true;
}

static void
wipe_free(char *s)
{
	if (s)
	{
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void
tsnap_s3_client_free(tsnap_s3_client *c)
{
	if (c == NULL)
		return;
	if (c->easy)
		curl_easy_cleanup(c->easy);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c->endpoint);
	free(c->scheme);
	free(c->host);
	free(c->region);
	free(c->bucket);
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	free(c->ca_file);
	free(c);
}

static bool
empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/*
 * Validate config and build a client.  Returns NULL with err filled
 * (S3_ERR_INVALID) for a bad setting; the message names the setting, never
 * its value when it is a credential.
 */
tsnap_s3_client *
tsnap_s3_client_new(const tsnap_s3_config *cfg, tsnap_s3_error *err)
{
	tsnap_s3_client *c;
	const char *ep;
	const char *authority;
	char		aws[256];
	bool		aws_default;
	uint64_t	seed = 0;

	tsnap_s3_error_clear(err);
	if (!tsnap_s3_global_init(err))
		return NULL;

#define INVALID(...) \
	do { \
		tsnap_s3_error_set(err, S3_ERR_INVALID, "configuration", NULL, \
						   __VA_ARGS__); \
		tsnap_s3_client_free(c); \
		return NULL; \
	} while (0)

	c = calloc(1, sizeof(tsnap_s3_client));
	if (c == NULL)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "configuration", NULL,
						   "out of memory");
		return NULL;
	}
	if (empty(cfg->bucket))
		INVALID("bucket is not set");
	if (strchr(cfg->bucket, '/'))
		INVALID("bucket name \"%s\" contains \"/\"", cfg->bucket);
	if (empty(cfg->access_key_id) || empty(cfg->secret_access_key))
		INVALID("access key id or secret access key is not set");

	c->region = strdup(empty(cfg->region) ? "us-east-1" : cfg->region);
	aws_default = empty(cfg->endpoint);
	if (aws_default)
	{
		snprintf(aws, sizeof(aws), "https://s3.%s.amazonaws.com",
				 c->region ? c->region : "");
		ep = aws;
	}
	else
		ep = cfg->endpoint;

	if (strncmp(ep, "https://", 8) == 0)
	{
		c->scheme = strdup("https");
		authority = ep + 8;
	}
	else if (strncmp(ep, "http://", 7) == 0)
	{
		c->scheme = strdup("http");
		authority = ep + 7;
	}
	else
		INVALID("endpoint must start with http:// or https://");

	/* Host[:port] only: the endpoint carries no path. */
	{
		size_t		alen = strcspn(authority, "/?#");
		const char *rest = authority + alen;

		if (alen == 0)
			INVALID("endpoint has no host");
		if (strspn(rest, "/") != strlen(rest))
			INVALID("endpoint must not contain a path");
		if (memchr(authority, '@', alen))
			INVALID("endpoint must not contain credentials");

		if (empty(cfg->url_style))
			c->virtual_style = aws_default;
		else if (strcmp(cfg->url_style, "path") == 0)
			c->virtual_style = false;
		else if (strcmp(cfg->url_style, "virtual") == 0)
			c->virtual_style = true;
		else
			INVALID("url_style must be \"path\" or \"virtual\"");

		c->host = malloc(strlen(cfg->bucket) + alen + 2);
		if (c->host)
		{
			if (c->virtual_style)
				sprintf(c->host, "%s.%.*s", cfg->bucket, (int) alen,
						authority);
			else
				sprintf(c->host, "%.*s", (int) alen, authority);
		}
	}

	c->bucket = strdup(cfg->bucket);
	c->access_key_id = strdup(cfg->access_key_id);
	c->secret_access_key = strdup(cfg->secret_access_key);
	c->session_token = empty(cfg->session_token) ?
		NULL : strdup(cfg->session_token);
	c->ca_file = empty(cfg->ca_file) ? NULL : strdup(cfg->ca_file);
	if (c->region == NULL || c->scheme == NULL || c->host == NULL ||
		c->bucket == NULL || c->access_key_id == NULL ||
		c->secret_access_key == NULL ||
		(!empty(cfg->session_token) && c->session_token == NULL) ||
		(!empty(cfg->ca_file) && c->ca_file == NULL))
		INVALID("out of memory");
	c->endpoint = malloc(strlen(c->scheme) + strlen(c->host) + 4);
	if (c->endpoint == NULL)
		INVALID("out of memory");
	sprintf(c->endpoint, "%s://%s", c->scheme, c->host);

	c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ?
		cfg->connect_timeout_ms : S3_DEFAULT_CONNECT_TIMEOUT_MS;
	c->request_timeout_ms = cfg->request_timeout_ms > 0 ?
		cfg->request_timeout_ms : 0;
	c->stall_timeout_ms = cfg->stall_timeout_ms == 0 ?
		S3_DEFAULT_STALL_TIMEOUT_MS :
		(cfg->stall_timeout_ms < 0 ? 0 : cfg->stall_timeout_ms);
	if (cfg->max_attempts < 0 || cfg->max_attempts > 100)
		INVALID("max_attempts must be between 1 and 100");
	c->max_attempts = cfg->max_attempts ?
		cfg->max_attempts : S3_DEFAULT_MAX_ATTEMPTS;
	c->part_size = cfg->part_size ? cfg->part_size : S3_DEFAULT_PART_SIZE;
	if (c->part_size < S3_MIN_PART_SIZE || c->part_size > S3_MAX_PART_SIZE)
		INVALID("part_size must be between 5 MiB and 5 GiB");
	if (cfg->max_parts_in_flight < 0 || cfg->max_parts_in_flight > 64)
		INVALID("max_parts_in_flight must be between 1 and 64");
	c->max_parts_in_flight = cfg->max_parts_in_flight ?
		cfg->max_parts_in_flight : S3_DEFAULT_PARTS_IN_FLIGHT;
	c->max_object_size = cfg->max_object_size &&
		cfg->max_object_size < S3_MAX_OBJECT_SIZE ?
		cfg->max_object_size : S3_MAX_OBJECT_SIZE;
	c->interrupt_cb = cfg->interrupt_cb;
	c->interrupt_arg = cfg->interrupt_arg;

	c->multi = curl_multi_init();
	c->easy = curl_easy_init();
	if (c->multi == NULL || c->easy == NULL)
		INVALID("could not create curl handles");
	/* A few idle connections suffice: parts in flight plus one. */
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
					  (long) c->max_parts_in_flight + 2);

	if (RAND_bytes((unsigned char *) &seed, sizeof(seed)) != 1 || seed == 0)
		seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
	c->rng = seed ? seed : 88172645463325252ull;
#undef INVALID
	return c;
}

/* True if the caller asked us to stop. */
bool
tsnap_s3_interrupted(tsnap_s3_client *c)
{
	return c->interrupt_cb != NULL && c->interrupt_cb(c->interrupt_arg) != 0;
}

/* True if the caller's process is going away: even cleanup must end soon. */
bool
tsnap_s3_terminating(tsnap_s3_client *c)
{
	return c->interrupt_cb != NULL &&
		c->interrupt_cb(c->interrupt_arg) == S3_INTERRUPT_TERMINATE;
}

/*
 * Full-jitter exponential backoff: a uniform delay in
 * [0, min(cap, base * 2^(attempt-1))], attempt counting from 1.
 */
long
tsnap_s3_backoff_ms(tsnap_s3_client *c, int attempt)
{
	long		ceiling = BACKOFF_BASE_MS;
	int			i;

	for (i = 1; i < attempt && ceiling < BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > BACKOFF_CAP_MS)
		ceiling = BACKOFF_CAP_MS;
	/* xorshift64: good enough for jitter, and owned by this client */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (long) (c->rng % (uint64_t) (ceiling + 1));
}

/*
 * Sleep ms milliseconds in slices of at most 100 ms, polling the interrupt
 * callback between slices.  Returns false if interrupted.
 */
bool
tsnap_s3_sleep_ms(tsnap_s3_client *c, long ms, bool interruptible)
{
	int64_t		end = tsnap_s3_now_ms() + ms;

	for (;;)
	{
		int64_t		left = end - tsnap_s3_now_ms();
		struct timespec ts;

		if (interruptible && tsnap_s3_interrupted(c))
			return false;
		if (left <= 0)
			return true;
		if (left > WAIT_SLICE_MS)
			left = WAIT_SLICE_MS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long) left * 1000000;
		nanosleep(&ts, NULL);
	}
}
