-- reclean() over the real sample tables (data/*.jsonl: 2,482 pins, 11,154
-- geo and user rows), loaded into the raw tables by COPY.
\set QUIET on
\i test/load_sample.sql
\set QUIET off

SELECT (SELECT count(*) FROM pinpipe.pin_raw) AS pin_raw,
       (SELECT count(*) FROM pinpipe.geo_raw) AS geo_raw,
       (SELECT count(*) FROM pinpipe.user_raw) AS user_raw;

SELECT * FROM pinpipe.reclean();

-- every pin's row, none lost
SELECT count(*) AS pins, count(DISTINCT ind) AS distinct_ind FROM pinpipe.pin_clean;

-- no placeholder or blank left in any text column of any clean table
SELECT count(*) AS placeholders_left
  FROM pinpipe.pin_clean c,
       LATERAL unnest(ARRAY[c.title, c.description, c.poster_name, c.tag_list,
                            c.is_image_or_video, c.image_src, c.save_location, c.category]) v
 WHERE v IS NOT NULL AND pinpipe.clean_text(v) IS NULL;
SELECT count(*) AS placeholders_left
  FROM (SELECT country AS v FROM pinpipe.geo_clean UNION ALL SELECT user_name FROM pinpipe.user_clean) s
 WHERE v IS NOT NULL AND pinpipe.clean_text(v) IS NULL;

-- what each placeholder of the source became
SELECT 'title' AS col, r.title AS raw, count(*), count(c.title) AS kept
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE pinpipe.clean_text(r.title) IS NULL GROUP BY 1, 2
UNION ALL
SELECT 'description', r.description, count(*), count(c.description)
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE pinpipe.clean_text(r.description) IS NULL GROUP BY 1, 2
UNION ALL
SELECT 'poster_name', r.poster_name, count(*), count(c.poster_name)
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE pinpipe.clean_text(r.poster_name) IS NULL GROUP BY 1, 2
UNION ALL
SELECT 'tag_list', r.tag_list, count(*), count(c.tag_list)
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE pinpipe.clean_text(r.tag_list) IS NULL GROUP BY 1, 2
UNION ALL
SELECT 'image_src', r.image_src, count(*), count(c.image_src)
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE pinpipe.clean_text(r.image_src) IS NULL GROUP BY 1, 2
ORDER BY 1, 2;

-- follower_count is NULL exactly where the source says 'User Info Error'
SELECT r.follower_count = 'User Info Error' AS source_error, c.follower_count IS NULL AS clean_null,
       count(*)
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 GROUP BY 1, 2 ORDER BY 1, 2;

-- every follower_count format of the source, with an example
SELECT DISTINCT ON (format) format, count(*) OVER (PARTITION BY format), raw, clean
  FROM (SELECT regexp_replace(r.follower_count, '[0-9]', '9', 'g') AS format,
               r.follower_count AS raw, c.follower_count AS clean
          FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index") s
 ORDER BY format, raw;

-- suffixes scale exactly
SELECT count(*) AS mismatches
  FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
 WHERE r.follower_count ~ '^[0-9]+[kM]?$'
   AND c.follower_count IS DISTINCT FROM
       (regexp_replace(r.follower_count, '[kM]$', ''))::bigint *
       CASE right(r.follower_count, 1) WHEN 'k' THEN 1000 WHEN 'M' THEN 1000000 ELSE 1 END;

-- save_location keeps only the path, and it names the category
SELECT count(*) FILTER (WHERE save_location = '/data/' || category) AS path_is_category,
       count(*) FILTER (WHERE save_location LIKE 'Local save%') AS prefix_left
  FROM pinpipe.pin_clean;

-- every unique_id is a UUID, every category and media type survives
SELECT count(unique_id) AS uuids, count(DISTINCT category) AS categories,
       string_agg(DISTINCT is_image_or_video, ', ') AS media
  FROM pinpipe.pin_clean;

-- geo and user: one row per ind, coordinates and timestamps all parsed
SELECT count(*) AS geo_rows, count(coordinates) AS with_coordinates,
       count("timestamp") AS with_timestamp, min("timestamp"), max("timestamp"),
       count(DISTINCT country) AS countries
  FROM pinpipe.geo_clean;
SELECT count(*) AS user_rows, count(user_name) AS with_name, min(age), max(age),
       min(date_joined), max(date_joined)
  FROM pinpipe.user_clean;
SELECT c.* FROM pinpipe.geo_clean c WHERE ind IN (0, 7528) ORDER BY ind;
SELECT c.* FROM pinpipe.user_clean c WHERE ind IN (0, 7528) ORDER BY ind;

-- the raw-row cleaner and the JSON cleaner (the worker's decoder) agree on every row
SELECT count(*) AS disagreements
  FROM pinpipe.pin_raw r
 WHERE pinpipe.clean_pin_raw(r) IS DISTINCT FROM
       pinpipe.clean_pin(to_jsonb(r) - '{extra,kafka_partition,kafka_offset,kafka_timestamp}'::text[]);
SELECT count(*) AS disagreements
  FROM pinpipe.geo_raw r
 WHERE pinpipe.clean_geo_raw(r) IS DISTINCT FROM
       pinpipe.clean_geo(to_jsonb(r) - '{extra,kafka_partition,kafka_offset,kafka_timestamp}'::text[]);
SELECT count(*) AS disagreements
  FROM pinpipe.user_raw r
 WHERE pinpipe.clean_user_raw(r) IS DISTINCT FROM
       pinpipe.clean_user(to_jsonb(r) - '{extra,kafka_partition,kafka_offset,kafka_timestamp}'::text[]);

-- a later message for an ind replaces the earlier one
INSERT INTO pinpipe.user_raw (ind, first_name, last_name, age, date_joined)
VALUES (0, 'Adam', 'Later', 21, '2016-01-01 00:00:00');
SELECT * FROM pinpipe.reclean();
SELECT * FROM pinpipe.user_clean WHERE ind = 0;

-- reclean is one transaction: a failure leaves the clean tables as they were
BEGIN;
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.ind = 5 THEN RAISE EXCEPTION 'refused ind 5'; END IF; RETURN NEW; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON pinpipe.user_clean FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SAVEPOINT s;
\set VERBOSITY terse
SELECT * FROM pinpipe.reclean();
\set VERBOSITY default
ROLLBACK TO s;
SELECT count(*) AS user_rows_kept FROM pinpipe.user_clean;
ROLLBACK;

TRUNCATE pinpipe.pin_raw, pinpipe.geo_raw, pinpipe.user_raw,
         pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean;
