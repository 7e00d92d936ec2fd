/*-------------------------------------------------------------------------
 *
 * t_encode.c
 *	  Unit test of key and URL encoding, URL styles, configuration checks
 *	  and error formatting (no network).
 *
 * Keys are percent-encoded per segment exactly once and never normalised;
 * query values encode '/', '+', ' ' and '=' too.  Formatted errors must not
 * contain the secret.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "../../src/s3/s3_int.h"
#include "tap.h"

#define SECRET "SECRETsecret/+0123456789"

static char *
enc(const char *s, bool keep_slash)
{
	static char out[1024];
	tsnap_s3_buf		b;

	tsnap_s3_buf_init(&b);
	tsnap_s3_uri_encode(&b, s, strlen(s), keep_slash);
	tsnap_s3_strlcpy(out, b.data ? b.data : "", sizeof(out));
	tsnap_s3_buf_free(&b);
	return out;
}

static tsnap_s3_client *
client(const char *endpoint, const char *style, tsnap_s3_error *err)
{
	tsnap_s3_config	cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoint = endpoint;
	cfg.region = "eu-west-1";
	cfg.bucket = "my-bucket";
	cfg.access_key_id = "AKID";
	cfg.secret_access_key = SECRET;
	cfg.url_style = style;
	return tsnap_s3_client_new(&cfg, err);
}

/* The presigned URL up to '?': shows scheme, host and encoded path. */
static char *
url_base(tsnap_s3_client *c, const char *key)
{
	static char out[1024];
	tsnap_s3_error	err;
	char	   *url;
	char	   *q;

	c->fixed_time = 1369353600;	/* 2013-05-24 */
	url = tsnap_s3_presign_url(c, "GET", key, 60, &err);
	tsnap_s3_strlcpy(out, url ? url : "(null)", sizeof(out));
	if (url && strstr(url, "X-Amz-Date=20130524T000000Z") == NULL)
		diag("presigned URL lacks the fixed date");
	free(url);
	q = strchr(out, '?');
	if (q)
		*q = '\0';
	return out;
}

