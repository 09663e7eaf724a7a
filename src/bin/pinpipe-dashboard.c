/*
 * pinpipe-dashboard.c
 *		A live web page of the pipeline and the nine analytics answers, and the
 *		JSON API behind it.
 *
 * One small HTTP server (libmicrohttpd, one internal polling thread) and one
 * PostgreSQL connection (libpq), opened again when it breaks. Every API call
 * is one read-only query that builds its JSON in the database, from the
 * status views, the small history table and the analytics functions (which
 * read the analytics caches, never the big tables), under a statement
 * timeout. The page is three static files (src/bin/dashboard) and Debian's
 * Chart.js; every response carries a strict Content-Security-Policy, and the
 * page puts values into the document as text only.
 *
 *   GET  /                         the page
 *   GET  /api/config               refresh interval, whether control is allowed
 *   GET  /api/status               workers, partitions, dead letters, offset gaps
 *   GET  /api/history?minutes=N[&step=S]   per-minute ingest history
 *   GET  /api/answers/FUNCTION[?from_year=&to_year=&method=]
 *   POST /api/pause, /api/resume   only with --allow-control
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#ifndef PP_DATADIR
#define PP_DATADIR "/usr/share/postgresql/pinpipe"
#endif
#define CHARTJS_DIR "/usr/share/javascript/chart.js"

#define PROGNAME            "pinpipe-dashboard"
#define MAX_TOKENS          64
#define MAX_TOKEN_LEN       256
#define MAX_STATIC_BYTES    (4 * 1024 * 1024)
#define STATEMENT_TIMEOUT   "2000"
#define MAX_HISTORY_MINUTES (60 * 24 * 31)
#define MAX_RATE_SLOTS      256
#define TOKEN_COOKIE        "pinpipe_token"

/* Sent with every response. */
static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
						  "img-src 'self'; connect-src 'self'; base-uri 'none'; "
						  "form-action 'none'; frame-ancestors 'none'";

typedef struct Options
{
	const char *conninfo;
	char host[256];
	int port;
	int refresh;
	const char *token_file;
	bool allow_control;
	bool quiet;
} Options;

static Options opt = { .refresh = 5 };
static char *tokens[MAX_TOKENS];
static int ntokens = 0;

/* The page's files, loaded at start. */
typedef struct StaticFile
{
	const char *url;
	const char *dir; /* NULL: the page's own directory */
	const char *name;
	const char *type;
	char *data;
	size_t len;
} StaticFile;

static StaticFile static_files[] = {
	{ "/", NULL, "index.html", "text/html; charset=utf-8", NULL, 0 },
	{ "/static/dashboard.js", NULL, "dashboard.js", "text/javascript; charset=utf-8", NULL, 0 },
	{ "/static/dashboard.css", NULL, "dashboard.css", "text/css; charset=utf-8", NULL, 0 },
	{ "/static/favicon.svg", NULL, "favicon.svg", "image/svg+xml", NULL, 0 },
	{ "/static/chart.js", CHARTJS_DIR, "chart.min.js", "text/javascript; charset=utf-8", NULL, 0 },
};
#define N_STATIC (sizeof(static_files) / sizeof(static_files[0]))

/*
 * The analytics functions the API serves: their names are the only SQL text
 * that comes from a URL, and only from this list.
 */
typedef struct Answer
{
	const char *name;
	bool years;
	bool method;
	const char *columns; /* JSON array, for an empty result */
} Answer;

static const Answer answers[] = {
	{ "popular_category_by_country", false, false,
	  "[\"country\",\"category\",\"category_count\"]" },
	{ "category_count_by_year", true, false, "[\"post_year\",\"category\",\"category_count\"]" },
	{ "most_followed_by_country", false, false,
	  "[\"country\",\"poster_name\",\"follower_count\"]" },
	{ "most_followed_country", false, false, "[\"country\",\"follower_count\"]" },
	{ "popular_category_by_age_group", false, false,
	  "[\"age_group\",\"category\",\"category_count\"]" },
	{ "median_followers_by_age_group", false, true, "[\"age_group\",\"median_follower_count\"]" },
	{ "users_joined_by_year", true, false, "[\"post_year\",\"number_users_joined\"]" },
	{ "median_followers_by_join_year", true, true, "[\"post_year\",\"median_follower_count\"]" },
	{ "median_followers_by_age_group_and_join_year", true, true,
	  "[\"age_group\",\"post_year\",\"median_follower_count\"]" },
};
#define N_ANSWERS (sizeof(answers) / sizeof(answers[0]))

