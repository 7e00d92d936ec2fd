/*-------------------------------------------------------------------------
 *
 * manifest.c
 *	  The manifest beside a snapshot, as tsnap_restore reads it: fetched
 *	  whole from "<key>.manifest.json", parsed with PostgreSQL's own jsonb
 *	  input, checked field by field, and its columns compared with the
 *	  target's before a byte of data is read.
 *
 * The manifest's writer and this reader share a contract (README,
 * "Restore"): format_version 1, names and types of the columns as
 * format_type prints them, the CSV options, the compression and a
 * checksum of the object as stored.  A field that is missing or of the
 * wrong kind makes the manifest unreadable (22P02); a format, compression
 * or checksum this release does not know is not supported (0A000).  Every
 * error raised while the manifest is read names it (an error context).
 *
 * Columns are matched by name, and must come in the same order and have
 * the same types (compared as format_type text, because type OIDs differ
 * between clusters).  Types are printed with search_path pinned to
 * pg_catalog, as the manifest's writer prints them, so a type outside
 * pg_catalog is schema-qualified on both sides; the text under the
 * caller's search_path is accepted too, for a manifest written with the
 * type's schema on the path.  A column of the target that the snapshot
 * lacks is fine when COPY can fill it without the file: it has a default,
 * is an identity or generated column, or may be NULL.  A generated column
 * that the snapshot has values for cannot be loaded, since COPY refuses to
 * write generated columns; it is reported as a difference.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/pg_attribute.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "restore/restore.h"

/* ---- reading fields ---- */

static void
manifest_error_context(void *arg)
{
	errcontext("manifest \"%s\"", (const char *) arg);
}

static void raise_bad_field(const char *name, const char *what)
			pg_attribute_noreturn();

/* The manifest cannot be read: 22P02, naming the field and what is wrong. */
static void
raise_bad_field(const char *name, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid tsnap manifest: field \"%s\" %s", name, what)));
}

/* Member name of object c, of JSON type want; NULL if absent and optional. */
static JsonbValue *
member(JsonbContainer *c, const char *name, enum jbvType want, bool required)
{
	JsonbValue *v = getKeyJsonValueFromContainer(c, name, strlen(name), NULL);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			raise_bad_field(name, "is missing");
		return NULL;
	}
	if (want == jbvObject || want == jbvArray)
	{
		if (v->type != jbvBinary ||
			(want == jbvObject && !JsonContainerIsObject(v->val.binary.data)) ||
			(want == jbvArray && !JsonContainerIsArray(v->val.binary.data)))
			raise_bad_field(name, want == jbvObject ?
							"is not an object" : "is not an array");
	}
	else if (v->type != want)
		raise_bad_field(name, want == jbvString ? "is not a string" :
						want == jbvNumeric ? "is not a number" :
						"is not a boolean");
	return v;
}

static char *
string_member(JsonbContainer *c, const char *name)
{
	JsonbValue *v = member(c, name, jbvString, true);

	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An integral JSON number, as int64. */
static int64
int_member(JsonbContainer *c, const char *name)
{
	JsonbValue *v = member(c, name, jbvNumeric, true);
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(v->val.numeric)));
	const char *p = text[0] == '-' ? text + 1 : text;

	if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
		raise_bad_field(name, "is not an integer");
	return pg_strtoint64(text);
}

static JsonbContainer *
object_member(JsonbContainer *c, const char *name)
{
	return member(c, name, jbvObject, true)->val.binary.data;
}

/* ---- the manifest ---- */

