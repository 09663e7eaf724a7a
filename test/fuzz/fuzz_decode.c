/*
 * fuzz_decode.c
 *		libFuzzer harness for the message decoder (src/decode.c) and the
 *		record cleaner (src/record.c).
 *
 * The first input byte picks the kind (byte % 3: pin, geo, user) and, when
 * its top bit is set, a small message limit (so the length check is reached);
 * the rest is the message. A decoded record must hold what the message said:
 * its join key, integers within int32, text that is valid UTF-8 without NUL,
 * and an extra that is a JSON object holding exactly the unknown keys with
 * equal values. The cleaned values must follow from the raw ones. A refused
 * message must leave a non-empty, NUL-terminated, valid UTF-8 error (the
 * worker stores it in a text column) and nothing to free. pp_record_free
 * must free everything: LeakSanitizer checks. pp_decode (which tries its
 * fast path first) must agree exactly with pp_decode_jansson. A violated
 * invariant calls abort().
 */
#include "decode.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PP_FUZZ_MAX_LEN 1048576

#define CHECK(cond, ...)                                                                           \
	do                                                                                             \
	{                                                                                              \
		if (!(cond))                                                                               \
		{                                                                                          \
			fprintf(stderr, "invariant violated (%s:%d): %s\n", __FILE__, __LINE__, #cond);        \
			fprintf(stderr, __VA_ARGS__);                                                          \
			fputc('\n', stderr);                                                                   \
			abort();                                                                               \
		}                                                                                          \
	} while (0)

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, at most U+10FFFF. */
static bool
valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
		{
			n = 1;
			cp = c & 0x1f;
		}
		else if (c >= 0xe0 && c <= 0xef)
		{
			n = 2;
			cp = c & 0x0f;
		}
		else if (c >= 0xf0 && c <= 0xf4)
		{
			n = 3;
			cp = c & 0x07;
		}
		else
			return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
			(cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool
known_key(PPKind kind, const char *key)
{
	const PPField *fields = pp_fields(kind);

	for (int f = 0; f < pp_nfields(kind); f++)
	{
		if (strcmp(key, fields[f].name) == 0 ||
			(fields[f].alias != NULL && strcmp(key, fields[f].alias) == 0))
			return true;
	}
	return false;
}

/*
 * Equal JSON values, numbers compared by value: extra writes a real with an
 * integral value, such as 1.0 or -0.0, as an integer ("1", "-0"), which reads
 * back as a jansson integer. jsonb, where extra is stored, sees one number.
 */
static bool
json_equivalent(json_t *a, json_t *b)
{
	const char *key;
	json_t *item;
	size_t i;

	if (a == NULL || b == NULL)
		return false;
	if (json_is_number(a) && json_is_number(b) && !(json_is_integer(a) && json_is_integer(b)))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a))
	{
		case JSON_OBJECT:
			if (json_object_size(a) != json_object_size(b))
				return false;
			json_object_foreach(a, key, item)
			{
				if (!json_equivalent(item, json_object_get(b, key)))
					return false;
			}
			return true;
		case JSON_ARRAY:
			if (json_array_size(a) != json_array_size(b))
				return false;
			json_array_foreach(a, i, item)
			{
				if (!json_equivalent(item, json_array_get(b, i)))
					return false;
			}
			return true;
		default:
			return json_equal(a, b);
	}
}

/* extra, when present, is a JSON object of exactly the unknown keys, equal values. */
static void
check_extra(const PPRecord *rec)
{
	json_t *root = rec->root;
	json_t *extra;
	json_error_t jerr;
	const char *key;
	json_t *item;
	size_t nunknown = 0;

	json_object_foreach(root, key, item)
	{
		if (!known_key(rec->kind, key))
			nunknown++;
	}
	if (rec->extra == NULL)
	{
		CHECK(nunknown == 0, "%zu unknown keys but no extra", nunknown);
		return;
	}
	CHECK(valid_utf8((const unsigned char *) rec->extra, strlen(rec->extra)),
		  "extra is not valid UTF-8");
	extra = json_loads(rec->extra, JSON_REJECT_DUPLICATES, &jerr);
	CHECK(extra != NULL, "extra is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
		  jerr.column);
	CHECK(json_is_object(extra), "extra is not an object");
	CHECK(json_object_size(extra) == nunknown, "extra has %zu keys, the message %zu unknown ones",
		  json_object_size(extra), nunknown);
	json_object_foreach(root, key, item)
	{
		if (known_key(rec->kind, key))
			CHECK(json_object_get(extra, key) == NULL, "known key \"%s\" is in extra", key);
		else
			CHECK(json_equivalent(json_object_get(extra, key), item),
				  "extra's value of \"%s\" differs from the message's", key);
	}
	json_decref(extra);
}

