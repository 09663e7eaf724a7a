# Topics change under the running worker: it notices, says so clearly, and
# stores every message exactly once (as a raw row or a dead letter).
#
# The embedded broker (librdkafka 2.0.2's mock cluster) can neither add
# partitions to a topic nor delete one, so the test shows the worker what a
# client of a real broker sees:
#  1. partitions added: the broker is replaced, on the same port (--port), by
#     one with twice the partitions, holding the same messages at the same
#     offsets in the old partitions (produced again, as a real broker would
#     have kept them) and new messages in all of them. The worker is paused
#     during the swap only, so it never sees the moment the replacement is
#     still empty, which a real broker never is. With start_offset = latest:
#     the new partitions' messages must not be skipped.
#  2. a topic deleted and back: the broker reports it as unknown
#     (topic-error UNKNOWN_TOPIC_OR_PART) for 15 s, then as before.
#  3. topics recreated empty: the broker is replaced by one with empty topics;
#     the stored offsets are beyond their end.
# The broker reports the same cluster id on every start (--stable-cluster-id):
# a replaced broker is the same cluster to the worker, as a real broker whose
# topics changed is (sources.pl tests a restart as a new cluster).
# The worker process is the same throughout (no crash, no restart loop).
# Part 1 runs on one node, parts 2 and 3 on another.
use strict;
use warnings;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use PinPipe::Test;

# A free port below the ephemeral range (32768-), so that no client or
# random-port broker takes it between brokers.
sub free_port
{
	my $port = 20000 + int(rand(10000));
	for (;; $port++)
	{
		my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp', Listen => 1);
		next unless $s;
		close $s;
		return $port;
	}
}
my $port = free_port();
my $bootstrap = "127.0.0.1:$port";