static void
read_columns(JsonbContainer *root, TsnapManifest *m)
{
	JsonbContainer *cols = member(root, "columns", jbvArray,
								  true)->val.binary.data;
	int			n = JsonContainerSize(cols);
	int			i;

	if (n == 0)
		raise_bad_field("columns", "is empty");
	m->ncolumns = n;
	m->columns = palloc0(sizeof(TsnapManifestColumn) * n);
	for (i = 0; i < n; i++)
	{
		JsonbValue *col = getIthJsonbValueFromContainer(cols, i);

		if (col == NULL || col->type != jbvBinary ||
			!JsonContainerIsObject(col->val.binary.data))
			raise_bad_field("columns", "holds an element that is not an object");
		m->columns[i].name = string_member(col->val.binary.data, "name");
		m->columns[i].type = string_member(col->val.binary.data, "type");
	}
}

/* csv: the options COPY gets, as the writer used them */
static void
read_csv(JsonbContainer *root, TsnapManifest *m)
{
	JsonbContainer *csv = object_member(root, "csv");

	m->header = member(csv, "header", jbvBool, true)->val.boolean;
	m->delimiter = string_member(csv, "delimiter");
	m->quote = string_member(csv, "quote");
	m->escape = string_member(csv, "escape");
	m->null_string = string_member(csv, "null");
	m->encoding = string_member(csv, "encoding");
}

static void
read_compression(JsonbContainer *root, TsnapManifest *m)
{
	char	   *name = string_member(root, "compression");

	if (strcmp(name, "none") == 0)
		m->compression = TSNAP_COMPRESSION_NONE;
	else if (strcmp(name, "gzip") == 0)
		m->compression = TSNAP_COMPRESSION_GZIP;
	else if (strcmp(name, "zstd") == 0)
		m->compression = TSNAP_COMPRESSION_ZSTD;
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("compression \"%s\" is not supported", name),
				 errhint("This release of tsnap reads \"none\", \"gzip\" and \"zstd\".")));
	m->compression_name = name;
}

static void
read_checksum(JsonbContainer *root, TsnapManifest *m)
{
	JsonbContainer *sum = object_member(root, "checksum");
	char	   *algorithm = string_member(sum, "algorithm");
	char	   *value = string_member(sum, "value");
	int			hexlen;
	int			i;

	if (strcmp(algorithm, "sha256") == 0)
	{
		m->checksum = TSNAP_CHECKSUM_SHA256;
		hexlen = 64;
	}
	else if (strcmp(algorithm, "md5") == 0)
	{
		m->checksum = TSNAP_CHECKSUM_MD5;
		hexlen = 32;
	}
	else if (strcmp(algorithm, "crc32") == 0)
	{
		m->checksum = TSNAP_CHECKSUM_CRC32;
		hexlen = 8;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("checksum algorithm \"%s\" is not supported",
						algorithm),
				 errhint("This release of tsnap verifies \"sha256\", \"md5\" and \"crc32\".")));
	for (i = 0; value[i]; i++)
		value[i] = pg_ascii_tolower((unsigned char) value[i]);
	if ((int) strlen(value) != hexlen ||
		strspn(value, "0123456789abcdef") != strlen(value))
		raise_bad_field("checksum", psprintf("does not hold %d hexadecimal digits of %s",
											 hexlen, algorithm));
	m->checksum_name = algorithm;
	m->checksum_value = value;
}

/* output_settings: kept as name -> text, for load.c to pick from */
static void
read_settings(JsonbContainer *root, TsnapManifest *m)
{
	JsonbValue *v = member(root, "output_settings", jbvObject, false);
	JsonbIterator *it;
	JsonbValue	tok;
	JsonbIteratorToken r;
	char	   *name = NULL;

	if (v == NULL)
		return;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &tok, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
			name = pnstrdup(tok.val.string.val, tok.val.string.len);
		else if (r == WJB_VALUE && name != NULL && tok.type == jbvString)
			m->settings = lappend(m->settings,
								  makeDefElem(name,
											  (Node *) makeString(pnstrdup(tok.val.string.val,
																		   tok.val.string.len)),
											  -1));
	}
}

/*
 * Parse manifest text (len bytes, NUL-terminated) into m.  The format
 * version is looked at first: a later format may change anything else.
 */