/* What a handler answers. */
typedef struct Reply
{
	unsigned int status;
	const char *type;
	char *body; /* malloc'd, or NULL with static_body */
	const char *static_body;
	size_t len;
	char *set_cookie;
	char *location;
	bool no_store;
} Reply;

typedef struct Request
{
	struct MHD_Connection *conn;
	const char *url;
	const char *method;
	bool has_body;
} Request;

typedef void (*Handler)(Request *req, Reply *reply);

static PGconn *db = NULL;
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stopping = 0;

/* Messages per second: the status counters of the previous read. */
typedef struct RateSlot
{
	int worker;
	char kind[16];
	long long messages;
	double at;
	double rate;
	bool used;
} RateSlot;
static RateSlot rates[MAX_RATE_SLOTS];

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", PROGNAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- replies ---- */

static void
reply_json(Reply *reply, unsigned int status, json_t *doc)
{
	reply->status = status;
	reply->type = "application/json";
	reply->body = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	reply->len = reply->body ? strlen(reply->body) : 0;
	reply->no_store = true;
	json_decref(doc);
}

/* An error as {"error": ..., "detail": ..., "hint": ...}. */
static void
reply_error(Reply *reply, unsigned int status, const char *error, const char *detail,
			const char *hint)
{
	json_t *doc = json_pack("{s:s}", "error", error);

	if (detail != NULL && detail[0] != '\0')
		json_object_set_new(doc, "detail", json_string(detail));
	if (hint != NULL && hint[0] != '\0')
		json_object_set_new(doc, "hint", json_string(hint));
	reply_json(reply, status, doc);
}

/* ---- the database ---- */

/* Open the connection if it is not open; false (and the reason) if that fails. */
static bool
db_connect(char *why, size_t whylen)
{
	const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
	const char *values[] = { PROGNAME, "3", opt.conninfo, NULL };
	PGresult *res;

	if (db != NULL && PQstatus(db) == CONNECTION_OK)
		return true;
	if (db != NULL)
		PQfinish(db);
	db = PQconnectdbParams(keys, values, 1);
	if (PQstatus(db) != CONNECTION_OK)
	{
		snprintf(why, whylen, "%s", PQerrorMessage(db));
		PQfinish(db);
		db = NULL;
		return false;
	}
	/* never block the worker, never wait long, never write */
	res = PQexec(db, "SET statement_timeout = " STATEMENT_TIMEOUT "; SET lock_timeout = 500; "
					 "SET idle_in_transaction_session_timeout = 10000; "
					 "SET default_transaction_read_only = on; SET search_path = pg_catalog");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		snprintf(why, whylen, "%s", PQerrorMessage(db));
		PQclear(res);
		PQfinish(db);
		db = NULL;
		return false;
	}
	PQclear(res);
	return true;
}

static void
trim_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/*
 * Run one query whose single value is a JSON document and reply with it. A
 * broken connection is opened again and the query retried once. Errors:
 * 503 when the database cannot be reached, 403 with the role to grant for a
 * permission error, 400 for invalid input, else 500.
 */
