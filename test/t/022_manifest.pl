# Copyright (c) tsnap authors

# The manifest beside each snapshot (<key>.manifest.json):
#  (a) after a miss it exists, is JSON, has exactly the documented fields,
#      and each has the right value: names with quotes, backslashes, a tab
#      and unicode; columns with typmods, arrays, a type outside pg_catalog,
#      NOT NULL, a dropped column left out; rows; bytes equal to the size
#      S3 reports; a CRC-32 that crc32 (libarchive-zip-perl) and gzip
#      verify on the downloaded object; the system identifier of
#      pg_control_system();
#  (b) a hit writes no manifest;
#  (c) a multipart object, a table without columns, a LATIN1 database (the
#      manifest is UTF-8 all the same), a manifest larger than
#      tsnap.max_snapshot_size, which caps only the CSV, and gzip and zstd
#      objects (compression, content type, and bytes and checksum of the
#      compressed object as stored);
#  (d) the other checksum algorithms (tsnap.manifest_checksum), each
#      verified with its standard tool;
#  (d2) the reader of the contract: tsnap_restore loads snapshots through
#      the manifests written here (names that need escaping, every column
#      type above, a zstd object);
#  (e) retention deletes each manifest with its object (keep_versions = 1,
#      keep_for = 0), also a dropped table's;
#  (f) a manifest PUT that fails (500 from a fault proxy) fails the
#      snapshot: no key, nothing recorded, and once retention has run
#      neither object is left; likewise when S3 stored the manifest but its
#      reply never came.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Encode qw(encode_utf8);
use IPC::Run;
use TsnapTest;

tsnap_require_s3();

# names travel as UTF-8 whatever the database's encoding
$ENV{PGCLIENTENCODING} = 'UTF8';

my $node = tsnap_node('manifest', conf => qq{
tsnap.keep_versions = 1
tsnap.keep_for = 0
tsnap.part_size = 5
});
my $sysid = tsnap_sysid($node);
my $json = JSON::PP->new->utf8;

