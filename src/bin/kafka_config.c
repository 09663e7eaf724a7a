/*
 * kafka_config.c
 *		The command-line tools' librdkafka property pass-through (--kafka-config),
 *		shared by pinpipe-emulate and pinpipe-rest.
 */
#include "kafka_config.h"

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
 * Apply --kafka-config "k=v,k=v" to conf: items are separated by commas, "\,"
 * is a literal comma and "\\" a backslash; spaces around keys and values and
 * empty items are skipped.
 */
bool
pp_tool_apply_kafka_config(rd_kafka_conf_t *conf, const char *progname, const char *spec)
{
	size_t n = strlen(spec);
	char *item = malloc(n + 1);
	const char *p = spec;
	bool ok = true;

	if (item == NULL)
	{
		fprintf(stderr, "%s: out of memory\n", progname);
		return false;
	}
	while (ok && *p != '\0')
	{
		size_t len = 0;
		char *eq;
		char *key;
		char *value;

		while (*p != '\0' && *p != ',')
		{
			if (*p == '\\' && (p[1] == ',' || p[1] == '\\'))
				p++;
			item[len++] = *p++;
		}
		if (*p == ',')
			p++;
		item[len] = '\0';

		key = item;
		while (*key == ' ')
			key++;
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL || eq == key)
		{
			fprintf(stderr, "%s: --kafka-config: expected key=value, got \"%s\"\n", progname, key);
			ok = false;
			break;
		}
		*eq = '\0';
		for (char *e = eq - 1; e > key && *e == ' '; e--)
			*e = '\0';
		value = eq + 1;
		while (*value == ' ')
			value++;
		for (char *e = value + strlen(value); e > value && e[-1] == ' '; e--)
			e[-1] = '\0';
		ok = pp_tool_conf_set(conf, progname, key, value);
	}
	free(item);
	return ok;
}
