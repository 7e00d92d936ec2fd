/*-------------------------------------------------------------------------
 *
 * restore.h
 *	  Loading a snapshot back into a table: tsnap_restore (restore.c), the
 *	  manifest beside each snapshot and the check of its columns against
 *	  the target (manifest.c), who may read a key's rows (access.c), the
 *	  versions each table holds, in tsnap.restores (history.c), the bytes
 *	  from the object store through checksum and decompression (stream.c),
 *	  and COPY FROM fed by that stream (load.c).
 *
 * Everything runs in the caller's backend and transaction, as the caller:
 * an error anywhere rolls back every row loaded or deleted.  This folder
 * calls common/, store/, ledger/ (which key is which snapshot) and
 * tracking/ (versions), and uses settings.h's names of compressions;
 * nothing calls it but SQL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_RESTORE_H
#define TSNAP_RESTORE_H

#include "nodes/pg_list.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

#include "settings.h"
#include "store/store.h"

/* "<key>.manifest.json": the naming contract with the manifest's writer */
#define TSNAP_MANIFEST_SUFFIX	".manifest.json"
/* the manifest format this release reads */
#define TSNAP_MANIFEST_FORMAT	1
/* a manifest is read whole: 1600 columns with long names stay far below */
#define TSNAP_MANIFEST_MAX		((size_t) 4 * 1024 * 1024)

typedef enum TsnapRestoreMode
{
	TSNAP_RESTORE_REQUIRE_EMPTY,
	TSNAP_RESTORE_APPEND,
	TSNAP_RESTORE_REPLACE
} TsnapRestoreMode;

typedef enum TsnapChecksum
{
	TSNAP_CHECKSUM_SHA256,
	TSNAP_CHECKSUM_MD5,
	TSNAP_CHECKSUM_CRC32
} TsnapChecksum;

typedef struct TsnapManifestColumn
{
	char	   *name;
	char	   *type;			/* as format_type prints it */
} TsnapManifestColumn;

/* What tsnap_restore uses of a manifest; every string palloc'd. */
typedef struct TsnapManifest
{
	char	   *manifest_key;	/* where it was read from */
	char	   *system_identifier;	/* decimal, of the cluster that wrote it */
	char	   *database;
	char	   *schema;
	char	   *table;
	pg_uuid_t	tracking_id;
	int64		rows_version;
	char	   *key;			/* the data object's key */
	int			ncolumns;
	TsnapManifestColumn *columns;
	int64		bytes;			/* the object's size as stored */
	TsnapCompression compression;
	const char *compression_name;
	bool		header;
	char	   *delimiter;
	char	   *quote;
	char	   *escape;
	char	   *null_string;
	char	   *encoding;
	TsnapChecksum checksum;
	const char *checksum_name;
	char	   *checksum_value; /* lower-case hex */
	List	   *settings;		/* DefElem: the output settings, name -> text */
} TsnapManifest;

/* manifest.c */
extern TsnapManifest *tsnap_manifest_read(TsnapStore *store, const char *key);
extern List *tsnap_manifest_check_columns(const TsnapManifest *manifest,
										  Relation target);

/* access.c */
typedef struct TsnapRestoreSource
{
	bool		recorded;		/* the key is in this database's ledger */
	pg_uuid_t	tracking_id;	/* the ledger's, for a recorded key */
	Oid			relid;			/* the source table here, or InvalidOid */
	bool		checked;		/* the caller may read all of relid */
	char	   *endpoint;		/* where a recorded key was written, or NULL */
	char	   *bucket;
} TsnapRestoreSource;

extern void tsnap_restore_find_source(const char *key,
									  TsnapRestoreSource *source);
extern void tsnap_restore_check_source(const char *key,
									   const TsnapManifest *manifest,
									   TsnapRestoreSource *source);

/* history.c */
extern int64 tsnap_restore_current_version(Oid target,
										   const TsnapManifest *manifest);
extern void tsnap_restore_record(Oid target, const TsnapManifest *manifest,
								 TsnapRestoreMode mode, int64 rows);

/* stream.c */
typedef struct TsnapRestoreStream TsnapRestoreStream;

extern TsnapRestoreStream *tsnap_restore_stream_open(TsnapStore *store,
													 const TsnapManifest *manifest);
extern int	tsnap_restore_stream_read(TsnapRestoreStream *stream, char *out,
									  int len);

/* load.c */
typedef struct TsnapLoad TsnapLoad;

extern TsnapLoad *tsnap_load_prepare(Relation target, List *attnames,
									 const TsnapManifest *manifest);
extern uint64 tsnap_load_run(TsnapLoad *load, TsnapRestoreStream *stream);

#endif							/* TSNAP_RESTORE_H */
