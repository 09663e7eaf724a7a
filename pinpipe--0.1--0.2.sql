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


-- src/sql/history.sql: the ingest history, and the index the dashboard reads
-- the latest dead letters by

--
-- Ingest history: one row per worker, topic and minute that saw work,
-- written by the worker once a minute from its counters (src/history.c),
-- kept for pinpipe.history_retention. The dashboard's charts read it, so
-- they survive a restart of the dashboard or of the server.
--

CREATE TABLE pinpipe.ingest_history (
    worker int NOT NULL,
    topic text NOT NULL,
    minute timestamptz NOT NULL,
    messages bigint NOT NULL,
    dead_letters bigint NOT NULL,
    batches bigint NOT NULL,
    max_lag bigint,
    PRIMARY KEY (worker, topic, minute)
);
CREATE INDEX ingest_history_minute_idx ON pinpipe.ingest_history (minute);
COMMENT ON TABLE pinpipe.ingest_history IS
'per worker, topic and minute that saw work: messages consumed (rows and dead letters), dead letters, batches and the largest consumer lag seen after a batch; written by the worker once a minute, rows older than pinpipe.history_retention deleted by it';

-- The dashboard lists the latest dead letters.
CREATE INDEX dead_letters_received_at_idx ON pinpipe.dead_letters (received_at);

-- src/sql/reader.sql: the reader role, its grants, and the analytics
-- functions that name it in their permission errors

--
-- pinpipe_reader: everything a reader or the dashboard needs, in one role
-- (GRANT pinpipe_reader TO alice): the clean tables, the analytics caches,
-- the status views, the dead letters, offset gaps and ingest history, and
-- the analytics functions. The nine analytics functions of analytics.sql
-- are redefined here with a first statement that checks the caches'
-- privileges, so that a role without them is told which role to grant
-- (a permission error of the executor has no hint).
--

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pinpipe_reader') THEN
        CREATE ROLE pinpipe_reader NOLOGIN;
    END IF;
END
$$;

GRANT SELECT ON pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean,
    pinpipe.analytics_country_category, pinpipe.analytics_year_category, pinpipe.analytics_country_top,
    pinpipe.analytics_country_poster, pinpipe.analytics_age_category, pinpipe.analytics_followers,
    pinpipe.analytics_join_year, pinpipe.analytics_refreshes,
    pinpipe.status, pinpipe.partition_lag, pinpipe.dead_letters, pinpipe.offset_gaps,
    pinpipe.ingest_history TO pinpipe_reader;
GRANT SELECT ON pinpipe.ingest_history TO pinpipe_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION pinpipe.worker_status(), pinpipe.partition_status() TO pinpipe_reader;

