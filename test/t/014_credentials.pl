# Copyright (c) tsnap authors

# Credentials, against the real S3 server (which checks every signature):
#  (a) tsnap.s3_credentials_file: the [default] profile of an AWS-style
#      credentials file signs the requests; it is read on every use, so a
#      rewritten file takes effect without a reload;
#  (b) a file others may read, a missing file, a file without the keys, and
#      a file set together with the tsnap.s3_* credentials each give a clear
#      error that names the file and never a value;
#  (c) a reload that changes tsnap.s3_secret_access_key is logged without
#      the new value (PostgreSQL itself would print it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $file = "$tmp/credentials";

sub write_credentials
{
	my ($text, $mode) = @_;
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh $text;
	close($fh);
	chmod($mode // 0600, $file) or die "could not chmod $file: $!";
	return;
}

my $good = <<"EOF";
# written by 014_credentials.pl
[other]
aws_access_key_id = NOT-THIS-ONE
aws_secret_access_key = NOT-THIS-ONE

[default]
aws_access_key_id = $ENV{S3_ACCESS}
aws_secret_access_key   =   $ENV{S3_SECRET}
region = ignored-here
EOF

write_credentials($good);
my $node = tsnap_node('credentials', conf => qq{
tsnap.s3_access_key_id = ''
tsnap.s3_secret_access_key = ''
tsnap.s3_credentials_file = '$file'
});
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a');
	SELECT tsnap_track('t');
});

###########################################################################
# (a) the file signs the requests
###########################################################################
my ($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '', 'credentials file: the snapshot succeeds') or diag($err);
ok(s3_exists($out), 'credentials file: the object exists');

my $wrong = 'WrongSecret-' . int(rand(1e9)) . '-FromTheFile';
write_credentials("[default]\naws_access_key_id = $ENV{S3_ACCESS}\naws_secret_access_key = $wrong\n");
$node->safe_psql('postgres', "INSERT INTO t VALUES (2, 'b')");
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '28000', 'rewritten file, no reload: its wrong secret is used at once (28000)');
unlike($err, qr/\Q$wrong\E/, 'rewritten file: the secret is not in the error');

write_credentials($good);
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '', 'file restored: the snapshot succeeds again') or diag($err);

###########################################################################
# (b) bad files
###########################################################################
$node->safe_psql('postgres', "INSERT INTO t VALUES (3, 'c')");
chmod(0644, $file);
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, 'F0000', 'a world-readable file: F0000');
like($err, qr/\Q$file\E" has group or world access/, 'a world-readable file: named, and why');
unlike($err, qr/\Q$ENV{S3_SECRET}\E/, 'a world-readable file: no secret in the error');
chmod(0600, $file);

write_credentials("[default]\naws_access_key_id = $ENV{S3_ACCESS}\n[other]\naws_secret_access_key = $ENV{S3_SECRET}\n");
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, 'F0000', 'no secret in the [default] profile: F0000');
like($err, qr/has no aws_access_key_id and aws_secret_access_key in its \[default\] profile/,
	'no secret in the [default] profile: says what is missing');
unlike($err, qr/\Q$ENV{S3_ACCESS}\E/, 'no secret in the profile: no key id in the error');
write_credentials($good);

tsnap_reload($node, "tsnap.s3_credentials_file = '$tmp/missing'\n");
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '58P01', 'a missing file: 58P01');
like($err, qr/could not open S3 credentials file "\Q$tmp\E\/missing"/, 'a missing file: named');

my $inline = 'InlineSecret-' . int(rand(1e9));
tsnap_reload($node, qq{
tsnap.s3_credentials_file = '$file'
tsnap.s3_access_key_id = '$ENV{S3_ACCESS}'
tsnap.s3_secret_access_key = '$inline'
});
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '55000', 'file and settings both set: 55000');
like($err, qr/tsnap.s3_credentials_file and the tsnap.s3_\* credential settings are both set/,
	'file and settings both set: says so');

###########################################################################
# (c) reloads do not log secrets
###########################################################################
tsnap_reload($node, qq{
tsnap.s3_credentials_file = ''
tsnap.s3_secret_access_key = '$ENV{S3_SECRET}'
});
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot('t')");
is($state, '', 'back to the settings: the snapshot succeeds') or diag($err);

my $log = slurp_file($node->logfile);
like($log, qr/parameter "tsnap.s3_secret_access_key" changed \(value not logged\)/,
	'a reload that changes the secret is logged, without the value');
like($log, qr/parameter "tsnap.s3_credentials_file" changed to/,
	'other settings are logged as PostgreSQL logs them');
unlike($log, qr/\Q$inline\E/, 'the reloaded inline secret is not in the server log');
unlike($log, qr/\Q$ENV{S3_SECRET}\E/, 'the real secret is not in the server log');
unlike($log, qr/\Q$wrong\E/, 'the file\'s secret is not in the server log');

$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");

done_testing();
