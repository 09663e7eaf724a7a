/*
 * convert.c
 *		Records to datums and back (see convert.h).
 */
#include "convert.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "record.h"

static int
find_column(TupleDesc tupdesc, const char *name, bool missing_ok)
{
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);

		if (!attr->attisdropped && strcmp(NameStr(attr->attname), name) == 0)
			return i;
	}
	if (!missing_ok)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
						errmsg("column \"%s\" of a pinpipe table is missing", name),
						errhint("Update the extension's objects to the installed library's "
								"version with ALTER EXTENSION pinpipe UPDATE.")));
	return -1;
}

/* Locate a raw table's columns in tupdesc; the Kafka ones only if need_all. */
void
pp_raw_map(PPKind kind, TupleDesc tupdesc, bool need_all, PPRawMap *map)
{
	const PPField *fields = pp_fields(kind);

	for (int f = 0; f < pp_nfields(kind); f++)
		map->field[f] = find_column(tupdesc, fields[f].name, false);
	map->extra = find_column(tupdesc, "extra", !need_all);
	map->kafka_partition = find_column(tupdesc, "kafka_partition", !need_all);
	map->kafka_offset = find_column(tupdesc, "kafka_offset", !need_all);
	map->kafka_timestamp = find_column(tupdesc, "kafka_timestamp", !need_all);
}

void
pp_clean_map(PPKind kind, TupleDesc tupdesc, PPCleanMap *map)
{
	const PPCleanField *fields = pp_clean_fields(kind);

	for (int f = 0; f < pp_clean_nfields(kind); f++)
		map->field[f] = find_column(tupdesc, fields[f].name, false);
}

/* A text datum from UTF-8 bytes, converted to the database encoding. */
Datum
pp_utf8_text_datum(const char *s, size_t len)
{
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		char *conv = pg_any_to_server(s, (int) len, PG_UTF8);

		if (conv != s)
			return PointerGetDatum(cstring_to_text(conv));
	}
	return PointerGetDatum(cstring_to_text_with_len(s, (int) len));
}

/* Fill the source and extra columns of a raw row (Kafka columns are the caller's). */
void
pp_raw_datums(const PPRecord *rec, const PPRawMap *map, Datum *values, bool *nulls)
{
	const PPField *fields = pp_fields(rec->kind);

	for (int f = 0; f < pp_nfields(rec->kind); f++)
	{
		const PPValue *v = &rec->values[f];
		int att = map->field[f];

		nulls[att] = v->isnull;
		if (v->isnull)
		{
			values[att] = (Datum) 0;
			continue;
		}
		switch (fields[f].type)
		{
			case PP_T_TEXT:
				values[att] = pp_utf8_text_datum(v->s.ptr, v->s.len);
				break;
			case PP_T_INT4:
				values[att] = Int32GetDatum((int32) v->i);
				break;
			case PP_T_FLOAT8:
				values[att] = Float8GetDatum(v->f);
				break;
		}
	}
	if (map->extra >= 0)
	{
		nulls[map->extra] = (rec->extra == NULL);
		values[map->extra] = rec->extra == NULL
								 ? (Datum) 0
								 : DirectFunctionCall1(jsonb_in, CStringGetDatum(rec->extra));
	}
}

static Datum
coordinates_datum(const double coords[2])
{
	Datum elems[2];

	elems[0] = Float8GetDatum(coords[0]);
	elems[1] = Float8GetDatum(coords[1]);
	return PointerGetDatum(
		construct_array(elems, 2, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
name_datum(PPStr first, PPStr last)
{
	StringInfoData buf;

	if (last.ptr == NULL)
		return pp_utf8_text_datum(first.ptr, first.len);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, first.ptr, (int) first.len);
	appendStringInfoChar(&buf, ' ');
	appendBinaryStringInfo(&buf, last.ptr, (int) last.len);
	return pp_utf8_text_datum(buf.data, (size_t) buf.len);
}

/* Fill a clean row from cleaned values. */
void
pp_clean_datums(PPKind kind, const PPCleanValue *clean, const PPCleanMap *map, Datum *values,
				bool *nulls)
{
	const PPCleanField *fields = pp_clean_fields(kind);

	for (int f = 0; f < pp_clean_nfields(kind); f++)
	{
		const PPCleanValue *v = &clean[f];
		int att = map->field[f];
		pg_uuid_t *uuid;

		nulls[att] = v->isnull;
		values[att] = (Datum) 0;
		if (v->isnull)
			continue;
		switch (fields[f].type)
		{
			case PP_C_INT4:
				values[att] = Int32GetDatum((int32) v->i);
				break;
			case PP_C_INT8:
				values[att] = Int64GetDatum(v->i);
				break;
			case PP_C_TEXT:
				values[att] = pp_utf8_text_datum(v->s.ptr, v->s.len);
				break;
			case PP_C_UUID:
				uuid = palloc(sizeof(pg_uuid_t));
				memcpy(uuid->data, v->uuid, UUID_LEN);
				values[att] = UUIDPGetDatum(uuid);
				break;
			case PP_C_COORDS:
				values[att] = coordinates_datum(v->coords);
				break;
			case PP_C_TIMESTAMP:
				values[att] = TimestampGetDatum((Timestamp) v->i);
				break;
			case PP_C_NAME:
				values[att] = name_datum(v->s, v->s2);
				break;
		}
	}
}

/* A UTF-8 view of a text datum (the rules work on UTF-8). */
static PPStr
text_view(Datum d)
{
	text *t = DatumGetTextPP(d);
	PPStr s;

	s.ptr = VARDATA_ANY(t);
	s.len = VARSIZE_ANY_EXHDR(t);
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		s.ptr = pg_server_to_any(s.ptr, (int) s.len, PG_UTF8);
		s.len = strlen(s.ptr);
	}
	return s;
}

/* Read a raw row's source columns back into raw values. */
void
pp_values_from_datums(PPKind kind, const PPRawMap *map, Datum *values, bool *nulls, PPValue *out)
{
	const PPField *fields = pp_fields(kind);

	for (int f = 0; f < pp_nfields(kind); f++)
	{
		int att = map->field[f];

		memset(&out[f], 0, sizeof(PPValue));
		out[f].isnull = nulls[att];
		if (nulls[att])
			continue;
		switch (fields[f].type)
		{
			case PP_T_TEXT:
				out[f].s = text_view(values[att]);
				break;
			case PP_T_INT4:
				out[f].i = DatumGetInt32(values[att]);
				break;
			case PP_T_FLOAT8:
				out[f].f = DatumGetFloat8(values[att]);
				break;
		}
	}
}
