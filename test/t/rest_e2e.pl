# End to end through the front door: the sample rows (every pin, and the geo
# and user rows of the same ind) posted by Debian's python3-requests exactly as
# the original producers build them (json.dumps(..., default=str) datetimes),
# once in the REST Proxy batch shape and once in the Kinesis streaming shape,
# under the stage --base-path /dev, to pinpipe-rest; the same rows produced
# twice with kcat to other topics. Two nodes consume one topic set each: their
# raw rows (minus the Kafka columns) and clean rows are equal, with no dead
# letters, and every message is stored exactly once. The emulator's --rest
# modes are checked too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;
use PinPipe::Rest;

my $broker = PinPipe::Test::Broker->new(partitions => 4, prefix => 'kc',
	args => [ map { ('--topic', "rp.$_") } qw(pin geo user) ]);
my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap,
	args => [ '--base-path', '/dev', '--stream-prefix', 'rp', '--key-field', 'index,ind', '--quiet' ]);
my $tmp = PostgreSQL::Test::Utils::tempdir();

# the rows: every pin and the geo and user rows of its ind
my %inds;
my %lines;
for my $t (qw(pin geo user))
{
	open my $fh, '<', pp_data($t) or die $!;
	while (my $l = <$fh>)
	{
		my ($ind) = $l =~ /^\{"(?:index|ind)": (\d+)/ or next;
		$inds{$ind} = 1 if $t eq 'pin';
		push @{ $lines{$t} }, $l if $t eq 'pin' || $inds{$ind};
	}
	close $fh;
	open my $out, '>', "$tmp/$t.jsonl" or die $!;
	print $out @{ $lines{$t} };
	close $out;
}
my $n = scalar @{ $lines{pin} } + scalar @{ $lines{geo} } + scalar @{ $lines{user} };
note "rows: $n (pin " . scalar(@{ $lines{pin} }) . ')';

# kcat: each row twice, keyed by ind
for my $t (qw(pin geo user))
{
	pp_kcat_produce($broker->bootstrap, "kc.$t", file => "$tmp/$t.jsonl", keyed => 1);
	pp_kcat_produce($broker->bootstrap, "kc.$t", file => "$tmp/$t.jsonl", keyed => 1);
}

# the original producers' two shapes, through the stage /dev
for my $mode (qw(batch streams))
{
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ '/usr/bin/python3', pp_top() . '/test/tools/rest_producer.py', $mode,
		$rest->url . '/dev', 'rp', map({ "$tmp/$_.jsonl" } qw(pin geo user)), 8 ], '>', \$out, '2>', \$err);
	ok($ok, "python3-requests, $mode shape: every row answered with an offset") or diag($err);
	note $out;
}

my $kc = pp_node('kcat', brokers => $broker->bootstrap, prefix => 'kc');
my $rp = pp_node('rest', brokers => $broker->bootstrap, prefix => 'rp');
pp_check_complete($kc, 'kc', 2 * $n);
pp_check_complete($rp, 'rp', 2 * $n);
for my $node ($kc, $rp)
{
	pp_check($node, $node->name . ': no dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
}

sub first_difference
{
	my @a = split /\n/, $_[0];
	my @b = split /\n/, $_[1];
	for my $i (0 .. $#a)
	{
		return "kcat: $a[$i]\nrest: " . ($b[$i] // '(none)') if ($b[$i] // '') ne $a[$i];
	}
	return "rest has more rows";
}

sub dump_rows
{
	my ($node, $table, $raw) = @_;
	# the message's Kafka metadata differs by path (the key: the ind for kcat and
	# --key-field, the PartitionKey for the stream shape): compared apart
	my $j = $raw
	  ? "to_jsonb(r) - '{kafka_partition,kafka_offset,kafka_timestamp,kafka_source,kafka_key,kafka_headers}'::text[]"
	  : 'to_jsonb(r)';
	return $node->safe_psql('postgres', "SELECT t FROM (SELECT ($j)::text AS t FROM pinpipe.$table r) s ORDER BY t");
}
for my $t (qw(pin geo user))
{
	my $a = dump_rows($kc, "${t}_raw", 1);
	my $b = dump_rows($rp, "${t}_raw", 1);
	my $cnt = () = $a =~ /\n/g;
	ok($a eq $b && $cnt + 1 == 2 * scalar @{ $lines{$t} }, "$t raw rows through HTTP equal kcat's (" . ($cnt + 1) . ' rows)')
	  or diag(first_difference($a, $b));
	$a = dump_rows($kc, "${t}_clean", 0);
	$b = dump_rows($rp, "${t}_clean", 0);
	$cnt = () = $a =~ /\n/g;
	ok($a eq $b && $cnt + 1 == scalar @{ $lines{$t} }, "$t clean rows through HTTP equal kcat's (" . ($cnt + 1) . ' rows)')
	  or diag(first_difference($a, $b));
}
pp_check($rp, "every message through HTTP has its key: the ind (--key-field index,ind) or the PartitionKey (partition-1, as the original producer sends)",
	"SELECT bool_and(convert_from(kafka_key, 'UTF8') IN (ind::text, 'partition-1')) FROM pinpipe.geo_raw");
pp_check($rp, 'geo timestamps arrived as default=str text and were parsed',
	"SELECT count(*) = 0 FROM pinpipe.geo_clean WHERE timestamp IS NULL");

# the emulator posting over HTTP: batch, batch of 20, streams, streams of 20
my $emu = pp_tool('pinpipe-emulate');
my $total = 0;
for my $args ([], [ '--rest-batch', '20' ], ['--rest-streams'], [ '--rest-streams', '--rest-batch', '20' ])
{
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $emu, '--data', pp_top() . '/data', '--prefix', 'rp', '--count', '100',
		'--seed', '7', '--rest', $rest->url . '/dev', @$args ], '>', \$out, '2>', \$err);
	ok($ok && $err =~ /delivered rp\.pin 100, rp\.geo 100, rp\.user 100; failed 0/,
		"pinpipe-emulate --rest @$args: 300 messages delivered") or diag($err);
	$total += 300;
}
pp_check_complete($rp, 'rp', 2 * $n + $total);
pp_check($rp, 'emulated rows clean without dead letters', 'SELECT count(*) = 0 FROM pinpipe.dead_letters');
my $m = ($rest->curl('GET', '/metrics'))[1];
my ($failed) = $m =~ /^pinpipe_rest_records_failed_total (\d+)/m;
is($failed, 0, 'no record failed');
is($rest->stop, 0, 'pinpipe-rest exits 0 on SIGTERM');

done_testing();
