/*
 * decode.c
 *		JSON message to raw record, with jansson (see decode.h).
 */
#include "decode.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing malloc'd buffer for the extra keys' JSON text. */
typedef struct Buf
{
	char *data;
	size_t len;
	size_t cap;
	bool failed;
} Buf;

static void
buf_append(Buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t cap = b->cap ? b->cap : 256;
		char *data;

		while (b->len + n + 1 > cap)
			cap *= 2;
		data = realloc(b->data, cap);
		if (data == NULL)
		{
			b->failed = true;
			return;
		}
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_puts(Buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static void
buf_json_string(Buf *b, const char *s, size_t len)
{
	const char *run = s;

	buf_puts(b, "\"");
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_append(b, run, (size_t) (s + i - run));
		if (c == '"')
			buf_puts(b, "\\\"");
		else if (c == '\\')
			buf_puts(b, "\\\\");
		else
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_puts(b, esc);
		}
		run = s + i + 1;
	}
	buf_append(b, run, (size_t) (s + len - run));
	buf_puts(b, "\"");
}

/* The shortest decimal that reads back as the same double. */
static void
buf_json_real(Buf *b, double v)
{
	char text[40];

	for (int precision = 1; precision <= 17; precision++)
	{
		snprintf(text, sizeof(text), "%.*g", precision, v);
		if (strtod(text, NULL) == v)
			break;
	}
	buf_puts(b, text);
}

static void
buf_json_value(Buf *b, json_t *v)
{
	char text[32];
	size_t i;
	const char *key;
	json_t *item;

	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			buf_puts(b, "{");
			i = 0;
			json_object_foreach(v, key, item)
			{
				if (i++ > 0)
					buf_puts(b, ", ");
				buf_json_string(b, key, strlen(key));
				buf_puts(b, ": ");
				buf_json_value(b, item);
			}
			buf_puts(b, "}");
			break;
		case JSON_ARRAY:
			buf_puts(b, "[");
			json_array_foreach(v, i, item)
			{
				if (i > 0)
					buf_puts(b, ", ");
				buf_json_value(b, item);
			}
			buf_puts(b, "]");
			break;
		case JSON_STRING:
			buf_json_string(b, json_string_value(v), json_string_length(v));
			break;
		case JSON_INTEGER:
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			buf_puts(b, text);
			break;
		case JSON_REAL:
			buf_json_real(b, json_real_value(v));
			break;
		case JSON_TRUE:
			buf_puts(b, "true");
			break;
		case JSON_FALSE:
			buf_puts(b, "false");
			break;
		case JSON_NULL:
			buf_puts(b, "null");
			break;
	}
}

static const char *
json_type_name(json_t *v)
{
	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			return "an object";
		case JSON_ARRAY:
			return "an array";
		case JSON_STRING:
			return "a string";
		case JSON_INTEGER:
			return "an integer";
		case JSON_REAL:
			return "a real number";
		case JSON_TRUE:
		case JSON_FALSE:
			return "a boolean";
		case JSON_NULL:
			return "null";
	}
	return "unknown";
}

static const char *
type_wanted(PPType type)
{
	switch (type)
	{
		case PP_T_TEXT:
			return "a string";
		case PP_T_INT4:
			return "an integer";
		case PP_T_FLOAT8:
			return "a number";
	}
	return "unknown";
}

