# Copyright (c) tsnap authors

# Faults around an upload:
#  (a) a multipart upload with small parts, checked part by part;
#  (b) a worker killed (SIGKILL) mid-upload: the caller fails, no object
#      appears, and the next worker aborts the abandoned multipart upload;
#  (c) statement_timeout and pg_cancel_backend end a caller's wait at once;
#      a RUNNING request left by its callers still finishes, a QUEUED one is
#      dropped, and no multipart upload stays open;
#  (d) a wrong secret and an unreachable endpoint give clear errors
#      (28000, 08006) and never reveal the secret;
#  (e) tsnap.max_snapshot_size: 54000, nothing left in the bucket;
#  (f) a worker killed after its object appeared but before it was recorded:
#      a later worker deletes the unrecorded object.
#
# Elapsed times are only checked as liveness bounds (a wait that should end
# at once ends within seconds), never as performance.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use Digest::SHA qw(sha256_hex);
use IPC::Run;
use TsnapTest;

tsnap_require_s3();

my $MiB = 1024 * 1024;

# A tracked table of $rows rows, about 90 bytes of CSV each.
sub make_table
{
	my ($node, $name, $rows) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $name (id int PRIMARY KEY, a text, b text);
		INSERT INTO $name SELECT g, md5(g::text), 'row ' || g || ', "' || md5((-g)::text) || '"'
		  FROM generate_series(1, $rows) g;
		SELECT tsnap_track('$name');
	});
	return;
}

sub worker_pids
{
	my ($node) = @_;
	return grep { $_ ne '' } split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsnap worker'");
}

sub table_prefix
{
	my ($node, $tbl) = @_;
	return "$node->{tsnap_prefix}/" . tsnap_sysid($node) . "/postgres/public/$tbl/";
}

sub copy_sha256
{
	my ($node, $tbl) = @_;
	my $file = PostgreSQL::Test::Utils::tempdir() . "/$tbl.csv";
	$node->safe_psql('postgres', qq{
		SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';
		SET extra_float_digits = 1; SET bytea_output = 'hex'; SET lc_monetary = 'C';
		SET search_path = pg_catalog;
		COPY (SELECT * FROM public.$tbl) TO '$file' WITH (FORMAT csv, HEADER)});
	my $data = slurp_file($file);
	return (sha256_hex($data), length($data));
}

###########################################################################
# (a) multipart: 5 MiB parts, 2 in flight, a CSV of more than 10 MiB
###########################################################################
my $node_a = tsnap_node('faults_a', conf => qq{
tsnap.part_size = 5
tsnap.max_parts_in_flight = 2
});
is($node_a->safe_psql('postgres', 'SHOW tsnap.part_size'), '5MB', 'part_size is 5MB');

make_table($node_a, 'big', 160000);
my ($sha, $len) = copy_sha256($node_a, 'big');
cmp_ok($len, '>', 2 * 5 * $MiB, "CSV is more than two parts ($len bytes)");

my ($key, $rows, $bytes, $etag, $hit) = split /\|/, $node_a->safe_psql('postgres',
	"SELECT key, rows, bytes, etag, hit FROM tsnap_snapshot_info('big')");
