/* pinpipe--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pinpipe UPDATE TO '0.2'" to load this file. \quit

--
-- Every schema change of 0.2 goes to two places: into its piece in src/sql
-- (the fresh install, pinpipe--0.2.sql, is built from the pieces) and here,
-- as the statements that bring a 0.1 schema to the same state: CREATE for a
-- new object, CREATE OR REPLACE FUNCTION for a changed body (ALTER FUNCTION
-- for its attributes), ALTER TABLE for columns, defaults and constraints,
-- and the same GRANT, REVOKE and COMMENT statements as the piece. A new
-- table that holds user data needs its pg_extension_config_dump() here too.
-- pinpipe--0.1.sql is never edited.
--
-- test/t/upgrade.pl tests it: an update from 0.1 must give the same catalog as
-- a fresh install of 0.2 (test/sql/catalog_snapshot.sql prints both).
--
-- The worker locks pinpipe.offsets first in every batch; an update locks it
-- before anything else, so it waits for the batch in progress and the next
-- batch waits for the update (no deadlock between the two).
LOCK TABLE pinpipe.offsets IN SHARE ROW EXCLUSIVE MODE;

-- The status views: the database each worker writes to, each topic's state
-- since when, and its last and previous errors (src/sql/worker.sql). Their
-- functions' result columns change, so they are dropped and created again;
-- pause() gains its timeout.
DROP VIEW pinpipe.status;
DROP VIEW pinpipe.partition_lag;
DROP FUNCTION pinpipe.worker_status();
DROP FUNCTION pinpipe.partition_status();
DROP FUNCTION pinpipe.pause();

CREATE FUNCTION pinpipe.worker_status(
    OUT kind text, OUT topic text, OUT worker int, OUT database text, OUT pid int,
    OUT state text, OUT since timestamptz,
    OUT messages bigint, OUT dead_letters bigint, OUT batches bigint,
    OUT last_batch_at timestamptz, OUT partitions int, OUT lag bigint,
    OUT lost_messages bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT previous_error text, OUT previous_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'worker_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.worker_status() IS
'progress of each worker per topic since the server started (the pinpipe.status view)';

CREATE FUNCTION pinpipe.partition_status(
    OUT topic text, OUT kafka_partition int, OUT worker int, OUT database text,
    OUT next_offset bigint,
    OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'partition_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.partition_status() IS
'each consumed partition: next offset, the broker''s high watermark, and the lag between them';

CREATE VIEW pinpipe.status AS
    SELECT kind, topic, worker, database, pid, state, since, messages, dead_letters, batches,
           last_batch_at, partitions, lag, lost_messages, last_error, last_error_at,
           previous_error, previous_error_at
      FROM pinpipe.worker_status();
COMMENT ON VIEW pinpipe.status IS
'per worker and topic: the database it writes to, pid, state and since when, messages and dead letters since the server started, batches, last batch time, consumer lag, messages lost to retention, last error (NULL once its cause is gone) and the previous one';

CREATE VIEW pinpipe.partition_lag AS
    SELECT topic, kafka_partition, worker, database, next_offset, high_watermark, lag
      FROM pinpipe.partition_status();
COMMENT ON VIEW pinpipe.partition_lag IS
'consumer lag per partition against the broker''s high watermark';

CREATE FUNCTION pinpipe.pause(timeout interval DEFAULT '30 s') RETURNS void
AS 'MODULE_PATHNAME', 'pinpipe_pause'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pinpipe.pause(interval) IS
'stop consuming (until pinpipe.resume() or a server restart), returning once the workers have stopped (a WARNING after timeout); superusers and pinpipe_admin only, in pinpipe.database';
COMMENT ON FUNCTION pinpipe.resume() IS
'resume consuming after pinpipe.pause(); superusers and pinpipe_admin only, in pinpipe.database';

REVOKE ALL ON FUNCTION pinpipe.pause(interval), pinpipe.worker_status(),
    pinpipe.partition_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.worker_status(),
    pinpipe.partition_status() TO pinpipe_admin, pg_monitor;
REVOKE EXECUTE ON FUNCTION pinpipe.pause(interval) FROM pg_monitor;
GRANT SELECT ON pinpipe.status, pinpipe.partition_lag TO pinpipe_admin, pg_monitor;


-- src/sql/history.sql: the ingest history, and the index the dashboard reads
-- the latest dead letters by

--
-- Ingest history: one row per worker, topic and minute that saw work,
-- written by the worker once a minute from its counters (src/history.c),
-- kept for pinpipe.history_retention. The dashboard's charts read it, so
-- they survive a restart of the dashboard or of the server.
--

CREATE TABLE pinpipe.ingest_history (
    worker int NOT NULL,
    topic text NOT NULL,
    minute timestamptz NOT NULL,
    messages bigint NOT NULL,
    dead_letters bigint NOT NULL,
    batches bigint NOT NULL,
    max_lag bigint,
    PRIMARY KEY (worker, topic, minute)
);
CREATE INDEX ingest_history_minute_idx ON pinpipe.ingest_history (minute);
COMMENT ON TABLE pinpipe.ingest_history IS
'per worker, topic and minute that saw work: messages consumed (rows and dead letters), dead letters, batches and the largest consumer lag seen after a batch; written by the worker once a minute, rows older than pinpipe.history_retention deleted by it';

-- The dashboard lists the latest dead letters.
CREATE INDEX dead_letters_received_at_idx ON pinpipe.dead_letters (received_at);

-- Analytics at any distribution (src/sql/analytics.sql, analytics_check.sql):
-- the most popular categories kept per country and age group, the most
-- followed country found by an index, the medians descending radix trees
-- (analytics_followers_rank, which replaces the histogram
-- analytics_followers), the countries whose tops may be gone looked up
-- from the statement's changes only. The new caches are filled at the end
-- of this script (analytics_rebuild()).
DROP TABLE pinpipe.analytics_followers;

CREATE TABLE pinpipe.analytics_country_category_top (
    country text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (country, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_country_category_top IS
'analytics cache: the categories with the most pins of each geo country (analytics_country_category at the country''s top count, ties kept); maintained by triggers on the clean tables';

CREATE TABLE pinpipe.analytics_age_category_top (
    age_group text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (age_group, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_age_category_top IS
'analytics cache: the categories with the most pins of each age group (analytics_age_category at the group''s top count, ties kept); maintained by triggers on the clean tables';

CREATE TABLE pinpipe.analytics_followers_rank (
    level int NOT NULL,
    join_year int,
    age_group text COLLATE "C",
    prefix bigint NOT NULL,
    n bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (level, join_year, age_group, prefix)
) WITH (fillfactor = 70);
COMMENT ON TABLE pinpipe.analytics_followers_rank IS
'analytics cache: the follower counts of the pins joined to user_clean as a radix tree (levels 0 to 8, 8 bits each) per age group, per join year and per both (the medians); maintained by triggers on the clean tables';

-- the most followed country is the last entry of this index
CREATE INDEX analytics_country_top_top_idx ON pinpipe.analytics_country_top (top);
CREATE INDEX analytics_country_poster_order_idx
    ON pinpipe.analytics_country_poster (country COLLATE "default", poster_name COLLATE "default");

CREATE OR REPLACE FUNCTION pinpipe.analytics_delta_sql(kind text, op text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text := pinpipe.analytics_delta_columns(kind);
    d text;
    -- no ORDER BY: under the advisory lock one transaction at a time writes
    -- the caches, so their row locks cannot deadlock
    upsert text := 'INSERT INTO pinpipe.%1$s AS t (%2$s, n) SELECT %2$s, sum(s) FROM %3$s WHERE %4$s '
                   'GROUP BY %2$s HAVING sum(s) <> 0 '
                   'ON CONFLICT (%2$s) DO UPDATE SET n = t.n + excluded.n';
    -- The pairs with the other clean tables are looked up per changed row
    -- (LATERAL ... OFFSET 0 keeps it a nested loop over the primary key):
    -- a hash join would read the whole other table on every statement,
    -- which made each batch cost in proportion to the tables' size.
    -- the most followed (see analytics_country_top): g3 the net change per
    -- (country, follower_count, poster); a country whose changes include a
    -- count above its top (or that has no top: it had no pins) gets a new
    -- top and only the rows at it; the others add their changes at their
    -- top and ignore those below it. Countries whose pins at the top lost
    -- some (gone3) are checked afterwards (analytics_recompute_tops).
    top text := $t$g3 AS MATERIALIZED (
        SELECT country, follower_count, poster_name, sum(s) AS s FROM g
         WHERE country IS NOT NULL AND follower_count IS NOT NULL
         GROUP BY 1, 2, 3 HAVING sum(s) <> 0),
    t3 AS MATERIALIZED (
        SELECT c.country, t.top FROM (SELECT DISTINCT country FROM g3) c
          LEFT JOIN pinpipe.analytics_country_top t ON t.country = c.country),
    up3 AS MATERIALIZED (
        SELECT g3.country, max(g3.follower_count) AS top FROM g3 JOIN t3 ON t3.country = g3.country
         WHERE g3.s > 0 AND (t3.top IS NULL OR g3.follower_count > t3.top) GROUP BY 1),
    a3_top AS (
        INSERT INTO pinpipe.analytics_country_top AS t (country, top) SELECT country, top FROM up3
        ON CONFLICT (country) DO UPDATE SET top = excluded.top),
    a3_old AS (
        DELETE FROM pinpipe.analytics_country_poster c USING up3 WHERE c.country = up3.country),
    a3_new AS (
        INSERT INTO pinpipe.analytics_country_poster (country, follower_count, poster_name, n)
        SELECT g3.country, g3.follower_count, g3.poster_name, g3.s
          FROM g3 JOIN up3 ON up3.country = g3.country AND up3.top = g3.follower_count),
    a3_at_top AS (
        INSERT INTO pinpipe.analytics_country_poster AS c (country, follower_count, poster_name, n)
        SELECT g3.country, g3.follower_count, g3.poster_name, g3.s
          FROM g3 JOIN t3 ON t3.country = g3.country AND t3.top = g3.follower_count
         WHERE NOT EXISTS (SELECT FROM up3 WHERE up3.country = g3.country)
        ON CONFLICT (country, follower_count, poster_name) DO UPDATE SET n = c.n + excluded.n),
    gone3 AS (
        SELECT DISTINCT g3.country FROM g3 JOIN t3 ON t3.country = g3.country AND t3.top = g3.follower_count
         WHERE g3.s < 0 AND NOT EXISTS (SELECT FROM up3 WHERE up3.country = g3.country))$t$;
    -- The most popular categories (see analytics_country_category_top), from
    -- the new counts the upsert %1$s returns, per group column %2$s, into
    -- the top table %3$s: %1$s_t each changed group's top before the
    -- statement; a group with a new count above it (%1$s_up) gets its new
    -- top's rows; the others gain the rows that reached their top and lose
    -- those that dropped below it (%1$s_off: checked afterwards).
    cattop text := $t$%1$s_t AS MATERIALIZED (
        SELECT c.%2$s, (SELECT b.n FROM pinpipe.%3$s b WHERE b.%2$s = c.%2$s LIMIT 1) AS top
          FROM (SELECT DISTINCT %2$s FROM %1$s) c),
    %1$s_up AS MATERIALIZED (
        SELECT r.%2$s, max(r.n) AS top FROM %1$s r JOIN %1$s_t t ON t.%2$s = r.%2$s
         WHERE r.n > 0 AND (t.top IS NULL OR r.n > t.top) GROUP BY 1),
    %1$s_old AS (
        DELETE FROM pinpipe.%3$s b USING %1$s_up u
         WHERE b.%2$s = u.%2$s
           AND NOT EXISTS (SELECT FROM %1$s r WHERE r.%2$s = b.%2$s AND r.category = b.category AND r.n = u.top)),
    %1$s_new AS (
        INSERT INTO pinpipe.%3$s AS b (%2$s, category, n)
        SELECT r.%2$s, r.category, r.n FROM %1$s r JOIN %1$s_up u ON u.%2$s = r.%2$s AND u.top = r.n
        ON CONFLICT (%2$s, category) DO UPDATE SET n = excluded.n),
    %1$s_at AS (
        INSERT INTO pinpipe.%3$s AS b (%2$s, category, n)
        SELECT r.%2$s, r.category, r.n FROM %1$s r JOIN %1$s_t t ON t.%2$s = r.%2$s AND t.top = r.n
         WHERE NOT EXISTS (SELECT FROM %1$s_up u WHERE u.%2$s = r.%2$s)
        ON CONFLICT (%2$s, category) DO UPDATE SET n = excluded.n),
    %1$s_off AS (
        DELETE FROM pinpipe.%3$s b USING %1$s r JOIN %1$s_t t ON t.%2$s = r.%2$s
         WHERE b.%2$s = r.%2$s AND b.category = r.category AND r.n <> t.top
           AND NOT EXISTS (SELECT FROM %1$s_up u WHERE u.%2$s = r.%2$s)
        RETURNING b.%2$s)$t$;
    -- The medians' radix trees (see analytics_followers_rank): the net
    -- change per (age group, join year, follower count), in each of its
    -- groupings, at each level.
    ranks text := $t$a5 AS (
        INSERT INTO pinpipe.analytics_followers_rank AS t (level, join_year, age_group, prefix, n)
        SELECT l.level, k.join_year, k.age_group,
               CASE WHEN l.level = 0 THEN 0 ELSE h.follower_count >> (64 - 8 * l.level) END, sum(h.s)
          FROM (SELECT age_group, join_year, follower_count, sum(s) AS s FROM u
                 WHERE follower_count IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(s) <> 0) h
         CROSS JOIN LATERAL (VALUES (h.age_group, NULL::int, h.age_group IS NOT NULL),
                                    (NULL, h.join_year, h.join_year IS NOT NULL),
                                    (h.age_group, h.join_year, h.age_group IS NOT NULL AND h.join_year IS NOT NULL))
               k(age_group, join_year, kept)
         CROSS JOIN generate_series(0, 8) l(level)
         WHERE k.kept
         GROUP BY 1, 2, 3, 4 HAVING sum(h.s) <> 0
        ON CONFLICT (level, join_year, age_group, prefix) DO UPDATE SET n = t.n + excluded.n)$t$;
    ret text := E'\nSELECT ' || CASE WHEN kind IN ('pin', 'geo') THEN 'ARRAY(SELECT country FROM gone3), ARRAY(SELECT DISTINCT country FROM a1_off)'
                                     ELSE 'NULL::text[], NULL::text[]' END
                || ', ' || CASE WHEN kind IN ('pin', 'user') THEN 'ARRAY(SELECT DISTINCT age_group FROM a4_off)'
                                ELSE 'NULL::text[]' END;
BEGIN
    d := CASE op
        WHEN 'INSERT' THEN format('SELECT %s, 1 AS s FROM new_rows', cols)
        WHEN 'DELETE' THEN format('SELECT %s, -1 AS s FROM old_rows', cols)
        WHEN 'UPDATE' THEN format('(SELECT *, 1 AS s FROM (SELECT %1$s FROM new_rows EXCEPT ALL SELECT %1$s FROM old_rows) a) '
                                  'UNION ALL (SELECT *, -1 FROM (SELECT %1$s FROM old_rows EXCEPT ALL SELECT %1$s FROM new_rows) b)',
                                  cols)
    END;
    IF kind = 'pin' THEN
        RETURN 'WITH d AS MATERIALIZED (' || d || '),
g AS MATERIALIZED (SELECT d.category, d.poster_name, d.follower_count, d.s, g.country, pinpipe.year_of(g."timestamp") AS post_year
                     FROM d CROSS JOIN LATERAL (SELECT g.country, g."timestamp" FROM pinpipe.geo_clean g
                                                 WHERE g.ind = d.ind OFFSET 0) g),
u AS MATERIALIZED (SELECT d.category, d.follower_count, d.s, pinpipe.age_group(u.age) AS age_group, pinpipe.year_of(u.date_joined) AS join_year
                     FROM d CROSS JOIN LATERAL (SELECT u.age, u.date_joined FROM pinpipe.user_clean u
                                                 WHERE u.ind = d.ind OFFSET 0) u),
a1 AS (' || format(upsert, 'analytics_country_category', 'country, category', 'g', 'country IS NOT NULL AND category IS NOT NULL') || ' RETURNING t.*),
' || format(cattop, 'a1', 'country', 'analytics_country_category_top') || ',
a2 AS (' || format(upsert, 'analytics_year_category', 'post_year, category', 'g', 'post_year IS NOT NULL AND category IS NOT NULL') || '),
' || top || ',
a4 AS (' || format(upsert, 'analytics_age_category', 'age_group, category', 'u', 'age_group IS NOT NULL AND category IS NOT NULL') || ' RETURNING t.*),
' || format(cattop, 'a4', 'age_group', 'analytics_age_category_top') || ',
' || ranks || ret;
    ELSIF kind = 'geo' THEN
        RETURN 'WITH d AS MATERIALIZED (' || d || '),
g AS MATERIALIZED (SELECT p.category, p.poster_name, p.follower_count, d.s, d.country, d.post_year
                     FROM d CROSS JOIN LATERAL (SELECT p.category, p.poster_name, p.follower_count
                                                  FROM pinpipe.pin_clean p WHERE p.ind = d.ind OFFSET 0) p),
a1 AS (' || format(upsert, 'analytics_country_category', 'country, category', 'g', 'country IS NOT NULL AND category IS NOT NULL') || ' RETURNING t.*),
' || format(cattop, 'a1', 'country', 'analytics_country_category_top') || ',
a2 AS (' || format(upsert, 'analytics_year_category', 'post_year, category', 'g', 'post_year IS NOT NULL AND category IS NOT NULL') || '),
' || top || ret;
    ELSE
        RETURN 'WITH d AS MATERIALIZED (' || d || '),
u AS MATERIALIZED (SELECT p.category, p.follower_count, d.s, d.age_group, d.join_year
                     FROM d CROSS JOIN LATERAL (SELECT p.category, p.follower_count
                                                  FROM pinpipe.pin_clean p WHERE p.ind = d.ind OFFSET 0) p),
a4 AS (' || format(upsert, 'analytics_age_category', 'age_group, category', 'u', 'age_group IS NOT NULL AND category IS NOT NULL') || ' RETURNING t.*),
' || format(cattop, 'a4', 'age_group', 'analytics_age_category_top') || ',
' || ranks || ',
a6 AS (' || format(upsert, 'analytics_join_year', 'join_year', 'd', 'join_year IS NOT NULL') || ')' || ret;
    END IF;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_delta_sql(text, text) IS
'internal: the statement that adds the changes of one clean-table statement (kind pin, geo or user; op INSERT, UPDATE or DELETE) to the analytics caches';

CREATE FUNCTION pinpipe.analytics_recompute_category_tops(countries text[], age_groups text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(countries) > 0 THEN
        WITH e AS (
            SELECT DISTINCT x.country FROM unnest(countries) x(country)
             WHERE NOT EXISTS (SELECT FROM pinpipe.analytics_country_category_top b WHERE b.country = x.country)),
        m AS (
            SELECT c.country, max(c.n) AS top FROM pinpipe.analytics_country_category c JOIN e ON e.country = c.country
             WHERE c.n > 0 GROUP BY 1)
        INSERT INTO pinpipe.analytics_country_category_top (country, category, n)
        SELECT c.country, c.category, c.n
          FROM pinpipe.analytics_country_category c JOIN m ON m.country = c.country AND m.top = c.n;
    END IF;
    IF cardinality(age_groups) > 0 THEN
        WITH e AS (
            SELECT DISTINCT x.age_group FROM unnest(age_groups) x(age_group)
             WHERE NOT EXISTS (SELECT FROM pinpipe.analytics_age_category_top b WHERE b.age_group = x.age_group)),
        m AS (
            SELECT c.age_group, max(c.n) AS top FROM pinpipe.analytics_age_category c JOIN e ON e.age_group = c.age_group
             WHERE c.n > 0 GROUP BY 1)
        INSERT INTO pinpipe.analytics_age_category_top (age_group, category, n)
        SELECT c.age_group, c.category, c.n
          FROM pinpipe.analytics_age_category c JOIN m ON m.age_group = c.age_group AND m.top = c.n;
    END IF;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_recompute_category_tops(text[], text[]) IS
'internal: recompute analytics_country_category_top and analytics_age_category_top of the given countries and age groups that have no row there, from analytics_country_category and analytics_age_category';

CREATE OR REPLACE FUNCTION pinpipe.analytics_maintain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pending text := pg_catalog.regexp_replace(pg_catalog.current_setting('pinpipe_analytics.pending', true),
                                              ',' || TG_TABLE_NAME || '(?=,|$)', '');
    -- the statement's last AFTER trigger on this table (an INSERT ... ON
    -- CONFLICT DO UPDATE fires two, a MERGE up to three)
    last bool := pg_catalog.strpos(pending || ',', ',' || TG_TABLE_NAME || ',') = 0;
    changed bool;
    emptied bool;
    gone text[];
    country_cats text[];
    age_cats text[];
BEGIN
    -- this statement is done (see analytics_before)
    PERFORM pg_catalog.set_config('pinpipe_analytics.pending', pending, true);
    <<work>>
    BEGIN
        -- most worker statements fire an INSERT or an UPDATE trigger with no rows
        IF TG_OP = 'DELETE' THEN
            PERFORM FROM old_rows LIMIT 1;
        ELSE
            PERFORM FROM new_rows LIMIT 1;
        END IF;
        IF NOT FOUND THEN
            EXIT work;
        END IF;
        IF TG_OP = 'DELETE' THEN
            -- a mass delete (reclean() deletes every row): when the table is
            -- now empty, the caches built from it are empty too, which is
            -- cheaper to write than the delta
            SELECT count(*) >= 10000 INTO emptied FROM old_rows;
            IF emptied THEN
                EXECUTE format('SELECT NOT EXISTS (SELECT FROM pinpipe.%I)', TG_TABLE_NAME) INTO emptied;
            END IF;
            IF emptied THEN
                IF TG_ARGV[0] IN ('pin', 'geo') THEN
                    DELETE FROM pinpipe.analytics_country_category;
                    DELETE FROM pinpipe.analytics_country_category_top;
                    DELETE FROM pinpipe.analytics_year_category;
                    DELETE FROM pinpipe.analytics_country_top;
                    DELETE FROM pinpipe.analytics_country_poster;
                END IF;
                IF TG_ARGV[0] IN ('pin', 'user') THEN
                    DELETE FROM pinpipe.analytics_age_category;
                    DELETE FROM pinpipe.analytics_age_category_top;
                    DELETE FROM pinpipe.analytics_followers_rank;
                END IF;
                IF TG_ARGV[0] = 'user' THEN
                    DELETE FROM pinpipe.analytics_join_year;
                END IF;
                EXIT work;
            END IF;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            -- re-sent rows (the emulation's duplicates) change nothing the caches use
            EXECUTE format('SELECT EXISTS (SELECT %1$s FROM new_rows EXCEPT ALL SELECT %1$s FROM old_rows)',
                           pinpipe.analytics_delta_columns(TG_ARGV[0]))
                INTO changed;
            IF NOT changed THEN
                EXIT work;
            END IF;
        END IF;
        -- EXECUTE plans it each time, for this statement's row count
        EXECUTE pinpipe.analytics_delta_sql(TG_ARGV[0], TG_OP) INTO gone, country_cats, age_cats;
        -- (from the counts, which this statement's later triggers, if any,
        -- change by their own deltas)
        PERFORM pinpipe.analytics_recompute_category_tops(country_cats, age_cats);
        -- the countries to check once the statement's last trigger ran
        IF cardinality(gone) > 0 THEN
            PERFORM pg_catalog.set_config('pinpipe_analytics.tops',
                                          (coalesce(NULLIF(pg_catalog.current_setting('pinpipe_analytics.tops', true), ''),
                                                    '{}')::text[] || gone)::text, true);
        END IF;
    END;
    -- Countries left with no pin at their top follower count are recomputed
    -- from the clean tables, once the statement's every change is counted:
    -- the clean tables already show them all. Only the countries that lost
    -- pins at their top are looked at.
    IF last AND TG_ARGV[0] IN ('pin', 'geo') THEN
        gone := coalesce(NULLIF(pg_catalog.current_setting('pinpipe_analytics.tops', true), ''), '{}')::text[];
        IF cardinality(gone) > 0 THEN
            PERFORM pg_catalog.set_config('pinpipe_analytics.tops', '', true);
            PERFORM pinpipe.analytics_recompute_tops(ARRAY(
                SELECT t.country FROM pinpipe.analytics_country_top t
                 WHERE t.country = ANY (gone)
                   AND NOT EXISTS (SELECT FROM pinpipe.analytics_country_poster c
                                    WHERE c.country = t.country AND c.follower_count = t.top AND c.n > 0)));
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_maintain() IS
'trigger: add the changes of a statement on pin_clean, geo_clean or user_clean to the analytics caches';

CREATE OR REPLACE FUNCTION pinpipe.analytics_median(by_age bool, by_year bool, from_year int, to_year int, method text)
RETURNS TABLE (age_group text, join_year int, median_follower_count float8)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF method IS NULL OR method NOT IN ('exact', 'lower') THEN
        RAISE EXCEPTION 'invalid median method %', coalesce('"' || method || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The median methods are ''exact'' (percentile_cont(0.5), the mean of the two middle values) and ''lower'' (percentile_disc(0.5), the lower middle value).',
                  HINT = 'Use method => ''exact'', the default, or method => ''lower'' to match Spark''s percentile_approx.';
    END IF;
    IF NOT (by_age OR by_year) THEN
        RAISE EXCEPTION 'a median must be grouped by age group, by join year or by both'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The follower counts are kept per age group, per join year and per both.',
                  HINT = 'Call the median_followers_* functions.';
    END IF;
    RETURN QUERY EXECUTE format($q$
    WITH RECURSIVE w AS (
        SELECT f.age_group AS a, f.join_year AS y, f.n::float8 AS total,
               floor(0.5::float8 * (f.n - 1)) AS lo_pos, ceil(0.5::float8 * (f.n - 1)) AS hi_pos
          FROM pinpipe.analytics_followers_rank f
         WHERE f.level = 0 AND f.n > 0 AND %1$s AND %3$s
    ), r AS (
        SELECT w.a, w.y, w.total, w.lo_pos, h.hi, 0 AS level, 0::bigint AS prefix,
               CASE WHEN h.hi THEN w.hi_pos ELSE w.lo_pos END AS pos
          FROM w CROSS JOIN (VALUES (false), (true)) h(hi)
         WHERE NOT h.hi OR w.hi_pos > w.lo_pos
        UNION ALL
        SELECT r.a, r.y, r.total, r.lo_pos, r.hi, r.level + 1, c.prefix, r.pos - c.before
          FROM r CROSS JOIN LATERAL (
              SELECT x.prefix, x.cum - x.n AS before
                FROM (SELECT f.prefix, f.n::float8 AS n, sum(f.n::float8) OVER (ORDER BY f.prefix) AS cum
                        FROM pinpipe.analytics_followers_rank f
                       WHERE f.level = r.level + 1 AND %2$s AND f.n > 0
                         AND f.prefix BETWEEN CASE WHEN r.level = 0 THEN -128 ELSE r.prefix * 256 END
                                          AND CASE WHEN r.level = 0 THEN 127 ELSE r.prefix * 256 + 255 END) x
               WHERE x.cum > r.pos
               ORDER BY x.prefix LIMIT 1) c
         WHERE r.level < 8
    ), m AS (
        SELECT r.a, r.y, min(r.total) AS total, min(r.lo_pos) AS lo_pos,
               min(r.prefix) FILTER (WHERE NOT r.hi)::float8 AS lo, min(r.prefix) FILTER (WHERE r.hi)::float8 AS hi
          FROM r WHERE r.level = 8 GROUP BY r.a, r.y
    )
    SELECT m.a, m.y, CASE WHEN $1 = 'lower' THEN m.lo
                          ELSE m.lo + (coalesce(m.hi, m.lo) - m.lo) * (0.5::float8 * (m.total - 1) - m.lo_pos) END
      FROM m
     ORDER BY pinpipe.age_group_order(m.a), m.a COLLATE "default", m.y
    $q$,
        CASE WHEN by_age AND by_year THEN 'f.age_group IS NOT NULL AND f.join_year IS NOT NULL'
             WHEN by_age THEN 'f.age_group IS NOT NULL AND f.join_year IS NULL'
             ELSE 'f.age_group IS NULL AND f.join_year IS NOT NULL' END,
        CASE WHEN by_year THEN 'f.join_year = r.y' ELSE 'f.join_year IS NULL' END
        || ' AND ' || CASE WHEN by_age THEN 'f.age_group = r.a' ELSE 'f.age_group IS NULL' END,
        CASE WHEN by_year THEN 'f.join_year BETWEEN coalesce($2, -2147483648) AND coalesce($3, 2147483647)'
             ELSE 'true' END)
    USING method, from_year, to_year;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_median(bool, bool, int, int, text) IS
'internal: median follower count from the analytics_followers_rank radix trees, by age group and/or join year (see the median_followers_* functions)';

CREATE OR REPLACE FUNCTION pinpipe.analytics_cache_definitions(OUT cache_table text, OUT cols text, OUT query text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $defs$
    SELECT * FROM (VALUES
        ('analytics_country_category', 'country, category, n',
         $q$SELECT g.country, p.category, count(*) FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
             WHERE g.country IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2$q$),
        ('analytics_year_category', 'post_year, category, n',
         $q$SELECT pinpipe.year_of(g."timestamp"), p.category, count(*) FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
             WHERE pinpipe.year_of(g."timestamp") IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2$q$),
        ('analytics_country_category_top', 'country, category, n',
         $q$SELECT country, category, n
              FROM (SELECT g.country, p.category, count(*) AS n, rank() OVER (PARTITION BY g.country ORDER BY count(*) DESC) AS r
                      FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
                     WHERE g.country IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2) c
             WHERE r = 1$q$),
        ('analytics_country_top', 'country, top',
         $q$SELECT g.country, max(p.follower_count) FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
             WHERE g.country IS NOT NULL AND p.follower_count IS NOT NULL GROUP BY 1$q$),
        ('analytics_country_poster', 'country, follower_count, poster_name, n',
         $q$SELECT g.country, p.follower_count, p.poster_name, count(*)
              FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
              JOIN (SELECT g2.country, max(p2.follower_count) AS top
                      FROM pinpipe.pin_clean p2 JOIN pinpipe.geo_clean g2 ON g2.ind = p2.ind
                     WHERE g2.country IS NOT NULL GROUP BY 1) t ON t.country = g.country AND t.top = p.follower_count
             GROUP BY 1, 2, 3$q$),
        ('analytics_age_category', 'age_group, category, n',
         $q$SELECT pinpipe.age_group(u.age), p.category, count(*) FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
             WHERE pinpipe.age_group(u.age) IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2$q$),
        ('analytics_age_category_top', 'age_group, category, n',
         $q$SELECT age_group, category, n
              FROM (SELECT pinpipe.age_group(u.age) AS age_group, p.category, count(*) AS n,
                           rank() OVER (PARTITION BY pinpipe.age_group(u.age) ORDER BY count(*) DESC) AS r
                      FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
                     WHERE pinpipe.age_group(u.age) IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2) c
             WHERE r = 1$q$),
        ('analytics_followers_rank', 'level, join_year, age_group, prefix, n',
         $q$WITH h AS (SELECT pinpipe.age_group(u.age) AS a, pinpipe.year_of(u.date_joined) AS y, p.follower_count AS v,
                             count(*) AS n
                        FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
                       WHERE p.follower_count IS NOT NULL GROUP BY 1, 2, 3),
                 k AS (SELECT a, NULL::int AS y, v, n FROM h WHERE a IS NOT NULL
                       UNION ALL SELECT NULL, y, v, n FROM h WHERE y IS NOT NULL
                       UNION ALL SELECT a, y, v, n FROM h WHERE a IS NOT NULL AND y IS NOT NULL)
            SELECT l.level, k.y, k.a, CASE WHEN l.level = 0 THEN 0 ELSE k.v >> (64 - 8 * l.level) END, sum(k.n)::bigint
              FROM k CROSS JOIN generate_series(0, 8) l(level)
             GROUP BY 1, 2, 3, 4$q$),
        ('analytics_join_year', 'join_year, n',
         $q$SELECT pinpipe.year_of(u.date_joined), count(*) FROM pinpipe.user_clean u
             WHERE pinpipe.year_of(u.date_joined) IS NOT NULL GROUP BY 1$q$)
        ) v(cache_table, cols, query)
$defs$;
COMMENT ON FUNCTION pinpipe.analytics_cache_definitions() IS
'each analytics cache table with its columns and the query over the clean tables that gives its rows';

REVOKE ALL ON FUNCTION pinpipe.analytics_recompute_category_tops(text[], text[]) FROM PUBLIC;
GRANT SELECT ON pinpipe.analytics_country_category_top, pinpipe.analytics_age_category_top,
    pinpipe.analytics_followers_rank TO pinpipe_admin;

-- src/sql/reader.sql: the reader role, its grants, and the analytics
-- functions that name it in their permission errors

--
-- pinpipe_reader: everything a reader or the dashboard needs, in one role
-- (GRANT pinpipe_reader TO alice): the clean tables, the analytics caches,
-- the status views, the dead letters, offset gaps and ingest history, and
-- the analytics functions. The nine analytics functions of analytics.sql
-- are redefined here with a first statement that checks the caches'
-- privileges, so that a role without them is told which role to grant
-- (a permission error of the executor has no hint).
--

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pinpipe_reader') THEN
        CREATE ROLE pinpipe_reader NOLOGIN;
    END IF;
END
$$;

GRANT SELECT ON pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean,
    pinpipe.analytics_country_category, pinpipe.analytics_year_category, pinpipe.analytics_country_top,
    pinpipe.analytics_country_poster, pinpipe.analytics_age_category, pinpipe.analytics_join_year,
    pinpipe.analytics_refreshes, pinpipe.analytics_country_category_top, pinpipe.analytics_age_category_top,
    pinpipe.analytics_followers_rank,
    pinpipe.status, pinpipe.partition_lag, pinpipe.dead_letters, pinpipe.offset_gaps,
    pinpipe.ingest_history TO pinpipe_reader;
GRANT SELECT ON pinpipe.ingest_history TO pinpipe_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION pinpipe.worker_status(), pinpipe.partition_status() TO pinpipe_reader;

-- Refuse, with the role to grant, a caller who may not read the caches.
CREATE FUNCTION pinpipe.require_reader(function_name text, VARIADIC tables text[]) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        IF NOT has_table_privilege(t, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied for function %', function_name
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = format('The function reads %s, which only members of pinpipe_reader may read.', t),
                      HINT = format('Grant the reader role: GRANT pinpipe_reader TO %I;', current_user);
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pinpipe.require_reader(text, text[]) IS
'internal: raise insufficient_privilege, naming pinpipe_reader, unless the caller may read every table given';

CREATE OR REPLACE FUNCTION pinpipe.popular_category_by_country()
RETURNS TABLE (country text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_country', 'pinpipe.analytics_country_category_top');
    SELECT c.country, c.category, c.n
      FROM pinpipe.analytics_country_category_top c
     ORDER BY c.country COLLATE "default", c.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.category_count_by_year(from_year int DEFAULT 2018, to_year int DEFAULT 2022)
RETURNS TABLE (post_year int, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.category_count_by_year', 'pinpipe.analytics_year_category');
    SELECT a.post_year, a.category, a.n
      FROM pinpipe.analytics_year_category a
     WHERE a.n > 0
       -- (one range, which the primary key's index answers)
       AND a.post_year BETWEEN coalesce(category_count_by_year.from_year, -2147483648)
                           AND coalesce(category_count_by_year.to_year, 2147483647)
     ORDER BY a.post_year, a.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.most_followed_by_country()
RETURNS TABLE (country text, poster_name text, follower_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.most_followed_by_country', 'pinpipe.analytics_country_poster');
    -- the cache holds only the pins at each country's top follower count,
    -- read in the answer's order (analytics_country_poster_order_idx)
    SELECT a.country, a.poster_name, a.follower_count
      FROM pinpipe.analytics_country_poster a
     WHERE a.n > 0
     ORDER BY a.country COLLATE "default", a.poster_name COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.most_followed_country()
RETURNS TABLE (country text, follower_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.most_followed_country', 'pinpipe.analytics_country_top');
    SELECT t.country, t.top
      FROM pinpipe.analytics_country_top t
     WHERE t.top = (SELECT max(t2.top) FROM pinpipe.analytics_country_top t2)
     ORDER BY t.country COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.popular_category_by_age_group()
RETURNS TABLE (age_group text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_age_group', 'pinpipe.analytics_age_category_top');
    SELECT c.age_group, c.category, c.n
      FROM pinpipe.analytics_age_category_top c
     ORDER BY pinpipe.age_group_order(c.age_group), c.age_group COLLATE "default", c.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_age_group(method text DEFAULT 'exact')
RETURNS TABLE (age_group text, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_age_group', 'pinpipe.analytics_followers_rank');
    SELECT m.age_group, m.median_follower_count
      FROM pinpipe.analytics_median(true, false, NULL, NULL, median_followers_by_age_group.method) m;
END;

CREATE OR REPLACE FUNCTION pinpipe.users_joined_by_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020)
RETURNS TABLE (post_year int, number_users_joined bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.users_joined_by_year', 'pinpipe.analytics_join_year');
    SELECT a.join_year, a.n
      FROM pinpipe.analytics_join_year a
     WHERE a.n > 0
       AND a.join_year BETWEEN coalesce(users_joined_by_year.from_year, -2147483648)
                           AND coalesce(users_joined_by_year.to_year, 2147483647)
     ORDER BY a.join_year;
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_join_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020,
                                                                 method text DEFAULT 'exact')
RETURNS TABLE (post_year int, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_join_year', 'pinpipe.analytics_followers_rank');
    SELECT m.join_year, m.median_follower_count
      FROM pinpipe.analytics_median(false, true, median_followers_by_join_year.from_year,
                                    median_followers_by_join_year.to_year, median_followers_by_join_year.method) m;
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_age_group_and_join_year(from_year int DEFAULT 2015,
                                                                               to_year int DEFAULT 2020,
                                                                               method text DEFAULT 'exact')
RETURNS TABLE (age_group text, post_year int, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_age_group_and_join_year',
                                  'pinpipe.analytics_followers_rank');
    SELECT m.age_group, m.join_year, m.median_follower_count
      FROM pinpipe.analytics_median(true, true, median_followers_by_age_group_and_join_year.from_year,
                                    median_followers_by_age_group_and_join_year.to_year,
                                    median_followers_by_age_group_and_join_year.method) m;
END;

GRANT EXECUTE ON FUNCTION pinpipe.popular_category_by_country(), pinpipe.category_count_by_year(int, int),
    pinpipe.most_followed_by_country(), pinpipe.most_followed_country(), pinpipe.popular_category_by_age_group(),
    pinpipe.median_followers_by_age_group(text), pinpipe.users_joined_by_year(int, int),
    pinpipe.median_followers_by_join_year(int, int, text),
    pinpipe.median_followers_by_age_group_and_join_year(int, int, text),
    pinpipe.analytics_median(bool, bool, int, int, text) TO pinpipe_reader;

--
-- reclean() is an admin function, like pause() and resume(): superusers and
-- members of pinpipe_admin may call it (it runs the rebuild as the
-- extension's owner, reclean_tables()); anyone else is told which role to
-- grant.
--

-- Refuse, with the role to grant, a caller who is not an admin.
CREATE FUNCTION pinpipe.require_admin(function_name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (pg_has_role(current_user, 'pinpipe_admin', 'USAGE')
            OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RAISE EXCEPTION 'permission denied for function %', function_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only superusers and members of pinpipe_admin may call it.',
                  HINT = format('Grant the admin role: GRANT pinpipe_admin TO %I;', current_user);
    END IF;
END;
$$;
COMMENT ON FUNCTION pinpipe.require_admin(text) IS
'internal: raise insufficient_privilege, naming pinpipe_admin, unless the current user is a superuser or a member of pinpipe_admin';

CREATE FUNCTION pinpipe.reclean_tables(OUT pin_rows bigint, OUT geo_rows bigint, OUT user_rows bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Lock out the worker's upserts while the tables are rebuilt.
    LOCK TABLE pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean IN EXCLUSIVE MODE;

    DELETE FROM pinpipe.pin_clean;
    INSERT INTO pinpipe.pin_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON ("index") r
              FROM pinpipe.pin_raw r
             ORDER BY "index", kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_pin_raw(latest.r) c;
    GET DIAGNOSTICS pin_rows = ROW_COUNT;

    DELETE FROM pinpipe.geo_clean;
    INSERT INTO pinpipe.geo_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.geo_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_geo_raw(latest.r) c;
    GET DIAGNOSTICS geo_rows = ROW_COUNT;

    DELETE FROM pinpipe.user_clean;
    INSERT INTO pinpipe.user_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.user_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_user_raw(latest.r) c;
    GET DIAGNOSTICS user_rows = ROW_COUNT;
END;
$$;
COMMENT ON FUNCTION pinpipe.reclean_tables() IS
'internal: the rebuild of pinpipe.reclean(), as the extension''s owner';
REVOKE ALL ON FUNCTION pinpipe.reclean_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.reclean_tables() TO pinpipe_admin;

CREATE OR REPLACE FUNCTION pinpipe.reclean(OUT pin_rows bigint, OUT geo_rows bigint, OUT user_rows bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pinpipe.require_admin('pinpipe.reclean');
    SELECT t.pin_rows, t.geo_rows, t.user_rows INTO pin_rows, geo_rows, user_rows FROM pinpipe.reclean_tables() t;
END;
$$;
GRANT EXECUTE ON FUNCTION pinpipe.reclean() TO PUBLIC;
-- pause() and resume() check the role themselves (status.c) and name
-- pinpipe_admin: anyone may call them to be told so
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume() TO PUBLIC;

-- 0.2 has the same objects as 0.1 so far (its install script is 0.1's,
-- split into pieces), so there is nothing to change yet.

--
-- Sources: each raw row, dead letter and stored offset names the incarnation
-- of its topic it came from (pinpipe.sources), so that a recreated topic, a
-- new cluster or another prefix never collides with the rows stored before.
-- The rows of 0.1 get one source per topic they were read from (its cluster
-- unknown: the worker records the cluster it finds there on its next start).
--
CREATE TABLE pinpipe.sources (
    id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    cluster_id text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL
        CHECK (reason IN ('first use', 'topic recreated', 'cluster changed', 'prefix changed'))
);
CREATE INDEX sources_topic_idx ON pinpipe.sources (topic, id);
COMMENT ON TABLE pinpipe.sources IS
'incarnations of the topics: a topic on one cluster, from the first message the worker read of it; a new one begins when the cluster id changes or a partition ends below its stored offset (topic recreated). Rows, dead letters and offsets name theirs';
SELECT pg_catalog.pg_extension_config_dump('pinpipe.sources', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.sources_id_seq', '');
GRANT SELECT ON pinpipe.sources TO pinpipe_admin;

INSERT INTO pinpipe.sources (topic, first_seen, reason)
SELECT topic, min(since), 'first use'
  FROM (SELECT topic, min(updated_at) AS since FROM pinpipe.offsets GROUP BY topic
        UNION ALL
        SELECT topic, min(received_at) FROM pinpipe.dead_letters GROUP BY topic) t
 GROUP BY topic
 ORDER BY topic;

ALTER TABLE pinpipe.offsets ADD COLUMN source int;
UPDATE pinpipe.offsets o SET source = s.id FROM pinpipe.sources s WHERE s.topic = o.topic;
ALTER TABLE pinpipe.offsets ALTER COLUMN source SET NOT NULL;
ALTER TABLE pinpipe.offsets DROP CONSTRAINT offsets_pkey;
ALTER TABLE pinpipe.offsets ADD PRIMARY KEY (topic, source, kafka_partition);

ALTER TABLE pinpipe.dead_letters
    ADD COLUMN source int,
    ADD COLUMN error_detail text,
    ADD COLUMN kafka_key bytea,
    ADD COLUMN kafka_headers jsonb;
UPDATE pinpipe.dead_letters d SET source = s.id FROM pinpipe.sources s WHERE s.topic = d.topic;
ALTER TABLE pinpipe.dead_letters ALTER COLUMN source SET NOT NULL;
ALTER TABLE pinpipe.dead_letters DROP CONSTRAINT dead_letters_pkey;
ALTER TABLE pinpipe.dead_letters ADD PRIMARY KEY (topic, source, kafka_partition, kafka_offset);

-- A raw table's rows from Kafka (kafka_partition >= 0) came from one topic
-- of its kind: the current prefix's if it has a source, else the one whose
-- offsets moved last (0.1 could not tell two prefixes' rows apart).
DO $$
DECLARE
    kind text;
    src int;
BEGIN
    FOREACH kind IN ARRAY ARRAY['pin', 'geo', 'user']
    LOOP
        EXECUTE format('ALTER TABLE pinpipe.%I DROP CONSTRAINT %I', kind || '_raw', kind || '_raw_pkey');
        EXECUTE format('ALTER TABLE pinpipe.%I ADD COLUMN kafka_source int NOT NULL DEFAULT 0, '
                       'ADD COLUMN kafka_key bytea, ADD COLUMN kafka_headers jsonb', kind || '_raw');
        SELECT s.id INTO src
          FROM pinpipe.sources s
         WHERE s.topic LIKE '%.' || kind
         ORDER BY s.topic = current_setting('pinpipe.topic_prefix', true) || '.' || kind DESC,
                  (SELECT max(o.updated_at) FROM pinpipe.offsets o WHERE o.source = s.id) DESC NULLS LAST,
                  s.id
         LIMIT 1;
        IF src IS NOT NULL THEN
            EXECUTE format('UPDATE pinpipe.%I SET kafka_source = $1 WHERE kafka_partition >= 0', kind || '_raw')
              USING src;
        END IF;
        EXECUTE format('ALTER TABLE pinpipe.%I ADD PRIMARY KEY (kafka_source, kafka_partition, kafka_offset)',
                       kind || '_raw');
    END LOOP;
END;
$$;

-- Rewind and replay (src/sql/replay.sql, the same statements).
CREATE TABLE pinpipe.rewind_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    kafka_partition int NOT NULL,
    to_offset bigint CHECK (to_offset >= 0),
    to_time timestamptz,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by name NOT NULL DEFAULT session_user,
    applied_at timestamptz,
    from_offset bigint,
    resumed_offset bigint,
    completed_at timestamptz,
    skipped bigint NOT NULL DEFAULT 0,
    stored bigint NOT NULL DEFAULT 0,
    CHECK ((to_offset IS NULL) <> (to_time IS NULL))
);
CREATE INDEX rewind_requests_open ON pinpipe.rewind_requests (topic, kafka_partition)
    WHERE completed_at IS NULL;
COMMENT ON TABLE pinpipe.rewind_requests IS
'rewinds asked for with pinpipe.rewind(), applied by the worker at its next batch boundary: where the partition was (from_offset) and resumed, and, of the messages read again below from_offset, how many were stored already (skipped) and how many were missing (stored)';
SELECT pg_catalog.pg_extension_config_dump('pinpipe.rewind_requests', '');

ALTER TABLE pinpipe.dead_letters ADD COLUMN replayed_at timestamptz;
COMMENT ON COLUMN pinpipe.dead_letters.replayed_at IS
'when pinpipe.replay_dead_letters() stored the message as rows (NULL: not yet)';

CREATE FUNCTION pinpipe.rewind(topic text, kafka_partition int, to_offset bigint)
RETURNS SETOF pinpipe.rewind_requests
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored_next bigint;
BEGIN
    -- the partition's offset in the topic's current source (the newest)
    SELECT o.next_offset INTO stored_next FROM pinpipe.offsets o
     WHERE o.topic = rewind.topic AND o.kafka_partition = rewind.kafka_partition
     ORDER BY o.source DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no stored offset for topic "%" partition %', topic, kafka_partition
            USING ERRCODE = 'undefined_object',
                  HINT = 'A rewind applies to a partition the worker has consumed: see pinpipe.offsets.';
    END IF;
    IF to_offset < 0 OR to_offset > stored_next THEN
        RAISE EXCEPTION 'cannot rewind topic "%" partition % to offset %', topic, kafka_partition, to_offset
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The stored next offset is %s; a rewind goes back, to an offset from 0 to it.', stored_next),
                  HINT = 'Skipping messages forward is not a rewind: it would lose them without a trace.';
    END IF;
    RETURN QUERY
    INSERT INTO pinpipe.rewind_requests (topic, kafka_partition, to_offset)
    VALUES (topic, kafka_partition, to_offset) RETURNING *;
END;
$$;
COMMENT ON FUNCTION pinpipe.rewind(text, int, bigint) IS
'read a partition again from to_offset, at the worker''s next batch boundary; messages stored already are skipped and counted, missing ones stored; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.rewind(topic text, to_time timestamptz)
RETURNS SETOF pinpipe.rewind_requests
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pinpipe.offsets o WHERE o.topic = rewind.topic) THEN
        RAISE EXCEPTION 'no stored offset for topic "%"', topic
            USING ERRCODE = 'undefined_object',
                  HINT = 'A rewind applies to a topic the worker has consumed: see pinpipe.offsets.';
    END IF;
    RETURN QUERY
    INSERT INTO pinpipe.rewind_requests (topic, kafka_partition, to_time)
    SELECT o.topic, o.kafka_partition, to_time FROM pinpipe.offsets o
     WHERE o.topic = rewind.topic
       AND o.source = (SELECT max(c.source) FROM pinpipe.offsets c WHERE c.topic = rewind.topic)
     ORDER BY o.kafka_partition RETURNING *;
END;
$$;
COMMENT ON FUNCTION pinpipe.rewind(text, timestamptz) IS
'read every stored partition of a topic again from its first message at or after to_time (the broker''s offsets for times), at the worker''s next batch boundary; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.replay_dead_letters(topic text DEFAULT NULL, error text DEFAULT NULL)
RETURNS TABLE (outcome text, error text, messages bigint)
AS 'MODULE_PATHNAME', 'pinpipe_replay_dead_letters'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pinpipe.replay_dead_letters(text, text) IS
'run the dead letters not yet replayed (of a topic, with an error LIKE a pattern) through the worker''s decoder and cleaner in one transaction: what succeeds becomes rows and is marked replayed_at; returns counts by outcome and error; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.purge_dead_letters(older_than interval)
RETURNS bigint
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM pinpipe.dead_letters WHERE received_at < now() - older_than RETURNING 1)
    SELECT count(*) FROM gone;
END;
COMMENT ON FUNCTION pinpipe.purge_dead_letters(interval) IS
'delete the dead letters received more than older_than ago (replayed or not); returns how many; superusers and pinpipe_admin only';

REVOKE ALL ON FUNCTION pinpipe.rewind(text, int, bigint), pinpipe.rewind(text, timestamptz),
    pinpipe.replay_dead_letters(text, text), pinpipe.purge_dead_letters(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.rewind(text, int, bigint), pinpipe.rewind(text, timestamptz),
    pinpipe.replay_dead_letters(text, text), pinpipe.purge_dead_letters(interval) TO pinpipe_admin;
GRANT SELECT ON pinpipe.rewind_requests TO pinpipe_admin;

-- the analytics caches new in 0.2 filled (see "Analytics at any distribution")
SELECT count(*) FROM pinpipe.analytics_rebuild();
