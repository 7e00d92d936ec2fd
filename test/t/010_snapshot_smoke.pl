# Copyright (c) tsnap authors

# The whole path once: a tracked table is snapshotted by a worker, the object
# read back with awscli equals COPY's output, and a second call is a hit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('smoke');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
	SELECT tsnap_track('t');
});

my $key = $node->safe_psql('postgres', "SELECT tsnap_snapshot('t')");
like($key, qr{^\Q$node->{tsnap_prefix}\E/\d+/postgres/public/t/[0-9a-f-]{36}/v0-[0-9a-f]{16}-[0-9a-f]{16}\.csv$},
	'key follows the documented layout');
my $copy = $node->safe_psql('postgres',
	"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv, HEADER)") . "\n";
is(s3_get($key), $copy, 'object equals COPY output');
is($node->safe_psql('postgres', "SELECT key = '$key' AND hit FROM tsnap_snapshot_info('t')"),
	't', 'second call is a hit with the same key');

done_testing();
