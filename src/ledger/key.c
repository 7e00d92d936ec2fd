/*-------------------------------------------------------------------------
 *
 * key.c
 *	  Object keys and schema fingerprints.
 *
 * A key names one content forever.  Its layout is
 *
 *	 <tsnap.key_prefix>/<system identifier>/<database>/<schema>/<table>/
 *		 <tracking_id>/v<rows_version>-<fingerprint>-<nonce><suffix>
 *
 * where the suffix is the format's (".csv") followed by the compression's
 * ("", ".gz", ".zst").  The snapshot's manifest lies beside it, at the key
 * followed by ".manifest.json" (manifest.c), so a key leaves room for that.
 *
 * - The system identifier separates clusters sharing a bucket, including a
 *	 pg_restore into a new cluster.
 * - The tracking_id is new for every tsnap_track, so DROP and CREATE of a
 *	 table with the same name (or untrack and track) never reuses a name.
 * - The fingerprint is a hash of the column names, attribute numbers and
 *	 types (with the labels of enums and the attributes of composites they
 *	 use), of the format (its fingerprint tag), the compression (unless it
 *	 is none: uncompressed snapshots keep the keys they had before tsnap
 *	 compressed any, so an upgrade keeps their hits) and the output
 *	 settings, and of the table's storage:
 *	 the file node and partition bound of the table and of every partition or
 *	 inheritance child.  So any schema or format change gives a new key even
 *	 at the same version, and so do the changes of content that no trigger
 *	 sees: ATTACH, DETACH or DROP of a partition, INHERIT and NO INHERIT, a
 *	 rewrite (ALTER COLUMN ... TYPE ... USING), a column dropped and added
 *	 again, CLUSTER and VACUUM FULL (which change COPY's row order).
 * - The nonce is 64 random bits per upload.  A cluster recovered to an
 *	 earlier point in time, or a promoted standby, can reach the same version
 *	 again with different rows; the nonce keeps their keys apart.
 *
 * Names are percent-encoded: every byte but [A-Za-z0-9_-] becomes %XX, so
 * a quote, a slash, a space, unicode or ".." can never change the key's
 * shape, and each name stays readable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/catcache.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "export/export.h"
#include "common/common.h"
#include "ledger/ledger.h"
#include "settings.h"

/*
 * Fingerprints by relation OID and compression, for the hit path.  Any relcache invalidation
 * of a relation (every ALTER TABLE, CLUSTER and VACUUM FULL sends one) drops
 * its entry; a type's change (pg_type, pg_enum) drops them all.  A
 * fingerprint that read other relations (a composite type's attributes, a
 * partition's storage) also goes when any other relation is invalidated,
 * since ALTER TYPE ... DROP ATTRIBUTE invalidates only the composite's own
 * pg_class entry, and VACUUM FULL of a partition only the partition's.
 */
typedef struct FingerprintKey
{
	Oid			relid;
	TsnapCompression compression;
} FingerprintKey;

typedef struct FingerprintEntry
{
	FingerprintKey key;
	const TsnapFormat *format;	/* the one it was computed for */
	bool		reads_others;
	char		fingerprint[TSNAP_FINGERPRINT_LEN + 1];
} FingerprintEntry;

static HTAB *fingerprints = NULL;

static int
compare_enum_sortorder(const ListCell *a, const ListCell *b)
{
	float4		x = ((Form_pg_enum) lfirst(a))->enumsortorder;
	float4		y = ((Form_pg_enum) lfirst(b))->enumsortorder;

	return (x > y) - (x < y);
}

static void
fingerprint_inval(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	FingerprintEntry *e;

	if (fingerprints == NULL)
		return;
	hash_seq_init(&status, fingerprints);
	while ((e = hash_seq_search(&status)) != NULL)
		if (!OidIsValid(relid) || e->key.relid == relid || e->reads_others)
			hash_search(fingerprints, &e->key, HASH_REMOVE, NULL);
}

static void compute_fingerprint(Relation rel, const TsnapFormat *format,
								TsnapCompression compression, char *out,
								bool *reads_others);

/* an enum label renamed or a type altered: any cached fingerprint may be stale */
static void
fingerprint_type_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	fingerprint_inval(arg, InvalidOid);
}

/* An enum's labels in sort order. */
static void
append_enum_labels(StringInfo buf, Oid typid)
{
	List	   *labels = NIL;
	CatCList   *list;
	int			i;

	list = SearchSysCacheList1(ENUMTYPOIDNAME, ObjectIdGetDatum(typid));
	for (i = 0; i < list->n_members; i++)
		labels = lappend(labels, GETSTRUCT(&list->members[i]->tuple));
	list_sort(labels, compare_enum_sortorder);
	appendStringInfoString(buf, " enum");
	for (i = 0; i < list_length(labels); i++)
	{
		Form_pg_enum e = list_nth(labels, i);

		appendStringInfo(buf, " %zu:%s", strlen(NameStr(e->enumlabel)),
						 NameStr(e->enumlabel));
	}
	ReleaseSysCacheList(list);
	list_free(labels);
}

