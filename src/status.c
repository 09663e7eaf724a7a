/*
 * status.c
 *		Shared progress of the workers, pinpipe.worker_status() and friends,
 *		and pause/resume.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "pinpipe.h"
#include "status.h"

PG_FUNCTION_INFO_V1(worker_status);
PG_FUNCTION_INFO_V1(partition_status);
PG_FUNCTION_INFO_V1(pinpipe_pause);
PG_FUNCTION_INFO_V1(pinpipe_resume);

PPShared *pp_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* How long pinpipe.pause() waits by default for the workers to stop. */
#define PAUSE_WAIT_MS 30000

static void
pp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PPShared)));
	RequestNamedLWLockTranche("pinpipe", 1);
}

static void
pp_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	pp_status_attach();
}

/* Reserve the shared memory (from _PG_init, when preloaded). */
void
pp_status_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pp_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pp_shmem_startup;
}

/* Find or create the shared area. */
void
pp_status_attach(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pp_shared = ShmemInitStruct("pinpipe", sizeof(PPShared), &found);
	if (!found)
	{
		memset(pp_shared, 0, sizeof(PPShared));
		pp_shared->lock = &(GetNamedLWLockTranche("pinpipe"))->lock;
		SpinLockInit(&pp_shared->mutex);
		ConditionVariableInit(&pp_shared->state_changed);
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
pp_is_paused(void)
{
	bool paused;

	SpinLockAcquire(&pp_shared->mutex);
	paused = pp_shared->paused;
	SpinLockRelease(&pp_shared->mutex);
	return paused;
}

/* Set one topic's state (lock held exclusively); true if it changed. */
static bool
set_topic_state(PPTopicStatus *t, const char *state, TimestampTz now)
{
	if (strncmp(t->state, state, sizeof(t->state) - 1) == 0 && t->state_since != 0)
		return false;
	strlcpy(t->state, state, sizeof(t->state));
	t->state_since = now;
	return true;
}

/*
 * A worker process starts: it writes to database. A state that says why the
 * previous process exited (e.g. its database does not exist) stays, with its
 * time, until the new process says otherwise.
 */
void
pp_status_worker_start(int worker, pid_t pid, Latch *latch, const char *database)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	w->pid = pid;
	w->latch = latch;
	strlcpy(w->database, database, sizeof(w->database));
	if (!w->exit_state)
		for (int k = 0; k < PP_NKINDS; k++)
			set_topic_state(&w->topics[k], "starting", now);
	LWLockRelease(pp_shared->lock);
	ConditionVariableBroadcast(&pp_shared->state_changed);
}

/*
 * A worker process exits; why, when given, becomes its state and the last
 * error of its topics until it starts again and says otherwise.
 */
void
pp_status_worker_exit(int worker, const char *why)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	w->pid = 0;
	w->latch = NULL;
	w->exit_state = why != NULL;
	for (int k = 0; k < PP_NKINDS; k++)
	{
		PPTopicStatus *t = &w->topics[k];

		set_topic_state(t, why != NULL ? why : "stopped", now);
		if (why != NULL)
		{
			strlcpy(t->last_error, why, sizeof(t->last_error));
			t->last_error_at = now;
			t->error_class = PP_ERR_BATCH;
		}
	}
	LWLockRelease(pp_shared->lock);
	ConditionVariableBroadcast(&pp_shared->state_changed);
}

/* Set the state of one topic of a worker, or of all (PP_ALL_TOPICS). */
void
pp_set_state(int worker, int kind, const char *state)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	TimestampTz now = GetCurrentTimestamp();
	bool changed = false;

	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	w->exit_state = false;
	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (kind == PP_ALL_TOPICS || kind == k)
			changed |= set_topic_state(&w->topics[k], state, now);
	}
	LWLockRelease(pp_shared->lock);
	if (changed)
		ConditionVariableBroadcast(&pp_shared->state_changed);
}

