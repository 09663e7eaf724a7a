/*
 * rest_decode.c
 *		Decoding of pinpipe-rest request bodies (see rest_decode.h).
 *
 * One pass over the body with a small recursive-descent JSON validator that
 * remembers where each record's value and key begin and end; nothing is
 * allocated per JSON node, so a body of 100k records costs its records array
 * and one arena.
 */
#include "rest_decode.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Scan
{
	const char *start;
	const char *p;
	const char *end;
	char *err;
	size_t errlen;
} Scan;

static bool scan_fail(Scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the first error, with the byte offset where it was found. */
static bool
scan_fail(Scan *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->err == NULL || s->errlen == 0 || s->err[0] != '\0')
		return false;
	va_start(ap, fmt);
	n = vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t) n < s->errlen)
		snprintf(s->err + n, s->errlen - (size_t) n, " (at byte %zu)", (size_t) (s->p - s->start));
	return false;
}

static void
skip_ws(Scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read 4 hex digits at p (p + 4 <= end checked by the caller); -1 if not hex. */
static long
hex4(const char *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++)
	{
		int h = hexval(p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F; /* no UTF-16 surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* up to U+10FFFF */
	}
	else
		return 0;
	if ((size_t) (end - p) < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
	{
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	}
	return n;
}

/*
 * Scan a string at s->p (a '"'): check its escapes and UTF-8, return its
 * content span (between the quotes) and whether it holds escapes.
 */
static bool
scan_string(Scan *s, const char **content, size_t *clen, bool *escaped)
{
	const char *begin = ++s->p;

	*escaped = false;
	while (s->p < s->end)
	{
		unsigned char c = (unsigned char) *s->p;

		if (c == '"')
		{
			*content = begin;
			*clen = (size_t) (s->p - begin);
			s->p++;
			return true;
		}
		if (c < 0x20)
			return scan_fail(s, "control character in a string");
		if (c == '\\')
		{
			*escaped = true;
			if (s->end - s->p < 2)
				break;
			switch (s->p[1])
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					s->p += 2;
					continue;
				case 'u':
				{
					long u;

					if (s->end - s->p < 6 || (u = hex4(s->p + 2)) < 0)
						return scan_fail(s, "invalid \\u escape");
					s->p += 6;
					if (u >= 0xDC00 && u <= 0xDFFF)
						return scan_fail(s, "lone low surrogate in a \\u escape");
					if (u >= 0xD800 && u <= 0xDBFF)
					{
						long lo;

						if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
							(lo = hex4(s->p + 2)) < 0xDC00 || lo > 0xDFFF)
							return scan_fail(s, "lone high surrogate in a \\u escape");
						s->p += 6;
					}
					continue;
				}
				default:
					return scan_fail(s, "invalid escape in a string");
			}
		}
		if (c >= 0x80)
		{
			size_t n = utf8_seq((const unsigned char *) s->p, (const unsigned char *) s->end);

			if (n == 0)
				return scan_fail(s, "invalid UTF-8 in a string");
			s->p += n;
			continue;
		}
		s->p++;
	}
	return scan_fail(s, "unterminated string");
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
scan_number(Scan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end || !is_digit(*s->p))
		return scan_fail(s, "invalid number");
	if (*s->p == '0')
		s->p++;
	else
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	if (s->p < s->end && *s->p == '.')
	{
		s->p++;
		if (s->p >= s->end || !is_digit(*s->p))
			return scan_fail(s, "invalid number");
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
	{
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || !is_digit(*s->p))
			return scan_fail(s, "invalid number");
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	return true;
}

static bool
scan_literal(Scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return scan_fail(s, "invalid JSON value");
	s->p += n;
	return true;
}

/* Check and skip one JSON value at s->p (whitespace before it skipped). */
static bool
scan_value(Scan *s, int depth)
{
	const char *c;
	size_t n;
	bool esc;

	skip_ws(s);
	if (s->p >= s->end)
		return scan_fail(s, "unexpected end of the body");
	switch (*s->p)
	{
		case '{':
		case '[':
		{
			char close = *s->p == '{' ? '}' : ']';
			bool object = close == '}';

			if (depth >= RD_MAX_DEPTH)
				return scan_fail(s, "nesting deeper than %d levels", RD_MAX_DEPTH);
			s->p++;
			skip_ws(s);
			if (s->p < s->end && *s->p == close)
			{
				s->p++;
				return true;
			}
			for (;;)
			{
				if (object)
				{
					skip_ws(s);
					if (s->p >= s->end || *s->p != '"')
						return scan_fail(s, "expected a member name");
					if (!scan_string(s, &c, &n, &esc))
						return false;
					skip_ws(s);
					if (s->p >= s->end || *s->p != ':')
						return scan_fail(s, "expected ':'");
					s->p++;
				}
				if (!scan_value(s, depth + 1))
					return false;
				skip_ws(s);
				if (s->p < s->end && *s->p == ',')
				{
					s->p++;
					continue;
				}
				if (s->p < s->end && *s->p == close)
				{
					s->p++;
					return true;
				}
				return scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
			}
		}
		case '"':
			return scan_string(s, &c, &n, &esc);
		case 't':
			return scan_literal(s, "true");
		case 'f':
			return scan_literal(s, "false");
		case 'n':
			return scan_literal(s, "null");
		default:
			return scan_number(s);
	}
}

bool
rd_json_valid(const char *text, size_t len, char *err, size_t errlen)
{
	Scan s = { text, text, text + len, err, errlen };

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (!scan_value(&s, 0))
		return false;
	skip_ws(&s);
	if (s.p != s.end)
		return scan_fail(&s, "trailing data after the JSON body");
	return true;
}

/* Write the decoded content of a checked string to out; return its length. */
static size_t
unescape(const char *c, size_t n, char *out)
{
	const char *end = c + n;
	char *o = out;

	while (c < end)
	{
		long u;

		if (*c != '\\')
		{
			*o++ = *c++;
			continue;
		}
		switch (c[1])
		{
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
				u = hex4(c + 2);
				if (u >= 0xD800 && u <= 0xDBFF)
				{
					u = 0x10000 + ((u - 0xD800) << 10) + (hex4(c + 8) - 0xDC00);
					c += 6;
				}
				if (u < 0x80)
					*o++ = (char) u;
				else if (u < 0x800)
				{
					*o++ = (char) (0xC0 | (u >> 6));
					*o++ = (char) (0x80 | (u & 0x3F));
				}
				else if (u < 0x10000)
				{
					*o++ = (char) (0xE0 | (u >> 12));
					*o++ = (char) (0x80 | ((u >> 6) & 0x3F));
					*o++ = (char) (0x80 | (u & 0x3F));
				}
				else
				{
					*o++ = (char) (0xF0 | (u >> 18));
					*o++ = (char) (0x80 | ((u >> 12) & 0x3F));
					*o++ = (char) (0x80 | ((u >> 6) & 0x3F));
					*o++ = (char) (0x80 | (u & 0x3F));
				}
				c += 6;
				continue;
			default: /* " \ / */
				*o++ = c[1];
				break;
		}
		c += 2;
	}
	return (size_t) (o - out);
}

long
rd_base64_decode(const char *src, size_t len, char *dst)
{
	unsigned int acc = 0;
	int bits = 0;
	long n = 0;
	size_t pad = 0;

	while (len > 0 && src[len - 1] == '=' && pad < 2)
	{
		len--;
		pad++;
	}
	if (pad > 0 && (len + pad) % 4 != 0)
		return -1;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) src[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (unsigned int) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			dst[n++] = (char) ((acc >> bits) & 0xFF);
		}
	}
	return n;
}

