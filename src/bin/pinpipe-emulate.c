/*
 * pinpipe-emulate.c
 *		Post realistic Pinterest records to Kafka, like the original pipeline's
 *		user_posting_emulation.py.
 *
 * Each record is one random row of the pin table (uniform, with replacement, so
 * duplicates happen) plus the geo and user rows with the same ind, posted to
 * <prefix>.pin, <prefix>.geo and <prefix>.user.  The message value is the source
 * line unchanged and the key is the ind as decimal text, so all messages of one
 * ind land in the same partition, in order.  With --synthetic, every record is a
 * new ind whose field values are drawn from the sample rows, so the sample's
 * value frequencies (placeholders included) are kept.
 *
 * The three source files are loaded once at start; a small seeded PRNG
 * (xoshiro256**) makes a run repeatable with --seed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "kafka_config.h"

#ifndef PP_DATADIR
#define PP_DATADIR "/usr/share/postgresql/pinpipe"
#endif

#define PROGNAME "pinpipe-emulate"

#define conf_set(conf, key, value) pp_tool_conf_set(conf, PROGNAME, key, value)

#define NS_PER_SEC         INT64_C(1000000000)
#define NS_PER_MS          INT64_C(1000000)
#define FLUSH_TIMEOUT_NS   (60 * NS_PER_SEC)
#define PROGRESS_EVERY_NS  NS_PER_SEC
#define MAX_SHOWN_ERRORS   10
#define MAX_IND            100000000LL
#define REAL_PRECISION     15 /* DBL_DIG: up to 15 significant digits print as written */
#define DUMP_FLAGS         JSON_REAL_PRECISION(REAL_PRECISION)
#define MAX_TOPIC_NAME_LEN 249

/* The three source tables, in the order their messages are posted. */
enum
{
	T_PIN,
	T_GEO,
	T_USER,
	N_TABLES
};

static const char *const table_name[N_TABLES] = { "pin", "geo", "user" };
static const char *const table_key[N_TABLES] = { "index", "ind", "ind" };

/*
 * A field of a synthetic row: where its value comes from.  Fields of the same
 * group (>= 0) take their values from one randomly chosen sample row, so that
 * values which belong together stay together.
 */
#define FIELD_IND  (-1)
#define FIELD_UUID (-2)

typedef struct Field
{
	const char *name;
	int group;
} Field;

/*
 * Keys in source order.  pin groups: the media fields (a story-format post has
 * the story description, maybe an image error and downloaded 0), the poster and
 * its follower count, the category and its save location; title and tag_list are
 * drawn on their own.
 */
static const Field pin_fields[] = {
	{ "index", FIELD_IND }, { "unique_id", FIELD_UUID }, { "title", 0 },
	{ "description", 1 },   { "poster_name", 2 },        { "follower_count", 2 },
	{ "tag_list", 3 },      { "is_image_or_video", 1 },  { "image_src", 1 },
	{ "downloaded", 1 },    { "save_location", 4 },      { "category", 4 },
};

/* geo groups: a location (coordinates and their country) and a timestamp. */
static const Field geo_fields[] = {
	{ "ind", FIELD_IND }, { "timestamp", 0 }, { "latitude", 1 },
	{ "longitude", 1 },   { "country", 1 },
};

/* user groups: the name, the age, the joining date. */
static const Field user_fields[] = {
	{ "ind", FIELD_IND }, { "first_name", 0 },  { "last_name", 0 },
	{ "age", 1 },         { "date_joined", 2 },
};

typedef struct FieldSet
{
	const Field *fields;
	int nfields;
	int ngroups;
} FieldSet;

static const FieldSet field_set[N_TABLES] = {
	{ pin_fields, sizeof(pin_fields) / sizeof(pin_fields[0]), 5 },
	{ geo_fields, sizeof(geo_fields) / sizeof(geo_fields[0]), 2 },
	{ user_fields, sizeof(user_fields) / sizeof(user_fields[0]), 3 },
};

#define MAX_GROUPS 5

/* One loaded source file: its lines, their inds and (for --synthetic) objects. */
typedef struct Table
{
	char *path;
	char *buf; /* the whole file, lines NUL-terminated in place */
	size_t nrows;
	char **line; /* row text, without the line end */
	size_t *len; /* row text length */
	long long *ind;
	json_t **obj; /* parsed rows, only kept with --synthetic */
	long long max_ind;
	int32_t *by_ind; /* ind -> row number or -1 (geo and user only) */
} Table;

typedef struct Options
{
	const char *brokers;
	const char *prefix;
	unsigned long long count;
	bool count_set;
	double rate;
	uint64_t seed;
	bool seed_set;
	double duration;
	bool synthetic;
	long long start_ind;
	const char *kafka_config;
	const char *datadir;
	bool dry_run;
	bool quiet;
	const char *rest_url;     /* post over HTTP to pinpipe-rest (or a REST Proxy) */
	unsigned long rest_batch; /* rows a request */
	bool rest_streams;        /* the Kinesis PutRecord(s) shape instead */
} Options;

/* xoshiro256** state */
typedef struct Rng
{
	uint64_t s[4];
} Rng;

