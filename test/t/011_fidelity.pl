# Copyright (c) tsnap authors

# Data fidelity: a snapshot is byte for byte what
#   COPY (SELECT * FROM t) TO ... WITH (FORMAT csv, HEADER)
# writes under tsnap's pinned output settings, whatever the caller's own
# settings, for every built-in base type and the awkward values of each
# (NaN, infinities, -0, empty strings, quotes, commas, CR, LF, CRLF, "\.",
# unicode, NULLs, toasted values), arrays, composites, domains, enums,
# generated, dropped and fast-default columns.  The object loads back with
# COPY FROM into the same rows, and the manifest's rows and bytes are right.
# Finally, a second call is a hit decided by the caller alone, without a
# worker, whatever the caller's settings.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('fidelity');
my $tmp = PostgreSQL::Test::Utils::tempdir();

# The settings the worker pins (snapshot_key.c); COPY must run under them.
# (client_encoding too, so that COPY TO a file writes the server's bytes.)
my $pinned = q{
SET client_encoding = 'UTF8';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SET lc_monetary = 'C';
SET search_path = pg_catalog;
};

# Settings as different as possible, for the callers: they must not matter.
my $foreign = q{
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'iso_8601';
SET TimeZone = 'Asia/Kathmandu';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SET search_path = public, pg_catalog;
};

