/*
 * rules.c
 *		The cleaning rules, in plain C (no backend calls; see rules.h).
 *
 * Each rule answers "no value" (false, or a NULL PPStr) for messy input
 * instead of failing: the notebooks turned such values into nulls.
 */
#include "rules.h"

#include <math.h>
#include <string.h>

/*
 * The values the source uses for "no value", as found in the sample data
 * (the pins of data/pin.jsonl); the README's clean_text row lists them too.
 */
static const char *const placeholders[] = {
	"No Title Data Available",
	"No description available Story format",
	"No description available",
	"Untitled",
	"User Info Error",
	"Image src error.",
	"N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
};

#define SAVE_LOCATION_PREFIX "Local save in "

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Narrow [*s, *s + *len) to its part without surrounding blanks. */
static void
trim_blanks(const char **s, size_t *len)
{
	while (*len > 0 && is_blank(**s))
	{
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_blank((*s)[*len - 1]))
		(*len)--;
}

/*
 * Parse a follower count such as "437", "217k", "1.5k" or "2M".
 *
 * A fraction is allowed only with a suffix (k = 10^3, M = 10^6, B = 10^9,
 * either case); a fraction finer than one follower is dropped. Signs, inner
 * blanks, other text and values beyond int64 give false.
 */
bool
pp_follower_count(const char *s, size_t len, int64_t *result)
{
	const char *end;
	const char *frac = NULL;
	size_t nfrac = 0;
	int exponent = 0;
	int64_t value = 0;
	int64_t mult = 1;
	int64_t fracvalue = 0;

	trim_blanks(&s, &len);
	end = s + len;
	if (len == 0 || !is_digit(*s))
		return false;

	for (; s < end && is_digit(*s); s++)
	{
		if (value > (INT64_MAX - (*s - '0')) / 10)
			return false;
		value = value * 10 + (*s - '0');
	}
	if (s < end && *s == '.')
	{
		frac = ++s;
		while (s < end && is_digit(*s))
			s++;
		nfrac = (size_t) (s - frac);
		if (nfrac == 0)
			return false;
	}
	if (s < end)
	{
		switch (*s)
		{
			case 'k':
			case 'K':
				exponent = 3;
				break;
			case 'm':
			case 'M':
				exponent = 6;
				break;
			case 'b':
			case 'B':
				exponent = 9;
				break;
			default:
				return false;
		}
		s++;
	}
	if (s != end || (frac != NULL && exponent == 0))
		return false;

	/* The fraction's first `exponent` digits, padded with zeros, are whole. */
	for (int i = 0; i < exponent; i++)
	{
		mult *= 10;
		fracvalue = fracvalue * 10 + ((size_t) i < nfrac ? frac[i] - '0' : 0);
	}
	if (value > (INT64_MAX - fracvalue) / mult)
		return false;
	*result = value * mult + fracvalue;
	return true;
}

/* True when both are finite and within |latitude| <= 90, |longitude| <= 180. */
bool
pp_coordinates_valid(double latitude, double longitude)
{
	return isfinite(latitude) && isfinite(longitude) && fabs(latitude) <= 90.0 &&
		   fabs(longitude) <= 180.0;
}

/* True for a blank string or one of the source's placeholders. */
bool
pp_is_placeholder(const char *s, size_t len)
{
	trim_blanks(&s, &len);
	if (len == 0)
		return true;
	for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
	{
		if (strlen(placeholders[i]) == len && memcmp(placeholders[i], s, len) == 0)
			return true;
	}
	return false;
}

/* NULL for blanks and placeholders, otherwise the value unchanged. */
PPStr
pp_clean_text(PPStr in)
{
	PPStr none = { NULL, 0 };

	if (in.ptr == NULL || pp_is_placeholder(in.ptr, in.len))
		return none;
	return in;
}

/* "Local save in /data/art" -> "/data/art"; any other value unchanged. */
PPStr
pp_save_location(PPStr in)
{
	size_t plen = strlen(SAVE_LOCATION_PREFIX);

	if (in.ptr != NULL && in.len >= plen && memcmp(in.ptr, SAVE_LOCATION_PREFIX, plen) == 0)
	{
		in.ptr += plen;
		in.len -= plen;
	}
	return in;
}

