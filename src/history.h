/*
 * history.h
 *		The worker's per-minute ingest history (pinpipe.ingest_history).
 */
#ifndef PINPIPE_HISTORY_H
#define PINPIPE_HISTORY_H

#include "postgres.h"

#include "decode.h"

/* pinpipe.history_retention, in minutes (0: no history kept) */
extern int pinpipe_history_retention;

extern void pp_history_define_settings(void);
extern void pp_history_count(int worker, const int64 *rows, const int64 *dead_letters);
extern void pp_history_flush(int worker);

#endif /* PINPIPE_HISTORY_H */