# Report the first differing byte instead of dumping megabytes.
sub same_bytes
{
	my ($got, $expected, $name) = @_;
	if ($got eq $expected)
	{
		pass($name);
		return 1;
	}
	my $i = 0;
	my $n = length($got) < length($expected) ? length($got) : length($expected);
	$i++ while $i < $n && substr($got, $i, 1) eq substr($expected, $i, 1);
	my $from = $i > 80 ? $i - 80 : 0;
	fail($name);
	diag(sprintf("lengths %d (got) and %d (expected); first difference at byte %d",
			length($got), length($expected), $i));
	diag("got:      " . join('', map { sprintf('\\x%02x', ord) } split //, substr($got, $from, 160)));
	diag("expected: " . join('', map { sprintf('\\x%02x', ord) } split //, substr($expected, $from, 160)));
	return 0;
}

# COPY's output for table TBL under the pinned settings, exactly.
sub copy_output
{
	my ($tbl) = @_;
	my $file = "$tmp/copy-$tbl.csv";
	$node->safe_psql('postgres',
		"$pinned COPY (SELECT * FROM public.$tbl) TO '$file' WITH (FORMAT csv, HEADER)");
	return slurp_file($file);
}

# Snapshot TBL from a session with foreign settings; returns the key, and
# checks the manifest against the object and the table.
sub snapshot_and_check
{
	my ($tbl) = @_;
	my $info = $node->safe_psql('postgres',
		"$foreign SELECT key, rows, bytes, hit FROM tsnap_snapshot_info('$tbl')");
	my ($key, $rows, $bytes, $hit) = split /\|/, $info;
	is($hit, 'f', "$tbl: first snapshot is a miss");
	my $object = s3_get($key);
	same_bytes($object, copy_output($tbl),
		"$tbl: object equals COPY output under the pinned settings");
	is($rows, $node->safe_psql('postgres', "SELECT count(*) FROM $tbl"),
		"$tbl: manifest rows equals count(*)");
	is($bytes, length($object), "$tbl: manifest bytes equals object length");
	is( $node->safe_psql('postgres',
			"SET DateStyle = 'German'; SELECT key, hit FROM tsnap_snapshot_info('$tbl')"),
		"$key|t",
		"$tbl: second call, in yet other settings, is a hit with the same key");
	return ($key, $object);
}

# Load OBJECT into a table shaped like TBL's SELECT * and compare the rows
# as text (point, json, xml and others have no equality).
sub round_trip
{
	my ($tbl, $object) = @_;
	my $file = "$tmp/object-$tbl.csv";
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $object;
	close $fh;
	$node->safe_psql('postgres', qq{
		DROP TABLE IF EXISTS public.${tbl}_copy;
		CREATE TABLE public.${tbl}_copy AS SELECT * FROM public.$tbl WITH NO DATA;
	});
	my ($state, $out, $err) = psql_sqlstate($node,
		"$pinned COPY public.${tbl}_copy FROM '$file' WITH (FORMAT csv, HEADER);");
	is($state, '', "$tbl: COPY FROM the object succeeds") or diag($err);
	is( $node->safe_psql('postgres', qq{
		$pinned
		SELECT (SELECT count(*) FROM public.$tbl), (SELECT count(*) FROM public.${tbl}_copy),
		  (SELECT count(*) FROM (SELECT o::text FROM public.$tbl o
		     EXCEPT ALL SELECT c::text FROM public.${tbl}_copy c) x),
		  (SELECT count(*) FROM (SELECT c::text FROM public.${tbl}_copy c
		     EXCEPT ALL SELECT o::text FROM public.$tbl o) y)
	}),
		join('|', ($node->safe_psql('postgres', "SELECT count(*) FROM $tbl")) x 2, 0, 0),
		"$tbl: COPY FROM the object gives back exactly the same rows");
	return;
}

#
# The table of every type.
#
$node->safe_psql('postgres', <<'EOSQL');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, "very"');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE "We,ird ""T""" ();
CREATE TABLE alltypes (
	id int PRIMARY KEY,
	c_int2 int2, c_int4 int4, c_int8 int8,
	c_numeric numeric, c_numeric_tm numeric(12,3),
	c_float4 float4, c_float8 float8,
	c_bool bool,
	c_char char(5), c_varchar varchar(20), c_text text, c_name name, c_qchar "char",
	c_bytea bytea,
	c_date date, c_time time, c_timetz timetz, c_ts timestamp(3), c_tstz timestamptz,
	c_interval interval,
	c_uuid uuid, c_json json, c_jsonb jsonb, c_xml xml,
	c_inet inet, c_cidr cidr, c_macaddr macaddr, c_macaddr8 macaddr8,
	c_money money, c_bit bit(4), c_varbit varbit,
	c_point point, c_line line, c_lseg lseg, c_box box, c_path path,
	c_polygon polygon, c_circle circle,
	c_tsvector tsvector, c_tsquery tsquery,
	c_int4range int4range, c_tstzrange tstzrange, c_numrange numrange,
	c_multirange int4multirange,
	c_oid oid, c_regclass regclass, c_regtype regtype, c_regproc regprocedure,
	c_pg_lsn pg_lsn, c_txid txid_snapshot, c_pgsnap pg_snapshot,
	dropme text,
	c_text_arr text[], c_int_arr int[], c_float_arr float8[], c_tstz_arr timestamptz[],
	c_pair_arr pair[], c_mood_arr mood[],
	c_pair pair, c_posint posint, c_mood mood,
	c_gen int GENERATED ALWAYS AS (c_int4 * 2) STORED,
	"odd, ""name""" text,
	"wört ✓" text,
	c_big text
);
SELECT tsnap_track('alltypes');

INSERT INTO alltypes (id, c_int2, c_int4, c_int8, c_numeric, c_numeric_tm,
	c_float4, c_float8, c_bool, c_char, c_varchar, c_text, c_name, c_qchar,
	c_bytea, c_date, c_time, c_timetz, c_ts, c_tstz, c_interval,
	c_uuid, c_json, c_jsonb, c_xml, c_inet, c_cidr, c_macaddr, c_macaddr8,
	c_money, c_bit, c_varbit, c_point, c_line, c_lseg, c_box, c_path,
	c_polygon, c_circle, c_tsvector, c_tsquery, c_int4range, c_tstzrange,
	c_numrange, c_multirange, c_oid, c_regclass, c_regtype, c_regproc,
	c_pg_lsn, c_txid, c_pgsnap, dropme, c_text_arr, c_int_arr, c_float_arr,
	c_tstz_arr, c_pair_arr, c_mood_arr, c_pair, c_posint, c_mood,
	"odd, ""name""", "wört ✓", c_big)
VALUES
-- ordinary values
(1, 32767, -1073741824, 9223372036854775807, 12345678901234567890.123456789, 123.456,
 3.14159, 2.718281828459045, true, 'ab', 'varchar', 'plain text', 'a name', 'x',
 '\xdeadbeef00', '2024-02-29', '23:59:59.999999', '12:34:56.789+05:30',
 '2001-02-03 04:05:06.789', '2024-06-30 12:00:00+02', '1 year 2 mons -3 days 04:05:06.789',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, "x"],  "b" : null}',
 '{"b": null, "a": [1, 2.50, "x"], "u": "\u00e9"}', '<a attr="v">text &amp; more</a>',
 '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
 1234567.89, B'1010', B'10110', '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '(1,1),(0,0)',
 '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),5>',
 'a fat cat:3A sat', 'fat & (rat | cat)', '[1,10)', '[2020-01-01 00:00+00,2021-01-01 00:00+00)',
 '[1.5,2.5]', '{[1,3),[5,7)}', 4294967295, 'pg_class', 'integer', 'now()',
 '16/B374D848', '10:20:10,14,15', '10:20:10,14,15', 'to be dropped',
 ARRAY['a', 'b c'], '{{1,2},{3,4}}', '{1.5,-2.25}', '{"2020-01-01 00:00+00"}',
 ARRAY[ROW(1, 'x')::pair], '{sad,ok}', ROW(7, 'seven'), 5, 'ok',
 'odd', 'unicode col', 'small'),
-- special values
(2, -32768, 0, -9223372036854775808, 'NaN', -0.001,
 'NaN', '-Infinity', false, '', '', '', '', ' ',
 '\x', '-infinity', '00:00', '00:00:00-14:59', 'infinity', '-infinity', '-178000000 years',
 '00000000-0000-0000-0000-000000000000', '""', '"quoted, \"and\" escaped"', '',
 '::1', '::/0', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff:ff:ff',
 -0.01, B'0000', B'', '(-0,1e-300)', '{0,1,-1.5}', '[(0,0),(0,0)]', '(0,0),(0,0)',
 '((0,0),(1e300,1e-300))', '((0,0))', '<(1e10,-1e10),0>',
 $$'it''s' "x" 'a,b' 'say "hi"'$$, $$'it''s' & !'a,b'$$, 'empty', '(,)',
 'empty', '{}', 0, 'public."We,ird ""T"""', 'double precision[]', 'array_cat(anycompatiblearray,anycompatiblearray)',
 '0/0', '1:1:', '1:1:', 'x',
 ARRAY['a"b', 'c,d', NULL, '', 'NULL', 'e\f', E'line\nbreak', E'cr\rcrlf\r\n', ' sp ', '\.'],
 '[0:1]={7,8}', '{NaN,-Infinity,Infinity,-0,1e-320}', '{infinity,-infinity,NULL}',
 ARRAY[ROW(NULL, '')::pair, NULL, ROW(2, 'x,"y"')::pair], '{"happy, \"very\"",NULL}',
 ROW(NULL, ''), 1, 'happy, "very"',
 '', '', ''),
-- more of the same, with NULLs in between
(3, 1, 1, 1, 'Infinity', 99999999.999,
 '-0', '-0', NULL, 'abcde', 'x', 'y', 'z', 'q',
 '\x2c22', '0044-03-15 BC', '24:00', '24:00:00+00', '0044-03-15 12:00 BC',
 '1999-12-31 23:59:59.999999-12', '-1 days +24:00:00',
 NULL, 'null', '[]', '<?xml version="1.0"?><r>x</r>', NULL, NULL, NULL, NULL,
 '-92233720368547758.08', B'1111', B'1', NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, '(,5]', '(,infinity]',
 NULL, '{[-5,-1],[1,2)}', NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, '{}', '{}', '{}',
 '{}', '{}', '{}', NULL, NULL, NULL,
 NULL, NULL, NULL);
INSERT INTO alltypes (id, c_numeric, c_float4, c_float8, c_date, c_ts, c_tstz)
VALUES (4, '-Infinity', 'Infinity', 'Infinity', 'infinity', '-infinity', 'infinity');
-- all NULL
INSERT INTO alltypes (id) VALUES (5);

-- text with every character CSV cares about, and unicode
INSERT INTO alltypes (id, c_text, c_varchar, c_char, "odd, ""name""", "wört ✓") VALUES
(10, 'has,comma', 'has"quote', ',"', '"', '""'),
(11, E'has\nLF', E'has\rCR', E'a\r\nb', E'\r\n', E'\n'),
(12, '\.', '\.', '\.', E'\\.\n', E'x\n\\.\ny'),
(13, 'héllo wörld ✓ 🐘 日本語', 'ß', 'ü', E'\u00a0nbsp', E'tab\there'),
(14, ' leading and trailing ', '  ', 'NULL', '\N', 'null'),
(15, '"', ',', E'\r', E'\n', ''),
(16, E'\\', E'\\\\', '\x', '#', ';');

-- toasted values: compressible and not
INSERT INTO alltypes (id, c_big, c_text_arr, c_jsonb) VALUES
(20, repeat(E'x,"y"\r\n', 30000), NULL, NULL),
(21, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 8000) g),
 (SELECT array_agg(md5(g::text) || ',"' ) FROM generate_series(1, 2000) g),
 (SELECT jsonb_object_agg(g::text, md5(g::text)) FROM generate_series(1, 2000) g));

