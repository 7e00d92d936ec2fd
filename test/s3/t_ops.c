/*-------------------------------------------------------------------------
 *
 * t_ops.c
 *	  Integration test of the single S3 operations against a live endpoint
 *	  (default: the local Ceph RGW): awkward keys round-trip through Put,
 *	  Head, Get, List and Delete; a wrong secret fails with a clear error
 *	  that does not leak it; ListObjectsV2 pages past 1,000 keys, and page
 *	  by page with a small max-keys (keys, sizes, LastModified); presigned
 *	  URLs work; an interrupt stops a transfer.
 *
 * Every object lives under a unique per-run prefix and is deleted at the
 * end.
 *
 *-------------------------------------------------------------------------
 */
#include <sys/wait.h>

#include "../../src/s3/s3_int.h"
#include "testutil.h"
#include "tap.h"

#include <curl/curl.h>

#define NLIST 1050
#define NPROC 4

static char prefix[256];
static tsnap_s3_client *main_client;	/* freed in forked children, for valgrind */

typedef struct list_check
{
	int			count;
	int			found;
	const char *want;
	char		last[1100];
	bool		sorted;
} list_check;

static int
list_cb(const tsnap_s3_object_info *o, void *arg)
{
	list_check *l = arg;

	if (l->count > 0 && strcmp(l->last, o->key) >= 0)
		l->sorted = false;
	tsnap_s3_strlcpy(l->last, o->key, sizeof(l->last));
	l->count++;
	if (l->want && strcmp(o->key, l->want) == 0)
		l->found++;
	return 0;
}

static int
stop_after_3(const tsnap_s3_object_info *o, void *arg)
{
	(void) o;
	return ++*(int *) arg >= 3;
}

static void
test_keys(tsnap_s3_client *c)
{
	const char *names[] = {
		"plain.csv",
		"with space",
		"plus+sign",
		"percent%20literal",
		"question?mark",
		"hash#mark",
		"quotes\"and'apostrophe",
		"unicode-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
		"dots/../up",
		"./dot-slash",
		"double//slash",
		"amp&eq=semi;colon",
		"tilde~star*paren()",
	};
	size_t		i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
	{
		char		key[1100];
		char		body[64];
		char		etag[128],
					hetag[128];
		uint64_t	size = 0;
		mem_sink	sink = {0};
		list_check	lc = {0};
		tsnap_s3_error	err;
		bool		ok_all;

		snprintf(key, sizeof(key), "%skeys/%s", prefix, names[i]);
		snprintf(body, sizeof(body), "content of key %zu", i);
		ok_all = tsnap_s3_put_object(c, key, body, strlen(body), "text/plain", etag, sizeof(etag), &err);
		if (!ok_all)
			diag("%s", errstr(&err));
		ok_all = ok_all && tsnap_s3_head_object(c, key, &size, hetag, sizeof(hetag), &err) &&
			size == strlen(body) && strcmp(etag, hetag) == 0;
		ok_all = ok_all && tsnap_s3_get_object(c, key, mem_sink_cb, &sink, NULL, &err) &&
			sink.len == strlen(body) && memcmp(sink.data, body, sink.len) == 0;
		lc.want = key;
		lc.sorted = true;
		ok_all = ok_all && tsnap_s3_list_objects(c, key, list_cb, &lc, &err) && lc.found == 1;
		ok_all = ok_all && tsnap_s3_delete_object(c, key, &err);
		ok_all = ok_all && !tsnap_s3_head_object(c, key, NULL, NULL, 0, &err) && tsnap_s3_error_is_not_found(&err);
		if (!ok(ok_all, "key \"%s\": put, head, get, list, delete round-trip", names[i]))
			diag("%s", errstr(&err));
		free(sink.data);
	}
}

