/*
 * worker.c
 *		The background worker: consumes <prefix>.pin, <prefix>.geo and
 *		<prefix>.user and writes each batch, with its offsets, in one
 *		transaction (sink.c).
 *
 * Each batch goes down one path: Kafka messages -> decode (decode.c) ->
 * rows, cleaned and converted (convert.c, record.c) -> sink (sink.c, and
 * heap_write.c for the COPY-like path) -> status (status.c).
 *
 * Offsets live in pinpipe.offsets, not in the broker: on every start, and
 * after any failed batch, the worker assigns its partitions from the stored
 * offsets (an assign-based consumer, no group rebalancing). Offsets are also
 * committed to the broker after each batch, for Kafka tools to show, but
 * never read back. The partitions of each topic listed in pinpipe.partitions
 * (all of them by default) are dealt out in turn: the k-th of them goes to
 * worker k % pinpipe.workers.
 *
 * The worker checks for the extension before each turn and locks it for
 * each transaction (begin_extension_xact): a DROP EXTENSION waits for the
 * batch in progress, and the worker then waits for CREATE EXTENSION and
 * starts afresh from the new tables' offsets.
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "history.h"
#include "kafka.h"
#include "pinpipe.h"
#include "rewind.h"
#include "sink.h"
#include "source.h"
#include "status.h"

PGDLLEXPORT void pinpipe_worker_main(Datum main_arg);

#define METADATA_INTERVAL_MS 10000
/* while the brokers are unreachable: how often to ask again */
#define METADATA_RETRY_MS    2000
#define WATERMARK_TIMEOUT_MS 5000
/* how often the worker looks for rewind requests (pinpipe.rewind()) */
#define REWIND_CHECK_MS 1000
/* offset resets handled per batch; more wait for the next (they error again) */
#define MAX_RESETS (PP_NKINDS * PP_MAX_PARTITIONS)

typedef struct PartState
{
	int32 partition;
	int64 next_offset; /* the next offset to store; -1 unknown */
	/*
	 * A rewind in progress (rewind.c): messages below rewind_until are looked
	 * up before being stored (-1: none); rewind_id is its request. The
	 * counts are the batch's.
	 */
	int64 rewind_until;
	int64 rewind_id;
	int64 rewind_skipped;
	int64 rewind_stored;
} PartState;

typedef struct TopicState
{
	char name[256];
	int npartitions; /* partitions the topic has (all workers) */
	/*
	 * Partitions the topic had when this consumer first learned about it (0:
	 * the broker said it did not exist; -1: not known yet). Partitions beyond
	 * these appeared while the worker ran: they start at the earliest offset.
	 */
	int first_partitions;
	int nmine;
	PartState *mine; /* the partitions this worker consumes */
	bool available;
	rd_kafka_resp_err_t unavailable_err; /* why not available, as last reported */
	bool caught_up;       /* every partition of mine read up to the high watermark last seen */
	int32 source;         /* the incarnation consumed (pinpipe.sources id); 0 none yet */
	char *source_cluster; /* the cluster id it was read on, NULL if unknown */
	bool source_fresh;    /* begun by the worker after another: start at the earliest offset */
} TopicState;

/* A partition whose stored offset the broker no longer has. */
typedef struct PendingReset
{
	PPKind kind;
	int32 partition;
} PendingReset;

static void load_offsets(TopicState *t);

/*
 * Whether the tables have sources, as found when the partitions were last
 * assigned (a 0.1 schema has not: the worker writes it, with no sources,
 * until ALTER EXTENSION pinpipe UPDATE, and then assigns them again).
 */
static bool with_sources = false;

/*
 * Set on every Kafka error (a broker disconnected: it may come back as
 * another cluster, with other messages at the same offsets); the cluster id
 * is then read afresh before the next batch is stored (verify_cluster).
 */
static bool cluster_unverified = false;

static int worker_id;
static char *connected_database;
static rd_kafka_t *rk = NULL;
static rd_kafka_queue_t *rkqu = NULL;
static char *consumer_brokers;
static char *consumer_prefix;
static char *consumer_config;
static char *consumer_partitions;
static TopicState topics[PP_NKINDS];
static bool need_assign = true;
static bool partitions_paused = false;
static TimestampTz last_metadata = 0;
static TimestampTz last_rewind_check = 0;
/*
 * No broker answered: set by the consumer's ALL_BROKERS_DOWN error and by
 * metadata queries that none answered; cleared by an answer or a message.
 */
static bool brokers_down = false;
/* Why the process is exiting, when it could not connect to its database. */
static char exit_reason[PP_ERROR_LEN];
static emit_log_hook_type prev_emit_log_hook = NULL;
/*
 * The pinpipe extension the worker's state (offsets, prepared statements)
 * came from; InvalidOid while it does not exist. extension_seen: checked
 * once at least.
 */
static Oid extension_oid = InvalidOid;
static bool extension_seen = false;
static MemoryContext worker_cxt;
static MemoryContext batch_cxt;
/*
 * The decoder's allocations (jansson's nodes, the fast path's copies of the
 * strings; not a record's extra, which is malloc'd), reset with each batch:
 * see json_alloc.
 */
static MemoryContext json_cxt;

/* The batch being written, so that an error can release it. */
static rd_kafka_message_t **batch_msgs;
static int batch_n = 0;
static PPMessage *batch_pp;
static int batch_pp_n = 0;
static int batch_capacity = 0;
static PendingReset *resets;
static int nresets = 0;

/* Rewinds taken in the transaction in progress, for after its commit. */
typedef struct AppliedRewind
{
	PartState *ps;
	int64 id;
	int64 target; /* the offset the partition goes back to */
	int64 until;  /* its rewind_until then */
} AppliedRewind;
static AppliedRewind *applied;
static int napplied = 0;

static PartState *find_part(PPKind kind, int32 partition);
static void load_rewinds(void);

/* Make room for a batch of pinpipe.batch_size messages. */
static void
ensure_batch_capacity(void)
{
	if (batch_capacity >= pinpipe_batch_size)
		return;
	if (batch_capacity > 0)
	{
		pfree(batch_msgs);
		pfree(batch_pp);
	}
	batch_msgs = MemoryContextAlloc(worker_cxt, sizeof(rd_kafka_message_t *) * pinpipe_batch_size);
	batch_pp = MemoryContextAlloc(worker_cxt, sizeof(PPMessage) * pinpipe_batch_size);
	batch_capacity = pinpipe_batch_size;
}

/* Start a transaction; finish_xact() returns to the batch memory context. */
static void
begin_xact(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(batch_cxt);
}

static void
finish_xact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(batch_cxt);
}

/*
 * Start a transaction in which the worker's extension stays as it is, for
 * the tables it reads and writes: false, with no transaction open, if it was
 * dropped (or dropped and created again) since consume_once checked.
 *
 * The extension is locked as DROP EXTENSION locks it first, so a DROP waits
 * for the batch in progress and the batch never meets half-dropped tables.
 * Then pinpipe.offsets, the worker's first lock on a table in every
 * transaction: an update script that starts with LOCK TABLE pinpipe.offsets
 * (SHARE ROW EXCLUSIVE) waits for the batch in progress, and the next batch
 * waits for the update before it touches any other table (no deadlock).
 */
