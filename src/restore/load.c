/*-------------------------------------------------------------------------
 *
 * load.c
 *	  The rows go in through PostgreSQL's own COPY FROM: BeginCopyFrom with
 *	  a data-source callback that pulls from the restore stream, CopyFrom,
 *	  EndCopyFrom, in the caller's backend and transaction.
 *
 * This is what DoCopy does for COPY table (columns) FROM a file, minus the
 * file: the target enters a range table that requires INSERT on exactly
 * the columns loaded, checked with ExecCheckRTPerms, so column privileges,
 * defaults of the columns left out, constraints, triggers, partition
 * routing, batching and the error context "COPY table, line N" are COPY's
 * own.  The options come from the manifest: FORMAT csv, the delimiter,
 * quote, escape and NULL string it was written with, its ENCODING (COPY
 * converts to the server encoding, or refuses when it cannot), and HEADER
 * MATCH, so that COPY also checks the header line against the columns.
 *
 * Values are read under the settings they were written with where input
 * depends on them: DateStyle, IntervalStyle and lc_monetary (money) take
 * the manifest's output_settings for the load, in a GUC nest level undone
 * afterwards.  TimeZone is left alone: every timestamptz in a snapshot
 * carries its offset, and the caller's defaults (current_date) should see
 * the caller's zone.
 *
 * COPY's data-source callback takes no argument, so the stream it reads
 * is a static of this file, saved and put back around each load so that a
 * restore run by a trigger during another restore reads its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "commands/copy.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "restore/restore.h"

struct TsnapLoad
{
	Relation	rel;
	ParseState *pstate;			/* its range table holds the target */
	List	   *attnames;
	List	   *options;		/* COPY's, as DefElems */
	const TsnapManifest *manifest;
};

/* the settings input depends on, with tsnap's pinned values as fallback */
static const char *const input_settings[][2] = {
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"lc_monetary", "C"},
};

static TsnapRestoreStream *current_stream = NULL;

static int
data_source(void *outbuf, int minread, int maxread)
{
	return tsnap_restore_stream_read(current_stream, outbuf, maxread);
}

static DefElem *
option(const char *name, const char *value)
{
	return makeDefElem(pstrdup(name), (Node *) makeString(pstrdup(value)), -1);
}

/*
 * Everything that can be checked before a row changes: INSERT on the
 * columns to load (42501, as COPY raises it) and COPY's options (as COPY
 * checks them).  The target must be open and locked.
 */
TsnapLoad *
tsnap_load_prepare(Relation rel, List *attnames, const TsnapManifest *m)
{
	TsnapLoad  *load = palloc0(sizeof(TsnapLoad));
	ParseNamespaceItem *nsitem;
	RangeTblEntry *rte;
	CopyFormatOptions opts;
	ListCell   *lc;

	load->rel = rel;
	load->attnames = attnames;
	load->manifest = m;
	load->pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(load->pstate, rel,
										   RowExclusiveLock, NULL, false,
										   false);
	rte = nsitem->p_rte;
	rte->requiredPerms = ACL_INSERT;
	foreach(lc, attnames)
	{
		AttrNumber	attnum = attnameAttNum(rel, strVal(lfirst(lc)), false);

		rte->insertedCols = bms_add_member(rte->insertedCols,
										   attnum - FirstLowInvalidHeapAttributeNumber);
	}
	ExecCheckRTPerms(load->pstate->p_rtable, true);

	load->options = list_make5(option("format", "csv"),
							   option("delimiter", m->delimiter),
							   option("quote", m->quote),
							   option("escape", m->escape),
							   option("null", m->null_string));
	load->options = lappend(load->options, option("encoding", m->encoding));
	if (m->header)
		load->options = lappend(load->options, option("header", "match"));
	memset(&opts, 0, sizeof(opts));
	ProcessCopyOptions(load->pstate, &opts, true, load->options);
	return load;
}

/* Set the input settings for the load, in the current GUC nest level. */
static void
pin_input_settings(const TsnapManifest *m)
{
	size_t		i;

	for (i = 0; i < lengthof(input_settings); i++)
	{
		const char *value = input_settings[i][1];
		ListCell   *lc;

		foreach(lc, m->settings)
		{
			DefElem    *d = lfirst(lc);

			if (pg_strcasecmp(d->defname, input_settings[i][0]) == 0)
				value = strVal(d->arg);
		}
		(void) set_config_option(input_settings[i][0], value,
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	}
}

/* COPY the stream into the target; the rows COPY inserted. */
uint64
tsnap_load_run(TsnapLoad *load, TsnapRestoreStream *stream)
{
	TsnapRestoreStream *saved = current_stream;
	int			nestlevel = NewGUCNestLevel();
	uint64		processed = 0;

	pin_input_settings(load->manifest);
	current_stream = stream;
	PG_TRY();
	{
		CopyFromState cstate;

		cstate = BeginCopyFrom(load->pstate, load->rel, NULL, NULL, false,
							   data_source, load->attnames, load->options);
		processed = CopyFrom(cstate);
		EndCopyFrom(cstate);
	}
	PG_FINALLY();
	{
		current_stream = saved;
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nestlevel);
	return processed;
}
