/*-------------------------------------------------------------------------
 *
 * s3_sigv4.c
 *	  AWS Signature Version 4 with OpenSSL: canonical request, string to
 *	  sign, signature, Authorization header, and presigned URLs.
 *
 * We sign ourselves rather than use CURLOPT_AWS_SIGV4 because Debian 12's
 * libcurl 7.88 signs the query string verbatim (wrong for "?uploads" and
 * for parameters out of order) and hashes an empty payload for uploads.
 *
 * The caller passes the canonical URI already encoded (for S3: each key
 * segment encoded once, never normalised) and the query parameters raw;
 * this file encodes and sorts them.  Everything returned is malloc'd and
 * owned by the caller (tsnap_s3_sigv4_output_free).  Secret-derived
 * material on the stack is wiped before returning.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "s3_int.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

/* One header, lower-cased and trimmed, with its position for stability. */
typedef struct sig_header
{
	char	   *name;
	char	   *value;
	int			pos;
} sig_header;

typedef struct sig_param
{
	char	   *name;			/* encoded */
	char	   *value;			/* encoded, "" when valueless */
} sig_param;

static int
sig_header_cmp(const void *a, const void *b)
{
	const sig_header *ha = a;
	const sig_header *hb = b;
	int			c = strcmp(ha->name, hb->name);

	if (c != 0)
		return c;
	return ha->pos - hb->pos;
}

static int
sig_param_cmp(const void *a, const void *b)
{
	const sig_param *pa = a;
	const sig_param *pb = b;
	int			c = strcmp(pa->name, pb->name);

	if (c != 0)
		return c;
	return strcmp(pa->value, pb->value);
}

/*
 * Trim a header value and collapse runs of whitespace to one space, as the
 * canonical form requires ("a   b" signs as "a b").  Returns malloc'd.
 */
static char *
canonical_header_value(const char *v)
{
	char	   *out = malloc(strlen(v) + 1);
	char	   *o = out;
	bool		space = false;

	if (out == NULL)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++)
	{
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			space = true;
		else
		{
			if (space && o != out)
				*o++ = ' ';
			space = false;
			*o++ = *v;
		}
	}
	*o = '\0';
	return out;
}

/*
 * Append the canonical query string: each name and value URI-encoded,
 * sorted by name then value, valueless parameters written "name=".
 */
void
tsnap_s3_canonical_query(tsnap_s3_buf *buf, const tsnap_s3_kv *query,
						 int nquery)
{
	sig_param  *params;
	int			i;

	if (nquery <= 0)
		return;
	params = calloc(nquery, sizeof(sig_param));
	if (params == NULL)
	{
		buf->oom = true;
		return;
	}
	for (i = 0; i < nquery; i++)
	{
		tsnap_s3_buf n,
					v;

		tsnap_s3_buf_init(&n);
		tsnap_s3_buf_init(&v);
		tsnap_s3_uri_encode(&n, query[i].name, strlen(query[i].name), false);
		if (query[i].value)
			tsnap_s3_uri_encode(&v, query[i].value, strlen(query[i].value),
								false);
		params[i].name = tsnap_s3_buf_release(&n);
		params[i].value = tsnap_s3_buf_release(&v);
		if (params[i].name == NULL || params[i].value == NULL)
			buf->oom = true;
	}
	if (!buf->oom)
	{
		qsort(params, nquery, sizeof(sig_param), sig_param_cmp);
		for (i = 0; i < nquery; i++)
		{
			if (i > 0)
				tsnap_s3_buf_puts(buf, "&");
			tsnap_s3_buf_puts(buf, params[i].name);
			tsnap_s3_buf_puts(buf, "=");
			tsnap_s3_buf_puts(buf, params[i].value);
		}
	}
	for (i = 0; i < nquery; i++)
	{
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
}

static bool
hmac_sha256(const void *key, size_t keylen, const char *msg,
			unsigned char out[32])
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) msg,
			 strlen(msg), out, &outlen) == NULL)
		return false;
	return outlen == 32;
}

/*
 * Derive the signing key and sign string_to_sign; writes 64 hex chars.
 */
