--
-- Upgrades (after pg_stat_statements' oldextversions test): a database
-- created on the oldest release and brought up with ALTER EXTENSION tsnap
-- UPDATE must end up with exactly the objects of a fresh install, or
-- databases would differ by their history.  Both are described below, fact
-- by fact and by name, never by OID (every install has new OIDs), and the
-- test shows the facts found on one side only: none.
--
-- Needs no S3: nothing here takes a snapshot.
--
SET client_min_messages = warning;
CREATE SCHEMA upgrade_check;

-- an array as text with its elements sorted: ACLs, options and settings are
-- the same whatever order the statements that made them ran in
CREATE FUNCTION upgrade_check.sorted(anyarray) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN $1 IS NULL THEN 'null'
	ELSE array(SELECT x::text FROM unnest($1) x ORDER BY 1)::text END $$;

-- Everything tsnap installs, one row per fact: the pg_extension row (with
-- the tables pg_dump dumps), every member, and for each kind of member what
-- a script can set on it.
CREATE FUNCTION upgrade_check.objects(OUT object text, OUT aspect text, OUT detail text)
RETURNS SETOF record
LANGUAGE sql STABLE
AS $$
WITH ext AS (
	SELECT * FROM pg_extension WHERE extname = 'tsnap'
), member AS (
	SELECT d.classid, d.objid, d.objsubid
	FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
	WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
), rel AS (
	-- member relations, and the relations behind member composite types
	SELECT c.* FROM pg_class c
	WHERE c.oid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass)
	   OR c.oid IN (SELECT t.typrelid FROM pg_type t JOIN member m
					ON m.classid = 'pg_type'::regclass AND m.objid = t.oid)
), fn AS (
	SELECT p.* FROM pg_proc p JOIN member m
		ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
), typ AS (
	SELECT t.* FROM pg_type t JOIN member m
		ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
), described AS (
	-- what comments and initial privileges can hang on
	SELECT classid, objid FROM member
	UNION SELECT 'pg_class'::regclass::oid, oid FROM rel
	UNION SELECT 'pg_class'::regclass::oid, i.indexrelid FROM rel c JOIN pg_index i ON i.indrelid = c.oid
	UNION SELECT 'pg_constraint'::regclass::oid, co.oid FROM rel c JOIN pg_constraint co ON co.conrelid = c.oid
	UNION SELECT 'pg_trigger'::regclass::oid, t.oid FROM rel c JOIN pg_trigger t ON t.tgrelid = c.oid
)
-- the extension: version, schema, and the config tables pg_dump dumps
SELECT 'extension tsnap', 'version', extversion FROM ext
UNION ALL
SELECT 'extension tsnap', 'schema',
	format('%s, relocatable %s, owner %s', extnamespace::regnamespace, extrelocatable,
		   pg_get_userbyid(extowner))
FROM ext
UNION ALL
SELECT 'extension tsnap', 'dumped', format('%s, condition %L', cfg::regclass, cond)
FROM ext, unnest(extconfig, extcondition) AS u(cfg, cond)
-- every member
UNION ALL
SELECT pg_describe_object(classid, objid, objsubid), 'member', '' FROM member
-- functions
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), 'signature',
	format('%s(%s) RETURNS %s', p.proname, pg_get_function_arguments(p.oid),
		   pg_get_function_result(p.oid))
FROM fn p
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), 'body',
	format('language %s, kind %s, bin %s, src %s', l.lanname, p.prokind, p.probin, p.prosrc)
FROM fn p JOIN pg_language l ON l.oid = p.prolang
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), 'properties',
	format('volatile %s, parallel %s, strict %s, security definer %s, leakproof %s, cost %s, rows %s, owner %s',
		   p.provolatile, p.proparallel, p.proisstrict, p.prosecdef, p.proleakproof,
		   p.procost, p.prorows, pg_get_userbyid(p.proowner))