static char *
db_json(const char *sql, int nparams, const char *const *params, Reply *reply)
{
	char why[1024];
	char *out = NULL;
	PGresult *res = NULL;

	pthread_mutex_lock(&db_lock);
	for (int attempt = 0; attempt < 2; attempt++)
	{
		if (!db_connect(why, sizeof(why)))
		{
			trim_newline(why);
			reply_error(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the database is unreachable", why,
						"The dashboard retries on every request: check that the server is "
						"running and the connection string (--db) is right.");
			pthread_mutex_unlock(&db_lock);
			return NULL;
		}
		res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK || PQstatus(db) == CONNECTION_OK)
			break;
		/* the connection broke: open it again and retry once */
		snprintf(why, sizeof(why), "%s", PQerrorMessage(db));
		PQclear(res);
		res = NULL;
		PQfinish(db);
		db = NULL;
	}
	if (res == NULL)
	{
		trim_newline(why);
		reply_error(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the database is unreachable", why,
					"The dashboard retries on every request.");
	}
	else if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			 !PQgetisnull(res, 0, 0))
		out = strdup(PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) == PGRES_TUPLES_OK)
		reply_error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "the query returned no document", NULL,
					NULL);
	else
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		char own_hint[512];

		if (state == NULL)
			state = "";
		if (msg == NULL)
			msg = PQerrorMessage(db);
		if (strcmp(state, "42501") == 0)
		{
			/* insufficient privilege: say which role to grant */
			if (hint == NULL)
			{
				snprintf(own_hint, sizeof(own_hint),
						 "Grant the dashboard's role the extension's reader role: "
						 "GRANT pinpipe_reader TO \"%s\";",
						 PQuser(db));
				hint = own_hint;
			}
			reply_error(reply, MHD_HTTP_FORBIDDEN, msg, detail, hint);
		}
		else if (strcmp(state, "22023") == 0 || strncmp(state, "22", 2) == 0)
			reply_error(reply, MHD_HTTP_BAD_REQUEST, msg, detail, hint);
		else if (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0 ||
				 strcmp(state, "3F000") == 0)
			reply_error(reply, MHD_HTTP_SERVICE_UNAVAILABLE, msg, detail,
						"Install the extension in this database (CREATE EXTENSION pinpipe) or "
						"update it (ALTER EXTENSION pinpipe UPDATE).");
		else if (strcmp(state, "57014") == 0)
			reply_error(
				reply, MHD_HTTP_SERVICE_UNAVAILABLE, msg, detail,
				"The query took longer than the dashboard's statement timeout (" STATEMENT_TIMEOUT
				" ms).");
		else
			reply_error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, msg, detail, hint);
	}
	if (res != NULL)
		PQclear(res);
	pthread_mutex_unlock(&db_lock);
	return out;
}

static void
reply_db_json(Reply *reply, const char *sql, int nparams, const char *const *params)
{
	char *doc = db_json(sql, nparams, params, reply);

	if (doc == NULL)
		return;
	reply->status = MHD_HTTP_OK;
	reply->type = "application/json";
	reply->body = doc;
	reply->len = strlen(doc);
	reply->no_store = true;
}

/* ---- query arguments ---- */

typedef struct ArgCheck
{
	const char *const *allowed;
	char bad[128];
} ArgCheck;

static enum MHD_Result
check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	ArgCheck *check = cls;

	(void) kind;
	(void) value;
	if (strcmp(key, "token") == 0)
		return MHD_YES;
	for (const char *const *a = check->allowed; *a != NULL; a++)
	{
		if (strcmp(key, *a) == 0)
			return MHD_YES;
	}
	snprintf(check->bad, sizeof(check->bad), "%s", key);
	return MHD_NO;
}

/* Refuse any query argument not in allowed (NULL-terminated). */
static bool
only_args(Request *req, Reply *reply, const char *const *allowed)
{
	ArgCheck check = { .allowed = allowed };
	char msg[256];

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_arg, &check);
	if (check.bad[0] == '\0')
		return true;
	snprintf(msg, sizeof(msg), "unknown argument \"%s\"", check.bad);
	reply_error(reply, MHD_HTTP_BAD_REQUEST, msg, NULL, NULL);
	return false;
}

