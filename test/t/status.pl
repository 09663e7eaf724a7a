# pinpipe.status says what is true (issue 13, section 2):
#   - brokers that do not answer (a closed port, an unknown host, a killed
#     broker) show as "brokers unreachable", with the error on every topic;
#   - once they answer again the state is "caught up" and the error moves to
#     previous_error with its time (a broker killed and started again on the
#     same --port);
#   - a missing database (pinpipe.database = 'nosuchdb') shows as the error
#     that ends the worker, whose "since" survives the worker's restarts, and
#     clears when the setting is fixed;
#   - pause() returns once the worker is paused (state "paused", nothing
#     stored while paused), and warns when the worker does not pause within
#     its timeout (state "pausing" meanwhile); resume() consumes again;
#   - each topic has its own state and error.
# Exactly once is checked at the end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $prefix = 'st';
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => $prefix, args => [ '--port', $port ]);
my $total = 0;

# n messages to each topic (valid rows, keyed by ind), from ind $first on
sub produce
{
	my ($first, $n, @kinds) = @_;
	@kinds = qw(pin geo user) unless @kinds;
	for my $t (@kinds)
	{
		my $key = $t eq 'pin' ? 'index' : 'ind';
		pp_kcat_produce($broker->bootstrap, "$prefix.$t",
			text => join('', map { qq({"$key": $_, "title": "t$_"}\n) } $first .. $first + $n - 1));
		$total += $n;
	}
	return;
}

