# Each message keeps its Kafka key (kafka_key bytea) and headers
# (kafka_headers jsonb: [{"key": ..., "value": ...}, ...] in the order sent),
# NULL when it has none, in the raw tables and in the dead letters; sent with
# kcat -K (key) and -H (headers). And the consumer reads committed messages
# only: isolation.level=read_uncommitted in pinpipe.kafka_config is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'kh');
my $b = $broker->bootstrap;
# 0: key and two headers; 1: a key only; 2: neither; 3: headers only, one a
# repeated name, one a value that is not UTF-8 text; 4: a bad message with a
# key and a header (a dead letter)
pp_kcat_produce($b, 'kh.pin', key_tab => 1, text => qq(pin-1\t{"index": 1, "title": "one"}\n),
	args => [ '-H', 'trace=abc-123', '-H', 'origin=test' ]);
pp_kcat_produce($b, 'kh.pin', key_tab => 1, text => qq(pin-2\t{"index": 2, "title": "two"}\n));
pp_kcat_produce($b, 'kh.pin', text => qq({"index": 3, "title": "three"}\n));
pp_kcat_produce($b, 'kh.pin', text => qq({"index": 4, "title": "four"}\n),
	args => [ '-H', 'h=1', '-H', 'h=2', '-H', "bin=\xff\xfe" ]);
pp_kcat_produce($b, 'kh.pin', key_tab => 1, text => qq(bad-key\t{"index": "x"}\n),
	args => [ '-H', 'why=bad' ]);
# geo: the key is binary
pp_kcat_produce($b, 'kh.geo', key_tab => 1, text => qq(\x01\x02\xff\t{"ind": 1, "country": "X"}\n));

my $node = pp_node('keys_headers', brokers => $b, prefix => 'kh');
pp_check_complete($node, 'kh', 6);

pp_check($node, 'key and headers of a message kept',
	q{SELECT kafka_key = 'pin-1'::bytea
	         AND kafka_headers = '[{"key": "trace", "value": "abc-123"}, {"key": "origin", "value": "test"}]'::jsonb
	    FROM pinpipe.pin_raw WHERE "index" = 1});
pp_check($node, 'a key without headers: headers NULL',
	q{SELECT kafka_key = 'pin-2'::bytea AND kafka_headers IS NULL FROM pinpipe.pin_raw WHERE "index" = 2});
pp_check($node, 'neither key nor headers: both NULL',
	q{SELECT kafka_key IS NULL AND kafka_headers IS NULL FROM pinpipe.pin_raw WHERE "index" = 3});
pp_check($node, 'headers in order, a repeated name twice, a binary value in hex',
	q{SELECT kafka_key IS NULL
	         AND kafka_headers = '[{"key": "h", "value": "1"}, {"key": "h", "value": "2"}, {"key": "bin", "value_hex": "fffe"}]'::jsonb
	    FROM pinpipe.pin_raw WHERE "index" = 4});
pp_check($node, 'a binary key byte for byte',
	q{SELECT kafka_key = '\x0102ff'::bytea FROM pinpipe.geo_raw WHERE ind = 1});
pp_check($node, 'a dead letter keeps its key and headers',
	q{SELECT kafka_key = 'bad-key'::bytea AND kafka_headers = '[{"key": "why", "value": "bad"}]'::jsonb
	         AND error = 'key "index" is a string, expected an integer'
	    FROM pinpipe.dead_letters WHERE topic = 'kh.pin'});

# isolation.level=read_uncommitted would store aborted transactions' messages
for my $value ('isolation.level=read_uncommitted', 'fetch.wait.max.ms=10, isolation.level = read_uncommitted')
{
	my ($ret, $out, $err) =
	  $node->psql('postgres', "ALTER SYSTEM SET pinpipe.kafka_config = '$value'");
	isnt($ret, 0, "refused: $value");
	like($err, qr/invalid value for parameter "pinpipe\.kafka_config"/, 'the error names the setting');
	like($err, qr/DETAIL:  isolation\.level=read_uncommitted would store the messages of transactions that are later aborted, which breaks exactly-once delivery\./,
		'the detail says why');
	like($err, qr/HINT:  Leave isolation\.level out of pinpipe\.kafka_config/, 'the hint says what to do');
}
my ($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET pinpipe.kafka_config = 'isolation.level=read_committed'");
is($ret, 0, 'isolation.level=read_committed accepted') or diag($err);
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
pp_kcat_produce($b, 'kh.pin', text => qq({"index": 5, "title": "after"}\n));
pp_check_complete($node, 'kh', 7);

done_testing();
