/*
 * sink.c
 *		Writing one decoded batch (see sink.h).
 *
 * Inside the caller's transaction: form each good message's rows
 * (convert.c); insert the raw rows and write the clean rows of each kind,
 * straight into the table as COPY FROM does (heap_write.c) or with one
 * statement per table (an array of rows, unnested); insert the dead letters;
 * store the partitions' next offsets. Rows and offsets commit together, which
 * is what makes the delivery exactly once.
 *
 * The rows are written in a subtransaction. If it fails with an error that
 * belongs to a message (a constraint, a bad value, a user trigger's
 * exception), the batch is split in halves and each half retried, down to
 * the single message at fault, which becomes a dead letter: one bad message
 * never costs its neighbours. Any other error (a missing table, no disk
 * space, a cancel) aborts the batch, to be retried from the stored offsets.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "convert.h"
#include "heap_write.h"
#include "pinpipe.h"
#include "sink.h"
#include "source.h"

/* A statement that takes one array of rows of a table's row type. */
typedef struct RowsPlan
{
	Oid rowtype;
	Oid arraytype;
	char *extra; /* what the statement was made with (an upsert's SET list) */
	SPIPlanPtr plan;
} RowsPlan;

/* The plain INSERT of an array of rows (see insert_rows) */
#define INSERT_ROWS_SQL "INSERT INTO pinpipe.%s SELECT * FROM unnest($1::pinpipe.%s[])%s"

static RowsPlan raw_plans[PP_NKINDS];
static RowsPlan clean_plans[PP_NKINDS];        /* INSERT ... ON CONFLICT (ind) DO UPDATE */
static RowsPlan clean_insert_plans[PP_NKINDS]; /* plain INSERT, tried first (see write_clean) */

/*
 * Per clean table: statements to go before a plain INSERT is tried again,
 * and the pause after the last failed try (doubled on each failure in a row,
 * up to CLEAN_MAX_BACKOFF; 0 after a success).
 */
static int clean_skip[PP_NKINDS];
static int clean_backoff[PP_NKINDS];
#define CLEAN_MAX_BACKOFF 64
static SPIPlanPtr dead_letter_plan = NULL;
static SPIPlanPtr offsets_plan = NULL;
/*
 * Whether the tables have sources (and dead letters their error_detail, key
 * and headers): a 0.1 schema, which the worker writes until it is updated,
 * has not. Checked in each transaction; the two plans above follow it.
 */
static bool with_sources = true;
static bool plans_with_sources = true;

/* One batch being written, and how. */
typedef struct SinkBatch
{
	PPMessage *msgs;
	PPKindTables tables[PP_NKINDS];
	MemoryContext cxt; /* the batch's: rows and errors survive a retry */
	PPWriteMethod write_method;
} SinkBatch;

static const char *
raw_table(PPKind kind)
{
	static const char *const names[] = { "pin_raw", "geo_raw", "user_raw" };

	return names[kind];
}

static const char *
clean_table(PPKind kind)
{
	static const char *const names[] = { "pin_clean", "geo_clean", "user_clean" };

	return names[kind];
}

static Oid
table_rowtype(const char *table)
{
	Oid nsp = get_namespace_oid("pinpipe", false);
	Oid relid = get_relname_relid(table, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE), errmsg("table pinpipe.%s does not exist", table),
				 errhint("Update the extension's objects to the installed library's "
						 "version with ALTER EXTENSION pinpipe UPDATE.")));
	return get_rel_type_id(relid);
}