/* A borrowed clean string lies within the raw string it came from. */
static bool
within(PPStr s, const PPValue *raw)
{
	if (raw->isnull || raw->s.ptr == NULL || s.ptr == NULL)
		return false;
	return s.ptr >= raw->s.ptr && s.ptr + s.len <= raw->s.ptr + raw->s.len;
}

static void
check_clean(const PPRecord *rec)
{
	PPCleanValue out[PP_MAX_FIELDS];
	const PPCleanField *cf = pp_clean_fields(rec->kind);
	const PPValue *raw = rec->values;

	pp_clean(rec->kind, raw, out);
	CHECK(!out[0].isnull && out[0].i == raw[0].i, "the clean ind differs from the raw one");
	for (int c = 0; c < pp_clean_nfields(rec->kind); c++)
	{
		if (out[c].isnull)
			continue;
		switch (cf[c].type)
		{
			case PP_C_INT4:
				CHECK(out[c].i >= INT32_MIN && out[c].i <= INT32_MAX, "%s out of int4", cf[c].name);
				break;
			case PP_C_INT8:
				CHECK(out[c].i >= 0, "%s is negative", cf[c].name);
				break;
			case PP_C_TEXT:
			case PP_C_NAME:
				CHECK(out[c].s.ptr != NULL, "%s not null but has no text", cf[c].name);
				CHECK(!pp_is_placeholder(out[c].s.ptr, out[c].s.len), "%s is a placeholder",
					  cf[c].name);
				break;
			case PP_C_COORDS:
				CHECK(pp_coordinates_valid(out[c].coords[0], out[c].coords[1]),
					  "invalid coordinates kept");
				break;
			case PP_C_UUID:
			case PP_C_TIMESTAMP:
				break;
		}
	}
	switch (rec->kind)
	{
		case PP_PIN:
			/* title .. category are each raw text, cleaned in place */
			CHECK(out[2].isnull || within(out[2].s, &raw[2]), "title");
			CHECK(out[3].isnull || within(out[3].s, &raw[3]), "description");
			CHECK(out[5].isnull || within(out[5].s, &raw[4]), "poster_name");
			CHECK(out[9].isnull || within(out[9].s, &raw[10]), "save_location");
			CHECK(out[10].isnull || within(out[10].s, &raw[11]), "category");
			CHECK(!out[4].isnull || raw[5].isnull ||
					  !pp_follower_count(raw[5].s.ptr, raw[5].s.len, &out[4].i),
				  "a readable follower count was dropped");
			break;
		case PP_GEO:
			CHECK(out[1].isnull || within(out[1].s, &raw[4]), "country");
			CHECK(!out[2].isnull || raw[2].isnull || raw[3].isnull ||
					  !pp_coordinates_valid(raw[2].f, raw[3].f),
				  "valid coordinates were dropped");
			break;
		case PP_USER:
			CHECK(out[2].isnull == raw[3].isnull, "age");
			CHECK(out[1].isnull || within(out[1].s, &raw[1]) || within(out[1].s, &raw[2]),
				  "user_name");
			CHECK(out[1].s2.ptr == NULL || within(out[1].s2, &raw[2]), "last name");
			break;
	}
}

static void
check_record(const PPRecord *rec, PPKind kind)
{
	const PPField *fields = pp_fields(kind);

	CHECK(rec->kind == kind, "kind %d, expected %d", rec->kind, kind);
	CHECK(rec->root != NULL && json_is_object((json_t *) rec->root), "no document");
	for (int f = 0; f < pp_nfields(kind); f++)
	{
		const PPValue *v = &rec->values[f];

		if (fields[f].key)
			CHECK(!v->isnull, "join key \"%s\" is missing", fields[f].name);
		if (v->isnull)
			continue;
		switch (fields[f].type)
		{
			case PP_T_TEXT:
				CHECK(v->s.ptr != NULL, "\"%s\" has no text", fields[f].name);
				CHECK(memchr(v->s.ptr, '\0', v->s.len) == NULL, "\"%s\" holds a NUL",
					  fields[f].name);
				CHECK(valid_utf8((const unsigned char *) v->s.ptr, v->s.len),
					  "\"%s\" is not valid UTF-8", fields[f].name);
				break;
			case PP_T_INT4:
				CHECK(v->i >= INT32_MIN && v->i <= INT32_MAX, "\"%s\" is out of int4",
					  fields[f].name);
				break;
			case PP_T_FLOAT8:
				CHECK(isfinite(v->f), "\"%s\" is not finite", fields[f].name);
				break;
		}
	}
	check_extra(rec);
	check_clean(rec);
}

