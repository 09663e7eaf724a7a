-- Analytics caches on distributions unlike the sample, the small versions
-- of test/bench_analytics.sh --dist distinct, categories and countries:
-- after loading each, and after updates, deletes and upserts that move the
-- groups' tops, every analytics function equals its plain-SQL definition
-- (pinpipe.analytics_check()), and refresh() finds nothing to correct.
\set SHOW_CONTEXT never
TRUNCATE pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean;
CREATE TEMP VIEW mismatches AS
    SELECT count(*) FILTER (WHERE NOT matches) AS mismatches, count(*) AS checks,
           string_agg(function_name, ', ') FILTER (WHERE NOT matches) AS failing
      FROM pinpipe.analytics_check();
-- 64-bit follower counts from two hashes: the whole bigint range
CREATE FUNCTION pg_temp.wide(i int) RETURNS bigint
LANGUAGE sql IMMUTABLE
RETURN (hashint4(i)::bigint << 32) | (hashint4(i + 1000000)::bigint & 4294967295);

-- distinct: every follower count different, spread over the whole range,
-- the extremes and the byte boundaries among them; post and join years
-- spread over about 2,000 years; a few categories and countries
INSERT INTO pinpipe.user_clean (ind, user_name, age, date_joined)
SELECT i, 'user ' || i, 14 + i % 60,
       timestamp '2000-01-01' + make_interval(years => (hashint4(i + 7) & 2047) - 1000, days => i % 365)
  FROM generate_series(1, 3000) i;
INSERT INTO pinpipe.geo_clean (ind, country, "timestamp")
SELECT i, 'country ' || i % 7, timestamp '2000-06-01' + make_interval(years => (hashint4(i + 11) & 2047) - 1000)
  FROM generate_series(1, 3000) i;
INSERT INTO pinpipe.pin_clean (ind, poster_name, follower_count, category)
SELECT i, 'poster ' || i,
       CASE i WHEN 1 THEN 9223372036854775807 WHEN 2 THEN -9223372036854775808 WHEN 3 THEN 0 WHEN 4 THEN -1
              WHEN 5 THEN 255 WHEN 6 THEN 256 WHEN 7 THEN -256 WHEN 8 THEN -257 WHEN 9 THEN 65535
              ELSE CASE WHEN i % 3 = 0 THEN pg_temp.wide(i) ELSE i::bigint * 1000003 END END,
       'category ' || i % 5
  FROM generate_series(1, 3000) i;
