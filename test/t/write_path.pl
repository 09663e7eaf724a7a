# The two write paths (pinpipe.write_method): "auto" writes a plain table as
# COPY FROM does (table_multi_insert, then the indexes and the AFTER
# triggers), "insert" (and auto, for a table with a BEFORE row trigger)
# through INSERT; the raw rows, and the clean rows of new inds (see also
# clean_path.pl). Both must give the same rows, keep every index whole
# (amcheck: every heap row has its entry), check the table's constraints,
# and make a row that breaks one a dead letter while its neighbours land.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => 'wp');
# no brokers yet: the worker idles while the tables get the user's additions
my $node = pp_node('write_path');

# A user's additions to the raw tables: a CHECK constraint and a unique
# index on pin_raw, an expression index and an AFTER row trigger on geo_raw
# (fired by the direct path too, as COPY fires it), and a BEFORE row trigger
# on user_raw (which may change a row: the auto path falls back to INSERT).
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION amcheck;
CREATE EXTENSION pg_walinspect;
ALTER TABLE pinpipe.pin_raw ADD CONSTRAINT no_banned_title CHECK (title IS DISTINCT FROM 'banned');
CREATE UNIQUE INDEX pin_raw_unique_id ON pinpipe.pin_raw (unique_id);
CREATE INDEX geo_raw_country_lower ON pinpipe.geo_raw (lower(country));
CREATE TABLE public.user_audit (ind int, kafka_offset bigint);
CREATE FUNCTION public.user_audit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.user_audit VALUES (NEW.ind, NEW.kafka_offset); RETURN NEW; END $$;
CREATE TRIGGER user_audit BEFORE INSERT ON pinpipe.user_raw FOR EACH ROW EXECUTE FUNCTION public.user_audit();
CREATE TABLE public.geo_audit (ind int, kafka_offset bigint);
CREATE FUNCTION public.geo_audit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.geo_audit VALUES (NEW.ind, NEW.kafka_offset); RETURN NULL; END $$;
CREATE TRIGGER geo_audit AFTER INSERT ON pinpipe.geo_raw FOR EACH ROW EXECUTE FUNCTION public.geo_audit();
});

# produce(ROUND, FIRST_IND): 100 records (a pin, a geo, a user each), two of
# the pins bad: one breaks the CHECK constraint, one repeats a unique_id
sub produce
{
	my ($round, $first) = @_;
	my %text = (pin => '', geo => '', user => '');
	for my $i ($first .. $first + 99)
	{
		my $title = $i == $first + 10 ? 'banned' : "pin $i";
		my $uid = sprintf('00000000-0000-0000-%s-%012d', $round, $i == $first + 20 ? $first + 19 : $i);
		$text{pin} .= sprintf(qq(%d\t{"index": %d, "unique_id": "%s", "title": "%s", "follower_count": "%dk"}\n),
			$i, $i, $uid, $title, $i);
		$text{geo} .= sprintf(qq(%d\t{"ind": %d, "latitude": 10.5, "longitude": 20, "country": "Country %d"}\n),
			$i, $i, $i % 7);
		$text{user} .=
		  sprintf(qq(%d\t{"ind": %d, "first_name": "A%d", "last_name": "B", "age": 30}\n), $i, $i, $i);
	}
	pp_kcat_produce($broker->bootstrap, "wp.$_", text => $text{$_}, key_tab => 1) for qw(pin geo user);
	return;
}