-- Refuse, with the role to grant, a caller who may not read the caches.
CREATE FUNCTION pinpipe.require_reader(function_name text, VARIADIC tables text[]) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        IF NOT has_table_privilege(t, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied for function %', function_name
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = format('The function reads %s, which only members of pinpipe_reader may read.', t),
                      HINT = format('Grant the reader role: GRANT pinpipe_reader TO %I;', current_user);
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pinpipe.require_reader(text, text[]) IS
'internal: raise insufficient_privilege, naming pinpipe_reader, unless the caller may read every table given';

CREATE OR REPLACE FUNCTION pinpipe.popular_category_by_country()
RETURNS TABLE (country text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_country', 'pinpipe.analytics_country_category');
    SELECT c.country, c.category, c.n
      FROM (SELECT a.country, a.category, a.n, rank() OVER (PARTITION BY a.country ORDER BY a.n DESC) AS r
              FROM pinpipe.analytics_country_category a
             WHERE a.n > 0) c
     WHERE c.r = 1
     ORDER BY c.country COLLATE "default", c.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.category_count_by_year(from_year int DEFAULT 2018, to_year int DEFAULT 2022)
RETURNS TABLE (post_year int, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.category_count_by_year', 'pinpipe.analytics_year_category');
    SELECT a.post_year, a.category, a.n
      FROM pinpipe.analytics_year_category a
     WHERE a.n > 0
       AND (category_count_by_year.from_year IS NULL OR a.post_year >= category_count_by_year.from_year)
       AND (category_count_by_year.to_year IS NULL OR a.post_year <= category_count_by_year.to_year)
     ORDER BY a.post_year, a.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.most_followed_by_country()
RETURNS TABLE (country text, poster_name text, follower_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.most_followed_by_country', 'pinpipe.analytics_country_poster',
                                  'pinpipe.analytics_country_top');
    -- the cache holds the pins at each country's top follower count
    SELECT a.country, a.poster_name, a.follower_count
      FROM pinpipe.analytics_country_poster a
      JOIN pinpipe.analytics_country_top t ON t.country = a.country AND t.top = a.follower_count
     WHERE a.n > 0
     ORDER BY a.country COLLATE "default", a.poster_name COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.most_followed_country()
RETURNS TABLE (country text, follower_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.most_followed_country', 'pinpipe.analytics_country_top');
    SELECT t.country, t.top
      FROM pinpipe.analytics_country_top t
     WHERE t.top = (SELECT max(t2.top) FROM pinpipe.analytics_country_top t2)
     ORDER BY t.country COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.popular_category_by_age_group()
RETURNS TABLE (age_group text, category text, category_count bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.popular_category_by_age_group', 'pinpipe.analytics_age_category');
    SELECT c.age_group, c.category, c.n
      FROM (SELECT a.age_group, a.category, a.n, rank() OVER (PARTITION BY a.age_group ORDER BY a.n DESC) AS r
              FROM pinpipe.analytics_age_category a
             WHERE a.n > 0) c
     WHERE c.r = 1
     ORDER BY pinpipe.age_group_order(c.age_group), c.age_group COLLATE "default", c.category COLLATE "default";
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_age_group(method text DEFAULT 'exact')
RETURNS TABLE (age_group text, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_age_group', 'pinpipe.analytics_followers');
    SELECT m.age_group, m.median_follower_count
      FROM pinpipe.analytics_median(true, false, NULL, NULL, median_followers_by_age_group.method) m;
END;

CREATE OR REPLACE FUNCTION pinpipe.users_joined_by_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020)
RETURNS TABLE (post_year int, number_users_joined bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.users_joined_by_year', 'pinpipe.analytics_join_year');
    SELECT a.join_year, a.n
      FROM pinpipe.analytics_join_year a
     WHERE a.n > 0
       AND (users_joined_by_year.from_year IS NULL OR a.join_year >= users_joined_by_year.from_year)
       AND (users_joined_by_year.to_year IS NULL OR a.join_year <= users_joined_by_year.to_year)
     ORDER BY a.join_year;
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_join_year(from_year int DEFAULT 2015, to_year int DEFAULT 2020,
                                                                 method text DEFAULT 'exact')
RETURNS TABLE (post_year int, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_join_year', 'pinpipe.analytics_followers');
    SELECT m.join_year, m.median_follower_count
      FROM pinpipe.analytics_median(false, true, median_followers_by_join_year.from_year,
                                    median_followers_by_join_year.to_year, median_followers_by_join_year.method) m;
END;

CREATE OR REPLACE FUNCTION pinpipe.median_followers_by_age_group_and_join_year(from_year int DEFAULT 2015,
                                                                               to_year int DEFAULT 2020,
                                                                               method text DEFAULT 'exact')
RETURNS TABLE (age_group text, post_year int, median_follower_count float8)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pinpipe.require_reader('pinpipe.median_followers_by_age_group_and_join_year',
                                  'pinpipe.analytics_followers');
    SELECT m.age_group, m.join_year, m.median_follower_count
      FROM pinpipe.analytics_median(true, true, median_followers_by_age_group_and_join_year.from_year,
                                    median_followers_by_age_group_and_join_year.to_year,
                                    median_followers_by_age_group_and_join_year.method) m;
END;

GRANT EXECUTE ON FUNCTION pinpipe.popular_category_by_country(), pinpipe.category_count_by_year(int, int),
    pinpipe.most_followed_by_country(), pinpipe.most_followed_country(), pinpipe.popular_category_by_age_group(),
    pinpipe.median_followers_by_age_group(text), pinpipe.users_joined_by_year(int, int),
    pinpipe.median_followers_by_join_year(int, int, text),
    pinpipe.median_followers_by_age_group_and_join_year(int, int, text),
    pinpipe.analytics_median(bool, bool, int, int, text) TO pinpipe_reader;

--
-- reclean() is an admin function, like pause() and resume(): superusers and
-- members of pinpipe_admin may call it (it runs the rebuild as the
-- extension's owner, reclean_tables()); anyone else is told which role to
-- grant.
--

-- Refuse, with the role to grant, a caller who is not an admin.
CREATE FUNCTION pinpipe.require_admin(function_name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (pg_has_role(current_user, 'pinpipe_admin', 'USAGE')
            OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RAISE EXCEPTION 'permission denied for function %', function_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only superusers and members of pinpipe_admin may call it.',
                  HINT = format('Grant the admin role: GRANT pinpipe_admin TO %I;', current_user);
    END IF;
END;
$$;
COMMENT ON FUNCTION pinpipe.require_admin(text) IS
'internal: raise insufficient_privilege, naming pinpipe_admin, unless the current user is a superuser or a member of pinpipe_admin';

CREATE FUNCTION pinpipe.reclean_tables(OUT pin_rows bigint, OUT geo_rows bigint, OUT user_rows bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
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
             ORDER BY "index", kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_pin_raw(latest.r) c;
    GET DIAGNOSTICS pin_rows = ROW_COUNT;

    DELETE FROM pinpipe.geo_clean;
    INSERT INTO pinpipe.geo_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.geo_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_geo_raw(latest.r) c;
    GET DIAGNOSTICS geo_rows = ROW_COUNT;

    DELETE FROM pinpipe.user_clean;
    INSERT INTO pinpipe.user_clean
    SELECT c.*
      FROM (SELECT DISTINCT ON (ind) r
              FROM pinpipe.user_raw r
             ORDER BY ind, kafka_timestamp DESC NULLS LAST, kafka_source DESC, kafka_partition DESC, kafka_offset DESC) latest,
           LATERAL pinpipe.clean_user_raw(latest.r) c;
    GET DIAGNOSTICS user_rows = ROW_COUNT;
END;
$$;
COMMENT ON FUNCTION pinpipe.reclean_tables() IS
'internal: the rebuild of pinpipe.reclean(), as the extension''s owner';
REVOKE ALL ON FUNCTION pinpipe.reclean_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.reclean_tables() TO pinpipe_admin;

CREATE OR REPLACE FUNCTION pinpipe.reclean(OUT pin_rows bigint, OUT geo_rows bigint, OUT user_rows bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pinpipe.require_admin('pinpipe.reclean');
    SELECT t.pin_rows, t.geo_rows, t.user_rows INTO pin_rows, geo_rows, user_rows FROM pinpipe.reclean_tables() t;
END;
$$;
GRANT EXECUTE ON FUNCTION pinpipe.reclean() TO PUBLIC;
-- pause() and resume() check the role themselves (status.c) and name
-- pinpipe_admin: anyone may call them to be told so
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume() TO PUBLIC;

-- 0.2 has the same objects as 0.1 so far (its install script is 0.1's,
-- split into pieces), so there is nothing to change yet.

--
-- Sources: each raw row, dead letter and stored offset names the incarnation
-- of its topic it came from (pinpipe.sources), so that a recreated topic, a
-- new cluster or another prefix never collides with the rows stored before.
-- The rows of 0.1 get one source per topic they were read from (its cluster
-- unknown: the worker records the cluster it finds there on its next start).
--
CREATE TABLE pinpipe.sources (
    id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    cluster_id text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL
        CHECK (reason IN ('first use', 'topic recreated', 'cluster changed', 'prefix changed'))
);
CREATE INDEX sources_topic_idx ON pinpipe.sources (topic, id);
COMMENT ON TABLE pinpipe.sources IS
'incarnations of the topics: a topic on one cluster, from the first message the worker read of it; a new one begins when the cluster id changes or a partition ends below its stored offset (topic recreated). Rows, dead letters and offsets name theirs';
SELECT pg_catalog.pg_extension_config_dump('pinpipe.sources', '');
SELECT pg_catalog.pg_extension_config_dump('pinpipe.sources_id_seq', '');
GRANT SELECT ON pinpipe.sources TO pinpipe_admin;

INSERT INTO pinpipe.sources (topic, first_seen, reason)
SELECT topic, min(since), 'first use'
  FROM (SELECT topic, min(updated_at) AS since FROM pinpipe.offsets GROUP BY topic
        UNION ALL
        SELECT topic, min(received_at) FROM pinpipe.dead_letters GROUP BY topic) t
 GROUP BY topic
 ORDER BY topic;

ALTER TABLE pinpipe.offsets ADD COLUMN source int;
UPDATE pinpipe.offsets o SET source = s.id FROM pinpipe.sources s WHERE s.topic = o.topic;
ALTER TABLE pinpipe.offsets ALTER COLUMN source SET NOT NULL;
ALTER TABLE pinpipe.offsets DROP CONSTRAINT offsets_pkey;
ALTER TABLE pinpipe.offsets ADD PRIMARY KEY (topic, source, kafka_partition);

ALTER TABLE pinpipe.dead_letters
    ADD COLUMN source int,
    ADD COLUMN error_detail text,
    ADD COLUMN kafka_key bytea,
    ADD COLUMN kafka_headers jsonb;
UPDATE pinpipe.dead_letters d SET source = s.id FROM pinpipe.sources s WHERE s.topic = d.topic;
ALTER TABLE pinpipe.dead_letters ALTER COLUMN source SET NOT NULL;
ALTER TABLE pinpipe.dead_letters DROP CONSTRAINT dead_letters_pkey;
ALTER TABLE pinpipe.dead_letters ADD PRIMARY KEY (topic, source, kafka_partition, kafka_offset);

-- A raw table's rows from Kafka (kafka_partition >= 0) came from one topic
-- of its kind: the current prefix's if it has a source, else the one whose
-- offsets moved last (0.1 could not tell two prefixes' rows apart).
DO $$
DECLARE
    kind text;
    src int;
BEGIN
    FOREACH kind IN ARRAY ARRAY['pin', 'geo', 'user']
    LOOP
        EXECUTE format('ALTER TABLE pinpipe.%I DROP CONSTRAINT %I', kind || '_raw', kind || '_raw_pkey');
        EXECUTE format('ALTER TABLE pinpipe.%I ADD COLUMN kafka_source int NOT NULL DEFAULT 0, '
                       'ADD COLUMN kafka_key bytea, ADD COLUMN kafka_headers jsonb', kind || '_raw');
        SELECT s.id INTO src
          FROM pinpipe.sources s
         WHERE s.topic LIKE '%.' || kind
         ORDER BY s.topic = current_setting('pinpipe.topic_prefix', true) || '.' || kind DESC,
                  (SELECT max(o.updated_at) FROM pinpipe.offsets o WHERE o.source = s.id) DESC NULLS LAST,
                  s.id
         LIMIT 1;
        IF src IS NOT NULL THEN
            EXECUTE format('UPDATE pinpipe.%I SET kafka_source = $1 WHERE kafka_partition >= 0', kind || '_raw')
              USING src;
        END IF;
        EXECUTE format('ALTER TABLE pinpipe.%I ADD PRIMARY KEY (kafka_source, kafka_partition, kafka_offset)',
                       kind || '_raw');
    END LOOP;
END;
$$;

-- Rewind and replay (src/sql/replay.sql, the same statements).
CREATE TABLE pinpipe.rewind_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    kafka_partition int NOT NULL,
    to_offset bigint CHECK (to_offset >= 0),
    to_time timestamptz,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by name NOT NULL DEFAULT session_user,
    applied_at timestamptz,
    from_offset bigint,
    resumed_offset bigint,
    completed_at timestamptz,
    skipped bigint NOT NULL DEFAULT 0,
    stored bigint NOT NULL DEFAULT 0,
    CHECK ((to_offset IS NULL) <> (to_time IS NULL))
);
CREATE INDEX rewind_requests_open ON pinpipe.rewind_requests (topic, kafka_partition)
    WHERE completed_at IS NULL;
COMMENT ON TABLE pinpipe.rewind_requests IS
'rewinds asked for with pinpipe.rewind(), applied by the worker at its next batch boundary: where the partition was (from_offset) and resumed, and, of the messages read again below from_offset, how many were stored already (skipped) and how many were missing (stored)';
SELECT pg_catalog.pg_extension_config_dump('pinpipe.rewind_requests', '');

ALTER TABLE pinpipe.dead_letters ADD COLUMN replayed_at timestamptz;
COMMENT ON COLUMN pinpipe.dead_letters.replayed_at IS
'when pinpipe.replay_dead_letters() stored the message as rows (NULL: not yet)';

CREATE FUNCTION pinpipe.rewind(topic text, kafka_partition int, to_offset bigint)
RETURNS SETOF pinpipe.rewind_requests
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored_next bigint;
BEGIN
    -- the partition's offset in the topic's current source (the newest)
    SELECT o.next_offset INTO stored_next FROM pinpipe.offsets o
     WHERE o.topic = rewind.topic AND o.kafka_partition = rewind.kafka_partition
     ORDER BY o.source DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no stored offset for topic "%" partition %', topic, kafka_partition
            USING ERRCODE = 'undefined_object',
                  HINT = 'A rewind applies to a partition the worker has consumed: see pinpipe.offsets.';
    END IF;
    IF to_offset < 0 OR to_offset > stored_next THEN
        RAISE EXCEPTION 'cannot rewind topic "%" partition % to offset %', topic, kafka_partition, to_offset
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The stored next offset is %s; a rewind goes back, to an offset from 0 to it.', stored_next),
                  HINT = 'Skipping messages forward is not a rewind: it would lose them without a trace.';
    END IF;
    RETURN QUERY
    INSERT INTO pinpipe.rewind_requests (topic, kafka_partition, to_offset)
    VALUES (topic, kafka_partition, to_offset) RETURNING *;
END;
$$;
COMMENT ON FUNCTION pinpipe.rewind(text, int, bigint) IS
'read a partition again from to_offset, at the worker''s next batch boundary; messages stored already are skipped and counted, missing ones stored; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.rewind(topic text, to_time timestamptz)
RETURNS SETOF pinpipe.rewind_requests
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pinpipe.offsets o WHERE o.topic = rewind.topic) THEN
        RAISE EXCEPTION 'no stored offset for topic "%"', topic
            USING ERRCODE = 'undefined_object',
                  HINT = 'A rewind applies to a topic the worker has consumed: see pinpipe.offsets.';
    END IF;
    RETURN QUERY
    INSERT INTO pinpipe.rewind_requests (topic, kafka_partition, to_time)
    SELECT o.topic, o.kafka_partition, to_time FROM pinpipe.offsets o
     WHERE o.topic = rewind.topic
       AND o.source = (SELECT max(c.source) FROM pinpipe.offsets c WHERE c.topic = rewind.topic)
     ORDER BY o.kafka_partition RETURNING *;
END;
$$;
COMMENT ON FUNCTION pinpipe.rewind(text, timestamptz) IS
'read every stored partition of a topic again from its first message at or after to_time (the broker''s offsets for times), at the worker''s next batch boundary; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.replay_dead_letters(topic text DEFAULT NULL, error text DEFAULT NULL)
RETURNS TABLE (outcome text, error text, messages bigint)
AS 'MODULE_PATHNAME', 'pinpipe_replay_dead_letters'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pinpipe.replay_dead_letters(text, text) IS
'run the dead letters not yet replayed (of a topic, with an error LIKE a pattern) through the worker''s decoder and cleaner in one transaction: what succeeds becomes rows and is marked replayed_at; returns counts by outcome and error; superusers and pinpipe_admin only';

CREATE FUNCTION pinpipe.purge_dead_letters(older_than interval)
RETURNS bigint
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM pinpipe.dead_letters WHERE received_at < now() - older_than RETURNING 1)
    SELECT count(*) FROM gone;
END;
COMMENT ON FUNCTION pinpipe.purge_dead_letters(interval) IS
'delete the dead letters received more than older_than ago (replayed or not); returns how many; superusers and pinpipe_admin only';

REVOKE ALL ON FUNCTION pinpipe.rewind(text, int, bigint), pinpipe.rewind(text, timestamptz),
    pinpipe.replay_dead_letters(text, text), pinpipe.purge_dead_letters(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.rewind(text, int, bigint), pinpipe.rewind(text, timestamptz),
    pinpipe.replay_dead_letters(text, text), pinpipe.purge_dead_letters(interval) TO pinpipe_admin;
GRANT SELECT ON pinpipe.rewind_requests TO pinpipe_admin;
