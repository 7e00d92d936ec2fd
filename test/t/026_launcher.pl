# Copyright (c) tsnap authors

# The housekeeping launcher (issue 13), with tsnap.housekeeping_interval at
# 1 s and no snapshot taken while it is expected to act:
#  (a) it runs, connected to no database, and DROP DATABASE of a database
#      with tsnap and snapshots succeeds while it runs;
#  (b) a queued delete that failed (S3 answering 500 to DELETE through a
#      fault proxy) is retried once S3 is well again;
#  (c) an abandoned multipart upload under the cluster's prefix is aborted;
#  (d) a database still on release 0.1.0 gets its queued deletes done, and
#      its housekeeping logs nothing;
#  (e) orphans: the objects of a dropped database and an object with an
#      unknown tracking id are deleted; a live snapshot of another database
#      and one of a renamed database stay, and so do an object with a
#      malformed key under the prefix and objects outside it; nothing is
#      swept while a database refuses connections (these need the orphan
#      sweep of ledger/orphans.c; the deletions fail on its stub);
#  (f) S3 down: an outage over several rounds is logged once, and its end
#      once;
#  (g) a launcher killed with pg_terminate_backend is restarted, and works.
#
# A housekeeper visiting a database holds a connection to it for a moment;
# DROP DATABASE and ALTER DATABASE ... RENAME wait 5 s for other sessions to
# leave and then fail (55006), so the test retries them a few times.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use TsnapTest;

tsnap_require_s3();

my $dir = PostgreSQL::Test::Utils::tempdir();
my $bucket = $ENV{S3_BUCKET};

# S3, with DELETEs answered 500 while $dir/fail exists
my $proxy = start_faultproxy(methods => 'DELETE', faults => '500', rate => 1,
	fault_file => "$dir/fail", lifetime => 1800);
my $node = tsnap_node('launcher', endpoint => $proxy->{endpoint}, conf => q{
tsnap.housekeeping_interval = '1s'
tsnap.keep_versions = 1
tsnap.keep_for = 0
tsnap.s3_max_attempts = 1
});
my $prefix = $node->{tsnap_prefix};
my $cluster = "$prefix/" . tsnap_sysid($node) . '/';

sub launcher_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsnap launcher'");
}

sub count_where
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SELECT count(*) FROM $sql");
}

# Run SQL (DDL on a whole database) until it does not fail for want of the
# database to itself, which a visiting housekeeper can cause for a moment.
sub retry_ddl
{
	my ($sql) = @_;
	my ($state, $out, $err);
	for my $try (1 .. 5)
	{
		($state, $out, $err) = psql_sqlstate($node, $sql);
		last if $state ne '55006';
		diag("retrying ($try): $sql");
	}
	return ($state, $err);
}

sub put_object
{
	my ($key) = @_;
	my $file = "$dir/body";
	open my $fh, '>', $file or die;
	print $fh "id\n1\n";
	close $fh;
	my ($rc, $out, $err) = aws_s3api('put-object', '--bucket', $bucket,
		'--key', $key, '--body', $file);
	die "put-object $key: $err" if $rc != 0;
	return;
}

sub track_and_snapshot
{
	my ($db, $table) = @_;
	$node->safe_psql($db, qq{
		CREATE TABLE $table (id int); INSERT INTO $table VALUES (1);
		SELECT tsnap_track('$table');
	});
	return $node->safe_psql($db, "SELECT tsnap_snapshot('$table')");
}

sub no_worker_left
{
	return poll_until(60, sub {
		count_where('postgres',
			"pg_stat_activity WHERE backend_type = 'tsnap worker'") eq '0'
	});
}

sub open_upload
{
	my ($key) = @_;
	my ($rc, $out, $err) = aws_s3api('create-multipart-upload', '--bucket',
		$bucket, '--key', $key);
	die "create-multipart-upload $key: $err" if $rc != 0;
	return;
}

sub upload_open
{
	my ($key) = @_;
	return scalar grep { $_ eq $key } s3_open_uploads($cluster);
}

###########################################################################
# (a) the launcher, and DROP DATABASE while it runs
###########################################################################
my $launcher = $node->safe_psql('postgres', q{
	SELECT pid || ' ' || coalesce(datid::text, 'none')
	FROM pg_stat_activity WHERE backend_type = 'tsnap launcher'});
like($launcher, qr/^\d+ none$/, 'one launcher runs, connected to no database');

$node->safe_psql('postgres', 'CREATE DATABASE dropme');
$node->safe_psql('dropme', 'CREATE EXTENSION tsnap');
my $dropme_key = track_and_snapshot('dropme', 'd');
ok(s3_exists($dropme_key), 'a snapshot of database dropme exists');
my ($state, $err) = retry_ddl('DROP DATABASE dropme');
is($state, '', 'DROP DATABASE of a database with tsnap and snapshots succeeds while the launcher runs')
  or diag($err);

