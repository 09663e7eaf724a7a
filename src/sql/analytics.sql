--
-- Analytics
--
-- The notebooks' queries as functions. Each reads aggregate tables
-- (pinpipe.analytics_*), not the clean tables, and reads only about as many
-- of their rows as it returns (times a bound: at most 8 x 256 rows per
-- median), so that its time depends on the size of its answer, not on the
-- number of pins nor on the number of distinct values of any column. Statement-level triggers with transition tables
-- on the clean tables keep the aggregates equal to the clean tables in the
-- writing transaction: the worker's one-statement upserts, reclean(), manual
-- DML and COPY. TRUNCATE rebuilds them; pinpipe.refresh() rebuilds them on
-- demand (after a restore with --disable-triggers, or on a schedule).
-- pinpipe.analytics_check() compares every function with its plain-SQL
-- definition over the clean tables.
--
-- Conventions shared by every function: pins join geo_clean and user_clean on
-- ind; a row with NULL in a grouping column (country, category, age group,
-- year) is left out; NULL follower counts are ignored; age groups come from
-- pinpipe.age_group (NULL, so left out, under 18); years are inclusive ranges
-- and a NULL bound means unbounded; from_year > to_year gives no rows.
--

-- The year of a timestamp as int; NULL for NULL and +-infinity. Not STRICT,
-- so that the planner inlines it.
CREATE FUNCTION pinpipe.year_of(ts timestamp) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN isfinite(ts) THEN extract(year FROM ts)::int END;
COMMENT ON FUNCTION pinpipe.year_of(timestamp) IS
'the year of a timestamp as int (the post_year of the analytics functions); NULL for infinity';

