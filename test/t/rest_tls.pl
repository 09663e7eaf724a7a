# pinpipe-rest over HTTPS with a self-signed certificate made here (openssl),
# and bearer tokens (--token-file): curl and python3-requests verify the
# certificate; a request without a token, with a wrong one or with another
# scheme gets 401 (WWW-Authenticate: Bearer), with a listed token 200;
# /healthz needs no token; plain HTTP to the HTTPS port gets no answer.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;
use PinPipe::Rest;

my $tmp = PostgreSQL::Test::Utils::tempdir();
my ($out, $err) = ('', '');
IPC::Run::run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
	'-keyout', "$tmp/key.pem", '-out', "$tmp/cert.pem" ], '>', \$out, '2>', \$err)
  or die "openssl: $err";
open my $fh, '>', "$tmp/tokens" or die;
print $fh "# comment\n  alpha-token-1  \n\nbeta-token-2\n";
close $fh;

my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => 'tls');
my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap,
	args => [ '--tls-cert', "$tmp/cert.pem", '--tls-key', "$tmp/key.pem", '--token-file', "$tmp/tokens", '--quiet' ]);
like($rest->url, qr{^https://127\.0\.0\.1:\d+$}, 'prints an https URL');
my @tls = (args => [ '--cacert', "$tmp/cert.pem" ]);
my $post = sub {
	my (@headers) = @_;
	return $rest->curl('POST', '/topics/tls.pin', type => 'application/json',
		body => '{"records": [{"value": {"index": 1}}]}', headers => \@headers, @tls);
};

my ($st, $body, $head) = $post->();
is($st, 401, 'no token: 401');
like($head, qr/^WWW-Authenticate: Bearer/mi, '401 asks for a bearer token');
is((PinPipe::Rest::json($body) // {})->{error_code}, 401, '401 as REST Proxy error JSON');
is(($post->('Authorization: Bearer wrong-token'))[0], 401, 'wrong token: 401');
is(($post->('Authorization: Bearer alpha-token-'))[0], 401, 'a prefix of a token: 401');
is(($post->('Authorization: Basic YWxwaGEtdG9rZW4tMTo='))[0], 401, 'Basic scheme: 401');
is(($post->('Authorization: Bearer # comment'))[0], 401, 'a comment line is not a token');
($st, $body) = $post->('Authorization: Bearer alpha-token-1');
is($st, 200, 'first token: 200 over HTTPS (certificate verified by curl)');
ok(defined((PinPipe::Rest::json($body) // {})->{offsets}[0]{offset}), 'with an offset');
is(($post->('Authorization: bearer beta-token-2'))[0], 200, 'second token (scheme case-insensitive): 200');
is(($rest->curl('GET', '/topics', @tls))[0], 401, 'GET /topics without a token: 401');
is(($rest->curl('GET', '/metrics', @tls))[0], 401, '/metrics without a token: 401');
is(($rest->curl('GET', '/healthz', @tls))[0], 200, '/healthz needs no token');
is(($rest->curl('PUT', '/streams/s/record', type => 'application/json', body => '{}', @tls))[0], 401,
	'stream route without a token: 401');

# python3-requests verifying the self-signed certificate
my $py = <<'PY';
import sys, requests
url, cert = sys.argv[1], sys.argv[2]
r = requests.post(url + "/topics/tls.geo", json={"records": [{"value": {"ind": 2}}]},
                  headers={"Authorization": "Bearer beta-token-2"}, verify=cert)
print(r.status_code, r.json()["offsets"][0]["offset"] is not None)
try:
    requests.get(url + "/healthz", timeout=10)
    print("unverified accepted")
except requests.exceptions.SSLError:
    print("unverified refused")
PY
($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/python3', '-c', $py, $rest->url, "$tmp/cert.pem" ], '>', \$out, '2>', \$err);
is($out, "200 True\nunverified refused\n", 'python3-requests: 200 with the CA, SSLError without it') or diag($err);

# plain HTTP to the HTTPS port
(my $plain = $rest->url) =~ s/^https/http/;
($st) = $rest->curl('GET', '/healthz', url => $plain, max_time => 10);
isnt($st, 200, "plain HTTP to the HTTPS port: no answer (status $st)");
($st) = $rest->curl('GET', '/healthz', @tls);
is($st, 200, 'still serving HTTPS');

# kcat: the records went through
($out, $err) = ('', '');
IPC::Run::run([ 'kcat', '-b', $broker->bootstrap, '-C', '-t', 'tls.pin', '-o', 'beginning', '-e', '-q' ], '>', \$out, '2>', \$err);
is(scalar(() = $out =~ /^\{"index": 1\}$/mg), 2, 'the two accepted posts are in Kafka, the refused ones not');
is($rest->stop, 0, 'exits 0 on SIGTERM');

done_testing();
