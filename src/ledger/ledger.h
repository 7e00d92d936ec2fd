/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  What tsnap knows of the objects it wrote: the keys and fingerprints
 *	  that name them (key.c), the read-only lookups of a table's current
 *	  snapshot for the hit path and of a key for restores (lookup.c), the
 *	  ledger proper, which is the
 *	  only writer of tsnap.snapshots and tsnap.pending_deletes and holds the
 *	  retention rules (ledger.c), the deletes and sweeps of objects that
 *	  are no longer kept (retention.c), and the manifest beside each object
 *	  (manifest.c) with its checksum (checksum.c).
 *
 * This folder calls common/, export/ (a format's suffix and fingerprint
 * tag) and store/; it reads tsnap.tracked_tables but calls nothing of
 * tracking/.  Keys a live worker is writing are given to it as a
 * callback, so it does not depend on jobs/ either.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_LEDGER_H
#define TSNAP_LEDGER_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

#include "export/export.h"
#include "store/store.h"

/* a key with its NUL */
#define TSNAP_KEY_SIZE			(TSNAP_OBJECT_KEY_MAX + 1)
#define TSNAP_BUCKET_SIZE		(TSNAP_BUCKET_NAME_MAX + 1)
#define TSNAP_FINGERPRINT_LEN	16

/* A snapshot as the ledger records it and tsnap_snapshot_info shows it. */
typedef struct TsnapSnapshotResult
{
	char		key[TSNAP_KEY_SIZE];
	int64		rows_version;
	int64		rows;
	int64		bytes;
	char		etag[TSNAP_ETAG_MAX];
	int			parts;			/* 0 = a single PutObject */
	bool		hit;
	TimestampTz created_at;
	int64		timeline;		/* the WAL timeline it was recorded on */
	TsnapCompression compression;
	char		bucket[TSNAP_BUCKET_SIZE];	/* where the object lives */
} TsnapSnapshotResult;

/* Does a live worker write this key right now? */
typedef bool (*TsnapKeyInFlight) (const char *key);

/*
 * The manifest of the object at key is at key || TSNAP_MANIFEST_SUFFIX, a
 * naming contract with readers; keys leave room for it.
 */
#define TSNAP_MANIFEST_SUFFIX	".manifest.json"
#define TSNAP_MANIFEST_FORMAT_VERSION	1

/* key.c */
extern void tsnap_fingerprint(Relation rel, const TsnapFormat *format,
							  TsnapCompression compression, char *out);
extern void tsnap_build_key(Oid relid, const pg_uuid_t *tracking_id,
							int64 version, const char *fingerprint,
							const TsnapFormat *format,
							TsnapCompression compression, char *out);
extern char *tsnap_cluster_key_prefix(void);

/* lookup.c */
extern bool tsnap_lookup_snapshot(Oid relid, const pg_uuid_t *tracking_id,
								  int64 version, const char *fingerprint,
								  TsnapCompression compression,
								  TsnapSnapshotResult *result);

/* A key tsnap.snapshots records: whose snapshot it is, and where it lives. */
typedef struct TsnapRecordedKey
{
	Oid			relid;
	pg_uuid_t	tracking_id;
	int64		rows_version;
	char	   *endpoint;
	char	   *bucket;
} TsnapRecordedKey;

extern bool tsnap_lookup_key(const char *key, TsnapRecordedKey *recorded);

/* ledger.c */
extern void tsnap_ledger_record_intent(const char *key);
extern bool tsnap_ledger_record(Oid relid, const pg_uuid_t *tracking_id,
								const char *fingerprint,
								const char *stale_key,
								TsnapSnapshotResult *result);
extern void tsnap_ledger_retire_tables(List *relids);
extern void tsnap_ledger_apply_retention_all(void);

/* ledger.c, the delete queue, for retention.c */
typedef struct TsnapPendingDelete
{
	char	   *key;
	char	   *endpoint;		/* where the object was written */
	char	   *bucket;
} TsnapPendingDelete;

extern void tsnap_ledger_retire_untracked(void);
extern List *tsnap_ledger_due_deletes(int limit, TsnapKeyInFlight in_flight);
extern void tsnap_ledger_delete_done(const char *key, const char *failure);

/* checksum.c: the object's checksum, computed as its bytes go out */
#define TSNAP_CHECKSUM_HEX_SIZE	(64 + 1)	/* SHA-256 in hex, and a NUL */

typedef struct TsnapObjectChecksum TsnapObjectChecksum;

extern TsnapObjectChecksum *tsnap_checksum_begin(int algorithm);
extern void tsnap_checksum_update(TsnapObjectChecksum *c,
								  const char *data, size_t len);
extern const char *tsnap_checksum_final(TsnapObjectChecksum *c, char *hex);
extern const char *tsnap_checksum_name(int algorithm);

/*
 * manifest.c: the manifest of a new snapshot, as the build fills it in
 * (restore/ reads manifests into a type of its own)
 */
typedef struct TsnapNewManifestColumn
{
	char	   *name;
	char	   *type;			/* format_type(atttypid, atttypmod) */
	Oid			type_oid;
	int32		typmod;
	bool		not_null;
} TsnapNewManifestColumn;

typedef struct TsnapNewManifest
{
	/* tsnap_manifest_describe fills these in; names in UTF-8 */
	char	   *database;
	char	   *schema;
	char	   *table;
	int			ncolumns;
	TsnapNewManifestColumn *columns;
	const TsnapFormat *format;
	/* the build the rest */
	const char *compression;	/* the codec's name: "none", "gzip", "zstd" */
	const char *content_type;	/* the object's */
	pg_uuid_t	tracking_id;
	int64		rows_version;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
	const char *key;
	int64		rows;
	int64		bytes;			/* the object's size as stored */
	const char *checksum_algorithm; /* NULL: none */
	char		checksum[TSNAP_CHECKSUM_HEX_SIZE];
	TimestampTz created_at;		/* when the object was completed */
} TsnapNewManifest;

extern TsnapNewManifest *tsnap_manifest_describe(Relation rel,
												 const TsnapFormat *format);
extern char *tsnap_manifest_key(const char *key);
extern void tsnap_manifest_json(const TsnapNewManifest *m, StringInfo out);
extern void tsnap_manifest_write(TsnapStore *store,
								 const TsnapNewManifest *m);

/* retention.c */
extern void tsnap_delete_pending(TsnapKeyInFlight in_flight);
extern void tsnap_sweep_abandoned_uploads(TsnapKeyInFlight in_flight);

/*
 * orphans.c: mark and sweep of the objects no database records (those of
 * dropped databases and of untracked or dropped tables), for the launcher.
 * write_marks runs in a process connected to one database, outside a
 * transaction, and records the tracking ids this database knows (none if
 * tsnap is not installed here) in pg_tsnap/marks/<dboid>.  sweep runs in a
 * process connected to no database: if every database in dboids has marks
 * of this round, it deletes the objects under the cluster prefix whose
 * tracking id no database marked and that were last modified before
 * round_start - tsnap.keep_for; it returns the number deleted, or -1 if it
 * swept nothing because marks were missing.
 */
extern void tsnap_orphans_write_marks(TimestampTz round_start);
extern int	tsnap_orphans_sweep(TimestampTz round_start, const Oid *dboids,
								int ndboids, TsnapKeyInFlight in_flight);

#endif							/* TSNAP_LEDGER_H */
