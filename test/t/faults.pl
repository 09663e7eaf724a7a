# Faults survived, nothing lost: during streams from the emulator,
#  1. the broker goes down for 10 s and comes back, twice;
#  2. request errors are injected at random (Fetch, Metadata, ListOffsets,
#     OffsetCommit, FindCoordinator);
#  3. the worker is killed with SIGKILL 20 times at random points;
#  4. PostgreSQL is stopped with -m immediate mid-batch, three times.
# Each phase has its own node and broker, and ends by checking that every
# produced message is in a raw table or dead_letters exactly once.
use strict;
use warnings;
use IPC::Run;
use POSIX qw(strftime);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use PinPipe::Test;

my $tmp = $PostgreSQL::Test::Utils::tmp_check;

# run_emulator(BROKER, PREFIX, RECORDS, RATE): a synthetic stream in the background
sub run_emulator
{
	my ($broker, $prefix, $records, $rate) = @_;
	return IPC::Run::start(
		[ pp_tool('pinpipe-emulate'), '--brokers', $broker->bootstrap, '--prefix', $prefix, '--data',
			pp_top() . '/data', '--synthetic', '--seed', int(rand(32768)),
			'--start-ind', 100000 + int(rand(32768)) * 10, '--count', $records, '--rate', $rate, '--quiet' ],
		'>', '/dev/null', '2>', "$tmp/emulate-$prefix.log");
}

sub finish_emulator
{
	my ($emu, $prefix) = @_;
	my $ok = $emu->finish;
	my $log = slurp_file("$tmp/emulate-$prefix.log");
	note('emulator: ' . ((split /\n/, $log)[-1] // ''));
	ok($ok, "$prefix: the emulator delivered every message") or diag($log);
	return;
}

# poll(NODE, SQL, SECS): whether SQL returned 't' within SECS seconds (no test fails)
sub poll
{
	my ($node, $sql, $secs) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		my ($ret, $out) = $node->psql('postgres', $sql);
		return 1 if $ret == 0 && $out eq 't';
		sleep 0.2;
	}
	return 0;
}

# phase(TITLE, PREFIX, settings...): a fresh node and broker (8 partitions)
sub phase
{
	my ($title, $prefix, $conf) = @_;
	note("-- $title");
	my $broker = PinPipe::Test::Broker->new(partitions => 8, prefix => $prefix);
	my $node = pp_node($prefix, brokers => $broker->bootstrap, prefix => $prefix, conf => $conf);
	return ($broker, $node);
}

{
	my ($broker, $node) = phase('broker down for 10 s and back, twice, during a 100k-message stream',
		'down', 'pinpipe.batch_size = 2000');
	my $emu = run_emulator($broker, 'down', 33334, 4000);
	for (1 .. 2)
	{
		sleep 2;
		$broker->ctl('down 1');
		note('broker down at ' . strftime('%T', localtime));
		sleep 10;
		$broker->ctl('up 1');
		note('broker up at ' . strftime('%T', localtime));
	}
	finish_emulator($emu, 'down');
	pp_check_complete($node, 'down', 100002);
	pp_check($node, 'the worker reported the outage',
		'SELECT count(*) > 0 FROM pinpipe.status WHERE coalesce(last_error, previous_error) IS NOT NULL');
	$node->stop;
	$broker->stop;
}

{
	# (the bash test kept the batch size of the phase before)
	my ($broker, $node) = phase('request errors injected at random', 'errs', 'pinpipe.batch_size = 2000');
	my $emu = run_emulator($broker, 'errs', 20000, 2500);
	my @apis = qw(Fetch Fetch Metadata ListOffsets OffsetCommit FindCoordinator);
	my @errors = qw(NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT LEADER_NOT_AVAILABLE BROKER_NOT_AVAILABLE);
	for (1 .. 12)
	{
		my $api = $apis[ int(rand(@apis)) ];
		my $err = $errors[ int(rand(@errors)) ];
		my $n = 1 + int(rand(5));
		$broker->ctl("error $api $n $err");
		note("injected $n x $err into $api");
		sleep 0.2 + int(rand(7)) / 10;
	}
	finish_emulator($emu, 'errs');
	pp_check_complete($node, 'errs', 60000);
	$node->stop;
	$broker->stop;
}

{
	my ($broker, $node) = phase('the worker killed with SIGKILL 20 times during ingestion', 'kill',
		'pinpipe.batch_size = 1000');
	my $emu = run_emulator($broker, 'kill', 60000, 1200);
	my $kills = 0;
	for (1 .. 20)
	{
		poll($node, "SELECT count(*) > 0 FROM pinpipe.status WHERE state IN ('consuming', 'caught up') AND batches > 0", 60)
		  or pp_wait_for($node, "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'",
			30);
		sleep 0.3 + int(rand(7)) / 10;
		my $pid = pp_worker_pid($node);
		$kills++ if $pid ne '' && kill('KILL', $pid);
	}
	note("$kills kills");
	cmp_ok($kills, '>=', 18, 'at least 18 of the 20 kills happened');
	finish_emulator($emu, 'kill');
	pp_check_complete($node, 'kill', 180000, 300);
	$node->stop;
	$broker->stop;
}

{
	my ($broker, $node) = phase('PostgreSQL stopped with -m immediate mid-batch, three times', 'imm',
		'pinpipe.batch_size = 2000');
	my $emu = run_emulator($broker, 'imm', 30000, 2000);
	for my $i (1 .. 3)
	{
		sleep 2 + int(rand(9)) / 10;
		$node->stop('immediate');
		$node->start;
		note("immediate stop and restart $i");
	}
	finish_emulator($emu, 'imm');
	pp_check_complete($node, 'imm', 90000, 300);
	$node->stop;
	$broker->stop;
}

done_testing();