-- Sort key of an age group: the bands in age order, anything else after.
CREATE FUNCTION pinpipe.age_group_order(age_group text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(array_position(ARRAY['18-24', '25-35', '36-50', '+50'], age_group), 5);
COMMENT ON FUNCTION pinpipe.age_group_order(text) IS
'sort key of an age group: 1 for ''18-24'' up to 4 for ''+50'', 5 for anything else';

--
-- Aggregate tables. n is the number of joined rows; a group whose count
-- fell to 0 may stay until the next refresh() (every reader skips n = 0).
-- Only the key columns are indexed and pages keep free space, so that the
-- triggers' count updates are HOT updates; text keys compare bytewise
-- (COLLATE "C"), which makes the triggers' index lookups cheaper. The
-- functions sort their output in the database's collation.
--

CREATE TABLE pinpipe.analytics_country_category (
    country text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (country, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_country_category IS
'analytics cache: pins per (geo country, category); maintained by triggers on the clean tables';

-- The most popular categories: each group's (country's, age group's)
-- categories at its top count, ties kept. A category whose count rises
-- above its group's top replaces the group's rows; one that reaches the top
-- joins them; when every category at the top has dropped below it, the
-- group is recomputed from its counts (analytics_recompute_category_tops).
CREATE TABLE pinpipe.analytics_country_category_top (
    country text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (country, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_country_category_top IS
'analytics cache: the categories with the most pins of each geo country (analytics_country_category at the country''s top count, ties kept); maintained by triggers on the clean tables';

CREATE TABLE pinpipe.analytics_year_category (
    post_year int NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (post_year, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_year_category IS
'analytics cache: pins per (year of the geo timestamp, category); maintained by triggers on the clean tables';

-- The most followed: only each country's top follower count and the pins
-- at it, per poster. A pin below its country's top changes nothing here; a
-- higher one replaces the country's rows; when the pins at the top are all
-- gone, the country is recomputed from the clean tables (rare: it takes
-- deleting or lowering every top pin of a country).
CREATE TABLE pinpipe.analytics_country_top (
    country text COLLATE "C" PRIMARY KEY,
    top bigint NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_country_top IS
'analytics cache: the top follower count of each geo country among its pins with a known count; maintained by triggers on the clean tables';
-- the most followed country is the last entry of this index
CREATE INDEX analytics_country_top_top_idx ON pinpipe.analytics_country_top (top);

CREATE TABLE pinpipe.analytics_country_poster (
    country text COLLATE "C" NOT NULL,
    follower_count bigint NOT NULL,
    poster_name text COLLATE "C",
    n bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (country, follower_count, poster_name)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_country_poster IS
'analytics cache: pins per (geo country, follower_count, poster_name) at the country''s top follower count (analytics_country_top); maintained by triggers on the clean tables';
-- most_followed_by_country() reads it in its order: with millions of
-- countries, sorting its answer would cost more than computing it
CREATE INDEX analytics_country_poster_order_idx
    ON pinpipe.analytics_country_poster (country COLLATE "default", poster_name COLLATE "default");

CREATE TABLE pinpipe.analytics_age_category (
    age_group text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (age_group, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_age_category IS
'analytics cache: pins per (age group of the user, category); maintained by triggers on the clean tables';

CREATE TABLE pinpipe.analytics_age_category_top (
    age_group text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (age_group, category)
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_age_category_top IS
'analytics cache: the categories with the most pins of each age group (analytics_age_category at the group''s top count, ties kept); maintained by triggers on the clean tables';

-- The medians: the follower counts of the pins joined to user_clean, per
-- group of the three groupings the functions ask for: (age group, NULL),
-- (NULL, join year) and (age group, join year) (an under-18 user, whose age
-- group is NULL, counts in the second only). Per group, a radix tree of the
-- counts as 8 levels of 8 bits: level 0 holds the group's total (prefix 0),
-- level l (1..8) the pins per prefix = follower_count >> (64 - 8 l), an
-- arithmetic shift, which keeps the order of the counts, negative ones
-- included; level 8 is the histogram of the counts themselves. The children
-- of prefix p at level l are the prefixes p * 256 to p * 256 + 255 of level
-- l + 1, so the value at a rank is found by descending 8 levels reading at
-- most 256 rows at each, whatever the number of distinct counts. Each
-- distinct count of a group adds at most one row per level, and the upper
-- levels collapse (counts below 2^40 share one row per group at levels 1
-- to 3), so the table has at most 9 rows per distinct (group, count), and
-- a batch of writes adds at most 27 row changes per distinct (age group,
-- join year, count) it changes.
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

CREATE TABLE pinpipe.analytics_join_year (
    join_year int PRIMARY KEY,
    n bigint NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE pinpipe.analytics_join_year IS
'analytics cache: users (user_clean rows) per year of date_joined; maintained by triggers on the clean tables';

CREATE TABLE pinpipe.analytics_refreshes (
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    duration interval NOT NULL,
    corrected_rows bigint NOT NULL
);
COMMENT ON TABLE pinpipe.analytics_refreshes IS
'one row per pinpipe.refresh(): when, how long, and how many cached rows it had to correct (0 unless triggers were bypassed)';

--
-- Maintenance. One delta statement per clean table and operation: the
-- changed rows (+1 new, -1 old; for an UPDATE only rows whose relevant
-- columns changed) joined with the other clean tables as they are now,
-- summed per group and added to the aggregates. Each pair of joined rows is
-- counted by the statement that writes the later of the two.
--
-- An advisory lock (classid 'pinp' = 1885957744, objid 1) taken before any
-- clean-table statement serializes the writers from there to their commit,
-- so that each trigger sees the other tables' committed rows (two
-- transactions writing pin 7 and geo 7 at once would otherwise both miss
-- the pair). Taking it before the statement, not after, means a writer
-- never waits for it while holding clean-table row locks: no deadlocks. It
-- takes read committed, where each statement after the wait sees the
-- earlier writers' commits: writes (and refresh()) in repeatable read or
-- serializable transactions are refused.
--
-- One statement must not write two clean tables (a data-modifying WITH, or
-- a user trigger on one clean table writing another): both AFTER triggers
-- would see both changes and count their new pairs twice. The BEFORE
-- trigger notes each clean-table statement in the transaction-local setting
-- pinpipe_analytics.pending, the AFTER trigger clears it, and a statement
-- that starts while another clean table's statement is pending is refused.
--

-- (No SET search_path: it runs before every statement, and it names its
-- functions schema-qualified.)
CREATE FUNCTION pinpipe.analytics_before() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    pending text := coalesce(pg_catalog.current_setting('pinpipe_analytics.pending', true), '');
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') IN ('repeatable read', 'serializable') THEN
        RAISE EXCEPTION 'cannot write pinpipe.% in a % transaction', TG_TABLE_NAME,
                        pg_catalog.current_setting('transaction_isolation')
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The analytics caches are maintained from the other clean tables as committed when the statement ends, which a transaction snapshot taken earlier does not show.',
                  HINT = 'Write the clean tables in read committed transactions (the default).';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        -- the AFTER TRUNCATE trigger rebuilds the caches from scratch
        PERFORM pg_catalog.pg_advisory_xact_lock(1885957744, 1);
        RETURN NULL;
    END IF;
    IF pg_catalog.replace(pending, ',' || TG_TABLE_NAME, '') <> '' THEN
        RAISE EXCEPTION 'cannot write pinpipe.% and pinpipe.% in one statement', TG_TABLE_NAME,
                        pg_catalog.split_part(pg_catalog.replace(pending, ',' || TG_TABLE_NAME, ''), ',', 2)
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The analytics caches count the pins joined to geo and user rows by the statement that writes the later row of each pair.',
                  HINT = 'Write each clean table in a statement of its own.';
    END IF;
    PERFORM pg_catalog.set_config('pinpipe_analytics.pending', pending || ',' || TG_TABLE_NAME, true);
    PERFORM pg_catalog.pg_advisory_xact_lock(1885957744, 1);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_before() IS
'trigger: before a statement on a clean table, serialize the writers (a transaction-level advisory lock) and refuse a statement that writes two clean tables, so the analytics caches stay exact';

-- The columns of a clean table (kind pin, geo or user) that the caches use.
CREATE FUNCTION pinpipe.analytics_delta_columns(kind text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE kind
    WHEN 'pin' THEN 'ind, category, poster_name, follower_count'
    WHEN 'geo' THEN 'ind, country, pinpipe.year_of("timestamp") AS post_year'
    WHEN 'user' THEN 'ind, pinpipe.age_group(age) AS age_group, pinpipe.year_of(date_joined) AS join_year'
END;
COMMENT ON FUNCTION pinpipe.analytics_delta_columns(text) IS
'internal: the columns (or expressions) of clean table kind pin, geo or user that the analytics caches depend on';

-- The statement that adds the changes of one statement on a clean table to
-- the caches: d holds the changed rows' relevant columns with s = +1 (new)
-- or -1 (old), g and u their pairs with the other tables, a1..a6 the sums
-- per group added to each cache. It returns three arrays of groups to check
-- afterwards: the countries whose pins at the top follower count may all be
-- gone (analytics_recompute_tops, once the statement's last trigger ran),
-- and the countries and age groups whose categories at the top count may
-- all have dropped below it (analytics_recompute_category_tops).
CREATE FUNCTION pinpipe.analytics_delta_sql(kind text, op text) RETURNS text
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

-- Recompute the top follower count and its pins of the given countries from
-- the clean tables (for countries whose pins at the top are all gone).
CREATE FUNCTION pinpipe.analytics_recompute_tops(countries text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(countries) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM pinpipe.analytics_country_poster WHERE country = ANY (countries);
    DELETE FROM pinpipe.analytics_country_top WHERE country = ANY (countries);
    INSERT INTO pinpipe.analytics_country_top (country, top)
    SELECT g.country, max(p.follower_count)
      FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
     WHERE g.country = ANY (countries) AND p.follower_count IS NOT NULL
     GROUP BY 1;
    INSERT INTO pinpipe.analytics_country_poster (country, follower_count, poster_name, n)
    SELECT g.country, p.follower_count, p.poster_name, count(*)
      FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
      JOIN pinpipe.analytics_country_top t ON t.country = g.country AND t.top = p.follower_count
     WHERE g.country = ANY (countries)
     GROUP BY 1, 2, 3;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_recompute_tops(text[]) IS
'internal: recompute analytics_country_top and analytics_country_poster of the given countries from the clean tables';

-- Recompute the categories at the top count of the given countries and age
-- groups from their counts, for those left with none (every category at the
-- top dropped below it).
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

CREATE FUNCTION pinpipe.analytics_maintain() RETURNS trigger
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

-- Rebuild every cache from the clean tables; returns rows cached and rows corrected.
CREATE FUNCTION pinpipe.analytics_rebuild(OUT cache text, OUT cached_rows bigint, OUT corrected_rows bigint)
RETURNS SETOF record
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q record;
BEGIN
    -- after the lock, each statement must see every writer's commit
    IF current_setting('transaction_isolation') IN ('repeatable read', 'serializable') THEN
        RAISE EXCEPTION 'cannot rebuild the analytics caches in a % transaction', current_setting('transaction_isolation')
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The rebuild must read the clean tables as committed after it locks out their writers, which a transaction snapshot taken earlier does not show.',
                  HINT = 'Call pinpipe.refresh() in a read committed transaction (the default).';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(1885957744, 1);
    FOR q IN SELECT d.cache_table AS tab, d.cols, d.query FROM pinpipe.analytics_cache_definitions() d
    LOOP
        EXECUTE format('CREATE TEMP TABLE pinpipe_fresh ON COMMIT DROP AS %s', q.query);
        cache := 'pinpipe.' || q.tab;
        EXECUTE format('SELECT count(*) FROM pinpipe_fresh') INTO cached_rows;
        -- (rows with n = 0 are as good as absent)
        EXECUTE format('SELECT count(*) FROM ((SELECT %2$s FROM pinpipe.%1$s WHERE %3$s EXCEPT ALL SELECT * FROM pinpipe_fresh)
                                              UNION ALL (SELECT * FROM pinpipe_fresh EXCEPT ALL SELECT %2$s FROM pinpipe.%1$s WHERE %3$s)) x',
                       q.tab, q.cols, CASE WHEN q.cols LIKE '%, n' THEN 'n <> 0' ELSE 'true' END) INTO corrected_rows;
        EXECUTE format('DELETE FROM pinpipe.%s', q.tab);
        EXECUTE format('INSERT INTO pinpipe.%s SELECT * FROM pinpipe_fresh', q.tab);
        DROP TABLE pinpipe_fresh;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_rebuild() IS
'internal: recompute every analytics cache table from the clean tables (see pinpipe.refresh())';

CREATE FUNCTION pinpipe.analytics_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pinpipe.analytics_rebuild();
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_truncated() IS
'trigger: rebuild the analytics caches after a clean table is truncated';

CREATE TRIGGER analytics_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON pinpipe.pin_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_before();
CREATE TRIGGER analytics_insert AFTER INSERT ON pinpipe.pin_clean REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('pin');
CREATE TRIGGER analytics_update AFTER UPDATE ON pinpipe.pin_clean REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('pin');
CREATE TRIGGER analytics_delete AFTER DELETE ON pinpipe.pin_clean REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('pin');
CREATE TRIGGER analytics_truncate AFTER TRUNCATE ON pinpipe.pin_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_truncated();

CREATE TRIGGER analytics_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON pinpipe.geo_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_before();
CREATE TRIGGER analytics_insert AFTER INSERT ON pinpipe.geo_clean REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('geo');
CREATE TRIGGER analytics_update AFTER UPDATE ON pinpipe.geo_clean REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('geo');
CREATE TRIGGER analytics_delete AFTER DELETE ON pinpipe.geo_clean REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('geo');
CREATE TRIGGER analytics_truncate AFTER TRUNCATE ON pinpipe.geo_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_truncated();

CREATE TRIGGER analytics_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON pinpipe.user_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_before();
CREATE TRIGGER analytics_insert AFTER INSERT ON pinpipe.user_clean REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('user');
CREATE TRIGGER analytics_update AFTER UPDATE ON pinpipe.user_clean REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('user');
CREATE TRIGGER analytics_delete AFTER DELETE ON pinpipe.user_clean REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_maintain('user');
CREATE TRIGGER analytics_truncate AFTER TRUNCATE ON pinpipe.user_clean
    FOR EACH STATEMENT EXECUTE FUNCTION pinpipe.analytics_truncated();

--
-- The analytics functions.
--

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

CREATE FUNCTION pinpipe.popular_category_by_country()
RETURNS TABLE (country text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_country', 'pinpipe.analytics_country_category_top');
    SELECT c.country, c.category, c.n
      FROM pinpipe.analytics_country_category_top c
     ORDER BY c.country COLLATE "default", c.category COLLATE "default";
END;
COMMENT ON FUNCTION pinpipe.popular_category_by_country() IS
'the most popular category of each country (pins joined to geo_clean on ind), every tied category kept; ordered by country, category';

CREATE FUNCTION pinpipe.category_count_by_year(from_year int DEFAULT 2018, to_year int DEFAULT 2022)
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
COMMENT ON FUNCTION pinpipe.category_count_by_year(int, int) IS
'pins per category per post year (year of geo_clean.timestamp), from_year to to_year inclusive (NULL: unbounded), for every (year, category) that has pins; ordered by post_year, category';

CREATE FUNCTION pinpipe.most_followed_by_country()
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
COMMENT ON FUNCTION pinpipe.most_followed_by_country() IS
'the poster(s) with the most followers in each country (pins joined to geo_clean on ind; unknown follower counts ignored), every tied poster kept; ordered by country, poster_name';

CREATE FUNCTION pinpipe.most_followed_country()
RETURNS TABLE (country text, follower_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.most_followed_country', 'pinpipe.analytics_country_top');
    SELECT t.country, t.top
      FROM pinpipe.analytics_country_top t
     WHERE t.top = (SELECT max(t2.top) FROM pinpipe.analytics_country_top t2)
     ORDER BY t.country COLLATE "default";
END;
COMMENT ON FUNCTION pinpipe.most_followed_country() IS
'the country of the most-followed poster and that follower count (one row; one per country when several tie); ordered by country';

CREATE FUNCTION pinpipe.popular_category_by_age_group()
RETURNS TABLE (age_group text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_age_group', 'pinpipe.analytics_age_category_top');
    SELECT c.age_group, c.category, c.n
      FROM pinpipe.analytics_age_category_top c
     ORDER BY pinpipe.age_group_order(c.age_group), c.age_group COLLATE "default", c.category COLLATE "default";
END;
COMMENT ON FUNCTION pinpipe.popular_category_by_age_group() IS
'the most popular category of each age group (pins joined to user_clean on ind; pinpipe.age_group, under 18 left out), every tied category kept; ordered by age, category';

-- Medians from the radix trees of analytics_followers_rank, grouped by age
-- group and/or join year. The arithmetic is PostgreSQL's: percentile_cont(0.5)
-- interpolates between the values at 0-based positions floor and ceil of
-- (N - 1) / 2; percentile_disc(0.5) takes the value at position
-- ceil(N / 2) - 1 (at least 0), the lower middle value, which is the first
-- of the two. Counts are summed as float8, exact below 2^53. Each group's
-- total is its level 0 row; the value at a position is found by descending
-- the levels (r): at each, among the at most 256 children of the prefix
-- found so far, the first whose running count passes the position, which
-- then becomes the position within that child. So a median reads at most
-- 2 x 8 x 256 rows, whatever the number of distinct follower counts.
CREATE FUNCTION pinpipe.analytics_median(by_age bool, by_year bool, from_year int, to_year int, method text)
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

CREATE FUNCTION pinpipe.median_followers_by_age_group(method text DEFAULT 'exact')
RETURNS TABLE (age_group text, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_age_group', 'pinpipe.analytics_followers_rank');
    SELECT m.age_group, m.median_follower_count
      FROM pinpipe.analytics_median(true, false, NULL, NULL, median_followers_by_age_group.method) m;
END;
COMMENT ON FUNCTION pinpipe.median_followers_by_age_group(text) IS
'median follower count of each age group (pins joined to user_clean on ind; NULL follower counts ignored, under 18 left out); method ''exact'' (percentile_cont(0.5), default) or ''lower'' (percentile_disc(0.5), Spark''s percentile_approx); ordered by age';

CREATE FUNCTION pinpipe.users_joined_by_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020)
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
COMMENT ON FUNCTION pinpipe.users_joined_by_year(int, int) IS
'users (user_clean rows) per year of date_joined, from_year to to_year inclusive (NULL: unbounded); post_year is the join year; ordered by post_year';

CREATE FUNCTION pinpipe.median_followers_by_join_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020,
                                                                 method text DEFAULT 'exact')
RETURNS TABLE (post_year int, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_join_year', 'pinpipe.analytics_followers_rank');
    SELECT m.join_year, m.median_follower_count
      FROM pinpipe.analytics_median(false, true, median_followers_by_join_year.from_year,
                                    median_followers_by_join_year.to_year, median_followers_by_join_year.method) m;
END;
COMMENT ON FUNCTION pinpipe.median_followers_by_join_year(int, int, text) IS
'median follower count per year of user_clean.date_joined (pins joined to user_clean on ind; NULL follower counts ignored), from_year to to_year inclusive; method ''exact'' or ''lower''; ordered by post_year';

CREATE FUNCTION pinpipe.median_followers_by_age_group_and_join_year(from_year int DEFAULT 2015,
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
COMMENT ON FUNCTION pinpipe.median_followers_by_age_group_and_join_year(int, int, text) IS
'median follower count per age group and year of user_clean.date_joined (NULL follower counts ignored, under 18 left out), from_year to to_year inclusive; method ''exact'' or ''lower''; ordered by age, post_year';

--
-- refresh(), the self-check and scheduling.
--

CREATE FUNCTION pinpipe.refresh(OUT cache text, OUT cached_rows bigint, OUT corrected_rows bigint)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := clock_timestamp();
    corrected bigint := 0;
BEGIN
    FOR cache, cached_rows, corrected_rows IN SELECT * FROM pinpipe.analytics_rebuild() LOOP
        corrected := corrected + corrected_rows;
        RETURN NEXT;
    END LOOP;
    INSERT INTO pinpipe.analytics_refreshes (refreshed_at, duration, corrected_rows)
    VALUES (now(), clock_timestamp() - started, corrected);
    IF corrected > 0 THEN
        RAISE WARNING 'pinpipe.refresh() corrected % cached analytics rows', corrected
            USING DETAIL = 'The triggers on the clean tables were bypassed (disabled, session_replication_role = replica, or a restore with --disable-triggers).';
    END IF;
END;
$$;
COMMENT ON FUNCTION pinpipe.refresh() IS
'recompute every analytics cache from the clean tables, in one transaction; returns per cache table its rows and how many rows it corrected (0 unless the triggers were bypassed); logged in pinpipe.analytics_refreshes';

CREATE FUNCTION pinpipe.schedule_refresh(schedule text DEFAULT '@daily') RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text := current_setting('cron.database_name', true);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron') THEN
            RAISE EXCEPTION 'pg_cron is not installed'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pinpipe.schedule_refresh() registers pinpipe.refresh() as a pg_cron job.',
                      HINT = 'Install pg_cron (the postgresql-15-cron package), add pg_cron to shared_preload_libraries, set cron.database_name = '''
                             || current_database() || ''', restart, and run CREATE EXTENSION pg_cron; or call SELECT pinpipe.refresh() from another scheduler.';
        ELSIF cron_db IS NOT NULL AND cron_db <> current_database() THEN
            RAISE EXCEPTION 'pg_cron runs in database "%", not in "%"', cron_db, current_database()
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pg_cron schedules jobs from the database named by cron.database_name.',
                      HINT = format('In database %I, run SELECT cron.schedule_in_database(''pinpipe-refresh'', %L, ''SELECT pinpipe.refresh()'', %L).',
                                    cron_db, schedule, current_database());
        ELSIF cron_db IS NOT NULL THEN
            RAISE EXCEPTION 'the pg_cron extension is not created in this database'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pg_cron is loaded, but pinpipe.schedule_refresh() needs its extension to register pinpipe.refresh() as a job.',
                      HINT = 'Run CREATE EXTENSION pg_cron as a superuser, then call pinpipe.schedule_refresh() again.';
        ELSE
            RAISE EXCEPTION 'pg_cron is not loaded'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pinpipe.schedule_refresh() registers pinpipe.refresh() as a pg_cron job.',
                      HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name = ''' || current_database()
                             || ''', restart, and run CREATE EXTENSION pg_cron.';
        END IF;
    END IF;
    -- a job of the same name and user is updated, not duplicated
    RETURN cron.schedule('pinpipe-refresh', schedule, 'SELECT pinpipe.refresh()');
END;
$$;
COMMENT ON FUNCTION pinpipe.schedule_refresh(text) IS
'run pinpipe.refresh() on a pg_cron schedule (default @daily) as the job pinpipe-refresh; calling it again changes the schedule; returns the job id; needs the pg_cron extension in this database';

CREATE FUNCTION pinpipe.unschedule_refresh() RETURNS bool
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT FROM cron.job WHERE jobname = 'pinpipe-refresh' AND username = current_user) THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule('pinpipe-refresh');
END;
$$;
COMMENT ON FUNCTION pinpipe.unschedule_refresh() IS
'remove the pg_cron job of pinpipe.schedule_refresh(); false when there is none';

-- refresh and scheduling are admin functions; the caches, like the clean
-- tables, are private until granted (the analytics functions read them).
REVOKE ALL ON FUNCTION pinpipe.refresh(), pinpipe.schedule_refresh(text), pinpipe.unschedule_refresh(),
    pinpipe.analytics_rebuild(), pinpipe.analytics_recompute_tops(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pinpipe.analytics_recompute_category_tops(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.refresh(), pinpipe.schedule_refresh(text), pinpipe.unschedule_refresh()
    TO pinpipe_admin;
GRANT SELECT ON pinpipe.analytics_country_category, pinpipe.analytics_year_category,
    pinpipe.analytics_country_top, pinpipe.analytics_country_poster, pinpipe.analytics_age_category,
    pinpipe.analytics_join_year, pinpipe.analytics_refreshes TO pinpipe_admin;
GRANT SELECT ON pinpipe.analytics_country_category_top, pinpipe.analytics_age_category_top,
    pinpipe.analytics_followers_rank TO pinpipe_admin;