static void append_column(StringInfo buf, Form_pg_attribute att,
						  bool *reads_others);

/*
 * What else decides how a value of typid prints.  ALTER TYPE ... RENAME
 * VALUE, and ALTER TYPE ... DROP ATTRIBUTE on a composite a column uses,
 * change the CSV without changing the table's version, so an enum's labels
 * and a composite's attributes are part of the fingerprint.  Domains,
 * arrays, ranges and multiranges are followed to the type they hold.
 */
static void
append_type_detail(StringInfo buf, Oid typid, bool *reads_others)
{
	check_stack_depth();
	for (;;)
	{
		Oid			inner;

		typid = getBaseType(typid);
		if (OidIsValid(inner = get_element_type(typid)) ||
			OidIsValid(inner = get_multirange_range(typid)) ||
			OidIsValid(inner = get_range_subtype(typid)))
			typid = inner;
		else
			break;
	}
	if (type_is_enum(typid))
		append_enum_labels(buf, typid);
	else if (typid != RECORDOID && type_is_rowtype(typid))
	{
		TupleDesc	tupdesc = lookup_rowtype_tupdesc(typid, -1);
		int			i;

		*reads_others = true;
		appendStringInfoString(buf, " (");
		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);

			if (!att->attisdropped)
				append_column(buf, att, reads_others);
		}
		appendStringInfoChar(buf, ')');
		ReleaseTupleDesc(tupdesc);
	}
}

/*
 * One column (or composite attribute): raw names with their lengths, not
 * quote_identifier or format_type, which depend on quote_all_identifiers
 * and search_path, so the caller and the worker would disagree.  The
 * attribute number tells a column dropped and added again (whose existing
 * rows may have changed) from the one before.
 */
static void
append_column(StringInfo buf, Form_pg_attribute att, bool *reads_others)
{
	const char *name = NameStr(att->attname);
	HeapTuple	typtup;
	Form_pg_type typ;
	char	   *nspname;

	typtup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(att->atttypid));
	if (!HeapTupleIsValid(typtup))
		elog(ERROR, "cache lookup failed for type %u", att->atttypid);
	typ = (Form_pg_type) GETSTRUCT(typtup);
	nspname = get_namespace_name(typ->typnamespace);
	appendStringInfo(buf, "%zu:%s #%d %zu:%s.%zu:%s %d",
					 strlen(name), name, att->attnum,
					 strlen(nspname), nspname,
					 strlen(NameStr(typ->typname)), NameStr(typ->typname),
					 att->atttypmod);
	ReleaseSysCache(typtup);
	append_type_detail(buf, att->atttypid, reads_others);
}

/*
 * The storage behind SELECT * FROM rel: the file node (and partition bound)
 * of rel and of each partition or inheritance child, in OID order.  A new
 * file node means a rewrite or a new row order; a new member, a new set of
 * rows; either can happen without a write that fires tsnap's triggers.  A
 * foreign table among them could change with no trigger at all, so such a
 * table cannot be kept exact and is refused (0A000).
 */
static void
append_storage(StringInfo buf, Relation rel, bool *reads_others)
{
	List	   *members = find_all_inheritors(RelationGetRelid(rel), NoLock, NULL);
	ListCell   *lc;

	if (list_length(members) > 1)
		*reads_others = true;
	list_sort(members, list_oid_cmp);
	foreach(lc, members)
	{
		Oid			relid = lfirst_oid(lc);
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		Form_pg_class form;
		Datum		bound;
		bool		isnull;

		if (!HeapTupleIsValid(tuple))
			continue;			/* dropped concurrently */
		form = (Form_pg_class) GETSTRUCT(tuple);
		if (form->relkind == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot snapshot table \"%s\" because \"%s\" is a foreign table",
							RelationGetRelationName(rel), NameStr(form->relname)),
					 errdetail("Writes to a foreign table fire no trigger in this database, so tsnap cannot tell when its rows change.")));
		if (form->relpersistence == RELPERSISTENCE_UNLOGGED)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot snapshot table \"%s\" because \"%s\" is unlogged",
							RelationGetRelationName(rel), NameStr(form->relname)),
					 errdetail("A crash empties an unlogged table without firing any trigger, so its version could not follow its rows.")));
		bound = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_relpartbound,
								&isnull);
		appendStringInfo(buf, "storage %u %u %s\n", relid, form->relfilenode,
						 isnull ? "" : TextDatumGetCString(bound));
		ReleaseSysCache(tuple);
	}
}

/*
 * Hex SHA-256 prefix of the columns (names, types with modifiers, in order),
 * the table's storage, the format, the compression and the output settings.
 * out needs TSNAP_FINGERPRINT_LEN + 1 bytes.
 */
