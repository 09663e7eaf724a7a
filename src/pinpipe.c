/*
 * pinpipe.c
 *		Module entry point: defines the settings and, when the library is
 *		preloaded, reserves shared memory and registers the workers.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "kafka.h"
#include "history.h"
#include "pinpipe.h"
#include "status.h"

PG_MODULE_MAGIC;

char *pinpipe_brokers = NULL;
char *pinpipe_topic_prefix = NULL;
char *pinpipe_database = NULL;
int pinpipe_batch_size = 10000;
int pinpipe_batch_timeout = 50;
int pinpipe_start_offset = PP_START_EARLIEST;
char *pinpipe_kafka_config = NULL;
int pinpipe_max_message_bytes = 1048576;
int pinpipe_workers = 1;
char *pinpipe_partitions = NULL;
int pinpipe_write_method = PP_WRITE_AUTO;

static emit_log_hook_type prev_emit_log_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static const struct config_enum_entry start_offset_options[] = {
	{ "earliest", PP_START_EARLIEST, false },
	{ "latest", PP_START_LATEST, false },
	{ NULL, 0, false },
};

static const struct config_enum_entry write_method_options[] = {
	{ "auto", PP_WRITE_AUTO, false },
	{ "insert", PP_WRITE_INSERT, false },
	{ NULL, 0, false },
};

/* Topic prefixes become topic names: keep them to Kafka's legal characters. */
static bool
check_topic_prefix(char **newval, void **extra, GucSource source)
{
	for (const char *p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '.' || *p == '_' || *p == '-'))
		{
			GUC_check_errdetail("A topic prefix may hold only ASCII letters, digits, '.', '_' "
								"and '-'.");
			return false;
		}
	}
	if (**newval == '\0' || strlen(*newval) > 200)
	{
		GUC_check_errdetail("A topic prefix must have 1 to 200 characters.");
		return false;
	}
	return true;
}

/*
 * Parse one "a" or "a-b" item of a partition list at *p, advancing *p.
 * False on a syntax error.
 */
static bool
parse_partition_range(const char **p, long *lo, long *hi)
{
	char *end;

	while (**p == ' ')
		(*p)++;
	if (**p < '0' || **p > '9')
		return false;
	*lo = strtol(*p, &end, 10);
	*hi = *lo;
	*p = end;
	if (**p == '-')
	{
		(*p)++;
		if (**p < '0' || **p > '9')
			return false;
		*hi = strtol(*p, &end, 10);
		*p = end;
	}
	while (**p == ' ')
		(*p)++;
	return *lo <= *hi && *hi <= PG_INT32_MAX;
}

/* Is partition in the list (e.g. "0-15,32")? An empty list selects all. */
bool
pp_partition_selected(const char *list, int partition)
{
	const char *p = list;

	if (list == NULL || *list == '\0')
		return true;
	for (;;)
	{
		long lo, hi;

		if (!parse_partition_range(&p, &lo, &hi))
			return false;
		if (partition >= lo && partition <= hi)
			return true;
		if (*p != ',')
			return false;
		p++;
	}
}

static bool
check_partitions(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (*p == '\0')
		return true;
	for (;;)
	{
		long lo, hi;

		if (!parse_partition_range(&p, &lo, &hi))
		{
			GUC_check_errdetail("The list must look like \"0-15\" or \"0,2,4-7\": partition "
								"numbers and ascending ranges, separated by commas.");
			return false;
		}
		if (*p == '\0')
			return true;
		if (*p != ',')
		{
			GUC_check_errdetail("Unexpected character \"%c\" in the partition list.", *p);
			return false;
		}
		p++;
	}
}

