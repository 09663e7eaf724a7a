#!/usr/bin/env bash
# Topics change under the running worker: it notices, says so clearly, and
# stores every message exactly once (as a raw row or a dead letter).
#
# The embedded broker (librdkafka 2.0.2's mock cluster) can neither add
# partitions to a topic nor delete one, so the test shows the worker what a
# client of a real broker sees:
#  1. partitions added: the broker is replaced, on the same port (--port), by
#     one with twice the partitions, holding the same messages at the same
#     offsets in the old partitions (produced again, as a real broker would
#     have kept them) and new messages in all of them. The worker is paused
#     during the swap only, so it never sees the moment the replacement is
#     still empty, which a real broker never is. With start_offset = latest:
#     the new partitions' messages must not be skipped.
#  2. a topic deleted and back: the broker reports it as unknown
#     (topic-error UNKNOWN_TOPIC_OR_PART) for 15 s, then as before.
#  3. topics recreated empty: the broker is replaced by one with empty topics;
#     the stored offsets are beyond their end.
# The broker reports the same cluster id on every start (--stable-cluster-id):
# a replaced broker is the same cluster to the worker, as a real broker whose
# topics changed is (sources.pl tests a restart as a new cluster).
# The worker process is the same throughout (no crash, no restart loop).
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_brokers_stop; pp_set pinpipe.start_offset earliest' EXIT

# below the ephemeral range (32768-), so no client or random-port broker takes it between brokers
port=$(pp_free_port $((20000 + RANDOM % 10000)))
log=$PP_WORK/server.log

# produce PREFIX PARTITION FIRST LAST [LABEL] [KINDS]: messages with inds
# FIRST..LAST into partition PARTITION of PREFIX.pin, .geo and .user (or
# KINDS); LABEL is the pin's title, the geo's country and the user's first name.
produce() {
	local kind fmt
	for kind in ${6:-pin geo user}; do
		case $kind in
		pin) fmt='{"index": %d, "title": "%s"}' ;;
		geo) fmt='{"ind": %d, "country": "%s"}' ;;
		user) fmt='{"ind": %d, "first_name": "%s"}' ;;
		esac
		for i in $(seq "$3" "$4"); do
			printf "%d\t$fmt\n" "$i" "$i" "${5:-m$i}"
		done | kcat -b "127.0.0.1:$port" -P -t "$1.$kind" -p "$2" -K $'\t' ||
			{ echo "  FAILED: kcat could not produce to $1.$kind [$2]"; PP_FAILED=$((PP_FAILED + 1)); }
	done
}
# Lines of the server log written since the test started.
log_start=$(wc -l <"$log")
new_log() { tail -n "+$((log_start + 1))" "$log"; }
check_log() { # description fixed-string [seconds to wait for it]
	local deadline=$((SECONDS + ${3:-0}))
	while ! new_log | grep -qF -- "$2" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
	if new_log | grep -qF -- "$2"; then
		echo "  ok: the server log says: $2"
	else
		echo "  FAILED: $1: no \"$2\" in the server log"
		PP_FAILED=$((PP_FAILED + 1))
	fi
}
stop_broker() {
	kill "$PP_BROKER_PID" && wait "$PP_BROKER_PID"
}
check_same_worker() {
	local now
	now=$(pp_worker_pid)
	if [ -n "$worker" ] && [ "$now" = "$worker" ]; then
		echo "  ok: the same worker process ($worker) throughout"
	else
		echo "  FAILED: the worker restarted ($worker, now $now)"
		PP_FAILED=$((PP_FAILED + 1))
	fi
}

