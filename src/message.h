/*
 * message.h
 *		A consumed Kafka message on its way down the data path: read by the
 *		worker, decoded (decode.c), its rows formed (convert.c), written with
 *		the partitions' next offsets (sink.c), or made a dead letter.
 */
#ifndef PINPIPE_MESSAGE_H
#define PINPIPE_MESSAGE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "decode.h"

/* One consumed message, and what became of it. */
typedef struct PPMessage
{
	PPKind kind;
	int32 source; /* pinpipe.sources id of the topic's incarnation */
	int32 partition;
	int64 offset;
	bool has_timestamp;
	TimestampTz timestamp;
	const char *payload;
	size_t len;
	const char *key; /* NULL when the message has none */
	size_t keylen;
	char *headers; /* the headers as a JSON array text, NULL when none */

	/* set by the worker's decode step */
	bool decoded;
	PPRecord rec;
	char *error; /* why it is a dead letter (a stable reason), or NULL (the sink may set it too) */
	char *error_detail; /* the variable part of the error (positions, values), or NULL */

	/* set by pp_form_rows (convert.c) */
	bool built;
	Datum raw_row;
	Datum clean_row;
} PPMessage;

/* The next offset of one partition, stored with the batch. */
typedef struct PPOffset
{
	const char *topic;
	int32 source;
	int32 partition;
	int64 next_offset;
} PPOffset;

#endif /* PINPIPE_MESSAGE_H */
