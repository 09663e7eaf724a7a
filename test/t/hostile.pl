# The hostile corpus through the real path: every message of test/hostile
# (and the big ones test/hostile/make.sh writes, up to 4 MB; the bigger ones
# are test/t/hostile_large.pl's) is produced with kcat, one message each, and
# consumed by the worker. Each must become the row or the dead letter
# test/hostile/EXPECTED says, never a crash or a stall. The empty messages are
# sent as a key with a zero-length value, and a tombstone (a null value, kcat
# -Z) is sent to each topic too: each must be a dead letter, the empty ones
# with an empty payload, the tombstones with a NULL one.
use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $top = pp_top();
my $work = "$ENV{TESTDIR}/hostile";
pp_run('bash', "$top/test/hostile/make.sh", $work);

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'hostile');
my $b = $broker->bootstrap;
# the worker consumes while the messages arrive: the broker keeps only 5 MB a
# partition, so each big message is consumed before the next is produced
my $node = pp_node('hostile', brokers => $b, prefix => 'hostile');

my %next = (pin => 0, geo => 0, user => 0);
my @plan;    # [kind, offset, name, fate]
my $skipped = 0;
open my $expected, '<', "$top/test/hostile/EXPECTED" or die "EXPECTED: $!";
while (my $line = <$expected>)
{
	chomp $line;
	next if $line =~ /^\s*(#|$)/;
	my ($name, $kind, $fate) = split ' ', $line, 3;
	my $f = -f "$top/test/hostile/$name" ? "$top/test/hostile/$name" : "$work/$name";
	if (-s $f > 4_000_000)
	{
		note("skipped: $name (over 4 MB: test/t/hostile_large.pl sends it, on a partition of its own)");
		$skipped++;
		next;
	}
	my ($ok, $err);
	if (!-s $f)
	{
		# kcat skips empty input, but sends "key<TAB>" as a zero-length value (without -Z)
		my $in = "empty\t\n";
		$ok = IPC::Run::run([ 'kcat', '-b', $b, '-P', '-t', "hostile.$kind", '-p', '0', '-K', "\t" ],
			'<', \$in, '2>', \$err);
	}
	else
	{
		$ok = IPC::Run::run(
			[ 'kcat', '-b', $b, '-P', '-t', "hostile.$kind", '-p', '0', '-X', 'message.max.bytes=20000000', $f ],
			'<', \undef, '2>', \$err);
	}
	if (!$ok)
	{
		fail("could not produce $name: $err");
		next;
	}
	push @plan, [ $kind, $next{$kind}, $name, $fate ];
	$next{$kind}++;
	pp_wait_for($node, "SELECT next_offset = $next{$kind} FROM pinpipe.offsets WHERE topic = 'hostile.$kind'", 60)
	  if -s $f > 500_000;
}
close $expected;
# a tombstone (null value) to each topic: kcat -Z sends "key<TAB>" as a null value
for my $kind (qw(pin geo user))
{
	my ($in, $err) = ("tombstone\t\n", '');
	if (!IPC::Run::run([ 'kcat', '-b', $b, '-P', '-t', "hostile.$kind", '-p', '0', '-K', "\t", '-Z' ],
			'<', \$in, '2>', \$err))
	{
		fail("could not produce a tombstone: $err");
		next;
	}
	push @plan, [ $kind, $next{$kind}, "tombstone_$kind", 'dead message value is null (a Kafka tombstone)' ];
	$next{$kind}++;
}
my $total = $next{pin} + $next{geo} + $next{user};
note("produced $total hostile messages (pin $next{pin}, geo $next{geo}, user $next{user}); $skipped skipped");

pp_wait_for($node, "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'hostile.%'",
	180);

# every message's fate, read back in one query per table
my %rows = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	"SELECT 'pin ' || kafka_offset FROM pinpipe.pin_raw
	 UNION ALL SELECT 'geo ' || kafka_offset FROM pinpipe.geo_raw
	 UNION ALL SELECT 'user ' || kafka_offset FROM pinpipe.user_raw");
my %dead = map { ("$_->[0] $_->[1]" => $_->[2]) } @{
	decode_json($node->safe_psql('postgres',
		"SELECT coalesce(json_agg(json_build_array(substr(topic, 9), kafka_offset, coalesce(error_detail, error))), '[]')
		   FROM pinpipe.dead_letters"))
};
my @bad;
for my $p (@plan)
{
	my ($kind, $offset, $name, $fate) = @$p;
	if ($fate eq 'row')
	{
		push @bad, "$name should be a row" unless $rows{"$kind $offset"};
	}
	else
	{
		(my $want = $fate) =~ s/^dead //;
		my $err = $dead{"$kind $offset"};
		push @bad, "$name should be a dead letter with \"$want\", got: " . ($err // 'no dead letter')
		  unless defined $err && index($err, $want) >= 0;
	}
}
ok(!@bad && @plan == $total, "all $total hostile messages became the expected row or dead letter")
  or diag(join("\n", @bad));
my $empties = grep { $_->[3] eq 'dead empty message' } @plan;
pp_check($node, "the empty messages' dead letters hold an empty payload",
	"SELECT count(*) = $empties AND bool_and(payload = ''::bytea)
	   FROM pinpipe.dead_letters WHERE error = 'empty message'");
pp_check($node, "the tombstones' dead letters hold a NULL payload, one per topic",
	"SELECT count(*) = 3 AND bool_and(payload IS NULL) FROM pinpipe.dead_letters
	  WHERE error = 'message value is null (a Kafka tombstone)'");
pp_check($node, 'nothing trimmed by the broker before it was read', 'SELECT count(*) = 0 FROM pinpipe.offset_gaps');
pp_check($node, 'rows + dead letters = messages',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.geo_raw)
	      + (SELECT count(*) FROM pinpipe.user_raw) + (SELECT count(*) FROM pinpipe.dead_letters) = $total");
# no stall: a good message after all of them still lands
pp_kcat_produce($b, 'hostile.pin', key_tab => 1,
	text => qq(424242\t{"index": 424242, "title": "after the hostile ones"}\n));
pp_wait_for($node, 'SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 424242', 30);
pp_check($node, 'the worker goes on after the hostile messages',
	'SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 424242');

done_testing();
