#!/usr/bin/perl
# json2kv.pl - flatten s3-sigv4-examples.json into "case<TAB>field<TAB>value"
# lines for t_sigv4.c, so the C test needs no JSON parser.  Uses only core
# Perl (JSON::PP).  Headers become "header:<Name>" fields.  Tabs, newlines
# and backslashes in values are escaped as \t, \n and \\.
use strict;
use warnings;
use JSON::PP;

my $file = shift or die "usage: $0 FILE.json\n";
open my $fh, '<:raw', $file or die "$file: $!\n";
my $json = JSON::PP->new->utf8->decode(do { local $/; <$fh> });

sub esc { my $v = shift; $v =~ s/\\/\\\\/g; $v =~ s/\t/\\t/g; $v =~ s/\n/\\n/g; $v }
sub out { my ($c, $f, $v) = @_; $v = $v ? 'true' : 'false' if JSON::PP::is_bool($v);
	binmode STDOUT, ':utf8'; print join("\t", $c, $f, esc("$v")), "\n"; }

out('common', $_, $json->{common}{$_}) for sort keys %{ $json->{common} };
for my $case (@{ $json->{cases} }) {
	for my $f (sort keys %$case) {
		if (ref $case->{$f} eq 'HASH') {
			out($case->{name}, "header:$_", $case->{$f}{$_}) for sort keys %{ $case->{$f} };
		} else {
			out($case->{name}, $f, $case->{$f});
		}
	}
}
