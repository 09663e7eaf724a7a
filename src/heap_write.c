/*
 * heap_write.c
 *		Rows straight into a table, as COPY FROM writes them (see heap_write.h).
 *
 * The executor calls here (ExecInitRangeTable, ExecInsertIndexTuples,
 * ExecARInsertTriggers, ...) are PostgreSQL 15's; pinpipe.h refuses to build
 * for another major version.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "heap_write.h"
#include "pinpipe.h"

/* Rows table_multi_insert takes at a time (as COPY FROM buffers them). */
#define DIRECT_GROUP 1000

/*
 * Whether rows can go straight into the table, as COPY FROM writes them
 * (table_multi_insert, then the indexes, then the AFTER triggers), with
 * nothing lost that INSERT would do: a plain table without BEFORE or INSTEAD
 * OF row triggers (which may change or skip a row), row security or stored
 * generated columns; its constraints are checked and its AFTER triggers
 * (foreign keys, user triggers, statement triggers with transition tables)
 * fired here, as COPY FROM does. Not when Citus is installed (its
 * distributed tables take rows only through its planner).
 */
static bool
direct_insert_ok(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	TriggerDesc *trig = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
		(constr != NULL && constr->has_generated_stored))
		return false;
	if (trig != NULL && (trig->trig_insert_before_row || trig->trig_insert_instead_row))
		return false;
	return !OidIsValid(get_extension_oid("citus", true));
}

/*
 * Insert rows (composite datums of the table's row type) into table relid the way
 * COPY FROM does: table_multi_insert in groups of DIRECT_GROUP, then each
 * row's index entries (a duplicate key raises unique_violation, as INSERT
 * does), and its AFTER triggers, row and statement, as COPY FROM fires them
 * (BEFORE STATEMENT first; the AFTER ones, with their transition tables, at
 * the end). Unlike COPY, no bulk-insert ring buffer: the batches are small and
 * frequent, and their pages are better left to the background writer. Returns false, having written
 * nothing, when the table needs INSERT (see direct_insert_ok).
 */
bool
pp_heap_insert(Oid relid, Datum *rows, int n)
{
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
