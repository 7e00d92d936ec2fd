# Copyright (c) tsnap authors

# Attacks on tsnap by unprivileged roles; each must fail.
#  (a) an operator planted in the attacker's own schema, with its
#      search_path, under every entry point that runs SQL with more rights
#      than the caller: the sql_drop and ddl_command_end event triggers,
#      track, the commit of a tracked write, snapshot miss and hit (and the
#      retention a worker runs after a miss), tsnap_version, untrack;
#  (b) the same operator planted in a public schema that PUBLIC may create
#      in, reached when another role writes, tracks, snapshots and drops her
#      own table;
#  (c) the worker as a clean room: a function in a partial-index predicate
#      (run when the worker plans the scan) sets search_path, DateStyle,
#      TimeZone, quote_all_identifiers and extra_float_digits, prepares a
#      statement, takes an advisory lock, creates a temp table and tries
#      SET ROLE; nothing of it reaches tsnap's own SQL or a later request,
#      whose object must equal COPY under the pinned settings;
#  (d) secrets hidden from pg_monitor / pg_read_all_settings;
#  (e) a hit checks USAGE on the schema, as the scan would;
#  (f) no metadata without a right on the table (tsnap_version,
#      tsnap.tracked, also through a leaky function);
#  (g) hints quote names as literals that are safe to paste;
#  (h) no role can hold the worker pool hostage with locks, nor every
#      writer with prepared transactions on the version shards; a writer's
#      commit-time wait obeys cancel.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('security', conf => qq{
tsnap.max_workers = 2
tsnap.keep_versions = 1
tsnap.keep_for = 0
max_prepared_transactions = 20
});
my $super = $node->safe_psql('postgres', 'SELECT current_user');