is($hit, 'f', 'multipart: a miss');
my $want_parts = int(($len + 5 * $MiB - 1) / (5 * $MiB));
like($etag, qr/-(\d+)"?$/, "multipart: ETag $etag is a multipart ETag");
my ($n) = $etag =~ /-(\d+)"?$/;
cmp_ok($n // 0, '>=', 3, 'multipart: at least 3 parts');
is($n, $want_parts, "multipart: $want_parts parts of 5 MiB");
is($node_a->safe_psql('postgres', "SELECT parts FROM tsnap.snapshots WHERE key = '$key'"),
	$want_parts, 'tsnap.snapshots.parts matches');
my ($rc, $head, $err) = aws_s3api('head-object', '--bucket', $ENV{S3_BUCKET}, '--key', $key,
	'--query', '[ETag, ContentLength]', '--output', 'text');
is($rc, 0, 'head-object succeeds');
my ($head_etag, $head_len) = split /\s+/, $head;
(my $bare = $etag) =~ s/"//g;
$head_etag =~ s/"//g;
is($head_etag, $bare, 'head-object ETag equals the manifest ETag');
is($head_len, $len, 'head-object length equals the COPY length');
is($bytes, $len, 'manifest bytes equals the COPY length');
is($rows, 160000, 'manifest rows');
my $object = s3_get($key);
is(length($object), $len, 'object length equals COPY output');
is(sha256_hex($object), $sha, 'object SHA-256 equals COPY output');
undef $object;
is(scalar(s3_open_uploads("$node_a->{tsnap_prefix}/")), 0, 'no open upload after the snapshot');

###########################################################################
# (e) tsnap.max_snapshot_size, on the same node
###########################################################################
make_table($node_a, 'capped', 120000);
my $capped_prefix = table_prefix($node_a, 'capped');
($sha, $len) = copy_sha256($node_a, 'capped');
cmp_ok($len, '>', 5.5 * $MiB, 'capped table: CSV is more than 5.5 MiB');

# a cap below one part: the single-PUT path
my ($state, $out);
($state, $out, $err) = psql_sqlstate($node_a,
	"SET tsnap.max_snapshot_size = '100kB'; SELECT tsnap_snapshot('capped')");
is($state, '54000', 'cap below one part: 54000');
like($err, qr/capped/, 'message names the table');
like($err, qr/100kB/, 'message names the limit');
is(scalar(s3_list($capped_prefix)), 0, 'cap below one part: no object');
is(scalar(s3_open_uploads($capped_prefix)), 0, 'cap below one part: no open upload');

# a cap above one part: a multipart upload began and must be aborted
($state, $out, $err) = psql_sqlstate($node_a,
	"SET tsnap.max_snapshot_size = '5632kB'; SELECT tsnap_snapshot('capped')");
is($state, '54000', 'cap above one part: 54000');
like($err, qr/"capped".*5632kB/, 'message names the table and the limit');
is(scalar(s3_list($capped_prefix)), 0, 'cap above one part: no object');
is(scalar(s3_open_uploads($capped_prefix)), 0,
	'cap above one part: the multipart upload was aborted before the error');
is($node_a->safe_psql('postgres',
		"SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'capped'::regclass"),
	'0', 'nothing recorded');

# only a superuser may change the cap
$node_a->safe_psql('postgres', 'CREATE ROLE plain LOGIN; GRANT SELECT ON capped TO plain');
($state) = psql_sqlstate($node_a, "SET tsnap.max_snapshot_size = 0", user => 'plain');
is($state, '42501', 'a non-superuser may not change tsnap.max_snapshot_size');

# without a cap, it works
($state, $out) = psql_sqlstate($node_a,
	"SET tsnap.max_snapshot_size = 0; SELECT tsnap_snapshot('capped')");
is($state, '', 'without the cap the snapshot succeeds');
is(sha256_hex(s3_get($out)), $sha, 'and equals COPY output');
is_deeply([ s3_list($capped_prefix) ], [ $out, "$out.manifest.json" ],
	'exactly that object and its manifest under the table');
$node_a->stop;
s3_delete_prefix("$node_a->{tsnap_prefix}/");

###########################################################################
# (b) a worker killed mid-upload
###########################################################################
# Every UploadPart stalls; everything else passes.
my $stall_parts = start_faultproxy(methods => 'PUT', match => 'uploadId',
	faults => 'stall', rate => 1, stall => 120);
my $node_b = tsnap_node('faults_b', endpoint => $stall_parts->{endpoint},
	conf => "tsnap.part_size = 5\nrestart_after_crash = on\n");
my $prefix_b = "$node_b->{tsnap_prefix}/";
make_table($node_b, 'big', 90000);

my $caller = start_psql($node_b, "SELECT tsnap_snapshot('big')");
ok(poll_until(60, sub { scalar(s3_open_uploads($prefix_b)) > 0 && worker_pids($node_b) > 0 }),
	'kill: the worker has a multipart upload open');
my ($wpid) = worker_pids($node_b);
ok(kill('KILL', $wpid), "kill: SIGKILL the worker ($wpid)");
my ($crc, $cout, $cerr) = finish_psql($caller);
isnt($crc, 0, 'kill: the caller fails');
like($cerr, qr/terminating connection because of crash|server closed the connection|connection to server was lost|exited before the snapshot/,
	'kill: the caller is told');
$node_b->poll_query_until('postgres', 'SELECT true')
  or die 'server did not come back after the crash';
is_deeply([ s3_list($prefix_b) ], [], 'kill: no object below the prefix');
my @abandoned = s3_open_uploads($prefix_b);
is(scalar(@abandoned), 1, 'kill: the killed worker left its multipart upload open');
is($node_b->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '0',
	'kill: nothing recorded');

# The next worker sweeps after its first request (a small table: PutObject,
# which the proxy lets through).
$node_b->safe_psql('postgres', q{
	CREATE TABLE small (id int); INSERT INTO small VALUES (1), (2);
	SELECT tsnap_track('small');
});
my $small_key = $node_b->safe_psql('postgres', "SELECT tsnap_snapshot('small')");
ok(s3_exists($small_key), 'kill: a later snapshot succeeds');
ok(poll_until(60, sub { scalar(s3_open_uploads($prefix_b)) == 0 }),
	'kill: the later worker aborted the abandoned upload');
ok($node_b->wait_for_log(qr/aborted abandoned upload of "\Q$abandoned[0]\E"/),
	'kill: the sweep is logged');
is_deeply([ s3_list($prefix_b) ], [ $small_key, "$small_key.manifest.json" ],
	'kill: only the later object (and its manifest) exists');

# pg_terminate_backend (SIGTERM) instead: the worker aborts its upload on
# the way out and fails the request for its caller, once no attempt is
# left (a job whose worker dies is retried up to tsnap.job_max_attempts;
# 027_jobs.pl tests the retries).
$node_b->append_conf('postgresql.conf', 'tsnap.job_max_attempts = 1');
$node_b->reload;
$node_b->safe_psql('postgres', 'UPDATE big SET a = a WHERE id = 1');
$caller = start_psql($node_b, "SELECT tsnap_snapshot('big')");
ok(poll_until(60, sub { scalar(s3_open_uploads($prefix_b)) > 0 && worker_pids($node_b) > 0 }),
	'terminate: the worker has a multipart upload open');
($wpid) = worker_pids($node_b);
is($node_b->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)"), 't',
	'terminate: pg_terminate_backend on the worker');
my $cstate;
($crc, $cout, $cerr, $cstate) = finish_psql($caller);
is($cstate, '57P01', 'terminate: the caller gets 57P01');
like($cerr, qr/tsnap worker exited before the snapshot was finished/,
	'terminate: the caller is told');
is_deeply([ s3_open_uploads($prefix_b) ], [],
	'terminate: the upload was aborted before the caller was answered');
is_deeply([ s3_list($prefix_b) ], [ $small_key, "$small_key.manifest.json" ],
	'terminate: no new object');
is($node_b->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '1',
	'terminate: nothing new recorded');
$node_b->stop;
s3_delete_prefix("$node_b->{tsnap_prefix}/");
stop_faultproxy($stall_parts);

###########################################################################
# (c) cancel and statement_timeout while waiting
###########################################################################
# Every PUT stalls; each attempt times out after 3 s and a part gets two
# attempts, so a worker gives up after about 6 s.
my $stall_puts = start_faultproxy(methods => 'PUT', faults => 'stall', rate => 1,
	stall => 120);
my $node_c = tsnap_node('faults_c', endpoint => $stall_puts->{endpoint}, conf => qq{
tsnap.part_size = 5
tsnap.max_workers = 1
tsnap.s3_request_timeout = '3s'
tsnap.s3_max_attempts = 2
});
my $prefix_c = "$node_c->{tsnap_prefix}/";
make_table($node_c, 'big', 90000);
$node_c->safe_psql('postgres', q{
	CREATE TABLE queued (id int); INSERT INTO queued VALUES (1);
	SELECT tsnap_track('queued');
});

# statement_timeout; a second caller, for another table, waits QUEUED
# behind the only worker and times out too.
$caller = start_psql($node_c, "SET statement_timeout = '2s'", "SELECT tsnap_snapshot('big')");
ok(poll_until(60, sub { scalar(s3_open_uploads($prefix_c)) > 0 }),
	'timeout: the worker has begun a multipart upload');
my $queued = start_psql($node_c, "SET statement_timeout = '2s'", "SELECT tsnap_snapshot('queued')");
($crc, $cout, $cerr, $state) = finish_psql($caller);
my $elapsed = time() - $caller->{started};
is($state, '57014', 'timeout: SQLSTATE 57014');
like($cerr, qr/canceling statement due to statement timeout/, 'timeout: the usual message');
cmp_ok($elapsed, '<', 10, sprintf('timeout: the wait ended promptly (%.1f s)', $elapsed));
($crc, $cout, $cerr, $state) = finish_psql($queued);
is($state, '57014', 'timeout: the queued caller times out too');

ok(poll_until(90, sub { worker_pids($node_c) == 0 }), 'timeout: the worker finishes');
ok(poll_until(30, sub { scalar(s3_open_uploads($prefix_c)) == 0 }),
	'timeout: no multipart upload stays open');
is_deeply([ s3_list($prefix_c) ], [], 'timeout: no object');
is($node_c->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '0',
	'timeout: nothing recorded (the upload failed)');
my $plog = slurp_file($stall_puts->{log});
unlike($plog, qr{/public/queued/}, 'timeout: the QUEUED request nobody waited for was dropped');

# pg_cancel_backend
$caller = start_psql($node_c, "SELECT tsnap_snapshot('big')");
ok( poll_until(60, sub {
		scalar(s3_open_uploads($prefix_c)) > 0
		  && $node_c->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT tsnap_snapshot%' AND wait_event_type = 'Extension'"
		  ) eq '1';
	}),
	'cancel: the caller waits for a worker that is uploading');
