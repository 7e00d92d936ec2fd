# Copyright (c) tsnap authors

# Who may get a snapshot, how long objects are kept, and many callers at once:
#  (a) privileges: SELECT on every column is needed, on hits as on misses;
#      a NOLOGIN role reached through SET ROLE is served, as that role;
#  (b) row-level security that applies to the caller refuses (0A000), on
#      hits as on misses; owners (RLS not forced) and BYPASSRLS roles are
#      served;
#  (c) retention: tsnap.keep_versions objects per table, older ones deleted
#      from the bucket; failed deletes are kept and retried; a dropped
#      table's objects are deleted;
#  (d) concurrent callers of an unchanged table share one snapshot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('privret', conf => qq{
tsnap.keep_versions = 2
tsnap.keep_for = 0
tsnap.s3_request_timeout = '3s'
});
my $sysid = tsnap_sysid($node);

sub table_prefix
{
	my ($tbl) = @_;
	return "$node->{tsnap_prefix}/$sysid/postgres/public/$tbl/";
}

# (key, hit) of tsnap_snapshot_info, or the SQLSTATE of its failure.
sub snap
{
	my ($tbl, %opts) = @_;
	my $pre = defined $opts{role} ? "SET ROLE $opts{role};\n" : '';
	my ($state, $out, $err) = psql_sqlstate($node,
		"${pre}SELECT key, hit FROM tsnap_snapshot_info('$tbl')",
		user => $opts{user});
	return ("ERROR $state", $err) if $state ne '';
	return split /\|/, $out;
}

$node->safe_psql('postgres', q{
	CREATE ROLE towner LOGIN;
	GRANT CREATE ON SCHEMA public TO towner;
	CREATE ROLE nosel LOGIN;
	CREATE ROLE colsel LOGIN;
	CREATE ROLE allcols LOGIN;
	CREATE ROLE fullsel LOGIN;
	CREATE ROLE nl NOLOGIN;
	CREATE ROLE lr LOGIN NOINHERIT;
	GRANT nl TO lr;
	CREATE ROLE rlsuser LOGIN;
	CREATE ROLE bypasser LOGIN BYPASSRLS;
});

###########################################################################
# (a) privileges
###########################################################################
$node->safe_psql('postgres', q{
	SET ROLE towner;
	CREATE TABLE priv_t (id int PRIMARY KEY, v text, gone text, w text);
	INSERT INTO priv_t SELECT g, 'v' || g, 'x', 'w' || g FROM generate_series(1, 100) g;
	ALTER TABLE priv_t DROP COLUMN gone;
	SELECT tsnap_track('priv_t');
	GRANT SELECT (id) ON priv_t TO colsel;
	GRANT SELECT (id, v, w) ON priv_t TO allcols;
	GRANT SELECT ON priv_t TO fullsel;
	CREATE TABLE nl_t (id int, secret text);
	INSERT INTO nl_t VALUES (1, 'only nl reads this');
	SELECT tsnap_track('nl_t');
	REVOKE ALL ON nl_t FROM PUBLIC;
	GRANT SELECT ON nl_t TO nl;
});

my ($r, $err) = snap('priv_t', user => 'nosel');
is($r, 'ERROR 42501', 'no SELECT: 42501 on a miss');
like($err, qr/permission denied for table priv_t/, 'no SELECT: the usual message');
($r) = snap('priv_t', user => 'colsel');
is($r, 'ERROR 42501', 'SELECT on some columns: 42501 on a miss');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'priv_t'::regclass"),
	'0', 'refused misses build nothing');

my ($key, $hit) = snap('priv_t', user => 'towner');
is($hit, 'f', 'owner: a miss builds the snapshot');
ok(s3_exists($key), 'owner: the object exists');

($r) = snap('priv_t', user => 'nosel');
is($r, 'ERROR 42501', 'no SELECT: 42501 on a hit');
($r) = snap('priv_t', user => 'colsel');
is($r, 'ERROR 42501', 'SELECT on some columns: 42501 on a hit');
($r) = snap('priv_t', role => 'colsel');
is($r, 'ERROR 42501', 'SELECT on some columns, through SET ROLE from a superuser: 42501');
is_deeply([ snap('priv_t', user => 'fullsel') ], [ $key, 't' ],
	'table SELECT: the owner\'s key, as a hit');
is_deeply([ snap('priv_t', user => 'allcols') ], [ $key, 't' ],
	'SELECT granted on every (live) column: the owner\'s key, as a hit');

