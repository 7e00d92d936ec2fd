/*-------------------------------------------------------------------------
 *
 * build.h
 *	  Building one snapshot, in a worker: the caller's part (lock, checks,
 *	  version, scan as the caller), then the upload, the intent and the
 *	  record (build.c).
 *
 * A build reports each phase through a callback, which is how the worker
 * tells waiting callers what it does (jobs/) without this folder knowing
 * of requests or shared memory.  This folder calls common/, tracking/
 * (versions), export/ (scan and format), store/ and ledger/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_BUILD_H
#define TSNAP_BUILD_H

#include "ledger/ledger.h"

/* What to build, and for whom. */
typedef struct TsnapBuildRequest
{
	Oid			dboid;
	Oid			relid;
	Oid			roleid;			/* the caller's current user */
	int64		min_version;	/* the version the caller saw */
	int64		max_bytes;		/* tsnap.max_snapshot_size; 0 = none */
	TsnapCompression compression;	/* part of the key: its own snapshot */
	char		stale_key[TSNAP_KEY_SIZE];	/* a hit whose object vanished */
} TsnapBuildRequest;

typedef enum TsnapBuildPhase
{
	TSNAP_BUILD_LOCKED,			/* table locked; the version comes next */
	TSNAP_BUILD_VERSION,		/* the version the scan sees is known */
	TSNAP_BUILD_STREAMING,		/* rows are about to go to key; returning
								 * false gives the build up */
	TSNAP_BUILD_PROGRESS		/* rows, bytes and parts so far */
} TsnapBuildPhase;

typedef struct TsnapBuildProgress
{
	int64		rows_version;
	const char *key;
	int64		rows;
	int64		bytes;
	int			parts;			/* parts the store has acknowledged */
} TsnapBuildProgress;

typedef bool (*TsnapBuildReport) (TsnapBuildPhase phase,
								  const TsnapBuildProgress *progress,
								  void *arg);

extern void tsnap_build(const TsnapBuildRequest *request,
						TsnapBuildReport report, void *arg,
						TsnapSnapshotResult *result);
extern void tsnap_build_abort_upload(void);

#endif							/* TSNAP_BUILD_H */
