/*
 * pinpipe-rest.c
 *		The HTTP front door: the Kafka REST Proxy v2 produce API and the Kinesis
 *		PutRecord / PutRecords shapes, so that the original pipeline's producers
 *		post to pinpipe by changing only their invoke URL.
 *
 * libmicrohttpd serves the requests (an epoll thread pool, bounded connections,
 * idle timeouts, bodies capped before they are buffered); rest_decode.c turns a
 * body into records; an idempotent librdkafka producer (acks=all) sends them
 * without copying.  A request's connection is suspended until the delivery
 * report of every one of its records has arrived (a poller thread serves them
 * and resumes the connection), so an answer never says stored what Kafka does
 * not hold.  A metadata thread keeps the topic list (unknown topics, GET
 * /topics, /healthz) fresh.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <librdkafka/rdkafka.h>
#include <microhttpd.h>

#include "kafka_config.h"
#include "rest_decode.h"

#define PROGNAME "pinpipe-rest"

#define NS_PER_SEC          INT64_C(1000000000)
#define NS_PER_MS           INT64_C(1000000)
#define MAX_TOPIC_NAME_LEN  249
#define METADATA_EVERY_MS   2000
#define METADATA_TIMEOUT_MS 2000
#define HEALTHY_WITHIN_NS   (3 * METADATA_EVERY_MS * NS_PER_MS + METADATA_TIMEOUT_MS * NS_PER_MS)
#define MISS_REFRESH_NS     (1 * NS_PER_SEC) /* a missing topic is looked up at most once a second */
#define ERRLEN              512

/* ---------------------------------------------------------------- options */

typedef struct StreamMap
{
	const char *stream;
	const char *topic;
} StreamMap;

typedef struct Options
{
	const char *brokers;
	char *listen_host;
	const char *listen_port;
	const char *base_path;
	size_t base_len;
	StreamMap *streams;
	int nstreams;
	const char *stream_prefix;
	const char *kafka_config;
	const char *token_file;
	const char *tls_cert;
	const char *tls_key;
	size_t max_body;
	size_t max_buffered;
	const char *key_fields;
	int timeout_s;
	unsigned int max_connections;
	unsigned int idle_timeout;
	unsigned int threads;
	bool quiet;
} Options;

static Options opt;

/* ---------------------------------------------------------------- routes */

typedef enum RouteId
{
	R_TOPICS,
	R_TOPIC,
	R_PRODUCE,
	R_PUT_RECORD,
	R_PUT_RECORDS,
	R_HEALTHZ,
	R_METRICS,
	N_ROUTES
} RouteId;

/* A route: method, path pattern ("{}" matches one segment, the parameter). */
typedef struct Route
{
	RouteId id;
	const char *method;
	const char *pattern;
	const char *name; /* in /metrics */
	bool has_body;
	bool needs_token;
} Route;

static const Route routes[] = {
	{ R_TOPICS, "GET", "/topics", "topics", false, true },
	{ R_TOPIC, "GET", "/topics/{}", "topic", false, true },
	{ R_PRODUCE, "POST", "/topics/{}", "produce", true, true },
	{ R_PUT_RECORD, "PUT", "/streams/{}/record", "put_record", true, true },
	{ R_PUT_RECORDS, "PUT", "/streams/{}/records", "put_records", true, true },
	{ R_HEALTHZ, "GET", "/healthz", "healthz", false, false },
	{ R_METRICS, "GET", "/metrics", "metrics", false, true },
};
#define N_ROUTE_ENTRIES (sizeof(routes) / sizeof(routes[0]))

/* ---------------------------------------------------------------- metrics */

static const int status_codes[] = { 200, 400, 401, 404, 405, 413, 415, 422, 500, 503 };
#define N_STATUS (sizeof(status_codes) / sizeof(status_codes[0]) + 1) /* + other */
static const double latency_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
										 0.25,  0.5,    1,     2.5,  5,     10,   30 };
#define N_BUCKETS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

typedef struct Metrics
{
	atomic_ullong requests[N_ROUTES + 1][N_STATUS]; /* + no route */
	atomic_ullong latency_bucket[N_BUCKETS + 1];
	atomic_ullong latency_sum_us;
	atomic_ullong records_produced;
	atomic_ullong records_failed;
	atomic_llong records_in_flight;
	atomic_llong requests_in_flight;
	atomic_llong bytes_buffered;
} Metrics;

static Metrics metrics;

/* ---------------------------------------------------------------- state */

static rd_kafka_t *rk;
static struct MHD_Daemon *daemon_handle;
static char **tokens;
static int ntokens;
static atomic_bool draining;
static atomic_bool stopping;

/* The topic list, refreshed by the metadata thread and on a miss. */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t meta_refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static const rd_kafka_metadata_t *meta;
static int64_t meta_fetched_ns;
static atomic_llong meta_ok_ns;

typedef struct Req Req;

/* One record of a request: where its delivery report is written. */
typedef struct Slot
{
	Req *req;
	int32_t partition;
	int64_t offset;
	rd_kafka_resp_err_t err;
} Slot;

/* The state of one HTTP request, from its headers to its completion. */
struct Req
{
	const Route *route;
	char param[MAX_TOPIC_NAME_LEN + 2];
	struct MHD_Connection *conn;
	int64_t start_ns;
	int status;
	bool responded;

	char *body;
	size_t len;
	size_t cap;
	size_t reserved; /* bytes of the global buffer budget held */
	size_t expected; /* Content-Length, 0 if chunked */

	char topic[MAX_TOPIC_NAME_LEN + 1];
	RdShape shape;
	RdRequest dec;
	Slot *slots;
	atomic_int pending;
	bool produced;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
logmsg(const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet)
		return;
	va_start(ap, fmt);
	fprintf(stderr, PROGNAME ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---------------------------------------------------------------- output buffer */

typedef struct Buf
{
	char *data;
	size_t len;
	size_t cap;
	bool oom;
} Buf;

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *nd = realloc(b->data, cap);
	if (nd == NULL)
	{
		b->oom = true;
		return;
	}
	b->data = nd;
	b->cap = cap;
}

static void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(Buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t) n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

/* Append s as a JSON string (quotes included); bytes >= 0x80 pass through. */
static void
buf_json_string(Buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
		{
			char e[2] = { '\\', (char) c };

			buf_add(b, e, 2);
		}
		else if (c < 0x20)
			buf_printf(b, "\\u%04x", c);
		else
			buf_add(b, s, 1);
	}
	buf_add(b, "\"", 1);
}

