# Copyright (c) tsnap authors

# tsnap_restore: a snapshot loaded back into a table through COPY FROM.
#
#  (a) modes: require_empty loads into an empty table and refuses a full
#      one; append adds; replace replaces; the table then holds exactly the
#      object's rows (its COPY output equals the object, byte for byte);
#  (b) refusals before a data byte: unknown mode, missing key or manifest,
#      unknown manifest format, columns that differ (each difference
#      listed); extra target columns with defaults are filled;
#  (c) gzip and zstd objects (made with gzip -c and zstd -c), sha256, md5
#      and crc32 checksums;
#  (d) damaged objects raise and leave the table as it was;
#  (e) versions: an older version over a newer one in replace needs force,
#      also when the target is the tracked source itself;
#  (f) replace is atomic: concurrent READ COMMITTED and REPEATABLE READ
#      readers see the old rows or the new, never an empty table;
#  (g) cancel and statement_timeout during a stalled download end the call
#      with 57014 and leave the table as it was;
#  (h) attacks by an unprivileged role: rows it could not SELECT, targets
#      it may not write, row-level security, operators on its search_path;
#  (i) a key written by another cluster into the same bucket.
#
# The manifests are written here (the format is a contract with their
# writer): each test snapshot's manifest is built from the catalog, with
# the checksum of the object as stored.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use Digest::MD5 qw(md5_hex);
use Compress::Zlib ();
use IPC::Run;
use TsnapTest;

tsnap_require_s3();

my $node = tsnap_node('restore');
my $prefix = $node->{tsnap_prefix};
my $sysid = tsnap_sysid($node);
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $nobj = 0;

# ---- helpers ----

# Store BYTES at KEY with awscli.
sub put_object
{
	my ($key, $bytes) = @_;
	my $file = "$tmp/put-" . $nobj++;
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $bytes;
	close $fh;
	my ($rc, $out, $err) = aws_s3api('put-object', '--bucket', $ENV{S3_BUCKET},
		'--key', $key, '--body', $file);
	die "put-object $key failed: $err" if $rc != 0;
	return;
}

# The columns of TABLE as a manifest lists them: format_type with
# search_path = pg_catalog.
sub columns_of
{
	my ($n, $table) = @_;
	my $out = $n->safe_psql('postgres', qq{
		SET search_path = pg_catalog;
		SELECT attname || E'\\t' || format_type(atttypid, atttypmod)
		FROM pg_attribute WHERE attrelid = '$table'::regclass
		AND attnum > 0 AND NOT attisdropped ORDER BY attnum});
	return [ map { my ($name, $type) = split /\t/; { name => $name, type => $type } }
		  split /\n/, $out ];
}