/* An integer argument in [min, max]; absent leaves *present false. */
static bool
int_arg(Request *req, Reply *reply, const char *name, long min, long max, bool *present, long *out)
{
	const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
	char *end;
	char msg[256];

	*present = false;
	if (v == NULL)
		return true;
	errno = 0;
	*out = strtol(v, &end, 10);
	if (v[0] == '\0' || *end != '\0' || errno != 0 || *out < min || *out > max ||
		!(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
	{
		snprintf(msg, sizeof(msg), "%s must be an integer from %ld to %ld", name, min, max);
		reply_error(reply, MHD_HTTP_BAD_REQUEST, msg, NULL, NULL);
		return false;
	}
	*present = true;
	return true;
}

/* ---- handlers ---- */

static void
handle_config(Request *req, Reply *reply)
{
	static const char *const none[] = { NULL };

	if (!only_args(req, reply, none))
		return;
	reply_json(reply, MHD_HTTP_OK,
			   json_pack("{s:i, s:b}", "refresh", opt.refresh, "allow_control", opt.allow_control));
}

/* Add messages per second, from the previous read, to each status row. */
static void
add_rates(json_t *workers)
{
	size_t i;
	json_t *row;
	double now = now_seconds();

	json_array_foreach(workers, i, row)
	{
		int worker = (int) json_integer_value(json_object_get(row, "worker"));
		const char *kind = json_string_value(json_object_get(row, "kind"));
		json_t *m = json_object_get(row, "messages");
		long long messages = json_is_integer(m) ? (long long) json_integer_value(m) : 0;
		RateSlot *slot = NULL;
		RateSlot *free_slot = NULL;

		if (kind == NULL)
			continue;
		for (int s = 0; s < MAX_RATE_SLOTS; s++)
		{
			if (rates[s].used && rates[s].worker == worker && strcmp(rates[s].kind, kind) == 0)
			{
				slot = &rates[s];
				break;
			}
			if (!rates[s].used && free_slot == NULL)
				free_slot = &rates[s];
		}
		if (slot == NULL)
		{
			if (free_slot == NULL)
				continue;
			slot = free_slot;
			slot->used = true;
			slot->worker = worker;
			snprintf(slot->kind, sizeof(slot->kind), "%s", kind);
			slot->messages = messages;
			slot->at = now;
			slot->rate = 0;
		}
		else if (messages < slot->messages)
		{
			/* the server restarted: its counters began again */
			slot->messages = messages;
			slot->at = now;
			slot->rate = 0;
		}
		else if (now - slot->at >= 1.0)
		{
			slot->rate = (messages - slot->messages) / (now - slot->at);
			slot->messages = messages;
			slot->at = now;
		}
		json_object_set_new(row, "messages_per_second", json_real(slot->rate));
	}
}

static const char STATUS_SQL[] =
	"SELECT json_build_object("
	" 'read_at', clock_timestamp(),"
	" 'user', current_user,"
	" 'workers', (SELECT coalesce(json_agg(s ORDER BY s.worker, s.kind), '[]')"
	"               FROM pinpipe.status s),"
	" 'partitions', (SELECT coalesce(json_agg(p ORDER BY p.topic, p.kafka_partition), '[]')"
	"                  FROM (SELECT * FROM pinpipe.partition_lag"
	"                         ORDER BY lag DESC NULLS LAST LIMIT 200) p),"
	" 'dead_letters', json_build_object("
	"     'total', (SELECT count(*) FROM pinpipe.dead_letters),"
	"     'latest', (SELECT coalesce(json_agg(d ORDER BY d.received_at DESC, d.kafka_offset DESC), "
	"'[]')"
	"                  FROM (SELECT topic, kafka_partition, kafka_offset, received_at, error,"
	"                               octet_length(payload) AS bytes,"
	"                               encode(substring(payload FROM 1 FOR 160), 'escape') AS preview"
	"                          FROM pinpipe.dead_letters"
	"                         ORDER BY received_at DESC, kafka_offset DESC LIMIT 10) d)),"
	" 'offset_gaps', json_build_object("
	"     'total', (SELECT coalesce(sum(lost_messages), 0) FROM pinpipe.offset_gaps),"
	"     'latest', (SELECT coalesce(json_agg(g ORDER BY g.detected_at DESC), '[]')"
	"                  FROM (SELECT * FROM pinpipe.offset_gaps"
	"                         ORDER BY detected_at DESC LIMIT 10) g)))";

static void
handle_status(Request *req, Reply *reply)
{
	static const char *const none[] = { NULL };
	char *doc;
	json_t *parsed;

	if (!only_args(req, reply, none))
		return;
	doc = db_json(STATUS_SQL, 0, NULL, reply);
	if (doc == NULL)
		return;
	parsed = json_loads(doc, 0, NULL);
	free(doc);
	if (parsed == NULL)
	{
		reply_error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "invalid status document", NULL, NULL);
		return;
	}
	pthread_mutex_lock(&db_lock);
	add_rates(json_object_get(parsed, "workers"));
	pthread_mutex_unlock(&db_lock);
	reply_json(reply, MHD_HTTP_OK, parsed);
}

static const char HISTORY_SQL[] =
	"SELECT json_build_object("
	" 'read_at', clock_timestamp(), 'minutes', $1::int, 'step', $2::int,"
	" 'rows', coalesce(json_agg(h ORDER BY h.minute, h.topic), '[]'))"
	"  FROM (SELECT topic, date_bin(make_interval(mins => $2::int), minute,"
	"                              timestamptz '2000-01-01') AS minute,"
	"               sum(messages) AS messages, sum(dead_letters) AS dead_letters,"
	"               sum(batches) AS batches, max(max_lag) AS max_lag"
	"          FROM pinpipe.ingest_history"
	"         WHERE minute >= date_trunc('minute', now()) - make_interval(mins => $1::int)"
	"         GROUP BY 1, 2) h";

static void
handle_history(Request *req, Reply *reply)
{
	static const char *const allowed[] = { "minutes", "step", NULL };
	bool have_minutes, have_step;
	long minutes = 60, step = 1;
	char m[32], s[32];
	const char *params[2] = { m, s };

	if (!only_args(req, reply, allowed) ||
		!int_arg(req, reply, "minutes", 1, MAX_HISTORY_MINUTES, &have_minutes, &minutes) ||
		!int_arg(req, reply, "step", 1, 1440, &have_step, &step))
		return;
	if (!have_minutes)
		minutes = 60;
	if (!have_step)
		step = 1;
	snprintf(m, sizeof(m), "%ld", minutes);
	snprintf(s, sizeof(s), "%ld", step);
	reply_db_json(reply, HISTORY_SQL, 2, params);
}

static void
handle_answer(Request *req, Reply *reply)
{
	static const char *const allowed_all[] = { "from_year", "to_year", "method", NULL };
	const char *name = req->url + strlen("/api/answers/");
	const Answer *a = NULL;
	bool have_from, have_to;
	long from_year = 0, to_year = 0;
	const char *method;
	char sql[1024], args[256] = "";
	char from_s[32], to_s[32];
	const char *params[3];
	int nparams = 0;
	char msg[256];

	for (size_t i = 0; i < N_ANSWERS; i++)
	{
		if (strcmp(name, answers[i].name) == 0)
			a = &answers[i];
	}
	if (a == NULL)
	{
		snprintf(msg, sizeof(msg), "unknown function \"%.100s\"", name);
		reply_error(reply, MHD_HTTP_BAD_REQUEST, msg,
					"The API serves the nine analytics functions of pinpipe.",
					"Use one of popular_category_by_country, category_count_by_year, "
					"most_followed_by_country, most_followed_country, "
					"popular_category_by_age_group, median_followers_by_age_group, "
					"users_joined_by_year, median_followers_by_join_year, "
					"median_followers_by_age_group_and_join_year.");
		return;
	}
	if (!only_args(req, reply, allowed_all) ||
		!int_arg(req, reply, "from_year", INT_MIN, INT_MAX, &have_from, &from_year) ||
		!int_arg(req, reply, "to_year", INT_MIN, INT_MAX, &have_to, &to_year))
		return;
	method = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "method");
	if ((have_from || have_to) && !a->years)
	{
		snprintf(msg, sizeof(msg), "%s takes no year range", a->name);
		reply_error(reply, MHD_HTTP_BAD_REQUEST, msg, NULL, NULL);
		return;
	}
	if (method != NULL && !a->method)
	{
		snprintf(msg, sizeof(msg), "%s takes no median method", a->name);
		reply_error(reply, MHD_HTTP_BAD_REQUEST, msg, NULL, NULL);
		return;
	}
	if (method != NULL && strcmp(method, "exact") != 0 && strcmp(method, "lower") != 0)
	{
		reply_error(reply, MHD_HTTP_BAD_REQUEST, "method must be exact or lower",
					"exact is percentile_cont(0.5), the mean of the two middle values; lower is "
					"percentile_disc(0.5), the lower middle value.",
					NULL);
		return;
	}
	/* only the arguments given, by name: the others keep the function's defaults */
	if (have_from)
	{
		snprintf(from_s, sizeof(from_s), "%ld", from_year);
		params[nparams++] = from_s;
		snprintf(args + strlen(args), sizeof(args) - strlen(args), "from_year => $%d::int",
				 nparams);
	}
	if (have_to)
	{
		snprintf(to_s, sizeof(to_s), "%ld", to_year);
		params[nparams++] = to_s;
		snprintf(args + strlen(args), sizeof(args) - strlen(args), "%sto_year => $%d::int",
				 nparams > 1 ? ", " : "", nparams);
	}
	if (method != NULL)
	{
		params[nparams++] = method;
		snprintf(args + strlen(args), sizeof(args) - strlen(args), "%smethod => $%d::text",
				 nparams > 1 ? ", " : "", nparams);
	}
	snprintf(sql, sizeof(sql),
			 "SELECT json_build_object('function', '%s', 'read_at', clock_timestamp(),"
			 " 'columns', '%s'::json, 'rows', coalesce(json_agg(t), '[]'))"
			 "  FROM (SELECT * FROM pinpipe.%s(%s)) t",
			 a->name, a->columns, a->name, args);
	reply_db_json(reply, sql, nparams, params);
}

