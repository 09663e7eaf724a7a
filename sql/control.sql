-- Settings, monitoring objects and who may steer the workers.

SELECT name, vartype, context, boot_val, unit
  FROM pg_settings WHERE name LIKE 'pinpipe.%' ORDER BY name;

-- the monitoring views exist with their columns
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'pinpipe.status'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'pinpipe.partition_lag'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) = current_setting('pinpipe.workers')::int * 3 AS one_row_per_worker_and_topic
  FROM pinpipe.status;

-- wait (at most 10 s) until every worker is paused, or none is
CREATE FUNCTION pg_temp.wait_for_state(paused bool) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..100 LOOP
        IF (SELECT bool_and((state = 'paused') = paused OR state = 'stopped') FROM pinpipe.status) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN false;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.wait_for_state(bool) TO PUBLIC;

CREATE ROLE pinpipe_plain;
CREATE ROLE pinpipe_sneaky;

GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume() TO pinpipe_sneaky;

-- a plain user may not pause, resume, read status or see kafka_config
SET ROLE pinpipe_plain;
SELECT pinpipe.pause();
SELECT pinpipe.resume();
SELECT * FROM pinpipe.status;
SELECT * FROM pinpipe.offsets;
SELECT * FROM pinpipe.pin_clean;
SHOW pinpipe.kafka_config;
SELECT count(*) AS visible FROM pg_settings WHERE name = 'pinpipe.kafka_config';
SELECT current_setting('pinpipe.kafka_config');
-- but anyone may call the cleaning functions
SELECT pinpipe.clean_follower_count('217k'), pinpipe.age_group(30);
RESET ROLE;

-- even with EXECUTE granted, the functions check the role themselves
SET ROLE pinpipe_sneaky;
SELECT pinpipe.pause();
RESET ROLE;

-- permission errors of reclean() and the analytics functions name the role to grant
SET ROLE pinpipe_plain;
SELECT * FROM pinpipe.reclean();
SELECT * FROM pinpipe.popular_category_by_country();
SELECT * FROM pinpipe.median_followers_by_age_group();
RESET ROLE;

-- pinpipe_reader may read what a reader or the dashboard needs, and nothing else
GRANT pinpipe_reader TO pinpipe_plain;
SET ROLE pinpipe_plain;
SELECT count(*) >= 0 AS read FROM pinpipe.popular_category_by_country();
SELECT count(*) >= 0 AS read FROM pinpipe.median_followers_by_age_group_and_join_year(method => 'lower');
SELECT count(*) >= 0 AS read FROM pinpipe.status;
SELECT count(*) >= 0 AS read FROM pinpipe.partition_lag;
SELECT count(*) >= 0 AS read FROM pinpipe.ingest_history;
SELECT count(*) >= 0 AS read FROM pinpipe.dead_letters;
SELECT count(*) >= 0 AS read FROM pinpipe.offset_gaps;
SELECT count(*) >= 0 AS read FROM pinpipe.pin_clean;
SELECT count(*) >= 0 AS read FROM pinpipe.offsets;
SELECT pinpipe.pause();
SELECT * FROM pinpipe.reclean();
RESET ROLE;
REVOKE pinpipe_reader FROM pinpipe_plain;

-- pinpipe_admin may read status and reclean; pause and resume, but only in
-- pinpipe.database, which this is not: they are refused here (test/t/status.pl
-- pauses and resumes in the workers' database)
GRANT pinpipe_admin TO pinpipe_plain;
SET ROLE pinpipe_plain;
SELECT count(*) = current_setting('pinpipe.workers')::int * 3 AS sees_status,
       bool_and(database = current_setting('pinpipe.database')) AS names_the_workers_database,
       bool_and(database <> current_database()) AS not_this_one
  FROM pinpipe.status;
SELECT pinpipe.pause();
SELECT pinpipe.resume();
SELECT pg_temp.wait_for_state(false) AS not_paused;
SELECT pin_rows >= 0 AS recleaned FROM pinpipe.reclean();
RESET ROLE;
SELECT pinpipe.pause('1 s');

-- superusers see kafka_config
SELECT count(*) AS visible FROM pg_settings WHERE name = 'pinpipe.kafka_config';

REVOKE pinpipe_admin FROM pinpipe_plain;
DROP OWNED BY pinpipe_sneaky;
DROP ROLE pinpipe_plain, pinpipe_sneaky;
