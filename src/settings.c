/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  tsnap's configuration parameters (GUCs).
 *
 * This module owns the variables; other modules read them.  Contexts follow
 * impact: the endpoint and credentials are PGC_SIGHUP (one configuration for
 * the whole server, changed with a reload), and the credentials are also
 * superuser-only, kept out of postgresql.conf.sample and out of ALTER SYSTEM,
 * so that SHOW, pg_settings and current_setting() never reveal them to other
 * users.  Nothing in tsnap ever prints their values.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "tsnap.h"
#include "settings.h"

char	   *tsnap_s3_endpoint = NULL;
char	   *tsnap_s3_region = NULL;
char	   *tsnap_s3_bucket = NULL;
char	   *tsnap_s3_access_key_id = NULL;
char	   *tsnap_s3_secret_access_key = NULL;
char	   *tsnap_s3_session_token = NULL;
int			tsnap_s3_url_style = TSNAP_URL_STYLE_PATH;
char	   *tsnap_s3_ca_file = NULL;
int			tsnap_s3_connect_timeout = 10000;
int			tsnap_s3_request_timeout = 300000;
int			tsnap_s3_max_attempts = 5;
int			tsnap_part_size = 8;
int			tsnap_max_parts_in_flight = 4;

static const struct config_enum_entry url_style_options[] = {
	{"path", TSNAP_URL_STYLE_PATH, false},
	{"virtual", TSNAP_URL_STYLE_VIRTUAL, false},
	{NULL, 0, false}
};

#define SECRET_FLAGS (GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_AUTO_FILE)

void
tsnap_define_settings(void)
{
	DefineCustomStringVariable("tsnap.s3_endpoint",
							   "S3 endpoint URL; empty means AWS (https://s3.<region>.amazonaws.com).",
							   NULL, &tsnap_s3_endpoint, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_region",
							   "S3 region used for request signing.",
							   NULL, &tsnap_s3_region, "us-east-1",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_bucket",
							   "S3 bucket that snapshots are written to.",
							   NULL, &tsnap_s3_bucket, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_access_key_id",
							   "S3 access key ID.",
							   NULL, &tsnap_s3_access_key_id, "",
							   PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_secret_access_key",
							   "S3 secret access key.",
							   NULL, &tsnap_s3_secret_access_key, "",
							   PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_session_token",
							   "S3 session token for temporary credentials; empty for none.",
							   NULL, &tsnap_s3_session_token, "",
							   PGC_SIGHUP, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomEnumVariable("tsnap.s3_url_style",
							 "Addressing of the bucket: path (endpoint/bucket/key) or virtual (bucket.endpoint/key).",
							 NULL, &tsnap_s3_url_style, TSNAP_URL_STYLE_PATH,
							 url_style_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("tsnap.s3_ca_file",
							   "File of CA certificates that verify the S3 endpoint; empty for the system's.",
							   "TLS verification is always on for https endpoints.",
							   &tsnap_s3_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.s3_connect_timeout",
							"Time allowed to connect to the S3 endpoint.",
							NULL, &tsnap_s3_connect_timeout, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.s3_request_timeout",
							"Time allowed for one S3 request.",
							NULL, &tsnap_s3_request_timeout, 300000, 1000, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.s3_max_attempts",
							"Attempts per S3 request before a retryable failure is final.",
							NULL, &tsnap_s3_max_attempts, 5, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.part_size",
							"Size of each part of a multipart upload.",
							"At least 5MB, as S3 requires; memory use is part_size times (max_parts_in_flight + 1).",
							&tsnap_part_size, 8, 5, 5120,
							PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.max_parts_in_flight",
							"Parts of one multipart upload sent concurrently.",
							NULL, &tsnap_max_parts_in_flight, 4, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}
