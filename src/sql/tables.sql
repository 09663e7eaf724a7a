--
-- Tables. Raw tables hold one row per Kafka message, exactly as sent; the
-- clean tables one row per ind, the latest message's cleaned values.
--

-- Offsets for rows loaded by hand (kafka_partition = -1, kafka_source = 0),
-- not from Kafka. A row from Kafka is identified by its source (an
-- incarnation of its topic, pinpipe.sources), partition and offset.
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
    kafka_source int NOT NULL DEFAULT 0,
    kafka_key bytea,
    kafka_headers jsonb,
    PRIMARY KEY (kafka_source, kafka_partition, kafka_offset)
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
    kafka_source int NOT NULL DEFAULT 0,
    kafka_key bytea,
    kafka_headers jsonb,
    PRIMARY KEY (kafka_source, kafka_partition, kafka_offset)
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
    kafka_source int NOT NULL DEFAULT 0,
    kafka_key bytea,
    kafka_headers jsonb,
    PRIMARY KEY (kafka_source, kafka_partition, kafka_offset)
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
