/*
 * sink.c
 *		Writing one batch (see sink.h).
 *
 * Inside the caller's transaction: decode every message; insert the raw rows
 * and upsert the clean rows of each kind with one statement per table (an
 * array of rows, unnested); insert the dead letters; store the partitions'
 * next offsets. Rows and offsets commit together, which is what makes the
 * delivery exactly once.
 *
 * The rows are written in a subtransaction. If it fails with an error that
 * belongs to a message (a constraint, a bad value, a user trigger's
 * exception), the batch is split in halves and each half retried, down to
 * the single message at fault, which becomes a dead letter: one bad message
 * never costs its neighbours. Any other error (a missing table, no disk
 * space, a cancel) aborts the batch, to be retried from the stored offsets.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "convert.h"
#include "pinpipe.h"
#include "sink.h"

/* A statement that takes one array of rows of a table's row type. */
typedef struct RowsPlan
{
	Oid rowtype;
	Oid arraytype;
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

/* Per-batch description of the target tables. */
typedef struct KindTables
{
	TupleDesc raw_desc;
	PPRawMap raw_map;
	TupleDesc clean_desc;
	PPCleanMap clean_map;
} KindTables;

/* Rows table_multi_insert takes at a time (as COPY FROM buffers them). */
#define DIRECT_GROUP 1000

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
		if (raw_plans[k].plan)
			SPI_freeplan(raw_plans[k].plan);
		if (clean_plans[k].plan)
			SPI_freeplan(clean_plans[k].plan);
		if (clean_insert_plans[k].plan)
			SPI_freeplan(clean_insert_plans[k].plan);
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

/* Make sure p holds a plan for sql over the current row type of table. */
static void
ensure_rows_plan(RowsPlan *p, const char *table, const char *sql_fmt, const char *extra)
{
	Oid rowtype = table_rowtype(table);
	StringInfoData sql;

	if (p->plan != NULL && p->rowtype == rowtype)
		return;
	if (p->plan != NULL)
		SPI_freeplan(p->plan);
	p->rowtype = rowtype;
	p->arraytype = get_array_type(rowtype);
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
	Oid types[3] = { TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID };

	if (offsets_plan != NULL)
		return;
	offsets_plan = prepare("INSERT INTO pinpipe.offsets (topic, kafka_partition, next_offset, "
						   "updated_at) "
						   "SELECT t, p, n, now() FROM unnest($1, $2, $3) AS u(t, p, n) "
						   "ON CONFLICT (topic, kafka_partition) DO UPDATE SET "
						   "next_offset = EXCLUDED.next_offset, updated_at = now()",
						   3, types);
}

static void
prepare_plans(KindTables *tables)
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
	if (dead_letter_plan == NULL)
	{
		Oid types[6] = { TEXTARRAYOID,        INT4ARRAYOID,  INT8ARRAYOID,
						 TIMESTAMPTZARRAYOID, BYTEAARRAYOID, TEXTARRAYOID };

		dead_letter_plan =
			prepare("INSERT INTO pinpipe.dead_letters (topic, kafka_partition, kafka_offset, "
					"kafka_timestamp, payload, error) SELECT * FROM unnest($1, $2, $3, $4, $5, $6)",
					6, types);
	}
	ensure_offsets_plan();
}

static void
open_tables(KindTables *tables)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		tables[k].raw_desc = lookup_rowtype_tupdesc_copy(table_rowtype(raw_table((PPKind) k)), -1);
		tables[k].clean_desc =
			lookup_rowtype_tupdesc_copy(table_rowtype(clean_table((PPKind) k)), -1);
		pp_raw_map((PPKind) k, tables[k].raw_desc, true, &tables[k].raw_map);
		pp_clean_map((PPKind) k, tables[k].clean_desc, &tables[k].clean_map);
	}
}