FROM fn p
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), 'settings', upgrade_check.sorted(p.proconfig)
FROM fn p
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), 'privileges', upgrade_check.sorted(p.proacl)
FROM fn p
-- schemas
UNION ALL
SELECT pg_describe_object('pg_namespace'::regclass, n.oid, 0), 'privileges',
	format('%s, owner %s', upgrade_check.sorted(n.nspacl), pg_get_userbyid(n.nspowner))
FROM pg_namespace n JOIN member m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
-- relations
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'relation',
	format('kind %s, persistence %s, access method %s, tablespace %s, row security %s, forced %s, replica identity %s, owner %s',
		   c.relkind, c.relpersistence, am.amname, ts.spcname, c.relrowsecurity,
		   c.relforcerowsecurity, c.relreplident, pg_get_userbyid(c.relowner))
FROM rel c LEFT JOIN pg_am am ON am.oid = c.relam
	LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'options', upgrade_check.sorted(c.reloptions)
FROM rel c
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'privileges', upgrade_check.sorted(c.relacl)
FROM rel c
UNION ALL
-- columns by their place among the live ones, which is what SELECT * shows
-- (an upgrade that drops a column leaves a dropped one behind); of their
-- options, not pg_attver, which this server stamps on every new column
-- with a value of its own
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'column',
	format('%s %I %s%s, default %s, identity %s, generated %s, collation %s, storage %s, options %s, privileges %s',
		   row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,
		   format_type(a.atttypid, a.atttypmod),
		   CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
		   pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
		   co.collname, a.attstorage,
		   upgrade_check.sorted(array(SELECT o FROM unnest(a.attoptions) o
									  WHERE o NOT LIKE 'pg\_attver=%')),
		   upgrade_check.sorted(a.attacl))
FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	LEFT JOIN pg_collation co ON co.oid = a.attcollation
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'index',
	pg_get_indexdef(i.indexrelid) ||
	CASE WHEN i.indisclustered THEN ', clustered' ELSE '' END ||
	CASE WHEN i.indisreplident THEN ', replica identity' ELSE '' END
FROM rel c JOIN pg_index i ON i.indrelid = c.oid
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'constraint',
	format('%I %s', co.conname, pg_get_constraintdef(co.oid))
FROM rel c JOIN pg_constraint co ON co.conrelid = c.oid
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'trigger',
	format('%s, enabled %s', pg_get_triggerdef(t.oid), t.tgenabled)
FROM rel c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'view', pg_get_viewdef(c.oid)
FROM rel c WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'rule', pg_get_ruledef(r.oid)
FROM rel c JOIN pg_rewrite r ON r.ev_class = c.oid AND r.rulename <> '_RETURN'
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'policy',
	format('%I for %s, permissive %s, to %s, using %s, with check %s',
		   p.polname, p.polcmd, p.polpermissive,
		   array(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
				 FROM unnest(p.polroles) r ORDER BY 1),
		   pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM rel c JOIN pg_policy p ON p.polrelid = c.oid
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), 'sequence',
	format('%s, start %s, increment %s, min %s, max %s, cache %s, cycle %s',
		   s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
		   s.seqcache, s.seqcycle)
FROM rel c JOIN pg_sequence s ON s.seqrelid = c.oid
-- event triggers
UNION ALL
SELECT pg_describe_object('pg_event_trigger'::regclass, e.oid, 0), 'event trigger',
	format('on %s, tags %s, executes %s, enabled %s, owner %s',
		   e.evtevent, upgrade_check.sorted(e.evttags), e.evtfoid::regprocedure,
		   e.evtenabled, pg_get_userbyid(e.evtowner))
FROM pg_event_trigger e JOIN member m
	ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