static void
parse_manifest(const char *text, size_t len, TsnapManifest *m)
{
	Jsonb	   *jb;
	JsonbContainer *root;
	JsonbValue *v;
	char	   *uuid;

	if (strlen(text) != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid tsnap manifest: it contains a zero byte")));
	/* names are in the server encoding, as the writer's server wrote them */
	(void) pg_verify_mbstr(GetDatabaseEncoding(), text, (int) len, false);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	root = &jb->root;
	if (!JsonContainerIsObject(root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid tsnap manifest: it is not a JSON object")));

	v = member(root, "format_version", jbvNumeric, true);
	if (int_member(root, "format_version") != TSNAP_MANIFEST_FORMAT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("manifest format version %s is not supported",
						DatumGetCString(DirectFunctionCall1(numeric_out,
															NumericGetDatum(v->val.numeric)))),
				 errdetail("This release of tsnap reads format version %d.",
						   TSNAP_MANIFEST_FORMAT),
				 errhint("Restore with the tsnap release that wrote the snapshot, or a later one.")));

	m->system_identifier = string_member(root, "system_identifier");
	if (m->system_identifier[0] == '\0' ||
		strspn(m->system_identifier, "0123456789") != strlen(m->system_identifier))
		raise_bad_field("system_identifier", "is not a decimal number");
	m->database = string_member(root, "database");
	m->schema = string_member(root, "schema");
	m->table = string_member(root, "table");
	uuid = string_member(root, "tracking_id");
	memcpy(&m->tracking_id,
		   DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(uuid))),
		   sizeof(pg_uuid_t));
	m->rows_version = int_member(root, "rows_version");
	m->key = string_member(root, "key");
	read_columns(root, m);
	m->bytes = int_member(root, "bytes");
	if (m->bytes < 0)
		raise_bad_field("bytes", "is negative");
	read_compression(root, m);
	read_csv(root, m);
	read_checksum(root, m);
	read_settings(root, m);
}

/*
 * Fetch and parse the manifest of the snapshot at key from store.  Raises
 * 58P01 when there is none (as COPY FROM a missing file does), 22P02 when
 * it cannot be read, 0A000 for what this release does not support, and
 * XX001 when it describes another object than key.
 */
TsnapManifest *
tsnap_manifest_read(TsnapStore *store, const char *key)
{
	TsnapManifest *m = palloc0(sizeof(TsnapManifest));
	ErrorContextCallback context;
	char	   *text;
	size_t		len;

	m->manifest_key = psprintf("%s%s", key, TSNAP_MANIFEST_SUFFIX);
	text = tsnap_store_get_small(store, m->manifest_key, TSNAP_MANIFEST_MAX,
								 &len);
	if (text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("snapshot \"%s\" has no manifest", key),
				 errdetail("There is no object \"%s\" in bucket \"%s\".",
						   m->manifest_key, tsnap_store_bucket_of(store)),
				 errhint("Check the key: tsnap_restore takes the key tsnap_snapshot returned, and its manifest must still be in the bucket.")));

	context.callback = manifest_error_context;
	context.arg = m->manifest_key;
	context.previous = error_context_stack;
	error_context_stack = &context;
	parse_manifest(text, len, m);
	/* not named: the caller may have no right to know what it names */
	if (strcmp(m->key, key) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("manifest describes another object than \"%s\"", key)));
	error_context_stack = context.previous;
	pfree(text);
	return m;
}

/* ---- the columns ---- */

/*
 * format_type of a column, as the manifest's writer prints it: with
 * search_path pinned to pg_catalog (in a GUC nest level of its own).
 */
static char *
pinned_format_type(Oid typid, int32 typmod)
{
	int			nestlevel = NewGUCNestLevel();
	char	   *text;

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	text = format_type_extended(typid, typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN |
								FORMAT_TYPE_ALLOW_INVALID);
	AtEOXact_GUC(false, nestlevel);
	return text;
}