# A manifest for DATA (the object's bytes as stored) at KEY, a snapshot of
# TABLE on node N at ROWS_VERSION; SET overrides fields.
sub manifest_for
{
	my (%o) = @_;
	my $n = $o{node} // $node;
	my ($schema, $table) = split /\./, $o{table};
	my $tracking = $n->safe_psql('postgres',
		"SELECT tracking_id FROM tsnap.tracked_tables WHERE tbl = '$o{table}'::regclass");
	my $alg = $o{checksum} // 'sha256';
	my $sum =
		$alg eq 'sha256' ? sha256_hex($o{data})
	  : $alg eq 'md5' ? md5_hex($o{data})
	  : sprintf('%08x', Compress::Zlib::crc32($o{data}));
	my %m = (
		format_version => 1,
		tsnap_version => '0.2.0',
		server_version => '15',
		server_version_num => 150000,
		system_identifier => tsnap_sysid($n),
		database => 'postgres',
		schema => $schema,
		table => $table,
		tracking_id => $tracking,
		rows_version => 0 + $o{rows_version},
		fingerprint => '0000000000000000',
		key => $o{key},
		columns => columns_of($n, $o{table}),
		rows => 0,
		bytes => length($o{data}),
		compression => $o{compression} // 'none',
		content_type => 'text/csv',
		csv => {
			header => JSON::PP::true, delimiter => ',', quote => '"',
			escape => '"', null => '', encoding => 'UTF8' },
		output_settings => {
			DateStyle => 'ISO, MDY', IntervalStyle => 'postgres',
			TimeZone => 'UTC', extra_float_digits => '1',
			bytea_output => 'hex', lc_monetary => 'C',
			search_path => 'pg_catalog' },
		checksum => { algorithm => $alg, value => $sum },
		created_at => '2024-01-01T00:00:00Z');
	%m = (%m, %{ $o{set} // {} });
	return \%m;
}

sub put_manifest
{
	my ($key, $m) = @_;
	put_object("$key.manifest.json", JSON::PP->new->canonical->encode($m));
	return;
}

# Snapshot TABLE on node N (in COMPRESSION, if given) and write its
# manifest; returns (key, version, the object's bytes).
sub snapshot
{
	my ($table, $n, $compression) = @_;
	$n //= $node;
	my $arg = $compression ? ", compression => '$compression'" : '';
	my ($key, $version) = split /\|/,
	  $n->safe_psql('postgres', "SELECT key, rows_version FROM tsnap_snapshot_info('$table'$arg)");
	my $csv = s3_get($key);
	put_manifest($key, manifest_for(node => $n, key => $key, data => $csv,
		table => $table, rows_version => $version, compression => $compression));
	return ($key, $version, $csv);
}

# Store DATA at KEY (not in the ledger) with a manifest naming TABLE.
sub put_copy
{
	my ($key, $data, %o) = @_;
	put_object($key, $data);
	put_manifest($key, manifest_for(key => $key, data => $data, %o));
	return $key;
}

my $pinned = q{SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres;
	SET TimeZone = 'UTC'; SET extra_float_digits = 1;
	SET bytea_output = hex; SET lc_monetary = 'C';};

# COPY TABLE out under the settings a snapshot is written with, in its
# physical order (a fresh table holds rows in the order they were loaded)
# or ordered by its first column.
sub copy_out
{
	my ($table, $order) = @_;
	my $query = "SELECT * FROM $table" . ($order ? ' ORDER BY 1' : '');
	return $node->safe_psql('postgres',
		"$pinned COPY ($query) TO STDOUT WITH (FORMAT csv, HEADER)") . "\n";
}

# The rows of CSV (a snapshot object) as copy_out(TABLE, 1) would show them
# in a table like TABLE: loaded by psql's own \copy, not by tsnap.
sub rows_of
{
	my ($csv, $table) = @_;
	my $file = "$tmp/rows-" . $nobj++ . '.csv';
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $csv;
	close $fh;
	return $node->safe_psql('postgres', qq{
		$pinned
		CREATE TEMP TABLE scratch (LIKE $table);
		\\copy scratch FROM '$file' WITH (FORMAT csv, HEADER)
		COPY (SELECT * FROM scratch ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)}) . "\n";
}

# Does TABLE hold exactly the rows of the object CSV?
sub holds
{
	my ($table, $csv, $name) = @_;
	return is(copy_out($table, 1), rows_of($csv, $table), $name);
}

sub count_of
{
	my ($table) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM $table");
}

# Run SQL; returns (SQLSTATE or '', stdout, stderr).
sub try_sql
{
	my ($sql, %o) = @_;
	return psql_sqlstate($node, $sql, %o);
}

# ---- (a) modes ----

$node->safe_psql('postgres', q{
	CREATE TABLE src (
		id int PRIMARY KEY, t text, n numeric(12,3), f float8, b bytea,
		ts timestamptz, d date, iv interval, m money, j jsonb, a int[],
		flag bool, u uuid);
	INSERT INTO src
	SELECT g,
		CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'comma, "quote"'
			WHEN 3 THEN E'line\nbreak\r\nand CR' WHEN 4 THEN 'h' || chr(233) || 'llo '
			WHEN 5 THEN '\.' ELSE 'plain ' || g END,
		g * 1.125, g / 3.0::float8, decode(lpad(to_hex(g), 8, '0'), 'hex'),
		'2024-01-02 03:04:05+00'::timestamptz + g * interval '1 hour 7 seconds',
		date '2000-02-29' + g,
		make_interval(years => g % 3, months => -(g % 5), days => g % 11,
			secs => -(g % 13) * 61.5),
		(g * 12.34)::numeric::money, jsonb_build_object('g', g, 'arr', jsonb_build_array(g, 'x')),
		ARRAY[g, g + 1, NULL], g % 2 = 0,
		md5(g::text)::uuid
	FROM generate_series(1, 500) g;
	SELECT tsnap_track('src');
	CREATE TABLE dst (LIKE src INCLUDING ALL);
	CREATE TABLE dst_app (LIKE src);
});

my ($k1, $v1, $csv1) = snapshot('public.src');

# input settings of the caller differ from the writer's: the restore pins them
is( $node->safe_psql('postgres', qq{
		SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
		SELECT tsnap_restore('dst', '$k1')}),
	'500', 'require_empty into an empty table: 500 rows loaded');
is(copy_out('dst'), $csv1, 'the table holds exactly the rows of the object (COPY output = object)');

my ($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$k1')");
is($state, '55000', 'require_empty into a table with rows: 55000');
like($err, qr/table "dst" is not empty/, '  names the table');

is($node->safe_psql('postgres', "SELECT tsnap_restore('dst_app', '$k1', 'append')"), '500', 'append: 500');
is($node->safe_psql('postgres', "SELECT tsnap_restore('dst_app', '$k1', mode => 'append')"), '500', 'append again: 500');
is(count_of('dst_app'), '1000', '  the table has both');

$node->safe_psql('postgres', "UPDATE dst SET t = 'changed' WHERE id < 100");
is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k1', 'replace')"), '500', 'replace: 500');
holds('dst', $csv1, '  the table holds the object\'s rows alone');
is( $node->safe_psql('postgres', qq{SELECT rows_version, key = '$k1', rows FROM tsnap.restores
		WHERE target = 'dst'::regclass}),
	"$v1|t|500", 'tsnap.restores records the version, key and rows');

($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$k1', 'upsert')");
is($state, '22023', 'unknown mode: 22023');
like($err, qr/HINT:\s+Valid modes are "require_empty", "append" and "replace"/, '  hint lists the modes');
($state) = try_sql("SELECT tsnap_restore('dst', NULL)");
is($state, '22004', 'a null key: 22004');

# ---- (b) refused before any data byte ----

($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$prefix/no/such.csv', 'replace')");
is($state, '58P01', 'missing key: 58P01');
like($err, qr{snapshot "\Q$prefix\E/no/such\.csv" has no manifest}, '  names the key');

put_object("$prefix/nomanifest.csv", $csv1);
($state) = try_sql("SELECT tsnap_restore('dst', '$prefix/nomanifest.csv', 'replace')");
is($state, '58P01', 'object without a manifest: 58P01');

put_manifest("$prefix/nodata.csv",
	manifest_for(key => "$prefix/nodata.csv", data => $csv1, table => 'public.src', rows_version => $v1));
($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$prefix/nodata.csv', 'replace')");
is($state, '58P01', 'manifest without its object: 58P01');
like($err, qr{snapshot "\Q$prefix\E/nodata\.csv" is not in bucket}, '  names the key');
holds('dst', $csv1, '  the table is as it was');

put_copy("$prefix/v2format.csv", $csv1, table => 'public.src', rows_version => $v1,
	set => { format_version => 2 });
($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$prefix/v2format.csv', 'replace')");
is($state, '0A000', 'manifest format_version 2: 0A000');
like($err, qr/manifest format version 2 is not supported/, '  says which');

put_object("$prefix/badjson.csv", $csv1);
put_object("$prefix/badjson.csv.manifest.json", '{"format_version": 1, "columns": [');
($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$prefix/badjson.csv', 'replace')");
is($state, '22P02', 'a manifest that is not JSON: 22P02');
like($err, qr/manifest "\Q$prefix\E\/badjson\.csv\.manifest\.json"/, '  the error names the manifest');

put_copy("$prefix/otherkey.csv", $csv1, table => 'public.src', rows_version => $v1,
	set => { key => "$prefix/elsewhere.csv" });
($state) = try_sql("SELECT tsnap_restore('dst', '$prefix/otherkey.csv', 'replace')");
is($state, 'XX001', 'a manifest that describes another object: XX001');

# the CSV's encoding: COPY converts it to the server's, or refuses
$node->safe_psql('postgres', q{
	CREATE TABLE small (id int, s text);
	SELECT tsnap_track('small');
	CREATE TABLE small_dst (LIKE small);
});
my %csv_opts = (header => JSON::PP::true, delimiter => ',', quote => '"', escape => '"', null => '');
put_copy("$prefix/enc/latin1.csv", "id,s\n1,caf\xe9\n", table => 'public.small', rows_version => 0,
	set => { csv => { %csv_opts, encoding => 'LATIN1' } });
is($node->safe_psql('postgres', "SELECT tsnap_restore('small_dst', '$prefix/enc/latin1.csv')"), '1',
	'a LATIN1 object restores');
is($node->safe_psql('postgres', "SELECT s = 'caf' || chr(233) FROM small_dst"), 't',
	'  converted to the server encoding');
put_copy("$prefix/enc/bogus.csv", "id,s\n1,x\n", table => 'public.small', rows_version => 0,
	set => { csv => { %csv_opts, encoding => 'NO_SUCH_ENCODING' } });
($state, $out, $err) = try_sql("SELECT tsnap_restore('small_dst', '$prefix/enc/bogus.csv', 'replace')");
is($state, '22023', 'an encoding PostgreSQL does not know: 22023, as COPY says');
put_copy("$prefix/enc/notutf8.csv", "id,s\n1,caf\xe9\n", table => 'public.small', rows_version => 0);
($state) = try_sql("SELECT tsnap_restore('small_dst', '$prefix/enc/notutf8.csv', 'replace')");
is($state, '22021', 'bytes that are not in the manifest\'s encoding: 22021');
put_copy("$prefix/enc/header.csv", "id,t\n1,x\n", table => 'public.small', rows_version => 0);
($state, $out, $err) = try_sql("SELECT tsnap_restore('small_dst', '$prefix/enc/header.csv', 'replace')");
is($state, '22P04', 'a header line that does not name the manifest\'s columns: 22P04 (HEADER MATCH)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM small_dst'), '1', '  the table is as it was');

$node->safe_psql('postgres', q{
	CREATE TABLE wrong (id bigint, t text, n numeric(12,3), b bytea, ts timestamptz,
		d date, iv interval, m money, j jsonb, a int[], flag bool, u uuid,
		must int NOT NULL);
	CREATE TABLE swapped (t text, id int, n numeric(12,3), f float8, b bytea,
		ts timestamptz, d date, iv interval, m money, j jsonb, a int[], flag bool, u uuid);
});
($state, $out, $err) = try_sql("SELECT tsnap_restore('wrong', '$k1')");
is($state, '42804', 'columns that differ: 42804');
like($err, qr/3 differences/, '  counts the differences');
like($err, qr/Column "id" is integer in the snapshot but bigint in the table\./, '  lists a type difference');
like($err, qr/Column "f" \(double precision\) of the snapshot is not in the table\./,
	'  lists a column the table lacks');
like($err, qr/Column "must" of the table is not in the snapshot, and is NOT NULL without a default\./,
	'  lists a table column nothing can fill');
($state, $out, $err) = try_sql("SELECT tsnap_restore('swapped', '$k1')");
is($state, '42804', 'columns in another order: 42804');
like($err, qr/The columns are in another order: \(id, t, n/, '  says so');

$node->safe_psql('postgres', q{
	CREATE TABLE wider (LIKE src, extra1 int DEFAULT 7, extra2 text,
		extra3 int GENERATED ALWAYS AS (id * 2) STORED,
		extra4 int GENERATED BY DEFAULT AS IDENTITY);
	CREATE TABLE gsrc (id int, g int GENERATED ALWAYS AS (id + 1) STORED);
	INSERT INTO gsrc SELECT generate_series(1, 10);
	SELECT tsnap_track('gsrc');
	CREATE TABLE gdst (LIKE gsrc INCLUDING GENERATED);
});
is($node->safe_psql('postgres', "SELECT tsnap_restore('wider', '$k1')"), '500',
	'extra columns with defaults, identity, generated or NULL are filled');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM wider WHERE extra1 = 7 AND extra2 IS NULL AND extra3 = id * 2 AND extra4 > 0'),
	'500', '  each as COPY fills it');
my ($kg) = snapshot('public.gsrc');
($state, $out, $err) = try_sql("SELECT tsnap_restore('gdst', '$kg')");
is($state, '42804', 'a generated column the snapshot has values for: 42804');
like($err, qr/Column "g" is a generated column of the table, and COPY cannot write generated columns\./,
	'  says why');

# ---- (c) gzip, zstd, checksums ----

sub compress_with
{
	my ($cmd, $data) = @_;
	my $out;
	IPC::Run::run($cmd, '<', \$data, '>', \$out) or die "@$cmd failed";
	return $out;
}

my $gz = compress_with([ 'gzip', '-c' ], $csv1);
put_copy("$prefix/copies/src.csv.gz", $gz, table => 'public.src', rows_version => $v1,
	compression => 'gzip');
my $zst = compress_with([ 'zstd', '-q', '-c' ], $csv1);
put_copy("$prefix/copies/src.csv.zst", $zst, table => 'public.src', rows_version => $v1,
	compression => 'zstd', checksum => 'md5');
put_copy("$prefix/copies/src-crc.csv", $csv1, table => 'public.src', rows_version => $v1,
	checksum => 'crc32');
my $half = int(length($csv1) / 2);
my $gz2 = compress_with([ 'gzip', '-c' ], substr($csv1, 0, $half))
  . compress_with([ 'gzip', '-c' ], substr($csv1, $half));
put_copy("$prefix/copies/src-2.csv.gz", $gz2, table => 'public.src', rows_version => $v1,
	compression => 'gzip', checksum => 'crc32');
for my $case (
	[ 'gzip (sha256)', 'src.csv.gz' ],
	[ 'zstd (md5)', 'src.csv.zst' ],
	[ 'uncompressed (crc32)', 'src-crc.csv' ],
	[ 'gzip of two members (crc32)', 'src-2.csv.gz' ])
{
	my ($label, $name) = @$case;
	$node->safe_psql('postgres', 'TRUNCATE dst');
	is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$prefix/copies/$name')"),
		'500', "$label: 500 rows");
	holds('dst', $csv1, "  $label: the rows of the object");
}

# snapshots tsnap itself compressed
for my $codec ('gzip', 'zstd')
{
	my ($kc) = snapshot('public.src', undef, $codec);
	$node->safe_psql('postgres', 'TRUNCATE dst');
	is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$kc')"), '500',
		"tsnap_snapshot(..., '$codec'): 500 rows");
	holds('dst', $csv1, "  $codec snapshot: the rows of version $v1");
}

# ---- (d) damaged objects raise and leave nothing ----

$node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k1', 'replace')");
my (%damaged, $bad);

# half the object, with the whole object's manifest
put_object("$prefix/damaged/short.csv", substr($csv1, 0, $half));
put_manifest("$prefix/damaged/short.csv",
	manifest_for(key => "$prefix/damaged/short.csv", data => $csv1, table => 'public.src',
		rows_version => $v1));
# one character changed: every row loads, the checksum does not match
($bad = $csv1) =~ s/,plain 13,/,plain 14,/ or die "no row 13";
put_object("$prefix/damaged/flipped.csv", $bad);
put_manifest("$prefix/damaged/flipped.csv",
	manifest_for(key => "$prefix/damaged/flipped.csv", data => $csv1, table => 'public.src',
		rows_version => $v1));
# a gzip stream cut short, checksummed as stored: gzip itself must notice
put_copy("$prefix/damaged/cut.csv.gz", substr($gz, 0, int(length($gz) * 0.6)),
	table => 'public.src', rows_version => $v1, compression => 'gzip');
put_copy("$prefix/damaged/garbage.csv.zst", 'this is not zstd at all',
	table => 'public.src', rows_version => $v1, compression => 'zstd');
# a row COPY cannot read, checksummed as stored
($bad = $csv1) =~ s/\n300,/\nthree hundred,/ or die "no row 300";
put_copy("$prefix/damaged/badrow.csv", $bad, table => 'public.src', rows_version => $v1);

for my $case (
	[ 'a truncated object', 'short.csv', 'XX001', qr/The object has \d+ bytes; the manifest says \d+/ ],
	[ 'a changed byte', 'flipped.csv', 'XX001', qr/Its sha256 is [0-9a-f]{64}; the manifest says/ ],
	[ 'a gzip stream cut short', 'cut.csv.gz', 'XX001', qr/gzip stream ends in the middle/ ],
	[ 'bytes that are not zstd', 'garbage.csv.zst', 'XX001', qr/zstd stream is corrupt/ ],
	[ 'a row COPY cannot read', 'badrow.csv', '22P02', qr/COPY dst, line \d+, column id: "three hundred"/ ])
{
	my ($label, $name, $want, $text) = @$case;
	($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$prefix/damaged/$name', 'replace')");
	is($state, $want, "$label: $want");
	like($err, $text, '  says what is wrong');
	holds('dst', $csv1, '  the table is as it was');
}

# ---- (e) versions ----

$node->safe_psql('postgres', "UPDATE src SET t = t || '!' WHERE id <= 10");
my ($k2, $v2, $csv2) = snapshot('public.src');
cmp_ok($v2, '>', $v1, 'a newer version of src');
is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k2', 'replace')"), '500',
	'replace with the newer version');
($state, $out, $err) = try_sql("SELECT tsnap_restore('dst', '$k1', 'replace')");
is($state, '55000', 'replace with an older version of the same source: 55000');
like($err, qr/HINT:\s+Call tsnap_restore\(\.\.\., force => true\)/, '  hint names force => true');
holds('dst', $csv2, '  the table keeps the newer rows');
is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k1', 'replace', force => true)"), '500',
	'with force => true it goes back');
holds('dst', $csv1, '  to the older rows');
is($node->safe_psql('postgres', "SELECT rows_version FROM tsnap.restores WHERE target = 'dst'::regclass"),
	$v1, '  and tsnap.restores says so');
is($node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k2', 'replace')"), '500',
	'a newer version needs no force');

# the tracked source itself holds its own rows_version
($state, $out, $err) = try_sql("SELECT tsnap_restore('src', '$k1', 'replace')");
is($state, '55000', 'an older snapshot of the tracked source over itself: 55000');
is($node->safe_psql('postgres', "SELECT tsnap_restore('src', '$k1', 'replace', force => true)"), '500',
	'  with force it restores');
holds('src', $csv1, '  the source holds the older rows');
cmp_ok($node->safe_psql('postgres', "SELECT tsnap_version('src')"), '>', $v2,
	'  and a newer version: the restore is a write like any other');

is($node->safe_psql('postgres', "SELECT count(*) FROM tsnap.restores WHERE target = 'dst_app'::regclass"),
	'1', 'tsnap.restores has a row for dst_app');
$node->safe_psql('postgres', 'DROP TABLE dst_app');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tsnap.restores WHERE target::oid NOT IN (SELECT oid FROM pg_class)'),
	'0', 'a dropped table leaves nothing in tsnap.restores');

# ---- (f) replace is atomic for concurrent readers ----

$node->safe_psql('postgres', "INSERT INTO src SELECT g, 'more' FROM generate_series(501, 600) g");
my ($k3, $v3, $csv3) = snapshot('public.src');
$node->safe_psql('postgres', "SELECT tsnap_restore('dst', '$k1', 'replace', force => true)");
is(count_of('dst'), '500', 'the table holds 500 rows before');

# counts seen by a READ COMMITTED reader, a new snapshot per statement
my $loop = start_psql($node, q{DO $$
	DECLARE c bigint; seen text := ' ';
	BEGIN
		FOR i IN 1..300 LOOP
			SELECT count(*) INTO c FROM dst;
			IF position(' ' || c || ' ' IN seen) = 0 THEN seen := seen || c || ' '; END IF;
			PERFORM pg_sleep(0.01);
		END LOOP;
		RAISE NOTICE 'seen:%', seen;
	END $$});
my $rr = $node->background_psql('postgres');
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($rr->query_safe('SELECT count(*) FROM dst'), '500', 'a REPEATABLE READ reader sees 500');
my $writer = $node->background_psql('postgres');
$writer->query_safe('BEGIN');
is($writer->query_safe("SELECT tsnap_restore('dst', '$k3', 'replace')"), '600',
	'replace with 600 rows, not yet committed');
is(count_of('dst'), '500', 'a READ COMMITTED reader still sees the old 500 rows');
is($rr->query_safe('SELECT count(*) FROM dst'), '500', 'the REPEATABLE READ reader too');
$writer->query_safe('COMMIT');
is(count_of('dst'), '600', 'after commit a new reader sees the new 600 rows');
is($rr->query_safe('SELECT count(*) FROM dst'), '500',
	'the REPEATABLE READ reader keeps its 500 (no TRUNCATE, no empty table)');
$rr->query_safe('COMMIT');
is($rr->query_safe('SELECT count(*) FROM dst'), '600', '  and sees 600 in its next transaction');
$rr->quit;
$writer->quit;
my ($lrc, $lout, $lerr) = finish_psql($loop);
my ($seen) = $lerr =~ /seen:\s*([\d ]*)/;
my @seen = split ' ', $seen // '';
ok(@seen > 0 && !grep({ $_ ne '500' && $_ ne '600' } @seen),
	"the looping reader saw only 500 or 600 rows, never an empty table (@seen)");
holds('dst', $csv3, 'the table holds the new rows');

# ---- (g) cancel and statement_timeout during a stalled download ----

$node->safe_psql('postgres', q{
	CREATE TABLE big (id int, pad text);
	INSERT INTO big SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 60000) g;
	SELECT tsnap_track('big');
	CREATE TABLE bigdst (LIKE big);
});
my ($kb, $vb, $csvb) = snapshot('public.big');
# a copy outside the ledger, read through the proxy (a recorded key is read
# where it was written)
my $kbc = put_copy("$prefix/copies/big.csv", $csvb, table => 'public.big', rows_version => $vb);
$node->safe_psql('postgres', "SELECT tsnap_restore('bigdst', '$kbc')");
$node->safe_psql('postgres', 'DELETE FROM bigdst WHERE id > 50000');
my $before = $node->safe_psql('postgres', 'SELECT count(*), sum(id), max(id) FROM bigdst');
is($before, '50000|1250025000|50000', 'bigdst holds 50000 rows');

# request 1 is the manifest, request 2 the data: half of it comes, then nothing
for my $case ([ 'cancel', undef ], [ 'statement_timeout', "SET statement_timeout = '8s'" ])
{
	my ($label, $set) = @$case;
	my $proxy = start_faultproxy(nth => 2, faults => 'midstall', stall => 300);
	tsnap_reload($node, "tsnap.s3_endpoint = '$proxy->{endpoint}'\n");
	my $caller = start_psql($node, ($set ? ($set) : ()),
		"SELECT tsnap_restore('bigdst', '$kbc', 'replace')");
	ok( poll_until(60, sub {
				$node->safe_psql('postgres',
					"SELECT coalesce(max(tuples_processed), 0) > 0 FROM pg_stat_progress_copy "
					  . "WHERE relid = 'bigdst'::regclass") eq 't' }),
		"$label: COPY loads rows from the first half of the object");
	if (!$set)
	{
		is( $node->safe_psql('postgres',
				"SELECT pg_cancel_backend(pid) FROM pg_stat_progress_copy WHERE relid = 'bigdst'::regclass"),
			't', 'cancel: pg_cancel_backend while the download stalls');
	}
	else
	{
		# an interrupt that ends nothing must not end the download either
		is( $node->safe_psql('postgres',
				"SELECT pg_log_backend_memory_contexts(pid) FROM pg_stat_progress_copy WHERE relid = 'bigdst'::regclass"),
			't', 'statement_timeout: pg_log_backend_memory_contexts while the download stalls');
	}
	my ($crc, $cout, $cerr, $cstate) = finish_psql($caller);
	is($cstate, '57014', "$label: the call ends with 57014");
	like($cerr, $set ? qr/canceling statement due to statement timeout/ : qr/canceling statement due to user request/,
		"  $label: PostgreSQL's own message (the restore ran until then)");
	is($node->safe_psql('postgres', 'SELECT count(*), sum(id), max(id) FROM bigdst'), $before,
		"  $label: the table is as it was");
	stop_faultproxy($proxy);
	tsnap_reload($node, "tsnap.s3_endpoint = '$ENV{S3_ENDPOINT}'\n");
}

# ---- (h) attacks by an unprivileged role ----

$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE TABLE secret (id int, s text);
	INSERT INTO secret SELECT g, 'secret ' || g FROM generate_series(1, 20) g;
	SELECT tsnap_track('secret');
	CREATE TABLE pub (id int, s text);
	INSERT INTO pub SELECT g, 'public ' || g FROM generate_series(1, 20) g;
	SELECT tsnap_track('pub');
	GRANT SELECT ON pub TO mallory, alice;
	CREATE TABLE pub_rls (id int, s text);
	INSERT INTO pub_rls SELECT g, 'row ' || g FROM generate_series(1, 20) g;
	ALTER TABLE pub_rls ENABLE ROW LEVEL SECURITY;
	CREATE POLICY few ON pub_rls FOR SELECT USING (id < 5);
	GRANT SELECT ON pub_rls TO mallory;
	SELECT tsnap_track('pub_rls');
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	CREATE TABLE mallory.mine (id int, s text);
	ALTER TABLE mallory.mine OWNER TO mallory;
	CREATE TABLE alice_t (id int, s text);
	CREATE TABLE alice_rls (id int, s text);
	CREATE TABLE alice_cols (id int, s text, note text DEFAULT 'x');
	ALTER TABLE alice_t OWNER TO alice;
	ALTER TABLE alice_rls OWNER TO alice;
	ALTER TABLE alice_cols OWNER TO alice;
	ALTER TABLE alice_rls ENABLE ROW LEVEL SECURITY;
	CREATE POLICY anything ON alice_rls USING (true) WITH CHECK (true);
	GRANT SELECT ON alice_t TO mallory;
	GRANT INSERT, SELECT ON alice_rls TO mallory;
	GRANT INSERT (id) ON alice_cols TO mallory;
	CREATE SCHEMA hidden;
	CREATE TABLE hidden.t (id int, s text);
	GRANT INSERT, SELECT, DELETE ON hidden.t TO mallory;
});
my ($ks) = snapshot('public.secret');
my ($kp) = snapshot('public.pub');
my ($kr) = snapshot('public.pub_rls');
my %as_mallory = (user => 'mallory');

