-- Analytics functions: semantics and edge cases on small hand-made tables
-- (ties, empty tables, NULL follower counts, ages under 18, years outside
-- the range, missing joins, bad arguments).
\set SHOW_CONTEXT never
TRUNCATE pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean;

-- empty tables: no rows anywhere, no errors
SELECT count(*) FROM pinpipe.popular_category_by_country();
SELECT count(*) FROM pinpipe.category_count_by_year();
SELECT count(*) FROM pinpipe.most_followed_by_country();
SELECT count(*) FROM pinpipe.most_followed_country();
SELECT count(*) FROM pinpipe.popular_category_by_age_group();
SELECT count(*) FROM pinpipe.median_followers_by_age_group();
SELECT count(*) FROM pinpipe.users_joined_by_year();
SELECT count(*) FROM pinpipe.median_followers_by_join_year();
SELECT count(*) FROM pinpipe.median_followers_by_age_group_and_join_year(method => 'lower');

-- pin | country | post time           | age  | joined     | poster | followers | category
--  1  | A       | 2018-01-01          | 20   | 2015-03-01 | p1     | 500       | art
--  2  | A       | 2018-06-01          | 22   | 2015-04-01 | p2     | 500       | art
--  3  | A       | 2019-01-01          | 30   | 2016-01-01 | p3     | NULL      | travel
--  4  | A       | 2022-12-31 23:59:59 | 40   | 2016-05-05 | p1     | 100       | travel
--  5  | B       | 2017-12-31 23:59:59 | 17   | 2014-12-31 | p4     | 1000      | art
--  6  | B       | 2023-01-01          | 17   | 2021-01-01 | p4     | 1000      | beauty
--  7  | B       | 2020-05-05          | 51   | 2017-07-07 | NULL   | 1000      | beauty
--  8  | B       | NULL                | 60   | NULL       | p5     | NULL      | beauty
--  9  | C       | 2021-01-01          | 18   | 2015-01-01 | p6     | 10        | NULL
-- 10  | NULL    | 2021-02-02          | 24   | 2015-06-06 | p7     | 2000000   | art
-- 11  | D       | 2019-09-09          | 25   | 2020-12-31 | p8     | 1000      | quotes
-- 12  | D       | infinity            | 35   | 2020-01-01 | p9     | 10        | quotes
-- 13  | (no geo row)                  | (no user row)     | p10    | 5000000   | art
-- 14  | (no pin row: a geo and a user row only)
-- 15  | E       | 2020-01-01          | NULL | 2018-01-01 | p11    | 3         | art
-- 16  | (no geo row)                  | 45   | 2019-05-05 | p12    | 100       | art
INSERT INTO pinpipe.pin_clean (ind, poster_name, follower_count, category) VALUES
    (1, 'p1', 500, 'art'), (2, 'p2', 500, 'art'), (3, 'p3', NULL, 'travel'), (4, 'p1', 100, 'travel'),
    (5, 'p4', 1000, 'art'), (6, 'p4', 1000, 'beauty'), (7, NULL, 1000, 'beauty'), (8, 'p5', NULL, 'beauty'),
    (9, 'p6', 10, NULL), (10, 'p7', 2000000, 'art'), (11, 'p8', 1000, 'quotes'), (12, 'p9', 10, 'quotes'),
    (13, 'p10', 5000000, 'art'), (15, 'p11', 3, 'art'), (16, 'p12', 100, 'art');
INSERT INTO pinpipe.geo_clean (ind, country, "timestamp") VALUES
    (1, 'A', '2018-01-01'), (2, 'A', '2018-06-01'), (3, 'A', '2019-01-01'), (4, 'A', '2022-12-31 23:59:59'),
    (5, 'B', '2017-12-31 23:59:59'), (6, 'B', '2023-01-01'), (7, 'B', '2020-05-05'), (8, 'B', NULL),
    (9, 'C', '2021-01-01'), (10, NULL, '2021-02-02'), (11, 'D', '2019-09-09'), (12, 'D', 'infinity'),
    (14, 'F', '2020-01-01'), (15, 'E', '2020-01-01');
