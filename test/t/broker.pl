# pinpipe-broker, the embedded Kafka-protocol broker.
#
# Starts the tool with a control FIFO and checks it with kcat: the three
# topics exist with 4 partitions, 1000 keyed messages come back exactly once,
# "down 1" makes the broker unreachable and "up 1" brings it back, injected
# NOT_LEADER_FOR_PARTITION errors are retried by the client, topic-error
# makes a topic unknown and clear brings it back, SIGTERM exits 0 and removes
# the FIFO, and --port restarts the broker on the same address. Every wait is
# bounded. No PostgreSQL node: the broker alone.
use strict;
use warnings;
use IPC::Run;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use PinPipe::Test;

my $work = PostgreSQL::Test::Utils::tempdir('broker');
my $fifo = "$work/control";
my $broker_pid;
my $exit_status;

# Start pinpipe-broker (not --quiet: its control replies and shutdown
# message are checked on stderr) with stdout and stderr in $work.
sub start_broker
{
	my (@args) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>', "$work/broker.out" or die;
		open STDERR, '>', "$work/broker.err" or die;
		exec pp_tool('pinpipe-broker'), @args or die "exec: $!";
	}
	undef $exit_status;
	return $pid;
}

# Has the broker exited? Reaps it and keeps its exit status.
sub broker_gone
{
	return 1 unless $broker_pid;
	return 1 if defined $exit_status;
	if (waitpid($broker_pid, WNOHANG) == $broker_pid)
	{
		$exit_status = $?;
		return 1;
	}
	return 0;
}

# Poll a sub every 0.1 s for at most $secs seconds; give up early if the broker died.
sub wait_until
{
	my ($secs, $cond) = @_;
	for (1 .. $secs * 10)
	{
		return 1 if $cond->();
		return 0 if broker_gone();
		usleep(100_000);
	}
	return 0;
}

sub lines_of { my $t = -e $_[0] ? slurp_file($_[0]) : ''; return split /\n/, $t; }

