/*-------------------------------------------------------------------------
 *
 * orphans.c
 *	  Mark and sweep of orphaned objects: those of dropped databases, and
 *	  of tables dropped or untracked whose objects nothing records any more
 *	  (a worker that died, DROP EXTENSION, DROP DATABASE, a stalled
 *	  PutObject that completed after its intent was dropped with its
 *	  database).
 *
 * The housekeeping launcher (jobs/) runs one round at a time.  It notes the
 * round's start, then visits every database with a short-lived process
 * that calls tsnap_orphans_write_marks (the mark), then calls
 * tsnap_orphans_sweep from a process connected to no database (the sweep).
 *
 * Mark.  A database writes the set of every tracking id its catalog knows:
 * tracked tables, recorded snapshots, and the keys queued in
 * tsnap.pending_deletes, which hold every upload intent (an object that
 * may appear before it is recorded) and every delete not yet done.  The
 * set goes to pg_tsnap/marks/<database OID> under the data directory,
 * written whole to a temporary file and renamed into place, with the
 * round's start and a CRC, so that a torn or stale file is never read as
 * a valid one.
 *
 * Sweep.  It lists every object under <key_prefix>/<system identifier>/
 * and deletes an object only if all of these hold:
 *	- its key has exactly the shape key.c builds (see below), so nothing
 *	  outside that prefix, and nothing under it that tsnap did not write,
 *	  is ever touched;
 *	- its tracking id is in no database's marks;
 *	- it was last written before the round's start minus tsnap.keep_for
 *	  (and a margin for the clocks of S3 and this server);
 *	- no live worker is writing it.
 *
 * Why tracking ids and not names: a key carries the database's name as it
 * was when the object was written.  A renamed database keeps its objects
 * under its old name, and a new database can take that name, so a name
 * says nothing about whose an object is.  The tracking id is new for every
 * tsnap_track, so it names one table's tracking in one database (a
 * database copied from another with CREATE DATABASE ... TEMPLATE or a
 * restore shares ids with it, which only keeps more).
 *
 * Why the round's start: a mark is a catalog snapshot taken after the
 * round began.  A tracking id missing from it was created after that
 * snapshot, so every object of it was written after the round began; the
 * sweep never deletes an object that young, however late it lists it.
 * S3 reports times in whole seconds of its own clock: the comparison drops
 * the fraction of the round's start too, and allows
 * ORPHAN_CLOCK_MARGIN_SECS of difference between the two clocks.
 *
 * Why every mark must be there: a database whose mark is missing, torn or
 * older than the round could hold any tracking id, and deleting without it
 * could delete its live objects.  So the sweep deletes nothing that round.
 * The launcher passes every database that may hold tsnap's objects
 * (including one it could not visit); the marks of databases not passed
 * (dropped ones) are removed.
 *
 * Standbys share the primary's system identifier and bucket, and their
 * catalog lags: the sweep refuses to run during recovery.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "common/common.h"
#include "export/export.h"
#include "ledger/ledger.h"
#include "settings.h"

#define MARKS_PARENT_DIR	"pg_tsnap"
#define MARKS_DIR			"pg_tsnap/marks"
#define MARKS_MAGIC			0x4b52414d	/* "MARK", little-endian */
#define MARKS_FORMAT		1

/* rows read per fetch from the catalog, so SPI holds a bounded batch */
#define MARK_FETCH			1000

/*
 * Seconds by which S3's clock may be behind this server's without a young
 * object looking old enough to delete.
 */
#define ORPHAN_CLOCK_MARGIN_SECS	5

/* what goes before the tracking ids; a CRC-32C of header and ids follows */
typedef struct MarksHeader
{
	uint32		magic;
	uint32		format;
	Oid			dboid;			/* the database it describes */
	uint32		count;			/* tracking ids that follow, sorted */
	TimestampTz round_start;	/* the round it was written for */
	TimestampTz read_at;		/* before the catalog was read */
} MarksHeader;

