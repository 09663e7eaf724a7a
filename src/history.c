/*
 * history.c
 *		The worker's per-minute ingest history: counters kept in memory per
 *		topic and minute, written to pinpipe.ingest_history once a minute (not
 *		per batch), in a transaction of the worker's own, and rows older than
 *		pinpipe.history_retention deleted then (and at least hourly when idle).
 *
 * The worker calls pp_history_count() after each committed batch and
 * pp_history_flush() on every turn of its loop; a flush writes only the
 * minutes that have ended. A failed write is logged and its counts dropped:
 * the history is for charts, and must never stop ingestion. With an
 * extension not yet updated to a version that has the table, nothing is
 * written.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "history.h"
#include "status.h"

/* minutes kept in memory when writes fail; older ones are dropped */
#define MAX_PENDING 64

typedef struct Bucket
{
	TimestampTz minute; /* 0: empty */
	char topic[256];
	int64 messages;
	int64 dead_letters;
	int64 batches;
	int64 max_lag; /* -1: unknown */
} Bucket;

int pinpipe_history_retention = 7 * 24 * 60;

/* old rows are deleted with every write, and at least hourly when idle */
#define CLEANUP_INTERVAL_MS (3600 * 1000)

static Bucket open_bucket[PP_NKINDS];
static TimestampTz last_cleanup = 0;
static Bucket pending[MAX_PENDING];
static int npending = 0;

void
pp_history_define_settings(void)
{
	DefineCustomIntVariable("pinpipe.history_retention",
							"How long the worker keeps the per-minute ingest history.",
							"Rows of pinpipe.ingest_history older than this are deleted by the "
							"worker; 0 keeps no history.",
							&pinpipe_history_retention, 7 * 24 * 60, 0, INT_MAX / 2, PGC_SIGHUP,
							GUC_UNIT_MIN, NULL, NULL, NULL);
}

static TimestampTz
minute_of(TimestampTz t)
{
	/* TimestampTz counts from 2000-01-01 00:00 UTC, a minute boundary */
	return t - ((t % USECS_PER_MINUTE) + USECS_PER_MINUTE) % USECS_PER_MINUTE;
}

static void
close_bucket(Bucket *b)
{
	if (b->minute == 0)
		return;
	if (npending == MAX_PENDING)
	{
		memmove(&pending[0], &pending[1], sizeof(Bucket) * (MAX_PENDING - 1));
		npending--;
	}
	pending[npending++] = *b;
	b->minute = 0;
}

/* The consumer lag of this worker's partitions of a topic (its own slot). */
static int64
topic_lag(int worker, int kind)
{
	PPTopicStatus *t = &pp_shared->workers[worker].topics[kind];
	int64 lag = -1;

	/* only this worker writes its slot: no lock needed to read it */
	for (int p = 0; p < t->npartitions; p++)
	{
		if (t->high_watermark[p] < 0 || t->next_offset[p] < 0)
			continue;
		lag = Max(lag, 0) + Max(t->high_watermark[p] - t->next_offset[p], 0);
	}
	return lag;
}

/*
 * Count a committed batch: rows and dead letters per record kind, under the
 * topic names the worker published in its status slot.
 */
void
pp_history_count(int worker, const int64 *rows, const int64 *dead_letters)
{
	TimestampTz minute = minute_of(GetCurrentTimestamp());

	if (pinpipe_history_retention == 0)
		return;
	for (int k = 0; k < PP_NKINDS; k++)
	{
		Bucket *b = &open_bucket[k];

		if (rows[k] + dead_letters[k] == 0)
			continue;
		if (b->minute != minute)
		{
			close_bucket(b);
			memset(b, 0, sizeof(*b));
			b->minute = minute;
			b->max_lag = -1;
			/* only this worker writes its slot: no lock needed to read it */
			strlcpy(b->topic, pp_shared->workers[worker].topics[k].topic, sizeof(b->topic));
		}
		b->messages += rows[k] + dead_letters[k];
		b->dead_letters += dead_letters[k];
		b->batches++;
		b->max_lag = Max(b->max_lag, topic_lag(worker, k));
	}
}

static void
write_pending(int worker)
{
	Oid types[7] = { INT4OID, TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID };

	if (!OidIsValid(get_relname_relid("ingest_history", get_namespace_oid("pinpipe", true))))
		return; /* the extension is at a version without history */

	for (int i = 0; i < npending; i++)
	{
		Bucket *b = &pending[i];
		Datum values[7];
		char nulls[7] = "       ";

		values[0] = Int32GetDatum(worker);
		values[1] = CStringGetTextDatum(b->topic);
		values[2] = TimestampTzGetDatum(b->minute);
		values[3] = Int64GetDatum(b->messages);
		values[4] = Int64GetDatum(b->dead_letters);
		values[5] = Int64GetDatum(b->batches);
		values[6] = Int64GetDatum(b->max_lag);
		if (b->max_lag < 0)
			nulls[6] = 'n';
		/* a restart within a minute writes the same key again: add up */
		if (SPI_execute_with_args(
				"INSERT INTO pinpipe.ingest_history AS h "
				"(worker, topic, minute, messages, dead_letters, batches, max_lag) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7) "
				"ON CONFLICT (worker, topic, minute) DO UPDATE SET "
				"messages = h.messages + excluded.messages, "
				"dead_letters = h.dead_letters + excluded.dead_letters, "
				"batches = h.batches + excluded.batches, "
				"max_lag = greatest(h.max_lag, excluded.max_lag)",
				7, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write pinpipe.ingest_history");
	}
	{
		Oid rtypes[1] = { INT4OID };
		Datum rvalues[1] = { Int32GetDatum(pinpipe_history_retention) };

		if (SPI_execute_with_args("DELETE FROM pinpipe.ingest_history "
								  "WHERE minute < now() - make_interval(mins => $1)",
								  1, rtypes, rvalues, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete old rows of pinpipe.ingest_history");
	}
}

/* Write the minutes that have ended, in a transaction of their own. */
void
pp_history_flush(int worker)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz minute = minute_of(now);
	MemoryContext cxt = CurrentMemoryContext;

	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (open_bucket[k].minute != 0 && open_bucket[k].minute < minute)
			close_bucket(&open_bucket[k]);
	}
	if (npending == 0 && (pinpipe_history_retention == 0 ||
						  !TimestampDifferenceExceeds(last_cleanup, now, CLEANUP_INTERVAL_MS)))
		return;
	last_cleanup = now;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pinpipe: writing the ingest history");
		SPI_connect();
		write_pending(worker);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		RESUME_INTERRUPTS();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	npending = 0;
	MemoryContextSwitchTo(cxt);
}
