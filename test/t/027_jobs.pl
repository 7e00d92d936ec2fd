# Copyright (c) tsnap authors

# Snapshot jobs (issue 13): tsnap_snapshot_async, tsnap_wait, tsnap_cancel,
# tsnap.jobs and tsnap.job_history.
#
# Node "jobs" runs one worker (tsnap.max_workers = 1), so a second job
# queues behind a first; its S3 endpoint is a proxy that, while a file
# exists, holds back the reply to every part upload for 3 s, so that a
# multipart snapshot streams long enough to watch and to cancel:
#  (a) lifecycle: queued -> running -> succeeded; single flight; a wait
#      that times out (57014) while the job goes on; a queued job
#      cancelled; a hit is a job that has succeeded already; cancelling a
#      succeeded job changes nothing;
#  (b) a failed job keeps its error's SQLSTATE and message;
#  (c) a job cancelled while it streams: its upload is aborted;
#  (d) progress in tsnap.jobs and pg_stat_progress_copy grows;
#  (e) a caller that disconnects: its job still succeeds;
#  (f) a job whose worker is terminated runs again (attempts 2);
#  (g) jobs of two databases run in arrival order across both;
#  (h) a job a crash interrupted (running, or still queued) runs again after the restart, started by
#      the housekeeping of a later request in its database, or can be
#      cancelled before that;
#  (i) tsnap_snapshot_async in a read-only transaction: 25006.
# Node "jobs_priv" (two workers, so that a job can run while another
# request's worker does housekeeping):
#  (j) privileges: who sees, waits for and cancels whose jobs;
#  (k) pruning of tsnap.job_history.
#
# Jobs are held in "running" without S3 by a gate (with
# tsnap.job_lock_timeout long enough; 028 tests that timeout): a session that holds
# ACCESS EXCLUSIVE on the table's primary key index (REINDEX INDEX in an
# open transaction).  The caller of tsnap_snapshot_async never opens the
# index, so it returns at once; the worker's planner opens every index of
# the table and waits until the gate is released.  Nothing here asserts a
# duration; poll_until waits for states.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use TsnapTest;

tsnap_require_s3();

my $MiB = 1024 * 1024;

# A tracked table with a primary key (the gate's index), $rows rows of
# about 100 bytes of CSV each.
sub make_table
{
	my ($node, $name, $rows, $db) = @_;
	$node->safe_psql($db // 'postgres', qq{
		CREATE TABLE $name (id int PRIMARY KEY, pad text);
		INSERT INTO $name SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $rows) g;
		SELECT tsnap_track('$name');
	});
	return;
}

# Columns of job $id in tsnap.jobs, as a hash (empty if it is not listed).
my @job_columns = qw(job_id tbl requested_by state attempts requested_at
  started_at finished_at rows_version key compression rows_done bytes_done
  parts_done rows_estimate worker_pid error_sqlstate error_message);
sub job
{
	my ($node, $id, %opts) = @_;
	my $cols = join(", ", map { "coalesce(${_}::text, '<null>')" } @job_columns);
	my $row = $node->safe_psql($opts{db} // 'postgres',
		"SELECT $cols FROM tsnap.jobs WHERE job_id = $id",
		extra_params => [ '-F', "\t", defined $opts{user} ? ('-U', $opts{user}) : () ]);
	return {} if $row eq '';
	my %job;
	@job{@job_columns} = map { $_ eq '<null>' ? undef : $_ } split /\t/, $row, -1;
	return \%job;
}

sub state_of
{
	my ($node, $id, %opts) = @_;
	return job($node, $id, %opts)->{state} // '';
}

sub worker_pids
{
	my ($node) = @_;
	return grep { $_ ne '' } split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsnap worker'");
}

# Is there an object at KEY (false for no key)?
sub object_at
{
	my ($key) = @_;
	return defined $key && $key ne '' && s3_exists($key);
}

# Key prefix of the objects of table $name's current tracking.
sub tracking_prefix
{
	my ($node, $name, $db) = @_;
	$db //= 'postgres';
	my $tid = $node->safe_psql($db,
		"SELECT tracking_id FROM tsnap.tracked_tables WHERE tbl = '$name'::regclass");
	return "$node->{tsnap_prefix}/" . tsnap_sysid($node) . "/$db/public/$name/$tid/";
}

