#!/usr/bin/env bash
# test/bench_analytics.sh: how the analytics functions scale with the number
# of pins. A benchmark, not a test: it prints figures.
#   bash test/bench_analytics.sh [--dist NAME] [SIZES...]
#                                        (default sample, 10000 100000 1000000 10000000)
#
# --dist picks the values of the synthetic rows, each chosen to find the
# worst case of some cache:
#   sample      the sample's rows as they are (few countries, categories,
#               years and follower counts);
#   distinct    every pin's follower count different and spread over 2^43
#               (the medians' order statistics), and post and join years
#               spread over 2,000 years (the year-range filters, the
#               medians per join year);
#   categories  nine pins in ten of a category of their own, the tenth of
#               the sample's category, in the sample's countries and age
#               groups (a few popular categories among millions: the most
#               popular category per group);
#   countries   every geo row's country different, follower counts all
#               different (the most followed country, the tops per country).
#
# Grows synthetic clean tables (pins, geo and user rows with the same ind,
# each a random sample row of data/*.jsonl under a new ind) to each size, by
# INSERT statements of 500,000 rows, so the analytics triggers do their work
# as they do for the worker. At each size, after VACUUM ANALYZE, it times
# every analytics function with its default arguments (median of 11 runs,
# after a warm-up) and, for comparison, its plain-SQL definition over the
# clean tables (pinpipe.analytics_definitions(); median of 3 runs, 1 at 10M
# and above). Prints both as tables with the growth factor per 10x rows.
# The cluster runs without fsync: the figures are about reading, not
# durability. 10M pins take about 10 GB of disk and some minutes to load.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
DIST=sample
if [ "${1:-}" = --dist ]; then
	DIST=$2
	shift 2
fi
case $DIST in
sample | distinct | categories | countries) ;;
*) echo "unknown distribution $DIST (sample, distinct, categories or countries)" >&2; exit 2 ;;
esac
SIZES=${*:-10000 100000 1000000 10000000}

pp_install_deps
pp_build
PP_WORK=$(mktemp -d /tmp/pinpipe-bench.XXXXXX)
# (PP_PRIVATE_INSTALL=1: installed into a private server tree, removed too)
trap 'pp_cluster_stop; rm -rf "$PP_WORK"; [ -n "${PP_PRIVATE_INSTALL:-}" ] && [ -n "${PP_PRIVATE_ROOT:-}" ] && rm -rf "$PP_PRIVATE_ROOT"' EXIT
pp_cluster_start <<'CONF'
shared_buffers = 2GB
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 16GB
checkpoint_timeout = 30min
wal_level = minimal
max_wal_senders = 0
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
jit = off
CONF

bench_psql() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

bench_psql >/dev/null <<'SQL'
CREATE EXTENSION pinpipe;
CREATE TEMP TABLE doc_pin (doc jsonb);
CREATE TEMP TABLE doc_geo (doc jsonb);
CREATE TEMP TABLE doc_user (doc jsonb);
\copy doc_pin FROM 'data/pin.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy doc_geo FROM 'data/geo.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy doc_user FROM 'data/user.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
-- the sample rows, numbered from 0
CREATE TABLE bench_pin AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_pin(doc)).* FROM doc_pin;
CREATE TABLE bench_geo AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_geo(doc)).* FROM doc_geo;
CREATE TABLE bench_user AS SELECT row_number() OVER () - 1 AS k, (pinpipe.clean_user(doc)).* FROM doc_user;
CREATE UNIQUE INDEX ON bench_pin (k);
CREATE UNIQUE INDEX ON bench_geo (k);
CREATE UNIQUE INDEX ON bench_user (k);
CREATE TABLE bench_results (pins bigint, function_call text, cached_ms float8, direct_ms float8);
CREATE TABLE bench_loads (pins bigint, seconds float8);

-- Grow the clean tables to target pins (and as many geo and user rows) of
-- distribution dist (see the head of bench_analytics.sh), chunk rows per
-- statement, committing after each chunk.
CREATE PROCEDURE bench_grow(target bigint, dist text, chunk int DEFAULT 500000)
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
        SELECT i, p.unique_id, p.title, p.description,
               CASE WHEN dist IN ('distinct', 'countries') THEN i * 1000003 ELSE p.follower_count END,
               p.poster_name, p.tag_list, p.is_image_or_video, p.image_src, p.save_location,
               CASE WHEN dist = 'categories' AND i % 10 <> 0 THEN 'category ' || i ELSE p.category END
          FROM generate_series(cur + 1, hi) i
          JOIN bench_pin p ON p.k = (hashint8(i) & 2147483647) % np;
        INSERT INTO pinpipe.geo_clean
        SELECT i, CASE WHEN dist = 'countries' THEN 'country ' || i ELSE g.country END, g.coordinates,
               CASE WHEN dist = 'distinct'
                    THEN g."timestamp" + make_interval(years => ((hashint8(i + 3000000000) & 2147483647) % 2000)::int - 1000)
                    ELSE g."timestamp" END
          FROM generate_series(cur + 1, hi) i
          JOIN bench_geo g ON g.k = (hashint8(i + 1000000000) & 2147483647) % ng;
        INSERT INTO pinpipe.user_clean
        SELECT i, u.user_name, u.age,
               CASE WHEN dist = 'distinct'
                    THEN u.date_joined + make_interval(years => ((hashint8(i + 4000000000) & 2147483647) % 2000)::int - 1000)
                    ELSE u.date_joined END
          FROM generate_series(cur + 1, hi) i
          JOIN bench_user u ON u.k = (hashint8(i + 2000000000) & 2147483647) % nu;
        COMMIT;
        cur := hi;
    END LOOP;