INSERT INTO pinpipe.user_clean (ind, user_name, age, date_joined) VALUES
    (1, 'u1', 20, '2015-03-01'), (2, 'u2', 22, '2015-04-01'), (3, 'u3', 30, '2016-01-01'), (4, 'u4', 40, '2016-05-05'),
    (5, 'u5', 17, '2014-12-31'), (6, 'u6', 17, '2021-01-01'), (7, 'u7', 51, '2017-07-07'), (8, 'u8', 60, NULL),
    (9, 'u9', 18, '2015-01-01'), (10, 'u10', 24, '2015-06-06'), (11, 'u11', 25, '2020-12-31'), (12, 'u12', 35, '2020-01-01'),
    (14, 'u14', 70, '2016-01-01'), (15, 'u15', NULL, '2018-01-01'), (16, 'u16', 45, '2019-05-05');

-- A ties art and travel (2 each): both kept. B: beauty 3 beats art 1.
-- C has only a NULL category, pin 10 a NULL country: left out.
SELECT * FROM pinpipe.popular_category_by_country();

-- 2018 to 2022 inclusive (23:59:59 on 2022-12-31 still counts; 2017 and 2023
-- do not); NULL and infinite post times have no year
SELECT * FROM pinpipe.category_count_by_year();
SELECT * FROM pinpipe.category_count_by_year(2023, 2023);
SELECT * FROM pinpipe.category_count_by_year(NULL, 2017);
SELECT * FROM pinpipe.category_count_by_year(NULL, NULL);
-- from_year > to_year: no rows
SELECT count(*) FROM pinpipe.category_count_by_year(2022, 2018);

