/*-------------------------------------------------------------------------
 *
 * t_faults.c
 *	  Fault-injection test of the S3 client: requests go through
 *	  faultproxy.pl, which fails some of them (500, 503 SlowDown, 200 with
 *	  an <Error> body, connection resets, stalls).  With faults on 20% of
 *	  requests, single and multipart uploads succeed through retries and a
 *	  download resumes after a reset.  The pull-style GetObject (s3_get.c)
 *	  is retried until its reader has taken a byte and never after, and a
 *	  stall or an interrupt ends it.  With persistent faults uploads fail
 *	  cleanly: a clear error, no object at the key and no multipart upload
 *	  left open (both checked directly against the endpoint).
 *
 * Each proxy has a bounded lifetime and is killed (its whole process
 * group) when the test exits.
 *
 *-------------------------------------------------------------------------
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../src/s3/s3_int.h"
#include "testutil.h"
#include "tap.h"

#define MiB ((size_t) 1024 * 1024)
#define MAX_PROXIES 16

static pid_t proxies[MAX_PROXIES];
static int	nproxies;
static char prefix[256];
static char proxy_endpoint[64];
static unsigned char *data;
static tsnap_s3_client *direct;		/* straight to the endpoint, for checks */

static void
kill_proxies(void)
{
	int			i;

	for (i = 0; i < nproxies; i++)
		if (proxies[i] > 0)
		{
			kill(-proxies[i], SIGTERM);
			waitpid(proxies[i], NULL, 0);
			proxies[i] = 0;
		}
}

