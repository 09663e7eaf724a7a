# Sources: a new incarnation of a topic never collides with the rows stored
# before. The embedded broker is killed and started again on the same --port
# (a new cluster, holding none of the old messages: what a recreated topic or
# a fail-over looks like), and refilled with fewer, as many, and more
# messages per partition than were stored; then pinpipe.topic_prefix is
# switched to other topics whose offsets start at 0 too. Each time:
#   - every new message becomes a row (no dead letters), none is skipped,
#   - the rows stored before are untouched,
#   - a new source begins (pinpipe.sources, with its reason and cluster id),
#   - pinpipe.offset_gaps records where each partition stopped,
#   - exactly once holds over all sources (pp_check_complete).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $broker = PinPipe::Test::Broker->new(
	partitions => 2,
	prefix => 'src',
	args => [ '--port', $port, map { ('--topic', "src2.$_:2") } qw(pin geo user) ]);

my $next_index = 1;
my $total = 0;    # messages produced to src.*

# $n pins into each partition of $topic (their "index" values all distinct)
sub produce
{
	my ($topic, $n) = @_;
	for my $p (0, 1)
	{
		my $text = '';
		for (1 .. $n)
		{
			$text .= qq({"index": $next_index, "title": "pin $next_index", "category": "p$p"}\n);
			$next_index++;
		}
		pp_kcat_produce($broker->bootstrap, $topic, text => $text, args => [ '-p', $p ]);
	}
	return 2 * $n;
}