/* Length of the valid UTF-8 character at p, or 0 when there is none. */
static int
utf8_char_length(const unsigned char *p)
{
	uint32_t cp;
	int n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	cp = p[0] & (0x7f >> n);
	for (int i = 1; i < n; i++)
	{
		if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		(n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Replace each byte that does not start a valid UTF-8 character with '?'.
 * The error is stored as text; jansson's context ("near '...'") can end in
 * half a character, and so can a message cut at errlen.
 */
static void
make_valid_utf8(char *s)
{
	unsigned char *p = (unsigned char *) s;

	while (*p != '\0')
	{
		int n = utf8_char_length(p);

		if (n == 0)
		{
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

static bool fail(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool
fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	if (errlen > 0)
		make_valid_utf8(errbuf);
	return false;
}

/* Store one known key's value in v, or explain why it cannot be. */
static bool
decode_value(const PPField *field, const char *key, json_t *item, PPValue *v, char *errbuf,
			 size_t errlen)
{
	memset(v, 0, sizeof(*v));
	if (json_is_null(item))
	{
		if (field->key)
			return fail(errbuf, errlen, "join key \"%s\" is null", key);
		v->isnull = true;
		return true;
	}
	switch (field->type)
	{
		case PP_T_TEXT:
			if (!json_is_string(item))
				break;
			v->s.ptr = json_string_value(item);
			v->s.len = json_string_length(item);
			return true;
		case PP_T_INT4:
			if (!json_is_integer(item))
				break;
			v->i = json_integer_value(item);
			if (v->i < INT32_MIN || v->i > INT32_MAX)
				return fail(errbuf, errlen,
							"value %" JSON_INTEGER_FORMAT " of key \"%s\" is out of range for "
							"type integer",
							json_integer_value(item), key);
			return true;
		case PP_T_FLOAT8:
			if (!json_is_number(item))
				break;
			v->f = json_number_value(item);
			return true;
	}
	return fail(errbuf, errlen, "key \"%s\" is %s, expected %s", key, json_type_name(item),
				type_wanted(field->type));
}

/*
 * Decode payload as a record of the given kind. On success rec holds the
 * values (call pp_record_free after use); on failure errbuf says why and rec
 * needs no freeing.
 */
bool
pp_decode(PPKind kind, const char *payload, size_t len, size_t max_len, PPRecord *rec, char *errbuf,
		  size_t errlen)
{
	const PPField *fields = pp_fields(kind);
	int nfields = pp_nfields(kind);
	const char *seen_as[PP_MAX_FIELDS] = { 0 };
	json_error_t jerr;
	json_t *root;
	json_t *item;
	const char *key;
	Buf extra = { 0 };
	size_t nextra = 0;

	memset(rec, 0, sizeof(*rec));
	rec->kind = kind;
	/* librdkafka gives a null value (a tombstone) as NULL, an empty one as len 0 */
	if (payload == NULL)
		return fail(errbuf, errlen, "message value is null (a Kafka tombstone)");
	if (len == 0)
		return fail(errbuf, errlen, "empty message");
	if (len > max_len)
		return fail(errbuf, errlen, "message of %zu bytes exceeds the limit of %zu bytes", len,
					max_len);

	root = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return fail(errbuf, errlen, "invalid JSON at line %d, column %d: %s", jerr.line,
					jerr.column, jerr.text);
	if (!json_is_object(root))
	{
		fail(errbuf, errlen, "message is %s, expected a JSON object", json_type_name(root));
		json_decref(root);
		return false;
	}

	for (int f = 0; f < nfields; f++)
		rec->values[f].isnull = true;

	json_object_foreach(root, key, item)
	{
		int f;

		for (f = 0; f < nfields; f++)
		{
			if (strcmp(key, fields[f].name) == 0 ||
				(fields[f].alias != NULL && strcmp(key, fields[f].alias) == 0))
				break;
		}
		if (f == nfields)
		{
			buf_puts(&extra, nextra++ == 0 ? "{" : ", ");
			buf_json_string(&extra, key, strlen(key));
			buf_puts(&extra, ": ");
			buf_json_value(&extra, item);
			continue;
		}
		if (seen_as[f] != NULL)
		{
			fail(errbuf, errlen, "keys \"%s\" and \"%s\" both present", seen_as[f], key);
			goto error;
		}
		seen_as[f] = key;
		if (!decode_value(&fields[f], key, item, &rec->values[f], errbuf, errlen))
			goto error;
	}

	for (int f = 0; f < nfields; f++)
	{
		if (fields[f].key && seen_as[f] == NULL)
		{
			if (fields[f].alias != NULL)
				fail(errbuf, errlen, "missing join key \"%s\" (or \"%s\")", fields[f].name,
					 fields[f].alias);
			else
				fail(errbuf, errlen, "missing join key \"%s\"", fields[f].name);
			goto error;
		}
	}

	if (nextra > 0)
	{
		buf_puts(&extra, "}");
		if (extra.failed)
		{
			fail(errbuf, errlen, "out of memory keeping the message's extra keys");
			goto error;
		}
		rec->extra = extra.data;
	}
	rec->root = root;
	return true;

error:
	free(extra.data);
	json_decref(root);
	memset(rec, 0, sizeof(*rec));
	return false;
}

void
pp_record_free(PPRecord *rec)
{
	free(rec->extra);
	if (rec->root != NULL)
		json_decref((json_t *) rec->root);
	rec->extra = NULL;
	rec->root = NULL;
}

/* Let jansson allocate from the caller's arena (the worker's per-batch memory). */
void
pp_decode_set_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *))
{
	json_set_alloc_funcs(alloc_fn, free_fn);
}
