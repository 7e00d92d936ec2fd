/*-------------------------------------------------------------------------
 *
 * tsnap.h
 *	  Declarations shared by the PostgreSQL side of tsnap.
 *
 * Each module owns the state it declares here: settings.c owns the GUC
 * variables, bump.c the backend-local list of pending version bumps,
 * catalog.c the lookups of tsnap's catalog relations.  The S3 client under
 * src/s3/ sees none of this; it is plain C.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_H
#define TSNAP_H

#include "nodes/pg_list.h"

/*
 * The triggers tsnap_track installs: a statement-level one on every related
 * table, enabled ALWAYS, and a row-level one on every related leaf table,
 * enabled REPLICA, because logical replication apply fires statement-level
 * triggers only for TRUNCATE.  The row trigger is AFTER, not BEFORE: for
 * UPDATE and DELETE, PostgreSQL locks the old row for BEFORE ROW triggers
 * before it checks whether any is enabled (we measured 0.89x writer
 * throughput at 8 clients with a disabled BEFORE ROW trigger), while for
 * AFTER ROW triggers it skips disabled ones before queueing anything.
 */
#define TSNAP_TRIGGER_NAME		"tsnap_tracking"
#define TSNAP_ROW_TRIGGER_NAME	"tsnap_tracking_replica"
#define TSNAP_SCHEMA_NAME		"tsnap"

/*
 * Shards per table for the version counter.  A backend writes the shard its
 * BackendId maps to, so up to this many concurrent writers never share a row.
 */
#define TSNAP_VERSION_SHARDS	16

/*
 * tsnap.pending_deletes.not_before for the snapshots of a table that is
 * untracked or dropped: a key handed out just before stays readable for
 * tsnap.keep_for (a printf format taking keep_for in seconds).
 */
#define TSNAP_AFTER_KEEP_FOR_SQL \
	"pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => %d)"

/* settings.c */
extern void tsnap_define_settings(void);

/* catalog.c */
typedef struct TsnapCatalogUser
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} TsnapCatalogUser;

extern Oid	tsnap_catalog_relid(const char *relname);
extern Oid	tsnap_trigger_function_oid(void);
extern bool tsnap_catalog_enter(TsnapCatalogUser *saved);
extern void tsnap_catalog_leave(TsnapCatalogUser *saved);
extern bool tsnap_is_tracked(Oid relid);
extern List *tsnap_tracked_among(List *relids);
extern bool tsnap_push_snapshot_if_none(void);

/* errors.c */
extern char *tsnap_relation_literal(Oid relid);
extern void tsnap_raise_no_relation(Oid relid) pg_attribute_noreturn();
extern void tsnap_raise_not_tracked(Oid relid) pg_attribute_noreturn();

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

/* version.c */
extern int64 tsnap_read_version(Oid relid);


#endif							/* TSNAP_H */
