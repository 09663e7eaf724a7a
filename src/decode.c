/*
 * decode.c
 *		JSON message to raw record, with jansson (see decode.h).
 */
#include "decode.h"

#include <jansson.h>
#include <math.h>
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
 * Decode payload as a record of the given kind with jansson. On success rec
 * holds the values (call pp_record_free after use); on failure errbuf says
 * why and rec needs no freeing.
 */
bool
pp_decode_jansson(PPKind kind, const char *payload, size_t len, size_t max_len, PPRecord *rec,
				  char *errbuf, size_t errlen)
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

/* Where jansson, and the fast path's string copies, get their memory. */
static void *(*decode_alloc)(size_t) = malloc;
static void (*decode_free)(void *) = free;

static inline const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Four hex digits at p (bounded by end) into *cp. */
static bool
hex4(const char *p, const char *end, uint32_t *cp)
{
	uint32_t v = 0;

	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++)
	{
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t) (c - 'A' + 10);
		else
			return false;
	}
	*cp = v;
	return true;
}

static char *
put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80)
		*o++ = (char) cp;
	else if (cp < 0x800)
	{
		*o++ = (char) (0xc0 | (cp >> 6));
		*o++ = (char) (0x80 | (cp & 0x3f));
	}
	else if (cp < 0x10000)
	{
		*o++ = (char) (0xe0 | (cp >> 12));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char) (0x80 | (cp & 0x3f));
	}
	else
	{
		*o++ = (char) (0xf0 | (cp >> 18));
		*o++ = (char) (0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char) (0x80 | (cp & 0x3f));
	}
	return o;
}

/* Length of the valid UTF-8 character at p, within end, or 0 when there is none. */
static int
utf8_char_length_bounded(const unsigned char *p, const unsigned char *end)
{
	unsigned char tmp[4] = { 0 };
	size_t avail = (size_t) (end - p);

	if (avail >= 4)
		return utf8_char_length(p);
	memcpy(tmp, p, avail); /* the NUL after the copy stops utf8_char_length */
	return utf8_char_length(tmp);
}

/*
 * The string whose opening quote is just before p: its value goes to *out
 * (NUL-terminated; *out advances past the NUL); returns what follows the
 * closing quote, or NULL for what the fast path leaves to jansson (a control
 * character, an unknown or NUL escape, a lone surrogate, invalid UTF-8, no
 * closing quote).
 */
static const char *
scan_string(const char *p, const char *end, char **out)
{
	char *o = *out;

	while (p < end)
	{
		unsigned char c = (unsigned char) *p;
		const char *run = p;
		int n;

		/* a run of plain ASCII, copied at once */
		while (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && ++p < end)
			c = (unsigned char) *p;
		memcpy(o, run, (size_t) (p - run));
		o += p - run;
		if (p >= end)
			return NULL;
		if (c == '"')
		{
			*o++ = '\0';
			*out = o;
			return p + 1;
		}
		if (c < 0x20)
			return NULL;
		if (c == '\\')
		{
			uint32_t cp;
			uint32_t lo;

			if (++p >= end)
				return NULL;
			switch (*p)
			{
				case '"':
				case '\\':
				case '/':
					*o++ = *p;
					break;
				case 'b':
					*o++ = '\b';
					break;
				case 'f':
					*o++ = '\f';
					break;
				case 'n':
					*o++ = '\n';
					break;
				case 'r':
					*o++ = '\r';
					break;
				case 't':
					*o++ = '\t';
					break;
				case 'u':
					if (!hex4(p + 1, end, &cp) || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
						return NULL;
					p += 4;
					if (cp >= 0xd800 && cp <= 0xdbff)
					{
						if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, end, &lo) ||
							lo < 0xdc00 || lo > 0xdfff)
							return NULL;
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						p += 6;
					}
					o = put_utf8(o, cp);
					break;
				default:
					return NULL;
			}
			p++;
			continue;
		}
		n = utf8_char_length_bounded((const unsigned char *) p, (const unsigned char *) end);
		if (n == 0)
			return NULL;
		memcpy(o, p, (size_t) n);
		o += n;
		p += n;
	}
	return NULL;
}

/*
 * The number at p, as jansson reads it: an integer (no fraction, no
 * exponent) into *i, else a real into *f. NULL for what the fast path
 * leaves to jansson: not a JSON number, an integer of more than 18 digits
 * (jansson's range check decides), a real that overflows.
 */
