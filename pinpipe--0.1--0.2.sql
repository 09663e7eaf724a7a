/* pinpipe--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pinpipe UPDATE TO '0.2'" to load this file. \quit

--
-- Every schema change of 0.2 goes to two places: into its piece in src/sql
-- (the fresh install, pinpipe--0.2.sql, is built from the pieces) and here,
-- as the statements that bring a 0.1 schema to the same state: CREATE for a
-- new object, CREATE OR REPLACE FUNCTION for a changed body (ALTER FUNCTION
-- for its attributes), ALTER TABLE for columns, defaults and constraints,
-- and the same GRANT, REVOKE and COMMENT statements as the piece. A new
-- table that holds user data needs its pg_extension_config_dump() here too.
-- pinpipe--0.1.sql is never edited.
--
-- test/t/upgrade.pl tests it: an update from 0.1 must give the same catalog as
-- a fresh install of 0.2 (test/sql/catalog_snapshot.sql prints both).
--
-- The worker locks pinpipe.offsets first in every batch; an update locks it
-- before anything else, so it waits for the batch in progress and the next
-- batch waits for the update (no deadlock between the two).
LOCK TABLE pinpipe.offsets IN SHARE ROW EXCLUSIVE MODE;

-- The status views: the database each worker writes to, each topic's state
-- since when, and its last and previous errors (src/sql/worker.sql). Their
-- functions' result columns change, so they are dropped and created again;
-- pause() gains its timeout.
DROP VIEW pinpipe.status;
DROP VIEW pinpipe.partition_lag;
DROP FUNCTION pinpipe.worker_status();
DROP FUNCTION pinpipe.partition_status();
DROP FUNCTION pinpipe.pause();

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
COMMENT ON FUNCTION pinpipe.resume() IS
'resume consuming after pinpipe.pause(); superusers and pinpipe_admin only, in pinpipe.database';

REVOKE ALL ON FUNCTION pinpipe.pause(interval), pinpipe.worker_status(),
    pinpipe.partition_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.worker_status(),
    pinpipe.partition_status() TO pinpipe_admin, pg_monitor;
REVOKE EXECUTE ON FUNCTION pinpipe.pause(interval) FROM pg_monitor;
GRANT SELECT ON pinpipe.status, pinpipe.partition_lag TO pinpipe_admin, pg_monitor;