# Run SQL as ROLE (a login role) in database DB; returns (SQLSTATE, out, err).
sub as_role
{
	my ($role, $sql, %opts) = @_;
	return psql_sqlstate($node, $sql, user => $role, db => $opts{db},
		timeout => $opts{timeout} // 60);
}

sub is_super
{
	my ($role) = @_;
	return $node->safe_psql('postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = '$role'") eq 't';
}

# Lines our trap functions logged so far.
sub trap_lines
{
	return scalar(() = slurp_file($node->logfile) =~ /TSNAP-TRAP fired as \w/g);
}

# CREATE statements for a trap: operators for every type tsnap's SQL
# compares or adds, in schema SCHEMA, which make ROLE a superuser when they
# run as anyone else, and log that they did.
sub trap_sql
{
	my ($schema, $role) = @_;
	my $sql = qq{
	CREATE FUNCTION $schema.trap() RETURNS void LANGUAGE plpgsql AS \$f\$
	BEGIN
		IF current_user::text OPERATOR(pg_catalog.<>) '$role' THEN
			RAISE WARNING 'TSNAP-TRAP fired as %', current_user;
			BEGIN
				EXECUTE 'ALTER ROLE $role SUPERUSER';
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'TSNAP-TRAP could not escalate: %', SQLERRM;
			END;
		END IF;
	END \$f\$;
	};
	for my $t (qw(regclass oid text uuid int8 int4 int2))
	{
		$sql .= qq{
	CREATE FUNCTION $schema.eq_$t($t, $t) RETURNS boolean LANGUAGE plpgsql AS \$f\$
	BEGIN PERFORM $schema.trap(); RETURN \$1 OPERATOR(pg_catalog.=) \$2; END \$f\$;
	CREATE OPERATOR $schema.= (LEFTARG = $t, RIGHTARG = $t, FUNCTION = $schema.eq_$t);
	};
	}
	for my $t (qw(int8 int4))
	{
		$sql .= qq{
	CREATE FUNCTION $schema.plus_$t($t, $t) RETURNS $t LANGUAGE plpgsql AS \$f\$
	BEGIN PERFORM $schema.trap(); RETURN \$1 OPERATOR(pg_catalog.+) \$2; END \$f\$;
	CREATE OPERATOR $schema.+ (LEFTARG = $t, RIGHTARG = $t, FUNCTION = $schema.plus_$t);
	CREATE FUNCTION $schema.minus_$t($t, $t) RETURNS $t LANGUAGE plpgsql AS \$f\$
	BEGIN PERFORM $schema.trap(); RETURN \$1 OPERATOR(pg_catalog.-) \$2; END \$f\$;
	CREATE OPERATOR $schema.- (LEFTARG = $t, RIGHTARG = $t, FUNCTION = $schema.minus_$t);
	};
	}
	return $sql;
}

# After an entry point ran: ROLE is no superuser and no trap fired.
my $traps_seen = 0;
sub not_escalated
{
	my ($role, $what) = @_;
	my $lines = trap_lines();
	ok(!is_super($role) && $lines == $traps_seen,
		"$what: ${role}'s operator did not run with more rights than ${role}'s");
	if (is_super($role))
	{
		$node->safe_psql('postgres', "ALTER ROLE $role NOSUPERUSER");
	}
	$traps_seen = $lines;
	return;
}

$node->safe_psql('postgres', q{
	CREATE ROLE zed LOGIN;
	CREATE SCHEMA zed AUTHORIZATION zed;
	ALTER ROLE zed SET search_path = zed, public, pg_catalog;
	CREATE ROLE mallory LOGIN;
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	CREATE ROLE alice LOGIN;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE ROLE bob LOGIN;
	CREATE SCHEMA bob AUTHORIZATION bob;
	CREATE ROLE mon LOGIN IN ROLE pg_monitor;
	CREATE ROLE nopriv LOGIN;
	CREATE ROLE insonly LOGIN;
});
my ($state, $out, $err) = as_role('zed', trap_sql('zed', 'zed'));
is($state, '', 'zed plants operators in its own schema') or diag($err);

###########################################################################
# (a) the attacker's own schema and search_path
###########################################################################
# The trap is live: a superuser with zed's search_path runs it.
$node->safe_psql('postgres', q{
	SET search_path = zed, pg_catalog;
	SELECT 'pg_class'::regclass = 'pg_class'::regclass;
});
ok(is_super('zed') && trap_lines() == 1,
	'sanity: with zed\'s search_path, a superuser\'s regclass = regclass runs zed\'s trap');
$node->safe_psql('postgres', 'ALTER ROLE zed NOSUPERUSER');
$traps_seen = trap_lines();

($state, $out, $err) = as_role('zed', q{
	CREATE TEMP TABLE scratch (i int);
	DROP TABLE scratch;
});
is($state, '', 'zed creates and drops a temp table') or diag($err);
not_escalated('zed', 'sql_drop event trigger');

($state, $out, $err) = as_role('zed', q{
	CREATE TABLE zed.t (id int, v text);
	SELECT tsnap_track('zed.t');
	CREATE TABLE zed.parent (id int, v text) PARTITION BY LIST (id);
	SELECT tsnap_track('zed.parent');
});
is($state, '', 'zed tracks its tables') or diag($err);
not_escalated('zed', 'tsnap_track');

($state, $out, $err) = as_role('zed', q{
	CREATE TABLE zed.part1 PARTITION OF zed.parent FOR VALUES IN (1);
	ALTER TABLE zed.parent DETACH PARTITION zed.part1;
	ALTER TABLE zed.parent ATTACH PARTITION zed.part1 FOR VALUES IN (1);
});
is($state, '', 'zed creates, detaches and attaches a partition') or diag($err);
not_escalated('zed', 'ddl_command_end event trigger');

($state, $out, $err) = as_role('zed', q{
	INSERT INTO zed.t VALUES (1, 'a');
	INSERT INTO zed.parent VALUES (1, 'a');
});
is($state, '', 'zed writes its tracked tables') or diag($err);
not_escalated('zed', 'commit of a tracked write (a new backend)');

($state, $out, $err) = as_role('zed', q{
	SELECT tsnap_version('zed.t');
	SELECT * FROM tsnap.tracked;
});
is($state, '', 'zed reads versions') or diag($err);
not_escalated('zed', 'tsnap_version and tsnap.tracked');

($state, $out, $err) = as_role('zed', q{SELECT tsnap_snapshot('zed.t')});
is($state, '', 'zed snapshots its table (a miss)') or diag($err);
($state, $out, $err) = as_role('zed', q{SELECT hit FROM tsnap_snapshot_info('zed.t')});
is($out, 't', 'zed snapshots its table again (a hit)') or diag($err);
# keep_versions = 1: the next miss retires the first object (retention)
($state, $out, $err) = as_role('zed', q{
	INSERT INTO zed.t VALUES (2, 'b');
	SELECT tsnap_snapshot('zed.t');
	SELECT tsnap_snapshot('zed.parent');
});
is($state, '', 'zed snapshots a new version (a miss with retention)') or diag($err);
ok(poll_until(60, sub { $node->safe_psql('postgres', 'SELECT count(*) FROM tsnap.pending_deletes') eq '0' }),
	'retention has deleted the older object');
not_escalated('zed', 'snapshot miss, hit and retention');

($state, $out, $err) = as_role('zed', q{
	SELECT tsnap_untrack('zed.t');
	DROP TABLE zed.parent;
});
is($state, '', 'zed untracks and drops its tables') or diag($err);
not_escalated('zed', 'tsnap_untrack and DROP TABLE');

###########################################################################
# (b) an operator planted in a public schema that PUBLIC may create in
###########################################################################
$node->safe_psql('postgres', q{
	CREATE DATABASE pubdb;
});
$node->safe_psql('pubdb', q{
	GRANT CREATE ON SCHEMA public TO PUBLIC;
	CREATE EXTENSION tsnap;
});
($state, $out, $err) = as_role('mallory', trap_sql('public', 'mallory'), db => 'pubdb');
is($state, '', 'mallory plants operators in public') or diag($err);

($state, $out, $err) = as_role('alice', q{
	CREATE TABLE alice_t (id int, v text);
	SELECT tsnap_track('alice_t');
}, db => 'pubdb');
is($state, '', 'alice tracks her table in public') or diag($err);
not_escalated('mallory', 'public: alice tracks her table');
($state, $out, $err) = as_role('alice', q{INSERT INTO alice_t VALUES (1, 'x')}, db => 'pubdb');
is($state, '', 'alice writes her table') or diag($err);
not_escalated('mallory', 'public: the commit of alice\'s write');
($state, $out, $err) = as_role('alice', q{
	SELECT tsnap_snapshot('alice_t');
	SELECT tsnap_snapshot('alice_t');
	SELECT tsnap_untrack('alice_t');
	SELECT tsnap_track('alice_t');
	DROP TABLE alice_t;
	CREATE TEMP TABLE scratch (i int);
	DROP TABLE scratch;
}, db => 'pubdb');
is($state, '', 'alice snapshots, untracks, tracks and drops her table') or diag($err);
not_escalated('mallory', 'public: snapshot, untrack, track, event triggers');

###########################################################################
# (c) the worker is a clean room
###########################################################################
# One worker, so requests queued behind mallory's are served by the process
# that ran her function (if it did not exit).
my $room = tsnap_node('cleanroom', conf => "tsnap.max_workers = 1\n");
$room->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	CREATE ROLE alice LOGIN;
	CREATE SCHEMA alice AUTHORIZATION alice;
});
my $room_super = $room->safe_psql('postgres', 'SELECT current_user');
# poison acts only in a session whose session user is not its current user:
# the worker, never mallory's own sessions.
my $poison = q{
	CREATE FUNCTION mallory.poison(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		IF session_user OPERATOR(pg_catalog.=) current_user THEN
			RETURN true;
		END IF;
		PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog', false);
		PERFORM pg_catalog.set_config('DateStyle', 'SQL, DMY', false);
		PERFORM pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false);
		PERFORM pg_catalog.set_config('IntervalStyle', 'sql_standard', false);
		PERFORM pg_catalog.set_config('extra_float_digits', '-3', false);
		PERFORM pg_catalog.set_config('quote_all_identifiers', 'on', false);
		PERFORM pg_catalog.set_config('synchronize_seqscans', 'on', false);
		BEGIN EXECUTE 'PREPARE mallory_stmt AS SELECT 1';
		EXCEPTION WHEN OTHERS THEN RAISE WARNING 'poison: PREPARE: %', SQLERRM; END;
		BEGIN PERFORM pg_catalog.pg_advisory_lock(424242);
		EXCEPTION WHEN OTHERS THEN RAISE WARNING 'poison: advisory lock: %', SQLERRM; END;
		BEGIN EXECUTE 'CREATE TEMP TABLE mallory_tmp (i int)';
		EXCEPTION WHEN OTHERS THEN RAISE WARNING 'poison: temp table: %', SQLERRM; END;
		BEGIN EXECUTE 'SET ROLE } . $room_super . q{';
		EXCEPTION WHEN OTHERS THEN RAISE WARNING 'poison: SET ROLE: %', SQLERRM; END;
		PERFORM pg_catalog.pg_sleep(3);
		RETURN true;
	END $f$;
	CREATE TABLE mallory.poisoned (id int, v text);
	INSERT INTO mallory.poisoned VALUES (1, 'a');
	CREATE INDEX ON mallory.poisoned (id) WHERE mallory.poison(0);
	SELECT tsnap_track('mallory.poisoned');

	-- run by a later request of mallory's: fails if anything survived
	CREATE FUNCTION mallory.probe(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		IF session_user OPERATOR(pg_catalog.=) current_user THEN RETURN true; END IF;
		IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE name OPERATOR(pg_catalog.=) 'mallory_stmt') THEN
			RAISE EXCEPTION 'survived: prepared statement';
		END IF;
		IF EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype OPERATOR(pg_catalog.=) 'advisory'
				   AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) THEN
			RAISE EXCEPTION 'survived: advisory lock';
		END IF;
		IF pg_catalog.to_regclass('pg_temp.mallory_tmp') IS NOT NULL THEN
			RAISE EXCEPTION 'survived: temp table';
		END IF;
		IF pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.~) 'mallory' THEN
			RAISE EXCEPTION 'survived: search_path %', pg_catalog.current_setting('search_path');
		END IF;
		IF pg_catalog.current_setting('DateStyle') OPERATOR(pg_catalog.<>) 'ISO, MDY' THEN
			RAISE EXCEPTION 'survived: DateStyle %', pg_catalog.current_setting('DateStyle');
		END IF;
		RETURN true;
	END $f$;
	CREATE TABLE mallory.probed (id int);
	INSERT INTO mallory.probed VALUES (1);
	CREATE INDEX ON mallory.probed (id) WHERE mallory.probe(0);
	SELECT tsnap_track('mallory.probed');
};
my ($rstate, $rout, $rerr) = psql_sqlstate($room, trap_sql('mallory', 'mallory') . $poison,
	user => 'mallory');
