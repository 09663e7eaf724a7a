/*
 * kafka_conf.h
 *		The librdkafka pass-through settings ("key=value,key=value"), parsed the
 *		same way by the worker (pinpipe.kafka_config) and the tools
 *		(--kafka-config).
 *
 * Items are separated by commas; "\," is a literal comma and "\\" a
 * backslash. Spaces and tabs around keys and values, and empty items, are
 * skipped. Plain C without PostgreSQL's headers, so that the tools link it.
 */
#ifndef PINPIPE_KAFKA_CONF_H
#define PINPIPE_KAFKA_CONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

/*
 * Apply list to conf, item by item. Returns 0, or -1 with a sentence in err
 * naming the item at fault (never the value of a secret: a password, a key,
 * a token).
 */
extern int pp_kafka_conf_apply(rd_kafka_conf_t *conf, const char *list, char *err, size_t errlen);

#endif /* PINPIPE_KAFKA_CONF_H */
