# Copyright (c) tsnap authors

# A returned key stays readable:
#  (a) a superseded snapshot is deleted only once tsnap.keep_versions newer
#      ones exist and it was superseded at least tsnap.keep_for ago;
#  (b) a slow build of an older version, recorded after a newer one, is
#      not deleted by the transaction that records it (or soon after).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsnapTest;

tsnap_require_s3();

# A request in another table, so that a worker runs its housekeeping.
sub housekeeping_pass
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
		INSERT INTO other VALUES (1);
		SELECT tsnap_snapshot('other');
	});
	return;
}

###########################################################################
# (a) keep_for
###########################################################################
my $node = tsnap_node('keepfor', conf => "tsnap.keep_versions = 1\ntsnap.keep_for = '5s'\n");
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int); SELECT tsnap_track('t');
	CREATE TABLE other (id int); SELECT tsnap_track('other');
});
my $k1 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
$node->safe_psql('postgres', 'INSERT INTO t VALUES (1)');
my $k2 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
my $superseded = time();
housekeeping_pass($node);
ok(s3_exists($k1), 'keep_for: the superseded object is still there right after');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE key = '$k1'"), '1',
	'keep_for: and still recorded');
ok( poll_until(60, sub {
		housekeeping_pass($node);
		!s3_exists($k1);
	}),
	'keep_for: it is deleted once keep_for has passed');
cmp_ok(time() - $superseded, '>=', 5, 'keep_for: not before');
ok(s3_exists($k2), 'keep_for: the current object stays');

# A fingerprint that comes back (a column renamed and renamed back) does not
# make an old snapshot current again: it could be past keep_for already.
$node->safe_psql('postgres', 'CREATE TABLE r (a int); SELECT tsnap_track(\'r\')');
my $r1 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('r')");
$node->safe_psql('postgres', 'ALTER TABLE r RENAME a TO a2');
$node->safe_psql('postgres', "SELECT tsnap_snapshot('r')");
sleep 6;	# the first is now past keep_for, but no worker has run since
$node->safe_psql('postgres', 'ALTER TABLE r RENAME a2 TO a');
my $r3 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('r')");
isnt($r3, $r1, 'renamed back: not the old snapshot, which retention may delete');
housekeeping_pass($node);
ok(s3_exists($r3), 'renamed back: the key returned stays readable');

# untracking does not delete a key handed out a moment ago
$node->safe_psql('postgres', 'CREATE TABLE gone (id int); SELECT tsnap_track(\'gone\')');
my $g = $node->safe_psql('postgres', "SELECT tsnap_snapshot('gone')");
$node->safe_psql('postgres', "SELECT tsnap_untrack('gone'); SELECT tsnap_track('gone')");
housekeeping_pass($node);
ok(s3_exists($g), 'untrack: the object stays for keep_for');
ok(poll_until(60, sub { housekeeping_pass($node); !s3_exists($g) }),
	'untrack: and goes after');

# A prepared DROP TABLE holds its table's snapshot rows, some of them due
# for retention: retention skips them, and misses elsewhere are served.
$node->safe_psql('postgres', 'CREATE TABLE h (id int); SELECT tsnap_track(\'h\')');
for my $i (1 .. 3)
{
	$node->safe_psql('postgres', "INSERT INTO h VALUES ($i); SELECT tsnap_snapshot('h')");
}
sleep 6;	# the older ones are now due
$node->safe_psql('postgres', "BEGIN; DROP TABLE h; PREPARE TRANSACTION 'hostage_drop'");
for my $i (1 .. 3)
{
	my ($state, $out, $err) = psql_sqlstate($node, qq{
		SET statement_timeout = '20s';
		INSERT INTO other VALUES ($i);
		SELECT tsnap_snapshot('other');
	});
	is($state, '', "a prepared DROP TABLE: miss $i elsewhere is served") or diag($err);
}
$node->safe_psql('postgres', "ROLLBACK PREPARED 'hostage_drop'");
$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");

###########################################################################
# (b) a slow build recorded after a newer one
###########################################################################
# The first request through the proxy, the first PutObject, gets its reply
# 6 s late.
my $proxy = start_faultproxy(nth => 1, faults => 'slowreply', stall => 6);
my $slow = tsnap_node('keepfor_slow', endpoint => $proxy->{endpoint},
	conf => "tsnap.keep_versions = 1\n");
$slow->safe_psql('postgres', q{
	CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT tsnap_track('t');
	CREATE TABLE other (id int); SELECT tsnap_track('other');
});
my $caller = start_psql($slow, "SELECT tsnap_snapshot('t')");
ok(poll_until(30, sub { -e $proxy->{log} && slurp_file($proxy->{log}) =~ /^1 PUT slowreply/m }),
	'slow build: its PutObject is held');
$slow->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
my $newer = $slow->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
my ($rc, $older, $err) = finish_psql($caller);
chomp $older;
is($rc, 0, 'slow build: the slow caller gets its key') or diag($err);
isnt($older, $newer, 'slow build: an older version than the newer snapshot');
housekeeping_pass($slow);
ok(s3_exists($older), 'slow build: the key it returned can be read');
is($slow->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE key = '$older'"), '1',
	'slow build: and is still recorded');
$slow->stop;
stop_faultproxy($proxy);
s3_delete_prefix("$slow->{tsnap_prefix}/");
done_testing();