my $t0 = time();
is( $node_c->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT tsnap_snapshot%' AND wait_event_type = 'Extension'"),
	't', 'cancel: pg_cancel_backend');
($crc, $cout, $cerr, $state) = finish_psql($caller);
$elapsed = time() - $t0;
is($state, '57014', 'cancel: SQLSTATE 57014');
like($cerr, qr/canceling statement due to user request/, 'cancel: the usual message');
cmp_ok($elapsed, '<', 10, sprintf('cancel: the wait ended promptly (%.1f s)', $elapsed));
ok(poll_until(90, sub { worker_pids($node_c) == 0 }), 'cancel: the worker finishes');
ok(poll_until(30, sub { scalar(s3_open_uploads($prefix_c)) == 0 }),
	'cancel: no multipart upload stays open');
is_deeply([ s3_list($prefix_c) ], [], 'cancel: no object');

# A RUNNING request whose only caller left still finishes and is recorded:
# the first request through this proxy (the PutObject) stalls once, and
# the retry goes through.
my $stall_first = start_faultproxy(nth => 1, faults => 'stall', stall => 120);
tsnap_reload($node_c, "tsnap.s3_endpoint = '$stall_first->{endpoint}'\n");
$caller = start_psql($node_c, "SET statement_timeout = '1s'", "SELECT tsnap_snapshot('queued')");
($crc, $cout, $cerr, $state) = finish_psql($caller);
is($state, '57014', 'abandoned RUNNING request: the caller times out');
ok( poll_until(60, sub {
		$node_c->safe_psql('postgres',
			"SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'queued'::regclass") eq '1';
	}),
	'abandoned RUNNING request: the worker finished and recorded it');
