# Scaling out: two PostgreSQL clusters on one machine split one topic set by
# pinpipe.partitions (0-3 and 4-7), the second with pinpipe.workers = 2.
# Together they store every (partition, offset) exactly once, each only its
# own partitions; nothing lost, nothing duplicated.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use PinPipe::Test;

chdir pp_top();    # --data data
my $broker = PinPipe::Test::Broker->new(partitions => 8, prefix => 'split');
my $b = $broker->bootstrap;
my $node1 = pp_node('split1', brokers => $b, prefix => 'split', conf => "pinpipe.partitions = '0-3'");
# the second cluster: its own data directory, port and two workers
my $node2 = pp_node('split2', brokers => $b, prefix => 'split',
	conf => "pinpipe.workers = 2\npinpipe.partitions = '4-7'");

ok( eval {
		pp_run(pp_tool('pinpipe-emulate'), '--brokers', $b, '--prefix', 'split', '--data', 'data', '--synthetic',
			'--seed', 11, '--count', 12000, '--rate', 3000, '--quiet');
		1;
	},
	'emulator') or diag($@);

my $sum_offsets = "SELECT coalesce(sum(next_offset), 0) FROM pinpipe.offsets WHERE topic LIKE 'split.%'";
my ($n1, $n2) = (0, 0);
my $deadline = time + 120;
while (time < $deadline)
{
	$n1 = $node1->safe_psql('postgres', $sum_offsets);
	$n2 = $node2->safe_psql('postgres', $sum_offsets);
	last if $n1 + $n2 == 36000;
	usleep(500_000);
}
note("cluster 1 stored $n1 messages, cluster 2 stored $n2");
is($n1 + $n2, 36000, 'the two clusters consumed all 36000 messages');

my $stored = "SELECT 'split.pin', kafka_partition, kafka_offset FROM pinpipe.pin_raw
        UNION ALL SELECT 'split.geo', kafka_partition, kafka_offset FROM pinpipe.geo_raw
        UNION ALL SELECT 'split.user', kafka_partition, kafka_offset FROM pinpipe.user_raw
        UNION ALL SELECT topic, kafka_partition, kafka_offset FROM pinpipe.dead_letters";
my @c1 = map { [ split /\|/ ] } split /\n/, $node1->safe_psql('postgres', $stored);
my @c2 = map { [ split /\|/ ] } split /\n/, $node2->safe_psql('postgres', $stored);
is(scalar(grep { $_->[1] > 3 } @c1), 0, 'cluster 1 stored only partitions 0-3');
is(scalar(grep { $_->[1] < 4 } @c2), 0, 'cluster 2 stored only partitions 4-7');
my %count;
$count{"@$_"}++ for @c1, @c2;
is(scalar(grep { $_ > 1 } values %count), 0, 'no (partition, offset) stored twice across the clusters');
my @incomplete;
for my $t (qw(pin geo user))
{
	for my $p (0 .. 7)
	{
		my ($hw) = pp_run('kcat', '-b', $b, '-Q', '-t', "split.$t:$p:-1") =~ /([0-9]+)\s*$/;
		my $n = grep { /^split\.$t $p / } keys %count;
		push @incomplete, "split.$t [$p]: $n of " . ($hw // '?') unless defined $hw && $n == $hw;
	}
}
is(scalar @incomplete, 0, 'every partition complete up to its high watermark') or diag(join("\n", @incomplete));
is($node2->safe_psql('postgres', "SELECT count(DISTINCT pid) FROM pinpipe.status WHERE state IN ('consuming', 'caught up')"),
	2, 'cluster 2 ran two workers');
is( $node2->safe_psql(
		'postgres',
		"SELECT string_agg(worker || ':' || kafka_partition, ',' ORDER BY worker, kafka_partition)
		   FROM pinpipe.partition_lag WHERE topic = 'split.pin'"),
	'0:4,0:6,1:5,1:7',
	'its workers split partitions 4-7 between them');

done_testing();
