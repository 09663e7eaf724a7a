/*
 * kafka_config.c
 *		The command-line tools' librdkafka settings (--kafka-config and their
 *		own defaults), shared by pinpipe-emulate and pinpipe-rest, on top of
 *		the worker's parser (src/kafka_conf.c).
 */
#include "kafka_config.h"
#include "kafka_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set one property, saying on stderr why it was refused. */
bool
pp_tool_conf_set(rd_kafka_conf_t *conf, const char *progname, const char *key, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "%s: cannot set Kafka property \"%s\": %s\n", progname, key, errstr);
		return false;
	}
	return true;
}

/*
 * Apply --kafka-config "k=v,k=v" to conf with the worker's parser
 * (src/kafka_conf.c), so that a list means the same to every tool and to
 * pinpipe.kafka_config; say on stderr why it was refused.
 */
bool
pp_tool_apply_kafka_config(rd_kafka_conf_t *conf, const char *progname, const char *spec)
{
	char err[512];

	if (pp_kafka_conf_apply(conf, spec, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "%s: --kafka-config: %s\n", progname, err);
		return false;
	}
	return true;
}