is($rstate, '', 'mallory plants her operators and functions') or diag($rerr);

$room->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.events (id int, at timestamptz, d date, i interval, f float8, r regclass, n numeric);
	INSERT INTO alice.events VALUES
		(1, '2024-03-04 05:06:07+00', '2024-03-04', '1 day 02:03:04', 0.1, 'pg_class', 1.5),
		(2, '1999-12-31 23:59:59.5+00', '2000-01-01', '-3 mons', 1e-7, 'alice.events', NULL);
	SELECT tsnap_track('alice.events');
});

sub room_psql
{
	my ($role, $sql) = @_;
	return start_psql($room, { user => $role }, $sql);
}

my $p_poison = room_psql('mallory', "SELECT tsnap_snapshot('mallory.poisoned')");
ok( poll_until(30, sub {
		$room->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker' AND wait_event = 'PgSleep'") eq '1';
	}),
	'clean room: the worker runs mallory\'s function while planning her scan');
my $p_alice = room_psql('alice', "SELECT tsnap_snapshot('alice.events')");
my $p_probe = room_psql('mallory', "SELECT tsnap_snapshot('mallory.probed')");
my ($rc, $pkey, $perr, $pstate) = finish_psql($p_poison);
note("mallory's poisoned snapshot: rc $rc $pstate $perr");
my ($arc, $akey, $aerr) = finish_psql($p_alice);
is($arc, 0, 'clean room: alice\'s snapshot, queued behind mallory\'s, succeeds') or diag($aerr);
chomp $akey;
my $copy = $room->safe_psql('postgres', q{
	SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET TimeZone = 'UTC';
	SET extra_float_digits = 1; SET bytea_output = hex; SET search_path = pg_catalog;
	SET quote_all_identifiers = off;
	COPY alice.events TO STDOUT WITH (FORMAT csv, HEADER);
});
is(s3_get($akey), "$copy\n", 'clean room: alice\'s object equals COPY under the pinned settings');
my ($brc, $bout, $berr) = finish_psql($p_probe);
is($brc, 0, 'clean room: nothing of mallory\'s request (prepared statement, advisory lock, temp table, settings) reached her next one')
  or diag($berr);