sub mallory_sees
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM mallory.mine');
}

# each attack starts from an empty table, so that one that got through
# does not hide the next
sub empty_mine
{
	$node->safe_psql('postgres', 'TRUNCATE mallory.mine');
	return;
}

($state, $out, $err) = try_sql("SELECT tsnap_restore('mallory.mine', '$ks')", %as_mallory);
is($state, '42501', 'attack: a recorded key of a table mallory may not read: 42501');
like($err, qr/permission denied for table secret/, '  names the source table');
is(mallory_sees(), '0', '  nothing loaded');

# a kept key retention took out of the ledger: the manifest names the table
$node->safe_psql('postgres', "DELETE FROM tsnap.snapshots WHERE key = '$ks'");
empty_mine();
($state) = try_sql("SELECT tsnap_restore('mallory.mine', '$ks')", %as_mallory);
is($state, '42501', 'attack: the same key once out of the ledger: 42501');
is(mallory_sees(), '0', '  nothing loaded');

# a key from "another cluster": nothing here says who may read it
put_object("$prefix/foreign/secret.csv", s3_get($ks));
put_manifest("$prefix/foreign/secret.csv",
	manifest_for(key => "$prefix/foreign/secret.csv", data => s3_get($ks),
		table => 'public.secret', rows_version => 0,
		set => { system_identifier => '1234567890123456789' }));