/* ---------------------------------------------------------------- envelope */

typedef struct Decoder
{
	Scan s;
	RdShape shape;
	RdRequest *req;
	const char *key_fields;
	size_t arena_cap;
} Decoder;

/* Take n bytes of the arena (never more than the body in total). */
static char *
arena_take(Decoder *d, size_t n)
{
	char *p;

	if (d->req->arena_used + n > d->arena_cap)
		return NULL;
	p = d->req->arena + d->req->arena_used;
	d->req->arena_used += n;
	return p;
}

/* Does the member name (content c, n bytes, escaped or not) equal name? */
static bool
name_is(const char *c, size_t n, bool escaped, const char *name)
{
	char buf[64];

	if (!escaped)
		return strlen(name) == n && memcmp(c, name, n) == 0;
	if (n >= sizeof(buf))
		return false;
	n = unescape(c, n, buf);
	return strlen(name) == n && memcmp(buf, name, n) == 0;
}

/* The content of a checked string, unescaped into the arena when needed. */
static bool
string_bytes(Decoder *d, const char *c, size_t n, bool escaped, const char **out, size_t *outlen)
{
	char *dst;

	if (!escaped)
	{
		*out = c;
		*outlen = n;
		return true;
	}
	if ((dst = arena_take(d, n)) == NULL)
		return scan_fail(&d->s, "internal error: arena exhausted");
	*outlen = unescape(c, n, dst);
	d->req->arena_used -= n - *outlen;
	*out = dst;
	return true;
}

