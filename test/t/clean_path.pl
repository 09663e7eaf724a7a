# The clean rows' write path: a plain INSERT first, and INSERT ... ON
# CONFLICT (ind) DO UPDATE when an ind is in the table already (src/sink.c,
# write_clean). Told apart by their WAL: a speculative insertion (the upsert
# of a new row) writes a Heap HEAP_CONFIRM record, a plain INSERT does not.
# Both must store the latest row per ind, keep the analytics caches exact,
# and leave a row that breaks a user's unique index a dead letter while the
# rest land.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'cp');
# no brokers yet: the worker idles until the setup is done
my $node = pp_node('clean_path');
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_walinspect;
CREATE EXTENSION amcheck;
CREATE UNIQUE INDEX pin_clean_unique_id ON pinpipe.pin_clean (unique_id);
});

# produce(FIRST, LAST, TITLE, [DUP_UID_IND]): a pin, a geo and a user for
# every ind of FIRST..LAST (one partition, so in this order); the pin of
# DUP_UID_IND takes the unique_id of ind 1 (which breaks pin_clean_unique_id)
sub produce
{
	my ($first, $last, $title, $dup) = @_;
	my %text = (pin => '', geo => '', user => '');
	for my $i ($first .. $last)
	{
		my $uid = sprintf('00000000-0000-0000-0000-%012d', defined $dup && $i == $dup ? 1 : $i);
		$text{pin} .= sprintf(
			qq({"index": %d, "unique_id": "%s", "title": "%s %d", "category": "c%d", "poster_name": "p%d", "follower_count": "%dk"}\n),
			$i, $uid, $title, $i, $i % 5, $i % 3, $i);
		$text{geo} .= sprintf(
			qq({"ind": %d, "latitude": 10.5, "longitude": 20, "country": "Country %d", "timestamp": "2020-01-0%dT10:00:00"}\n),
			$i, $i % 7, $i % 9 + 1);
		$text{user} .= sprintf(
			qq({"ind": %d, "first_name": "A%d", "last_name": "B", "age": %d, "date_joined": "2016-0%d-01T00:00:00"}\n),
			$i, $i, 18 + $i % 50, $i % 9 + 1);
	}
	pp_kcat_produce($broker->bootstrap, "cp.$_", text => $text{$_}) for qw(pin geo user);
	return;
}

# Heap HEAP_CONFIRM records (speculative insertions confirmed) of the three
# clean tables since FROM_LSN
sub confirms
{
	my ($lsn) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_get_wal_records_info_till_end_of_wal('$lsn') w
		  WHERE resource_manager = 'Heap' AND record_type = 'HEAP_CONFIRM'
		    AND EXISTS (SELECT FROM unnest(ARRAY['pin_clean', 'geo_clean', 'user_clean']) t
		                 WHERE w.block_ref LIKE '%/' || pg_relation_filenode('pinpipe.' || t) || ' %')");
}

# expect_confirms(FROM_LSN, none|some, WHAT): the speculative insertions since FROM_LSN
sub expect_confirms
{
	my ($lsn, $want, $what) = @_;
	my $n = confirms($lsn);
	if ($want eq 'none')
	{
		is($n, 0, "$what ($n HEAP_CONFIRM records)");
	}
	else
	{
		ok($n > 0, "$what ($n HEAP_CONFIRM records)");
	}
	return;
}

sub caches_exact
{
	my ($what) = @_;
	pp_check($node, "$what: the analytics caches equal a rebuild from the clean tables",
		'SELECT sum(corrected_rows) = 0 FROM pinpipe.refresh()');
	return;
}

sub current_lsn { return $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()'); }

pp_set($node,
	'pinpipe.brokers'      => $broker->bootstrap,
	'pinpipe.topic_prefix' => 'cp',
	'pinpipe.batch_size'   => 10000);

note('new inds: a plain INSERT');
my $lsn = current_lsn();
produce(1, 300, 'first');
pp_check_complete($node, 'cp', 900);
expect_confirms($lsn, 'none', 'new rows: no speculative insertion (no upsert)');
pp_check($node, 'new inds: every clean row stored',
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 300 AND (SELECT count(*) FROM pinpipe.geo_clean) = 300
	    AND (SELECT count(*) FROM pinpipe.user_clean) = 300");
caches_exact('new inds');

note('inds stored already, mixed with new ones: the upsert');
$lsn = current_lsn();
produce(201, 400, 'second');
pp_check_complete($node, 'cp', 1500);
expect_confirms($lsn, 'some', 'the batch with stored inds was upserted (its new rows speculatively inserted)');
pp_check($node, 'mixed: 400 rows a table, the latest title per ind',
	"SELECT count(*) = 400 AND count(*) FILTER (WHERE title = 'second ' || ind) = 200
	    AND count(*) FILTER (WHERE title = 'first ' || ind) = 200 FROM pinpipe.pin_clean");
pp_check($node, 'mixed: geo and user rows',
	'SELECT (SELECT count(*) FROM pinpipe.geo_clean) = 400 AND (SELECT count(*) FROM pinpipe.user_clean) = 400');
caches_exact('mixed');

# The next statements on each table go straight to the upsert (backoff), then
# a plain INSERT is tried again: several small batches of new inds
note('new inds again, in small batches: back to plain INSERT after the backoff');
pp_set($node, 'pinpipe.batch_size' => 50);
sleep 1;
for my $r (0 .. 7)
{
	produce(401 + $r * 50, 450 + $r * 50, 'third');
	pp_check_complete($node, 'cp', 1500 + ($r + 1) * 150);
}
$lsn = current_lsn();
produce(801, 850, 'fourth');
pp_check_complete($node, 'cp', 2850);
expect_confirms($lsn, 'none', 'after the backoff, new rows are written without the upsert again');
pp_check($node, 'small batches: every row',
	'SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 850 AND (SELECT count(*) FROM pinpipe.user_clean) = 850');
caches_exact('small batches');

note("a user's unique index on pin_clean: only the row that breaks it is a dead letter");
pp_set($node, 'pinpipe.batch_size' => 10000);
sleep 1;
produce(851, 950, 'fifth', 900);
pp_check_complete($node, 'cp', 3150);
pp_check($node, 'unique index: the pin repeating a unique_id is a dead letter saying so',
	q{SELECT count(*) = 1 FROM pinpipe.dead_letters WHERE topic = 'cp.pin'
	    AND convert_from(payload, 'UTF8')::json->>'index' = '900'
	    AND error_detail LIKE '%duplicate key value violates unique constraint "pin_clean_unique_id"%'});
pp_check($node, 'unique index: the other 99 pins land, raw and clean',
	q{SELECT (SELECT count(*) FROM pinpipe.pin_clean WHERE ind BETWEEN 851 AND 950) = 99
	    AND (SELECT count(*) FROM pinpipe.pin_raw WHERE "index" BETWEEN 851 AND 950) = 99});
pp_check($node, 'unique index: every index of the clean tables holds every row (amcheck)',
	"SELECT count(*) = 4 FROM (SELECT bt_index_check(i.indexrelid, true)
	    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	    WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relname LIKE '%_clean') s");
caches_exact('unique index');

done_testing();
