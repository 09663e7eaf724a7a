#!/usr/bin/env bash
# Retention deleted messages before the worker read them (the embedded
# broker keeps at most 5 MB per partition, like retention): the worker must
# record the gap in pinpipe.offset_gaps, pinpipe.status and the log, and go on
# from the earliest offset the broker still has. Nothing is skipped silently:
# rows + dead letters + lost = messages produced.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap pp_brokers_stop EXIT

pp_reset_pinpipe
pp_broker_start gap --partitions 1 --prefix gap || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix gap
printf '1\t{"index": 1, "title": "first"}\n' | kcat -b "$PP_BROKER" -P -t gap.pin -K $'\t'
pp_wait_for 30 "SELECT count(*) = 1 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))

pp_psql -d postgres -c "SELECT pinpipe.pause()" >/dev/null
pp_wait_for 10 "SELECT bool_and(state = 'paused') FROM pinpipe.status" || PP_FAILED=$((PP_FAILED + 1))
# 800 messages of about 10 kB: 8 MB into one partition, more than the broker keeps
desc=$(head -c 10000 /dev/zero | tr '\0' d)
for i in $(seq 2 801); do printf '%d\t{"index": %d, "description": "%s"}\n' "$i" "$i" "$desc"; done |
	kcat -b "$PP_BROKER" -P -t gap.pin -K $'\t' -X batch.num.messages=50
low=$(kcat -b "$PP_BROKER" -Q -t gap.pin:0:-2 | awk '{print $NF}')
echo "  the broker now starts partition 0 at offset $low"
[ "${low:-0}" -gt 1 ] || { echo "  FAILED: the broker did not trim the partition (low $low)"; PP_FAILED=$((PP_FAILED + 1)); }

pp_psql -d postgres -c "SELECT pinpipe.resume()" >/dev/null
pp_wait_for 60 "SELECT next_offset = 801 FROM pinpipe.offsets WHERE topic = 'gap.pin'" || PP_FAILED=$((PP_FAILED + 1))

pp_check "the gap is recorded with what was lost" \
	"SELECT count(*) = 1 AND bool_and(expected_offset = 1 AND resumed_offset = $low AND lost_messages = $low - 1
	        AND reason LIKE 'deleted by retention%') FROM pinpipe.offset_gaps WHERE topic = 'gap.pin'"
pp_check "rows + dead letters + lost = messages produced (801)" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.dead_letters)
	      + (SELECT sum(lost_messages) FROM pinpipe.offset_gaps) = 801"
pp_check "the rows after the gap are all there" \
	"SELECT count(*) = 801 - $low AND min(kafka_offset) = $low FROM pinpipe.pin_raw WHERE kafka_offset > 0"
pp_check "status reports the lost messages" \
	"SELECT lost_messages >= $low - 1 AND coalesce(last_error, previous_error) LIKE '%lost%' FROM pinpipe.status WHERE kind = 'pin'"
if grep -q "messages of gap.pin partition 0 were lost: deleted by retention" "$PP_WORK/server.log" 2>/dev/null ||
	grep -rq "messages of gap.pin partition 0 were lost" "${PP_PGDATA:-/nonexistent}/../server.log" 2>/dev/null; then
	echo "  ok: the server log has a WARNING about the gap"
else
	echo "  FAILED: no WARNING about the gap in the server log"
	PP_FAILED=$((PP_FAILED + 1))
fi
exit $((PP_FAILED > 0))
