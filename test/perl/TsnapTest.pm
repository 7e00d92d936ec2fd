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
use File::Basename qw(dirname);
use File::Spec;
use Time::HiRes qw(usleep);
use POSIX ();
use Exporter 'import';

our @EXPORT = qw(tsnap_require_s3 tsnap_node s3_get s3_exists s3_open_uploads s3_list aws_s3api
  psql_sqlstate poll_until tsnap_reload start_faultproxy stop_faultproxy
  tsnap_sysid s3_delete_prefix start_psql finish_psql psql_ends_within tsnap_standby
  table_gate release_table_gate);

# tsnap_require_s3(): skip the whole test file unless the S3_* variables
# name an S3 server (test/run-all.sh sets them).  A test that uses S3 calls
# it before its first test, so that "make installcheck" on a machine without
# S3 skips the file with a reason instead of failing in it.
sub tsnap_require_s3
{
	my @missing = grep { ($ENV{$_} // '') eq '' }
	  qw(S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS S3_SECRET);
	plan skip_all => "needs an S3 server; not set: @missing (test/run-all.sh sets them)"
	  if @missing;
	return;
}

# tsnap_node(NAME, conf => EXTRA_CONF, endpoint => URL, allows_streaming => 1)
sub tsnap_node
{
	my ($name, %opts) = @_;

	tsnap_require_s3();

	my $node = PostgreSQL::Test::Cluster->new($name);
	my $endpoint = $opts{endpoint} // $ENV{S3_ENDPOINT};
	my $prefix = "tap-$name-$$-" . int(rand(1_000_000));

	$node->init(allows_streaming => $opts{allows_streaming} // 0);
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

# tsnap_standby(PRIMARY, NAME): a streaming standby of PRIMARY (made with
# allows_streaming => 1), started and caught up; it inherits the primary's
# configuration, tsnap's included.
sub tsnap_standby
{
	my ($primary, $name) = @_;
	$primary->backup("${name}_backup");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "${name}_backup", has_streaming => 1);
	$standby->start;
	$primary->wait_for_catchup($standby);
	return $standby;
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

# Keys listed by "aws s3api OPERATION" below PREFIX; QUERY picks them out.
sub s3_keys
{
	my ($operation, $query, $prefix) = @_;
	my ($rc, $out, $err) = aws_s3api($operation, '--bucket', $ENV{S3_BUCKET},
		'--prefix', $prefix, '--query', $query, '--output', 'text');
	die "$operation failed: $err" if $rc != 0;
	return grep { $_ ne '' && $_ ne 'None' } split /\t|\n/, $out;
}

# Keys of the open multipart uploads below PREFIX.
sub s3_open_uploads
{
	return s3_keys('list-multipart-uploads', 'Uploads[].Key', $_[0]);
}

# Keys of the objects below PREFIX.
sub s3_list
{
	return s3_keys('list-objects-v2', 'Contents[].Key', $_[0]);
}

# Delete every object and abort every multipart upload below PREFIX, which
# must be a test's own (a node's tsnap_prefix): the test server keeps objects
# in a small memory store, so tests that write megabytes clean up at the end.
sub s3_delete_prefix
{
	my ($prefix) = @_;
	die "s3_delete_prefix: prefix must be a tap-* test prefix"
	  unless defined $prefix && $prefix =~ m{^tap-[^/]+/};
	my ($out, $err) = ('', '');
	local $ENV{AWS_ACCESS_KEY_ID} = $ENV{S3_ACCESS};
	local $ENV{AWS_SECRET_ACCESS_KEY} = $ENV{S3_SECRET};
	local $ENV{AWS_DEFAULT_REGION} = $ENV{S3_REGION};
	local $ENV{AWS_EC2_METADATA_DISABLED} = 'true';
	IPC::Run::run([ 'aws', '--endpoint-url', $ENV{S3_ENDPOINT}, 's3', 'rm',
			"s3://$ENV{S3_BUCKET}/$prefix", '--recursive' ],
		'>', \$out, '2>', \$err);
	my ($rc, $uploads) = aws_s3api('list-multipart-uploads', '--bucket',
		$ENV{S3_BUCKET}, '--prefix', $prefix, '--query',
		'Uploads[].[Key,UploadId]', '--output', 'text');
	for my $line (split /\n/, $uploads)
	{
		my ($key, $id) = split /\t/, $line;
		next unless defined $id && $key ne 'None';
		aws_s3api('abort-multipart-upload', '--bucket', $ENV{S3_BUCKET},
			'--key', $key, '--upload-id', $id);
	}
	return;
}

# psql_sqlstate(NODE, SQL, db => DB, user => ROLE, timeout => SECONDS)
#
# Run SQL in one psql session (ON_ERROR_STOP, VERBOSITY verbose) and return
# (SQLSTATE, stdout, stderr): the SQLSTATE of the first ERROR or FATAL, or ''
# if psql succeeded.  A psql that failed without printing an SQLSTATE (a lost
# connection) gives 'none'.
sub psql_sqlstate
{
	my ($node, $sql, %opts) = @_;
	my ($out, $err) = ('', '');
	my @extra = defined $opts{user} ? ('-U', $opts{user}) : ();
	my $rc = $node->psql(
		$opts{db} // 'postgres',
		"\\set VERBOSITY verbose\n$sql",
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => \@extra,
		defined $opts{timeout} ? (timeout => $opts{timeout}) : ());
	return ('', $out, $err) if $rc == 0;
	return ($1, $out, $err) if $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/;
	return ('none', $out, $err);
}

# poll_until(SECONDS, CODE): call CODE every 0.2 s until it returns true or
# SECONDS have passed; returns whether it became true.
sub poll_until
{
	my ($seconds, $code) = @_;
	my $deadline = time() + $seconds;
	while (1)
	{
		return 1 if $code->();
		return 0 if time() > $deadline;
		usleep(200_000);
	}
}

# tsnap_reload(NODE, CONF): append CONF to postgresql.conf, reload, and wait
# until new backends (and so new workers, which the postmaster forks) run
# with it.
sub tsnap_reload
{
	my ($node, $conf) = @_;
	my $before = $node->safe_psql('postgres', 'SELECT pg_conf_load_time()');
	$node->append_conf('postgresql.conf', $conf);
	$node->reload;
	poll_until(60,
		sub { $node->safe_psql('postgres', 'SELECT pg_conf_load_time()') ne $before })
	  or die "server did not reload its configuration";
	return;
}

# The cluster's system identifier, the key segment after the prefix.
sub tsnap_sysid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT system_identifier FROM pg_control_system()');
}

# start_psql(NODE, SQL...) or start_psql(NODE, {db => DB, user => ROLE}, SQL...)
#
# Start "psql -c SQL -c SQL..." in the background; returns the harness and
# refs to its output, for finish_psql.
sub start_psql
{
	my ($node, @sql) = @_;
	my $opts = ref $sql[0] eq 'HASH' ? shift @sql : {};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
		  '-d', $node->connstr($opts->{db} // 'postgres'),
		  (defined $opts->{user} ? ('-U', $opts->{user}) : ()),
		  map { ('-c', $_) } @sql ],
		'<', \undef, '>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err, started => Time::HiRes::time() };
}

# Wait up to SECONDS for a background psql to end; kills it and returns
# false if it did not.
sub psql_ends_within
{
	my ($bg, $seconds) = @_;
	my $ended = poll_until($seconds, sub { $bg->{h}->pump_nb; !$bg->{h}->pumpable });
	$bg->{h}->kill_kill unless $ended;
	return $ended;
}

# Wait for a background psql; returns (exit code, stdout, stderr, SQLSTATE).
sub finish_psql
{
	my ($bg) = @_;
	$bg->{h}->finish;
	my $rc = $? >> 8;
	my $err = ${ $bg->{err} };
	my $state = $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/ ? $1 : '';
	return ($rc, ${ $bg->{out} }, $err, $state);
}

# table_gate(NODE, TABLE, DB): a session that holds ACCESS EXCLUSIVE on
# TABLE's primary key index (REINDEX INDEX in an open transaction) until
# release_table_gate; returns once the lock is held.  A caller of
# tsnap_snapshot never opens the index, but a worker's planner does, so
# the gate holds a snapshot job in "running" without S3.
my $gates = 0;
sub table_gate
{
	my ($node, $name, $db) = @_;
	$db //= 'postgres';
	my $app = 'gate' . ++$gates;
	my $bg = start_psql($node, { db => $db }, "SET application_name = '$app'",
		"BEGIN; REINDEX INDEX ${name}_pkey; SELECT pg_sleep(3600); COMMIT;");
	poll_until(60, sub {
		$node->safe_psql($db, qq{
			SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = '$app' AND l.granted
			  AND l.mode = 'AccessExclusiveLock'
			  AND l.relation = '${name}_pkey'::regclass}) eq '1';
	}) or die "gate on $name did not take its lock";
	return { bg => $bg, app => $app, db => $db };
}

sub release_table_gate
{
	my ($node, $gate) = @_;
	$node->safe_psql($gate->{db},
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = '$gate->{app}'");
	finish_psql($gate->{bg});
	return;
}

my @faultproxies;

# start_faultproxy(faults => 'stall', methods => 'PUT', match => STR,
#                  rate => 1, nth => '1,2', stall => SECONDS,
#                  lifetime => SECONDS, fault_file => FILE)
#
# Start test/s3/faultproxy.pl in front of S3_ENDPOINT; returns a hash with
# port, pid (its process group), endpoint (URL) and log (its request log:
# "n method fault target" per request).  It is killed at exit.
sub start_faultproxy
{
	my (%opts) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $script = File::Spec->catfile(dirname(__FILE__), '..', 's3', 'faultproxy.pl');
	my ($upstream) = $ENV{S3_ENDPOINT} =~ m{^https?://([^/]+)}
	  or die "cannot parse S3_ENDPOINT";
	my @cmd = ('perl', $script, '--upstream', $upstream,
		'--port-file', "$dir/port", '--log', "$dir/log",
		'--lifetime', $opts{lifetime} // 600);
	for my $o (qw(faults methods match rate nth stall seed fault_file))
	{
		push @cmd, '--' . ($o =~ tr/_/-/r), $opts{$o} if defined $opts{$o};
	}
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		exec(@cmd) or POSIX::_exit(127);
	}
	push @faultproxies, $pid;
	poll_until(30, sub { -s "$dir/port" })
	  or die "faultproxy did not start: @cmd";
	my $port = PostgreSQL::Test::Utils::slurp_file("$dir/port");
	chomp $port;
	return {
		port => $port,
		pid => $pid,
		endpoint => "http://127.0.0.1:$port",
		log => "$dir/log"
	};
}

# Stop a proxy and its children (it leads its own process group).
sub stop_faultproxy
{
	my ($proxy) = @_;
	kill 'TERM', -$proxy->{pid};
	waitpid($proxy->{pid}, 0);
	@faultproxies = grep { $_ != $proxy->{pid} } @faultproxies;
	return;
}

END
{
	for my $pid (@faultproxies)
	{
		kill 'TERM', -$pid;
		waitpid($pid, 0);
	}
}

1;