static void
handle_control(Request *req, Reply *reply)
{
	static const char *const none[] = { NULL };
	bool pause = strcmp(req->url, "/api/pause") == 0;
	char *doc;

	if (!opt.allow_control)
	{
		reply_error(reply, MHD_HTTP_FORBIDDEN, "control is off",
					"The dashboard is read-only unless started with --allow-control.", NULL);
		return;
	}
	if (strcmp(req->method, "POST") != 0)
	{
		reply_error(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST", NULL, NULL);
		return;
	}
	/* a header no cross-site form can send without a preflight we never grant */
	if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Pinpipe-Control") == NULL)
	{
		reply_error(reply, MHD_HTTP_FORBIDDEN, "missing X-Pinpipe-Control header", NULL, NULL);
		return;
	}
	if (!only_args(req, reply, none))
		return;
	/* pause and resume change shared memory, not tables: read-only is fine */
	doc = db_json(pause ? "SELECT json_build_object('paused', true) FROM pinpipe.pause()"
						: "SELECT json_build_object('paused', false) FROM pinpipe.resume()",
				  0, NULL, reply);
	if (doc == NULL)
		return;
	reply->status = MHD_HTTP_OK;
	reply->type = "application/json";
	reply->body = doc;
	reply->len = strlen(doc);
	reply->no_store = true;
}

static void
handle_static(Request *req, Reply *reply)
{
	for (size_t i = 0; i < N_STATIC; i++)
	{
		if (strcmp(req->url, static_files[i].url) == 0)
		{
			reply->status = MHD_HTTP_OK;
			reply->type = static_files[i].type;
			reply->static_body = static_files[i].data;
			reply->len = static_files[i].len;
			return;
		}
	}
	reply_error(reply, MHD_HTTP_NOT_FOUND, "not found", NULL, NULL);
}

/* Routes: exact URL, or a prefix ending in '/'. */
typedef struct Route
{
	const char *method; /* NULL: GET or HEAD */
	const char *path;
	bool prefix;
	Handler handler;
} Route;

static const Route routes[] = {
	{ NULL, "/api/config", false, handle_config },
	{ NULL, "/api/status", false, handle_status },
	{ NULL, "/api/history", false, handle_history },
	{ NULL, "/api/answers/", true, handle_answer },
	{ "POST", "/api/pause", false, handle_control },
	{ "POST", "/api/resume", false, handle_control },
};

/* ---- tokens ---- */

static bool
token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
	return diff == 0;
}

