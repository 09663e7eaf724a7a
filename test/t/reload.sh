#!/usr/bin/env bash
# Settings reload: an empty pinpipe.brokers idles the worker; setting it by
# reload starts consuming; changing pinpipe.brokers or pinpipe.topic_prefix
# by reload switches source without a restart (same worker pid).
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap pp_brokers_stop EXIT

pp_reset_pinpipe
pp_wait_for 20 "SELECT bool_and(state = 'idle: pinpipe.brokers is empty') FROM pinpipe.status" ||
	PP_FAILED=$((PP_FAILED + 1))
pid=$(pp_worker_pid)

pp_broker_start a --partitions 1 --prefix r || exit 1
A=$PP_BROKER
# broker B, another cluster, has A's topics with the same messages (as a
# mirror that replaced A would); it also has topics r2.* with 2 partitions
pp_broker_start b --partitions 1 --prefix r --topic r2.pin:2 --topic r2.geo:2 --topic r2.user:2 || exit 1
B=$PP_BROKER
head -50 data/pin.jsonl | pp_keyed | kcat -b "$A" -P -t r.pin -K $'\t'
head -50 data/pin.jsonl | pp_keyed | kcat -b "$B" -P -t r.pin -K $'\t'

pp_set pinpipe.brokers "$A" pinpipe.topic_prefix r
pp_wait_for 30 "SELECT count(*) = 50 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))
pp_check "consuming from broker A after a reload" "SELECT count(*) = 50 FROM pinpipe.pin_raw"

pp_set pinpipe.brokers "$B"
sed -n '51,80p' data/pin.jsonl | pp_keyed | kcat -b "$B" -P -t r.pin -K $'\t'
# another cluster id: a new source of r.pin, read from B's earliest offset (its
# offsets need not mean what A's did), A's rows kept
pp_wait_for 30 "SELECT count(*) = 130 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))
pp_check "switched to broker B by reload: a new source (cluster changed), read from its start" \
	"SELECT count(*) = 130 AND count(*) FILTER (WHERE s.reason = 'cluster changed') = 80
	        AND max(kafka_offset) FILTER (WHERE s.reason = 'cluster changed') = 79
	   FROM pinpipe.pin_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source"
pp_check "no dead letters" "SELECT count(*) = 0 FROM pinpipe.dead_letters"

sed -n '81,100p' data/pin.jsonl | pp_keyed | kcat -b "$B" -P -t r2.pin -p 1 -K $'\t'
pp_set pinpipe.topic_prefix r2
pp_wait_for 30 "SELECT count(*) = 150 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))
pp_check "switched to topics r2.* by reload" \
	"SELECT count(*) = 20 FROM pinpipe.pin_raw WHERE kafka_partition = 1"
pp_check "offsets stored per topic" \
	"SELECT array_agg(topic || '/' || kafka_partition || '=' || next_offset ORDER BY topic, kafka_partition)
	        @> '{r.pin/0=80,r2.pin/1=20}' FROM pinpipe.offsets"
pp_check "status names the new topics" "SELECT bool_and(topic LIKE 'r2.%') FROM pinpipe.status"
pp_check "the same worker process throughout (no restart)" \
	"SELECT pid = ${pid:-0} FROM pinpipe.status WHERE kind = 'pin'"

# settings are checked when set
out=$(psql -X -At -d postgres -c "ALTER SYSTEM SET pinpipe.topic_prefix = 'bad prefix!'" 2>&1)
case "$out" in *"invalid value"*"topic prefix may hold only"*) echo "  ok: bad topic_prefix refused" ;;
*) echo "  FAILED: bad topic_prefix accepted ($out)"; PP_FAILED=$((PP_FAILED + 1)) ;; esac
out=$(psql -X -At -d postgres -c "ALTER SYSTEM SET pinpipe.kafka_config = 'no.such.property=1'" 2>&1)
case "$out" in *"invalid value"*"no.such.property"*) echo "  ok: unknown librdkafka property refused" ;;
*) echo "  FAILED: unknown kafka_config property accepted ($out)"; PP_FAILED=$((PP_FAILED + 1)) ;; esac
out=$(psql -X -At -d postgres -c "ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.password'" 2>&1)
case "$out" in *"invalid value"*"key=value"*) echo "  ok: malformed kafka_config refused" ;;
*) echo "  FAILED: malformed kafka_config accepted ($out)"; PP_FAILED=$((PP_FAILED + 1)) ;; esac

exit $((PP_FAILED > 0))