/* A set of tracking ids, growing as it is read. */
typedef struct IdSet
{
	pg_uuid_t  *ids;
	int			count;
	int			cap;
} IdSet;

static int
tracking_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, UUID_LEN);
}

static void
idset_add(IdSet *set, const pg_uuid_t *id)
{
	if (set->count == set->cap)
	{
		set->cap = set->cap ? set->cap * 2 : 64;
		set->ids = set->ids ?
			repalloc_huge(set->ids, sizeof(pg_uuid_t) * set->cap) :
			palloc(sizeof(pg_uuid_t) * set->cap);
	}
	set->ids[set->count++] = *id;
}

/* Sort the set and drop duplicates, for bsearch and for the file. */
static void
idset_finish(IdSet *set)
{
	int			i,
				n = 0;

	if (set->count == 0)
		return;
	qsort(set->ids, set->count, sizeof(pg_uuid_t), tracking_id_cmp);
	for (i = 0; i < set->count; i++)
		if (n == 0 || memcmp(&set->ids[n - 1], &set->ids[i], UUID_LEN) != 0)
			set->ids[n++] = set->ids[i];
	set->count = n;
}

static bool
idset_contains(const IdSet *set, const pg_uuid_t *id)
{
	return set->count > 0 &&
		bsearch(id, set->ids, set->count, sizeof(pg_uuid_t),
				tracking_id_cmp) != NULL;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * A tracking id exactly as key.c prints it (36 characters, lower-case hex,
 * dashes at 8, 13, 18 and 23) at p, into *id.
 */
static bool
parse_tracking_id(const char *p, pg_uuid_t *id)
{
	int			i,
				n = 0;

	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (p[i] != '-')
				return false;
			continue;
		}
		if (hex_value(p[i]) < 0 || hex_value(p[i + 1]) < 0)
			return false;
		id->data[n++] = (uint8) (hex_value(p[i]) * 16 + hex_value(p[i + 1]));
		i++;
	}
	return n == UUID_LEN;
}

/*
 * The tracking id of a key of any prefix: the segment before the last,
 * if it is one.  For keys read from the catalog, which may have been
 * written under another key_prefix or into another bucket.
 */
static bool
tracking_id_of_any_key(const char *key, pg_uuid_t *id)
{
	const char *last = strrchr(key, '/');

	if (last == NULL || last - key < 37 || last[-37] != '/')
		return false;
	return parse_tracking_id(last - 36, id);
}

/*
 * A name segment as key.c encodes it: one or more of [A-Za-z0-9_-] or
 * %XX (upper-case hex), then a slash.  Returns what follows the slash, or
 * NULL.
 */
static const char *
skip_name_segment(const char *p)
{
	const char *start = p;

	for (;;)
	{
		char		c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '-')
			p++;
		else if (c == '%' &&
				 ((p[1] >= '0' && p[1] <= '9') || (p[1] >= 'A' && p[1] <= 'F')) &&
				 ((p[2] >= '0' && p[2] <= '9') || (p[2] >= 'A' && p[2] <= 'F')))
			p += 3;
		else if (c == '/' && p > start)
			return p + 1;
		else
			return NULL;
	}
}

/* exactly n lower-case hex digits at p; what follows, or NULL */
static const char *
skip_hex(const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (hex_value(p[i]) < 0)
			return NULL;
	return p + n;
}

/*
 * Does key have exactly the shape tsnap_build_key gives a snapshot (or its
 * manifest) below prefix?
 *
 *	 <prefix><database>/<schema>/<table>/<tracking_id>/
 *		 v<rows_version>-<fingerprint>-<nonce><suffix>[.manifest.json]
 *
 * If so, *id gets the tracking id and *data_len the length of the
 * snapshot's own key (without the manifest's suffix).  Anything else is
 * not tsnap's to delete.
 */