SELECT mismatches, checks, failing FROM mismatches;
SELECT count(DISTINCT follower_count) AS distinct_counts FROM pinpipe.pin_clean;
-- medians over other year ranges
SELECT count(*) AS differing_medians
  FROM ((SELECT * FROM pinpipe.median_followers_by_join_year(1200, 1500, 'exact')
         EXCEPT ALL
         SELECT pinpipe.year_of(u.date_joined), percentile_cont(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
           FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
          WHERE p.follower_count IS NOT NULL AND pinpipe.year_of(u.date_joined) BETWEEN 1200 AND 1500 GROUP BY 1)
        UNION ALL
        (SELECT pinpipe.year_of(u.date_joined), percentile_cont(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
           FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
          WHERE p.follower_count IS NOT NULL AND pinpipe.year_of(u.date_joined) BETWEEN 1200 AND 1500 GROUP BY 1
         EXCEPT ALL
         SELECT * FROM pinpipe.median_followers_by_join_year(1200, 1500, 'exact'))) d;
SELECT count(*) AS differing_medians
  FROM ((SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year(1999, NULL, 'lower')
         EXCEPT ALL
         SELECT pinpipe.age_group(u.age), pinpipe.year_of(u.date_joined),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
           FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
          WHERE p.follower_count IS NOT NULL AND pinpipe.age_group(u.age) IS NOT NULL
            AND pinpipe.year_of(u.date_joined) >= 1999 GROUP BY 1, 2)
        UNION ALL
        (SELECT pinpipe.age_group(u.age), pinpipe.year_of(u.date_joined),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY p.follower_count)::float8
           FROM pinpipe.pin_clean p JOIN pinpipe.user_clean u ON u.ind = p.ind
          WHERE p.follower_count IS NOT NULL AND pinpipe.age_group(u.age) IS NOT NULL
            AND pinpipe.year_of(u.date_joined) >= 1999 GROUP BY 1, 2
         EXCEPT ALL
         SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year(1999, NULL, 'lower'))) d;
SELECT count(*) AS join_years FROM pinpipe.median_followers_by_join_year(NULL, NULL);
-- updates and deletes across the range: the medians move
UPDATE pinpipe.pin_clean SET follower_count = -follower_count / 3 WHERE ind % 4 = 0 AND ind > 9;
UPDATE pinpipe.user_clean SET age = 70, date_joined = date_joined + interval '300 years' WHERE ind % 5 = 0;
DELETE FROM pinpipe.pin_clean WHERE ind % 6 = 0;
DELETE FROM pinpipe.user_clean WHERE ind % 7 = 0;
SELECT mismatches, checks, failing FROM mismatches;
-- most pins in one age group and year: its median is deep in one subtree
UPDATE pinpipe.user_clean SET age = 30, date_joined = '2018-03-03' WHERE ind % 3 <> 0;
SELECT mismatches, checks, failing FROM mismatches;

-- countries: every geo row a country of its own, follower counts all
-- different; then the top pins lowered by the worker's upsert (an INSERT
-- and an UPDATE trigger in one statement) and deleted, so that countries
-- lose their top and are recomputed
UPDATE pinpipe.geo_clean SET country = 'country ' || ind;
SELECT mismatches, checks, failing FROM mismatches;
SELECT count(*) AS countries FROM pinpipe.most_followed_by_country();
INSERT INTO pinpipe.pin_clean (ind, poster_name, follower_count, category)
SELECT i, 'poster ' || i, CASE WHEN i <= 3000 THEN 17 ELSE i END, 'category ' || i % 5
  FROM generate_series(1, 3500, 2) i
ON CONFLICT (ind) DO UPDATE SET follower_count = excluded.follower_count, poster_name = excluded.poster_name;
SELECT mismatches, checks, failing FROM mismatches;
DELETE FROM pinpipe.pin_clean WHERE follower_count = (SELECT max(follower_count) FROM pinpipe.pin_clean);
SELECT mismatches, checks, failing FROM mismatches;
UPDATE pinpipe.geo_clean SET country = 'country 1' WHERE ind % 10 = 0;
SELECT mismatches, checks, failing FROM mismatches;

-- categories: every pin a category of its own (every category ties at the
-- top of its group), then one category rises above the others, ties with
-- another, and falls back, which leaves its groups to be recomputed
UPDATE pinpipe.geo_clean SET country = 'country ' || ind % 3;
UPDATE pinpipe.pin_clean SET category = 'category ' || ind;
SELECT mismatches, checks, failing FROM mismatches;
SELECT count(*) AS tied_categories FROM pinpipe.popular_category_by_country();
UPDATE pinpipe.pin_clean SET category = 'rising' WHERE ind % 50 = 1;
SELECT mismatches, checks, failing FROM mismatches;
SELECT country, category, category_count FROM pinpipe.popular_category_by_country();
SELECT age_group, category, category_count FROM pinpipe.popular_category_by_age_group() WHERE category_count > 1;
UPDATE pinpipe.pin_clean SET category = 'also rising' WHERE ind % 50 = 3 AND ind % 3 = 0;
UPDATE pinpipe.pin_clean SET category = 'rising' WHERE ind % 50 = 3 AND ind % 3 <> 0;
SELECT mismatches, checks, failing FROM mismatches;
DELETE FROM pinpipe.pin_clean WHERE category = 'rising' AND ind % 3 = 1;
SELECT mismatches, checks, failing FROM mismatches;
UPDATE pinpipe.pin_clean SET category = 'category ' || ind WHERE category IN ('rising', 'also rising');
SELECT mismatches, checks, failing FROM mismatches;
SELECT count(*) AS tied_categories FROM pinpipe.popular_category_by_country();

-- the triggers left nothing for refresh() to correct, and it changes nothing
SELECT cache, corrected_rows FROM pinpipe.refresh();
SELECT mismatches, checks, failing FROM mismatches;
TRUNCATE pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean;