/* ---------------------------------------------------------------- responses */

static int
status_index(int status)
{
	for (size_t i = 0; i < N_STATUS - 1; i++)
	{
		if (status_codes[i] == status)
			return (int) i;
	}
	return (int) N_STATUS - 1;
}

/* Queue a response with body b (taken over) and its content type. */
static enum MHD_Result
respond_buf(Req *r, int status, const char *content_type, Buf *b, const char *hname,
			const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (b->oom)
	{
		free(b->data);
		return MHD_NO;
	}
	resp =
		MHD_create_response_from_buffer(b->len, b->data ? b->data : (void *) "",
										b->data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
	{
		free(b->data);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (hname != NULL)
		MHD_add_response_header(resp, hname, hvalue);
	if (atomic_load(&draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(r->conn, (unsigned int) status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->responded = true;
	return ret;
}

/* A REST Proxy error: {"error_code": code, "message": message}. */
static enum MHD_Result
respond_error(Req *r, int status, int code, const char *message)
{
	Buf b = { 0 };
	bool kinesis =
		r->route != NULL && (r->route->id == R_PUT_RECORD || r->route->id == R_PUT_RECORDS);

	buf_printf(&b, "{\"error_code\": %d, \"message\": ", code);
	buf_json_string(&b, message);
	if (kinesis && status == 422)
		buf_add(&b, ", \"__type\": \"SerializationException\"", 36);
	buf_add(&b, "}", 1);
	if (status == 401)
		return respond_buf(r, status, "application/vnd.kafka.v2+json", &b, "WWW-Authenticate",
						   "Bearer");
	if (status == 503)
		return respond_buf(r, status, "application/vnd.kafka.v2+json", &b, "Retry-After", "1");
	return respond_buf(r, status, "application/vnd.kafka.v2+json", &b, NULL, NULL);
}

/* A Kinesis error: {"__type": type, "message": message}. */
static enum MHD_Result
respond_kinesis_error(Req *r, int status, const char *type, const char *message)
{
	Buf b = { 0 };

	buf_add(&b, "{\"__type\": ", 11);
	buf_json_string(&b, type);
	buf_add(&b, ", \"message\": ", 13);
	buf_json_string(&b, message);
	buf_add(&b, "}", 1);
	return respond_buf(r, status, "application/x-amz-json-1.1", &b, NULL, NULL);
}

/* ---------------------------------------------------------------- metadata */

/* Fetch the whole topic list; keep it if it came. */
static bool
refresh_metadata(int timeout_ms)
{
	const rd_kafka_metadata_t *md = NULL;
	const rd_kafka_metadata_t *old;
	rd_kafka_resp_err_t err;

	err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md == NULL || md->broker_cnt == 0)
	{
		if (md != NULL)
			rd_kafka_metadata_destroy(md);
		return false;
	}
	pthread_mutex_lock(&meta_lock);
	old = meta;
	meta = md;
	meta_fetched_ns = now_ns();
	pthread_mutex_unlock(&meta_lock);
	atomic_store(&meta_ok_ns, now_ns());
	if (old != NULL)
		rd_kafka_metadata_destroy(old);
	return true;
}

/* The topic in md, NULL if absent or reported in error; under meta_lock. */
static const rd_kafka_metadata_topic_t *
find_topic(const rd_kafka_metadata_t *md, const char *name)
{
	if (md == NULL)
		return NULL;
	for (int i = 0; i < md->topic_cnt; i++)
	{
		if (strcmp(md->topics[i].topic, name) == 0)
			return md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR ? &md->topics[i] : NULL;
	}
	return NULL;
}

typedef enum TopicState
{
	TOPIC_EXISTS,
	TOPIC_MISSING,
	TOPIC_UNKNOWN /* no answer from the brokers: produce and let the records wait */
} TopicState;

static TopicState
topic_state(const char *name)
{
	int64_t asked = now_ns();
	bool fresh;
	bool ok;

	pthread_mutex_lock(&meta_lock);
	if (find_topic(meta, name) != NULL)
	{
		pthread_mutex_unlock(&meta_lock);
		return TOPIC_EXISTS;
	}
	fresh = meta != NULL && asked - meta_fetched_ns < MISS_REFRESH_NS;
	pthread_mutex_unlock(&meta_lock);
	if (fresh)
		return TOPIC_MISSING;

	/* one lookup at a time; a lookup finished while we waited answers us too */
	pthread_mutex_lock(&meta_refresh_lock);
	pthread_mutex_lock(&meta_lock);
	ok = meta_fetched_ns >= asked;
	pthread_mutex_unlock(&meta_lock);
	if (!ok)
		ok = refresh_metadata(METADATA_TIMEOUT_MS);
	pthread_mutex_unlock(&meta_refresh_lock);

	pthread_mutex_lock(&meta_lock);
	if (find_topic(meta, name) != NULL)
	{
		pthread_mutex_unlock(&meta_lock);
		return TOPIC_EXISTS;
	}
	pthread_mutex_unlock(&meta_lock);
	return ok ? TOPIC_MISSING : TOPIC_UNKNOWN;
}

static bool
healthy(void)
{
	long long ok = atomic_load(&meta_ok_ns);

	return ok != 0 && now_ns() - ok < HEALTHY_WITHIN_NS;
}

static void *
metadata_thread(void *arg)
{
	(void) arg;
	while (!atomic_load(&stopping))
	{
		int64_t next = now_ns() + METADATA_EVERY_MS * NS_PER_MS;

		pthread_mutex_lock(&meta_refresh_lock);
		refresh_metadata(METADATA_TIMEOUT_MS);
		pthread_mutex_unlock(&meta_refresh_lock);
		while (!atomic_load(&stopping) && now_ns() < next)
			usleep(50 * 1000);
	}
	return NULL;
}

/* ---------------------------------------------------------------- Kafka */

/* Is a delivery error worth a retry (the REST Proxy's error_code 2)? */
static bool
retriable(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		case RD_KAFKA_RESP_ERR__TIMED_OUT:
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
		case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
		case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
		case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
		case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
			return true;
		default:
			return false;
	}
}

/* A record's delivery report (poller thread): the last one resumes the request. */
static void
on_delivery(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque)
{
	Slot *slot = m->_private;
	Req *r;

	(void) k;
	(void) opaque;
	if (slot == NULL)
		return;
	r = slot->req;
	slot->err = m->err;
	slot->partition = m->partition;
	slot->offset = m->offset;
	if (m->err)
		atomic_fetch_add(&metrics.records_failed, 1);
	else
		atomic_fetch_add(&metrics.records_produced, 1);
	atomic_fetch_sub(&metrics.records_in_flight, 1);
	if (atomic_fetch_sub(&r->pending, 1) == 1)
		MHD_resume_connection(r->conn);
}

static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	(void) opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char buf[512];

		rd_kafka_fatal_error(k, buf, sizeof(buf));
		fprintf(stderr, PROGNAME ": fatal Kafka error: %s\n", buf);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		return; /* in librdkafka's log, and in /healthz */
	logmsg("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

static void
on_log(const rd_kafka_t *k, int level, const char *fac, const char *buf)
{
	(void) k;
	if (opt.quiet && level > 3)
		return;
	fprintf(stderr, PROGNAME ": librdkafka: %s: %s\n", fac, buf);
}

static void *
poll_thread(void *arg)
{
	(void) arg;
	while (!atomic_load(&stopping) || rd_kafka_outq_len(rk) > 0)
		rd_kafka_poll(rk, 100);
	return NULL;
}

/* Send every record of r; the connection is suspended until all are reported. */
static void
produce_records(Req *r)
{
	size_t n = r->dec.nrecords;

	atomic_store(&r->pending, (int) n + 1); /* + 1: held until every record is queued */
	for (size_t i = 0; i < n; i++)
	{
		const RdRecord *rec = &r->dec.records[i];
		Slot *slot = &r->slots[i];
		rd_kafka_resp_err_t err;

		slot->req = r;
		slot->partition = rec->partition;
		slot->offset = -1;
		atomic_fetch_add(&metrics.records_in_flight, 1);
		/* no copy: the body and arena live until the last delivery report */
		err = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(r->topic),
			RD_KAFKA_V_PARTITION(rec->partition >= 0 ? rec->partition : RD_KAFKA_PARTITION_UA),
			RD_KAFKA_V_VALUE((void *) rec->value, rec->value_len),
			RD_KAFKA_V_KEY(rec->key, rec->key_len), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			slot->err = err;
			atomic_fetch_sub(&metrics.records_in_flight, 1);
			atomic_fetch_add(&metrics.records_failed, 1);
			atomic_fetch_sub(&r->pending, 1);
		}
	}
	r->produced = true;
	MHD_suspend_connection(r->conn);
	if (atomic_fetch_sub(&r->pending, 1) == 1)
		MHD_resume_connection(r->conn);
}

/* ---------------------------------------------------------------- answers */

static void
answer_produce(Req *r)
{
	Buf b = { 0 };

	buf_reserve(&b, r->dec.nrecords * 80 + 64);
	buf_add(&b, "{\"offsets\": [", 13);
	for (size_t i = 0; i < r->dec.nrecords; i++)
	{
		const Slot *s = &r->slots[i];

		if (i > 0)
			buf_add(&b, ", ", 2);
		if (s->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			buf_printf(&b,
					   "{\"partition\": %" PRId32 ", \"offset\": %" PRId64
					   ", \"error_code\": null, \"error\": null}",
					   s->partition, s->offset);
		else
		{
			buf_printf(&b,
					   "{\"partition\": null, \"offset\": null, \"error_code\": %d, \"error\": ",
					   retriable(s->err) ? 2 : 1);
			buf_json_string(&b, rd_kafka_err2str(s->err));
			buf_add(&b, "}", 1);
		}
	}
	buf_add(&b, "], \"key_schema_id\": null, \"value_schema_id\": null}", 50);
	respond_buf(r, 200, "application/vnd.kafka.v2+json", &b, NULL, NULL);
}

static void
sequence_number(char *out, size_t len, const Slot *s)
{
	snprintf(out, len, "%05" PRId32 "%020" PRId64, s->partition, s->offset);
}

static void
answer_kinesis(Req *r)
{
	Buf b = { 0 };
	char seq[48];

	if (r->route->id == R_PUT_RECORD)
	{
		const Slot *s = &r->slots[0];

		if (s->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			if (retriable(s->err))
				respond_kinesis_error(r, 503, "ServiceUnavailable", rd_kafka_err2str(s->err));
			else
				respond_kinesis_error(r, 500, "InternalFailure", rd_kafka_err2str(s->err));
			return;
		}
		sequence_number(seq, sizeof(seq), s);
		buf_printf(&b, "{\"SequenceNumber\": \"%s\", \"ShardId\": \"shardId-%012" PRId32 "\"}", seq,
				   s->partition);
		respond_buf(r, 200, "application/x-amz-json-1.1", &b, NULL, NULL);
		return;
	}
	size_t failed = 0;

	for (size_t i = 0; i < r->dec.nrecords; i++)
		failed += r->slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR;
	buf_reserve(&b, r->dec.nrecords * 90 + 64);
	buf_printf(&b, "{\"FailedRecordCount\": %zu, \"Records\": [", failed);
	for (size_t i = 0; i < r->dec.nrecords; i++)
	{
		const Slot *s = &r->slots[i];

		if (i > 0)
			buf_add(&b, ", ", 2);
		if (s->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			sequence_number(seq, sizeof(seq), s);
			buf_printf(&b, "{\"SequenceNumber\": \"%s\", \"ShardId\": \"shardId-%012" PRId32 "\"}",
					   seq, s->partition);
		}
		else
		{
			buf_printf(&b, "{\"ErrorCode\": \"%s\", \"ErrorMessage\": ",
					   retriable(s->err) ? "ProvisionedThroughputExceededException"
										 : "InternalFailure");
			buf_json_string(&b, rd_kafka_err2str(s->err));
			buf_add(&b, "}", 1);
		}
	}
	buf_add(&b, "]}", 2);
	respond_buf(r, 200, "application/x-amz-json-1.1", &b, NULL, NULL);
}

static enum MHD_Result
answer_topics(Req *r)
{
	Buf b = { 0 };

	pthread_mutex_lock(&meta_lock);
	if (meta == NULL)
	{
		pthread_mutex_unlock(&meta_lock);
		return respond_error(r, 503, 50302, "The Kafka brokers have not answered yet.");
	}
	buf_add(&b, "[", 1);
	for (int i = 0, n = 0; i < meta->topic_cnt; i++)
	{
		if (meta->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		if (n++ > 0)
			buf_add(&b, ", ", 2);
		buf_json_string(&b, meta->topics[i].topic);
	}
	pthread_mutex_unlock(&meta_lock);
	buf_add(&b, "]", 1);
	return respond_buf(r, 200, "application/vnd.kafka.v2+json", &b, NULL, NULL);
}

static enum MHD_Result
answer_topic(Req *r)
{
	Buf b = { 0 };
	const rd_kafka_metadata_topic_t *t;

	if (topic_state(r->param) != TOPIC_EXISTS)
		return respond_error(r, 404, 40401, "Topic not found.");
	pthread_mutex_lock(&meta_lock);
	t = find_topic(meta, r->param);
	if (t == NULL)
	{
		pthread_mutex_unlock(&meta_lock);
		return respond_error(r, 404, 40401, "Topic not found.");
	}
	buf_add(&b, "{\"name\": ", 9);
	buf_json_string(&b, t->topic);
	buf_add(&b, ", \"configs\": {}, \"partitions\": [", 32);
	for (int p = 0; p < t->partition_cnt; p++)
	{
		const rd_kafka_metadata_partition_t *mp = &t->partitions[p];

		buf_printf(&b, "%s{\"partition\": %" PRId32 ", \"leader\": %" PRId32 ", \"replicas\": [",
				   p > 0 ? ", " : "", mp->id, mp->leader);
		for (int j = 0; j < mp->replica_cnt; j++)
		{
			bool isr = false;

			for (int k = 0; k < mp->isr_cnt; k++)
				isr = isr || mp->isrs[k] == mp->replicas[j];
			buf_printf(&b, "%s{\"broker\": %" PRId32 ", \"leader\": %s, \"in_sync\": %s}",
					   j > 0 ? ", " : "", mp->replicas[j],
					   mp->replicas[j] == mp->leader ? "true" : "false", isr ? "true" : "false");
		}
		buf_add(&b, "]}", 2);
	}
	pthread_mutex_unlock(&meta_lock);
	buf_add(&b, "]}", 2);
	return respond_buf(r, 200, "application/vnd.kafka.v2+json", &b, NULL, NULL);
}

static enum MHD_Result
answer_metrics(Req *r)
{
	Buf b = { 0 };
	unsigned long long cum = 0;
	unsigned long long count = 0;

	buf_printf(&b, "# HELP pinpipe_rest_requests_total HTTP requests answered, by route and "
				   "status.\n# TYPE pinpipe_rest_requests_total counter\n");
	for (int rt = 0; rt <= N_ROUTES; rt++)
	{
		for (size_t s = 0; s < N_STATUS; s++)
		{
			unsigned long long v = atomic_load(&metrics.requests[rt][s]);
			char st[16];

			if (v == 0)
				continue;
			if (s < N_STATUS - 1)
				snprintf(st, sizeof(st), "%d", status_codes[s]);
			else
				snprintf(st, sizeof(st), "other");
			buf_printf(&b, "pinpipe_rest_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
					   rt < N_ROUTES ? routes[rt].name : "none", st, v);
		}
	}
	buf_printf(&b,
			   "# HELP pinpipe_rest_records_produced_total Records acknowledged by the brokers.\n"
			   "# TYPE pinpipe_rest_records_produced_total counter\n"
			   "pinpipe_rest_records_produced_total %llu\n"
			   "# HELP pinpipe_rest_records_failed_total Records answered with an error.\n"
			   "# TYPE pinpipe_rest_records_failed_total counter\n"
			   "pinpipe_rest_records_failed_total %llu\n"
			   "# HELP pinpipe_rest_records_in_flight Records sent and not yet acknowledged.\n"
			   "# TYPE pinpipe_rest_records_in_flight gauge\n"
			   "pinpipe_rest_records_in_flight %lld\n"
			   "# HELP pinpipe_rest_requests_in_flight Requests received and not yet completed.\n"
			   "# TYPE pinpipe_rest_requests_in_flight gauge\n"
			   "pinpipe_rest_requests_in_flight %lld\n"
			   "# HELP pinpipe_rest_body_bytes_buffered Request body bytes held in memory.\n"
			   "# TYPE pinpipe_rest_body_bytes_buffered gauge\n"
			   "pinpipe_rest_body_bytes_buffered %lld\n"
			   "# HELP pinpipe_rest_request_duration_seconds Time from a request's headers to "
			   "its answer.\n"
			   "# TYPE pinpipe_rest_request_duration_seconds histogram\n",
			   atomic_load(&metrics.records_produced), atomic_load(&metrics.records_failed),
			   atomic_load(&metrics.records_in_flight), atomic_load(&metrics.requests_in_flight),
			   atomic_load(&metrics.bytes_buffered));
	for (size_t i = 0; i <= N_BUCKETS; i++)
	{
		cum += atomic_load(&metrics.latency_bucket[i]);
		if (i < N_BUCKETS)
			buf_printf(&b, "pinpipe_rest_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
					   latency_bounds[i], cum);
	}
	count = cum;
	buf_printf(&b,
			   "pinpipe_rest_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
			   "pinpipe_rest_request_duration_seconds_sum %.6f\n"
			   "pinpipe_rest_request_duration_seconds_count %llu\n"
			   "# HELP pinpipe_rest_kafka_healthy 1 when the brokers answered recently.\n"
			   "# TYPE pinpipe_rest_kafka_healthy gauge\n"
			   "pinpipe_rest_kafka_healthy %d\n",
			   count, (double) atomic_load(&metrics.latency_sum_us) / 1e6, count,
			   healthy() ? 1 : 0);
	return respond_buf(r, 200, "text/plain; version=0.0.4", &b, NULL, NULL);
}

/* ---------------------------------------------------------------- request handling */

/*
 * Match path against the routes: set *route and the parameter, or return false
 * with *path_known set when the path matches some route but not the method.
 */
static bool
match_route(const char *method, const char *path, const Route **route, char *param, size_t paramlen,
			bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < N_ROUTE_ENTRIES; i++)
	{
		const char *p = routes[i].pattern;
		const char *u = path;
		const char *pstart = NULL;
		size_t plen = 0;

		while (*p && *u)
		{
			if (p[0] == '{' && p[1] == '}')
			{
				pstart = u;
				while (*u && *u != '/')
					u++;
				plen = (size_t) (u - pstart);
				if (plen == 0)
					break;
				p += 2;
				continue;
			}
			if (*p != *u)
				break;
			p++;
			u++;
		}
		if (*p != '\0' || *u != '\0')
			continue;
		if (pstart != NULL && plen >= paramlen)
			continue;
		if (strcmp(routes[i].method, method) != 0)
		{
			*path_known = true;
			continue;
		}
		*route = &routes[i];
		param[0] = '\0';
		if (pstart != NULL)
		{
			memcpy(param, pstart, plen);
			param[plen] = '\0';
		}
		return true;
	}
	return false;
}

/* The methods allowed on path, for a 405's Allow header. */
static void
allowed_methods(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < N_ROUTE_ENTRIES; i++)
	{
		const Route *rt;
		char param[MAX_TOPIC_NAME_LEN + 2];
		bool known;

		if (match_route(routes[i].method, path, &rt, param, sizeof(param), &known) &&
			strstr(out, routes[i].method) == NULL)
		{
			if (out[0] != '\0')
				strncat(out, ", ", len - strlen(out) - 1);
			strncat(out, routes[i].method, len - strlen(out) - 1);
		}
	}
}

static bool
valid_topic_name(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > MAX_TOPIC_NAME_LEN || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
		return false;
	for (; *t; t++)
	{
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
			  *t == '.' || *t == '_' || *t == '-'))
			return false;
	}
	return true;
}

/* The topic a stream name maps to, or false. */
static bool
stream_topic(const char *stream, char *topic, size_t len)
{
	static const char *const kinds[] = { "pin", "geo", "user" };

	for (int i = 0; i < opt.nstreams; i++)
	{
		if (strcmp(opt.streams[i].stream, stream) == 0)
		{
			snprintf(topic, len, "%s", opt.streams[i].topic);
			return true;
		}
	}
	if (opt.stream_prefix != NULL && strncmp(stream, "streaming-", 10) == 0)
	{
		size_t n = strlen(stream);

		for (int k = 0; k < 3; k++)
		{
			size_t kl = strlen(kinds[k]);

			if (n > 10 + kl + 1 && stream[n - kl - 1] == '-' &&
				strcmp(stream + n - kl, kinds[k]) == 0)
			{
				snprintf(topic, len, "%s.%s", opt.stream_prefix, kinds[k]);
				return true;
			}
		}
	}
	return false;
}

/* Compare two strings without an early exit on the first difference. */
static bool
same_secret(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	unsigned char d = alen != blen;

	for (size_t i = 0; i < alen && i < blen; i++)
		d |= (unsigned char) (a[i] ^ b[i]);
	return d == 0;
}

static bool
authorized(struct MHD_Connection *conn)
{
	const char *h;
	bool ok = false;

	if (ntokens == 0)
		return true;
	h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);

	while (n > 0 && h[n - 1] == ' ')
		n--;
	for (int i = 0; i < ntokens; i++)
		ok |= same_secret(h, n, tokens[i]);
	return ok;
}

