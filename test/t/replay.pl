# pinpipe.replay_dead_letters() and pinpipe.purge_dead_letters(): dead
# letters run again through the worker's decoder and cleaner after the cause
# is gone (a user CHECK constraint dropped, a payload corrected with UPDATE,
# pinpipe.max_message_bytes raised) become rows, clean rows and analytics,
# and are marked replayed_at; what still fails keeps its dead letter and is
# counted by error. Every message is then stored exactly once (a raw row, or
# a dead letter not replayed: pp_check_complete). Purge by age; a plain user
# is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $prefix = 'rp';
my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => $prefix);
my $node = pp_node('replay', brokers => $broker->bootstrap, prefix => $prefix);
my $total = 0;

sub produce
{
	my ($topic, $text) = @_;
	pp_kcat_produce($broker->bootstrap, "$prefix.$topic", text => $text, key_tab => 1);
	$total += () = $text =~ /\n/g;
	return;
}

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# the consistency of clean rows and analytics with the raw rows
sub check_clean
{
	my ($what) = @_;
	my $hash = "md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c) ||
	                (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.geo_clean c))";
	my $before = q1("SELECT $hash");
	is(q1('SELECT count(*) FROM pinpipe.analytics_check() WHERE NOT matches'), '0', "$what: analytics agree");
	q1('SELECT pinpipe.reclean()');
	is(q1("SELECT $hash"), $before, "$what: clean rows = the latest raw row of each ind (as reclean makes them)");
	return;
}

# --- a user CHECK constraint refuses the travel pins; dropped, they are replayed
q1(q{ALTER TABLE pinpipe.pin_raw ADD CONSTRAINT no_travel CHECK (category IS DISTINCT FROM 'travel')});
my $pins = pp_keyed_lines(pp_data('pin'));
my $travel = () = $pins =~ /"category": "travel"/g;
ok($travel > 0, "the sample has $travel travel pins");
produce('pin', $pins);
produce('geo', pp_keyed_lines(pp_data('geo')));
pp_check_complete($node, $prefix, $total);
is(q1(q{SELECT count(*) FROM pinpipe.dead_letters WHERE error LIKE '%no_travel%'}), $travel,
	'the travel pins became dead letters');
is(q1(q{SELECT count(*) FROM pinpipe.pin_raw WHERE category = 'travel'}), '0', 'and no raw rows');