my $slow = PostgreSQL::Test::Utils::tempdir() . '/slow_parts';
my $proxy = start_faultproxy(methods => 'PUT', match => 'uploadId',
	faults => 'slowreply', rate => 1, stall => 3, fault_file => $slow,
	lifetime => 1200);
my $node = tsnap_node('jobs', endpoint => $proxy->{endpoint}, conf => qq{
tsnap.max_workers = 1
tsnap.part_size = 5
tsnap.max_parts_in_flight = 1
restart_after_crash = on
tsnap.job_lock_timeout = '1h'
});
my ($state, $out, $err);

###########################################################################
# (a) lifecycle, single flight, timeout, cancel while queued, hits
###########################################################################
make_table($node, $_, 1000) for qw(a b c);
my $gate_a = table_gate($node, 'a');
my $gate_b = table_gate($node, 'b');

my $id_a = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('a')");
like($id_a, qr/^\d+$/, 'lifecycle: tsnap_snapshot_async returns a job id');
ok(poll_until(60, sub { state_of($node, $id_a) eq 'running' }),
	'lifecycle: the first job runs (its worker waits for the gate)');
is($node->safe_psql('postgres', "SELECT tsnap_snapshot_async('a')"), $id_a,
	'single flight: a second call for the same table gives the same job');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM tsnap.jobs WHERE tbl = 'a'::regclass"),
	'1', 'single flight: tsnap.jobs lists one job for the table');

my $id_b = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('b')");
isnt($id_b, $id_a, 'lifecycle: another table gets another job');
my $job_b = job($node, $id_b);
is($job_b->{state}, 'queued', 'lifecycle: with one worker busy, the second job is queued');
is($job_b->{started_at}, undef, 'lifecycle: a queued job has not started');
is($job_b->{worker_pid}, undef, 'lifecycle: and has no worker');
is($job_b->{attempts}, '0', 'lifecycle: nor any attempt');

($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_a, '1s')");
is($state, '57014', 'timeout: tsnap_wait with a timeout raises 57014');
like($err, qr/timed out waiting for tsnap job $id_a\b/, 'timeout: naming the job');
is(state_of($node, $id_a), 'running', 'timeout: the job goes on');

# cancel while queued: c is queued behind a and b
my $prefix_c = tracking_prefix($node, 'c');
my $id_c = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('c')");
is(state_of($node, $id_c), 'queued', 'cancel queued: the job is queued');
is($node->safe_psql('postgres', "SELECT tsnap_cancel($id_c)"), 't',
	'cancel queued: tsnap_cancel returns true');
my $job_c = job($node, $id_c);
is($job_c->{state}, 'cancelled', 'cancel queued: state cancelled');
is($job_c->{error_sqlstate}, '57014', 'cancel queued: error_sqlstate 57014');
is($job_c->{started_at}, undef, 'cancel queued: it never started');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_c)");
is($state, '57014', 'cancel queued: tsnap_wait raises 57014');
like($err, qr/tsnap job $id_c was cancelled/, 'cancel queued: saying so');

release_table_gate($node, $gate_a);
ok(poll_until(60, sub { state_of($node, $id_a) eq 'succeeded' }),
	'lifecycle: the first job succeeds once its worker has the lock');
ok(poll_until(60, sub { state_of($node, $id_b) eq 'running' }),
	'lifecycle: then the queued job runs');
release_table_gate($node, $gate_b);
ok(poll_until(60, sub { state_of($node, $id_b) eq 'succeeded' }),
	'lifecycle: and succeeds, without anyone waiting for it');
$job_b = job($node, $id_b);
is($job_b->{attempts}, '1', 'lifecycle: in one attempt');
ok(defined $job_b->{started_at} && defined $job_b->{finished_at},
	'lifecycle: with its start and end');
is($job_b->{rows_done}, '1000', 'lifecycle: rows_done counts every row');
is($job_b->{error_sqlstate}, undef, 'lifecycle: no error');
ok(object_at($job_b->{key}), 'lifecycle: its object is in the bucket');
is($node->safe_psql('postgres', "SELECT tsnap_wait($id_b)"), $job_b->{key},
	'lifecycle: tsnap_wait returns the key of the finished job');
is($node->safe_psql('postgres',
		"SELECT key FROM tsnap.snapshots WHERE tbl = 'b'::regclass"),
	$job_b->{key}, 'lifecycle: the key is the recorded snapshot');

