# The hostile messages over 4 MB through the real path: 4.5 MB, 5 MB and
# 10 MB messages produced with kcat to the embedded broker and consumed by the
# worker. Over pinpipe.max_message_bytes each must become a dead letter (with
# its partition, offset, bytes and the size in the error); under a raised
# limit the 10 MB one must become a row. Never a crash, a stall or an
# unbounded memory spike, and the messages produced after them (and meanwhile)
# are all stored: every message exactly once, no gap.
#
# Where each big message goes matters, because of the broker: librdkafka
# 2.0.2's mock cluster keeps at most 5 MiB a partition, and when an append
# takes a partition over that it deletes the older message sets and, once the
# last of them is gone, moves the partition's start past the new one too.
# So a message set over 5 MiB survives only on an empty partition, and only
# until the next message is produced there (which then goes as well); a 4.5 MB
# one shares its partition with small ones as long as the partition stays
# under 5 MiB. Hence: the 4.5 MB message amid small ones on hostilebig.pin
# partition 0, and each message of 5 MB or more alone on a partition of its own
# (1, 2, 3) that receives nothing after it. test/t/offset_gap.pl covers what
# the worker does when the broker does delete unread messages.
#
# Last, a 150 MB message (on partition 4), over librdkafka's
# receive.message.max.bytes (100 MB): the consumer cannot fetch it, and says
# so; raising it in pinpipe.kafka_config must turn it into a dead letter.
use strict;
use warnings;
use Digest::MD5;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use PinPipe::Test;

my $top = pp_top();
my $work = "$ENV{TESTDIR}/hostile_large";
pp_run('bash', "$top/test/hostile/make.sh", $work);
my $limit = 1048576;

my $broker = PinPipe::Test::Broker->new(partitions => 5, prefix => 'hostilebig',
	args => [ '--max-request-bytes', '400000000' ]);
my $b = $broker->bootstrap;
my $node = pp_node('hostile_large', brokers => $b, prefix => 'hostilebig');
pp_wait_for($node, "SELECT bool_and(state IN ('consuming', 'caught up')) FROM pinpipe.status", 30);
my $pid = pp_worker_pid($node);