typedef struct Emulator
{
	Options opt;
	Rng rng;
	Table table[N_TABLES];
	size_t *geo_of_pin;  /* pin row -> geo row */
	size_t *user_of_pin; /* pin row -> user row */
	char topic[N_TABLES][MAX_TOPIC_NAME_LEN + 1];

	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt[N_TABLES];

	/* --rest: one keep-alive HTTP client, a pending batch a topic */
	CURL *curl;
	char rest_target[N_TABLES][MAX_TOPIC_NAME_LEN + 1024];
	char *batch[N_TABLES];
	size_t batch_len[N_TABLES];
	size_t batch_cap[N_TABLES];
	unsigned long batch_rows[N_TABLES];
	char *reply;
	size_t reply_len;

	unsigned long long records;
	unsigned long long produced[N_TABLES];
	unsigned long long delivered[N_TABLES];
	unsigned long long failed[N_TABLES];
	unsigned long long reported[N_TABLES]; /* delivery reports received */
	unsigned long long shown_errors;
	bool fatal;
	bool output_broken;

	bool show_progress;
	bool progress_shown;
	int64_t start_ns;
	int64_t last_progress_ns;
	unsigned long long last_progress_records;
} Emulator;

static volatile sig_atomic_t stop_signals = 0;

/* Count SIGINT/SIGTERM: one stops producing, one more during the flush stops it. */
static void
handle_stop_signal(int signo)
{
	(void) signo;
	if (stop_signals < 100)
		stop_signals++;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void
rng_seed(Rng *rng, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(Rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Return a uniform integer in [0, n), without modulo bias; n > 0. */
static uint64_t
rng_below(Rng *rng, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;

	do
		x = rng_next(rng);
	while (x >= limit);
	return x % n;
}

/* Write a random (version 4) UUID in canonical lower-case form to out[37]. */
static void
rng_uuid(Rng *rng, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	uint64_t hi = rng_next(rng);
	uint64_t lo = rng_next(rng);
	int o = 0;

	for (int i = 0; i < 8; i++)
	{
		b[i] = (uint8_t) (hi >> (56 - 8 * i));
		b[8 + i] = (uint8_t) (lo >> (56 - 8 * i));
	}
	b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
}

/* ---------------------------------------------------------------- options */

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: " PROGNAME " --brokers LIST [OPTION]...\n"
			"       " PROGNAME " --dry-run [OPTION]...\n"
			"Post realistic Pinterest records to Kafka: each record is a random pin row and\n"
			"the geo and user rows with the same ind, posted to PREFIX.pin, PREFIX.geo and\n"
			"PREFIX.user with the ind as message key.\n"
			"\n"
			"Options:\n"
			"  --brokers LIST        Kafka bootstrap servers, host:port[,host:port...]\n"
			"                        (required unless --rest or --dry-run)\n"
			"  --prefix P            topic prefix (default: pinterest)\n"
			"  --count N             records to post, 0 = unlimited (default: 1000, or\n"
			"                        unlimited when --duration is given)\n"
			"  --rate R              records per second, 0 = as fast as possible (default: 0)\n"
			"  --duration SECONDS    stop after this long (default: no limit)\n"
			"  --seed S              PRNG seed, an unsigned 64-bit integer; the same seed\n"
			"                        gives the same records (default: time-based, printed)\n"
			"  --synthetic           post new rows (new inds from --start-ind up) whose\n"
			"                        values are drawn from the sample rows\n"
			"  --start-ind N         first ind of synthetic rows (default: 100000)\n"
			"  --kafka-config LIST   librdkafka properties \"key=value,key=value\" (a comma\n"
			"                        inside a value is written \\,), e.g. for SASL/SSL;\n"
			"                        they override the defaults enable.idempotence=true,\n"
			"                        partitioner=murmur2_random\n"
			"  --data DIR            directory of pin.jsonl, geo.jsonl, user.jsonl\n"
			"                        (default: " PP_DATADIR ")\n"
			"  --rest URL            post over HTTP to pinpipe-rest (or a Kafka REST Proxy)\n"
			"                        at URL, as the original producers do: POST\n"
			"                        URL/topics/PREFIX.pin (REST Proxy v2 json, no key)\n"
			"  --rest-batch N        rows a request (default 1, as the original)\n"
			"  --rest-streams        the streaming shape instead: PUT\n"
			"                        URL/streams/streaming-PREFIX-pin/record (records\n"
			"                        with --rest-batch above 1), PartitionKey the ind\n"
			"  --dry-run             write \"topic<TAB>key<TAB>value\" lines to stdout\n"
			"                        instead of posting to Kafka\n"
			"  --quiet               no progress line and no messages but errors and the\n"
			"                        summary\n"
			"  -h, --help            show this help and exit\n"
			"\n"
			"SIGINT or SIGTERM stops producing, waits for outstanding deliveries (up to 60 s;\n"
			"a signal during that wait stops it) and prints the summary.\n"
			"Exit status: 0 if every message was delivered, 1 if any was not, 2 for usage\n"
			"errors.\n");
}

static void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROGNAME ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

static unsigned long long
parse_ull(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	while (*s == ' ')
		s++;
	if (*s == '-' || *s == '\0')
		usage_error("invalid value for %s", opt);
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		usage_error("invalid value for %s", opt);
	return v;
}

static double
parse_nonneg_double(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0)
		usage_error("invalid value for %s", opt);
	return v;
}

/* Check that PREFIX.user is a legal Kafka topic name. */
static bool
valid_prefix(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n + strlen(".user") > MAX_TOPIC_NAME_LEN)
		return false;
	for (const char *c = p; *c; c++)
	{
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			  *c == '.' || *c == '_' || *c == '-'))
			return false;
	}
	return true;
}