my $key_a = $node->safe_psql('postgres', "SELECT tsnap_wait($id_a)");
is($key_a, job($node, $id_a)->{key}, 'timeout: a later tsnap_wait returns the key');
ok(object_at($key_a), 'timeout: the job went on and its object is there');

# the cancelled job never ran, also after the queue emptied
is(state_of($node, $id_c), 'cancelled', 'cancel queued: still cancelled');
is_deeply([ s3_list($prefix_c) ], [], 'cancel queued: nothing under the table\'s tracking id');
is_deeply([ s3_open_uploads($prefix_c) ], [], 'cancel queued: no open upload');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'c'::regclass"),
	'0', 'cancel queued: nothing recorded');

# a hit
my $id_hit = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('a')");
isnt($id_hit, $id_a, 'hit: a new job');
my $job_hit = job($node, $id_hit);
is($job_hit->{state}, 'succeeded', 'hit: that has succeeded already');
is($job_hit->{key}, $key_a, 'hit: with the key of the snapshot');
is($node->safe_psql('postgres', "SELECT tsnap_snapshot('a')"), $key_a,
	'hit: the key tsnap_snapshot returns');
is($node->safe_psql('postgres', "SELECT tsnap_wait($id_hit)"), $key_a,
	'hit: and tsnap_wait returns');

# cancelling a job that succeeded
is($node->safe_psql('postgres', "SELECT tsnap_cancel($id_a)"), 'f',
	'cancel succeeded: tsnap_cancel returns false');
is(state_of($node, $id_a), 'succeeded', 'cancel succeeded: the job is unchanged');
ok(object_at($key_a), 'cancel succeeded: its object stays');
is($node->safe_psql('postgres', "SELECT tsnap_wait($id_a)"), $key_a,
	'cancel succeeded: tsnap_wait still returns its key');

($state, $out, $err) = psql_sqlstate($node, 'SELECT tsnap_wait(987654321)');
is($state, '42704', 'an unknown job: 42704');
like($err, qr/tsnap job 987654321 does not exist/, 'an unknown job: saying so');