/* Form a message's raw and clean rows, once (they survive a retry). */
static void
build_rows(PPMessage *m, KindTables *t, MemoryContext batch_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
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
	m->raw_row = HeapTupleGetDatum(heap_form_tuple(rd, values, nulls));

	memset(values, 0, sizeof(Datum) * cd->natts);
	memset(nulls, true, sizeof(bool) * cd->natts);
	pp_clean(m->kind, m->rec.values, clean);
	pp_clean_datums(m->kind, clean, &t->clean_map, values, nulls);
	m->clean_row = HeapTupleGetDatum(heap_form_tuple(cd, values, nulls));
	m->built = true;
	MemoryContextSwitchTo(old);
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
 * Whether rows can go straight into the table, as COPY FROM writes them
 * (table_multi_insert, then the indexes, then the AFTER triggers), with
 * nothing lost that INSERT would do: a plain table without BEFORE or INSTEAD
 * OF row triggers (which may change or skip a row), row security or stored
 * generated columns; its constraints are checked and its AFTER triggers
 * (foreign keys, user triggers, statement triggers with transition tables)
 * fired here, as COPY FROM does. Not when pinpipe.write_method = insert, nor
 * when Citus is installed (its distributed tables take rows only through its
 * planner).
 */
static bool
direct_insert_ok(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	TriggerDesc *trig = rel->trigdesc;

	if (pinpipe_write_method != PP_WRITE_AUTO)
		return false;
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
		(constr != NULL && constr->has_generated_stored))
		return false;
	if (trig != NULL && (trig->trig_insert_before_row || trig->trig_insert_instead_row))
		return false;
	return !OidIsValid(get_extension_oid("citus", true));
}

/*
 * Insert rows (composite datums of the table's row type) into table the way
 * COPY FROM does: table_multi_insert in groups of DIRECT_GROUP, then each
 * row's index entries (a duplicate key raises unique_violation, as INSERT
 * does), and its AFTER triggers, row and statement, as COPY FROM fires them
 * (BEFORE STATEMENT first; the AFTER ones, with their transition tables, at
 * the end). Unlike COPY, no bulk-insert ring buffer: the batches are small and
 * frequent, and their pages are better left to the background writer. Returns false, having written
 * nothing, when the table needs INSERT (see direct_insert_ok).
 */
static bool
insert_direct(const char *table, Datum *rows, int n)
{
	Oid relid = get_relname_relid(table, get_namespace_oid("pinpipe", false));
	Relation rel;
	RangeTblEntry *rte;
	EState *estate;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	HeapTupleData *tuples;
	CommandId cid;
	TupleConstr *constr;
	TransitionCaptureState *capture = NULL;
	bool triggers;

	rel = table_open(relid, RowExclusiveLock);
	if (!direct_insert_ok(rel))
	{
		table_close(rel, NoLock);
		return false;
	}
	constr = RelationGetDescr(rel)->constr;

	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecCheckRTPerms(list_make1(rte), true);

	estate = CreateExecutorState();
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, rri, 1);
	CheckValidResultRel(rri, CMD_INSERT);
	ExecOpenIndices(rri, false);

	/* as COPY FROM: AFTER triggers queued from here, BEFORE STATEMENT ones fired now */
	triggers = (rri->ri_TrigDesc != NULL);
	if (triggers)
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		AfterTriggerBeginQuery();
		capture = MakeTransitionCaptureState(rri->ri_TrigDesc, relid, CMD_INSERT);
		ExecBSInsertTriggers(estate, rri);
	}

	slots = palloc(sizeof(TupleTableSlot *) * Min(n, DIRECT_GROUP));
	for (int i = 0; i < Min(n, DIRECT_GROUP); i++)
		slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	tuples = palloc(sizeof(HeapTupleData) * Min(n, DIRECT_GROUP));
	cid = GetCurrentCommandId(true);

	for (int start = 0; start < n; start += DIRECT_GROUP)
	{
		int nused = Min(n - start, DIRECT_GROUP);
		MemoryContext old;

		for (int i = 0; i < nused; i++)
		{
			HeapTupleHeader td = DatumGetHeapTupleHeader(rows[start + i]);

			tuples[i].t_len = HeapTupleHeaderGetDatumLength(td);
			ItemPointerSetInvalid(&tuples[i].t_self);
			tuples[i].t_tableOid = relid;
			tuples[i].t_data = td;
			/* the slot copies the tuple when the table stores it: the row survives a retry */
			ExecStoreHeapTuple(&tuples[i], slots[i], false);
			if (constr != NULL)
				ExecConstraints(rri, slots[i], estate);
		}
		/* table_multi_insert may leak memory into the current context */
		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		table_multi_insert(rel, slots, nused, cid, 0, NULL);
		MemoryContextSwitchTo(old);
		for (int i = 0; i < nused; i++)
		{
			List *recheck = NIL;

			if (rri->ri_NumIndices > 0)
				recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
			if (triggers)
				ExecARInsertTriggers(estate, rri, slots[i], recheck, capture);
			list_free(recheck);
			ExecClearTuple(slots[i]);
		}
		ResetPerTupleExprContext(estate);
	}

	if (triggers)
	{
		ExecASInsertTriggers(estate, rri, capture);
		AfterTriggerEndQuery(estate);
		PopActiveSnapshot();
	}
	for (int i = 0; i < Min(n, DIRECT_GROUP); i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	/* what follows (the clean rows, a trigger) sees these rows */
	CommandCounterIncrement();
	return true;
}

