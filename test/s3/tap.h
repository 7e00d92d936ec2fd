/*-------------------------------------------------------------------------
 *
 * tap.h
 *	  A minimal TAP producer for the S3 client's C tests, so that `prove`
 *	  can count passes and failures.  Header-only; each test program owns
 *	  its counters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_TAP_H
#define TSNAP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	tap_count = 0;
static int	tap_failed = 0;

static inline void tap_vline(const char *prefix, const char *fmt, va_list ap)
			__attribute__((format(printf, 2, 0)));
static inline void diag(const char *fmt,...) __attribute__((format(printf, 1, 2)));
static inline int ok(int cond, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static inline void skip(const char *why, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

static inline void
tap_vline(const char *prefix, const char *fmt, va_list ap)
{
	printf("%s", prefix);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}

static inline void
diag(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	tap_vline("# ", fmt, ap);
	va_end(ap);
}

/* Record one test; returns cond so callers can add diagnostics. */
static inline int
ok(int cond, const char *fmt,...)
{
	va_list		ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline int
is_str(const char *got, const char *want, const char *name)
{
	int			cond = got != NULL && want != NULL && strcmp(got, want) == 0;

	ok(cond, "%s", name);
	if (!cond)
	{
		printf("#   got:\n#     '%s'\n#   expected:\n#     '%s'\n",
			   got ? got : "(null)", want ? want : "(null)");
		fflush(stdout);
	}
	return cond;
}

static inline void
skip(const char *why, const char *fmt,...)
{
	va_list		ap;

	tap_count++;
	printf("ok %d - ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # skip %s\n", why);
	fflush(stdout);
}

static inline void
bail_out(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(255);
}

static inline int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif							/* TSNAP_TAP_H */