static bool
begin_extension_xact(void)
{
	Oid oid;
	Oid offsets;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	oid = get_extension_oid("pinpipe", true);
	if (OidIsValid(oid))
	{
		/* waits for a DROP in progress, and takes in its invalidations */
		LockDatabaseObject(ExtensionRelationId, oid, 0, AccessShareLock);
		oid = get_extension_oid("pinpipe", true);
	}
	if (!OidIsValid(oid) || oid != extension_oid)
	{
		AbortCurrentTransaction();
		MemoryContextSwitchTo(batch_cxt);
		need_assign = true; /* resume from the offsets the extension has */
		return false;
	}
	offsets = get_relname_relid("offsets", get_namespace_oid("pinpipe", false));
	if (OidIsValid(offsets))
		LockRelationOid(offsets, RowExclusiveLock);
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(batch_cxt);
	return true;
}

static void
clear_slot(int code, Datum arg)
{
	pp_status_worker_exit(worker_id, exit_reason[0] != '\0' ? exit_reason : NULL);
}

/*
 * Keep the error that ends the process while it connects to its database
 * (e.g. database "x" does not exist), for pinpipe.status to show.
 */
static void
connect_log_hook(ErrorData *edata)
{
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (edata->elevel >= FATAL && edata->message != NULL)
		strlcpy(exit_reason, edata->message, sizeof(exit_reason));
}

/*
 * jansson allocates a node per JSON value; per message that is dozens of
 * malloc/free pairs. In the worker they come from json_cxt instead, freed
 * in one go when the batch is done. NULL on exhaustion makes jansson report
 * a parse error (a dead letter), never an ERROR thrown through it.
 */
static void *
json_alloc(size_t size)
{
	return MemoryContextAllocExtended(json_cxt, size, MCXT_ALLOC_NO_OOM);
}

static void
json_free(void *ptr)
{
	/* freed with json_cxt */
}

/* Free what the decoder allocated outside PostgreSQL's memory. */
static void
free_decoded(PPMessage *msgs, int nmsgs)
{
	for (int i = 0; i < nmsgs; i++)
	{
		if (msgs[i].decoded)
			pp_record_free(&msgs[i].rec);
		msgs[i].decoded = false;
	}
}

static void
release_batch(void)
{
	free_decoded(batch_pp, batch_pp_n);
	batch_pp_n = 0;
	for (int i = 0; i < batch_n; i++)
		rd_kafka_message_destroy(batch_msgs[i]);
	batch_n = 0;
	MemoryContextReset(batch_cxt);
	MemoryContextReset(json_cxt);
}

static void
destroy_consumer(void)
{
	if (rkqu != NULL)
		rd_kafka_queue_destroy(rkqu);
	rkqu = NULL;
	if (rk != NULL)
	{
		TimestampTz start = GetCurrentTimestamp();
		long ms;

		release_batch();
		pp_set_state(worker_id, PP_ALL_TOPICS, "disconnecting");
		pp_kafka_destroy(rk);
		ms = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
		if (ms > 1000)
			ereport(LOG, (errmsg("pinpipe worker %d: closing the Kafka consumer took %ld ms",
								 worker_id, ms)));
	}
	rk = NULL;
	for (int k = 0; k < PP_NKINDS; k++)
	{
		topics[k].npartitions = 0;
		topics[k].nmine = 0;
		topics[k].available = false;
		topics[k].source = 0;
		topics[k].source_fresh = false;
	}
	need_assign = true;
	partitions_paused = false;
	last_metadata = 0;
}

/*
 * Mirror the topic and partition state into shared memory (status.c), with
 * the high watermarks the consumer last saw (read here, before status.c
 * takes its lock), and note which topics are caught up.
 */
static void
publish_partitions(void)
{
	static int32 partition[PP_MAX_PARTITIONS];
	static int64 next_offset[PP_MAX_PARTITIONS];
	static int64 high_watermark[PP_MAX_PARTITIONS];

	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *ts = &topics[k];
		int n = Min(rk != NULL ? ts->nmine : 0, PP_MAX_PARTITIONS);
		bool caught_up = n > 0;

		for (int p = 0; p < n; p++)
		{
			int64 lo = -1;
			int64 hi = -1;

			partition[p] = ts->mine[p].partition;
			next_offset[p] = ts->mine[p].next_offset;
			if (rd_kafka_get_watermark_offsets(rk, ts->name, ts->mine[p].partition, &lo, &hi) !=
					RD_KAFKA_RESP_ERR_NO_ERROR ||
				hi < 0)
				hi = -1;
			high_watermark[p] = hi;
			/* with no stored offset, a partition is caught up when it is empty */
			if (hi < 0 || (next_offset[p] >= 0 ? next_offset[p] < hi : hi != 0 && hi != lo))
				caught_up = false;
		}
		ts->caught_up = caught_up;
		pp_publish_topic(worker_id, (PPKind) k, rk != NULL ? ts->name : "", n, partition,
						 next_offset, high_watermark);
	}
}

/*
 * Show what each topic is doing, once the worker consumes: the topic is
 * missing or unavailable, consumed, or caught up. A topic caught up has no
 * error left: its last error moves to previous_error.
 */
static void
publish_topic_states(void)
{
	if (brokers_down)
	{
		pp_set_state(worker_id, PP_ALL_TOPICS, "brokers unreachable");
		return;
	}
	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *t = &topics[k];
		const char *state;

		if (!t->available)
			state = t->unavailable_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
							t->unavailable_err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
						? "topic does not exist"
						: "topic not available";
		else if (t->nmine == 0)
			state = "idle: no partition of this topic for this worker";
		else if (t->caught_up)
			state = "caught up";
		else
			state = "consuming";
		pp_set_state(worker_id, k, state);
		if (t->available && (t->caught_up || t->nmine == 0))
			pp_clear_error(worker_id, k, PP_ERR_ANY);
	}
}

/* Wait on the latch, serving Kafka events, for at most timeout_ms. */
static void
wait_a_while(long timeout_ms)
{
	if (rk != NULL)
		pp_kafka_poll_events(rk);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Apply a reload: a new database needs a restart, a new source a new consumer. */
static void
handle_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (strcmp(pinpipe_database, connected_database) != 0)
	{
		ereport(LOG, (errmsg("pinpipe worker %d: pinpipe.database changed from \"%s\" to \"%s\", "
							 "restarting",
							 worker_id, connected_database, pinpipe_database)));
		proc_exit(1);
	}
	if (rk != NULL && strcmp(consumer_partitions, pinpipe_partitions) != 0)
	{
		ereport(LOG, (errmsg("pinpipe worker %d: pinpipe.partitions changed to \"%s\", "
							 "reassigning",
							 worker_id, pinpipe_partitions)));
		pfree(consumer_partitions);
		consumer_partitions = MemoryContextStrdup(worker_cxt, pinpipe_partitions);
		need_assign = true;
	}
	if (rk != NULL && (strcmp(consumer_brokers, pinpipe_brokers) != 0 ||
					   strcmp(consumer_prefix, pinpipe_topic_prefix) != 0 ||
					   strcmp(consumer_config, pinpipe_kafka_config) != 0))
	{
		ereport(LOG, (errmsg("pinpipe worker %d: Kafka settings changed, reconnecting to \"%s\" "
							 "for topics with prefix \"%s\"",
							 worker_id, pinpipe_brokers, pinpipe_topic_prefix)));
		destroy_consumer();
	}
}

/*
 * Is the extension installed in our database? (Checked in a transaction.)
 * When it is not the one the worker's state came from (dropped, or dropped
 * and created again), forget that state: the consumer and its positions, the
 * prepared statements, and the last error, which belonged to objects that
 * are gone. The worker then starts afresh from the new extension's offsets.
 */
