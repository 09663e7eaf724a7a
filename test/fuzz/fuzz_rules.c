/*
 * fuzz_rules.c
 *		libFuzzer harness for the cleaning rules (src/rules.c).
 *
 * Every input is fed, as an exactly sized buffer, to each text rule; its
 * first 16 bytes are read as two doubles for the coordinates and its first 4
 * bytes as an int32 for the age group. Each rule's result is checked against
 * invariants and, where the rule is small enough, against a reference written
 * here independently. A violated invariant calls abort(), which libFuzzer
 * reports as a crash.
 *
 * Build and run: make fuzz && make fuzz-run (see the Makefile).
 */
#include "rules.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool
blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && blank((unsigned char) **s))
	{
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && blank((unsigned char) (*s)[*len - 1]))
		(*len)--;
}

/*
 * Reference follower count: digits, an optional fraction, an optional
 * k/M/B suffix; a fraction needs a suffix and is truncated to whole
 * followers; the value must fit in int64. Computed in 128 bits.
 */
static bool
ref_follower_count(const char *s, size_t len, int64_t *result)
{
	const char *end;
	__int128 whole = 0;
	__int128 fraction = 0;
	__int128 mult = 1;
	bool huge = false;
	bool has_fraction = false;
	char fdigits[9];
	size_t nfdigits = 0;
	int exponent = 0;

	trim(&s, &len);
	end = s + len;
	if (s == end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++)
	{
		whole = whole * 10 + (*s - '0');
		if (whole > (__int128) INT64_MAX)
		{
			huge = true;
			whole = (__int128) INT64_MAX + 1;
		}
	}
	if (s < end && *s == '.')
	{
		has_fraction = true;
		s++;
		if (s == end || *s < '0' || *s > '9')
			return false;
		for (; s < end && *s >= '0' && *s <= '9'; s++)
		{
			if (nfdigits < sizeof(fdigits))
				fdigits[nfdigits++] = *s;
		}
	}
	if (s < end)
	{
		if (*s == 'k' || *s == 'K')
			exponent = 3;
		else if (*s == 'm' || *s == 'M')
			exponent = 6;
		else if (*s == 'b' || *s == 'B')
			exponent = 9;
		else
			return false;
		s++;
	}
	if (s != end || (has_fraction && exponent == 0) || huge)
		return false;
	for (int i = 0; i < exponent; i++)
	{
		mult *= 10;
		fraction = fraction * 10 + ((size_t) i < nfdigits ? fdigits[i] - '0' : 0);
	}
	if (whole * mult + fraction > (__int128) INT64_MAX)
		return false;
	*result = (int64_t) (whole * mult + fraction);
	return true;
}

static void
check_follower_count(const char *s, size_t len)
{
	int64_t got = -1;
	int64_t want = -1;
	bool ok = pp_follower_count(s, len, &got);
	bool ref = ref_follower_count(s, len, &want);

	CHECK(ok == ref, "pp_follower_count says %d, the reference %d", ok, ref);
	if (!ok)
		return;
	CHECK(got >= 0, "negative follower count %" PRId64, got);
	CHECK(got == want, "follower count %" PRId64 ", the reference %" PRId64, got, want);
	{
		char text[32];
		int64_t again = -1;
		int n = snprintf(text, sizeof(text), "%" PRId64, got);

		CHECK(pp_follower_count(text, (size_t) n, &again) && again == got,
			  "\"%s\" does not read back as %" PRId64, text, got);
	}
}

/* Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_DAYS 10957

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void
check_timestamp(const char *s, size_t len)
{
	int64_t usecs;
	int64_t lo = (days_from_civil(1, 1, 1) - PG_EPOCH_DAYS) * PP_USECS_PER_DAY;
	int64_t hi = (days_from_civil(10000, 1, 1) - PG_EPOCH_DAYS) * PP_USECS_PER_DAY - 1;
	int64_t days, rest, y, again;
	int m, d;
	char text[64];
	int n;

	if (!pp_parse_timestamp(s, len, &usecs))
		return;
	CHECK(usecs >= lo && usecs <= hi,
		  "timestamp %" PRId64 " is outside 0001-01-01 .. 9999-12-31 23:59:59.999999 (input %.*s)",
		  usecs, (int) (len < 80 ? len : 80), s);

	days = floor_div(usecs, PP_USECS_PER_DAY);
	rest = usecs - days * PP_USECS_PER_DAY;
	civil_from_days(days + PG_EPOCH_DAYS, &y, &m, &d);
	CHECK(pp_date2j((int) y, m, d) - PP_POSTGRES_EPOCH_JDATE == days,
		  "pp_date2j(%" PRId64 ", %d, %d) disagrees with the reference", y, m, d);
	n = snprintf(text, sizeof(text), "%04" PRId64 "-%02d-%02d %02d:%02d:%02d", y, m, d,
				 (int) (rest / INT64_C(3600000000)), (int) (rest / 60000000 % 60),
				 (int) (rest / 1000000 % 60));
	if (rest % 1000000 != 0)
		n += snprintf(text + n, sizeof(text) - (size_t) n, ".%06d", (int) (rest % 1000000));
	CHECK(pp_parse_timestamp(text, (size_t) n, &again) && again == usecs,
		  "\"%s\" does not read back as %" PRId64, text, usecs);
	/* the ISO 8601 'T' separator reads the same */
	text[10] = 'T';
	CHECK(pp_parse_timestamp(text, (size_t) n, &again) && again == usecs,
		  "\"%s\" does not read back as %" PRId64, text, usecs);
}

