# End to end through the real Kafka protocol: the sample rows, each posted
# twice (duplicates), produced with kcat to the embedded broker and consumed
# by the worker. Raw counts equal messages produced, clean counts equal
# distinct ind, cleaned values equal clean_pin(...) of the same JSON, every
# (partition, offset) is stored exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 4, prefix => 'e2e');
for my $t (qw(pin geo user))
{
	pp_kcat_produce($broker->bootstrap, "e2e.$t",
		text => pp_keyed_lines(pp_data($t), pp_data($t)), key_tab => 1);
}
# one pin with keys the record does not know: kept in extra
pp_kcat_produce($broker->bootstrap, 'e2e.pin', key_tab => 1,
	text => qq(999999\t{"index": 999999, "title": "Extra", "new_key": {"a": [1, 2.5, "x\\"y"]}, "n": 0.1, "flag": true}\n));

my $node = pp_node('ingest', brokers => $broker->bootstrap, prefix => 'e2e');
pp_wait_for($node, "SELECT (SELECT count(*) FROM pinpipe.pin_raw) = 4965
                      AND (SELECT count(*) FROM pinpipe.geo_raw) = 22308
                      AND (SELECT count(*) FROM pinpipe.user_raw) = 22308", 120);

pp_check($node, 'raw rows = messages produced',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) = 4965 AND (SELECT count(*) FROM pinpipe.geo_raw) = 22308
	    AND (SELECT count(*) FROM pinpipe.user_raw) = 22308");
pp_check($node, 'no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
pp_check($node, 'clean rows = distinct ind',
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 2483 AND (SELECT count(*) FROM pinpipe.geo_clean) = 11154
	    AND (SELECT count(*) FROM pinpipe.user_clean) = 11154");
pp_check($node, 'the worker stored the raw values exactly (minus Kafka columns)',
	"SELECT count(*) = 0 FROM pinpipe.geo_raw r
	  WHERE to_jsonb(r) - '{extra,kafka_partition,kafka_offset,kafka_timestamp,kafka_source,kafka_key,kafka_headers}'::text[] <> jsonb_build_object(
	        'ind', r.ind, 'timestamp', r.timestamp, 'latitude', r.latitude, 'longitude', r.longitude, 'country', r.country)");
pp_check($node, 'each message keeps its Kafka key (the ind, sent with kcat -K), no headers',
	"SELECT bool_and(convert_from(kafka_key, 'UTF8') = ind::text AND kafka_headers IS NULL) FROM pinpipe.geo_raw");
pp_check($node, 'unknown keys kept in extra',
	q{SELECT extra = '{"new_key": {"a": [1, 2.5, "x\"y"]}, "n": 0.1, "flag": true}'::jsonb FROM pinpipe.pin_raw WHERE "index" = 999999});
pp_check($node, 'extra is NULL when there are no unknown keys',
	'SELECT count(*) = 1 FROM pinpipe.pin_raw WHERE extra IS NOT NULL');
pp_check_complete($node, 'e2e', 4965 + 2 * 22308);
pp_check($node, 'all 12 partitions consumed',
	"SELECT count(*) = 12 FROM pinpipe.offsets WHERE topic LIKE 'e2e.%' AND next_offset > 0");
pp_check($node, 'kafka_timestamp recorded',
	"SELECT bool_and(kafka_timestamp > now() - interval '1 hour') FROM pinpipe.user_raw");
pp_check($node, 'status shows the worker caught up, no lag',
	"SELECT bool_and(pid IS NOT NULL AND state = 'caught up' AND lag = 0 AND partitions = 4 AND topic = 'e2e.' || kind)
	   FROM pinpipe.status");
pp_check($node, 'partition_lag lists 12 partitions with zero lag',
	'SELECT count(*) = 12 AND bool_and(lag = 0) FROM pinpipe.partition_lag');
pp_check($node, 'the worker shows in pg_stat_activity',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'
	    AND application_name = 'pinpipe worker'");

# cleaned values equal clean_pin/geo/user of the same JSON, row by row
my $top = pp_top();
my $copy = "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')";
is( $node->safe_psql(
		'postgres', qq{
CREATE TEMP TABLE s_pin (doc jsonb);
CREATE TEMP TABLE s_geo (doc jsonb);
CREATE TEMP TABLE s_user (doc jsonb);
\\copy s_pin FROM '$top/data/pin.jsonl' $copy
\\copy s_geo FROM '$top/data/geo.jsonl' $copy
\\copy s_user FROM '$top/data/user.jsonl' $copy
SELECT (SELECT count(*) FROM s_pin s JOIN pinpipe.pin_clean c ON c.ind = (s.doc->>'index')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_pin(s.doc)) = 2482
   AND (SELECT count(*) FROM s_geo s JOIN pinpipe.geo_clean c ON c.ind = (s.doc->>'ind')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_geo(s.doc)) = 11154
   AND (SELECT count(*) FROM s_user s JOIN pinpipe.user_clean c ON c.ind = (s.doc->>'ind')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_user(s.doc)) = 11154;
}),
	't',
	'cleaned values equal clean_*(json) of the same JSON');

# reclean() from the raw rows the worker wrote gives the same clean tables
my $hash = "md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c) ||
                (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.geo_clean c) ||
                (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.user_clean c))";
my $before = $node->safe_psql('postgres', "SELECT $hash");
is($node->safe_psql('postgres', 'SELECT pin_rows, geo_rows, user_rows FROM pinpipe.reclean()'),
	'2483|11154|11154', 'reclean() rebuilds one clean row per ind');
is($node->safe_psql('postgres', "SELECT $hash"), $before,
	"reclean() over the worker's raw rows gives the same clean tables");

done_testing();