static bool
parse_swept_key(const char *key, const char *prefix, pg_uuid_t *id,
				size_t *data_len)
{
	static const TsnapCompression compressions[] = {
		TSNAP_COMPRESSION_NONE, TSNAP_COMPRESSION_GZIP, TSNAP_COMPRESSION_ZSTD
	};
	size_t		prefix_len = strlen(prefix);
	const char *p;
	const char *digits;
	int			i;

	if (strncmp(key, prefix, prefix_len) != 0)
		return false;
	p = key + prefix_len;
	for (i = 0; i < 3 && p; i++)
		p = skip_name_segment(p);	/* database, schema, table */
	if (p == NULL || !parse_tracking_id(p, id) || p[36] != '/')
		return false;
	p += 37;

	if (*p++ != 'v')
		return false;
	if (*p == '-')
		p++;					/* INT64_FORMAT of a negative version */
	for (digits = p; *p >= '0' && *p <= '9'; p++)
		;
	if (p == digits || p - digits > 19 || *p++ != '-')
		return false;
	if ((p = skip_hex(p, TSNAP_FINGERPRINT_LEN)) == NULL || *p++ != '-')
		return false;
	if ((p = skip_hex(p, 16)) == NULL)	/* the nonce */
		return false;

	for (i = 0; i < (int) lengthof(compressions); i++)
	{
		const char *format_suffix = tsnap_format_csv.suffix;
		const char *codec_suffix = tsnap_codec(compressions[i])->suffix;
		size_t		flen = strlen(format_suffix);
		size_t		clen = strlen(codec_suffix);
		const char *rest;

		if (strncmp(p, format_suffix, flen) != 0 ||
			strncmp(p + flen, codec_suffix, clen) != 0)
			continue;
		rest = p + flen + clen;
		if (*rest == '\0' || strcmp(rest, TSNAP_MANIFEST_SUFFIX) == 0)
		{
			*data_len = rest - key;
			return true;
		}
	}
	return false;
}

/*
 * Add the tracking ids that query's first column gives (a uuid, or a key
 * to parse one from, by_key) to set, MARK_FETCH rows at a time.
 */
static void
mark_query(const char *query, bool by_key, IdSet *set)
{
	MemoryContext setcxt = CurrentMemoryContext;
	Portal		portal;

	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL,
									   true, 0);
	for (;;)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, MARK_FETCH);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1, &isnull);
			pg_uuid_t	id;
			MemoryContext old;

			if (isnull)
				continue;
			if (by_key)
			{
				char	   *key = TextDatumGetCString(d);
				bool		found = tracking_id_of_any_key(key, &id);

				pfree(key);
				if (!found)
					continue;
			}
			else
				id = *DatumGetUUIDP(d);
			old = MemoryContextSwitchTo(setcxt);
			idset_add(set, &id);
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/* Make dir if it is not there yet (and make its creation durable). */
static void
ensure_directory(const char *dir, const char *parent)
{
	if (MakePGDirectory(dir) == 0)
		fsync_fname(parent, true);
	else if (errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));
}

/* Write the marks of this database (see the file header). */
static void
write_marks_file(const IdSet *set, TimestampTz round_start,
				 TimestampTz read_at)
{
	char		path[MAXPGPATH];
	char		tmppath[MAXPGPATH];
	MarksHeader header;
	Size		idbytes = sizeof(pg_uuid_t) * (Size) set->count;
	Size		len = sizeof(MarksHeader) + idbytes + sizeof(pg_crc32c);
	char	   *buf;
	pg_crc32c	crc;
	int			fd;

	ensure_directory(MARKS_PARENT_DIR, ".");
	ensure_directory(MARKS_DIR, MARKS_PARENT_DIR);
	snprintf(path, sizeof(path), "%s/%u", MARKS_DIR, MyDatabaseId);
	snprintf(tmppath, sizeof(tmppath), "%s/%u.tmp", MARKS_DIR, MyDatabaseId);

	memset(&header, 0, sizeof(header));
	header.magic = MARKS_MAGIC;
	header.format = MARKS_FORMAT;
	header.dboid = MyDatabaseId;
	header.count = (uint32) set->count;
	header.round_start = round_start;
	header.read_at = read_at;

	buf = palloc_extended(len, MCXT_ALLOC_HUGE);
	memcpy(buf, &header, sizeof(header));
	if (idbytes > 0)
		memcpy(buf + sizeof(header), set->ids, idbytes);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf, sizeof(header) + idbytes);
	FIN_CRC32C(crc);
	memcpy(buf + sizeof(header) + idbytes, &crc, sizeof(crc));

	fd = OpenTransientFile(tmppath, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmppath)));
	errno = 0;
	if (write(fd, buf, len) != (ssize_t) len)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno ? save_errno : ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmppath)));
	}
	if (pg_fsync(fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", tmppath)));
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmppath)));
	(void) durable_rename(tmppath, path, ERROR);
	pfree(buf);
}

