#!/usr/bin/env bash
# The hostile corpus through the real path: every message of test/hostile
# (and the big ones test/hostile/make.sh writes, up to 4 MB; the bigger ones
# are test/t/hostile_large.sh's) is produced with kcat, one message each, and
# consumed by the worker. Each must become the row or the dead letter
# test/hostile/EXPECTED says, never a crash or a stall. The empty messages are
# sent as a key with a zero-length value, and a tombstone (a null value, kcat
# -Z) is sent to each topic too: each must be a dead letter, the empty ones
# with an empty payload, the tombstones with a NULL one.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
work=$(mktemp -d)
trap 'pp_brokers_stop; rm -rf "$work"' EXIT
bash test/hostile/make.sh "$work" >/dev/null || exit 1

pp_reset_pinpipe
pp_broker_start hostile --partitions 1 --prefix hostile || exit 1
# the worker consumes while the messages arrive: the broker keeps only 5 MB a
# partition, so each big message is consumed before the next is produced
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix hostile
declare -A next=([pin]=0 [geo]=0 [user]=0)
: >"$work/plan"
skipped=0
while read -r name kind fate; do
	case "$name" in "" | \#*) continue ;; esac
	f=test/hostile/$name
	[ -f "$f" ] || f=$work/$name
	if [ "$(stat -c %s "$f")" -gt 4000000 ]; then
		echo "  skipped: $name (over 4 MB: test/t/hostile_large.sh sends it, on a partition of its own)"
		skipped=$((skipped + 1))
		continue
	fi
	if [ ! -s "$f" ]; then
		# kcat skips empty input, but sends "key<TAB>" as a zero-length value (without -Z)
		printf 'empty\t\n' | kcat -b "$PP_BROKER" -P -t "hostile.$kind" -p 0 -K $'\t'
	else
		kcat -b "$PP_BROKER" -P -t "hostile.$kind" -p 0 -X message.max.bytes=20000000 "$f"
	fi || { echo "  FAILED: could not produce $name"; PP_FAILED=$((PP_FAILED + 1)); continue; }
	printf '%s %s %s %s\n' "$kind" "${next[$kind]}" "$name" "$fate" >>"$work/plan"
	next[$kind]=$((next[$kind] + 1))
	if [ "$(stat -c %s "$f")" -gt 500000 ]; then
		pp_wait_for 60 "SELECT next_offset = ${next[$kind]} FROM pinpipe.offsets WHERE topic = 'hostile.$kind'" ||
			PP_FAILED=$((PP_FAILED + 1))
	fi
done <test/hostile/EXPECTED
# a tombstone (null value) to each topic: kcat -Z sends "key<TAB>" as a null value
for kind in pin geo user; do
	printf 'tombstone\t\n' | kcat -b "$PP_BROKER" -P -t "hostile.$kind" -p 0 -K $'\t' -Z || {
		echo "  FAILED: could not produce a tombstone"; PP_FAILED=$((PP_FAILED + 1)); continue; }
	printf '%s %s %s %s\n' "$kind" "${next[$kind]}" "tombstone_$kind" "dead message value is null (a Kafka tombstone)" >>"$work/plan"
	next[$kind]=$((next[$kind] + 1))
done
total=$((next[pin] + next[geo] + next[user]))
echo "  produced $total hostile messages (pin ${next[pin]}, geo ${next[geo]}, user ${next[user]})"

pp_wait_for 180 "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'hostile.%'" ||
	PP_FAILED=$((PP_FAILED + 1))

# every message's fate, read back in one query per table
pp_psql -d postgres -F ' ' -c "SELECT 'pin', kafka_offset, 'row' FROM pinpipe.pin_raw
	UNION ALL SELECT 'geo', kafka_offset, 'row' FROM pinpipe.geo_raw
	UNION ALL SELECT 'user', kafka_offset, 'row' FROM pinpipe.user_raw" >"$work/rows"
pp_psql -d postgres -F $'\t' -c "SELECT substr(topic, 9), kafka_offset, coalesce(error_detail, error) FROM pinpipe.dead_letters" >"$work/dead"
bad=0
while read -r kind offset name fate; do
	if [ "$fate" = row ]; then
		grep -qx "$kind $offset row" "$work/rows" || { echo "  FAILED: $name should be a row"; bad=$((bad + 1)); }
	else
		want=${fate#dead }
		err=$(awk -F'\t' -v k="$kind" -v o="$offset" '$1 == k && $2 == o { print $3 }' "$work/dead")
		case "$err" in *"$want"*) ;; *)
			echo "  FAILED: $name should be a dead letter with \"$want\", got: ${err:-no dead letter}"
			bad=$((bad + 1)) ;; esac
	fi
done <"$work/plan"
[ $bad = 0 ] && echo "  ok: all $total hostile messages became the expected row or dead letter" || PP_FAILED=$((PP_FAILED + bad))
pp_check "the empty messages' dead letters hold an empty payload" \
	"SELECT count(*) = $(grep -c ' dead empty message$' "$work/plan") AND bool_and(payload = ''::bytea)
	   FROM pinpipe.dead_letters WHERE error = 'empty message'"
pp_check "the tombstones' dead letters hold a NULL payload, one per topic" \
	"SELECT count(*) = 3 AND bool_and(payload IS NULL) FROM pinpipe.dead_letters
	  WHERE error = 'message value is null (a Kafka tombstone)'"
pp_check "nothing trimmed by the broker before it was read" "SELECT count(*) = 0 FROM pinpipe.offset_gaps"
pp_check "rows + dead letters = messages" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.geo_raw)
	      + (SELECT count(*) FROM pinpipe.user_raw) + (SELECT count(*) FROM pinpipe.dead_letters) = $total"
# no stall: a good message after all of them still lands
printf '424242\t{"index": 424242, "title": "after the hostile ones"}\n' | kcat -b "$PP_BROKER" -P -t hostile.pin -K $'\t'
pp_wait_for 30 "SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 424242" || PP_FAILED=$((PP_FAILED + 1))
pp_check "the worker goes on after the hostile messages" "SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 424242"
exit $((PP_FAILED > 0))
