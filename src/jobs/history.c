/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The durable record of snapshot jobs, tsnap.job_history.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "jobs/jobs.h"

/* filled in by the jobs work of issue 13 */
void
tsnap_jobs_maintain(void)
{
}