static void
parse_options(int argc, char **argv, Options *opt)
{
	enum
	{
		OPT_BROKERS = 256,
		OPT_PREFIX,
		OPT_COUNT,
		OPT_RATE,
		OPT_SEED,
		OPT_DURATION,
		OPT_SYNTHETIC,
		OPT_START_IND,
		OPT_KAFKA_CONFIG,
		OPT_DATA,
		OPT_DRY_RUN,
		OPT_QUIET,
		OPT_REST,
		OPT_REST_BATCH,
		OPT_REST_STREAMS,
	};
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, OPT_BROKERS },
		{ "prefix", required_argument, NULL, OPT_PREFIX },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "synthetic", no_argument, NULL, OPT_SYNTHETIC },
		{ "start-ind", required_argument, NULL, OPT_START_IND },
		{ "kafka-config", required_argument, NULL, OPT_KAFKA_CONFIG },
		{ "data", required_argument, NULL, OPT_DATA },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "rest", required_argument, NULL, OPT_REST },
		{ "rest-batch", required_argument, NULL, OPT_REST_BATCH },
		{ "rest-streams", no_argument, NULL, OPT_REST_STREAMS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(opt, 0, sizeof(*opt));
	opt->prefix = "pinterest";
	opt->count = 1000;
	opt->start_ind = 100000;
	opt->datadir = PP_DATADIR;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case OPT_BROKERS:
				opt->brokers = optarg;
				break;
			case OPT_PREFIX:
				opt->prefix = optarg;
				break;
			case OPT_COUNT:
				opt->count = parse_ull("--count", optarg);
				opt->count_set = true;
				break;
			case OPT_RATE:
				opt->rate = parse_nonneg_double("--rate", optarg);
				break;
			case OPT_SEED:
				opt->seed = (uint64_t) parse_ull("--seed", optarg);
				opt->seed_set = true;
				break;
			case OPT_DURATION:
				opt->duration = parse_nonneg_double("--duration", optarg);
				break;
			case OPT_SYNTHETIC:
				opt->synthetic = true;
				break;
			case OPT_START_IND:
			{
				unsigned long long v = parse_ull("--start-ind", optarg);

				if (v > (unsigned long long) LLONG_MAX / 2)
					usage_error("invalid value for %s", "--start-ind");
				opt->start_ind = (long long) v;
				break;
			}
			case OPT_KAFKA_CONFIG:
				opt->kafka_config = optarg;
				break;
			case OPT_DATA:
				opt->datadir = optarg;
				break;
			case OPT_DRY_RUN:
				opt->dry_run = true;
				break;
			case OPT_QUIET:
				opt->quiet = true;
				break;
			case OPT_REST:
				opt->rest_url = optarg;
				break;
			case OPT_REST_BATCH:
				opt->rest_batch = (unsigned long) parse_ull("--rest-batch", optarg);
				if (opt->rest_batch == 0 || opt->rest_batch > 100000)
					usage_error("invalid value for %s (1 to 100000)", "--rest-batch");
				break;
			case OPT_REST_STREAMS:
				opt->rest_streams = true;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				/* getopt_long has said what is wrong */
				usage(stderr);
				exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (opt->rest_url != NULL && opt->dry_run)
		usage_error("%s and --dry-run exclude each other", "--rest");
	if ((opt->rest_batch > 0 || opt->rest_streams) && opt->rest_url == NULL)
		usage_error("%s needs --rest", opt->rest_streams ? "--rest-streams" : "--rest-batch");
	if (opt->rest_batch == 0)
		opt->rest_batch = 1;
	if (!opt->dry_run && opt->rest_url == NULL && (opt->brokers == NULL || opt->brokers[0] == '\0'))
		usage_error("%s is required (or use --rest or --dry-run)", "--brokers");
	if (!valid_prefix(opt->prefix))
		usage_error("invalid topic prefix \"%s\" (use letters, digits, '.', '_' and '-')",
					opt->prefix);
	if (!opt->count_set && opt->duration > 0)
		opt->count = 0;
}

/* Build the producer configuration: our defaults, then the user's properties. */
static rd_kafka_conf_t *
make_kafka_conf(const Options *opt)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	if ((opt->brokers != NULL && !conf_set(conf, "bootstrap.servers", opt->brokers)) ||
		!conf_set(conf, "client.id", PROGNAME) || !conf_set(conf, "enable.idempotence", "true") ||
		!conf_set(conf, "partitioner", "murmur2_random") || !conf_set(conf, "log.queue", "true") ||
		(opt->kafka_config != NULL &&
		 !pp_tool_apply_kafka_config(conf, PROGNAME, opt->kafka_config)))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

/* ---------------------------------------------------------------- data */