static void
on_signal(int sig)
{
	kill_proxies();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Start faultproxy.pl with the given options (NULL-terminated) in front of
 * S3_ENDPOINT; sets proxy_endpoint.  Returns false if it did not come up.
 */
static bool
start_proxy(const char *first,...)
{
	const char *argv[40];
	int			argc = 0;
	char		portfile[256];
	char		upstream[128];
	const char *ep = env_or("S3_ENDPOINT", "http://127.0.0.1:7480");
	va_list		ap;
	pid_t		pid;
	int			i;

	kill_proxies();
	nproxies = 0;
	snprintf(upstream, sizeof(upstream), "%s", strncmp(ep, "http://", 7) == 0 ? ep + 7 : ep);
	snprintf(portfile, sizeof(portfile), "/tmp/tsnap-faultproxy-%d.port", (int) getpid());
	unlink(portfile);
	argv[argc++] = "perl";
	argv[argc++] = "faultproxy.pl";
	argv[argc++] = "--upstream";
	argv[argc++] = upstream;
	argv[argc++] = "--port-file";
	argv[argc++] = portfile;
	argv[argc++] = "--lifetime";
	argv[argc++] = "300";
	argv[argc++] = "--log";
	argv[argc++] = "faultproxy.log";
	va_start(ap, first);
	for (const char *a = first; a && argc < 38; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		execvp("perl", (char *const *) argv);
		_exit(127);
	}
	proxies[nproxies++] = pid;
	for (i = 0; i < 100; i++)
	{
		FILE	   *f = fopen(portfile, "r");
		int			port = 0;

		if (f)
		{
			if (fscanf(f, "%d", &port) == 1 && port > 0)
			{
				fclose(f);
				unlink(portfile);
				snprintf(proxy_endpoint, sizeof(proxy_endpoint), "http://127.0.0.1:%d", port);
				return true;
			}
			fclose(f);
		}
		usleep(50000);
	}
	return false;
}

static tsnap_s3_client *
proxied_client(int max_attempts, long stall_ms, int inflight)
{
	tsnap_s3_config	cfg;
	tsnap_s3_error	err;
	tsnap_s3_client  *c;

	test_config(&cfg);
	cfg.endpoint = proxy_endpoint;
	cfg.max_attempts = max_attempts;
	cfg.stall_timeout_ms = stall_ms;
	cfg.max_parts_in_flight = inflight;
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		bail_out(errstr(&err));
	return c;
}

static int
count_upload(const tsnap_s3_upload_info *u, void *arg)
{
	(void) u;
	(*(int *) arg)++;
	return 0;
}

/* No object and no open upload at key, checked against the endpoint. */
static bool
nothing_left(const char *key)
{
	tsnap_s3_error	err;
	int			n = 0;
	bool		absent = !tsnap_s3_head_object(direct, key, NULL, NULL, 0, &err) &&
		tsnap_s3_error_is_not_found(&err);

	if (!tsnap_s3_list_multipart_uploads(direct, key, count_upload, &n, &err))
		return false;
	if (!absent || n != 0)
		diag("left behind at %s: object %s, %d open uploads", key, absent ? "absent" : "present", n);
	return absent && n == 0;
}

static bool
upload(tsnap_s3_client *c, const char *key, size_t size, tsnap_s3_upload_result *r, tsnap_s3_error *err)
{
	tsnap_s3_upload  *u = tsnap_s3_upload_begin(c, key, NULL, err);
	size_t		off = 0;
	bool		okay = u != NULL;

	while (okay && off < size)
	{
		size_t		n = size - off < 1000003 ? size - off : 1000003;

		okay = tsnap_s3_upload_write(u, data + off, n, err);
		off += n;
	}
	okay = okay && tsnap_s3_upload_finish(u, r, err);
	tsnap_s3_upload_free(u);
	return okay;
}

static bool
same_content(const char *key, size_t size)
{
	tsnap_s3_error	err;
	check_sink	cs = {0, 3, UINT64_MAX};

	return tsnap_s3_get_object(direct, key, check_sink_cb, &cs, NULL, &err) &&
		cs.pos == size && cs.first_bad == UINT64_MAX;
}

static void
flaky(void)
{
	tsnap_s3_client  *c;
	int			i;

	if (!ok(start_proxy("--rate", "0.2", "--faults", "500,503,reset,stall,200error",
						"--stall", "30", "--seed", "42", NULL),
			"proxy with faults on 20%% of requests"))
		return;
	c = proxied_client(10, 1500, 3);
	for (i = 0; i < 4; i++)
	{
		char		key[512];
		tsnap_s3_upload_result r;
		tsnap_s3_error	err;
		size_t		size = i % 2 ? 5 * MiB * 9 / 2 : (size_t) 100000 + i;

		snprintf(key, sizeof(key), "%sflaky/%d", prefix, i);
		if (!ok(upload(c, key, size, &r, &err), "20%% faults: %s upload %d succeeds",
				i % 2 ? "multipart" : "single", i))
			diag("%s", errstr(&err));
		ok(same_content(key, size) && r.parts == (i % 2 ? 5 : 0),
		   "  content intact (%d parts)", r.parts);
		tsnap_s3_delete_object(direct, key, &err);
	}
	tsnap_s3_client_free(c);
}

static void
resumed_download(void)
{
	char		key[512];
	tsnap_s3_error	err;
	tsnap_s3_client  *c;
	check_sink	cs = {0, 3, UINT64_MAX};
	size_t		size = 12 * MiB;

	snprintf(key, sizeof(key), "%sresume", prefix);
	ok(tsnap_s3_put_object(direct, key, data, size, NULL, NULL, 0, &err), "put 12 MiB for the download test");
	if (!start_proxy("--nth", "1", "--faults", "midreset", NULL))
		return;
	c = proxied_client(3, 5000, 1);
	ok(tsnap_s3_get_object(c, key, check_sink_cb, &cs, NULL, &err) && cs.pos == size &&
	   cs.first_bad == UINT64_MAX, "GetObject reset halfway resumes with Range, bytes intact");
	if (err.kind != S3_OK)
		diag("%s", errstr(&err));
	tsnap_s3_client_free(c);
	tsnap_s3_delete_object(direct, key, &err);
}

static int	interrupt_now = 0;

static int
interrupt_flag(void *arg)
{
	(void) arg;
	return interrupt_now ? S3_INTERRUPT_CANCEL : 0;
}

/*
 * Read a pull stream to its end or its first error; returns the bytes
 * read (or -1) and whether they match test data seed 3.
 */
static long long
stream_all(tsnap_s3_get *g, bool *intact, tsnap_s3_error *err)
{
	static unsigned char chunk[65536];
	uint64_t	pos = 0;
	long		n;

	*intact = true;
	while ((n = tsnap_s3_get_read(g, chunk, sizeof(chunk), err)) > 0)
	{
		long		j;

		for (j = 0; j < n; j++)
			if (chunk[j] != test_byte(pos + j, 3))
				*intact = false;
		pos += n;
	}
	return n < 0 ? -1 : (long long) pos;
}

/*
 * The pull-style GetObject (s3_get.c): retried until the caller has read a
 * byte, never after; a stall is cut by the stall timeout; an interrupt
 * stops an open that waits on a stalled server.
 */
static void
pull_stream(void)
{
	char		key[512];
	tsnap_s3_error err;
	tsnap_s3_client *c;
	tsnap_s3_get *g;
	size_t		size = 12 * MiB;
	bool		intact;
	long long	got;
	char		line[2048];

	snprintf(key, sizeof(key), "%spull", prefix);
	ok(tsnap_s3_put_object(direct, key, data, size, NULL, NULL, 0, &err),
	   "put 12 MiB for the pull stream");

	/* a 503 and a reset before the first byte are retried */
	if (ok(start_proxy("--nth", "1,2", "--faults", "503,reset", NULL),
		   "proxy failing the first two requests"))
	{
		c = proxied_client(3, 5000, 1);
		g = tsnap_s3_get_open(c, key, &err);
		if (!ok(g != NULL, "pull stream: open succeeds on the third attempt"))
			diag("%s", errstr(&err));
		got = g ? stream_all(g, &intact, &err) : -1;
		ok(got == (long long) size && intact && g->attempt == 3,
		   "  all %lld bytes intact after %d attempts", got, g ? g->attempt : 0);
		tsnap_s3_get_close(g);
		tsnap_s3_client_free(c);
	}

	/* a reset after the reader took bytes is final */
	if (ok(start_proxy("--nth", "1", "--faults", "midreset", NULL),
		   "proxy resetting the reply halfway"))
	{
		c = proxied_client(3, 5000, 1);
		g = tsnap_s3_get_open(c, key, &err);
		got = g ? stream_all(g, &intact, &err) : -2;
		tsnap_s3_error_format(&err, line, sizeof(line));
		diag("%s", line);
		ok(got == -1 && g->consumed > 0 && g->consumed < size && intact &&
		   err.kind == S3_ERR_CURL && strstr(line, "not retried") != NULL &&
		   g->attempt == 1,
		   "pull stream: a reset after %llu bytes read fails, not retried",
		   g ? (unsigned long long) g->consumed : 0ULL);
		tsnap_s3_get_close(g);
		tsnap_s3_client_free(c);
	}

	/* a server that never answers: cut by the stall timeout, then retried */
	if (ok(start_proxy("--rate", "1", "--faults", "stall", "--stall", "20", NULL),
		   "proxy stalling every request"))
	{
		c = proxied_client(2, 1000, 1);
		g = tsnap_s3_get_open(c, key, &err);
		tsnap_s3_error_format(&err, line, sizeof(line));
		diag("%s", line);
		ok(g == NULL && err.kind == S3_ERR_CURL && err.attempts == 2 &&
		   strstr(line, "no data moved for 1000 ms") != NULL,
		   "pull stream: a stalled open fails after 2 attempts");
		tsnap_s3_client_free(c);

		/* and an interrupt ends the wait; the stall timeout is off here */
		{
			tsnap_s3_config cfg;

			test_config(&cfg);
			cfg.endpoint = proxy_endpoint;
			cfg.stall_timeout_ms = -1;
			cfg.interrupt_cb = interrupt_flag;
			c = tsnap_s3_client_new(&cfg, &err);
		}
		interrupt_now = 1;
		g = tsnap_s3_get_open(c, key, &err);
		ok(g == NULL && err.kind == S3_ERR_INTERRUPTED,
		   "pull stream: an interrupt ends an open waiting on a stalled server");
		interrupt_now = 0;
		tsnap_s3_client_free(c);
	}
	kill_proxies();
	tsnap_s3_delete_object(direct, key, &err);
}

/* One persistent-fault scenario: the upload must fail and leave nothing. */
static void
persistent(const char *label, const char *faults, const char *methods,
		   const char *match, size_t size, tsnap_s3_error_kind want_kind,
		   const char *want_text)
{
	char		key[512];
	tsnap_s3_upload_result r;
	tsnap_s3_error	err;
	tsnap_s3_client  *c;
	char		line[2048];
	int64_t		t0;
	bool		started;

	snprintf(key, sizeof(key), "%spersistent/%s", prefix, label);
	if (match)
		started = start_proxy("--rate", "1", "--faults", faults, "--methods", methods,
							  "--match", match, "--stall", "20", NULL);
	else
		started = start_proxy("--rate", "1", "--faults", faults, "--methods", methods,
							  "--stall", "20", NULL);
	if (!ok(started, "%s: proxy up", label))
		return;
	c = proxied_client(3, 1000, 2);
	t0 = tsnap_s3_now_ms_for_test();
	ok(!upload(c, key, size, &r, &err), "%s: upload fails", label);
	tsnap_s3_error_format(&err, line, sizeof(line));
	diag("%s (%.1f s)", line, (tsnap_s3_now_ms_for_test() - t0) / 1000.0);
	ok(err.kind == want_kind && strstr(line, want_text) != NULL,
	   "%s: error says \"%s\"", label, want_text);
	ok(nothing_left(key), "%s: no object, no open upload", label);
	tsnap_s3_client_free(c);
}

int
main(void)
{
	tsnap_s3_config	cfg;
	tsnap_s3_error	err;
	struct stat st;

	if (stat("faultproxy.pl", &st) != 0)
		bail_out("run from test/s3 (faultproxy.pl not found)");
	test_prefix(prefix, sizeof(prefix), "faults");
	test_config(&cfg);
	direct = tsnap_s3_client_new(&cfg, &err);
	if (direct == NULL)
		bail_out(errstr(&err));
	if (!tsnap_s3_list_objects(direct, prefix, NULL, NULL, &err))
	{
		printf("1..0 # skip no S3 endpoint at %s: %s\n", cfg.endpoint, errstr(&err));
		return 0;
	}
	atexit(kill_proxies);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	unlink("faultproxy.log");

	data = malloc(25 * MiB);
	test_fill(data, 25 * MiB, 0, 3);

	flaky();
	resumed_download();
	pull_stream();
	persistent("single-503", "503", "PUT", NULL, 1000, S3_ERR_S3,
			   "PutObject of");
	persistent("parts-503", "503", "PUT", NULL, 12 * MiB, S3_ERR_S3,
			   "UploadPart of");
	persistent("parts-reset", "reset", "PUT", NULL, 12 * MiB, S3_ERR_CURL,
			   "UploadPart of");
	persistent("parts-stall", "stall", "PUT", NULL, 12 * MiB, S3_ERR_CURL,
			   "no data moved for 1000 ms");
	persistent("complete-500", "500", "POST", "uploadId=", 12 * MiB, S3_ERR_S3,
			   "CompleteMultipartUpload of");
	persistent("complete-200-error", "200error", "POST", "uploadId=", 12 * MiB, S3_ERR_S3,
			   "HTTP 200 InternalError");
	persistent("create-503", "503", "POST", "uploads", 12 * MiB, S3_ERR_S3,
			   "CreateMultipartUpload of");
	kill_proxies();
	tsnap_s3_client_free(direct);
	free(data);
	return done_testing();
}