/* Forget the prepared statements (after an error, or a recreated extension). */
void
pp_sink_reset_plans(void)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		RowsPlan *plans[3] = { &raw_plans[k], &clean_plans[k], &clean_insert_plans[k] };

		for (int i = 0; i < 3; i++)
		{
			if (plans[i]->plan)
				SPI_freeplan(plans[i]->plan);
			if (plans[i]->extra)
				pfree(plans[i]->extra);
		}
	}
	memset(raw_plans, 0, sizeof(raw_plans));
	memset(clean_plans, 0, sizeof(clean_plans));
	memset(clean_insert_plans, 0, sizeof(clean_insert_plans));
	if (dead_letter_plan)
		SPI_freeplan(dead_letter_plan);
	if (offsets_plan)
		SPI_freeplan(offsets_plan);
	dead_letter_plan = NULL;
	offsets_plan = NULL;
}

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Make sure p holds a plan for sql over the current row type of table, made
 * with extra (a clean table's columns, which ALTER TABLE may have changed).
 */
static void
ensure_rows_plan(RowsPlan *p, const char *table, const char *sql_fmt, const char *extra)
{
	Oid rowtype = table_rowtype(table);
	StringInfoData sql;

	if (p->plan != NULL && p->rowtype == rowtype && strcmp(p->extra, extra) == 0)
		return;
	if (p->plan != NULL)
		SPI_freeplan(p->plan);
	if (p->extra != NULL)
		pfree(p->extra);
	p->plan = NULL;
	p->rowtype = rowtype;
	p->arraytype = get_array_type(rowtype);
	p->extra = MemoryContextStrdup(TopMemoryContext, extra);
	initStringInfo(&sql);
	appendStringInfo(&sql, sql_fmt, table, table, extra);
	p->plan = prepare(sql.data, 1, &p->arraytype);
}

/* "SET a = EXCLUDED.a, ..." for every column of a clean table but ind. */
static char *
upsert_set_list(TupleDesc desc)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		const char *name;

		if (attr->attisdropped || strcmp(NameStr(attr->attname), "ind") == 0)
			continue;
		name = quote_identifier(NameStr(attr->attname));
		appendStringInfo(&buf, "%s%s = EXCLUDED.%s", buf.len > 0 ? ", " : "", name, name);
	}
	return buf.data;
}

static void
ensure_offsets_plan(void)
{
	Oid types[4] = { TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT8ARRAYOID };

	with_sources = pp_sources_exist();
	if (offsets_plan != NULL && plans_with_sources != with_sources)
	{
		SPI_freeplan(offsets_plan);
		offsets_plan = NULL;
		if (dead_letter_plan)
			SPI_freeplan(dead_letter_plan);
		dead_letter_plan = NULL;
	}
	plans_with_sources = with_sources;
	if (offsets_plan != NULL)
		return;
	if (!with_sources)
	{
		Oid types01[3] = { TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID };

		offsets_plan = prepare("INSERT INTO pinpipe.offsets (topic, kafka_partition, next_offset, "
							   "updated_at) "
							   "SELECT t, p, n, now() FROM unnest($1, $2, $3) AS u(t, p, n) "
							   "ON CONFLICT (topic, kafka_partition) DO UPDATE SET "
							   "next_offset = EXCLUDED.next_offset, updated_at = now()",
							   3, types01);
		return;
	}
	offsets_plan = prepare("INSERT INTO pinpipe.offsets (topic, source, kafka_partition, "
						   "next_offset, updated_at) "
						   "SELECT t, s, p, n, now() FROM unnest($1, $2, $3, $4) AS u(t, s, p, n) "
						   "ON CONFLICT (topic, source, kafka_partition) DO UPDATE SET "
						   "next_offset = EXCLUDED.next_offset, updated_at = now()",
						   4, types);
}

static void
prepare_plans(const PPKindTables *tables)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		ensure_rows_plan(&raw_plans[k], raw_table((PPKind) k), INSERT_ROWS_SQL, "");
		ensure_rows_plan(&clean_plans[k], clean_table((PPKind) k),
						 "INSERT INTO pinpipe.%s SELECT * FROM unnest($1::pinpipe.%s[]) "
						 "ON CONFLICT (ind) DO UPDATE SET %s",
						 upsert_set_list(tables[k].clean_desc));
		ensure_rows_plan(&clean_insert_plans[k], clean_table((PPKind) k), INSERT_ROWS_SQL, "");
	}
	ensure_offsets_plan();
	if (dead_letter_plan == NULL && !with_sources)
	{
		Oid types01[6] = { TEXTARRAYOID,        INT4ARRAYOID,  INT8ARRAYOID,
						   TIMESTAMPTZARRAYOID, BYTEAARRAYOID, TEXTARRAYOID };

		dead_letter_plan =
			prepare("INSERT INTO pinpipe.dead_letters (topic, kafka_partition, kafka_offset, "
					"kafka_timestamp, payload, error) SELECT * FROM unnest($1, $2, $3, $4, $5, $6)",
					6, types01);
	}
	if (dead_letter_plan == NULL)
	{
		Oid types[10] = { TEXTARRAYOID,        INT4ARRAYOID,  INT4ARRAYOID, INT8ARRAYOID,
						  TIMESTAMPTZARRAYOID, BYTEAARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
						  BYTEAARRAYOID,       TEXTARRAYOID };

		dead_letter_plan = prepare(
			"INSERT INTO pinpipe.dead_letters (topic, source, kafka_partition, kafka_offset, "
			"kafka_timestamp, payload, error, error_detail, kafka_key, kafka_headers) "
			"SELECT t, s, p, o, ts, b, e, d, k, h::jsonb "
			"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS u(t, s, p, o, ts, b, e, "
			"d, k, h)",
			10, types);
	}
	ensure_offsets_plan();
}