my $node = pp_node('sources', brokers => $broker->bootstrap, prefix => 'src');
$total += produce('src.pin', 10);
pp_check_complete($node, 'src', $total);
pp_check($node, 'the first source: first use, with the cluster id the broker reports',
	"SELECT count(*) = 1 AND bool_and(reason = 'first use' AND cluster_id LIKE 'mockCluster%')
	   FROM pinpipe.sources WHERE topic = 'src.pin'");

my $expected_sources = 1;
my $expected_gaps = 0;
my $stored_per_partition = 10;
for my $case ([ 'fewer', 4 ], [ 'as many', 4 ], [ 'more', 7 ])
{
	my ($name, $n) = @$case;
	$node->safe_psql('postgres',
		'DROP TABLE IF EXISTS kept; CREATE TABLE kept AS SELECT * FROM pinpipe.pin_raw');
	my $kept = $node->safe_psql('postgres', 'SELECT count(*) FROM kept');
	my $old_cluster = $node->safe_psql('postgres',
		"SELECT cluster_id FROM pinpipe.sources WHERE topic = 'src.pin' ORDER BY id DESC LIMIT 1");

	$broker->stop('KILL');
	$broker->start;
	is($broker->bootstrap, "127.0.0.1:$port", "broker restarted on the same port ($name)");
	$total += produce('src.pin', $n);
	$expected_sources++;
	$expected_gaps += 2;

	pp_check_complete($node, 'src', $total);
	pp_check($node, "$name: no dead letters", 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
	pp_check($node, "$name: a new source, cluster changed, with the new cluster's id",
		"SELECT count(*) = $expected_sources
		        AND (array_agg(reason ORDER BY id DESC))[1] = 'cluster changed'
		        AND (array_agg(cluster_id ORDER BY id DESC))[1] LIKE 'mockCluster%'
		        AND (array_agg(cluster_id ORDER BY id DESC))[1] <> '$old_cluster'
		   FROM pinpipe.sources WHERE topic = 'src.pin'");
	pp_check($node, "$name: the $n messages of each partition stored in the new source",
		"SELECT count(*) = 2 * $n AND count(DISTINCT kafka_offset) = $n AND min(kafka_offset) = 0
		   FROM pinpipe.pin_raw WHERE kafka_source = (SELECT max(id) FROM pinpipe.sources WHERE topic = 'src.pin')");
	pp_check($node, "$name: the rows stored before are untouched",
		"SELECT NOT EXISTS (SELECT * FROM kept EXCEPT ALL SELECT * FROM pinpipe.pin_raw)
		    AND (SELECT count(*) FROM pinpipe.pin_raw) = $kept + 2 * $n");
	pp_check($node, "$name: offset_gaps records where each partition stopped",
		"SELECT count(*) = $expected_gaps
		        AND count(*) FILTER (WHERE expected_offset = $stored_per_partition AND resumed_offset = 0
		                             AND reason LIKE 'cluster changed: source % follows source %') >= 2
		   FROM pinpipe.offset_gaps WHERE topic = 'src.pin'")
	  or diag($node->safe_psql('postgres', 'SELECT * FROM pinpipe.offset_gaps ORDER BY detected_at'));
	pp_check($node, "$name: clean rows for every stored pin",
		"SELECT count(*) = " . ($next_index - 1) . " FROM pinpipe.pin_clean");
	$stored_per_partition = $n;
}

# Another prefix: src2.pin's offsets start at 0 too.
$node->safe_psql('postgres',
	'DROP TABLE IF EXISTS kept; CREATE TABLE kept AS SELECT * FROM pinpipe.pin_raw');
pp_set($node, 'pinpipe.topic_prefix' => 'src2');
my $total2 = produce('src2.pin', 5);
pp_check_complete($node, 'src2', $total2);
pp_check($node, 'prefix switched: no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
pp_check($node, "prefix switched: src2.pin's source began as prefix changed",
	"SELECT count(*) = 1 AND bool_and(reason = 'prefix changed') FROM pinpipe.sources WHERE topic = 'src2.pin'");
pp_check($node, 'prefix switched: the rows stored before are untouched',
	"SELECT NOT EXISTS (SELECT * FROM kept EXCEPT ALL SELECT * FROM pinpipe.pin_raw)
	    AND (SELECT count(*) FROM pinpipe.pin_raw) = (SELECT count(*) FROM kept) + $total2");
pp_check_complete($node, 'src', $total);
pp_check($node, 'all pins cleaned', "SELECT count(*) = " . ($next_index - 1) . " FROM pinpipe.pin_clean");

# A topic recreated on the same cluster, with fewer messages than were
# stored: the stored offsets of src2.pin are moved past the partitions' ends
# while the worker is disconnected (the mock broker cannot delete a topic).
pp_set($node, 'pinpipe.brokers' => '');
pp_wait_for($node, "SELECT bool_and(state LIKE 'idle%') FROM pinpipe.status", 60);
my $old_src2 = $node->safe_psql('postgres', "SELECT max(id) FROM pinpipe.sources WHERE topic = 'src2.pin'");
$node->safe_psql('postgres',
	"UPDATE pinpipe.offsets SET next_offset = next_offset + 100 WHERE topic = 'src2.pin' AND source = $old_src2;
	 DROP TABLE kept; CREATE TABLE kept AS SELECT * FROM pinpipe.pin_raw");
pp_set($node, 'pinpipe.brokers' => $broker->bootstrap);
pp_wait_for($node,
	"SELECT count(*) = 10 FROM pinpipe.pin_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source
	  WHERE s.topic = 'src2.pin' AND s.id > $old_src2", 120);
pp_check($node, 'recreated: a new source of src2.pin, topic recreated, on the same cluster',
	"SELECT count(*) = 1 AND bool_and(reason = 'topic recreated')
	        AND bool_and(cluster_id = (SELECT cluster_id FROM pinpipe.sources WHERE id = $old_src2))
	   FROM pinpipe.sources WHERE topic = 'src2.pin' AND id > $old_src2");
pp_check($node, 'recreated: every message of each partition stored once in the new source, no dead letters',
	"SELECT count(*) = 10 AND count(DISTINCT (kafka_partition, kafka_offset)) = 10 AND max(kafka_offset) = 4
	        AND (SELECT count(*) FROM pinpipe.dead_letters) = 0
	   FROM pinpipe.pin_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source
	  WHERE s.topic = 'src2.pin' AND s.id > $old_src2");
pp_check($node, 'recreated: offsets of the new source account for its messages',
	"SELECT count(*) = 2 AND bool_and(next_offset = 5)
	   FROM pinpipe.offsets WHERE topic = 'src2.pin' AND source > $old_src2");
pp_check($node, 'recreated: the rows stored before are untouched',
	'SELECT NOT EXISTS (SELECT * FROM kept EXCEPT ALL SELECT * FROM pinpipe.pin_raw)
	    AND (SELECT count(*) FROM pinpipe.pin_raw) = (SELECT count(*) FROM kept) + 10');
pp_check($node, 'recreated: offset_gaps records where each partition stopped',
	"SELECT count(*) = 2 AND bool_and(expected_offset = 105 AND resumed_offset = 0)
	   FROM pinpipe.offset_gaps WHERE topic = 'src2.pin'")
  or diag($node->safe_psql('postgres', "SELECT * FROM pinpipe.offset_gaps WHERE topic = 'src2.pin'"));

done_testing();