static void
test_wrong_secret(void)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *bad;
	tsnap_s3_error	err;
	char		line[2048];
	const char *wrong = "WRONGsecretWRONGsecret00";

	test_config(&cfg);
	cfg.secret_access_key = wrong;
	bad = tsnap_s3_client_new(&cfg, &err);
	ok(bad != NULL, "client with a wrong secret");
	ok(!tsnap_s3_put_object(bad, "tsnap-test/never", "x", 1, NULL, NULL, 0, &err),
	   "PutObject with a wrong secret fails");
	tsnap_s3_error_format(&err, line, sizeof(line));
	diag("%s", line);
	ok(err.kind == S3_ERR_S3 && err.http_status == 403 &&
	   strcmp(err.code, "SignatureDoesNotMatch") == 0, "403 SignatureDoesNotMatch");
	ok(err.attempts == 1, "a 403 is not retried");
	ok(strncmp(line, "S3 PutObject of \"tsnap-test/never\" failed: HTTP 403 SignatureDoesNotMatch", 72) == 0,
	   "message names operation, key, status and code");
	ok(strstr(line, wrong) == NULL && strstr(line, cfg.access_key_id) == NULL &&
	   strstr(line, "Signature=") == NULL, "message holds no secret, key id or signature");
	tsnap_s3_client_free(bad);
}

/* Child process: put (or delete) every NPROC-th key from `first`. */
static int
list_worker(int first, bool del)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_error	err;
	int			i;

	test_config(&cfg);
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		return 1;
	for (i = first; i < NLIST; i += NPROC)
	{
		char		key[512];

		snprintf(key, sizeof(key), "%slist/k%05d", prefix, i);
		if (!(del ? tsnap_s3_delete_object(c, key, &err) : tsnap_s3_put_object(c, key, "x", 1, NULL, NULL, 0, &err)))
		{
			fprintf(stderr, "%s\n", errstr(&err));
			tsnap_s3_client_free(c);
			return 1;
		}
	}
	tsnap_s3_client_free(c);
	return 0;
}