ok(!($room->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") eq 't'),
	'clean room: mallory\'s search_path did not reach the worker\'s own catalog SQL');
unlike(slurp_file($room->logfile), qr/TSNAP-TRAP fired as \w/, 'clean room: no trap fired');
like(slurp_file($room->logfile), qr/poison: SET ROLE: [^%]/, 'clean room: SET ROLE was refused');
is($room->safe_psql('postgres', "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), '0',
	'clean room: no advisory lock is held');
$room->stop;
s3_delete_prefix("$room->{tsnap_prefix}/");

###########################################################################
# (d) secrets and monitoring roles
###########################################################################
my $secret_re = qr/\Q$ENV{S3_SECRET}\E|\Q$ENV{S3_ACCESS}\E/;
for my $q (
	'SHOW tsnap.s3_secret_access_key',
	'SHOW tsnap.s3_access_key_id',
	"SELECT current_setting('tsnap.s3_secret_access_key')",
	"SELECT name, setting, reset_val, boot_val FROM pg_settings WHERE name LIKE 'tsnap.%'",
	"SELECT * FROM pg_show_all_settings() WHERE name LIKE 'tsnap.%'",
	'SHOW ALL',
	'SELECT * FROM pg_file_settings')
{
	($state, $out, $err) = as_role('mon', $q);
	unlike("$out\n$err", $secret_re, "pg_monitor: $q does not show a credential");
}
is($node->safe_psql('postgres', 'SELECT pg_has_role(\'mon\', \'pg_read_all_settings\', \'USAGE\')'), 't',
	'sanity: mon has the privileges of pg_read_all_settings');
($state, $out, $err) = as_role('mon', 'SHOW tsnap.s3_region');
is($out, $ENV{S3_REGION}, 'sanity: mon reads other tsnap settings');

###########################################################################
# (e) a hit checks USAGE on the schema
###########################################################################
$node->safe_psql('postgres', q{
	CREATE SCHEMA hidden AUTHORIZATION alice;
	SET ROLE alice;
	CREATE TABLE hidden.t (id int);
	INSERT INTO hidden.t VALUES (1);
	SELECT tsnap_track('hidden.t');
	GRANT SELECT ON hidden.t TO bob;
});
my $hidden_oid = $node->safe_psql('postgres', "SELECT 'hidden.t'::regclass::oid");
$node->safe_psql('postgres', "SELECT tsnap_snapshot('hidden.t')");
($state, $out, $err) = as_role('bob', "SELECT tsnap_snapshot($hidden_oid)");
is($state, '42501', 'no USAGE on the schema: 42501 on a hit');
like($err, qr/permission denied for schema hidden/, 'no USAGE on the schema: the usual message');
$node->safe_psql('postgres', 'INSERT INTO hidden.t VALUES (2)');
($state, $out, $err) = as_role('bob', "SELECT tsnap_snapshot($hidden_oid)");
is($state, '42501', 'no USAGE on the schema: 42501 on a miss');

###########################################################################
# (f) metadata
###########################################################################
($state, $out, $err) = as_role('nopriv', "SELECT tsnap_version($hidden_oid)");
is($state, '42501', 'tsnap_version without any privilege: 42501');
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.ins (id int);
	SELECT tsnap_track('alice.ins');
	GRANT INSERT ON alice.ins TO insonly;
	GRANT USAGE ON SCHEMA alice TO insonly;
});
($state, $out, $err) = as_role('insonly', "SELECT tsnap_version('alice.ins')");
is($state, '', 'tsnap_version with INSERT only: allowed') or diag($err);
ok($node->safe_psql('postgres', 'SELECT count(*) FROM tsnap.tracked') > 1,
	'sanity: several tables are tracked');
