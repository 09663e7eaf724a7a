/*
 * rewind.c
 *		Rewinds and the replay of dead letters (see rewind.h).
 *
 * A rewind is a row of pinpipe.rewind_requests, inserted by pinpipe.rewind()
 * (SQL, in src/sql/replay.sql). The worker that consumes the partition
 * applies it at its next batch boundary, in the batch's transaction (in one
 * of its own when there is no batch to write): the partition's
 * stored offset goes back to the requested offset (or to the broker's
 * offset for the requested time), and the request records where the
 * partition was (from_offset). Until the worker reaches from_offset again,
 * every message it reads below it is looked up first: one that has a raw
 * row or a dead letter is skipped (and counted), a missing one is stored,
 * so each message is still stored exactly once. The checks and counts are
 * made in the batch's own transaction.
 *
 * pinpipe.replay_dead_letters() runs the stored payloads through the same
 * decoder (decode.c) and sink (sink.c: rows formed and cleaned by
 * convert.c, the same statements and per-message error handling as the
 * worker) in the caller's transaction. What succeeds is stored and its
 * dead letter marked replayed_at; what fails again keeps its dead letter.
 *
 * A message stored late (replayed, or missing and stored by a rewind) may be
 * older than the latest message of its ind: the clean rows of those inds are
 * then rebuilt from their latest raw row, as pinpipe.reclean() does.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "decode.h"
#include "pinpipe.h"
#include "rewind.h"
#include "sink.h"

PG_FUNCTION_INFO_V1(pinpipe_replay_dead_letters);

static void
spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Whether the extension's schema has pinpipe.rewind_requests (0.2 and later). */
bool
pp_rewind_supported(void)
{
	Oid nsp = get_namespace_oid("pinpipe", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("rewind_requests", nsp));
}