/* Does the Content-Type's media type (before any parameter) equal type? */
static bool
media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* First call of a request: route, token, media type and size checks. */
static enum MHD_Result
begin_request(Req *r, const char *url, const char *method)
{
	const char *path = url;
	bool known;
	const char *ct;
	const char *cl;

	if (opt.base_path != NULL && strncmp(url, opt.base_path, opt.base_len) == 0 &&
		url[opt.base_len] == '/')
		path = url + opt.base_len;
	if (!match_route(method, path, &r->route, r->param, sizeof(r->param), &known))
	{
		if (known)
		{
			char allow[64];
			Buf b = { 0 };

			allowed_methods(path, allow, sizeof(allow));
			buf_printf(&b, "{\"error_code\": 405, \"message\": \"HTTP 405 Method Not Allowed\"}");
			return respond_buf(r, 405, "application/vnd.kafka.v2+json", &b, MHD_HTTP_HEADER_ALLOW,
							   allow);
		}
		return respond_error(r, 404, 404, "HTTP 404 Not Found");
	}
	if (r->route->needs_token && !authorized(r->conn))
		return respond_error(r, 401, 401, "A valid bearer token is required.");
	if (!r->route->has_body)
		return MHD_YES;

	ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct == NULL)
		ct = "";
	if (r->route->id == R_PRODUCE)
	{
		if (media_type_is(ct, "application/vnd.kafka.json.v2+json") ||
			media_type_is(ct, "application/json"))
			r->shape = RD_PRODUCE_JSON;
		else if (media_type_is(ct, "application/vnd.kafka.binary.v2+json"))
			r->shape = RD_PRODUCE_BINARY;
		else
			return respond_error(r, 415, 415,
								 "HTTP 415 Unsupported Media Type: use "
								 "application/vnd.kafka.json.v2+json, "
								 "application/vnd.kafka.binary.v2+json or application/json");
	}
	else
	{
		if (!media_type_is(ct, "application/json") &&
			!media_type_is(ct, "application/x-amz-json-1.1"))
			return respond_error(r, 415, 415,
								 "HTTP 415 Unsupported Media Type: use application/json");
		r->shape = r->route->id == R_PUT_RECORD ? RD_KINESIS_RECORD : RD_KINESIS_RECORDS;
	}

	cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL)
	{
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl || v > opt.max_body)
		{
			char msg[128];

			snprintf(msg, sizeof(msg), "The body is larger than the limit of %zu bytes.",
					 opt.max_body);
			return respond_error(r, 413, 413, msg);
		}
		r->expected = (size_t) v;
		/* hold the whole body's share of the budget now, or refuse */
		if (atomic_fetch_add(&metrics.bytes_buffered, (long long) v) + (long long) v >
			(long long) opt.max_buffered)
		{
			atomic_fetch_sub(&metrics.bytes_buffered, (long long) v);
			return respond_error(r, 503, 50301,
								 "Too many request bytes in memory; retry in a moment.");
		}
		r->reserved = (size_t) v;
	}
	return MHD_YES;
}

