/*
 * status.h
 *		Shared memory through which the workers report their progress and
 *		receive pause/resume, and the SQL functions that read it.
 */
#ifndef PINPIPE_STATUS_H
#define PINPIPE_STATUS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "record.h"

#define PP_MAX_WORKERS    32
#define PP_MAX_PARTITIONS 1024 /* per topic and worker, for per-partition lag */
#define PP_ERROR_LEN      256

typedef struct PPTopicStatus
{
	char topic[256];
	uint64 messages; /* consumed: rows + dead letters */
	uint64 dead_letters;
	uint64 batches;
	uint64 lost_messages; /* deleted by retention before being read */
	TimestampTz last_batch_at;
	int npartitions;
	int32 partition[PP_MAX_PARTITIONS];
	int64 next_offset[PP_MAX_PARTITIONS];
	int64 high_watermark[PP_MAX_PARTITIONS];
} PPTopicStatus;

typedef struct PPWorkerStatus
{
	slock_t mutex;
	pid_t pid;
	Latch *latch;
	char state[64];
	char last_error[PP_ERROR_LEN];
	TimestampTz last_error_at;
	PPTopicStatus topics[PP_NKINDS];
} PPWorkerStatus;

typedef struct PPShared
{
	slock_t mutex;
	bool paused;
	PPWorkerStatus workers[PP_MAX_WORKERS];
} PPShared;

extern PPShared *pp_shared;

extern void pp_status_init(void);
extern void pp_status_attach(void);
extern bool pp_is_paused(void);
extern void pp_set_state(int worker, const char *state);
extern void pp_set_error(int worker, const char *fmt, ...) pg_attribute_printf(2, 3);
extern void pp_clear_error(int worker);
extern void pp_report_batch(int worker, const int64 *rows, const int64 *dead_letters);
extern void pp_report_lost_messages(int worker, PPKind kind, int64 lost);

#endif /* PINPIPE_STATUS_H */
