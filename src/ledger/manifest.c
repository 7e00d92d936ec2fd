/*-------------------------------------------------------------------------
 *
 * manifest.c
 *	  The manifest beside each snapshot: a small JSON object at
 *	  <key>.manifest.json that says where the object's rows come from, what
 *	  its columns are, how to read it and how to verify it.
 *
 * The build (build/build.c) describes the table with
 * tsnap_manifest_describe in the caller's part, while the relation is open
 * and locked and the output settings are pinned; fills in what only the
 * upload knows (rows, bytes, checksum); and, once the data object is
 * complete and before the snapshot is recorded, writes the manifest with
 * tsnap_manifest_write in one PutObject.  So a manifest only ever stands
 * beside a complete object, and a build whose manifest cannot be written
 * fails: its upload intent (ledger.c) still covers the data key, and
 * retention (retention.c) deletes <key>.manifest.json with every key it
 * deletes, whether it was written or not.
 *
 * This is in the ledger, not in build/, because the manifest's key is
 * derived from the object's, and retention, which lies below the build,
 * deletes both.
 *
 * The field names and their meanings are a contract with every reader
 * (README.md, "Manifest"); a change to them changes format_version.
 * Names are converted from the server encoding to UTF-8 and every string
 * goes through PostgreSQL's escape_json, so the manifest is UTF-8 JSON
 * whatever the names hold.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "export/export.h"
#include "ledger/ledger.h"
#include "store/store.h"

#define MANIFEST_CONTENT_TYPE	"application/json"

/* s, in the server encoding, as a palloc'd UTF-8 string */
static char *
to_utf8(const char *s)
{
	return pstrdup(pg_server_to_any(s, strlen(s), PG_UTF8));
}

/*
 * Describe rel for its manifest: its names and its columns as the scan's
 * SELECT * returns them (the CSV header's columns: not dropped, in attnum
 * order), each with its type as format_type(atttypid, atttypmod) prints it
 * under the pinned output settings (search_path = pg_catalog, so a type
 * outside pg_catalog is schema-qualified).  Names are converted to UTF-8
 * here, in a transaction, since a conversion may look up its function in
 * the catalog.  Allocated in the current memory context; the build fills
 * in the rest.
 */
TsnapNewManifest *
tsnap_manifest_describe(Relation rel, const TsnapFormat *format)
{
	TsnapNewManifest *m = palloc0(sizeof(TsnapNewManifest));
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			i;

	m->database = to_utf8(get_database_name(MyDatabaseId));
	m->schema = to_utf8(get_namespace_name(RelationGetNamespace(rel)));
	m->table = to_utf8(RelationGetRelationName(rel));
	m->format = format;
	m->columns = palloc0(sizeof(TsnapNewManifestColumn) *
						 Max(tupdesc->natts, 1));
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		TsnapNewManifestColumn *col;

		if (att->attisdropped)
			continue;
		col = &m->columns[m->ncolumns++];
		col->name = to_utf8(NameStr(att->attname));
		col->type = to_utf8(format_type_with_typemod(att->atttypid,
													 att->atttypmod));
		col->type_oid = att->atttypid;
		col->typmod = att->atttypmod;
		col->not_null = att->attnotnull;
	}
	return m;
}

/* The manifest's key for the object at key, palloc'd. */
char *
tsnap_manifest_key(const char *key)
{
	return psprintf("%s%s", key, TSNAP_MANIFEST_SUFFIX);
}

/* A JSON string of s (UTF-8, or ASCII) */
static void
append_string(StringInfo out, const char *s)
{
	escape_json(out, s);
}

static void
append_char(StringInfo out, char c)
{
	char		s[2] = {c, '\0'};

	append_string(out, s);
}

/* "name": at the given indentation */
static void
append_field(StringInfo out, int indent, const char *name)
{
	appendStringInfoSpaces(out, indent);
	escape_json(out, name);
	appendStringInfoString(out, ": ");
}

/* a top-level member whose value is a string, with its line's end */
static void
member_string(StringInfo out, const char *name, const char *value)
{
	append_field(out, 2, name);
	append_string(out, value);
	appendStringInfoString(out, ",\n");
}

/* a top-level member whose value is an integer, with its line's end */
static void
member_int(StringInfo out, const char *name, int64 value)
{
	append_field(out, 2, name);
	appendStringInfo(out, INT64_FORMAT ",\n", value);
}

