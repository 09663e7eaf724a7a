/*
 * rules.h
 *		The cleaning rules of pinpipe, in plain C.
 *
 * Every rule the notebooks applied to a raw value lives here, once. The
 * SQL-callable functions (clean.c), the whole-record cleaners and the
 * background worker all call these, so a value is cleaned the same way
 * whichever path it takes. Nothing here uses the PostgreSQL backend, so the
 * rules can be fuzzed on their own (test/fuzz).
 */
#ifndef PINPIPE_RULES_H
#define PINPIPE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Microseconds per day, and days from 0001-01-01 (Julian) to 2000-01-01. */
#define PP_USECS_PER_DAY        INT64_C(86400000000)
#define PP_POSTGRES_EPOCH_JDATE 2451545

/* A borrowed string: ptr == NULL stands for SQL NULL. Not NUL-terminated. */
typedef struct PPStr
{
	const char *ptr;
	size_t len;
} PPStr;

extern bool pp_follower_count(const char *s, size_t len, int64_t *result);
extern bool pp_coordinates_valid(double latitude, double longitude);
extern bool pp_is_placeholder(const char *s, size_t len);
extern PPStr pp_clean_text(PPStr in);
extern PPStr pp_save_location(PPStr in);
extern const char *pp_age_group(int32_t age);
extern bool pp_parse_timestamp(const char *s, size_t len, int64_t *usecs);
extern bool pp_parse_uuid(const char *s, size_t len, uint8_t out[16]);
extern int pp_date2j(int year, int month, int day);

#endif /* PINPIPE_RULES_H */
