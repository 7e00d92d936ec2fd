
# Copyright (c) tsnap authors

# Tests tsnap on a server WITHOUT shared_preload_libraries: the library is
# loaded by each backend on first use, often by the tracking trigger in the
# middle of a writing transaction, and must still count that transaction at
# commit.  Several concurrent sessions write; rolled back work (whole
# transactions, savepoints, prepared transactions) adds nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->append_conf('postgresql.conf', "max_prepared_transactions = 10");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'tsnap is not preloaded');

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION tsnap;
	CREATE TABLE t (id int PRIMARY KEY, v text);
	CREATE TABLE u (id int);
	SELECT tsnap_track('t');
	SELECT tsnap_track('u');
});

# Every safe_psql runs in a new backend, in which the library is not loaded
# yet: here the trigger loads it, inside the writing transaction.
sub version
{
	my ($tbl) = @_;
	return $node->safe_psql('postgres', "SELECT tsnap_version('$tbl')");
}

is(version('t'), '0', 'version 0 after tracking');

$node->safe_psql('postgres', "INSERT INTO t VALUES (1, 'a')");
is(version('t'), '1', 'first write of a fresh backend (autocommit) counts');

$node->safe_psql('postgres',
	"BEGIN; INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'B' WHERE id = 2; DELETE FROM t WHERE id = 1; COMMIT;");
is(version('t'), '4', 'three statements in a fresh backend\'s first transaction count three');

$node->safe_psql('postgres',
	"BEGIN; INSERT INTO t VALUES (3, 'c'); ROLLBACK;");
is(version('t'), '4', 'rolled back first transaction of a fresh backend does not bump');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 3'),
	'0', 'and its row is gone');

$node->safe_psql('postgres',
	"BEGIN; INSERT INTO t VALUES (3, 'c'); SAVEPOINT s; INSERT INTO t VALUES (4, 'd'); UPDATE t SET v = 'x'; ROLLBACK TO s; COMMIT;"
);
is(version('t'), '5', 'statements rolled back to a savepoint do not count');

# A failing statement aborts the transaction: nothing counts.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"BEGIN; INSERT INTO t VALUES (10, 'ok'); INSERT INTO t VALUES (2, 'dup'); COMMIT;");
isnt($ret, 0, 'duplicate key fails');
is(version('t'), '5', 'aborted transaction does not bump');

# Several sessions, their transactions open at the same time.  Each session
# is a fresh backend whose library gets loaded by its first write.
my @s = map { $node->background_psql('postgres') } 1 .. 3;

$s[0]->query_safe("BEGIN");
$s[0]->query_safe("INSERT INTO t VALUES (100, 's0')");
$s[1]->query_safe("BEGIN");
$s[1]->query_safe("INSERT INTO t VALUES (200, 's1')");
$s[1]->query_safe("INSERT INTO u VALUES (200)");
$s[2]->query_safe("BEGIN");
$s[2]->query_safe("INSERT INTO t VALUES (300, 's2')");
$s[0]->query_safe("UPDATE t SET v = 's0!' WHERE id = 100");
$s[2]->query_safe("INSERT INTO t VALUES (301, 's2')");

is(version('t'), '5', 'uncommitted writes of other sessions are not visible');
is($s[0]->query_safe("SELECT tsnap_version('t')"),
	'7', 'a session sees its own pending statements');

$s[1]->query_safe("COMMIT");
is(version('t'), '6', 'session 1 committed one statement on t');
is(version('u'), '1', 'and one on u');

$s[2]->query_safe("ROLLBACK");
is(version('t'), '6', 'session 2 rolled back: no change');

$s[0]->query_safe("COMMIT");
is(version('t'), '8', 'session 0 committed two statements');

# the sessions go on, with the library now loaded
$s[2]->query_safe("INSERT INTO t VALUES (302, 's2')");
is(version('t'), '9', 'session 2 autocommit write after its rollback counts');
$s[1]->query_safe("BEGIN");
$s[1]->query_safe("DELETE FROM u");
$s[1]->query_safe("ROLLBACK");
$s[0]->query_safe("TRUNCATE u");
is(version('u'), '2', 'TRUNCATE counted, rolled back DELETE not');

$_->quit foreach @s;

# Two-phase commit: the count travels with the prepared transaction, which
# must not hold up other writers of the table while it waits to be
# resolved (prepared transactions can stay open for a long time).  New
# backends tend to reuse the same BackendId, and so the same version shard,
# as the one that prepared; lock_timeout turns a wait into a failure.
$node->safe_psql('postgres',
	"BEGIN; INSERT INTO t VALUES (400, 'p'); INSERT INTO t VALUES (401, 'p'); PREPARE TRANSACTION 'p1';");
is(version('t'), '9', 'prepared transaction is not visible yet');

# (Checks after a failure here are relative, so that it does not cascade.)
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET lock_timeout = '3s'; INSERT INTO t VALUES (403, 'q');");
my $wrote_403 = ($ret == 0);
ok($wrote_403, 'a write commits while another transaction is prepared')
  or diag $stderr;
is(version('t'), $wrote_403 ? '10' : '9', 'it counts if it committed');

($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET lock_timeout = '3s'; BEGIN; INSERT INTO t VALUES (402, 'p'); PREPARE TRANSACTION 'p2';");
my $prepared_p2 = ($ret == 0);
ok($prepared_p2, 'a second transaction prepares while the first is prepared')
  or diag $stderr;

my $v = version('t');
$node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
is(version('t'), $v + 2, 'COMMIT PREPARED adds its two statements');
$v = version('t');
$node->safe_psql('postgres', "ROLLBACK PREPARED 'p2'") if $prepared_p2;
is(version('t'), $v, 'ROLLBACK PREPARED adds nothing');

# After a restart, still counted without preloading.
$node->restart;
$node->safe_psql('postgres', "UPDATE t SET v = 'restarted'");
is(version('t'), $v + 1, 'write after restart counts');
is( $node->safe_psql('postgres',
		'SELECT string_agg(tbl::text || \'=\' || rows_version, \' \' ORDER BY tbl::text) FROM tsnap.tracked'),
	't=' . ($v + 1) . ' u=2', 'tsnap.tracked agrees');
is($node->safe_psql('postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM t'),
	'2,3,100,200,302,400,401' . ($wrote_403 ? ',403' : ''),
	'the rows are the committed ones');

# Snapshots need the shared-memory queue: a clear error, not a crash.
my ($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT tsnap_snapshot('t')");
isnt($rc, 0, 'tsnap_snapshot fails without the preload');
like($err, qr/ERROR:  55000: tsnap must be loaded through shared_preload_libraries/,
	'with SQLSTATE 55000 and a message saying why');
like($err, qr/HINT:  Add tsnap to shared_preload_libraries/, 'and a hint');

$node->stop;

done_testing();