($state, $out, $err) = as_role('nopriv', 'SELECT count(*) FROM tsnap.tracked');
is($out, '0', 'tsnap.tracked: a role with no privilege sees no table');
($state, $out, $err) = as_role('insonly', 'SELECT tbl FROM tsnap.tracked');
is($out, 'alice.ins', 'tsnap.tracked: a role sees the tables it has a privilege on');
($state, $out, $err) = as_role('nopriv', q{
	CREATE FUNCTION pg_temp.leak(regclass, uuid) RETURNS boolean LANGUAGE plpgsql
		COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'leaked % %', $1, $2; RETURN true; END $$;
	SELECT count(*) FROM tsnap.tracked WHERE pg_temp.leak(tbl, tracking_id);
});
unlike($err, qr/leaked/, 'tsnap.tracked: a leaky function sees no row it may not see');

###########################################################################
# (g) hints safe to paste
###########################################################################
$node->safe_psql('postgres', q{
	SET ROLE alice; CREATE TABLE alice.orders (id int);
	SET ROLE mallory; CREATE TABLE mallory."x'); DROP TABLE alice.orders; --" (id int);
});
my $evil_oid = $node->safe_psql('postgres',
	q{SELECT oid FROM pg_class WHERE relname = 'x''); DROP TABLE alice.orders; --'});
