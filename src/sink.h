/*
 * sink.h
 *		Writing one batch of messages, with its offsets, in one transaction.
 */
#ifndef PINPIPE_SINK_H
#define PINPIPE_SINK_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "decode.h"

/* One consumed message, and what became of it. */
typedef struct PPMessage
{
	PPKind kind;
	int32 partition;
	int64 offset;
	bool has_timestamp;
	TimestampTz timestamp;
	const char *payload;
	size_t len;

	/* set by pp_sink_write */
	bool decoded;
	PPRecord rec;
	char *error; /* why it is a dead letter, or NULL */
	bool built;
	Datum raw_row;
	Datum clean_row;
} PPMessage;

/* The next offset of one partition, stored with the batch. */
typedef struct PPOffset
{
	const char *topic;
	int32 partition;
	int64 next_offset;
} PPOffset;

/* What the batch became, per record kind. */
typedef struct PPSinkResult
{
	int64 rows[PP_NKINDS];
	int64 dead_letters[PP_NKINDS];
} PPSinkResult;

extern void pp_sink_write(PPMessage *msgs, int nmsgs, const char *const *topics,
						  const PPOffset *offsets, int noffsets, size_t max_message_bytes,
						  PPSinkResult *result);
extern void pp_sink_release(PPMessage *msgs, int nmsgs);
extern void pp_sink_reset_plans(void);
extern void pp_store_offsets(const PPOffset *offsets, int noffsets);

#endif /* PINPIPE_SINK_H */