static void
open_tables(PPKindTables *tables)
{
	for (int k = 0; k < PP_NKINDS; k++)
		pp_kind_tables((PPKind) k, table_rowtype(raw_table((PPKind) k)),
					   table_rowtype(clean_table((PPKind) k)), &tables[k]);
}

static void
run_rows(RowsPlan *p, Datum *rows, int n)
{
	int16 typlen;
	bool typbyval;
	char typalign;
	Datum arg;
	int rc;

	if (n == 0)
		return;
	get_typlenbyvalalign(p->rowtype, &typlen, &typbyval, &typalign);
	arg = PointerGetDatum(construct_array(rows, n, p->rowtype, typlen, typbyval, typalign));
	rc = SPI_execute_plan(p->plan, &arg, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: insert failed: %s", SPI_result_code_string(rc));
	/* a copy of every row: free it before the next table's */
	pfree(DatumGetPointer(arg));
}

/*
 * An open-addressing set of ind values, to keep one clean row per ind in a
 * statement (ON CONFLICT DO UPDATE cannot touch a row twice).
 */
typedef struct IndSet
{
	uint32 mask;
	int32 *slots;
	bool *used;
} IndSet;

static void
indset_init(IndSet *set, int n)
{
	uint32 size = 16;

	while (size < (uint32) n * 2)
		size <<= 1;
	set->mask = size - 1;
	set->slots = palloc(sizeof(int32) * size);
	set->used = palloc0(sizeof(bool) * size);
}

/* Add ind; false if it was there already. */
static bool
indset_add(IndSet *set, int32 ind)
{
	uint32 h = ((uint32) ind * 2654435761U) & set->mask;

	while (set->used[h])
	{
		if (set->slots[h] == ind)
			return false;
		h = (h + 1) & set->mask;
	}
	set->used[h] = true;
	set->slots[h] = ind;
	return true;
}

/*
 * Insert rows into table as COPY FROM does where it can (heap_write.c), else
 * with p's INSERT. Not straight into the table when pinpipe.write_method =
 * insert.
 */
static void
insert_rows(const char *table, RowsPlan *p, Datum *rows, int n, PPWriteMethod method)
{
	if (method == PP_WRITE_AUTO &&
		pp_heap_insert(get_relname_relid(table, get_namespace_oid("pinpipe", false)), rows, n))
		return;
	run_rows(p, rows, n);
}

/* Whether edata is a duplicate key in clean table k itself (an ind it has already). */
static bool
is_clean_conflict(ErrorData *edata, PPKind k)
{
	return edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && edata->schema_name != NULL &&
		   edata->table_name != NULL && strcmp(edata->schema_name, "pinpipe") == 0 &&
		   strcmp(edata->table_name, clean_table(k)) == 0;
}

/*
 * Try the clean rows as a plain INSERT, in a subtransaction; false, with
 * nothing written, if one of them has an ind the table has already. Any
 * other error is raised again, for write_chunk.
 */
static bool
try_clean_insert(PPKind k, Datum *rows, int n, PPWriteMethod method)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool inserted = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		insert_rows(clean_table(k), &clean_insert_plans[k], rows, n, method);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
		if (!is_clean_conflict(edata, k))
			ReThrowError(edata);
		FreeErrorData(edata);
		inserted = false;
	}
	PG_END_TRY();
	return inserted;
}

/*
 * Write the clean rows of kind k (one per ind). New inds are the common case
 * of a stream, and a plain INSERT writes them for less than INSERT ... ON
 * CONFLICT DO UPDATE, which probes the primary key before each speculative
 * insertion and confirms it after (a second WAL record). So a plain INSERT
 * is tried first; when a row's ind is in the table already, it stops there,
 * is rolled back, and the upsert writes the rows. After such a failure the
 * next 1, 2, 4 ... 64 statements on the table go straight to the upsert
 * (a stream of updates costs a failed try now and then only).
 */
