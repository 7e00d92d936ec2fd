/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  The bytes of a snapshot on their way to COPY: read from the object
 *	  store as COPY asks for them, checked against the manifest (size and
 *	  checksum of the object as stored), and decompressed (gzip with zlib's
 *	  inflate, zstd with ZSTD_decompressStream).
 *
 * Memory is fixed, whatever the object's size: the store's get buffer, one
 * input buffer here, and the decompressor's state.  A zstd frame needs its
 * window; frames that ask for more than ZSTD_d_windowLogMax allows (128
 * MiB, zstd's own default limit) are refused rather than allocated.
 *
 * Nothing here trusts the object: a size or checksum that differs from the
 * manifest, a compressed stream that is corrupt, ends early or has bytes
 * after its end, all raise XX001 (data corrupted), and the caller's
 * transaction then rolls back whatever COPY loaded.  The checks at the end
 * run before COPY is told that the data has ended, so no restore ever
 * returns with rows from a damaged object.
 *
 * zlib and zstd allocate with malloc: their state is freed by a callback
 * on the memory context the stream lives in, so an error frees it too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <zlib.h>
#include <zstd.h>

#include "common/cryptohash.h"
#include "common/md5.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "restore/restore.h"

#define INPUT_BUFFER		(64 * 1024)
#define ZSTD_WINDOW_LOG_MAX	27

struct TsnapRestoreStream
{
	const TsnapManifest *manifest;
	TsnapGet   *get;
	int64		read;			/* bytes of the object read so far */
	bool		raw_done;		/* the object has ended */
	bool		finished;		/* checked, and COPY told of the end */

	/* checksum of the object as stored */
	pg_cryptohash_ctx *hash;	/* sha256, md5 */
	uLong		crc;			/* crc32 */

	/* compressed input not yet decompressed: in[in_pos, in_len) */
	char	   *in;
	size_t		in_pos;
	size_t		in_len;

	z_stream	z;
	bool		z_live;
	bool		member_done;	/* gzip: the last member has ended */
	ZSTD_DStream *zstd;
	size_t		zstd_hint;		/* last return of ZSTD_decompressStream */

	MemoryContextCallback cb;
};

static void raise_corrupt(TsnapRestoreStream *s, const char *detail)
			pg_attribute_noreturn();

static void
raise_corrupt(TsnapRestoreStream *s, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("object \"%s\" does not match its manifest",
					s->manifest->key),
			 errdetail_internal("%s", detail),
			 errhint("The object or its manifest was changed or damaged after tsnap wrote them; nothing was restored.")));
}

static void
release_decoders(void *arg)
{
	TsnapRestoreStream *s = (TsnapRestoreStream *) arg;

	if (s->z_live)
		inflateEnd(&s->z);
	s->z_live = false;
	if (s->zstd)
		ZSTD_freeDStream(s->zstd);
	s->zstd = NULL;
}

/*
 * Open the data object of manifest for reading.  Raises 58P01 when it is
 * missing and XX001 when its size is not the manifest's.
 */
TsnapRestoreStream *
tsnap_restore_stream_open(TsnapStore *store, const TsnapManifest *m)
{
	TsnapRestoreStream *s = palloc0(sizeof(TsnapRestoreStream));
	int64		size;

	s->manifest = m;
	s->in = palloc(INPUT_BUFFER);
	switch (m->checksum)
	{
		case TSNAP_CHECKSUM_SHA256:
		case TSNAP_CHECKSUM_MD5:
			s->hash = pg_cryptohash_create(m->checksum == TSNAP_CHECKSUM_MD5 ?
										   PG_MD5 : PG_SHA256);
			if (s->hash == NULL || pg_cryptohash_init(s->hash) < 0)
				elog(ERROR, "could not start a %s checksum", m->checksum_name);
			break;
		case TSNAP_CHECKSUM_CRC32:
			s->crc = crc32(0L, Z_NULL, 0);
			break;
	}

	s->cb.func = release_decoders;
	s->cb.arg = s;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &s->cb);
	if (m->compression == TSNAP_COMPRESSION_GZIP)
	{
		/* 16 + MAX_WBITS: a gzip header and trailer, nothing else */
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
			elog(ERROR, "could not start gzip decompression");
		s->z_live = true;
	}
	else if (m->compression == TSNAP_COMPRESSION_ZSTD)
	{
		s->zstd = ZSTD_createDStream();
		if (s->zstd == NULL ||
			ZSTD_isError(ZSTD_DCtx_setParameter(s->zstd, ZSTD_d_windowLogMax,
												ZSTD_WINDOW_LOG_MAX)))
			elog(ERROR, "could not start zstd decompression");
		s->zstd_hint = 1;		/* nothing decoded: a frame is due */
	}

	s->get = tsnap_store_get_open(store, m->key);
	if (s->get == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("snapshot \"%s\" is not in bucket \"%s\"",
						m->key, tsnap_store_bucket_of(store)),
				 errdetail("Its manifest \"%s\" is there, the object is not.",
						   m->manifest_key)));
	if (tsnap_store_get_size(s->get, &size) && size != m->bytes)
		raise_corrupt(s, psprintf("The object has %lld bytes; the manifest says %lld.",
								  (long long) size, (long long) m->bytes));
	return s;
}

