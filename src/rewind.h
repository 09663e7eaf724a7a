/*
 * rewind.h
 *		Rewinds (pinpipe.rewind(): requests in pinpipe.rewind_requests that
 *		the worker applies at a batch boundary) and the replay of dead
 *		letters (pinpipe.replay_dead_letters()).
 */
#ifndef PINPIPE_REWIND_H
#define PINPIPE_REWIND_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "message.h"

/* One row of pinpipe.rewind_requests, as the worker reads it. */
typedef struct PPRewind
{
	int64 id;
	PPKind kind;
	int32 partition;
	bool by_time;
	int64 to_offset;     /* requested offset (not by_time) */
	TimestampTz to_time; /* requested time (by_time) */
	int64 from_offset;   /* applied: messages below it are checked before being stored */
} PPRewind;

extern bool pp_rewind_supported(void);
extern int pp_rewind_fetch(const char *const *topics, bool pending, PPRewind **out);
extern void pp_rewind_apply(const char *topic, const PPRewind *r, int64 from_offset,
							int64 resumed_offset);
extern void pp_rewind_find_stored(const PPMessage *msgs, int nmsgs, const char *const *topics,
								  const bool *candidate, bool *stored);
extern int64 pp_rewind_stored_before(PPKind kind, const char *topic, int32 partition,
									 TimestampTz t);
extern void pp_rewind_progress(int64 id, int64 skipped, int64 stored, bool completed);
extern void pp_reclean_inds(PPKind kind, const int32 *inds, int n);

#endif /* PINPIPE_REWIND_H */
