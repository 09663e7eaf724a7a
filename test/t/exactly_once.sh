#!/usr/bin/env bash
# Exactly once: while the emulator posts a stream, kill -9 the worker several
# times and stop PostgreSQL with -m immediate mid-stream. Afterwards every
# (partition, offset) is stored exactly once (as a row or a dead letter) and
# none is missing.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_brokers_stop; kill $emu 2>/dev/null' EXIT
emu=

pp_reset_pinpipe
pp_broker_start once --partitions 4 --prefix once || exit 1
# small batches: many transactions to interrupt
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix once pinpipe.batch_size 500
records=24000
"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix once --data data --synthetic --seed 7 \
	--count $records --rate 2000 --quiet 2>"$PP_WORK/emulate-once.log" &
emu=$!

sleep 2
kills=0
for i in 1 2 3 4; do
	pid=$(pp_worker_pid)
	if [ -n "$pid" ]; then
		kill -9 "$pid" && kills=$((kills + 1))
		echo "  killed worker pid $pid with SIGKILL"
	fi
	# the postmaster reinitializes after a child's crash; wait for the new worker
	pp_wait_for 60 "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'" || true
	sleep 1.5
done
echo "  stopping PostgreSQL with -m immediate mid-stream"
pp_as_server "$PP_BIN/pg_ctl" -D "$PP_PGDATA" -m immediate -w stop >/dev/null
sleep 1
pp_cluster_ctl start || { echo "  FAILED: server did not restart"; exit 1; }
pid=$(pp_worker_pid)
wait $emu
emu_rc=$?
emu=
echo "  emulator: $(tail -1 "$PP_WORK/emulate-once.log") (exit $emu_rc)"
[ "$emu_rc" = 0 ] || { echo "  FAILED: emulator failed"; PP_FAILED=1; }
[ "$kills" -ge 3 ] || { echo "  FAILED: only $kills kills happened"; PP_FAILED=1; }

pp_check_complete once $((records * 3))
pp_check "no dead letters from the synthetic stream" "SELECT count(*) = 0 FROM pinpipe.dead_letters"
pp_check "one clean row per record and kind" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = $records AND (SELECT count(*) FROM pinpipe.geo_clean) = $records
	    AND (SELECT count(*) FROM pinpipe.user_clean) = $records"
pp_check "the worker is running again after the crashes" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'"
pp_set pinpipe.batch_size 10000
exit $((PP_FAILED > 0))