###########################################################################
# (b) a job that fails keeps its error
###########################################################################
make_table($node, 'capped', 1000);
my $id_f = $node->safe_psql('postgres',
	"SET tsnap.max_snapshot_size = '10kB'; SELECT tsnap_snapshot_async('capped')");
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_f)");
is($state, '54000', 'failed: tsnap_wait raises the job\'s SQLSTATE (54000)');
like($err, qr/"capped".*10kB/, 'failed: with its message, naming the table and the limit');
my $job_f = job($node, $id_f);
is($job_f->{state}, 'failed', 'failed: state failed');
is($job_f->{error_sqlstate}, '54000', 'failed: tsnap.jobs has the SQLSTATE');
like($job_f->{error_message} // '', qr/"capped"/, 'failed: and the message');
is($job_f->{key}, undef, 'failed: no key');
is_deeply([ s3_list(tracking_prefix($node, 'capped')) ], [], 'failed: no object');

###########################################################################
# (c) cancelled while it streams
###########################################################################
make_table($node, 'big', 200000);
my $prefix_big = tracking_prefix($node, 'big');
append_to_file($slow, '');
my $id_big = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('big')");
# Polled through SQL only (an S3 listing can take seconds on a loaded
# machine); a finished part means the multipart upload is under way, with
# parts left that each take the proxy's delay.
ok( poll_until(120, sub {
		my $j = job($node, $id_big);
		return ($j->{state} // '') eq 'running' && $j->{parts_done} >= 1;
	}),
	'cancel running: the job streams a multipart upload');
is($node->safe_psql('postgres', "SELECT tsnap_cancel($id_big)"), 't',
	'cancel running: tsnap_cancel returns true');
my $job_big = job($node, $id_big);
is($job_big->{state}, 'cancelled', 'cancel running: state cancelled');
is($job_big->{error_sqlstate}, '57014', 'cancel running: error_sqlstate 57014');
my $proxy_log = slurp_file($proxy->{log});
like($proxy_log, qr{^\d+ POST \S+ \S*/public/big/\S*\?uploads}m,
	'cancel running: it had begun a multipart upload');
like($proxy_log, qr{^\d+ DELETE \S+ \S*/public/big/\S*[?&]uploadId=}m,
	'cancel running: which it aborted');
is_deeply([ s3_open_uploads($prefix_big) ], [],
	'cancel running: the upload was aborted before tsnap_cancel returned');
is_deeply([ s3_list($prefix_big) ], [], 'cancel running: nothing under the table\'s tracking id');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_big)");
is($state, '57014', 'cancel running: tsnap_wait raises 57014');
ok(poll_until(60, sub { worker_pids($node) == 0 }), 'cancel running: the worker exits');
is_deeply([ s3_open_uploads($prefix_big) ], [], 'cancel running: still no open upload');
is_deeply([ s3_list($prefix_big) ], [], 'cancel running: still no object');

###########################################################################
# (d) progress while a multipart snapshot streams
###########################################################################
# still slow: every part's reply is held back 3 s
my $id_p = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('big')");
isnt($id_p, $id_big, 'progress: a new job after the cancelled one');
my (@jobs_samples, @copy_samples);
poll_until(300, sub {
	my $j = job($node, $id_p);
	my $copy = $node->safe_psql('postgres', q{
		SELECT command || '|' || type || '|' || tuples_processed || '|' || bytes_processed
		FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid)
		WHERE p.relid = 'big'::regclass AND a.backend_type = 'tsnap worker'});
	return 1 if ($j->{state} // '') ne 'running';
	push @jobs_samples, $j if $j->{bytes_done} > 0;
	push @copy_samples, [ split /\|/, $copy ] if $copy ne '';
	usleep(300_000);
	return 0;
});
my $final = job($node, $id_p);
is($final->{state}, 'succeeded', 'progress: the job succeeds');
cmp_ok(scalar(@jobs_samples), '>=', 3, 'progress: tsnap.jobs sampled while it streamed');
SKIP:
{
	skip 'no samples of tsnap.jobs', 8 unless @jobs_samples;
	for my $col (qw(rows_done bytes_done parts_done))
	{
		ok(!grep({ $jobs_samples[$_]{$col} < $jobs_samples[ $_ - 1 ]{$col} } 1 .. $#jobs_samples),
			"progress: $col never goes back")
		  or diag(join ' ', map { $_->{$col} } @jobs_samples);
		cmp_ok($jobs_samples[-1]{$col}, '>', $jobs_samples[0]{$col}, "progress: $col grows");
	}
	cmp_ok((sort { $b <=> $a } map { $_->{parts_done} } @jobs_samples)[0], '>', 1,
		'progress: parts_done passes 1 while it runs');
	cmp_ok($jobs_samples[0]{rows_estimate}, '>', 0, 'progress: rows_estimate is positive');
}
is($final->{rows_done}, '200000', 'progress: at the end rows_done counts every row');
my ($rows, $bytes, $parts) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows, bytes, parts FROM tsnap.snapshots WHERE key = '$final->{key}'");
is($final->{bytes_done}, $bytes, 'progress: at the end bytes_done is the object\'s size');
is($final->{parts_done}, $parts, 'progress: and parts_done its parts');
cmp_ok($bytes, '>', 3 * 5 * $MiB, 'progress: a multipart upload of more than 3 parts');
cmp_ok(scalar(@copy_samples), '>=', 3, 'progress: pg_stat_progress_copy sampled');
SKIP:
{
	skip 'no samples of pg_stat_progress_copy', 6 unless @copy_samples;
	is($copy_samples[0][0], 'COPY TO', 'progress: pg_stat_progress_copy shows a COPY TO');
	is($copy_samples[0][1], 'CALLBACK', 'progress: into a callback');
	for my $i (2, 3)
	{
		my $what = $i == 2 ? 'tuples_processed' : 'bytes_processed';
		ok(!grep({ $copy_samples[$_][$i] < $copy_samples[ $_ - 1 ][$i] } 1 .. $#copy_samples),
			"progress: $what never goes back");
		cmp_ok($copy_samples[-1][$i], '>', $copy_samples[0][$i], "progress: $what grows");
	}
}
unlink $slow;
is_deeply([ s3_open_uploads($prefix_big) ], [], 'progress: no open upload afterwards');

###########################################################################
# (e) a caller that disconnects while its job runs
###########################################################################
make_table($node, 'd', 1000);
my $gate_d = table_gate($node, 'd');
my $leaver = start_psql($node, "SET application_name = 'leaver'",
	"SET client_connection_check_interval = '200ms'",
	"SELECT tsnap_wait(tsnap_snapshot_async('d'))");
my $id_d;
ok( poll_until(60, sub {
		$id_d = $node->safe_psql('postgres',
			"SELECT job_id FROM tsnap.jobs WHERE tbl = 'd'::regclass AND state = 'running'");
		return $id_d ne '' && $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leaver' AND wait_event_type = 'Extension'") eq '1';
	}),
	'disconnect: the caller waits for its running job');
$leaver->{h}->kill_kill;
ok( poll_until(60, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leaver'") eq '0';
	}),
	'disconnect: the caller\'s session is gone');
is(state_of($node, $id_d), 'running', 'disconnect: its job still runs');
release_table_gate($node, $gate_d);
ok(poll_until(60, sub { state_of($node, $id_d) eq 'succeeded' }),
	'disconnect: and succeeds, seen from another session');
ok(object_at(job($node, $id_d)->{key}), 'disconnect: its object is there');

###########################################################################
# (f) a job whose worker is terminated runs again
###########################################################################
make_table($node, 'r', 1000);
my $gate_r = table_gate($node, 'r');
my $id_r = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('r')");
ok(poll_until(60, sub { state_of($node, $id_r) eq 'running' }), 'terminate: the job runs');
my $job_r = job($node, $id_r);
is($job_r->{attempts}, '1', 'terminate: in its first attempt');
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($job_r->{worker_pid})"), 't',
	"terminate: pg_terminate_backend of its worker ($job_r->{worker_pid})");
# The launcher may start it again within a second, so either is seen.
ok( poll_until(60, sub {
	my $j = job($node, $id_r);
	return ($j->{state} // '') eq 'queued' || ($j->{attempts} // 0) >= 2;
}), 'terminate: the job goes back to the queue (or has started again)');
release_table_gate($node, $gate_r);
my $key_r = $node->safe_psql('postgres', "SELECT tsnap_wait($id_r)");
$job_r = job($node, $id_r);
is($job_r->{state}, 'succeeded', 'terminate: the job succeeds');
is($job_r->{attempts}, '2', 'terminate: in its second attempt');
is($job_r->{key}, $key_r, 'terminate: tsnap_wait returned its key');
ok(object_at($key_r), 'terminate: its object is there');

###########################################################################
# (g) two databases, one worker: arrival order across both
###########################################################################
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION tsnap');
make_table($node, 'head', 100);
for my $db (qw(postgres other))
{
	make_table($node, "q$_", 20000, $db) for 1 .. 3;
}
my $gate_head = table_gate($node, 'head');
my $id_head = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('head')");
ok(poll_until(60, sub { state_of($node, $id_head) eq 'running' }),
	'two databases: a first job holds the only worker');
my @order;
for my $i (1 .. 3)
{
	for my $db (qw(other postgres))
	{
		my $id = $node->safe_psql($db, "SELECT tsnap_snapshot_async('q$i')");
		push @order, [ $db, $id ];
	}
}
is(scalar(grep { state_of($node, $_->[1], db => $_->[0]) eq 'queued' } @order), 6,
	'two databases: six jobs queued, alternating between the databases');
release_table_gate($node, $gate_head);
ok( poll_until(120, sub {
		!grep { state_of($node, $_->[1], db => $_->[0]) ne 'succeeded' } @order;
	}),
	'two databases: every job of both databases succeeds, without waiters');
# requested_at and started_at as epoch seconds, from each database's view
my @jobs = map {
	my ($db, $id) = @$_;
	my ($req, $start) = split /\|/, $node->safe_psql($db,
		"SELECT extract(epoch FROM requested_at), extract(epoch FROM started_at) FROM tsnap.jobs WHERE job_id = $id");
	{ db => $db, id => $id, requested_at => $req, started_at => $start }
} @order;
my $by_request = join ' ', map { "$_->{db}:$_->{id}" }
  sort { $a->{requested_at} <=> $b->{requested_at} } @jobs;
my $by_start = join ' ', map { "$_->{db}:$_->{id}" }
  sort { $a->{started_at} <=> $b->{started_at} } @jobs;
is($by_request, join(' ', map { "$_->[0]:$_->[1]" } @order),
	'two databases: requested_at follows the order of the calls');
is($by_start, $by_request, 'two databases: started in arrival order across both');

###########################################################################
# (h) a job a crash interrupted runs again after the restart
###########################################################################
make_table($node, 'k', 1000);
make_table($node, 'trigger', 10);
my $gate_k = table_gate($node, 'k');
my $id_k = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('k')");
ok(poll_until(60, sub { state_of($node, $id_k) eq 'running' }), 'crash: the job runs');
my $kpid = job($node, $id_k)->{worker_pid};
ok(kill('KILL', $kpid), "crash: SIGKILL its worker ($kpid)");
finish_psql($gate_k->{bg});
$node->poll_query_until('postgres', 'SELECT true')
  or die 'server did not come back after the crash';
my $job_k = job($node, $id_k);
is($job_k->{state}, 'running', 'crash: after the restart, the history says the job runs');
is($job_k->{attempts}, '1', 'crash: in its first attempt');
# The launcher's housekeeping would start it; until it is merged, the
# worker of a later request in the database does, after its request.
my $key_trigger = $node->safe_psql('postgres', "SELECT tsnap_snapshot('trigger')");
ok(object_at($key_trigger), 'crash: a later snapshot of another table succeeds');
ok(poll_until(60, sub { state_of($node, $id_k) eq 'succeeded' }),
	'crash: its worker\'s housekeeping starts the interrupted job, which succeeds');
$job_k = job($node, $id_k);
is($job_k->{attempts}, '2', 'crash: in its second attempt');
ok(object_at($job_k->{key}), 'crash: its object is there');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_k, '10s')");
is($out, $job_k->{key} // 'no key', 'crash: tsnap_wait returns its key') or diag($err);

# a job still queued at the crash, which no worker had taken, runs again
# too: its request was recorded when the transaction that asked committed
make_table($node, 'cq1', 1000);
make_table($node, 'cq2', 10);
my $gate_q1 = table_gate($node, 'cq1');
my $id_q1 = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('cq1')");
ok(poll_until(60, sub { state_of($node, $id_q1) eq 'running' }),
	'crash, queued: the first job runs');
my $id_q2 = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('cq2')");
is(state_of($node, $id_q2), 'queued', 'crash, queued: the second waits in the queue');
$kpid = job($node, $id_q1)->{worker_pid};
ok(kill('KILL', $kpid), "crash, queued: SIGKILL the first job's worker ($kpid)");
finish_psql($gate_q1->{bg});
$node->poll_query_until('postgres', 'SELECT true')
  or die 'server did not come back after the crash';
$node->safe_psql('postgres', 'UPDATE trigger SET pad = pad WHERE id = 1');
$node->safe_psql('postgres', "SELECT tsnap_snapshot('trigger')");
ok(poll_until(60, sub { state_of($node, $id_q2) eq 'succeeded' }),
	'crash, queued: the job that was queued runs after the restart');
ok(poll_until(60, sub { state_of($node, $id_q1) eq 'succeeded' }),
	'crash, queued: and so does the one that was running');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_wait($id_q2, '10s')");
is($out, job($node, $id_q2)->{key} // 'no key', 'crash, queued: tsnap_wait returns its key')
  or diag($err);

# a job a crash interrupted can be cancelled before it runs again
make_table($node, 'k2', 1000);
my $prefix_k2 = tracking_prefix($node, 'k2');
my $gate_k2 = table_gate($node, 'k2');
my $id_k2 = $node->safe_psql('postgres', "SELECT tsnap_snapshot_async('k2')");
ok(poll_until(60, sub { state_of($node, $id_k2) eq 'running' }), 'crash, cancel: the job runs');
$kpid = job($node, $id_k2)->{worker_pid};
ok(kill('KILL', $kpid), "crash, cancel: SIGKILL its worker ($kpid)");
finish_psql($gate_k2->{bg});
$node->poll_query_until('postgres', 'SELECT true')
  or die 'server did not come back after the crash';
is(state_of($node, $id_k2), 'running', 'crash, cancel: the history says the job runs');
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_cancel($id_k2)");
is($state, '', 'crash, cancel: tsnap_cancel of the interrupted job succeeds') or diag($err);
is($out, 't', 'crash, cancel: and returns true');
is(state_of($node, $id_k2), 'cancelled', 'crash, cancel: the job is cancelled');
($state) = psql_sqlstate($node, "SELECT tsnap_wait($id_k2, '60s')");
is($state, '57014', 'crash, cancel: tsnap_wait raises 57014');
# a later request's housekeeping does not start it again (the worker does
# its housekeeping before it exits)
$node->safe_psql('postgres', 'UPDATE trigger SET pad = pad WHERE id = 1');
$node->safe_psql('postgres', "SELECT tsnap_snapshot('trigger')");
ok(poll_until(60, sub { worker_pids($node) == 0 }), 'crash, cancel: a later request\'s worker is done');
is(state_of($node, $id_k2), 'cancelled', 'crash, cancel: the job stays cancelled');
is_deeply([ s3_list($prefix_k2) ], [], 'crash, cancel: nothing under the table\'s tracking id');

###########################################################################
# (i) read-only transactions
###########################################################################
make_table($node, 'ro', 10);
$node->safe_psql('postgres', "SELECT tsnap_snapshot('ro')");
my $ro_jobs = $node->safe_psql('postgres',
	"SELECT count(*) FROM tsnap.jobs WHERE tbl = 'ro'::regclass");
($state, $out, $err) = psql_sqlstate($node,
	"BEGIN READ ONLY; SELECT tsnap_snapshot_async('ro')");
is($state, '25006', 'read-only: a hit in a read-only transaction is 25006');
like($err, qr/cannot start a snapshot job of table "ro" in a read-only transaction/,
	'read-only: naming the table');
$node->safe_psql('postgres', 'UPDATE ro SET pad = pad WHERE id = 1');
($state, $out, $err) = psql_sqlstate($node,
	"SET default_transaction_read_only = on; SELECT tsnap_snapshot_async('ro')");
is($state, '25006', 'read-only: a miss with default_transaction_read_only is 25006');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM tsnap.jobs WHERE tbl = 'ro'::regclass"),
	$ro_jobs, 'read-only: no job was added');

$node->stop;
stop_faultproxy($proxy);
s3_delete_prefix("$node->{tsnap_prefix}/");

###########################################################################
# (j) privileges
###########################################################################
my $pn = tsnap_node('jobs_priv', conf => "tsnap.max_workers = 2\ntsnap.job_lock_timeout = '1h'\n");
make_table($pn, $_, 1000) for qw(priv priv2 p trig);
$pn->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN;
	GRANT SELECT ON priv, priv2 TO alice, carol;
});
# alice's job that fails (the cap is set by a superuser, the job is hers)
my $id_af = $pn->safe_psql('postgres', q{
	SET tsnap.max_snapshot_size = '10kB'; SET ROLE alice;
	SELECT tsnap_snapshot_async('priv')});
