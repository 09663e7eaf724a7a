# Style: every C file is clang-format clean (.clang-format), and the build is
# warning-free with -Wall -Wextra -Werror (the Makefile's flags; a warning
# fails the build). The build is a fresh one, in a scratch copy of the tree,
# so that every file is compiled (the checkout's objects are already built).
use strict;
use warnings;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $top = pp_top();
# the system's pg_config: the private server tree (test/run.sh) has no headers
my $pg_config = 'pg_config';
$pg_config = ($ENV{PP_BIN} =~ s/^\Q$ENV{PP_PRIVATE_ROOT}\E//r) . '/pg_config'
  if $ENV{PP_PRIVATE_ROOT} && $ENV{PP_BIN};

my ($out, $err) = ('', '');
ok(IPC::Run::run([ 'make', '-s', '-C', $top, 'format-check' ], '>', \$out, '2>', \$err),
	'clang-format clean')
  or diag("$out$err");

# a scratch copy of the sources, built from clean
my $build = "$ENV{TESTDIR}/build";
make_path($build);
IPC::Run::run([ 'tar', '-C', $top, '--exclude=./tmp_check', '--exclude=./test/fuzz/corpus-work', '-cf', '-', '.' ],
	'|', [ 'tar', '-C', $build, '-xf', '-' ])
  or BAIL_OUT('could not copy the tree');
IPC::Run::run([ 'make', '-s', '-C', $build, "PG_CONFIG=$pg_config", 'clean' ], '>', \$out, '2>', \$err)
  or BAIL_OUT("make clean failed: $err");
($out, $err) = ('', '');
my $built = IPC::Run::run([ 'make', '-C', $build, '-j2', "PG_CONFIG=$pg_config" ], '>', \$out, '2>&1');
# every gcc invocation (the 10 objects, the library, the 2 tools) carries
# -Werror; PGXS's clang lines only emit JIT bitcode
my @compiles = grep { /^gcc\s/ } split /\n/, $out;
my @without = grep { !/\s-Werror(?:\s|$)/ } @compiles;
ok($built && @compiles >= 13 && !@without && -f "$build/pinpipe.so" && -x "$build/src/bin/pinpipe-broker",
	'builds with -Werror')
  or diag("build " . ($built ? 'succeeded' : 'failed') . ", " . scalar(@compiles)
	  . " compiler invocations, without -Werror: @without\n$out");

done_testing();
