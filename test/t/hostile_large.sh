#!/usr/bin/env bash
# The hostile messages over 4 MB through the real path: 4.5 MB, 5 MB and
# 10 MB messages produced with kcat to the embedded broker and consumed by the
# worker. Over pinpipe.max_message_bytes each must become a dead letter (with
# its partition, offset, bytes and the size in the error); under a raised
# limit the 10 MB one must become a row. Never a crash, a stall or an
# unbounded memory spike, and the messages produced after them (and meanwhile)
# are all stored: every message exactly once, no gap.
#
# Where each big message goes matters, because of the broker: librdkafka
# 2.0.2's mock cluster keeps at most 5 MiB a partition, and when an append
# takes a partition over that it deletes the older message sets and, once the
# last of them is gone, moves the partition's start past the new one too.
# So a message set over 5 MiB survives only on an empty partition, and only
# until the next message is produced there (which then goes as well); a 4.5 MB
# one shares its partition with small ones as long as the partition stays
# under 5 MiB. Hence: the 4.5 MB message amid small ones on hostilebig.pin
# partition 0, and each message of 5 MB or more alone on a partition of its own
# (1, 2, 3) that receives nothing after it. test/t/offset_gap.sh covers what
# the worker does when the broker does delete unread messages.
#
# Last, a 150 MB message (on partition 4), over librdkafka's
# receive.message.max.bytes (100 MB): the consumer cannot fetch it, and says
# so; raising it in pinpipe.kafka_config must turn it into a dead letter.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
work=$(mktemp -d)
cleanup() {
	pp_psql -d postgres -c "ALTER SYSTEM RESET pinpipe.max_message_bytes" \
		-c "ALTER SYSTEM RESET pinpipe.kafka_config" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
	pp_brokers_stop
	rm -rf "$work"
}
trap cleanup EXIT
bash test/hostile/make.sh "$work" >/dev/null || exit 1
limit=1048576