($state) = psql_sqlstate($pn, "SELECT tsnap_wait($id_af)", user => 'alice');
is($state, '54000', 'privileges: alice\'s job fails with 54000');
# and one that runs
my $gate_p2 = table_gate($pn, 'priv2');
my $id_ar = $pn->safe_psql('postgres', "SELECT tsnap_snapshot_async('priv2')",
	extra_params => [ '-U', 'alice' ]);
ok(poll_until(60, sub { state_of($pn, $id_ar) eq 'running' }), 'privileges: alice\'s second job runs');

my $ids = "$id_af, $id_ar";
is($pn->safe_psql('postgres', "SELECT count(*) FROM tsnap.jobs WHERE job_id IN ($ids)",
		extra_params => [ '-U', 'bob' ]),
	'0', 'privileges: bob (no SELECT) does not see alice\'s jobs');
for my $call ("tsnap_wait($id_af)", "tsnap_wait($id_ar, '1s')", "tsnap_cancel($id_ar)",
	"tsnap_cancel($id_af)")
{
	($state, $out, $err) = psql_sqlstate($pn, "SELECT $call", user => 'bob');
	is($state, '42704', "privileges: bob's $call is 42704");
	like($err, qr/tsnap job \d+ does not exist/, "privileges: bob's $call: as if there were no such job");
}
($state, $out, $err) = psql_sqlstate($pn, "SELECT tsnap_snapshot_async('priv')", user => 'bob');
is($state, '42501', 'privileges: bob\'s tsnap_snapshot_async without SELECT is 42501');
my ($state_sync) = psql_sqlstate($pn, "SELECT tsnap_snapshot('priv')", user => 'bob');
is($state, $state_sync, 'privileges: like tsnap_snapshot\'s');
($state) = psql_sqlstate($pn, 'SELECT * FROM tsnap.job_history', user => 'bob');
is($state, '42501', 'privileges: PUBLIC cannot read tsnap.job_history');
($state) = psql_sqlstate($pn, "SELECT nextval('tsnap.job_id_seq')", user => 'bob');
is($state, '42501', 'privileges: PUBLIC cannot take ids from tsnap.job_id_seq');

