# Copyright (c) tsnap authors

# Nothing waits forever, and single flight has no gaps:
#  (a) a caller that holds a lock its worker waits for (through a queued
#      TRUNCATE) gets 40P01 within about deadlock_timeout;
#  (b) a miss on a hot standby fails at once with 25006; hits work there;
#  (c) with S3 stalled mid-upload, pg_terminate_backend of the worker, a
#      fast shutdown, DROP DATABASE ... WITH (FORCE) and the postmaster's
#      death all end the worker within seconds;
#  (d) a steady stream of misses in one database does not starve another;
#  (e) 32 concurrent callers after each write make one upload per version.
#
# Elapsed times are liveness bounds only (what must end, ends within
# seconds), never performance.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use TsnapTest;

tsnap_require_s3();

sub worker_pids
{
	my ($node, $db) = @_;
	return grep { $_ ne '' } split /\n/, $node->safe_psql($db // 'postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsnap worker'");
}

sub make_table
{
	my ($node, $name, $rows, $db) = @_;
	$node->safe_psql($db // 'postgres', qq{
		CREATE TABLE $name (id int PRIMARY KEY, a text, b text);
		INSERT INTO $name SELECT g, md5(g::text), md5((-g)::text)
		  FROM generate_series(1, $rows) g;
		SELECT tsnap_track('$name');
	});
	return;
}

###########################################################################
# (a) deadlock through a queued lock
###########################################################################
my $node = tsnap_node('nohang', allows_streaming => 1, conf => "deadlock_timeout = '1s'\n");
make_table($node, 't', 100);
my $holder = start_psql($node,
	"BEGIN; SELECT count(*) FROM t; SELECT pg_sleep(2); SELECT tsnap_snapshot('t'); COMMIT;");
ok( poll_until(30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; SELECT count(*) FROM t;%' AND wait_event = 'PgSleep'") eq '1';
	}),
	'deadlock: the first session holds its lock on t');
my $truncate = start_psql($node, 'TRUNCATE t');
my $t0 = time();
ok(psql_ends_within($holder, 30), 'deadlock: the caller does not hang');
my ($rc, $out, $err, $state) = finish_psql($holder);
is($state, '40P01', 'deadlock: 40P01');
like($err, qr/deadlock detected/, 'deadlock: the usual message');
like($err, qr/waits for tsnap worker \d+ to snapshot table "t"/, 'deadlock: the detail says how');
note(sprintf('deadlock reported after %.1f s', time() - $t0));
ok(psql_ends_within($truncate, 30), 'deadlock: the TRUNCATE then goes through');
ok(poll_until(30, sub { worker_pids($node) == 0 }), 'deadlock: the worker gave the request up');

###########################################################################
# (b) a hot standby
###########################################################################
$node->safe_psql('postgres', 'INSERT INTO t VALUES (1, \'a\', \'b\')');
my $key = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
my $standby = tsnap_standby($node, 'nohang_standby');
is($standby->safe_psql('postgres', "SELECT tsnap_snapshot('t')"), $key,
	'standby: a hit returns the primary\'s key');
$node->safe_psql('postgres', 'INSERT INTO t VALUES (2, \'a\', \'b\')');
$node->wait_for_catchup($standby);
$t0 = time();
($state, $out, $err) = psql_sqlstate($standby, "SELECT tsnap_snapshot('t')", timeout => 30);
is($state, '25006', 'standby: a miss fails with 25006');
like($err, qr/cannot build a snapshot of table "t" during recovery/, 'standby: says why');
like($err, qr/HINT:\s+Call tsnap_snapshot on the primary/, 'standby: and what to do');
cmp_ok(time() - $t0, '<', 10, 'standby: at once');
$standby->stop;

###########################################################################
# (c) termination while S3 stalls
###########################################################################
# Parts, PutObjects and aborts stall; CreateMultipartUpload (POST) passes.
# One attempt per job: a terminated worker's job would otherwise be tried
# again (027_jobs.pl tests that), and stall again.
my $stall = start_faultproxy(methods => 'PUT,DELETE', faults => 'stall', rate => 1,
	stall => 300);
my $sn = tsnap_node('nohang_stall', endpoint => $stall->{endpoint}, conf => qq{
tsnap.part_size = 5
tsnap.s3_request_timeout = '60s'
tsnap.job_max_attempts = 1
});
make_table($sn, 'big', 120000);
$sn->safe_psql('postgres', 'CREATE DATABASE other');
$sn->safe_psql('other', 'CREATE EXTENSION tsnap');
make_table($sn, 'big', 120000, 'other');

# Start a snapshot in DB and wait until its worker is stuck in S3 (the
# proxy has held one more of its PUTs).
sub stalled_puts
{
	my ($db) = @_;
	return 0 unless -e $stall->{log};
	return scalar(grep { m{PUT stall \S*/$db/public/big/} } split /\n/, slurp_file($stall->{log}));
}

sub stuck_worker
{
	my ($db) = @_;
	my $before = stalled_puts($db);
	my $caller = start_psql($sn, { db => $db }, "SELECT tsnap_snapshot('big')");
	my $pid;
	poll_until(60, sub {
		($pid) = worker_pids($sn, $db);
		return $pid && stalled_puts($db) > $before;
	});
	sleep 1;
	return ($caller, $pid);
}