/* ISO 8601 in UTC, with microseconds: 2024-05-01T12:34:56.123456Z */
static void
append_timestamp(StringInfo out, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	appendStringInfo(out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/*
 * The manifest as JSON, appended to out: one top-level field a line, in
 * the order of the documented schema.  Needs no transaction.
 */
void
tsnap_manifest_json(const TsnapNewManifest *m, StringInfo out)
{
	const TsnapCsvOptions *csv = m->format->csv;
	int			i;

	appendStringInfoString(out, "{\n");
	member_int(out, "format_version", TSNAP_MANIFEST_FORMAT_VERSION);
	member_string(out, "tsnap_version", TSNAP_LIBRARY_VERSION);
	member_string(out, "server_version",
				  GetConfigOption("server_version", false, false));
	member_int(out, "server_version_num",
			   atoi(GetConfigOption("server_version_num", false, false)));
	append_field(out, 2, "system_identifier");
	appendStringInfo(out, "\"" UINT64_FORMAT "\",\n", GetSystemIdentifier());
	member_string(out, "database", m->database);
	member_string(out, "schema", m->schema);
	member_string(out, "table", m->table);
	member_string(out, "tracking_id",
				  DatumGetCString(DirectFunctionCall1(uuid_out,
													  UUIDPGetDatum(&m->tracking_id))));
	member_int(out, "rows_version", m->rows_version);
	member_string(out, "fingerprint", m->fingerprint);
	member_string(out, "key", m->key);

	append_field(out, 2, "columns");
	appendStringInfoChar(out, '[');
	for (i = 0; i < m->ncolumns; i++)
	{
		const TsnapNewManifestColumn *col = &m->columns[i];

		appendStringInfoString(out, i > 0 ? ",\n" : "\n");
		appendStringInfoString(out, "    {\"name\": ");
		append_string(out, col->name);
		appendStringInfoString(out, ", \"type\": ");
		append_string(out, col->type);
		appendStringInfo(out, ", \"type_oid\": %u, \"typmod\": %d, \"not_null\": %s}",
						 col->type_oid, col->typmod,
						 col->not_null ? "true" : "false");
	}
	appendStringInfoString(out, m->ncolumns > 0 ? "\n  ],\n" : "],\n");

	member_int(out, "rows", m->rows);
	member_int(out, "bytes", m->bytes);
	member_string(out, "compression", m->compression);
	member_string(out, "content_type", m->content_type);

	append_field(out, 2, "csv");
	if (csv == NULL)
		appendStringInfoString(out, "null");
	else
	{
		appendStringInfo(out, "{\"header\": %s, \"delimiter\": ",
						 csv->header ? "true" : "false");
		append_char(out, csv->delimiter);
		appendStringInfoString(out, ", \"quote\": ");
		append_char(out, csv->quote);
		appendStringInfoString(out, ", \"escape\": ");
		append_char(out, csv->escape);
		appendStringInfoString(out, ", \"null\": ");
		append_string(out, csv->null);
		appendStringInfoString(out, ", \"encoding\": ");
		append_string(out, GetDatabaseEncodingName());
		appendStringInfoChar(out, '}');
	}
	appendStringInfoString(out, ",\n");

	append_field(out, 2, "output_settings");
	appendStringInfoChar(out, '{');
	for (i = 0; tsnap_output_settings[i][0]; i++)
	{
		appendStringInfoString(out, i > 0 ? ", " : "");
		append_string(out, tsnap_output_settings[i][0]);
		appendStringInfoString(out, ": ");
		append_string(out, tsnap_output_settings[i][1]);
	}
	appendStringInfoString(out, "},\n");

	append_field(out, 2, "checksum");
	if (m->checksum_algorithm == NULL)
		appendStringInfoString(out, "null");
	else
	{
		appendStringInfoString(out, "{\"algorithm\": ");
		append_string(out, m->checksum_algorithm);
		appendStringInfoString(out, ", \"value\": ");
		append_string(out, m->checksum);
		appendStringInfoChar(out, '}');
	}
	appendStringInfoString(out, ",\n");

	append_field(out, 2, "created_at");
	append_timestamp(out, m->created_at);
	appendStringInfoString(out, "\n}\n");
}

/*
 * Write m's manifest at <m->key>.manifest.json, in one PutObject, through
 * store, which the caller opened for the bucket the object is in, without
 * a size cap (tsnap.max_snapshot_size caps the CSV object, not this).
 * Needs no transaction.  Raises on any failure; the object then stays
 * queued for deletion by its upload intent, and retention deletes a
 * manifest that S3 stored although the request failed.
 */
void
tsnap_manifest_write(TsnapStore *store, const TsnapNewManifest *m)
{
	MemoryContext cxt;
	MemoryContext old;
	StringInfoData json;
	TsnapPut   *volatile put;
	TsnapPutResult done;
	char	   *key;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "tsnap manifest",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	initStringInfo(&json);
	tsnap_manifest_json(m, &json);
	key = tsnap_manifest_key(m->key);

	put = tsnap_store_put_begin(store, key, MANIFEST_CONTENT_TYPE);
	PG_TRY();
	{
		if (!tsnap_store_put_write(put, json.data, json.len) ||
			!tsnap_store_put_finish(put, &done))
			elog(ERROR, "manifest \"%s\" exceeds the object store's limit", key);
		put = NULL;
	}
	PG_FINALLY();
	{
		if (put)
			tsnap_store_put_abort(put);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
