/*-------------------------------------------------------------------------
 *
 * s3_error.c
 *	  Fill and format tsnap_s3_error, the failure report of every S3 call.
 *
 * The formatted message is one line in PostgreSQL's style, for example
 *	  S3 PutObject of "a/b.csv" failed: HTTP 403 SignatureDoesNotMatch: ...
 * It is built only from the operation, the key, the HTTP status, S3's Code
 * and Message, and curl's error text; the request's credentials, its
 * signature, its Authorization header and any presigned URL never enter an
 * tsnap_s3_error, so they cannot reach a log.  Control characters are replaced
 * so a hostile key or reply cannot forge extra log lines.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "s3_int.h"

void
tsnap_s3_error_clear(tsnap_s3_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->kind = S3_OK;
	err->operation = "";
}

/*
 * Record a failure of the given kind; fmt (may be NULL) goes to detail.
 * HTTP status, code and message are left for the caller to fill.
 */
void
tsnap_s3_error_set(tsnap_s3_error *err, tsnap_s3_error_kind kind,
				   const char *operation, const char *key, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return;
	tsnap_s3_error_clear(err);
	err->kind = kind;
	err->operation = operation ? operation : "";
	tsnap_s3_strlcpy(err->key, key ? key : "", sizeof(err->key));
	if (fmt)
	{
		va_start(ap, fmt);
		vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
		va_end(ap);
	}
}

/* Append src to buf at *pos, replacing control characters by spaces. */
static void
put(char *buf, size_t buflen, size_t *pos, const char *src)
{
	for (; src && *src && *pos + 1 < buflen; src++)
	{
		unsigned char c = (unsigned char) *src;

		buf[(*pos)++] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
	}
	if (buflen > 0)
		buf[*pos < buflen ? *pos : buflen - 1] = '\0';
}

static void putf(char *buf, size_t buflen, size_t *pos, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

static void
putf(char *buf, size_t buflen, size_t *pos, const char *fmt,...)
{
	char		tmp[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put(buf, buflen, pos, tmp);
}

/*
 * Format err as one line into buf; returns the length written.
 */
size_t
tsnap_s3_error_format(const tsnap_s3_error *err, char *buf, size_t buflen)
{
	size_t		pos = 0;
	const char *op = err->operation && err->operation[0] ?
		err->operation : "request";

	if (buflen == 0)
		return 0;
	buf[0] = '\0';
	put(buf, buflen, &pos, "S3 ");
	put(buf, buflen, &pos, op);
	if (err->key[0])
	{
		put(buf, buflen, &pos, " of \"");
		put(buf, buflen, &pos, err->key);
		put(buf, buflen, &pos, "\"");
	}
	switch (err->kind)
	{
		case S3_OK:
			put(buf, buflen, &pos, " succeeded");
			return pos;
		case S3_ERR_INTERRUPTED:
			put(buf, buflen, &pos, " was interrupted");
			return pos;
		default:
			put(buf, buflen, &pos, " failed: ");
			break;
	}
	switch (err->kind)
	{
		case S3_ERR_S3:
		case S3_ERR_HTTP:
			putf(buf, buflen, &pos, "HTTP %ld", err->http_status);
			if (err->code[0])
			{
				put(buf, buflen, &pos, " ");
				put(buf, buflen, &pos, err->code);
			}
			if (err->message[0])
			{
				put(buf, buflen, &pos, ": ");
				put(buf, buflen, &pos, err->message);
			}
			if (err->detail[0])
			{
				put(buf, buflen, &pos, " (");
				put(buf, buflen, &pos, err->detail);
				put(buf, buflen, &pos, ")");
			}
			break;
		case S3_ERR_CURL:
			put(buf, buflen, &pos,
				err->detail[0] ? err->detail : "transport error");
			break;
		case S3_ERR_TOO_LARGE:
			put(buf, buflen, &pos,
				err->detail[0] ? err->detail : "object too large");
			break;
		case S3_ERR_CALLBACK:
			put(buf, buflen, &pos,
				err->detail[0] ? err->detail : "stopped by callback");
			break;
		default:
			put(buf, buflen, &pos,
				err->detail[0] ? err->detail : "internal error");
			break;
	}
	if (err->attempts > 1)
		putf(buf, buflen, &pos, " (after %d attempts)", err->attempts);
	return pos;
}

/* True if the failure is "no such object" (404, or NoSuchKey). */
bool
tsnap_s3_error_is_not_found(const tsnap_s3_error *err)
{
	return (err->kind == S3_ERR_S3 || err->kind == S3_ERR_HTTP) &&
		(err->http_status == 404 || strcmp(err->code, "NoSuchKey") == 0);
}