static bool
extension_ready(void)
{
	Oid oid;

	begin_xact();
	oid = get_extension_oid("pinpipe", true);
	finish_xact();
	if (extension_seen && oid != extension_oid)
	{
		if (OidIsValid(extension_oid))
			ereport(LOG, (errmsg("pinpipe worker %d: extension pinpipe was dropped%s", worker_id,
								 OidIsValid(oid) ? " and created again, starting afresh from its "
												   "stored offsets"
												 : "")));
		if (rk != NULL)
			destroy_consumer();
		pp_sink_reset_plans();
		pp_clear_error(worker_id, PP_ALL_TOPICS, PP_ERR_ANY);
	}
	extension_oid = oid;
	extension_seen = true;
	return OidIsValid(oid);
}

/*
 * Show a Kafka error of the consumer in pinpipe.status (kafka.c logs it); the
 * consumer says when no broker answers any more.
 */
static void
report_kafka_error(int worker, int err, const char *reason)
{
	int kind = PP_ALL_TOPICS;

	cluster_unverified = true;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		brokers_down = true;
	/* an error about a partition ("topic [partition]: ...") belongs to its topic */
	for (int k = 0; k < PP_NKINDS; k++)
	{
		size_t len = strlen(topics[k].name);

		if (len > 0 && strncmp(reason, topics[k].name, len) == 0 &&
			strncmp(reason + len, " [", 2) == 0)
			kind = k;
	}
	pp_set_error(worker, kind, PP_ERR_KAFKA, "Kafka: %s", reason);
}

/* Is err the broker saying that a topic does not exist? */
static bool
is_missing_topic(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		   err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
}

static void
create_consumer(void)
{
	MemoryContext old = MemoryContextSwitchTo(worker_cxt);

	rk = pp_kafka_consumer(pinpipe_brokers, pinpipe_kafka_config, worker_id, report_kafka_error);
	consumer_brokers = pstrdup(pinpipe_brokers);
	consumer_prefix = pstrdup(pinpipe_topic_prefix);
	consumer_config = pstrdup(pinpipe_kafka_config);
	consumer_partitions = pstrdup(pinpipe_partitions);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		snprintf(topics[k].name, sizeof(topics[k].name), "%s.%s", pinpipe_topic_prefix,
				 pp_kind_name((PPKind) k));
		topics[k].first_partitions = -1;
	}
	MemoryContextSwitchTo(old);
	ereport(LOG, (errmsg("pinpipe worker %d: consuming %s, %s and %s from %s", worker_id,
						 topics[PP_PIN].name, topics[PP_GEO].name, topics[PP_USER].name,
						 pinpipe_brokers)));
}

/* The cluster id the broker reported last (palloc'd), or NULL. */
static char *
broker_cluster_id(void)
{
	char *id = rk != NULL ? rd_kafka_clusterid(rk, 0) : NULL;
	char *copy;

	if (id == NULL)
		return NULL;
	copy = pstrdup(id);
	rd_kafka_mem_free(rk, id);
	return copy;
}

/*
 * Whether the broker now reports another cluster than the one a topic's
 * source was read on (a fail-over, or a restarted embedded broker, which
 * keeps no messages): its offsets mean other messages.
 */
static bool
cluster_changed(void)
{
	char *cluster = broker_cluster_id();

	if (cluster == NULL)
		return false;
	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *t = &topics[k];

		if (t->source != 0 && t->source_cluster != NULL && strcmp(t->source_cluster, cluster) != 0)
		{
			ereport(LOG, (errmsg("pinpipe worker %d: the broker reports cluster \"%s\", the "
								 "messages of %s stored so far came from cluster \"%s\"",
								 worker_id, cluster, t->name, t->source_cluster)));
			return true;
		}
	}
	return false;
}

/*
 * After a Kafka error, ask the broker for metadata (whose response carries
 * the cluster id) before trusting the cached cluster id. librdkafka reconnects
 * to a restarted broker and fetches from it before it refreshes its metadata
 * by itself; the disconnection's error is queued before any message fetched
 * over the new connection, so serving the events first is enough to see it.
 */
static void
verify_cluster(void)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;

	pp_kafka_poll_events(rk);
	if (!cluster_unverified)
		return;
	err = rd_kafka_metadata(rk, 0, NULL, &md, WATERMARK_TIMEOUT_MS);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read the cluster's metadata: %s", rd_kafka_err2str(err))));
	rd_kafka_metadata_destroy(md);
	cluster_unverified = false;
}

/* The partition's range of offsets, read from the broker. */
static void
query_range(const TopicState *t, int32 partition, int64 *lo, int64 *hi)
{
	rd_kafka_resp_err_t err;

	err = rd_kafka_query_watermark_offsets(rk, t->name, partition, lo, hi, WATERMARK_TIMEOUT_MS);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
						errmsg("could not read the offsets of %s partition %d: %s", t->name,
							   partition, rd_kafka_err2str(err))));
}

/*
 * Make src the topic's source (in the caller's transaction, t->mine set).
 * When it was begun after another, each of this worker's partitions that
 * had a stored offset in the previous source gets a row in
 * pinpipe.offset_gaps (the stored offset, and where the new source starts,
 * stored as its offset): the partitions are read again from their earliest
 * offset, into the new source.
 */
static void
switch_source(TopicState *t, const PPSource *src)
{
	MemoryContext old;

	if (src->begun && src->previous != 0)
	{
		char *reason = psprintf("%s: source %d follows source %d, read again from the earliest "
								"offset",
								pp_source_reason_name(src->reason), src->id, src->previous);

		t->source = src->previous;
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		load_offsets(t);
		SPI_finish();
		for (int p = 0; p < t->nmine; p++)
		{
			PPOffsetGap gap;
			int64 lo, hi;

			if (t->mine[p].next_offset < 0)
				continue;
			query_range(t, t->mine[p].partition, &lo, &hi);
			gap.topic = t->name;
			gap.source = src->id;
			gap.partition = t->mine[p].partition;
			gap.expected_offset = t->mine[p].next_offset;
			gap.resumed_offset = lo;
			gap.lost_messages = 0;
			gap.reason = reason;
			pp_store_offset_gap(&gap);
			t->mine[p].next_offset = lo;
		}
		ereport(
			LOG,
			(errmsg("pinpipe worker %d: %s: the messages of %s now go to source %d (after "
					"source %d)",
					worker_id, pp_source_reason_name(src->reason), t->name, src->id, src->previous),
			 errdetail("Its partitions are read again from their earliest offsets; the rows "
					   "stored from source %d are kept, and pinpipe.offset_gaps shows where "
					   "each partition stopped.",
					   src->previous)));
		t->source_fresh = true;
	}
	else if (src->begun)
		ereport(LOG, (errmsg("pinpipe worker %d: %s begins source %d (%s)", worker_id, t->name,
							 src->id, pp_source_reason_name(src->reason))));
	t->source = src->id;
	old = MemoryContextSwitchTo(worker_cxt);
	if (t->source_cluster != NULL)
		pfree(t->source_cluster);
	t->source_cluster = src->cluster_id != NULL ? pstrdup(src->cluster_id) : NULL;
	MemoryContextSwitchTo(old);
}

