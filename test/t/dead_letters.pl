# A batch with bad messages mixed in: the good rows all land, each bad one
# becomes a dead letter with its precise error, and rows + dead letters =
# messages consumed. A user trigger that refuses one row costs only that row.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'bad');
my $node = pp_node('dead_letters');

# a user trigger on pin_clean that refuses ind 13
$node->safe_psql('postgres', q{
CREATE FUNCTION public.refuse_13() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.ind = 13 THEN RAISE EXCEPTION 'ind 13 is refused by a trigger'; END IF; RETURN NEW; END $$;
CREATE TRIGGER refuse_13 BEFORE INSERT OR UPDATE ON pinpipe.pin_clean
    FOR EACH ROW EXECUTE FUNCTION public.refuse_13();
});

# messages separated by the byte 0x1e, in this order; expected fate in the comment
my @pins = (
	'{"index": 1, "title": "good one", "follower_count": "5k"}',          # row
	'{"index": 2, "title": ',                                              # invalid JSON
	'[{"index": 3}]',                                                      # not an object
	'{"title": "no key"}',                                                 # missing key
	'{"index": "4"}',                                                      # wrong type (key)
	'{"index": 5, "title": "nul \\u0000 inside"}',                         # \u0000
	qq({"index": 6, "title": "\xff\xfe"}),                                 # invalid UTF-8
	'{"index": 7, "title": "good two"}',                                   # row
	'{"index": 8, "title": "' . ('x' x 1100000) . '"}',                    # too large
	'{"index": 9, "downloaded": "yes"}',                                   # wrong type
	'{"index": 10, "title": "a", "title": "b"}',                           # duplicate key
	'{"index": 11, "unique_id": null, "title": null, "category": null}',   # row (nulls)
	'{"index": 12, "deep": ' . ('[' x 3000) . (']' x 3000) . '}',          # too deep
	'{"index": 13, "title": "refused by trigger"}',                        # statement error
	'{"index": 14, "title": "good three"}',                                # row
	'{"index": 3000000000}',                                               # out of range
	'{"index": 15, "title": "good four"}');                                # row
pp_kcat_produce($broker->bootstrap, 'bad.pin', text => join("\x1e", @pins),
	args => [ '-D', "\x1e", '-X', 'message.max.bytes=5000000' ]);
pp_kcat_produce($broker->bootstrap, 'bad.geo', args => [ '-D', "\x1e" ],
	text => qq({"ind": 1, "latitude": "10.5", "longitude": 20}\x1e{"ind": 2, "latitude": 10.5, "longitude": 20, "country": "X"}));
pp_kcat_produce($broker->bootstrap, 'bad.user', args => [ '-D', "\x1e" ],
	text => qq({"ind": 1, "age": 20.5}\x1e{"ind": 2, "first_name": "A", "last_name": null, "age": null}));

pp_set($node, 'pinpipe.brokers' => $broker->bootstrap, 'pinpipe.topic_prefix' => 'bad');
pp_wait_for($node, "SELECT coalesce(sum(next_offset), 0) = 21 FROM pinpipe.offsets WHERE topic LIKE 'bad.%'", 60);

pp_check($node, 'good pins all land in raw; the refused one is a dead letter, not a row',
	q{SELECT array_agg("index" ORDER BY "index") = '{1,7,11,14,15}' FROM pinpipe.pin_raw});
pp_check($node, "the trigger's row is not in pin_clean, its neighbours are",
	q{SELECT array_agg(ind ORDER BY ind) = '{1,7,11,14,15}' FROM pinpipe.pin_clean});
pp_check($node, 'rows + dead letters = messages consumed, per topic',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.pin') = 17
	    AND (SELECT count(*) FROM pinpipe.geo_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.geo') = 2
	    AND (SELECT count(*) FROM pinpipe.user_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.user') = 2");

# expect(OFFSET, TOPIC, ERROR LIKE pattern): the whole error, error_detail when there is one
sub expect
{
	my ($offset, $topic, $pattern) = @_;
	pp_check($node, "dead letter at $topic offset $offset: $pattern",
		"SELECT coalesce(error_detail, error) LIKE '$pattern' FROM pinpipe.dead_letters
		  WHERE topic = '$topic' AND kafka_offset = $offset");
	return;
}
expect(1, 'bad.pin', 'invalid JSON at line 1, column %');
expect(2, 'bad.pin', 'message is an array, expected a JSON object');
expect(3, 'bad.pin', 'missing join key "index" (or "ind")');
expect(4, 'bad.pin', 'key "index" is a string, expected an integer');
expect(5, 'bad.pin', 'invalid JSON %\\\\u0000 is not allowed%');
expect(6, 'bad.pin', 'invalid JSON %unable to decode byte 0xff%');
expect(8, 'bad.pin', 'message of 11000__ bytes exceeds the limit of 1048576 bytes');
expect(9, 'bad.pin', 'key "downloaded" is a string, expected an integer');
expect(10, 'bad.pin', 'invalid JSON %duplicate object key%');
expect(12, 'bad.pin', 'invalid JSON %maximum parsing depth%');
expect(13, 'bad.pin', 'ind 13 is refused by a trigger');
expect(15, 'bad.pin', 'value 3000000000 of key "index" is out of range for type integer');
expect(0, 'bad.geo', 'key "latitude" is a string, expected a number');
expect(0, 'bad.user', 'key "age" is a real number, expected an integer');
pp_check($node, 'errors are stable reasons that group; the variable part is in error_detail',
	q{SELECT array_agg(error || ' x' || n ORDER BY error COLLATE "C") = '{"integer value out of range x1","invalid JSON x5","message exceeds pinpipe.max_message_bytes x1","refused by the database (SQLSTATE P0001) x1"}'
	   FROM (SELECT error, count(*) n FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND error_detail IS NOT NULL GROUP BY error) g});
pp_check($node, 'dead letters keep the payload byte for byte',
	q{SELECT payload = '\x7b22696e646578223a20362c20227469746c65223a2022fffe227d'::bytea FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND kafka_offset = 6});
pp_check($node, 'the oversized payload is kept whole',
	"SELECT length(payload) > 1100000 FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND kafka_offset = 8");
pp_check($node, 'nulls everywhere but the key make a row with NULLs',
	q{SELECT title IS NULL AND unique_id IS NULL FROM pinpipe.pin_raw WHERE "index" = 11});
pp_check($node, 'status counts the dead letters', "SELECT dead_letters >= 11 FROM pinpipe.status WHERE kind = 'pin'");
pp_check($node, 'the stream goes on: offsets advanced past every message',
	"SELECT next_offset = 17 FROM pinpipe.offsets WHERE topic = 'bad.pin'");

# the stream continues after the bad batch
pp_kcat_produce($broker->bootstrap, 'bad.pin', key_tab => 1, text => qq(16\t{"index": 16, "title": "after"}\n));
pp_wait_for($node, 'SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 16', 30);
pp_check($node, 'a good message after the bad batch lands', 'SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 16');

done_testing();
