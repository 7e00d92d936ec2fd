/*-------------------------------------------------------------------------
 *
 * common.h
 *	  What every part of tsnap's PostgreSQL side shares: access to tsnap's
 *	  catalog as its owner (catalog.c), the checks a relation must pass to be
 *	  tracked, snapshotted or read (relation_checks.c), the errors more than
 *	  one entry point raises (errors.c), errors that travel whole between
 *	  processes (error_transport.c), and units of a background process's
 *	  work whose failure ends the unit, not the process (run_caught.c).
 *
 * This folder calls nothing else of tsnap's.  Everything above it may call
 * it: tracking/, export/, store/, ledger/, build/, jobs/, launcher/,
 * snapshot/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_COMMON_H
#define TSNAP_COMMON_H

#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/elog.h"
#include "utils/relcache.h"

#define TSNAP_SCHEMA_NAME		"tsnap"

/* catalog.c */
typedef struct TsnapCatalogUser
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} TsnapCatalogUser;

extern Oid	tsnap_catalog_relid(const char *relname);
extern Oid	tsnap_catalog_index(const char *indexname);
extern Oid	tsnap_trigger_function_oid(void);
extern bool tsnap_catalog_enter(TsnapCatalogUser *saved);
extern void tsnap_catalog_enter_or_raise(TsnapCatalogUser *saved);
extern void tsnap_catalog_leave(TsnapCatalogUser *saved);
extern void tsnap_begin_transaction(void);
extern void tsnap_commit_transaction(void);
extern bool tsnap_push_snapshot_if_none(void);
extern Datum tsnap_oid_array(List *relids);
extern void tsnap_exec(const char *sql, int nargs, Oid *argtypes,
					   Datum *values, const char *nulls);
extern List *tsnap_query_oids(const char *sql, int nargs, Oid *argtypes,
							  Datum *values);

/* relation_checks.c: what the table is, and what the current user may do */
typedef enum TsnapRelationUse
{
	TSNAP_USE_TRACK,			/* tsnap_track */
	TSNAP_USE_SNAPSHOT			/* tsnap_snapshot, and the worker's scan */
} TsnapRelationUse;

extern Relation tsnap_open_relation(Oid relid, LOCKMODE lockmode);
extern void tsnap_check_relation_kind(Relation rel, TsnapRelationUse use);
extern void tsnap_check_select(Relation rel);
extern void tsnap_check_rls(Relation rel);

/* errors.c */
extern char *tsnap_relation_literal(Oid relid);
extern void tsnap_raise_no_relation(Oid relid) pg_attribute_noreturn();
extern void tsnap_raise_not_tracked(Oid relid) pg_attribute_noreturn();
extern void tsnap_raise_no_extension(void) pg_attribute_noreturn();

/*
 * error_transport.c: an ErrorData flattened into a buffer of fixed size,
 * for shared memory; every field a client can see travels (a field too
 * long for what is left is cut at a character boundary).
 */
#define TSNAP_FLAT_ERROR_SIZE	4096

typedef struct TsnapFlatError
{
	int			sqlerrcode;
	uint16		len;			/* bytes of data in use */
	char		data[TSNAP_FLAT_ERROR_SIZE];
} TsnapFlatError;

extern void tsnap_error_flatten(const ErrorData *edata, TsnapFlatError *flat);
extern void tsnap_error_set(TsnapFlatError *flat, int sqlerrcode,
							const char *message, const char *hint);
extern void tsnap_error_unflatten(const TsnapFlatError *flat, ErrorData *edata);
extern void tsnap_error_throw(const TsnapFlatError *flat) pg_attribute_noreturn();

/* run_caught.c */
extern bool tsnap_run_caught(void (*fn) (void *arg), void *arg, bool report,
							 ErrorData **edata);

#endif							/* TSNAP_COMMON_H */
