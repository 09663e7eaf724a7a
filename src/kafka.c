/*
 * kafka.c
 *		librdkafka setup for the worker (see kafka.h).
 *
 * librdkafka runs its own threads, and PostgreSQL's elog is not thread-safe:
 * logs and errors are queued (log.queue=true) and forwarded from the worker's
 * own thread by pp_kafka_poll_events().
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "kafka.h"
#include "kafka_conf.h"

/*
 * GUC check hook of pinpipe.kafka_config: every key and value must be
 * accepted, and the consumer must read committed messages only.
 */
bool
pp_check_kafka_config(char **newval, void **extra, GucSource source)
{
	rd_kafka_conf_t *conf;
	char errbuf[512];
	char isolation[64];
	size_t isolation_len = sizeof(isolation);
	bool ok;

	if (*newval == NULL || **newval == '\0')
		return true;
	conf = rd_kafka_conf_new();
	ok = pp_kafka_conf_apply(conf, *newval, errbuf, sizeof(errbuf)) == 0;
	if (ok &&
		rd_kafka_conf_get(conf, "isolation.level", isolation, &isolation_len) == RD_KAFKA_CONF_OK &&
		strcmp(isolation, "read_uncommitted") == 0)
	{
		rd_kafka_conf_destroy(conf);
		GUC_check_errdetail("isolation.level=read_uncommitted would store the messages of "
							"transactions that are later aborted, which breaks exactly-once "
							"delivery.");
		GUC_check_errhint("Leave isolation.level out of pinpipe.kafka_config: the worker reads "
						  "committed messages only (read_committed).");
		return false;
	}
	rd_kafka_conf_destroy(conf);
	if (!ok)
		GUC_check_errdetail("%s", errbuf);
	return ok;
}

/*
 * The headers of a consumed message as a JSON array text (palloc'd), each
 * header an object {"key": ..., "value": ...} in the order sent (a key may
 * repeat); a value that is not UTF-8 text is given as "value_hex" instead,
 * a null value as null. NULL when the message has no headers.
 */
char *
pp_kafka_headers_json(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *hdrs;
	StringInfoData buf;
	const char *name;
	const void *value;
	size_t size;

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		rd_kafka_header_cnt(hdrs) == 0)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (size_t i = 0;
		 rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
	{
		appendStringInfoString(&buf, i > 0 ? ", {\"key\": " : "{\"key\": ");
		escape_json(&buf, name);
		if (value == NULL)
			appendStringInfoString(&buf, ", \"value\": null}");
		else if (memchr(value, '\0', size) == NULL &&
				 pg_encoding_verifymbstr(PG_UTF8, value, (int) size) == (int) size)
		{
			char *text = pnstrdup(value, size);

			appendStringInfoString(&buf, ", \"value\": ");
			escape_json(&buf, text);
			appendStringInfoChar(&buf, '}');
			pfree(text);
		}
		else
		{
			appendStringInfoString(&buf, ", \"value_hex\": \"");
			for (size_t b = 0; b < size; b++)
				appendStringInfo(&buf, "%02x", ((const unsigned char *) value)[b]);
			appendStringInfoString(&buf, "\"}");
		}
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

static void
set_default(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char errstr[256];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		elog(ERROR, "librdkafka refused default \"%s\": %s", key, errstr);
}

/* Forward librdkafka's log lines (called from pp_kafka_poll_events). */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	int elevel = level <= 4 ? LOG : level <= 6 ? DEBUG1 : DEBUG2;

	ereport(elevel, (errmsg_internal("librdkafka %s: %s", fac, buf)));
}

/*
 * Some Kafka errors repeat for as long as their cause lasts (a deleted topic:
 * one per partition, every second). The log gets each error code at most once
 * a minute, with a count of those left out; pinpipe.status always has the
 * latest.
 */
#define ERROR_LOG_INTERVAL_MS 60000
#define ERROR_LOG_SLOTS       8

typedef struct LoggedError
{
	int err;
	TimestampTz logged_at; /* 0: slot unused */
	int suppressed;
} LoggedError;

/* A consumer's own state, its opaque: whose it is, and what it logged. */
typedef struct ConsumerContext
{
	int worker;
	PPKafkaErrorFn on_error;
	LoggedError logged_errors[ERROR_LOG_SLOTS];
} ConsumerContext;

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	ConsumerContext *cx = opaque;
	TimestampTz now = GetCurrentTimestamp();
	LoggedError *slot = &cx->logged_errors[0];

	cx->on_error(cx->worker, err, reason);
	for (int i = 0; i < ERROR_LOG_SLOTS; i++)
	{
		LoggedError *e = &cx->logged_errors[i];

		if (e->logged_at != 0 && e->err == err)
		{
			slot = e;
			break;
		}
		if (e->logged_at < slot->logged_at)
			slot = e; /* the oldest, reused if err has no slot */
	}
	if (slot->logged_at != 0 && slot->err == err &&
		!TimestampDifferenceExceeds(slot->logged_at, now, ERROR_LOG_INTERVAL_MS))
	{
		slot->suppressed++;
		return;
	}
	/* a record batch over receive.message.max.bytes is refused on every fetch: a stall */
	if (strstr(reason, "receive.message.max.bytes") != NULL)
		ereport(LOG,
				(errmsg("pinpipe worker %d: Kafka error: %s", cx->worker, reason),
				 errdetail("A message larger than librdkafka's receive.message.max.bytes (100 MB "
						   "by default) cannot be fetched, and the partitions of this broker do "
						   "not move until it can."),
				 errhint("Raise it in pinpipe.kafka_config, e.g. "
						 "'receive.message.max.bytes=300000000', and reload; the message then "
						 "becomes a dead letter or a row.")));
	else if (slot->err == err && slot->suppressed > 0)
		ereport(LOG,
				(errmsg("pinpipe worker %d: Kafka error: %s", cx->worker, reason),
				 errdetail("%d more errors with this code since the previous one were not logged.",
						   slot->suppressed)));
	else
		ereport(LOG, (errmsg("pinpipe worker %d: Kafka error: %s", cx->worker, reason)));
	slot->err = err;
	slot->logged_at = now;
	slot->suppressed = 0;
}