/* Read a whole file into a NUL-terminated malloc'd buffer. */
static char *
slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;
	size_t cap = 0;

	if (f == NULL)
	{
		fprintf(stderr, PROGNAME ": cannot open \"%s\": %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;)
	{
		size_t n;

		if (cap - len < 65536)
		{
			char *nbuf;

			cap = cap ? cap * 2 : 1 << 20;
			nbuf = realloc(buf, cap + 1);
			if (nbuf == NULL)
			{
				fprintf(stderr, PROGNAME ": out of memory reading \"%s\"\n", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nbuf;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
	{
		fprintf(stderr, PROGNAME ": cannot read \"%s\": %s\n", path, strerror(errno));
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

static void
table_free(Table *t)
{
	if (t->obj != NULL)
	{
		for (size_t i = 0; i < t->nrows; i++)
			json_decref(t->obj[i]);
	}
	free(t->obj);
	free(t->line);
	free(t->len);
	free(t->ind);
	free(t->by_ind);
	free(t->buf);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/*
 * Load one JSON-lines file: split it into rows, parse each row to check it and
 * find its key, keep the parsed objects when keep_objects, and for geo and
 * user build the ind -> row index.
 */
static bool
table_load(Table *t, int which, const char *datadir, bool keep_objects)
{
	size_t buflen;
	size_t nlines = 0;
	size_t pathlen = strlen(datadir) + strlen(table_name[which]) + 16;
	const char *key = table_key[which];
	char *p;

	memset(t, 0, sizeof(*t));
	t->path = malloc(pathlen);
	if (t->path == NULL)
		goto oom;
	snprintf(t->path, pathlen, "%s/%s.jsonl", datadir, table_name[which]);
	t->buf = slurp(t->path, &buflen);
	if (t->buf == NULL)
		return false;

	for (size_t i = 0; i < buflen; i++)
	{
		if (t->buf[i] == '\n')
			nlines++;
	}
	nlines++;
	t->line = malloc(nlines * sizeof(char *));
	t->len = malloc(nlines * sizeof(size_t));
	t->ind = malloc(nlines * sizeof(long long));
	if (keep_objects)
		t->obj = calloc(nlines, sizeof(json_t *));
	if (t->line == NULL || t->len == NULL || t->ind == NULL || (keep_objects && t->obj == NULL))
		goto oom;

	t->max_ind = -1;
	p = t->buf;
	for (size_t lineno = 1; p < t->buf + buflen; lineno++)
	{
		char *nl = memchr(p, '\n', t->buf + buflen - p);
		char *end = nl ? nl : t->buf + buflen;
		char *next = nl ? nl + 1 : end;
		size_t len;
		json_t *row;
		json_t *k;
		json_error_t jerr;

		while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		len = (size_t) (end - p);
		if (len == 0)
		{
			p = next;
			continue;
		}
		row = json_loadb(p, len, 0, &jerr);
		if (row == NULL)
		{
			fprintf(stderr, PROGNAME ": %s:%zu: invalid JSON: %s\n", t->path, lineno, jerr.text);
			return false;
		}
		k = json_object_get(row, key);
		if (!json_is_object(row) || !json_is_integer(k) || json_integer_value(k) < 0 ||
			json_integer_value(k) > MAX_IND)
		{
			fprintf(stderr,
					PROGNAME ": %s:%zu: expected an object with an integer \"%s\" in 0..%lld\n",
					t->path, lineno, key, MAX_IND);
			json_decref(row);
			return false;
		}
		if (keep_objects)
		{
			for (int f = 0; f < field_set[which].nfields; f++)
			{
				if (json_object_get(row, field_set[which].fields[f].name) == NULL)
				{
					fprintf(stderr, PROGNAME ": %s:%zu: key \"%s\" is missing\n", t->path, lineno,
							field_set[which].fields[f].name);
					json_decref(row);
					return false;
				}
			}
		}
		t->line[t->nrows] = p;
		t->len[t->nrows] = len;
		t->ind[t->nrows] = (long long) json_integer_value(k);
		if (t->ind[t->nrows] > t->max_ind)
			t->max_ind = t->ind[t->nrows];
		if (keep_objects)
			t->obj[t->nrows] = row;
		else
			json_decref(row);
		t->nrows++;
		p = next;
	}
	if (t->nrows == 0)
	{
		fprintf(stderr, PROGNAME ": %s: no rows\n", t->path);
		return false;
	}

	if (which != T_PIN)
	{
		t->by_ind = malloc((size_t) (t->max_ind + 1) * sizeof(int32_t));
		if (t->by_ind == NULL)
			goto oom;
		for (long long i = 0; i <= t->max_ind; i++)
			t->by_ind[i] = -1;
		for (size_t r = 0; r < t->nrows; r++)
		{
			if (t->by_ind[t->ind[r]] >= 0)
			{
				fprintf(stderr, PROGNAME ": %s: duplicate %s %lld (rows %d and %zu)\n", t->path,
						key, t->ind[r], t->by_ind[t->ind[r]] + 1, r + 1);
				return false;
			}
			t->by_ind[t->ind[r]] = (int32_t) r;
		}
	}
	return true;

oom:
	fprintf(stderr, PROGNAME ": out of memory loading %s data\n", table_name[which]);
	return false;
}

/* Load the three files and join each pin row to its geo and user rows. */
static bool
load_data(Emulator *e)
{
	Table *pin = &e->table[T_PIN];

	for (int i = 0; i < N_TABLES; i++)
	{
		if (!table_load(&e->table[i], i, e->opt.datadir, e->opt.synthetic))
			return false;
	}
	e->geo_of_pin = malloc(pin->nrows * sizeof(size_t));
	e->user_of_pin = malloc(pin->nrows * sizeof(size_t));
	if (e->geo_of_pin == NULL || e->user_of_pin == NULL)
	{
		fprintf(stderr, PROGNAME ": out of memory\n");
		return false;
	}
	for (size_t r = 0; r < pin->nrows; r++)
	{
		long long ind = pin->ind[r];

		for (int i = T_GEO; i <= T_USER; i++)
		{
			Table *t = &e->table[i];

			if (ind > t->max_ind || t->by_ind[ind] < 0)
			{
				fprintf(stderr, PROGNAME ": %s:%zu: index %lld has no row in %s\n", pin->path,
						r + 1, ind, t->path);
				return false;
			}
		}
		e->geo_of_pin[r] = (size_t) e->table[T_GEO].by_ind[ind];
		e->user_of_pin[r] = (size_t) e->table[T_USER].by_ind[ind];
	}
	return true;
}

/* ---------------------------------------------------------------- output */

static void
clear_progress(Emulator *e)
{
	if (e->progress_shown)
	{
		fprintf(stderr, "\r%79s\r", "");
		e->progress_shown = false;
	}
}

static unsigned long long
sum(const unsigned long long *v)
{
	unsigned long long s = 0;

	for (int i = 0; i < N_TABLES; i++)
		s += v[i];
	return s;
}

/* Redraw the progress line, about once per second, when stderr is a terminal. */
static void
progress(Emulator *e, bool force)
{
	int64_t now;
	double secs;

	if (!e->show_progress)
		return;
	now = now_ns();
	if (!force && now - e->last_progress_ns < PROGRESS_EVERY_NS)
		return;
	secs = (double) (now - e->last_progress_ns) / NS_PER_SEC;
	fprintf(stderr, "\r%llu records sent, %llu messages delivered, %.1f records/s, %llu errors   ",
			e->records, sum(e->delivered),
			secs > 0 ? (double) (e->records - e->last_progress_records) / secs : 0.0,
			sum(e->failed));
	fflush(stderr);
	e->progress_shown = true;
	e->last_progress_ns = now;
	e->last_progress_records = e->records;
}

static void
report_error(Emulator *e, const char *topic, const char *what, const char *detail)
{
	if (e->shown_errors++ >= MAX_SHOWN_ERRORS)
		return;
	clear_progress(e);
	fprintf(stderr, PROGNAME ": %s: %s: %s\n", topic, what, detail);
	if (e->shown_errors == MAX_SHOWN_ERRORS)
		fprintf(stderr, PROGNAME ": further errors are only counted\n");
}

/* Count a delivery report (called from rd_kafka_poll/flush, main thread). */
static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	Emulator *e = opaque;
	int t = (int) (intptr_t) msg->_private;

	(void) rk;
	if (t < 0 || t >= N_TABLES)
		return;
	e->reported[t]++;
	if (msg->err)
	{
		e->failed[t]++;
		report_error(e, e->topic[t], "delivery failed", rd_kafka_err2str(msg->err));
	}
	else
		e->delivered[t]++;
}

/* Show client errors; a fatal one (idempotence broken) stops the run. */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Emulator *e = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char buf[512];

		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		clear_progress(e);
		fprintf(stderr, PROGNAME ": fatal Kafka error: %s\n", buf);
		e->fatal = true;
		return;
	}
	/* connection failures are already in librdkafka's log */
	if (e->opt.quiet || err == RD_KAFKA_RESP_ERR__TRANSPORT)
		return;
	clear_progress(e);
	fprintf(stderr, PROGNAME ": kafka: %s: %s\n", rd_kafka_err2name((rd_kafka_resp_err_t) err),
			reason);
}

/* Print librdkafka's log lines (served from rd_kafka_poll, see log.queue). */
static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	Emulator *e = rd_kafka_opaque(rk);

	/* --quiet keeps errors (syslog levels 0..3) */
	if (e != NULL && e->opt.quiet && level > 3)
		return;
	if (e != NULL)
		clear_progress(e);
	fprintf(stderr, PROGNAME ": librdkafka: %s: %s\n", fac, buf);
}

static bool
start_producer(Emulator *e, rd_kafka_conf_t *conf)
{
	char errstr[512];
	sigset_t block;
	sigset_t old;

	rd_kafka_conf_set_opaque(conf, e);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);

	/* librdkafka's threads inherit this mask: let signals reach the main thread */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	e->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, PROGNAME ": cannot create Kafka producer: %s\n", errstr);
		return false;
	}
	/* serve log lines from the main thread, so they do not cut the progress line */
	rd_kafka_set_log_queue(e->rk, NULL);
	for (int i = 0; i < N_TABLES; i++)
	{
		e->rkt[i] = rd_kafka_topic_new(e->rk, e->topic[i], NULL);
		if (e->rkt[i] == NULL)
		{
			fprintf(stderr, PROGNAME ": cannot create topic handle \"%s\": %s\n", e->topic[i],
					rd_kafka_err2str(rd_kafka_last_error()));
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------------- --rest */

static size_t
rest_collect(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	Emulator *e = opaque;
	size_t n = size * nmemb;
	char *nr = realloc(e->reply, e->reply_len + n + 1);

	if (nr == NULL)
		return 0;
	e->reply = nr;
	memcpy(e->reply + e->reply_len, ptr, n);
	e->reply_len += n;
	e->reply[e->reply_len] = '\0';
	return n;
}

/* Open the HTTP client and compute each table's request URL. */
static bool
rest_start(Emulator *e)
{
	const char *url = e->opt.rest_url;
	int urllen = (int) strlen(url);

	while (urllen > 0 && url[urllen - 1] == '/')
		urllen--;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (e->curl = curl_easy_init()) == NULL)
	{
		fprintf(stderr, PROGNAME ": cannot start the HTTP client\n");
		return false;
	}
	for (int t = 0; t < N_TABLES; t++)
	{
		if (e->opt.rest_streams)
			snprintf(e->rest_target[t], sizeof(e->rest_target[t]),
					 "%.*s/streams/streaming-%s-%s/%s", urllen, url, e->opt.prefix, table_name[t],
					 e->opt.rest_batch > 1 ? "records" : "record");
		else
			snprintf(e->rest_target[t], sizeof(e->rest_target[t]), "%.*s/topics/%s", urllen, url,
					 e->topic[t]);
	}
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, rest_collect);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->curl, CURLOPT_TIMEOUT, 300L);
	return true;
}

/* Append text to table t's pending batch. */
static bool
batch_add(Emulator *e, int t, const char *text, size_t n)
{
	if (e->batch_len[t] + n + 1 > e->batch_cap[t])
	{
		size_t cap = e->batch_cap[t] ? e->batch_cap[t] : 65536;
		char *nb;

		while (cap < e->batch_len[t] + n + 1)
			cap *= 2;
		if ((nb = realloc(e->batch[t], cap)) == NULL)
			return false;
		e->batch[t] = nb;
		e->batch_cap[t] = cap;
	}
	memcpy(e->batch[t] + e->batch_len[t], text, n);
	e->batch_len[t] += n;
	e->batch[t][e->batch_len[t]] = '\0';
	return true;
}

/* Count the answer to a request of rows records of table t. */
static void
rest_count(Emulator *e, int t, long status, unsigned long rows)
{
	json_error_t jerr;
	json_t *reply = json_loadb(e->reply ? e->reply : "", e->reply_len, 0, &jerr);
	json_t *list = NULL;
	unsigned long ok = 0;
	bool shown = false;
	char why[300];

	snprintf(why, sizeof(why), "HTTP %ld: %.200s", status, e->reply ? e->reply : "");
	if (status == 200 && reply != NULL)
	{
		if (e->opt.rest_streams && e->opt.rest_batch == 1)
			ok = json_is_string(json_object_get(reply, "SequenceNumber")) ? 1 : 0;
		else
		{
			list = json_object_get(reply, e->opt.rest_streams ? "Records" : "offsets");
			for (size_t i = 0; i < json_array_size(list); i++)
			{
				json_t *r = json_array_get(list, i);
				bool good = e->opt.rest_streams
								? json_is_string(json_object_get(r, "SequenceNumber"))
								: json_is_integer(json_object_get(r, "offset"));

				if (good)
					ok++;
				else if (!shown)
				{
					shown = true;
					char *d = json_dumps(r, JSON_COMPACT);

					snprintf(why, sizeof(why), "record failed: %.250s", d ? d : "?");
					free(d);
				}
			}
		}
	}
	if (ok > rows)
		ok = rows;
	e->delivered[t] += ok;
	e->failed[t] += rows - ok;
	e->reported[t] += rows;
	if (ok < rows)
		report_error(e, e->rest_target[t], "post failed", why);
	json_decref(reply);
}

/* Send table t's pending rows in one request (the shape chosen by the options). */
static void
rest_flush(Emulator *e, int t)
{
	struct curl_slist *headers = NULL;
	unsigned long rows = e->batch_rows[t];
	char *body;
	size_t bodylen;
	char head[MAX_TOPIC_NAME_LEN + 64];
	const char *tail;
	CURLcode rc;
	long status = 0;

	if (rows == 0)
		return;
	if (e->opt.rest_streams && e->opt.rest_batch == 1)
	{
		head[0] = '\0';
		tail = "";
	}
	else if (e->opt.rest_streams)
	{
		snprintf(head, sizeof(head), "{\"StreamName\": \"streaming-%s-%s\", \"Records\": [",
				 e->opt.prefix, table_name[t]);
		tail = "]}";
	}
	else
	{
		snprintf(head, sizeof(head), "{\"records\": [");
		tail = "]}";
	}
	bodylen = strlen(head) + e->batch_len[t] + strlen(tail);
	body = malloc(bodylen + 1);
	if (body == NULL)
	{
		e->failed[t] += rows;
		e->reported[t] += rows;
		report_error(e, e->rest_target[t], "cannot post", "out of memory");
		goto reset;
	}
	snprintf(body, bodylen + 1, "%s%s%s", head, e->batch[t], tail);

	headers = curl_slist_append(headers, e->opt.rest_streams
											 ? "Content-Type: application/json"
											 : "Content-Type: application/vnd.kafka.json.v2+json");
	if (!e->opt.rest_streams)
		headers = curl_slist_append(headers, "Accept: application/vnd.kafka.v2+json");
	/* no "Expect: 100-continue" round trip before a large body */
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(e->curl, CURLOPT_URL, e->rest_target[t]);
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e->curl, CURLOPT_CUSTOMREQUEST, e->opt.rest_streams ? "PUT" : "POST");
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) bodylen);
	e->reply_len = 0;
	rc = curl_easy_perform(e->curl);
	e->produced[t] += rows;
	if (rc != CURLE_OK)
	{
		e->failed[t] += rows;
		e->reported[t] += rows;
		report_error(e, e->rest_target[t], "post failed", curl_easy_strerror(rc));
	}
	else
	{
		curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
		rest_count(e, t, status, rows);
	}
	curl_slist_free_all(headers);
	free(body);
