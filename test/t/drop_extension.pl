# The extension changed under a running worker, while the emulator posts a
# stream: (1) ALTER EXTENSION pinpipe UPDATE (a test-only script that locks
# pinpipe.offsets first, as update scripts do, and alters two tables); (2)
# DROP and CREATE EXTENSION in one transaction; (3) DROP EXTENSION, messages
# posted while it is gone, then CREATE EXTENSION. The worker waits while the
# extension is gone, then starts afresh in the new tables: every message is
# stored exactly once, the same worker process throughout, no error in the
# log and no stale last_error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PinPipe::Test;

my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => 'dx');
my $node = pp_node('dx', brokers => $broker->bootstrap, prefix => 'dx', conf => 'pinpipe.batch_size = 200');
my $log_from = -s $node->logfile;
my $pid = pp_worker_pid($node);
ok($pid, 'a worker runs');

# post COUNT records (3 messages each) at 400 a second
sub emulate
{
	my ($seed, $count) = @_;
	return IPC::Run::start(
		[
			pp_tool('pinpipe-emulate'), '--brokers', $broker->bootstrap, '--prefix', 'dx',
			'--data', pp_top() . '/data', '--synthetic', '--seed', $seed,
			'--count', $count, '--rate', 400, '--quiet'
		],
		'>', \my $out, '2>', \my $err);
}
my $emu = emulate(11, 4000);
pp_wait_for($node, 'SELECT count(*) > 300 FROM pinpipe.pin_raw', 60);

# (1) an update under the worker, to a test-only version
my $version = $node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pinpipe'");
my $ext_dir = pp_run("$ENV{PP_BIN}/pg_config", '--sharedir');
chomp $ext_dir;
my $script = "$ext_dir/extension/pinpipe--$version--$version-test.sql";
open my $fh, '>', $script or die "$script: $!";
print $fh <<'SQL';
LOCK TABLE pinpipe.offsets IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE pinpipe.pin_clean ADD COLUMN test_note text;
ALTER TABLE pinpipe.geo_raw ADD COLUMN test_note text;
SELECT pg_sleep(1);
SQL
close $fh;
END { unlink $script if $script; }
$node->safe_psql('postgres', "ALTER EXTENSION pinpipe UPDATE TO '$version-test'");
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM pinpipe.pin_raw');
pp_wait_for($node, "SELECT count(*) > $rows FROM pinpipe.pin_raw", 30);
pp_check($node, 'rows keep coming after ALTER EXTENSION UPDATE', "SELECT count(*) > $rows FROM pinpipe.pin_raw");

# (2) dropped and created again in one transaction: the worker never sees it missing
$node->safe_psql('postgres', 'BEGIN; DROP EXTENSION pinpipe CASCADE; CREATE EXTENSION pinpipe; COMMIT;');
ok($emu->finish, 'the emulator posted 4000 records');
pp_check_complete($node, 'dx', 12000, 60);
pp_check($node, 'no stale last_error after DROP and CREATE', 'SELECT bool_and(last_error IS NULL) FROM pinpipe.status');

# (3) dropped, messages posted while it is gone, created again
$node->safe_psql('postgres', 'DROP EXTENSION pinpipe CASCADE');
$node->wait_for_log(qr/waiting for CREATE EXTENSION pinpipe/, $log_from);
ok(emulate(12, 500)->finish, 'the emulator posted 500 records while the extension was gone');
$node->safe_psql('postgres', 'CREATE EXTENSION pinpipe');
pp_check_complete($node, 'dx', 13500, 60);
pp_check($node, 'no stale last_error after DROP, a wait, and CREATE',
	'SELECT bool_and(last_error IS NULL) FROM pinpipe.status');
pp_check($node, 'the same worker process throughout', "SELECT pid = $pid FROM pinpipe.status WHERE kind = 'pin'");

my $log = substr(slurp_file($node->logfile), $log_from);
for my $expected ('extension pinpipe was dropped and created again', 'waiting for CREATE EXTENSION pinpipe')
{
	like($log, qr/\Q$expected\E/, "the log says \"$expected\"");
}
# (log_line_prefix's %a is not printed for a background worker: find it by pid)
my @errors = grep { /\[$pid\] (ERROR|FATAL|PANIC):/ } split /\n/, $log;
is(scalar(@errors), 0, 'the worker logged no error') or diag(join("\n", @errors[0 .. min(4, $#errors)]));
sub min { return $_[0] < $_[1] ? $_[0] : $_[1]; }

done_testing();
