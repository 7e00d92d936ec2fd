# Copyright (c) tsnap authors

# Snapshot jobs against a hostile role and faults (issue 13's hostile
# review), each seen failing before its fix:
#  (a) a role that locks the table of its own async job cannot hold the
#      only worker: a job nobody waits for gives up after
#      tsnap.job_lock_timeout (55P03), and another role's snapshot runs;
#  (b) a role that cancels its own job does not fail another role's
#      tsnap_snapshot that had joined it: that caller asks again;
#  (c) a queued job of a database that is dropped fails (the worker cannot
#      connect) instead of staying queued for ever and taking every
#      launch, and a later job elsewhere starts with nobody waiting;
#  (d) a running job whose requesting transaction rolled back, interrupted
#      by a restart, fails at the next housekeeping instead of showing
#      "running" for ever.
# Jobs are held in "running" (waiting for a lock) by a gate: a session that
# holds ACCESS EXCLUSIVE on the table's primary key index, which the
# caller never opens but the worker's planner does.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('attacks', conf => qq{
tsnap.max_workers = 1
tsnap.job_lock_timeout = '3s'
tsnap.housekeeping_interval = '1s'
});
my ($state, $out, $err);

sub make_table
{
	my ($name, $rows, $db) = @_;
	$node->safe_psql($db // 'postgres', qq{
		CREATE TABLE $name (id int PRIMARY KEY, pad text);
		INSERT INTO $name SELECT g, md5(g::text) FROM generate_series(1, $rows) g;
		SELECT tsnap_track('$name');
	});
	return;
}

sub state_of
{
	my ($id, $db) = @_;
	return $node->safe_psql($db // 'postgres',
		"SELECT state FROM tsnap.jobs WHERE job_id = $id");
}

###########################################################################
# (a) a lock on one's own job's table does not hold the worker
###########################################################################
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	CREATE ROLE alice LOGIN;
	CREATE SCHEMA alice AUTHORIZATION alice;
});
$node->safe_psql('postgres', q{
	SET ROLE mallory;
	CREATE TABLE mallory.t (id int PRIMARY KEY, pad text);
	INSERT INTO mallory.t SELECT g, 'x' FROM generate_series(1, 100) g;
	SELECT tsnap_track('mallory.t');
});
my $hostage = start_psql($node, { user => 'mallory' },
	"BEGIN; CREATE TEMP TABLE ids AS SELECT tsnap_snapshot_async('mallory.t') AS id; LOCK TABLE mallory.t IN ACCESS EXCLUSIVE MODE; SELECT id FROM ids; SELECT pg_sleep(3600);");
my $id_m;
ok(poll_until(60, sub {
	($id_m) = $node->safe_psql('postgres',
		"SELECT job_id FROM tsnap.jobs WHERE tbl = 'mallory.t'::regclass AND state = 'running'");
	return $id_m;
}), 'hostage: mallory\'s job waits for her lock');
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.a (id int PRIMARY KEY, pad text);
	INSERT INTO alice.a SELECT g, 'y' FROM generate_series(1, 100) g;
	SELECT tsnap_track('alice.a');
});
($state, $out, $err) = psql_sqlstate($node,
	"SET statement_timeout = '60s'; SELECT tsnap_snapshot('alice.a')", user => 'alice');
is($state, '', 'hostage: alice\'s snapshot gets the only worker all the same') or diag($err);
ok(poll_until(60, sub { state_of($id_m) eq 'failed' }),
	'hostage: mallory\'s job failed instead');
is($node->safe_psql('postgres', "SELECT error_sqlstate FROM tsnap.jobs WHERE job_id = $id_m"),
	'55P03', 'hostage: with 55P03');
like($node->safe_psql('postgres', "SELECT error_message FROM tsnap.jobs WHERE job_id = $id_m"),
	qr/waited longer than tsnap\.job_lock_timeout to lock its table/, 'hostage: saying why');
$hostage->{h}->kill_kill;

