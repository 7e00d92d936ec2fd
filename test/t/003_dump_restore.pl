
# Copyright (c) tsnap authors

# Tests that tracking survives pg_dump -Fc / pg_restore into another server:
# the catalog (tracked tables and their versions) is dumped as extension
# configuration data, the restored tracking triggers are ENABLE ALWAYS and
# count new writes, and they are tied to the extension again, so that
# DROP EXTENSION tsnap without CASCADE leaves none behind.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node_a = PostgreSQL::Test::Cluster->new('source');
$node_a->init;
$node_a->append_conf('postgresql.conf',
	"shared_preload_libraries = 'tsnap'\nmax_prepared_transactions = 10");
$node_a->start;

my $node_b = PostgreSQL::Test::Cluster->new('target');
$node_b->init;
$node_b->append_conf('postgresql.conf',
	"shared_preload_libraries = 'tsnap'\nmax_prepared_transactions = 10");
$node_b->start;

$node_a->safe_psql('postgres', 'CREATE DATABASE src');
$node_a->safe_psql(
	'src', q{
	CREATE EXTENSION tsnap;
	CREATE TABLE plain (id int PRIMARY KEY, v text);
	CREATE TABLE events (id int, at date NOT NULL, what text)
		PARTITION BY RANGE (at);
	CREATE TABLE events_2025 PARTITION OF events
		FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
	CREATE TABLE events_2026 PARTITION OF events
		FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (what);
	CREATE TABLE events_2026_a PARTITION OF events_2026 FOR VALUES IN ('a');
	CREATE SCHEMA "my schema";
	CREATE TABLE "my schema"."Weird ""Name""" ("a b" int);
	CREATE TABLE untracked (id int);
	SELECT tsnap_track('plain');
	SELECT tsnap_track('events');
	SELECT tsnap_track('"my schema"."Weird ""Name"""');
});

# writes: plain 3, events 4, weird 2, in several transactions
$node_a->safe_psql(
	'src', q{
	INSERT INTO plain VALUES (1, 'a'), (2, 'b');
	UPDATE plain SET v = 'B' WHERE id = 2;
	BEGIN; DELETE FROM plain WHERE id = 1; COMMIT;
	INSERT INTO events VALUES (1, '2025-01-01', 'x');
	INSERT INTO events_2025 VALUES (2, '2025-02-02', 'x');
	INSERT INTO events_2026_a VALUES (3, '2026-03-03', 'a');
	BEGIN;
	UPDATE events SET what = 'y' WHERE id = 1;
	COMMIT;
	INSERT INTO "my schema"."Weird ""Name""" VALUES (1);
	INSERT INTO "my schema"."Weird ""Name""" VALUES (2);
	INSERT INTO untracked VALUES (1);
	BEGIN; INSERT INTO plain VALUES (9, 'rolled back'); ROLLBACK;
});

my $tracked_sql = q{
	SELECT string_agg(tbl::text || '=' || rows_version, ' ' ORDER BY tbl::text)
	FROM tsnap.tracked};
my $triggers_sql = q{
	SELECT string_agg(tgrelid::regclass::text || ':' || tgenabled::text, ' '
					  ORDER BY tgrelid::regclass::text)
	FROM pg_trigger WHERE tgname = 'tsnap_tracking'};

my $tracked_a = $node_a->safe_psql('src', $tracked_sql);
is( $tracked_a,
	'"my schema"."Weird ""Name"""=2 events=4 plain=3',
	'source versions');
my $triggers_a = $node_a->safe_psql('src', $triggers_sql);
is( $triggers_a,
	'"my schema"."Weird ""Name""":A events:A events_2025:A events_2026:A events_2026_a:A plain:A',
	'source triggers');
my $all_triggers_sql = q{
	SELECT string_agg(tgrelid::regclass::text || ':' || tgname || ':' || tgenabled::text, ' '
					  ORDER BY tgrelid::regclass::text, tgname)
	FROM pg_trigger WHERE tgname LIKE 'tsnap%'};
my $all_triggers_a = $node_a->safe_psql('src', $all_triggers_sql);
my $ids_a = $node_a->safe_psql('src',
	'SELECT string_agg(tbl::text || \'=\' || tracking_id, \' \' ORDER BY tbl::text) FROM tsnap.tracked_tables');

# Dump and restore into a fresh database on another server.
my $dumpfile = $node_a->basedir . '/src.dump';
command_ok(
	[ 'pg_dump', '-Fc', '-f', $dumpfile, '-d', $node_a->connstr('src') ],
	'pg_dump -Fc');

