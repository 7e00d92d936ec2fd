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
 * boundary, the longest last (context, then detail), so that the message
 * always arrives.  The receiving side raises it with ThrowErrorData, which
 * adds the receiver's own error context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "common.h"

/* the fields that travel, in the order they are packed */
typedef enum FlatField
{
	FIELD_MESSAGE,
	FIELD_HINT,
	FIELD_SCHEMA,
	FIELD_TABLE,
	FIELD_COLUMN,
	FIELD_DATATYPE,
	FIELD_CONSTRAINT,
	FIELD_DETAIL,
	FIELD_CONTEXT,
	NUM_FIELDS
} FlatField;

static const char **
field_slot(ErrorData *edata, FlatField f)
{
	switch (f)
	{
		case FIELD_MESSAGE:
			return (const char **) &edata->message;
		case FIELD_HINT:
			return (const char **) &edata->hint;
		case FIELD_SCHEMA:
			return (const char **) &edata->schema_name;
		case FIELD_TABLE:
			return (const char **) &edata->table_name;
		case FIELD_COLUMN:
			return (const char **) &edata->column_name;
		case FIELD_DATATYPE:
			return (const char **) &edata->datatype_name;
		case FIELD_CONSTRAINT:
			return (const char **) &edata->constraint_name;
		case FIELD_DETAIL:
			return (const char **) &edata->detail;
		case FIELD_CONTEXT:
			return (const char **) &edata->context;
		default:
			elog(ERROR, "unknown error field %d", (int) f);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * Pack edata into flat.  Never raises: it runs while an error is handled.
 */
void
tsnap_error_flatten(const ErrorData *edata, TsnapFlatError *flat)
{
	ErrorData	copy = *edata;
	int			pos = 0;
	int			f;

	flat->sqlerrcode = edata->sqlerrcode;
	for (f = 0; f < NUM_FIELDS; f++)
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
 * Raise the error flat holds, as ERROR, as if it had been raised here.
 */
void
tsnap_error_throw(const TsnapFlatError *flat)
{
	ErrorData	edata;
	int			pos = 0;
	int			f;

	memset(&edata, 0, sizeof(edata));
	edata.elevel = ERROR;
	edata.sqlerrcode = flat->sqlerrcode;
	for (f = 0; f < NUM_FIELDS && pos < flat->len; f++)
	{
		bool		present = flat->data[pos++] != 0;

		if (!present)
			continue;
		*field_slot(&edata, f) = pstrdup(flat->data + pos);
		pos += strlen(flat->data + pos) + 1;
	}
	if (edata.message == NULL)
		edata.message = pstrdup("unknown error");
	ThrowErrorData(&edata);
	/* ThrowErrorData returns only below ERROR */
	elog(ERROR, "could not raise the error of a tsnap worker");
}
