/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  tsnap's configuration parameters (GUCs).
 *
 * This module owns the variables; other modules read them.  Contexts follow
 * impact: the endpoint and credentials are PGC_SIGHUP (one configuration for
 * the whole server, changed with a reload), and the credentials are also
 * superuser-only, kept out of postgresql.conf.sample and out of ALTER SYSTEM.
 * GUC_SUPERUSER_ONLY still lets members of pg_read_all_settings (and so
 * pg_monitor) read a value, so the credentials' values never live in their
 * settings at all: the check hook keeps the value in the setting's "extra"
 * (which the GUC machinery stacks, reverts and frees along with the setting)
 * and leaves a mask as the setting's text, so SHOW, current_setting(),
 * pg_settings (reset_val too) and SHOW ALL show "********" to everyone.  A
 * log hook also strips the values from the messages in which PostgreSQL
 * itself would print them.  tsnap.s3_credentials_file names a file to read
 * them from instead (credentials_file.c).
 *
 * tsnap.max_workers sizes shared memory, so it is PGC_POSTMASTER.  The key
 * prefix and retention are PGC_SIGHUP: they must be the same for every
 * session, or one session's snapshots would be invisible to, or deleted by,
 * another's.  max_snapshot_size and verify_hits are per-call limits that a
 * superuser may tighten per session (PGC_SUSET); the caller's value travels
 * with its request to the worker.  tsnap.manifest_checksum is PGC_SIGHUP
 * too: the worker reads it from the configuration, not from the caller.
 *
 * Jobs: tsnap.max_jobs sizes shared memory (PGC_POSTMASTER);
 * job_max_attempts, job_history_max_age and housekeeping_interval are the
 * launcher's and the workers', read from the configuration (PGC_SIGHUP).
 *
 * tsnap.compression only picks the default of the functions' compression
 * argument, which any caller may pass, so it is PGC_USERSET; it travels
 * with the request as that argument does.  The compression levels decide
 * how much CPU the shared workers spend, not what a key holds (a level
 * changes the compressed bytes, never what they decompress to), so they
 * are the administrator's (PGC_SIGHUP) and the worker reads its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "settings.h"

char	   *tsnap_s3_endpoint = NULL;
char	   *tsnap_s3_region = NULL;
char	   *tsnap_s3_bucket = NULL;
/* the credentials' real values: the "extra" of their settings */
char	   *tsnap_s3_access_key_id = NULL;
char	   *tsnap_s3_secret_access_key = NULL;
char	   *tsnap_s3_session_token = NULL;

/* what the settings themselves hold: "" or SECRET_MASK */
static char *access_key_id_shown = NULL;
static char *secret_access_key_shown = NULL;
static char *session_token_shown = NULL;
char	   *tsnap_s3_credentials_file = NULL;
int			tsnap_s3_url_style = TSNAP_URL_STYLE_AUTO;
char	   *tsnap_s3_ca_file = NULL;
int			tsnap_s3_connect_timeout = 10000;
int			tsnap_s3_request_timeout = 300000;
int			tsnap_s3_max_attempts = 5;
int			tsnap_part_size = 8;
int			tsnap_max_parts_in_flight = 4;
int			tsnap_max_workers = 2;
char	   *tsnap_key_prefix = NULL;
int			tsnap_max_snapshot_size = 0;
int			tsnap_keep_versions = 2;
int			tsnap_keep_for = 3600;
int			tsnap_progress_notice_interval = 10000;
bool		tsnap_verify_hits = false;
int			tsnap_compression = TSNAP_COMPRESSION_NONE;
int			tsnap_gzip_level = 1;
int			tsnap_zstd_level = 1;
int			tsnap_manifest_checksum = TSNAP_MANIFEST_CHECKSUM_CRC32;
int			tsnap_max_jobs = 256;
int			tsnap_job_max_attempts = 3;
int			tsnap_job_lock_timeout = 10000;
int			tsnap_job_history_max_age = 7 * 24 * 3600;
int			tsnap_housekeeping_interval = 60000;

static const struct config_enum_entry url_style_options[] = {
	{"auto", TSNAP_URL_STYLE_AUTO, false},
	{"path", TSNAP_URL_STYLE_PATH, false},
	{"virtual", TSNAP_URL_STYLE_VIRTUAL, false},
	{NULL, 0, false}
};

/* the names are the SQL functions' compression argument too (compress.c) */
static const struct config_enum_entry compression_options[] = {
	{"none", TSNAP_COMPRESSION_NONE, false},
	{"gzip", TSNAP_COMPRESSION_GZIP, false},
	{"zstd", TSNAP_COMPRESSION_ZSTD, false},
	{NULL, 0, false}
};