pp_reset_pinpipe
pp_broker_start hostilebig --partitions 5 --prefix hostilebig --max-request-bytes 400000000 || exit 1
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix hostilebig
pp_wait_for 30 "SELECT bool_and(state = 'consuming') FROM pinpipe.status" || PP_FAILED=$((PP_FAILED + 1))
pid=$(pp_worker_pid)
hwm() { awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$1/status" 2>/dev/null; }
echo "  worker pid $pid, peak RSS so far $(hwm "$pid") MB"

total=0
# produce KIND PARTITION FILE: one message, the file's bytes
produce() {
	kcat -b "$PP_BROKER" -P -t "hostilebig.$1" -p "$2" -X message.max.bytes=200000000 "$3" || {
		echo "  FAILED: could not produce $3"; PP_FAILED=$((PP_FAILED + 1)); }
	total=$((total + 1))
}
# small KIND PARTITION FIRST COUNT: COUNT good messages, ind FIRST on
small() {
	local kind=$1 part=$2 first=$3 n=$4 key=ind
	[ "$kind" = pin ] && key=index
	seq "$first" $((first + n - 1)) | awk -v k="$key" '{ printf "%s\t{\"%s\": %s, \"title\": \"small\"}\n", $1, k, $1 }' |
		kcat -b "$PP_BROKER" -P -t "hostilebig.$kind" -p "$part" -K $'\t' || {
		echo "  FAILED: could not produce to hostilebig.$kind [$part]"; PP_FAILED=$((PP_FAILED + 1)); }
	total=$((total + n))
}
# the rest of the stream: 100 small messages on each partition that may take more
more() {
	small pin 0 "$1" 100
	for kind in geo user; do
		for part in 0 1 2 3; do small "$kind" "$part" $(($1 + part * 100)) 100; done
	done
}
# stored NAME KIND PARTITION OFFSET SECS: wait until the worker stored that offset
stored() {
	local t0=$SECONDS
	if pp_wait_for "$5" "SELECT coalesce(max(next_offset), 0) > $4 FROM pinpipe.offsets
	                     WHERE topic = 'hostilebig.$2' AND kafka_partition = $3"; then
		echo "  ok: $1 stored within $((SECONDS - t0)) s (hostilebig.$2 [$3] offset $4);" \
			"worker peak RSS $(hwm "$pid") MB"
	else
		echo "  FAILED: $1 not stored within $5 s (a stall?)"; PP_FAILED=$((PP_FAILED + 1))
	fi
}

# pin partition 0: 4.5 MB amid small messages (offsets 0-9 small, 10 big, 11-20 small)
small pin 0 100 10
produce pin 0 "$work/message_4_5mb"
small pin 0 110 10
stored "the 4.5 MB message" pin 0 20 60

# pin partition 1: 10 MB alone, with the stream going on elsewhere meanwhile
produce pin 1 "$work/message_10mb"
more 1000
stored "the 10 MB message" pin 1 0 60

# pin partition 2: 5 MiB (just over what the broker keeps with another message) alone
produce pin 2 "$work/huge_string_5mb"
more 2000
stored "the 5 MB message" pin 2 0 60

# pin partition 3: 10 MB again, under a raised limit: a row
pp_set pinpipe.max_message_bytes 16MB
sleep 2 # the worker reloads at its next turn (at most a batch timeout away)
produce pin 3 "$work/message_10mb"
more 3000
stored "the 10 MB message under a 16 MB limit" pin 3 0 60
pp_psql -d postgres -c "ALTER SYSTEM RESET pinpipe.max_message_bytes" -c "SELECT pg_reload_conf()" >/dev/null
peak=$(hwm "$pid")
# Under AddressSanitizer (bash test/run.sh --sanitize) every allocation has
# redzones and freed memory waits in a 256 MB quarantine: the bounds there
# are the plain run's plus that much again and the quarantine.
if [ -n "${PP_SANITIZE:-}" ]; then rss_bound() { echo $(($1 * 2 + 256)); }; else rss_bound() { echo "$1"; }; fi
bound=$(rss_bound 400)
if [ -n "$peak" ] && [ "$peak" -lt "$bound" ]; then echo "  ok: worker peak RSS $peak MB (under $bound MB)"; else
	echo "  FAILED: worker peak RSS ${peak:-?} MB"; PP_FAILED=$((PP_FAILED + 1)); fi

# pin partition 4: 150 MB, more than the consumer can receive until told
{ printf '{"index": 8, "title": "'; head -c 150000000 /dev/zero | tr '\0' x; printf '"}'; } >"$work/message_150mb"
produce pin 4 "$work/message_150mb"
rm -f "$work/message_150mb"
small pin 0 5000 10
if pp_wait_for 30 "SELECT bool_or(last_error LIKE '%increase receive.message.max.bytes%') FROM pinpipe.status"; then
	echo "  ok: status.last_error says the consumer cannot receive it"
else
	echo "  FAILED: no receive.message.max.bytes error in status"; PP_FAILED=$((PP_FAILED + 1))
fi
if grep -q "HINT:  Raise it in pinpipe.kafka_config" "$PP_WORK/server.log" 2>/dev/null; then
	echo "  ok: the server log says how to get past it"
else
	echo "  FAILED: no hint about receive.message.max.bytes in the server log"; PP_FAILED=$((PP_FAILED + 1))
fi
pp_set pinpipe.kafka_config receive.message.max.bytes=300000000
stored "the 150 MB message, with receive.message.max.bytes raised," pin 4 0 90
echo "  produced $total messages"

pp_check "4.5 MB: a dead letter at hostilebig.pin [0] offset 10, with its bytes" \
	"SELECT error_detail = 'message of 4718592 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 4718592 FROM pinpipe.dead_letters
	  WHERE topic = 'hostilebig.pin' AND kafka_partition = 0 AND kafka_offset = 10"
pp_check "10 MB: a dead letter at hostilebig.pin [1] offset 0, with its bytes" \
	"SELECT error_detail = 'message of 10485760 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 10485760 AND md5(payload) = '$(md5sum <"$work/message_10mb" | cut -c1-32)'
	   FROM pinpipe.dead_letters WHERE topic = 'hostilebig.pin' AND kafka_partition = 1 AND kafka_offset = 0"
pp_check "5 MB: a dead letter at hostilebig.pin [2] offset 0" \
	"SELECT error_detail = 'message of 5242880 bytes exceeds the limit of $limit bytes'
	   FROM pinpipe.dead_letters WHERE topic = 'hostilebig.pin' AND kafka_partition = 2 AND kafka_offset = 0"
pp_check "10 MB under a 16 MB limit: a row (raw and clean) at hostilebig.pin [3] offset 0" \
	"SELECT octet_length(r.description) = 10485760 - 50 AND r.category = 'art'
	        AND octet_length(c.description) = 10485760 - 50
	   FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r.\"index\"
	  WHERE r.kafka_partition = 3 AND r.kafka_offset = 0"
pp_check "150 MB: a dead letter at hostilebig.pin [4] offset 0, with its bytes" \
	"SELECT error_detail = 'message of 150000025 bytes exceeds the limit of $limit bytes'
	        AND octet_length(payload) = 150000025 FROM pinpipe.dead_letters
	  WHERE topic = 'hostilebig.pin' AND kafka_partition = 4 AND kafka_offset = 0"
pp_check "no other dead letter" "SELECT count(*) = 4 FROM pinpipe.dead_letters"
pp_check "nothing deleted by the broker before it was read" "SELECT count(*) = 0 FROM pinpipe.offset_gaps"
pp_check_complete hostilebig "$total"

# the same worker all along, and its memory bounded
now=$(pp_worker_pid)
if [ -n "$pid" ] && [ "$now" = "$pid" ]; then echo "  ok: the worker never restarted (pid $pid)"; else
	echo "  FAILED: the worker restarted (pid $pid, now ${now:-none})"; PP_FAILED=$((PP_FAILED + 1)); fi
peak=$(hwm "$pid")
bound=$(rss_bound 1200)
if [ -n "$peak" ] && [ "$peak" -lt "$bound" ]; then echo "  ok: worker peak RSS $peak MB after 150 MB (under $bound MB)"; else
	echo "  FAILED: worker peak RSS ${peak:-?} MB after 150 MB"; PP_FAILED=$((PP_FAILED + 1)); fi
exit $((PP_FAILED > 0))