/* Decode a base64 string (content c, n bytes) into the arena. */
static bool
base64_bytes(Decoder *d, const char *what, const char *c, size_t n, bool escaped, const char **out,
			 size_t *outlen)
{
	char *dst;
	long m;

	if ((dst = arena_take(d, n)) == NULL)
		return scan_fail(&d->s, "internal error: arena exhausted");
	if (escaped)
		n = unescape(c, n, dst);
	else
		memcpy(dst, c, n);
	m = rd_base64_decode(dst, n, dst);
	if (m < 0)
		return scan_fail(&d->s, "%s is not valid base64", what);
	d->req->arena_used -= n - (size_t) m;
	*out = dst;
	*outlen = (size_t) m;
	return true;
}

/*
 * Find the key of a JSON object value from the first of d->key_fields present
 * as a top-level member holding a string (its content) or a number (its text).
 */
static bool
key_from_fields(Decoder *d, RdRecord *r)
{
	const char *f = d->key_fields;

	while (*f != '\0')
	{
		const char *comma = strchr(f, ',');
		size_t flen = comma ? (size_t) (comma - f) : strlen(f);
		Scan s = { r->value, r->value + 1, r->value + r->value_len, NULL, 0 };

		skip_ws(&s);
		while (flen > 0 && s.p < s.end && *s.p == '"')
		{
			const char *c;
			const char *vstart;
			size_t n;
			bool esc;
			bool match;

			if (!scan_string(&s, &c, &n, &esc))
				break;
			match = !esc && n == flen && memcmp(c, f, n) == 0;
			skip_ws(&s);
			s.p++; /* ':' (the value was checked) */
			skip_ws(&s);
			vstart = s.p;
			if (match && *s.p == '"')
			{
				if (!scan_string(&s, &c, &n, &esc))
					break;
				return string_bytes(d, c, n, esc, &r->key, &r->key_len);
			}
			if (!scan_value(&s, 0))
				break;
			if (match && (*vstart == '-' || is_digit(*vstart)))
			{
				r->key = vstart;
				r->key_len = (size_t) (s.p - vstart);
				return true;
			}
			skip_ws(&s);
			if (s.p < s.end && *s.p == ',')
				s.p++;
			skip_ws(&s);
		}
		f += flen;
		if (*f == ',')
			f++;
	}
	return true;
}

/* Append an empty record. */
static RdRecord *
new_record(Decoder *d)
{
	RdRequest *req = d->req;

	if (req->nrecords == req->cap)
	{
		size_t cap = req->cap ? req->cap * 2 : 16;
		RdRecord *nr = realloc(req->records, cap * sizeof(RdRecord));

		if (nr == NULL)
			return NULL;
		req->records = nr;
		req->cap = cap;
	}
	memset(&req->records[req->nrecords], 0, sizeof(RdRecord));
	req->records[req->nrecords].partition = -1;
	return &req->records[req->nrecords++];
}