static bool
compute_signature(const tsnap_s3_sigv4_input *in, const char *string_to_sign,
				  char signature[65])
{
	char		date8[9];
	size_t		seclen = strlen(in->secret_access_key);
	char	   *ksecret = malloc(seclen + 5);
	unsigned char k[32];
	unsigned char sig[32];
	bool		ok;

	if (ksecret == NULL)
		return false;
	memcpy(date8, in->amz_date, 8);
	date8[8] = '\0';
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, in->secret_access_key, seclen + 1);

	ok = hmac_sha256(ksecret, seclen + 4, date8, k) &&
		hmac_sha256(k, 32, in->region, k) &&
		hmac_sha256(k, 32, in->service, k) &&
		hmac_sha256(k, 32, "aws4_request", k) &&
		hmac_sha256(k, 32, string_to_sign, sig);
	if (ok)
		tsnap_s3_hex(sig, 32, signature);

	OPENSSL_cleanse(ksecret, seclen + 4);
	OPENSSL_cleanse(k, sizeof(k));
	free(ksecret);
	return ok;
}

/* Append "<date8>/<region>/<service>/aws4_request". */
static void
append_scope(tsnap_s3_buf *buf, const tsnap_s3_sigv4_input *in)
{
	tsnap_s3_buf_append(buf, in->amz_date, 8);
	tsnap_s3_buf_printf(buf, "/%s/%s/aws4_request", in->region, in->service);
}

/*
 * Sign a request.  Fills every field of out (caller frees them with
 * tsnap_s3_sigv4_output_free, also after a failure).  Returns false only when
 * memory or OpenSSL fails.
 */