empty_mine();
($state, $out, $err) = try_sql("SELECT tsnap_restore('mallory.mine', '$prefix/foreign/secret.csv')",
	%as_mallory);
is($state, '42501', 'attack: a key of another cluster: 42501');
like($err, qr/HINT:\s+Restoring it needs the privileges of COPY FROM a file: superuser or the pg_read_server_files role\./,
	'  hint names what it needs');
is(mallory_sees(), '0', '  nothing loaded');
empty_mine();
$node->safe_psql('postgres', 'GRANT pg_read_server_files TO mallory');
is( $node->safe_psql('postgres', "SELECT tsnap_restore('mallory.mine', '$prefix/foreign/secret.csv')",
		extra_params => [ '-U', 'mallory' ]),
	'20', 'with pg_read_server_files it loads, as COPY FROM a file would');
$node->safe_psql('postgres', 'REVOKE pg_read_server_files FROM mallory; TRUNCATE mallory.mine');

empty_mine();
($state, $out, $err) = try_sql("SELECT tsnap_restore('mallory.mine', '$kr')", %as_mallory);
is($state, '0A000', 'attack: a source whose row-level security hides rows from mallory: 0A000');
is(mallory_sees(), '0', '  nothing loaded');

empty_mine();
is($node->safe_psql('postgres', "SELECT tsnap_restore('mallory.mine', '$kp')", extra_params => [ '-U', 'mallory' ]),
	'20', 'a table mallory may read restores into her own table');

