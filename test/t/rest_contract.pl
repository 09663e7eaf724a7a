# pinpipe-rest's contract, with curl against a real broker: the REST Proxy v2
# answers (json and binary records, keys, explicit partitions, unknown topic,
# per-record errors, GET /topics), the Kinesis shapes, --key-field,
# --stream-topic / --stream-prefix, --base-path, the error codes (404, 405,
# 413, 415, 422), /healthz and /metrics, brokers down (--timeout), and the
# SIGTERM drain. What the answers say is checked against what kcat reads back.
use strict;
use warnings;
use IPC::Run;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PinPipe::Test;
use PinPipe::Rest;

my $broker = PinPipe::Test::Broker->new(partitions => 3, prefix => 'ct',
	args => [ '--topic', 'other:2' ]);
my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap,
	args => [ '--base-path', '/test', '--stream-prefix', 'ct', '--stream-topic', 'mystream=other',
		'--key-field', 'index,ind', '--max-body-bytes', '100000', '--timeout', '4' ]);
my $json = sub { PinPipe::Rest::json($_[0]) };

# Read a topic back: a hash "partition/offset" => [key, value] (kcat, NULL key as '').
sub read_topic
{
	my ($topic) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-b', $broker->bootstrap, '-C', '-t', $topic, '-o', 'beginning', '-e',
		'-q', '-f', '%p/%o\t%k\t%s\n' ], '>', \$out, '2>', \$err);
	my %m;
	for (split /\n/, $out)
	{
		my ($po, $k, $v) = split /\t/, $_, 3;
		$m{$po} = [ $k, $v ];
	}
	return \%m;
}

