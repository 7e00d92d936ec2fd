# Copyright (c) tsnap authors

# Compression and presigned URLs:
#  (a) each compression round-trips: gunzip / zstd -d (the real tools) of
#      the object give exactly COPY's bytes, also through a multipart
#      upload; the key's suffix names the compression, the fingerprint
#      covers it, and each is a hit on its second call, interleaved;
#      tsnap.compression is the default; unknown compressions are 22023;
#  (b) tsnap_snapshot_info's bucket, uri and compression columns, and the
#      objects' Content-Type (no Content-Encoding);
#  (c) presigned URLs: curl without credentials downloads exactly the
#      object; the URL names the key (or the manifest beside it) and is
#      signed; it stops working once expired (403); the limits on
#      expires_in (positive, 7 days, tsnap.keep_for) are 22023 with a hint;
#      a role without SELECT gets no URL (42501);
#  (d) no URL ever reaches the server log, whatever the call did;
#  (e) single flight per compression: concurrent callers of each
#      compression share one upload (counted at a proxy);
#  (f) retention: the compressions of one version are beside each other,
#      and all of them go once the table has moved on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use TsnapTest;

tsnap_require_s3();

my %suffix = (none => '.csv', gzip => '.csv.gz', zstd => '.csv.zst');
my %content_type = (
	none => 'text/csv',
	gzip => 'application/gzip',
	zstd => 'application/zstd');
my @codecs = qw(none gzip zstd);

# Every statement is logged, with errors, their statements and DEBUG1
# messages, so that (d) would see a URL that any of them carried.
my $node = tsnap_node('compurl', conf => qq{
tsnap.keep_for = '1h'
tsnap.keep_versions = 100
tsnap.part_size = '5MB'
log_statement = 'all'
log_min_messages = debug1
log_min_error_statement = error
log_error_verbosity = verbose
});

my $workdir = PostgreSQL::Test::Utils::tempdir();

sub write_file
{
	my ($file, $bytes) = @_;
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $bytes;
	close $fh;
	return;
}

# The bytes the object decompresses to, with the real tools.
sub decompress
{
	my ($codec, $bytes) = @_;
	return $bytes if $codec eq 'none';
	my $file = "$workdir/object$suffix{$codec}";
	write_file($file, $bytes);
	my @cmd = $codec eq 'gzip' ? ('gunzip', '-c', $file) : ('zstd', '-d', '-c', '-q', $file);
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err)
	  or die "@cmd failed: $err";
	return $out;
}

# GET url with curl and nothing else: no credentials, no decoding.
# Returns (HTTP status, body, response headers).
sub curl_get
{
	my ($url) = @_;
	my ($code, $err) = ('', '');
	unlink "$workdir/body", "$workdir/headers";
	IPC::Run::run([ 'curl', '-s', '-S', '-o', "$workdir/body", '-D', "$workdir/headers",
			'-w', '%{http_code}', $url ], '>', \$code, '2>', \$err);
	my $body = -e "$workdir/body" ? slurp_file("$workdir/body") : '';
	my $headers = -e "$workdir/headers" ? slurp_file("$workdir/headers") : '';
	return ($code, $body, $headers);
}

sub copy_of
{
	my ($tbl) = @_;
	return $node->safe_psql('postgres',
		"COPY (SELECT * FROM $tbl) TO STDOUT WITH (FORMAT csv, HEADER)") . "\n";
}

# type output here depends on no setting: int, text, numeric
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, v text, n numeric);
	INSERT INTO t SELECT g,
		CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a,b "q"' || chr(10) || 'line'
			WHEN 3 THEN 'tåble ünïcode' ELSE repeat('x', g % 50) END,
		g / 7.0
	FROM generate_series(1, 5000) g;
	SELECT tsnap_track('t');
	-- incompressible enough that every compression needs several 5MB parts
	CREATE TABLE big (id int, a text, b text, c text);
	INSERT INTO big SELECT g, md5('a' || g), md5('b' || g), md5('c' || g)
	FROM generate_series(1, 200000) g;
	SELECT tsnap_track('big');
	CREATE ROLE nosel LOGIN;
	CREATE ROLE sel LOGIN;
	GRANT SELECT ON t TO sel;
});