($state, $out, $err) = try_sql("SELECT tsnap_restore('alice_t', '$kp', 'append')", %as_mallory);
is($state, '42501', 'attack: a target mallory may not INSERT into: 42501');
$node->safe_psql('postgres', 'GRANT INSERT ON alice_t TO mallory');
($state, $out, $err) = try_sql("SELECT tsnap_restore('alice_t', '$kp', 'replace')", %as_mallory);
is($state, '42501', 'attack: replace without DELETE: 42501');
like($err, qr/needs DELETE/, '  says DELETE');
$node->safe_psql('postgres', 'REVOKE SELECT ON alice_t FROM mallory');
($state, $out, $err) = try_sql("SELECT tsnap_restore('alice_t', '$kp')", %as_mallory);
is($state, '42501', 'attack: require_empty would tell INSERT alone whether the table has rows: 42501');
is($node->safe_psql('postgres', "SELECT tsnap_restore('alice_t', '$kp', 'append')", extra_params => [ '-U', 'mallory' ]),
	'20', 'append needs INSERT alone');

($state, $out, $err) = try_sql("SELECT tsnap_restore('alice_rls', '$kp', 'append')", %as_mallory);
is($state, '0A000', 'attack: a target with row-level security: 0A000, as COPY FROM');
is($node->safe_psql('postgres', 'SELECT count(*) FROM alice_rls'), '0', '  nothing loaded');
is($node->safe_psql('postgres', "SELECT tsnap_restore('alice_rls', '$kp', 'append')", extra_params => [ '-U', 'alice' ]),
	'20', '  its owner may');

