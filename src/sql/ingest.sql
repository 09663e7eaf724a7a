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
