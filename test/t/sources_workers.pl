# Sources with two workers sharing each topic's partitions: when the embedded
# broker is restarted (a new cluster), the workers agree on one new source per
# topic (the first begins it, the other takes it), every partition's stop is
# recorded once in offset_gaps, and exactly once holds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $broker = PinPipe::Test::Broker->new(partitions => 4, prefix => 'sw', args => [ '--port', $port ]);
my $next = 1;

# $n pins into each of the 4 partitions of sw.pin
sub produce
{
	my ($n) = @_;
	for my $p (0 .. 3)
	{
		my $text = join('', map { my $i = $next++; qq({"index": $i, "title": "pin $i"}\n) } 1 .. $n);
		pp_kcat_produce($broker->bootstrap, 'sw.pin', text => $text, args => [ '-p', $p ]);
	}
	return 4 * $n;
}

my $node = pp_node('sources_workers', brokers => $broker->bootstrap, prefix => 'sw',
	conf => 'pinpipe.workers = 2');
my $total = produce(5);
pp_check_complete($node, 'sw', $total);
pp_check($node, 'two workers consume', "SELECT count(DISTINCT pid) = 2 FROM pinpipe.status WHERE kind = 'pin'");

$broker->stop('KILL');
$broker->start;
$total += produce(3);
pp_check_complete($node, 'sw', $total);
pp_check($node, 'one new source for the two workers, cluster changed',
	"SELECT count(*) = 2 AND (array_agg(reason ORDER BY id))[2] = 'cluster changed'
	   FROM pinpipe.sources WHERE topic = 'sw.pin'");
pp_check($node, 'no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
pp_check($node, "each partition's stop recorded once",
	"SELECT count(*) = 4 AND count(DISTINCT kafka_partition) = 4
	        AND bool_and(expected_offset = 5 AND resumed_offset = 0)
	   FROM pinpipe.offset_gaps WHERE topic = 'sw.pin'")
  or diag($node->safe_psql('postgres', "SELECT * FROM pinpipe.offset_gaps WHERE topic = 'sw.pin'"));
pp_check($node, 'all pins cleaned', 'SELECT count(*) = ' . ($next - 1) . ' FROM pinpipe.pin_clean');

done_testing();