END;
$$;

-- Median of runs timings of a query, in ms.
CREATE FUNCTION bench_time(q text, runs int, warmup bool) RETURNS float8
LANGUAGE plpgsql
AS $$
DECLARE
    t timestamptz;
    times float8[] := '{}';
BEGIN
    IF warmup THEN
        EXECUTE format('SELECT count(*) FROM (%s) x', q);
    END IF;
    FOR i IN 1..runs LOOP
        t := clock_timestamp();
        EXECUTE format('SELECT count(*) FROM (%s) x', q);
        times := times || (extract(epoch FROM clock_timestamp() - t) * 1000)::float8;
    END LOOP;
    RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x);
END;
$$;
SQL

for n in $SIZES; do
	pp_log "growing to $n pins ($DIST)"
	start=$(date +%s.%N)
	bench_psql -c "CALL bench_grow($n, '$DIST')"
	end=$(date +%s.%N)
	bench_psql -c "INSERT INTO bench_loads VALUES ($n, $end - $start)"
	bench_psql -c "VACUUM ANALYZE"
	pp_log "timing at $n pins"
	bench_psql >/dev/null <<SQL
INSERT INTO bench_results
SELECT $n, d.function_call,
       bench_time('SELECT * FROM ' || d.function_call, 11, true),
       bench_time(d.direct_query, CASE WHEN $n >= 10000000 THEN 1 ELSE 3 END, $n < 10000000)
  FROM pinpipe.analytics_definitions() d
 WHERE d.function_call NOT LIKE '%NULL%' AND d.function_call NOT LIKE '%''lower''%';
SQL
done

echo
echo "distribution: $DIST"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM; PostgreSQL $(bench_psql -At -c 'SHOW server_version')"
bench_psql -At -c "SELECT format('loaded %s pins (+ as many geo and user rows) in %s s, %s rows/s with the analytics triggers',
                                 pins, round(seconds::numeric, 1),
                                 round(3 * (pins - coalesce(lag(pins) OVER (ORDER BY pins), 0)) / seconds))
                      FROM bench_loads ORDER BY pins"
bench_psql -At -c "SELECT format('cache tables at %s pins: %s rows, %s in all (clean tables: %s)', max(pins),
                                 (SELECT sum(n_live_tup) FROM pg_stat_user_tables
                                   WHERE schemaname = 'pinpipe' AND relname LIKE 'analytics\_%' AND relname <> 'analytics_refreshes'),
                                 (SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_stat_user_tables
                                   WHERE schemaname = 'pinpipe' AND relname LIKE 'analytics\_%' AND relname <> 'analytics_refreshes'),
                                 (SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_stat_user_tables
                                   WHERE schemaname = 'pinpipe' AND relname LIKE '%\_clean'))
                      FROM bench_loads"
for col in cached_ms direct_ms; do
	echo
	if [ $col = cached_ms ]; then
		echo "Analytics functions (ms, median of 11 runs), and growth factor per 10x pins:"
	else
		echo "The same results by plain SQL over the clean tables, no cache (ms), and growth per 10x:"
	fi
	bench_psql -P footer=off <<SQL
SELECT *
  FROM (SELECT regexp_replace(function_call, '^pinpipe\.', '') AS "function",
               string_agg(lpad(to_char($col, 'FM999990.00'), 10), ' ' ORDER BY pins) AS "$(for n in $SIZES; do printf '%10s ' "$n"; done)",
               string_agg(CASE WHEN prev IS NOT NULL THEN to_char(power($col / prev, 1 / log(pins::numeric / prev_pins)::float8), 'FM990.0') END,
                          '  ' ORDER BY pins) AS "growth per 10x, step by step",
               to_char(power(max($col) FILTER (WHERE last) / max($col) FILTER (WHERE first),
                             1 / nullif(log(max(pins)::numeric / min(pins)), 0)::float8), 'FM990.00') AS "overall"
          FROM (SELECT r.*, lag($col) OVER w AS prev, lag(pins) OVER w AS prev_pins,
                       pins = max(pins) OVER (PARTITION BY function_call) AS last,
                       pins = min(pins) OVER (PARTITION BY function_call) AS first
                  FROM bench_results r WINDOW w AS (PARTITION BY function_call ORDER BY pins)) x
         GROUP BY function_call) t
 ORDER BY 1;
SQL
done
