/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Access to tsnap's catalog tables in schema tsnap.
 *
 * Ordinary users have no rights on the catalog, yet their writes must bump
 * versions.  Code that reads or writes the catalog on a user's behalf brackets
 * the work with tsnap_catalog_enter/leave, which switch to the catalog's owner
 * (the role that created the extension) as a security-restricted operation,
 * the way PostgreSQL runs index expressions during maintenance.  If an error
 * escapes in between, transaction or subtransaction abort restores the user.
 *
 * The owner is usually a superuser, and the caller chose the search_path:
 * an operator or function the caller created in a schema on it would run
 * with the owner's rights (pg_catalog has no =(regclass, regclass), so even
 * "tbl = $1" resolves to one).  So enter also sets search_path to
 * "pg_catalog, pg_temp" in a GUC nest level of its own, which leave (or
 * abort) undoes, and tsnap's SQL qualifies every operator besides.
 *
 * Every function here tolerates a database where the extension is absent
 * (the library is loaded cluster-wide, the extension per database) or is
 * being dropped in the current transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common.h"

static int	pin_search_path(void);

/*
 * The catalog's relation OIDs found so far in this backend.  Every hit and
 * every tracked write looks several up; two syscache probes each were a
 * measurable part of a hit.  Only OIDs found are kept, and any relcache
 * invalidation of one of them (DROP EXTENSION sends one for each) empties
 * the cache, so a dropped and re-created extension is found anew.
 */
#define CATALOG_CACHE_SIZE	8

typedef struct CatalogRelid
{
	char		name[NAMEDATALEN];
	Oid			relid;
} CatalogRelid;

static CatalogRelid catalog_cache[CATALOG_CACHE_SIZE];
static int	catalog_cached = 0;
static bool catalog_callback_registered = false;

static void
catalog_cache_inval(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < catalog_cached; i++)
		if (!OidIsValid(relid) || catalog_cache[i].relid == relid)
		{
			catalog_cached = 0;
			return;
		}
}

/*
 * OID of relation tsnap.<relname>, or InvalidOid when the extension is not
 * installed in this database.
 */
Oid
tsnap_catalog_relid(const char *relname)
{
	Oid			nspid;
	Oid			relid;
	int			i;

	for (i = 0; i < catalog_cached; i++)
		if (strcmp(catalog_cache[i].name, relname) == 0)
			return catalog_cache[i].relid;

	nspid = get_namespace_oid(TSNAP_SCHEMA_NAME, true);
	if (!OidIsValid(nspid))
		return InvalidOid;
	relid = get_relname_relid(relname, nspid);
	if (OidIsValid(relid) && catalog_cached < CATALOG_CACHE_SIZE)
	{
		if (!catalog_callback_registered)
		{
			CacheRegisterRelcacheCallback(catalog_cache_inval, (Datum) 0);
			catalog_callback_registered = true;
		}
		strlcpy(catalog_cache[catalog_cached].name, relname, NAMEDATALEN);
		catalog_cache[catalog_cached].relid = relid;
		catalog_cached++;
	}
	return relid;
}

/*
 * OID of index tsnap.<indexname>; raises if the extension is there but the
 * index is not (a damaged install).
 */
Oid
tsnap_catalog_index(const char *indexname)
{
	Oid			indexid = tsnap_catalog_relid(indexname);

	if (!OidIsValid(indexid))
		elog(ERROR, "index tsnap.%s is missing", indexname);
	return indexid;
}

/*
 * OID of tsnap.tracking_trigger(), or InvalidOid when absent.
 */
Oid
tsnap_trigger_function_oid(void)
{
	List	   *name = list_make2(makeString(TSNAP_SCHEMA_NAME),
								  makeString("tracking_trigger"));

	return LookupFuncName(name, 0, NULL, true);
}

/*
 * Switch to the catalog owner.  Returns false, switching nothing, when the
 * extension is not installed in this database.
 */
bool
tsnap_catalog_enter(TsnapCatalogUser *saved)
{
	Oid			relid = tsnap_catalog_relid("version_shards");
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		return false;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&saved->save_userid, &saved->save_sec_context);
	SetUserIdAndSecContext(owner, saved->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->save_nestlevel = pin_search_path();
	return true;
}

/*
 * The same, for work that cannot be done without the extension: raises
 * 55000 when it is not installed in this database.
 */
void
tsnap_catalog_enter_or_raise(TsnapCatalogUser *saved)
{
	if (!tsnap_catalog_enter(saved))
		tsnap_raise_no_extension();
}

void
tsnap_catalog_leave(TsnapCatalogUser *saved)
{
	AtEOXact_GUC(false, saved->save_nestlevel);
	SetUserIdAndSecContext(saved->save_userid, saved->save_sec_context);
}

/*
 * Open a GUC nest level and set search_path to pg_catalog (then pg_temp,
 * which is never searched for functions or operators) in it, for SQL that
 * runs with more rights than its caller.  Returns the level, for
 * AtEOXact_GUC(false, level); transaction abort also undoes it.
 */
static int
pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	return nestlevel;
}

/*
 * Run sql through SPI with nargs arguments (nulls as SPI takes them, or
 * NULL); raises if it fails.  The caller is inside tsnap_catalog_enter when
 * sql touches tsnap's catalog.
 */
void
tsnap_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
		   const char *nulls)
{
	int			rc;

	SPI_connect();
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * Run a query (a SELECT, or an UPDATE ... RETURNING) whose first column is
 * an OID (or a reg* type); its non-null values, as a list in the caller's
 * memory context.  It runs in SPI's read-write mode, so that it sees what
 * the current command itself just changed.
 */
List *
tsnap_query_oids(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	MemoryContext callercxt = CurrentMemoryContext;
	List	   *result = NIL;
	uint64		row;
	int			rc;

	SPI_connect();
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[row],
									  SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old;

		if (isnull)
			continue;
		old = MemoryContextSwitchTo(callercxt);
		result = lappend_oid(result, DatumGetObjectId(d));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return result;
}

/*
 * relids as an oid[] datum, for SQL that takes "= ANY ($1)".
 */
Datum
tsnap_oid_array(List *relids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(relids), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid),
										   true, TYPALIGN_INT));
}

/*
 * A transaction of its own, with a snapshot, for a process that runs no
 * statements of a client (a background worker).  Its statement timestamp
 * is set first: PostgreSQL sets it per client statement, and without that
 * now() in every later transaction of a worker would be the time the
 * worker's first one began, which would date a snapshot recorded minutes
 * later to before its upload (and retention by that date).
 */
void
tsnap_begin_transaction(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
}

void
tsnap_commit_transaction(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * At commit, portals are closed and no snapshot is active, yet SPI needs
 * one.  This pushes the transaction snapshot only in that case, so the
 * common commit path takes no snapshot at all.  Returns whether it pushed;
 * the caller pops it (an error in between is cleaned up by abort).
 */
bool
tsnap_push_snapshot_if_none(void)
{
	if (ActiveSnapshotSet())
		return false;
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}