/* Append a piece of the body; false to close the connection (over a limit). */
static bool
take_body(Req *r, const char *data, size_t n)
{
	if (r->len + n > opt.max_body)
		return false; /* only a chunked body gets here: its size was unknown */
	if (r->len + n > r->cap)
	{
		size_t cap = r->cap ? r->cap : 4096;
		char *nb;

		if (r->expected > 0)
			cap = r->expected;
		while (cap < r->len + n)
			cap *= 2;
		if (cap > opt.max_body)
			cap = opt.max_body;
		if (cap > r->reserved)
		{
			size_t more = cap - r->reserved;

			if (atomic_fetch_add(&metrics.bytes_buffered, (long long) more) + (long long) more >
				(long long) opt.max_buffered)
			{
				atomic_fetch_sub(&metrics.bytes_buffered, (long long) more);
				return false;
			}
			r->reserved = cap;
		}
		nb = realloc(r->body, cap + 1);
		if (nb == NULL)
			return false;
		r->body = nb;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return true;
}

/* The whole body is in: decode it and send its records. */
static enum MHD_Result
process_body(Req *r)
{
	char err[ERRLEN];
	const char *key_fields = opt.key_fields;

	if (r->route->id == R_PRODUCE)
	{
		if (!valid_topic_name(r->param))
			return respond_error(r, 404, 40401, "Topic not found.");
		snprintf(r->topic, sizeof(r->topic), "%s", r->param);
	}
	else if (!stream_topic(r->param, r->topic, sizeof(r->topic)))
	{
		char msg[400];

		snprintf(msg, sizeof(msg), "Stream %s under account 000000000000 not found.", r->param);
		return respond_kinesis_error(r, 400, "ResourceNotFoundException", msg);
	}

	if (!rd_decode(r->shape, r->body ? r->body : "", r->len, key_fields, &r->dec, err, sizeof(err)))
		return respond_error(r, 422, 422, err);

	switch (topic_state(r->topic))
	{
		case TOPIC_MISSING:
			if (r->route->id == R_PRODUCE)
				return respond_error(r, 404, 40401, "Topic not found.");
			else
			{
				char msg[400];

				snprintf(msg, sizeof(msg), "Stream %s under account 000000000000 not found.",
						 r->param);
				return respond_kinesis_error(r, 400, "ResourceNotFoundException", msg);
			}
		case TOPIC_EXISTS:
		case TOPIC_UNKNOWN:
			break;
	}
	r->slots = calloc(r->dec.nrecords + 1, sizeof(Slot));
	if (r->slots == NULL)
		return respond_error(r, 500, 500, "Out of memory.");
	produce_records(r);
	return MHD_YES;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	Req *r = *con_cls;

	(void) cls;
	(void) version;
	if (r == NULL)
	{
		r = calloc(1, sizeof(Req));
		if (r == NULL)
			return MHD_NO;
		r->conn = conn;
		r->start_ns = now_ns();
		*con_cls = r;
		atomic_fetch_add(&metrics.requests_in_flight, 1);
		return begin_request(r, url, method);
	}
	if (r->responded)
	{
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		if (r->route == NULL || !r->route->has_body)
		{
			*upload_data_size = 0;
			return MHD_YES;
		}
		if (!take_body(r, upload_data, *upload_data_size))
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->produced)
	{
		/* resumed: every record has its delivery report */
		if (r->route->id == R_PRODUCE)
			answer_produce(r);
		else
			answer_kinesis(r);
		return r->responded ? MHD_YES : MHD_NO;
	}
	switch (r->route->id)
	{
		case R_TOPICS:
			return answer_topics(r);
		case R_TOPIC:
			return answer_topic(r);
		case R_HEALTHZ:
		{
			Buf b = { 0 };
			bool ok = healthy();

			buf_printf(&b, "{\"status\": \"%s\"}", ok ? "ok" : "kafka unreachable");
			return respond_buf(r, ok ? 200 : 503, "application/json", &b, NULL, NULL);
		}
		case R_METRICS:
			return answer_metrics(r);
		case R_PRODUCE:
		case R_PUT_RECORD:
		case R_PUT_RECORDS:
			return process_body(r);
		case N_ROUTES:
			break;
	}
	return MHD_NO;
}

/* A request is over (answered, or its connection failed): count it, free it. */
static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		  enum MHD_RequestTerminationCode toe)
{
	Req *r = *con_cls;
	double secs;
	size_t b = 0;

	(void) cls;
	(void) conn;
	(void) toe;
	if (r == NULL)
		return;
	secs = (double) (now_ns() - r->start_ns) / NS_PER_SEC;
	atomic_fetch_add(&metrics.requests[r->route ? (int) r->route->id : N_ROUTES]
									  [r->responded ? status_index(r->status) : (int) N_STATUS - 1],
					 1);
	while (b < N_BUCKETS && secs > latency_bounds[b])
		b++;
	atomic_fetch_add(&metrics.latency_bucket[b], 1);
	atomic_fetch_add(&metrics.latency_sum_us, (unsigned long long) (secs * 1e6));
	atomic_fetch_sub(&metrics.bytes_buffered, (long long) r->reserved);
	atomic_fetch_sub(&metrics.requests_in_flight, 1);
	rd_request_free(&r->dec);
	free(r->slots);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/* ---------------------------------------------------------------- startup */

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: " PROGNAME " --brokers LIST [OPTION]...\n"
			"Serve the Kafka REST Proxy v2 produce API and the Kinesis PutRecord and\n"
			"PutRecords shapes over HTTP, writing to Kafka; answer a request once every\n"
			"one of its records is acknowledged (idempotent producer, acks=all).\n"
			"\n"
			"Options:\n"
			"  --brokers LIST          Kafka bootstrap servers (required)\n"
			"  --listen HOST:PORT      address to serve (default 127.0.0.1:8082; port 0 =\n"
			"                          any free port); prints \"listening on URL\" when ready\n"
			"  --base-path /STAGE      serve the API under /STAGE as well as at the root\n"
			"  --stream-topic S=TOPIC  map the stream S to TOPIC (repeatable)\n"
			"  --stream-prefix P       map streams named streaming-*-pin|geo|user to\n"
			"                          P.pin|geo|user\n"
			"  --key-field NAME[,NAME] key a record that has none by the first of these\n"
			"                          top-level fields of its JSON value (e.g. index,ind)\n"
			"  --kafka-config LIST     librdkafka properties \"key=value,key=value\" (a comma\n"
			"                          inside a value is written \\,), e.g. for SASL/SSL\n"
			"  --timeout SECONDS       how long a record may wait for the brokers before it\n"
			"                          is answered with an error (default 30)\n"
			"  --token-file FILE       bearer tokens, one a line: every request but\n"
			"                          /healthz needs \"Authorization: Bearer TOKEN\"\n"
			"  --tls-cert FILE --tls-key FILE\n"
			"                          serve HTTPS with this PEM certificate and key\n"
			"  --max-body-bytes N      largest request body (default 16777216)\n"
			"  --max-buffered-bytes N  request body bytes held at once, all connections\n"
			"                          together; beyond, 503 (default 268435456)\n"
			"  --max-connections N     concurrent connections (default 1024)\n"
			"  --idle-timeout SECONDS  close a connection idle this long (default 15)\n"
			"  --threads N             HTTP threads (default 2)\n"
			"  --quiet                 print only errors\n"
			"  -h, --help              show this help and exit\n"
			"\n"
			"SIGTERM or SIGINT: stop accepting connections, finish the requests in flight,\n"
			"flush and exit 0.\n");
}

