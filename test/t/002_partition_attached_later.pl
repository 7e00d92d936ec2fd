
# Copyright (c) tsnap authors

# Tests that partitions created or attached after a partitioned table was
# tracked, in a new session after a server restart, get the tracking trigger
# (through tsnap's event trigger), so that writes straight into them and
# through the parent bump the parent's rows_version; and that a detached
# partition no longer counts towards its former parent.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'tsnap'\nmax_prepared_transactions = 10");
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION tsnap;
	CREATE TABLE events (id int, at date NOT NULL, what text)
		PARTITION BY RANGE (at);
	CREATE TABLE events_2025 PARTITION OF events
		FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
	SELECT tsnap_track('events');
	INSERT INTO events VALUES (1, '2025-01-05', 'a');
});
is($node->safe_psql('postgres', "SELECT tsnap_version('events')"),
	'1', 'version after the first write');

# Forget every backend's state: whatever happens next must come from the
# catalog and the event trigger, not from anything cached in the session
# that called tsnap_track.
$node->restart;

$node->safe_psql(
	'postgres', q{
	CREATE TABLE events_2026 PARTITION OF events
		FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
	CREATE TABLE events_2027 (id int, at date NOT NULL, what text);
	ALTER TABLE events ATTACH PARTITION events_2027
		FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
});

# a sub-partitioned table, with its own partitions, attached as one unit
$node->safe_psql(
	'postgres', q{
	CREATE TABLE events_2028 (id int, at date NOT NULL, what text)
		PARTITION BY LIST (what);
	CREATE TABLE events_2028_a PARTITION OF events_2028 FOR VALUES IN ('a');
	CREATE TABLE events_2028_b (id int, at date NOT NULL, what text);
	ALTER TABLE events_2028 ATTACH PARTITION events_2028_b FOR VALUES IN ('b');
	ALTER TABLE events ATTACH PARTITION events_2028
		FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
});

# and a sub-partitioned partition created in place, getting a partition later
$node->safe_psql(
	'postgres', q{
	CREATE TABLE events_2029 PARTITION OF events
		FOR VALUES FROM ('2029-01-01') TO ('2030-01-01') PARTITION BY LIST (what);
});
$node->safe_psql('postgres',
	"CREATE TABLE events_2029_a PARTITION OF events_2029 FOR VALUES IN ('a')");

is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(tgrelid::regclass || ':' || tgenabled::text, ',' ORDER BY tgrelid::regclass::text)
	FROM pg_trigger WHERE tgname = 'tsnap_tracking'}),
	'events:A,events_2025:A,events_2026:A,events_2027:A,events_2028:A,'
	  . 'events_2028_a:A,events_2028_b:A,events_2029:A,events_2029_a:A',
	'every partition, old and new, has the tracking trigger, ENABLE ALWAYS');

# Leaf partitions added later carry the same tsnap triggers (statement and,
# for logical replication apply, row level) as the one there at tracking.
my $leaf_triggers = q{
	SELECT string_agg(tgname || ':' || tgenabled::text || ':' || tgtype, ' ' ORDER BY tgname)
	FROM pg_trigger WHERE tgname LIKE 'tsnap%' AND tgrelid = '%s'::regclass};
my $expected_leaf = $node->safe_psql('postgres', sprintf($leaf_triggers, 'events_2025'));
foreach my $leaf (qw(events_2026 events_2027 events_2028_a events_2028_b events_2029_a))
{
	is($node->safe_psql('postgres', sprintf($leaf_triggers, $leaf)),
		$expected_leaf, "$leaf has the same tsnap triggers as events_2025");
}

# Each write, in its own session, must bump the parent's version by one.
my $version = $node->safe_psql('postgres', "SELECT tsnap_version('events')");
is($version, '1', 'restart and DDL left the version alone');

