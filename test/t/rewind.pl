# pinpipe.rewind() while the worker runs: by offset and by time, the
# partition read again from the earlier offset; messages stored already
# (raw rows, dead letters) are skipped and counted, missing ones (raw rows
# deleted here) stored again, nothing stored twice, exactly once at the end;
# the clean tables and analytics agree with the raw rows. Refusals: forward,
# unknown partition, a user without pinpipe_admin.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;
use PinPipe::Test;

my $prefix = 'rw';
my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => $prefix);
my $node = pp_node('rewind', brokers => $broker->bootstrap, prefix => $prefix);
my $pins = pp_keyed_lines(pp_data('pin'));
my $npins = () = $pins =~ /\n/g;
my $total = 0;

sub produce_pins
{
	my ($text) = @_;
	pp_kcat_produce($broker->bootstrap, "$prefix.pin", text => $text, key_tab => 1);
	$total += () = $text =~ /\n/g;
	return;
}

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# the sample, and three messages the decoder refuses (dead letters)
produce_pins($pins);
produce_pins(join('', map { qq($_\t{"index": "not a number $_"}\n) } 1 .. 3));
pp_check_complete($node, $prefix, $total);
is(q1('SELECT count(*) FROM pinpipe.dead_letters'), '3', 'three dead letters');

# --- by offset, while messages arrive: rows of partition 0 deleted are stored again
my $deleted = q1(
	"WITH d AS (DELETE FROM pinpipe.pin_raw WHERE kafka_partition = 0 AND kafka_offset IN
	    (SELECT kafka_offset FROM pinpipe.pin_raw WHERE kafka_partition = 0 ORDER BY kafka_offset OFFSET 100 LIMIT 10)
	    RETURNING 1) SELECT count(*) FROM d");
is($deleted, '10', 'ten raw rows of partition 0 deleted');
# small batches, and four copies of the sample produced by a kcat running
# while the rewind is asked for: the worker takes it between batches of them
pp_set($node, 'pinpipe.batch_size' => '100');
my $copies = $pins x 4;
my ($kout, $kerr) = ('', '');
my $kcat = IPC::Run::start([ 'kcat', '-b', $broker->bootstrap, '-P', '-t', "$prefix.pin", '-K', "\t" ],
	'<', \$copies, '>', \$kout, '2>', \$kerr);
my $id = q1("SELECT id FROM pinpipe.rewind('$prefix.pin', 0, 50)");
like($id, qr/^\d+$/, 'rewind by offset requested');
ok($kcat->finish, 'kcat produced four more copies meanwhile') or diag($kerr);
$total += 4 * $npins;
pp_wait_for($node, "SELECT completed_at IS NOT NULL FROM pinpipe.rewind_requests WHERE id = $id");
diag('rewind by offset applied at offset '
	  . q1("SELECT from_offset FROM pinpipe.rewind_requests WHERE id = $id")
	  . ' of partition 0, which has ' . q1("SELECT next_offset FROM pinpipe.offsets WHERE topic = '$prefix.pin' AND kafka_partition = 0"));
