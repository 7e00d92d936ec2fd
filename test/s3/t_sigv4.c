/*-------------------------------------------------------------------------
 *
 * t_sigv4.c
 *	  Unit test of the SigV4 signer against the AWS Signature Version 4 Test
 *	  Suite and the Amazon S3 API Reference examples (test/s3/vectors).
 *
 * Each suite case's .req file is parsed here (never hand-transcribed) and
 * signed; canonical request, string to sign and Authorization header are
 * compared with the .creq, .sts and .authz files.  The normalize-path cases
 * are skipped: they describe path normalisation, which S3 must not do.
 * The S3 examples come from s3-sigv4-examples.json, flattened by
 * json2kv.pl into s3-sigv4-examples.kv at build time.
 *
 * Usage: t_sigv4 [VECTOR_DIR]   (default: vectors)
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../src/s3/s3_int.h"
#include "tap.h"

#define MAX_HDRS 32

static const char *vecdir = "vectors";

static char *
read_file(const char *path, size_t *lenp)
{
	FILE	   *f = fopen(path, "rb");
	char	   *data;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc(n + 1);
	if (data == NULL || fread(data, 1, n, f) != (size_t) n)
	{
		fclose(f);
		free(data);
		return NULL;
	}
	data[n] = '\0';
	fclose(f);
	if (lenp)
		*lenp = n;
	return data;
}

/* Decode %XX in place (the .req files are mostly raw). */
static void
percent_decode(char *s)
{
	char	   *o = s;

	for (; *s; s++)
	{
		if (s[0] == '%' && s[1] && s[2])
		{
			char		hex[3] = {s[1], s[2], 0};

			*o++ = (char) strtol(hex, NULL, 16);
			s += 2;
		}
		else
			*o++ = *s;
	}
	*o = '\0';
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Sign one suite case: parse dir/name.req, compare with .creq/.sts/.authz.
 */
static void
run_suite_case(const char *dir, const char *name)
{
	char		path[4096];
	char	   *req;
	char	   *line;
	char	   *save = NULL;
	char	   *target;
	char	   *query;
	char	   *body = "";
	char	   *creq,
			   *sts,
			   *authz;
	tsnap_s3_kv		headers[MAX_HDRS];
	tsnap_s3_kv		params[MAX_HDRS];
	int			nh = 0,
				np = 0;
	tsnap_s3_buf		uri;
	char		payload_hash[65];
	tsnap_s3_sigv4_input in;
	tsnap_s3_sigv4_output out;
	char	   *p;
	char	   *http;

	snprintf(path, sizeof(path), "%s/%s.req", dir, name);
	req = read_file(path, NULL);
	if (req == NULL)
	{
		ok(0, "%s: read %s", name, path);
		return;
	}

	/* The body, if any, follows the first empty line. */
	p = strstr(req, "\n\n");
	if (p)
	{
		*p = '\0';
		body = p + 2;
	}

	/* Request line: METHOD SP target SP HTTP/1.1 */
	line = strtok_r(req, "\n", &save);
	http = strstr(line, " HTTP/");
	if (http)
		*http = '\0';
	target = strchr(line, ' ');
	*target++ = '\0';
	query = strchr(target, '?');
	if (query)
		*query++ = '\0';

	/* Headers; a line starting with white space continues the previous. */
	while ((line = strtok_r(NULL, "\n", &save)) != NULL && nh < MAX_HDRS)
	{
		if ((line[0] == ' ' || line[0] == '\t') && nh > 0)
		{
			headers[nh].name = headers[nh - 1].name;
			headers[nh].value = line;
			nh++;
			continue;
		}
		p = strchr(line, ':');
		if (p == NULL)
			continue;
		*p = '\0';
		headers[nh].name = line;
		headers[nh].value = p + 1;
		nh++;
	}

	/* Query parameters: raw name[=value], percent-decoded. */
	if (query && *query)
	{
		char	   *qs = NULL;
		char	   *tok;

		for (tok = strtok_r(query, "&", &qs); tok && np < MAX_HDRS;
			 tok = strtok_r(NULL, "&", &qs))
		{
			p = strchr(tok, '=');
			if (p)
				*p++ = '\0';
			percent_decode(tok);
			if (p)
				percent_decode(p);
			params[np].name = tok;
			params[np].value = p;
			np++;
		}
	}

	percent_decode(target);
	tsnap_s3_buf_init(&uri);
	tsnap_s3_uri_encode(&uri, target, strlen(target), true);
	tsnap_s3_sha256_hex(body, strlen(body), payload_hash);

	memset(&in, 0, sizeof(in));
	in.method = req;
	in.canonical_uri = uri.data;
	in.query = params;
	in.nquery = np;
	in.headers = headers;
	in.nheaders = nh;
	in.payload_hash = payload_hash;
	in.access_key_id = "AKIDEXAMPLE";
	in.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	in.region = "us-east-1";
	in.service = "service";
	in.amz_date = "20150830T123600Z";

	snprintf(path, sizeof(path), "%s/%s.creq", dir, name);
	creq = read_file(path, NULL);
	snprintf(path, sizeof(path), "%s/%s.sts", dir, name);
	sts = read_file(path, NULL);
	snprintf(path, sizeof(path), "%s/%s.authz", dir, name);
	authz = read_file(path, NULL);

	if (!ok(tsnap_s3_sigv4_sign(&in, &out), "%s: signs", name))
		diag("signing failed");
	else
	{
		char		label[300];

		snprintf(label, sizeof(label), "%s: canonical request", name);
		is_str(out.canonical_request, creq, label);
		snprintf(label, sizeof(label), "%s: string to sign", name);
		is_str(out.string_to_sign, sts, label);
		snprintf(label, sizeof(label), "%s: authorization", name);
		is_str(out.authorization, authz, label);
	}
	tsnap_s3_sigv4_output_free(&out);
	tsnap_s3_buf_free(&uri);
	free(creq);
	free(sts);
	free(authz);
	free(req);
}

/*
 * Walk the suite: a directory holding <dirname>.req is a case, any other
 * directory is searched for cases.  Entries are sorted for stable output.
 */
static void
walk_suite(const char *dir, int skipping)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	char	   *names[256];
	int			n = 0;
	int			i;

	if (d == NULL)
	{
		ok(0, "open %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL && n < 256)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(char *), cmpstr);

	for (i = 0; i < n; i++)
	{
		char		sub[1024];
		char		reqpath[2048];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
		if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
		{
			free(names[i]);
			continue;
		}
		snprintf(reqpath, sizeof(reqpath), "%s/%s.req", sub, names[i]);
		if (stat(reqpath, &st) == 0)
		{
			if (skipping || strcmp(names[i], "normalize-path") == 0)
				skip("S3 does not normalise paths", "%s", names[i]);
			else
				run_suite_case(sub, names[i]);
		}
		else
			walk_suite(sub, skipping || strcmp(names[i], "normalize-path") == 0);
		free(names[i]);
	}
}

/* ---- S3 examples (flattened JSON) ---- */

#define MAX_FIELDS 64

typedef struct kv_case
{
	char		name[64];
	int			n;
	char	   *field[MAX_FIELDS];
	char	   *value[MAX_FIELDS];
} kv_case;

static const char *
kv_get(const kv_case *c, const char *field)
{
	int			i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->field[i], field) == 0)
			return c->value[i];
	return NULL;
}