sub state_is
{
	my ($node, $state, $secs) = @_;
	$state =~ s/'/''/g;
	return pp_wait_for($node, "SELECT count(*) = 3 AND bool_and(state = '$state') FROM pinpipe.status", $secs // 60);
}

# 1. brokers that do not answer: a closed port
my $node = pp_node('status', brokers => '127.0.0.1:1', prefix => $prefix);
state_is($node, 'brokers unreachable');
pp_check($node, 'a closed port: every topic says why, since when, in which database',
	"SELECT bool_and(last_error LIKE '%127.0.0.1:1%' AND last_error_at IS NOT NULL AND since IS NOT NULL
	                 AND since <= now() AND database = 'postgres' AND pid IS NOT NULL)
	   FROM pinpipe.status");

# an unknown host
pp_set($node, 'pinpipe.brokers' => 'nohost.invalid:1');
pp_wait_for($node, "SELECT bool_and(state = 'brokers unreachable' AND last_error LIKE '%nohost.invalid%') FROM pinpipe.status");

# 2. a broker that answers: the error is cleared and kept as previous_error
produce(1, 20);
pp_set($node, 'pinpipe.brokers' => $broker->bootstrap);
state_is($node, 'caught up');
pp_check($node, 'caught up: no error left, the previous one kept with its time',
	"SELECT bool_and(last_error IS NULL AND last_error_at IS NULL
	                 AND previous_error LIKE '%nohost.invalid%' AND previous_error_at < since
	                 AND lag = 0 AND messages = 20)
	   FROM pinpipe.status");
pp_check_complete($node, $prefix, $total);

# 3. each topic its own state and error: a topic the broker says does not exist
$broker->ctl("topic-error $prefix.geo UNKNOWN_TOPIC_OR_PART");
pp_wait_for($node, "SELECT state = 'topic does not exist' AND last_error LIKE '%$prefix.geo%does not exist%'
                      FROM pinpipe.status WHERE kind = 'geo'", 60);
pp_check($node, "the other topics' rows do not carry the geo topic's error",
	"SELECT bool_and(state = 'caught up' AND coalesce(last_error, '') NOT LIKE '%$prefix.geo%')
	   FROM pinpipe.status WHERE kind <> 'geo'");
$broker->ctl("topic-error $prefix.geo clear");
state_is($node, 'caught up');
pp_check($node, 'the geo error cleared once the topic is back',
	"SELECT last_error IS NULL AND previous_error LIKE '%$prefix.geo%does not exist%'
	   FROM pinpipe.status WHERE kind = 'geo'");

# 4. pause() returns once the worker has stopped
my $paused = $node->safe_psql('postgres',
	"SELECT pinpipe.pause(); SELECT bool_and(state = 'paused') FROM pinpipe.status");
is($paused, "\nt", 'pause() returns with every topic paused');
produce(100, 10);
sleep 3;
pp_check($node, 'nothing is stored while paused',
	"SELECT coalesce(sum(next_offset), 0) = 60 FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'");
pp_check($node, 'paused since the pause, with no error',
	"SELECT bool_and(state = 'paused' AND since > now() - interval '1 minute' AND last_error IS NULL)
	   FROM pinpipe.status");

# a worker that cannot pause in time (it waits for a lock on pinpipe.offsets
# with a batch in hand): a WARNING after the timeout, "pausing" meanwhile
my ($stdout, $stderr) = ('', '');
$node->psql(
	'postgres', q{
BEGIN;
LOCK TABLE pinpipe.offsets IN ACCESS EXCLUSIVE MODE;
SELECT pinpipe.resume();
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE NOT granted AND relation = 'pinpipe.offsets'::regclass);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT 'worker waits: ' || EXISTS (SELECT FROM pg_locks WHERE NOT granted AND relation = 'pinpipe.offsets'::regclass);
SELECT pinpipe.pause('2 s');
SELECT 'states: ' || string_agg(DISTINCT state, ',') FROM pinpipe.status;
COMMIT;
},
	stdout => \$stdout,
	stderr => \$stderr);
like($stdout, qr/worker waits: true/, 'the worker waits for the lock with a batch');
like($stderr, qr/WARNING:  1 pinpipe worker has not paused yet after 2000 ms/, 'pause() warns after its timeout');
like($stderr, qr/HINT:  See pinpipe.status for its state/, 'with a hint');
like($stdout, qr/states: pausing$/m, 'the status says "pausing" meanwhile');
state_is($node, 'paused');
# The worker waited for the lock either with the 30 new messages in hand (then
# they are stored before it pauses) or in its once-a-second look for rewind
# requests (then it pauses before reading them); nothing else is stored.
pp_check($node, 'what the worker had in hand was stored before pausing, nothing more',
	"SELECT sum(next_offset) IN (60, 90) FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'");

# resume(): consuming again
produce(200, 10);
$node->safe_psql('postgres', 'SELECT pinpipe.resume()');
state_is($node, 'caught up');
pp_check_complete($node, $prefix, $total);

# a pinpipe_admin member may pause and resume
$node->safe_psql('postgres', 'CREATE ROLE ops LOGIN IN ROLE pinpipe_admin');
is($node->safe_psql('postgres', "SELECT pinpipe.pause('10 s'); SELECT bool_and(state = 'paused') FROM pinpipe.status",
		extra_params => [ '-U', 'ops' ]),
	"\nt", 'a pinpipe_admin member pauses');
$node->safe_psql('postgres', 'SELECT pinpipe.resume()', extra_params => [ '-U', 'ops' ]);
state_is($node, 'caught up');

# 5. a database that does not exist
$node->safe_psql('postgres', "ALTER SYSTEM SET pinpipe.database = 'nosuchdb'");
$node->restart;
my $missing = q{database "nosuchdb" does not exist};
state_is($node, $missing);
pp_check($node, 'the missing database: no process, the error on every topic, the database named',
	"SELECT bool_and(pid IS NULL AND last_error = '$missing' AND database = 'nosuchdb') FROM pinpipe.status");
my $since = $node->safe_psql('postgres', 'SELECT min(since) FROM pinpipe.status');
sleep 7;    # the worker is started again every 5 s, and fails again
pp_check($node, "the state's since survives the worker's restarts",
	"SELECT bool_and(state = '$missing' AND since = '$since') FROM pinpipe.status");
ok($node->log_contains('FATAL:  database "nosuchdb" does not exist'), 'the log says so too');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET pinpipe.database');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
produce(300, 10);
state_is($node, 'caught up', 90);
pp_check($node, 'the database fixed: the error is cleared and kept as previous_error',
	"SELECT bool_and(last_error IS NULL AND previous_error = '$missing' AND pid IS NOT NULL AND database = 'postgres')
	   FROM pinpipe.status");

# exactly once through it all
pp_check_complete($node, $prefix, $total);
pp_check($node, 'no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');

# 6. the broker killed: unreachable; started again on the same port: caught up
$broker->stop;
state_is($node, 'brokers unreachable');
pp_check($node, 'a killed broker: the error says so on every topic',
	"SELECT bool_and(last_error IS NOT NULL AND last_error_at > previous_error_at) FROM pinpipe.status");
my $down_since = $node->safe_psql('postgres', "SELECT min(since) FROM pinpipe.status");
$broker->start;
is($broker->bootstrap, "127.0.0.1:$port", 'the broker is back on the same port');
# the new broker is empty (a new incarnation of the topics, issue 13 section
# 1): nothing to consume
state_is($node, 'caught up');
pp_check($node, 'the cause gone, the error is cleared and kept as previous_error',
	"SELECT bool_and(last_error IS NULL AND previous_error IS NOT NULL AND since > '$down_since')
	   FROM pinpipe.status");

pp_check($node, 'the rows stored before the broker was killed are kept',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.geo_raw)
	        + (SELECT count(*) FROM pinpipe.user_raw) = $total");

done_testing();
