/*
 * kafka.h
 *		librdkafka setup: the consumer's configuration (defaults plus the
 *		pinpipe.kafka_config pass-through), its logs, and metadata queries.
 */
#ifndef PINPIPE_KAFKA_H
#define PINPIPE_KAFKA_H

#include "postgres.h"

#include "utils/guc.h"

#include <librdkafka/rdkafka.h>

/* Receives a Kafka error of worker's consumer (called in the caller's thread). */
typedef void (*PPKafkaErrorFn)(int worker, int err, const char *reason);

extern bool pp_check_kafka_config(char **newval, void **extra, GucSource source);
extern rd_kafka_t *pp_kafka_consumer(const char *brokers, const char *config, int worker,
									 PPKafkaErrorFn on_error);
extern void pp_kafka_destroy(rd_kafka_t *rk);
extern char *pp_kafka_headers_json(const rd_kafka_message_t *m);
extern void pp_kafka_poll_events(rd_kafka_t *rk);
extern int pp_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
									rd_kafka_resp_err_t *err);

#endif /* PINPIPE_KAFKA_H */