# produce(PREFIX, PARTITION, FIRST, LAST, [LABEL], [KINDS]): messages with inds
# FIRST..LAST into partition PARTITION of PREFIX.pin, .geo and .user (or
# KINDS); LABEL is the pin's title, the geo's country and the user's first name.
sub produce
{
	my ($prefix, $p, $first, $last, $label, $kinds) = @_;
	my %fmt = (
		pin  => '{"index": %d, "title": "%s"}',
		geo  => '{"ind": %d, "country": "%s"}',
		user => '{"ind": %d, "first_name": "%s"}');
	for my $kind (@{ $kinds // [qw(pin geo user)] })
	{
		my $text = join '',
		  map { sprintf("%d\t$fmt{$kind}\n", $_, $_, $label || "m$_") } $first .. $last;
		eval { pp_kcat_produce($bootstrap, "$prefix.$kind", text => $text, key_tab => 1, args => [ '-p', $p ]); 1 }
		  or fail("kcat could not produce to $prefix.$kind [$p]: $@");
	}
	return;
}

sub start_broker
{
	my (%opt) = @_;
	my $broker = PinPipe::Test::Broker->new(%opt, args => [ '--port', $port, '--stable-cluster-id' ]);
	die "broker not on $bootstrap: " . $broker->bootstrap unless $broker->bootstrap eq $bootstrap;
	return $broker;
}

# The node's log since byte $from.
sub new_log
{
	my ($node, $from) = @_;
	return slurp_file($node->logfile, $from);
}

# check_log(NODE, FROM, DESCRIPTION, FIXED_STRING, [SECONDS to wait for it])
sub check_log
{
	my ($node, $from, $desc, $text, $secs) = @_;
	my $deadline = time + ($secs // 0);
	while (index(new_log($node, $from), $text) < 0 && time < $deadline) { usleep(500_000); }
	ok(index(new_log($node, $from), $text) >= 0, "the server log says: $text") or diag("$desc: not in the server log");
	return;
}

sub check_same_worker
{
	my ($node, $worker) = @_;
	my $now = pp_worker_pid($node);
	ok($worker ne '' && $now eq $worker, "the same worker process ($worker) throughout")
	  or diag("the worker restarted ($worker, now $now)");
	return;
}

note('partitions added: 3 to 6 per topic, start_offset = latest');
my $broker = start_broker(partitions => 3, prefix => 'grow');
my $node = pp_node('grow', brokers => $bootstrap, prefix => 'grow');
produce('grow', $_, $_ * 1000 + 1, $_ * 1000 + 20) for 0 .. 2;
pp_check_complete($node, 'grow', 180, 60);
my $worker = pp_worker_pid($node);
# latest: the new partitions have no stored offset, and must start at their beginning anyway
pp_set($node, 'pinpipe.start_offset' => 'latest');
$node->safe_psql('postgres', 'SELECT pinpipe.pause()');
pp_wait_for($node, "SELECT bool_and(state = 'paused') FROM pinpipe.status", 10);
$broker->stop;
$broker = start_broker(partitions => 6, prefix => 'grow');
produce('grow', $_, $_ * 1000 + 1,  $_ * 1000 + 20) for 0 .. 2;    # as before
produce('grow', $_, $_ * 1000 + 21, $_ * 1000 + 30) for 0 .. 5;
$node->safe_psql('postgres', 'SELECT pinpipe.resume()');
pp_wait_for($node, "SELECT count(*) = 18 FROM pinpipe.partition_lag WHERE topic LIKE 'grow.%'", 30);
produce('grow', $_, $_ * 1000 + 31, $_ * 1000 + 35) for 0 .. 5;    # while running
pp_check_complete($node, 'grow', 180 + 180 + 90, 60);
diag('stored offsets: ' . $node->safe_psql('postgres',
		"SELECT string_agg(format('%s[%s] %s', topic, kafka_partition, next_offset), ', '
		                   ORDER BY topic, kafka_partition) FROM pinpipe.offsets"))
  unless Test::More->builder->is_passing;
pp_check($node, 'partition_lag shows 6 partitions per topic, all consumed',
	"SELECT count(*) = 18 AND bool_and(lag = 0) FROM pinpipe.partition_lag WHERE topic LIKE 'grow.%'");
pp_check($node, 'no dead letters, no gaps',
	'SELECT NOT EXISTS (SELECT FROM pinpipe.dead_letters) AND NOT EXISTS (SELECT FROM pinpipe.offset_gaps)');
pp_check($node, 'the re-produced messages were not stored twice (each ind once per table)',
	'SELECT count(DISTINCT index) = count(*) AND count(*) = 150 FROM pinpipe.pin_raw');
check_log($node, 0, 'the new partitions were noticed', 'topic "grow.pin" now has 6 partitions (it had 3)');
check_log($node, 0, 'the new partitions started at their beginning',
	'grow.pin partition 5 has no stored offset, starting at the earliest offset (the partition appeared while the worker ran)'
);
check_same_worker($node, $worker);
$broker->stop;
$node->stop;

note('a topic deleted for 15 s, then back');
$broker = start_broker(partitions => 2, prefix => 'del');
$node = pp_node('del', brokers => $bootstrap, prefix => 'del');
produce('del', $_, $_ * 1000 + 1, $_ * 1000 + 20) for 0 .. 1;
pp_check_complete($node, 'del', 120, 60);
$worker = pp_worker_pid($node);
$broker->ctl('topic-error del.geo UNKNOWN_TOPIC_OR_PART');
pp_wait_for($node, "SELECT bool_or(last_error LIKE '%del.geo%does not exist%') FROM pinpipe.status", 30);
# the other topics go on meanwhile
produce('del', $_, $_ * 1000 + 21, $_ * 1000 + 30, '', [qw(pin user)]) for 0 .. 1;
pp_wait_for($node, "SELECT sum(next_offset) = 120 FROM pinpipe.offsets WHERE topic IN ('del.pin', 'del.user')", 30);
pp_check($node, 'status says the topic does not exist',
	"SELECT bool_or(last_error LIKE '%del.geo%does not exist%') FROM pinpipe.status");
sleep 8;    # the missing topic for 15 s in all
my $kafka_errors = () = new_log($node, 0) =~ /Kafka error: del\.geo/g;
ok($kafka_errors <= 4, "$kafka_errors librdkafka error lines about del.geo in 15 s (rate limited)");
$broker->ctl('topic-error del.geo clear');
for (1 .. 50)    # the broker applies a command within a second
{
	my $out = '';
	IPC::Run::run([ 'kcat', '-b', $bootstrap, '-L', '-t', 'del.geo' ], '<', \'', '>&', \$out);
	last if index($out, '"del.geo" with 2 partitions') >= 0;
	usleep(200_000);
}
produce('del', $_, $_ * 1000 + 21, $_ * 1000 + 30, '', ['geo']) for 0 .. 1;
pp_check_complete($node, 'del', 180, 60);
check_log($node, 0, 'the missing topic was reported', 'topic "del.geo" does not exist');
check_log($node, 0, 'with what to do', 'HINT:  Create the topic, or correct pinpipe.topic_prefix.');
check_log($node, 0, 'its return was reported', 'topic "del.geo" is available (2 partitions)', 20);
check_same_worker($node, $worker);

note('topics deleted and recreated empty (stored offsets beyond their end)');
$broker->stop;
$broker = start_broker(partitions => 2, prefix => 'del');
pp_wait_for($node, "SELECT count(*) = 6 FROM pinpipe.offset_gaps WHERE topic LIKE 'del.%'", 60);
pp_check($node, "each partition's gap is recorded as a recreated topic, resumed at 0",
	"SELECT bool_and(resumed_offset = 0 AND expected_offset = 30 AND lost_messages = 0
	                 AND reason LIKE '%recreated%') FROM pinpipe.offset_gaps");
pp_check($node, 'status says so',
	"SELECT bool_or(coalesce(last_error, previous_error) LIKE '%before the stored offset%recreated%') FROM pinpipe.status");
# the first partition found past its end begins the topic's new source (for all its partitions)
like(
	new_log($node, 0),
	qr/WARNING:  pinpipe worker 0: del\.geo partition [01] ends at offset 0, before the stored offset 30/,
	'the server log has the WARNING for del.geo');
check_log($node, 0, 'its hint', 'stored under a new source');
pp_check($node, 'a new source per topic, topic recreated',
	"SELECT count(*) = 3 FROM pinpipe.sources WHERE topic LIKE 'del.%' AND reason = 'topic recreated'");
# 40 new messages per partition: offsets 0-29 of the old topic are stored already, in its old source
produce('del', $_, $_ * 1000 + 501, $_ * 1000 + 540, 'recreated') for 0 .. 1;
pp_wait_for($node, "SELECT sum(next_offset) = 240 FROM pinpipe.offsets o JOIN pinpipe.sources s ON s.id = o.source
                     WHERE o.topic LIKE 'del.%' AND s.reason = 'topic recreated'", 60);
pp_check(
	$node,
	'every new message is stored once, as a row of the new source (no dead letters)',
	"WITH new AS (
	     SELECT 'pin' AS t, kafka_partition, kafka_offset FROM pinpipe.pin_raw WHERE title = 'recreated'
	     UNION ALL SELECT 'geo', kafka_partition, kafka_offset FROM pinpipe.geo_raw WHERE country = 'recreated'
	     UNION ALL SELECT 'user', kafka_partition, kafka_offset FROM pinpipe.user_raw WHERE first_name = 'recreated'
	     UNION ALL SELECT split_part(topic, '.', 2), kafka_partition, kafka_offset FROM pinpipe.dead_letters
	      WHERE error LIKE '%duplicate key%' AND convert_from(payload, 'UTF8') LIKE '%recreated%')
	 SELECT count(*) = 240 AND count(DISTINCT (t, kafka_partition, kafka_offset)) = 240
	        AND min(kafka_offset) = 0 AND max(kafka_offset) = 39
	        AND NOT EXISTS (SELECT FROM pinpipe.dead_letters) FROM new");
pp_check($node, 'the old rows are untouched',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw WHERE title <> 'recreated') = 60
	    AND (SELECT count(*) FROM pinpipe.geo_raw WHERE country <> 'recreated') = 60
	    AND (SELECT count(*) FROM pinpipe.user_raw WHERE first_name <> 'recreated') = 60");
check_same_worker($node, $worker);
$broker->stop;

done_testing();