/*
 * The mark of the current database for the round that began at
 * round_start: every tracking id its catalog knows, written to
 * pg_tsnap/marks/<database OID>.  Runs outside any transaction, in a
 * process connected to the database, and starts and commits its own.  A
 * database without tsnap gets an empty mark; one whose tsnap catalog
 * cannot be read gets none.  Raises on failure, leaving the previous mark
 * (which the sweep then finds stale) in place.
 */
void
tsnap_orphans_write_marks(TimestampTz round_start)
{
	MemoryContext cxt;
	MemoryContext old;
	TsnapCatalogUser saved;
	TimestampTz read_at;
	IdSet		set = {NULL, 0, 0};

	/*
	 * The transaction's snapshot, which the queries below read, is taken
	 * after read_at: a mark must show the catalog as it was after the
	 * round began (see the file header).
	 */
	read_at = GetCurrentTimestamp();
	if (read_at < round_start)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("orphan sweep round starts at %s, which is in the future",
						timestamptz_to_str(round_start))));

	tsnap_begin_transaction();
	cxt = AllocSetContextCreate(TopTransactionContext, "tsnap marks",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	if (tsnap_catalog_enter(&saved))
	{
		mark_query("SELECT tracking_id FROM tsnap.tracked_tables "
				   "UNION SELECT tracking_id FROM tsnap.snapshots",
				   false, &set);
		mark_query("SELECT key FROM tsnap.pending_deletes", true, &set);
		tsnap_catalog_leave(&saved);
	}
	else if (OidIsValid(get_extension_oid("tsnap", true)))
	{
		/* an empty mark would give this database's objects away */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot mark the objects of database \"%s\" because tsnap's catalog there is incomplete",
						get_database_name(MyDatabaseId)),
				 errhint("Until the extension is repaired or dropped, tsnap sweeps no orphaned objects.")));
	}
	idset_finish(&set);
	write_marks_file(&set, round_start, read_at);

	MemoryContextSwitchTo(old);
	tsnap_commit_transaction();
	elog(DEBUG1, "tsnap: wrote %d tracking ids to the orphan marks of database %u",
		 set.count, MyDatabaseId);
}

/*
 * Add the tracking ids of dboid's mark to set.  NULL if the mark is good
 * for a round that began at round_start, or else why not (for the log).
 */