static bool
token_valid(const char *t)
{
	bool ok = false;

	if (t == NULL || t[0] == '\0')
		return false;
	for (int i = 0; i < ntokens; i++)
		ok |= token_equal(t, tokens[i]);
	return ok;
}

static void
load_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[MAX_TOKEN_LEN + 2];

	if (f == NULL)
		die("cannot read token file \"%s\": %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
	{
		size_t n = strcspn(line, "\r\n");

		if (n == strlen(line) && !feof(f))
			die("a token in \"%s\" is longer than %d bytes", path, MAX_TOKEN_LEN);
		line[n] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (ntokens == MAX_TOKENS)
			die("more than %d tokens in \"%s\"", MAX_TOKENS, path);
		tokens[ntokens++] = strdup(line);
	}
	fclose(f);
	if (ntokens == 0)
		die("no token in \"%s\"", path);
}

/*
 * With --token-file, every request needs a token: "Authorization: Bearer T",
 * the cookie a login set, or ?token=T, which sets the cookie and redirects to
 * the same path without it.
 */
static bool
authorized(Request *req, Reply *reply)
{
	const char *auth, *q;

	if (ntokens == 0)
		return true;
	auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && token_valid(auth + 7))
		return true;
	q = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "token");
	if (q != NULL && token_valid(q))
	{
		char cookie[MAX_TOKEN_LEN + 128];

		snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict", TOKEN_COOKIE,
				 q);
		reply->set_cookie = strdup(cookie);
		reply->location = strdup(req->url);
		reply->status = MHD_HTTP_SEE_OTHER;
		reply->type = "text/plain; charset=utf-8";
		reply->static_body = "logged in\n";
		reply->len = strlen(reply->static_body);
		return false;
	}
	if (token_valid(MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, TOKEN_COOKIE)))
		return true;
	reply_error(reply, MHD_HTTP_UNAUTHORIZED, "a token is needed",
				"This dashboard was started with --token-file.",
				"Open the page once as /?token=YOUR_TOKEN, or send Authorization: Bearer "
				"YOUR_TOKEN.");
	return false;
}

