# Copyright (c) tsnap authors

# Progress of a snapshot being built: the worker shows in
# pg_stat_progress_copy as a COPY TO of the table, with tuples and bytes
# that grow while it streams, and a caller that waits gets a NOTICE every
# tsnap.progress_notice_interval (none when it is 0).  Every part upload is
# held back 2 s by a proxy so that the build lasts long enough to watch.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use TsnapTest;

tsnap_require_s3();

my $slow_parts = start_faultproxy(methods => 'PUT', match => 'uploadId',
	faults => 'slowreply', rate => 1, stall => 2, lifetime => 300);
my $node = tsnap_node('progress', endpoint => $slow_parts->{endpoint},
	conf => "tsnap.part_size = 5\ntsnap.max_parts_in_flight = 1\n");
$node->safe_psql('postgres', q{
	CREATE TABLE big (id int, pad text);
	INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 200000) g;
	SELECT tsnap_track('big');
});

my $caller = start_psql($node,
	"SET tsnap.progress_notice_interval = '1s'",
	"SELECT tsnap_snapshot('big')");
my @samples;
ok( poll_until(120, sub {
		my $row = $node->safe_psql('postgres', q{
			SELECT command || '|' || type || '|' || tuples_processed || '|' || bytes_processed
			FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid)
			WHERE p.relid = 'big'::regclass AND a.backend_type = 'tsnap worker'});
		push @samples, $row if $row ne '';
		return 1 if @samples >= 3 && (split /\|/, $samples[-1])[2] > (split /\|/, $samples[0])[2];
		usleep(300_000);
		return 0;
	}),
	'pg_stat_progress_copy shows the worker\'s progress growing') or diag(join "\n", @samples);
my ($command, $type) = split /\|/, $samples[0] // '';
is($command, 'COPY TO', 'as a COPY TO');
is($type, 'CALLBACK', 'into a callback');
my @tuples = map { (split /\|/)[2] } @samples;
my @bytes = map { (split /\|/)[3] } @samples;
ok(!grep({ $tuples[$_] < $tuples[ $_ - 1 ] } 1 .. $#tuples), 'tuples never go back');
ok(!grep({ $bytes[$_] < $bytes[ $_ - 1 ] } 1 .. $#bytes), 'bytes never go back');

my ($rc, $key, $err) = finish_psql($caller);
is($rc, 0, 'the snapshot succeeds') or diag($err);
like($err, qr/NOTICE:\s+(?:00000: )?snapshot of table "big" in progress: \d+ rows, \d+ bytes, \d+ parts written/,
	'the waiting caller was told how far it got');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_progress_copy WHERE relid = 'big'::regclass"),
	'0', 'the progress row goes with the build');

$node->safe_psql('postgres', 'UPDATE big SET id = id WHERE id = 1');
$caller = start_psql($node,
	"SET tsnap.progress_notice_interval = 0",
	"SELECT tsnap_snapshot('big')");
($rc, $key, $err) = finish_psql($caller);
is($rc, 0, 'with the interval at 0, the snapshot succeeds') or diag($err);
unlike($err, qr/in progress/, 'and no NOTICE is sent');

$node->stop;
stop_faultproxy($slow_parts);
done_testing();