static const char *
read_marks_file(Oid dboid, TimestampTz round_start, IdSet *set)
{
	char		path[MAXPGPATH];
	MarksHeader header;
	struct stat st;
	char	   *buf;
	Size		idbytes;
	pg_crc32c	crc,
				stored;
	int			fd;
	ssize_t		got;
	uint32		i;

	snprintf(path, sizeof(path), "%s/%u", MARKS_DIR, dboid);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return errno == ENOENT ? "it has no mark" :
			psprintf("could not open file \"%s\": %m", path);
	if (fstat(fd, &st) != 0)
	{
		const char *why = psprintf("could not stat file \"%s\": %m", path);

		CloseTransientFile(fd);
		return why;
	}
	if (st.st_size < (off_t) (sizeof(MarksHeader) + sizeof(pg_crc32c)) ||
		st.st_size > (off_t) MaxAllocHugeSize ||
		(st.st_size - sizeof(MarksHeader) - sizeof(pg_crc32c)) %
		sizeof(pg_uuid_t) != 0)
	{
		CloseTransientFile(fd);
		return psprintf("file \"%s\" has an invalid size", path);
	}
	buf = palloc_extended(st.st_size, MCXT_ALLOC_HUGE);
	got = read(fd, buf, st.st_size);
	CloseTransientFile(fd);
	if (got != st.st_size)
		return psprintf("could not read file \"%s\"", path);

	idbytes = st.st_size - sizeof(MarksHeader) - sizeof(pg_crc32c);
	memcpy(&header, buf, sizeof(header));
	memcpy(&stored, buf + sizeof(header) + idbytes, sizeof(stored));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf, sizeof(header) + idbytes);
	FIN_CRC32C(crc);
	if (header.magic != MARKS_MAGIC || header.format != MARKS_FORMAT ||
		!EQ_CRC32C(crc, stored) || header.dboid != dboid ||
		(Size) header.count * sizeof(pg_uuid_t) != idbytes)
	{
		pfree(buf);
		return psprintf("file \"%s\" is damaged", path);
	}
	if (header.round_start < round_start || header.read_at < header.round_start)
	{
		pfree(buf);
		return "its mark is older than the round";
	}
	for (i = 0; i < header.count; i++)
	{
		pg_uuid_t	id;

		memcpy(&id, buf + sizeof(header) + (Size) i * sizeof(pg_uuid_t),
			   sizeof(id));
		idset_add(set, &id);
	}
	pfree(buf);
	return NULL;
}

/*
 * Remove the marks (and temporary files) of databases not in dboids: they
 * were dropped, and a later database may get their OID.
 */
