/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  tsnap's configuration parameters; owned by settings.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_SETTINGS_H
#define TSNAP_SETTINGS_H

typedef enum TsnapUrlStyle
{
	TSNAP_URL_STYLE_AUTO,		/* virtual-hosted for AWS, else path */
	TSNAP_URL_STYLE_PATH,
	TSNAP_URL_STYLE_VIRTUAL
} TsnapUrlStyle;

/*
 * How an object's bytes are compressed (export/compress.c); also the values
 * of tsnap.compression.
 */
typedef enum TsnapCompression
{
	TSNAP_COMPRESSION_NONE = 0,
	TSNAP_COMPRESSION_GZIP,
	TSNAP_COMPRESSION_ZSTD
} TsnapCompression;

/*
 * The algorithm of the whole-object checksum in each snapshot's manifest
 * (ledger/checksum.c).  NONE exists for bench/manifest_checksum.sh, which
 * measures what the checksum costs a miss.
 */
typedef enum TsnapManifestChecksum
{
	TSNAP_MANIFEST_CHECKSUM_NONE,
	TSNAP_MANIFEST_CHECKSUM_CRC32,
	TSNAP_MANIFEST_CHECKSUM_MD5,
	TSNAP_MANIFEST_CHECKSUM_SHA256
} TsnapManifestChecksum;

/* the upper bound of tsnap.max_workers: the pool's size in shared memory */
#define TSNAP_WORKERS_LIMIT		64

extern char *tsnap_s3_endpoint;
extern char *tsnap_s3_region;
extern char *tsnap_s3_bucket;
extern char *tsnap_s3_access_key_id;
extern char *tsnap_s3_secret_access_key;
extern char *tsnap_s3_session_token;
extern char *tsnap_s3_credentials_file;
extern int	tsnap_s3_url_style;
extern char *tsnap_s3_ca_file;
extern int	tsnap_s3_connect_timeout;
extern int	tsnap_s3_request_timeout;
extern int	tsnap_s3_max_attempts;
extern int	tsnap_part_size;
extern int	tsnap_max_parts_in_flight;
extern int	tsnap_max_workers;
extern char *tsnap_key_prefix;
extern int	tsnap_max_snapshot_size;
extern int	tsnap_keep_versions;
extern int	tsnap_keep_for;
extern int	tsnap_progress_notice_interval;
extern bool tsnap_verify_hits;
extern int	tsnap_compression;
extern int	tsnap_gzip_level;
extern int	tsnap_zstd_level;
extern int	tsnap_manifest_checksum;
extern int	tsnap_max_jobs;
extern int	tsnap_job_max_attempts;
extern int	tsnap_job_lock_timeout;
extern int	tsnap_job_history_max_age;
extern int	tsnap_housekeeping_interval;

extern void tsnap_define_settings(void);

#endif							/* TSNAP_SETTINGS_H */
