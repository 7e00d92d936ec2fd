# Copyright (c) tsnap authors

# Every change of a table's content gives a new key, also the changes that
# fire no row trigger: partitions attached (with rows), detached and dropped,
# inheritance children added, removed and dropped, a rewrite to the same
# type, a column dropped and added again with a default, a composite's
# attribute dropped and added again, CLUSTER and VACUUM FULL.  After each,
# the new object must equal COPY under the pinned settings.  Also: tsnap's
# trigger cannot be renamed (the drop guard goes by name), and a table with
# a foreign partition, whose rows change without any trigger, is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('keys', conf => "tsnap.keep_versions = 100\n");

my $pinned = q{
	SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET TimeZone = 'UTC';
	SET extra_float_digits = 1; SET bytea_output = hex; SET search_path = pg_catalog;
};

# The key of a fresh snapshot of TBL, after checking that its object equals
# COPY of the table.
sub snap_checked
{
	my ($tbl, $what) = @_;
	my $key = $node->safe_psql('postgres', "SELECT tsnap_snapshot('$tbl')");
	my $copy = $node->safe_psql('postgres',
		"$pinned COPY (SELECT * FROM public.$tbl) TO STDOUT WITH (FORMAT csv, HEADER)");
	is(s3_get($key), "$copy\n", "$what: the object equals COPY");
	return $key;
}

# Run DDL, then expect a new key for TBL whose object equals COPY.
my %last;
sub changes_key
{
	my ($tbl, $ddl, $what) = @_;
	$last{$tbl} //= snap_checked($tbl, "$what (before)");
	my $version = $node->safe_psql('postgres', "SELECT tsnap_version('$tbl')");
	$node->safe_psql('postgres', $ddl);
	my $key = snap_checked($tbl, $what);
	isnt($key, $last{$tbl}, "$what: a new key (version $version before, "
		  . $node->safe_psql('postgres', "SELECT tsnap_version('$tbl')") . ' after)');
	$last{$tbl} = $key;
	return;
}

$node->safe_psql('postgres', q{
	CREATE TABLE p (id int, v text) PARTITION BY LIST (id);
	CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
	INSERT INTO p VALUES (1, 'one');
	SELECT tsnap_track('p');
	CREATE TABLE p2 (id int, v text);
	INSERT INTO p2 VALUES (2, 'two'), (2, 'deux');
});
changes_key('p', 'ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)',
	'ATTACH PARTITION of a table with rows');
changes_key('p', 'ALTER TABLE p DETACH PARTITION p2', 'DETACH PARTITION');
changes_key('p', 'ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2); DROP TABLE p1',
	'DROP TABLE of a partition');

$node->safe_psql('postgres', q{
	CREATE TABLE i (id int, v text);
	INSERT INTO i VALUES (1, 'parent');
	CREATE TABLE ic (extra int) INHERITS (i);
	INSERT INTO ic VALUES (2, 'child', 0);
	SELECT tsnap_track('i');
});
changes_key('i', 'ALTER TABLE ic NO INHERIT i', 'NO INHERIT');
changes_key('i', 'ALTER TABLE ic INHERIT i', 'INHERIT');
changes_key('i', 'DROP TABLE ic', 'DROP TABLE of an inheritance child');

$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, v text, w int);
	INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 50) g;
	SELECT tsnap_track('t');
});
changes_key('t', q{ALTER TABLE t ALTER COLUMN v TYPE text USING 'x'},
	'ALTER COLUMN TYPE to the same type, USING a new value');
changes_key('t', 'ALTER TABLE t DROP COLUMN w; ALTER TABLE t ADD COLUMN w int DEFAULT 7',
	'a column dropped and added again with a default');

