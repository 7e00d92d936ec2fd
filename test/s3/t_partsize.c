/*-------------------------------------------------------------------------
 *
 * t_partsize.c
 *	  Unit test of the uploader's part-size schedule (tsnap_s3_part_size_for):
 *	  every part within S3's 5 MiB..5 GiB, sizes never decrease, and
 *	  10,000 parts reach S3's 5 TiB maximum object size for every allowed
 *	  first part size.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>

#include "../../src/s3/s3.h"
#include "tap.h"

#define MiB ((size_t) 1024 * 1024)

static void
check_schedule(size_t first)
{
	uint64_t	total = 0;
	size_t		prev = 0;
	int			bad_range = 0,
				bad_order = 0;
	int			n;

	for (n = 1; n <= S3_MAX_PARTS; n++)
	{
		size_t		s = tsnap_s3_part_size_for(first, n);

		if (s < S3_MIN_PART_SIZE || s > S3_MAX_PART_SIZE)
			bad_range++;
		if (s < prev)
			bad_order++;
		prev = s;
		total += s;
	}
	ok(bad_range == 0, "first=%zu MiB: every part within 5 MiB..5 GiB", first / MiB);
	ok(bad_order == 0, "first=%zu MiB: sizes never decrease", first / MiB);
	ok(total >= S3_MAX_OBJECT_SIZE,
	   "first=%zu MiB: 10,000 parts hold %.2f TiB >= 5 TiB", first / MiB,
	   (double) total / (1024.0 * 1024 * 1024 * 1024));
}

int
main(void)
{
	ok(tsnap_s3_part_size_for(5 * MiB, 1) == 5 * MiB, "part 1 has the first size");
	ok(tsnap_s3_part_size_for(5 * MiB, S3_PART_SIZE_GROWTH_INTERVAL) == 5 * MiB,
	   "last part of the first group keeps it");
	ok(tsnap_s3_part_size_for(5 * MiB, S3_PART_SIZE_GROWTH_INTERVAL + 1) == 10 * MiB,
	   "first part of the second group doubles");
	ok(tsnap_s3_part_size_for(8 * MiB, 10000) == S3_MAX_PART_SIZE, "part 10000 capped at 5 GiB");
	ok(tsnap_s3_part_size_for(1 * MiB, 1) == 5 * MiB, "below minimum is raised to 5 MiB");
	ok(tsnap_s3_part_size_for(S3_MAX_PART_SIZE, 9000) == S3_MAX_PART_SIZE, "5 GiB stays 5 GiB");
	check_schedule(5 * MiB);
	check_schedule(8 * MiB);
	check_schedule(7 * MiB + 12345);
	check_schedule(64 * MiB);
	check_schedule(S3_MAX_PART_SIZE);
	return done_testing();
}