static void
remove_other_marks(const Oid *dboids, int ndboids)
{
	DIR		   *dir;
	struct dirent *de;

	dir = AllocateDir(MARKS_DIR);
	if (dir == NULL && errno == ENOENT)
		return;
	while ((de = ReadDirExtended(dir, MARKS_DIR, LOG)) != NULL)
	{
		char	   *end;
		unsigned long oid;
		bool		listed = false;
		char		path[MAXPGPATH];
		int			i;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		errno = 0;
		oid = strtoul(de->d_name, &end, 10);
		if (errno != 0 || oid > PG_UINT32_MAX ||
			(*end != '\0' && strcmp(end, ".tmp") != 0))
			continue;			/* not a name this file writes */
		for (i = 0; i < ndboids && !listed; i++)
			listed = dboids[i] == (Oid) oid;
		if (listed)
			continue;
		snprintf(path, sizeof(path), "%s/%s", MARKS_DIR, de->d_name);
		if (unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(dir);
}

/* What the listing's visitor needs, and what it counts. */
typedef struct SweepState
{
	TsnapStore *store;
	const char *prefix;
	const IdSet *marked;
	pg_time_t	cutoff;			/* delete only what is older */
	TsnapKeyInFlight in_flight;
	char	   *data_key;		/* TSNAP_KEY_SIZE bytes */
	int			deleted;
	int			failed;
	int			foreign;		/* under the prefix, but not tsnap's shape */
} SweepState;

static bool
sweep_object(const char *key, int64 size, pg_time_t last_modified, void *arg)
{
	SweepState *s = (SweepState *) arg;
	pg_uuid_t	id;
	size_t		data_len;
	char	   *failure = NULL;

	CHECK_FOR_INTERRUPTS();
	if (!parse_swept_key(key, s->prefix, &id, &data_len) ||
		data_len >= TSNAP_KEY_SIZE)
	{
		s->foreign++;
		return true;
	}
	/* TSNAP_STORE_TIME_UNKNOWN is later than any cutoff */
	if (last_modified >= s->cutoff)
		return true;
	if (idset_contains(s->marked, &id))
		return true;
	/* a worker publishes the snapshot's key, and writes its manifest too */
	memcpy(s->data_key, key, data_len);
	s->data_key[data_len] = '\0';
	if (s->in_flight(s->data_key) || s->in_flight(key))
		return true;

	if (tsnap_store_delete(s->store, key, &failure))
	{
		s->deleted++;
		ereport(DEBUG1,
				(errmsg_internal("tsnap: deleted orphaned object \"%s\"", key)));
	}
	else
	{
		s->failed++;
		ereport(DEBUG1,
				(errmsg_internal("tsnap: could not delete orphaned object \"%s\"",
								 key),
				 errdetail_internal("%s", failure)));
	}
	return true;
}

/*
 * The sweep of the round that began at round_start (see the file header),
 * in a process connected to no database: no catalog, only the marks of
 * dboids, which must be every database that may hold tsnap's objects, and
 * in_flight, which tells the keys live workers are writing.  Returns the
 * number of objects deleted, or -1 if it deleted nothing because a mark
 * was missing or stale (logged once), the list of databases was empty,
 * round_start lies in the future, or this server is in recovery.  Failed
 * deletes are counted and logged, and the sweep goes on; a listing that
 * fails raises the store's error.
 */
int
tsnap_orphans_sweep(TimestampTz round_start, const Oid *dboids, int ndboids,
					TsnapKeyInFlight in_flight)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext cxt;
	SweepState	state;
	IdSet		marked = {NULL, 0, 0};
	volatile int result = -1;
	int			i;

	if (RecoveryInProgress())
	{
		ereport(LOG,
				(errmsg("tsnap skips the sweep of orphaned objects during recovery")));
		return -1;
	}
	if (ndboids <= 0)
	{
		ereport(LOG,
				(errmsg("tsnap skips the sweep of orphaned objects: no database was marked")));
		return -1;
	}
	if (round_start > GetCurrentTimestamp())
	{
		ereport(LOG,
				(errmsg("tsnap skips the sweep of orphaned objects: its round starts at %s, which is in the future",
						timestamptz_to_str(round_start))));
		return -1;
	}

	cxt = AllocSetContextCreate(callercxt, "tsnap orphan sweep",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		const char *why = NULL;
		Oid			unmarked = InvalidOid;

		remove_other_marks(dboids, ndboids);
		for (i = 0; i < ndboids && why == NULL; i++)
		{
			why = read_marks_file(dboids[i], round_start, &marked);
			unmarked = dboids[i];
		}
		if (why != NULL)
			ereport(LOG,
					(errmsg("tsnap skips the sweep of orphaned objects this round: database with OID %u is not marked",
							unmarked),
					 errdetail_internal("%s", why)));
		else
		{
			idset_finish(&marked);
			memset(&state, 0, sizeof(state));
			state.prefix = tsnap_cluster_key_prefix();
			state.marked = &marked;
			state.cutoff = timestamptz_to_time_t(round_start) -
				tsnap_keep_for - ORPHAN_CLOCK_MARGIN_SECS;
			state.in_flight = in_flight;
			state.data_key = palloc(TSNAP_KEY_SIZE);
			state.store = tsnap_store_open(NULL, NULL, 0);
			tsnap_store_list_objects(state.store, state.prefix,
									 sweep_object, &state);
			if (state.deleted > 0)
				ereport(LOG,
						(errmsg("tsnap deleted %d orphaned objects under \"%s\" in bucket \"%s\"",
								state.deleted, state.prefix,
								tsnap_store_bucket_of(state.store))));
			if (state.failed > 0)
				ereport(LOG,
						(errmsg("tsnap could not delete %d orphaned objects under \"%s\" in bucket \"%s\"; a later round retries",
								state.failed, state.prefix,
								tsnap_store_bucket_of(state.store)),
						 errhint("Set log_min_messages to debug1 to see each key and why.")));
			if (state.foreign > 0)
				elog(DEBUG1, "tsnap: left %d objects under \"%s\" alone whose keys are not tsnap's",
					 state.foreign, state.prefix);
			result = state.deleted;
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(callercxt);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(callercxt);
	MemoryContextDelete(cxt);
	return result;
}