# check(ROUND, FIRST_IND, MESSAGES_SO_FAR)
sub check
{
	my ($round, $first, $total) = @_;
	my $last = $first + 99;
	pp_wait_for($node, "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'wp.%'",
		60);
	pp_check($node, "$round: every good pin is a raw row, the two bad ones dead letters",
		qq{SELECT count(*) = 98 FROM pinpipe.pin_raw WHERE "index" BETWEEN $first AND $last});
	pp_check(
		$node,
		"$round: the row breaking the CHECK constraint is a dead letter saying so",
		"SELECT count(*) = 1 FROM pinpipe.dead_letters WHERE topic = 'wp.pin'
		    AND convert_from(payload, 'UTF8')::json->>'index' = '"
		  . ($first + 10) . q{'
		    AND error_detail LIKE '%violates check constraint "no_banned_title"%'});
	# (the two pins sharing a unique_id may sit on different partitions: either can come first)
	pp_check(
		$node,
		"$round: the repeated unique_id is a dead letter saying so",
		"SELECT count(*) = 1 FROM pinpipe.dead_letters WHERE topic = 'wp.pin'
		    AND convert_from(payload, 'UTF8')::json->>'index' IN ('"
		  . ($first + 19) . "', '"
		  . ($first + 20) . q{')
		    AND error_detail LIKE '%duplicate key value violates unique constraint "pin_raw_unique_id"%'});
	pp_check($node, "$round: geo and user rows all land",
		"SELECT (SELECT count(*) FROM pinpipe.geo_raw WHERE ind BETWEEN $first AND $last) = 100
		    AND (SELECT count(*) FROM pinpipe.user_raw WHERE ind BETWEEN $first AND $last) = 100");
	pp_check($node, "$round: the user_raw trigger fired once per row",
		"SELECT count(*) = 100 AND count(DISTINCT ind) = 100 FROM public.user_audit WHERE ind BETWEEN $first AND $last"
	);
	pp_check($node, "$round: the geo_raw trigger fired once per row",
		"SELECT count(*) = 100 AND count(DISTINCT ind) = 100 FROM public.geo_audit WHERE ind BETWEEN $first AND $last");
	pp_check($node, "$round: the expression index finds the rows",
		"SELECT count(*) = (SELECT count(*) FROM pinpipe.geo_raw WHERE country || '' = 'Country 3')
		    FROM pinpipe.geo_raw WHERE lower(country) = 'country 3'");
	pp_check($node, "$round: every index of the raw tables holds every row (amcheck)",
		"SELECT count(*) = 5 FROM (SELECT bt_index_check(i.indexrelid, true)
		    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		    WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relname LIKE '%_raw') s");
	pp_check($node, "$round: clean rows = distinct good inds",
		"SELECT (SELECT count(*) FROM pinpipe.pin_clean WHERE ind BETWEEN $first AND $last) = 98");
	return;
}

# The WAL's heap multi-insert records of pinpipe.TABLE since FROM_LSN (what
# table_multi_insert writes; INSERT writes one insert record per row), up
# to the end of the flushed WAL (the worker's commits flush theirs).
sub multi_inserts
{
	my ($lsn, $table) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_get_wal_records_info_till_end_of_wal('$lsn')
		  WHERE resource_manager = 'Heap2' AND record_type LIKE 'MULTI_INSERT%'
		    AND block_ref LIKE '%/' || pg_relation_filenode('pinpipe.$table') || ' %'");
}

# expect_path(MODE, FROM_LSN, TABLE, direct|insert)
sub expect_path
{
	my ($mode, $lsn, $table, $path) = @_;
	my $n = multi_inserts($lsn, $table);
	if ($path eq 'direct')
	{
		ok($n > 0, "$mode: $table written as COPY does ($n multi-insert WAL records)");
	}
	else
	{
		is($n, 0, "$mode: $table written through INSERT (no multi-insert WAL record)");
	}
	return;
}

pp_set($node, 'pinpipe.brokers' => $broker->bootstrap, 'pinpipe.topic_prefix' => 'wp');
note('write_method = auto');
my $lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
produce(1000, 1);
check('auto', 1, 300);
expect_path('auto', $lsn, 'pin_raw',  'direct');
expect_path('auto', $lsn, 'geo_raw',  'direct');    # its AFTER row trigger fired all the same (check)
expect_path('auto', $lsn, 'user_raw', 'insert');    # a BEFORE row trigger
expect_path('auto', $lsn, 'pin_clean', 'direct');   # new inds, with the analytics triggers
expect_path('auto', $lsn, 'geo_clean',  'direct');
expect_path('auto', $lsn, 'user_clean', 'direct');

note('write_method = insert');
pp_set($node, 'pinpipe.write_method' => 'insert');
sleep 1;    # the worker reloads its settings between batches
$lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
produce(2000, 1001);
check('insert', 1001, 600);
expect_path('insert', $lsn, $_, 'insert') for qw(pin_raw geo_raw user_raw pin_clean geo_clean user_clean);

pp_check($node, 'both ways store what the messages said',
	q{SELECT count(*) = 196 AND bool_and(title = 'pin ' || "index" AND follower_count = "index" || 'k'
	    AND unique_id LIKE '00000000-0000-0000-_000-%' AND kafka_partition IN (0, 1) AND kafka_timestamp IS NOT NULL)
	    FROM pinpipe.pin_raw});
pp_check($node, 'both ways: geo rows as sent',
	"SELECT count(*) = 200 AND bool_and(latitude = 10.5 AND longitude = 20 AND country = 'Country ' || ind % 7)
	    FROM pinpipe.geo_raw");

done_testing();
