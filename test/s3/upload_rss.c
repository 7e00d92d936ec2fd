/*-------------------------------------------------------------------------
 *
 * upload_rss.c
 *	  Memory-bound check of the streaming uploader: stream an object of
 *	  PARTS x part_size bytes (default 50 x 5 MiB = 250 MiB) of generated
 *	  data through tsnap_s3_upload_write in 64 KiB writes, then compare the
 *	  process's peak RSS (getrusage ru_maxrss) with the design bound
 *	  part_size * (in_flight + 1) plus a fixed slack for libraries.
 *	  Output is TAP, so `prove` runs it as a test; the object is verified
 *	  by HeadObject and deleted afterwards.
 *
 *	  Usage: upload_rss [PART_MIB [IN_FLIGHT [PARTS]]]
 *
 *-------------------------------------------------------------------------
 */
#include <sys/resource.h>

#include "testutil.h"
#include "tap.h"

#define MiB ((uint64_t) 1024 * 1024)
#define SLACK_MIB 24

static long
peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

int
main(int argc, char **argv)
{
	uint64_t	part_mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 5;
	int			inflight = argc > 2 ? atoi(argv[2]) : 4;
	int			parts = argc > 3 ? atoi(argv[3]) : 50;
	uint64_t	total = part_mib * MiB * parts;
	uint64_t	off = 0;
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_upload  *u;
	tsnap_s3_upload_result r;
	tsnap_s3_error	err;
	static unsigned char buf[65536];
	char		key[256];
	long		base_kib,
				peak_kib;
	uint64_t	bound_mib = part_mib * (inflight + 1);
	int64_t		t0;
	uint64_t	hsize = 0;
	bool		okay;

	test_config(&cfg);
	cfg.part_size = part_mib * MiB;
	cfg.max_parts_in_flight = inflight;
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
		bail_out(errstr(&err));
	if (!tsnap_s3_list_objects(c, "tsnap-test/none/", NULL, NULL, &err))
	{
		printf("1..0 # skip no S3 endpoint at %s: %s\n", cfg.endpoint, errstr(&err));
		return 0;
	}
	test_prefix(key, sizeof(key), "rss");
	strncat(key, "object", sizeof(key) - strlen(key) - 1);
	base_kib = peak_rss_kib();

	t0 = tsnap_s3_now_ms_for_test();
	u = tsnap_s3_upload_begin(c, key, NULL, &err);
	okay = u != NULL;
	while (okay && off < total)
	{
		size_t		n = total - off < sizeof(buf) ? total - off : sizeof(buf);

		test_fill(buf, n, off, 5);
		okay = tsnap_s3_upload_write(u, buf, n, &err);
		off += n;
	}
	okay = okay && tsnap_s3_upload_finish(u, &r, &err);
	tsnap_s3_upload_free(u);
	peak_kib = peak_rss_kib();

	if (!ok(okay, "streamed %llu MiB (%d x %llu MiB parts, %d in flight) in %.1f s",
			(unsigned long long) (total / MiB), parts, (unsigned long long) part_mib,
			inflight, (tsnap_s3_now_ms_for_test() - t0) / 1000.0))
		diag("%s", errstr(&err));
	ok(okay && r.parts == parts && r.bytes == total, "result: %d parts, %llu bytes", r.parts,
	   (unsigned long long) r.bytes);
	okay = tsnap_s3_head_object(c, key, &hsize, NULL, 0, &err);
	ok(okay && hsize == total, "HeadObject size %llu", (unsigned long long) hsize);
	diag("peak RSS %.1f MiB (before upload %.1f MiB); bound part_size x (in_flight + 1) = %llu MiB, + %d MiB slack",
		 peak_kib / 1024.0, base_kib / 1024.0, (unsigned long long) bound_mib, SLACK_MIB);
	ok((uint64_t) peak_kib <= (bound_mib + SLACK_MIB) * 1024,
	   "peak RSS %.1f MiB <= %llu MiB", peak_kib / 1024.0,
	   (unsigned long long) (bound_mib + SLACK_MIB));
	ok(tsnap_s3_delete_object(c, key, &err), "object deleted");
	tsnap_s3_client_free(c);
	return done_testing();
}