# a NOLOGIN role, through SET ROLE from a NOINHERIT login role
($r) = snap('nl_t', user => 'lr');
is($r, 'ERROR 42501', 'NOINHERIT member without SET ROLE: 42501');
my ($nl_key, $nl_hit) = snap('nl_t', user => 'lr', role => 'nl');
is($nl_hit, 'f', 'SET ROLE to a NOLOGIN role: a miss succeeds (the worker scanned as that role)');
like(s3_get($nl_key), qr/^id,secret\n1,only nl reads this\n$/, 'SET ROLE: object content');
is_deeply([ snap('nl_t', user => 'lr', role => 'nl') ], [ $nl_key, 't' ],
	'SET ROLE: then a hit');

###########################################################################
# (b) row-level security
###########################################################################
$node->safe_psql('postgres', q{
	SET ROLE towner;
	CREATE TABLE rls_t (id int, tenant text);
	INSERT INTO rls_t VALUES (1, 'rlsuser'), (2, 'bypasser'), (3, 'towner'), (4, 'other');
	ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
	CREATE POLICY own_rows ON rls_t USING (tenant = current_user);
	GRANT SELECT ON rls_t TO rlsuser, bypasser;
	SELECT tsnap_track('rls_t');
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM rls_t', extra_params => [ '-U', 'rlsuser' ]),
	'1', 'the policy applies to rlsuser');

($r, $err) = snap('rls_t', user => 'rlsuser');
is($r, 'ERROR 0A000', 'RLS applies: 0A000 on a miss');
like($err, qr/row-level security applies to role "rlsuser"/, 'RLS: the message says why');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'rls_t'::regclass"),
	'0', 'RLS: a refused miss builds nothing');

my ($rls_key, $rls_hit) = snap('rls_t', user => 'towner');
is($rls_hit, 'f', 'owner, RLS not forced: a miss succeeds');
is(scalar(() = s3_get($rls_key) =~ /\n/g), 5, 'owner: the object has every row');

($r) = snap('rls_t', user => 'rlsuser');
is($r, 'ERROR 0A000', 'RLS applies: 0A000 on a hit');
is_deeply([ snap('rls_t', user => 'bypasser') ], [ $rls_key, 't' ], 'BYPASSRLS: the hit');
is_deeply([ snap('rls_t') ], [ $rls_key, 't' ], 'superuser: the hit');

$node->safe_psql('postgres', 'ALTER TABLE rls_t FORCE ROW LEVEL SECURITY');
($r) = snap('rls_t', user => 'towner');
is($r, 'ERROR 0A000', 'RLS forced on the owner: 0A000 on a hit');
$node->safe_psql('postgres', 'ALTER TABLE rls_t NO FORCE ROW LEVEL SECURITY');
is_deeply([ snap('rls_t', user => 'towner') ], [ $rls_key, 't' ], 'no longer forced: the hit');

###########################################################################
# (c) retention
###########################################################################
# Objects are deleted at the endpoint they were written to, so this part
# writes through a proxy whose DELETEs fail while a file exists.
my $faulty = PostgreSQL::Test::Utils::tempdir() . '/faulty';
my $p500 = start_faultproxy(methods => 'DELETE', faults => '500', rate => 1,
	fault_file => $faulty, lifetime => 900);
tsnap_reload($node, "tsnap.s3_endpoint = '$p500->{endpoint}'\n");
$node->safe_psql('postgres', q{
	CREATE TABLE ret_t (id int, v text);
	SELECT tsnap_track('ret_t');
	CREATE TABLE other (id int);
	SELECT tsnap_track('other');
});

sub new_version
{
	my ($tbl) = @_;
	$node->safe_psql('postgres', "INSERT INTO $tbl SELECT 1");
	my ($k, $h) = snap($tbl);
	is($h, 'f', "new version of $tbl: a miss");
	return $k;
}

sub kept
{
	my ($tbl) = @_;
	return [ split /\n/, $node->safe_psql('postgres',
		"SELECT key FROM tsnap.snapshots WHERE tbl = '$tbl'::regclass ORDER BY rows_version") ];
}

sub pending
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM tsnap.pending_deletes');
}

my @k = map { new_version('ret_t') } 1 .. 4;
is(scalar(keys %{ { map { $_ => 1 } @k } }), 4, 'four versions, four keys');
is_deeply(kept('ret_t'), [ @k[ 2, 3 ] ], 'the catalog keeps the two newest');
ok(poll_until(60, sub { !s3_exists($k[0]) && !s3_exists($k[1]) }),
	'the two oldest objects are deleted from the bucket');
ok(poll_until(30, sub { pending() eq '0' }), 'and leave tsnap.pending_deletes');
ok(s3_exists($k[2]) && s3_exists($k[3]), 'the two newest objects remain');
is_deeply([ sort(s3_list(table_prefix('ret_t'))) ],
	[ sort(map { ($_, "$_.manifest.json") } @k[ 2, 3 ]) ],
	'exactly the kept objects and their manifests are under the table');

