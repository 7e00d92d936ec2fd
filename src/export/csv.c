/*-------------------------------------------------------------------------
 *
 * csv.c
 *	  The CSV format: rows to CSV, byte for byte as COPY ... TO (FORMAT csv,
 *	  HEADER) writes.
 *
 * The encoder appends to a StringInfo that the caller drains (the scan hands
 * it to the uploader every few dozen kilobytes).  It follows copyto.c's
 * CopyAttributeOutCSV with COPY's defaults: delimiter ',', quote and escape
 * '"', NULL written as nothing, rows ended by "\n".  A value is quoted when
 * it is the empty string (which would otherwise read back as NULL), contains
 * the delimiter, a quote, CR or LF, or, in a single-column result, is
 * exactly "\." (which alone on a line would end COPY FROM's data).  Header
 * names follow the same rules.
 *
 * Values come from the columns' type output functions in the current
 * session's settings; the worker pins those settings (output_settings.c) so that
 * a key's bytes never depend on who asked.  Server encodings never embed
 * ASCII bytes in multibyte characters, so a byte-wise scan is exact.
 *
 * The encoder's per-row memory lives in its own context, reset per row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "export/export.h"

#define CSV_DELIM	','
#define CSV_QUOTE	'"'

typedef struct CsvEncoder
{
	TupleDesc	tupdesc;
	int			natts;
	FmgrInfo   *out_funcs;
	MemoryContext rowcxt;
} CsvEncoder;

/* the bytes that make COPY quote a value */
static const char csv_specials[] = {CSV_DELIM, CSV_QUOTE, '\n', '\r', '\0'};

/*
 * Prepare to encode rows of tupdesc.  The encoder keeps a pointer to
 * tupdesc, which must outlive it.
 */
static void *
csv_begin(TupleDesc tupdesc)
{
	CsvEncoder *enc = palloc0(sizeof(CsvEncoder));
	int			i;

	enc->tupdesc = tupdesc;
	enc->natts = tupdesc->natts;
	enc->out_funcs = palloc0(sizeof(FmgrInfo) * Max(enc->natts, 1));
	for (i = 0; i < enc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		Oid			out_func;
		bool		isvarlena;

		getTypeOutputInfo(att->atttypid, &out_func, &isvarlena);
		fmgr_info(out_func, &enc->out_funcs[i]);
	}
	enc->rowcxt = AllocSetContextCreate(CurrentMemoryContext,
										"tsnap csv row",
										ALLOCSET_DEFAULT_SIZES);
	return enc;
}

/*
 * Append one field.  See the file header for when COPY quotes.
 */
static void
append_field(StringInfo out, const char *s, bool single_attr)
{
	const char *p;
	const char *start;
	bool		quote = false;

	if (*s == '\0')
		quote = true;
	else if (single_attr && strcmp(s, "\\.") == 0)
		quote = true;
	else
	{
		/*
		 * strcspn rather than a byte loop: glibc's is vectorized, and this
		 * scan touches every byte of the snapshot (measured with
		 * bench/snapshot.sh).
		 */
		p = s + strcspn(s, csv_specials);
		quote = (*p != '\0');
		if (!quote)
		{
			appendBinaryStringInfo(out, s, p - s);
			return;
		}
	}

	appendStringInfoCharMacro(out, CSV_QUOTE);
	start = s;
	for (p = s; *p; p++)
	{
		if (*p == CSV_QUOTE)
		{
			/* emit up to and including the quote, then double it */
			appendBinaryStringInfo(out, start, p - start + 1);
			appendStringInfoCharMacro(out, CSV_QUOTE);
			start = p + 1;
		}
	}
	appendBinaryStringInfo(out, start, p - start);
	appendStringInfoCharMacro(out, CSV_QUOTE);
}

/*
 * Append the header line: the column names.
 */
static void
csv_header(void *state, StringInfo out)
{
	CsvEncoder *enc = (CsvEncoder *) state;
	int			i;

	for (i = 0; i < enc->natts; i++)
	{
		if (i > 0)
			appendStringInfoCharMacro(out, CSV_DELIM);
		append_field(out, NameStr(TupleDescAttr(enc->tupdesc, i)->attname),
					 enc->natts == 1);
	}
	appendStringInfoCharMacro(out, '\n');
}

/*
 * Append one row, given as deformed values (a slot's tts_values/tts_isnull).
 */
static void
csv_row(void *state, const Datum *values, const bool *nulls, StringInfo out)
{
	CsvEncoder *enc = (CsvEncoder *) state;
	MemoryContext old = MemoryContextSwitchTo(enc->rowcxt);
	int			i;

	for (i = 0; i < enc->natts; i++)
	{
		if (i > 0)
			appendStringInfoCharMacro(out, CSV_DELIM);
		if (!nulls[i])
			append_field(out,
						 OutputFunctionCall(&enc->out_funcs[i], values[i]),
						 enc->natts == 1);
	}
	appendStringInfoCharMacro(out, '\n');
	MemoryContextSwitchTo(old);
	MemoryContextReset(enc->rowcxt);
}

/* what the encoder above writes, for readers of the object */
static const TsnapCsvOptions csv_options = {
	.header = true,
	.delimiter = CSV_DELIM,
	.quote = CSV_QUOTE,
	.escape = CSV_QUOTE,
	.null = "",
};

/*
 * COPY's options as the fingerprint records them, and the header flag:
 * changing any of them must change every key.
 */
const TsnapFormat tsnap_format_csv = {
	.name = "csv",
	.content_type = "text/csv",
	.suffix = ".csv",
	.fingerprint_tag = "csv;header;delimiter=,;quote=\";escape=\";null=",
	.csv = &csv_options,
	.begin = csv_begin,
	.header = csv_header,
	.row = csv_row,
};