/* ---- the HTTP server ---- */

static void
dispatch(Request *req, Reply *reply)
{
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

	if (!authorized(req, reply))
		return;
	if (req->has_body)
	{
		reply_error(reply, 413, "no request body is accepted", NULL, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
	{
		const Route *r = &routes[i];
		bool match = r->prefix ? strncmp(req->url, r->path, strlen(r->path)) == 0
							   : strcmp(req->url, r->path) == 0;

		if (!match)
			continue;
		if (r->method == NULL ? !get : strcmp(req->method, r->method) != 0)
		{
			reply_error(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, NULL);
			return;
		}
		r->handler(req, reply);
		return;
	}
	if (!get)
	{
		reply_error(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, NULL);
		return;
	}
	handle_static(req, reply);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
		   const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static int first_call_marker;
	static int body_marker;
	Request req = { .conn = conn, .url = url, .method = method };
	Reply reply = { 0 };
	struct MHD_Response *resp;
	enum MHD_Result ret;
	double started = now_seconds();

	(void) cls;
	(void) version;
	(void) upload_data;
	if (*con_cls == NULL)
	{
		*con_cls = &first_call_marker;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		/* no handler takes a body: drop it, unread, and refuse the request */
		*upload_data_size = 0;
		*con_cls = &body_marker;
		return MHD_YES;
	}
	req.has_body = *con_cls == &body_marker;

	dispatch(&req, &reply);

	if (reply.body != NULL)
		resp = MHD_create_response_from_buffer(reply.len, reply.body, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(
			reply.len, (void *) (reply.static_body ? reply.static_body : ""),
			MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
							reply.type ? reply.type : "text/plain; charset=utf-8");
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
							reply.no_store ? "no-store" : "no-cache");
	if (reply.set_cookie != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, reply.set_cookie);
	if (reply.location != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, reply.location);
	ret = MHD_queue_response(conn, reply.status ? reply.status : MHD_HTTP_INTERNAL_SERVER_ERROR,
							 resp);
	MHD_destroy_response(resp);
	if (!opt.quiet)
		fprintf(stderr, "%s %s %u %.1f ms\n", method, url, reply.status,
				(now_seconds() - started) * 1000);
	free(reply.set_cookie);
	free(reply.location);
	return ret;
}

/* ---- start-up ---- */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	struct stat st;

	if (f == NULL || fstat(fileno(f), &st) != 0 || st.st_size > MAX_STATIC_BYTES)
	{
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	buf = malloc(st.st_size + 1);
	*len = fread(buf, 1, st.st_size, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* The page's files: beside the program (a checkout's src/bin), else installed. */
static void
load_static(void)
{
	char exe[PATH_MAX], dir[PATH_MAX + 32], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *page_dir = PP_DATADIR "/dashboard";
	struct stat st;

	if (n > 0)
	{
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(dir, sizeof(dir), "%s/dashboard", exe);
		snprintf(path, sizeof(path), "%s/index.html", dir);
		if (stat(path, &st) == 0)
			page_dir = dir;
	}
	for (size_t i = 0; i < N_STATIC; i++)
	{
		StaticFile *f = &static_files[i];

		snprintf(path, sizeof(path), "%s/%s", f->dir ? f->dir : page_dir, f->name);
		f->data = read_file(path, &f->len);
		if (f->data == NULL)
			die("cannot read %s%s", path,
				f->dir ? " (install Debian's libjs-chart.js)" : " (run make install)");
	}
}

static void
usage(FILE *out)
{
	fprintf(out,
			"%s: a live web page of the pinpipe pipeline and its nine analytics answers\n"
			"\n"
			"Usage: %s --db CONNINFO [options]\n"
			"\n"
			"  --db CONNINFO         the database with the pinpipe extension (a libpq\n"
			"                        connection string or URI); its role needs only\n"
			"                        pinpipe_reader\n"
			"  --listen HOST:PORT    where to listen (default 127.0.0.1:8050; port 0: any\n"
			"                        free port)\n"
			"  --refresh SECONDS     how often the page reads the data again (default 5)\n"
			"  --token-file FILE     require one of the tokens in FILE (one a line): as\n"
			"                        Authorization: Bearer TOKEN, or opened once as\n"
			"                        /?token=TOKEN, which sets a cookie\n"
			"  --allow-control       show pause and resume (the role needs pinpipe_admin);\n"
			"                        off by default: the page is read-only\n"
			"  --quiet               do not log requests to stderr\n"
			"  --help                show this help\n"
			"\n"
			"When ready it prints \"dashboard at http://HOST:PORT/\". The JSON API:\n"
			"GET /api/status, /api/history?minutes=N, "
			"/api/answers/FUNCTION?from_year=&to_year=&method=\n",
			PROGNAME, PROGNAME);
}

static void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", PROGNAME);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n");
	usage(stderr);
	exit(2);
}

static void
parse_listen(const char *v)
{
	const char *colon = strrchr(v, ':');
	char *end;
	long port;
	size_t hostlen;

	if (colon == NULL)
		usage_error("--listen wants HOST:PORT, not \"%s\"", v);
	hostlen = colon - v;
	if (hostlen >= 2 && v[0] == '[' && v[hostlen - 1] == ']')
	{
		v++;
		hostlen -= 2;
	}
	if (hostlen == 0 || hostlen >= sizeof(opt.host))
		usage_error("invalid host in --listen \"%s\"", v);
	memcpy(opt.host, v, hostlen);
	opt.host[hostlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535)
		usage_error("invalid port in --listen \"%s\"", colon + 1);
	opt.port = (int) port;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },      { "listen", required_argument, NULL, 'l' },
		{ "refresh", required_argument, NULL, 'r' }, { "token-file", required_argument, NULL, 't' },
		{ "allow-control", no_argument, NULL, 'c' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
	};
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai;
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	sigset_t sigs;
	int c, sig;
	char *end;

	snprintf(opt.host, sizeof(opt.host), "127.0.0.1");
	opt.port = 8050;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opt.conninfo = optarg;
				break;
			case 'l':
				parse_listen(optarg);
				break;
			case 'r':
				errno = 0;
				opt.refresh = (int) strtol(optarg, &end, 10);
				if (optarg[0] == '\0' || *end != '\0' || errno != 0 || opt.refresh < 1 ||
					opt.refresh > 3600)
					usage_error("--refresh wants seconds from 1 to 3600, not \"%s\"", optarg);
				break;
			case 't':
				opt.token_file = optarg;
				break;
			case 'c':
				opt.allow_control = true;
				break;
			case 'q':
				opt.quiet = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (opt.conninfo == NULL)
		usage_error("%s", "--db CONNINFO is required");
	if (opt.token_file != NULL)
		load_tokens(opt.token_file);
	load_static();

	if (getaddrinfo(opt.host, NULL, &hints, &ai) != 0)
		usage_error("--listen wants a numeric address (127.0.0.1, ::1, 0.0.0.0), not \"%s\"",
					opt.host);
	if (ai->ai_family == AF_INET)
		((struct sockaddr_in *) ai->ai_addr)->sin_port = htons(opt.port);
	else
		((struct sockaddr_in6 *) ai->ai_addr)->sin6_port = htons(opt.port);

	/* SIGINT and SIGTERM end the server; MHD's thread must not take them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	daemon =
		MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
							 (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
						 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
						 MHD_OPTION_CONNECTION_LIMIT, 64U, MHD_OPTION_CONNECTION_TIMEOUT, 30U,
						 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024, MHD_OPTION_END);
	if (daemon == NULL)
		die("cannot listen on %s:%d: %s", opt.host, opt.port, strerror(errno));
	freeaddrinfo(ai);
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (strchr(opt.host, ':') != NULL)
		printf("dashboard at http://[%s]:%u/\n", opt.host, (unsigned) info->port);
	else
		printf("dashboard at http://%s:%u/\n", opt.host, (unsigned) info->port);
	fflush(stdout);

	while (sigwait(&sigs, &sig) == 0 && sig != SIGINT && sig != SIGTERM)
		;
	stopping = 1;
	MHD_stop_daemon(daemon);
	if (db != NULL)
		PQfinish(db);
	return 0;
}