# a failing delete is kept, with its error, and retried later
PostgreSQL::Test::Utils::append_to_file($faulty, '');
push @k, new_version('ret_t');
is_deeply(kept('ret_t'), [ @k[ 3, 4 ] ], 'failing delete: the catalog keeps the two newest');
ok( poll_until(60, sub {
		$node->safe_psql('postgres',
			"SELECT attempts > 0 FROM tsnap.pending_deletes WHERE key = '$k[2]'") eq 't';
	}),
	'failing delete: the key stays in tsnap.pending_deletes with attempts > 0');
like($node->safe_psql('postgres', "SELECT last_error FROM tsnap.pending_deletes WHERE key = '$k[2]'"),
	qr/500|InternalError/, 'failing delete: last_error says why');
like(slurp_file($p500->{log}), qr/DELETE 500 .*\Q$k[2]\E/, 'failing delete: the DELETE was attempted');
ok(s3_exists($k[2]), 'failing delete: the object is still there');

unlink $faulty;
new_version('other');
ok(poll_until(60, sub { !s3_exists($k[2]) }),
	'after the fault: a later snapshot (of another table) deletes the object');
ok(poll_until(30, sub { pending() eq '0' }), 'and removes its pending row');

# a dropped table's objects (once the last worker, which deletes pending
# keys after each request, has exited)
my @dropped = @{ kept('ret_t') };
is(scalar(@dropped), 2, 'two objects before DROP TABLE');
ok( poll_until(60, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker'") eq '0';
	}),
	'no worker is running');
$node->safe_psql('postgres', 'DROP TABLE ret_t');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM tsnap.pending_deletes WHERE key IN ('" . join("','", @dropped) . "')"),
	'2', 'DROP TABLE moves its snapshots to tsnap.pending_deletes');
is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.snapshots WHERE key IN ('" . join("','", @dropped) . "')"),
	'0', 'and out of tsnap.snapshots');
ok(s3_exists($dropped[0]) && s3_exists($dropped[1]), 'objects remain until a worker runs');
new_version('other');
ok(poll_until(60, sub { !s3_exists($dropped[0]) && !s3_exists($dropped[1]) }),
	'a later snapshot of another table deletes the dropped table\'s objects');
ok(poll_until(30, sub { pending() eq '0' }), 'tsnap.pending_deletes is empty');
is_deeply([ s3_list(table_prefix('ret_t')) ], [], 'nothing left under the dropped table');

###########################################################################
# (d) concurrent callers
###########################################################################
# The first request through this proxy (the snapshot's PutObject) stalls
# until the 3 s request timeout, so every caller starts while the snapshot
# is being built; the retry goes through.
my $slow_first = start_faultproxy(nth => 1, faults => 'stall', stall => 60);
tsnap_reload($node, "tsnap.s3_endpoint = '$slow_first->{endpoint}'\n");
$node->safe_psql('postgres', q{
	CREATE TABLE conc_t (id int PRIMARY KEY, v text);
	INSERT INTO conc_t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
	SELECT tsnap_track('conc_t');
});
my @callers;
for my $i (1 .. 5)
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		  '-c', "SELECT key, hit FROM tsnap_snapshot_info('conc_t')" ],
		'<', \undef, '>', \$out, '2>', \$err);
	push @callers, [ $h, \$out, \$err ];
}
my @results;
for my $c (@callers)
{
	$c->[0]->finish;
	chomp(my $out = ${ $c->[1] });
	push @results, $out;
	is(${ $c->[2] }, '', 'concurrent caller: no error');
}
my ($ckey) = split /\|/, $results[0];
like($ckey, qr{/public/conc_t/}, 'concurrent callers: a key');
is_deeply(\@results, [ ("$ckey|f") x 5 ],
	'concurrent callers: all five waited for the same build and got the same key');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM tsnap.snapshots WHERE tbl = 'conc_t'::regclass"),
	'1', 'concurrent callers: one row in tsnap.snapshots');
ok(poll_until(30, sub { pending() eq '0' }), 'concurrent callers: no delete pending');
is_deeply([ s3_list(table_prefix('conc_t')) ], [ $ckey, "$ckey.manifest.json" ],
	'concurrent callers: one object (and its manifest) under the table');
my $puts = () = slurp_file($slow_first->{log}) =~ m{^\d+ PUT \S+ \S*/conc_t/\S*\.csv$}mg;
diag("PUT requests for conc_t through the proxy: $puts (one stalled attempt and its retry per upload)");
is_deeply([ snap('conc_t') ], [ $ckey, 't' ], 'concurrent callers: a later call is a hit');

stop_faultproxy($p500);
s3_delete_prefix("$node->{tsnap_prefix}/");

done_testing();
