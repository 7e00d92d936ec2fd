/*-------------------------------------------------------------------------
 *
 * compress.c
 *	  The compression stage of an export: a sink that compresses the
 *	  format's bytes with gzip (zlib) or zstd (libzstd) into the sink
 *	  behind it, and the codecs' names, key suffixes and content types.
 *
 * The stage sits between the format and the uploader (build/build.c):
 * the scan writes CSV into it in chunks of at most TSNAP_SCAN_CHUNK bytes,
 * and it passes compressed bytes on whenever its output buffer of
 * TSNAP_SCAN_CHUNK bytes is full, and once more at the end.  So the
 * uploader sees an ordinary stream and cuts its parts as before, and
 * memory is the buffer plus the library's state, which the level set by
 * the administrator bounds (zlib: about 256kB at any level; zstd, as
 * ZSTD_estimateCStreamSize gives it: 1.3MB at level 1, 3.5MB at 3, 17MB at
 * 9, 90MB at 19, where the settings stop so that no --ultra window is ever
 * allocated); never the table's size.
 *
 * What the object is: a gzip member (RFC 1952) or a zstd frame (RFC 8878)
 * with a content checksum, which gunzip and "zstd -d" turn back into
 * exactly the bytes the format made.  Its Content-Type says so
 * (application/gzip, RFC 6713; application/zstd, RFC 8878) and no
 * Content-Encoding is set: an object at "....csv.gz" is a gzip file, and
 * every client (curl, browsers, awscli, SDKs) then stores what the key
 * promises instead of some of them decompressing it on the fly and others
 * not; few clients decode a zstd Content-Encoding at all.
 *
 * Ownership: zlib and libzstd allocate with malloc.  A compressor frees its
 * library state from a reset callback of the memory context it was begun
 * in, so an error anywhere in the scan or the upload frees it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <zlib.h>
#include <zstd.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "export/export.h"
#include "settings.h"

/* input compressed between two interrupt checks */
#define COMPRESS_SLICE	(64 * 1024)

static const TsnapCodec codecs[] = {
	{TSNAP_COMPRESSION_NONE, "none", "", NULL},
	{TSNAP_COMPRESSION_GZIP, "gzip", ".gz", "application/gzip"},
	{TSNAP_COMPRESSION_ZSTD, "zstd", ".zst", "application/zstd"},
};

struct TsnapCompressor
{
	TsnapCompression compression;
	TsnapSink	out;
	int64		rows;			/* as the scan last reported them */
	char	   *buf;			/* TSNAP_SCAN_CHUNK bytes of output */
	size_t		filled;
	bool		gzip_open;		/* zs holds zlib state */
	z_stream	zs;
	ZSTD_CCtx  *zstd;
	MemoryContextCallback cb;
};

/* The codec of compression; raises on a value that names none. */
const TsnapCodec *
tsnap_codec(TsnapCompression compression)
{
	if ((int) compression < 0 || (int) compression >= (int) lengthof(codecs))
		elog(ERROR, "unknown tsnap compression %d", (int) compression);
	return &codecs[compression];
}

/*
 * The compression called name, in any case (as tsnap.compression reads
 * it); false if none is.
 */
bool
tsnap_codec_by_name(const char *name, TsnapCompression *out)
{
	int			i;

	for (i = 0; i < (int) lengthof(codecs); i++)
		if (pg_strcasecmp(codecs[i].name, name) == 0)
		{
			*out = codecs[i].id;
			return true;
		}
	return false;
}

static void
release_compressor(void *arg)
{
	TsnapCompressor *c = (TsnapCompressor *) arg;

	if (c->gzip_open)
		(void) deflateEnd(&c->zs);
	c->gzip_open = false;
	if (c->zstd)
		ZSTD_freeCCtx(c->zstd);
	c->zstd = NULL;
}

/* Pass the output gathered so far on to the next sink. */
static void
emit(TsnapCompressor *c)
{
	if (c->filled == 0)
		return;
	c->out.write(c->out.arg, c->buf, c->filled, c->rows);
	c->filled = 0;
}

/*
 * Feed len bytes to deflate; with finish, end the gzip member.  Whenever
 * the output buffer is full it goes to the next sink.
 */
