/*
 * pinpipe.h
 *		Settings and entry points shared across pinpipe's modules, and the
 *		PostgreSQL version pinpipe is built for.
 */
#ifndef PINPIPE_H
#define PINPIPE_H

/*
 * pinpipe is built and tested on PostgreSQL 15 only: its executor calls
 * (heap_write.c), shared memory request hook (status.c) and SQL (BEGIN
 * ATOMIC) are those of 15, with no guards for other versions. The module's
 * entry point (pinpipe.c) and the version-specific files include this
 * header, so another major version fails here, at compile time, rather than
 * misbehaving at run time (postgres.h, included first, defines the version).
 */
#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 160000
#error "pinpipe supports PostgreSQL 15 only: build it with make PG_CONFIG=<15's pg_config>"
#endif

/* pinpipe.start_offset values */
typedef enum PPStartOffset
{
	PP_START_EARLIEST,
	PP_START_LATEST
} PPStartOffset;

/* pinpipe.write_method values */
typedef enum PPWriteMethod
{
	PP_WRITE_AUTO,
	PP_WRITE_INSERT
} PPWriteMethod;

/* settings (pinpipe.c); see the README's settings table */
extern char *pinpipe_brokers;
extern char *pinpipe_topic_prefix;
extern char *pinpipe_database;
extern int pinpipe_batch_size;
extern int pinpipe_batch_timeout;
extern int pinpipe_start_offset;
extern char *pinpipe_kafka_config;
extern int pinpipe_max_message_bytes;
extern int pinpipe_workers;
extern char *pinpipe_partitions;
extern int pinpipe_write_method;

extern bool pp_partition_selected(const char *list, int partition);

extern void _PG_init(void);

#endif /* PINPIPE_H */
