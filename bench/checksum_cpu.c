/*
 * checksum_cpu.c - CPU time of each candidate checksum over a file, for
 * bench/manifest_checksum.sh.
 *
 * Reads FILE into memory, then computes each candidate over it in 256 kB
 * pieces, as the worker's sink sees the bytes (TSNAP_SCAN_CHUNK), REPS
 * times, and prints one line per candidate:
 *
 *	 <name> <value in hex> <median CPU seconds of one pass>
 *
 * CPU time of the process (CLOCK_PROCESS_CPUTIME_ID), not wall time, so
 * that other work on the machine does not count.  Candidates: SHA-256 and
 * MD5 through OpenSSL's EVP (as src/ledger/checksum.c computes them), and
 * CRC-32 through zlib's crc32_z and through libdeflate_crc32 (the same
 * value).
 *
 * Build: cc -O2 -o checksum_cpu checksum_cpu.c -lcrypto -lz -ldeflate
 * Usage: checksum_cpu FILE [REPS (9)]
 */
#include <libdeflate.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define CHUNK	(256 * 1024)
#define MAXREPS 101

static unsigned char *data;
static size_t len;

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
digest(const char *name, char *hex)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	size_t off;

	if (ctx == NULL ||
		EVP_DigestInit_ex(ctx, strcmp(name, "sha256") == 0 ? EVP_sha256() : EVP_md5(), NULL) != 1)
	{
		fprintf(stderr, "cannot start %s\n", name);
		exit(1);
	}
	for (off = 0; off < len; off += CHUNK)
		EVP_DigestUpdate(ctx, data + off, len - off < CHUNK ? len - off : CHUNK);
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

static void
crc_zlib(const char *name, char *hex)
{
	uLong		crc = crc32_z(0L, Z_NULL, 0);
	size_t		off;

	for (off = 0; off < len; off += CHUNK)
		crc = crc32_z(crc, data + off, len - off < CHUNK ? len - off : CHUNK);
	sprintf(hex, "%08lx", crc & 0xffffffffUL);
}

static void
crc_libdeflate(const char *name, char *hex)
{
	uint32_t	crc = 0;
	size_t		off;

	for (off = 0; off < len; off += CHUNK)
		crc = libdeflate_crc32(crc, data + off, len - off < CHUNK ? len - off : CHUNK);
	sprintf(hex, "%08x", crc);
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	static const struct
	{
		const char *name;
		void		(*fn) (const char *name, char *hex);
	}			candidates[] = {
		{"sha256", digest},
		{"md5", digest},
		{"crc32-zlib", crc_zlib},
		{"crc32-libdeflate", crc_libdeflate},
	};
	FILE	   *f;
	int			reps = argc > 2 ? atoi(argv[2]) : 9;
	long		size;

	if (argc < 2 || reps < 1 || reps > MAXREPS)
	{
		fprintf(stderr, "usage: checksum_cpu FILE [REPS (1..%d)]\n", MAXREPS);
		return 2;
	}
	if ((f = fopen(argv[1], "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
		(size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		perror(argv[1]);
		return 1;
	}
	len = (size_t) size;
	data = malloc(len ? len : 1);
	if (data == NULL || fread(data, 1, len, f) != len)
	{
		perror(argv[1]);
		return 1;
	}
	fclose(f);

	for (size_t c = 0; c < sizeof(candidates) / sizeof(candidates[0]); c++)
	{
		double		t[MAXREPS];
		char		hex[2 * EVP_MAX_MD_SIZE + 1];

		for (int r = 0; r < reps; r++)
		{
			double		t0 = cpu_now();

			candidates[c].fn(candidates[c].name, hex);
			t[r] = cpu_now() - t0;
		}
		qsort(t, reps, sizeof(double), cmp_double);
		printf("%s %s %.4f\n", candidates[c].name, hex, t[reps / 2]);
	}
	return 0;
}