echo "-- partitions added: 3 to 6 per topic, start_offset = latest"
pp_reset_pinpipe
pp_broker_start grow1 --port "$port" --stable-cluster-id --partitions 3 --prefix grow || exit 1
pp_set pinpipe.brokers "127.0.0.1:$port" pinpipe.topic_prefix grow
for p in 0 1 2; do produce grow "$p" $((p * 1000 + 1)) $((p * 1000 + 20)); done
pp_check_complete grow 180 60
worker=$(pp_worker_pid)
# latest: the new partitions have no stored offset, and must start at their beginning anyway
pp_set pinpipe.start_offset latest
pp_psql -c "SELECT pinpipe.pause()" >/dev/null
pp_wait_for 10 "SELECT bool_and(state = 'paused') FROM pinpipe.status" || PP_FAILED=$((PP_FAILED + 1))
stop_broker
pp_broker_start grow2 --port "$port" --stable-cluster-id --partitions 6 --prefix grow || exit 1
for p in 0 1 2; do produce grow "$p" $((p * 1000 + 1)) $((p * 1000 + 20)); done # as before
for p in 0 1 2 3 4 5; do produce grow "$p" $((p * 1000 + 21)) $((p * 1000 + 30)); done
pp_psql -c "SELECT pinpipe.resume()" >/dev/null
pp_wait_for 30 "SELECT count(*) = 18 FROM pinpipe.partition_lag WHERE topic LIKE 'grow.%'" ||
	PP_FAILED=$((PP_FAILED + 1))
for p in 0 1 2 3 4 5; do produce grow "$p" $((p * 1000 + 31)) $((p * 1000 + 35)); done # while running
pp_check_complete grow $((180 + 180 + 90)) 60
pp_check "partition_lag shows 6 partitions per topic, all consumed" \
	"SELECT count(*) = 18 AND bool_and(lag = 0) FROM pinpipe.partition_lag WHERE topic LIKE 'grow.%'"
pp_check "no dead letters, no gaps" \
	"SELECT NOT EXISTS (SELECT FROM pinpipe.dead_letters) AND NOT EXISTS (SELECT FROM pinpipe.offset_gaps)"
pp_check "the re-produced messages were not stored twice (each ind once per table)" \
	"SELECT count(DISTINCT index) = count(*) AND count(*) = 150 FROM pinpipe.pin_raw"
check_log "the new partitions were noticed" 'topic "grow.pin" now has 6 partitions (it had 3)'
check_log "the new partitions started at their beginning" \
	'grow.pin partition 5 has no stored offset, starting at the earliest offset (the partition appeared while the worker ran)'
check_same_worker
pp_set pinpipe.start_offset earliest
stop_broker

echo "-- a topic deleted for 15 s, then back"
pp_reset_pinpipe
log_start=$(wc -l <"$log")
pp_broker_start del1 --port "$port" --stable-cluster-id --partitions 2 --prefix del || exit 1
pp_set pinpipe.brokers "127.0.0.1:$port" pinpipe.topic_prefix del
for p in 0 1; do produce del "$p" $((p * 1000 + 1)) $((p * 1000 + 20)); done
pp_check_complete del 120 60
worker=$(pp_worker_pid)
pp_broker_ctl "$PP_BROKER_CTL" topic-error del.geo UNKNOWN_TOPIC_OR_PART
pp_wait_for 30 "SELECT bool_or(last_error LIKE '%del.geo%does not exist%') FROM pinpipe.status" ||
	PP_FAILED=$((PP_FAILED + 1))
# the other topics go on meanwhile
for p in 0 1; do produce del "$p" $((p * 1000 + 21)) $((p * 1000 + 30)) "" "pin user"; done
pp_wait_for 30 "SELECT sum(next_offset) = 120 FROM pinpipe.offsets WHERE topic IN ('del.pin', 'del.user')" ||
	PP_FAILED=$((PP_FAILED + 1))
pp_check "status says the topic does not exist" \
	"SELECT bool_or(last_error LIKE '%del.geo%does not exist%') FROM pinpipe.status"
sleep 8 # the missing topic for 15 s in all
kafka_errors=$(new_log | grep -c 'Kafka error: del.geo')
if [ "$kafka_errors" -le 4 ]; then
	echo "  ok: $kafka_errors librdkafka error lines about del.geo in 15 s (rate limited)"
else
	echo "  FAILED: $kafka_errors librdkafka error lines about del.geo in 15 s"
	PP_FAILED=$((PP_FAILED + 1))