static void
write_clean(PPKind k, Datum *rows, int n, PPWriteMethod method)
{
	if (clean_skip[k] > 0)
		clean_skip[k]--;
	else if (try_clean_insert(k, rows, n, method))
	{
		clean_backoff[k] = 0;
		return;
	}
	else
	{
		clean_backoff[k] = Min(Max(1, clean_backoff[k] * 2), CLEAN_MAX_BACKOFF);
		clean_skip[k] = clean_backoff[k];
	}
	run_rows(&clean_plans[k], rows, n);
}

/* Collect the raw rows of the good messages of kind k in msgs[lo, hi), formed if need be. */
static int
collect_raw_rows(SinkBatch *b, PPKind k, int lo, int hi, Datum *rows)
{
	int n = 0;

	for (int i = lo; i < hi; i++)
	{
		PPMessage *m = &b->msgs[i];

		if (m->kind != k || m->error != NULL)
			continue;
		if (!m->built)
			pp_form_rows(m, &b->tables[k], b->cxt);
		rows[n++] = m->raw_row;
	}
	return n;
}

/* Collect the clean rows of kind k in msgs[lo, hi): the last message of each ind wins. */
static int
collect_clean_rows(SinkBatch *b, PPKind k, int lo, int hi, int nraw, Datum *rows)
{
	IndSet seen;
	int n = 0;

	indset_init(&seen, nraw);
	for (int i = hi - 1; i >= lo; i--)
	{
		PPMessage *m = &b->msgs[i];

		if (m->kind != k || m->error != NULL)
			continue;
		if (indset_add(&seen, (int32) m->rec.values[0].i))
			rows[n++] = m->clean_row;
	}
	pfree(seen.slots);
	pfree(seen.used);
	return n;
}

/* Write the good messages of msgs[lo, hi): raw rows, and the latest clean row per ind. */
static void
write_rows(SinkBatch *b, int lo, int hi)
{
	Datum *rows = palloc(sizeof(Datum) * (hi - lo));

	for (int k = 0; k < PP_NKINDS; k++)
	{
		int n = collect_raw_rows(b, (PPKind) k, lo, hi, rows);

		if (n == 0)
			continue;
		insert_rows(raw_table((PPKind) k), &raw_plans[k], rows, n, b->write_method);
		n = collect_clean_rows(b, (PPKind) k, lo, hi, n, rows);
		write_clean((PPKind) k, rows, n, b->write_method);
	}
	pfree(rows);
}