-- types
UNION ALL
SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), 'type',
	format('type %s, category %s, length %s, by value %s, in %s, out %s, receive %s, send %s, base %s, not null %s, default %s, privileges %s, owner %s',
		   t.typtype, t.typcategory, t.typlen, t.typbyval, t.typinput, t.typoutput,
		   t.typreceive, t.typsend, format_type(nullif(t.typbasetype, 0), t.typtypmod),
		   t.typnotnull, t.typdefault, upgrade_check.sorted(t.typacl),
		   pg_get_userbyid(t.typowner))
FROM typ t
UNION ALL
SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), 'labels',
	array(SELECT enumlabel FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder)::text
FROM typ t WHERE t.typtype = 'e'
UNION ALL
SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), 'range',
	format('subtype %s, collation %s, opclass %s, canonical %s, diff %s',
		   r.rngsubtype::regtype, co.collname, oc.opcname, r.rngcanonical, r.rngsubdiff)
FROM typ t JOIN pg_range r ON r.rngtypid = t.oid
	JOIN pg_opclass oc ON oc.oid = r.rngsubopc
	LEFT JOIN pg_collation co ON co.oid = r.rngcollation
UNION ALL
SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), 'constraint',
	format('%I %s', co.conname, pg_get_constraintdef(co.oid))
FROM typ t JOIN pg_constraint co ON co.contypid = t.oid
-- comments, on members and their columns, indexes, constraints, triggers
UNION ALL
SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), 'comment', d.description
FROM pg_description d JOIN described o ON o.classid = d.classoid AND o.objid = d.objoid
-- the privileges pg_dump takes as the extension's own (it dumps only changes
-- from these); an upgrade script's GRANTs land here as a fresh install's do
UNION ALL
SELECT pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), 'initial privileges',
	format('%s %s', ip.privtype, upgrade_check.sorted(ip.initprivs))
FROM pg_init_privs ip JOIN described o ON o.classid = ip.classoid AND o.objid = ip.objoid
$$;

-- the regression database has the current release; start over on the oldest
DROP EXTENSION tsnap;
CREATE EXTENSION tsnap VERSION '0.1.0';
\dx tsnap
\dx+ tsnap
SELECT source, target, path FROM pg_extension_update_paths('tsnap')
WHERE path IS NOT NULL ORDER BY source, target;

-- a table tracked on the old release keeps its version and its tracking
CREATE TABLE upgrade_check.t (a int);
SELECT tsnap_track('upgrade_check.t');
INSERT INTO upgrade_check.t VALUES (1);
SELECT tracking_id AS old_tracking_id FROM tsnap.tracked_tables
WHERE tbl = 'upgrade_check.t'::regclass \gset

ALTER EXTENSION tsnap UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tsnap';

INSERT INTO upgrade_check.t VALUES (2);
SELECT tsnap_version('upgrade_check.t'),
	   tracking_id = :'old_tracking_id' AS same_tracking_id
FROM tsnap.tracked_tables WHERE tbl = 'upgrade_check.t'::regclass;
DROP TABLE upgrade_check.t;

CREATE TABLE upgrade_check.upgraded AS SELECT * FROM upgrade_check.objects();

-- a fresh install of the current release
DROP EXTENSION tsnap;
CREATE EXTENSION tsnap;
CREATE TABLE upgrade_check.fresh AS SELECT * FROM upgrade_check.objects();

-- what the description covers (a check on the check: none of it is empty)
SELECT aspect, count(*) FROM upgrade_check.fresh GROUP BY aspect ORDER BY aspect;

-- the facts on one side only: none
(SELECT 'upgraded only' AS side, * FROM
	(SELECT * FROM upgrade_check.upgraded EXCEPT ALL SELECT * FROM upgrade_check.fresh) u)
UNION ALL
(SELECT 'fresh only', * FROM
	(SELECT * FROM upgrade_check.fresh EXCEPT ALL SELECT * FROM upgrade_check.upgraded) f)
ORDER BY object, aspect, detail, side;

SELECT extversion FROM pg_extension WHERE extname = 'tsnap';

DROP SCHEMA upgrade_check CASCADE;
