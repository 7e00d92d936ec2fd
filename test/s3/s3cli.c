/*-------------------------------------------------------------------------
 *
 * s3cli.c
 *	  A small command-line front end to the S3 client, for manual checks
 *	  and for bench/s3_throughput.sh.  Configuration comes from the S3_*
 *	  environment variables (see testutil.h); S3_PART_SIZE and S3_IN_FLIGHT
 *	  tune the uploader.
 *
 *	  s3cli put KEY FILE        one PutObject (file read into memory)
 *	  s3cli upload KEY FILE     streaming uploader (1 MiB writes)
 *	  s3cli get KEY [FILE]      GetObject to FILE (default: discard)
 *	  s3cli head KEY | rm KEY | ls PREFIX | uploads PREFIX
 *	  s3cli abort-all PREFIX    abort every open upload under PREFIX
 *	  s3cli presign KEY SECONDS
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int
print_obj(const tsnap_s3_object_info *o, void *arg)
{
	(void) arg;
	printf("%llu\t%s\t%s\n", (unsigned long long) o->size, o->etag, o->key);
	return 0;
}

static int
print_upload(const tsnap_s3_upload_info *u, void *arg)
{
	(void) arg;
	printf("%s\t%s\n", u->upload_id, u->key);
	return 0;
}

typedef struct abort_ctx
{
	tsnap_s3_client  *c;
	int			n;
} abort_ctx;

static int
abort_upload(const tsnap_s3_upload_info *u, void *arg)
{
	abort_ctx  *a = arg;
	tsnap_s3_error	err;

	if (!tsnap_s3_abort_multipart_upload(a->c, u->key, u->upload_id, &err))
		fprintf(stderr, "%s\n", errstr(&err));
	else
		a->n++;
	return 0;
}

static int
file_sink(const char *data, size_t len, void *arg)
{
	FILE	   *f = arg;

	return f && fwrite(data, 1, len, f) != len;
}

int
main(int argc, char **argv)
{
	tsnap_s3_config	cfg;
	tsnap_s3_client  *c;
	tsnap_s3_error	err;
	const char *cmd = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";
	bool		ok = false;

	test_config(&cfg);
	cfg.part_size = (size_t) atol(env_or("S3_PART_SIZE", "8388608"));
	cfg.max_parts_in_flight = atoi(env_or("S3_IN_FLIGHT", "4"));
	c = tsnap_s3_client_new(&cfg, &err);
	if (c == NULL)
	{
		fprintf(stderr, "%s\n", errstr(&err));
		return 1;
	}
	if (strcmp(cmd, "put") == 0 && argc > 3)
	{
		FILE	   *f = fopen(argv[3], "rb");
		char	   *data;
		long		n;
		char		etag[128];

		if (f == NULL)
			return 1;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		fseek(f, 0, SEEK_SET);
		data = malloc(n ? n : 1);
		if (fread(data, 1, n, f) != (size_t) n)
			return 1;
		fclose(f);
		ok = tsnap_s3_put_object(c, arg, data, n, NULL, etag, sizeof(etag), &err);
		if (ok)
			printf("%s\n", etag);
		free(data);
	}
	else if (strcmp(cmd, "upload") == 0 && argc > 3)
	{
		FILE	   *f = fopen(argv[3], "rb");
		static char buf[1 << 20];
		size_t		n;
		tsnap_s3_upload  *u;
		tsnap_s3_upload_result r;

		if (f == NULL)
			return 1;
		u = tsnap_s3_upload_begin(c, arg, NULL, &err);
		ok = u != NULL;
		while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
			ok = tsnap_s3_upload_write(u, buf, n, &err);
		if (ok)
			ok = tsnap_s3_upload_finish(u, &r, &err);
		if (ok)
			printf("%s\t%llu bytes\t%d parts\n", r.etag,
				   (unsigned long long) r.bytes, r.parts);
		tsnap_s3_upload_free(u);
		fclose(f);
	}
	else if (strcmp(cmd, "get") == 0)
	{
		FILE	   *f = argc > 3 ? fopen(argv[3], "wb") : NULL;
		uint64_t	size;

		ok = tsnap_s3_get_object(c, arg, file_sink, f, &size, &err);
		if (f)
			fclose(f);
		if (ok)
			printf("%llu bytes\n", (unsigned long long) size);
	}
	else if (strcmp(cmd, "head") == 0)
	{
		uint64_t	size;
		char		etag[128];

		ok = tsnap_s3_head_object(c, arg, &size, etag, sizeof(etag), &err);
		if (ok)
			printf("%llu\t%s\n", (unsigned long long) size, etag);
	}
	else if (strcmp(cmd, "rm") == 0)
		ok = tsnap_s3_delete_object(c, arg, &err);
	else if (strcmp(cmd, "ls") == 0)
		ok = tsnap_s3_list_objects(c, arg, print_obj, NULL, &err);
	else if (strcmp(cmd, "uploads") == 0)
		ok = tsnap_s3_list_multipart_uploads(c, arg, print_upload, NULL, &err);
	else if (strcmp(cmd, "abort-all") == 0)
	{
		abort_ctx	a = {c, 0};

		ok = tsnap_s3_list_multipart_uploads(c, arg, abort_upload, &a, &err);
		printf("aborted %d\n", a.n);
	}
	else if (strcmp(cmd, "presign") == 0 && argc > 3)
	{
		char	   *url = tsnap_s3_presign_url(c, "GET", arg, atol(argv[3]), &err);

		ok = url != NULL;
		if (ok)
			printf("%s\n", url);
		free(url);
	}
	else
	{
		fprintf(stderr, "usage: see the header of s3cli.c\n");
		tsnap_s3_client_free(c);
		return 2;
	}
	if (!ok)
		fprintf(stderr, "%s\n", errstr(&err));
	tsnap_s3_client_free(c);
	return ok ? 0 : 1;
}