static const char *
scan_number(const char *p, const char *end, bool *is_int, int64_t *i, double *f)
{
	const char *start = p;
	const char *digits;
	bool neg = false;
	bool real = false;
	char text[64];
	size_t ntext;

	if (p < end && *p == '-')
	{
		neg = true;
		p++;
	}
	digits = p;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
	{
		if (++p < end && *p >= '0' && *p <= '9')
			return NULL;
	}
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.')
	{
		real = true;
		if (++p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		real = true;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	*is_int = !real;
	if (!real)
	{
		int64_t v = 0;

		if (p - digits > 18)
			return NULL;
		for (const char *d = digits; d < p; d++)
			v = v * 10 + (*d - '0');
		*i = neg ? -v : v;
		return p;
	}
	ntext = (size_t) (p - start);
	if (ntext >= sizeof(text))
		return NULL;
	memcpy(text, start, ntext);
	text[ntext] = '\0';
	*f = strtod(text, NULL);
	if (isinf(*f))
		return NULL;
	return p;
}

/*
 * The fast path: a flat object of known keys (no escapes in them), each
 * field once, each value a string, a number of the field's type or null
 * (not for the join key), and nothing after it. On success, rec holds the
 * same values pp_decode_jansson would give (the fuzzer checks); false means
 * jansson decides, and rec holds nothing.
 */
static bool
decode_fast(PPKind kind, const char *payload, size_t len, PPRecord *rec)
{
	const PPField *fields = pp_fields(kind);
	int nfields = pp_nfields(kind);
	const char *p = payload;
	const char *end = payload + len;
	uint32_t seen = 0;
	char *strings;
	char *o;

	p = skip_space(p, end);
	if (p >= end || *p != '{')
		return false;
	/* every string in the copy is shorter than its quoted text in payload */
	strings = decode_alloc(len + 1);
	if (strings == NULL)
		return false;
	o = strings;
	for (int f = 0; f < nfields; f++)
		rec->values[f].isnull = true;
	p = skip_space(p + 1, end);
	for (;;)
	{
		const char *key;
		size_t keylen;
		int f;
		PPValue *v;

		if (p >= end || *p != '"')
			goto fallback;
		key = ++p;
		while (p < end && *p != '"' && *p != '\\')
			p++;
		if (p >= end || *p != '"')
			goto fallback;
		keylen = (size_t) (p - key);
		for (f = 0; f < nfields; f++)
		{
			if ((strlen(fields[f].name) == keylen && memcmp(key, fields[f].name, keylen) == 0) ||
				(fields[f].alias != NULL && strlen(fields[f].alias) == keylen &&
				 memcmp(key, fields[f].alias, keylen) == 0))
				break;
		}
		if (f == nfields || (seen & (1U << f)) != 0)
			goto fallback;
		seen |= 1U << f;
		p = skip_space(p + 1, end);
		if (p >= end || *p != ':')
			goto fallback;
		p = skip_space(p + 1, end);
		if (p >= end)
			goto fallback;
		v = &rec->values[f];
		if (*p == '"')
		{
			if (fields[f].type != PP_T_TEXT)
				goto fallback;
			v->s.ptr = o;
			p = scan_string(p + 1, end, &o);
			if (p == NULL)
				goto fallback;
			v->s.len = (size_t) (o - v->s.ptr) - 1;
			v->isnull = false;
		}
		else if (*p == 'n')
		{
			if (fields[f].key || end - p < 4 || memcmp(p, "null", 4) != 0)
				goto fallback;
			p += 4;
		}
		else
		{
			bool is_int;

			p = scan_number(p, end, &is_int, &v->i, &v->f);
			if (p == NULL || fields[f].type == PP_T_TEXT)
				goto fallback;
			if (fields[f].type == PP_T_INT4)
			{
				if (!is_int || v->i < INT32_MIN || v->i > INT32_MAX)
					goto fallback;
			}
			else if (is_int)
			{
				v->f = (double) v->i;
				v->i = 0;
			}
			if (fields[f].type == PP_T_INT4)
				v->f = 0;
			v->isnull = false;
		}
		p = skip_space(p, end);
		if (p < end && *p == ',')
		{
			p = skip_space(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			break;
		goto fallback;
	}
	if (skip_space(p + 1, end) != end)
		goto fallback;
	for (int f = 0; f < nfields; f++)
	{
		if (fields[f].key && (seen & (1U << f)) == 0)
			goto fallback;
	}
	rec->strings = strings;
	return true;

fallback:
	decode_free(strings);
	memset(rec->values, 0, sizeof(rec->values));
	return false;
}

/*
 * Decode payload as a record of the given kind: the fast path when it can,
 * else jansson. On success rec holds the values (call pp_record_free after
 * use); on failure errbuf says why and rec needs no freeing.
 */
bool
pp_decode(PPKind kind, const char *payload, size_t len, size_t max_len, PPRecord *rec, char *errbuf,
		  size_t errlen)
{
	memset(rec, 0, sizeof(*rec));
	rec->kind = kind;
	if (payload != NULL && len > 0 && len <= max_len && decode_fast(kind, payload, len, rec))
		return true;
	return pp_decode_jansson(kind, payload, len, max_len, rec, errbuf, errlen);
}

void
pp_record_free(PPRecord *rec)
{
	free(rec->extra);
	if (rec->root != NULL)
		json_decref((json_t *) rec->root);
	if (rec->strings != NULL)
		decode_free(rec->strings);
	rec->extra = NULL;
	rec->root = NULL;
	rec->strings = NULL;
}

/*
 * Let jansson, and the fast path, allocate from the caller's arena (the
 * worker's per-batch memory).
 */
void
pp_decode_set_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *))
{
	decode_alloc = alloc_fn;
	decode_free = free_fn;
	json_set_alloc_funcs(alloc_fn, free_fn);
}

/*
 * The stable part of a decoder error, one that groups dead letters (no
 * positions, sizes or values): NULL when the error has no variable part and
 * is its own reason. The whole error is then the detail.
 */
const char *
pp_decode_error_reason(const char *error)
{
	static const struct
	{
		const char *prefix;
		const char *reason;
	} variable[] = {
		{ "invalid JSON", "invalid JSON" },
		{ "message of ", "message exceeds pinpipe.max_message_bytes" },
		{ "value ", "integer value out of range" },
	};

	for (size_t i = 0; i < sizeof(variable) / sizeof(variable[0]); i++)
	{
		if (strncmp(error, variable[i].prefix, strlen(variable[i].prefix)) == 0)
			return variable[i].reason;
	}
	return NULL;
}
