/*
 * kafka_conf.c
 *		The librdkafka pass-through settings parser (see kafka_conf.h), one for
 *		the worker and the tools.
 */
#include "kafka_conf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True for keys whose values are secrets: they never appear in messages. */
static bool
is_secret_key(const char *key)
{
	return strstr(key, "password") != NULL || strstr(key, "secret") != NULL ||
		   strstr(key, "jaas") != NULL || strstr(key, "token") != NULL ||
		   strstr(key, ".pem") != NULL || strstr(key, "key") != NULL;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Strip the blanks around s in place; returns its first non-blank character. */
static char *
trim(char *s)
{
	char *end;

	while (is_blank(*s))
		s++;
	for (end = s + strlen(s); end > s && is_blank(end[-1]); end--)
		end[-1] = '\0';
	return s;
}

/* Set one item "key=value" (already unescaped) on conf. */
static int
apply_item(rd_kafka_conf_t *conf, char *item, char *err, size_t errlen)
{
	char *eq = strchr(item, '=');
	char *key;
	char *value;
	char errstr[256];

	if (eq == NULL)
	{
		snprintf(err, errlen, "Each item must have the form key=value.");
		return -1;
	}
	*eq = '\0';
	key = trim(item);
	value = trim(eq + 1);
	if (*key == '\0')
	{
		snprintf(err, errlen, "Each item must have the form key=value.");
		return -1;
	}
	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		if (is_secret_key(key))
			snprintf(err, errlen, "librdkafka refused \"%s\" (its value is not shown).", key);
		else
			snprintf(err, errlen, "librdkafka refused \"%s\": %s", key, errstr);
		return -1;
	}
	return 0;
}

int
pp_kafka_conf_apply(rd_kafka_conf_t *conf, const char *list, char *err, size_t errlen)
{
	char *item;
	const char *p = list;
	int rc = 0;

	if (list == NULL)
		return 0;
	item = malloc(strlen(list) + 1);
	if (item == NULL)
	{
		snprintf(err, errlen, "Out of memory.");
		return -1;
	}
	while (rc == 0)
	{
		size_t len = 0;

		while (*p != '\0' && *p != ',')
		{
			if (*p == '\\' && (p[1] == ',' || p[1] == '\\'))
				p++;
			item[len++] = *p++;
		}
		item[len] = '\0';
		if (*trim(item) != '\0')
			rc = apply_item(conf, item, err, errlen);
		if (*p == '\0')
			break;
		p++;
	}
	free(item);
	return rc;
}
