# kill -9 of pinpipe-rest while 8 concurrent python3-requests clients post
# 100k records (50 a request), twice, restarting it on the same port each
# time; the clients retry what got no answer. Every record answered with an
# offset is in Kafka at that partition and offset, and every record that was
# never retried is in Kafka exactly once (idempotent producer, acks=all); a
# retried record is there at least once (at most twice here). The worker
# consumes the topic meanwhile: every message in Kafka is stored exactly once,
# so every answered record is in the tables at its partition and offset.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PinPipe::Test;
use PinPipe::Rest;

my $total = 100_000;
my $broker = PinPipe::Test::Broker->new(partitions => 12, prefix => 'kl');
my $node = pp_node('kl', brokers => $broker->bootstrap, prefix => 'kl');
my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap, args => ['--quiet']);
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $log = "$tmp/acks";

my ($out, $err) = ('', '');
my $client = IPC::Run::start([ '/usr/bin/python3', pp_top() . '/test/tools/rest_kill_client.py',
	$rest->url, 'kl.user', $total, 8, 50, $log ], '>', \$out, '2>', \$err);

sub acked_so_far
{
	return 0 unless -e $log;
	my $n = () = slurp_file($log) =~ /^A /mg;
	return $n;
}

# kill at about 20% and 55% of the stream
for my $at (0.2, 0.55)
{
	my $deadline = time + 120;
	usleep(50_000) while acked_so_far() < $at * $total && time < $deadline;
	my $before = acked_so_far();
	is($rest->stop('KILL'), -9, sprintf('kill -9 with %d of %d records answered', $before, $total));
	ok($before > 0 && $before < $total, 'in the middle of the stream');
	usleep(300_000);
	$rest->start;
	ok($rest->alive, 'restarted on the same port ' . $rest->port);
}
my $finished = eval { $client->finish; 1 };
ok($finished && $client->result == 0, "clients finished: $out") or diag($err);

# what Kafka holds
my ($kout, $kerr) = ('', '');
IPC::Run::run([ 'kcat', '-b', $broker->bootstrap, '-C', '-t', 'kl.user', '-o', 'beginning', '-e', '-q',
	'-f', '%p %o %s\n' ], '>', \$kout, '2>', \$kerr);
my (%at, %copies);
for (split /\n/, $kout)
{
	my ($p, $o, $id) = /^(\d+) (\d+) \{"id": (\d+)\}$/ or next;
	$at{"$p/$o"} = $id;
	$copies{$id}++;
}
my (%acked, %retried);
my $answered = 0;
my $wrong = 0;
for (split /\n/, slurp_file($log))
{
	if (/^A (\d+) (\d+) (\d+)$/)
	{
		$answered++;
		$acked{$1}++;
		$wrong++ unless defined $at{"$2/$3"} && $at{"$2/$3"} == $1;
	}
	elsif (/^R (\d+)$/) { $retried{$1} = 1; }
}
is(scalar keys %acked, $total, "every record answered with an offset in the end ($answered answers)");
is($wrong, 0, 'every answered offset holds that record in Kafka');
is(scalar(grep { $acked{$_} > 1 } keys %acked), 0, 'no record answered twice');
my @once = grep { !$retried{$_} } 0 .. $total - 1;
is(scalar(grep { ($copies{$_} // 0) != 1 } @once), 0,
	scalar(@once) . ' records never retried: each in Kafka exactly once');
my @dups = grep { ($copies{$_} // 0) > 1 } keys %retried;
is(scalar(grep { ($copies{$_} // 0) < 1 || $copies{$_} > 2 } keys %retried), 0,
	scalar(keys %retried) . ' retried records: each in Kafka once or twice (' . scalar(@dups)
	  . ' twice: stored before the kill, unanswered, sent again)');
is($rest->stop, 0, 'exits 0 on SIGTERM');

# ... and in the tables: every message exactly once (a raw row or a dead
# letter), every answered record at the partition and offset it was answered with
my $in_kafka = scalar keys %at;
pp_check_complete($node, 'kl', $in_kafka);
my %answered_at;
for (split /\n/, slurp_file($log)) { $answered_at{"$2/$3"} = 1 if /^A (\d+) (\d+) (\d+)$/; }
my $answers = join(',', map { my ($p, $o) = split m{/}; "($p,$o)" } keys %answered_at);
is( $node->safe_psql(
		'postgres', "
CREATE TEMP TABLE answered (p int, o bigint);
INSERT INTO answered VALUES $answers;
ANALYZE answered;
WITH stored AS (SELECT kafka_partition AS p, kafka_offset AS o FROM pinpipe.user_raw
                UNION ALL SELECT kafka_partition, kafka_offset FROM pinpipe.dead_letters WHERE topic = 'kl.user'),
     copies AS (SELECT p, o, count(*) AS n FROM stored GROUP BY p, o)
SELECT count(*) FROM answered a LEFT JOIN copies c USING (p, o) WHERE coalesce(c.n, 0) <> 1"),
	'0',
	scalar(keys %answered_at) . ' answered records: each stored exactly once at its partition and offset');

done_testing();
