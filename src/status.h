/*
 * status.h
 *		Shared memory through which the workers report their progress and
 *		receive pause/resume, and the SQL functions that read it.
 *
 * status.c is the only code that touches the shared area. The structure
 * (states, errors, topics and partitions) is guarded by an LWLock, taken
 * shared to read and exclusive to write; a spinlock guards only the pause
 * flag and the per-topic counters, and nothing but a few assignments runs
 * under it (as in pg_stat_statements).
 */
#ifndef PINPIPE_STATUS_H
#define PINPIPE_STATUS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "record.h"

#define PP_MAX_WORKERS    32
#define PP_MAX_PARTITIONS 1024 /* per topic and worker, for per-partition lag */
#define PP_ERROR_LEN      256
#define PP_STATE_LEN      128
#define PP_ALL_TOPICS     (-1) /* kind argument: the worker's three topics */

/* What an error is about, which decides what clears it (see pp_clear_error). */
typedef enum PPErrorClass
{
	PP_ERR_KAFKA = 1, /* the brokers or the topic's metadata */
	PP_ERR_BATCH = 2, /* consuming or storing messages; the database */
	PP_ERR_ANY = 3
} PPErrorClass;

/* Counters of one topic, under PPShared.mutex. */
typedef struct PPTopicCounters
{
	uint64 messages; /* consumed: rows + dead letters */
	uint64 dead_letters;
	uint64 batches;
	uint64 lost_messages; /* deleted by retention before being read */
	TimestampTz last_batch_at;
} PPTopicCounters;

/* One topic of a worker, under PPShared.lock. */
typedef struct PPTopicStatus
{
	char topic[256];
	char state[PP_STATE_LEN];
	TimestampTz state_since;
	char last_error[PP_ERROR_LEN];
	TimestampTz last_error_at;
	PPErrorClass error_class;
	char previous_error[PP_ERROR_LEN];
	TimestampTz previous_error_at;
	TimestampTz previous_error_cleared_at;
	int npartitions;
	int32 partition[PP_MAX_PARTITIONS];
	int64 next_offset[PP_MAX_PARTITIONS];
	int64 high_watermark[PP_MAX_PARTITIONS];
} PPTopicStatus;

typedef struct PPWorkerStatus
{
	pid_t pid;
	Latch *latch;
	char database[NAMEDATALEN]; /* the database it writes to ("" before its first start) */
	bool exit_state;            /* state says why the worker exited (kept over its restarts) */
	PPTopicStatus topics[PP_NKINDS];
	PPTopicCounters counters[PP_NKINDS]; /* under mutex */
} PPWorkerStatus;

typedef struct PPShared
{
	LWLock *lock;  /* the structure */
	slock_t mutex; /* paused, paused_changed_at and the counters */
	bool paused;
	TimestampTz paused_changed_at;
	ConditionVariable state_changed; /* broadcast when a worker's state changes */
	PPWorkerStatus workers[PP_MAX_WORKERS];
} PPShared;

extern PPShared *pp_shared;

extern void pp_status_init(void);
extern void pp_status_attach(void);
extern bool pp_is_paused(void);
extern void pp_status_worker_start(int worker, pid_t pid, Latch *latch, const char *database);
extern void pp_status_worker_exit(int worker, const char *why);
extern void pp_set_state(int worker, int kind, const char *state);
extern void pp_set_error(int worker, int kind, PPErrorClass cls, const char *fmt, ...)
	pg_attribute_printf(4, 5);
extern void pp_clear_error(int worker, int kind, int classes);
extern void pp_publish_topic(int worker, PPKind kind, const char *topic, int n,
							 const int32 *partition, const int64 *next_offset,
							 const int64 *high_watermark);
extern void pp_report_batch(int worker, const int64 *rows, const int64 *dead_letters);
extern void pp_report_lost_messages(int worker, PPKind kind, int64 lost);
extern void pp_notice_workers_database(void);

#endif /* PINPIPE_STATUS_H */