my ($qkey, $qhit) = split /\|/, $node_c->safe_psql('postgres',
	"SELECT key, hit FROM tsnap_snapshot_info('queued')");
is($qhit, 't', 'abandoned RUNNING request: a later call is a hit');
ok(s3_exists($qkey), 'abandoned RUNNING request: its object exists');
like(slurp_file($stall_first->{log}), qr/^1 PUT stall .*queued/m,
	'abandoned RUNNING request: its first PutObject was the stalled one');
$node_c->stop;
s3_delete_prefix("$node_c->{tsnap_prefix}/");
stop_faultproxy($stall_puts);
stop_faultproxy($stall_first);

###########################################################################
# (d) S3 misconfiguration
###########################################################################
my $secret = 'WrongSecret-' . int(rand(1e9)) . '-NotTheRealOne';
my $node_d = tsnap_node('faults_d', conf => "tsnap.s3_secret_access_key = '$secret'\n");
my $prefix_d = "$node_d->{tsnap_prefix}/";
$node_d->safe_psql('postgres', q{
	CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a');
	SELECT tsnap_track('t');
	CREATE ROLE reader LOGIN; GRANT SELECT ON t TO reader;
});
($state, $out, $err) = psql_sqlstate($node_d, "SELECT tsnap_snapshot('t')");
is($state, '28000', 'wrong secret: SQLSTATE 28000');
like($err, qr/could not upload object/, 'wrong secret: says what failed');
like($err, qr/403|SignatureDoesNotMatch|AccessDenied/, 'wrong secret: says why');
unlike($err, qr/\Q$secret\E/, 'wrong secret: the secret is not in the error');
($state, $out, $err) = psql_sqlstate($node_d, "SELECT tsnap_snapshot('t')", user => 'reader');
is($state, '28000', 'wrong secret: also for a non-superuser');
unlike($err, qr/\Q$secret\E/, 'wrong secret: the secret is not in a non-superuser\'s error');
is_deeply([ s3_list($prefix_d) ], [], 'wrong secret: no object');