int
main(void)
{
	tsnap_s3_error	err;
	tsnap_s3_client  *c;
	tsnap_s3_buf		b;
	tsnap_s3_kv		q[3];
	char		line[2048];

	is_str(enc("a b+c%d?e#f\"'\xc3\xa9/../x", true),
		   "a%20b%2Bc%25d%3Fe%23f%22%27%C3%A9/../x", "key: each byte encoded once, '/' kept");
	is_str(enc("/example//path/./x", true), "/example//path/./x",
		   "key: no path normalisation");
	is_str(enc("a%20b", true), "a%2520b", "key: '%' is data, not an escape");
	is_str(enc("-._~AZaz09", false), "-._~AZaz09", "unreserved kept");
	is_str(enc("a/b c+d=e&f", false), "a%2Fb%20c%2Bd%3De%26f", "query value: '/', ' ', '+', '=', '&' encoded");
	is_str(enc("\x01\x7f\xff", false), "%01%7F%FF", "control and high bytes");

	q[0].name = "uploads";
	q[0].value = NULL;
	q[1].name = "prefix";
	q[1].value = "a b/";
	q[2].name = "list-type";
	q[2].value = "2";
	tsnap_s3_buf_init(&b);
	tsnap_s3_canonical_query(&b, q, 3);
	is_str(b.data, "list-type=2&prefix=a%20b%2F&uploads=", "canonical query: sorted, valueless as name=");
	tsnap_s3_buf_free(&b);

	c = client("http://127.0.0.1:7480", "path", &err);
	ok(c != NULL, "path-style client");
	if (c)
	{
		is_str(url_base(c, "dir/a b#?.csv"), "http://127.0.0.1:7480/my-bucket/dir/a%20b%23%3F.csv",
			   "path style: endpoint/bucket/key");
		is_str(c->host, "127.0.0.1:7480", "path style: Host keeps the port");
		tsnap_s3_client_free(c);
	}
	c = client("https://minio.example:9000/", "virtual", &err);
	ok(c != NULL, "virtual-style client");
	if (c)
	{
		is_str(url_base(c, "k"), "https://my-bucket.minio.example:9000/k", "virtual style: bucket.host/key");
		tsnap_s3_client_free(c);
	}
	c = client(NULL, NULL, &err);
	ok(c != NULL, "AWS default client");
	if (c)
	{
		is_str(url_base(c, "k/../v"), "https://my-bucket.s3.eu-west-1.amazonaws.com/k/../v",
			   "empty endpoint: AWS regional endpoint, virtual style");
		is_str(c->host, "my-bucket.s3.eu-west-1.amazonaws.com",
			   "empty endpoint, no style: Host names the bucket");
		tsnap_s3_client_free(c);
	}
	/* what tsnap.s3_url_style = auto passes: no style at all */
	c = client("", NULL, &err);
	if (ok(c != NULL, "AWS client, empty endpoint and no style"))
	{
		ok(c->virtual_style, "empty endpoint, no style: virtual-hosted");
		tsnap_s3_client_free(c);
	}
	c = client("http://127.0.0.1:7480", NULL, &err);
	if (ok(c != NULL, "custom endpoint, no style"))
	{
		ok(!c->virtual_style, "custom endpoint, no style: path style");
		is_str(url_base(c, "k"), "http://127.0.0.1:7480/my-bucket/k",
			   "custom endpoint, no style: endpoint/bucket/key");
		is_str(c->host, "127.0.0.1:7480", "custom endpoint, no style: Host is the endpoint's");
		tsnap_s3_client_free(c);
	}
	c = client("https://abc123.r2.cloudflarestorage.com", NULL, &err);
	if (ok(c != NULL, "https custom endpoint, no style"))
	{
		is_str(url_base(c, "k"), "https://abc123.r2.cloudflarestorage.com/my-bucket/k",
			   "https custom endpoint, no style: path style");
		tsnap_s3_client_free(c);
	}
	c = client("", "path", &err);
	if (ok(c != NULL, "AWS path style"))
	{
		is_str(url_base(c, "k"), "https://s3.eu-west-1.amazonaws.com/my-bucket/k", "AWS path style URL");
		tsnap_s3_client_free(c);
	}

	ok(client("ftp://x", NULL, &err) == NULL && err.kind == S3_ERR_INVALID, "non-http endpoint rejected");
	ok(client("http://x/base", NULL, &err) == NULL && err.kind == S3_ERR_INVALID, "endpoint path rejected");
	ok(client("http://u:p@x", NULL, &err) == NULL && err.kind == S3_ERR_INVALID, "endpoint credentials rejected");
	ok(client("http://x", "sideways", &err) == NULL && err.kind == S3_ERR_INVALID, "bad url_style rejected");
	tsnap_s3_error_format(&err, line, sizeof(line));
	ok(strstr(line, SECRET) == NULL, "config error does not show the secret: %s", line);
	{
		tsnap_s3_config	cfg;

		memset(&cfg, 0, sizeof(cfg));
		cfg.bucket = "b";
		cfg.access_key_id = "a";
		cfg.secret_access_key = "s";
		cfg.part_size = 1024 * 1024;
		ok(tsnap_s3_client_new(&cfg, &err) == NULL && err.kind == S3_ERR_INVALID, "part_size below 5 MiB rejected");
		cfg.part_size = 0;
		cfg.max_parts_in_flight = -1;
		ok(tsnap_s3_client_new(&cfg, &err) == NULL && err.kind == S3_ERR_INVALID, "negative parts in flight rejected");
	}

	tsnap_s3_error_set(&err, S3_ERR_S3, "PutObject", "a/b.csv", NULL);
	err.http_status = 403;
	tsnap_s3_strlcpy(err.code, "SignatureDoesNotMatch", sizeof(err.code));
	tsnap_s3_strlcpy(err.message, "The request signature we calculated does not match the signature you provided.", sizeof(err.message));
	tsnap_s3_error_format(&err, line, sizeof(line));
	is_str(line, "S3 PutObject of \"a/b.csv\" failed: HTTP 403 SignatureDoesNotMatch: "
		   "The request signature we calculated does not match the signature you provided.",
		   "S3 error format");
	tsnap_s3_error_set(&err, S3_ERR_CURL, "UploadPart", "k\nFAKE LOG LINE", "Connection reset by peer");
	err.attempts = 5;
	tsnap_s3_error_format(&err, line, sizeof(line));
	is_str(line, "S3 UploadPart of \"k FAKE LOG LINE\" failed: Connection reset by peer (after 5 attempts)",
		   "curl error format, control characters neutralised");
	tsnap_s3_error_set(&err, S3_ERR_INTERRUPTED, "GetObject", "k", NULL);
	tsnap_s3_error_format(&err, line, sizeof(line));
	is_str(line, "S3 GetObject of \"k\" was interrupted", "interrupt format");
	tsnap_s3_error_set(&err, S3_ERR_HTTP, "HeadObject", "k", NULL);
	err.http_status = 404;
	ok(tsnap_s3_error_is_not_found(&err), "404 is not-found");
	tsnap_s3_error_format(&err, line, sizeof(line));
	is_str(line, "S3 HeadObject of \"k\" failed: HTTP 404", "bare HTTP format");
	tsnap_s3_error_format(&err, line, 10);
	ok(strlen(line) == 9, "format truncates to the buffer");
	return done_testing();
}