reset:
	e->batch_len[t] = 0;
	e->batch_rows[t] = 0;
}

/* Add one row to table t's batch, sending the batch when it is full. */
static void
rest_post(Emulator *e, int t, const char *key, size_t keylen, const char *value, size_t len)
{
	char pre[MAX_TOPIC_NAME_LEN + 64];
	char post_key[64];
	bool ok = true;

	if (e->batch_rows[t] > 0)
		ok = batch_add(e, t, ", ", 2);
	if (e->opt.rest_streams)
	{
		if (e->opt.rest_batch == 1)
			snprintf(pre, sizeof(pre),
					 "{\"StreamName\": \"streaming-%s-%s\", \"Data\": ", e->opt.prefix,
					 table_name[t]);
		else
			snprintf(pre, sizeof(pre), "{\"Data\": ");
		snprintf(post_key, sizeof(post_key), ", \"PartitionKey\": \"%.*s\"}", (int) keylen, key);
	}
	else
	{
		snprintf(pre, sizeof(pre), "{\"value\": ");
		snprintf(post_key, sizeof(post_key), "}");
	}
	ok = ok && batch_add(e, t, pre, strlen(pre)) && batch_add(e, t, value, len) &&
		 batch_add(e, t, post_key, strlen(post_key));
	if (!ok)
	{
		e->failed[t]++;
		report_error(e, e->topic[t], "cannot build request", "out of memory");
		return;
	}
	e->batch_rows[t]++;
	if (e->batch_rows[t] >= e->opt.rest_batch)
		rest_flush(e, t);
}

