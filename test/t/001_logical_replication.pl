
# Copyright (c) tsnap authors

# Tests that writes applied by logical replication bump the rows_version of
# tables tracked on the subscriber.  The apply worker runs with
# session_replication_role = replica and fires no statement-level triggers
# for row changes, so only triggers that fire in replica sessions can count
# them.  Covers the initial table sync, INSERT, UPDATE, DELETE and TRUNCATE
# arriving into a plain table, and rows arriving into a partitioned table
# whose parent is tracked on the subscriber, including partitions created or
# attached on the subscriber after tracking.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $publisher = PostgreSQL::Test::Cluster->new('publisher');
$publisher->init(allows_streaming => 'logical');
$publisher->start;

my $subscriber = PostgreSQL::Test::Cluster->new('subscriber');
$subscriber->init;
$subscriber->append_conf('postgresql.conf',
	"shared_preload_libraries = 'tsnap'\nmax_prepared_transactions = 10");
$subscriber->start;

# Publisher: plain tables, no tsnap at all.
$publisher->safe_psql(
	'postgres', q{
	CREATE TABLE items (id int PRIMARY KEY, name text);
	INSERT INTO items VALUES (1, 'one'), (2, 'two');
	CREATE TABLE events (id int, at date NOT NULL, what text,
		PRIMARY KEY (id, at));
	CREATE PUBLICATION tsnap_pub FOR TABLE items, events;
});

# Subscriber: same tables, events partitioned, both tracked before the
# subscription exists.
$subscriber->safe_psql(
	'postgres', q{
	CREATE EXTENSION tsnap;
	CREATE TABLE items (id int PRIMARY KEY, name text);
	SELECT tsnap_track('items');
	CREATE TABLE events (id int, at date NOT NULL, what text,
		PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
	CREATE TABLE events_2025 PARTITION OF events
		FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
	CREATE TABLE events_2026 PARTITION OF events
		FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
	SELECT tsnap_track('events');
});

is( $subscriber->safe_psql('postgres',
		"SELECT tgrelid::regclass, tgenabled FROM pg_trigger WHERE tgname = 'tsnap_tracking' ORDER BY tgrelid::regclass::text"
	),
	"events|A\nevents_2025|A\nevents_2026|A\nitems|A",
	'tracking triggers on the subscriber are ENABLE ALWAYS');

is($subscriber->safe_psql('postgres', "SELECT tsnap_version('items')"),
	'0', 'items starts at version 0');

my $pubconnstr = $publisher->connstr . ' dbname=postgres';
$subscriber->safe_psql('postgres',
	"CREATE SUBSCRIPTION tsnap_sub CONNECTION '$pubconnstr' PUBLICATION tsnap_pub"
);
$subscriber->wait_for_subscription_sync($publisher, 'tsnap_sub');

is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM items'),
	'2', 'initial sync copied the rows');

# Current version of a table on the subscriber.
sub version
{
	my ($tbl) = @_;
	return $subscriber->safe_psql('postgres', "SELECT tsnap_version('$tbl')");
}

# Run SQL on the publisher, wait until the subscriber has applied it, and
# check that the table's version on the subscriber went up.
sub check_bump
{
	my ($tbl, $sql, $check_sql, $expected, $name) = @_;
	my $before = version($tbl);
	$publisher->safe_psql('postgres', $sql);
	$publisher->wait_for_catchup('tsnap_sub');
	is($subscriber->safe_psql('postgres', $check_sql),
		$expected, "$name: rows replicated");
	my $after = version($tbl);
	cmp_ok($after, '>', $before,
		"$name: $tbl version increased on the subscriber ($before -> $after)");
	return $after;
}

# The initial table synchronization is a COPY into the table.
cmp_ok(version('items'), '>', 0, 'initial sync bumped the version');

check_bump('items', "INSERT INTO items VALUES (3, 'three')",
	'SELECT string_agg(id::text, \',\' ORDER BY id) FROM items',
	'1,2,3', 'replicated INSERT');

check_bump('items', "UPDATE items SET name = 'TWO' WHERE id = 2",
	'SELECT name FROM items WHERE id = 2',
	'TWO', 'replicated UPDATE');

