# Retention deleted messages before the worker read them (the embedded
# broker keeps at most 5 MB per partition, like retention): the worker must
# record the gap in pinpipe.offset_gaps, pinpipe.status and the log, and go on
# from the earliest offset the broker still has. Nothing is skipped silently:
# rows + dead letters + lost = messages produced.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'gap');
my $node = pp_node('offset_gap', brokers => $broker->bootstrap, prefix => 'gap');
pp_kcat_produce($broker->bootstrap, 'gap.pin', key_tab => 1, text => qq(1\t{"index": 1, "title": "first"}\n));
pp_wait_for($node, 'SELECT count(*) = 1 FROM pinpipe.pin_raw', 30);

$node->safe_psql('postgres', 'SELECT pinpipe.pause()');
pp_wait_for($node, "SELECT bool_and(state = 'paused') FROM pinpipe.status", 10);
# 800 messages of about 10 kB: 8 MB into one partition, more than the broker keeps
my $desc = 'd' x 10000;
pp_kcat_produce($broker->bootstrap, 'gap.pin', key_tab => 1, args => [ '-X', 'batch.num.messages=50' ],
	text => join('', map { qq($_\t{"index": $_, "description": "$desc"}\n) } 2 .. 801));
my ($low) = pp_run('kcat', '-b', $broker->bootstrap, '-Q', '-t', 'gap.pin:0:-2') =~ /(\d+)\s*$/;
$low //= 0;
note("the broker now starts partition 0 at offset $low");
cmp_ok($low, '>', 1, 'the broker trimmed the partition (its low offset is past the first unread message)');

$node->safe_psql('postgres', 'SELECT pinpipe.resume()');
pp_wait_for($node, "SELECT next_offset = 801 FROM pinpipe.offsets WHERE topic = 'gap.pin'", 60);

pp_check($node, 'the gap is recorded with what was lost',
	"SELECT count(*) = 1 AND bool_and(expected_offset = 1 AND resumed_offset = $low AND lost_messages = $low - 1
	        AND reason LIKE 'deleted by retention%') FROM pinpipe.offset_gaps WHERE topic = 'gap.pin'");
pp_check($node, 'rows + dead letters + lost = messages produced (801)',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.dead_letters)
	      + (SELECT sum(lost_messages) FROM pinpipe.offset_gaps) = 801");
pp_check($node, 'the rows after the gap are all there',
	"SELECT count(*) = 801 - $low AND min(kafka_offset) = $low FROM pinpipe.pin_raw WHERE kafka_offset > 0");
pp_check($node, 'status reports the lost messages',
	"SELECT lost_messages >= $low - 1 AND coalesce(last_error, previous_error) LIKE '%lost%' FROM pinpipe.status WHERE kind = 'pin'");
like(slurp_file($node->logfile), qr/WARNING: .*messages of gap\.pin partition 0 were lost: deleted by retention/,
	'the server log has a WARNING about the gap');

done_testing();
