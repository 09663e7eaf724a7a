/* pinpipe--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pinpipe" to load this file. \quit

--
-- Cleaning functions (C, src/clean.c). Messy input gives NULL, never an error.
--

CREATE FUNCTION pinpipe.clean_follower_count(text) RETURNS bigint
AS 'MODULE_PATHNAME', 'clean_follower_count'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_follower_count(text) IS
'follower count as a number: ''437'' -> 437, ''217k'' -> 217000, ''2M'' -> 2000000, ''1.5k'' -> 1500; NULL for placeholders and garbage';

CREATE FUNCTION pinpipe.make_coordinates(latitude float8, longitude float8) RETURNS float8[]
AS 'MODULE_PATHNAME', 'make_coordinates'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.make_coordinates(float8, float8) IS
'[latitude, longitude]; NULL when either is NaN, infinite or out of range';

CREATE FUNCTION pinpipe.clean_text(text) RETURNS text
AS 'MODULE_PATHNAME', 'clean_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_text(text) IS
'NULL for a blank string or a known placeholder (''No Title Data Available'', ''User Info Error'', ...), otherwise the value unchanged';

CREATE FUNCTION pinpipe.clean_save_location(text) RETURNS text
AS 'MODULE_PATHNAME', 'clean_save_location'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_save_location(text) IS
'''Local save in /data/art'' -> ''/data/art''; other values unchanged';

CREATE FUNCTION pinpipe.make_user_name(first_name text, last_name text) RETURNS text
AS 'MODULE_PATHNAME', 'make_user_name'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.make_user_name(text, text) IS
'first and last name joined by a space; a missing (NULL, blank or placeholder) part gives the other; both missing give NULL';

CREATE FUNCTION pinpipe.age_group(age int) RETURNS text
AS 'MODULE_PATHNAME', 'age_group'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.age_group(int) IS
'age band: ''18-24'', ''25-35'', ''36-50'' or ''+50''; NULL under 18';

CREATE FUNCTION pinpipe.parse_timestamp(text) RETURNS timestamp
AS 'MODULE_PATHNAME', 'parse_timestamp'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.parse_timestamp(text) IS
'''YYYY-MM-DD HH:MM:SS'' or ''YYYY-MM-DDTHH:MM:SS'' (optional fraction) as a timestamp; NULL for anything else';

--
-- Tables. Raw tables hold one row per Kafka message, exactly as sent; the
-- clean tables one row per ind, the latest message's cleaned values.
--

-- Offsets for rows loaded by hand (kafka_partition = -1), not from Kafka.
CREATE SEQUENCE pinpipe.manual_offset;

CREATE TABLE pinpipe.pin_raw (
    "index" int NOT NULL,
    unique_id text,
    title text,
    description text,
    poster_name text,
    follower_count text,
    tag_list text,
    is_image_or_video text,
    image_src text,
    downloaded int,
    save_location text,
    category text,
    extra jsonb,
    kafka_partition int NOT NULL DEFAULT -1,
    kafka_offset bigint NOT NULL DEFAULT nextval('pinpipe.manual_offset'),
    kafka_timestamp timestamptz DEFAULT now(),
    PRIMARY KEY (kafka_partition, kafka_offset)
);
COMMENT ON TABLE pinpipe.pin_raw IS 'one row per message of <prefix>.pin, as sent; unknown keys in extra';

CREATE TABLE pinpipe.geo_raw (
    ind int NOT NULL,
    "timestamp" text,
    latitude float8,
    longitude float8,
    country text,
    extra jsonb,
    kafka_partition int NOT NULL DEFAULT -1,
    kafka_offset bigint NOT NULL DEFAULT nextval('pinpipe.manual_offset'),
    kafka_timestamp timestamptz DEFAULT now(),
    PRIMARY KEY (kafka_partition, kafka_offset)
);
COMMENT ON TABLE pinpipe.geo_raw IS 'one row per message of <prefix>.geo, as sent; unknown keys in extra';

CREATE TABLE pinpipe.user_raw (
    ind int NOT NULL,
    first_name text,
    last_name text,
    age int,
    date_joined text,
    extra jsonb,
    kafka_partition int NOT NULL DEFAULT -1,
    kafka_offset bigint NOT NULL DEFAULT nextval('pinpipe.manual_offset'),
    kafka_timestamp timestamptz DEFAULT now(),
    PRIMARY KEY (kafka_partition, kafka_offset)
);
COMMENT ON TABLE pinpipe.user_raw IS 'one row per message of <prefix>.user, as sent; unknown keys in extra';

CREATE TABLE pinpipe.pin_clean (
    ind int PRIMARY KEY,
    unique_id uuid,
    title text,
    description text,
    follower_count bigint,
    poster_name text,
    tag_list text,
    is_image_or_video text,
    image_src text,
    save_location text,
    category text
);
COMMENT ON TABLE pinpipe.pin_clean IS 'cleaned pins, one row per ind (the latest message wins)';

CREATE TABLE pinpipe.geo_clean (
    ind int PRIMARY KEY,
    country text,
    coordinates float8[],
    "timestamp" timestamp
);
COMMENT ON TABLE pinpipe.geo_clean IS 'cleaned geolocations, one row per ind (the latest message wins)';

CREATE TABLE pinpipe.user_clean (
    ind int PRIMARY KEY,
    user_name text,
    age int,
    date_joined timestamp
);
COMMENT ON TABLE pinpipe.user_clean IS 'cleaned users, one row per ind (the latest message wins)';

SELECT pg_catalog.pg_extension_config_dump('pinpipe.pin_raw', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.geo_raw', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.user_raw', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.pin_clean', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.geo_clean', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.user_clean', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.manual_offset', '');

--
-- Whole-record cleaners: the same decoder and rules as the worker.
--

CREATE FUNCTION pinpipe.clean_pin(jsonb) RETURNS pinpipe.pin_clean
AS 'MODULE_PATHNAME', 'clean_pin'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_pin(jsonb) IS
'a pin message (keys index or ind, ...) cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_geo(jsonb) RETURNS pinpipe.geo_clean
AS 'MODULE_PATHNAME', 'clean_geo'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_geo(jsonb) IS
'a geo message cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_user(jsonb) RETURNS pinpipe.user_clean
AS 'MODULE_PATHNAME', 'clean_user'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_user(jsonb) IS
'a user message cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_pin_raw(pinpipe.pin_raw) RETURNS pinpipe.pin_clean
AS 'MODULE_PATHNAME', 'clean_pin_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_pin_raw(pinpipe.pin_raw) IS
'a pin_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.clean_geo_raw(pinpipe.geo_raw) RETURNS pinpipe.geo_clean
AS 'MODULE_PATHNAME', 'clean_geo_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_geo_raw(pinpipe.geo_raw) IS
'a geo_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.clean_user_raw(pinpipe.user_raw) RETURNS pinpipe.user_clean
AS 'MODULE_PATHNAME', 'clean_user_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_user_raw(pinpipe.user_raw) IS
'a user_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.message_error(kind text, payload bytea) RETURNS text
AS 'MODULE_PATHNAME', 'message_error'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.message_error(text, bytea) IS
'why the worker would refuse this message of kind pin, geo or user (its dead-letter error), or NULL when it would accept it';

--
-- reclean(): rebuild the clean tables from the raw tables, in one transaction.
--

CREATE FUNCTION pinpipe.reclean(OUT pin_rows bigint, OUT geo_rows bigint, OUT user_rows bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE
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
             ORDER BY "index", kafka_timestamp DESC NULLS LAST, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_pin_raw(latest.r) c;
    GET DIAGNOSTICS pin_rows = ROW_COUNT;

    DELETE FROM pinpipe.geo_clean;
    INSERT INTO pinpipe.geo_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.geo_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_geo_raw(latest.r) c;
    GET DIAGNOSTICS geo_rows = ROW_COUNT;

    DELETE FROM pinpipe.user_clean;
    INSERT INTO pinpipe.user_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.user_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_user_raw(latest.r) c;
    GET DIAGNOSTICS user_rows = ROW_COUNT;
END;
$$;
COMMENT ON FUNCTION pinpipe.reclean() IS
'rebuild pin_clean, geo_clean and user_clean from the raw tables (the latest message per ind), in one transaction; returns the row counts';

--
-- Ingestion state: offsets stored with the rows, dead letters, offset gaps.
--

CREATE TABLE pinpipe.offsets (
    topic text NOT NULL,
    kafka_partition int NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
COMMENT ON TABLE pinpipe.offsets IS
'the next Kafka offset to consume, per topic and partition, stored in the same transaction as the rows (exactly-once delivery)';

CREATE TABLE pinpipe.dead_letters (
    topic text NOT NULL,
    kafka_partition int NOT NULL,
    kafka_offset bigint NOT NULL,
    kafka_timestamp timestamptz,
    payload bytea,
    error text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
COMMENT ON TABLE pinpipe.dead_letters IS
'messages the worker could not store as rows (invalid JSON, missing join key, wrong types, too large, refused by a constraint or trigger), with the reason';

CREATE TABLE pinpipe.offset_gaps (
    topic text NOT NULL,
    kafka_partition int NOT NULL,
    expected_offset bigint NOT NULL,
    resumed_offset bigint NOT NULL,
    lost_messages bigint NOT NULL,
    reason text NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pinpipe.offset_gaps IS
'partitions whose stored offset the broker no longer had (retention deleted the messages, or the topic was recreated): what was lost and where the worker resumed';

SELECT pg_catalog.pg_extension_config_dump('pinpipe.offsets', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.offset_gaps', '');

--
-- Monitoring and control of the workers.
--

CREATE FUNCTION pinpipe.worker_status(
    OUT kind text, OUT topic text, OUT worker int, OUT pid int, OUT state text,
    OUT messages bigint, OUT dead_letters bigint, OUT batches bigint,
    OUT last_batch_at timestamptz, OUT partitions int, OUT lag bigint,
    OUT lost_messages bigint, OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'worker_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.worker_status() IS
'progress of each worker per topic since the server started (the pinpipe.status view)';

CREATE FUNCTION pinpipe.partition_status(
    OUT topic text, OUT kafka_partition int, OUT worker int, OUT next_offset bigint,
    OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'partition_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.partition_status() IS
'each consumed partition: next offset, the broker''s high watermark, and the lag between them';

CREATE VIEW pinpipe.status AS
    SELECT kind, topic, worker, pid, state, messages, dead_letters, batches, last_batch_at,
           partitions, lag, lost_messages, last_error, last_error_at
      FROM pinpipe.worker_status();
COMMENT ON VIEW pinpipe.status IS
'per worker and topic: pid, state, messages and dead letters since the server started, batches, last batch time, consumer lag, messages lost to retention, last error';

CREATE VIEW pinpipe.partition_lag AS
    SELECT topic, kafka_partition, worker, next_offset, high_watermark, lag
      FROM pinpipe.partition_status();
COMMENT ON VIEW pinpipe.partition_lag IS
'consumer lag per partition against the broker''s high watermark';

CREATE FUNCTION pinpipe.pause() RETURNS void
AS 'MODULE_PATHNAME', 'pinpipe_pause'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pinpipe.pause() IS
'stop consuming (until pinpipe.resume() or a server restart); superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.resume() RETURNS void
AS 'MODULE_PATHNAME', 'pinpipe_resume'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pinpipe.resume() IS
'resume consuming after pinpipe.pause(); superusers and pinpipe_admin only';

-- The role that may steer the workers without being a superuser.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pinpipe_admin') THEN
        CREATE ROLE pinpipe_admin NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION pinpipe.pause(), pinpipe.resume(), pinpipe.reclean(),
    pinpipe.worker_status(), pinpipe.partition_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.pause(), pinpipe.resume(), pinpipe.worker_status(),
    pinpipe.partition_status() TO pinpipe_admin, pg_monitor;
REVOKE EXECUTE ON FUNCTION pinpipe.pause(), pinpipe.resume() FROM pg_monitor;
GRANT SELECT ON pinpipe.status, pinpipe.partition_lag TO pinpipe_admin, pg_monitor;
-- Everyone may call the cleaning functions; tables and admin functions stay
-- private until granted.
GRANT USAGE ON SCHEMA pinpipe TO PUBLIC;
GRANT SELECT ON pinpipe.offsets, pinpipe.dead_letters, pinpipe.offset_gaps TO pinpipe_admin;
