# Settings reload: an empty pinpipe.brokers idles the worker; setting it by
# reload starts consuming; changing pinpipe.brokers or pinpipe.topic_prefix
# by reload switches source without a restart (same worker pid).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

# lines FIRST..LAST (1-based) of the sample pins, keyed by their index
sub pins
{
	my ($first, $last) = @_;
	my @lines = split /^/, pp_keyed_lines(pp_data('pin'));
	return join '', @lines[ $first - 1 .. $last - 1 ];
}

my $node = pp_node('reload');
pp_wait_for($node, "SELECT bool_and(state = 'idle: pinpipe.brokers is empty') FROM pinpipe.status", 20);
my $pid = pp_worker_pid($node);

my $a = PinPipe::Test::Broker->new(partitions => 1, prefix => 'r');
# broker B, another cluster, has A's topics with the same messages (as a
# mirror that replaced A would); it also has topics r2.* with 2 partitions
my $b = PinPipe::Test::Broker->new(partitions => 1, prefix => 'r',
	args => [ '--topic', 'r2.pin:2', '--topic', 'r2.geo:2', '--topic', 'r2.user:2' ]);
pp_kcat_produce($a->bootstrap, 'r.pin', key_tab => 1, text => pins(1, 50));
pp_kcat_produce($b->bootstrap, 'r.pin', key_tab => 1, text => pins(1, 50));

pp_set($node, 'pinpipe.brokers' => $a->bootstrap, 'pinpipe.topic_prefix' => 'r');
pp_wait_for($node, 'SELECT count(*) = 50 FROM pinpipe.pin_raw', 30);
pp_check($node, 'consuming from broker A after a reload', 'SELECT count(*) = 50 FROM pinpipe.pin_raw');

pp_set($node, 'pinpipe.brokers' => $b->bootstrap);
pp_kcat_produce($b->bootstrap, 'r.pin', key_tab => 1, text => pins(51, 80));
# another cluster id: a new source of r.pin, read from B's earliest offset (its
# offsets need not mean what A's did), A's rows kept
pp_wait_for($node, 'SELECT count(*) = 130 FROM pinpipe.pin_raw', 30);
pp_check($node, 'switched to broker B by reload: a new source (cluster changed), read from its start',
	"SELECT count(*) = 130 AND count(*) FILTER (WHERE s.reason = 'cluster changed') = 80
	        AND max(kafka_offset) FILTER (WHERE s.reason = 'cluster changed') = 79
	   FROM pinpipe.pin_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source");
pp_check($node, 'no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');

pp_kcat_produce($b->bootstrap, 'r2.pin', key_tab => 1, text => pins(81, 100), args => [ '-p', '1' ]);
pp_set($node, 'pinpipe.topic_prefix' => 'r2');
pp_wait_for($node, 'SELECT count(*) = 150 FROM pinpipe.pin_raw', 30);
pp_check($node, 'switched to topics r2.* by reload',
	'SELECT count(*) = 20 FROM pinpipe.pin_raw WHERE kafka_partition = 1');
pp_check($node, 'offsets stored per topic',
	"SELECT array_agg(topic || '/' || kafka_partition || '=' || next_offset ORDER BY topic, kafka_partition)
	        @> '{r.pin/0=80,r2.pin/1=20}' FROM pinpipe.offsets");
pp_check($node, 'status names the new topics', "SELECT bool_and(topic LIKE 'r2.%') FROM pinpipe.status");
pp_check($node, 'the same worker process throughout (no restart)',
	"SELECT pid = " . ($pid || 0) . " FROM pinpipe.status WHERE kind = 'pin'");

# settings are checked when set
my ($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET pinpipe.topic_prefix = 'bad prefix!'");
like($err, qr/invalid value.*topic prefix may hold only/s, 'bad topic_prefix refused');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET pinpipe.kafka_config = 'no.such.property=1'");
like($err, qr/invalid value.*no\.such\.property/s, 'unknown librdkafka property refused');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.password'");
like($err, qr/invalid value.*key=value/s, 'malformed kafka_config refused');

done_testing();
