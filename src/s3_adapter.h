/*-------------------------------------------------------------------------
 *
 * s3_adapter.h
 *	  PostgreSQL-side use of the S3 client; owned by s3_adapter.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_S3_ADAPTER_H
#define TSNAP_S3_ADAPTER_H

#include "s3/s3.h"

extern void tsnap_s3_init(void);
extern tsnap_s3_client *tsnap_s3_open(uint64 max_object_size);
extern tsnap_s3_client *tsnap_s3_open_at(uint64 max_object_size,
										 const char *endpoint,
										 const char *bucket);
extern void tsnap_s3_raise(const tsnap_s3_error *err, int elevel);
extern const char *tsnap_s3_verb(const tsnap_s3_error *err);

#endif							/* TSNAP_S3_ADAPTER_H */
