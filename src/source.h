/*
 * source.h
 *		The incarnations of the topics (pinpipe.sources): which one the
 *		worker consumes, and beginning a new one.
 *
 * A source is a topic on one cluster, from the first message the worker read
 * of it. Raw rows, dead letters and stored offsets name their source, so a
 * recreated topic, a new cluster or another prefix (whose offsets start again)
 * never collides with what was stored before.
 */
#ifndef PINPIPE_SOURCE_H
#define PINPIPE_SOURCE_H

#include "postgres.h"

/* Why a source began (pinpipe.sources.reason). */
typedef enum PPSourceReason
{
	PP_SOURCE_FIRST_USE,
	PP_SOURCE_RECREATED,
	PP_SOURCE_CLUSTER_CHANGED,
	PP_SOURCE_PREFIX_CHANGED
} PPSourceReason;

/* A topic's current source, as found or begun. */
typedef struct PPSource
{
	int32 id;
	char *cluster_id; /* NULL when not known */
	bool begun;       /* begun now */
	int32 previous;   /* the source it follows, 0 if none */
	PPSourceReason reason;
} PPSource;

extern bool pp_sources_exist(void);
extern const char *pp_source_reason_name(PPSourceReason reason);
extern void pp_source_resolve(const char *topic, const char *kind, const char *cluster,
							  PPSource *out);
extern void pp_source_begin(const char *topic, const char *cluster, PPSourceReason reason,
							int32 current, PPSource *out);

#endif /* PINPIPE_SOURCE_H */
