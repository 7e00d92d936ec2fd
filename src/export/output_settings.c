/*-------------------------------------------------------------------------
 *
 * output_settings.c
 *	  The settings a snapshot's bytes depend on, pinned for every scan.
 *
 * Type output depends on settings (DateStyle, TimeZone, ...), row order on
 * synchronize_seqscans, and a key must mean one content whoever asked.  So
 * the worker pins these values for each request, in the GUC nest level of
 * the caller's part of the request (build/build.c), and they are part of
 * every fingerprint (ledger/key.c): changing this list changes every key.
 * Byte-identity with COPY holds for a COPY run under these same settings.
 *
 * Planning the scan can run the table owner's code (a function in an index
 * expression is constant-folded), which could change a setting with
 * set_config(); so the worker also checks the values before it encodes
 * rows, and refuses to write bytes made under any other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "export/export.h"

/* name, value as SHOW prints it */
const char *const tsnap_output_settings[][2] = {
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	{"search_path", "pg_catalog"},
	{"quote_all_identifiers", "off"},
	{"synchronize_seqscans", "off"},
	{NULL, NULL}
};

/*
 * Set every pinned value in the current GUC nest level (the caller opened
 * it and undoes it with AtEOXact_GUC).
 */
void
tsnap_pin_output_settings(void)
{
	int			i;

	for (i = 0; tsnap_output_settings[i][0]; i++)
		(void) set_config_option(tsnap_output_settings[i][0],
								 tsnap_output_settings[i][1],
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
}

/*
 * Raise 55000 unless every pinned setting still has its value.
 */
void
tsnap_check_output_settings(const char *relname)
{
	int			i;

	for (i = 0; tsnap_output_settings[i][0]; i++)
	{
		const char *name = tsnap_output_settings[i][0];
		const char *value = GetConfigOption(name, false, false);

		if (value == NULL || strcmp(value, tsnap_output_settings[i][1]) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("setting \"%s\" was changed while the snapshot of table \"%s\" was prepared",
							name, relname),
					 errdetail("Snapshots are encoded only with %s = '%s'; a function run while planning the scan, such as one in an index expression, changed it.",
							   name, tsnap_output_settings[i][1])));
	}
}