fi
pp_broker_ctl "$PP_BROKER_CTL" topic-error del.geo clear
for _ in $(seq 50); do # the broker applies a command within a second
	kcat -b "127.0.0.1:$port" -L -t del.geo 2>/dev/null | grep -q '"del.geo" with 2 partitions' && break
	sleep 0.2
done
for p in 0 1; do produce del "$p" $((p * 1000 + 21)) $((p * 1000 + 30)) "" geo; done
pp_check_complete del 180 60
check_log "the missing topic was reported" 'topic "del.geo" does not exist'
check_log "with what to do" 'HINT:  Create the topic, or correct pinpipe.topic_prefix.'
check_log "its return was reported" 'topic "del.geo" is available (2 partitions)' 20
check_same_worker

echo "-- topics deleted and recreated empty (stored offsets beyond their end)"
stop_broker
pp_broker_start del2 --port "$port" --stable-cluster-id --partitions 2 --prefix del || exit 1
pp_wait_for 60 "SELECT count(*) = 6 FROM pinpipe.offset_gaps WHERE topic LIKE 'del.%'" || PP_FAILED=$((PP_FAILED + 1))
pp_check "each partition's gap is recorded as a recreated topic, resumed at 0" \
	"SELECT bool_and(resumed_offset = 0 AND expected_offset = 30 AND lost_messages = 0
	                 AND reason LIKE '%recreated%') FROM pinpipe.offset_gaps"
pp_check "status says so" "SELECT bool_or(last_error LIKE '%before the stored offset%recreated%') FROM pinpipe.status"
# the first partition found past its end begins the topic's new source (for all its partitions)
if new_log | grep -qE 'WARNING:  pinpipe worker 0: del\.geo partition [01] ends at offset 0, before the stored offset 30'; then
	echo "  ok: the server log has the WARNING for del.geo"
else
	echo "  FAILED: the WARNING: no \"del.geo partition N ends at offset 0, before the stored offset 30\" in the server log"
	PP_FAILED=$((PP_FAILED + 1))
fi
check_log "its hint" 'stored under a new source'
pp_check "a new source per topic, topic recreated" \
	"SELECT count(*) = 3 FROM pinpipe.sources WHERE topic LIKE 'del.%' AND reason = 'topic recreated'"
# 40 new messages per partition: offsets 0-29 of the old topic are stored already, in its old source
for p in 0 1; do produce del "$p" $((p * 1000 + 501)) $((p * 1000 + 540)) recreated; done
pp_wait_for 60 "SELECT sum(next_offset) = 240 FROM pinpipe.offsets o JOIN pinpipe.sources s ON s.id = o.source
                 WHERE o.topic LIKE 'del.%' AND s.reason = 'topic recreated'" || PP_FAILED=$((PP_FAILED + 1))
pp_check "every new message is stored once, as a row of the new source (no dead letters)" \
	"WITH new AS (
	     SELECT 'pin' AS t, kafka_partition, kafka_offset FROM pinpipe.pin_raw WHERE title = 'recreated'
	     UNION ALL SELECT 'geo', kafka_partition, kafka_offset FROM pinpipe.geo_raw WHERE country = 'recreated'
	     UNION ALL SELECT 'user', kafka_partition, kafka_offset FROM pinpipe.user_raw WHERE first_name = 'recreated'
	     UNION ALL SELECT split_part(topic, '.', 2), kafka_partition, kafka_offset FROM pinpipe.dead_letters
	      WHERE error LIKE '%duplicate key%' AND convert_from(payload, 'UTF8') LIKE '%recreated%')
	 SELECT count(*) = 240 AND count(DISTINCT (t, kafka_partition, kafka_offset)) = 240
	        AND min(kafka_offset) = 0 AND max(kafka_offset) = 39
	        AND NOT EXISTS (SELECT FROM pinpipe.dead_letters) FROM new"
pp_check "the old rows are untouched" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw WHERE title <> 'recreated') = 60
	    AND (SELECT count(*) FROM pinpipe.geo_raw WHERE country <> 'recreated') = 60
	    AND (SELECT count(*) FROM pinpipe.user_raw WHERE first_name <> 'recreated') = 60"
check_same_worker
exit $((PP_FAILED > 0))