/* Decode one record object at d->s.p; index is its position, for messages. */
static bool
decode_record(Decoder *d, size_t index, int depth)
{
	Scan *s = &d->s;
	bool kinesis = d->shape == RD_KINESIS_RECORD || d->shape == RD_KINESIS_RECORDS;
	const char *vname = kinesis ? "Data" : "value";
	bool has_value = false;
	RdRecord *r;
	char what[64];

	if (kinesis && d->shape == RD_KINESIS_RECORD)
		snprintf(what, sizeof(what), "the body");
	else
		snprintf(what, sizeof(what), "%s[%zu]", kinesis ? "Records" : "records", index);

	skip_ws(s);
	if (s->p >= s->end || *s->p != '{')
	{
		if (s->p < s->end && !scan_value(s, depth))
			return false;
		return scan_fail(s, "%s must be an object", what);
	}
	if ((r = new_record(d)) == NULL)
		return scan_fail(s, "out of memory");
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}')
		s->p++;
	else
		for (;;)
		{
			const char *c;
			size_t n;
			bool esc;
			const char *vstart;

			skip_ws(s);
			if (s->p >= s->end || *s->p != '"')
				return scan_fail(s, "expected a member name");
			if (!scan_string(s, &c, &n, &esc))
				return false;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return scan_fail(s, "expected ':'");
			s->p++;
			skip_ws(s);
			vstart = s->p;
			if (name_is(c, n, esc, vname))
			{
				const char *vc;
				size_t vn;
				bool vesc;

				/* records point into the decoder's results: re-fetch r after realloc */
				r = &d->req->records[d->req->nrecords - 1];
				has_value = true;
				if (s->p < s->end && *s->p == '"' && (d->shape == RD_PRODUCE_BINARY || kinesis))
				{
					char label[80];

					if (!scan_string(s, &vc, &vn, &vesc))
						return false;
					snprintf(label, sizeof(label), "%s.%s", what, vname);
					if (!base64_bytes(d, label, vc, vn, vesc, &r->value, &r->value_len))
						return false;
				}
				else
				{
					if (!scan_value(s, depth + 1))
						return false;
					if (s->p - vstart == 4 && memcmp(vstart, "null", 4) == 0)
					{
						if (kinesis)
							return scan_fail(s, "%s.Data must not be null", what);
						r->value = NULL;
						r->value_len = 0;
					}
					else if (d->shape == RD_PRODUCE_BINARY)
						return scan_fail(s, "%s.value must be a base64 string or null", what);
					else
					{
						r->value = vstart;
						r->value_len = (size_t) (s->p - vstart);
					}
				}
			}
			else if (name_is(c, n, esc, kinesis ? "PartitionKey" : "key"))
			{
				r = &d->req->records[d->req->nrecords - 1];
				if (s->p < s->end && *s->p == '"' && (kinesis || d->shape == RD_PRODUCE_BINARY))
				{
					const char *kc;
					size_t kn;
					bool kesc;

					if (!scan_string(s, &kc, &kn, &kesc))
						return false;
					if (kinesis)
					{
						if (!string_bytes(d, kc, kn, kesc, &r->key, &r->key_len))
							return false;
					}
					else if (!base64_bytes(d, "key", kc, kn, kesc, &r->key, &r->key_len))
						return false;
				}
				else
				{
					if (!scan_value(s, depth + 1))
						return false;
					if (s->p - vstart == 4 && memcmp(vstart, "null", 4) == 0)
						r->key = NULL;
					else if (kinesis)
						return scan_fail(s, "%s.PartitionKey must be a string", what);
					else if (d->shape == RD_PRODUCE_BINARY)
						return scan_fail(s, "%s.key must be a base64 string or null", what);
					else
					{
						r->key = vstart;
						r->key_len = (size_t) (s->p - vstart);
					}
				}
			}
			else if (!kinesis && name_is(c, n, esc, "partition"))
			{
				long long v = 0;

				r = &d->req->records[d->req->nrecords - 1];
				if (!scan_value(s, depth + 1))
					return false;
				if (s->p - vstart == 4 && memcmp(vstart, "null", 4) == 0)
					r->partition = -1;
				else
				{
					for (const char *q = vstart; q < s->p; q++)
					{
						if (!is_digit(*q) || v > INT32_MAX)
						{
							v = -1;
							break;
						}
						v = v * 10 + (*q - '0');
					}
					if (v < 0 || v > INT32_MAX)
						return scan_fail(s, "%s.partition must be an integer from 0 to %d", what,
										 INT32_MAX);
					r->partition = (int32_t) v;
				}
			}
			else if (!scan_value(s, depth + 1))
				return false;

			skip_ws(s);
			if (s->p < s->end && *s->p == ',')
			{
				s->p++;
				continue;
			}
			if (s->p < s->end && *s->p == '}')
			{
				s->p++;
				break;
			}
			return scan_fail(s, "expected ',' or '}'");
		}
	r = &d->req->records[d->req->nrecords - 1];
	if (!has_value)
		return scan_fail(s, "%s has no \"%s\"", what, vname);
	if (r->key == NULL && d->key_fields != NULL && r->value != NULL && r->value_len > 0 &&
		r->value[0] == '{' && r->value >= s->start && r->value < s->end)
		return key_from_fields(d, r);
	return true;
}