/* Find or begin the topic's source on the broker's cluster (assign_partitions). */
static void
use_source(TopicState *t)
{
	PPSource src;

	pp_source_resolve(t->name, pp_kind_name((PPKind) (t - topics)), broker_cluster_id(), &src);
	/* begun by another worker since this one took the topic's source: its gaps are ours to record
	 */
	if (!src.begun && t->source != 0 && src.id != t->source)
	{
		src.begun = true;
		src.previous = t->source;
	}
	switch_source(t, &src);
}

/* Begin a new source of the topic (a partition ended before its stored offset). */
static void
begin_topic_source(TopicState *t, PPSourceReason reason)
{
	PPSource src;

	pp_source_begin(t->name, broker_cluster_id(), reason, t->source, &src);
	switch_source(t, &src);
}

/*
 * Ask the broker how many partitions each topic has; reassign if that
 * changed. When no broker answers the first question, the brokers are
 * unreachable: the topics keep what was known of them.
 */
static void
refresh_metadata(void)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *t = &topics[k];
		rd_kafka_resp_err_t err;
		int count = pp_kafka_partition_count(rk, t->name, 1000, &err);

		if (count < 0 && !is_missing_topic(err) && k == 0)
		{
			if (!brokers_down)
				ereport(LOG, (errcode(ERRCODE_CONNECTION_FAILURE),
							  errmsg("pinpipe worker %d: no broker of \"%s\" answers: %s",
									 worker_id, consumer_brokers, rd_kafka_err2str(err)),
							  errhint("The worker asks again every %d seconds.",
									  METADATA_RETRY_MS / 1000)));
			brokers_down = true;
			pp_set_error(worker_id, PP_ALL_TOPICS, PP_ERR_KAFKA,
						 "brokers unreachable: no broker of \"%s\" answers: %s", consumer_brokers,
						 rd_kafka_err2str(err));
			last_metadata = GetCurrentTimestamp();
			return;
		}
		if (brokers_down)
			ereport(LOG, (errmsg("pinpipe worker %d: the brokers answer again", worker_id)));
		brokers_down = false;

		if (t->first_partitions < 0)
		{
			if (count >= 0)
				t->first_partitions = count;
			else if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
					 err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
				t->first_partitions = 0;
		}
		if (count < 0)
		{
			bool missing = err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
						   err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
			bool was_missing = t->unavailable_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
							   t->unavailable_err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
			/* report when the topic becomes unavailable, and when it turns out missing or not */
			bool report = t->available || last_metadata == 0 || missing != was_missing;

			t->unavailable_err = err;
			if (report && missing)
			{
				ereport(
					LOG,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("pinpipe worker %d: topic \"%s\" does not exist", worker_id, t->name),
					 errdetail("The broker reports the topic as unknown: it was deleted, or has "
							   "not been created yet. The worker consumes the other topics, "
							   "checks again every %d seconds, and resumes this one from its "
							   "stored offsets when it exists.",
							   METADATA_INTERVAL_MS / 1000),
					 errhint("Create the topic, or correct pinpipe.topic_prefix.")));
				pp_set_error(worker_id, k, PP_ERR_KAFKA,
							 "topic \"%s\" does not exist (deleted, or not created yet); checking "
							 "again every %d s",
							 t->name, METADATA_INTERVAL_MS / 1000);
			}
			else if (report)
			{
				ereport(LOG, (errcode(ERRCODE_CONNECTION_FAILURE),
							  errmsg("pinpipe worker %d: topic \"%s\" is not available: %s",
									 worker_id, t->name, rd_kafka_err2str(err)),
							  errhint("The worker goes on with the other topics and retries.")));
				pp_set_error(worker_id, k, PP_ERR_KAFKA, "topic \"%s\" is not available: %s",
							 t->name, rd_kafka_err2str(err));
			}
			t->available = false;
			continue;
		}
		pp_clear_error(worker_id, k, PP_ERR_KAFKA);
		if (!t->available && last_metadata != 0)
			ereport(LOG, (errmsg("pinpipe worker %d: topic \"%s\" is available (%d partitions), "
								 "consuming it from the stored offsets",
								 worker_id, t->name, count)));
		if (!t->available || count != t->npartitions)
		{
			if (t->npartitions != 0 && count != t->npartitions)
				ereport(LOG, (errmsg("pinpipe worker %d: topic \"%s\" now has %d partitions "
									 "(it had %d)",
									 worker_id, t->name, count, t->npartitions)));
			t->npartitions = count;
			need_assign = true;
		}
		t->available = true;
	}
	last_metadata = GetCurrentTimestamp();
	if (cluster_changed())
		need_assign = true;
}

/* Read the stored next offsets of a topic's source into t->mine (-1 where none). */
static void
load_offsets(TopicState *t)
{
	Datum args[2] = { CStringGetTextDatum(t->name), Int32GetDatum(t->source) };
	Oid argtypes[2] = { TEXTOID, INT4OID };
	int rc;

	rc = SPI_execute_with_args(with_sources
								   ? "SELECT kafka_partition, next_offset FROM pinpipe.offsets "
									 "WHERE topic = $1 AND source = $2"
								   : "SELECT kafka_partition, next_offset FROM pinpipe.offsets "
									 "WHERE topic = $1",
							   with_sources ? 2 : 1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pinpipe: reading offsets failed: %s", SPI_result_code_string(rc));
	for (int p = 0; p < t->nmine; p++)
	{
		t->mine[p].next_offset = -1;
		t->mine[p].rewind_until = -1;
	}
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;
		int32 partition =
			DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		int64 next =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));

		for (int p = 0; p < t->nmine; p++)
		{
			if (t->mine[p].partition == partition)
				t->mine[p].next_offset = next;
		}
	}
}

/*
 * Assign this worker's partitions from the stored offsets. A partition with
 * none starts at pinpipe.start_offset; its offset is stored with its first
 * batch. False if the extension changed under the worker (nothing assigned).
 */
static bool
assign_partitions(void)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	if (!begin_extension_xact())
		return false;
	list = rd_kafka_topic_partition_list_new(16);
	with_sources = pp_sources_exist();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *t = &topics[k];
		int n = 0;

		if (!t->available)
		{
			t->nmine = 0;
			continue;
		}
		if (t->mine != NULL)
			pfree(t->mine);
		t->mine = MemoryContextAlloc(worker_cxt, sizeof(PartState) * Max(t->npartitions, 1));
		/* the k-th partition this server consumes goes to worker k % workers */
		for (int p = 0, nsel = 0; p < t->npartitions; p++)
		{
			if (!pp_partition_selected(pinpipe_partitions, p))
				continue;
			if (nsel++ % pinpipe_workers == worker_id)
				t->mine[n++].partition = p;
		}
		t->nmine = n;
		if (with_sources)
			use_source(t);
		else
			t->source = 0;
		load_offsets(t);
	}
	SPI_finish();
	load_rewinds();

	for (int k = 0; k < PP_NKINDS; k++)
	{
		TopicState *t = &topics[k];

		for (int p = 0; p < t->nmine; p++)
		{
			PartState *ps = &t->mine[p];
			/* a partition added (or a topic created) while we run holds only new messages */
			bool appeared = t->first_partitions >= 0 && ps->partition >= t->first_partitions;
			bool latest = pinpipe_start_offset == PP_START_LATEST && !appeared && !t->source_fresh;

			if (ps->next_offset < 0)
				ereport(LOG,
						(errmsg("pinpipe worker %d: %s partition %d has no stored offset, starting "
								"at the %s offset%s",
								worker_id, t->name, ps->partition, latest ? "latest" : "earliest",
								appeared ? " (the partition appeared while the worker ran)" : "")));
			/*
			 * A partition with no stored offset starts at the broker's logical
			 * beginning or end, resolved by the consumer itself (no blocking
			 * query here, which librdkafka may not time out while a broker is
			 * down); its offset is stored with its first batch.
			 */
			rd_kafka_topic_partition_list_add(list, t->name, ps->partition)->offset =
				ps->next_offset >= 0 ? ps->next_offset
				: latest             ? RD_KAFKA_OFFSET_END
									 : RD_KAFKA_OFFSET_BEGINNING;
		}
	}
	finish_xact();

	err = rd_kafka_assign(rk, list);
	/*
	 * Partitions paused by pinpipe.pause() stay paused through a new
	 * assignment: assignments are made only while not paused, so resume them.
	 */
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && partitions_paused)
		(void) rd_kafka_resume_partitions(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not assign the Kafka partitions: %s", rd_kafka_err2str(err))));
	if (rkqu == NULL)
		rkqu = rd_kafka_queue_get_consumer(rk);
	need_assign = false;
	partitions_paused = false;
	publish_partitions();
	return true;
}