# a database, schema, table and column whose names need escaping in JSON
my $db = "d\x{c3}\x{a4}\"tab";    # UTF-8 bytes of dä"tab
(my $db_ident = $db) =~ s/"/""/g;
$node->safe_psql('postgres',
	qq{CREATE DATABASE "$db_ident" ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
$node->safe_psql($db, 'CREATE EXTENSION tsnap');

my $schema = "sch\"ema \x{c3}\x{bc}";              # sch"ema ü
my $table = "t\x{c3}\x{a5}ble \"q\" \\ x";          # tåble "q" \ x
my $col = "we\"ird\\ name \x{c3}\x{b8}\ttab";       # we"ird\ name ø<TAB>tab
sub ident { my ($n) = @_; $n =~ s/"/""/g; return qq{"$n"}; }
my $qualified = ident($schema) . '.' . ident($table);
(my $regclass = $qualified) =~ s/'/''/g;

$node->safe_psql($db, qq{
	CREATE SCHEMA ${\ ident($schema)};
	CREATE TYPE public.mood AS ENUM ('sad', 'happy');
	CREATE TABLE $qualified (
		id integer NOT NULL PRIMARY KEY,
		gone text,
		amount numeric(10,2),
		code varchar(5),
		tags text[],
		grid integer[][],
		stamp timestamp(3) with time zone,
		flag char(1),
		${\ ident($col)} bit varying(8),
		feeling public.mood,
		note text NOT NULL DEFAULT ''
	);
	ALTER TABLE $qualified DROP COLUMN gone;
	INSERT INTO $qualified (id, amount, code, tags, grid, stamp, flag, ${\ ident($col)}, feeling, note)
	SELECT g, g * 1.5, 'c' || g, ARRAY['a', 'b,c'], ARRAY[[g, 2], [3, 4]],
		'2024-01-01 00:00+00'::timestamptz + g * interval '1 hour', 'y',
		B'1010', 'happy', 'note "' || g || '"'
	FROM generate_series(1, 100) g;
	SELECT tsnap_track('$regclass');
});

# What S3 says of an object: size and content type (HeadObject).
sub head
{
	my ($key) = @_;
	my ($rc, $out, $err) = aws_s3api('head-object', '--bucket', $ENV{S3_BUCKET},
		'--key', $key);
	die "head-object $key failed: $err" if $rc != 0;
	return $json->decode($out);
}

# The object at KEY in a file of its own, for the standard tools.
sub download
{
	my ($key) = @_;
	my $file = PostgreSQL::Test::Utils::tempdir() . '/object';
	my ($rc, $out, $err) = aws_s3api('get-object', '--bucket', $ENV{S3_BUCKET},
		'--key', $key, $file);
	die "get-object $key failed: $err" if $rc != 0;
	return $file;
}

# What a standard tool prints for FILE: sha256sum, md5sum, or for crc32
# crc32 (libarchive-zip-perl, which test/lib.sh installs), checked against
# gzip, whose trailer holds the CRC-32 of the data (little-endian).
sub tool_checksum
{
	my ($algorithm, $file) = @_;
	my ($out, $err) = ('', '');
	if ($algorithm eq 'sha256' || $algorithm eq 'md5')
	{
		IPC::Run::run([ "${algorithm}sum", $file ], '>', \$out, '2>', \$err)
		  or die "${algorithm}sum failed: $err";
		return (split /\s+/, $out)[0];
	}
	die "unknown algorithm $algorithm" unless $algorithm eq 'crc32';
	IPC::Run::run([ 'gzip', '-c', $file ], '>', \$out, '2>', \$err)
	  or die "gzip failed: $err";
	my $gzip = sprintf('%08x', unpack('V', substr($out, -8, 4)));
	IPC::Run::run([ 'crc32', $file ], '>', \$out, '2>', \$err)
	  or die "crc32 failed (apt-get install libarchive-zip-perl): $err";
	$out =~ s/\s+$//;
	die "crc32 says $out, gzip's trailer $gzip" if $out ne $gzip;
	return $out;
}

# The manifest of KEY, as raw bytes and decoded (undef if it is not JSON).
sub manifest
{
	my ($key) = @_;
	my $raw = s3_get("$key.manifest.json");
	my $decoded = eval { $json->decode($raw) };
	diag("the manifest of $key is not JSON: $@") unless defined $decoded;
	return ($raw, $decoded);
}

my ($state, $out, $err);

###########################################################################
# (a) a miss writes a manifest with every field right
###########################################################################
my $before = $node->safe_psql($db, 'SELECT now()');
my $key = $node->safe_psql($db, "SELECT tsnap_snapshot('$regclass')");
my $after = $node->safe_psql($db, 'SELECT now()');
like($key, qr{^\Q$node->{tsnap_prefix}/$sysid/\E.*\.csv$}, 'a miss returns a key');
ok(s3_exists("$key.manifest.json"), 'the manifest exists at <key>.manifest.json');
my ($raw, $m) = manifest($key);
ok(utf8::decode(my $copy = $raw), 'the manifest is UTF-8');
is(ref $m, 'HASH', 'the manifest parses as a JSON object')
  or die "cannot check the fields of a manifest that does not parse";

is_deeply([ sort keys %$m ],
	[ sort qw(format_version tsnap_version server_version server_version_num
		  system_identifier database schema table tracking_id rows_version
		  fingerprint key columns rows bytes compression content_type csv
		  output_settings checksum created_at) ],
	'exactly the documented fields');
is($m->{format_version}, 1, 'format_version 1');
is($m->{tsnap_version},
	$node->safe_psql($db, "SELECT default_version FROM pg_available_extensions WHERE name = 'tsnap'"),
	'tsnap_version is the release');
is($m->{server_version}, $node->safe_psql($db, 'SHOW server_version'), 'server_version');
is($m->{server_version_num}, $node->safe_psql($db, 'SHOW server_version_num'),
	'server_version_num');
like($raw, qr/"server_version_num": \d+,/, 'server_version_num is a number');
is($m->{system_identifier},
	$node->safe_psql($db, 'SELECT system_identifier FROM pg_control_system()'),
	'system_identifier is pg_control_system()\'s');
like($raw, qr/"system_identifier": "\d+",/, 'system_identifier is a decimal string');
is(encode_utf8($m->{database}), $db, 'database name, with its quote and unicode');
is(encode_utf8($m->{schema}), $schema, 'schema name');
is(encode_utf8($m->{table}), $table, 'table name, with its quotes and backslash');
is($m->{tracking_id},
	$node->safe_psql($db, "SELECT tracking_id FROM tsnap.tracked WHERE tbl = '$regclass'::regclass"),
	'tracking_id');
my ($version, $rows, $bytes) = split /\|/, $node->safe_psql($db,
	"SELECT rows_version, rows, bytes FROM tsnap_snapshot_info('$regclass')");
is($m->{rows_version}, $version, 'rows_version');
is($m->{fingerprint},
	$node->safe_psql($db, "SELECT fingerprint FROM tsnap.snapshots WHERE key = '$key'"),
	'fingerprint is the recorded one');
like($m->{fingerprint}, qr/^[0-9a-f]{16}$/, 'fingerprint: 16 hex digits');
is($m->{key}, $key, 'key is the data object\'s');

# columns: what the catalog says, in attnum order, without the dropped one
my $catalog = $json->decode($node->safe_psql($db, qq{
	SET search_path = pg_catalog;
	SELECT json_agg(json_build_object('name', attname,
		'type', format_type(atttypid, atttypmod), 'type_oid', atttypid,
		'typmod', atttypmod, 'not_null', attnotnull) ORDER BY attnum)
	FROM pg_attribute WHERE attrelid = '$regclass'::regclass
	AND attnum > 0 AND NOT attisdropped}));
is_deeply($m->{columns}, $catalog,
	'columns: name, format_type, type OID, typmod and NOT NULL of each, as the catalog has them');
is_deeply([ map { encode_utf8($_->{name}) } @{ $m->{columns} } ],
	[ 'id', 'amount', 'code', 'tags', 'grid', 'stamp', 'flag', $col, 'feeling', 'note' ],
	'columns in order, the dropped one left out, names escaped right');
like($raw, qr/\\ttab"/, 'the tab in a column name is escaped as \\t');
is_deeply([ map { $_->{type} } @{ $m->{columns} } ],
	[ 'integer', 'numeric(10,2)', 'character varying(5)', 'text[]', 'integer[]',
	  'timestamp(3) with time zone', 'character(1)', 'bit varying(8)',
	  'public.mood', 'text' ],
	'types as format_type prints them, typmods included; a type outside pg_catalog qualified');
is($m->{columns}[1]{typmod}, (10 << 16 | 2) + 4, 'numeric(10,2): its typmod');
is($m->{columns}[0]{type_oid}, 23, 'integer: type OID 23');
ok($m->{columns}[0]{not_null} && $m->{columns}[9]{not_null}
	  && !$m->{columns}[1]{not_null}, 'NOT NULL columns are not_null: true, others false');

# the CSV header has the manifest's columns
my $file = download($key);
my $object = slurp_file($file);
my ($header) = split /\n/, $object, 2;
my @quoted = map { my $n = encode_utf8($_->{name});
	$n =~ /[",\r\n]/ ? '"' . ($n =~ s/"/""/gr) . '"' : $n } @{ $m->{columns} };
is($header, join(',', @quoted), 'the CSV header names the manifest\'s columns');

is($m->{rows}, 100, 'rows');
is($m->{rows}, $rows, 'rows as recorded');
my $h = head($key);
is($m->{bytes}, $h->{ContentLength}, 'bytes: the object\'s size as S3 reports it (HEAD)');
is($m->{bytes}, length($object), 'bytes: the downloaded object\'s length');
is($m->{bytes}, $bytes, 'bytes as recorded');
is($m->{compression}, 'none', 'compression none');
is($m->{content_type}, 'text/csv', 'content_type');
is($h->{ContentType}, 'text/csv', 'the object\'s Content-Type is the same');
is(head("$key.manifest.json")->{ContentType}, 'application/json',
	'the manifest\'s Content-Type is application/json');
is_deeply($m->{csv},
	{ header => JSON::PP::true, delimiter => ',', quote => '"', escape => '"',
	  null => '', encoding => 'UTF8' },
	'csv options and the server encoding');
is($m->{csv}{encoding}, $node->safe_psql($db, 'SHOW server_encoding'),
	'csv encoding is the server encoding');
is_deeply($m->{output_settings},
	{ DateStyle => 'ISO, MDY', IntervalStyle => 'postgres', TimeZone => 'UTC',
	  extra_float_digits => '1', bytea_output => 'hex', lc_monetary => 'C',
	  search_path => 'pg_catalog', quote_all_identifiers => 'off',
	  synchronize_seqscans => 'off' },
	'output_settings: the pinned settings');
is($m->{checksum}{algorithm}, 'crc32', 'checksum: crc32 by default');
like($m->{checksum}{value}, qr/^[0-9a-f]{8}$/, 'checksum: 8 lower-case hex digits');
is($m->{checksum}{value}, tool_checksum('crc32', $file),
	'checksum: crc32 (and gzip) on the downloaded object agree');
like($m->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
	'created_at: ISO 8601 in UTC');
is( $node->safe_psql($db,
		"SELECT '$m->{created_at}'::timestamptz BETWEEN '$before' AND '$after'"),
	't', 'created_at: during the call');

###########################################################################
# (b) a hit writes no manifest
###########################################################################
my $table_prefix = ($key =~ s{[^/]+$}{}r);
my @objects = sort(s3_list($table_prefix));
is_deeply(\@objects, [ $key, "$key.manifest.json" ], 'the object and its manifest, nothing else');
is($node->safe_psql($db, "SELECT key, hit FROM tsnap_snapshot_info('$regclass')"),
	"$key|t", 'the next call is a hit');
is_deeply([ sort(s3_list($table_prefix)) ], \@objects, 'a hit writes no manifest');
is(s3_get("$key.manifest.json"), $raw, 'and leaves the manifest as it was');

###########################################################################
# (c) a multipart object, a table without columns, a LATIN1 database
###########################################################################
$node->safe_psql('postgres', q{
	CREATE TABLE big (id int, v text);
	INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 120000) g;
	SELECT tsnap_track('big');
	CREATE TABLE nocols ();
	INSERT INTO nocols DEFAULT VALUES;
	SELECT tsnap_track('nocols');
});
my $big = $node->safe_psql('postgres', "SELECT tsnap_snapshot('big')");
cmp_ok($node->safe_psql('postgres', "SELECT parts FROM tsnap.snapshots WHERE key = '$big'"),
	'>', 1, 'multipart: the object was uploaded in parts');
my (undef, $bm) = manifest($big);
$file = download($big);
is($bm->{bytes}, -s $file, 'multipart: bytes');
is($bm->{checksum}{value}, tool_checksum('crc32', $file),
	'multipart: crc32 agrees with the checksum computed across parts');
is($bm->{rows}, 120000, 'multipart: rows');

my $nocols = $node->safe_psql('postgres', "SELECT tsnap_snapshot('nocols')");
my ($nraw, $nm) = manifest($nocols);
is_deeply($nm->{columns}, [], 'no columns: "columns" is an empty array');
is($nm->{rows}, 1, 'no columns: rows');
$file = download($nocols);
is($nm->{bytes}, -s $file, 'no columns: bytes');
is($nm->{checksum}{value}, tool_checksum('crc32', $file), 'no columns: checksum');

# (an ASCII database name: the names of databases are shared by databases
# of every encoding, so PostgreSQL keeps them in no particular one)
my $latin1 = 'latin';
$node->safe_psql('postgres',
	qq{CREATE DATABASE "$latin1" ENCODING 'LATIN1' LOCALE 'C' TEMPLATE template0});
$node->safe_psql($latin1, qq{
	CREATE EXTENSION tsnap;
	CREATE TABLE "t\x{c3}\x{a5}ble" ("n\x{c3}\x{a6}me" text);
	INSERT INTO "t\x{c3}\x{a5}ble" VALUES ('\x{c3}\x{a6}');
	SELECT tsnap_track('"t\x{c3}\x{a5}ble"');
});
my $lkey = $node->safe_psql($latin1, qq{SELECT tsnap_snapshot('"t\x{c3}\x{a5}ble"')});
my ($lraw, $lm) = manifest($lkey);
is($lm->{csv}{encoding}, 'LATIN1', 'LATIN1 database: the encoding says so');
is(encode_utf8($lm->{database}) . '/' . encode_utf8($lm->{table}) . '/'
	  . encode_utf8($lm->{columns}[0]{name}),
	"$latin1/t\x{c3}\x{a5}ble/n\x{c3}\x{a6}me",
	'LATIN1 database: names are converted to UTF-8 in the manifest');

# compressed objects: the manifest describes the object as stored
for my $codec ([ 'gzip', 'application/gzip', 'gunzip' ], [ 'zstd', 'application/zstd', 'zstd' ])
{
	my ($compression, $type, $tool) = @$codec;
	my $ck = $node->safe_psql('postgres', "SELECT tsnap_snapshot('big', '$compression')");
	my (undef, $cm) = manifest($ck);
	$file = download($ck);
	is($cm->{compression}, $compression, "$compression: compression");
	is($cm->{content_type}, $type, "$compression: content_type");
	is($cm->{content_type}, head($ck)->{ContentType}, "$compression: the object's Content-Type");
	is($cm->{bytes}, -s $file, "$compression: bytes of the compressed object");
	is($cm->{checksum}{value}, tool_checksum('crc32', $file),
		"$compression: the checksum is of the compressed object");
	is($cm->{rows}, 120000, "$compression: rows");
	my ($csv, $err) = ('', '');
	IPC::Run::run([ $tool, '-d', '-c', $file ], '>', \$csv, '2>', \$err)
	  or die "$tool -d failed: $err";
	is((split /\n/, $csv, 2)[0], join(',', map { $_->{name} } @{ $cm->{columns} }),
		"$compression: the decompressed CSV has the manifest's columns");
}

# tsnap.max_snapshot_size caps the CSV, not its manifest
$node->safe_psql('postgres', 'CREATE TABLE tiny (' .
	join(', ', map { "column_with_a_long_name_$_ int" } 1 .. 20) . ');
	INSERT INTO tiny DEFAULT VALUES; SELECT tsnap_track(\'tiny\')');
($state, $out, $err) = psql_sqlstate($node,
	"SET tsnap.max_snapshot_size = '1kB'; SELECT tsnap_snapshot('tiny')");
is($state, '', 'a CSV under tsnap.max_snapshot_size: the snapshot succeeds');
cmp_ok(length(s3_get("$out.manifest.json")), '>', 1024,
	'although its manifest is larger than the cap');

###########################################################################
# (d) the other algorithms, each with its standard tool
###########################################################################
for my $algorithm (qw(sha256 md5 none))
{
	tsnap_reload($node, "tsnap.manifest_checksum = $algorithm\n");
	$node->safe_psql('postgres', 'INSERT INTO big VALUES (0, NULL)');
	my $k = $node->safe_psql('postgres', "SELECT tsnap_snapshot('big')");
	my ($r, $am) = manifest($k);
	if ($algorithm eq 'none')
	{
		ok(exists $am->{checksum} && !defined $am->{checksum},
			'none: the manifest has "checksum": null');
		next;
	}
	is($am->{checksum}{algorithm}, $algorithm, "$algorithm: named in the manifest");
	is($am->{checksum}{value}, tool_checksum($algorithm, download($k)),
		"$algorithm: the standard tool agrees");
}
tsnap_reload($node, "tsnap.manifest_checksum = crc32\n");

###########################################################################
# (d2) tsnap_restore reads these manifests
###########################################################################
$node->safe_psql($db, "CREATE TABLE public.restored (LIKE $qualified)");
is($node->safe_psql($db, "SELECT tsnap_restore('public.restored', '$key')"), '100',
	'tsnap_restore loads the snapshot through its manifest');
is( $node->safe_psql($db, qq{
		SELECT count(*) FROM (TABLE public.restored EXCEPT ALL TABLE $qualified) d}),
	'0', 'and the restored rows are the table\'s');
$node->safe_psql('postgres', 'CREATE TABLE big_restored (LIKE big)');
my $zkey = $node->safe_psql('postgres', "SELECT tsnap_snapshot('big', 'zstd')");
is($node->safe_psql('postgres', "SELECT tsnap_restore('big_restored', '$zkey')"),
	$node->safe_psql('postgres', 'SELECT count(*) FROM big'),
	'a zstd snapshot restores through its manifest too');

###########################################################################
# (e) retention deletes each manifest with its object
###########################################################################
$node->safe_psql($db, "INSERT INTO $qualified (id) VALUES (1000)");
my $key2 = $node->safe_psql($db, "SELECT tsnap_snapshot('$regclass')");
isnt($key2, $key, 'a new version, a new key');
ok( poll_until(60, sub {
		join(' ', sort(s3_list($table_prefix))) eq "$key2 $key2.manifest.json" }),
	'keep_versions = 1: the older object and its manifest are deleted');
ok(poll_until(30, sub {
		$node->safe_psql($db, 'SELECT count(*) FROM tsnap.pending_deletes') eq '0' }),
	'and leave tsnap.pending_deletes');

# a dropped table's objects, once a worker runs
my $big_prefix = ($big =~ s{[^/]+$}{}r);
ok(scalar(s3_list($big_prefix)) > 0, 'the dropped table\'s objects are there');
$node->safe_psql('postgres', 'DROP TABLE big');
$node->safe_psql('postgres', 'INSERT INTO nocols DEFAULT VALUES');
$node->safe_psql('postgres', "SELECT tsnap_snapshot('nocols')");
ok(poll_until(60, sub { scalar(s3_list($big_prefix)) == 0 }),
	'DROP TABLE: its objects and their manifests are deleted');

###########################################################################
# (f) a manifest that cannot be written fails the snapshot
###########################################################################
# Every PutObject of a manifest fails with 500; everything else passes.
my $p500 = start_faultproxy(methods => 'PUT', match => '.manifest.json',
	faults => '500', rate => 1);
my $node_f = tsnap_node('manifest_f', endpoint => $p500->{endpoint}, conf => qq{
tsnap.keep_for = 0
tsnap.s3_max_attempts = 2
});
my $prefix_f = "$node_f->{tsnap_prefix}/";
$node_f->safe_psql('postgres', q{
	CREATE TABLE faulty (id int, v text);
	INSERT INTO faulty SELECT g, 'v' || g FROM generate_series(1, 1000) g;
	SELECT tsnap_track('faulty');
});
($state, $out, $err) = psql_sqlstate($node_f, "SELECT tsnap_snapshot('faulty')");
is($state, '58030', 'manifest PUT fails: the snapshot fails (58030)');
like($err, qr/could not upload object ".*\.csv\.manifest\.json"/,
	'the error names the manifest');
is($out, '', 'no key is returned');
is($node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '0',
	'nothing recorded');
my $plog = slurp_file($p500->{log});
like($plog, qr{^\d+ PUT pass \S*/public/faulty/\S*\.csv$}m,
	'the data object was uploaded before the manifest');
like($plog, qr{^\d+ PUT 500 \S*/public/faulty/\S*\.csv\.manifest\.json$}m,
	'its manifest\'s PUT was the one that failed');
ok(poll_until(60, sub { scalar(s3_list($prefix_f)) == 0 }),
	'after retention: neither the object nor a manifest is left');
ok(poll_until(30, sub {
		$node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.pending_deletes') eq '0' }),
	'and nothing is left queued');
$plog = slurp_file($p500->{log});
like($plog, qr{^\d+ DELETE pass \S*/public/faulty/\S*\.csv$}m, 'retention deleted the object');
like($plog, qr{^\d+ DELETE pass \S*/public/faulty/\S*\.csv\.manifest\.json$}m,
	'and its manifest');

# S3 stores the manifest, but its reply never comes back in time.
my $slow = start_faultproxy(methods => 'PUT', match => '.manifest.json',
	faults => 'slowreply', rate => 1, stall => 8);
tsnap_reload($node_f, qq{
tsnap.s3_endpoint = '$slow->{endpoint}'
tsnap.s3_request_timeout = '2s'
});
my $caller = start_psql($node_f, "SELECT tsnap_snapshot('faulty')");
ok( poll_until(60, sub { grep { /\.manifest\.json$/ } s3_list($prefix_f) }),
	'slow reply: S3 stored the manifest while its PUT waits');
my ($crc, $cout, $cerr, $cstate) = finish_psql($caller);
isnt($crc, 0, 'slow reply: the snapshot fails');
is($cout, '', 'slow reply: no key is returned');
like($cerr, qr/manifest\.json/, 'slow reply: the error names the manifest');
is($node_f->safe_psql('postgres', 'SELECT count(*) FROM tsnap.snapshots'), '0',
	'slow reply: nothing recorded');
ok(poll_until(60, sub { scalar(s3_list($prefix_f)) == 0 }),
	'slow reply: after retention neither the object nor its stored manifest is left');

# and once S3 answers again, the snapshot is built with its manifest
tsnap_reload($node_f, "tsnap.s3_endpoint = '$ENV{S3_ENDPOINT}'\n");
my $fkey = $node_f->safe_psql('postgres', "SELECT tsnap_snapshot('faulty')");
is_deeply([ sort(s3_list($prefix_f)) ], [ $fkey, "$fkey.manifest.json" ],
	'then a snapshot succeeds, with its manifest');

$node_f->stop;
stop_faultproxy($p500);
stop_faultproxy($slow);
s3_delete_prefix($prefix_f);
$node->stop;
s3_delete_prefix("$node->{tsnap_prefix}/");

done_testing();
