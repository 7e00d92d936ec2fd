# Copyright (c) tsnap authors

# TsnapTest: shared helpers for tsnap's TAP tests.
#
# tsnap_node() starts a PostgreSQL::Test::Cluster with tsnap preloaded and
# pointed at the S3 server that test/run-all.sh started (S3_* variables);
# each node writes below its own tsnap.key_prefix, so tests sharing the
# bucket never see each other's objects.  The s3_* functions read what tsnap
# wrote with Debian's awscli, an independent S3 client.
package TsnapTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Exporter 'import';

our @EXPORT = qw(tsnap_node s3_get s3_exists s3_open_uploads s3_list aws_s3api);

# tsnap_node(NAME, conf => EXTRA_CONF, endpoint => URL)
sub tsnap_node
{
	my ($name, %opts) = @_;

	plan skip_all => 'S3_ENDPOINT is not set; run through test/run-all.sh'
	  unless $ENV{S3_ENDPOINT};

	my $node = PostgreSQL::Test::Cluster->new($name);
	my $endpoint = $opts{endpoint} // $ENV{S3_ENDPOINT};
	my $prefix = "tap-$name-$$-" . int(rand(1_000_000));

	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'tsnap'
max_prepared_transactions = 10
tsnap.s3_endpoint = '$endpoint'
tsnap.s3_region = '$ENV{S3_REGION}'
tsnap.s3_bucket = '$ENV{S3_BUCKET}'
tsnap.s3_access_key_id = '$ENV{S3_ACCESS}'
tsnap.s3_secret_access_key = '$ENV{S3_SECRET}'
tsnap.s3_url_style = 'path'
tsnap.key_prefix = '$prefix'
} . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION tsnap');
	$node->{tsnap_prefix} = $prefix;
	return $node;
}

# Run "aws s3api ARGS..." against the test server; returns (exit code,
# stdout, stderr).
sub aws_s3api
{
	my @args = @_;
	my ($out, $err) = ('', '');
	local $ENV{AWS_ACCESS_KEY_ID} = $ENV{S3_ACCESS};
	local $ENV{AWS_SECRET_ACCESS_KEY} = $ENV{S3_SECRET};
	local $ENV{AWS_DEFAULT_REGION} = $ENV{S3_REGION};
	local $ENV{AWS_EC2_METADATA_DISABLED} = 'true';
	IPC::Run::run([ 'aws', '--endpoint-url', $ENV{S3_ENDPOINT}, 's3api', @args ],
		'>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# The bytes of the object at KEY (dies if it cannot be read).
sub s3_get
{
	my ($key) = @_;
	my $file = PostgreSQL::Test::Utils::tempdir() . '/object';
	my ($rc, $out, $err) = aws_s3api('get-object', '--bucket', $ENV{S3_BUCKET},
		'--key', $key, $file);
	die "get-object $key failed: $err" if $rc != 0;
	return PostgreSQL::Test::Utils::slurp_file($file);
}

# Does an object exist at KEY?
sub s3_exists
{
	my ($key) = @_;
	my ($rc, $out, $err) = aws_s3api('head-object', '--bucket', $ENV{S3_BUCKET},
		'--key', $key);
	return $rc == 0;
}

# Keys of the open multipart uploads below PREFIX.
sub s3_open_uploads
{
	my ($prefix) = @_;
	my ($rc, $out, $err) = aws_s3api('list-multipart-uploads', '--bucket',
		$ENV{S3_BUCKET}, '--prefix', $prefix, '--query', 'Uploads[].Key',
		'--output', 'text');
	die "list-multipart-uploads failed: $err" if $rc != 0;
	return grep { $_ ne '' && $_ ne 'None' } split /\s+/, $out;
}

# Keys of the objects below PREFIX.
sub s3_list
{
	my ($prefix) = @_;
	my ($rc, $out, $err) = aws_s3api('list-objects-v2', '--bucket',
		$ENV{S3_BUCKET}, '--prefix', $prefix, '--query', 'Contents[].Key',
		'--output', 'text');
	die "list-objects-v2 failed: $err" if $rc != 0;
	return grep { $_ ne '' && $_ ne 'None' } split /\t|\n/, $out;
}

1;
