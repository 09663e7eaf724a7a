/*
 * source.c
 *		Finding and beginning the topics' sources in pinpipe.sources (see
 *		source.h), inside the caller's transaction.
 *
 * pinpipe.sources is locked (SHARE ROW EXCLUSIVE) before a source is looked
 * up to be begun, so that two workers consuming partitions of the same topic
 * agree on one new source: the second finds the first's and takes it.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "source.h"

/* The caller's memory context: strings returned must outlive SPI_finish. */
static MemoryContext caller_cxt;

static char *
keep(const char *s)
{
	return s != NULL ? MemoryContextStrdup(caller_cxt, s) : NULL;
}

/*
 * Whether the extension's tables have sources (version 0.2 on); the worker
 * runs on a 0.1 schema too, until it is updated. Call in a transaction.
 */
bool
pp_sources_exist(void)
{
	Oid nsp = get_namespace_oid("pinpipe", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("sources", nsp));
}

const char *
pp_source_reason_name(PPSourceReason reason)
{
	static const char *const names[] = { "first use", "topic recreated", "cluster changed",
										 "prefix changed" };

	return names[reason];
}

static void
lock_sources(void)
{
	if (SPI_execute("LOCK TABLE pinpipe.sources IN SHARE ROW EXCLUSIVE MODE", false, 0) !=
		SPI_OK_UTILITY)
		elog(ERROR, "pinpipe: could not lock pinpipe.sources");
}

/* The topic's latest source into out (id 0 if it has none). */
static void
latest_source(const char *topic, PPSource *out)
{
	Datum arg = CStringGetTextDatum(topic);
	Oid argtype = TEXTOID;
	bool isnull;
	char *reason;

	memset(out, 0, sizeof(*out));
	if (SPI_execute_with_args("SELECT id, cluster_id, reason FROM pinpipe.sources WHERE topic = $1 "
							  "ORDER BY id DESC LIMIT 1",
							  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pinpipe: reading pinpipe.sources failed");
	if (SPI_processed == 0)
		return;
	out->id =
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	out->cluster_id = keep(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	reason = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	for (int r = PP_SOURCE_FIRST_USE; r <= PP_SOURCE_PREFIX_CHANGED; r++)
	{
		if (strcmp(reason, pp_source_reason_name((PPSourceReason) r)) == 0)
			out->reason = (PPSourceReason) r;
	}
}

/* Insert a new source of topic; out describes it. */
static void
insert_source(const char *topic, const char *cluster, PPSourceReason reason, int32 previous,
			  PPSource *out)
{
	Datum args[3];
	char nulls[3] = { ' ', cluster ? ' ' : 'n', ' ' };
	Oid types[3] = { TEXTOID, TEXTOID, TEXTOID };
	bool isnull;

	args[0] = CStringGetTextDatum(topic);
	args[1] = cluster ? CStringGetTextDatum(cluster) : (Datum) 0;
	args[2] = CStringGetTextDatum(pp_source_reason_name(reason));
	if (SPI_execute_with_args("INSERT INTO pinpipe.sources (topic, cluster_id, reason) "
							  "VALUES ($1, $2, $3) RETURNING id",
							  3, types, args, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "pinpipe: could not insert into pinpipe.sources");
	out->id =
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	out->cluster_id = keep(cluster);
	out->begun = true;
	out->previous = previous;
	out->reason = reason;
}

/*
 * Find the source of topic (of record kind `kind`) to consume on the cluster
 * with id `cluster` (NULL if the broker did not say), or begin one: the
 * topic's latest, unless it was read on another cluster. A source whose
 * cluster was not known (from an update of 0.1) takes this one. A topic with
 * no source begins its first ("prefix changed" when another topic of its
 * kind has one).
 */
void
pp_source_resolve(const char *topic, const char *kind, const char *cluster, PPSource *out)
{
	PPSource latest;

	caller_cxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lock_sources();
	latest_source(topic, &latest);
	if (latest.id == 0)
	{
		Datum args[2] = { CStringGetTextDatum(topic), CStringGetTextDatum(kind) };
		Oid types[2] = { TEXTOID, TEXTOID };
		bool other;

		if (SPI_execute_with_args("SELECT 1 FROM pinpipe.sources WHERE topic <> $1 "
								  "AND right(topic, length($2) + 1) = '.' || $2",
								  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pinpipe: reading pinpipe.sources failed");
		other = SPI_processed > 0;
		insert_source(topic, cluster, other ? PP_SOURCE_PREFIX_CHANGED : PP_SOURCE_FIRST_USE, 0,
					  out);
	}
	else if (cluster != NULL && latest.cluster_id == NULL)
	{
		Datum args[2] = { Int32GetDatum(latest.id), CStringGetTextDatum(cluster) };
		Oid types[2] = { INT4OID, TEXTOID };

		if (SPI_execute_with_args("UPDATE pinpipe.sources SET cluster_id = $2 WHERE id = $1", 2,
								  types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pinpipe: could not update pinpipe.sources");
		*out = latest;
		out->cluster_id = keep(cluster);
	}
	else if (cluster != NULL && strcmp(latest.cluster_id, cluster) != 0)
		insert_source(topic, cluster, PP_SOURCE_CLUSTER_CHANGED, latest.id, out);
	else
		*out = latest;
	SPI_finish();
}

/*
 * Begin a new source of topic for `reason`, after `current`; if another
 * worker began one after `current` already, take that one instead.
 */
void
pp_source_begin(const char *topic, const char *cluster, PPSourceReason reason, int32 current,
				PPSource *out)
{
	PPSource latest;

	caller_cxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lock_sources();
	latest_source(topic, &latest);
	if (latest.id != 0 && latest.id != current)
	{
		*out = latest;
		out->begun = true;
		out->previous = current;
	}
	else
		insert_source(topic, cluster, reason, current, out);
	SPI_finish();
}