static bool
run_workers(bool del)
{
	pid_t		pids[NPROC];
	int			i;
	bool		all_ok = true;

	fflush(stdout);
	for (i = 0; i < NPROC; i++)
	{
		pids[i] = fork();
		if (pids[i] == 0)
		{
			tsnap_s3_client_free(main_client);
			_exit(list_worker(i, del));
		}
	}
	for (i = 0; i < NPROC; i++)
	{
		int			st;

		if (pids[i] < 0 || waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			all_ok = false;
	}
	return all_ok;
}

static void
test_listing(tsnap_s3_client *c)
{
	char		lp[512];
	list_check	lc = {0};
	tsnap_s3_error	err;
	int			n = 0;
	int64_t		t0 = tsnap_s3_now_ms_for_test();

	snprintf(lp, sizeof(lp), "%slist/", prefix);
	ok(run_workers(false), "created %d objects (%d processes)", NLIST, NPROC);
	diag("created in %.1f s", (tsnap_s3_now_ms_for_test() - t0) / 1000.0);
	lc.sorted = true;
	ok(tsnap_s3_list_objects(c, lp, list_cb, &lc, &err), "ListObjectsV2 over %d keys", NLIST);
	ok(lc.count == NLIST, "pagination returned every key (%d)", lc.count);
	ok(lc.sorted, "keys in order, no duplicates across pages");
	ok(!tsnap_s3_list_objects(c, lp, stop_after_3, &n, &err) && err.kind == S3_ERR_CALLBACK && n == 3,
	   "callback stops the listing");
	ok(run_workers(true), "deleted them");
	memset(&lc, 0, sizeof(lc));
	ok(tsnap_s3_list_objects(c, lp, list_cb, &lc, &err) && lc.count == 0, "prefix is empty again");
}

/* What one page of a page-by-page listing delivered. */
typedef struct page_check
{
	int			count;			/* entries on this page */
	char		keys[4][512];
	uint64_t	sizes[4];
	int64_t		mtimes[4];
} page_check;

static int
page_cb(const tsnap_s3_object_info *o, void *arg)
{
	page_check *p = arg;

	if (p->count < 4)
	{
		tsnap_s3_strlcpy(p->keys[p->count], o->key, sizeof(p->keys[0]));
		p->sizes[p->count] = o->size;
		p->mtimes[p->count] = o->last_modified;
	}
	p->count++;
	return 0;
}

/*
 * tsnap_s3_list_objects_page: two objects under a prefix and one beside
 * it (its key shares the prefix's text up to the slash), listed one key
 * per page, so every page but the last continues from a token.
 */
static void
test_list_pages(tsnap_s3_client *c)
{
	char		lp[300];
	char		inside[2][512];
	char		outside[512];
	const char *bodies[2] = {"abc", "hello"};
	tsnap_s3_error	err;
	char	   *token = NULL;
	int			pages = 0;
	int			seen = 0;
	bool		pages_ok = true;
	bool		keys_ok = true;
	bool		time_ok = true;
	bool		one_per_page = true;
	time_t		now = time(NULL);
	int			i;
	page_check	p;

	snprintf(lp, sizeof(lp), "%spages/", prefix);
	snprintf(inside[0], sizeof(inside[0]), "%sa", lp);
	snprintf(inside[1], sizeof(inside[1]), "%sb b", lp);
	snprintf(outside, sizeof(outside), "%spages.outside", prefix);
	for (i = 0; i < 2; i++)
		ok(tsnap_s3_put_object(c, inside[i], bodies[i], strlen(bodies[i]), NULL, NULL, 0, &err),
		   "put %s", inside[i] + strlen(prefix));
	ok(tsnap_s3_put_object(c, outside, "x", 1, NULL, NULL, 0, &err), "put an object outside the prefix");

	do
	{
		char	   *next = NULL;

		memset(&p, 0, sizeof(p));
		if (!tsnap_s3_list_objects_page(c, lp, 1, token, &next, page_cb, &p, &err))
		{
			diag("%s", errstr(&err));
			pages_ok = false;
			break;
		}
		free(token);
		token = next;
		pages++;
		if (p.count > 1)
			one_per_page = false;
		for (i = 0; i < p.count && i < 4; i++, seen++)
		{
			if (seen >= 2 || strcmp(p.keys[i], inside[seen]) != 0 ||
				p.sizes[i] != strlen(bodies[seen]))
				keys_ok = false;
			if (p.mtimes[i] == S3_TIME_UNKNOWN ||
				p.mtimes[i] < (int64_t) now - 60 || p.mtimes[i] > (int64_t) now + 60)
			{
				diag("LastModified %lld, now %lld", (long long) p.mtimes[i], (long long) now);
				time_ok = false;
			}
		}
	} while (token != NULL && pages < 10);
	free(token);
	ok(pages_ok, "ListObjectsV2 page by page with max-keys 1");
	ok(pages >= 2, "the listing continued from a token (%d pages)", pages);
	ok(one_per_page, "no page held more than max-keys entries");
	ok(keys_ok && seen == 2, "exactly the two keys under the prefix, in order, with their sizes");
	ok(time_ok, "LastModified within a minute of now");

	memset(&p, 0, sizeof(p));
	ok(tsnap_s3_list_objects_page(c, lp, 0, NULL, &token, page_cb, &p, &err) &&
	   p.count == 2 && token == NULL, "one page of S3's default size holds both, and ends");
	free(token);
	token = NULL;
	ok(!tsnap_s3_list_objects_page(c, lp, S3_LIST_MAX_KEYS + 1, NULL, &token, page_cb, &p, &err) &&
	   err.kind == S3_ERR_INVALID && token == NULL, "max-keys above 1000 is refused");
	{
		int			n = 2;			/* stop_after_3 stops at its first call */

		ok(!tsnap_s3_list_objects_page(c, lp, 0, NULL, &token, stop_after_3, &n, &err) &&
		   err.kind == S3_ERR_CALLBACK && n == 3 && token == NULL,
		   "the callback stops a page");
	}
	for (i = 0; i < 2; i++)
		tsnap_s3_delete_object(c, inside[i], &err);
	tsnap_s3_delete_object(c, outside, &err);
}

static size_t
curl_mem(char *data, size_t size, size_t n, void *arg)
{
	mem_sink_cb(data, size * n, arg);
	return size * n;
}

static void
test_presign(tsnap_s3_client *c)
{
	char		key[512];
	char	   *url;
	tsnap_s3_error	err;
	CURL	   *h;
	mem_sink	sink = {0};
	long		status = 0;

	snprintf(key, sizeof(key), "%spresigned file+%%.txt", prefix);
	ok(tsnap_s3_put_object(c, key, "presigned!", 10, NULL, NULL, 0, &err), "put for presign");
	url = tsnap_s3_presign_url(c, "GET", key, 300, &err);
	ok(url != NULL, "presigned URL built");
	h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_mem);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	ok(status == 200 && sink.len == 10 && memcmp(sink.data, "presigned!", 10) == 0,
	   "presigned GET works without credentials (HTTP %ld)", status);
	curl_easy_cleanup(h);
	free(url);
	free(sink.data);
	tsnap_s3_delete_object(c, key, &err);
}