/*
 * pp_decode (the fast path, or jansson) must agree with pp_decode_jansson:
 * the same verdict, the same error, the same values.
 */
static void
check_same(const PPRecord *rec, const PPRecord *ref, PPKind kind)
{
	const PPField *fields = pp_fields(kind);

	CHECK((rec->extra == NULL) == (ref->extra == NULL) &&
			  (rec->extra == NULL || strcmp(rec->extra, ref->extra) == 0),
		  "the extras differ");
	for (int f = 0; f < pp_nfields(kind); f++)
	{
		const PPValue *a = &rec->values[f];
		const PPValue *b = &ref->values[f];

		CHECK(a->isnull == b->isnull, "\"%s\": null %d, jansson %d", fields[f].name, a->isnull,
			  b->isnull);
		CHECK(a->i == b->i, "\"%s\": %lld, jansson %lld", fields[f].name, (long long) a->i,
			  (long long) b->i);
		CHECK(memcmp(&a->f, &b->f, sizeof(double)) == 0, "\"%s\": %.17g, jansson %.17g",
			  fields[f].name, a->f, b->f);
		CHECK(a->s.len == b->s.len && (a->s.len == 0 || memcmp(a->s.ptr, b->s.ptr, a->s.len) == 0),
			  "\"%s\": the strings differ", fields[f].name);
		CHECK((a->s.ptr == NULL) == (b->s.ptr == NULL), "\"%s\": text present on one side",
			  fields[f].name);
		CHECK(a->s.ptr == NULL || a->s.ptr[a->s.len] == '\0', "\"%s\": not NUL-terminated",
			  fields[f].name);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PPKind kind;
	size_t max_len = PP_FUZZ_MAX_LEN;
	char errbuf[PP_ERRBUF_SIZE];
	char referr[PP_ERRBUF_SIZE];
	PPRecord rec;
	PPRecord ref;
	bool ok;
	bool refok;

	if (size < 1)
		return 0;
	kind = (PPKind) (data[0] % PP_NKINDS);
	if (data[0] & 0x80)
		max_len = (size_t) (data[0] & 0x7f);

	memset(errbuf, 0xa5, sizeof(errbuf));
	memset(referr, 0xa5, sizeof(referr));
	memset(&rec, 0x5a, sizeof(rec));
	memset(&ref, 0x5a, sizeof(ref));
	ok = pp_decode(kind, (const char *) data + 1, size - 1, max_len, &rec, errbuf, sizeof(errbuf));
	refok = pp_decode_jansson(kind, (const char *) data + 1, size - 1, max_len, &ref, referr,
							  sizeof(referr));
	CHECK(ok == refok, "pp_decode says %d, jansson %d (%s)", ok, refok, ok ? referr : errbuf);
	if (ok)
	{
		CHECK(size - 1 > 0 && size - 1 <= max_len, "a message of %zu bytes was accepted", size - 1);
		check_same(&rec, &ref, kind);
		check_record(&ref, kind);
		check_clean(&rec);
		pp_record_free(&rec);
		pp_record_free(&ref);
		CHECK(rec.extra == NULL && rec.root == NULL && rec.strings == NULL,
			  "pp_record_free left pointers behind");
		/* freeing twice is harmless */
		pp_record_free(&rec);
	}
	else
	{
		size_t n;

		CHECK(strcmp(errbuf, referr) == 0, "the errors differ: \"%s\", jansson \"%s\"", errbuf,
			  referr);
		CHECK(memchr(errbuf, '\0', sizeof(errbuf)) != NULL, "the error is not NUL-terminated");
		n = strlen(errbuf);
		CHECK(n > 0, "the error is empty");
		CHECK(valid_utf8((const unsigned char *) errbuf, n), "the error is not valid UTF-8: %s",
			  errbuf);
		CHECK(rec.extra == NULL && rec.root == NULL && rec.strings == NULL,
			  "a refused record holds memory");
	}
	return 0;
}
