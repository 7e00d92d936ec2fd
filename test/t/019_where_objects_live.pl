# Copyright (c) tsnap authors

# A key is only as good as the bucket it names, and the catalog that says
# so:
#  (a) after tsnap.s3_bucket changes, a hit returns only snapshots stored in
#      the configured bucket; changing back finds the old ones again, and
#      retention deletes each object in the bucket it was written to;
#  (b) a standby whose replay is paused behind its primary checks a hit
#      with a HEAD, and does not return a key whose object the primary's
#      retention deleted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

sub exists_in
{
	my ($bucket, $key) = @_;
	my ($rc) = aws_s3api('head-object', '--bucket', $bucket, '--key', $key);
	return $rc == 0;
}

###########################################################################
# (a) changing the bucket
###########################################################################
my $other = 'tsnap-other-' . int(rand(1_000_000));
my ($rc, $out, $err) = aws_s3api('create-bucket', '--bucket', $other);
is($rc, 0, "a second bucket, $other") or diag($err);

my $node = tsnap_node('buckets');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT tsnap_track('t');
});
my $k1 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
ok(exists_in($ENV{S3_BUCKET}, $k1), 'the first snapshot is in the first bucket');

tsnap_reload($node, "tsnap.s3_bucket = '$other'\n");
my ($k2, $hit) = split /\|/, $node->safe_psql('postgres', "SELECT key, hit FROM tsnap_snapshot_info('t')");
is($hit, 'f', 'another bucket: the same version is a miss there');
isnt($k2, $k1, 'another bucket: with a key of its own');
ok(exists_in($other, $k2), 'another bucket: its object is in that bucket');

tsnap_reload($node, "tsnap.s3_bucket = '$ENV{S3_BUCKET}'\n");
is($node->safe_psql('postgres', "SELECT key, hit FROM tsnap_snapshot_info('t')"),
	"$k1|t", 'back to the first bucket: its snapshot is a hit again');

tsnap_reload($node, "tsnap.keep_versions = 1\ntsnap.keep_for = 0\n");
$node->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
my $k3 = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
ok(poll_until(60, sub { !exists_in($ENV{S3_BUCKET}, $k1) && !exists_in($other, $k2) }),
	'retention deletes each old object in the bucket it was written to');
ok(exists_in($ENV{S3_BUCKET}, $k3), 'the newest object stays');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tsnap.pending_deletes'), '0',
	'nothing left pending');
$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");
aws_s3api('delete-bucket', '--bucket', $other);

###########################################################################
# (b) a standby behind its primary
###########################################################################
my $primary = tsnap_node('lagging', allows_streaming => 1,
	conf => "tsnap.keep_versions = 1\ntsnap.keep_for = 0\n");
$primary->safe_psql('postgres', q{
	CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT tsnap_track('t');
	CREATE TABLE other (id int); SELECT tsnap_track('other');
});
my $old = $primary->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
my $standby = tsnap_standby($primary, 'lagging_standby');
is($standby->safe_psql('postgres', "SELECT tsnap_snapshot('t')"), $old,
	'standby: a hit whose object exists');

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
$primary->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
ok(poll_until(60, sub { !s3_exists($old) }),
	'primary: retention deleted the object the paused standby still records');
my ($state, $sout, $serr) = psql_sqlstate($standby, "SELECT tsnap_snapshot('t')");
isnt($sout, $old, 'standby: the deleted key is not returned');
is($state, '25006', 'standby: it cannot build, so 25006');
like($serr, qr/no longer in the bucket/, 'standby: says why');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$standby->stop;
$primary->stop;
s3_delete_prefix("$primary->{tsnap_prefix}/");
done_testing();