bool
tsnap_s3_sigv4_sign(const tsnap_s3_sigv4_input *in, tsnap_s3_sigv4_output *out)
{
	sig_header *hdrs;
	tsnap_s3_buf creq,
				sts,
				sh,
				auth;
	char		creq_hash[65];
	int			i,
				n = 0;
	bool		ok = true;

	memset(out, 0, sizeof(*out));
	hdrs = calloc(in->nheaders > 0 ? in->nheaders : 1, sizeof(sig_header));
	if (hdrs == NULL)
		return false;
	for (i = 0; i < in->nheaders; i++)
	{
		char	   *p;

		hdrs[n].name = tsnap_s3_strdup(in->headers[i].name);
		hdrs[n].value = canonical_header_value(in->headers[i].value ?
											   in->headers[i].value : "");
		hdrs[n].pos = i;
		if (hdrs[n].name == NULL || hdrs[n].value == NULL)
			ok = false;
		else
			for (p = hdrs[n].name; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p += 'a' - 'A';
		n++;
	}
	if (ok)
		qsort(hdrs, n, sizeof(sig_header), sig_header_cmp);

	tsnap_s3_buf_init(&creq);
	tsnap_s3_buf_init(&sts);
	tsnap_s3_buf_init(&sh);
	tsnap_s3_buf_init(&auth);

	/* Canonical request. */
	tsnap_s3_buf_printf(&creq, "%s\n%s\n", in->method, in->canonical_uri);
	tsnap_s3_canonical_query(&creq, in->query, in->nquery);
	tsnap_s3_buf_puts(&creq, "\n");
	for (i = 0; ok && i < n; i++)
	{
		/* Repeated headers join their values with commas, in order. */
		if (i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0)
		{
			tsnap_s3_buf_printf(&creq, ",%s", hdrs[i].value);
			continue;
		}
		if (i > 0)
		{
			tsnap_s3_buf_puts(&creq, "\n");
			tsnap_s3_buf_puts(&sh, ";");
		}
		tsnap_s3_buf_printf(&creq, "%s:%s", hdrs[i].name, hdrs[i].value);
		tsnap_s3_buf_puts(&sh, hdrs[i].name);
	}
	if (n > 0)
		tsnap_s3_buf_puts(&creq, "\n");
	tsnap_s3_buf_printf(&creq, "\n%s\n%s", sh.data ? sh.data : "",
						in->payload_hash);

	for (i = 0; i < n; i++)
	{
		free(hdrs[i].name);
		free(hdrs[i].value);
	}
	free(hdrs);

	if (!ok || creq.oom || sh.oom)
		ok = false;
	else
	{
		/* String to sign. */
		tsnap_s3_sha256_hex(creq.data, creq.len, creq_hash);
		tsnap_s3_buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n", in->amz_date);
		append_scope(&sts, in);
		tsnap_s3_buf_printf(&sts, "\n%s", creq_hash);
		ok = !sts.oom && creq_hash[0] != '\0' &&
			compute_signature(in, sts.data, out->signature);
	}
	if (ok)
	{
		tsnap_s3_buf_printf(&auth, SIGV4_ALGORITHM " Credential=%s/",
							in->access_key_id);
		append_scope(&auth, in);
		tsnap_s3_buf_printf(&auth, ", SignedHeaders=%s, Signature=%s",
							sh.data ? sh.data : "", out->signature);
	}
	out->canonical_request = tsnap_s3_buf_release(&creq);
	out->string_to_sign = tsnap_s3_buf_release(&sts);
	out->signed_headers = tsnap_s3_buf_release(&sh);
	out->authorization = ok ? tsnap_s3_buf_release(&auth) : NULL;
	tsnap_s3_buf_free(&auth);
	return ok && out->canonical_request && out->string_to_sign &&
		out->signed_headers && out->authorization;
}

void
tsnap_s3_sigv4_output_free(tsnap_s3_sigv4_output *out)
{
	free(out->canonical_request);
	free(out->string_to_sign);
	free(out->signed_headers);
	free(out->authorization);
	memset(out, 0, sizeof(*out));
}

/*
 * Presigned URL (query-string authentication).  in->headers must hold the
 * headers to sign (at least host); in->query any extra parameters; the
 * payload is not signed ("UNSIGNED-PAYLOAD").  url_base is
 * "scheme://host/encoded-path".  Returns a malloc'd URL or NULL.
 *
 * The URL carries a signature that grants access until it expires: callers
 * must never log it or put it in an error message.
 */
char *
tsnap_s3_sigv4_presign(const tsnap_s3_sigv4_input *in, const char *url_base,
					   long expires_seconds, const char *session_token)
{
	tsnap_s3_sigv4_input pin = *in;
	tsnap_s3_sigv4_output out;
	tsnap_s3_kv *q;
	tsnap_s3_buf cred,
				sh,
				url;
	char		expires[32];
	int			nq = 0;
	int			i;
	bool		ok;

	q = calloc(in->nquery + 6, sizeof(tsnap_s3_kv));
	if (q == NULL)
		return NULL;
	for (i = 0; i < in->nquery; i++)
		q[nq++] = in->query[i];

	tsnap_s3_buf_init(&cred);
	tsnap_s3_buf_printf(&cred, "%s/", in->access_key_id);
	append_scope(&cred, in);

	/* The signed header list must be known before signing: build it. */
	tsnap_s3_buf_init(&sh);
	{
		tsnap_s3_sigv4_output tmp;

		pin.query = NULL;
		pin.nquery = 0;
		pin.payload_hash = "UNSIGNED-PAYLOAD";
		ok = tsnap_s3_sigv4_sign(&pin, &tmp);
		if (ok)
			tsnap_s3_buf_puts(&sh, tmp.signed_headers);
		tsnap_s3_sigv4_output_free(&tmp);
	}
	snprintf(expires, sizeof(expires), "%ld", expires_seconds);

	q[nq].name = "X-Amz-Algorithm";
	q[nq++].value = SIGV4_ALGORITHM;
	q[nq].name = "X-Amz-Credential";
	q[nq++].value = cred.data;
	q[nq].name = "X-Amz-Date";
	q[nq++].value = in->amz_date;
	q[nq].name = "X-Amz-Expires";
	q[nq++].value = expires;
	q[nq].name = "X-Amz-SignedHeaders";
	q[nq++].value = sh.data;
	if (session_token && session_token[0])
	{
		q[nq].name = "X-Amz-Security-Token";
		q[nq++].value = session_token;
	}

	tsnap_s3_buf_init(&url);
	if (ok && !cred.oom && !sh.oom)
	{
		pin = *in;
		pin.query = q;
		pin.nquery = nq;
		pin.payload_hash = "UNSIGNED-PAYLOAD";
		ok = tsnap_s3_sigv4_sign(&pin, &out);
		if (ok)
		{
			tsnap_s3_buf_printf(&url, "%s?", url_base);
			tsnap_s3_canonical_query(&url, q, nq);
			tsnap_s3_buf_printf(&url, "&X-Amz-Signature=%s", out.signature);
		}
		tsnap_s3_sigv4_output_free(&out);
	}
	else
		ok = false;

	free(q);
	tsnap_s3_buf_free(&cred);
	tsnap_s3_buf_free(&sh);
	if (!ok)
	{
		tsnap_s3_buf_free(&url);
		return NULL;
	}
	return tsnap_s3_buf_release(&url);
}