static Datum
text_array(const char *const *strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
int4_array(const int32 *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(vals[i]);
	return PointerGetDatum(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
}

static Datum
int8_array(const int64 *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(vals[i]);
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * The requests for the worker's topics (topics[kind]): pending ones (not
 * applied yet, oldest first) or, with pending false, the applied ones not
 * completed (the partition has not reached from_offset again). Returns how
 * many, in *out (palloc'd in the caller's context). Inside a transaction.
 */
int
pp_rewind_fetch(const char *const *topics, bool pending, PPRewind **out)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid argtype = TEXTARRAYOID;
	Datum arg = text_array(topics, PP_NKINDS);
	PPRewind *r;
	int n = 0;

	spi_connect();
	if (SPI_execute_with_args(pending ? "SELECT id, topic, kafka_partition, to_offset, to_time, "
										"from_offset FROM pinpipe.rewind_requests "
										"WHERE applied_at IS NULL AND topic = ANY($1) ORDER BY id"
									  : "SELECT id, topic, kafka_partition, to_offset, to_time, "
										"from_offset FROM pinpipe.rewind_requests "
										"WHERE applied_at IS NOT NULL AND completed_at IS NULL "
										"AND topic = ANY($1) ORDER BY id",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pinpipe: reading rewind requests failed");
	r = MemoryContextAlloc(caller, sizeof(PPRewind) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		char *topic = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		Datum d;
		int k;

		for (k = 0; k < PP_NKINDS; k++)
		{
			if (strcmp(topics[k], topic) == 0)
				break;
		}
		if (k == PP_NKINDS)
			continue;
		r[n].kind = (PPKind) k;
		r[n].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		r[n].partition = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		r[n].by_time = isnull;
		r[n].to_offset = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		r[n].to_time = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		r[n].from_offset = isnull ? -1 : DatumGetInt64(d);
		n++;
	}
	SPI_finish();
	*out = r;
	return n;
}

/*
 * Apply request r in the caller's transaction: the partition's stored offset
 * becomes resumed_offset, the request records from_offset (messages below
 * it are looked up before being stored), and an earlier rewind of the
 * partition still in progress is completed (this one covers its range).
 */
void
pp_rewind_apply(const char *topic, const PPRewind *r, int64 from_offset, int64 resumed_offset)
{
	Oid types[5] = { INT8OID, TEXTOID, INT4OID, INT8OID, INT8OID };
	Datum args[5];

	args[0] = Int64GetDatum(r->id);
	args[1] = CStringGetTextDatum(topic);
	args[2] = Int32GetDatum(r->partition);
	args[3] = Int64GetDatum(from_offset);
	args[4] = Int64GetDatum(resumed_offset);
	spi_connect();
	if (SPI_execute_with_args("UPDATE pinpipe.rewind_requests SET completed_at = now() "
							  "WHERE topic = $2 AND kafka_partition = $3 AND id <> $1 "
							  "AND applied_at IS NOT NULL AND completed_at IS NULL",
							  5, types, args, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("UPDATE pinpipe.rewind_requests SET applied_at = now(), "
							  "from_offset = $4, resumed_offset = $5, "
							  "completed_at = CASE WHEN $5 >= $4 THEN now() END WHERE id = $1",
							  5, types, args, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("UPDATE pinpipe.offsets SET next_offset = $5, updated_at = now() "
							  "WHERE topic = $2 AND kafka_partition = $3 AND source = "
							  "(SELECT max(c.source) FROM pinpipe.offsets c WHERE c.topic = $2)",
							  5, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pinpipe: applying rewind request " INT64_FORMAT " failed", r->id);
	SPI_finish();
}

/*
 * Of msgs[i] with candidate[i], set stored[i] for those that have a raw row
 * or a dead letter already (in the caller's transaction).
 */
void
pp_rewind_find_stored(const PPMessage *msgs, int nmsgs, const char *const *topics,
					  const bool *candidate, bool *stored)
{
	static const char *const raw[] = { "pin_raw", "geo_raw", "user_raw" };

	spi_connect();
	for (int k = 0; k < PP_NKINDS; k++)
	{
		int32 *part = palloc(sizeof(int32) * Max(nmsgs, 1));
		int64 *off = palloc(sizeof(int64) * Max(nmsgs, 1));
		int32 *idx = palloc(sizeof(int32) * Max(nmsgs, 1));
		int32 *src = palloc(sizeof(int32) * Max(nmsgs, 1));
		int n = 0;
		Oid types[5] = { INT4ARRAYOID, INT8ARRAYOID, INT4ARRAYOID, TEXTOID, INT4ARRAYOID };
		Datum args[5];
		char *sql;

		for (int i = 0; i < nmsgs; i++)
		{
			if (!candidate[i] || msgs[i].kind != (PPKind) k)
				continue;
			part[n] = msgs[i].partition;
			off[n] = msgs[i].offset;
			idx[n] = i;
			src[n] = msgs[i].source;
			n++;
		}
		if (n == 0)
			continue;
		args[0] = int4_array(part, n);
		args[1] = int8_array(off, n);
		args[2] = int4_array(idx, n);
		args[3] = CStringGetTextDatum(topics[k]);
		args[4] = int4_array(src, n);
		sql = psprintf("SELECT u.i FROM unnest($1, $2, $3, $5) AS u(p, o, i, s) "
					   "WHERE EXISTS (SELECT FROM pinpipe.%s r WHERE r.kafka_source = u.s "
					   "AND r.kafka_partition = u.p AND r.kafka_offset = u.o) "
					   "OR EXISTS (SELECT FROM pinpipe.dead_letters d WHERE d.topic = $4 "
					   "AND d.source = u.s AND d.kafka_partition = u.p AND d.kafka_offset = u.o)",
					   raw[k]);
		if (SPI_execute_with_args(sql, 5, types, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "pinpipe: looking up rewound messages failed");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool isnull;
			int32 i = DatumGetInt32(
				SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

			stored[i] = true;
		}
	}
	SPI_finish();
}

/*
 * The offset after the last message of a partition stored (raw row or dead
 * letter) with a Kafka timestamp before t; 0 if there is none. Where a
 * rewind by time resumes when the broker finds no offset for the time: a
 * broker without the lookup by timestamp (the embedded broker: librdkafka's
 * mock cluster answers -1), or no message at or after t. Rows deleted after
 * t do not move it; rows deleted before t move it earlier (more is read
 * again, and skipped), never later.
 */
int64
pp_rewind_stored_before(PPKind kind, const char *topic, int32 partition, TimestampTz t)
{
	Oid types[3] = { INT4OID, TIMESTAMPTZOID, TEXTOID };
	Datum args[3];
	bool isnull;
	Datum d;
	int64 result = 0;

	args[0] = Int32GetDatum(partition);
	args[1] = TimestampTzGetDatum(t);
	args[2] = CStringGetTextDatum(topic);
	spi_connect();
	if (SPI_execute_with_args(
			psprintf("WITH c AS (SELECT max(source) s FROM pinpipe.offsets WHERE topic = $3) "
					 "SELECT max(o) + 1 FROM (SELECT max(kafka_offset) o FROM pinpipe.%s_raw "
					 "WHERE kafka_source = (SELECT s FROM c) AND kafka_partition = $1 "
					 "AND kafka_timestamp < $2 UNION ALL "
					 "SELECT max(kafka_offset) FROM pinpipe.dead_letters WHERE topic = $3 "
					 "AND source = (SELECT s FROM c) AND kafka_partition = $1 "
					 "AND kafka_timestamp < $2) m",
					 pp_kind_name(kind)),
			3, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pinpipe: reading the stored offsets by time failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		result = DatumGetInt64(d);
	SPI_finish();
	return result;
}

/* Count a batch's part of rewind id, in the batch's transaction. */
void
pp_rewind_progress(int64 id, int64 skipped, int64 stored, bool completed)
{
	Oid types[4] = { INT8OID, INT8OID, INT8OID, BOOLOID };
	Datum args[4];

	args[0] = Int64GetDatum(id);
	args[1] = Int64GetDatum(skipped);
	args[2] = Int64GetDatum(stored);
	args[3] = BoolGetDatum(completed);
	spi_connect();
	if (SPI_execute_with_args("UPDATE pinpipe.rewind_requests SET skipped = skipped + $2, "
							  "stored = stored + $3, "
							  "completed_at = CASE WHEN $4 THEN now() END WHERE id = $1",
							  4, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pinpipe: counting rewind request " INT64_FORMAT " failed", id);
	SPI_finish();
}

/*
 * Rebuild the clean rows of inds of kind from the latest raw row of each (as
 * pinpipe.reclean() does for all), in the caller's transaction.
 */
void
pp_reclean_inds(PPKind kind, const int32 *inds, int n)
{
	static const char *const key[] = { "\"index\"", "ind", "ind" };
	const char *name = pp_kind_name(kind);
	Oid type = INT4ARRAYOID;
	Datum arg;

	if (n == 0)
		return;
	arg = int4_array(inds, n);
	spi_connect();
	if (SPI_execute_with_args(psprintf("DELETE FROM pinpipe.%s_clean WHERE ind = ANY($1)", name), 1,
							  &type, &arg, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args(
			psprintf("INSERT INTO pinpipe.%s_clean SELECT c.* FROM "
					 "(SELECT DISTINCT ON (%s) r FROM pinpipe.%s_raw r WHERE %s = ANY($1) "
					 "ORDER BY %s, kafka_timestamp DESC NULLS LAST, kafka_partition DESC, "
					 "kafka_offset DESC) latest, LATERAL pinpipe.clean_%s_raw(latest.r) c",
					 name, key[kind], name, key[kind], key[kind], name),
			1, &type, &arg, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: rebuilding clean rows of %s failed", name);
	SPI_finish();
}

/* The kind of a topic <prefix>.pin, .geo or .user; false for another. */
static bool
kind_of_topic_name(const char *topic, PPKind *kind)
{
	const char *dot = strrchr(topic, '.');

	return dot != NULL && pp_kind_from_name(dot + 1, kind);
}

static void
put_outcome(ReturnSetInfo *rsinfo, const char *outcome, const char *error, int64 count)
{
	Datum values[3];
	bool nulls[3] = { false, error == NULL, false };

	values[0] = CStringGetTextDatum(outcome);
	values[1] = error != NULL ? CStringGetTextDatum(error) : (Datum) 0;
	values[2] = Int64GetDatum(count);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * pinpipe.replay_dead_letters(topic, error): the dead letters not replayed
 * yet, of topic (all if NULL) whose error is LIKE error (all if NULL), run
 * through the decoder and the sink in the caller's transaction. Returns
 * (outcome, error, messages): 'replayed' with a NULL error, and 'failed'
 * per error (the decoder's, or the sink's), oldest first.
 */
Datum
pinpipe_replay_dead_letters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid types[2] = { TEXTOID, TEXTOID };
	Datum args[2];
	char nulls[2];
	PPMessage *msgs;
	int n = 0;
	int unknown = 0;
	PPSinkResult result;
	char errbuf[PP_ERRBUF_SIZE];
	int64 replayed = 0;

	InitMaterializedSRF(fcinfo, 0);
	args[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	spi_connect();
	if (SPI_execute_with_args("SELECT topic, kafka_partition, kafka_offset, kafka_timestamp, "
							  "payload, source FROM pinpipe.dead_letters "
							  "WHERE replayed_at IS NULL AND ($1 IS NULL OR topic = $1) "
							  "AND ($2 IS NULL OR error LIKE $2) "
							  "ORDER BY received_at, topic, kafka_partition, kafka_offset "
							  "FOR UPDATE",
							  2, types, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pinpipe: reading the dead letters failed");
	msgs = SPI_palloc(sizeof(PPMessage) * Max(SPI_processed, 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple tup = SPI_tuptable->vals[r];
		TupleDesc desc = SPI_tuptable->tupdesc;
		PPMessage *m = &msgs[n];
		bool isnull;
		/* copies in the function's context (SPI_palloc): they outlive SPI_finish */
		char *topic = SPI_getvalue(tup, desc, 1);
		Datum d;

		memset(m, 0, sizeof(*m));
		if (!kind_of_topic_name(topic, &m->kind))
		{
			unknown++;
			continue;
		}
		m->partition = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		m->offset = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		m->source = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		m->has_timestamp = !isnull;
		m->timestamp = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull)
		{
			bytea *b = DatumGetByteaPP(d);
			char *copy;

			m->len = VARSIZE_ANY_EXHDR(b);
			copy = SPI_palloc(m->len + 1);
			memcpy(copy, VARDATA_ANY(b), m->len);
			copy[m->len] = '\0';
			m->payload = copy;
		}
		/* the topic, to mark the dead letter: kept in error until decoding */
		m->error = SPI_palloc(strlen(topic) + 1);
		strcpy(m->error, topic);
		n++;
	}
	SPI_finish();

	/* decode as the worker does, with the current pinpipe.max_message_bytes */
	{
		char **topics = palloc(sizeof(char *) * Max(n, 1));

		for (int i = 0; i < n; i++)
		{
			PPMessage *m = &msgs[i];

			topics[i] = m->error;
			m->error = NULL;
			m->decoded = pp_decode(m->kind, m->payload, m->len, (size_t) pinpipe_max_message_bytes,
								   &m->rec, errbuf, sizeof(errbuf));
			if (!m->decoded)
				m->error = pstrdup(errbuf);
		}
		pp_sink_write(msgs, n, NULL, NULL, 0, (PPWriteMethod) pinpipe_write_method, &result);

		/* mark the replayed dead letters; clean rows from the latest raw row of their inds */
		for (int k = 0; k < PP_NKINDS; k++)
		{
			const char **tk = palloc(sizeof(char *) * Max(n, 1));
			int32 *pk = palloc(sizeof(int32) * Max(n, 1));
			int64 *ok = palloc(sizeof(int64) * Max(n, 1));
			int32 *inds = palloc(sizeof(int32) * Max(n, 1));
			int32 *sk = palloc(sizeof(int32) * Max(n, 1));
			int nk = 0;
			Oid mtypes[4] = { TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT4ARRAYOID };
			Datum margs[4];

			for (int i = 0; i < n; i++)
			{
				if (msgs[i].kind != (PPKind) k || msgs[i].error != NULL)
					continue;
				tk[nk] = topics[i];
				pk[nk] = msgs[i].partition;
				ok[nk] = msgs[i].offset;
				sk[nk] = msgs[i].source;
				inds[nk] = (int32) msgs[i].rec.values[0].i;
				nk++;
			}
			if (nk == 0)
				continue;
			replayed += nk;
			margs[0] = text_array(tk, nk);
			margs[1] = int4_array(pk, nk);
			margs[2] = int8_array(ok, nk);
			margs[3] = int4_array(sk, nk);
			spi_connect();
			if (SPI_execute_with_args("UPDATE pinpipe.dead_letters d SET replayed_at = now() "
									  "FROM unnest($1, $2, $3, $4) AS u(t, p, o, s) "
									  "WHERE d.topic = u.t AND d.source = u.s "
									  "AND d.kafka_partition = u.p AND d.kafka_offset = u.o",
									  4, mtypes, margs, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "pinpipe: marking the replayed dead letters failed");
			SPI_finish();
			pp_reclean_inds((PPKind) k, inds, nk);
		}
	}

	/* outcomes: replayed, then each error of those that failed again, in order of first seen */
	put_outcome(rsinfo, "replayed", NULL, replayed);
	for (int i = 0; i < n; i++)
	{
		int64 count = 0;
		bool seen = false;

		if (msgs[i].error == NULL)
			continue;
		for (int j = 0; j < i && !seen; j++)
			seen = msgs[j].error != NULL && strcmp(msgs[j].error, msgs[i].error) == 0;
		if (seen)
			continue; /* counted with an earlier one */
		for (int j = i; j < n; j++)
			count += (msgs[j].error != NULL && strcmp(msgs[j].error, msgs[i].error) == 0);
		put_outcome(rsinfo, "failed", msgs[i].error, count);
	}
	if (unknown > 0)
		put_outcome(rsinfo, "skipped", "topic is not <prefix>.pin, .geo or .user", unknown);

	for (int i = 0; i < n; i++)
	{
		if (msgs[i].decoded)
			pp_record_free(&msgs[i].rec);
	}
	return (Datum) 0;
}
