/*-------------------------------------------------------------------------
 *
 * error_transport.c
 *	  Errors that travel whole from one process to another.
 *
 * A worker's error reaches the caller that asked for the snapshot through
 * shared memory, and reaches it as if it had been raised there: with its
 * SQLSTATE, message, detail, hint, context and the schema, table, column,
 * data type and constraint names a client may use.  ErrorData holds
 * pointers, so the fields are flattened into one fixed-size buffer: each
 * field in a fixed order as a presence byte and, if present, its text with
 * its NUL.  A field that does not fit in what is left is cut at a character
 * boundary, the longest kinds last (detail, then context), so that the
 * message always arrives.  The receiving side raises it with ThrowErrorData, which
 * adds the receiver's own error context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "common.h"

/*
 * The fields that travel, in the order they are packed: the short ones
 * first, so that only detail and context are ever cut.
 */
static const size_t fields[] = {
	offsetof(ErrorData, message),
	offsetof(ErrorData, hint),
	offsetof(ErrorData, schema_name),
	offsetof(ErrorData, table_name),
	offsetof(ErrorData, column_name),
	offsetof(ErrorData, datatype_name),
	offsetof(ErrorData, constraint_name),
	offsetof(ErrorData, detail),
	offsetof(ErrorData, context),
};

static char **
field_slot(ErrorData *edata, size_t f)
{
	return (char **) ((char *) edata + fields[f]);
}

/*
 * Pack edata into flat.  Never raises: it runs while an error is handled.
 */
void
tsnap_error_flatten(const ErrorData *edata, TsnapFlatError *flat)
{
	ErrorData	copy = *edata;
	int			pos = 0;
	size_t		f;

	flat->sqlerrcode = edata->sqlerrcode;
	for (f = 0; f < lengthof(fields); f++)
	{
		const char *s = *field_slot(&copy, f);
		int			room = TSNAP_FLAT_ERROR_SIZE - pos - 2;	/* flag, NUL */
		int			len;

		if (room < 0)
			break;
		flat->data[pos++] = (s != NULL);
		if (s == NULL)
			continue;
		len = strlen(s);
		if (len > room)
			len = pg_mbcliplen(s, len, room);
		memcpy(flat->data + pos, s, len);
		pos += len;
		flat->data[pos++] = '\0';
	}
	flat->len = pos;
}

/*
 * Make flat an error of our own, with only a message and perhaps a hint.
 */
void
tsnap_error_set(TsnapFlatError *flat, int sqlerrcode, const char *message,
				const char *hint)
{
	ErrorData	edata;

	memset(&edata, 0, sizeof(edata));
	edata.sqlerrcode = sqlerrcode;
	edata.message = (char *) message;
	edata.hint = (char *) hint;
	tsnap_error_flatten(&edata, flat);
}

/*
 * The fields flat holds, palloc'd, in an ErrorData at level ERROR (for
 * storing them, or raising them).
 */
void
tsnap_error_unflatten(const TsnapFlatError *flat, ErrorData *edata)
{
	int			pos = 0;
	size_t		f;

	memset(edata, 0, sizeof(*edata));
	edata->elevel = ERROR;
	edata->sqlerrcode = flat->sqlerrcode;
	for (f = 0; f < lengthof(fields) && pos < flat->len; f++)
	{
		bool		present = flat->data[pos++] != 0;

		if (!present)
			continue;
		*field_slot(edata, f) = pstrdup(flat->data + pos);
		pos += strlen(flat->data + pos) + 1;
	}
	if (edata->message == NULL)
		edata->message = pstrdup("unknown error");
}

/*
 * Raise the error flat holds, as ERROR, as if it had been raised here.
 */
void
tsnap_error_throw(const TsnapFlatError *flat)
{
	ErrorData	edata;

	tsnap_error_unflatten(flat, &edata);
	ThrowErrorData(&edata);
	/* ThrowErrorData returns only below ERROR */
	elog(ERROR, "could not raise the error of a tsnap worker");
}
