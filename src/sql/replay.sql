--
-- Rewind and replay: re-reading a partition from an earlier offset or time
-- (requests the worker applies at its next batch boundary), and running the
-- dead letters through the decoder and cleaner again.
--

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
