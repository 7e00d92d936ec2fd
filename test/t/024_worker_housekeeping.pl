# Copyright (c) tsnap authors

# A worker's time and its housekeeping (found by a review of the reshaped
# code; each part failed on the code before its fix):
#  (a) a snapshot is dated when it is recorded, not when its scan began, so
#      retention reckons keep_for from the time the key could be handed out;
#  (b) a worker doing housekeeping holds no place in the pool: with
#      max_workers = 1 and an S3 DELETE that stalls, the next request is
#      still served;
#  (c) housekeeping never locks a live worker's upload intent, so that
#      worker's record does not wait behind a batch of stalled deletes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

sub small_table
{
	my ($node, $name) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $name (id int); INSERT INTO $name VALUES (1), (2);
		SELECT tsnap_track('$name');
	});
}

sub proxy_saw
{
	my ($proxy, $re) = @_;
	return 0 unless -e $proxy->{log};
	return PostgreSQL::Test::Utils::slurp_file($proxy->{log}) =~ $re;
}

###########################################################################
# (a) created_at is the time of the record
###########################################################################
my $dir = PostgreSQL::Test::Utils::tempdir();
my $slow_puts = start_faultproxy(methods => 'PUT', faults => 'slowreply',
	rate => 1, stall => 4, fault_file => "$dir/slow");
my $node_a = tsnap_node('hk_a', endpoint => $slow_puts->{endpoint});
small_table($node_a, 't');
open my $fh, '>', "$dir/slow" or die; close $fh;
my $late = $node_a->safe_psql('postgres', q{
	CREATE TEMP TABLE t0 AS SELECT pg_catalog.clock_timestamp() AS at;
	SELECT created_at >= (SELECT at FROM t0) + interval '3 seconds'
	FROM tsnap_snapshot_info('t');
});
unlink "$dir/slow";
is($late, 't', 'a snapshot whose PUT took 4 s is dated after the PUT, not at its scan');
$node_a->stop;

###########################################################################
# (b) housekeeping holds no place in the pool
###########################################################################
my $stall_deletes = start_faultproxy(methods => 'DELETE', faults => 'stall',
	rate => 1, stall => 110, lifetime => 120, fault_file => "$dir/stall");
my $node_b = tsnap_node('hk_b', endpoint => $stall_deletes->{endpoint},
	conf => "tsnap.max_workers = 1\ntsnap.keep_versions = 1\ntsnap.keep_for = 0\n");
small_table($node_b, 't1');
small_table($node_b, 't2');
$node_b->safe_psql('postgres', "SELECT tsnap_snapshot('t1')");
open $fh, '>', "$dir/stall" or die; close $fh;
$node_b->safe_psql('postgres', "INSERT INTO t1 VALUES (3); SELECT tsnap_snapshot('t1')");
ok(poll_until(60, sub { proxy_saw($stall_deletes, qr/DELETE stall/) }),
	'the first worker\'s housekeeping is stuck in a DELETE');
my ($state, $out, $err) = psql_sqlstate($node_b,
	"SET statement_timeout = '60s'; INSERT INTO t2 VALUES (3); SELECT tsnap_snapshot('t2')");
is($state, '', 'with max_workers = 1, the next request is served meanwhile') or diag($err);
unlink "$dir/stall";
$node_b->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'");
$node_b->stop;

###########################################################################
# (c) a live worker's intent is never locked by housekeeping
###########################################################################
# t1's first snapshot is written through a proxy whose DELETEs can stall;
# then the endpoint moves to a proxy whose PUTs can be held back.  While
# w1's PUT of t2 is held (its intent committed and due), w2 snapshots t1
# again, which retires the first object: w2's housekeeping then stalls in
# its DELETE with the due rows locked.  w1's record must not wait for them.
my $deletes = start_faultproxy(methods => 'DELETE', faults => 'stall',
	rate => 1, stall => 110, lifetime => 120, fault_file => "$dir/del");
my $puts = start_faultproxy(methods => 'PUT', faults => 'slowreply',
	rate => 1, stall => 8, lifetime => 120, fault_file => "$dir/put");
my $node_c = tsnap_node('hk_c', endpoint => $deletes->{endpoint},
	conf => "tsnap.max_workers = 2\ntsnap.keep_versions = 1\ntsnap.keep_for = 0\n");
small_table($node_c, 't1');
small_table($node_c, 't2');
$node_c->safe_psql('postgres', "SELECT tsnap_snapshot('t1')");
tsnap_reload($node_c, "tsnap.s3_endpoint = '$puts->{endpoint}'\n");
open $fh, '>', "$dir/put" or die; close $fh;
my $w1 = start_psql($node_c, "SELECT tsnap_snapshot('t2')");
ok(poll_until(60, sub { proxy_saw($puts, qr/PUT slowreply/) }), 'w1\'s PUT is held back');
unlink "$dir/put";
open $fh, '>', "$dir/del" or die; close $fh;
$node_c->safe_psql('postgres', "INSERT INTO t1 VALUES (3); SELECT tsnap_snapshot('t1')");
my ($rc, $w1_key, $w1_err) = finish_psql($w1);
is($rc, 0, 'w1 records its snapshot while housekeeping stalls in a DELETE') or diag($w1_err);
chomp $w1_key;
ok(s3_exists($w1_key), 'and its object is there');
unlink "$dir/del";
$node_c->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'");
$node_c->stop;

stop_faultproxy($_) for ($slow_puts, $stall_deletes, $deletes, $puts);
done_testing();