for my $f ('tsnap_snapshot', 'tsnap_version')
{
	($state, $out, $err) = as_role('mallory', "SELECT $f($evil_oid)");
	is($state, '55000', "$f of an untracked table: 55000");
	my ($hint) = $err =~ /^HINT:\s+(.*)$/m;
	is($hint, q{Call tsnap_track('mallory."x''); DROP TABLE alice.orders; --"') first.},
		"$f: the hint quotes the name as a literal");
}
my ($call) = $err =~ /^HINT:\s+Call (.*) first\.$/m;
($state, $out, $err) = as_role('mallory', "SELECT $call");
is($state, '', 'the hint\'s call, pasted, runs') or diag($err);
($state, $out, $err) = psql_sqlstate($node, "SELECT tsnap_version($evil_oid)");
is($out, '0', 'the hint\'s call tracked the table it named');
is($node->safe_psql('postgres', "SELECT to_regclass('alice.orders') IS NOT NULL"), 't',
	'and nothing else');

###########################################################################
# (h) hostages
###########################################################################
# alice holds ACCESS EXCLUSIVE on a partition of each of two tracked parents
# and snapshots both parents with a short statement_timeout; both workers
# must give up, so that bob's snapshot is served.
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.p1 (id int) PARTITION BY LIST (id);
	CREATE TABLE alice.p1_a PARTITION OF alice.p1 FOR VALUES IN (1);
	CREATE TABLE alice.p2 (id int) PARTITION BY LIST (id);
	CREATE TABLE alice.p2_a PARTITION OF alice.p2 FOR VALUES IN (1);
	INSERT INTO alice.p1 VALUES (1); INSERT INTO alice.p2 VALUES (1);
	SELECT tsnap_track('alice.p1'); SELECT tsnap_track('alice.p2');
	SET ROLE bob;
	CREATE TABLE bob.t (id int); INSERT INTO bob.t VALUES (1);
	SELECT tsnap_track('bob.t');
});
my $holder = start_psql($node, { user => 'alice' },
	'BEGIN; LOCK alice.p1_a, alice.p2_a IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;');