# the worker's peak RSS (VmHWM) in MB
sub hwm
{
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (<$fh>) { return int($1 / 1024) if /^VmHWM:\s+(\d+)/; }
	return undef;
}
note("worker pid $pid, peak RSS so far " . (hwm() // '?') . ' MB');

my $total = 0;
# produce(KIND, PARTITION, FILE): one message, the file's bytes
sub produce
{
	my ($kind, $part, $file) = @_;
	my $err = '';
	IPC::Run::run([ 'kcat', '-b', $b, '-P', '-t', "hostilebig.$kind", '-p', $part,
			'-X', 'message.max.bytes=200000000', $file ], '<', \undef, '2>', \$err)
	  or fail("could not produce $file: $err");
	$total++;
	return;
}
# small(KIND, PARTITION, FIRST, COUNT): COUNT good messages, ind FIRST on
sub small
{
	my ($kind, $part, $first, $n) = @_;
	my $key = $kind eq 'pin' ? 'index' : 'ind';
	my $text = join '', map { qq($_\t{"$key": $_, "title": "small"}\n) } $first .. $first + $n - 1;
	eval { pp_kcat_produce($b, "hostilebig.$kind", key_tab => 1, text => $text, args => [ '-p', $part ]); 1 }
	  or fail("could not produce to hostilebig.$kind [$part]: $@");
	$total += $n;
	return;
}
# the rest of the stream: 100 small messages on each partition that may take more
sub more
{
	my ($first) = @_;
	small('pin', 0, $first, 100);
	for my $kind (qw(geo user))
	{
		small($kind, $_, $first + $_ * 100, 100) for 0 .. 3;
	}
	return;
}
# stored(NAME, KIND, PARTITION, OFFSET, SECS): the worker stored that offset in time
sub stored
{
	my ($name, $kind, $part, $offset, $secs) = @_;
	my $t0 = time;
	my $ok = pp_wait_for($node,
		"SELECT coalesce(max(next_offset), 0) > $offset FROM pinpipe.offsets
		  WHERE topic = 'hostilebig.$kind' AND kafka_partition = $part", $secs);
	ok($ok, "$name stored within $secs s (hostilebig.$kind [$part] offset $offset; a stall otherwise)");
	note("$name stored in " . (time - $t0) . ' s; worker peak RSS ' . (hwm() // '?') . ' MB') if $ok;
	return;
}

# pin partition 0: 4.5 MB amid small messages (offsets 0-9 small, 10 big, 11-20 small)
small('pin', 0, 100, 10);
produce('pin', 0, "$work/message_4_5mb");
small('pin', 0, 110, 10);
stored('the 4.5 MB message', 'pin', 0, 20, 60);

# pin partition 1: 10 MB alone, with the stream going on elsewhere meanwhile
produce('pin', 1, "$work/message_10mb");
more(1000);
stored('the 10 MB message', 'pin', 1, 0, 60);

# pin partition 2: 5 MiB (just over what the broker keeps with another message) alone
produce('pin', 2, "$work/huge_string_5mb");
more(2000);
stored('the 5 MB message', 'pin', 2, 0, 60);

# pin partition 3: 10 MB again, under a raised limit: a row
pp_set($node, 'pinpipe.max_message_bytes' => '16MB');
sleep 2;    # the worker reloads at its next turn (at most a batch timeout away)
produce('pin', 3, "$work/message_10mb");
more(3000);
stored('the 10 MB message under a 16 MB limit', 'pin', 3, 0, 60);
$node->safe_psql('postgres', 'ALTER SYSTEM RESET pinpipe.max_message_bytes');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

# Under AddressSanitizer (bash test/run.sh --sanitize) every allocation has
# redzones and freed memory waits in a 256 MB quarantine: the bounds there
# are the plain run's plus that much again and the quarantine.
sub rss_bound { return pp_sanitizing() ? $_[0] * 2 + 256 : $_[0]; }
my $peak = hwm();
my $bound = rss_bound(400);
ok(defined $peak && $peak < $bound, "worker peak RSS " . ($peak // '?') . " MB (under $bound MB)");

# pin partition 4: 150 MB, more than the consumer can receive until told
{
	open my $fh, '>', "$work/message_150mb" or die "message_150mb: $!";
	print $fh '{"index": 8, "title": "';
	print $fh 'x' x 1_000_000 for 1 .. 150;
	print $fh '"}';
	close $fh or die "message_150mb: $!";
}
produce('pin', 4, "$work/message_150mb");
unlink "$work/message_150mb";
small('pin', 0, 5000, 10);
# last_error says so while the worker retries (a later error may replace it):
# seen at least once within 30 s
my $seen = 0;
for (1 .. 150)
{
	last if $seen = $node->safe_psql('postgres',
		"SELECT bool_or(coalesce(last_error, previous_error) LIKE '%increase receive.message.max.bytes%') FROM pinpipe.status") eq 't';
	sleep 0.2;
}
ok($seen, 'status.last_error says the consumer cannot receive it');
like(slurp_file($node->logfile), qr/HINT:  Raise it in pinpipe\.kafka_config/,
	'the server log says how to get past it');
pp_set($node, 'pinpipe.kafka_config' => 'receive.message.max.bytes=300000000');
stored('the 150 MB message, with receive.message.max.bytes raised,', 'pin', 4, 0, 90);
note("produced $total messages");

my $md5 = Digest::MD5->new;
open my $m10, '<:raw', "$work/message_10mb" or die "message_10mb: $!";
$md5->addfile($m10);
close $m10;
my $md5_10mb = $md5->hexdigest;

pp_check($node, '4.5 MB: a dead letter at hostilebig.pin [0] offset 10, with its bytes',
	"SELECT error_detail = 'message of 4718592 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 4718592 FROM pinpipe.dead_letters
	  WHERE topic = 'hostilebig.pin' AND kafka_partition = 0 AND kafka_offset = 10");
pp_check($node, '10 MB: a dead letter at hostilebig.pin [1] offset 0, with its bytes',
	"SELECT error_detail = 'message of 10485760 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 10485760 AND md5(payload) = '$md5_10mb'
	   FROM pinpipe.dead_letters WHERE topic = 'hostilebig.pin' AND kafka_partition = 1 AND kafka_offset = 0");
pp_check($node, '5 MB: a dead letter at hostilebig.pin [2] offset 0',
	"SELECT error_detail = 'message of 5242880 bytes exceeds the limit of $limit bytes'
	   FROM pinpipe.dead_letters WHERE topic = 'hostilebig.pin' AND kafka_partition = 2 AND kafka_offset = 0");
pp_check($node, '10 MB under a 16 MB limit: a row (raw and clean) at hostilebig.pin [3] offset 0',
	q{SELECT octet_length(r.description) = 10485760 - 50 AND r.category = 'art'
	        AND octet_length(c.description) = 10485760 - 50
	   FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
	  WHERE r.kafka_partition = 3 AND r.kafka_offset = 0});
pp_check($node, '150 MB: a dead letter at hostilebig.pin [4] offset 0, with its bytes',
	"SELECT error_detail = 'message of 150000025 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 150000025 FROM pinpipe.dead_letters
	  WHERE topic = 'hostilebig.pin' AND kafka_partition = 4 AND kafka_offset = 0");
pp_check($node, 'no other dead letter', 'SELECT count(*) = 4 FROM pinpipe.dead_letters');
pp_check($node, 'nothing deleted by the broker before it was read', 'SELECT count(*) = 0 FROM pinpipe.offset_gaps');
pp_check_complete($node, 'hostilebig', $total);

# the same worker all along, and its memory bounded
my $now = pp_worker_pid($node);
ok($pid ne '' && $now eq $pid, "the worker never restarted (pid $pid, now " . ($now || 'none') . ')');
$peak = hwm();
$bound = rss_bound(1200);
ok(defined $peak && $peak < $bound, "worker peak RSS " . ($peak // '?') . " MB after 150 MB (under $bound MB)");

done_testing();