###########################################################################
# (a) round trips, keys, hits
###########################################################################
my $copy = copy_of('t');
my (%key, %fp);
for my $c (@codecs)
{
	$key{$c} = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t', '$c')");
	like($key{$c}, qr{/postgres/public/t/[0-9a-f-]{36}/v0-[0-9a-f]{16}-[0-9a-f]{16}\Q$suffix{$c}\E$},
		"$c: the key ends $suffix{$c}");
	($fp{$c}) = $key{$c} =~ /-([0-9a-f]{16})-[0-9a-f]{16}\./;
	my $plain = decompress($c, s3_get($key{$c}));
	ok($plain eq $copy, "$c: the object decompresses to exactly COPY's output")
	  or diag(sprintf('%d bytes, COPY %d', length($plain), length($copy)));
}
isnt($fp{gzip}, $fp{none}, 'gzip has a fingerprint of its own');
isnt($fp{zstd}, $fp{none}, 'zstd has a fingerprint of its own');
isnt($fp{zstd}, $fp{gzip}, 'gzip and zstd fingerprints differ');

# interleaved: the other compressions of the version never stop a hit
for my $c (@codecs)
{
	is($node->safe_psql('postgres',
		"SELECT key = '$key{$c}' AND hit FROM tsnap_snapshot_info('t', '$c')"),
		't', "$c: the second call is a hit with the same key");
}
is($node->safe_psql('postgres', "SELECT tsnap_snapshot('t')"), $key{none},
	'tsnap_snapshot(tbl): uncompressed by default');
is($node->safe_psql('postgres', "SELECT tsnap_snapshot('t', NULL)"), $key{none},
	'a NULL compression is tsnap.compression');
is($node->safe_psql('postgres', q{
	SET tsnap.compression = zstd;
	SELECT key || ' ' || compression || ' ' || hit FROM tsnap_snapshot_info('t')}),
	"$key{zstd} zstd true", 'tsnap.compression = zstd: the zstd snapshot');
is($node->safe_psql('postgres', "SELECT tsnap_snapshot(NULL, 'gzip') IS NULL"), 't',
	'NULL table in, NULL out');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE tbl = 't'::regclass"),
	'3', 'one snapshot per compression recorded');

for my $call ("tsnap_snapshot('t', 'lz4')", "tsnap_snapshot_info('t', 'GZIP2')",
	"tsnap_snapshot_url('t', '10 minutes', 'brotli')")
{
	my ($state, $out, $err) = psql_sqlstate($node, "SELECT $call");
	is($state, '22023', "$call: 22023");
	like($err, qr/HINT:  Valid compressions are none, gzip, zstd/, "$call: the hint lists them");
}
my ($state, $out, $err) = psql_sqlstate($node, "SET tsnap.compression = 'lz4'");
is($state, '22023', 'SET tsnap.compression to an unknown one: 22023');
like($err, qr/Available values: none, gzip, zstd/, 'and the valid ones are listed');

# multipart: the compressor feeds the uploader, which cuts its parts as before
my $big_copy = copy_of('big');
for my $c (@codecs)
{
	my $k = $node->safe_psql('postgres', "SELECT tsnap_snapshot('big', '$c')");
	my ($parts, $bytes) = split /\|/, $node->safe_psql('postgres',
		"SELECT parts, bytes FROM tsnap.snapshots WHERE key = '$k'");
	cmp_ok($parts, '>=', 2, "$c: a multipart upload of $bytes bytes in $parts parts");
	my $obj = s3_get($k);
	is(length($obj), $bytes, "$c: the recorded size is the object's");
	ok(decompress($c, $obj) eq $big_copy, "$c: multipart object decompresses to exactly COPY's output");
}

###########################################################################
# (b) info columns, content types
###########################################################################
for my $c (@codecs)
{
	my ($bucket, $uri, $compression, $bytes) = split /\|/, $node->safe_psql('postgres',
		"SELECT bucket, uri, compression, bytes FROM tsnap_snapshot_info('t', '$c')");
	is($bucket, $ENV{S3_BUCKET}, "$c: info names the bucket");
	is($uri, "s3://$ENV{S3_BUCKET}/$key{$c}", "$c: info's uri is s3://bucket/key");
	is($compression, $c, "$c: info names the compression");
	my ($rc, $head) = aws_s3api('head-object', '--bucket', $ENV{S3_BUCKET}, '--key', $key{$c});
	like($head, qr/"ContentType": "\Q$content_type{$c}\E"/, "$c: Content-Type $content_type{$c}");
	unlike($head, qr/ContentEncoding/, "$c: no Content-Encoding");
	like($head, qr/"ContentLength": $bytes\b/, "$c: info's bytes are the object's");
}