ok( poll_until(30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation IN ('alice.p1_a'::regclass, 'alice.p2_a'::regclass)") eq '2';
	}),
	'hostage: alice holds both partitions');
my @hostage = map {
	start_psql($node, { user => 'alice' }, "SET statement_timeout = '1s'",
		"SELECT tsnap_snapshot('alice.$_')")
} qw(p1 p2);
for my $h (@hostage)
{
	my ($hrc, $hout, $herr, $hstate) = finish_psql($h);
	is($hstate, '57014', 'hostage: alice\'s snapshot times out');
}
my $t0 = time();
($state, $out, $err) = as_role('bob', "SET statement_timeout = '20s'; SELECT tsnap_snapshot('bob.t')");
is($state, '', 'hostage: bob\'s snapshot is served while alice still holds her locks') or diag($err);
note(sprintf('bob waited %.1f s', time() - $t0));
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker' AND wait_event_type = 'Lock'"),
	'0', 'hostage: no worker waits for alice\'s locks');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK alice.p1_a%'");
finish_psql($holder);

# 16 prepared transactions of a role with INSERT only; every other writer
# must still commit
my $v0 = $node->safe_psql('postgres', "SELECT tsnap_version('alice.ins')");
for my $i (1 .. 16)
{
	($state, $out, $err) = as_role('insonly',
		"BEGIN; INSERT INTO alice.ins VALUES ($i); PREPARE TRANSACTION 'hostage_$i';");
	is($state, '', "prepared transaction $i") or diag($err);
}
$t0 = time();
# (a writer blocked forever would make psql time out, which dies)
$state = eval { (as_role('alice', 'INSERT INTO alice.ins VALUES (100)', timeout => 30))[0] } // 'timed out';
is($state, '', 'prepared transactions: another writer commits');
note(sprintf('the writer took %.1f s', time() - $t0));
is($node->safe_psql('postgres', "SELECT tsnap_version('alice.ins')"), $v0 + 1,
	'prepared transactions: the writer\'s bump is visible, theirs are not yet');
$node->safe_psql('postgres', "COMMIT PREPARED 'hostage_$_'") for 1 .. 15;
$node->safe_psql('postgres', "ROLLBACK PREPARED 'hostage_16'");
is($node->safe_psql('postgres', "SELECT tsnap_version('alice.ins')"), $v0 + 16,
	'prepared transactions: committed ones count, the rolled back one does not');
is($node->safe_psql('postgres', 'SELECT count(*) FROM alice.ins'), '16', 'sanity: 16 rows');

# a writer waiting at commit for a shard row obeys cancel
my $locker = start_psql($node,
	"BEGIN; SELECT 1 FROM tsnap.version_shards WHERE tbl = 'alice.ins'::regclass FOR UPDATE; SELECT pg_sleep(120); COMMIT;");
ok( poll_until(30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; SELECT 1 FROM tsnap.version_shards%' AND wait_event = 'PgSleep'") eq '1';
	}),
	'commit wait: a superuser locks every shard row');
my $writer = start_psql($node, { user => 'alice' }, 'INSERT INTO alice.ins VALUES (200)');
ok( poll_until(30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO alice.ins VALUES (200)%' AND wait_event_type = 'Lock'") eq '1';
	}),
	'commit wait: the writer waits at commit');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO alice.ins VALUES (200)%'");
my ($wrc, $wout, $werr, $wstate) = finish_psql($writer);
is($wstate, '57014', 'commit wait: cancel ends it');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; SELECT 1 FROM tsnap.version_shards%'");
finish_psql($locker);
is($node->safe_psql('postgres', 'SELECT count(*) FROM alice.ins WHERE id = 200'), '0',
	'commit wait: the cancelled write is rolled back');