/* Insert rows into table as COPY FROM does where it can (insert_direct), else with p's INSERT. */
static void
insert_rows(const char *table, RowsPlan *p, Datum *rows, int n)
{
	if (!insert_direct(table, rows, n))
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
try_clean_insert(PPKind k, Datum *rows, int n)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool inserted = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		insert_rows(clean_table(k), &clean_insert_plans[k], rows, n);
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
write_clean(PPKind k, Datum *rows, int n)
{
	if (clean_skip[k] > 0)
		clean_skip[k]--;
	else if (try_clean_insert(k, rows, n))
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

/* Write the good messages of msgs[lo, hi): raw rows, and the latest clean row per ind. */
static void
write_rows(PPMessage *msgs, int lo, int hi, KindTables *tables, MemoryContext batch_cxt)
{
	Datum *rows = palloc(sizeof(Datum) * (hi - lo));

	for (int k = 0; k < PP_NKINDS; k++)
	{
		int n = 0;
		IndSet seen;

		for (int i = lo; i < hi; i++)
		{
			if (msgs[i].kind != k || msgs[i].error != NULL)
				continue;
			if (!msgs[i].built)
				build_rows(&msgs[i], &tables[k], batch_cxt);
			rows[n++] = msgs[i].raw_row;
		}
		if (n == 0)
			continue;
		insert_rows(raw_table((PPKind) k), &raw_plans[k], rows, n);

		/* clean rows: the last message of each ind wins (walk backwards) */
		indset_init(&seen, n);
		n = 0;
		for (int i = hi - 1; i >= lo; i--)
		{
			if (msgs[i].kind != k || msgs[i].error != NULL)
				continue;
			if (indset_add(&seen, (int32) msgs[i].rec.values[0].i))
				rows[n++] = msgs[i].clean_row;
		}
		write_clean((PPKind) k, rows, n);
		pfree(seen.slots);
		pfree(seen.used);
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
 * Write msgs[lo, hi) in a subtransaction; on a message's error, split and
 * retry, and make the single message at fault a dead letter.
 */
static void
write_chunk(PPMessage *msgs, int lo, int hi, KindTables *tables, MemoryContext batch_cxt)
{
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
		write_rows(msgs, lo, hi, tables, batch_cxt);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(batch_cxt);
		edata = CopyErrorData();
		if (!error_is_message_specific(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;

		if (hi - lo == 1)
		{
			msgs[lo].error = MemoryContextStrdup(
				batch_cxt, psprintf("could not store the message: %s%s%s", edata->message,
									edata->detail ? " " : "", edata->detail ? edata->detail : ""));
		}
		else
		{
			int mid = lo + (hi - lo) / 2;

			write_chunk(msgs, lo, mid, tables, batch_cxt);
			write_chunk(msgs, mid, hi, tables, batch_cxt);
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

static void
write_dead_letters(PPMessage *msgs, int nmsgs, const char *const *topics)
{
	int n = 0;
	const char **topic;
	const char **error;
	int32 *partition;
	int64 *offset;
	Datum *ts;
	bool *ts_null;
	Datum *payload;
	bool *payload_null;
	Datum args[6];
	int dims[1];
	int lbs[1] = { 1 };
	int rc;

	for (int i = 0; i < nmsgs; i++)
		n += (msgs[i].error != NULL);
	if (n == 0)
		return;
	topic = palloc(sizeof(char *) * n);
	error = palloc(sizeof(char *) * n);
	partition = palloc(sizeof(int32) * n);
	offset = palloc(sizeof(int64) * n);
	ts = palloc(sizeof(Datum) * n);
	ts_null = palloc(sizeof(bool) * n);
	payload = palloc(sizeof(Datum) * n);
	payload_null = palloc(sizeof(bool) * n);
	n = 0;
	for (int i = 0; i < nmsgs; i++)
	{
		bytea *b;

		if (msgs[i].error == NULL)
			continue;
		topic[n] = topics[msgs[i].kind];
		error[n] = msgs[i].error;
		partition[n] = msgs[i].partition;
		offset[n] = msgs[i].offset;
		ts[n] = TimestampTzGetDatum(msgs[i].timestamp);
		ts_null[n] = !msgs[i].has_timestamp;
		/* a tombstone (null value) stays NULL, an empty value is '' */
		payload_null[n] = msgs[i].payload == NULL;
		payload[n] = (Datum) 0;
		if (!payload_null[n])
		{
			b = palloc(VARHDRSZ + msgs[i].len);
			SET_VARSIZE(b, VARHDRSZ + msgs[i].len);
			if (msgs[i].len > 0)
				memcpy(VARDATA(b), msgs[i].payload, msgs[i].len);
			payload[n] = PointerGetDatum(b);
		}
		n++;
	}
	dims[0] = n;
	args[0] = text_array(topic, n);
	args[1] = int4_array(partition, n);
	args[2] = int8_array(offset, n);
	args[3] = PointerGetDatum(construct_md_array(ts, ts_null, 1, dims, lbs, TIMESTAMPTZOID, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(
		construct_md_array(payload, payload_null, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
	/* the array has its own copy: free ours before the insert makes more (large messages) */
	for (int i = 0; i < n; i++)
	{
		if (!payload_null[i])
			pfree(DatumGetPointer(payload[i]));
	}
	args[5] = text_array(error, n);
	rc = SPI_execute_plan(dead_letter_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: dead letter insert failed: %s", SPI_result_code_string(rc));
}

/* Store next offsets (inside the caller's transaction and SPI connection). */
static void
write_offsets(const PPOffset *offsets, int noffsets)
{
	const char **topic = palloc(sizeof(char *) * noffsets);
	int32 *partition = palloc(sizeof(int32) * noffsets);
	int64 *next = palloc(sizeof(int64) * noffsets);
	Datum args[3];
	int rc;

	if (noffsets == 0)
		return;
	for (int i = 0; i < noffsets; i++)
	{
		topic[i] = offsets[i].topic;
		partition[i] = offsets[i].partition;
		next[i] = offsets[i].next_offset;
	}
	args[0] = text_array(topic, noffsets);
	args[1] = int4_array(partition, noffsets);
	args[2] = int8_array(next, noffsets);
	rc = SPI_execute_plan(offsets_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "pinpipe: offset upsert failed: %s", SPI_result_code_string(rc));
}

/*
 * Write a batch and its offsets. Call inside a transaction with an active
 * snapshot; result counts rows and dead letters per kind.
 */
void
pp_sink_write(PPMessage *msgs, int nmsgs, const char *const *topics, const PPOffset *offsets,
			  int noffsets, size_t max_message_bytes, PPSinkResult *result)
{
	MemoryContext batch_cxt = CurrentMemoryContext;
	KindTables tables[PP_NKINDS];
	char errbuf[PP_ERRBUF_SIZE];

	memset(result, 0, sizeof(*result));
	for (int i = 0; i < nmsgs; i++)
	{
		PPMessage *m = &msgs[i];

		m->built = false;
		m->error = NULL;
		m->decoded = pp_decode(m->kind, m->payload, m->len, max_message_bytes, &m->rec, errbuf,
							   sizeof(errbuf));
		if (!m->decoded)
			m->error = pstrdup(errbuf);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	open_tables(tables);
	prepare_plans(tables);
	write_chunk(msgs, 0, nmsgs, tables, batch_cxt);
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

/* Free what the decoder allocated outside PostgreSQL's memory. */
void
pp_sink_release(PPMessage *msgs, int nmsgs)
{
	for (int i = 0; i < nmsgs; i++)
	{
		if (msgs[i].decoded)
			pp_record_free(&msgs[i].rec);
		msgs[i].decoded = false;
	}
}
