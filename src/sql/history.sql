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