static const struct config_enum_entry checksum_options[] = {
	{"crc32", TSNAP_MANIFEST_CHECKSUM_CRC32, false},
	{"sha256", TSNAP_MANIFEST_CHECKSUM_SHA256, false},
	{"md5", TSNAP_MANIFEST_CHECKSUM_MD5, false},
	{"none", TSNAP_MANIFEST_CHECKSUM_NONE, false},
	{NULL, 0, false}
};

/*
 * The prefix becomes the first segments of every key, so it must be a plain
 * relative path: no empty, "." or ".." segment, and no leading or trailing
 * slash.
 */
static bool
check_key_prefix(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	const char *seg = p;

	if (*p == '\0')
	{
		GUC_check_errdetail("The prefix must not be empty.");
		return false;
	}
	for (;; p++)
	{
		if (*p == '/' || *p == '\0')
		{
			size_t		len = p - seg;

			if (len == 0 || (len == 1 && seg[0] == '.') ||
				(len == 2 && seg[0] == '.' && seg[1] == '.'))
			{
				GUC_check_errdetail("The prefix must be a relative path without empty, \".\" or \"..\" segments.");
				return false;
			}
			if (*p == '\0')
				break;
			seg = p + 1;
		}
		else if ((unsigned char) *p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The prefix must not contain control characters.");
			return false;
		}
	}
	return true;
}

#define SECRET_FLAGS (GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_AUTO_FILE)
#define SECRET_MASK "********"

/*
 * Keep a credential's value in *extra and put the mask (or "", for an unset
 * one) in its place.  Both are malloc'd, as the GUC machinery, which frees
 * them, requires.
 */