###########################################################################
# (b) a failed delete is retried without another snapshot
###########################################################################
my $old = track_and_snapshot('postgres', 't1');
open my $fh, '>', "$dir/fail" or die; close $fh;
my $new = $node->safe_psql('postgres',
	"INSERT INTO t1 VALUES (2); SELECT tsnap_snapshot('t1')");
isnt($new, $old, 'a newer snapshot supersedes the first');
ok(poll_until(60, sub {
	$node->safe_psql('postgres', qq{
		SELECT attempts > 0 AND last_error IS NOT NULL
		FROM tsnap.pending_deletes WHERE key = '$old'}) eq 't'
}), 'the delete of the superseded snapshot failed, and it stays queued');
ok(no_worker_left(), 'no snapshot worker is left to retry it');
ok(s3_exists($old), 'its object is still there');
my $recorded = count_where('postgres', 'tsnap.snapshots');
unlink "$dir/fail";
ok(poll_until(60, sub {
	count_where('postgres', "tsnap.pending_deletes WHERE key = '$old'") eq '0'
}), 'once S3 deletes again, the launcher retries the delete');
ok(!s3_exists($old) && !s3_exists("$old.manifest.json"),
	'the object and its manifest are gone');
ok(s3_exists($new), 'the current snapshot stays');
is(count_where('postgres', 'tsnap.snapshots'), $recorded,
	'no snapshot was taken meanwhile');

###########################################################################
# (c) an abandoned upload is aborted without a snapshot
###########################################################################
my $abandoned = "${cluster}postgres/public/gone/"
  . "00000000-0000-4000-8000-000000000000/v1-0123456789abcdef-0123456789abcdef.csv";
# (the launcher may abort it before the test could list it: the log says
# it did)
open_upload($abandoned);
ok(poll_until(60, sub {
	slurp_file($node->logfile) =~ /aborted abandoned upload of "\Q$abandoned\E"/
}), 'the launcher aborts an upload left open under the cluster prefix');
ok(!upload_open($abandoned), 'it is no longer open');

###########################################################################
# (d) a database on release 0.1.0
###########################################################################
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION tsnap VERSION '0.1.0'");
my $old_release_key = "${cluster}old/public/x/"
  . "00000000-0000-4000-8000-000000000001/v1-0123456789abcdef-0123456789abcdef.csv";
put_object($old_release_key);
$node->safe_psql('old', qq{
	INSERT INTO tsnap.pending_deletes (key, endpoint, bucket)
	VALUES ('$old_release_key', '$proxy->{endpoint}', '$bucket')});
ok(poll_until(60, sub {
	count_where('old', 'tsnap.pending_deletes') eq '0'
}), 'a queued delete of a database on 0.1.0 is done');
ok(!s3_exists($old_release_key), 'and its object is gone');
unlike(slurp_file($node->logfile, $log_offset),
	qr/housekeeping of database "old"/,
	'its housekeeping logged no warning or error');

###########################################################################
# (e) orphans (these need the orphans branch; they fail on its stub)
###########################################################################
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('db2', 'CREATE EXTENSION tsnap');
my $db2_key = track_and_snapshot('db2', 't2');
$node->safe_psql('postgres', 'CREATE DATABASE renameme');
$node->safe_psql('renameme', 'CREATE EXTENSION tsnap');
my $renamed_key = track_and_snapshot('renameme', 't3');
($state, $err) = retry_ddl('ALTER DATABASE renameme RENAME TO renamed');
is($state, '', 'a database with snapshots is renamed') or diag($err);

(my $unknown = $new) =~
  s{/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/}
   {/00000000-0000-4000-8000-00000000abcd/}
  or die "no tracking id in $new";
put_object($unknown);
my $malformed = "${cluster}not-a-snapshot.txt";
put_object($malformed);
my $outside_cluster = "$prefix/1/postgres/public/t1/"
  . "00000000-0000-4000-8000-00000000abcd/v1-0123456789abcdef-0123456789abcdef.csv";
put_object($outside_cluster);
my $outside_prefix = "$prefix-other/" . tsnap_sysid($node) . "/postgres/public/t1/"
  . "00000000-0000-4000-8000-00000000abcd/v1-0123456789abcdef-0123456789abcdef.csv";
put_object($outside_prefix);

($state, $err) = retry_ddl('DROP DATABASE db2');
is($state, '', 'database db2 is dropped') or diag($err);
ok(poll_until(60, sub { !s3_exists($db2_key) && !s3_exists("$db2_key.manifest.json") }),
	'the objects of the dropped database are deleted');