static PartState *
find_part(PPKind kind, int32 partition)
{
	TopicState *t = &topics[kind];

	for (int p = 0; p < t->nmine; p++)
	{
		if (t->mine[p].partition == partition)
			return &t->mine[p];
	}
	return NULL;
}

static bool
kind_of_topic(const char *name, PPKind *kind)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (strcmp(topics[k].name, name) == 0)
		{
			*kind = (PPKind) k;
			return true;
		}
	}
	return false;
}

/* The worker's topic names, by kind. */
static void
topic_names(const char **names)
{
	for (int k = 0; k < PP_NKINDS; k++)
		names[k] = topics[k].name;
}

/*
 * Take up the rewinds in progress on this worker's partitions (after an
 * assignment, in its transaction): messages below their from_offset are
 * looked up before being stored.
 */
static void
load_rewinds(void)
{
	const char *names[PP_NKINDS];
	PPRewind *r;
	int n;

	if (!pp_rewind_supported())
		return;
	topic_names(names);
	n = pp_rewind_fetch(names, false, &r);
	for (int i = 0; i < n; i++)
	{
		PartState *ps = find_part(r[i].kind, r[i].partition);

		if (ps == NULL || r[i].from_offset < 0)
			continue;
		ps->rewind_until = r[i].from_offset;
		ps->rewind_id = r[i].id;
	}
	pfree(r);
}

/*
 * Where rewind r of partition ps resumes: the requested offset, or the
 * broker's first offset at or after the requested time (when the broker
 * finds none, the offset after the last message stored from before the
 * time); no lower than the partition's first offset and no higher than its
 * stored offset, next.
 */
static int64
rewind_target(const TopicState *t, const PartState *ps, const PPRewind *r, int64 next)
{
	int64 lo, hi;
	int64 target = r->to_offset;
	rd_kafka_resp_err_t err;

	query_range(t, ps->partition, &lo, &hi);
	if (r->by_time)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
		/* Kafka times are ms since 1970 */
		int64 ms =
			(r->to_time + (TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) /
			1000;

		rd_kafka_topic_partition_list_add(list, t->name, ps->partition)->offset = ms;
		err = rd_kafka_offsets_for_times(rk, list, WATERMARK_TIMEOUT_MS);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			err = list->elems[0].err;
		target = list->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(list);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
							errmsg("could not find the offset of %s partition %d for a time: %s",
								   t->name, ps->partition, rd_kafka_err2str(err))));
		if (target < 0)
		{
			/* none found: after the last message stored from before the time */
			target = pp_rewind_stored_before(r->kind, t->name, ps->partition, r->to_time);
			ereport(LOG, (errmsg("pinpipe worker %d: the broker found no offset of %s partition %d "
								 "for the time of rewind request " INT64_FORMAT ", resuming after "
								 "the last message stored from before it, at offset " INT64_FORMAT,
								 worker_id, t->name, ps->partition, r->id, target)));
		}
	}
	return Min(Max(target, lo), next);
}

/*
 * Take the rewind requests for this worker's partitions (pinpipe.rewind()) in
 * the caller's transaction, the batch's (offsets: the next offsets it
 * stores) or one of their own: each partition's stored offset goes back,
 * and the request records from where. finish_rewinds() takes them into the
 * worker's state once the transaction has committed.
 */
static void
take_rewinds(const PPOffset *offsets, PartState **parts, int noffsets)
{
	const char *names[PP_NKINDS];
	PPRewind *r;
	int n;

	last_rewind_check = GetCurrentTimestamp();
	napplied = 0;
	if (!pp_rewind_supported())
		return;
	topic_names(names);
	n = pp_rewind_fetch(names, true, &r);
	for (int i = 0; i < n && napplied < MAX_RESETS; i++)
	{
		TopicState *t = &topics[r[i].kind];
		PartState *ps = find_part(r[i].kind, r[i].partition);
		int64 next, until, from, target;

		if (ps == NULL)
			continue; /* another worker's */
		/* where the partition will be once the transaction commits */
		next = ps->next_offset;
		until = ps->rewind_until;
		for (int o = 0; o < noffsets; o++)
		{
			if (parts[o] != ps)
				continue;
			next = offsets[o].next_offset;
			if (until >= 0 && next >= until)
				until = -1;
		}
		for (int a = 0; a < napplied; a++)
		{
			if (applied[a].ps != ps)
				continue;
			next = applied[a].target;
			until = applied[a].until;
		}
		if (next < 0)
			continue; /* not started yet */
		from = Max(next, until);
		target = rewind_target(t, ps, &r[i], next);
		pp_rewind_apply(t->name, &r[i], from, target);
		ereport(LOG,
				(errmsg("pinpipe worker %d: rewinding %s partition %d from offset " INT64_FORMAT
						" to " INT64_FORMAT " (request " INT64_FORMAT ")",
						worker_id, t->name, ps->partition, next, target, r[i].id)));
		applied[napplied].ps = ps;
		applied[napplied].id = r[i].id;
		applied[napplied].target = target;
		applied[napplied].until = target < from ? from : -1;
		napplied++;
	}
	pfree(r);
}

/* After the commit: the partitions rewound go back, assigned again. */
static void
finish_rewinds(void)
{
	for (int a = 0; a < napplied; a++)
	{
		applied[a].ps->next_offset = applied[a].target;
		applied[a].ps->rewind_until = applied[a].until;
		applied[a].ps->rewind_id = applied[a].id;
	}
	if (napplied > 0)
		need_assign = true;
	napplied = 0;
}

static bool
rewind_check_due(void)
{
	return TimestampDifferenceExceeds(last_rewind_check, GetCurrentTimestamp(), REWIND_CHECK_MS);
}

/* With no batch to write: the rewind requests in a transaction of their own. */
static void
apply_rewinds(void)
{
	if (!begin_extension_xact())
		return;
	take_rewinds(NULL, NULL, 0);
	finish_xact();
	finish_rewinds();
}

/* Whether a rewind is in progress on one of this worker's partitions. */
static bool
rewinding(void)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		for (int p = 0; p < topics[k].nmine; p++)
		{
			if (topics[k].mine[p].rewind_until >= 0)
				return true;
		}
	}
	return false;
}