/* The analysts' age bands; NULL under 18. */
const char *
pp_age_group(int32_t age)
{
	if (age < 18)
		return NULL;
	if (age <= 24)
		return "18-24";
	if (age <= 35)
		return "25-35";
	if (age <= 50)
		return "36-50";
	return "+50";
}

/* Julian day number of a proleptic Gregorian date (as PostgreSQL counts). */
int
pp_date2j(int year, int month, int day)
{
	int julian;
	int century;

	if (month > 2)
	{
		month += 1;
		year += 4800;
	}
	else
	{
		month += 13;
		year += 4799;
	}
	century = year / 100;
	julian = year * 365 - 32167;
	julian += year / 4 - century + century / 4;
	julian += 7834 * month / 256 + day;
	return julian;
}

/* Read exactly n digits at *s into *out, advancing *s. */
static bool
read_digits(const char **s, const char *end, int n, int *out)
{
	int v = 0;

	if (end - *s < n)
		return false;
	for (int i = 0; i < n; i++)
	{
		if (!is_digit((*s)[i]))
			return false;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return true;
}

static bool
expect_char(const char **s, const char *end, char c)
{
	if (*s >= end || **s != c)
		return false;
	(*s)++;
	return true;
}

/*
 * Parse "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DDTHH:MM:SS", with an optional
 * fraction of up to nine digits (rounded to microseconds), into microseconds
 * since 2000-01-01 00:00:00, PostgreSQL's timestamp. Surrounding blanks are
 * ignored; anything else (a time zone, an impossible date) gives false.
 */
bool
pp_parse_timestamp(const char *s, size_t len, int64_t *usecs)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *end;
	int year, month, day, hour, minute, second;
	int64_t fraction = 0;
	bool leap;

	trim_blanks(&s, &len);
	end = s + len;
	if (!read_digits(&s, end, 4, &year) || !expect_char(&s, end, '-') ||
		!read_digits(&s, end, 2, &month) || !expect_char(&s, end, '-') ||
		!read_digits(&s, end, 2, &day))
		return false;
	if (s >= end || (*s != ' ' && *s != 'T'))
		return false;
	s++;
	if (!read_digits(&s, end, 2, &hour) || !expect_char(&s, end, ':') ||
		!read_digits(&s, end, 2, &minute) || !expect_char(&s, end, ':') ||
		!read_digits(&s, end, 2, &second))
		return false;
	if (s < end && *s == '.')
	{
		int ndigits = 0;
		int64_t scaled = 0;

		s++;
		while (s < end && is_digit(*s) && ndigits < 9)
		{
			scaled = scaled * 10 + (*s - '0');
			ndigits++;
			s++;
		}
		if (ndigits == 0)
			return false;
		for (int i = ndigits; i < 9; i++)
			scaled *= 10;
		/* nanoseconds to microseconds, half up */
		fraction = (scaled + 500) / 1000;
	}
	if (s != end)
		return false;

	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (year < 1 || month < 1 || month > 12 || day < 1 ||
		day > mdays[month - 1] + (month == 2 && leap ? 1 : 0) || hour > 23 || minute > 59 ||
		second > 59)
		return false;
	/* a fraction rounded up to the next second must not leave the year 9999 */
	if (fraction == 1000000 && year == 9999 && month == 12 && day == 31 && hour == 23 &&
		minute == 59 && second == 59)
		return false;

	*usecs = (int64_t) (pp_date2j(year, month, day) - PP_POSTGRES_EPOCH_JDATE) * PP_USECS_PER_DAY +
			 ((int64_t) (hour * 60 + minute) * 60 + second) * INT64_C(1000000) + fraction;
	return true;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parse a UUID written as 8-4-4-4-12 hex digits or as 32 hex digits
 * (surrounding blanks ignored).
 */
bool
pp_parse_uuid(const char *s, size_t len, uint8_t out[16])
{
	bool dashed;
	int nibbles = 0;

	trim_blanks(&s, &len);
	if (len == 36)
		dashed = true;
	else if (len == 32)
		dashed = false;
	else
		return false;

	for (size_t i = 0; i < len; i++)
	{
		int v;

		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		v = hex_value(s[i]);
		if (v < 0)
			return false;
		if (nibbles % 2 == 0)
			out[nibbles / 2] = (uint8_t) (v << 4);
		else
			out[nibbles / 2] |= (uint8_t) v;
		nibbles++;
	}
	return nibbles == 32;
}