/*
 * Create the consumer for worker `worker`: pinpipe's defaults, then the
 * user's pass-through settings, which win. on_error receives each Kafka
 * error (from pp_kafka_poll_events, in the caller's thread).
 */
rd_kafka_t *
pp_kafka_consumer(const char *brokers, const char *config, int worker, PPKafkaErrorFn on_error)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errbuf[512];
	char client_id[64];
	rd_kafka_t *rk;
	ConsumerContext *cx;

	snprintf(client_id, sizeof(client_id), "pinpipe-%d", worker);
	set_default(conf, "bootstrap.servers", brokers);
	set_default(conf, "client.id", client_id);
	set_default(conf, "group.id", "pinpipe");
	set_default(conf, "enable.auto.commit", "false");
	set_default(conf, "enable.auto.offset.store", "false");
	set_default(conf, "auto.offset.reset", "error");
	set_default(conf, "enable.partition.eof", "false");
	/* never the messages of an aborted transaction (read_uncommitted is refused) */
	set_default(conf, "isolation.level", "read_committed");
	set_default(conf, "fetch.wait.max.ms", "50");
	/* prefetch: a few batches of messages, in bounded fetch responses */
	set_default(conf, "queued.max.messages.kbytes", "14336");
	set_default(conf, "fetch.max.bytes", "14680064");
	set_default(conf, "log.queue", "true");
	if (pp_kafka_conf_apply(conf, config, errbuf, sizeof(errbuf)) != 0)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid pinpipe.kafka_config"), errdetail("%s", errbuf)));
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	cx = MemoryContextAllocZero(TopMemoryContext, sizeof(ConsumerContext));
	cx->worker = worker;
	cx->on_error = on_error;
	rd_kafka_conf_set_opaque(conf, cx);

	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof(errbuf));
	if (rk == NULL)
	{
		pfree(cx);
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("could not create the Kafka consumer: %s", errbuf)));
	}
	/* logs to the main queue, served by rd_kafka_poll() in our thread */
	rd_kafka_set_log_queue(rk, NULL);
	return rk;
}

/* Destroy a consumer made by pp_kafka_consumer, without leaving its group. */
void
pp_kafka_destroy(rd_kafka_t *rk)
{
	void *cx = rd_kafka_opaque(rk);

	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	pfree(cx);
}

/* Serve queued logs, errors and commit results, without blocking. */
void
pp_kafka_poll_events(rd_kafka_t *rk)
{
	rd_kafka_poll(rk, 0);
}

/*
 * Number of partitions of topic, or -1 with *err set (e.g. the topic does
 * not exist, or no broker answered within timeout_ms).
 */
int
pp_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
						 rd_kafka_resp_err_t *err)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int count = -1;

	*err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	if (*err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			count = md->topics[0].partition_cnt;
		else
			*err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return count;
}
