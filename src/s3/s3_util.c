/*-------------------------------------------------------------------------
 *
 * s3_util.c
 *	  Small helpers of the S3 client: a growable string buffer, the URI
 *	  encoding that SigV4 and S3 require, hex and SHA-256, clocks, and the
 *	  timestamps of S3's replies.
 *
 * tsnap_s3_buf owns its malloc'd data.  Appends never fail loudly: an
 * allocation failure sets buf->oom, later appends do nothing, and the
 * caller checks the flag once when the string is complete.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "s3_int.h"

void
tsnap_s3_buf_init(tsnap_s3_buf *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->oom = false;
}

void
tsnap_s3_buf_free(tsnap_s3_buf *buf)
{
	free(buf->data);
	tsnap_s3_buf_init(buf);
}

/*
 * Hand the string over to the caller (who frees it).  Returns NULL after an
 * allocation failure, having freed the partial string.
 */
char *
tsnap_s3_buf_release(tsnap_s3_buf *buf)
{
	char	   *data;

	if (buf->oom)
	{
		tsnap_s3_buf_free(buf);
		return NULL;
	}
	if (buf->data == NULL && !tsnap_s3_buf_reserve(buf, 0))
		return NULL;
	data = buf->data;
	tsnap_s3_buf_init(buf);
	return data;
}

/* Make room for "more" bytes plus the terminating NUL. */
bool
tsnap_s3_buf_reserve(tsnap_s3_buf *buf, size_t more)
{
	size_t		need;
	size_t		newcap;
	char	   *p;

	if (buf->oom)
		return false;
	need = buf->len + more + 1;
	if (need <= buf->cap)
		return true;
	newcap = buf->cap ? buf->cap : 64;
	while (newcap < need)
		newcap *= 2;
	p = realloc(buf->data, newcap);
	if (p == NULL)
	{
		buf->oom = true;
		return false;
	}
	buf->data = p;
	buf->cap = newcap;
	buf->data[buf->len] = '\0';
	return true;
}

void
tsnap_s3_buf_append(tsnap_s3_buf *buf, const char *data, size_t len)
{
	if (!tsnap_s3_buf_reserve(buf, len))
		return;
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void
tsnap_s3_buf_puts(tsnap_s3_buf *buf, const char *s)
{
	tsnap_s3_buf_append(buf, s, strlen(s));
}

void
tsnap_s3_buf_printf(tsnap_s3_buf *buf, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
	{
		buf->oom = true;
		return;
	}
	if (!tsnap_s3_buf_reserve(buf, (size_t) n))
		return;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t) n;
}

/*
 * Percent-encode len bytes of s the way SigV4 wants: unreserved characters
 * (A-Z a-z 0-9 - . _ ~) are kept, every other byte becomes %XX with upper
 * case hex.  With keep_slash, '/' is kept too: that encodes an S3 key as a
 * path, each segment exactly once.  Nothing is normalised ("..", "//"
 * stay), because S3 keys are opaque byte strings.
 */
void
tsnap_s3_uri_encode(tsnap_s3_buf *buf, const char *s, size_t len,
					bool keep_slash)
{
	static const char hexdig[] = "0123456789ABCDEF";
	size_t		i;

	if (!tsnap_s3_buf_reserve(buf, len * 3))
		return;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			c == '~' || (keep_slash && c == '/'))
			buf->data[buf->len++] = (char) c;
		else
		{
			buf->data[buf->len++] = '%';
			buf->data[buf->len++] = hexdig[c >> 4];
			buf->data[buf->len++] = hexdig[c & 15];
		}
	}
	buf->data[buf->len] = '\0';
}

/* Lower-case hex of len bytes; out needs 2 * len + 1 bytes. */
void
tsnap_s3_hex(const unsigned char *bin, size_t len, char *out)
{
	static const char hexdig[] = "0123456789abcdef";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = hexdig[bin[i] >> 4];
		out[2 * i + 1] = hexdig[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

void
tsnap_s3_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	/* EVP_Digest only fails on allocation failure inside OpenSSL. */
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
		mdlen != 32)
	{
		out[0] = '\0';
		return;
	}
	tsnap_s3_hex(md, 32, out);
}

/* Copy with truncation; always NUL-terminates when size > 0. */
void
tsnap_s3_strlcpy(char *dst, const char *src, size_t size)
{
	size_t		n;

	if (size == 0)
		return;
	if (src == NULL)
		src = "";
	n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* strdup that maps NULL to NULL. */
char *
tsnap_s3_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Monotonic milliseconds, for timeouts and backoff. */
int64_t
tsnap_s3_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The x-amz-date form of t: 20150830T123600Z. */
void
tsnap_s3_amz_date(time_t t, char out[17])
{
	struct tm	tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* n decimal digits at s, into *out; false if any is not a digit */
static bool
read_digits(const char *s, int n, int *out)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * Days from 1970-01-01 to the given date of the proleptic Gregorian
 * calendar (month 1-12), computed by hand: timegm() is not in C99, and
 * mktime() would depend on the process's time zone.
 */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe;
	int64_t		doy;
	int64_t		doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * An S3 timestamp (ListObjectsV2's LastModified), ISO 8601 in UTC:
 * "2026-11-30T10:01:24.000Z", the fraction optional.  *out gets Unix
 * seconds, the fraction dropped (rounded down, so an object never looks
 * older than it is by less than a second: callers that compare ages
 * compare whole seconds).  Anything else, an offset other than Z
 * included, returns false and leaves *out alone.
 */
bool
tsnap_s3_parse_time(const char *s, int64_t *out)
{
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	const char *p;

	if (s == NULL || strlen(s) < 20 ||
		!read_digits(s, 4, &year) || s[4] != '-' ||
		!read_digits(s + 5, 2, &month) || s[7] != '-' ||
		!read_digits(s + 8, 2, &day) || s[10] != 'T' ||
		!read_digits(s + 11, 2, &hour) || s[13] != ':' ||
		!read_digits(s + 14, 2, &minute) || s[16] != ':' ||
		!read_digits(s + 17, 2, &second))
		return false;
	p = s + 19;
	if (*p == '.')
	{
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0)
		return false;
	if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
		minute > 59 || second > 60)
		return false;
	*out = days_from_civil(year, month, day) * 86400 +
		hour * 3600 + minute * 60 + second;
	return true;
}
