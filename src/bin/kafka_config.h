/*
 * kafka_config.h
 *		The command-line tools' --kafka-config parsing (see kafka_config.c).
 */
#ifndef PINPIPE_KAFKA_CONFIG_H
#define PINPIPE_KAFKA_CONFIG_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

extern bool pp_tool_conf_set(rd_kafka_conf_t *conf, const char *progname, const char *key,
							 const char *value);
extern bool pp_tool_apply_kafka_config(rd_kafka_conf_t *conf, const char *progname,
									   const char *spec);

#endif