/* Decode the array of records at d->s.p, named name. */
static bool
decode_records(Decoder *d, const char *name, int depth)
{
	Scan *s = &d->s;
	size_t i = 0;

	skip_ws(s);
	if (s->p >= s->end || *s->p != '[')
		return scan_fail(s, "\"%s\" must be an array", name);
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']')
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		if (!decode_record(d, i++, depth + 1))
			return false;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',')
		{
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']')
		{
			s->p++;
			return true;
		}
		return scan_fail(s, "expected ',' or ']' in \"%s\"", name);
	}
}

bool
rd_decode(RdShape shape, const char *body, size_t len, const char *key_fields, RdRequest *req,
		  char *err, size_t errlen)
{
	Decoder d;
	const char *list = shape == RD_KINESIS_RECORDS ? "Records" : "records";
	bool found = false;

	memset(req, 0, sizeof(*req));
	memset(&d, 0, sizeof(d));
	d.s.start = d.s.p = body;
	d.s.end = body + len;
	d.s.err = err;
	d.s.errlen = errlen;
	d.shape = shape;
	d.req = req;
	d.key_fields = (key_fields != NULL && key_fields[0] != '\0') ? key_fields : NULL;
	d.arena_cap = len;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	req->arena = malloc(len + 1);
	if (req->arena == NULL)
		return scan_fail(&d.s, "out of memory");

	if (len == 0)
		return scan_fail(&d.s, "the body is empty");
	skip_ws(&d.s);
	if (shape == RD_KINESIS_RECORD)
	{
		if (!decode_record(&d, 0, 0))
			return false;
	}
	else
	{
		if (d.s.p >= d.s.end || *d.s.p != '{')
		{
			if (!scan_value(&d.s, 0))
				return false;
			return scan_fail(&d.s, "the body must be an object with a \"%s\" array", list);
		}
		d.s.p++;
		skip_ws(&d.s);
		if (d.s.p < d.s.end && *d.s.p == '}')
			d.s.p++;
		else
			for (;;)
			{
				const char *c;
				size_t n;
				bool esc;

				skip_ws(&d.s);
				if (d.s.p >= d.s.end || *d.s.p != '"')
					return scan_fail(&d.s, "expected a member name");
				if (!scan_string(&d.s, &c, &n, &esc))
					return false;
				skip_ws(&d.s);
				if (d.s.p >= d.s.end || *d.s.p != ':')
					return scan_fail(&d.s, "expected ':'");
				d.s.p++;
				if (name_is(c, n, esc, list))
				{
					if (found)
						return scan_fail(&d.s, "\"%s\" appears twice", list);
					found = true;
					if (!decode_records(&d, list, 1))
						return false;
				}
				else if (!scan_value(&d.s, 1))
					return false;
				skip_ws(&d.s);
				if (d.s.p < d.s.end && *d.s.p == ',')
				{
					d.s.p++;
					continue;
				}
				if (d.s.p < d.s.end && *d.s.p == '}')
				{
					d.s.p++;
					break;
				}
				return scan_fail(&d.s, "expected ',' or '}'");
			}
		if (!found)
			return scan_fail(&d.s, "the body has no \"%s\" array", list);
	}
	skip_ws(&d.s);
	if (d.s.p != d.s.end)
		return scan_fail(&d.s, "trailing data after the JSON body");
	return true;
}

void
rd_request_free(RdRequest *req)
{
	free(req->records);
	free(req->arena);
	memset(req, 0, sizeof(*req));
}