/*
 * Compare the manifest's columns with target's.  Returns the column list
 * for COPY (String nodes, in the manifest's order); raises 42804 with one
 * line of detail per difference.
 */
List *
tsnap_manifest_check_columns(const TsnapManifest *m, Relation target)
{
	TupleDesc	desc = RelationGetDescr(target);
	StringInfoData diffs;
	int			ndiffs = 0;
	bool	   *in_snapshot = palloc0(sizeof(bool) * desc->natts);
	List	   *attnames = NIL;
	AttrNumber	last = 0;
	bool		out_of_order = false;
	int			i;

	initStringInfo(&diffs);
#define DIFF(...) \
	do { \
		if (ndiffs++ > 0) \
			appendStringInfoChar(&diffs, '\n'); \
		appendStringInfo(&diffs, __VA_ARGS__); \
	} while (0)

	for (i = 0; i < m->ncolumns; i++)
	{
		const TsnapManifestColumn *col = &m->columns[i];
		Form_pg_attribute att = NULL;
		int			j;

		for (j = 0; j < desc->natts; j++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, j);

			if (!a->attisdropped && strcmp(NameStr(a->attname), col->name) == 0)
			{
				att = a;
				break;
			}
		}
		if (att == NULL)
		{
			DIFF(_("Column \"%s\" (%s) of the snapshot is not in the table."),
				 col->name, col->type);
			continue;
		}
		if (in_snapshot[att->attnum - 1])
		{
			DIFF(_("Column \"%s\" appears twice in the snapshot."), col->name);
			continue;
		}
		in_snapshot[att->attnum - 1] = true;
		attnames = lappend(attnames, makeString(pstrdup(col->name)));
		if (att->attnum < last)
			out_of_order = true;
		last = att->attnum;

		if (strcmp(pinned_format_type(att->atttypid, att->atttypmod),
				   col->type) != 0 &&
			strcmp(format_type_extended(att->atttypid, att->atttypmod,
										FORMAT_TYPE_TYPEMOD_GIVEN |
										FORMAT_TYPE_ALLOW_INVALID),
				   col->type) != 0)
			DIFF(_("Column \"%s\" is %s in the snapshot but %s in the table."),
				 col->name, col->type,
				 pinned_format_type(att->atttypid, att->atttypmod));
		if (att->attgenerated)
			DIFF(_("Column \"%s\" is a generated column of the table, and COPY cannot write generated columns."),
				 col->name);
	}

	if (out_of_order)
	{
		StringInfoData snap;
		StringInfoData table;

		initStringInfo(&snap);
		initStringInfo(&table);
		for (i = 0; i < m->ncolumns; i++)
			appendStringInfo(&snap, "%s%s", i ? ", " : "",
							 quote_identifier(m->columns[i].name));
		for (i = 0; i < desc->natts; i++)
			if (in_snapshot[i])
				appendStringInfo(&table, "%s%s", table.len ? ", " : "",
								 quote_identifier(NameStr(TupleDescAttr(desc, i)->attname)));
		DIFF(_("The columns are in another order: (%s) in the snapshot, (%s) in the table."),
			 snap.data, table.data);
	}

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		/* COPY fills a column missing from its list with its default */
		if (a->attisdropped || in_snapshot[i] || a->atthasdef ||
			a->attidentity || a->attgenerated || !a->attnotnull)
			continue;
		DIFF(_("Column \"%s\" of the table is not in the snapshot, and is NOT NULL without a default."),
			 NameStr(a->attname));
	}
#undef DIFF

	if (ndiffs > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg_plural("snapshot \"%s\" does not fit table \"%s\": %d difference",
							   "snapshot \"%s\" does not fit table \"%s\": %d differences",
							   ndiffs, m->key, RelationGetRelationName(target),
							   ndiffs),
				 errdetail_internal("%s", diffs.data),
				 errhint("Restore into a table with the snapshot's columns: the same names and types, in the same order.  The table may have more columns if they have defaults or may be NULL.")));
	return attnames;
}
