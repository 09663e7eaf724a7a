# CI smoke run of the fuzzers (test/fuzz: rules, decode and the front door's
# request decoding, rest): build them, replay every seed and
# every regression input once, fuzz each target for 20 seconds from a scratch
# copy of its seed corpus, and check the hostile corpus (test/hostile) at the
# decoder level. Fails on any crash, leak, invariant violation or unexpected
# fate. Needs clang-14, libclang-rt-14-dev and libjansson-dev (test/run.sh
# installs them); no PostgreSQL server. Crashing inputs are kept in
# test/fuzz/corpus-work/ of the tree the test runs in.
use strict;
use warnings;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $top = pp_top();
chdir $top or die "$top: $!";
my $work = "$ENV{TESTDIR}/fuzz";
make_path($work);
my $artifacts = 'test/fuzz/corpus-work';
make_path($artifacts);

my ($out, $err) = ('', '');
ok(IPC::Run::run([ 'make', '-s', 'fuzz' ], '>', \$out, '2>', \$err), 'the fuzzers build')
  or BAIL_OUT("make fuzz failed: $out$err");

# run_fuzzer(TARGET, WHAT, ARGS...): one assertion, with libFuzzer's summary
sub run_fuzzer
{
	my ($target, $what, @args) = @_;
	(my $tag = $what) =~ s/ .*//;
	my $log = "$work/$target-$tag.log";
	my $ok = IPC::Run::run([ "test/fuzz/fuzz_$target", '-timeout=10',
			"-artifact_prefix=$artifacts/smoke-$target-", @args ],
		'>', $log, '2>&1');
	my $text = slurp_file($log);
	my ($summary) = (grep { /^#[0-9]+/ } split /\n/, $text)[-1] // '';
	$summary = join ' ', (split ' ', $summary)[ 0 .. 11 ] if $summary;
	$summary ||= scalar(() = $text =~ /^Executed /mg) . ' inputs ran';
	ok($ok, "fuzz_$target $what") and note("fuzz_$target $what: $summary");
	diag(join("\n", (split /\n/, $text)[-40 .. -1])) unless $ok;
	return;
}

for my $target (qw(rules decode rest))
{
	my @inputs = grep { -f } glob("test/fuzz/corpus/$target/*"), glob("test/fuzz/regressions/$target/*");
	run_fuzzer($target, 'replay of ' . scalar(@inputs) . ' seeds and regressions', @inputs);

	make_path("$work/$target");
	IPC::Run::run([ 'sh', '-c', "cp test/fuzz/corpus/$target/* '$work/$target'/" ]) or die "copy $target corpus";
	run_fuzzer($target, '20 s', '-max_total_time=20', '-print_final_stats=1', "$work/$target");
}

($out, $err) = ('', '');
my $ok = IPC::Run::run([ 'bash', 'test/hostile/make.sh', "$work/hostile" ], '>', \$out, '2>', \$err)
  && IPC::Run::run([ 'test/fuzz/hostile_check', 'test/hostile/EXPECTED', 'test/hostile', "$work/hostile" ],
	'>', \$out, '2>', \$err);
my $last = (split /\n/, $out)[-1] // '';
ok($ok, 'hostile_check: every hostile message meets its expected fate at the decoder level')
  and note($last);
diag(join("\n", grep { !/^ok/ } split /\n/, $out) . $err) unless $ok;

done_testing();