($state, $out, $err) = try_sql("SELECT tsnap_restore('alice_cols', '$kp', 'append')", %as_mallory);
is($state, '42501', 'attack: INSERT on some of the columns loaded: 42501');
$node->safe_psql('postgres', 'GRANT INSERT (s) ON alice_cols TO mallory');
is($node->safe_psql('postgres', "SELECT tsnap_restore('alice_cols', '$kp', 'append')", extra_params => [ '-U', 'mallory' ]),
	'20', '  with INSERT on each column loaded it works; the default fills the rest');

my $hidden = $node->safe_psql('postgres', "SELECT 'hidden.t'::regclass::oid");
($state, $out, $err) = try_sql("SELECT tsnap_restore($hidden, '$kp', 'append')", %as_mallory);
is($state, '42501', 'attack: a target named by OID in a schema without USAGE: 42501');
like($err, qr/permission denied for schema hidden/, '  names the schema');

($state) = try_sql('SELECT count(*) FROM tsnap.restores', %as_mallory);
is($state, '42501', 'tsnap.restores is not readable by ordinary roles');

# operators of mallory's on her search_path: tsnap's catalog SQL must not run them
$node->safe_psql('postgres', q{
	CREATE TABLE mallory.log (who name);
	ALTER TABLE mallory.log OWNER TO mallory;
	GRANT INSERT ON mallory.log TO PUBLIC;
});
$node->safe_psql('postgres', q{
	CREATE FUNCTION mallory.eq_oid(oid, oid) RETURNS bool LANGUAGE sql
		AS $$ INSERT INTO mallory.log VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
	CREATE OPERATOR mallory.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = mallory.eq_oid);
	CREATE FUNCTION mallory.eq_text(text, text) RETURNS bool LANGUAGE sql
		AS $$ INSERT INTO mallory.log VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
	CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.eq_text);
	CREATE FUNCTION mallory.eq_uuid(uuid, uuid) RETURNS bool LANGUAGE sql
		AS $$ INSERT INTO mallory.log VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
	CREATE OPERATOR mallory.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = mallory.eq_uuid);
	CREATE FUNCTION mallory.eq_regclass(regclass, regclass) RETURNS bool LANGUAGE sql
		AS $$ INSERT INTO mallory.log VALUES (current_user); SELECT $1::oid OPERATOR(pg_catalog.=) $2::oid $$;
	CREATE OPERATOR mallory.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = mallory.eq_regclass);
}, extra_params => [ '-U', 'mallory' ]);
$node->safe_psql('postgres', q{DELETE FROM mallory.mine});
is( $node->safe_psql('postgres', qq{
		SET search_path = mallory, pg_catalog;
		SELECT public.tsnap_restore('mallory.mine', '$kp', 'replace');
		SELECT public.tsnap_restore('mallory.mine', '$kp', 'append');
		SELECT count(*) FROM mallory.log WHERE who <> 'mallory'},
		extra_params => [ '-U', 'mallory' ]),
	"20\n20\n0", 'attack: operators on the caller\'s search_path never run with tsnap\'s rights');