# Does the broker's stderr have $text (a fixed string) after line $after?
sub logged_after
{
	my ($after, $text) = @_;
	my @lines = lines_of("$work/broker.err");
	return scalar grep { index($_, $text) >= 0 } @lines[ $after .. $#lines ];
}

sub broker_stderr_tail
{
	my @lines = lines_of("$work/broker.err");
	my $from = @lines > 30 ? @lines - 30 : 0;
	return join("\n", @lines[ $from .. $#lines ]);
}

# Send a control command and wait (at most 5 s) for the reply we expect.
# The mock cluster can take up to a second to apply a command.
sub control
{
	my ($cmd, $expect) = @_;
	my $before = () = lines_of("$work/broker.err");
	my $written = eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm 5;
		open my $fh, '>', $fifo or die "open: $!";
		print $fh "$cmd\n";
		close $fh;
		alarm 0;
		1;
	};
	alarm 0;
	ok($written, "\"$cmd\" written to the control FIFO");
	ok(wait_until(5, sub { logged_after($before, "pinpipe-broker: $expect") }),
		"\"$cmd\" answered \"$expect\"")
	  or diag(broker_stderr_tail());
	return;
}

# Run a command with a time limit (coreutils timeout): (success, stdout and stderr).
sub run_limited
{
	my ($secs, $cmd, $stdin) = @_;
	my $out = '';
	my $ok = IPC::Run::run([ 'timeout', $secs, @$cmd ], '<', \($stdin // ''), '>&', \$out);
	return ($ok, $out);
}

my $addr;

# Consume brokertest.pin from the beginning to its end as key:value lines.
sub consume_all
{
	my ($ok, $out) = (0, '');
	my $err = '';
	$ok = IPC::Run::run(
		[
			'timeout', 30, 'kcat', '-b', $addr, '-C', '-e', '-q', '-o', 'beginning',
			'-t', 'brokertest.pin', '-f', '%k:%s\n'
		],
		'<', \'', '>', \$out, '2>', \$err);
	diag("consume failed: $err") unless $ok;
	return split /\n/, $out;
}

END
{
	# Stop the broker if it still runs (politely, then not); keep the exit status.
	local $?;
	if ($broker_pid && !broker_gone())
	{
		kill 'TERM', $broker_pid;
		for (1 .. 20) { last if broker_gone(); usleep(100_000); }
		kill 'KILL', $broker_pid unless broker_gone();
		waitpid $broker_pid, 0;
	}
}

ok(-x pp_tool('pinpipe-broker') && grep({ -x "$_/kcat" } split /:/, $ENV{PATH}),
	'pinpipe-broker is built and kcat is installed');

$broker_pid = start_broker('--partitions', 4, '--prefix', 'brokertest',
	'--bootstrap-file', "$work/bootstrap", '--control', $fifo);
ok(wait_until(10, sub { -s "$work/bootstrap" }), 'bootstrap file within 10 s')
  or BAIL_OUT('the broker did not start: ' . broker_stderr_tail());
chomp($addr = slurp_file("$work/bootstrap"));
ok(-p $fifo, "the control FIFO $fifo was created");
is((lines_of("$work/broker.out"))[0], $addr, "stdout's first line is the bootstrap address");
like($addr, qr/^127\.0\.0\.1:[0-9]+$/, "bootstrap address $addr is on loopback");

# (1) metadata: the three topics, 4 partitions each
my ($ok, $out) = run_limited(20, [ 'kcat', '-b', $addr, '-L', '-m', 5 ]);
ok($ok, 'kcat -L succeeds') or diag($out);
for my $t (qw(brokertest.pin brokertest.geo brokertest.user))
{
	ok(index($out, qq(topic "$t" with 4 partitions)) >= 0, "metadata lists $t with 4 partitions");
}

# (2) 1000 keyed messages round-trip exactly once
my @sent = map { "key$_:value$_" } 1 .. 1000;
($ok, $out) = run_limited(60, [ 'kcat', '-b', $addr, '-P', '-K:', '-t', 'brokertest.pin' ], join("\n", @sent) . "\n");
ok($ok, 'producing 1000 messages succeeds') or diag($out);
my @consumed = consume_all();
is(scalar @consumed, 1000, 'consumed 1000 messages');
is_deeply([ sort @consumed ], [ sort @sent ], '1000 keyed messages produced and consumed back exactly once');

# control protocol: a bad command is reported and the broker keeps running
control('no-such-command 1', 'error: "no-such-command 1": unknown command');
control('status', "bootstrap $addr brokers 1 down none");

# (3) outage: with broker 1 down nothing can reach the cluster
control('down 1', 'broker 1 down');
($ok, $out) = run_limited(20, [ 'kcat', '-b', $addr, '-L', '-m', 2 ]);
ok(!$ok, 'while down, metadata fails') or diag($out);
($ok, $out) = run_limited(20,
	[ 'kcat', '-b', $addr, '-P', '-K:', '-t', 'brokertest.pin', '-X', 'message.timeout.ms=3000' ], "down:1\n");
ok(!$ok, 'while down, produce fails') or diag($out);
control('up 1', 'broker 1 up');
($ok, $out) = run_limited(30,
	[ 'kcat', '-b', $addr, '-P', '-K:', '-t', 'brokertest.pin', '-X', 'message.timeout.ms=20000' ],
	join('', map { "up$_:after-up$_\n" } 1 .. 10));
ok($ok, 'produce works after up 1') or diag($out);
@consumed = consume_all();
is(scalar @consumed, 1010, 'after up 1 consumed 1010 messages');
my %seen;
is(scalar(grep { !$seen{$_}++ } @consumed), 1010, 'no duplicates after up 1');
ok(!grep(/^down:/, @consumed), 'the message produced while down was not stored');
for my $i (1, 10)
{
	ok(scalar(grep { $_ eq "up$i:after-up$i" } @consumed), "up$i consumed after up 1");
}

# (4) injected produce errors: the client retries and the message lands once
control('error Produce 3 NOT_LEADER_FOR_PARTITION',
	'next 3 Produce(0) requests fail with NOT_LEADER_FOR_PARTITION (6)');
($ok, $out) = run_limited(30,
	[ 'kcat', '-b', $addr, '-P', '-K:', '-t', 'brokertest.pin', '-d', 'msg', '-X', 'message.timeout.ms=20000' ],
	"retry:retried\n");
ok($ok, 'produce succeeds through 3 injected NOT_LEADER_FOR_PARTITION errors')
  or diag(join("\n", (split /\n/, $out)[-20 .. -1]));
like($out, qr/Not leader for partition/, 'the client saw the injected NOT_LEADER_FOR_PARTITION errors');
@consumed = consume_all();
is(scalar(grep { $_ eq 'retry:retried' } @consumed), 1, 'the retried message was stored once');

# (5) topic-error: metadata reports the topic as unknown, "clear" brings it back
control('topic-error brokertest.geo UNKNOWN_TOPIC_OR_PART',
	'topic brokertest.geo: metadata reports UNKNOWN_TOPIC_OR_PART (3)');
($ok, $out) = run_limited(20, [ 'kcat', '-b', $addr, '-L', '-t', 'brokertest.geo', '-m', 5 ]);
like($out, qr/Unknown topic or partition/, 'brokertest.geo reported unknown after topic-error');
control('topic-error brokertest.geo clear', 'topic brokertest.geo: error cleared');
($ok, $out) = run_limited(20, [ 'kcat', '-b', $addr, '-L', '-t', 'brokertest.geo', '-m', 5 ]);
ok(index($out, 'topic "brokertest.geo" with 4 partitions') >= 0, 'brokertest.geo back after topic-error clear')
  or diag($out);
control('topic-error brokertest.geo NO_SUCH_ERROR',
	'error: "topic-error brokertest.geo NO_SUCH_ERROR": unknown error name');

# (6) SIGTERM: exit 0 within 5 s, FIFO and bootstrap file removed
kill 'TERM', $broker_pid;
ok(wait_until(5, \&broker_gone), 'broker exits within 5 s of SIGTERM');
is($exit_status, 0, 'broker exits 0 after SIGTERM');
ok(!-e $fifo, 'the control FIFO was removed');
ok(!-e "$work/bootstrap", 'the bootstrap file was removed');
ok(logged_after(0, 'pinpipe-broker: shutting down'), 'shutdown message on stderr');

# (7) --port: the same address again after a restart; a port in use is refused
my ($port) = $addr =~ /:([0-9]+)$/;
$broker_pid = start_broker('--port', $port, '--partitions', 2, '--prefix', 'brokertest',
	'--bootstrap-file', "$work/bootstrap");
ok(wait_until(10, sub { -s "$work/bootstrap" }), "bootstrap file within 10 s with --port $port");
is(-e "$work/bootstrap" ? slurp_file("$work/bootstrap") =~ s/\n\z//r : '', $addr,
	"--port $port: the restarted broker keeps its address");
($ok, $out) = run_limited(20, [ 'kcat', '-b', $addr, '-L', '-m', 5 ]);
ok(index($out, 'topic "brokertest.pin" with 2 partitions') >= 0, "the restarted broker on port $port answers")
  or diag($out);
($ok, $out) = run_limited(10, [ pp_tool('pinpipe-broker'), '--port', $port ]);
ok(!$ok, "a second broker does not start on the busy port $port");
like($out, qr/cannot listen on 127\.0\.0\.1:$port/, 'a clear error for a busy port');

done_testing();