static void
kv_unescape(char *s)
{
	char	   *o = s;

	for (; *s; s++)
	{
		if (*s == '\\' && s[1])
		{
			s++;
			*o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
		}
		else
			*o++ = *s;
	}
	*o = '\0';
}

static void
run_s3_case(const kv_case *common, const kv_case *c)
{
	tsnap_s3_kv		headers[MAX_HDRS];
	tsnap_s3_kv		params[MAX_HDRS];
	int			nh = 0,
				np = 0;
	int			i;
	char	   *query = strdup(kv_get(c, "query") ? kv_get(c, "query") : "");
	const char *path = kv_get(c, "path");
	const char *want;
	tsnap_s3_buf		uri,
				cq;
	tsnap_s3_sigv4_input in;
	tsnap_s3_sigv4_output out;
	char		label[200];
	char		hash[65];

	headers[nh].name = "Host";
	headers[nh++].value = kv_get(c, "host");
	for (i = 0; i < c->n; i++)
		if (strncmp(c->field[i], "header:", 7) == 0)
		{
			headers[nh].name = c->field[i] + 7;
			headers[nh++].value = c->value[i];
		}
	if (*query)
	{
		char	   *qs = NULL;
		char	   *tok;

		for (tok = strtok_r(query, "&", &qs); tok;
			 tok = strtok_r(NULL, "&", &qs))
		{
			char	   *eq = strchr(tok, '=');

			if (eq)
				*eq++ = '\0';
			params[np].name = tok;
			params[np++].value = eq;
		}
	}

	tsnap_s3_buf_init(&uri);
	tsnap_s3_uri_encode(&uri, path, strlen(path), true);
	if ((want = kv_get(c, "canonical_uri")) != NULL)
	{
		snprintf(label, sizeof(label), "%s: canonical uri", c->name);
		is_str(uri.data, want, label);
	}
	if (kv_get(c, "body"))
	{
		tsnap_s3_sha256_hex(kv_get(c, "body"), strlen(kv_get(c, "body")), hash);
		snprintf(label, sizeof(label), "%s: payload hash", c->name);
		is_str(hash, kv_get(c, "payload_sha256"), label);
	}

	memset(&in, 0, sizeof(in));
	in.method = kv_get(c, "method");
	in.canonical_uri = uri.data;
	in.query = params;
	in.nquery = np;
	in.headers = headers;
	in.nheaders = nh;
	in.payload_hash = kv_get(c, "payload_sha256");
	in.access_key_id = kv_get(common, "access_key_id");
	in.secret_access_key = kv_get(common, "secret_access_key");
	in.region = kv_get(common, "region");
	in.service = kv_get(common, "service");
	in.amz_date = kv_get(common, "amz_date");

	if (kv_get(c, "presigned") && strcmp(kv_get(c, "presigned"), "true") == 0)
	{
		char		base[512];
		char	   *url;
		tsnap_s3_buf		expect;

		snprintf(base, sizeof(base), "https://%s%s", kv_get(c, "host"),
				 uri.data);
		in.nheaders = 1;		/* host only */
		url = tsnap_s3_sigv4_presign(&in, base,
							   atol(kv_get(c, "expires_seconds")), NULL);
		tsnap_s3_buf_init(&expect);
		tsnap_s3_buf_printf(&expect, "%s?%s&X-Amz-Signature=%s", base,
					  kv_get(c, "canonical_query"), kv_get(c, "signature"));
		snprintf(label, sizeof(label), "%s: presigned url", c->name);
		is_str(url, expect.data, label);
		tsnap_s3_buf_free(&expect);
		free(url);
	}
	else
	{
		if ((want = kv_get(c, "canonical_query")) != NULL)
		{
			tsnap_s3_buf_init(&cq);
			tsnap_s3_canonical_query(&cq, params, np);
			snprintf(label, sizeof(label), "%s: canonical query", c->name);
			is_str(cq.data ? cq.data : "", want, label);
			tsnap_s3_buf_free(&cq);
		}
		snprintf(label, sizeof(label), "%s: signs", c->name);
		if (ok(tsnap_s3_sigv4_sign(&in, &out), "%s", label))
		{
			snprintf(label, sizeof(label), "%s: signed headers", c->name);
			is_str(out.signed_headers, kv_get(c, "signed_headers"), label);
			snprintf(label, sizeof(label), "%s: signature", c->name);
			is_str(out.signature, kv_get(c, "signature"), label);
		}
		tsnap_s3_sigv4_output_free(&out);
	}
	tsnap_s3_buf_free(&uri);
	free(query);
}