/* True for errors that belong to one message rather than to the batch. */
static bool
error_is_message_specific(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_EXTERNAL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
		case ERRCODE_SQL_ROUTINE_EXCEPTION:
		case ERRCODE_PLPGSQL_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * A stable reason for a message the database refused, one that groups: what
 * was violated and where, without the values (they go to error_detail).
 */
static char *
store_error_reason(const ErrorData *edata)
{
	const char *table = edata->table_name ? edata->table_name : "a table";

	switch (edata->sqlerrcode)
	{
		case ERRCODE_UNIQUE_VIOLATION:
			return psprintf("duplicate key in %s", table);
		case ERRCODE_NOT_NULL_VIOLATION:
			return psprintf("null value in column %s of %s",
							edata->column_name ? edata->column_name : "(unknown)", table);
		case ERRCODE_CHECK_VIOLATION:
			return psprintf("check constraint %s of %s violated",
							edata->constraint_name ? edata->constraint_name : "(unknown)", table);
		case ERRCODE_FOREIGN_KEY_VIOLATION:
			return psprintf("foreign key %s of %s violated",
							edata->constraint_name ? edata->constraint_name : "(unknown)", table);
		case ERRCODE_EXCLUSION_VIOLATION:
			return psprintf("exclusion constraint %s of %s violated",
							edata->constraint_name ? edata->constraint_name : "(unknown)", table);
		default:
			return psprintf("refused by the database (SQLSTATE %s)",
							unpack_sql_state(edata->sqlerrcode));
	}
}

/*
 * Write msgs[lo, hi) in a subtransaction; on a message's error, split and
 * retry, and make the single message at fault a dead letter.
 */
static void
write_chunk(SinkBatch *b, int lo, int hi)
{
	PPMessage *msgs = b->msgs;
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool any = false;

	for (int i = lo; i < hi && !any; i++)
		any = (msgs[i].error == NULL);
	if (!any)
		return;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		write_rows(b, lo, hi);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(b->cxt);
		edata = CopyErrorData();
		if (!error_is_message_specific(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;

		if (hi - lo == 1)
		{
			MemoryContext prev = MemoryContextSwitchTo(b->cxt);

			msgs[lo].error = store_error_reason(edata);
			msgs[lo].error_detail = psprintf("%s%s%s", edata->message, edata->detail ? " " : "",
											 edata->detail ? edata->detail : "");
			MemoryContextSwitchTo(prev);
		}
		else
		{
			int mid = lo + (hi - lo) / 2;

			write_chunk(b, lo, mid);
			write_chunk(b, mid, hi);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

static Datum
text_array(const char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
int4_array(const int32 *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(vals[i]);
	return PointerGetDatum(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
}

static Datum
int8_array(const int64 *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(vals[i]);
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* A bytea array of the given values, NULL where nulls[i]. */
static Datum
bytea_array(Datum *values, bool *nulls, int n)
{
	int dims[1] = { n };
	int lbs[1] = { 1 };

	return PointerGetDatum(
		construct_md_array(values, nulls, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
}

/* A text array of the given strings, NULL where strs[i] is NULL. */
static Datum
nullable_text_array(const char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * n);
	bool *nulls = palloc(sizeof(bool) * n);
	int dims[1] = { n };
	int lbs[1] = { 1 };

	for (int i = 0; i < n; i++)
	{
		nulls[i] = strs[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strs[i]);
	}
	return PointerGetDatum(
		construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

static void
write_dead_letters(PPMessage *msgs, int nmsgs, const char *const *topics)
{
	int n = 0;
	const char **topic;
	const char **error;
	const char **detail;
	const char **headers;
	int32 *source;
	int32 *partition;
	int64 *offset;
	Datum *ts;
	bool *ts_null;
	Datum *payload;
	bool *payload_null;
	Datum *key;
	bool *key_null;
	Datum args[10];
	int dims[1];
	int lbs[1] = { 1 };
	int rc;

	for (int i = 0; i < nmsgs; i++)
		n += (msgs[i].error != NULL);
	if (n == 0)
		return;
	topic = palloc(sizeof(char *) * n);
	error = palloc(sizeof(char *) * n);
	detail = palloc(sizeof(char *) * n);
	headers = palloc(sizeof(char *) * n);
	source = palloc(sizeof(int32) * n);
	partition = palloc(sizeof(int32) * n);
	offset = palloc(sizeof(int64) * n);
	ts = palloc(sizeof(Datum) * n);
	ts_null = palloc(sizeof(bool) * n);
	payload = palloc(sizeof(Datum) * n);
	payload_null = palloc(sizeof(bool) * n);
	key = palloc(sizeof(Datum) * n);
	key_null = palloc(sizeof(bool) * n);
	n = 0;
	for (int i = 0; i < nmsgs; i++)
	{
		if (msgs[i].error == NULL)
			continue;
		topic[n] = topics[msgs[i].kind];
		error[n] = msgs[i].error;
		detail[n] = msgs[i].error_detail;
		/* a 0.1 table has the whole error in one column */
		if (!with_sources && detail[n] != NULL)
			error[n] = detail[n];
		headers[n] = msgs[i].headers;
		source[n] = msgs[i].source;
		partition[n] = msgs[i].partition;
		offset[n] = msgs[i].offset;
		ts[n] = TimestampTzGetDatum(msgs[i].timestamp);
		ts_null[n] = !msgs[i].has_timestamp;
		/* a tombstone (null value) stays NULL, an empty value is '' */
		payload_null[n] = msgs[i].payload == NULL;
		payload[n] =
			payload_null[n] ? (Datum) 0 : PointerGetDatum(pp_bytea(msgs[i].payload, msgs[i].len));
		key_null[n] = msgs[i].key == NULL;
		key[n] = key_null[n] ? (Datum) 0 : PointerGetDatum(pp_bytea(msgs[i].key, msgs[i].keylen));
		n++;
	}
	dims[0] = n;
	args[0] = text_array(topic, n);
	args[1] = int4_array(source, n);
	args[2] = int4_array(partition, n);
	args[3] = int8_array(offset, n);
	args[4] = PointerGetDatum(construct_md_array(ts, ts_null, 1, dims, lbs, TIMESTAMPTZOID, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[5] = bytea_array(payload, payload_null, n);
	if (!with_sources)
	{
		/* 0.1: topic, partition, offset, timestamp, payload, error */
		args[1] = args[2];
		args[2] = args[3];
		args[3] = args[4];
		args[4] = args[5];
	}
	/* the array has its own copy: free ours before the insert makes more (large messages) */
	for (int i = 0; i < n; i++)
	{
		if (!payload_null[i])
			pfree(DatumGetPointer(payload[i]));
	}
	args[with_sources ? 6 : 5] = text_array(error, n);
	args[7] = nullable_text_array(detail, n);
	args[8] = bytea_array(key, key_null, n);
	args[9] = nullable_text_array(headers, n);
	rc = SPI_execute_plan(dead_letter_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: dead letter insert failed: %s", SPI_result_code_string(rc));
}

/* Store next offsets (inside the caller's transaction and SPI connection). */
static void
write_offsets(const PPOffset *offsets, int noffsets)
{
	const char **topic = palloc(sizeof(char *) * noffsets);
	int32 *source = palloc(sizeof(int32) * noffsets);
	int32 *partition = palloc(sizeof(int32) * noffsets);
	int64 *next = palloc(sizeof(int64) * noffsets);
	Datum args[4];
	int rc;

	if (noffsets == 0)
		return;
	for (int i = 0; i < noffsets; i++)
	{
		topic[i] = offsets[i].topic;
		source[i] = offsets[i].source;
		partition[i] = offsets[i].partition;
		next[i] = offsets[i].next_offset;
	}
	args[0] = text_array(topic, noffsets);
	args[1] = int4_array(source, noffsets);
	args[2] = int4_array(partition, noffsets);
	args[3] = int8_array(next, noffsets);
	if (!with_sources)
	{
		/* 0.1: topic, partition, next offset */
		args[1] = args[2];
		args[2] = args[3];
	}
	rc = SPI_execute_plan(offsets_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: offset upsert failed: %s", SPI_result_code_string(rc));
}

/*
 * Write a decoded batch and its offsets (messages whose error is set are dead
 * letters already). Call inside a transaction with an active snapshot;
 * result counts rows and dead letters per kind. With topics NULL no dead
 * letter is written (replay_dead_letters: the failures have one already),
 * and the caller reads each message's error.
 */
void
pp_sink_write(PPMessage *msgs, int nmsgs, const char *const *topics, const PPOffset *offsets,
			  int noffsets, PPWriteMethod write_method, PPSinkResult *result)
{
	SinkBatch b;

	memset(result, 0, sizeof(*result));
	b.msgs = msgs;
	b.cxt = CurrentMemoryContext;
	b.write_method = write_method;
	for (int i = 0; i < nmsgs; i++)
		msgs[i].built = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	open_tables(b.tables);
	prepare_plans(b.tables);
	write_chunk(&b, 0, nmsgs);
	if (topics != NULL)
		write_dead_letters(msgs, nmsgs, topics);
	write_offsets(offsets, noffsets);
	SPI_finish();

	for (int i = 0; i < nmsgs; i++)
	{
		if (msgs[i].error != NULL)
			result->dead_letters[msgs[i].kind]++;
		else
			result->rows[msgs[i].kind]++;
	}
}

/* Store offsets alone (a partition's resolved start, or a gap's end). */
void
pp_store_offsets(const PPOffset *offsets, int noffsets)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ensure_offsets_plan();
	write_offsets(offsets, noffsets);
	SPI_finish();
}

/*
 * Record a gap in a partition (messages deleted before they were read, or a
 * recreated topic) in pinpipe.offset_gaps, with the offset it resumes at,
 * inside the caller's transaction.
 */
void
pp_store_offset_gap(const PPOffsetGap *gap)
{
	Datum args[6];
	Oid types[6] = { TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, TEXTOID };
	PPOffset off;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(gap->topic);
	args[1] = Int32GetDatum(gap->partition);
	args[2] = Int64GetDatum(gap->expected_offset);
	args[3] = Int64GetDatum(gap->resumed_offset);
	args[4] = Int64GetDatum(gap->lost_messages);
	args[5] = CStringGetTextDatum(gap->reason);
	if (SPI_execute_with_args("INSERT INTO pinpipe.offset_gaps (topic, kafka_partition, "
							  "expected_offset, resumed_offset, lost_messages, reason) "
							  "VALUES ($1, $2, $3, $4, $5, $6)",
							  6, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: recording an offset gap failed");
	off.topic = gap->topic;
	off.source = gap->source;
	off.partition = gap->partition;
	off.next_offset = gap->resumed_offset;
	ensure_offsets_plan();
	write_offsets(&off, 1);
	SPI_finish();
}