/* Set the last error of one topic of a worker, or of all (PP_ALL_TOPICS). */
void
pp_set_error(int worker, int kind, PPErrorClass cls, const char *fmt, ...)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	char buf[PP_ERROR_LEN];
	TimestampTz now = GetCurrentTimestamp();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		PPTopicStatus *t = &w->topics[k];

		if (kind != PP_ALL_TOPICS && kind != k)
			continue;
		strlcpy(t->last_error, buf, sizeof(t->last_error));
		t->last_error_at = now;
		t->error_class = cls;
	}
	LWLockRelease(pp_shared->lock);
}

/*
 * The cause of a topic's last error (of one of classes) is gone: keep it as
 * the previous error, with its time, and show none.
 */
void
pp_clear_error(int worker, int kind, int classes)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	bool any = false;

	/* most calls find nothing to clear: look first under the shared lock */
	LWLockAcquire(pp_shared->lock, LW_SHARED);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		PPTopicStatus *t = &w->topics[k];

		if ((kind == PP_ALL_TOPICS || kind == k) && t->last_error[0] != '\0' &&
			(t->error_class & classes) != 0)
			any = true;
	}
	LWLockRelease(pp_shared->lock);
	if (!any)
		return;

	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		PPTopicStatus *t = &w->topics[k];

		if ((kind != PP_ALL_TOPICS && kind != k) || t->last_error[0] == '\0' ||
			(t->error_class & classes) == 0)
			continue;
		strlcpy(t->previous_error, t->last_error, sizeof(t->previous_error));
		t->previous_error_at = t->last_error_at;
		t->previous_error_cleared_at = GetCurrentTimestamp();
		t->last_error[0] = '\0';
		t->last_error_at = 0;
	}
	LWLockRelease(pp_shared->lock);
}

/*
 * Publish a topic's name and the worker's partitions of it, with their next
 * offsets and the broker's high watermarks (read by the caller, before).
 */
void
pp_publish_topic(int worker, PPKind kind, const char *topic, int n, const int32 *partition,
				 const int64 *next_offset, const int64 *high_watermark)
{
	PPTopicStatus *t = &pp_shared->workers[worker].topics[kind];

	n = Min(n, PP_MAX_PARTITIONS);
	LWLockAcquire(pp_shared->lock, LW_EXCLUSIVE);
	strlcpy(t->topic, topic, sizeof(t->topic));
	t->npartitions = n;
	memcpy(t->partition, partition, sizeof(int32) * n);
	memcpy(t->next_offset, next_offset, sizeof(int64) * n);
	memcpy(t->high_watermark, high_watermark, sizeof(int64) * n);
	LWLockRelease(pp_shared->lock);
}

/* Count a committed batch: its rows and dead letters per kind. */
void
pp_report_batch(int worker, const int64 *rows, const int64 *dead_letters)
{
	PPTopicCounters *c = pp_shared->workers[worker].counters;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&pp_shared->mutex);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (rows[k] + dead_letters[k] == 0)
			continue;
		c[k].messages += rows[k] + dead_letters[k];
		c[k].dead_letters += dead_letters[k];
		c[k].batches++;
		c[k].last_batch_at = now;
	}
	SpinLockRelease(&pp_shared->mutex);
}

/* Count messages of a kind deleted by retention before the worker read them. */
void
pp_report_lost_messages(int worker, PPKind kind, int64 lost)
{
	SpinLockAcquire(&pp_shared->mutex);
	pp_shared->workers[worker].counters[kind].lost_messages += lost;
	SpinLockRelease(&pp_shared->mutex);
}

static void
require_shared(void)
{
	if (pp_shared == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("pinpipe is not loaded by shared_preload_libraries"),
						errhint("Add pinpipe to shared_preload_libraries in postgresql.conf and "
								"restart the server.")));
}