my $cj = job($pn, $id_af, user => 'carol');
is($cj->{state}, 'failed', 'privileges: carol (SELECT on the table) sees alice\'s failed job');
is($cj->{error_sqlstate}, '54000', 'privileges: with its SQLSTATE');
is($cj->{error_message}, undef, 'privileges: but not its message');
is(state_of($pn, $id_ar, user => 'carol'), 'running', 'privileges: carol sees the running job');
($state, $out, $err) = psql_sqlstate($pn, "SELECT tsnap_wait($id_af)", user => 'carol');
is($state, '54000', 'privileges: carol\'s tsnap_wait of the failed job gives its SQLSTATE');
like($err, qr/tsnap job $id_af failed/, 'privileges: with a message of its own');
unlike($err, qr/priv|10kB/, 'privileges: and nothing of the job\'s error');
($state, $out, $err) = psql_sqlstate($pn, "SELECT tsnap_cancel($id_ar)", user => 'carol');
is($state, '42501', 'privileges: carol may not cancel alice\'s job');
is(state_of($pn, $id_ar), 'running', 'privileges: which still runs');

like(job($pn, $id_af, user => 'alice')->{error_message} // '', qr/"priv"/,
	'privileges: alice sees her job\'s message');
($state, $out, $err) = psql_sqlstate($pn, "SELECT tsnap_wait($id_af)", user => 'alice');
like($err, qr/"priv".*10kB/, 'privileges: and tsnap_wait raises it whole for her');
is($pn->safe_psql('postgres', "SELECT tsnap_cancel($id_ar)", extra_params => [ '-U', 'alice' ]),
	't', 'privileges: alice may cancel her job');