static int
ref_hex(char c)
{
	static const char digits[] = "0123456789abcdef";
	const char *p;

	if (c >= 'A' && c <= 'F')
		c = (char) (c - 'A' + 'a');
	p = c != '\0' ? strchr(digits, c) : NULL;
	return p != NULL ? (int) (p - digits) : -1;
}

static void
check_uuid(const char *s, size_t len)
{
	uint8_t out[16];
	uint8_t again[16];
	char text[40];
	const char *t = s;
	size_t tlen = len;
	int nibble = 0;

	if (!pp_parse_uuid(s, len, out))
		return;

	/* the input, trimmed, is 32 hex digits, or 8-4-4-4-12 of them; they are out */
	trim(&t, &tlen);
	CHECK(tlen == 32 || tlen == 36, "uuid accepted from %zu characters", tlen);
	for (size_t i = 0; i < tlen; i++)
	{
		int v;

		if (tlen == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			CHECK(t[i] == '-', "uuid accepted without a dash at %zu", i);
			continue;
		}
		v = ref_hex(t[i]);
		CHECK(v >= 0, "uuid accepted with a non-hex character at %zu", i);
		CHECK(v == ((nibble % 2 == 0) ? out[nibble / 2] >> 4 : out[nibble / 2] & 0xf),
			  "uuid nibble %d differs from the input", nibble);
		nibble++;
	}

	/* both spellings of the 16 bytes read back as the same bytes */
	snprintf(text, sizeof(text),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", out[0], out[1],
			 out[2], out[3], out[4], out[5], out[6], out[7], out[8], out[9], out[10], out[11],
			 out[12], out[13], out[14], out[15]);
	CHECK(pp_parse_uuid(text, 36, again) && memcmp(again, out, 16) == 0,
		  "\"%s\" does not read back", text);
	for (int i = 0; i < 16; i++)
		snprintf(text + 2 * i, 3, "%02X", out[i]);
	CHECK(pp_parse_uuid(text, 32, again) && memcmp(again, out, 16) == 0,
		  "\"%s\" does not read back", text);
}

static void
check_clean_text(const char *s, size_t len)
{
	PPStr in = { s, len };
	PPStr none = { NULL, 0 };
	PPStr out = pp_clean_text(in);
	const char *t = s;
	size_t tlen = len;

	CHECK(out.ptr == NULL || (out.ptr == in.ptr && out.len == in.len),
		  "pp_clean_text returned neither NULL nor its input");
	CHECK((out.ptr == NULL) == pp_is_placeholder(s, len),
		  "pp_clean_text and pp_is_placeholder disagree");
	trim(&t, &tlen);
	if (tlen == 0)
		CHECK(out.ptr == NULL, "a blank string was kept");
	out = pp_clean_text(none);
	CHECK(out.ptr == NULL && out.len == 0, "pp_clean_text(NULL) is not NULL");
}

static void
check_save_location(const char *s, size_t len)
{
	static const char prefix[] = "Local save in ";
	size_t plen = sizeof(prefix) - 1;
	PPStr in = { s, len };
	PPStr none = { NULL, 0 };
	PPStr out = pp_save_location(in);

	if (len >= plen && memcmp(s, prefix, plen) == 0)
		CHECK(out.ptr == s + plen && out.len == len - plen, "the prefix was not cut");
	else
		CHECK(out.ptr == s && out.len == len, "a value without the prefix was changed");
	out = pp_save_location(none);
	CHECK(out.ptr == NULL, "pp_save_location(NULL) is not NULL");
}

static void
check_coordinates(const uint8_t *data, size_t size)
{
	double lat = 0.0;
	double lon = 0.0;
	bool want;

	if (size < 2 * sizeof(double))
		return;
	memcpy(&lat, data, sizeof(double));
	memcpy(&lon, data + sizeof(double), sizeof(double));
	/* NaN compares false, so this is false for NaN and for infinities out of range */
	want = lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0;
	CHECK(pp_coordinates_valid(lat, lon) == want, "pp_coordinates_valid(%a, %a) is %d", lat, lon,
		  !want);
}

static void
check_age_group(const uint8_t *data, size_t size)
{
	int32_t age;
	const char *group;

	if (size < sizeof(int32_t))
		return;
	memcpy(&age, data, sizeof(age));
	group = pp_age_group(age);
	if (age < 18)
	{
		CHECK(group == NULL, "age %d has group %s", age, group);
		return;
	}
	CHECK(group != NULL, "age %d has no group", age);
	if (age <= 24)
		CHECK(strcmp(group, "18-24") == 0, "age %d has group %s", age, group);
	else if (age <= 35)
		CHECK(strcmp(group, "25-35") == 0, "age %d has group %s", age, group);
	else if (age <= 50)
		CHECK(strcmp(group, "36-50") == 0, "age %d has group %s", age, group);
	else
		CHECK(strcmp(group, "+50") == 0, "age %d has group %s", age, group);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exactly sized copy, never NULL, so any read past the end is caught */
	char *s = malloc(size > 0 ? size : 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);

	check_follower_count(s, size);
	check_timestamp(s, size);
	check_uuid(s, size);
	check_clean_text(s, size);
	check_save_location(s, size);
	check_coordinates(data, size);
	check_age_group(data, size);

	free(s);
	return 0;
}
