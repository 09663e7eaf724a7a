/*
 * clean.c
 *		SQL-callable cleaning functions: thin wrappers around rules.c and
 *		record.c, so SQL and the worker clean a value the same way.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "convert.h"
#include "pinpipe.h"

PG_FUNCTION_INFO_V1(clean_follower_count);
PG_FUNCTION_INFO_V1(make_coordinates);
PG_FUNCTION_INFO_V1(clean_text);
PG_FUNCTION_INFO_V1(clean_save_location);
PG_FUNCTION_INFO_V1(make_user_name);
PG_FUNCTION_INFO_V1(age_group);
PG_FUNCTION_INFO_V1(parse_timestamp);
PG_FUNCTION_INFO_V1(clean_pin);
PG_FUNCTION_INFO_V1(clean_geo);
PG_FUNCTION_INFO_V1(clean_user);
PG_FUNCTION_INFO_V1(clean_pin_raw);
PG_FUNCTION_INFO_V1(clean_geo_raw);
PG_FUNCTION_INFO_V1(clean_user_raw);
PG_FUNCTION_INFO_V1(message_error);

/* The bytes of a text argument (in the database encoding). */
static PPStr
text_arg(FunctionCallInfo fcinfo, int argno)
{
	text *t = PG_GETARG_TEXT_PP(argno);
	PPStr s;

	s.ptr = VARDATA_ANY(t);
	s.len = VARSIZE_ANY_EXHDR(t);
	return s;
}

/* clean_follower_count(text) -> bigint: '217k' -> 217000, messy -> NULL */
Datum
clean_follower_count(PG_FUNCTION_ARGS)
{
	PPStr s = text_arg(fcinfo, 0);
	int64_t result;

	if (!pp_follower_count(s.ptr, s.len, &result))
		PG_RETURN_NULL();
	PG_RETURN_INT64(result);
}

