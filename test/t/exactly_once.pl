# Exactly once: while the emulator posts a stream, kill -9 the worker several
# times and stop PostgreSQL with -m immediate mid-stream. Afterwards every
# (partition, offset) is stored exactly once (as a row or a dead letter) and
# none is missing.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use PinPipe::Test;

my $records = 24000;
my $broker = PinPipe::Test::Broker->new(partitions => 4, prefix => 'once');
# small batches: many transactions to interrupt
my $node = pp_node('exactly_once', brokers => $broker->bootstrap, prefix => 'once',
	conf => 'pinpipe.batch_size = 500');
my $emu_log = "$PostgreSQL::Test::Utils::tmp_check/emulate-once.log";
my $emu = IPC::Run::start(
	[ pp_tool('pinpipe-emulate'), '--brokers', $broker->bootstrap, '--prefix', 'once', '--data',
		pp_top() . '/data', '--synthetic', '--seed', '7', '--count', $records, '--rate', '2000', '--quiet' ],
	'>', '/dev/null', '2>', $emu_log);

sleep 2;
my $kills = 0;
for (1 .. 4)
{
	my $pid = pp_worker_pid($node);
	if ($pid ne '' && kill('KILL', $pid))
	{
		$kills++;
		note("killed worker pid $pid with SIGKILL");
	}
	# the postmaster reinitializes after a child's crash; wait for the new worker
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'");
	sleep 1.5;
}
note('stopping PostgreSQL with -m immediate mid-stream');
$node->stop('immediate');
sleep 1;
$node->start;
ok($emu->finish, 'the emulator posted every record (exit 0)')
  or diag(slurp_file($emu_log));
note('emulator: ' . ((split /\n/, slurp_file($emu_log))[-1] // ''));
cmp_ok($kills, '>=', 3, 'at least 3 of the 4 worker kills happened');

pp_check_complete($node, 'once', $records * 3);
pp_check($node, 'no dead letters from the synthetic stream', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
pp_check($node, 'one clean row per record and kind',
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = $records AND (SELECT count(*) FROM pinpipe.geo_clean) = $records
	    AND (SELECT count(*) FROM pinpipe.user_clean) = $records");
pp_check($node, 'the worker is running again after the crashes',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'");

done_testing();
