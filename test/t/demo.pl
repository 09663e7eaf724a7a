# The README's demo command runs to completion (short mode) and its output
# contains the ingestion progress and the cleaned row counts. Run here as the
# server user, the demo uses the server tree test/run.sh installed pinpipe
# into (PP_PRIVATE_ROOT, PP_BIN) and builds and installs nothing.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

chdir pp_top();
# the demo's cluster and broker files under this test's directory
local $ENV{TMPDIR} = PostgreSQL::Test::Utils::tempdir('demo');
my $out = '';
my $ok = IPC::Run::run([ 'bash', 'test/demo.sh', '--short' ], '<', \'', '>&', \$out);
ok($ok, 'demo exited 0') or diag('exit status ' . ($? >> 8));
like($out, qr/seconds +messages +rows +lag +dead_letters/, 'progress table shown');
like($out, qr/^ +[0-9]+ +900 +900 +0 +0$/m, 'all 900 messages consumed, lag 0');
like($out, qr/pinpipe-emulate: 300 records; delivered pinterest\.pin 300/, 'emulator summary');
like($out, qr/^pin_clean \| [0-9]+$/m, 'cleaned counts printed');
like($out, qr/^pin_raw \| 300$/m, 'raw counts printed');
like($out, qr/^dead_letters \| 0$/m, 'no dead letters');
like($out, qr{^open http://127\.0\.0\.1:[0-9]+/ }m, "the dashboard's URL printed");
unlike($out, qr/installing packages and building pinpipe/, 'the demo built and installed nothing');
show_tail($out);

# The original architecture: producer -> HTTP (pinpipe-rest) -> Kafka -> worker
$out = '';
$ok = IPC::Run::run([ 'bash', 'test/demo.sh', '--rest', '--short' ], '<', \'', '>&', \$out);
ok($ok, 'demo --rest exited 0') or diag('exit status ' . ($? >> 8));
like($out, qr{^invoke URL: http://127\.0\.0\.1:[0-9]+/dev }m, 'demo --rest: the invoke URL printed');
like($out, qr/^ +[0-9]+ +900 +900 +0 +0$/m, 'demo --rest: all 900 messages consumed through HTTP, lag 0');
like($out, qr/^pin_raw \| 300$/m, 'demo --rest: raw counts printed');
like($out, qr/^dead_letters \| 0$/m, 'demo --rest: no dead letters');
show_tail($out);

sub show_tail
{
	my ($text) = @_;
	return if Test::More->builder->is_passing;
	my @lines = split /\n/, $text;
	diag(join("\n", @lines > 40 ? @lines[ -40 .. -1 ] : @lines));
	return;
}

done_testing();
