/*
 * record.h
 *		The shape of the three record kinds (pin, geo, user): their raw fields
 *		in source order, their cleaned columns, and the record cleaner.
 *
 * Raw values (PPValue) are what a message said; clean values (PPCleanValue)
 * are what the cleaned tables hold. pp_clean() is the one place that decides
 * which rule applies to which column. Plain C, like rules.h.
 */
#ifndef PINPIPE_RECORD_H
#define PINPIPE_RECORD_H

#include "rules.h"

typedef enum PPKind
{
	PP_PIN = 0,
	PP_GEO,
	PP_USER
} PPKind;

#define PP_NKINDS     3
#define PP_MAX_FIELDS 12

typedef enum PPType
{
	PP_T_TEXT,
	PP_T_INT4,
	PP_T_FLOAT8
} PPType;

/* One source key, in the raw table's column order. */
typedef struct PPField
{
	const char *name;  /* key and raw column name */
	const char *alias; /* accepted other key name, or NULL */
	PPType type;
	bool key; /* the join key: required, not null */
} PPField;

typedef struct PPValue
{
	bool isnull;
	int64_t i; /* PP_T_INT4 */
	double f;  /* PP_T_FLOAT8 */
	PPStr s;   /* PP_T_TEXT */
} PPValue;

typedef enum PPCleanType
{
	PP_C_INT4,
	PP_C_INT8,
	PP_C_TEXT,
	PP_C_UUID,
	PP_C_COORDS,    /* float8[2]: latitude, longitude */
	PP_C_TIMESTAMP, /* microseconds since 2000-01-01 */
	PP_C_NAME       /* s, and " " s2 when both are there */
} PPCleanType;

typedef struct PPCleanField
{
	const char *name;
	PPCleanType type;
} PPCleanField;

typedef struct PPCleanValue
{
	bool isnull;
	int64_t i;
	double coords[2];
	uint8_t uuid[16];
	PPStr s;
	PPStr s2;
} PPCleanValue;

extern const char *pp_kind_name(PPKind kind);
extern bool pp_kind_from_name(const char *name, PPKind *kind);
extern int pp_nfields(PPKind kind);
extern const PPField *pp_fields(PPKind kind);
extern int pp_clean_nfields(PPKind kind);
extern const PPCleanField *pp_clean_fields(PPKind kind);
extern void pp_clean(PPKind kind, const PPValue *raw, PPCleanValue *out);

#endif /* PINPIPE_RECORD_H */
