--
-- The analytics functions' oracle: each function and each cache table as a
-- plain-SQL query over the clean tables, and analytics_check(), which
-- compares them (the regression tests and troubleshooting use it).
-- analytics_rebuild() (pinpipe.refresh()) reads analytics_cache_definitions()
-- too, so this piece is installed with the others.
--

-- What each cache table holds, as a query over the clean tables (its rows
-- in column order; n = 0 rows of the table count as absent).
CREATE FUNCTION pinpipe.analytics_cache_definitions(OUT cache_table text, OUT cols text, OUT query text)
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

-- The plain-SQL definition of each function, for the default year ranges and
-- all years (NULL bounds), and both median methods.
CREATE FUNCTION pinpipe.analytics_definitions(OUT function_call text, OUT direct_query text)
RETURNS SETOF record
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q record;
    y text;
    yrange text[];
    med text;
BEGIN
    FOR q IN SELECT * FROM (VALUES
        ('popular_category_by_country()',
         $q$WITH c AS (SELECT g.country, p.category, count(*) AS category_count
                          FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
                         WHERE g.country IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2)
            SELECT country, category, category_count
              FROM (SELECT c.*, rank() OVER (PARTITION BY country ORDER BY category_count DESC) AS r FROM c) x
             WHERE r = 1$q$),
        ('category_count_by_year(%1$s, %2$s)',
         $q$SELECT pinpipe.year_of(g."timestamp") AS post_year, p.category, count(*) AS category_count
              FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
             WHERE p.category IS NOT NULL AND pinpipe.year_of(g."timestamp") BETWEEN coalesce(%1$s, -2147483648) AND coalesce(%2$s, 2147483647)
             GROUP BY 1, 2$q$),
        ('most_followed_by_country()',
         $q$SELECT DISTINCT country, poster_name, follower_count
              FROM (SELECT g.country, p.poster_name, p.follower_count, max(p.follower_count) OVER (PARTITION BY g.country) AS top
                      FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
                     WHERE g.country IS NOT NULL AND p.follower_count IS NOT NULL) x
             WHERE follower_count = top$q$),
        ('most_followed_country()',
         $q$SELECT DISTINCT g.country, p.follower_count
              FROM pinpipe.pin_clean p JOIN pinpipe.geo_clean g ON g.ind = p.ind
             WHERE g.country IS NOT NULL
               AND p.follower_count = (SELECT max(p2.follower_count) FROM pinpipe.pin_clean p2 JOIN pinpipe.geo_clean g2 ON g2.ind = p2.ind
                                        WHERE g2.country IS NOT NULL)$q$),
        ('popular_category_by_age_group()',
         $q$WITH c AS (SELECT pinpipe.age_group(u.age) AS age_group, p.category, count(*) AS category_count
                          FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
                         WHERE pinpipe.age_group(u.age) IS NOT NULL AND p.category IS NOT NULL GROUP BY 1, 2)
            SELECT age_group, category, category_count
              FROM (SELECT c.*, rank() OVER (PARTITION BY age_group ORDER BY category_count DESC) AS r FROM c) x
             WHERE r = 1$q$),
        ('median_followers_by_age_group(method => %3$L)',
         $q$SELECT pinpipe.age_group(u.age) AS age_group, %4$s(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
              FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
             WHERE pinpipe.age_group(u.age) IS NOT NULL AND p.follower_count IS NOT NULL
             GROUP BY 1$q$),
        ('users_joined_by_year(%1$s, %2$s)',
         $q$SELECT pinpipe.year_of(u.date_joined) AS post_year, count(*) AS number_users_joined
              FROM pinpipe.user_clean u
             WHERE pinpipe.year_of(u.date_joined) BETWEEN coalesce(%1$s, -2147483648) AND coalesce(%2$s, 2147483647)
             GROUP BY 1$q$),
        ('median_followers_by_join_year(%1$s, %2$s, %3$L)',
         $q$SELECT pinpipe.year_of(u.date_joined) AS post_year, %4$s(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
              FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
             WHERE p.follower_count IS NOT NULL
               AND pinpipe.year_of(u.date_joined) BETWEEN coalesce(%1$s, -2147483648) AND coalesce(%2$s, 2147483647)
             GROUP BY 1$q$),
        ('median_followers_by_age_group_and_join_year(%1$s, %2$s, %3$L)',
         $q$SELECT pinpipe.age_group(u.age) AS age_group, pinpipe.year_of(u.date_joined) AS post_year,
                   %4$s(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
              FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
             WHERE p.follower_count IS NOT NULL AND pinpipe.age_group(u.age) IS NOT NULL
               AND pinpipe.year_of(u.date_joined) BETWEEN coalesce(%1$s, -2147483648) AND coalesce(%2$s, 2147483647)
             GROUP BY 1, 2$q$)
        ) v(call, direct)
    LOOP
        -- the defaults' ranges, and every year
        FOREACH y IN ARRAY CASE WHEN q.call LIKE '%(\%1$s%' THEN ARRAY['default', 'all'] ELSE ARRAY['none'] END LOOP
            FOREACH med IN ARRAY CASE WHEN q.call LIKE '%\%3$L%' THEN ARRAY['exact', 'lower'] ELSE ARRAY['exact'] END LOOP
                yrange := CASE y WHEN 'all' THEN ARRAY['NULL', 'NULL']
                                 WHEN 'default' THEN CASE WHEN q.call LIKE 'category_count%' THEN ARRAY['2018', '2022']
                                                          ELSE ARRAY['2015', '2020'] END END;
                function_call := 'pinpipe.' || format(q.call, yrange[1], yrange[2], med);
                direct_query := format(q.direct, yrange[1], yrange[2], med,
                                       CASE med WHEN 'lower' THEN 'percentile_disc' ELSE 'percentile_cont' END);
                RETURN NEXT;
            END LOOP;
        END LOOP;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_definitions() IS
'each analytics function call (default year ranges and all years, both median methods) with its plain-SQL definition: the same rows, computed from the clean tables';

CREATE FUNCTION pinpipe.analytics_check(OUT function_name text, OUT cached_rows bigint, OUT direct_rows bigint,
                                        OUT matches bool)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT * FROM pinpipe.analytics_definitions() LOOP
        function_name := d.function_call;
        EXECUTE format('SELECT (SELECT count(*) FROM %1$s),
                               (SELECT count(*) FROM (%2$s) d),
                               NOT EXISTS ((SELECT * FROM %1$s EXCEPT ALL SELECT * FROM (%2$s) d)
                                           UNION ALL (SELECT * FROM (%2$s) d EXCEPT ALL SELECT * FROM %1$s))',
                       d.function_call, d.direct_query)
            INTO cached_rows, direct_rows, matches;
        RETURN NEXT;
    END LOOP;
    -- and the cache tables themselves, counts included
    FOR d IN SELECT * FROM pinpipe.analytics_cache_definitions() LOOP
        function_name := 'pinpipe.' || d.cache_table;
        EXECUTE format('WITH c AS (SELECT %2$s FROM pinpipe.%1$s WHERE %4$s)
                        SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM (%3$s) d),
                               NOT EXISTS ((SELECT * FROM c EXCEPT ALL SELECT * FROM (%3$s) d)
                                           UNION ALL (SELECT * FROM (%3$s) d EXCEPT ALL SELECT * FROM c))',
                       d.cache_table, d.cols, d.query, CASE WHEN d.cols LIKE '%, n' THEN 'n <> 0' ELSE 'true' END)
            INTO cached_rows, direct_rows, matches;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pinpipe.analytics_check() IS
'compare every analytics function (default year ranges and all years, both median methods) with its plain-SQL definition (pinpipe.analytics_definitions()), and every cache table with its query (pinpipe.analytics_cache_definitions()), over the clean tables; slow on big tables, for tests and troubleshooting';