# An ordinary pg_restore must run without errors.  (It carries on past
# errors, so the state checks below are meaningful even if this fails.)
$node_b->safe_psql('postgres', 'CREATE DATABASE dst');
my ($stdout, $stderr);
my $ok = IPC::Run::run(
	[ 'pg_restore', '-d', $node_b->connstr('dst'), $dumpfile ],
	'>', \$stdout, '2>', \$stderr);
ok($ok, 'pg_restore exits with status 0');
is($stderr, '', 'pg_restore reports no errors');

# A restore in a single transaction must succeed too: any error there
# would roll back the whole restore.
$node_b->safe_psql('postgres', 'CREATE DATABASE dst1');
command_ok(
	[
		'pg_restore', '--single-transaction', '--exit-on-error',
		'-d', $node_b->connstr('dst1'), $dumpfile
	],
	'pg_restore --single-transaction');
is( $node_b->safe_psql('dst1',
		"SELECT count(*) FROM pg_class WHERE relname = 'plain'"),
	'1', 'single-transaction restore left the tables in place');

my $extversion_sql = "SELECT extversion FROM pg_extension WHERE extname = 'tsnap'";
is($node_b->safe_psql('dst', $extversion_sql),
	$node_a->safe_psql('src', $extversion_sql), 'extension restored at its version');
is($node_b->safe_psql('dst', $tracked_sql),
	$tracked_a, 'tsnap.tracked lists the same tables with the same versions');
is( $node_b->safe_psql('dst',
		'SELECT string_agg(tbl::text || \'=\' || tracking_id, \' \' ORDER BY tbl::text) FROM tsnap.tracked_tables'),
	$ids_a, 'tracking ids preserved');
is($node_b->safe_psql('dst', $triggers_sql),
	$triggers_a, 'tracking triggers restored, ENABLE ALWAYS, on the same tables');
is($node_b->safe_psql('dst', $all_triggers_sql),
	$all_triggers_a, 'all tsnap triggers restored as they were');
is( $node_b->safe_psql(
		'dst', q{
	SELECT count(*) FROM pg_trigger t
	WHERE tgname LIKE 'tsnap%'
	  AND NOT EXISTS (SELECT 1 FROM pg_depend d
					  WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
						AND d.refclassid = 'pg_extension'::regclass
						AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tsnap'))}),
	'0', 'every restored trigger depends on the extension');

# New writes on the restored database bump from the preserved versions.
$node_b->safe_psql('dst', "INSERT INTO plain VALUES (3, 'c')");
$node_b->safe_psql('dst', "INSERT INTO events VALUES (4, '2026-04-04', 'a')");
$node_b->safe_psql('dst', "UPDATE events_2025 SET what = 'z'");
$node_b->safe_psql('dst', 'TRUNCATE "my schema"."Weird ""Name"""');
$node_b->safe_psql('dst', 'INSERT INTO untracked VALUES (2)');
is( $node_b->safe_psql('dst', $tracked_sql),
	'"my schema"."Weird ""Name"""=3 events=6 plain=4',
	'new writes after restore bump the versions');
is($node_b->safe_psql('dst', 'SELECT count(*) FROM plain'),
	'2', 'restored data plus the new row');

# A partition created after the restore is tracked too (the event trigger
# works in the restored database).
$node_b->safe_psql('dst',
	"CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')");
$node_b->safe_psql('dst', "INSERT INTO events_2027 VALUES (5, '2027-05-05', 'b')");
is($node_b->safe_psql('dst', "SELECT tsnap_version('events')"),
	'7', 'partition created after restore bumps the parent');

# The source is unaffected by all this.
is($node_a->safe_psql('src', $tracked_sql),
	$tracked_a, 'source versions unchanged');

# DROP EXTENSION without CASCADE removes the restored triggers with it.
$node_b->safe_psql('dst', 'DROP EXTENSION tsnap');
is( $node_b->safe_psql('dst',
		"SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tsnap%'"),
	'0', 'DROP EXTENSION removed every tsnap trigger');
is($node_b->safe_psql('dst', "SELECT count(*) FROM pg_namespace WHERE nspname = 'tsnap'"),
	'0', 'DROP EXTENSION removed the tsnap schema');
$node_b->safe_psql('dst', "INSERT INTO plain VALUES (4, 'd')");
is($node_b->safe_psql('dst', 'SELECT count(*) FROM plain'),
	'3', 'tables stay writable after DROP EXTENSION');

# Same on the source, for comparison: tracking created by tsnap_track.
$node_a->safe_psql('src', 'DROP EXTENSION tsnap');
is( $node_a->safe_psql('src',
		"SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tsnap%'"),
	'0', 'DROP EXTENSION on the source removed every tsnap trigger');

$node_b->stop;
$node_a->stop;

done_testing();