static void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROGNAME ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	fprintf(stderr, "Try \"" PROGNAME " --help\".\n");
	exit(2);
}

static unsigned long long
parse_ull(const char *optname, const char *s, unsigned long long min, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-' || *s == '\0')
		usage_error("invalid value for %s", optname);
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		usage_error("invalid value for %s", optname);
	return v;
}

static void
parse_listen(const char *s)
{
	const char *colon;

	if (s[0] == '[')
	{
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			usage_error("invalid --listen \"%s\" (use HOST:PORT)", s);
		opt.listen_host = strndup(s + 1, (size_t) (close - s - 1));
		opt.listen_port = close + 2;
	}
	else
	{
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s)
			usage_error("invalid --listen \"%s\" (use HOST:PORT)", s);
		opt.listen_host = strndup(s, (size_t) (colon - s));
		opt.listen_port = colon + 1;
	}
	parse_ull("--listen port", opt.listen_port, 0, 65535);
}

static void
parse_options(int argc, char **argv)
{
	enum
	{
		O_BROKERS = 256,
		O_LISTEN,
		O_BASE_PATH,
		O_STREAM_TOPIC,
		O_STREAM_PREFIX,
		O_KAFKA_CONFIG,
		O_TOKEN_FILE,
		O_TLS_CERT,
		O_TLS_KEY,
		O_MAX_BODY,
		O_MAX_BUFFERED,
		O_KEY_FIELD,
		O_TIMEOUT,
		O_MAX_CONN,
		O_IDLE,
		O_THREADS,
		O_QUIET,
	};
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, O_BROKERS },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "base-path", required_argument, NULL, O_BASE_PATH },
		{ "stream-topic", required_argument, NULL, O_STREAM_TOPIC },
		{ "stream-prefix", required_argument, NULL, O_STREAM_PREFIX },
		{ "kafka-config", required_argument, NULL, O_KAFKA_CONFIG },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "tls-cert", required_argument, NULL, O_TLS_CERT },
		{ "tls-key", required_argument, NULL, O_TLS_KEY },
		{ "max-body-bytes", required_argument, NULL, O_MAX_BODY },
		{ "max-buffered-bytes", required_argument, NULL, O_MAX_BUFFERED },
		{ "key-field", required_argument, NULL, O_KEY_FIELD },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "max-connections", required_argument, NULL, O_MAX_CONN },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opt.max_body = 16 * 1024 * 1024;
	opt.max_buffered = 256 * 1024 * 1024;
	opt.timeout_s = 30;
	opt.max_connections = 1024;
	opt.idle_timeout = 15;
	opt.threads = 2;
	parse_listen("127.0.0.1:8082");

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case O_BROKERS:
				opt.brokers = optarg;
				break;
			case O_LISTEN:
				free(opt.listen_host);
				parse_listen(optarg);
				break;
			case O_BASE_PATH:
			{
				size_t n = strlen(optarg);

				while (n > 0 && optarg[n - 1] == '/')
					optarg[--n] = '\0';
				if (optarg[0] != '/' || n < 2)
					usage_error("invalid --base-path \"%s\" (use /STAGE)", optarg);
				opt.base_path = optarg;
				opt.base_len = n;
				break;
			}
			case O_STREAM_TOPIC:
			{
				char *eq = strchr(optarg, '=');
				StreamMap *ns;

				if (eq == NULL || eq == optarg || !valid_topic_name(eq + 1))
					usage_error("invalid --stream-topic \"%s\" (use STREAM=TOPIC)", optarg);
				*eq = '\0';
				ns = realloc(opt.streams, (size_t) (opt.nstreams + 1) * sizeof(StreamMap));
				if (ns == NULL)
					usage_error("%s", "out of memory");
				opt.streams = ns;
				opt.streams[opt.nstreams].stream = optarg;
				opt.streams[opt.nstreams].topic = eq + 1;
				opt.nstreams++;
				break;
			}
			case O_STREAM_PREFIX:
			{
				char t[MAX_TOPIC_NAME_LEN + 16];

				snprintf(t, sizeof(t), "%s.user", optarg);
				if (!valid_topic_name(t))
					usage_error("invalid --stream-prefix \"%s\"", optarg);
				opt.stream_prefix = optarg;
				break;
			}
			case O_KAFKA_CONFIG:
				opt.kafka_config = optarg;
				break;
			case O_TOKEN_FILE:
				opt.token_file = optarg;
				break;
			case O_TLS_CERT:
				opt.tls_cert = optarg;
				break;
			case O_TLS_KEY:
				opt.tls_key = optarg;
				break;
			case O_MAX_BODY:
				opt.max_body = (size_t) parse_ull("--max-body-bytes", optarg, 1, SIZE_MAX / 4);
				break;
			case O_MAX_BUFFERED:
				opt.max_buffered =
					(size_t) parse_ull("--max-buffered-bytes", optarg, 1, SIZE_MAX / 4);
				break;
			case O_KEY_FIELD:
				opt.key_fields = optarg;
				break;
			case O_TIMEOUT:
				opt.timeout_s = (int) parse_ull("--timeout", optarg, 1, 3600);
				break;
			case O_MAX_CONN:
				opt.max_connections =
					(unsigned int) parse_ull("--max-connections", optarg, 1, 1000000);
				break;
			case O_IDLE:
				opt.idle_timeout = (unsigned int) parse_ull("--idle-timeout", optarg, 1, 86400);
				break;
			case O_THREADS:
				opt.threads = (unsigned int) parse_ull("--threads", optarg, 1, 64);
				break;
			case O_QUIET:
				opt.quiet = true;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				fprintf(stderr, "Try \"" PROGNAME " --help\".\n");
				exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (opt.brokers == NULL || opt.brokers[0] == '\0')
		usage_error("%s is required", "--brokers");
	if ((opt.tls_cert == NULL) != (opt.tls_key == NULL))
		usage_error("%s", "--tls-cert and --tls-key go together");
	if (opt.max_buffered < opt.max_body)
		opt.max_buffered = opt.max_body;
}

