/*-------------------------------------------------------------------------
 *
 * export.h
 *	  Turning a table's rows into the bytes of an object: the format
 *	  interface and the CSV format (csv.c), the settings those bytes depend
 *	  on (output_settings.c), the scan that runs an SPI cursor through a
 *	  format into a sink (scan.c), and the compression stage that can sit
 *	  between the format and the sink (compress.c).
 *
 * Export knows nothing of keys, requests or where the bytes go: a sink is
 * a callback.  This folder calls common/ and settings only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_EXPORT_H
#define TSNAP_EXPORT_H

#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/relcache.h"

#include "settings.h"

/*
 * The options of a CSV format, as a reader needs them (a snapshot's
 * manifest describes its object with them, ledger/manifest.c).
 */
typedef struct TsnapCsvOptions
{
	bool		header;			/* the first line names the columns */
	char		delimiter;
	char		quote;
	char		escape;
	const char *null;			/* how NULL is written (unquoted) */
} TsnapCsvOptions;

/*
 * A format: how rows become bytes, and what an object in it is called.
 * The fingerprint tag names every option that changes the bytes, so that
 * a key covers them (ledger/key.c).
 */
typedef struct TsnapFormat
{
	const char *name;
	const char *content_type;	/* the object's Content-Type */
	const char *suffix;			/* ends the object's key */
	const char *fingerprint_tag;
	const TsnapCsvOptions *csv; /* NULL for a format that is not CSV */
	/* state for rows of tupdesc, allocated in the current memory context */
	void	   *(*begin) (TupleDesc tupdesc);
	void		(*header) (void *state, StringInfo out);
	void		(*row) (void *state, const Datum *values, const bool *nulls,
						StringInfo out);
} TsnapFormat;

/* csv.c: byte for byte what COPY ... TO (FORMAT csv, HEADER) writes */
extern const TsnapFormat tsnap_format_csv;

/* output_settings.c */
extern const char *const tsnap_output_settings[][2];
extern void tsnap_pin_output_settings(void);
extern void tsnap_check_output_settings(const char *relname);

/*
 * scan.c.  A sink takes the bytes as they are made; it raises to stop the
 * scan.  It is called with at most TSNAP_SCAN_CHUNK bytes gathered, and
 * once more at the end.
 */
#define TSNAP_SCAN_CHUNK	(256 * 1024)

typedef struct TsnapSink
{
	void		(*write) (void *arg, const char *data, size_t len,
						  int64 rows_so_far);
	void	   *arg;
} TsnapSink;

typedef struct TsnapScan TsnapScan;

extern TsnapScan *tsnap_scan_open(Relation rel);
extern int64 tsnap_scan_run(TsnapScan *scan, const TsnapFormat *format,
							const TsnapSink *sink);

/*
 * compress.c.  A codec names a compression (TsnapCompression, settings.h)
 * and says what it makes of an object: its key's suffix follows the
 * format's (".csv.gz"), and its Content-Type replaces the format's (none
 * keeps the format's).  A compressor is a sink that compresses what it is
 * given into another sink; tsnap_compressor_finish writes the stream's end
 * there.  Its library state is freed with the memory context current when
 * it began, also on error.
 */
#define TSNAP_COMPRESSION_NAMES "none, gzip, zstd"

typedef struct TsnapCodec
{
	TsnapCompression id;
	const char *name;			/* as SQL and tsnap.compression spell it */
	const char *suffix;			/* after the format's: "", ".gz", ".zst" */
	const char *content_type;	/* NULL: the format's */
} TsnapCodec;

typedef struct TsnapCompressor TsnapCompressor;

extern const TsnapCodec *tsnap_codec(TsnapCompression compression);
extern bool tsnap_codec_by_name(const char *name, TsnapCompression *out);
extern TsnapCompressor *tsnap_compressor_begin(TsnapCompression compression,
											   const TsnapSink *out,
											   TsnapSink *in);
extern void tsnap_compressor_finish(TsnapCompressor *compressor);

#endif							/* TSNAP_EXPORT_H */