check_bump('items', 'DELETE FROM items WHERE id = 1',
	'SELECT string_agg(id::text, \',\' ORDER BY id) FROM items',
	'2,3', 'replicated DELETE');

check_bump(
	'items', q{
	BEGIN;
	INSERT INTO items VALUES (10, 'ten');
	UPDATE items SET name = 'ten!' WHERE id = 10;
	DELETE FROM items WHERE id = 3;
	COMMIT;
},
	'SELECT string_agg(id || \':\' || name, \',\' ORDER BY id) FROM items',
	'2:TWO,10:ten!',
	'replicated multi-statement transaction');

# A rolled-back transaction on the publisher is never applied.
{
	my $before = version('items');
	$publisher->safe_psql('postgres',
		"BEGIN; INSERT INTO items VALUES (99, 'gone'); ROLLBACK;");
	$publisher->safe_psql('postgres', "INSERT INTO events VALUES (1, '2025-03-01', 'x')");
	$publisher->wait_for_catchup('tsnap_sub');
	is(version('items'), $before,
		'rolled back publisher transaction does not bump');
	is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 99'),
		'0', 'rolled back row not replicated');
}

# TRUNCATE is replicated by default.
check_bump('items', 'TRUNCATE items', 'SELECT count(*) FROM items',
	'0', 'replicated TRUNCATE');

# Rows arriving into the partitioned table are routed into its partitions.
check_bump('events', "INSERT INTO events VALUES (2, '2025-05-01', 'y'), (3, '2026-05-01', 'z')",
	'SELECT string_agg(tableoid::regclass || \':\' || id, \',\' ORDER BY id) FROM events',
	'events_2025:1,events_2025:2,events_2026:3',
	'replicated INSERT into partitions');

check_bump('events', "UPDATE events SET what = 'w' WHERE id = 3",
	"SELECT what FROM events_2026 WHERE id = 3",
	'w', 'replicated UPDATE in a partition');

# an UPDATE that moves the row to another partition
check_bump('events', "UPDATE events SET at = '2026-02-02' WHERE id = 2",
	'SELECT tableoid::regclass FROM events WHERE id = 2',
	'events_2026', 'replicated cross-partition UPDATE');

check_bump('events', 'DELETE FROM events WHERE id = 1',
	'SELECT string_agg(id::text, \',\' ORDER BY id) FROM events',
	'2,3', 'replicated DELETE from a partition');

check_bump('events', 'TRUNCATE events', 'SELECT count(*) FROM events',
	'0', 'replicated TRUNCATE of a partitioned table');

# Partitions created or attached on the subscriber after tracking (and
# after the subscription started) count replicated rows too.
$subscriber->safe_psql(
	'postgres', q{
	CREATE TABLE events_2027 PARTITION OF events
		FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
	CREATE TABLE events_2028 (id int NOT NULL, at date NOT NULL, what text)
		PARTITION BY RANGE (at);
	CREATE TABLE events_2028_a PARTITION OF events_2028
		FOR VALUES FROM ('2028-01-01') TO ('2028-07-01');
	ALTER TABLE events ATTACH PARTITION events_2028
		FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
});
check_bump('events', "INSERT INTO events VALUES (20, '2027-01-20', 'a')",
	'SELECT tableoid::regclass FROM events WHERE id = 20',
	'events_2027', 'replicated INSERT into a partition created later');
check_bump('events', "INSERT INTO events VALUES (21, '2028-01-21', 'a')",
	'SELECT tableoid::regclass FROM events WHERE id = 21',
	'events_2028_a', 'replicated INSERT into a sub-partition attached later');
check_bump('events', "UPDATE events SET what = 'a!' WHERE id = 20",
	'SELECT what FROM events WHERE id = 20',
	'a!', 'replicated UPDATE in a partition created later');
check_bump('events', "DELETE FROM events WHERE id = 21",
	'SELECT count(*) FROM events WHERE id = 21',
	'0', 'replicated DELETE from a sub-partition attached later');

# The subscriber's own writes still count, and the apply worker did not
# leave anything behind that breaks local tracking.
{
	my $before = version('items');
	$subscriber->safe_psql('postgres', "INSERT INTO items VALUES (500, 'local')");
	is(version('items'), $before + 1, 'local write on the subscriber bumps by one');
}

$subscriber->stop;
$publisher->stop;

done_testing();
