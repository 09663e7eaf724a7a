# pinpipe.refresh() on a schedule, for real: pg_cron (postgresql-15-cron) is
# preloaded in the node (pp_node). Without its extension schedule_refresh()
# fails with a clear error and hint; with it, the job is registered,
# rescheduled in place, run by pg_cron (a job every minute repairs caches
# that drifted while triggers were bypassed), and removed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

chdir pp_top();    # test/load_sample.sql reads data/*.jsonl relative to the top
# pg_cron runs its jobs in background workers: the node listens on a Unix
# socket only, where pg_cron's default libpq connection to localhost fails.
my $node = pp_node('schedule', conf => 'cron.use_background_workers = on');

# Run SQL, expect an error: "SQLSTATE|message|hint".
sub error_of
{
	my ($sql, $db) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql($db // 'postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	my ($state, $msg, $hint) = ('', '', '');
	($state, $msg) = ($1, $2) if $stderr =~ /^(?:psql:[^ ]* )?ERROR:\s+([0-9A-Z]{5}): (.*)$/m;
	$hint = $1 if $stderr =~ /^HINT:\s+(.*)$/m;
	return "$state|$msg|$hint";
}

like(
	error_of('SELECT pinpipe.schedule_refresh()'),
	qr/^\Q55000|the pg_cron extension is not created in this database|Run CREATE EXTENSION pg_cron\E/,
	'without the pg_cron extension: error 55000 with a hint to create it');
pp_check($node, 'unschedule_refresh() without pg_cron is false, not an error',
	'SELECT NOT pinpipe.unschedule_refresh()');

# pinpipe in a database other than cron.database_name: the hint says where to schedule it
$node->safe_psql('postgres', 'CREATE DATABASE pinpipe_schedule_other');
$node->safe_psql('pinpipe_schedule_other', 'CREATE EXTENSION pinpipe');
is( error_of("SELECT pinpipe.schedule_refresh('\@hourly')", 'pinpipe_schedule_other'),
	q{55000|pg_cron runs in database "postgres", not in "pinpipe_schedule_other"|}
	  . q{In database postgres, run SELECT cron.schedule_in_database('pinpipe-refresh', '@hourly', }
	  . q{'SELECT pinpipe.refresh()', 'pinpipe_schedule_other').},
	'from another database: error 55000 naming cron.schedule_in_database');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
my $job = $node->safe_psql('postgres', 'SELECT pinpipe.schedule_refresh()');
pp_check($node, 'schedule_refresh() registers pinpipe.refresh() @daily in this database',
	"SELECT count(*) = 1 FROM cron.job WHERE jobid = $job AND jobname = 'pinpipe-refresh' AND schedule = '\@daily'
	    AND command = 'SELECT pinpipe.refresh()' AND database = 'postgres' AND active");
my $job2 = $node->safe_psql('postgres', "SELECT pinpipe.schedule_refresh('* * * * *')");
pp_check($node, 'calling it again changes the schedule of the same job',
	"SELECT $job2 = $job AND (SELECT count(*) FROM cron.job) = 1
	    AND (SELECT schedule FROM cron.job WHERE jobid = $job) = '* * * * *'");
like(error_of("SELECT pinpipe.schedule_refresh('every day')"),
	qr/^[^|]*\|invalid schedule: every day\|$/, "an invalid schedule is pg_cron's error");

# Drift the caches behind the triggers' back; the cron job must repair them.
# A run may start between the drift and the moment taken after it, and
# repair it: its correction is looked for from a moment taken before.
my $before_drift = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->safe_psql(
	'postgres', q{
\set QUIET on
\i test/load_sample.sql
SELECT pinpipe.reclean();
SET session_replication_role = replica;
DELETE FROM pinpipe.pin_clean WHERE ind % 2 = 0;
RESET session_replication_role;
});
pp_check($node, 'the caches drifted', 'SELECT NOT bool_and(matches) FROM pinpipe.analytics_check()');
# The job runs every minute from its scheduling on: wait for a run that
# started after the drift (a slow load, as under the sanitizers, can take
# longer than the rest of a minute, and a run during it repairs nothing of
# the drift that follows).
my $drifted_at = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
note("waiting up to 120 s for a run of the job after the drift");
pp_wait_for($node,
	"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $job AND start_time > '$drifted_at'
	                   AND status IN ('succeeded', 'failed'))",
	120);
pp_check($node, 'pg_cron ran the job and it succeeded',
	"SELECT bool_and(status = 'succeeded') AND count(*) >= 1 FROM cron.job_run_details WHERE jobid = $job");
pp_check($node, 'the run was pinpipe.refresh(): logged, with corrections',
	"SELECT count(*) >= 1 AND bool_or(corrected_rows > 0) FROM pinpipe.analytics_refreshes
	  WHERE refreshed_at > '$before_drift'");
pp_check($node, 'after it, every function equals its plain-SQL definition',
	'SELECT bool_and(matches) FROM pinpipe.analytics_check()');

pp_check($node, 'unschedule_refresh() removes the job', 'SELECT pinpipe.unschedule_refresh()');
pp_check($node, 'no job left', 'SELECT NOT EXISTS (SELECT FROM cron.job)');
pp_check($node, 'unschedule_refresh() again is false', 'SELECT NOT pinpipe.unschedule_refresh()');

done_testing();
