/*-------------------------------------------------------------------------
 *
 * credentials_file.h
 *	  S3 credentials read from tsnap.s3_credentials_file.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_CREDENTIALS_FILE_H
#define TSNAP_CREDENTIALS_FILE_H

typedef struct TsnapCredentials
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL for none */
} TsnapCredentials;

extern void tsnap_read_credentials_file(const char *path,
										TsnapCredentials *creds);
extern void tsnap_wipe_credentials(TsnapCredentials *creds);

#endif							/* TSNAP_CREDENTIALS_FILE_H */
