/*
 * pinpipe.h
 *		Settings and entry points shared across pinpipe's modules.
 */
#ifndef PINPIPE_H
#define PINPIPE_H

/* settings (pinpipe.c) */
extern int pinpipe_max_message_bytes;

extern void _PG_init(void);

#endif /* PINPIPE_H */