-- enough rows to cross the worker's fetch batches and write chunks
INSERT INTO alltypes (id, c_int2, c_int4, c_int8, c_numeric, c_float4, c_float8,
	c_bool, c_text, c_bytea, c_tstz, c_interval, c_jsonb, c_text_arr, c_pair, c_mood,
	"odd, ""name""")
SELECT g, (g % 30000)::int2, g * 7, g::int8 * 1000000007, g / 7.0, g / 3.0, 1.0 / g,
	g % 3 = 0, 'row ' || g || CASE WHEN g % 5 = 0 THEN ', "q"' ELSE '' END,
	decode(md5(g::text), 'hex'), '2000-01-01 00:00+00'::timestamptz + g * interval '1 hour 1 second',
	g * interval '1.5 minutes', jsonb_build_object('g', g, 's', 'a,b'),
	ARRAY['x' || g, NULL], ROW(g, 'p' || g)::pair, (ARRAY['sad', 'ok', 'happy, "very"'])[g % 3 + 1]::mood,
	CASE WHEN g % 7 = 0 THEN E'line\nfeed' END
FROM generate_series(100, 3600) g;

-- a dropped column, and fast-default columns added after the rows
ALTER TABLE alltypes DROP COLUMN dropme;
ALTER TABLE alltypes ADD COLUMN c_fast int DEFAULT 42;
ALTER TABLE alltypes ADD COLUMN c_fast_text text DEFAULT 'fast, "default"';
INSERT INTO alltypes (id, c_text, c_fast, c_fast_text) VALUES (9000, 'after', NULL, 'z');
EOSQL