/* Define the pinpipe.* settings. */
static void
define_settings(void)
{
	DefineCustomStringVariable(
		"pinpipe.brokers", "Kafka bootstrap servers the worker consumes from (host:port,...).",
		"Empty means the worker idles.", &pinpipe_brokers, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pinpipe.topic_prefix",
							   "Prefix of the topics consumed: <prefix>.pin, <prefix>.geo and "
							   "<prefix>.user.",
							   NULL, &pinpipe_topic_prefix, "pinterest", PGC_SIGHUP, 0,
							   check_topic_prefix, NULL, NULL);
	DefineCustomStringVariable("pinpipe.database", "Database the worker writes to.",
							   "It must have the pinpipe extension.", &pinpipe_database, "postgres",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pinpipe.batch_size", "Most messages written in one transaction.", NULL,
							&pinpipe_batch_size, 10000, 1, 1000000, PGC_SIGHUP, 0, NULL, NULL,
							NULL);
	DefineCustomIntVariable(
		"pinpipe.batch_timeout", "Longest wait for a batch to fill before it is written.", NULL,
		&pinpipe_batch_timeout, 50, 1, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("pinpipe.start_offset",
							 "Where a partition with no stored offset starts: earliest or latest.",
							 NULL, &pinpipe_start_offset, PP_START_EARLIEST, start_offset_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"pinpipe.kafka_config",
		"librdkafka settings passed through to the consumer (key=value,key=value).",
		"For SASL and SSL. A comma inside a value is written \\,. Visible to superusers only.",
		&pinpipe_kafka_config, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, pp_check_kafka_config, NULL,
		NULL);
	DefineCustomStringVariable(
		"pinpipe.partitions", "Partitions this server consumes, e.g. 0-15 (empty: all).",
		"Several servers can split one topic set by consuming disjoint partition lists.",
		&pinpipe_partitions, "", PGC_SIGHUP, 0, check_partitions, NULL, NULL);
	DefineCustomIntVariable("pinpipe.max_message_bytes",
							"Largest message the worker accepts; larger ones become dead letters.",
							NULL, &pinpipe_max_message_bytes, 1048576, 1, MaxAllocSize / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomEnumVariable(
		"pinpipe.write_method", "How the worker writes raw rows: auto or insert.",
		"auto writes them as COPY FROM does (multi-row heap inserts) into a plain table without "
		"triggers, row security or generated columns, and through INSERT otherwise; insert "
		"always uses INSERT (for tables another extension manages, such as Citus's).",
		&pinpipe_write_method, PP_WRITE_AUTO, write_method_options, PGC_SIGHUP, 0, NULL, NULL,
		NULL);
	DefineCustomIntVariable(
		"pinpipe.workers", "Number of consumer workers; each takes a share of the partitions.",
		NULL, &pinpipe_workers, 1, 0, PP_MAX_WORKERS, PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

/*
 * Hide what follows the name pinpipe.kafka_config in a message: PostgreSQL
 * itself logs a changed setting's value on reload ("parameter ... changed
 * to ..."), a refused value, and statements that set it, and this setting
 * holds secrets (SASL passwords).
 */
static bool
redact(char **text)
{
	const char *name = "pinpipe.kafka_config";
	char *at;

	if (*text == NULL || (at = strstr(*text, name)) == NULL)
		return false;
	at += strlen(name);
	if (*at == '"')
		at++;
	if (*at == '\0')
		return false; /* nothing follows the name: no value to hide */
	*text = psprintf("%.*s (value hidden)", (int) (at - *text), *text);
	return true;
}

static void
pp_emit_log(ErrorData *edata)
{
	bool hidden = false;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	hidden |= redact(&edata->message);
	hidden |= redact(&edata->detail);
	hidden |= redact(&edata->detail_log);
	hidden |= redact(&edata->context);
	if (hidden ||
		(debug_query_string != NULL && strstr(debug_query_string, "pinpipe.kafka_config")))
		edata->hide_stmt = true;
}

/*
 * After CREATE EXTENSION pinpipe, say which database the workers write to
 * (status.c). A NOTICE from the extension's script would not be seen: the
 * script runs with client_min_messages at WARNING at least.
 */
static void
pp_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node *stmt = pstmt->utilityStmt;
	bool create_pinpipe = IsA(stmt, CreateExtensionStmt) &&
						  strcmp(((CreateExtensionStmt *) stmt)->extname, "pinpipe") == 0;

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest,
								  qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest,
								qc);
	if (create_pinpipe)
		pp_notice_workers_database();
}

/* Register the consumer workers (only when preloaded). */
static void
register_workers(void)
{
	for (int i = 0; i < pinpipe_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pinpipe");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "pinpipe_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pinpipe worker %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pinpipe worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		worker.bgw_notify_pid = 0;
		RegisterBackgroundWorker(&worker);
	}
}

void
_PG_init(void)
{
	define_settings();
	pp_history_define_settings();
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pp_emit_log;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = pp_process_utility;
	MarkGUCPrefixReserved("pinpipe");
	if (!process_shared_preload_libraries_in_progress)
		return;
	pp_status_init();
	register_workers();
}