static void
rest_finish(Emulator *e)
{
	for (int t = 0; t < N_TABLES; t++)
	{
		rest_flush(e, t);
		free(e->batch[t]);
	}
	free(e->reply);
	curl_easy_cleanup(e->curl);
	curl_global_cleanup();
}

/* Post one message, retrying while the producer queue is full. */
static void
post(Emulator *e, int t, const char *key, size_t keylen, const char *value, size_t len)
{
	if (e->curl != NULL)
	{
		rest_post(e, t, key, keylen, value, len);
		return;
	}
	if (e->opt.dry_run)
	{
		if (e->output_broken)
		{
			e->failed[t]++;
			return;
		}
		if (fprintf(stdout, "%s\t%.*s\t%.*s\n", e->topic[t], (int) keylen, key, (int) len, value) <
			0)
		{
			e->failed[t]++;
			e->output_broken = true;
			report_error(e, e->topic[t], "cannot write to stdout", strerror(errno));
			return;
		}
		e->produced[t]++;
		e->delivered[t]++;
		return;
	}

	for (;;)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_producev(e->rk, RD_KAFKA_V_RKT(e->rkt[t]), RD_KAFKA_V_KEY(key, keylen),
								RD_KAFKA_V_VALUE((void *) value, len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_OPAQUE((void *) (intptr_t) t), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			e->produced[t]++;
			return;
		}
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !e->fatal && stop_signals < 2)
		{
			rd_kafka_poll(e->rk, 100);
			progress(e, false);
			continue;
		}
		e->failed[t]++;
		report_error(e, e->topic[t], "cannot produce", rd_kafka_err2str(err));
		return;
	}
}