static bool
check_secret(char **newval, void **extra, GucSource source)
{
	char	   *value = strdup(*newval);
	char	   *shown = strdup(**newval ? SECRET_MASK : "");

	if (value == NULL || shown == NULL)
	{
		free(value);
		free(shown);
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	free(*newval);
	*newval = shown;
	*extra = value;
	return true;
}

static void
assign_access_key_id(const char *newval, void *extra)
{
	tsnap_s3_access_key_id = extra;
}

static void
assign_secret_access_key(const char *newval, void *extra)
{
	tsnap_s3_secret_access_key = extra;
}

static void
assign_session_token(const char *newval, void *extra)
{
	tsnap_s3_session_token = extra;
}

static const char *const secret_settings[] = {
	"tsnap.s3_access_key_id",
	"tsnap.s3_secret_access_key",
	"tsnap.s3_session_token",
	NULL
};

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * PostgreSQL logs the new value of every setting a reload changes, and the
 * value that a setting refused, secrets included (guc-file.l, guc.c).  Keep
 * those messages for the credentials, without their values.  Installed in
 * the postmaster when tsnap is preloaded, so every process inherits it.
 */
static void
redact_secrets(ErrorData *edata)
{
	static const char *const with_value[][2] = {
		{"parameter \"%s\" changed to \"%s\"",
		"parameter \"%s\" changed (value not logged)"},
		{"invalid value for parameter \"%s\": \"%s\"",
		"invalid value for parameter \"%s\" (value not logged)"},
	};
	size_t		m;
	int			i;

	for (m = 0; m < lengthof(with_value) && edata->message_id; m++)
	{
		if (strcmp(edata->message_id, with_value[m][0]) != 0 ||
			edata->message == NULL)
			continue;
		for (i = 0; secret_settings[i]; i++)
			if (strstr(edata->message, secret_settings[i]) != NULL)
			{
				edata->message = psprintf(with_value[m][1], secret_settings[i]);
				edata->detail = NULL;
				break;
			}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
tsnap_define_settings(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secrets;

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
							   NULL, &access_key_id_shown, "",
							   PGC_SIGHUP, SECRET_FLAGS, check_secret,
							   assign_access_key_id, NULL);
	DefineCustomStringVariable("tsnap.s3_secret_access_key",
							   "S3 secret access key.",
							   NULL, &secret_access_key_shown, "",
							   PGC_SIGHUP, SECRET_FLAGS, check_secret,
							   assign_secret_access_key, NULL);
	DefineCustomStringVariable("tsnap.s3_session_token",
							   "S3 session token for temporary credentials; empty for none.",
							   NULL, &session_token_shown, "",
							   PGC_SIGHUP, SECRET_FLAGS, check_secret,
							   assign_session_token, NULL);
	DefineCustomStringVariable("tsnap.s3_credentials_file",
							   "File with the S3 credentials, in the AWS shared-credentials format; empty to use the tsnap.s3_* settings.",
							   "tsnap reads its [default] profile on every use, so rewriting the file rotates the keys without a reload.",
							   &tsnap_s3_credentials_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("tsnap.s3_url_style",
							 "Addressing of the bucket: path (endpoint/bucket/key), virtual (bucket.endpoint/key), or auto.",
							 "auto is virtual for AWS (an empty tsnap.s3_endpoint) and path for any other endpoint.",
							 &tsnap_s3_url_style, TSNAP_URL_STYLE_AUTO,
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
	/* PostgreSQL refuses new PGC_POSTMASTER settings once it runs */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("tsnap.max_workers",
								"Background workers that may build snapshots at once.",
								"Further requests wait in a queue.",
								&tsnap_max_workers, 2, 1, TSNAP_WORKERS_LIMIT,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("tsnap.max_jobs",
								"Most snapshot jobs shared memory holds at once: queued, running, and finished ones not yet read back.",
								"Finished jobs stay in tsnap.job_history after they leave shared memory.",
								&tsnap_max_jobs, 256, 16, 100000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}
	DefineCustomStringVariable("tsnap.key_prefix",
							   "Prefix of every object key tsnap writes.",
							   NULL, &tsnap_key_prefix, "table-snapshots",
							   PGC_SIGHUP, 0, check_key_prefix, NULL, NULL);
	DefineCustomIntVariable("tsnap.max_snapshot_size",
							"Largest CSV object a snapshot may produce; 0 means no limit.",
							NULL, &tsnap_max_snapshot_size, 0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.keep_versions",
							"Snapshots kept per table; older ones are deleted from the bucket.",
							NULL, &tsnap_keep_versions, 2, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.keep_for",
							"How long a superseded snapshot stays readable.",
							"A snapshot is deleted only once tsnap.keep_versions newer ones exist and it was superseded at least this long ago, so a key handed out stays readable at least this long.",
							&tsnap_keep_for, 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.progress_notice_interval",
							"How often a caller waiting for a snapshot is sent a NOTICE with its progress; 0 turns it off.",
							NULL, &tsnap_progress_notice_interval, 10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.job_max_attempts",
							"Attempts of a snapshot job whose worker died (crash, restart, terminate) before it is failed.",
							"An error of the request itself (privileges, size limit, a dropped table) fails the job at once.",
							&tsnap_job_max_attempts, 3, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.job_lock_timeout",
							"How long a snapshot job that nobody waits for may wait for the locks its scan needs.",
							"A job some session waits for (tsnap_snapshot, tsnap_wait) waits as long as that session does.",
							&tsnap_job_lock_timeout, 10000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.job_history_max_age",
							"How long finished snapshot jobs are kept in tsnap.job_history.",
							NULL, &tsnap_job_history_max_age, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.housekeeping_interval",
							"How often the tsnap launcher visits each database for housekeeping.",
							"Retries queued deletes, sweeps abandoned uploads and orphaned objects, prunes job history and restarts interrupted jobs.",
							&tsnap_housekeeping_interval, 60000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("tsnap.verify_hits",
							 "Check with a HEAD request that a cached snapshot still exists before returning its key.",
							 "For buckets whose objects may be removed outside tsnap, such as by lifecycle rules.",
							 &tsnap_verify_hits, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("tsnap.compression",
							 "Compression of new snapshots when a call names none: none, gzip or zstd.",
							 "Each compression is a snapshot of its own, with its own key (.csv, .csv.gz, .csv.zst).",
							 &tsnap_compression, TSNAP_COMPRESSION_NONE,
							 compression_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tsnap.gzip_level",
							"gzip compression level of snapshots (1 fastest, 9 smallest).",
							NULL, &tsnap_gzip_level, 1, 1, 9,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	/*
	 * A worker's zstd state grows with the level (1.3MB at 1, 3.5MB at 3,
	 * 90MB at 19); levels above 19 need zstd's --ultra windows and are not
	 * offered.  Both defaults are the fastest level: bench/compression.sh
	 * found gzip 6 and zstd 3 spending 1.5 to 2 times the CPU of level 1 on
	 * text for 9-16% fewer bytes, in the time a caller waits for a miss.
	 */
	DefineCustomIntVariable("tsnap.zstd_level",
							"zstd compression level of snapshots (1 fastest, 19 smallest).",
							NULL, &tsnap_zstd_level, 1, 1, 19,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("tsnap.manifest_checksum",
							 "Algorithm of the object checksum in each snapshot's manifest: crc32, sha256, md5, or none.",
							 "none leaves the manifest without a checksum; it exists to measure what the checksum costs (bench/manifest_checksum.sh).",
							 &tsnap_manifest_checksum, TSNAP_MANIFEST_CHECKSUM_CRC32,
							 checksum_options,
							 PGC_SIGHUP, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}
