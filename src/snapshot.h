/*-------------------------------------------------------------------------
 *
 * snapshot.h
 *	  Declarations shared by the snapshot side of tsnap: the SQL entry points
 *	  (snapshot.c), keys and fingerprints (snapshot_key.c), the catalog of
 *	  uploaded snapshots (snapshot_catalog.c), the shared-memory request
 *	  queue (request_queue.c), the workers (worker.c), the scan (scan.c) and
 *	  the CSV encoder (csv_encoder.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_SNAPSHOT_H
#define TSNAP_SNAPSHOT_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

/* S3 allows keys of up to 1024 bytes */
#define TSNAP_KEY_MAX			1025
#define TSNAP_FINGERPRINT_LEN	16
#define TSNAP_ETAG_MAX			128

/* What a snapshot request produced: the manifest tsnap_snapshot_info shows. */
typedef struct TsnapSnapshotResult
{
	char		key[TSNAP_KEY_MAX];
	int64		rows_version;
	int64		rows;
	int64		bytes;
	char		etag[TSNAP_ETAG_MAX];
	int			parts;			/* 0 = a single PutObject */
	bool		hit;
	TimestampTz created_at;
	int64		timeline;		/* the WAL timeline it was recorded on */
} TsnapSnapshotResult;

/*
 * version_seen of a request whose worker is taking its snapshot; before
 * that it is TSNAP_VERSION_UNKNOWN, after it the version.
 */
#define TSNAP_VERSION_UNKNOWN	(-1)
#define TSNAP_VERSION_PENDING	(-2)

/* The caller's side of a request, as the worker needs it. */
typedef struct TsnapRequestParams
{
	Oid			dboid;
	Oid			relid;
	Oid			roleid;			/* the caller's current user */
	int64		min_version;	/* the version the caller saw */
	int64		max_bytes;		/* tsnap.max_snapshot_size; 0 = none */
	char		stale_key[TSNAP_KEY_MAX];	/* a hit whose object vanished */
} TsnapRequestParams;

/* An error as it travels from the worker back to the caller. */
typedef struct TsnapRequestError
{
	int			sqlerrcode;
	char		message[1024];
	char		detail[1024];
	char		hint[512];
} TsnapRequestError;

/* csv_encoder.c */
typedef struct TsnapCsvEncoder
{
	TupleDesc	tupdesc;
	int			natts;
	FmgrInfo   *out_funcs;
	MemoryContext rowcxt;
	int64		rows;
} TsnapCsvEncoder;

extern void tsnap_csv_begin(TsnapCsvEncoder *enc, TupleDesc tupdesc);
extern void tsnap_csv_header(TsnapCsvEncoder *enc, StringInfo out);
extern void tsnap_csv_row(TsnapCsvEncoder *enc, const Datum *values,
						  const bool *nulls, StringInfo out);

/* output_settings.c */
extern const char *const tsnap_output_settings[][2];
extern void tsnap_pin_output_settings(void);
extern void tsnap_check_output_settings(const char *relname);

/* snapshot_key.c */
extern void tsnap_fingerprint(Relation rel, char *out);
extern void tsnap_build_key(Oid relid, const pg_uuid_t *tracking_id,
							int64 version, const char *fingerprint, char *out);
extern char *tsnap_cluster_key_prefix(void);

/* snapshot_catalog.c */
extern int64 tsnap_read_tracking(Oid relid, pg_uuid_t *tracking_id);
extern bool tsnap_lookup_snapshot(Oid relid, const pg_uuid_t *tracking_id,
								  int64 version, const char *fingerprint,
								  TsnapSnapshotResult *result);
extern void tsnap_record_upload_intent(const char *key);
extern void tsnap_apply_retention_all(void);
extern bool tsnap_record_snapshot(Oid relid, const pg_uuid_t *tracking_id,
								  const char *fingerprint,
								  const char *stale_key,
								  TsnapSnapshotResult *result);

/* retention.c */
extern void tsnap_delete_pending(void);
extern void tsnap_sweep_abandoned_uploads(void);

/* request_queue.c */
extern void tsnap_queue_request_shmem(void);
extern bool tsnap_queue_available(void);
extern void tsnap_queue_run(const TsnapRequestParams *params,
							TsnapSnapshotResult *result);
extern bool tsnap_queue_take(int worker, TsnapRequestParams *params);
extern bool tsnap_queue_abandoned(int worker);
extern bool tsnap_queue_begin_streaming(int worker);
extern void tsnap_queue_publish_version(int worker, int64 version);
extern void tsnap_queue_set_upload_key(int worker, const char *key);
extern bool tsnap_queue_key_in_progress(const char *key);
extern void tsnap_queue_finish(int worker, const TsnapSnapshotResult *result,
							   const TsnapRequestError *error);
extern void tsnap_queue_worker_exit(int worker);
extern Oid	tsnap_queue_worker_database(int worker, pid_t pid);

/* worker.c */
extern PGDLLEXPORT void tsnap_worker_main(Datum arg);
extern bool tsnap_worker_launch(int worker);

/* scan.c */
extern void tsnap_build_snapshot(int worker, const TsnapRequestParams *params,
								 TsnapSnapshotResult *result);
extern void tsnap_scan_abort_upload(void);

/* snapshot.c: the caller's checks, which the worker repeats as the caller */
extern void tsnap_check_select(Relation rel);
extern void tsnap_check_rls(Relation rel);

#endif							/* TSNAP_SNAPSHOT_H */