is($node->safe_psql('postgres', "SELECT c_gen FROM alltypes WHERE id = 1"),
	'-2147483648', 'generated column is populated');

my %keys;
my ($key, $object) = snapshot_and_check('alltypes');
$keys{alltypes} = $key;
like($key, qr{/public/alltypes/[0-9a-f-]{36}/v\d+-[0-9a-f]{16}-[0-9a-f]{16}\.csv$},
	'alltypes: key follows the layout');
like($object, qr/^id,c_int2,.*,c_gen,"odd, ""name""",wört ✓,c_big,c_fast,c_fast_text\n/,
	'header lists visible columns, generated and fast-default ones, and quotes odd names');
unlike((split /\n/, $object)[0], qr/dropme/, 'header leaves out the dropped column');
like($object, qr/^9000,.*,after,.*,,z\n/m, 'explicit NULL in a fast-default column');
like($object, qr/^100,.*,42,"fast, ""default"""\n/m,
	'rows written before ADD COLUMN get the fast defaults');
like($object, qr/^12,.*,\\\.,/m, '"\\." is not quoted when the row has other columns');
round_trip('alltypes', $object);

#
# One column holding "\.": COPY quotes it, because alone on a line it would
# end COPY FROM's data.
#
$node->safe_psql('postgres', <<'EOSQL');
	CREATE TABLE dot (v text);
	INSERT INTO dot VALUES ('a'), ('\.'), (NULL), (''), ('\.x'), (E'\\.\n'), ('.'), ('\\');
	SELECT tsnap_track('dot');
	CREATE TABLE "\." ("\." text);
	INSERT INTO "\." VALUES ('\.');
	SELECT tsnap_track('"\."');
EOSQL
($key, $object) = snapshot_and_check('dot');
$keys{dot} = $key;
like($object, qr/^"\\\."$/m, 'single column: "\\." is quoted');
round_trip('dot', $object);

my $weird = $node->safe_psql('postgres', qq{$foreign SELECT tsnap_snapshot('"\\."')});
like($weird, qr{/postgres/public/%5C%2E/[0-9a-f-]{36}/v},
	'table named "\\." is percent-encoded in the key');
my $weird_obj = s3_get($weird);
my $file = "$tmp/copy-weird.csv";
$node->safe_psql('postgres',
	qq{$pinned COPY (SELECT * FROM public."\\.") TO '$file' WITH (FORMAT csv, HEADER)});
same_bytes($weird_obj, slurp_file($file),
	'single column named "\\.": header and value quoted as COPY does');
is($weird_obj, qq{"\\."\n"\\."\n}, 'single column named "\\.": exact bytes');

#
# An empty table: the header alone.
#
$node->safe_psql('postgres', q{
	CREATE TABLE empty (a int, "b c" text, "d,e" date);
	SELECT tsnap_track('empty');
});
($key, $object) = snapshot_and_check('empty');
$keys{empty} = $key;
is($object, qq{a,b c,"d,e"\n}, 'empty table: header only');
round_trip('empty', $object);

