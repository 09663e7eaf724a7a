#!/usr/bin/env bash
# End to end through the real Kafka protocol: the sample rows, each posted
# twice (duplicates), produced with kcat to the embedded broker and consumed
# by the worker. Raw counts equal messages produced, clean counts equal
# distinct ind, cleaned values equal clean_pin(...) of the same JSON, every
# (partition, offset) is stored exactly once.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap pp_brokers_stop EXIT

pp_reset_pinpipe
pp_broker_start e2e --partitions 4 --prefix e2e || exit 1
for t in pin geo user; do
	pp_keyed data/$t.jsonl data/$t.jsonl | kcat -b "$PP_BROKER" -P -t e2e.$t -K $'\t' || exit 1
done
# one pin with keys the record does not know: kept in extra
printf '999999\t{"index": 999999, "title": "Extra", "new_key": {"a": [1, 2.5, "x\\"y"]}, "n": 0.1, "flag": true}\n' |
	kcat -b "$PP_BROKER" -P -t e2e.pin -K $'\t'

pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix e2e
pp_wait_for 120 "SELECT (SELECT count(*) FROM pinpipe.pin_raw) = 4965
                    AND (SELECT count(*) FROM pinpipe.geo_raw) = 22308
                    AND (SELECT count(*) FROM pinpipe.user_raw) = 22308" || PP_FAILED=1

pp_check "raw rows = messages produced" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) = 4965 AND (SELECT count(*) FROM pinpipe.geo_raw) = 22308
	    AND (SELECT count(*) FROM pinpipe.user_raw) = 22308"
pp_check "no dead letters" "SELECT count(*) = 0 FROM pinpipe.dead_letters"
pp_check "clean rows = distinct ind" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 2483 AND (SELECT count(*) FROM pinpipe.geo_clean) = 11154
	    AND (SELECT count(*) FROM pinpipe.user_clean) = 11154"
pp_check "the worker stored the raw values exactly (minus Kafka columns)" \
	"SELECT count(*) = 0 FROM pinpipe.geo_raw r
	  WHERE to_jsonb(r) - '{extra,kafka_partition,kafka_offset,kafka_timestamp}'::text[] <> jsonb_build_object(
	        'ind', r.ind, 'timestamp', r.timestamp, 'latitude', r.latitude, 'longitude', r.longitude, 'country', r.country)"
pp_check "unknown keys kept in extra" \
	"SELECT extra = '{\"new_key\": {\"a\": [1, 2.5, \"x\\\"y\"]}, \"n\": 0.1, \"flag\": true}'::jsonb FROM pinpipe.pin_raw WHERE \"index\" = 999999"
pp_check "extra is NULL when there are no unknown keys" \
	"SELECT count(*) = 1 FROM pinpipe.pin_raw WHERE extra IS NOT NULL"
pp_check "every (partition, offset) stored exactly once, none missing" \
	"SELECT bool_and(n = o.next_offset AND lo = 0 AND hi = o.next_offset - 1)
	   FROM (SELECT 'e2e.pin' AS topic, kafka_partition, count(*) n, min(kafka_offset) lo, max(kafka_offset) hi FROM pinpipe.pin_raw GROUP BY 2
	         UNION ALL SELECT 'e2e.geo', kafka_partition, count(*), min(kafka_offset), max(kafka_offset) FROM pinpipe.geo_raw GROUP BY 2
	         UNION ALL SELECT 'e2e.user', kafka_partition, count(*), min(kafka_offset), max(kafka_offset) FROM pinpipe.user_raw GROUP BY 2) s
	   JOIN pinpipe.offsets o USING (topic, kafka_partition)"
pp_check "all 12 partitions consumed" "SELECT count(*) = 12 FROM pinpipe.offsets WHERE topic LIKE 'e2e.%' AND next_offset > 0"
pp_check "kafka_timestamp recorded" "SELECT bool_and(kafka_timestamp > now() - interval '1 hour') FROM pinpipe.user_raw"
pp_check "status shows the worker, no lag" \
	"SELECT bool_and(pid IS NOT NULL AND state = 'consuming' AND lag = 0 AND partitions = 4 AND topic = 'e2e.' || kind) FROM pinpipe.status"
pp_check "partition_lag lists 12 partitions with zero lag" "SELECT count(*) = 12 AND bool_and(lag = 0) FROM pinpipe.partition_lag"
pp_check "the worker shows in pg_stat_activity" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker' AND application_name = 'pinpipe worker'"

# cleaned values equal clean_pin/geo/user of the same JSON, row by row
out=$(psql -X -q -At -d postgres <<'SQL' 2>&1
CREATE TEMP TABLE s_pin (doc jsonb);
CREATE TEMP TABLE s_geo (doc jsonb);
CREATE TEMP TABLE s_user (doc jsonb);
\copy s_pin FROM 'data/pin.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy s_geo FROM 'data/geo.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy s_user FROM 'data/user.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
SELECT (SELECT count(*) FROM s_pin s JOIN pinpipe.pin_clean c ON c.ind = (s.doc->>'index')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_pin(s.doc)) = 2482
   AND (SELECT count(*) FROM s_geo s JOIN pinpipe.geo_clean c ON c.ind = (s.doc->>'ind')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_geo(s.doc)) = 11154
   AND (SELECT count(*) FROM s_user s JOIN pinpipe.user_clean c ON c.ind = (s.doc->>'ind')::int
         WHERE c IS NOT DISTINCT FROM pinpipe.clean_user(s.doc)) = 11154;
SQL
)
if [ "$out" = t ]; then echo "  ok: cleaned values equal clean_*(json) of the same JSON"; else
	echo "  FAILED: cleaned values equal clean_*(json) ($out)"; PP_FAILED=$((PP_FAILED + 1)); fi

# reclean() from the raw rows the worker wrote gives the same clean tables
out=$(psql -X -q -At -d postgres <<'SQL' 2>&1
SELECT md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c) ||
           (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.geo_clean c) ||
           (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.user_clean c)) AS h \gset
SELECT pin_rows, geo_rows, user_rows FROM pinpipe.reclean() \gset
SELECT :pin_rows = 2483 AND :geo_rows = 11154 AND :user_rows = 11154 AND
       md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c) ||
           (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.geo_clean c) ||
           (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.user_clean c)) = :'h';
SQL
)
if [ "$out" = t ]; then echo "  ok: reclean() over the worker's raw rows gives the same clean tables"; else
	echo "  FAILED: reclean() over the worker's raw rows ($out)"; PP_FAILED=$((PP_FAILED + 1)); fi

exit $((PP_FAILED > 0))