void
tsnap_fingerprint(Relation rel, const TsnapFormat *format,
				  TsnapCompression compression, char *out)
{
	FingerprintKey key;
	FingerprintEntry *e;
	bool		found;

	/* no padding in the hash key: both fields are 4-byte */
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.compression = compression;
	if (fingerprints == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(FingerprintKey);
		ctl.entrysize = sizeof(FingerprintEntry);
		fingerprints = hash_create("tsnap fingerprints", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(fingerprint_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(ENUMOID, fingerprint_type_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, fingerprint_type_inval, (Datum) 0);
	}
	e = hash_search(fingerprints, &key, HASH_FIND, &found);
	if (e == NULL || e->format != format)
	{
		char		fp[TSNAP_FINGERPRINT_LEN + 1];
		bool		reads_others = false;

		compute_fingerprint(rel, format, compression, fp, &reads_others);
		e = hash_search(fingerprints, &key, HASH_ENTER, &found);
		e->format = format;
		e->reads_others = reads_others;
		memcpy(e->fingerprint, fp, sizeof(fp));
	}
	memcpy(out, e->fingerprint, TSNAP_FINGERPRINT_LEN + 1);
}

static void
compute_fingerprint(Relation rel, const TsnapFormat *format,
					TsnapCompression compression, char *out,
					bool *reads_others)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s;encoding=%s\n", format->fingerprint_tag,
					 GetDatabaseEncodingName());
	for (i = 0; tsnap_output_settings[i][0]; i++)
		appendStringInfo(&buf, "%s=%s\n", tsnap_output_settings[i][0],
						 tsnap_output_settings[i][1]);
	/* none adds nothing: the fingerprints of 0.1.0 stay as they were */
	if (compression != TSNAP_COMPRESSION_NONE)
		appendStringInfo(&buf, "compression=%s\n",
						 tsnap_codec(compression)->name);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		append_column(&buf, att, reads_others);
		appendStringInfoChar(&buf, '\n');
	}
	append_storage(&buf, rel, reads_others);

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute the fingerprint of \"%s\"",
			 RelationGetRelationName(rel));
	pg_cryptohash_free(ctx);
	hex_encode((char *) digest, TSNAP_FINGERPRINT_LEN / 2, out);
	out[TSNAP_FINGERPRINT_LEN] = '\0';
	pfree(buf.data);
}

static void
append_encoded(StringInfo buf, const char *name)
{
	const unsigned char *p;

	for (p = (const unsigned char *) name; *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
			appendStringInfoChar(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

/*
 * "<key_prefix>/<system identifier>/": everything this cluster writes lies
 * below it, which is what the sweep of abandoned uploads lists.  palloc'd.
 */
char *
tsnap_cluster_key_prefix(void)
{
	return psprintf("%s/" UINT64_FORMAT "/", tsnap_key_prefix,
					GetSystemIdentifier());
}

/*
 * The key for a new snapshot of relid; see the file header.  out needs
 * TSNAP_KEY_SIZE bytes.  Raises 54000 if the names make it, or its
 * manifest's key, longer than the object store allows.
 */
void
tsnap_build_key(Oid relid, const pg_uuid_t *tracking_id, int64 version,
				const char *fingerprint, const TsnapFormat *format,
				TsnapCompression compression, char *out)
{
	StringInfoData buf;
	uint8		nonce[8];
	char		nonce_hex[17];
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(get_rel_namespace(relid));
	char	   *prefix = tsnap_cluster_key_prefix();
	int			i;

	if (relname == NULL || nspname == NULL)
		tsnap_raise_no_relation(relid);
	if (!pg_strong_random(nonce, sizeof(nonce)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key nonce")));
	hex_encode((char *) nonce, sizeof(nonce), nonce_hex);
	nonce_hex[16] = '\0';

	initStringInfo(&buf);
	appendStringInfoString(&buf, prefix);
	append_encoded(&buf, get_database_name(MyDatabaseId));
	appendStringInfoChar(&buf, '/');
	append_encoded(&buf, nspname);
	appendStringInfoChar(&buf, '/');
	append_encoded(&buf, relname);
	appendStringInfoChar(&buf, '/');
	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			appendStringInfoChar(&buf, '-');
		appendStringInfo(&buf, "%02x", tracking_id->data[i]);
	}
	appendStringInfo(&buf, "/v" INT64_FORMAT "-%s-%s%s%s",
					 version, fingerprint, nonce_hex, format->suffix,
					 tsnap_codec(compression)->suffix);

	/* the manifest's key, beside it, is longer */
	if (buf.len + strlen(TSNAP_MANIFEST_SUFFIX) > TSNAP_OBJECT_KEY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("object key for table \"%s\" would be longer than %d bytes",
						relname,
						TSNAP_OBJECT_KEY_MAX - (int) strlen(TSNAP_MANIFEST_SUFFIX)),
				 errdetail("The key of the snapshot's manifest, \"%s\" appended, must fit in the object store's %d bytes.",
						   TSNAP_MANIFEST_SUFFIX, TSNAP_OBJECT_KEY_MAX),
				 errhint("Shorten tsnap.key_prefix.")));
	memcpy(out, buf.data, buf.len + 1);
	pfree(buf.data);
	pfree(prefix);
}