static int64_t interrupt_at;

/* The interrupt "arrives" at interrupt_at (monotonic ms). */
static int
interrupt_later(void *arg)
{
	(void) arg;
	return tsnap_s3_now_ms_for_test() >= interrupt_at;
}

static int
slow_sink(const char *data, size_t len, void *arg)
{
	(void) data;
	(void) len;
	(void) arg;
	usleep(20000);
	return 0;
}

static void
test_errors(tsnap_s3_client *c)
{
	char		key[512];
	tsnap_s3_error	err;
	tsnap_s3_config	cfg;
	tsnap_s3_client  *ic;
	unsigned char *big;
	size_t		bigsize = 8 * 1024 * 1024;
	int64_t		t0;

	snprintf(key, sizeof(key), "%smissing", prefix);
	ok(!tsnap_s3_get_object(c, key, slow_sink, NULL, NULL, &err) &&
	   err.http_status == 404 && strcmp(err.code, "NoSuchKey") == 0 && err.attempts == 1,
	   "GetObject of a missing key: 404 NoSuchKey, not retried");
	ok(tsnap_s3_delete_object(c, key, &err), "DeleteObject of a missing key succeeds");

	/* An interrupt stops a slow download within a few slices. */
	snprintf(key, sizeof(key), "%sbig", prefix);
	big = malloc(bigsize);
	test_fill(big, bigsize, 0, 7);
	ok(tsnap_s3_put_object(c, key, big, bigsize, NULL, NULL, 0, &err), "put 8 MiB");
	test_config(&cfg);
	cfg.interrupt_cb = interrupt_later;
	ic = tsnap_s3_client_new(&cfg, &err);
	t0 = tsnap_s3_now_ms_for_test();
	interrupt_at = t0 + 300;
	ok(!tsnap_s3_get_object(ic, key, slow_sink, NULL, NULL, &err) && err.kind == S3_ERR_INTERRUPTED,
	   "interrupt hook stops a slow GetObject");
	diag("%s", errstr(&err));
	ok(tsnap_s3_now_ms_for_test() - interrupt_at < 250, "within %lld ms of the interrupt",
	   (long long) (tsnap_s3_now_ms_for_test() - interrupt_at));
	tsnap_s3_client_free(ic);
	tsnap_s3_delete_object(c, key, &err);
	free(big);
}

int
main(void)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_error	err;

	test_prefix(prefix, sizeof(prefix), "ops");
	test_config(&cfg);
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		bail_out(errstr(&err));
	main_client = c;
	if (!tsnap_s3_list_objects(c, prefix, NULL, NULL, &err))
	{
		printf("1..0 # skip no S3 endpoint at %s: %s\n", cfg.endpoint, errstr(&err));
		return 0;
	}
	diag("endpoint %s bucket %s prefix %s", cfg.endpoint, cfg.bucket, prefix);
	test_keys(c);
	test_wrong_secret();
	test_presign(c);
	test_errors(c);
	test_list_pages(c);
	test_listing(c);
	tsnap_s3_client_free(c);
	return done_testing();
}
