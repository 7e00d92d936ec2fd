/*-------------------------------------------------------------------------
 *
 * credentials_file.c
 *	  S3 credentials from a file (tsnap.s3_credentials_file).
 *
 * The file is in the AWS shared-credentials format that awscli and the SDKs
 * read (~/.aws/credentials); tsnap reads its [default] profile:
 *
 *	 [default]
 *	 aws_access_key_id = ...
 *	 aws_secret_access_key = ...
 *	 aws_session_token = ...		(optional)
 *
 * Why a file as well as the tsnap.s3_* settings: a reload that changes a
 * setting makes PostgreSQL log its new value, and the file is read on every
 * use, so keys rotate by rewriting it, with no reload at all.  Like
 * ssl_key_file, the file must not be readable by other users.
 *
 * Values are never printed: errors name the file, the line number or the
 * missing key, nothing more.  The caller wipes the strings once the S3
 * client has copied them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "common/string.h"
#include "lib/stringinfo.h"
#include "storage/fd.h"

#include "store/credentials_file.h"

#define PROFILE "default"

static void wipe_string(char *s);

/* Checked on the open file, so that the file checked is the file read. */
static void
check_permissions(FILE *f, const char *path)
{
	struct stat st;

	if (fstat(fileno(f), &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat S3 credentials file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("S3 credentials file \"%s\" is not a regular file", path)));

	/* the rule PostgreSQL applies to ssl_key_file */
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))) ||
		(st.st_uid != geteuid() && st.st_uid != 0))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("S3 credentials file \"%s\" has group or world access, or a foreign owner", path),
				 errdetail("The file must be owned by the database user with permissions u=rw (0600) or less, or by root with permissions u=rw,g=r (0640) or less.")));
}

/* Trim ASCII blanks at both ends, in place. */
static char *
trim(char *s)
{
	char	   *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
					   end[-1] == '\r' || end[-1] == '\n'))
		end--;
	*end = '\0';
	return s;
}

/*
 * Read the [default] profile of path into creds (palloc'd strings, NULL
 * where absent).  Raises on an unreadable or malformed file, or one without
 * both keys.
 */
void
tsnap_read_credentials_file(const char *path, TsnapCredentials *creds)
{
	FILE	   *f;
	StringInfoData line;
	bool		in_profile = false;
	int			lineno = 0;

	memset(creds, 0, sizeof(*creds));
	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open S3 credentials file \"%s\": %m", path)));
	check_permissions(f, path);

	initStringInfo(&line);
	while (pg_get_line_buf(f, &line))
	{
		char	   *s = trim(line.data);
		char	   *eq;
		char	   *name;
		char	  **slot;

		lineno++;
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[')
		{
			char	   *close = strchr(s, ']');

			if (close == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_CONFIG_FILE_ERROR),
						 errmsg("S3 credentials file \"%s\" has a malformed section header at line %d",
								path, lineno)));
			*close = '\0';
			in_profile = strcmp(trim(s + 1), PROFILE) == 0;
			continue;
		}
		if (!in_profile)
			continue;
		eq = strchr(s, '=');
		if (eq == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("S3 credentials file \"%s\" has a line without \"=\" at line %d",
							path, lineno)));
		*eq = '\0';
		name = trim(s);
		if (pg_strcasecmp(name, "aws_access_key_id") == 0)
			slot = &creds->access_key_id;
		else if (pg_strcasecmp(name, "aws_secret_access_key") == 0)
			slot = &creds->secret_access_key;
		else if (pg_strcasecmp(name, "aws_session_token") == 0)
			slot = &creds->session_token;
		else
			continue;			/* region and the like belong elsewhere */
		if (*slot)
			wipe_string(*slot);
		*slot = pstrdup(trim(eq + 1));
	}
	if (ferror(f))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read S3 credentials file \"%s\": %m", path)));
	FreeFile(f);
	explicit_bzero(line.data, line.maxlen);
	pfree(line.data);

	if (creds->access_key_id == NULL || creds->access_key_id[0] == '\0' ||
		creds->secret_access_key == NULL || creds->secret_access_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("S3 credentials file \"%s\" has no aws_access_key_id and aws_secret_access_key in its [%s] profile",
						path, PROFILE)));
}

static void
wipe_string(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	pfree(s);
}

/* Wipe and free what tsnap_read_credentials_file returned. */
void
tsnap_wipe_credentials(TsnapCredentials *creds)
{
	wipe_string(creds->access_key_id);
	wipe_string(creds->secret_access_key);
	wipe_string(creds->session_token);
	memset(creds, 0, sizeof(*creds));
}