/*
 * In the batch's transaction: drop from batch_pp the messages of rewound
 * partitions that are stored already (raw row or dead letter), and count
 * them, and the others of the rewound range, per partition.
 */
static void
filter_rewound(void)
{
	const char *names[PP_NKINDS];
	bool *candidate;
	bool *stored;
	bool any = false;
	int n = 0;

	if (!rewinding())
		return;
	for (int i = 0; i < batch_pp_n; i++)
	{
		PartState *ps = find_part(batch_pp[i].kind, batch_pp[i].partition);

		ps->rewind_skipped = ps->rewind_stored = 0;
		any |= (ps->rewind_until >= 0 && batch_pp[i].offset < ps->rewind_until);
	}
	if (!any)
		return;
	candidate = palloc0(sizeof(bool) * batch_pp_n);
	stored = palloc0(sizeof(bool) * batch_pp_n);
	for (int i = 0; i < batch_pp_n; i++)
	{
		PartState *ps = find_part(batch_pp[i].kind, batch_pp[i].partition);

		candidate[i] = ps->rewind_until >= 0 && batch_pp[i].offset < ps->rewind_until;
	}
	topic_names(names);
	pp_rewind_find_stored(batch_pp, batch_pp_n, names, candidate, stored);
	for (int i = 0; i < batch_pp_n; i++)
	{
		PartState *ps = find_part(batch_pp[i].kind, batch_pp[i].partition);

		if (candidate[i] && !stored[i])
			ps->rewind_stored++;
		if (!stored[i])
		{
			batch_pp[n++] = batch_pp[i];
			continue;
		}
		ps->rewind_skipped++;
		if (batch_pp[i].decoded)
			pp_record_free(&batch_pp[i].rec);
	}
	batch_pp_n = n;
}

/*
 * In the batch's transaction, after the rows: the counts of the rewinds in
 * progress, and their end when the partition reached from_offset again; the
 * clean rows of the missing messages stored, rebuilt from the latest raw
 * row of their inds (they may be older than the latest).
 */
static void
account_rewinds(const PPOffset *offsets, PartState **parts, int noffsets)
{
	if (!rewinding())
		return;
	for (int o = 0; o < noffsets; o++)
	{
		PartState *ps = parts[o];

		if (ps->rewind_until < 0)
			continue;
		pp_rewind_progress(ps->rewind_id, ps->rewind_skipped, ps->rewind_stored,
						   offsets[o].next_offset >= ps->rewind_until);
	}
	for (int k = 0; k < PP_NKINDS; k++)
	{
		int32 *inds = palloc(sizeof(int32) * Max(batch_pp_n, 1));
		int n = 0;

		for (int i = 0; i < batch_pp_n; i++)
		{
			PPMessage *m = &batch_pp[i];
			PartState *ps;

			if (m->kind != (PPKind) k || m->error != NULL)
				continue;
			ps = find_part(m->kind, m->partition);
			if (ps->rewind_until >= 0 && m->offset < ps->rewind_until)
				inds[n++] = (int32) m->rec.values[0].i;
		}
		pp_reclean_inds((PPKind) k, inds, n);
		pfree(inds);
	}
}

/* A consumer error: an offset the broker no longer has, or something to report. */
static void
handle_consumer_error(rd_kafka_message_t *m)
{
	PPKind kind;
	const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "";

	if ((m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
		 m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) &&
		kind_of_topic(topic, &kind))
	{
		for (int i = 0; i < nresets; i++)
		{
			if (resets[i].kind == kind && resets[i].partition == m->partition)
				return;
		}
		if (nresets < MAX_RESETS)
		{
			resets[nresets].kind = kind;
			resets[nresets].partition = m->partition;
			nresets++;
		}
		return;
	}
	ereport(LOG, (errmsg("pinpipe worker %d: consumer error on %s partition %d: %s", worker_id,
						 topic, m->partition, rd_kafka_message_errstr(m))));
	if (kind_of_topic(topic, &kind))
		pp_set_error(worker_id, kind, PP_ERR_BATCH, "%s partition %d: %s", topic, m->partition,
					 rd_kafka_message_errstr(m));
	else
		pp_set_error(worker_id, PP_ALL_TOPICS, PP_ERR_KAFKA, "%s partition %d: %s", topic,
					 m->partition, rd_kafka_message_errstr(m));
}

/*
 * Read the range of offsets partition ps of topic t holds; false if the
 * stored offset is in it (the partition can simply be reassigned), else gap
 * describes where to resume and why.
 */
static bool
find_offset_gap(TopicState *t, PartState *ps, PPOffsetGap *gap, int64 *high)
{
	int64 lo, hi;

	query_range(t, ps->partition, &lo, &hi);
	if (ps->next_offset >= lo && ps->next_offset <= hi)
		return false;
	gap->topic = t->name;
	gap->source = t->source;
	gap->partition = ps->partition;
	gap->expected_offset = ps->next_offset;
	gap->resumed_offset = lo;
	gap->lost_messages = ps->next_offset < lo ? lo - ps->next_offset : 0;
	gap->reason = ps->next_offset < lo ? "deleted by retention before they were read"
									   : "stored offset is beyond the end of the partition (was "
										 "the topic recreated?)";
	*high = hi;
	return true;
}

/* Log a gap (stored already), and show it in pinpipe.status. */
static void
report_offset_gap(PPKind kind, const PPOffsetGap *gap, int64 hi)
{
	int64 lo = gap->resumed_offset;

	if (gap->lost_messages > 0)
	{
		ereport(
			WARNING,
			(errmsg("pinpipe worker %d: " INT64_FORMAT " messages of %s partition %d were "
					"lost: %s",
					worker_id, gap->lost_messages, gap->topic, gap->partition, gap->reason),
			 errdetail("The worker expected offset " INT64_FORMAT " but the partition holds "
					   "offsets " INT64_FORMAT " to " INT64_FORMAT "; it resumes at " INT64_FORMAT
					   ". The gap is recorded in pinpipe.offset_gaps.",
					   gap->expected_offset, lo, hi, lo)));
		pp_set_error(worker_id, kind, PP_ERR_BATCH,
					 INT64_FORMAT " messages of %s partition %d lost: %s", gap->lost_messages,
					 gap->topic, gap->partition, gap->reason);
		pp_report_lost_messages(worker_id, kind, gap->lost_messages);
		return;
	}
	ereport(WARNING,
			(errmsg("pinpipe worker %d: %s partition %d ends at offset " INT64_FORMAT
					", before the stored offset " INT64_FORMAT,
					worker_id, gap->topic, gap->partition, hi, gap->expected_offset),
			 errdetail("The partition now runs from offset " INT64_FORMAT " to its end at "
					   "" INT64_FORMAT ": the topic was deleted and created again, or the "
					   "broker lost messages. The worker resumes at offset " INT64_FORMAT
					   "; the gap is recorded in pinpipe.offset_gaps.",
					   lo, hi, lo),
			 errhint("The new topic's messages are stored under a new source (see "
					 "pinpipe.sources); the rows of pinpipe.%s_raw stored before are kept.",
					 pp_kind_name(kind))));
	pp_set_error(worker_id, kind, PP_ERR_BATCH,
				 "%s partition %d ends at " INT64_FORMAT " before the stored offset " INT64_FORMAT
				 " (topic recreated?), resuming at " INT64_FORMAT,
				 gap->topic, gap->partition, hi, gap->expected_offset, lo);
}

