#!/usr/bin/perl
# faultproxy.pl - a fault-injecting HTTP/1.1 proxy for the S3 client tests.
#
# Sits on 127.0.0.1 between the client and an S3 endpoint (Ceph RGW) and,
# for chosen requests, answers 500 InternalError or 503 SlowDown (with an S3
# XML body), answers 200 with an <Error> body, resets the connection, resets
# it halfway through the response, stalls, stalls halfway through the
# response (midstall), or forwards the request and then holds its reply back
# (slowreply).  Every other request is
# forwarded with its body intact, streamed by Content-Length.
#
# Keep-alive is not supported: each connection carries one request, the
# upstream request and the reply say "Connection: close", so request number
# = connection number.  Core Perl only (no CPAN).
#
# Usage: faultproxy.pl [options]
#   --upstream HOST:PORT  S3 endpoint (default 127.0.0.1:7480)
#   --port-file FILE      write the listening port here once ready
#   --rate F              fault this fraction of matching requests (0..1)
#   --nth N,N,...         fault exactly these request numbers (from 1)
#   --faults K,K,...      kinds to pick from: 500 503 200error reset
#                         midreset stall midstall slowreply (default
#                         500,503,reset)
#   --methods M,M,...     only requests with these methods can fault
#   --match STR           only requests whose target contains STR can fault
#   --fault-file FILE     only while FILE exists can requests fault
#   --stall SECONDS       how long a stall, midstall or slowreply holds the
#                         connection
#                         (default 60)
#   --lifetime SECONDS    exit after this long, whatever happens (default 120)
#   --seed N              random seed (default: time)
#   --log FILE            append "n method fault target" per request
#
# The proxy and its children share a process group: the test kills the
# group.  Children also exit on their own when the lifetime ends.
use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use Getopt::Long;
use POSIX qw(setsid :sys_wait_h);

my %o = (upstream => '127.0.0.1:7480', rate => 0, faults => '500,503,reset',
	stall => 60, lifetime => 120, seed => time);
GetOptions(\%o, 'upstream=s', 'port-file=s', 'rate=f', 'nth=s', 'faults=s',
	'methods=s', 'match=s', 'stall=i', 'lifetime=i', 'seed=i', 'log=s',
	'fault-file=s')
	or die "bad options\n";