#
# A table without columns: empty lines, as COPY writes.
#
$node->safe_psql('postgres', q{
	CREATE TABLE nocols ();
	SELECT tsnap_track('nocols');
	INSERT INTO nocols DEFAULT VALUES;
	INSERT INTO nocols DEFAULT VALUES;
});
($key, $object) = snapshot_and_check('nocols');
$keys{nocols} = $key;
is($object, "\n\n\n", 'table without columns: an empty header and one empty line per row');

#
# Renaming an enum label changes how existing rows are written without a
# write to the table or a change of its columns: the snapshot returned
# afterwards must still be what COPY writes, and load back.
#
$node->safe_psql('postgres', q{
	CREATE TYPE feel AS ENUM ('sad', 'ok');
	CREATE TABLE labels (id int, f feel);
	INSERT INTO labels VALUES (1, 'sad'), (2, 'ok');
	SELECT tsnap_track('labels');
});
($key, $object) = snapshot_and_check('labels');
$node->safe_psql('postgres', "ALTER TYPE feel RENAME VALUE 'sad' TO 'unhappy'");
my $relabeled = $node->safe_psql('postgres', "SELECT tsnap_snapshot('labels')");
$object = s3_get($relabeled);
same_bytes($object, copy_output('labels'),
	'after ALTER TYPE ... RENAME VALUE: the snapshot equals COPY output');
round_trip('labels', $object);

# The same through a composite, an array of composites, a range and a
# multirange, and a composite losing an attribute (ALTER TYPE ... DROP
# ATTRIBUTE is allowed while a column uses the type).
$node->safe_psql('postgres', q{
	CREATE TYPE tone AS ENUM ('sad', 'ok');
	CREATE TYPE tpair AS (m tone, n int);
	CREATE TYPE tonerange AS RANGE (subtype = tone);
	CREATE TABLE nested (id int, p tpair, ps tpair[], r tonerange, mr tonemultirange);
	INSERT INTO nested VALUES
		(1, ('sad', 1), ARRAY[('ok', 2)::tpair, NULL], tonerange('sad', 'ok', '[]'),
		 tonemultirange(tonerange('sad', 'sad', '[]'))),
		(2, NULL, '{}', 'empty', '{}');
	SELECT tsnap_track('nested');
});
($key, $object) = snapshot_and_check('nested');
for my $change ("ALTER TYPE tone RENAME VALUE 'sad' TO 'unhappy'",
	'ALTER TYPE tpair DROP ATTRIBUTE n')
{
	$node->safe_psql('postgres', $change);
	my $next = $node->safe_psql('postgres', "SELECT tsnap_snapshot('nested')");
	isnt($next, $key, "nested: after $change, a new key");
	$object = s3_get($next);
	same_bytes($object, copy_output('nested'),
		"nested: after $change, the snapshot equals COPY output");
	round_trip('nested', $object);
	$key = $next;
}

#
# A hit is decided by the caller alone (one catalog probe, no worker), and
# the caller's settings must not matter for that either: the caller's
# fingerprint must equal the worker's whatever its search_path (which decides
# whether format_type qualifies a type name) or quote_all_identifiers.  With
# no worker able to start, a miss fails (53000) but every hit must succeed.
#
$node->append_conf('postgresql.conf', "max_worker_processes = 0\n");
$node->restart;
$node->safe_psql('postgres', q{
	CREATE TABLE fresh (id int);
	SELECT tsnap_track('fresh');
});
my ($state) = psql_sqlstate($node, "SELECT tsnap_snapshot('fresh')");
is($state, '53000', 'no worker can start: a miss fails with 53000');

my %sessions = (
	'default settings' => '',
	'foreign settings' => $foreign,
	'pinned settings (the control)' => $pinned,
	'quote_all_identifiers' => 'SET quote_all_identifiers = on;');
for my $tbl (qw(alltypes dot empty nocols))
{
	for my $s (sort keys %sessions)
	{
		my ($st, $out, $err) = psql_sqlstate($node,
			"$sessions{$s} SELECT key, hit FROM public.tsnap_snapshot_info('public.$tbl')");
		is($st eq '' ? $out : "ERROR $st", "$keys{$tbl}|t",
			"$tbl: a hit needs no worker ($s)");
	}
}

s3_delete_prefix("$node->{tsnap_prefix}/");

done_testing();
