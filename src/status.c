/*
 * status.c
 *		Shared progress of the workers, pinpipe.worker_status() and friends,
 *		and pause/resume.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
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

static void
pp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PPShared)));
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
		SpinLockInit(&pp_shared->mutex);
		for (int i = 0; i < PP_MAX_WORKERS; i++)
			SpinLockInit(&pp_shared->workers[i].mutex);
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

void
pp_set_state(int worker, const char *state)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];

	SpinLockAcquire(&w->mutex);
	strlcpy(w->state, state, sizeof(w->state));
	SpinLockRelease(&w->mutex);
}

void
pp_set_error(int worker, const char *fmt, ...)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	char buf[PP_ERROR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	SpinLockAcquire(&w->mutex);
	strlcpy(w->last_error, buf, sizeof(w->last_error));
	w->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&w->mutex);
}

/* Forget the last error (it belonged to objects that are gone). */
void
pp_clear_error(int worker)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];

	SpinLockAcquire(&w->mutex);
	w->last_error[0] = '\0';
	w->last_error_at = 0;
	SpinLockRelease(&w->mutex);
}

/* Count a committed batch: its rows and dead letters per kind. */
void
pp_report_batch(int worker, const int64 *rows, const int64 *dead_letters)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&w->mutex);
	for (int k = 0; k < PP_NKINDS; k++)
	{
		PPTopicStatus *t = &w->topics[k];

		if (rows[k] + dead_letters[k] == 0)
			continue;
		t->messages += rows[k] + dead_letters[k];
		t->dead_letters += dead_letters[k];
		t->batches++;
		t->last_batch_at = now;
	}
	SpinLockRelease(&w->mutex);
}

/* Count messages of a kind deleted by retention before the worker read them. */
void
pp_report_lost_messages(int worker, PPKind kind, int64 lost)
{
	PPWorkerStatus *w = &pp_shared->workers[worker];

	SpinLockAcquire(&w->mutex);
	w->topics[kind].lost_messages += lost;
	SpinLockRelease(&w->mutex);
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

static void
set_paused(bool paused)
{
	SpinLockAcquire(&pp_shared->mutex);
	pp_shared->paused = paused;
	SpinLockRelease(&pp_shared->mutex);
	for (int i = 0; i < PP_MAX_WORKERS; i++)
	{
		PPWorkerStatus *w = &pp_shared->workers[i];
		Latch *latch;

		SpinLockAcquire(&w->mutex);
		latch = w->pid != 0 ? w->latch : NULL;
		SpinLockRelease(&w->mutex);
		if (latch)
			SetLatch(latch);
	}
}

/* pinpipe.pause(): stop consuming until resume() (or a server restart). */
Datum
pinpipe_pause(PG_FUNCTION_ARGS)
{
	require_admin("pause");
	require_shared();
	set_paused(true);
	PG_RETURN_VOID();
}

Datum
pinpipe_resume(PG_FUNCTION_ARGS)
{
	require_admin("resume");
	require_shared();
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

/* A consistent copy of one worker's status. */
static void
copy_worker(int i, PPWorkerStatus *copy)
{
	PPWorkerStatus *w = &pp_shared->workers[i];

	SpinLockAcquire(&w->mutex);
	memcpy(copy, w, sizeof(PPWorkerStatus));
	SpinLockRelease(&w->mutex);
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
		copy_worker(i, w);
		for (int k = 0; k < PP_NKINDS; k++)
		{
			PPTopicStatus *t = &w->topics[k];
			Datum values[14];
			bool nulls[14];
			int64 lag = 0;
			bool lag_known = false;

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
			values[3] = Int32GetDatum(w->pid);
			nulls[3] = w->pid == 0;
			values[4] = CStringGetTextDatum(w->pid == 0 ? "stopped" : w->state);
			values[5] = Int64GetDatum((int64) t->messages);
			values[6] = Int64GetDatum((int64) t->dead_letters);
			values[7] = Int64GetDatum((int64) t->batches);
			values[8] = TimestampTzGetDatum(t->last_batch_at);
			nulls[8] = t->last_batch_at == 0;
			values[9] = Int32GetDatum(t->npartitions);
			values[10] = Int64GetDatum(lag);
			nulls[10] = !lag_known;
			values[11] = Int64GetDatum((int64) t->lost_messages);
			values[12] = CStringGetTextDatum(w->last_error);
			nulls[12] = w->last_error[0] == '\0';
			values[13] = TimestampTzGetDatum(w->last_error_at);
			nulls[13] = w->last_error_at == 0;
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
		copy_worker(i, w);
		for (int k = 0; k < PP_NKINDS; k++)
		{
			PPTopicStatus *t = &w->topics[k];

			for (int p = 0; p < t->npartitions; p++)
			{
				Datum values[6];
				bool nulls[6];

				memset(nulls, false, sizeof(nulls));
				values[0] = CStringGetTextDatum(t->topic);
				values[1] = Int32GetDatum(t->partition[p]);
				values[2] = Int32GetDatum(i);
				values[3] = Int64GetDatum(t->next_offset[p]);
				nulls[3] = t->next_offset[p] < 0;
				values[4] = Int64GetDatum(t->high_watermark[p]);
				nulls[4] = t->high_watermark[p] < 0;
				values[5] = Int64GetDatum(Max(t->high_watermark[p] - t->next_offset[p], 0));
				nulls[5] = nulls[3] || nulls[4];
				tuplestore_putvalues(store, tupdesc, values, nulls);
			}
		}
	}
	PG_RETURN_VOID();
}
