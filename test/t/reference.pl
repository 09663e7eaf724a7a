# Reference outputs: five public notebooks' own inputs and published results
# (test/reference/*/, see test/reference/README.md). Each notebook's raw rows,
# duplicates included, go the way users send them: produced with kcat to the
# embedded broker and consumed by the worker. Then every published table
# that the notebook's verify field says reproduces fully with duplicates
# dropped must come out of the matching pinpipe analytics function
# (test/reference/compare.sql); the others are skipped with the reason.
# Each notebook gets its own node and broker.
#
# The notebooks are read from test/reference/ in the checkout, or from
# PP_REFERENCE_DIR when set (a directory of <owner>__<repository> folders).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $compare = pp_top() . '/test/reference/compare.sql';
my $refdir = $ENV{PP_REFERENCE_DIR} || pp_top() . '/test/reference';
my @dirs = grep { -d } glob("$refdir/*");

sub lines_in { my $n = () = slurp_file($_[0]) =~ /\n/g; return $n; }

my ($reproduced, $skipped, $n) = (0, 0, 0);
for my $dir (@dirs)
{
	my $name = $dir =~ s{.*/}{}r;
	$n++;
	my $prefix = "ref$n";
	note("$name:");
	my $broker = PinPipe::Test::Broker->new(partitions => 3, prefix => $prefix);
	pp_kcat_produce($broker->bootstrap, "$prefix.$_", file => "$dir/${_}_raw.jsonl", keyed => 1)
	  for qw(pin geo user);
	my ($npin, $ngeo, $nuser) = map { lines_in("$dir/${_}_raw.jsonl") } qw(pin geo user);
	my $node = pp_node($prefix, brokers => $broker->bootstrap, prefix => $prefix);
	pp_wait_for($node, "SELECT (SELECT count(*) FROM pinpipe.pin_raw) = $npin
	                      AND (SELECT count(*) FROM pinpipe.geo_raw) = $ngeo
	                      AND (SELECT count(*) FROM pinpipe.user_raw) = $nuser", 120);
	pp_check($node, "$name: the worker stored all $npin + $ngeo + $nuser messages, no dead letters",
		"SELECT (SELECT count(*) FROM pinpipe.pin_raw) = $npin AND (SELECT count(*) FROM pinpipe.geo_raw) = $ngeo
		    AND (SELECT count(*) FROM pinpipe.user_raw) = $nuser AND (SELECT count(*) FROM pinpipe.dead_letters) = 0");
	pp_check($node, "$name: duplicates dropped, one clean row per ind",
		q{SELECT (SELECT count(*) FROM pinpipe.pin_clean) = (SELECT count(DISTINCT "index") FROM pinpipe.pin_raw)
		    AND (SELECT count(*) FROM pinpipe.geo_clean) = (SELECT count(DISTINCT ind) FROM pinpipe.geo_raw)
		    AND (SELECT count(*) FROM pinpipe.user_clean) = (SELECT count(DISTINCT ind) FROM pinpipe.user_raw)});
	pp_check($node, "$name: the analytics caches equal the plain-SQL definitions",
		'SELECT bool_and(matches) FROM pinpipe.analytics_check()');

	my ($ret, $stdout, $stderr) = $node->psql('postgres', "\\i $compare",
		extra_params => [ '-v', 'outputs=' . slurp_file("$dir/outputs.json") ]);
	my $out = join("\n", grep { $_ ne '' } $stdout, $stderr);
	if ($ret != 0 || $out !~ /^q[0-9]+b? (ok|FAILED|skipped):/m)
	{
		fail("$name: compare.sql");
		diag($out);
	}
	else
	{
		for my $line (split /\n/, $out)
		{
			my ($q, $rest) = split / /, $line, 2;
			$rest //= '';
			if ($rest =~ /^ok: (.*)/)
			{
				pass("$name $q: $1");
				$reproduced++;
			}
			elsif ($rest =~ /^skipped: (.*)/)
			{
			  SKIP: { skip("$name $q: $1", 1); }
				$skipped++;
			}
			else
			{
				fail("$name $q: " . ($rest =~ s/^FAILED: //r));
			}
		}
	}
	$node->stop;
	$broker->stop;
}

note("reference tables: $reproduced reproduced, $skipped skipped");
# every notebook must have been read, and at least the tables known to reproduce
ok($n == 5 && $reproduced >= 12,
	"5 notebooks read and at least 12 reproducible tables reproduced (got $n, $reproduced)");

done_testing();
