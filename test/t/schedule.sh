#!/usr/bin/env bash
# pinpipe.refresh() on a schedule, for real: pg_cron (postgresql-15-cron) is
# preloaded in the test cluster (test/lib.sh). Without its extension
# schedule_refresh() fails with a clear error and hint; with it, the job is
# registered, rescheduled in place, run by pg_cron (a job every minute
# repairs caches that drifted while triggers were bypassed), and removed.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
cleanup() {
	psql -X -q -d postgres -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null 2>&1
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS pinpipe_schedule_other" >/dev/null 2>&1
}
trap cleanup EXIT

pp_reset_pinpipe
pp_psql -d postgres -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null

# Run SQL, expect an error: prints "SQLSTATE|message|hint".
error_of() {
	psql -X -q -At -d "${2:-postgres}" -v VERBOSITY=verbose -c "$1" 2>&1 |
		awk '/^ERROR:/ {sub(/^ERROR: +/, ""); state = substr($0, 1, 5); msg = substr($0, 8)}
		     /^HINT:/ {sub(/^HINT: +/, ""); hint = $0}
		     END {print state "|" msg "|" hint}'
}
expect() {
	local desc=$1 got=$2 want=$3
	if [[ $got == $want ]]; then echo "  ok: $desc"; else
		echo "  FAILED: $desc (got: $got)"; PP_FAILED=$((PP_FAILED + 1)); fi
}

got=$(error_of "SELECT pinpipe.schedule_refresh()")
expect "without the pg_cron extension: error 55000 with a hint to create it" "$got" \
	"55000|the pg_cron extension is not created in this database|Run CREATE EXTENSION pg_cron*"
pp_check "unschedule_refresh() without pg_cron is false, not an error" "SELECT NOT pinpipe.unschedule_refresh()"

# pinpipe in a database other than cron.database_name: the hint says where to schedule it
pp_psql -d postgres -c "CREATE DATABASE pinpipe_schedule_other" >/dev/null
pp_psql -d pinpipe_schedule_other -c "CREATE EXTENSION pinpipe" >/dev/null
got=$(error_of "SELECT pinpipe.schedule_refresh('@hourly')" pinpipe_schedule_other)
expect "from another database: error 55000 naming cron.schedule_in_database" "$got" \
	"55000|pg_cron runs in database \"postgres\", not in \"pinpipe_schedule_other\"|In database postgres, run SELECT cron.schedule_in_database('pinpipe-refresh', '@hourly', 'SELECT pinpipe.refresh()', 'pinpipe_schedule_other')."

pp_psql -d postgres -c "CREATE EXTENSION pg_cron" >/dev/null
job=$(pp_psql -d postgres -c "SELECT pinpipe.schedule_refresh()")
pp_check "schedule_refresh() registers pinpipe.refresh() @daily in this database" \
	"SELECT count(*) = 1 FROM cron.job WHERE jobid = $job AND jobname = 'pinpipe-refresh' AND schedule = '@daily'
	    AND command = 'SELECT pinpipe.refresh()' AND database = 'postgres' AND active"
job2=$(pp_psql -d postgres -c "SELECT pinpipe.schedule_refresh('* * * * *')")
pp_check "calling it again changes the schedule of the same job" \
	"SELECT $job2 = $job AND (SELECT count(*) FROM cron.job) = 1
	    AND (SELECT schedule FROM cron.job WHERE jobid = $job) = '* * * * *'"
got=$(error_of "SELECT pinpipe.schedule_refresh('every day')")
expect "an invalid schedule is pg_cron's error" "$got" "*|invalid schedule: every day|"

# Drift the caches behind the triggers' back; the cron job must repair them.
pp_psql -d postgres >/dev/null <<'SQL'
\set QUIET on
\i test/load_sample.sql
SELECT pinpipe.reclean();
SET session_replication_role = replica;
DELETE FROM pinpipe.pin_clean WHERE ind % 2 = 0;
RESET session_replication_role;
SQL
pp_check "the caches drifted" "SELECT NOT bool_and(matches) FROM pinpipe.analytics_check()"
echo "  (waiting up to 90 s for pg_cron's next minute)"
pp_wait_for 90 "SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $job AND status IN ('succeeded', 'failed'))" ||
	PP_FAILED=$((PP_FAILED + 1))
pp_check "pg_cron ran the job and it succeeded" \
	"SELECT bool_and(status = 'succeeded') AND count(*) >= 1 FROM cron.job_run_details WHERE jobid = $job"
pp_check "the run was pinpipe.refresh(): logged, with corrections" \
	"SELECT count(*) >= 1 AND bool_or(corrected_rows > 0) FROM pinpipe.analytics_refreshes"
pp_check "after it, every function equals its plain-SQL definition" "SELECT bool_and(matches) FROM pinpipe.analytics_check()"

pp_check "unschedule_refresh() removes the job" "SELECT pinpipe.unschedule_refresh()"
pp_check "no job left" "SELECT NOT EXISTS (SELECT FROM cron.job)"
pp_check "unschedule_refresh() again is false" "SELECT NOT pinpipe.unschedule_refresh()"

exit $((PP_FAILED > 0))