/* Read a whole (small) file; NULL with a message on failure. */
static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
	{
		fprintf(stderr, PROGNAME ": cannot read \"%s\": %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		fprintf(stderr, PROGNAME ": cannot read \"%s\"\n", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool
load_tokens(const char *path)
{
	char *text = read_file(path);
	char *save = NULL;

	if (text == NULL)
		return false;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		size_t n = strlen(line);
		char **nt;

		while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '\0' || *line == '#')
			continue;
		nt = realloc(tokens, (size_t) (ntokens + 1) * sizeof(char *));
		if (nt == NULL)
			return false;
		tokens = nt;
		tokens[ntokens++] = line;
	}
	if (ntokens == 0)
	{
		fprintf(stderr, PROGNAME ": %s holds no token\n", path);
		return false;
	}
	return true;
}

static rd_kafka_t *
make_producer(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char timeout_ms[32];
	char errstr[512];
	rd_kafka_t *k;

	snprintf(timeout_ms, sizeof(timeout_ms), "%d", opt.timeout_s * 1000);
	if (!pp_tool_conf_set(conf, PROGNAME, "bootstrap.servers", opt.brokers) ||
		!pp_tool_conf_set(conf, PROGNAME, "client.id", PROGNAME) ||
		!pp_tool_conf_set(conf, PROGNAME, "enable.idempotence", "true") ||
		!pp_tool_conf_set(conf, PROGNAME, "acks", "all") ||
		!pp_tool_conf_set(conf, PROGNAME, "partitioner", "murmur2_random") ||
		!pp_tool_conf_set(conf, PROGNAME, "linger.ms", "2") ||
		!pp_tool_conf_set(conf, PROGNAME, "queue.buffering.max.messages", "2000000") ||
		!pp_tool_conf_set(conf, PROGNAME, "message.timeout.ms", timeout_ms) ||
		(opt.kafka_config != NULL && !pp_tool_apply_kafka_config(conf, PROGNAME, opt.kafka_config)))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	/* the guarantees depend on these: the pass-through may not weaken them */
	if (!pp_tool_conf_set(conf, PROGNAME, "enable.idempotence", "true") ||
		!pp_tool_conf_set(conf, PROGNAME, "acks", "all"))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	k = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (k == NULL)
	{
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, PROGNAME ": cannot create Kafka producer: %s\n", errstr);
	}
	return k;
}