my ($ret, $out, $err);
pp_check($node, 'while the constraint holds nothing is replayed: every travel pin fails again, counted by error',
	"SELECT sum(messages) FILTER (WHERE outcome = 'replayed') = 0
	        AND sum(messages) FILTER (WHERE outcome = 'failed' AND error LIKE '%no_travel%') = $travel
	   FROM pinpipe.replay_dead_letters()");
is(q1('SELECT count(*) FROM pinpipe.dead_letters WHERE replayed_at IS NOT NULL'), '0', 'none marked');

q1('ALTER TABLE pinpipe.pin_raw DROP CONSTRAINT no_travel');
is( q1(q{SELECT outcome || ':' || messages FROM pinpipe.replay_dead_letters('rp.pin', '%no_travel%')}),
	"replayed:$travel", 'after DROP CONSTRAINT every travel pin is replayed');
is(q1(q{SELECT count(*) FROM pinpipe.pin_raw WHERE category = 'travel'}), $travel, 'as raw rows');
is(q1(q{SELECT count(*) FROM pinpipe.dead_letters WHERE replayed_at IS NOT NULL AND error LIKE '%no_travel%'}),
	$travel, 'the dead letters are marked replayed_at');
pp_check($node, 'their clean rows exist',
	q{SELECT count(*) > 0 AND bool_and(c.ind IS NOT NULL) FROM pinpipe.pin_raw r
	    LEFT JOIN pinpipe.pin_clean c ON c.ind = r."index" WHERE r.category = 'travel'});
pp_check_complete($node, $prefix, $total);
check_clean('after the constraint');
is(q1('SELECT count(*) FROM pinpipe.replay_dead_letters() WHERE outcome = \'replayed\' AND messages = 0'),
	'1', 'a second replay finds nothing to replay');

# --- a payload corrected with UPDATE; another left broken
produce('pin', qq(900001\t{"index": "9000x1", "title": "fixed by hand", "category": "art"}\n)
	  . qq(900002\t{"index": "broken", "title": "left as it is"}\n));
pp_check_complete($node, $prefix, $total);
my $bad_error = q1(q{SELECT error FROM pinpipe.dead_letters WHERE convert_from(payload, 'UTF8') LIKE '%9000x1%'});
like($bad_error, qr/index/, "the wrong type is refused: $bad_error");
q1(q{UPDATE pinpipe.dead_letters SET payload = convert_to(replace(convert_from(payload, 'UTF8'), '"9000x1"', '900001'), 'UTF8')
      WHERE convert_from(payload, 'UTF8') LIKE '%9000x1%'});
my $broken_error = q1(q{SELECT error FROM pinpipe.dead_letters WHERE convert_from(payload, 'UTF8') LIKE '%left as it is%'});
is( q1("SELECT string_agg(outcome || ':' || coalesce(error, '') || ':' || messages, ';' ORDER BY outcome DESC)
	      FROM pinpipe.replay_dead_letters('rp.pin')"),
	"replayed::1;failed:$broken_error:1",
	'the corrected payload is replayed, the broken one fails again with its error');
pp_check($node, 'the corrected message is a raw row and a clean row, at its partition and offset',
	q{SELECT r.title = 'fixed by hand' AND c.title = 'fixed by hand' AND c.category = 'art'
	         AND (r.kafka_partition, r.kafka_offset) = (SELECT kafka_partition, kafka_offset FROM pinpipe.dead_letters
	                                                    WHERE convert_from(payload, 'UTF8') LIKE '%900001%')
	    FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index" WHERE r."index" = 900001});
pp_check($node, 'the broken one is still a dead letter, not replayed',
	q{SELECT replayed_at IS NULL FROM pinpipe.dead_letters WHERE convert_from(payload, 'UTF8') LIKE '%left as it is%'});
pp_check_complete($node, $prefix, $total);

# --- too large for pinpipe.max_message_bytes, replayed after raising it
pp_set($node, 'pinpipe.max_message_bytes' => '2000');
my $long = 'x' x 3000;
produce('pin', qq(900003\t{"index": 900003, "title": "long", "description": "$long"}\n));
pp_check_complete($node, $prefix, $total);
is(q1(q{SELECT error || ': ' || error_detail FROM pinpipe.dead_letters WHERE convert_from(payload, 'UTF8') LIKE '%900003%'}),
	'message exceeds pinpipe.max_message_bytes: message of 3053 bytes exceeds the limit of 2000 bytes',
	'a 3 kB message is refused under max_message_bytes = 2000');
is(q1(q{SELECT messages FROM pinpipe.replay_dead_letters('rp.pin', 'message exceeds pinpipe.max_message_bytes') WHERE outcome = 'replayed'}),
	'0', 'not replayed while the limit holds');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET pinpipe.max_message_bytes; SELECT pg_reload_conf()');
pp_wait_for($node, q{SELECT current_setting('pinpipe.max_message_bytes') = '1MB'});
is(q1(q{SELECT messages FROM pinpipe.replay_dead_letters('rp.pin', 'message exceeds pinpipe.max_message_bytes') WHERE outcome = 'replayed'}),
	'1', 'replayed after raising the limit');
pp_check($node, 'the large message is a raw row with its description',
	qq{SELECT length(description) = 3000 FROM pinpipe.pin_raw WHERE "index" = 900003});
pp_check_complete($node, $prefix, $total);
check_clean('after all replays');

# --- permissions
q1('CREATE ROLE plain LOGIN; CREATE ROLE operator LOGIN IN ROLE pinpipe_admin');
for my $call ('pinpipe.replay_dead_letters()', "pinpipe.purge_dead_letters('1 day')")
{
	($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM $call", extra_params => [ '-U', 'plain' ]);
	like($err, qr/permission denied for function/, "a plain user may not call $call");
}
(my $pattern = $broken_error) =~ s/'/''/g;
is($node->safe_psql('postgres', "SELECT outcome || ':' || messages FROM pinpipe.replay_dead_letters('rp.pin', '$pattern')",
		extra_params => [ '-U', 'operator' ]),
	"replayed:0\nfailed:1", 'a member of pinpipe_admin may replay');

# --- purge by age: replayed or not
my $n = q1('SELECT count(*) FROM pinpipe.dead_letters');
is(q1(q{SELECT pinpipe.purge_dead_letters('1 hour')}), '0', 'nothing older than an hour');
q1(q{UPDATE pinpipe.dead_letters SET received_at = now() - interval '2 days'
      WHERE replayed_at IS NOT NULL OR convert_from(payload, 'UTF8') LIKE '%left as it is%'});
my $old = q1(q{SELECT count(*) FROM pinpipe.dead_letters WHERE received_at < now() - interval '1 day'});
is($old, $travel + 3, 'the replayed ones and the broken one made two days old');
is($node->safe_psql('postgres', q{SELECT pinpipe.purge_dead_letters('1 day')}, extra_params => [ '-U', 'operator' ]),
	$old, 'purge_dead_letters(1 day) deletes them, and says how many');
is(q1('SELECT count(*) FROM pinpipe.dead_letters'), $n - $old, 'the others are kept');

$node->stop;
done_testing();