pp_check($node, 'rewind by offset: resumed at 50, 10 missing stored, the rest skipped',
	"SELECT resumed_offset = 50 AND stored = 10 AND skipped = from_offset - 50 - 10 AND from_offset > 110
	        AND applied_at >= requested_at
	   FROM pinpipe.rewind_requests WHERE id = $id");
pp_check_complete($node, $prefix, $total);
pp_check($node, 'the deleted rows are back, each once',
	"SELECT count(*) = 10 FROM pinpipe.pin_raw WHERE kafka_partition = 0 AND kafka_offset IN
	    (SELECT kafka_offset FROM pinpipe.pin_raw WHERE kafka_partition = 0 ORDER BY kafka_offset OFFSET 100 LIMIT 10)");

# --- by time: the messages produced after a moment, some of them deleted
usleep(1_500_000);
my $t = q1('SELECT now()');
usleep(1_500_000);
my @lines = split /(?<=\n)/, $pins;
my $after = join('', @lines[ 0 .. 499 ]);
produce_pins($after);
pp_check_complete($node, $prefix, $total);
my $first = q1(
	"SELECT string_agg(kafka_partition || ':' || lo, ',' ORDER BY kafka_partition) FROM
	   (SELECT kafka_partition, min(kafka_offset) lo FROM pinpipe.pin_raw WHERE kafka_timestamp >= '$t'
	     GROUP BY 1) f");
is(q1("SELECT count(*) FROM pinpipe.pin_raw WHERE kafka_timestamp >= '$t'"), '500',
	'500 messages after the moment');
is( q1(
		"WITH d AS (DELETE FROM pinpipe.pin_raw WHERE (kafka_partition, kafka_offset) IN
		    (SELECT kafka_partition, kafka_offset FROM pinpipe.pin_raw WHERE kafka_timestamp >= '$t'
		      ORDER BY kafka_offset DESC, kafka_partition LIMIT 7) RETURNING 1) SELECT count(*) FROM d"),
	'7', 'seven of them deleted');
my $ids = q1("SELECT string_agg(id::text, ',') FROM pinpipe.rewind('$prefix.pin', '$t')");
like($ids, qr/^\d+,\d+$/, 'rewind by time: one request per stored partition');
pp_wait_for($node, "SELECT bool_and(completed_at IS NOT NULL) FROM pinpipe.rewind_requests WHERE id IN ($ids)");
is( q1(
		"SELECT string_agg(kafka_partition || ':' || resumed_offset, ',' ORDER BY kafka_partition)
		   FROM pinpipe.rewind_requests WHERE id IN ($ids)"),
	$first,
	"rewind by time resumed at each partition's first message at or after the time");
# librdkafka's mock cluster (the embedded broker) answers -1 to a lookup by
# time: the worker said so and resumed after the last message stored before it
like(slurp_file($node->logfile), qr/the broker found no offset of rw.pin partition 0 for the time of rewind request/,
	'the embedded broker has no offsets for times: the fallback was used, and logged');
pp_check($node, 'rewind by time: 7 stored, 493 skipped',
	"SELECT sum(stored) = 7 AND sum(skipped) = 493 FROM pinpipe.rewind_requests WHERE id IN ($ids)");
pp_check_complete($node, $prefix, $total);

# --- to a time before every message: the whole topic read again, nothing stored
$ids = q1("SELECT string_agg(id::text, ',') FROM pinpipe.rewind('$prefix.pin', '2000-01-01')");
pp_wait_for($node, "SELECT bool_and(completed_at IS NOT NULL) FROM pinpipe.rewind_requests WHERE id IN ($ids)");
pp_check($node, 'rewind to an early time: from offset 0, every message skipped, the dead letters too',
	"SELECT bool_and(resumed_offset = 0) AND sum(stored) = 0 AND sum(skipped) = $total
	   FROM pinpipe.rewind_requests WHERE id IN ($ids)");
pp_check_complete($node, $prefix, $total);
is(q1('SELECT count(*) FROM pinpipe.dead_letters'), '3', 'still three dead letters (no duplicate key)');

# the clean tables are what reclean() makes of the raw rows, the analytics agree
my $hash = "md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c))";
my $before = q1("SELECT $hash");
q1('SELECT pinpipe.reclean()');
is(q1("SELECT $hash"), $before, 'clean rows = the latest raw row of each ind');
is(q1('SELECT count(*) FROM pinpipe.analytics_check() WHERE NOT matches'), '0', 'analytics agree');

# --- refusals and permissions
my ($ret, $out, $err) = $node->psql('postgres', "SELECT pinpipe.rewind('$prefix.pin', 0, 1000000000)");
like($err, qr/cannot rewind topic "rw.pin" partition 0 to offset 1000000000/, 'rewinding forward refused');
($ret, $out, $err) = $node->psql('postgres', "SELECT pinpipe.rewind('nosuch.pin', 0, 0)");
like($err, qr/no stored offset for topic "nosuch.pin" partition 0/, 'unknown partition refused');
q1('CREATE ROLE plain LOGIN; CREATE ROLE operator LOGIN IN ROLE pinpipe_admin');
($ret, $out, $err) =
  $node->psql('postgres', "SELECT pinpipe.rewind('$prefix.pin', 0, 0)", extra_params => [ '-U', 'plain' ]);
like($err, qr/permission denied for function rewind/, 'a plain user may not rewind by offset');
($ret, $out, $err) =
  $node->psql('postgres', "SELECT pinpipe.rewind('$prefix.pin', now())", extra_params => [ '-U', 'plain' ]);
like($err, qr/permission denied for function rewind/, 'nor by time');
my $next1 = q1("SELECT next_offset FROM pinpipe.offsets WHERE topic = '$prefix.pin' AND kafka_partition = 1");
$id = $node->safe_psql('postgres', "SELECT id FROM pinpipe.rewind('$prefix.pin', 1, $next1)",
	extra_params => [ '-U', 'operator' ]);
pp_wait_for($node,
	"SELECT completed_at IS NOT NULL AND requested_by = 'operator' AND skipped = 0 AND stored = 0
	   FROM pinpipe.rewind_requests WHERE id = $id");
pass('a member of pinpipe_admin may rewind (to the stored offset: nothing to read again)');
pp_check_complete($node, $prefix, $total);

$node->stop;
done_testing();
