#!/usr/bin/env bash
# Faults survived, nothing lost: during streams from the emulator,
#  1. the broker goes down for 10 s and comes back, twice;
#  2. request errors are injected at random (Fetch, Metadata, ListOffsets,
#     OffsetCommit, FindCoordinator);
#  3. the worker is killed with SIGKILL 20 times at random points;
#  4. PostgreSQL is stopped with -m immediate mid-batch, three times.
# Each phase ends by checking that every produced message is in a raw table
# or dead_letters exactly once.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
emu=
trap 'kill $emu 2>/dev/null; pp_brokers_stop; pp_set pinpipe.batch_size 10000' EXIT

run_emulator() { # prefix records rate
	"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix "$1" --data data --synthetic --seed "$RANDOM" \
		--start-ind $((100000 + RANDOM * 10)) --count "$2" --rate "$3" --quiet 2>"$PP_WORK/emulate-$1.log" &
	emu=$!
}
finish_emulator() {
	wait $emu
	local rc=$?
	emu=
	echo "  emulator: $(tail -1 "$PP_WORK/emulate-$1.log")"
	[ $rc = 0 ] || { echo "  FAILED: the emulator lost messages"; PP_FAILED=$((PP_FAILED + 1)); }
}
phase() {
	echo "-- $*"
	pp_reset_pinpipe
}

phase "broker down for 10 s and back, twice, during a 100k-message stream"
pp_broker_start down --partitions 8 --prefix down || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix down pinpipe.batch_size 2000
run_emulator down 33334 4000
for i in 1 2; do
	sleep 2
	pp_broker_ctl "$PP_BROKER_CTL" down 1
	echo "  broker down at $(date +%T)"
	sleep 10
	pp_broker_ctl "$PP_BROKER_CTL" up 1
	echo "  broker up at $(date +%T)"
done
finish_emulator down
pp_check_complete down 100002
pp_check "the worker reported the outage" "SELECT count(*) > 0 FROM pinpipe.status WHERE coalesce(last_error, previous_error) IS NOT NULL"

phase "request errors injected at random"
pp_broker_start errs --partitions 8 --prefix errs || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix errs
run_emulator errs 20000 2500
apis=(Fetch Fetch Metadata ListOffsets OffsetCommit FindCoordinator)
errors=(NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT LEADER_NOT_AVAILABLE BROKER_NOT_AVAILABLE)
for i in $(seq 12); do
	api=${apis[RANDOM % ${#apis[@]}]}
	err=${errors[RANDOM % ${#errors[@]}]}
	pp_broker_ctl "$PP_BROKER_CTL" error "$api" $((1 + RANDOM % 5)) "$err"
	sleep 0.$((2 + RANDOM % 7))
done
finish_emulator errs
pp_check_complete errs 60000

phase "the worker killed with SIGKILL 20 times during ingestion"
pp_broker_start kill --partitions 8 --prefix kill || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix kill pinpipe.batch_size 1000
run_emulator kill 60000 1200
kills=0
for i in $(seq 20); do
	pp_wait_for 60 "SELECT count(*) > 0 FROM pinpipe.status WHERE state IN ('consuming', 'caught up') AND batches > 0" >/dev/null 2>&1 ||
		pp_wait_for 30 "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'"
	sleep 0.$((3 + RANDOM % 7))
	pid=$(pp_worker_pid)
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
done
echo "  $kills kills"
[ $kills -ge 18 ] || { echo "  FAILED: only $kills kills happened"; PP_FAILED=$((PP_FAILED + 1)); }
finish_emulator kill
pp_check_complete kill 180000 300

phase "PostgreSQL stopped with -m immediate mid-batch, three times"
pp_broker_start imm --partitions 8 --prefix imm || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix imm pinpipe.batch_size 2000
run_emulator imm 30000 2000
for i in 1 2 3; do
	sleep 2.$((RANDOM % 9))
	pp_as_server "$PP_BIN/pg_ctl" -D "$PP_PGDATA" -m immediate -w stop >/dev/null
	pp_cluster_ctl start || { echo "  FAILED: the server did not restart"; exit 1; }
	echo "  immediate stop and restart $i"
done
finish_emulator imm
pp_check_complete imm 90000 300
exit $((PP_FAILED > 0))