like($rest->stdout, qr{^listening on http://127\.0\.0\.1:\d+\n\z}, 'exactly one "listening on" line');

# json v2: embedded values and keys, an explicit partition, value null
my ($st, $body, $head) = $rest->curl('POST', '/topics/ct.pin',
	type => 'application/vnd.kafka.json.v2+json',
	body => '{"records": [{"value": {"index": 7, "title": "caf\u00e9 \"x\""}},'
	  . ' {"key": "k1", "value": [1, 2.50, {"a": null}]},'
	  . ' {"key": {"id": 3}, "value": "s", "partition": 2},'
	  . ' {"value": null, "key": "tomb"}]}');
is($st, 200, 'json v2 produce: 200');
like($head, qr{^Content-Type: application/vnd\.kafka\.v2\+json}mi, 'answer type application/vnd.kafka.v2+json');
my $r = $json->($body);
is(ref $r->{offsets}, 'ARRAY', 'answer has offsets');
is(scalar @{ $r->{offsets} }, 4, 'one offset per record');
ok(exists $r->{key_schema_id} && !defined $r->{key_schema_id} && exists $r->{value_schema_id},
	'key_schema_id and value_schema_id null');
ok((!grep { defined $_->{error_code} || !defined $_->{offset} } @{ $r->{offsets} }),
	'every record has an offset, no error');
is($r->{offsets}[2]{partition}, 2, 'explicit partition honoured');
my $pin = read_topic('ct.pin');
my @o = map { "$_->{partition}/$_->{offset}" } @{ $r->{offsets} };
is_deeply($pin->{ $o[0] }, [ '7', '{"index": 7, "title": "caf\u00e9 \"x\""}' ],
	'value stored as sent (bytes), key from --key-field index');
is_deeply($pin->{ $o[1] }, [ '"k1"', '[1, 2.50, {"a": null}]' ], 'embedded JSON key stored as JSON text');
is_deeply($pin->{ $o[2] }, [ '{"id": 3}', '"s"' ], 'object key, string value');
is($pin->{ $o[3] }[0], '"tomb"', 'null value record stored (tombstone)');

# binary: base64 values and keys
my $bin = "\x00\x01\xffbin\tary \x7f";
($st, $body) = $rest->curl('POST', '/test/topics/ct.geo',
	type => 'application/vnd.kafka.binary.v2+json',
	body => '{"records": [{"key": "' . encode_base64('bk', '') . '", "value": "'
	  . encode_base64($bin, '') . '"}, {"value": "aGVsbG8="}]}');
is($st, 200, 'binary v2 produce under --base-path: 200');
$r = $json->($body);
my $geo = read_topic('ct.geo');
is_deeply($geo->{"$r->{offsets}[0]{partition}/$r->{offsets}[0]{offset}"}, [ 'bk', $bin ],
	'binary value and key decoded from base64');
is($geo->{"$r->{offsets}[1]{partition}/$r->{offsets}[1]{offset}"}[1], 'hello', 'second binary record');

# application/json is json v2
($st, $body) = $rest->curl('POST', '/topics/ct.user', type => 'application/json; charset=utf-8',
	body => '{"records": [{"value": {"ind": 5}}]}');
is($st, 200, 'application/json treated as json v2');

# per-record errors: a partition that does not exist, among good records
($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/json',
	body => '{"records": [{"value": 1}, {"value": 2, "partition": 99}, {"value": 3}]}');
$r = $json->($body);
is($st, 200, 'a batch with a bad record: 200');
ok(defined $r->{offsets}[0]{offset} && defined $r->{offsets}[2]{offset}, 'good records have offsets');
ok(!defined $r->{offsets}[1]{offset} && !defined $r->{offsets}[1]{partition}
	  && $r->{offsets}[1]{error_code} == 1 && $r->{offsets}[1]{error} =~ /partition/i,
	"the bad record carries error_code 1 and a message ($r->{offsets}[1]{error})");

# unknown topic, topics listing
($st, $body) = $rest->curl('POST', '/topics/ct.nosuch', type => 'application/json',
	body => '{"records": [{"value": 1}]}');
is($st, 404, 'unknown topic: 404');
is($json->($body)->{error_code}, 40401, 'unknown topic: error_code 40401');
ok(!grep({ $_ eq 'ct.nosuch' } @{ $json->(($rest->curl('GET', '/topics'))[1]) }),
	'an unknown topic is not created by a post');
($st, $body) = $rest->curl('GET', '/topics');
is($st, 200, 'GET /topics: 200');
my %topics = map { $_ => 1 } @{ $json->($body) };
ok($topics{'ct.pin'} && $topics{'ct.geo'} && $topics{'ct.user'} && $topics{other}, 'GET /topics lists the topics');
($st, $body) = $rest->curl('GET', '/test/topics/other');
$r = $json->($body);
is($r->{name}, 'other', 'GET /topics/{topic}: name');
is(scalar @{ $r->{partitions} }, 2, 'GET /topics/{topic}: partitions');
ok(defined $r->{partitions}[0]{leader} && ref $r->{partitions}[0]{replicas} eq 'ARRAY', 'partition leader and replicas');
is(($rest->curl('GET', '/topics/nosuch'))[0], 404, 'GET unknown topic: 404');

# Kinesis: PutRecord with Data as object and as base64 give the same message
my $row = '{"ind": 12, "timestamp": "2020-08-28 03:52:47", "latitude": -45.5, "longitude": 7.25, "country": "Chad"}';
($st, $body, $head) = $rest->curl('PUT', '/test/streams/streaming-0a1b2c-geo/record', type => 'application/json',
	body => qq({"StreamName": "streaming-0a1b2c-geo", "Data": $row, "PartitionKey": "pk-1"}));
is($st, 200, 'PutRecord with an object Data: 200');
my $k1 = $json->($body);
like($k1->{SequenceNumber}, qr/^\d+$/, 'SequenceNumber is numeric text');
like($k1->{ShardId}, qr/^shardId-\d{12}$/, 'ShardId shardId-NNNNNNNNNNNN');
($st, $body) = $rest->curl('PUT', '/streams/streaming-0a1b2c-geo/record', type => 'application/x-amz-json-1.1',
	body => '{"StreamName": "streaming-0a1b2c-geo", "Data": "' . encode_base64($row, '') . '", "PartitionKey": "pk-1"}');
my $k2 = $json->($body);
is($st, 200, 'PutRecord with a base64 Data: 200');
is($k2->{ShardId}, $k1->{ShardId}, 'the same PartitionKey lands on the same shard (partition)');
$geo = read_topic('ct.geo');
my ($p1) = $k1->{ShardId} =~ /(\d+)$/;
my @msgs = grep { $_ =~ m{^\Q@{[$p1+0]}\E/} && $geo->{$_}[0] eq 'pk-1' } keys %$geo;
is(scalar @msgs, 2, 'both PutRecords stored, keyed by PartitionKey');
ok(2 == grep({ $geo->{$_}[1] eq $row } @msgs), 'object Data and base64 Data produce the same message');

# PutRecords, --stream-topic, unmapped stream
($st, $body) = $rest->curl('PUT', '/streams/mystream/records', type => 'application/json',
	body => '{"StreamName": "mystream", "Records": [{"Data": {"a": 1}, "PartitionKey": "x"},'
	  . ' {"Data": "eyJiIjogMn0=", "PartitionKey": "y"}]}');
$r = $json->($body);
is($st, 200, 'PutRecords: 200');
is($r->{FailedRecordCount}, 0, 'PutRecords: FailedRecordCount 0');
is(scalar(grep { defined $_->{SequenceNumber} } @{ $r->{Records} }), 2, 'PutRecords: two sequence numbers');
my $other = read_topic('other');
is_deeply([ sort map { $_->[1] } values %$other ], [ '{"a": 1}', '{"b": 2}' ], '--stream-topic mystream=other');
($st, $body) = $rest->curl('PUT', '/streams/nostream/record', type => 'application/json',
	body => '{"Data": {"a": 1}, "PartitionKey": "x"}');
is($st, 400, 'unmapped stream: 400');
is($json->($body)->{__type}, 'ResourceNotFoundException', 'unmapped stream: ResourceNotFoundException');

# errors: 404, 405, 415, 422, 413
($st, $body) = $rest->curl('GET', '/nothing/here');
is($st, 404, 'unknown route: 404');
is($json->($body)->{error_code}, 404, 'unknown route: REST Proxy error JSON');
($st, $body, $head) = $rest->curl('DELETE', '/topics/ct.pin');
is($st, 405, 'wrong method: 405');
like($head, qr/^Allow: GET, POST/mi, '405 says which methods are allowed');
is(($rest->curl('GET', '/streams/x/record'))[0], 405, 'GET on a stream route: 405');
($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'text/plain', body => '{"records": []}');
is($st, 415, 'text/plain: 415');
is(($rest->curl('POST', '/topics/ct.pin', type => 'application/vnd.kafka.avro.v2+json',
	body => '{"records": []}'))[0], 415, 'avro: 415');
is(($rest->curl('PUT', '/streams/streaming-1-pin/record', type => 'text/xml', body => '<a/>'))[0], 415,
	'stream with a wrong type: 415');
for my $case (
	[ 'malformed JSON', '{"records": [{"value": 1}', qr/expected/ ],
	[ 'no records', '{"value": 1}', qr/no "records"/ ],
	[ 'records not an array', '{"records": {"value": 1}}', qr/must be an array/ ],
	[ 'record without value', '{"records": [{"key": "a"}]}', qr/records\[0\] has no "value"/ ],
	[ 'negative partition', '{"records": [{"value": 1, "partition": -1}]}', qr/partition/ ],
	[ 'trailing garbage', '{"records": []} x', qr/trailing/ ],
	[ 'empty body', '', qr/empty/ ])
{
	my ($name, $b, $re) = @$case;
	($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/json', body => $b);
	my $e = $json->($body) // {};
	ok($st == 422 && $e->{error_code} == 422 && ($e->{message} // '') =~ $re,
		"$name: 422 naming what is wrong (" . ($e->{message} // $body) . ")");
}
($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/vnd.kafka.binary.v2+json',
	body => '{"records": [{"value": "not base64!"}]}');
is($st, 422, 'binary value that is not base64: 422');
($st, $body) = $rest->curl('PUT', '/streams/streaming-1-pin/record', type => 'application/json',
	body => '{"Data": null}');
is($st, 422, 'Kinesis record with null Data: 422');
($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/json',
	body => '{"records": [{"value": "' . ('x' x 100001) . '"}]}');
is($st, 413, 'body over --max-body-bytes: 413');

# /healthz and /metrics
($st, $body) = $rest->curl('GET', '/healthz');
is($st, 200, '/healthz: 200 with the brokers up');
($st, $body, $head) = $rest->curl('GET', '/test/metrics');
is($st, 200, '/metrics: 200');
like($head, qr{^Content-Type: text/plain}mi, '/metrics is Prometheus text');
like($body, qr/^pinpipe_rest_requests_total\{route="produce",status="200"\} \d+$/m, 'requests by route and status');
like($body, qr/^pinpipe_rest_requests_total\{route="produce",status="422"\} 8$/m, 'the eight 422s counted');
like($body, qr/^pinpipe_rest_records_produced_total (\d+)$/m, 'records produced');
my ($failed) = $body =~ /^pinpipe_rest_records_failed_total (\d+)$/m;
is($failed, 1, 'one record failed (the bad partition)');
like($body, qr/^pinpipe_rest_records_in_flight 0$/m, 'no record in flight');
like($body, qr/^pinpipe_rest_request_duration_seconds_bucket\{le="\+Inf"\} \d+$/m, 'latency histogram');

# brokers down: a post waits up to --timeout (4 s), then per-record errors
$broker->ctl('down -1');
my $t0 = time;
($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/json',
	body => '{"records": [{"value": "while down"}]}');
my $waited = time - $t0;
$r = $json->($body);
ok($st == 200 && !defined $r->{offsets}[0]{offset} && $r->{offsets}[0]{error_code} == 2,
	"brokers down: the record is answered with error_code 2 ($body)");
ok($waited >= 3 && $waited < 30, sprintf('after waiting about --timeout (%.1f s)', $waited));
my $h503 = 0;
for (1 .. 100)
{
	($st) = $rest->curl('GET', '/healthz');
	if ($st == 503) { $h503 = 1; last; }
	usleep(200_000);
}
ok($h503, '/healthz: 503 while the brokers are down');
$broker->ctl('up -1');
my $back = 0;
for (1 .. 150)
{
	($st, $body) = $rest->curl('POST', '/topics/ct.pin', type => 'application/json',
		body => '{"records": [{"value": "back"}]}');
	$r = $json->($body);
	if ($st == 200 && defined $r->{offsets}[0]{offset}) { $back = 1; last; }
	usleep(200_000);
}
ok($back, 'brokers up again: records stored');
ok(!grep({ $_->[1] eq '"while down"' } values %{ read_topic('ct.pin') }),
	'the record answered with an error is not in Kafka');

# SIGTERM drains: a request in flight (slow broker) is answered, the exit status is 0
$broker->ctl('rtt 1 1500');
sleep 2;
my $dir = $rest->dir;
my @cmd = ('curl', '-s', '-o', "$dir/drain.body", '-w', '%{http_code}', '-X', 'POST',
	'-H', 'Content-Type: application/json', '--data-binary', '{"records": [{"value": "drained"}]}',
	$rest->url . '/topics/ct.pin');
my $out = '';
my $h = IPC::Run::start(\@cmd, '>', \$out);
usleep(500_000);
my $status = $rest->stop('TERM');
$h->finish;
is($out, '200', 'a request in flight at SIGTERM is answered 200');
my $d = $json->(slurp_file("$dir/drain.body"));
ok(defined $d->{offsets}[0]{offset}, 'with its offset');
is($status, 0, 'pinpipe-rest exits 0 after draining');
ok(grep({ $_->[1] eq '"drained"' } values %{ read_topic('ct.pin') }), 'the drained record is in Kafka');

done_testing();