/* Bind and listen on --listen; return the socket and print the real address. */
static int
open_listener(char *shown, size_t shownlen, bool *ipv6)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;
	int one = 1;
	int rc;
	int port;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(opt.listen_host[0] ? opt.listen_host : NULL, opt.listen_port, &hints, &res);
	if (rc != 0)
	{
		fprintf(stderr, PROGNAME ": cannot resolve \"%s\": %s\n", opt.listen_host,
				gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0 ||
		getsockname(fd, (struct sockaddr *) &ss, &sl) != 0)
	{
		fprintf(stderr, PROGNAME ": cannot listen on %s:%s: %s\n", opt.listen_host, opt.listen_port,
				strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	*ipv6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *) &ss)->sin6_port)
									: ntohs(((struct sockaddr_in *) &ss)->sin_port);
	snprintf(shown, shownlen, "%s%s%s:%d", *ipv6 ? "[" : "", opt.listen_host, *ipv6 ? "]" : "",
			 port);
	return fd;
}

int
main(int argc, char **argv)
{
	sigset_t sigs;
	pthread_t poller;
	pthread_t metadata;
	char shown[300];
	bool ipv6 = false;
	int fd;
	int sig;
	char *cert = NULL;
	char *key = NULL;
	unsigned int flags;
	struct rlimit rl;
	int64_t deadline;
	int status = 0;

	parse_options(argc, argv);
	if (opt.token_file != NULL && !load_tokens(opt.token_file))
		return 2;
	if (opt.tls_cert != NULL)
	{
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
		{
			fprintf(stderr, PROGNAME ": this libmicrohttpd has no TLS support\n");
			return 2;
		}
		if ((cert = read_file(opt.tls_cert)) == NULL || (key = read_file(opt.tls_key)) == NULL)
			return 2;
	}
	/* many connections need many descriptors */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* every thread started from here inherits the mask: the signals come to sigwait */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rk = make_producer();
	if (rk == NULL)
		return 2;
	fd = open_listener(shown, sizeof(shown), &ipv6);
	if (fd < 0)
		return 1;

	pthread_create(&poller, NULL, poll_thread, NULL);
	/* a first look at the topics before serving, without waiting long */
	refresh_metadata(METADATA_TIMEOUT_MS);
	pthread_create(&metadata, NULL, metadata_thread, NULL);

	flags =
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	if (!opt.quiet)
		flags |= MHD_USE_ERROR_LOG;
	if (ipv6)
		flags |= MHD_USE_IPv6;
	if (cert != NULL)
		flags |= MHD_USE_TLS;
	{
		struct MHD_OptionItem ops[] = {
			{ MHD_OPTION_LISTEN_SOCKET, fd, NULL },
			{ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t) opt.threads, NULL },
			{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t) opt.max_connections, NULL },
			{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t) opt.idle_timeout, NULL },
			{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL },
			{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) completed, NULL },
			{ cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, key },
			{ MHD_OPTION_END, 0, NULL },
		};

		daemon_handle = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_ARRAY, ops,
										 MHD_OPTION_END);
	}
	if (daemon_handle == NULL)
	{
		fprintf(stderr, PROGNAME ": cannot start the HTTP server on %s\n", shown);
		return 1;
	}
	printf("listening on %s://%s\n", cert != NULL ? "https" : "http", shown);
	fflush(stdout);
	logmsg("brokers %s; body limit %zu bytes; timeout %d s%s", opt.brokers, opt.max_body,
		   opt.timeout_s, ntokens > 0 ? "; bearer tokens required" : "");

	while (sigwait(&sigs, &sig) != 0)
		;

	/* drain: no new connections; requests in flight finish */
	logmsg("signal %d: draining", sig);
	atomic_store(&draining, true);
	fd = MHD_quiesce_daemon(daemon_handle);
	if (fd >= 0)
		close(fd);
	deadline = now_ns() + (int64_t) (opt.timeout_s + 10) * NS_PER_SEC;
	while (atomic_load(&metrics.requests_in_flight) > 0 && now_ns() < deadline)
		usleep(20 * 1000);
	if (atomic_load(&metrics.requests_in_flight) > 0)
	{
		fprintf(stderr, PROGNAME ": %lld requests still in flight at exit\n",
				(long long) atomic_load(&metrics.requests_in_flight));
		status = 1;
	}
	if (rd_kafka_flush(rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		status = 1;
	MHD_stop_daemon(daemon_handle);
	atomic_store(&stopping, true);
	pthread_join(poller, NULL);
	pthread_join(metadata, NULL);
	rd_kafka_destroy(rk);
	if (meta != NULL)
		rd_kafka_metadata_destroy(meta);
	logmsg("stopped");
	return status;
}
