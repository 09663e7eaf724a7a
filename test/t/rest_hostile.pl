# Hostile HTTP against pinpipe-rest: truncated and oversized bodies, chunked
# bodies (python3-requests streaming one, and one over the limit), invalid
# UTF-8, deep nesting, 100k records in one request, header floods, a long
# URL, slowloris, and 1,000 concurrent connections (wrk) against a limit of
# 256. Each is answered or refused as the contract says, and the server is
# alive and answering after each; its peak RSS is reported and bounded.
use strict;
use warnings;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PinPipe::Test;
use PinPipe::Rest;

$SIG{PIPE} = 'IGNORE';
my $broker = PinPipe::Test::Broker->new(partitions => 6, prefix => 'h');
my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap,
	args => [ '--max-body-bytes', '4000000', '--max-buffered-bytes', '64000000',
		'--max-connections', '256', '--idle-timeout', '3', '--quiet' ]);
my $port = $rest->port;
my $json = sub { PinPipe::Rest::json($_[0]) };

# Send raw bytes on a new connection; read the answer until the server closes
# (or, with first => 1, until the end of the headers): ($status, $answer).
sub raw
{
	my ($data, %o) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or die "connect: $!";
	$s->autoflush(1);
	syswrite($s, $data) if length $data;
	shutdown($s, 1) if $o{shutdown};
	my $resp = '';
	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm($o{timeout} // 15);
		while (sysread($s, my $buf, 65536))
		{
			$resp .= $buf;
			last if $o{first} && $resp =~ /\r\n\r\n/;
		}
		alarm 0;
	};
	close $s;
	my ($code) = $resp =~ m{^HTTP/1\.[01] (\d{3})};
	return ($code // 0, $resp);
}

sub alive
{
	my ($what) = @_;
	my ($st, $body) = $rest->curl('POST', '/topics/h.pin', type => 'application/json',
		body => '{"records": [{"value": {"after": "' . $what . '"}}]}', max_time => 20);
	my $r = $json->($body) // {};
	ok($rest->alive && $st == 200 && defined $r->{offsets}[0]{offset}, "alive and producing after $what");
}

my $req = sub {
	my ($body, %h) = @_;
	my $head = "POST /topics/h.pin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
	$head .= "$_: $h{$_}\r\n" for sort keys %h;
	$head .= "Content-Length: " . length($body) . "\r\n" unless exists $h{'Transfer-Encoding'} || exists $h{'Content-Length'};
	return "$head\r\n$body";
};

# truncated body: the client announces 1000 bytes, sends 10 and goes away
my ($st) = raw($req->('{"records"', 'Content-Length' => 1000), shutdown => 1, timeout => 10);
is($st, 0, 'truncated body then EOF: no answer, connection closed');
alive('a truncated body');
# truncated and silent: closed after --idle-timeout
my $t0 = time;
($st) = raw($req->('{"records"', 'Content-Length' => 1000), timeout => 20);
my $idle = time - $t0;
ok($st == 0 && $idle < 10, sprintf('truncated body, client silent: closed after %.1f s (idle timeout 3 s)', $idle));

# oversized: refused from the headers, before any body byte
$t0 = time;
($st, my $ans) = raw("POST /topics/h.pin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	  . "Content-Length: 1000000000000\r\n\r\n", first => 1);
is($st, 413, 'Content-Length of 1 TB: 413 without reading the body');
ok(time - $t0 < 5, 'answered at once');
($st) = raw("POST /topics/h.pin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	  . "Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n", first => 1);
is($st, 413, 'Expect: 100-continue over the limit: 413, no 100 Continue');
alive('oversized bodies');

# chunked: python3-requests streams a generator body (Transfer-Encoding: chunked)
my $py = <<'PY';
import sys, requests
def gen():
    yield b'{"records": ['
    for i in range(1000):
        yield (b', ' if i else b'') + b'{"value": {"chunk": %d}}' % i
    yield b']}'
r = requests.post(sys.argv[1] + "/topics/h.geo", data=gen(),
                  headers={"Content-Type": "application/vnd.kafka.json.v2+json"})
ok = r.status_code == 200 and sum(o["offset"] is not None for o in r.json()["offsets"]) == 1000
print(r.status_code, ok)
PY
my ($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/python3', '-c', $py, $rest->url ], '>', \$out, '2>', \$err);
is($out, "200 True\n", 'chunked body from python3-requests: 1000 records stored') or diag($err);
# chunked past the limit: the connection is closed, nothing buffered beyond it
my $chunk = 'x' x 65536;
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
syswrite($s, "POST /topics/h.pin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	  . "Transfer-Encoding: chunked\r\n\r\n");
my $sent = 0;
for (1 .. 200)
{
	last unless defined syswrite($s, sprintf("%x\r\n%s\r\n", length $chunk, $chunk));
	$sent += length $chunk;
}
my $got = '';
sysread($s, $got, 65536);
close $s;
ok($got !~ m{^HTTP/1\.1 200}, sprintf('chunked body past the 4 MB limit: refused (%s after %.1f MB sent)',
	$got =~ m{^HTTP/1\.1 (\d+)} ? "answered $1" : 'connection closed', $sent / 1e6));
alive('a chunked body over the limit');

# invalid UTF-8, deep nesting
for my $case ([ 'invalid UTF-8 in a value', "{\"records\": [{\"value\": \"\xff\xfe\"}]}" ],
	[ 'overlong UTF-8', "{\"records\": [{\"value\": \"\xc0\xaf\"}]}" ],
	[ 'UTF-16 surrogate in UTF-8', "{\"records\": [{\"value\": \"\xed\xa0\x80\"}]}" ],
	[ 'lone surrogate escape', '{"records": [{"value": "\ud800"}]}' ],
	[ 'NUL byte in the body', "{\"records\": [{\"value\": \"a\x00b\"}]}" ],
	[ '100k nesting levels', '{"records": [{"value": ' . ('[' x 100000) . (']' x 100000) . '}]}' ])
{
	($st, $ans) = raw($req->($case->[1]));
	my ($body) = $ans =~ /\r\n\r\n(.*)\z/s;
	ok($st == 422 && ($json->($body // '') // {})->{message}, "$case->[0]: 422 ("
		  . (($json->($body // '') // {})->{message} // $ans) . ')');
}
($st) = raw($req->('{"records": [{"value": ' . ('[' x 500) . (']' x 500) . '}]}'));
is($st, 200, '500 nesting levels inside a value: accepted');
alive('invalid bodies');

# 100k records in one request
my $big = '{"records": [' . join(', ', map { qq({"value": {"n": $_}}) } 1 .. 100000) . ']}';
$t0 = time;
my ($bst, $bbody) = $rest->curl('POST', '/topics/h.user', type => 'application/json', body => $big);
my $r = $json->($bbody) // { offsets => [] };
my $secs = time - $t0;
is($bst, 200, sprintf('100k records in one request (%.1f MB): 200 in %.1f s', length($big) / 1e6, $secs));
is(scalar(grep { defined $_->{offset} } @{ $r->{offsets} }), 100000, '100k offsets');
my %seen;
$seen{"$_->{partition}/$_->{offset}"}++ for @{ $r->{offsets} };
is(scalar keys %seen, 100000, 'all distinct');
($out, $err) = ('', '');
IPC::Run::run([ 'kcat', '-b', $broker->bootstrap, '-C', '-t', 'h.user', '-o', 'beginning', '-e', '-q',
	'-f', '%s\n' ], '>', \$out, '2>', \$err);
is(scalar(() = $out =~ /^\{"n": \d+\}$/mg), 100000, 'kcat reads the 100k records back');
alive('100k records');

# header floods and a long URL
($st, $ans) = raw("GET /healthz HTTP/1.1\r\nHost: x\r\n" . join('', map { "X-Flood-$_: " . ('v' x 100) . "\r\n" } 1 .. 5000) . "\r\n");
ok($st == 431 || $st == 413 || $st == 400 || $st == 0, "5,000 headers (500 kB): refused (status $st)");
($st) = raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " . ('v' x 1_000_000) . "\r\n\r\n");
ok($st != 200, "a 1 MB header: refused (status $st)");
($st) = raw('GET /' . ('a' x 200_000) . " HTTP/1.1\r\nHost: x\r\n\r\n");
ok($st != 200, "a 200 kB URL: refused (status $st)");
alive('header floods');

# slowloris: 200 connections trickling headers; others are served meanwhile
my @slow;
for (1 .. 200)
{
	my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or last;
	syswrite($c, "POST /topics/h.pin HTTP/1.1\r\nHost: x\r\n");
	push @slow, $c;
}
my $served = 0;
for my $round (1 .. 4)
{
	syswrite($_, "X-$round: y\r\n") for @slow;
	my ($hs) = $rest->curl('GET', '/healthz', max_time => 5);
	$served++ if $hs == 200;
	sleep 1;
}
is($served, 4, scalar(@slow) . ' slowloris connections held: other clients still served');
sleep 5;    # the trickle stops: idle connections are closed after 3 s
my $closed = 0;
for my $c (@slow)
{
	my $buf;
	my $n = sysread($c, $buf, 100);
	$closed++ if defined $n && ($n == 0 || $buf =~ /^HTTP/);
	close $c;
}
is($closed, scalar @slow, 'slowloris connections closed once they stop sending (idle timeout)');
alive('slowloris');

# 1,000 concurrent connections with keep-alive against a limit of 256 (wrk)
my $tmp = PostgreSQL::Test::Utils::tempdir();
open my $lua, '>', "$tmp/post.lua" or die;
print $lua <<'LUA';
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"records": [{"value": {"wrk": 1}}]}'
LUA
close $lua;
($out, $err) = ('', '');
IPC::Run::run([ 'wrk', '-t', '2', '-c', '1000', '-d', '6s', '--timeout', '20s', '-s', "$tmp/post.lua",
	$rest->url . '/topics/h.geo' ], '>', \$out, '2>', \$err);
note $out;
my ($reqs) = $out =~ /(\d+) requests in/;
my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
ok(($reqs // 0) > 0, "1,000 connections: $reqs requests answered");
is($non2xx // 0, 0, 'every answered request 200 (connections over the limit refused, not failed)');
# the closed connections' requests complete: nothing left in flight or buffered
my $m = '';
for (1 .. 100)
{
	$m = ($rest->curl('GET', '/metrics'))[1];
	last if $m =~ /^pinpipe_rest_body_bytes_buffered 0$/m && $m =~ /^pinpipe_rest_requests_in_flight 1$/m;
	usleep(100_000);
}
my ($failed) = $m =~ /^pinpipe_rest_records_failed_total (\d+)/m;
is($failed, 0, 'no record failed');
like($m, qr/^pinpipe_rest_body_bytes_buffered 0$/m, 'no body bytes left buffered')
  or diag($m =~ /^(pinpipe_rest_(?:body|requests_in).*)$/mg);
like($m, qr/^pinpipe_rest_requests_in_flight 1$/m, 'no request left in flight but this one');
alive('1,000 connections');

my $peak = $rest->peak_rss_kb;
diag(sprintf('peak RSS of pinpipe-rest over the hostile cases: %.1f MB', $peak / 1024));
ok($peak > 0 && $peak < 512 * 1024, 'peak RSS bounded (under 512 MB with --max-buffered-bytes 64 MB)');
is($rest->stop, 0, 'exits 0 on SIGTERM');

done_testing();