ok(poll_until(60, sub { !s3_exists($unknown) }),
	'an object whose tracking id no database knows is deleted');
ok(s3_exists($new) && s3_exists("$new.manifest.json"),
	'the live snapshot of another database stays');
ok(s3_exists($renamed_key), 'the snapshot of the renamed database stays');
ok(s3_exists($malformed), 'an object with a malformed key under the prefix stays');
ok(s3_exists($outside_cluster), 'an object of another system identifier stays');
ok(s3_exists($outside_prefix), 'an object under another key prefix stays');
aws_s3api('delete-object', '--bucket', $bucket, '--key', $_)
  for ($outside_cluster, $outside_prefix);

# A database that refuses connections cannot be marked, so while it exists
# nothing is swept (its objects would look orphaned); an abandoned upload
# aborted later shows that rounds went on meanwhile.
$node->safe_psql('postgres',
	'CREATE DATABASE closed; ALTER DATABASE closed ALLOW_CONNECTIONS false');
(my $unknown2 = $unknown) =~ s/abcd/abce/;
put_object($unknown2);
ok($node->wait_for_log(
	qr/tsnap does not sweep orphaned objects while database "closed" refuses connections/),
	'the launcher says that it does not sweep while a database refuses connections');
my $abandoned3 = "${cluster}postgres/public/gone/"
  . "00000000-0000-4000-8000-000000000003/v1-0123456789abcdef-0123456789abcdef.csv";
open_upload($abandoned3);
ok(poll_until(60, sub {
	slurp_file($node->logfile) =~ /aborted abandoned upload of "\Q$abandoned3\E"/
}), 'rounds go on meanwhile');
ok(s3_exists($unknown2), 'and the unknown object is not swept');
$node->safe_psql('postgres',
	'ALTER DATABASE closed ALLOW_CONNECTIONS true; DROP DATABASE closed');
ok(poll_until(60, sub { !s3_exists($unknown2) }),
	'once that database is dropped, the sweep goes on');

###########################################################################
# (f) S3 down: logged once per outage
###########################################################################
my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 1) or die "socket: $!";
my $dead_port = $sock->sockport;
close $sock;
$log_offset = -s $node->logfile;
tsnap_reload($node,
	"tsnap.s3_endpoint = 'http://127.0.0.1:$dead_port'\nlog_min_messages = debug1\n");
sub log_count
{
	my ($re) = @_;
	my $log = slurp_file($node->logfile, $log_offset);
	my @hits = $log =~ /$re/g;
	return scalar @hits;
}
ok(poll_until(120, sub { log_count(qr/still cannot reach the object store/) >= 3 }),
	'housekeeping fails in several rounds while S3 is down');
is(log_count(qr/WARNING:  tsnap housekeeping cannot reach the object store: /), 1,
	'the outage is logged once as a warning');
like(slurp_file($node->logfile, $log_offset),
	qr/cannot reach the object store: could not list uploads under prefix "\Q$cluster\E" in bucket "\Q$bucket\E"\n.*DETAIL:  .*127\.0\.0\.1 port $dead_port/,
	'with the store\'s message and detail');
is(log_count(qr/WARNING:  could not/), 0, 'and no other warning of the store\'s');
tsnap_reload($node, "tsnap.s3_endpoint = '$proxy->{endpoint}'\n");
ok(poll_until(60, sub { log_count(qr/reaches the object store again/) == 1 }),
	'its end is logged');
my $rounds = log_count(qr/tsnap launcher: round of/);
ok(poll_until(60, sub { log_count(qr/tsnap launcher: round of/) >= $rounds + 3 }),
	'more rounds pass');
is(log_count(qr/reaches the object store again/), 1, 'its end is logged once');
is(log_count(qr/WARNING:  tsnap housekeeping cannot reach/), 1,
	'and the outage is not logged again');
tsnap_reload($node, "log_min_messages = warning\n");

###########################################################################
# (g) a killed launcher is restarted
###########################################################################
my $pid = launcher_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(poll_until(60, sub { my $p = launcher_pid(); $p ne '' && $p ne $pid }),
	'the launcher is restarted after pg_terminate_backend');
my $abandoned2 = "${cluster}postgres/public/gone/"
  . "00000000-0000-4000-8000-000000000002/v1-0123456789abcdef-0123456789abcdef.csv";
open_upload($abandoned2);
ok(poll_until(60, sub {
	slurp_file($node->logfile) =~ /aborted abandoned upload of "\Q$abandoned2\E"/
}), 'and it keeps working: an abandoned upload is aborted');
ok(!upload_open($abandoned2), 'it is no longer open');

$node->stop;
s3_delete_prefix("$prefix/");
stop_faultproxy($proxy);
done_testing();
