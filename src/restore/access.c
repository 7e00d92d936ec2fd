/*-------------------------------------------------------------------------
 *
 * access.c
 *	  Who may restore a key: a caller must never load rows it could not
 *	  SELECT itself.
 *
 * A key is a snapshot of a table of this database when this database's
 * ledger records it (tsnap.snapshots), or when its manifest names this
 * cluster's system identifier and this database and a table tracked here
 * under its tracking_id (a kept key that retention has taken out of the
 * ledger).  Its rows are then that table's, and the caller needs what
 * tsnap_snapshot needs: USAGE on the schema, SELECT on every column, and
 * no row-level security applying to it.  The ledger is checked before
 * anything is fetched, so a caller learns nothing of a recorded key it may
 * not read.
 *
 * Any other key (another cluster's or another database's, or one whose
 * table is gone or untracked) holds rows that nothing here can say who may
 * read.  Loading it is then like COPY FROM a file the server reads, and
 * needs the same: superuser or the privileges of pg_read_server_files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "common/common.h"
#include "ledger/ledger.h"
#include "restore/restore.h"
#include "tracking/tracking.h"

static bool check_may_read(Oid relid, const char *key);

/*
 * Look key up in this database's ledger, and if it is there, check that
 * the current user may read its table (42501 or 0A000 if not).  Runs
 * before anything is fetched.  A recorded key whose table is gone is left
 * to tsnap_restore_check_source, as a key nothing here can vouch for.
 */
void
tsnap_restore_find_source(const char *key, TsnapRestoreSource *source)
{
	TsnapRecordedKey recorded;

	memset(source, 0, sizeof(*source));
	if (tsnap_lookup_key(key, &recorded))
	{
		source->recorded = true;
		source->endpoint = recorded.endpoint;
		source->bucket = recorded.bucket;
		memcpy(&source->tracking_id, &recorded.tracking_id,
			   sizeof(pg_uuid_t));
		if (check_may_read(recorded.relid, key))
		{
			source->relid = recorded.relid;
			source->checked = true;
		}
	}
}

/* Does the manifest say it was written by this cluster? */
static bool
this_cluster(const TsnapManifest *m)
{
	char		sysid[32];

	snprintf(sysid, sizeof(sysid), UINT64_FORMAT, GetSystemIdentifier());
	return strcmp(m->system_identifier, sysid) == 0;
}

/*
 * Raise 42501 unless the current user may read all of relid, as
 * tsnap_snapshot requires; 0A000 if row-level security applies to it.
 * False if the table is gone.
 */
static bool
check_may_read(Oid relid, const char *key)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);

	if (rel == NULL)
		return false;
	tsnap_check_select(rel);
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot restore snapshot \"%s\" of table \"%s\" because row-level security applies to role \"%s\"",
						key, RelationGetRelationName(rel),
						GetUserNameFromId(GetUserId(), false)),
				 errdetail("The snapshot holds every row of the table, also those its policies hide from this role.")));
	table_close(rel, NoLock);
	return true;
}

/*
 * Decide, with the manifest read, whether the current user may load key's
 * rows; raises 42501 if not.  The error names nothing from the manifest
 * but the key the caller gave: the caller may not have the right to know
 * which table it describes.  A recorded key whose manifest names another
 * table than the ledger does is refused (XX001): the manifest beside it
 * is not the one tsnap wrote.
 */
void
tsnap_restore_check_source(const char *key, const TsnapManifest *m,
						   TsnapRestoreSource *source)
{
	if (source->recorded)
	{
		/* not the database name: a database may have been renamed since */
		if (!this_cluster(m) ||
			memcmp(&source->tracking_id, &m->tracking_id,
				   sizeof(pg_uuid_t)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("manifest of snapshot \"%s\" does not match this database's record of it",
							key),
					 errdetail("tsnap.snapshots records the key for another table than the manifest names.")));
	}
	else if (this_cluster(m) &&
			 strcmp(m->database, get_database_name(MyDatabaseId)) == 0)
	{
		TsnapCatalogUser saved;

		if (tsnap_catalog_enter(&saved))
		{
			source->relid = tsnap_tracked_table_by_id(&m->tracking_id);
			tsnap_catalog_leave(&saved);
		}
	}

	if (source->checked ||
		(OidIsValid(source->relid) && check_may_read(source->relid, key)))
		return;

	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to restore snapshot \"%s\"", key),
				 errdetail("It is not a snapshot of a table this database tracks, so tsnap cannot tell who may read its rows."),
				 errhint("Restoring it needs the privileges of COPY FROM a file: superuser or the pg_read_server_files role.")));
}