# ---- (i) a key another cluster wrote into the same bucket ----

my $other = tsnap_node('restore_other');
$other->safe_psql('postgres', q{
	CREATE TABLE remote (id int PRIMARY KEY, s text);
	INSERT INTO remote SELECT g, 'remote ' || g FROM generate_series(1, 50) g;
	SELECT tsnap_track('remote');
});
my ($ko, $vo, $csvo) = snapshot('public.remote', $other);
$node->safe_psql('postgres', q{
	CREATE TABLE replica (id int PRIMARY KEY, s text);
	GRANT SELECT, INSERT, DELETE ON replica TO mallory;
});
($state, $out, $err) = try_sql("SELECT tsnap_restore('replica', '$ko')", %as_mallory);
is($state, '42501', 'another cluster\'s key, as an ordinary role that may write the table: 42501');
like($err, qr/permission denied to restore snapshot/, '  refused for the key, not the table');
is($node->safe_psql('postgres', "SELECT tsnap_restore('replica', '$ko')"), '50',
	'another cluster\'s key, as superuser: 50 rows');
is(copy_out('replica'), $csvo, '  the replica holds the remote table\'s rows (COPY output = object)');
is( $node->safe_psql('postgres',
		"SELECT source_system_identifier = '" . tsnap_sysid($other) . "' AND source_table = 'remote' "
		  . "FROM tsnap.restores WHERE target = 'replica'::regclass"),
	't', '  tsnap.restores names the other cluster as the source');
$other->safe_psql('postgres', "INSERT INTO remote VALUES (51, 'new')");
my ($ko2) = snapshot('public.remote', $other);
is($node->safe_psql('postgres', "SELECT tsnap_restore('replica', '$ko2', 'replace')"), '51',
	'its newer version replaces the replica');
($state) = try_sql("SELECT tsnap_restore('replica', '$ko', 'replace')");
is($state, '55000', '  and the older one needs force');

s3_delete_prefix("$prefix/");
s3_delete_prefix("$other->{tsnap_prefix}/");
done_testing();