-- A: p1 and p2 tie at 500 (p1's 100 is not its top); B: p4 (twice, one row)
-- and an unnamed poster tie at 1000, p5's unknown count is ignored; C: p6;
-- D: p8. Pin 10 (NULL country) and pin 13 (no geo row) are left out.
SELECT * FROM pinpipe.most_followed_by_country();

-- the top follower count among pins with a country is 1000: B and D tie
SELECT * FROM pinpipe.most_followed_country();

-- 18-24: art 3 (pins 1, 2, 10; pin 10's NULL country does not matter here);
-- 25-35: quotes 2 (pins 11, 12) beats travel 1; 36-50: travel (pin 4) and art
-- (pin 16, no geo row needed) tie; +50: beauty (pins 7, 8). Ages 17 (pins 5,
-- 6) and NULL (pin 15) have no age group, pin 9 no category.
SELECT * FROM pinpipe.popular_category_by_age_group();

-- 18-24: 10, 500, 500, 2000000 -> exact (500 + 500) / 2, lower 500;
-- 25-35: 1000, 10 (pin 3's NULL ignored) -> exact 505, lower 10;
-- 36-50: 100, 100; +50: 1000 (pin 8's NULL ignored)
SELECT * FROM pinpipe.median_followers_by_age_group();
SELECT * FROM pinpipe.median_followers_by_age_group('lower');
SELECT * FROM pinpipe.median_followers_by_age_group(method => 'exact');

-- users (user_clean rows, with or without a pin) per year joined; 2014 and
-- 2021 are outside the default 2015-2020, pin 8's user has no join date
SELECT * FROM pinpipe.users_joined_by_year();
SELECT * FROM pinpipe.users_joined_by_year(2014, 2014);
SELECT * FROM pinpipe.users_joined_by_year(from_year => 2016);
SELECT * FROM pinpipe.users_joined_by_year(NULL, NULL);
SELECT count(*) FROM pinpipe.users_joined_by_year(2020, 2015);

-- every age counts here, under 18 and unknown too: 2018 is pin 15 (age NULL)
SELECT * FROM pinpipe.median_followers_by_join_year();
SELECT * FROM pinpipe.median_followers_by_join_year(method => 'lower');
SELECT * FROM pinpipe.median_followers_by_join_year(2014, 2021, 'lower');
SELECT count(*) FROM pinpipe.median_followers_by_join_year(2021, 2015);

SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year();
SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year(method => 'lower');
SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year(NULL, NULL);
SELECT count(*) FROM pinpipe.median_followers_by_age_group_and_join_year(2016, 2015);

-- every function equals its plain-SQL definition over the clean tables
SELECT function_name, cached_rows, direct_rows, matches FROM pinpipe.analytics_check();

-- the most followed as the top changes (rolled back after): a higher count
-- replaces A's top; deleting it brings back the previous top, recomputed
-- from the clean tables; lowering both pins at A's top leaves pin 4 (p1,
-- 100); moving A's pins to B leaves A without a row and B's top as it was;
-- a new top of all countries moves most_followed_country
BEGIN;
UPDATE pinpipe.pin_clean SET follower_count = 700 WHERE ind = 3;
SELECT * FROM pinpipe.most_followed_by_country() WHERE country = 'A';
DELETE FROM pinpipe.pin_clean WHERE ind = 3;
SELECT * FROM pinpipe.most_followed_by_country() WHERE country = 'A';
UPDATE pinpipe.pin_clean SET follower_count = 50 WHERE ind IN (1, 2);
SELECT * FROM pinpipe.most_followed_by_country() WHERE country = 'A';
UPDATE pinpipe.geo_clean SET country = 'B' WHERE ind IN (1, 2, 4);
SELECT * FROM pinpipe.most_followed_by_country() WHERE country IN ('A', 'B');
UPDATE pinpipe.pin_clean SET follower_count = 3000 WHERE ind = 12;
SELECT * FROM pinpipe.most_followed_country();
SELECT bool_and(matches) AS all_match FROM pinpipe.analytics_check();
ROLLBACK;

-- only unknown follower counts in a group (36-50; joined 2016, 2019): the group has no
-- median, no row
UPDATE pinpipe.pin_clean SET follower_count = NULL WHERE ind IN (4, 16);
SELECT * FROM pinpipe.median_followers_by_age_group();
SELECT * FROM pinpipe.median_followers_by_join_year();
-- and no follower count at all: no most-followed rows, no medians
UPDATE pinpipe.pin_clean SET follower_count = NULL;
SELECT count(*) FROM pinpipe.most_followed_by_country();
SELECT count(*) FROM pinpipe.most_followed_country();
SELECT count(*) FROM pinpipe.median_followers_by_age_group_and_join_year(NULL, NULL);
SELECT bool_and(matches) AS all_match FROM pinpipe.analytics_check();

-- bad median methods: an error with a detail and a hint
SELECT * FROM pinpipe.median_followers_by_age_group('median');
SELECT * FROM pinpipe.median_followers_by_join_year(method => NULL);
SELECT * FROM pinpipe.median_followers_by_age_group_and_join_year(method => 'Exact');
-- the check happens on an empty table too
TRUNCATE pinpipe.pin_clean;
SELECT * FROM pinpipe.median_followers_by_age_group('approx');
SELECT bool_and(matches) AS all_match FROM pinpipe.analytics_check();

-- the functions: stable, documented, with the documented columns
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, pg_get_function_result(p.oid) AS result,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS documented
  FROM pg_proc p
 WHERE p.pronamespace = 'pinpipe'::regnamespace
   AND p.proname IN ('popular_category_by_country', 'category_count_by_year', 'most_followed_by_country',
                     'most_followed_country', 'popular_category_by_age_group', 'median_followers_by_age_group',
                     'users_joined_by_year', 'median_followers_by_join_year',
                     'median_followers_by_age_group_and_join_year')
 ORDER BY p.proname;
-- every analytics function and table is documented
SELECT p.oid::regprocedure::text AS undocumented FROM pg_proc p
 WHERE p.pronamespace = 'pinpipe'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
   AND p.proname ~ '^(analytics_|refresh$|schedule_refresh$|unschedule_refresh$|year_of$|age_group_order$)'
UNION ALL
SELECT c.oid::regclass::text FROM pg_class c
 WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') IS NULL
   AND c.relname LIKE 'analytics%';
-- refresh and scheduling are admin functions
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('pinpipe_admin', p.oid, 'EXECUTE') AS pinpipe_admin
  FROM pg_proc p
 WHERE p.pronamespace = 'pinpipe'::regnamespace AND p.proname IN ('refresh', 'schedule_refresh', 'unschedule_refresh')
 ORDER BY 1;
