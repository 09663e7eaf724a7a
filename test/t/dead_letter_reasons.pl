# A dead letter's error is a stable reason that groups, its variable part
# (positions, values, keys) in error_detail: many bad messages of four kinds
# give four rows under GROUP BY error, each message keeping its own detail.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'dlr');
my $node = pp_node('dead_letter_reasons', brokers => $broker->bootstrap, prefix => 'dlr');
$node->safe_psql('postgres',
	q{ALTER TABLE pinpipe.pin_raw ADD CONSTRAINT no_bad_title CHECK (title IS DISTINCT FROM 'bad')});
# a unique index of the user's: the first pin titled "collides" is stored, the next are duplicates
$node->safe_psql('postgres',
	q{CREATE UNIQUE INDEX one_collides ON pinpipe.pin_raw (title) WHERE title = 'collides'});

my $text = '';
$text .= '{"index": ' . $_ . ', "title": "' . ('x' x $_) . "\"\n" for 0 .. 9;    # invalid JSON, 10 positions
$text .= qq({"index": $_, "title": "bad"}\n) for 10 .. 14;                         # check constraint
$text .= '{"index": ' . (3000000000 + $_) . "}\n" for 15 .. 19;                   # out of range
$text .= qq({"index": $_, "title": "collides"}\n) for 20 .. 25;                    # 1 row, 5 duplicate keys
$text .= qq({"index": $_, "title": "good"}\n) for 26 .. 29;                        # rows
$text .= qq({"title": "no key $_"}\n) for 30 .. 34;                                 # missing key: stable
pp_kcat_produce($broker->bootstrap, 'dlr.pin', text => $text);
pp_check_complete($node, 'dlr', 35);

is( $node->safe_psql('postgres',
		'SELECT error, count(*), count(DISTINCT error_detail) FROM pinpipe.dead_letters GROUP BY error ORDER BY error'),
	join("\n",
		'check constraint no_bad_title of pin_raw violated|5|5',
		'duplicate key in pin_raw|5|1',
		'integer value out of range|5|5',
		'invalid JSON|10|10',
		'missing join key "index" (or "ind")|5|0'),
	'GROUP BY error gives one row per reason, every message its own detail');
pp_check($node, 'the detail says what and where',
	q{SELECT bool_and(CASE error
	                    WHEN 'invalid JSON' THEN error_detail LIKE 'invalid JSON at line 1, column %'
	                    WHEN 'integer value out of range' THEN error_detail ~ '^value 300000001[5-9] of key "index" is out of range'
	                    WHEN 'duplicate key in pin_raw' THEN error_detail = 'duplicate key value violates unique constraint "one_collides" Key (title)=(collides) already exists.'
	                    WHEN 'missing join key "index" (or "ind")' THEN error_detail IS NULL
	                    ELSE error_detail LIKE 'new row for relation "pin_raw" violates check constraint "no_bad_title"%' END)
	    FROM pinpipe.dead_letters});
pp_check($node, 'a stable error has no detail',
	q{SELECT count(*) = 5 AND bool_and(error = 'missing join key "index" (or "ind")' AND error_detail IS NULL)
	    FROM pinpipe.dead_letters WHERE kafka_offset BETWEEN 30 AND 34});
pp_check($node, 'the good messages stored, the first of the colliding ones too',
	q{SELECT (SELECT count(*) FROM pinpipe.pin_raw WHERE title = 'collides' AND "index" = 20) = 1
	     AND (SELECT count(*) FROM pinpipe.pin_raw) = 5});

done_testing();
