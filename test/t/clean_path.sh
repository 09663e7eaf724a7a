#!/usr/bin/env bash
# The clean rows' write path: a plain INSERT first, and INSERT ... ON
# CONFLICT (ind) DO UPDATE when an ind is in the table already (src/sink.c,
# write_clean). Told apart by their WAL: a speculative insertion (the upsert
# of a new row) writes a Heap HEAP_CONFIRM record, a plain INSERT does not. Both
# must store the latest row per ind, keep the analytics caches exact, and
# leave a row that breaks a user's unique index a dead letter while the rest
# land.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_brokers_stop' EXIT

pp_reset_pinpipe
pp_broker_start cp --partitions 1 --prefix cp || exit 1

pp_psql -d postgres >/dev/null <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_walinspect;
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE UNIQUE INDEX pin_clean_unique_id ON pinpipe.pin_clean (unique_id);
SQL

# produce FIRST LAST TITLE [DUP_UID_IND]: a pin, a geo and a user for every
# ind of FIRST..LAST (one partition, so in this order); the pin of
# DUP_UID_IND takes the unique_id of ind 1 (which breaks pin_clean_unique_id)
produce() {
	local first=$1 last=$2 title=$3 dup=${4:-} work i uid
	work=$(mktemp -d)
	for i in $(seq "$first" "$last"); do
		uid="00000000-0000-0000-0000-$(printf '%012d' "$i")"
		[ "$i" = "$dup" ] && uid="00000000-0000-0000-0000-$(printf '%012d' 1)"
		printf '{"index": %d, "unique_id": "%s", "title": "%s %d", "category": "c%d", "poster_name": "p%d", "follower_count": "%dk"}\n' \
			"$i" "$uid" "$title" "$i" $((i % 5)) $((i % 3)) "$i" >>"$work/pin"
		printf '{"ind": %d, "latitude": 10.5, "longitude": 20, "country": "Country %d", "timestamp": "2020-01-0%dT10:00:00"}\n' \
			"$i" $((i % 7)) $((i % 9 + 1)) >>"$work/geo"
		printf '{"ind": %d, "first_name": "A%d", "last_name": "B", "age": %d, "date_joined": "2016-0%d-01T00:00:00"}\n' \
			"$i" "$i" $((18 + i % 50)) $((i % 9 + 1)) >>"$work/user"
	done
	for k in pin geo user; do
		kcat -b "$PP_BROKER" -P -t "cp.$k" -l "$work/$k" || return 1
	done
	rm -rf "$work"
}

# confirms FROM_LSN: Heap HEAP_CONFIRM records (speculative insertions
# confirmed) of the three clean tables since FROM_LSN
confirms() {
	pp_psql -d postgres -c "SELECT count(*) FROM pg_get_wal_records_info_till_end_of_wal('$1') w
		WHERE resource_manager = 'Heap' AND record_type = 'HEAP_CONFIRM'
		  AND EXISTS (SELECT FROM unnest(ARRAY['pin_clean', 'geo_clean', 'user_clean']) t
		               WHERE w.block_ref LIKE '%/' || pg_relation_filenode('pinpipe.' || t) || ' %')"
}

# expect_confirms FROM_LSN none|some WHAT: the speculative insertions since FROM_LSN
expect_confirms() {
	local n
	n=$(confirms "$1")
	if { [ "$2" = none ] && [ -n "$n" ] && [ "$n" = 0 ]; } || { [ "$2" = some ] && [ "${n:-0}" -gt 0 ]; }; then
		echo "  ok: $3 ($n HEAP_CONFIRM records)"
	else
		echo "  FAILED: $3: expected $2 HEAP_CONFIRM records, found $n"
		PP_FAILED=$((PP_FAILED + 1))
	fi
}

caches_exact() {
	pp_check "$1: the analytics caches equal a rebuild from the clean tables" \
		"SELECT sum(corrected_rows) = 0 FROM pinpipe.refresh()"
}

pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix cp pinpipe.batch_size 10000

echo "new inds: a plain INSERT"
lsn=$(pp_psql -d postgres -c "SELECT pg_current_wal_lsn()")
produce 1 300 first || exit 1
pp_check_complete cp 900
expect_confirms "$lsn" none "new rows: no speculative insertion (no upsert)"
pp_check "new inds: every clean row stored" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 300 AND (SELECT count(*) FROM pinpipe.geo_clean) = 300
	    AND (SELECT count(*) FROM pinpipe.user_clean) = 300"
caches_exact "new inds"

echo "inds stored already, mixed with new ones: the upsert"
lsn=$(pp_psql -d postgres -c "SELECT pg_current_wal_lsn()")
produce 201 400 second || exit 1
pp_check_complete cp 1500
expect_confirms "$lsn" some "the batch with stored inds was upserted (its new rows speculatively inserted)"
pp_check "mixed: 400 rows a table, the latest title per ind" \
	"SELECT count(*) = 400 AND count(*) FILTER (WHERE title = 'second ' || ind) = 200
	    AND count(*) FILTER (WHERE title = 'first ' || ind) = 200 FROM pinpipe.pin_clean"
pp_check "mixed: geo and user rows" \
	"SELECT (SELECT count(*) FROM pinpipe.geo_clean) = 400 AND (SELECT count(*) FROM pinpipe.user_clean) = 400"
caches_exact "mixed"

# The next statements on each table go straight to the upsert (backoff), then
# a plain INSERT is tried again: several small batches of new inds
echo "new inds again, in small batches: back to plain INSERT after the backoff"
pp_set pinpipe.batch_size 50
sleep 1
for r in 0 1 2 3 4 5 6 7; do
	produce $((401 + r * 50)) $((450 + r * 50)) third || exit 1
	pp_check_complete cp $((1500 + (r + 1) * 150)) >/dev/null
done
lsn=$(pp_psql -d postgres -c "SELECT pg_current_wal_lsn()")
produce 801 850 fourth || exit 1
pp_check_complete cp 2850
expect_confirms "$lsn" none "after the backoff, new rows are written without the upsert again"
pp_check "small batches: every row" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = 850 AND (SELECT count(*) FROM pinpipe.user_clean) = 850"
caches_exact "small batches"

echo "a user's unique index on pin_clean: only the row that breaks it is a dead letter"
pp_set pinpipe.batch_size 10000
sleep 1
produce 851 950 fifth 900 || exit 1
pp_check_complete cp 3150
pp_check "unique index: the pin repeating a unique_id is a dead letter saying so" \
	"SELECT count(*) = 1 FROM pinpipe.dead_letters WHERE topic = 'cp.pin'
	    AND convert_from(payload, 'UTF8')::json->>'index' = '900'
	    AND error_detail LIKE '%duplicate key value violates unique constraint \"pin_clean_unique_id\"%'"
pp_check "unique index: the other 99 pins land, raw and clean" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_clean WHERE ind BETWEEN 851 AND 950) = 99
	    AND (SELECT count(*) FROM pinpipe.pin_raw WHERE \"index\" BETWEEN 851 AND 950) = 99"
pp_check "unique index: every index of the clean tables holds every row (amcheck)" \
	"SELECT count(*) = 4 FROM (SELECT bt_index_check(i.indexrelid, true)
	    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	    WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relname LIKE '%_clean') s"
caches_exact "unique index"

pp_psql -d postgres -c "DROP INDEX pinpipe.pin_clean_unique_id" >/dev/null
exit $((PP_FAILED > 0))