$node->safe_psql('postgres', q{
	CREATE TYPE pair AS (x int, y int);
	CREATE TABLE tc (id int, c pair);
	INSERT INTO tc VALUES (1, ROW(1, 2)), (2, ROW(3, 4));
	SELECT tsnap_track('tc');
});
changes_key('tc', 'ALTER TYPE pair DROP ATTRIBUTE y; ALTER TYPE pair ADD ATTRIBUTE y int',
	'a composite\'s attribute dropped and added again');

# rows inserted in descending order, then clustered ascending: COPY's order
# changes
$node->safe_psql('postgres', q{
	CREATE TABLE cl (id int, v text);
	INSERT INTO cl SELECT g, md5(g::text) FROM generate_series(200, 1, -1) g;
	CREATE INDEX cl_id ON cl (id);
	SELECT tsnap_track('cl');
});
changes_key('cl', 'CLUSTER cl USING cl_id', 'CLUSTER');
changes_key('cl', 'VACUUM FULL cl', 'VACUUM FULL');

# the tracking trigger keeps its name
my ($state, $out, $err) = psql_sqlstate($node,
	'ALTER TRIGGER tsnap_tracking ON t RENAME TO quiet');
is($state, '55000', 'renaming tsnap\'s trigger: 55000');
like($err, qr/cannot rename tsnap's trigger on table "t"/, 'renaming tsnap\'s trigger: says so');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname = 'tsnap_tracking'"),
	'1', 'the trigger keeps its name');
($state, $out, $err) = psql_sqlstate($node, 'DROP TRIGGER tsnap_tracking ON t');
is($state, '2BP01', 'and cannot be dropped');
($state, $out, $err) = psql_sqlstate($node, q{
	CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
	CREATE OR REPLACE TRIGGER tsnap_tracking AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
		ON t FOR EACH STATEMENT EXECUTE FUNCTION noop();
});
is($state, '55000', 'nor replaced by another function');
like($err, qr/cannot replace tsnap's trigger on table "t"/, 'replacing: says so');
($state, $out, $err) = psql_sqlstate($node, q{
	CREATE OR REPLACE TRIGGER tsnap_tracking AFTER INSERT
		ON t FOR EACH STATEMENT EXECUTE FUNCTION tsnap.tracking_trigger();
});
is($state, '55000', 'nor replaced with fewer events');
my $v = $node->safe_psql('postgres', "SELECT tsnap_version('t')");
$node->safe_psql('postgres', "UPDATE t SET v = 'y'");
is($node->safe_psql('postgres', "SELECT tsnap_version('t')"), $v + 1,
	'the trigger still counts every write');

# unlogged tables: a crash empties them without any trigger
$node->safe_psql('postgres', 'CREATE UNLOGGED TABLE u (id int)');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_track('u')");
is($state, '0A000', 'an unlogged table cannot be tracked');
like($err, qr/cannot track unlogged table "u"/, 'unlogged: says so');
$node->safe_psql('postgres', 'ALTER TABLE cl SET UNLOGGED');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('cl')");
is($state, '0A000', 'a tracked table made unlogged is refused');
like($err, qr/cannot snapshot table "cl" because "cl" is unlogged/, 'made unlogged: says so');

# a foreign partition: refused
$node->safe_psql('postgres', q{
	CREATE EXTENSION file_fdw;
	CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
	CREATE TABLE fp (id int, v text) PARTITION BY LIST (id);
	CREATE TABLE fp1 PARTITION OF fp FOR VALUES IN (1);
	SELECT tsnap_track('fp');
});
$node->safe_psql('postgres', "SELECT tsnap_snapshot('fp')");
$node->safe_psql('postgres', q{
	CREATE FOREIGN TABLE fp2 PARTITION OF fp FOR VALUES IN (2)
		SERVER files OPTIONS (filename '/dev/null', format 'csv');
});
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('fp')");
is($state, '0A000', 'a foreign partition: 0A000');
like($err, qr/cannot snapshot table "fp" because "fp2" is a foreign table/,
	'a foreign partition: says which');

$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");
done_testing();
