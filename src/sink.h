/*
 * sink.h
 *		Writing one decoded batch of messages, with its offsets, in one
 *		transaction; and the offsets alone, or an offset gap.
 */
#ifndef PINPIPE_SINK_H
#define PINPIPE_SINK_H

#include "postgres.h"

#include "message.h"
#include "pinpipe.h"

/* What the batch became, per record kind. */
typedef struct PPSinkResult
{
	int64 rows[PP_NKINDS];
	int64 dead_letters[PP_NKINDS];
} PPSinkResult;

/* A partition resumed at another offset than the stored one. */
typedef struct PPOffsetGap
{
	const char *topic;
	int32 source; /* the source the partition resumes in */
	int32 partition;
	int64 expected_offset; /* the stored next offset */
	int64 resumed_offset;
	int64 lost_messages; /* deleted before being read; 0 if the offset was beyond the end */
	const char *reason;
} PPOffsetGap;

extern void pp_sink_write(PPMessage *msgs, int nmsgs, const char *const *topics,
						  const PPOffset *offsets, int noffsets, PPWriteMethod write_method,
						  PPSinkResult *result);
extern void pp_sink_reset_plans(void);
extern void pp_store_offsets(const PPOffset *offsets, int noffsets);
extern void pp_store_offset_gap(const PPOffsetGap *gap);

#endif /* PINPIPE_SINK_H */
