/*-------------------------------------------------------------------------
 *
 * tracking.h
 *	  Change tracking: tsnap_track and tsnap_untrack (tracking.c), the DDL
 *	  event triggers that keep tracking whole (tracking.c), the commit-time
 *	  version bump (bump.c, shards.c, targets.c), the family of a table
 *	  (inheritance.c) and reading a table's rows_version (version.c).
 *
 * Tracking calls common/ and, when a table stops being tracked, ledger/ to
 * retire its snapshots; nothing else.  Snapshots read versions through
 * this header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_TRACKING_H
#define TSNAP_TRACKING_H

#include "nodes/pg_list.h"
#include "utils/uuid.h"

/*
 * The triggers tsnap_track installs: a statement-level one on every related
 * table, enabled ALWAYS, and a row-level one on every related leaf table,
 * enabled REPLICA, because logical replication apply fires statement-level
 * triggers only for TRUNCATE.  The row trigger is AFTER, not BEFORE: for
 * UPDATE and DELETE, PostgreSQL locks the old row for BEFORE ROW triggers
 * before it checks whether any is enabled, which cost writers throughput,
 * while for AFTER ROW triggers it skips disabled ones before queueing
 * anything.
 */
#define TSNAP_TRIGGER_NAME		"tsnap_tracking"
#define TSNAP_ROW_TRIGGER_NAME	"tsnap_tracking_replica"

/*
 * Shards per table for the version counter.  A backend writes the shard its
 * BackendId maps to, so up to this many concurrent writers never share a row.
 */
#define TSNAP_VERSION_SHARDS	16

/* columns of tsnap.tracked_tables and tsnap.version_shards */
#define Anum_tracked_tbl			1
#define Anum_tracked_tracking_id	2
#define Anum_shard_tbl				1
#define Anum_shard_shard			2
#define Anum_shard_bumps			3

/* version.c */
extern int64 tsnap_read_tracking(Oid relid, pg_uuid_t *tracking_id);
extern List *tsnap_tracked_among(List *relids);
extern bool tsnap_is_tracked(Oid relid);
extern Oid	tsnap_tracked_table_by_id(const pg_uuid_t *tracking_id);

/* targets.c */
extern void tsnap_targets_init(void);
extern List *tsnap_targets_of(Oid relid);
extern void tsnap_targets_invalidate_family(Oid relid);

/* shards.c */
extern bool tsnap_shard_add(Oid shards_relid, Oid pkey_relid, Oid tbl,
							int home_shard, int64 n);

/* inheritance.c */
extern List *tsnap_relatives(Oid relid);

/* bump.c */
extern void tsnap_register_xact_callbacks(void);
extern int64 tsnap_pending_bumps_for(Oid relid);
extern void tsnap_set_untracking(bool on);
extern bool tsnap_untracking(void);

#endif							/* TSNAP_TRACKING_H */