###########################################################################
# (i) found by a hostile review
###########################################################################
# A caller joining another role's request never sees that role's error: a
# table owner's function, run while the worker plans alice's scan as alice,
# puts what alice may read into its error.
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE alice.secret_t (s text);
	INSERT INTO alice.secret_t VALUES ('TOP-SECRET-42');
});
($state, $out, $err) = as_role('mallory', q{
	GRANT USAGE ON SCHEMA mallory TO PUBLIC;
	CREATE FUNCTION mallory.leak() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		IF session_user OPERATOR(pg_catalog.=) current_user THEN RETURN 0; END IF;
		PERFORM pg_catalog.pg_sleep(3);
		RAISE EXCEPTION 'leak as %: %', current_user, (SELECT pg_catalog.string_agg(s, ',') FROM alice.secret_t);
	END $f$;
	CREATE TABLE mallory.bait (a int);
	INSERT INTO mallory.bait VALUES (1);
	CREATE INDEX ON mallory.bait ((a OPERATOR(pg_catalog.+) mallory.leak()));
	GRANT SELECT ON mallory.bait TO PUBLIC;
	SELECT tsnap_track('mallory.bait');
});
is($state, '', 'mallory sets a bait table') or diag($err);
my $victim = start_psql($node, { user => 'alice' }, "SELECT tsnap_snapshot('mallory.bait')");
ok( poll_until(30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tsnap worker' AND wait_event = 'PgSleep'") eq '1';
	}),
	'join: the worker runs mallory\'s function as alice');
($state, $out, $err) = as_role('mallory', "SELECT tsnap_snapshot('mallory.bait')");
unlike("$out\n$err", qr/TOP-SECRET/, 'join: mallory never sees the error of alice\'s request');
my ($vrc, $vout, $verr) = finish_psql($victim);
like($verr, qr/leak as alice/, 'sanity: alice\'s own request failed with the function\'s error');

# Planning code that turns sequential scans off would give another row order
# than COPY for the same key: refused.
($state, $out, $err) = as_role('mallory', q{
	CREATE FUNCTION mallory.noseq() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		IF session_user OPERATOR(pg_catalog.<>) current_user THEN
			PERFORM pg_catalog.set_config('enable_seqscan', 'off', false);
			PERFORM pg_catalog.set_config('enable_bitmapscan', 'off', false);
		END IF;
		RETURN 0;
	END $f$;
	CREATE TABLE mallory.ord (a int);
	INSERT INTO mallory.ord VALUES (3), (1), (2), (5), (4);
	CREATE INDEX ON mallory.ord (a);
	CREATE INDEX ON mallory.ord ((a OPERATOR(pg_catalog.+) mallory.noseq()));
	GRANT SELECT ON mallory.ord TO PUBLIC;
	SELECT tsnap_track('mallory.ord');
});
is($state, '', 'mallory sets a table whose planning disables sequential scans') or diag($err);
($state, $out, $err) = as_role('bob', "SELECT tsnap_snapshot('mallory.ord')");
is($state, '55000', 'plan: a scan not planned as sequential is refused');
like($err, qr/was not planned as a sequential scan/, 'plan: says why');

# One ALTER TABLE that disables the trigger and detaches something
($state, $out, $err) = as_role('mallory', q{
	CREATE TABLE mallory.dummy2 (a int);
	CREATE TABLE mallory.par2 (a int);
	ALTER TABLE mallory.par2 INHERIT mallory.dummy2;
	SELECT tsnap_track('mallory.par2');
});
is($state, '', 'mallory tracks a child table') or diag($err);
($state, $out, $err) = as_role('mallory',
	'ALTER TABLE mallory.par2 DISABLE TRIGGER tsnap_tracking, NO INHERIT mallory.dummy2');
is($state, '55000', 'DISABLE TRIGGER together with NO INHERIT: 55000');
is($node->safe_psql('postgres',
		"SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'mallory.par2'::regclass AND tgname = 'tsnap_tracking'"),
	'A', 'the trigger stays enabled');

$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");
done_testing();
