#!/usr/bin/env bash
# test/bench_dashboard.sh: what pinpipe-dashboard costs. A benchmark, not a
# test: it prints figures and ratios measured in the same run.
#   bash test/bench_dashboard.sh [SIZES...]        (default 10000 1000000)
#
# 1. Ingest with and without a dashboard client: a backlog of synthetic
#    messages (BENCH_MESSAGES, default 150000) drained by the worker from the
#    embedded broker, alternately with no client and with a client that
#    fetches everything the page fetches (status, two history ranges, the nine
#    answers, over one keep-alive connection as a browser does: a Python
#    requests session in one long-lived process) once a second;
#    BENCH_ROUNDS (default 4) rounds each, in ABBA order, fresh topics every time.
#    Prints messages/s of each run, the ratio of the medians with/without,
#    and the load average (other work on the machine makes the figures noisy).
# 2. At each size (pins, and as many geo and user rows, grown as in
#    test/bench_analytics.sh, with the analytics triggers), the time curl
#    takes for each API call (median of 11 on one connection) and for the page's whole refresh
#    (the 12 calls one after another on one connection, median of 5), and the ratio of each
#    answer's API time to the same function's time in the server (its
#    EXPLAIN ANALYZE execution time, median of 11).
# 10M pins take about 10 GB of disk and a long load on 2 cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
SIZES=${*:-10000 1000000}
MESSAGES=${BENCH_MESSAGES:-150000}
ROUNDS=${BENCH_ROUNDS:-4}
PARTS=48

pp_install_deps
pp_build
PP_WORK=$(mktemp -d /tmp/pinpipe-bench.XXXXXX)
DASH_PID=
CLIENT_PID=
cleanup() {
	[ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null
	[ -n "$DASH_PID" ] && kill "$DASH_PID" 2>/dev/null
	pp_brokers_stop
	pp_cluster_stop
	rm -rf "$PP_WORK"
}
trap cleanup EXIT
pp_cluster_start <<'CONF'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
CONF
bench_psql() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
bench_psql -c "CREATE EXTENSION pinpipe" -c "CREATE ROLE dash LOGIN" -c "GRANT pinpipe_reader TO dash"

"$PP_TOP/src/bin/pinpipe-dashboard" --db "host=$PGHOST port=$PGPORT dbname=postgres user=dash" \
	--listen 127.0.0.1:0 --quiet >"$PP_WORK/dash.out" &
DASH_PID=$!
for _ in $(seq 50); do [ -s "$PP_WORK/dash.out" ] && break; sleep 0.1; done
URL=$(sed -n 's/^dashboard at //p' "$PP_WORK/dash.out")
echo "dashboard at $URL"

ANSWERS="popular_category_by_country category_count_by_year most_followed_by_country most_followed_country
popular_category_by_age_group median_followers_by_age_group users_joined_by_year median_followers_by_join_year
median_followers_by_age_group_and_join_year"
PAGE_PATHS="api/status api/history?minutes=60 api/history?minutes=1440&step=15"
for a in $ANSWERS; do PAGE_PATHS="$PAGE_PATHS api/answers/$a"; done

# ms of each of N requests of one URL on one connection (fails on a non-200 answer)
fetch_ms() {
	local args=()
	for _ in $(seq "$2"); do args+=(-o /dev/null "$URL$1"); done
	curl -sS -f -w '%{time_total}\n' "${args[@]}" | awk '{printf "%.2f\n", $1 * 1000}'
}
# the page's refresh: every call, one after another on one connection
PAGE_ARGS=()
for p in $PAGE_PATHS; do PAGE_ARGS+=(-o /dev/null "$URL$p"); done
page_once() {
	curl -sS -f -w '%{time_total}\n' "${PAGE_ARGS[@]}" | awk '{s += $1} END {printf "%.2f\n", s * 1000}'
}

# ---- 1. ingest with and without a client refreshing every second ----
pp_broker_start bench --partitions "$PARTS" --prefix unused
records=$(((MESSAGES + 2) / 3))
drain() { # drain PREFIX START_IND: messages/s
	local prefix=$1 start_ind=$2 total=$((records * 3)) s e
	for t in pin geo user; do pp_broker_ctl "$PP_BROKER_CTL" "topic $prefix.$t $PARTS"; done
	"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix "$prefix" --data data --synthetic --seed 1 \
		--start-ind "$start_ind" --count "$records" --quiet
	s=$(date +%s.%N)
	pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix "$prefix"
	pp_wait_for 900 "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'" >/dev/null
	e=$(date +%s.%N)
	pp_set pinpipe.brokers ''
	echo "$total $s $e" | awk '{printf "%.0f\n", $1 / ($3 - $2)}'
}
# The client: one long-lived process (Python requests, one keep-alive
# session, as a browser keeps its connection) fetching the page's calls once a
# second, so that what is measured is the dashboard's cost, not the forks of a
# shell loop.
client_loop() {
	exec python3 - "$URL" $PAGE_PATHS <<'PY'
import sys, time, requests
base, paths = sys.argv[1], sys.argv[2:]
s = requests.Session()
while True:
    t = time.monotonic()
    for p in paths:
        s.get(base + p, timeout=10).raise_for_status()
    print("refreshed", flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
PY
}
echo
echo "ingest: $((records * 3)) messages a run over $PARTS partitions, alternately without and with a client refreshing every second"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
without=()
with=()
ind=100000000
run_without() {
	local r
	r=$(drain "nocl$1" $ind); without+=("$r"); ind=$((ind + records + 1000))
	echo "  round $1 without a client: $r messages/s"
}
run_with() {
	local r refreshes
	client_loop >"$PP_WORK/client.out" 2>"$PP_WORK/client.err" &
	CLIENT_PID=$!
	r=$(drain "cl$1" $ind); with+=("$r"); ind=$((ind + records + 1000))
	if ! kill "$CLIENT_PID" 2>/dev/null; then
		echo "the dashboard client stopped during the run:" >&2
		cat "$PP_WORK/client.err" >&2
		exit 1
	fi
	wait "$CLIENT_PID" 2>/dev/null || true
	CLIENT_PID=
	refreshes=$(grep -c refreshed "$PP_WORK/client.out" || true)
	echo "  round $1 with a client:    $r messages/s ($refreshes refreshes of the page's 12 calls)"
}
# ABBA order: the drain rate drifts as the tables grow, so neither kind of
# run always comes first
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then run_without "$round"; run_with "$round"; else
		run_with "$round"; run_without "$round"; fi
done
mw=$(printf '%s\n' "${with[@]}" | pp_median)
mo=$(printf '%s\n' "${without[@]}" | pp_median)
echo "ingest with a dashboard client / without: $(echo "scale=3; $mw / $mo" | bc) (medians $mw vs $mo messages/s)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_psql -c "DROP EXTENSION pinpipe CASCADE" -c "CREATE EXTENSION pinpipe"

# ---- 2. API times at each size ----
bench_psql >/dev/null <<'SQL'
CREATE TEMP TABLE doc_pin (doc jsonb);
CREATE TEMP TABLE doc_geo (doc jsonb);
CREATE TEMP TABLE doc_user (doc jsonb);
\copy doc_pin FROM 'data/pin.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy doc_geo FROM 'data/geo.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy doc_user FROM 'data/user.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
DROP TABLE IF EXISTS bench_pin, bench_geo, bench_user;
CREATE TABLE bench_pin AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_pin(doc)).* FROM doc_pin;
CREATE TABLE bench_geo AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_geo(doc)).* FROM doc_geo;
CREATE TABLE bench_user AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_user(doc)).* FROM doc_user;
CREATE UNIQUE INDEX ON bench_pin (k);
CREATE UNIQUE INDEX ON bench_geo (k);
CREATE UNIQUE INDEX ON bench_user (k);
CREATE OR REPLACE PROCEDURE bench_grow(target bigint, chunk int DEFAULT 500000)
LANGUAGE plpgsql
AS $$
DECLARE
    cur bigint;
    hi bigint;
    np int := (SELECT count(*) FROM bench_pin);
    ng int := (SELECT count(*) FROM bench_geo);
    nu int := (SELECT count(*) FROM bench_user);