my @kinds = split /,/, $o{faults};
my %nth = map { $_ => 1 } split /,/, ($o{nth} // '');
my %methods = map { uc($_) => 1 } split /,/, ($o{methods} // '');

setpgrp(0, 0);
$SIG{ALRM} = sub { kill 'TERM', -$$; exit 0 };
$SIG{TERM} = sub { exit 0 };
$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
alarm $o{lifetime};

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!\n";
if ($o{'port-file'}) {
	open my $pf, '>', "$o{'port-file'}.tmp" or die "$!\n";
	print $pf $listen->sockport, "\n";
	close $pf;
	rename "$o{'port-file'}.tmp", $o{'port-file'};
}

my $n = 0;
while (1) {
	my $client = $listen->accept or next;
	$n++;
	my $pid = fork;
	if (!defined $pid) { close $client; next; }
	if ($pid == 0) {
		close $listen;
		srand($o{seed} + $n);
		eval { handle($client, $n) };
		exit 0;
	}
	close $client;
}

sub read_head {
	my ($sock) = @_;
	my $buf = '';
	while ($buf !~ /\r\n\r\n/) {
		my $r = sysread($sock, $buf, 65536, length $buf);
		return undef unless $r;
	}
	my $end = index($buf, "\r\n\r\n") + 4;
	return (substr($buf, 0, $end), substr($buf, $end));
}

sub write_all {
	my ($sock, $data) = @_;
	my $off = 0;
	while ($off < length $data) {
		my $w = syswrite($sock, $data, length($data) - $off, $off);
		die "write: $!\n" unless defined $w && $w > 0;
		$off += $w;
	}
}

# Copy exactly $len bytes from $from to $to (undef = discard); $pre holds
# bytes already read.
sub copy_body {
	my ($from, $to, $len, $pre) = @_;
	my $left = $len - length $pre;
	write_all($to, $pre) if defined $to && length $pre;
	while ($left > 0) {
		my $chunk;
		my $r = sysread($from, $chunk, $left > 262144 ? 262144 : $left);
		die "short body\n" unless $r;
		write_all($to, $chunk) if defined $to;
		$left -= $r;
	}
}

sub reset_conn {
	my ($sock) = @_;
	setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
	close $sock;
}

sub xml_error {
	my ($code, $msg) = @_;
	return qq{<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>$code</Code><Message>$msg</Message><RequestId>faultproxy</RequestId></Error>};
}

sub respond {
	my ($sock, $status, $body) = @_;
	write_all($sock, "HTTP/1.1 $status\r\nContent-Type: application/xml\r\n"
		. "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
	close $sock;
}

sub handle {
	my ($client, $n) = @_;
	local $SIG{ALRM} = sub { exit 0 };
	my ($head, $rest) = read_head($client);
	return unless defined $head;
	my ($method, $target) = $head =~ /^(\S+) (\S+) HTTP/;
	my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
	$len //= 0;
	if ($head =~ /^Transfer-Encoding:/mi) {
		respond($client, '501 Not Implemented', xml_error('NotImplemented', 'chunked'));
		return;
	}

	my $fault = '';
	my $eligible = (!%methods || $methods{$method})
		&& (!defined $o{match} || index($target, $o{match}) >= 0)
		&& (!defined $o{'fault-file'} || -e $o{'fault-file'});
	if ($eligible && ($nth{$n} || ($o{rate} > 0 && rand() < $o{rate}))) {
		$fault = $kinds[int(rand(@kinds))];
	}
	if ($o{log} && open my $lf, '>>', $o{log}) {
		print $lf "$n $method " . ($fault || 'pass') . " $target\n";
		close $lf;
	}

	if ($fault eq '500' || $fault eq '503' || $fault eq '200error') {
		copy_body($client, undef, $len, $rest);
		if ($fault eq '503') {
			respond($client, '503 Slow Down', xml_error('SlowDown', 'Please reduce your request rate.'));
		} elsif ($fault eq '500') {
			respond($client, '500 Internal Server Error', xml_error('InternalError', 'We encountered an internal error. Please try again.'));
		} else {
			respond($client, '200 OK', xml_error('InternalError', 'We encountered an internal error. Please try again.'));
		}
		return;
	}
	if ($fault eq 'reset') {
		# Take part of the body, then drop the connection hard.
		my $chunk;
		sysread($client, $chunk, 1024) if $len > length $rest;
		reset_conn($client);
		return;
	}
	if ($fault eq 'stall') {
		copy_body($client, undef, $len, $rest);
		sleep $o{stall};
		close $client;
		return;
	}

	my ($host, $port) = split /:/, $o{upstream};
	my $up = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp')
		or do { reset_conn($client); return; };
	$head =~ s/^Connection:[^\r\n]*\r\n//mig;
	$head =~ s/\r\n\r\n$/\r\nConnection: close\r\n\r\n/;
	write_all($up, $head);
	copy_body($client, $up, $len, $rest);

	if ($fault eq 'midreset' || $fault eq 'midstall') {
		my ($rhead, $rrest) = read_head($up);
		return reset_conn($client) unless defined $rhead;
		my ($rlen) = $rhead =~ /^Content-Length:\s*(\d+)/mi;
		$rlen //= 0;
		write_all($client, $rhead);
		my $half = int($rlen / 2);
		my $sent = 0;
		if (length $rrest) {
			my $part = substr($rrest, 0, $half);
			write_all($client, $part);
			$sent = length $part;
		}
		while ($sent < $half) {
			my $chunk;
			my $r = sysread($up, $chunk, $half - $sent > 65536 ? 65536 : $half - $sent);
			last unless $r;
			write_all($client, $chunk);
			$sent += $r;
		}
		if ($fault eq 'midstall') {
			# half the reply is out; the rest never comes
			close $up;
			sleep $o{stall};
			close $client;
			return;
		}
		reset_conn($client);
		close $up;
		return;
	}

	if ($fault eq 'slowreply') {
		# The request took effect upstream; hold its reply back.
		my ($reply, $chunk) = ('', '');
		$reply .= $chunk while sysread($up, $chunk, 262144);
		close $up;
		sleep $o{stall};
		write_all($client, $reply);
		close $client;
		return;
	}

	# Forward the reply until the upstream closes (we asked it to).
	while (1) {
		my $chunk;
		my $r = sysread($up, $chunk, 262144);
		last unless $r;
		write_all($client, $chunk);
	}
	close $up;
	close $client;
}