is(state_of($pn, $id_ar), 'cancelled', 'privileges: which is cancelled');
release_table_gate($pn, $gate_p2);

###########################################################################
# (k) pruning of tsnap.job_history
###########################################################################
my @old = grep { $_ ne '' } split /\n/, $pn->safe_psql('postgres',
	"SELECT job_id FROM tsnap.job_history WHERE state IN ('succeeded', 'failed', 'cancelled')");
cmp_ok(scalar(@old), '>=', 2, 'prune: the history holds finished jobs');
my $gate_p = table_gate($pn, 'p');
my $id_pr = $pn->safe_psql('postgres', "SELECT tsnap_snapshot_async('p')");
ok(poll_until(60, sub { state_of($pn, $id_pr) eq 'running' }), 'prune: a job runs');
is($pn->safe_psql('postgres', "SELECT state FROM tsnap.job_history WHERE job_id = $id_pr"),
	'running', 'prune: the history records it as running');
tsnap_reload($pn, "tsnap.job_history_max_age = '1s'\n");
# housekeeping runs in the worker of each request, after its request
my $old_ids = join(', ', @old);
ok( poll_until(120, sub {
		$pn->safe_psql('postgres',
			"UPDATE trig SET pad = pad WHERE id = 1; SELECT tsnap_snapshot('trig')");
		return $pn->safe_psql('postgres',
			"SELECT count(*) FROM tsnap.job_history WHERE job_id IN ($old_ids)") eq '0';
	}),
	'prune: finished jobs older than tsnap.job_history_max_age are deleted');
is($pn->safe_psql('postgres', "SELECT state FROM tsnap.job_history WHERE job_id = $id_pr"),
	'running', 'prune: the running job\'s row stays');
release_table_gate($pn, $gate_p);
ok(poll_until(60, sub { state_of($pn, $id_pr) eq 'succeeded' }), 'prune: the running job succeeds');

$pn->stop;
s3_delete_prefix("$pn->{tsnap_prefix}/");
done_testing();
