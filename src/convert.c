/*
 * convert.c
 *		Records to datums and rows, and back (see convert.h).
 */
#include "convert.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
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
	/* not in a 0.1 schema, which the worker writes until it is updated */
	map->kafka_source = find_column(tupdesc, "kafka_source", true);
	map->kafka_key = find_column(tupdesc, "kafka_key", true);
	map->kafka_headers = find_column(tupdesc, "kafka_headers", true);
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

/* A bytea of len bytes. */
bytea *
pp_bytea(const char *data, size_t len)
{
	bytea *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	if (len > 0)
		memcpy(VARDATA(b), data, len);
	return b;
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

/* Describe kind's raw and clean tables from their row types (for one batch). */
void
pp_kind_tables(PPKind kind, Oid raw_rowtype, Oid clean_rowtype, PPKindTables *t)
{
	t->raw_desc = lookup_rowtype_tupdesc_copy(raw_rowtype, -1);
	t->clean_desc = lookup_rowtype_tupdesc_copy(clean_rowtype, -1);
	pp_raw_map(kind, t->raw_desc, true, &t->raw_map);
	pp_clean_map(kind, t->clean_desc, &t->clean_map);
}

/*
 * Form a decoded message's raw row and its clean row in cxt, once (they
 * survive a retry of the sink). May raise a message's error (a value the
 * database encoding cannot hold): the sink calls it where it can isolate it.
 */
void
pp_form_rows(PPMessage *m, const PPKindTables *t, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TupleDesc rd = t->raw_desc;
	TupleDesc cd = t->clean_desc;
	Datum *values = palloc0(sizeof(Datum) * Max(rd->natts, cd->natts));
	bool *nulls = palloc(sizeof(bool) * Max(rd->natts, cd->natts));
	PPCleanValue clean[PP_MAX_FIELDS];

	memset(nulls, true, sizeof(bool) * rd->natts);
	pp_raw_datums(&m->rec, &t->raw_map, values, nulls);
	values[t->raw_map.kafka_partition] = Int32GetDatum(m->partition);
	nulls[t->raw_map.kafka_partition] = false;
	values[t->raw_map.kafka_offset] = Int64GetDatum(m->offset);
	nulls[t->raw_map.kafka_offset] = false;
	values[t->raw_map.kafka_timestamp] = TimestampTzGetDatum(m->timestamp);
	nulls[t->raw_map.kafka_timestamp] = !m->has_timestamp;
	if (t->raw_map.kafka_source >= 0)
	{
		values[t->raw_map.kafka_source] = Int32GetDatum(m->source);
		nulls[t->raw_map.kafka_source] = false;
	}
	if (m->key != NULL && t->raw_map.kafka_key >= 0)
	{
		values[t->raw_map.kafka_key] = PointerGetDatum(pp_bytea(m->key, m->keylen));
		nulls[t->raw_map.kafka_key] = false;
	}
	if (m->headers != NULL && t->raw_map.kafka_headers >= 0)
	{
		values[t->raw_map.kafka_headers] =
			DirectFunctionCall1(jsonb_in, CStringGetDatum(m->headers));
		nulls[t->raw_map.kafka_headers] = false;
	}
	m->raw_row = HeapTupleGetDatum(heap_form_tuple(rd, values, nulls));

	memset(values, 0, sizeof(Datum) * cd->natts);
	memset(nulls, true, sizeof(bool) * cd->natts);
	pp_clean(m->kind, m->rec.values, clean);
	pp_clean_datums(m->kind, clean, &t->clean_map, values, nulls);
	m->clean_row = HeapTupleGetDatum(heap_form_tuple(cd, values, nulls));
	m->built = true;
	MemoryContextSwitchTo(old);
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