my @writes = (
	[ 'INSERT INTO events_2026 directly', "INSERT INTO events_2026 VALUES (2, '2026-02-02', 'a')" ],
	[ 'INSERT INTO events routed to events_2026', "INSERT INTO events VALUES (3, '2026-03-03', 'a')" ],
	[ 'INSERT INTO attached events_2027 directly', "INSERT INTO events_2027 VALUES (4, '2027-04-04', 'a')" ],
	[ 'INSERT INTO events routed to events_2027', "INSERT INTO events VALUES (5, '2027-05-05', 'a')" ],
	[ 'INSERT INTO sub-partitioned events_2028', "INSERT INTO events_2028 VALUES (6, '2028-06-06', 'a')" ],
	[ 'INSERT INTO leaf events_2028_a directly', "INSERT INTO events_2028_a VALUES (7, '2028-07-07', 'a')" ],
	[ 'INSERT INTO leaf events_2028_b directly', "INSERT INTO events_2028_b VALUES (8, '2028-08-08', 'b')" ],
	[ 'INSERT INTO events routed to events_2028_b', "INSERT INTO events VALUES (9, '2028-09-09', 'b')" ],
	[ 'INSERT INTO leaf events_2029_a directly', "INSERT INTO events_2029_a VALUES (10, '2029-01-10', 'a')" ],
	[ 'INSERT INTO events routed to events_2029_a', "INSERT INTO events VALUES (11, '2029-01-11', 'a')" ],
	[ 'UPDATE of events_2027', "UPDATE events_2027 SET what = 'z'" ],
	[ 'UPDATE of events_2028_b', "UPDATE events_2028_b SET id = id + 100" ],
	[ 'DELETE from events_2026', 'DELETE FROM events_2026 WHERE id = 2' ],
	[ 'cross-partition UPDATE through the parent', "UPDATE events SET at = '2027-12-31' WHERE id = 3" ],
	[ 'TRUNCATE of events_2029_a', 'TRUNCATE events_2029_a' ],
	[ 'COPY into events_2026', "COPY events_2026 FROM PROGRAM 'echo 12,2026-12-12,c' WITH (FORMAT csv)" ],
);
foreach my $w (@writes)
{
	my ($name, $sql) = @$w;
	$node->safe_psql('postgres', $sql);
	my $new = $node->safe_psql('postgres', "SELECT tsnap_version('events')");
	is($new, $version + 1, "$name bumps the parent's version by one");
	$version = $new;
}

is( $node->safe_psql('postgres',
		'SELECT string_agg(id || \':\' || tableoid::regclass, \',\' ORDER BY id) FROM events'),
	'1:events_2025,3:events_2027,4:events_2027,5:events_2027,6:events_2028_a,'
	  . '7:events_2028_a,12:events_2026,108:events_2028_b,109:events_2028_b',
	'the rows are where the writes put them');

# A rolled back write into a new partition adds nothing.
$node->safe_psql('postgres',
	"BEGIN; INSERT INTO events_2027 VALUES (50, '2027-01-01', 'r'); ROLLBACK;");
is($node->safe_psql('postgres', "SELECT tsnap_version('events')"),
	$version, 'rolled back write into a new partition does not bump');

# Detach: the detached tables lose the trigger and stop counting.
$node->safe_psql('postgres', 'ALTER TABLE events DETACH PARTITION events_2027');
$node->safe_psql('postgres', 'ALTER TABLE events DETACH PARTITION events_2028');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_trigger
	WHERE tgname LIKE 'tsnap%'
	  AND tgrelid IN ('events_2027'::regclass, 'events_2028'::regclass,
					  'events_2028_a'::regclass, 'events_2028_b'::regclass)}),
	'0', 'detached partitions lost their tsnap triggers');

$version = $node->safe_psql('postgres', "SELECT tsnap_version('events')");
$node->safe_psql('postgres', "INSERT INTO events_2027 VALUES (60, '2027-06-06', 'd')");
$node->safe_psql('postgres', "UPDATE events_2027 SET what = 'dd'");
$node->safe_psql('postgres', 'DELETE FROM events_2027');
$node->safe_psql('postgres', "INSERT INTO events_2028 VALUES (61, '2028-06-06', 'a')");
$node->safe_psql('postgres', "INSERT INTO events_2028_b VALUES (62, '2028-06-06', 'b')");
$node->safe_psql('postgres', 'TRUNCATE events_2028');
is($node->safe_psql('postgres', "SELECT tsnap_version('events')"),
	$version, "writes to detached tables leave the parent's version alone");

# the partitions still attached keep counting
$node->safe_psql('postgres', "INSERT INTO events_2026 VALUES (70, '2026-07-07', 'a')");
is($node->safe_psql('postgres', "SELECT tsnap_version('events')"),
	$version + 1, 'a remaining partition still bumps the parent');

# Detached tables are not tracked on their own.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT tsnap_version('events_2027')");
isnt($ret, 0, 'tsnap_version on a detached partition fails');
like($stderr, qr/ERROR:  55000: table "events_2027" is not tracked/,
	'with SQLSTATE 55000, table not tracked');

# Re-attaching gives the trigger back.
$node->safe_psql('postgres',
	"ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')");
$node->safe_psql('postgres', "INSERT INTO events_2027 VALUES (80, '2027-08-08', 'a')");
is($node->safe_psql('postgres', "SELECT tsnap_version('events')"),
	$version + 2, 're-attached partition bumps the parent again');

$node->stop;

done_testing();