/* Build a synthetic row of table t for ind from the chosen sample pin rows. */
static char *
synthetic_row(Emulator *e, int t, long long ind)
{
	const FieldSet *fs = &field_set[t];
	const Table *tab = &e->table[t];
	size_t pick[MAX_GROUPS];
	json_t *obj = json_object();
	char *text;

	if (obj == NULL)
		return NULL;
	for (int g = 0; g < fs->ngroups; g++)
	{
		size_t r = (size_t) rng_below(&e->rng, e->table[T_PIN].nrows);

		pick[g] = t == T_GEO ? e->geo_of_pin[r] : t == T_USER ? e->user_of_pin[r] : r;
	}
	for (int f = 0; f < fs->nfields; f++)
	{
		const Field *fld = &fs->fields[f];
		int rc;

		if (fld->group == FIELD_IND)
			rc = json_object_set_new(obj, fld->name, json_integer((json_int_t) ind));
		else if (fld->group == FIELD_UUID)
		{
			char uuid[37];

			rng_uuid(&e->rng, uuid);
			rc = json_object_set_new(obj, fld->name, json_string(uuid));
		}
		else
			rc = json_object_set(obj, fld->name,
								 json_object_get(tab->obj[pick[fld->group]], fld->name));
		if (rc != 0)
		{
			json_decref(obj);
			return NULL;
		}
	}
	text = json_dumps(obj, DUMP_FLAGS);
	json_decref(obj);
	return text;
}

/* Post one record: a pin row and its geo and user rows. */
static void
send_record(Emulator *e)
{
	char key[32];
	int keylen;

	if (e->opt.synthetic)
	{
		long long ind = e->opt.start_ind + (long long) e->records;

		keylen = snprintf(key, sizeof(key), "%lld", ind);
		for (int t = 0; t < N_TABLES; t++)
		{
			char *text = synthetic_row(e, t, ind);

			if (text == NULL)
			{
				e->failed[t]++;
				report_error(e, e->topic[t], "cannot build row", "out of memory");
				continue;
			}
			post(e, t, key, (size_t) keylen, text, strlen(text));
			free(text);
		}
	}
	else
	{
		const Table *pin = &e->table[T_PIN];
		size_t r = (size_t) rng_below(&e->rng, pin->nrows);
		size_t row[N_TABLES];

		row[T_PIN] = r;
		row[T_GEO] = e->geo_of_pin[r];
		row[T_USER] = e->user_of_pin[r];
		keylen = snprintf(key, sizeof(key), "%lld", pin->ind[r]);
		for (int t = 0; t < N_TABLES; t++)
			post(e, t, key, (size_t) keylen, e->table[t].line[row[t]], e->table[t].len[row[t]]);
	}
	e->records++;
}

/* Wait until the monotonic clock reaches deadline, serving delivery reports. */
static bool
wait_until(Emulator *e, int64_t deadline)
{
	for (;;)
	{
		int64_t now;
		int64_t rem;

		if (stop_signals > 0 || e->fatal)
			return false;
		now = now_ns();
		if (now >= deadline)
			return true;
		rem = deadline - now;
		if (rem > 100 * NS_PER_MS)
			rem = 100 * NS_PER_MS;
		if (e->rk != NULL && rem >= NS_PER_MS)
			rd_kafka_poll(e->rk, (int) (rem / NS_PER_MS));
		else
		{
			struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) rem };

			nanosleep(&ts, NULL);
		}
		progress(e, false);
	}
}

/* Produce records until --count, --duration, a signal or a fatal error. */
static void
run(Emulator *e)
{
	const Options *o = &e->opt;
	const double max_offset_ns = 4e18; /* about 127 years: beyond it means never */
	int64_t end = INT64_MAX;

	if (o->duration > 0 && o->duration * NS_PER_SEC < max_offset_ns)
		end = e->start_ns + (int64_t) (o->duration * NS_PER_SEC);

	while (o->count == 0 || e->records < o->count)
	{
		if (stop_signals > 0 || e->fatal || e->output_broken)
			break;
		if (o->rate > 0)
		{
			/* absolute schedule: record n is due at start + n / rate */
			double offset = (double) e->records * NS_PER_SEC / o->rate;
			int64_t due = offset < max_offset_ns ? e->start_ns + (int64_t) offset : INT64_MAX;

			if (!wait_until(e, due < end ? due : end))
				break;
		}
		if (end != INT64_MAX && now_ns() >= end)
			break;
		send_record(e);
		if (e->rk != NULL)
			rd_kafka_poll(e->rk, 0);
		else if (o->rate > 0)
			fflush(stdout);
		progress(e, false);
	}
}

