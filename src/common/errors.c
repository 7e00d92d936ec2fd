/*-------------------------------------------------------------------------
 *
 * errors.c
 *	  Errors that more than one entry point raises, written once.
 *
 * Names in hints are written as SQL literals of the schema-qualified name
 * (quote_literal of quote_qualified_identifier), so that a hint can be
 * pasted as it stands, whatever quotes or semicolons the name holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "common.h"

/*
 * relid's schema-qualified name as a SQL literal, ready for a hint, or NULL
 * if the relation is gone.
 */
char *
tsnap_relation_literal(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname;

	if (relname == NULL)
		return NULL;
	nspname = get_namespace_name(get_rel_namespace(relid));
	if (nspname == NULL)
		return NULL;
	return quote_literal_cstr(quote_qualified_identifier(nspname, relname));
}

/*
 * Raise 42P01 for a relation OID that names nothing.
 */
void
tsnap_raise_no_relation(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_TABLE),
			 errmsg("relation with OID %u does not exist", relid)));
}

/*
 * Raise 55000 for a table that is not tracked (42P01 if it is gone).
 */
void
tsnap_raise_not_tracked(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *literal = tsnap_relation_literal(relid);

	if (relname == NULL || literal == NULL)
		tsnap_raise_no_relation(relid);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" is not tracked", relname),
			 errhint("Call tsnap_track(%s) first.", literal)));
}

/*
 * Raise 55000 for a database where the library is loaded but the extension
 * is not installed.
 */
void
tsnap_raise_no_extension(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("extension \"tsnap\" is not installed in this database"),
			 errhint("Run CREATE EXTENSION tsnap in this database first.")));
}
