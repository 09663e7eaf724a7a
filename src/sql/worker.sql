--
-- Monitoring and control of the workers.
--

CREATE FUNCTION pinpipe.worker_status(
    OUT kind text, OUT topic text, OUT worker int, OUT database text, OUT pid int,
    OUT state text, OUT since timestamptz,
    OUT messages bigint, OUT dead_letters bigint, OUT batches bigint,
    OUT last_batch_at timestamptz, OUT partitions int, OUT lag bigint,
    OUT lost_messages bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT previous_error text, OUT previous_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'worker_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.worker_status() IS
'progress of each worker per topic since the server started (the pinpipe.status view)';

CREATE FUNCTION pinpipe.partition_status(
    OUT topic text, OUT kafka_partition int, OUT worker int, OUT database text,
    OUT next_offset bigint,
    OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'partition_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pinpipe.partition_status() IS
'each consumed partition: next offset, the broker''s high watermark, and the lag between them';

CREATE VIEW pinpipe.status AS
    SELECT kind, topic, worker, database, pid, state, since, messages, dead_letters, batches,
           last_batch_at, partitions, lag, lost_messages, last_error, last_error_at,
           previous_error, previous_error_at
      FROM pinpipe.worker_status();
COMMENT ON VIEW pinpipe.status IS
'per worker and topic: the database it writes to, pid, state and since when, messages and dead letters since the server started, batches, last batch time, consumer lag, messages lost to retention, last error (NULL once its cause is gone) and the previous one';

CREATE VIEW pinpipe.partition_lag AS
    SELECT topic, kafka_partition, worker, database, next_offset, high_watermark, lag
      FROM pinpipe.partition_status();
COMMENT ON VIEW pinpipe.partition_lag IS
'consumer lag per partition against the broker''s high watermark';

CREATE FUNCTION pinpipe.pause(timeout interval DEFAULT '30 s') RETURNS void
AS 'MODULE_PATHNAME', 'pinpipe_pause'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pinpipe.pause(interval) IS
'stop consuming (until pinpipe.resume() or a server restart), returning once the workers have stopped (a WARNING after timeout); superusers and pinpipe_admin only, in pinpipe.database';

CREATE FUNCTION pinpipe.resume() RETURNS void
AS 'MODULE_PATHNAME', 'pinpipe_resume'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pinpipe.resume() IS
'resume consuming after pinpipe.pause(); superusers and pinpipe_admin only, in pinpipe.database';

-- The role that may steer the workers without being a superuser.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pinpipe_admin') THEN
        CREATE ROLE pinpipe_admin NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION pinpipe.pause(interval), pinpipe.resume(), pinpipe.reclean(),
    pinpipe.worker_status(), pinpipe.partition_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume(), pinpipe.worker_status(),
    pinpipe.partition_status() TO pinpipe_admin, pg_monitor;
REVOKE EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume() FROM pg_monitor;
GRANT SELECT ON pinpipe.status, pinpipe.partition_lag TO pinpipe_admin, pg_monitor;
-- Everyone may call the cleaning functions; tables and admin functions stay
-- private until granted.
GRANT USAGE ON SCHEMA pinpipe TO PUBLIC;
GRANT SELECT ON pinpipe.sources, pinpipe.offsets, pinpipe.dead_letters, pinpipe.offset_gaps TO pinpipe_admin;