/*
 * Resume partitions whose stored offset is out of the broker's range. When
 * retention deleted messages before they were read, the gap is recorded in
 * pinpipe.offset_gaps (with the new offset, in one transaction) and logged:
 * nothing is skipped silently.
 */
static void
handle_offset_resets(void)
{
	bool switched[PP_NKINDS] = { false };

	for (int i = 0; i < nresets; i++)
	{
		PartState *ps = find_part(resets[i].kind, resets[i].partition);
		PPOffsetGap gap;
		int64 hi;

		if (switched[resets[i].kind])
			continue; /* the topic's partitions start again in its new source */
		if (ps == NULL || !find_offset_gap(&topics[resets[i].kind], ps, &gap, &hi))
			continue; /* not ours, or in range again: just reassign */
		verify_cluster();
		if (cluster_changed())
			break; /* another cluster: the reassignment begins its sources */
		if (!begin_extension_xact())
			break; /* the extension changed: its own offsets decide */
		if (gap.lost_messages == 0 && with_sources)
		{
			/*
			 * The partition ends before the stored offset: a new incarnation
			 * of the topic, whose offsets start again. Its messages go to a
			 * new source (every partition of it), so they never collide with
			 * the rows stored before; the gaps are recorded on the way.
			 */
			report_offset_gap(resets[i].kind, &gap, hi);
			begin_topic_source(&topics[resets[i].kind], PP_SOURCE_RECREATED);
			finish_xact();
			switched[resets[i].kind] = true;
			continue;
		}
		pp_store_offset_gap(&gap);
		finish_xact();
		report_offset_gap(resets[i].kind, &gap, hi);
		ps->next_offset = gap.resumed_offset;
	}
	nresets = 0;
	need_assign = true;
}

/* Collect up to pinpipe.batch_size messages within pinpipe.batch_timeout. */
static void
collect_batch(void)
{
	TimestampTz start = GetCurrentTimestamp();
	int limit = pinpipe_batch_size;

	while (batch_n < limit && nresets == 0)
	{
		long elapsed = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
		long remaining = pinpipe_batch_timeout - elapsed;
		ssize_t got;

		if (remaining <= 0)
			break;
		got = rd_kafka_consume_batch_queue(rkqu, (int) Min(remaining, 100), &batch_msgs[batch_n],
										   (size_t) (limit - batch_n));
		if (got < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not consume: %s", rd_kafka_err2str(rd_kafka_last_error()))));
		for (ssize_t i = 0; i < got; i++)
		{
			rd_kafka_message_t *m = batch_msgs[batch_n];

			if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				handle_consumer_error(m);
				rd_kafka_message_destroy(m);
				memmove(&batch_msgs[batch_n], &batch_msgs[batch_n + 1],
						sizeof(rd_kafka_message_t *) * (got - i - 1));
				continue;
			}
			batch_n++;
			brokers_down = false; /* a message came: a broker answers */
		}
		pp_kafka_poll_events(rk);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || pp_is_paused())
			break;
		if (batch_n == 0 && elapsed >= 100)
			break; /* idle: back to the main loop now and then */
	}
}