/* Superusers and members of pinpipe_admin may steer the workers. */
static void
require_admin(const char *action)
{
	Oid admin = get_role_oid("pinpipe_admin", true);

	if (superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s the pinpipe workers", action),
			 errdetail("Only superusers and members of pinpipe_admin may %s the workers.", action),
			 errhint("Grant the admin role: GRANT pinpipe_admin TO %s;",
					 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

/*
 * The workers write to pinpipe.database: steering them from another
 * database, whose pinpipe tables they never fill, is a mistake.
 */
static void
require_worker_database(const char *action)
{
	const char *here = get_database_name(MyDatabaseId);

	if (here != NULL && strcmp(here, pinpipe_database) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the pinpipe workers write to database \"%s\", not to \"%s\"", pinpipe_database,
					here ? here : "?"),
			 errdetail("The extension in this database has no worker: its tables stay empty."),
			 errhint("Connect to database \"%s\" to %s the workers, or set pinpipe.database to "
					 "\"%s\" and restart the server to consume into this one.",
					 pinpipe_database, action, here ? here : "?")));
}

/*
 * Say which database the workers write to (after CREATE EXTENSION pinpipe),
 * plainly when it is not the current one.
 */
void
pp_notice_workers_database(void)
{
	const char *here = get_database_name(MyDatabaseId);

	if (pp_shared == NULL)
		ereport(NOTICE,
				(errmsg("no pinpipe worker runs: pinpipe is not in shared_preload_libraries"),
				 errhint("Add pinpipe to shared_preload_libraries and restart the server; its "
						 "workers then write to database \"%s\" (pinpipe.database).",
						 pinpipe_database)));
	else if (here != NULL && strcmp(here, pinpipe_database) == 0)
		ereport(NOTICE, (errmsg("the pinpipe workers write to this database, \"%s\"", here)));
	else
		ereport(NOTICE,
				(errmsg("the pinpipe workers write to database \"%s\", not to this database \"%s\"",
						pinpipe_database, here ? here : "?"),
				 errdetail("The pinpipe tables of this database stay empty, pinpipe.status here "
						   "shows the workers of database \"%s\", and pause() and resume() are "
						   "refused here.",
						   pinpipe_database),
				 errhint("Use the extension in database \"%s\", or set pinpipe.database = '%s' "
						 "and restart the server.",
						 pinpipe_database, here ? here : "?")));
}

static void
set_paused(bool paused)
{
	Latch *latches[PP_MAX_WORKERS];
	int n = 0;

	SpinLockAcquire(&pp_shared->mutex);
	if (pp_shared->paused != paused)
		pp_shared->paused_changed_at = GetCurrentTimestamp();
	pp_shared->paused = paused;
	SpinLockRelease(&pp_shared->mutex);

	LWLockAcquire(pp_shared->lock, LW_SHARED);
	for (int i = 0; i < PP_MAX_WORKERS; i++)
	{
		PPWorkerStatus *w = &pp_shared->workers[i];

		if (w->pid != 0 && w->latch != NULL)
			latches[n++] = w->latch;
	}
	LWLockRelease(pp_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/* Running workers whose state is not (paused ? "paused" : something else). */
static int
workers_not_yet(bool paused, int *first)
{
	int count = 0;

	LWLockAcquire(pp_shared->lock, LW_SHARED);
	for (int i = 0; i < pinpipe_workers; i++)
	{
		PPWorkerStatus *w = &pp_shared->workers[i];

		if (w->pid != 0 && (strcmp(w->topics[0].state, "paused") == 0) != paused)
		{
			if (count++ == 0)
				*first = i;
		}
	}
	LWLockRelease(pp_shared->lock);
	return count;
}

/*
 * Wait (at most wait_ms) until every running worker has taken the pause
 * into account; a WARNING says which has not.
 */
static void
wait_for_workers(bool paused, long wait_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	int first = 0;
	int pending;

	ConditionVariablePrepareToSleep(&pp_shared->state_changed);
	while ((pending = workers_not_yet(paused, &first)) > 0)
	{
		long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (remaining <= 0)
			break;
		(void) ConditionVariableTimedSleep(&pp_shared->state_changed, Min(remaining, 1000),
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (pending > 0)
		ereport(WARNING,
				(errmsg("%d pinpipe worker%s not %s yet after %ld ms", pending,
						pending == 1 ? " has" : "s have", paused ? "paused" : "resumed", wait_ms),
				 errdetail("Worker %d is still busy (with a batch, or waiting for a lock or a "
						   "broker); it %s at the end of its current step.",
						   first, paused ? "pauses" : "resumes"),
				 errhint("See pinpipe.status for its state.")));
}

/*
 * pinpipe.pause(timeout interval): stop consuming until resume() (or a server
 * restart); returns once every running worker has stopped, or after timeout.
 */
Datum
pinpipe_pause(PG_FUNCTION_ARGS)
{
	Interval *timeout = PG_ARGISNULL(0) ? NULL : PG_GETARG_INTERVAL_P(0);
	long wait_ms = PAUSE_WAIT_MS;

	require_admin("pause");
	require_shared();
	require_worker_database("pause");
	if (timeout != NULL)
	{
		double secs = timeout->time / (double) USECS_PER_SEC +
					  (timeout->day + timeout->month * (double) DAYS_PER_MONTH) * SECS_PER_DAY;

		wait_ms = (long) Min(Max(secs * 1000.0, 0.0), (double) INT_MAX);
	}
	set_paused(true);
	wait_for_workers(true, wait_ms);
	PG_RETURN_VOID();
}

Datum
pinpipe_resume(PG_FUNCTION_ARGS)
{
	require_admin("resume");
	require_shared();
	require_worker_database("resume");
	set_paused(false);
	PG_RETURN_VOID();
}

static TupleDesc
srf_setup(FunctionCallInfo fcinfo, Tuplestorestate **store)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc tupdesc;
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	*store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = *store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);
	return tupdesc;
}

/*
 * A consistent copy of one worker's status, and the pause flag (with when
 * it changed).
 */
static void
copy_worker(int i, PPWorkerStatus *copy, bool *paused, TimestampTz *paused_at)
{
	PPWorkerStatus *w = &pp_shared->workers[i];

	LWLockAcquire(pp_shared->lock, LW_SHARED);
	memcpy(copy, w, sizeof(PPWorkerStatus));
	LWLockRelease(pp_shared->lock);
	SpinLockAcquire(&pp_shared->mutex);
	memcpy(copy->counters, w->counters, sizeof(copy->counters));
	*paused = pp_shared->paused;
	*paused_at = pp_shared->paused_changed_at;
	SpinLockRelease(&pp_shared->mutex);
}

/*
 * The state to show for a topic of worker w, and since when: a stopped
 * worker's, and "pausing" or "resuming" between pause() or resume() and the
 * worker taking it into account.
 */
static const char *
shown_state(PPWorkerStatus *w, PPTopicStatus *t, bool paused, TimestampTz paused_at,
			TimestampTz *since)
{
	bool is_paused = strcmp(t->state, "paused") == 0;

	*since = t->state_since;
	if (w->pid == 0)
		return t->state[0] != '\0' ? t->state : "stopped";
	if (paused != is_paused)
	{
		*since = paused_at;
		return paused ? "pausing" : "resuming";
	}
	return t->state;
}

/*
 * worker_status(): one row per worker and topic (the pinpipe.status view).
 */
Datum
worker_status(PG_FUNCTION_ARGS)
{
	Tuplestorestate *store;
	TupleDesc tupdesc = srf_setup(fcinfo, &store);
	PPWorkerStatus *w = palloc(sizeof(PPWorkerStatus));

	if (pp_shared == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < pinpipe_workers; i++)
	{
		bool paused;
		TimestampTz paused_at;

		copy_worker(i, w, &paused, &paused_at);
		for (int k = 0; k < PP_NKINDS; k++)
		{
			PPTopicStatus *t = &w->topics[k];
			PPTopicCounters *c = &w->counters[k];
			Datum values[18];
			bool nulls[18];
			int64 lag = 0;
			bool lag_known = false;
			TimestampTz since;
			const char *state = shown_state(w, t, paused, paused_at, &since);

			memset(nulls, false, sizeof(nulls));
			for (int p = 0; p < t->npartitions; p++)
			{
				if (t->high_watermark[p] >= 0 && t->next_offset[p] >= 0)
				{
					lag += Max(t->high_watermark[p] - t->next_offset[p], 0);
					lag_known = true;
				}
			}
			values[0] = CStringGetTextDatum(pp_kind_name((PPKind) k));
			values[1] = CStringGetTextDatum(t->topic);
			nulls[1] = t->topic[0] == '\0';
			values[2] = Int32GetDatum(i);
			values[3] = CStringGetTextDatum(w->database[0] ? w->database : pinpipe_database);
			values[4] = Int32GetDatum(w->pid);
			nulls[4] = w->pid == 0;
			values[5] = CStringGetTextDatum(state);
			values[6] = TimestampTzGetDatum(since);
			nulls[6] = since == 0;
			values[7] = Int64GetDatum((int64) c->messages);
			values[8] = Int64GetDatum((int64) c->dead_letters);
			values[9] = Int64GetDatum((int64) c->batches);
			values[10] = TimestampTzGetDatum(c->last_batch_at);
			nulls[10] = c->last_batch_at == 0;
			values[11] = Int32GetDatum(t->npartitions);
			values[12] = Int64GetDatum(lag);
			nulls[12] = !lag_known;
			values[13] = Int64GetDatum((int64) c->lost_messages);
			values[14] = CStringGetTextDatum(t->last_error);
			nulls[14] = t->last_error[0] == '\0';
			values[15] = TimestampTzGetDatum(t->last_error_at);
			nulls[15] = nulls[14];
			values[16] = CStringGetTextDatum(t->previous_error);
			nulls[16] = t->previous_error[0] == '\0';
			values[17] = TimestampTzGetDatum(t->previous_error_at);
			nulls[17] = nulls[16];
			tuplestore_putvalues(store, tupdesc, values, nulls);
		}
	}
	PG_RETURN_VOID();
}

/* partition_status(): one row per consumed partition. */
Datum
partition_status(PG_FUNCTION_ARGS)
{
	Tuplestorestate *store;
	TupleDesc tupdesc = srf_setup(fcinfo, &store);
	PPWorkerStatus *w = palloc(sizeof(PPWorkerStatus));

	if (pp_shared == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < pinpipe_workers; i++)
	{
		bool paused;
		TimestampTz paused_at;

		copy_worker(i, w, &paused, &paused_at);
		for (int k = 0; k < PP_NKINDS; k++)
		{
			PPTopicStatus *t = &w->topics[k];

			for (int p = 0; p < t->npartitions; p++)
			{
				Datum values[7];
				bool nulls[7];

				memset(nulls, false, sizeof(nulls));
				values[0] = CStringGetTextDatum(t->topic);
				values[1] = Int32GetDatum(t->partition[p]);
				values[2] = Int32GetDatum(i);
				values[3] = CStringGetTextDatum(w->database[0] ? w->database : pinpipe_database);
				values[4] = Int64GetDatum(t->next_offset[p]);
				nulls[4] = t->next_offset[p] < 0;
				values[5] = Int64GetDatum(t->high_watermark[p]);
				nulls[5] = t->high_watermark[p] < 0;
				values[6] = Int64GetDatum(Max(t->high_watermark[p] - t->next_offset[p], 0));
				nulls[6] = nulls[4] || nulls[5];
				tuplestore_putvalues(store, tupdesc, values, nulls);
			}
		}
	}
	PG_RETURN_VOID();
}
