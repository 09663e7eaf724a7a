# The tools under valgrind memcheck (full leak check): pinpipe-broker serving
# produce and consume, pinpipe-emulate posting normal and synthetic records,
# and a dry run. No errors, no definitely lost block; each tool's summary is
# printed. Needs valgrind (test/run.sh installs it); no PostgreSQL server.
use strict;
use warnings;
use File::Basename qw(basename);
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use PinPipe::Test;

my $top = pp_top();
chdir $top or die "$top: $!";
my $work = "$ENV{TESTDIR}/valgrind";
make_path($work);
my @vg = qw(valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
  --error-exitcode=99 --quiet);
my $broker_bin = pp_tool('pinpipe-broker');
my $emulate_bin = pp_tool('pinpipe-emulate');

my $broker = IPC::Run::start(
	[ @vg, "--log-file=$work/broker.vg", $broker_bin, '--quiet', '--partitions', '2', '--prefix', 'vg',
		'--bootstrap-file', "$work/bootstrap", '--control', "$work/ctl" ],
	'>', '/dev/null', '2>', '/dev/null');
for (1 .. 300) { last if -s "$work/bootstrap"; usleep(100_000); }
my $b = slurp_file("$work/bootstrap");
chomp $b;
ok($b ne '', 'the broker started under valgrind') or BAIL_OUT('no bootstrap address');

# emulate(NAME, ARGS...): one run of pinpipe-emulate under valgrind
sub emulate
{
	my ($name, @args) = @_;
	my $ok = IPC::Run::run([ @vg, "--log-file=$work/$name.vg", $emulate_bin, @args ],
		'>', "$work/$name.out", '2>', "$work/$name.err");
	ok($ok, "pinpipe-emulate $name exits 0 under valgrind")
	  or diag(slurp_file("$work/$name.err"));
	return;
}
emulate('emulate', '--brokers', $b, '--prefix', 'vg', '--data', 'data', '--count', '300', '--seed', '1', '--quiet');
emulate('synthetic', '--brokers', $b, '--prefix', 'vg', '--data', 'data', '--synthetic', '--count', '300',
	'--seed', '2', '--quiet');
emulate('dryrun', '--dry-run', '--data', 'data', '--synthetic', '--count', '1000');

my $consumed = pp_run('kcat', '-b', $b, '-C', '-t', 'vg.pin', '-o', 'beginning', '-e', '-q');
my $n = () = $consumed =~ /\n/g;
is($n, 600, 'consumed 600 messages from the broker under valgrind');

# the control FIFO works, then the broker shuts down cleanly
open my $ctl, '>', "$work/ctl" or die "ctl: $!";
print $ctl "status\n";
close $ctl;
$broker->signal('TERM');
ok($broker->finish, 'the broker exits 0 under valgrind');

for my $f (sort glob("$work/*.vg"))
{
	my $name = basename($f, '.vg');
	my $report = -s $f ? slurp_file($f) : '';
	is($report, '', "$name: no valgrind errors, no definite leaks");
}
is(scalar(() = glob("$work/*.vg")), 4, 'a valgrind log for each of the 4 runs');

done_testing();