/* Turn a Kafka timestamp (ms since 1970) into a timestamptz. */
static TimestampTz
kafka_time(int64 ms)
{
	return (TimestampTz) (ms * 1000) -
		   (TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/*
 * Turn the collected Kafka messages into batch_pp, skipping those stored
 * already; fill offsets (and parts, their partitions) with each partition's
 * next offset. Returns the number of offsets.
 */
static int
gather_messages(PPOffset *offsets, PartState **parts)
{
	int noffsets = 0;

	batch_pp_n = 0;
	for (int i = 0; i < batch_n; i++)
	{
		rd_kafka_message_t *m = batch_msgs[i];
		PPMessage *pm = &batch_pp[batch_pp_n];
		PartState *ps;
		PPKind kind;
		rd_kafka_timestamp_type_t tstype;
		int64 ts;
		int o;

		if (!kind_of_topic(rd_kafka_topic_name(m->rkt), &kind))
			continue;
		ps = find_part(kind, m->partition);
		if (ps == NULL || m->offset < ps->next_offset)
			continue; /* not ours, or stored already (seen again after a reassign) */
		memset(pm, 0, sizeof(*pm));
		pm->kind = kind;
		pm->partition = m->partition;
		pm->offset = m->offset;
		ts = rd_kafka_message_timestamp(m, &tstype);
		pm->has_timestamp = (ts >= 0 && tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE);
		pm->timestamp = pm->has_timestamp ? kafka_time(ts) : 0;
		pm->payload = m->payload;
		pm->len = m->len;
		pm->source = topics[kind].source;
		pm->key = m->key;
		pm->keylen = m->key_len;
		pm->headers = pp_kafka_headers_json(m);
		batch_pp_n++;

		for (o = 0; o < noffsets; o++)
		{
			if (offsets[o].topic == topics[kind].name && offsets[o].partition == m->partition)
				break;
		}
		if (o == noffsets)
		{
			offsets[o].topic = topics[kind].name;
			offsets[o].source = topics[kind].source;
			offsets[o].partition = m->partition;
			parts[o] = ps;
			noffsets++;
		}
		offsets[o].next_offset = m->offset + 1;
	}
	return noffsets;
}

/*
 * Decode every message (decode.c); one that fails becomes a dead letter with
 * the decoder's error. The decoder's allocations come from json_cxt.
 */
static void
decode_messages(PPMessage *msgs, int nmsgs, size_t max_message_bytes)
{
	char errbuf[PP_ERRBUF_SIZE];

	for (int i = 0; i < nmsgs; i++)
	{
		PPMessage *m = &msgs[i];

		m->error = NULL;
		m->error_detail = NULL;
		m->decoded = pp_decode(m->kind, m->payload, m->len, max_message_bytes, &m->rec, errbuf,
							   sizeof(errbuf));
		if (!m->decoded)
		{
			const char *reason = pp_decode_error_reason(errbuf);

			m->error = pstrdup(reason != NULL ? reason : errbuf);
			m->error_detail = reason != NULL ? pstrdup(errbuf) : NULL;
		}
	}
}

/*
 * Write the decoded batch and its offsets in one transaction (sink.c). False,
 * with nothing written, if the extension changed under the worker.
 */
static bool
store_batch(const PPOffset *offsets, PartState **parts, int noffsets, PPSinkResult *result)
{
	const char *names[PP_NKINDS];

	topic_names(names);
	if (!begin_extension_xact())
		return false;
	if (pp_sources_exist() != with_sources)
	{
		/* updated (or not) since the partitions were assigned: assign them again */
		AbortCurrentTransaction();
		MemoryContextSwitchTo(batch_cxt);
		need_assign = true;
		return false;
	}
	pgstat_report_activity(STATE_RUNNING, "pinpipe: writing a batch");
	filter_rewound();
	pp_sink_write(batch_pp, batch_pp_n, names, offsets, noffsets,
				  (PPWriteMethod) pinpipe_write_method, result);
	account_rewinds(offsets, parts, noffsets);
	if (rewind_check_due())
		take_rewinds(offsets, parts, noffsets);
	finish_xact();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	return true;
}

/* After the commit: advance the partitions, and tell the broker (informational). */
static void
advance_offsets(const PPOffset *offsets, PartState **parts, int noffsets)
{
	rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(noffsets);

	for (int o = 0; o < noffsets; o++)
	{
		parts[o]->next_offset = offsets[o].next_offset;
		if (parts[o]->rewind_until >= 0 && offsets[o].next_offset >= parts[o]->rewind_until)
			parts[o]->rewind_until = -1; /* the rewind is over (recorded with the batch) */
		rd_kafka_topic_partition_list_add(commit, offsets[o].topic, offsets[o].partition)->offset =
			offsets[o].next_offset;
	}
	(void) rd_kafka_commit(rk, commit, 1);
	rd_kafka_topic_partition_list_destroy(commit);
}

/* The collected batch: Kafka messages -> decode -> sink (rows, offsets) -> status. */
static void
write_batch(void)
{
	PPOffset *offsets = palloc(sizeof(PPOffset) * batch_n);
	PartState **parts = palloc(sizeof(PartState *) * batch_n);
	int noffsets;
	PPSinkResult result;

	/*
	 * Messages read after the cluster changed belong to another source; the
	 * batch is dropped (nothing stored) and the partitions are assigned again
	 * in the new cluster's sources.
	 */
	verify_cluster();
	if (cluster_changed())
	{
		need_assign = true;
		return;
	}
	noffsets = gather_messages(offsets, parts);
	if (batch_pp_n == 0)
		return;
	decode_messages(batch_pp, batch_pp_n, (size_t) pinpipe_max_message_bytes);
	if (!store_batch(offsets, parts, noffsets, &result))
		return;
	advance_offsets(offsets, parts, noffsets);
	finish_rewinds();
	pp_report_batch(worker_id, result.rows, result.dead_letters);
	pp_history_count(worker_id, result.rows, result.dead_letters);
	/* a topic whose messages were stored has no error left */
	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (result.rows[k] + result.dead_letters[k] > 0)
			pp_clear_error(worker_id, k, PP_ERR_ANY);
	}
}

static void
pause_partitions(bool pause)
{
	rd_kafka_topic_partition_list_t *list;

	if (rk == NULL || need_assign || partitions_paused == pause)
		return;
	if (rd_kafka_assignment(rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (pause)
		(void) rd_kafka_pause_partitions(rk, list);
	else
		(void) rd_kafka_resume_partitions(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	partitions_paused = pause;
}

/* One turn of the main loop; errors propagate to the caller (not inlined into its PG_TRY). */
pg_noinline static void
consume_once(void)
{
	static bool waiting_logged = false;
	static bool was_paused = false;

	MemoryContextSwitchTo(batch_cxt);
	if (ConfigReloadPending)
		handle_reload();
	pp_history_flush(worker_id); /* once a minute: the minutes that ended */

	if (pp_is_paused())
	{
		pause_partitions(true);
		pp_set_state(worker_id, PP_ALL_TOPICS, "paused");
		was_paused = true;
		wait_a_while(200);
		return;
	}
	/*
	 * Resumed: say so before anything that may wait (a lock on the
	 * extension's tables), so that a pause() meanwhile is not taken as done.
	 */
	if (was_paused)
	{
		pp_set_state(worker_id, PP_ALL_TOPICS, "resuming");
		was_paused = false;
	}
	if (pinpipe_brokers[0] == '\0')
	{
		if (rk != NULL)
			destroy_consumer();
		pp_set_state(worker_id, PP_ALL_TOPICS, "idle: pinpipe.brokers is empty");
		wait_a_while(1000);
		return;
	}
	if (!extension_ready())
	{
		if (!waiting_logged)
			ereport(LOG, (errmsg("pinpipe worker %d: waiting for CREATE EXTENSION pinpipe in "
								 "database \"%s\"",
								 worker_id, connected_database)));
		waiting_logged = true;
		if (rk != NULL)
			destroy_consumer();
		pp_set_state(worker_id, PP_ALL_TOPICS, "waiting for CREATE EXTENSION pinpipe");
		wait_a_while(1000);
		return;
	}
	waiting_logged = false;

	if (rk == NULL)
	{
		pp_set_state(worker_id, PP_ALL_TOPICS, "connecting");
		create_consumer();
	}
	if (last_metadata == 0 ||
		TimestampDifferenceExceeds(last_metadata, GetCurrentTimestamp(),
								   brokers_down ? METADATA_RETRY_MS : METADATA_INTERVAL_MS))
		refresh_metadata();
	if (need_assign && !assign_partitions())
		return;

	pause_partitions(false);

	ensure_batch_capacity();
	collect_batch();
	if (batch_n > 0)
		write_batch();
	release_batch();
	if (nresets > 0)
		handle_offset_resets();
	else if (rewind_check_due())
		apply_rewinds();
	publish_partitions();
	publish_topic_states();
}

void
pinpipe_worker_main(Datum main_arg)
{
	worker_id = DatumGetInt32(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (pp_shared == NULL)
		pp_status_attach();
	pp_status_worker_start(worker_id, MyProcPid, MyLatch, pinpipe_database);
	before_shmem_exit(clear_slot, (Datum) 0);

	/* an error that ends the process here (no such database) shows in pinpipe.status */
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = connect_log_hook;
	BackgroundWorkerInitializeConnection(pinpipe_database, NULL, 0);
	emit_log_hook = prev_emit_log_hook;
	pgstat_report_appname("pinpipe worker");
	/* a batch's rows pass through the executor in memory: no temp files */
	SetConfigOption("work_mem", "65536", PGC_USERSET, PGC_S_SESSION);
	/*
	 * The statements the worker runs are planned for every batch (the
	 * analytics triggers' EXECUTE) and finish in milliseconds: compiling them
	 * with LLVM cost about a tenth of the worker's CPU, and its memory.
	 */
	SetConfigOption("jit", "off", PGC_USERSET, PGC_S_SESSION);

	/*
	 * Keep freed batch memory in the process: glibc would otherwise unmap the
	 * large blocks after every batch and fault them in again (about a tenth of
	 * the worker's time). The peak stays what one batch needs.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "pinpipe worker", ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "pinpipe batch", ALLOCSET_DEFAULT_SIZES);
	json_cxt =
		AllocSetContextCreate(TopMemoryContext, "pinpipe JSON", 0, 1024 * 1024, 8 * 1024 * 1024);
	pp_decode_set_allocator(json_alloc, json_free);
	connected_database = MemoryContextStrdup(worker_cxt, pinpipe_database);
	resets = MemoryContextAlloc(worker_cxt, sizeof(PendingReset) * MAX_RESETS);
	applied = MemoryContextAlloc(worker_cxt, sizeof(AppliedRewind) * MAX_RESETS);

	ereport(LOG, (errmsg("pinpipe worker %d started in database \"%s\"", worker_id,
						 connected_database)));

	for (;;)
	{
		PG_TRY();
		{
			consume_once();
		}
		PG_CATCH();
		{
			ErrorData *edata;

			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(worker_cxt);
			batch_n = Min(batch_n, batch_capacity);
			edata = CopyErrorData();
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();

			pp_set_error(worker_id, PP_ALL_TOPICS, PP_ERR_BATCH, "%s", edata->message);
			FreeErrorData(edata);
			pgstat_report_activity(STATE_IDLE, NULL);
			pp_sink_reset_plans();
			release_batch();
			nresets = 0;
			napplied = 0; /* rolled back with the transaction */
			/* nothing of the failed batch was stored: start again from the stored offsets */
			need_assign = true;
			pp_set_state(worker_id, PP_ALL_TOPICS, "retrying after an error");
			wait_a_while(1000);
		}
		PG_END_TRY();
	}
}