###########################################################################
# (c) presigned URLs
###########################################################################
my @urls;
for my $c (@codecs)
{
	my $url = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t', '10 minutes', '$c')");
	push @urls, $url;
	like($url, qr{^\Q$ENV{S3_ENDPOINT}/$ENV{S3_BUCKET}/$key{$c}\E\?},
		"$c: the URL names the snapshot's key");
	like($url, qr{X-Amz-Algorithm=AWS4-HMAC-SHA256&.*X-Amz-Expires=600&.*X-Amz-Signature=[0-9a-f]{64}$},
		"$c: signed with SigV4 query authentication, for 600 s");
	my ($code, $body, $headers) = curl_get($url);
	is($code, '200', "$c: curl without credentials gets it");
	ok($body eq s3_get($key{$c}), "$c: exactly the object");
	like($headers, qr{^Content-Type: \Q$content_type{$c}\E\r?$}mi, "$c: served as $content_type{$c}");
	unlike($headers, qr{^Content-Encoding:}mi, "$c: without Content-Encoding");
	ok(decompress($c, $body) eq $copy, "$c: the download decompresses to COPY's output");
}

my $default_url = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t')");
push @urls, $default_url;
like($default_url, qr{/\Q$key{none}\E\?.*X-Amz-Expires=900&}, 'defaults: the uncompressed key, 15 minutes');

my $manifest_url = $node->safe_psql('postgres',
	"SELECT tsnap_snapshot_url('t', compression => 'gzip', manifest => true)");
push @urls, $manifest_url;
like($manifest_url,
	qr{^\Q$ENV{S3_ENDPOINT}/$ENV{S3_BUCKET}/$key{gzip}\E\.manifest\.json\?X-Amz-Algorithm=AWS4-HMAC-SHA256&.*X-Amz-Signature=[0-9a-f]{64}$},
	'manifest => true: a signed URL of <key>.manifest.json');

# expiry: S3 refuses the URL once expires_in has passed
my $short = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t', '1 second', 'zstd')");
push @urls, $short;
like($short, qr{X-Amz-Expires=1&}, 'a URL for 1 second');
my $last_code = '';
ok(poll_until(60, sub { ($last_code) = curl_get($short); $last_code eq '403' }),
	"once expired, S3 refuses it (HTTP $last_code)");
my $fresh = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t', '1 minute', 'zstd')");
push @urls, $fresh;
is((curl_get($fresh))[0], '200', 'while the object itself is still there');

# the limits on expires_in
for my $case (
	[ "'0'", qr/expires_in must be positive/, qr/HINT:  Pass an interval such as '15 minutes'/ ],
	[ "'-1 minute'", qr/expires_in must be positive/, qr/HINT:  Pass an interval such as/ ],
	[ "'8 days'", qr/expires_in must be at most 7 days/, qr/HINT:  .*at most 7 days \(604800 seconds\)/ ],
	[ "'1 mon'", qr/expires_in must be at most 7 days/, qr/HINT:  .*at most 7 days/ ],
	[ "'2 hours'", qr/expires_in must be at most tsnap\.keep_for \(1h\)/,
		qr/HINT:  Pass an interval of at most 1h, or raise tsnap\.keep_for/ ],
	[ "'1 hour 1 second'", qr/at most tsnap\.keep_for/, qr/HINT:  Pass an interval of at most 1h/ ])
{
	my ($interval, $msg, $hint) = @$case;
	my ($st, $o, $e) = psql_sqlstate($node, "SELECT tsnap_snapshot_url('t', $interval)");
	is($st, '22023', "expires_in $interval: 22023");
	like($e, $msg, "expires_in $interval: the message says which limit");
	like($e, $hint, "expires_in $interval: the hint names it");
	unlike($o, qr/X-Amz/, "expires_in $interval: no URL");
}
my $hour = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t', '1 hour')");
push @urls, $hour;
like($hour, qr/X-Amz-Expires=3600&/, 'expires_in equal to tsnap.keep_for is allowed');

# privileges: exactly those of tsnap_snapshot
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_snapshot_url('t', '10 minutes')",
	user => 'nosel');
is($state, '42501', 'a role without SELECT gets no URL: 42501');
unlike($out, qr/X-Amz/, 'and nothing URL-like');
my $sel_url = $node->safe_psql('postgres', "SELECT tsnap_snapshot_url('t', '10 minutes')",
	extra_params => [ '-U', 'sel' ]);
push @urls, $sel_url;
like($sel_url, qr{/\Q$key{none}\E\?}, 'a role with SELECT gets one');

