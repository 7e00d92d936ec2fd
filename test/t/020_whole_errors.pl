# Copyright (c) tsnap authors

# A worker's error reaches the caller whole, as if raised in the caller's own
# backend: SQLSTATE, message, detail, hint, context, and the schema, table,
# column, data type and constraint names a client may use.  The error here
# is raised by the table owner's function while the worker plans the scan
# as the caller (a partial index's predicate is folded at plan time).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('errors');
$node->safe_psql('postgres', q{
	CREATE ROLE carol LOGIN;
	CREATE SCHEMA carol AUTHORIZATION carol;
});
my ($state, $out, $err) = psql_sqlstate($node, q{
	CREATE FUNCTION carol.boom(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		-- only in the worker, which connects as the bootstrap superuser
		IF session_user <> current_user THEN
			RAISE EXCEPTION USING ERRCODE = '22023',
				MESSAGE = 'boom while planning',
				DETAIL = 'the worker planned the scan',
				HINT = 'drop the index',
				SCHEMA = 's_field', TABLE = 't_field', COLUMN = 'c_field',
				DATATYPE = 'd_field', CONSTRAINT = 'k_field';
		END IF;
		RETURN true;
	END $f$;
	CREATE TABLE carol.t (id int);
	INSERT INTO carol.t VALUES (1), (2);
	CREATE INDEX ON carol.t (id) WHERE carol.boom(0);
	SELECT tsnap_track('carol.t');
}, user => 'carol');
is($state, '', 'carol sets up a table whose planning raises in the worker') or diag($err);

($state, $out, $err) = psql_sqlstate($node,
	"\\set SHOW_CONTEXT always\nSELECT tsnap_snapshot('carol.t')", user => 'carol');
is($state, '22023', 'the SQLSTATE is the one raised in the worker');
like($err, qr/ERROR:\s+22023: boom while planning/, 'the message');
like($err, qr/DETAIL:\s+the worker planned the scan/, 'the detail');
like($err, qr/HINT:\s+drop the index/, 'the hint');
like($err, qr/CONTEXT:\s+PL\/pgSQL function carol\.boom\(integer\) line \d+ at RAISE/,
	'the context the worker saw');
like($err, qr/SCHEMA NAME:\s+s_field/, 'the schema name');
like($err, qr/TABLE NAME:\s+t_field/, 'the table name');
like($err, qr/COLUMN NAME:\s+c_field/, 'the column name');
like($err, qr/DATATYPE NAME:\s+d_field/, 'the data type name');
like($err, qr/CONSTRAINT NAME:\s+k_field/, 'the constraint name');

done_testing();