/* Up to len bytes of the object as stored, checksummed; 0 at its end. */
static size_t
read_raw(TsnapRestoreStream *s, char *buf, size_t len)
{
	size_t		n;

	if (s->raw_done)
		return 0;
	n = tsnap_store_get_read(s->get, buf, len);
	if (n == 0)
	{
		s->raw_done = true;
		tsnap_store_get_close(s->get);
		return 0;
	}
	s->read += n;
	if (s->read > s->manifest->bytes)
		raise_corrupt(s, psprintf("The object has more than the %lld bytes the manifest says.",
								  (long long) s->manifest->bytes));
	if (s->hash)
	{
		if (pg_cryptohash_update(s->hash, (uint8 *) buf, n) < 0)
			elog(ERROR, "could not update a %s checksum",
				 s->manifest->checksum_name);
	}
	else
		s->crc = crc32(s->crc, (const Bytef *) buf, (uInt) n);
	return n;
}

/*
 * The object has ended: its size and checksum must be the manifest's.
 * Runs before COPY sees the end of its data.
 */
static void
check_end(TsnapRestoreStream *s)
{
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];

	if (s->read != s->manifest->bytes)
		raise_corrupt(s, psprintf("The object ended after %lld bytes; the manifest says %lld.",
								  (long long) s->read,
								  (long long) s->manifest->bytes));
	if (s->hash)
	{
		uint8		digest[PG_SHA256_DIGEST_LENGTH];
		int			dlen = s->manifest->checksum == TSNAP_CHECKSUM_MD5 ?
			MD5_DIGEST_LENGTH : PG_SHA256_DIGEST_LENGTH;
		int			i;

		if (pg_cryptohash_final(s->hash, digest, sizeof(digest)) < 0)
			elog(ERROR, "could not finish a %s checksum",
				 s->manifest->checksum_name);
		for (i = 0; i < dlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", digest[i]);
		pg_cryptohash_free(s->hash);
		s->hash = NULL;
	}
	else
		snprintf(hex, sizeof(hex), "%08lx", (unsigned long) s->crc);
	if (strcmp(hex, s->manifest->checksum_value) != 0)
		raise_corrupt(s, psprintf("Its %s is %s; the manifest says %s.",
								  s->manifest->checksum_name, hex,
								  s->manifest->checksum_value));
	s->finished = true;
}

/* Refill the compressed input once it is used up; false at the end. */
static bool
refill(TsnapRestoreStream *s)
{
	if (s->in_pos < s->in_len)
		return true;
	s->in_pos = 0;
	s->in_len = read_raw(s, s->in, INPUT_BUFFER);
	return s->in_len > 0;
}

/* gzip: inflate into out; 0 only at the end of the last member. */
static int
inflate_some(TsnapRestoreStream *s, char *out, int len)
{
	for (;;)
	{
		int			rc;
		int			produced;

		if (!refill(s))
		{
			if (!s->member_done)
				raise_corrupt(s, "The gzip stream ends in the middle.");
			return 0;
		}
		if (s->member_done)
		{
			/* more bytes after a member: the next member (gzip -c a b) */
			if (inflateReset(&s->z) != Z_OK)
				elog(ERROR, "could not reset gzip decompression");
			s->member_done = false;
		}
		s->z.next_in = (Bytef *) s->in + s->in_pos;
		s->z.avail_in = (uInt) (s->in_len - s->in_pos);
		s->z.next_out = (Bytef *) out;
		s->z.avail_out = (uInt) len;
		rc = inflate(&s->z, Z_NO_FLUSH);
		s->in_pos = s->in_len - s->z.avail_in;
		produced = len - (int) s->z.avail_out;
		if (rc == Z_STREAM_END)
			s->member_done = true;
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			raise_corrupt(s, psprintf("The gzip stream is corrupt: %s.",
									  s->z.msg ? s->z.msg : "inflate failed"));
		if (produced > 0)
			return produced;
	}
}

/* zstd: decompress into out; 0 only at the end of the last frame. */
static int
zstd_some(TsnapRestoreStream *s, char *out, int len)
{
	for (;;)
	{
		ZSTD_inBuffer in;
		ZSTD_outBuffer ob = {out, (size_t) len, 0};
		bool		more = refill(s);

		if (!more && s->zstd_hint == 0)
			return 0;
		in.src = s->in;
		in.size = s->in_len;
		in.pos = s->in_pos;
		s->zstd_hint = ZSTD_decompressStream(s->zstd, &ob, &in);
		if (ZSTD_isError(s->zstd_hint))
			raise_corrupt(s, psprintf("The zstd stream is corrupt: %s.",
									  ZSTD_getErrorName(s->zstd_hint)));
		s->in_pos = in.pos;
		if (ob.pos > 0)
			return (int) ob.pos;
		if (!more)
		{
			if (s->zstd_hint != 0)
				raise_corrupt(s, "The zstd stream ends in the middle of a frame.");
			return 0;
		}
	}
}

/*
 * Up to len bytes of CSV for COPY: at least one, or 0 once the object has
 * ended and matched its manifest.
 */
int
tsnap_restore_stream_read(TsnapRestoreStream *s, char *out, int len)
{
	int			n;

	CHECK_FOR_INTERRUPTS();
	if (s->finished)
		return 0;
	switch (s->manifest->compression)
	{
		case TSNAP_COMPRESSION_GZIP:
			n = inflate_some(s, out, len);
			break;
		case TSNAP_COMPRESSION_ZSTD:
			n = zstd_some(s, out, len);
			break;
		default:
			n = (int) read_raw(s, out, (size_t) len);
			break;
	}
	/* the decoders end only with the object: bytes after a frame are not */
	if (n == 0)
		check_end(s);
	return n;
}
