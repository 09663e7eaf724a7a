/*
 * convert.h
 *		Between the plain-C records (record.h, decode.h) and PostgreSQL datums:
 *		a decoded message's raw row, and its clean row (cleaned by pp_clean).
 *
 * Columns are found by name in the target tuple descriptor, so a table with
 * columns added by the user still works.
 */
#ifndef PINPIPE_CONVERT_H
#define PINPIPE_CONVERT_H

#include "postgres.h"

#include "access/tupdesc.h"

#include "decode.h"
#include "message.h"

/* 0-based attribute numbers of a raw table's columns, -1 if absent. */
typedef struct PPRawMap
{
	int field[PP_MAX_FIELDS];
	int extra;
	int kafka_partition;
	int kafka_offset;
	int kafka_timestamp;
	int kafka_source;
	int kafka_key;
	int kafka_headers;
} PPRawMap;

/* 0-based attribute numbers of a clean table's columns. */
typedef struct PPCleanMap
{
	int field[PP_MAX_FIELDS];
} PPCleanMap;

/* A kind's raw and clean tables, as a batch writes them. */
typedef struct PPKindTables
{
	TupleDesc raw_desc;
	PPRawMap raw_map;
	TupleDesc clean_desc;
	PPCleanMap clean_map;
} PPKindTables;

extern void pp_kind_tables(PPKind kind, Oid raw_rowtype, Oid clean_rowtype, PPKindTables *t);
extern void pp_form_rows(PPMessage *m, const PPKindTables *t, MemoryContext cxt);
extern void pp_raw_map(PPKind kind, TupleDesc tupdesc, bool need_all, PPRawMap *map);
extern void pp_clean_map(PPKind kind, TupleDesc tupdesc, PPCleanMap *map);
extern void pp_raw_datums(const PPRecord *rec, const PPRawMap *map, Datum *values, bool *nulls);
extern void pp_clean_datums(PPKind kind, const PPCleanValue *clean, const PPCleanMap *map,
							Datum *values, bool *nulls);
extern void pp_values_from_datums(PPKind kind, const PPRawMap *map, Datum *values, bool *nulls,
								  PPValue *out);
extern Datum pp_utf8_text_datum(const char *s, size_t len);
extern bytea *pp_bytea(const char *data, size_t len);

#endif /* PINPIPE_CONVERT_H */