###########################################################################
# (b) another role's cancel does not fail a caller that joined its job
###########################################################################
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.shared (id int PRIMARY KEY, pad text);
	INSERT INTO alice.shared SELECT g, 'z' FROM generate_series(1, 1000) g;
	SELECT tsnap_track('alice.shared');
	GRANT USAGE ON SCHEMA alice TO mallory;
	GRANT SELECT ON alice.shared TO mallory;
});
my $gate_b = table_gate($node, 'alice.shared');
my $id_b = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('alice.shared')",
	extra_params => [ '-U', 'mallory' ]);
ok(poll_until(60, sub { state_of($id_b) eq 'running' }), 'cancel: mallory\'s job runs');
my $alice = start_psql($node, { user => 'alice' }, "SELECT tsnap_snapshot('alice.shared')");
ok(poll_until(60, sub {
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND wait_event_type = 'Extension'") eq '1';
}), 'cancel: alice waits, having joined the job');
($state, $out) = psql_sqlstate($node, "SELECT tsnap_cancel($id_b)", user => 'mallory');
is($out, 't', 'cancel: mallory cancels her job');
release_table_gate($node, $gate_b);
my ($rc, $key_b, $alice_err, $alice_state) = finish_psql($alice);
is($alice_state, '', 'cancel: alice still gets her key') or diag($alice_err);
like($key_b, qr{/alice/shared/}, 'cancel: of her table');
unlike($alice_err, qr/tsnap job \d+/, 'cancel: and never hears of mallory\'s job');

###########################################################################
# (c) a queued job of a dropped database
###########################################################################
$node->safe_psql('postgres', 'CREATE DATABASE doomed');
$node->safe_psql('doomed', 'CREATE EXTENSION tsnap');
make_table('d', 10, 'doomed');
make_table('blocker', 10);
make_table('later', 10);
my $gate_c = table_gate($node, 'blocker');
my $id_blocker = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('blocker')");
ok(poll_until(60, sub { state_of($id_blocker) eq 'running' }), 'dropped: the only worker is busy');
my $id_d = $node->safe_psql('doomed', "SELECT tsnap_snapshot_async('d')");
is(state_of($id_d, 'doomed'), 'queued', 'dropped: a job of database doomed is queued');
my $dropped = 0;
for my $try (1 .. 5)
{
	($state, $out, $err) = psql_sqlstate($node, 'DROP DATABASE doomed');
	if ($state eq '') { $dropped = 1; last; }
	sleep 1;
}
ok($dropped, 'dropped: DROP DATABASE doomed') or diag($err);
release_table_gate($node, $gate_c);
ok(poll_until(60, sub { state_of($id_blocker) ne 'running' }), 'dropped: the first job ends');
my $id_later = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('later')");
ok(poll_until(60, sub { state_of($id_later) eq 'succeeded' }),
	'dropped: a later job starts and succeeds with nobody waiting for it');

###########################################################################
# (d) a running job whose request rolled back, then a restart
###########################################################################
# here the job must wait for its lock until the restart
$node->safe_psql('postgres', "ALTER SYSTEM SET tsnap.job_lock_timeout = '1h'");
$node->reload;
make_table('rb', 10);
make_table('trigger', 10);
my $gate_d = table_gate($node, 'rb');
my $rolled = start_psql($node,
	"BEGIN; CREATE TEMP TABLE ids AS SELECT tsnap_snapshot_async('rb') AS id; SELECT id FROM ids; ROLLBACK;");
my (undef, $id_rb) = finish_psql($rolled);
chomp $id_rb;
ok(poll_until(60, sub { state_of($id_rb) eq 'running' }),
	'rolled back: the job runs although its transaction rolled back');
ok(poll_until(60, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM tsnap.job_history WHERE job_id = $id_rb AND state = 'running'") eq '1';
}), 'rolled back: the history says it runs');
$gate_d->{bg}->{h}->kill_kill;
$node->restart;
$node->safe_psql('postgres', 'UPDATE trigger SET pad = pad WHERE id = 1');
$node->safe_psql('postgres', "SELECT tsnap_snapshot('trigger')");
ok(poll_until(60, sub { state_of($id_rb) eq 'failed' }),
	'rolled back: after the restart the job fails instead of running for ever');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_rb, '10s')");
is($state, '57P01', 'rolled back: tsnap_wait raises 57P01 at once') or diag($err);

$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");
done_testing();