BEGIN
    SELECT coalesce(max(ind), 0) INTO cur FROM pinpipe.pin_clean;
    WHILE cur < target LOOP
        hi := least(cur + chunk, target);
        INSERT INTO pinpipe.pin_clean
        SELECT i, p.unique_id, p.title, p.description, p.follower_count, p.poster_name, p.tag_list,
               p.is_image_or_video, p.image_src, p.save_location, p.category
          FROM generate_series(cur + 1, hi) i
          JOIN bench_pin p ON p.k = (hashint8(i) & 2147483647) % np;
        INSERT INTO pinpipe.geo_clean
        SELECT i, g.country, g.coordinates, g."timestamp"
          FROM generate_series(cur + 1, hi) i
          JOIN bench_geo g ON g.k = (hashint8(i + 1000000000) & 2147483647) % ng;
        INSERT INTO pinpipe.user_clean
        SELECT i, u.user_name, u.age, u.date_joined
          FROM generate_series(cur + 1, hi) i
          JOIN bench_user u ON u.k = (hashint8(i + 2000000000) & 2147483647) % nu;
        COMMIT;
        cur := hi;
    END LOOP;
END;
$$;
-- the server-side time of a query: median of runs EXPLAIN ANALYZE execution times, ms
CREATE OR REPLACE FUNCTION bench_server_ms(q text, runs int) RETURNS float8
LANGUAGE plpgsql
AS $$
DECLARE
    times float8[] := '{}';
    plan json;
BEGIN
    FOR i IN 1..runs LOOP
        EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO plan;
        times := times || ((plan->0->>'Execution Time')::float8 + (plan->0->>'Planning Time')::float8);
    END LOOP;
    RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x);
END;
$$;
SQL

for n in $SIZES; do
	echo
	pp_log "growing to $n pins"
	s=$(date +%s)
	bench_psql -c "CALL bench_grow($n)"
	bench_psql -c "VACUUM ANALYZE"
	echo "at $n pins (loaded in $(($(date +%s) - s)) s):"
	printf '  %-58s %10s %10s %8s\n' "API call" "curl ms" "server ms" "ratio"
	for p in $PAGE_PATHS; do
		fetch_ms "$p" 1 >/dev/null # warm-up
		api=$(fetch_ms "$p" 11 | pp_median)
		case $p in
		api/answers/*)
			srv=$(bench_psql -At -c "SELECT round(bench_server_ms('SELECT * FROM pinpipe.${p#api/answers/}()', 11)::numeric, 2)")
			ratio=$(echo "scale=2; $api / $srv" | bc)
			;;
		*) srv=- ratio=- ;;
		esac
		printf '  %-58s %10s %10s %8s\n' "GET /$p" "$api" "$srv" "$ratio"
	done
	page_once >/dev/null
	whole=$(for _ in $(seq 5); do page_once; done | pp_median)
	echo "  the page's whole refresh (12 calls, one after another on one connection): $whole ms"
	echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