# nothing listening on the endpoint's port
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
tsnap_reload($node_d, qq{
tsnap.s3_endpoint = 'http://127.0.0.1:$dead_port'
tsnap.s3_connect_timeout = '10s'
});
$t0 = time();
($state, $out, $err) = psql_sqlstate($node_d, "SELECT tsnap_snapshot('t')");
$elapsed = time() - $t0;
is($state, '08006', 'refused connection: SQLSTATE 08006');
like($err, qr/127\.0\.0\.1|connect|refused/i, 'refused connection: says why');
cmp_ok($elapsed, '<', 10,
	sprintf('refused connection: fails within the connect timeout (%.1f s)', $elapsed));

my $log = slurp_file($node_d->logfile);
unlike($log, qr/\Q$secret\E/, 'the secret never reaches the server log');
$node_d->stop;
s3_delete_prefix("$node_d->{tsnap_prefix}/");

###########################################################################
# (f) a worker killed between its object appearing and being recorded
###########################################################################
# The PutObject reaches RGW, which stores the object, but its reply is held
# back, so the worker is still waiting for it when it is killed.
my $slow_put = start_faultproxy(methods => 'PUT', faults => 'slowreply',
	rate => 1, stall => 120);
my $node_f = tsnap_node('faults_f', endpoint => $slow_put->{endpoint},
	conf => "restart_after_crash = on\n");
my $prefix_f = "$node_f->{tsnap_prefix}/";
make_table($node_f, 'orphan', 10);
$caller = start_psql($node_f, "SELECT tsnap_snapshot('orphan')");
ok(poll_until(60, sub { scalar(s3_list($prefix_f)) == 1 && worker_pids($node_f) > 0 }),
	'orphan: the object exists while its worker waits for the reply');
my ($orphan) = s3_list($prefix_f);
is($node_f->safe_psql('postgres', 'SELECT key FROM tsnap.pending_deletes'), $orphan,
	'orphan: its key was queued before the object appeared');
($wpid) = worker_pids($node_f);
ok(kill('KILL', $wpid), "orphan: SIGKILL the worker ($wpid)");
($crc, $cout, $cerr) = finish_psql($caller);
isnt($crc, 0, 'orphan: the caller fails');
$node_f->poll_query_until('postgres', 'SELECT true')
  or die 'server did not come back after the crash';
is($node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '0',
	'orphan: nothing recorded');

# Straight to RGW now: the next worker builds the snapshot anew, then deletes
# the unrecorded object.
tsnap_reload($node_f, "tsnap.s3_endpoint = '$ENV{S3_ENDPOINT}'\n");
my $orphan_next = $node_f->safe_psql('postgres', "SELECT tsnap_snapshot('orphan')");
isnt($orphan_next, $orphan, 'orphan: the next snapshot has a key of its own');
ok( poll_until(60, sub {
		join(',', s3_list($prefix_f)) eq "$orphan_next,$orphan_next.manifest.json" }),
	'orphan: the unrecorded object was deleted; the recorded one remains, with its manifest');
is($node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.pending_deletes'), '0',
	'orphan: nothing left queued');

# The table dropped while its object is being completed.  A waiting caller
# holds a lock on the table, so cancel it first; the request goes on without
# it, and with the scan's lock gone, DROP TABLE does not wait.  The worker
# must record nothing, and the object must be deleted.
my $slow_put2 = start_faultproxy(methods => 'PUT', faults => 'slowreply',
	rate => 1, stall => 5);
tsnap_reload($node_f, "tsnap.s3_endpoint = '$slow_put2->{endpoint}'\n");
make_table($node_f, 'doomed', 10);
my $doomed = table_prefix($node_f, 'doomed');
$caller = start_psql($node_f, "SELECT tsnap_snapshot('doomed')");
ok(poll_until(60, sub { scalar(s3_list($doomed)) == 1 }),
	'dropped: the object exists while its worker waits for the reply');
$node_f->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT tsnap_snapshot%'");
my $dstate;
($crc, $cout, $cerr, $dstate) = finish_psql($caller);
is($dstate, '57014', 'dropped: the caller was cancelled');
$node_f->safe_psql('postgres', 'DROP TABLE doomed');
ok($node_f->wait_for_log(qr/table with OID \d+ was dropped while its snapshot was being built/),
	'dropped: the worker records nothing, and logs why');
ok(poll_until(60, sub { scalar(s3_list($doomed)) == 0 }),
	'dropped: the unrecorded object is deleted');
is($node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '1',
	'dropped: only the earlier table\'s snapshot is recorded');
$node_f->stop;
stop_faultproxy($slow_put);
stop_faultproxy($slow_put2);
s3_delete_prefix($prefix_f);

done_testing();