static void
gzip_feed(TsnapCompressor *c, const char *data, size_t len, bool finish)
{
	int			flush = finish ? Z_FINISH : Z_NO_FLUSH;

	/* a sink gets at most a chunk and one row, which StringInfo caps at 1GB */
	Assert(len <= UINT_MAX);
	c->zs.next_in = (Bytef *) data;
	c->zs.avail_in = (uInt) len;
	for (;;)
	{
		int			rc;

		c->zs.next_out = (Bytef *) c->buf + c->filled;
		c->zs.avail_out = (uInt) (TSNAP_SCAN_CHUNK - c->filled);
		rc = deflate(&c->zs, flush);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compress a snapshot with gzip"),
					 errdetail_internal("zlib: %s", c->zs.msg ? c->zs.msg : "stream error")));
		c->filled = TSNAP_SCAN_CHUNK - c->zs.avail_out;
		if (c->zs.avail_out == 0)
		{
			emit(c);
			continue;
		}
		/* room left: deflate took all the input, or ended the member */
		if (finish ? rc == Z_STREAM_END : c->zs.avail_in == 0)
			break;
	}
}

/* As gzip_feed, for zstd. */
static void
zstd_feed(TsnapCompressor *c, const char *data, size_t len, bool finish)
{
	ZSTD_inBuffer in = {data, len, 0};

	for (;;)
	{
		ZSTD_outBuffer out = {c->buf, TSNAP_SCAN_CHUNK, c->filled};
		size_t		left;

		left = ZSTD_compressStream2(c->zstd, &out, &in,
									finish ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compress a snapshot with zstd"),
					 errdetail_internal("zstd: %s", ZSTD_getErrorName(left))));
		c->filled = out.pos;
		if (c->filled == TSNAP_SCAN_CHUNK)
		{
			emit(c);
			continue;
		}
		if (finish ? left == 0 : in.pos == in.size)
			break;
	}
}

static void
compressor_write(void *arg, const char *data, size_t len, int64 rows_so_far)
{
	TsnapCompressor *c = (TsnapCompressor *) arg;

	c->rows = rows_so_far;

	/*
	 * In slices, with an interrupt check between them: one row can be a
	 * gigabyte, and at a high level compressing it can take minutes that
	 * neither the scan (which checks between rows) nor the uploader (which
	 * checks while it waits for the network) would interrupt.
	 */
	while (len > 0)
	{
		size_t		n = Min(len, COMPRESS_SLICE);

		CHECK_FOR_INTERRUPTS();
		if (c->compression == TSNAP_COMPRESSION_GZIP)
			gzip_feed(c, data, n, false);
		else
			zstd_feed(c, data, n, false);
		data += n;
		len -= n;
	}
}

static void
raise_no_memory(const char *codec)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("Could not set up %s compression for a snapshot.",
					   codec)));
}

/*
 * Begin compressing into out, at the level tsnap.gzip_level or
 * tsnap.zstd_level gives, and fill *in with the sink to write to.  For
 * TSNAP_COMPRESSION_NONE, *in is out itself and NULL is returned.
 */
TsnapCompressor *
tsnap_compressor_begin(TsnapCompression compression, const TsnapSink *out,
					   TsnapSink *in)
{
	TsnapCompressor *c;

	(void) tsnap_codec(compression);
	if (compression == TSNAP_COMPRESSION_NONE)
	{
		*in = *out;
		return NULL;
	}

	c = palloc0(sizeof(TsnapCompressor));
	c->compression = compression;
	c->out = *out;
	c->buf = palloc(TSNAP_SCAN_CHUNK);
	c->cb.func = release_compressor;
	c->cb.arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &c->cb);

	if (compression == TSNAP_COMPRESSION_GZIP)
	{
		/* windowBits 15 + 16: a gzip header and trailer around the deflate */
		int			rc = deflateInit2(&c->zs, tsnap_gzip_level, Z_DEFLATED,
									  15 + 16, 8, Z_DEFAULT_STRATEGY);

		if (rc == Z_MEM_ERROR)
			raise_no_memory("gzip");
		if (rc != Z_OK)
			elog(ERROR, "could not initialize zlib: %s",
				 c->zs.msg ? c->zs.msg : "error");
		c->gzip_open = true;
	}
	else
	{
		size_t		rc;

		c->zstd = ZSTD_createCCtx();
		if (c->zstd == NULL)
			raise_no_memory("zstd");
		rc = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel,
									tsnap_zstd_level);
		if (!ZSTD_isError(rc))
			rc = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_checksumFlag, 1);
		if (ZSTD_isError(rc))
			elog(ERROR, "could not set up zstd: %s", ZSTD_getErrorName(rc));
	}

	in->write = compressor_write;
	in->arg = c;
	return c;
}

/*
 * End the compressed stream: everything still buffered, and the gzip
 * trailer or zstd epilogue, goes to the next sink.  NULL (no compression)
 * does nothing.  The library state is freed with the memory context.
 */
void
tsnap_compressor_finish(TsnapCompressor *c)
{
	if (c == NULL)
		return;
	if (c->compression == TSNAP_COMPRESSION_GZIP)
		gzip_feed(c, NULL, 0, true);
	else
		zstd_feed(c, NULL, 0, true);
	emit(c);
}
