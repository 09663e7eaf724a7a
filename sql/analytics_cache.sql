-- Analytics caches: after every kind of write (the worker's batch upserts,
-- updates of existing ind values, ind changes, deletes, rollbacks, COPY,
-- TRUNCATE, reclean()) every analytics function still equals its plain-SQL
-- definition over the clean tables (pinpipe.analytics_check()).
\set SHOW_CONTEXT never
TRUNCATE pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean;
TRUNCATE pinpipe.pin_raw, pinpipe.geo_raw, pinpipe.user_raw;
\set ECHO none
\set QUIET on
\i test/load_sample.sql
\set QUIET off
\set ECHO all
-- failing checks, of 25: the 9 functions (default year ranges and all years,
-- both median methods: 18 calls) and the 7 cache tables, counts included
CREATE TEMP VIEW mismatches AS
    SELECT count(*) FILTER (WHERE NOT matches) AS mismatches, count(*) AS checks FROM pinpipe.analytics_check();

SELECT * FROM pinpipe.reclean();
SELECT * FROM mismatches;
-- the triggers left nothing for refresh() to correct
SELECT cache, cached_rows > 0 AS filled, corrected_rows FROM pinpipe.refresh();

-- The worker's statement: one array of rows per table, upserted. Existing
-- inds with new values (category, follower count, poster), new inds, and
-- identical re-sends (the emulation's duplicates).
INSERT INTO pinpipe.pin_clean
SELECT * FROM unnest((SELECT array_agg(r) FROM (
    SELECT (ind, unique_id, title, description, follower_count * 2, poster_name || ' 2', tag_list,
            is_image_or_video, image_src, save_location, 'travel')::pinpipe.pin_clean AS r
      FROM pinpipe.pin_clean WHERE ind % 10 = 0
    UNION ALL
    SELECT (ind + 20000, unique_id, title, description, follower_count, poster_name, tag_list,
            is_image_or_video, image_src, save_location, category)::pinpipe.pin_clean
      FROM pinpipe.pin_clean WHERE ind % 10 = 1
    UNION ALL
    SELECT c FROM pinpipe.pin_clean c WHERE ind % 10 = 2) s))
ON CONFLICT (ind) DO UPDATE SET unique_id = excluded.unique_id, title = excluded.title,
    description = excluded.description, follower_count = excluded.follower_count,
    poster_name = excluded.poster_name, tag_list = excluded.tag_list,
    is_image_or_video = excluded.is_image_or_video, image_src = excluded.image_src,
    save_location = excluded.save_location, category = excluded.category;
SELECT * FROM mismatches;
INSERT INTO pinpipe.geo_clean
SELECT * FROM unnest((SELECT array_agg(r) FROM (
    SELECT (ind, 'Atlantis', coordinates, "timestamp" + interval '1 year')::pinpipe.geo_clean AS r
      FROM pinpipe.geo_clean WHERE ind % 10 = 3
    UNION ALL
    SELECT (ind + 20000, country, coordinates, "timestamp")::pinpipe.geo_clean
      FROM pinpipe.geo_clean WHERE ind % 10 = 1
    UNION ALL
    SELECT c FROM pinpipe.geo_clean c WHERE ind % 10 = 2) s))
ON CONFLICT (ind) DO UPDATE SET country = excluded.country, coordinates = excluded.coordinates,
    "timestamp" = excluded."timestamp";
SELECT * FROM mismatches;
INSERT INTO pinpipe.user_clean
SELECT * FROM unnest((SELECT array_agg(r) FROM (
    SELECT (ind, user_name, age - 10, date_joined - interval '1 year')::pinpipe.user_clean AS r
      FROM pinpipe.user_clean WHERE ind % 10 = 4
    UNION ALL
    SELECT (ind + 20000, user_name, age, date_joined)::pinpipe.user_clean
      FROM pinpipe.user_clean WHERE ind % 10 = 1
    UNION ALL
    SELECT c FROM pinpipe.user_clean c WHERE ind % 10 = 2) s))
ON CONFLICT (ind) DO UPDATE SET user_name = excluded.user_name, age = excluded.age,
    date_joined = excluded.date_joined;
SELECT * FROM mismatches;

-- updates of existing rows, column by column
UPDATE pinpipe.pin_clean SET category = 'quotes' WHERE ind % 7 = 0;
UPDATE pinpipe.pin_clean SET follower_count = NULL WHERE ind % 11 = 0;
UPDATE pinpipe.pin_clean SET follower_count = 99000000 WHERE ind % 500 = 5;
UPDATE pinpipe.geo_clean SET country = NULL WHERE ind % 13 = 0;
UPDATE pinpipe.geo_clean SET "timestamp" = "timestamp" - interval '3 years' WHERE ind % 17 = 0;
UPDATE pinpipe.user_clean SET age = 16 WHERE ind % 19 = 0;
UPDATE pinpipe.user_clean SET date_joined = NULL WHERE ind % 23 = 0;
SELECT * FROM mismatches;
-- an update that changes ind: the row leaves its old pairs and joins new ones
UPDATE pinpipe.geo_clean SET ind = ind + 50000 WHERE ind % 29 = 0;
UPDATE pinpipe.user_clean SET ind = ind - 1 WHERE ind % 31 = 0 AND ind - 1 NOT IN (SELECT ind FROM pinpipe.user_clean);
SELECT * FROM mismatches;

-- deletes
DELETE FROM pinpipe.pin_clean WHERE ind % 37 = 0;
DELETE FROM pinpipe.geo_clean WHERE ind % 41 = 0;
DELETE FROM pinpipe.user_clean WHERE ind % 43 = 0;
SELECT * FROM mismatches;

-- mass deletes: one that leaves rows adds its delta; one that empties the
-- table (as reclean() does) clears the caches built from it
BEGIN;
DELETE FROM pinpipe.geo_clean WHERE ind % 10 <> 0;
SELECT * FROM mismatches;
DELETE FROM pinpipe.user_clean;
SELECT * FROM mismatches;
SELECT count(*) AS age_groups FROM pinpipe.popular_category_by_age_group();
ROLLBACK;

-- a rolled back transaction and a rolled back savepoint leave no trace
SELECT md5(string_agg(f::text, ',')) AS before FROM pinpipe.popular_category_by_country() f \gset
BEGIN;
DELETE FROM pinpipe.geo_clean WHERE country < 'M';
ROLLBACK;
BEGIN;
UPDATE pinpipe.pin_clean SET category = 'art' WHERE ind % 3 = 0;
SAVEPOINT s;
DELETE FROM pinpipe.pin_clean WHERE category = 'art';
ROLLBACK TO SAVEPOINT s;
SELECT * FROM mismatches;
ROLLBACK;
SELECT md5(string_agg(f::text, ',')) = :'before' AS unchanged FROM pinpipe.popular_category_by_country() f;
SELECT * FROM mismatches;

-- MERGE and COPY
MERGE INTO pinpipe.user_clean u
USING (SELECT ind, 70 AS age FROM pinpipe.pin_clean WHERE ind % 47 = 0) s ON u.ind = s.ind
WHEN MATCHED THEN UPDATE SET age = s.age
WHEN NOT MATCHED THEN INSERT (ind, user_name, age, date_joined) VALUES (s.ind, 'merged', s.age, '2019-01-01');
COPY pinpipe.user_clean (ind, user_name, age, date_joined) FROM stdin;
700001	copy one	33	2016-06-06 00:00:00
700002	copy two	12	2017-07-07 00:00:00
\.
COPY pinpipe.pin_clean (ind, poster_name, follower_count, category) FROM stdin;
700001	copier	123000	art
700002	copier	5	mens-fashion
\.
SELECT * FROM mismatches;

-- TRUNCATE rebuilds the caches
TRUNCATE pinpipe.geo_clean;
SELECT * FROM mismatches;
SELECT count(*) AS countries FROM pinpipe.popular_category_by_country();

-- reclean() from the raw tables, and back where we started
SELECT * FROM pinpipe.reclean();
SELECT * FROM mismatches;
SELECT cache, corrected_rows FROM pinpipe.refresh();

-- Triggers bypassed (a replica session, or a restore with --disable-triggers):
-- the caches drift, and refresh() finds and corrects it, with a warning.
SET session_replication_role = replica;
DELETE FROM pinpipe.pin_clean WHERE ind < 1000;
UPDATE pinpipe.user_clean SET age = 20;
RESET session_replication_role;
SELECT mismatches > 0 AS drifted FROM mismatches;
SELECT cache, corrected_rows > 0 AS corrected FROM pinpipe.refresh();
SELECT * FROM mismatches;
SELECT count(*) AS refreshes, sum(corrected_rows) > 0 AS corrected_once FROM pinpipe.analytics_refreshes;
-- a group whose count fell to 0 is gone after a refresh
SELECT (SELECT count(*) FROM pinpipe.analytics_country_category WHERE n <= 0)
     + (SELECT count(*) FROM pinpipe.analytics_followers_rank WHERE n <= 0) AS empty_groups;

-- Two writers at once: this session inserts pin 900001 and, before it
-- commits, another session (dblink) inserts geo 900001. Each statement alone
-- would miss the pair (neither sees the other's uncommitted row); the
-- advisory lock makes the second wait for the first's commit, then see it.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
    split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(), current_user));