static void
run_s3_examples(void)
{
	char		path[1024];
	char	   *data;
	char	   *line;
	char	   *save = NULL;
	kv_case    *cases = calloc(16, sizeof(kv_case));
	int			ncases = 0;
	int			i,
				j;

	snprintf(path, sizeof(path), "%s/s3-sigv4-examples.kv", vecdir);
	data = read_file(path, NULL);
	if (data == NULL)
		data = read_file("s3-sigv4-examples.kv", NULL);
	if (data == NULL)
	{
		ok(0, "read s3-sigv4-examples.kv (make builds it from the JSON)");
		free(cases);
		return;
	}
	for (line = strtok_r(data, "\n", &save); line;
		 line = strtok_r(NULL, "\n", &save))
	{
		char	   *f = strchr(line, '\t');
		char	   *v;
		kv_case    *c = NULL;

		if (f == NULL || (v = strchr(f + 1, '\t')) == NULL)
			continue;
		*f++ = '\0';
		*v++ = '\0';
		kv_unescape(v);
		for (i = 0; i < ncases; i++)
			if (strcmp(cases[i].name, line) == 0)
				c = &cases[i];
		if (c == NULL && ncases < 16)
		{
			c = &cases[ncases++];
			tsnap_s3_strlcpy(c->name, line, sizeof(c->name));
		}
		if (c && c->n < MAX_FIELDS)
		{
			c->field[c->n] = f;
			c->value[c->n++] = v;
		}
	}
	ok(ncases == 6, "s3 examples: common + 5 cases read (%d)", ncases);
	for (i = 0; i < ncases; i++)
		if (strcmp(cases[i].name, "common") == 0)
			for (j = 0; j < ncases; j++)
				if (j != i)
					run_s3_case(&cases[i], &cases[j]);
	free(cases);
	free(data);
}

int
main(int argc, char **argv)
{
	char		suite[1024];

	if (argc > 1)
		vecdir = argv[1];
	snprintf(suite, sizeof(suite), "%s/aws-sig-v4-test-suite", vecdir);
	walk_suite(suite, 0);
	run_s3_examples();
	return done_testing();
}