/* make_coordinates(latitude, longitude) -> float8[] */
Datum
make_coordinates(PG_FUNCTION_ARGS)
{
	Datum elems[2];

	if (!pp_coordinates_valid(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1)))
		PG_RETURN_NULL();
	elems[0] = PG_GETARG_DATUM(0);
	elems[1] = PG_GETARG_DATUM(1);
	PG_RETURN_ARRAYTYPE_P(
		construct_array(elems, 2, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* clean_text(text) -> text: NULL for blanks and placeholders */
Datum
clean_text(PG_FUNCTION_ARGS)
{
	PPStr s = text_arg(fcinfo, 0);

	if (pp_clean_text(s).ptr == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}

/* clean_save_location(text) -> text: 'Local save in /x' -> '/x' */
Datum
clean_save_location(PG_FUNCTION_ARGS)
{
	PPStr in = text_arg(fcinfo, 0);
	PPStr out = pp_save_location(in);

	if (out.ptr == in.ptr)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.ptr, (int) out.len));
}

/* make_user_name(first, last) -> text; either may be missing (not STRICT) */
Datum
make_user_name(PG_FUNCTION_ARGS)
{
	PPStr none = { NULL, 0 };
	PPStr first = PG_ARGISNULL(0) ? none : pp_clean_text(text_arg(fcinfo, 0));
	PPStr last = PG_ARGISNULL(1) ? none : pp_clean_text(text_arg(fcinfo, 1));
	StringInfoData buf;

	if (first.ptr == NULL && last.ptr == NULL)
		PG_RETURN_NULL();
	if (first.ptr == NULL || last.ptr == NULL)
		PG_RETURN_DATUM(PG_GETARG_DATUM(first.ptr != NULL ? 0 : 1));
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, first.ptr, (int) first.len);
	appendStringInfoChar(&buf, ' ');
	appendBinaryStringInfo(&buf, last.ptr, (int) last.len);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/* age_group(int) -> text: '18-24', '25-35', '36-50', '+50'; NULL under 18 */
Datum
age_group(PG_FUNCTION_ARGS)
{
	const char *group = pp_age_group(PG_GETARG_INT32(0));

	if (group == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(group));
}

/* parse_timestamp(text) -> timestamp, NULL for anything not in the two forms */
Datum
parse_timestamp(PG_FUNCTION_ARGS)
{
	PPStr s = text_arg(fcinfo, 0);
	int64_t usecs;

	if (!pp_parse_timestamp(s.ptr, s.len, &usecs))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMP((Timestamp) usecs);
}

/* Build the clean composite (the function's result type) from raw values. */
static Datum
clean_result(FunctionCallInfo fcinfo, PPKind kind, const PPValue *raw)
{
	TupleDesc tupdesc;
	PPCleanMap map;
	PPCleanValue clean[PP_MAX_FIELDS];
	Datum *values;
	bool *nulls;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	pp_clean_map(kind, tupdesc, &map);
	pp_clean(kind, raw, clean);

	values = palloc0(sizeof(Datum) * tupdesc->natts);
	nulls = palloc(sizeof(bool) * tupdesc->natts);
	memset(nulls, true, sizeof(bool) * tupdesc->natts);
	pp_clean_datums(kind, clean, &map, values, nulls);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * Clean a JSON document through the worker's own decoder. A document the
 * worker would refuse (a dead letter) gives NULL.
 */
static Datum
clean_jsonb(FunctionCallInfo fcinfo, PPKind kind)
{
	Jsonb *jb = PG_GETARG_JSONB_P(0);
	char *json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	size_t len = strlen(json);
	PPRecord rec;
	char errbuf[PP_ERRBUF_SIZE];
	volatile Datum result = (Datum) 0;

	if (GetDatabaseEncoding() != PG_UTF8)
	{
		json = pg_server_to_any(json, (int) len, PG_UTF8);
		len = strlen(json);
	}
	if (!pp_decode(kind, json, len, SIZE_MAX, &rec, errbuf, sizeof(errbuf)))
		PG_RETURN_NULL();
	PG_TRY();
	{
		result = clean_result(fcinfo, kind, rec.values);
	}
	PG_FINALLY();
	{
		pp_record_free(&rec);
	}
	PG_END_TRY();
	PG_RETURN_DATUM(result);
}

/* Clean a row of a raw table (the reclean() path). */
static Datum
clean_raw_row(FunctionCallInfo fcinfo, PPKind kind)
{
	HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
	TupleDesc tupdesc =
		lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
	HeapTupleData tuple;
	PPRawMap map;
	PPValue raw[PP_MAX_FIELDS];
	Datum *values = palloc(sizeof(Datum) * tupdesc->natts);
	bool *nulls = palloc(sizeof(bool) * tupdesc->natts);

	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	heap_deform_tuple(&tuple, tupdesc, values, nulls);
	pp_raw_map(kind, tupdesc, false, &map);
	ReleaseTupleDesc(tupdesc);
	pp_values_from_datums(kind, &map, values, nulls, raw);
	PG_RETURN_DATUM(clean_result(fcinfo, kind, raw));
}

Datum
clean_pin(PG_FUNCTION_ARGS)
{
	return clean_jsonb(fcinfo, PP_PIN);
}

Datum
clean_geo(PG_FUNCTION_ARGS)
{
	return clean_jsonb(fcinfo, PP_GEO);
}

Datum
clean_user(PG_FUNCTION_ARGS)
{
	return clean_jsonb(fcinfo, PP_USER);
}

Datum
clean_pin_raw(PG_FUNCTION_ARGS)
{
	return clean_raw_row(fcinfo, PP_PIN);
}

Datum
clean_geo_raw(PG_FUNCTION_ARGS)
{
	return clean_raw_row(fcinfo, PP_GEO);
}

Datum
clean_user_raw(PG_FUNCTION_ARGS)
{
	return clean_raw_row(fcinfo, PP_USER);
}

/*
 * message_error(kind text, payload bytea) -> text: why the worker would
 * refuse this message as a dead letter, or NULL when it would accept it.
 */
Datum
message_error(PG_FUNCTION_ARGS)
{
	char *kindname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea *payload = PG_GETARG_BYTEA_PP(1);
	PPKind kind;
	PPRecord rec;
	char errbuf[PP_ERRBUF_SIZE];

	if (!pp_kind_from_name(kindname, &kind))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("unknown record kind \"%s\"", kindname),
						errhint("The kinds are \"pin\", \"geo\" and \"user\".")));
	if (!pp_decode(kind, VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
				   (size_t) pinpipe_max_message_bytes, &rec, errbuf, sizeof(errbuf)))
		PG_RETURN_TEXT_P(cstring_to_text(errbuf));
	pp_record_free(&rec);
	PG_RETURN_NULL();
}
