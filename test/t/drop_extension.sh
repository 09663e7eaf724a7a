#!/usr/bin/env bash
# The extension changed under a running worker, while the emulator posts a
# stream: (1) ALTER EXTENSION pinpipe UPDATE (a test-only script that locks
# pinpipe.offsets first, as update scripts do, and alters two tables); (2)
# DROP and CREATE EXTENSION in one transaction; (3) DROP EXTENSION, messages
# posted while it is gone, then CREATE EXTENSION. The worker waits while the
# extension is gone, then starts afresh in the new tables: every message is
# stored exactly once, the same worker process throughout, no error in the
# log and no stale last_error.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
ext_dir=$("$PP_BIN/pg_config" --sharedir)/extension
script=
trap 'pp_brokers_stop; kill $emu 2>/dev/null; rm -f "$script"' EXIT
emu=

pp_reset_pinpipe
pp_broker_start dx --partitions 2 --prefix dx || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix dx pinpipe.batch_size 200
log_from=$(($(wc -c <"$PP_WORK/server.log") + 1))
pid=$(pp_worker_pid)
emulate() { # emulate SEED COUNT: post COUNT records (3 messages each) at 400 a second
	"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix dx --data data --synthetic --seed "$1" \
		--count "$2" --rate 400 --quiet 2>>"$PP_WORK/emulate-dx.log"
}
emulate 11 4000 &
emu=$!
pp_wait_for 60 "SELECT count(*) > 300 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))

# (1) an update under the worker
version=$(pp_psql -d postgres -c "SELECT extversion FROM pg_extension WHERE extname = 'pinpipe'")
script=$ext_dir/pinpipe--$version--$version-test.sql
cat >"$script" <<'SQL'
LOCK TABLE pinpipe.offsets IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE pinpipe.pin_clean ADD COLUMN test_note text;
ALTER TABLE pinpipe.geo_raw ADD COLUMN test_note text;
SELECT pg_sleep(1);
SQL
pp_psql -d postgres -c "ALTER EXTENSION pinpipe UPDATE TO '$version-test'" >/dev/null ||
	PP_FAILED=$((PP_FAILED + 1))
rows=$(pp_psql -d postgres -c "SELECT count(*) FROM pinpipe.pin_raw")
pp_wait_for 30 "SELECT count(*) > $rows FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))
pp_check "rows keep coming after ALTER EXTENSION UPDATE" "SELECT count(*) > $rows FROM pinpipe.pin_raw"

# (2) dropped and created again in one transaction: the worker never sees it missing
pp_psql -d postgres -1 -c "DROP EXTENSION pinpipe CASCADE" -c "CREATE EXTENSION pinpipe" ||
	PP_FAILED=$((PP_FAILED + 1))
wait $emu
pp_check_complete dx 12000 60
pp_check "no stale last_error after DROP and CREATE" "SELECT bool_and(last_error IS NULL) FROM pinpipe.status"

# (3) dropped, messages posted while it is gone, created again
pp_psql -d postgres -c "DROP EXTENSION pinpipe CASCADE" || PP_FAILED=$((PP_FAILED + 1))
for _ in $(seq 100); do
	tail -c +"$log_from" "$PP_WORK/server.log" | grep -q "waiting for CREATE EXTENSION pinpipe" && break
	sleep 0.2
done
emulate 12 500
pp_psql -d postgres -c "CREATE EXTENSION pinpipe" || PP_FAILED=$((PP_FAILED + 1))
pp_check_complete dx 13500 60
pp_check "no stale last_error after DROP, a wait, and CREATE" \
	"SELECT bool_and(last_error IS NULL) FROM pinpipe.status"
pp_check "the same worker process throughout" "SELECT pid = ${pid:-0} FROM pinpipe.status WHERE kind = 'pin'"

log=$(tail -c +"$log_from" "$PP_WORK/server.log")
for expected in "extension pinpipe was dropped and created again" "waiting for CREATE EXTENSION pinpipe"; do
	case "$log" in *"$expected"*) echo "  ok: the log says \"$expected\"" ;;
	*) echo "  FAILED: no \"$expected\" in the log"; PP_FAILED=$((PP_FAILED + 1)) ;; esac
done
# (log_line_prefix's %a is not printed for a background worker: find it by pid)
errors=$(grep -E "\[${pid:-0}\] (ERROR|FATAL|PANIC):" <<<"$log")
if [ -z "$errors" ]; then
	echo "  ok: the worker logged no error"
else
	echo "  FAILED: the worker logged errors:"; echo "$errors" | head -5; PP_FAILED=$((PP_FAILED + 1))
fi

exit $((PP_FAILED > 0))