/* Count the messages queued but without a delivery report yet. */
static unsigned long long
pending(const Emulator *e)
{
	unsigned long long n = 0;

	for (int t = 0; t < N_TABLES; t++)
		n += e->produced[t] - e->reported[t];
	return n;
}

/*
 * Wait for outstanding deliveries, at most FLUSH_TIMEOUT_NS or until another
 * signal; what is still undelivered then is purged and counted as failed.
 */
static void
finish_kafka(Emulator *e)
{
	int64_t deadline = now_ns() + FLUSH_TIMEOUT_NS;
	int signals_at_start = stop_signals;
	unsigned long long left;

	while (pending(e) > 0 && now_ns() < deadline && stop_signals == signals_at_start)
	{
		rd_kafka_flush(e->rk, 100);
		progress(e, false);
	}
	left = pending(e);
	if (left == 0)
		return;

	clear_progress(e);
	if (stop_signals != signals_at_start)
		fprintf(stderr, PROGNAME ": interrupted, %llu messages not delivered\n", left);
	else
		fprintf(stderr, PROGNAME ": %llu messages not delivered within %d s\n", left,
				(int) (FLUSH_TIMEOUT_NS / NS_PER_SEC));
	/* purging fails them with a delivery report each */
	rd_kafka_purge(e->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_flush(e->rk, 1000);
	for (int t = 0; t < N_TABLES; t++)
	{
		/* any report still missing counts as a failure too */
		e->failed[t] += e->produced[t] - e->reported[t];
		e->reported[t] = e->produced[t];
	}
}

int
main(int argc, char **argv)
{
	Emulator emu;
	Emulator *e = &emu;
	rd_kafka_conf_t *conf;
	struct sigaction sa;
	int64_t elapsed_ns;
	int64_t produce_ns;
	double elapsed;
	double producing;
	unsigned long long failed;
	int status;

	memset(e, 0, sizeof(*e));
	parse_options(argc, argv, &e->opt);

	for (int t = 0; t < N_TABLES; t++)
		snprintf(e->topic[t], sizeof(e->topic[t]), "%s.%s", e->opt.prefix, table_name[t]);

	/* check the Kafka properties first, even for --dry-run: they are usage errors */
	conf = make_kafka_conf(&e->opt);
	if (conf == NULL)
		return 2;

	if (!e->opt.seed_set)
	{
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
		x ^= (uint64_t) getpid() << 32;
		e->opt.seed = splitmix64(&x);
	}
	rng_seed(&e->rng, e->opt.seed);

	if (!load_data(e))
	{
		rd_kafka_conf_destroy(conf);
		status = 1;
		goto done;
	}
	if (e->opt.synthetic && e->opt.start_ind <= e->table[T_GEO].max_ind && !e->opt.quiet)
		fprintf(stderr,
				PROGNAME
				": warning: --start-ind %lld is not above the sample's inds (up to %lld)\n",
				e->opt.start_ind, e->table[T_GEO].max_ind);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (e->opt.dry_run)
		rd_kafka_conf_destroy(conf);
	else if (e->opt.rest_url != NULL)
	{
		rd_kafka_conf_destroy(conf);
		if (!rest_start(e))
		{
			status = 1;
			goto done;
		}
	}
	else if (!start_producer(e, conf))
	{
		status = 1;
		goto done;
	}

	e->show_progress = !e->opt.quiet && isatty(STDERR_FILENO);
	if (!e->opt.quiet)
		fprintf(stderr, PROGNAME ": seed %" PRIu64 ", posting to %s, %s, %s%s\n", e->opt.seed,
				e->topic[T_PIN], e->topic[T_GEO], e->topic[T_USER],
				e->opt.dry_run    ? " (dry run)"
				: e->opt.rest_url ? " over HTTP"
								  : "");
	e->start_ns = now_ns();
	e->last_progress_ns = e->start_ns;

	run(e);
	produce_ns = now_ns() - e->start_ns;
	if (e->curl != NULL)
		rest_finish(e);
	else if (e->rk != NULL)
		finish_kafka(e);
	else if (fflush(stdout) != 0 || ferror(stdout))
	{
		if (!e->output_broken)
			report_error(e, "stdout", "cannot write", strerror(errno));
		e->output_broken = true;
	}
	elapsed_ns = now_ns() - e->start_ns;
	elapsed = (double) elapsed_ns / NS_PER_SEC;
	producing = (double) produce_ns / NS_PER_SEC;

	/* the average rate is over the producing time, not the final flush */
	failed = sum(e->failed);
	clear_progress(e);
	fprintf(stderr,
			PROGNAME
			": %llu records; delivered %s %llu, %s %llu, %s %llu; failed %llu; elapsed %.2f s; "
			"average %.1f records/s; seed %" PRIu64 "%s\n",
			e->records, e->topic[T_PIN], e->delivered[T_PIN], e->topic[T_GEO], e->delivered[T_GEO],
			e->topic[T_USER], e->delivered[T_USER], failed, elapsed,
			producing > 0 ? (double) e->records / producing : 0.0, e->opt.seed,
			stop_signals > 0 ? " (interrupted)" : "");
	status = (failed > 0 || e->output_broken || e->fatal) ? 1 : 0;

done:
	for (int t = 0; t < N_TABLES; t++)
	{
		if (e->rkt[t] != NULL)
			rd_kafka_topic_destroy(e->rkt[t]);
	}
	if (e->rk != NULL)
		rd_kafka_destroy(e->rk);
	for (int t = 0; t < N_TABLES; t++)
		table_free(&e->table[t]);
	free(e->geo_of_pin);
	free(e->user_of_pin);
	return status;
}