my ($caller, $wpid) = stuck_worker('postgres');
ok($wpid, "stall: a worker ($wpid) is waiting for S3");
$t0 = time();
$sn->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
ok(poll_until(10, sub { !kill(0, $wpid) }), 'stall: pg_terminate_backend ends the worker');
cmp_ok(time() - $t0, '<', 5, sprintf('stall: within 5 s (%.1f s)', time() - $t0));
($rc, $out, $err, $state) = finish_psql($caller);
is($state, '57P01', 'stall: the caller is told the worker exited');

($caller, $wpid) = stuck_worker('other');
ok($wpid, 'stall: a worker in database other');
$t0 = time();
($state, $out, $err) = psql_sqlstate($sn, 'DROP DATABASE other WITH (FORCE)', timeout => 60);
is($state, '', 'stall: DROP DATABASE ... WITH (FORCE) succeeds') or diag($err);
cmp_ok(time() - $t0, '<', 5, sprintf('stall: within 5 s (%.1f s)', time() - $t0));
finish_psql($caller);

($caller, $wpid) = stuck_worker('postgres');
$t0 = time();
$sn->stop('fast');
cmp_ok(time() - $t0, '<', 5, sprintf('stall: a fast shutdown ends within 5 s (%.1f s)', time() - $t0));
ok(!kill(0, $wpid), 'stall: the worker is gone');
finish_psql($caller);

$sn->start;
($caller, $wpid) = stuck_worker('postgres');
my $pmpid = (split /\n/, slurp_file($sn->data_dir . '/postmaster.pid'))[0];
kill 'KILL', $pmpid;
$t0 = time();
ok(poll_until(10, sub { !kill(0, $wpid) }), 'stall: after the postmaster\'s death the worker exits');
cmp_ok(time() - $t0, '<', 5, sprintf('stall: within 5 s (%.1f s)', time() - $t0));
finish_psql($caller);
# the server starts again once every process of the old one has gone
# (the harness still believes the killed postmaster runs)
$sn->{_pid} = undef;
ok(poll_until(60, sub { $sn->start(fail_ok => 1) }), 'stall: the server restarts');
$sn->stop;
stop_faultproxy($stall);
s3_delete_prefix("$sn->{tsnap_prefix}/");

###########################################################################
# (d) two databases
###########################################################################
my $fair = tsnap_node('nohang_fair', conf => "tsnap.max_workers = 2\n");
$fair->safe_psql('postgres', 'CREATE DATABASE second');
$fair->safe_psql('second', 'CREATE EXTENSION tsnap');
make_table($fair, "s$_", 20000) for 1 .. 4;
make_table($fair, 'lone', 100, 'second');
my @stream = map {
	start_psql($fair, "DO \$\$ BEGIN FOR i IN 1 .. 200 LOOP
		INSERT INTO s$_ VALUES (100000 + i, 'x', 'y'); COMMIT;
		PERFORM tsnap_snapshot('s$_'); COMMIT; END LOOP; END \$\$")
} 1 .. 4;
ok( poll_until(60, sub {
		$fair->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'") eq '2';
	}),
	'fairness: the stream in postgres keeps both workers busy');
($state, $out, $err) = psql_sqlstate($fair, "SELECT tsnap_snapshot('lone')", db => 'second',
	timeout => 120);
is($state, '', 'fairness: the miss in database second is served') or diag($err);
ok(scalar(grep { $_->{h}->pump_nb; $_->{h}->pumpable } @stream) > 0,
	'fairness: while the stream in postgres goes on');
$_->{h}->kill_kill for @stream;
$fair->stop;
s3_delete_prefix("$fair->{tsnap_prefix}/");

###########################################################################
# (e) single flight: 32 callers after each write
###########################################################################
my $proxy = start_faultproxy(rate => 0);
my $sf = tsnap_node('nohang_flight', endpoint => $proxy->{endpoint},
	conf => "max_connections = 60\ntsnap.keep_versions = 100\n");
make_table($sf, 'hot', 2000);
my $script = PostgreSQL::Test::Utils::tempdir() . '/snap.sql';
PostgreSQL::Test::Utils::append_to_file($script, "SELECT tsnap_snapshot('hot');\n");
my $rounds = 20;
for my $r (1 .. $rounds)
{
	$sf->safe_psql('postgres', "INSERT INTO hot VALUES (100000 + $r, 'r', 'r')");
	my ($pout, $perr) = ('', '');
	IPC::Run::run([ 'pgbench', '-n', '-c', '32', '-j', '4', '-t', '1', '-f', $script,
			'-d', $sf->connstr('postgres') ], '>', \$pout, '2>', \$perr)
	  or diag("pgbench: $perr");
}
# each snapshot is one PUT of its CSV and one of its manifest beside it
my $log = slurp_file($proxy->{log});
my $puts = () = $log =~ m{^\d+ PUT \S+ \S*/hot/\S*\.csv$}mg;
is($puts, $rounds, "single flight: $rounds rounds of 32 callers, one upload each");
my $manifests = () = $log =~ m{^\d+ PUT \S+ \S*/hot/\S*\.csv\.manifest\.json$}mg;
is($manifests, $rounds, 'single flight: and one manifest each');
is($sf->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'hot'::regclass"),
	$rounds, 'single flight: one snapshot recorded per version');
$sf->stop;
stop_faultproxy($proxy);
s3_delete_prefix("$sf->{tsnap_prefix}/");

$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");
done_testing();