# a call that fails in the worker: the size cap
$node->safe_psql('postgres', q{
	CREATE TABLE capped AS SELECT g, repeat('y', 100) AS pad FROM generate_series(1, 1000) g;
	SELECT tsnap_track('capped');
});
($state) = psql_sqlstate($node,
	"SET tsnap.max_snapshot_size = '1kB'; SELECT tsnap_snapshot_url('capped', '10 minutes', 'gzip')");
is($state, '54000', 'a failing miss gives no URL either (54000)');

###########################################################################
# (d) no URL in the server log
###########################################################################
my $log = slurp_file($node->logfile);
like($log, qr/statement: SELECT tsnap_snapshot_url\('t', '10 minutes', 'gzip'\)/,
	'the log has every statement (so the test can see what they logged)');
like($log, qr/ERROR:  22023: expires_in must be at most tsnap\.keep_for/,
	'and the failed calls');
unlike($log, qr/X-Amz-Signature|X-Amz-Credential/, 'no presigned URL in the server log');
my $leaks = grep { my ($sig) = /X-Amz-Signature=([0-9a-f]{64})/; index($log, $sig) >= 0 } @urls;
is($leaks, 0, 'none of the ' . scalar(@urls) . ' signatures handed out is in the log');

###########################################################################
# (e) single flight per compression
###########################################################################
my $proxy = start_faultproxy(rate => 0);
my $sf = tsnap_node('comp_flight', endpoint => $proxy->{endpoint},
	conf => "max_connections = 60\ntsnap.keep_versions = 100\ntsnap.max_workers = 4\n");
$sf->safe_psql('postgres', q{
	CREATE TABLE hot (id int, v text);
	INSERT INTO hot SELECT g, 'v' || g FROM generate_series(1, 2000) g;
	SELECT tsnap_track('hot');
});
my @scripts;
for my $c (@codecs)
{
	my $script = "$workdir/$c.sql";
	PostgreSQL::Test::Utils::append_to_file($script, "SELECT tsnap_snapshot('hot', '$c');\n");
	push @scripts, '-f', $script;
}
my $rounds = 5;
for my $r (1 .. $rounds)
{
	$sf->safe_psql('postgres', "INSERT INTO hot VALUES (100000 + $r, 'r')");
	my ($pout, $perr) = ('', '');
	# 30 clients, 2 calls each, every call one of the three at random
	IPC::Run::run([ 'pgbench', '-n', '-c', '30', '-j', '3', '-t', '2', @scripts,
			'-d', $sf->connstr('postgres') ], '>', \$pout, '2>', \$perr)
	  or diag("pgbench: $perr");
}
my $proxy_log = slurp_file($proxy->{log});
for my $c (@codecs)
{
	my $puts = () = $proxy_log =~ m{^\d+ PUT \S+ \S*/hot/\S*\Q$suffix{$c}\E$}mg;
	is($puts, $rounds, "$c: single flight: $rounds rounds of concurrent callers, one upload each");
	is($sf->safe_psql('postgres',
		"SELECT count(DISTINCT rows_version) || ' ' || count(*) FROM tsnap.snapshots "
		  . "WHERE tbl = 'hot'::regclass AND compression = '$c' AND rows_version > 0"),
		"$rounds $rounds", "$c: one snapshot recorded per version");
}

###########################################################################
# (f) retention across compressions
###########################################################################
tsnap_reload($sf, "tsnap.keep_versions = 1\ntsnap.keep_for = 0\n");
my %hot;
$hot{$_} = $sf->safe_psql('postgres', "SELECT tsnap_snapshot('hot', '$_')") for @codecs;
is($sf->safe_psql('postgres',
	"SELECT count(*) FROM tsnap.snapshots WHERE key IN ('$hot{none}', '$hot{gzip}', '$hot{zstd}')"),
	'3', 'the compressions of one version do not supersede each other');
$sf->safe_psql('postgres', "INSERT INTO hot VALUES (0, 'moved on')");
my $newer = $sf->safe_psql('postgres', "SELECT tsnap_snapshot('hot', 'gzip')");
is($sf->safe_psql('postgres',
	"SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'hot'::regclass AND key <> '$newer'"),
	'0', 'a newer version in one compression supersedes every compression of the older');
ok(poll_until(60, sub { !grep { s3_exists($hot{$_}) } @codecs }),
	'and their objects are deleted from the bucket');

$sf->stop;
stop_faultproxy($proxy);
s3_delete_prefix("$sf->{tsnap_prefix}/");
$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");

done_testing();
