# A backlog of 1M messages: the worker drains it with bounded memory (peak
# private RSS reported, loose bound asserted) while the server stays
# responsive to queries (worst latency of a query run every 0.2 s reported,
# loose bound asserted), and stores every message exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use PinPipe::Test;

my $records = 333334;
my $total = $records * 3;

# about 650 bytes a message: 160 partitions keep each under the broker's 5 MB
my $broker = PinPipe::Test::Broker->new(partitions => 160, prefix => 'backlog');
my $b = $broker->bootstrap;
my $node = pp_node('backlog');
pp_run(pp_tool('pinpipe-emulate'), '--brokers', $b, '--prefix', 'backlog', '--data', pp_top() . '/data',
	'--synthetic', '--seed', '3', '--count', $records, '--quiet');
my $low = 0;
for my $t (qw(pin geo user))
{
	$low += $_ for pp_run('kcat', '-b', $b, '-Q', '-t', "backlog.$t:0:-2", '-t', "backlog.$t:159:-2") =~ /(\d+)\s*$/mg;
}
is($low, 0, 'the broker kept the whole backlog (first and last partitions start at offset 0)')
  or BAIL_OUT('the broker trimmed the backlog');

# a field of /proc/PID/status, in kB
sub proc_kb
{
	my ($pid, $field) = @_;
	open my $fh, '<', "/proc/$pid/status" or return 0;
	while (<$fh>) { return $1 if /^\Q$field\E:\s+(\d+)/; }
	return 0;
}

my $pid = pp_worker_pid($node);
my $start = time;
pp_set($node, 'pinpipe.brokers' => $b, 'pinpipe.topic_prefix' => 'backlog');
my ($worst, $peak_anon, $done) = (0, 0, 0);
my $deadline = time + 300;
while (time < $deadline)
{
	my $t0 = time;
	my ($ret, $out) = $node->psql('postgres',
		"SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'backlog.%';
		 SELECT count(*) FROM pinpipe.user_clean;");
	my $ms = int((time - $t0) * 1000);
	$worst = $ms if $ms > $worst;
	my $anon = proc_kb($pid, 'RssAnon');
	$peak_anon = $anon if $anon > $peak_anon;
	if ($ret == 0 && (split /\n/, $out)[0] eq 't') { $done = 1; last; }
	sleep 0.2;
}
my $end = time;
my $hwm = proc_kb($pid, 'VmHWM');
ok($done, "the backlog drained within 300 s");
diag(sprintf('figure: drained %d messages in %.1f s (%.0f messages/s)', $total, $end - $start,
	$total / ($end - $start)));
diag(sprintf('figure: worker peak private memory (RssAnon) %d MB, VmHWM (with the shared buffers it touched) %d MB',
	$peak_anon / 1024, $hwm / 1024));
diag("figure: worst latency of a status query plus a count(*) while draining: $worst ms");
cmp_ok(int($peak_anon / 1024), '<', 512, 'worker memory bounded (< 512 MB private)');
cmp_ok($worst, '<', 3000, 'the server answered every query within 3 s while draining');
pp_check($node, 'the same worker drained it all', "SELECT pid = $pid FROM pinpipe.status WHERE kind = 'pin'");
pp_check_complete($node, 'backlog', $total);

done_testing();