BEGIN;
INSERT INTO pinpipe.pin_clean (ind, poster_name, follower_count, category) VALUES (900001, 'racer', 7, 'vehicles');
SELECT dblink_send_query('other', $$INSERT INTO pinpipe.geo_clean (ind, country, "timestamp") VALUES (900001, 'Racing', '2020-01-01')$$);
DO $$
BEGIN
    -- wait until the other session is blocked on the lock
    FOR i IN 1..500 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted);
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted;
COMMIT;
SELECT * FROM dblink_get_result('other') AS r(status text);
SELECT dblink_disconnect('other');
SELECT * FROM pinpipe.popular_category_by_country() WHERE country = 'Racing';
SELECT * FROM pinpipe.most_followed_by_country() WHERE country = 'Racing';
SELECT * FROM mismatches;
DELETE FROM pinpipe.geo_clean WHERE ind = 900001;
DELETE FROM pinpipe.pin_clean WHERE ind = 900001;

-- writes the caches cannot follow exactly are refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE pinpipe.pin_clean SET category = 'art' WHERE ind = 1;
ROLLBACK;
WITH p AS (INSERT INTO pinpipe.pin_clean (ind, category) VALUES (800000, 'art') RETURNING ind)
INSERT INTO pinpipe.geo_clean (ind, country) SELECT ind, 'Atlantis' FROM p;
BEGIN ISOLATION LEVEL SERIALIZABLE;
DELETE FROM pinpipe.geo_clean WHERE ind = 1;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM pinpipe.refresh();
ROLLBACK;
-- one table per statement, in read committed, is fine
BEGIN;
INSERT INTO pinpipe.pin_clean (ind, category) VALUES (800000, 'art');
INSERT INTO pinpipe.geo_clean (ind, country) VALUES (800000, 'Atlantis');
COMMIT;
WITH d AS (DELETE FROM pinpipe.pin_clean WHERE ind = 800000 RETURNING *)
INSERT INTO pinpipe.pin_clean SELECT * FROM d;
SELECT * FROM mismatches;
SELECT * FROM pinpipe.popular_category_by_country() WHERE country = 'Atlantis';
