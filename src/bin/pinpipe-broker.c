/*
 * pinpipe-broker: an embedded Kafka-protocol broker for demos and tests.
 *
 * Runs librdkafka's mock cluster on loopback, creates the pinpipe topics
 * (<prefix>.pin, <prefix>.geo, <prefix>.user) and prints the bootstrap
 * address, so the extension, kcat and the emulator can be exercised without a
 * real Kafka. An optional control FIFO takes commands that inject faults:
 * brokers going down, added latency, protocol errors, leader moves, topics
 * reported as missing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROGNAME       "pinpipe-broker"
#define MAX_BROKERS    64
#define MAX_PARTITIONS 10000
#define MAX_ERRORS     10000
#define POLL_MS        200
#define MAX_TOKENS     8

/* A Kafka protocol request type the "error" and "clear" commands accept. */
typedef struct
{
	const char *name;
	int16_t key;
} ApiName;

static const ApiName api_names[] = {
	{ "Produce", 0 },         { "Fetch", 1 },       { "ListOffsets", 2 },      { "Metadata", 3 },
	{ "OffsetCommit", 8 },    { "OffsetFetch", 9 }, { "FindCoordinator", 10 }, { "JoinGroup", 11 },
	{ "Heartbeat", 12 },      { "LeaveGroup", 13 }, { "SyncGroup", 14 },       { "ApiVersion", 18 },
	{ "InitProducerId", 22 },
};

static volatile sig_atomic_t stop_requested = 0;
static int quiet = 0;

static rd_kafka_mock_cluster_t *mcluster;
static int broker_count = 1;
static int replication_factor = 1;
static int broker_down[MAX_BROKERS + 1];

/* --port: the port of broker 1 (broker i gets port + i - 1); 0 = random. */
static int first_port = 0;
static int ports_given = 0;

/*
 * Bind the mock brokers' listeners to --port. librdkafka 2.0.2's mock cluster
 * binds each broker to a random loopback port and has no option to choose it,
 * so this program defines bind() itself: librdkafka's calls resolve to it (an
 * executable's symbols come first), and a loopback listener asking for port 0
 * gets the next --port instead, while the brokers are being created. Rebinds
 * (a broker going down and up) ask for their port already and pass through.
 */
int
bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static int (*real_bind)(int, const struct sockaddr *, socklen_t) = NULL;

	if (real_bind == NULL)
		real_bind = (int (*)(int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "bind");
	if (real_bind == NULL)
	{
		errno = ENOSYS;
		return -1;
	}
	if (first_port > 0 && ports_given < broker_count && addr != NULL &&
		addr->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in) &&
		((const struct sockaddr_in *) addr)->sin_port == 0)
	{
		struct sockaddr_in sin;

		memcpy(&sin, addr, sizeof(sin));
		sin.sin_port = htons((uint16_t) (first_port + ports_given++));
		return real_bind(fd, (const struct sockaddr *) &sin, sizeof(sin));
	}
	return real_bind(fd, addr, len);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: " PROGNAME " [OPTION]...\n"
			"Run an embedded Kafka-protocol broker (librdkafka's mock cluster) on loopback\n"
			"for demos and tests. Prints the bootstrap address as the first line of stdout,\n"
			"then runs until SIGTERM or SIGINT.\n"
			"\n"
			"Options:\n"
			"  --brokers N               number of brokers, ids 1..N (default 1)\n"
			"  --port PORT               listen on PORT (broker i on PORT + i - 1) instead of\n"
			"                            random ports, so a restarted broker keeps its address\n"
			"  --partitions N            partitions of each pinpipe topic (default 3)\n"
			"  --prefix P                create P.pin, P.geo and P.user (default pinterest)\n"
			"  --topic NAME[:PARTITIONS] also create NAME (default --partitions); repeatable\n"
			"  --bootstrap-file FILE     also write the bootstrap address to FILE (atomically,\n"
			"                            via FILE.tmp); removed on exit\n"
			"  --control FIFO            create the named pipe FIFO and read commands from it,\n"
			"                            one per line; removed on exit\n"
			"  --max-request-bytes N     largest request accepted, e.g. a Produce of one big\n"
			"                            message (default 100000000)\n"
			"  --quiet                   print only errors and control command results\n"
			"  --stable-cluster-id       report the same cluster id on every start (run without\n"
			"                            address space randomization): a restart on the same\n"
			"                            --port then looks like the same cluster, not a new one\n"
			"  --help                    show this help and exit\n"
			"\n"
			"Control commands (e.g. echo \"down 1\" > FIFO); each result is one line on stderr:\n"
			"  down BROKER               disconnect a broker and refuse new connections\n"
			"  up BROKER                 accept connections again\n"
			"  rtt BROKER MS             delay the broker's responses by MS milliseconds\n"
			"  error API COUNT ERROR     fail the next COUNT API requests with ERROR\n"
			"  clear API                 drop the API's pending injected errors\n"
			"  leader TOPIC PART BROKER  move a partition's leader (-1: leader-less)\n"
			"  topic NAME PARTITIONS     create a topic\n"
			"  topic-error NAME ERROR    report the topic with ERROR in metadata responses\n"
			"                            (UNKNOWN_TOPIC_OR_PART: as if deleted); \"clear\" as\n"
			"                            ERROR removes it. Its messages are kept\n"
			"  status                    print the bootstrap address and broker states\n"
			"  help                      list the commands\n"
			"BROKER is a broker id, or -1 for all brokers. API is one of Produce, Fetch,\n"
			"ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup,\n"
			"Heartbeat, LeaveGroup, SyncGroup, ApiVersion, InitProducerId or a number.\n"
			"ERROR is a Kafka error name such as NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT,\n"
			"LEADER_NOT_AVAILABLE, NOT_COORDINATOR or _TRANSPORT (disconnect), with or\n"
			"without the RD_KAFKA_RESP_ERR_ prefix, or a number. Injected errors apply to\n"
			"whichever broker serves the next requests. A command can take up to a second\n"
			"to apply (librdkafka's mock thread sometimes waits out its poll timeout), so\n"
			"scripts should wait for its result line. \"down\" closes the broker's client\n"
			"connections and its listener, and does not move partition leaders.\n"
			"\n"
			"Note: the mock cluster keeps messages in memory, at most about 5 MB and 100000\n"
			"message batches per partition; older messages are deleted, like retention. Give\n"
			"a large backlog enough partitions, or consumers will see offsets jump. A batch\n"
			"that, with the newest batch before it, passes 5 MiB deletes all older ones and\n"
			"itself too (the partition then starts after it), unless the partition was empty;\n"
			"so a message of about 5 MB or more needs an empty partition of its own, and is\n"
			"deleted, with the new message, as soon as another is produced there. Requests\n"
			"over --max-request-bytes are refused.\n");
}

/* Print one line to stderr, prefixed with the program name. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Check that a loopback port can be listened on, as the mock broker will
 * (SO_REUSEADDR, so connections of a previous broker in TIME_WAIT do not
 * matter). librdkafka aborts when a mock broker cannot bind, so --port is
 * checked first.
 */
static int
port_free(int port)
{
	struct sockaddr_in sin;
	int on = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int ok;

	if (fd < 0)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t) port);
	ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
		 bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0 && listen(fd, 1) == 0;
	if (!ok)
		say("cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
	close(fd);
	return ok;
}

static void
say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROGNAME ": %s\n", buf);
}

/* The control command being run, quoted in its error messages. */
static char current_command[256];

/* Report a failed control command: error: "COMMAND": reason. */
static void cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
cmd_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("error: \"%s\": %s", current_command, buf);
}

static void
handle_stop_signal(int signo)
{
	(void) signo;
	stop_requested = 1;
}

/* Forward librdkafka's log lines to stderr: errors always, the rest unless
 * --quiet. The warning that our handle has no bootstrap servers is expected:
 * it only owns the mock cluster. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers") != NULL)
		return;
	if (!quiet || level <= 3)
		say("librdkafka: %s: %s", fac, buf);
}

/* Parse a whole decimal integer within [min, max]; returns 0 on success. */
static int
parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Check a topic name as Kafka does: 1 to 249 of [A-Za-z0-9._-]. */
static int
valid_topic_name(const char *name)
{
	size_t len = strlen(name);

	if (len < 1 || len > 249)
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/* Look up a protocol request type by name (any case) or number. */
static int
parse_api(const char *s, int16_t *key)
{
	long v;

	for (size_t i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++)
	{
		if (strcasecmp(s, api_names[i].name) == 0)
		{
			*key = api_names[i].key;
			return 0;
		}
	}
	if (parse_int(s, 0, 100, &v) == 0)
	{
		*key = (int16_t) v;
		return 0;
	}
	return -1;
}

/* Name a protocol request type for messages. */
static const char *
api_name(int16_t key)
{
	for (size_t i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++)
		if (api_names[i].key == key)
			return api_names[i].name;
	return "ApiKey";
}

/* Look up an error code by its librdkafka name (with or without the
 * RD_KAFKA_RESP_ERR_ prefix, any case) or number. */
static int
parse_error(const char *s, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_err_desc *descs;
	size_t cnt;
	long v;
	const char *prefix = "RD_KAFKA_RESP_ERR_";

	if (strncasecmp(s, prefix, strlen(prefix)) == 0)
		s += strlen(prefix);
	if (parse_int(s, INT_MIN, INT_MAX, &v) == 0)
	{
		*err = (rd_kafka_resp_err_t) v;
		return 0;
	}
	rd_kafka_get_err_descs(&descs, &cnt);
	for (size_t i = 0; i < cnt; i++)
	{
		if (descs[i].name != NULL && strcasecmp(s, descs[i].name) == 0)
		{
			*err = descs[i].code;
			return 0;
		}
	}
	return -1;
}

/* Describe a broker id for messages: "broker 2" or "all brokers". */
static const char *
broker_label(long id, char *buf, size_t len)
{
	if (id == -1)
		snprintf(buf, len, "all brokers");
	else
		snprintf(buf, len, "broker %ld", id);
	return buf;
}

/* Parse a broker id argument: an existing broker's id, or -1 for all. */
static int
parse_broker(const char *s, long *id)
{
	if (parse_int(s, -1, broker_count, id) != 0 || *id == 0)
		return -1;
	return 0;
}

/* Record up/down state for "status". */
static void
note_broker_state(long id, int down)
{
	for (int i = 1; i <= broker_count; i++)
		if (id == -1 || id == i)
			broker_down[i] = down;
}

static void
print_status(void)
{
	char down[512] = "";
	size_t len = 0;

	for (int i = 1; i <= broker_count && len < sizeof(down) - 16; i++)
		if (broker_down[i])
			len += snprintf(down + len, sizeof(down) - len, "%s%d", len ? "," : "", i);
	say("bootstrap %s brokers %d down %s", rd_kafka_mock_cluster_bootstraps(mcluster), broker_count,
		len ? down : "none");
}

/*
 * The control commands. Each gets its arguments (argv[0] is the command
 * name), checked for number already; it reports its own result and returns
 * 0, or returns a librdkafka error for run_command to report.
 */
typedef rd_kafka_resp_err_t (*CommandFn)(char **argv);

typedef struct
{
	const char *name;
	int nargs;
	const char *syntax;
	CommandFn fn;
} Command;

/* down BROKER, up BROKER */
static rd_kafka_resp_err_t
cmd_down_up(char **argv)
{
	int down = argv[0][0] == 'd';
	char label[64];
	long id;
	rd_kafka_resp_err_t err;

	if (parse_broker(argv[1], &id) != 0)
	{
		cmd_fail("no broker \"%s\" (brokers are 1..%d, or -1 for all)", argv[1], broker_count);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	err = down ? rd_kafka_mock_broker_set_down(mcluster, (int32_t) id)
			   : rd_kafka_mock_broker_set_up(mcluster, (int32_t) id);
	if (!err)
	{
		note_broker_state(id, down);
		say("%s %s", broker_label(id, label, sizeof(label)), down ? "down" : "up");
	}
	return err;
}

static rd_kafka_resp_err_t
cmd_rtt(char **argv)
{
	char label[64];
	long id, n;
	rd_kafka_resp_err_t err;

	if (parse_broker(argv[1], &id) != 0 || parse_int(argv[2], 0, INT_MAX, &n) != 0)
	{
		cmd_fail("bad broker \"%s\" or milliseconds \"%s\"", argv[1], argv[2]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	err = rd_kafka_mock_broker_set_rtt(mcluster, (int32_t) id, (int) n);
	if (!err)
		say("%s rtt %ld ms", broker_label(id, label, sizeof(label)), n);
	return err;
}

static rd_kafka_resp_err_t
cmd_error(char **argv)
{
	int16_t key;
	long n;
	rd_kafka_resp_err_t code;
	rd_kafka_resp_err_t *codes;

	if (parse_api(argv[1], &key) != 0)
	{
		cmd_fail("unknown API \"%s\"", argv[1]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (parse_int(argv[2], 1, MAX_ERRORS, &n) != 0)
	{
		cmd_fail("bad count \"%s\" (1..%d)", argv[2], MAX_ERRORS);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (parse_error(argv[3], &code) != 0)
	{
		cmd_fail("unknown error name \"%s\"", argv[3]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	codes = malloc(sizeof(*codes) * (size_t) n);
	if (codes == NULL)
	{
		cmd_fail("out of memory");
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	for (long i = 0; i < n; i++)
		codes[i] = code;
	rd_kafka_mock_push_request_errors_array(mcluster, key, (size_t) n, codes);
	free(codes);
	say("next %ld %s(%d) requests fail with %s (%d)", n, api_name(key), key,
		rd_kafka_err2name(code), (int) code);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t
cmd_clear(char **argv)
{
	int16_t key;

	if (parse_api(argv[1], &key) != 0)
	{
		cmd_fail("unknown API \"%s\"", argv[1]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	rd_kafka_mock_clear_request_errors(mcluster, key);
	say("cleared %s(%d) errors", api_name(key), key);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t
cmd_leader(char **argv)
{
	long part, id;
	rd_kafka_resp_err_t err;

	if (parse_int(argv[2], 0, INT_MAX, &part) != 0 || parse_int(argv[3], -1, INT_MAX, &id) != 0)
	{
		cmd_fail("bad partition \"%s\" or broker \"%s\"", argv[2], argv[3]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	err = rd_kafka_mock_partition_set_leader(mcluster, argv[1], (int32_t) part, (int32_t) id);
	if (!err)
		say("%s [%ld] leader %ld", argv[1], part, id);
	return err;
}

static rd_kafka_resp_err_t
cmd_topic(char **argv)
{
	long n;
	rd_kafka_resp_err_t err;

	if (!valid_topic_name(argv[1]))
	{
		cmd_fail("bad topic name \"%s\"", argv[1]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (parse_int(argv[2], 1, MAX_PARTITIONS, &n) != 0)
	{
		cmd_fail("bad partition count \"%s\" (1..%d)", argv[2], MAX_PARTITIONS);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	err = rd_kafka_mock_topic_create(mcluster, argv[1], (int) n, replication_factor);
	if (!err)
		say("topic %s created with %ld partitions", argv[1], n);
	return err;
}

static rd_kafka_resp_err_t
cmd_topic_error(char **argv)
{
	rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (!valid_topic_name(argv[1]))
	{
		cmd_fail("bad topic name \"%s\"", argv[1]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (strcasecmp(argv[2], "clear") != 0 && parse_error(argv[2], &code) != 0)
	{
		cmd_fail("unknown error name \"%s\"", argv[2]);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	rd_kafka_mock_topic_set_error(mcluster, argv[1], code);
	if (code == RD_KAFKA_RESP_ERR_NO_ERROR)
		say("topic %s: error cleared", argv[1]);
	else
		say("topic %s: metadata reports %s (%d)", argv[1], rd_kafka_err2name(code), (int) code);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t
cmd_status(char **argv)
{
	(void) argv;
	print_status();
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t cmd_help(char **argv);

static const Command commands[] = {
	{ "down", 1, "down BROKER", cmd_down_up },
	{ "up", 1, "up BROKER", cmd_down_up },
	{ "rtt", 2, "rtt BROKER MS", cmd_rtt },
	{ "error", 3, "error API COUNT ERROR", cmd_error },
	{ "clear", 1, "clear API", cmd_clear },
	{ "leader", 3, "leader TOPIC PARTITION BROKER", cmd_leader },
	{ "topic", 2, "topic NAME PARTITIONS", cmd_topic },
	{ "topic-error", 2, "topic-error NAME ERROR|clear", cmd_topic_error },
	{ "status", 0, "status", cmd_status },
	{ "help", 0, "help", cmd_help },
};

#define NCOMMANDS ((int) (sizeof(commands) / sizeof(commands[0])))

/* help: every command's syntax but its own */
static rd_kafka_resp_err_t
cmd_help(char **argv)
{
	char buf[512] = "commands:";
	size_t len = strlen(buf);

	(void) argv;
	for (int i = 0; i < NCOMMANDS && len < sizeof(buf); i++)
	{
		if (commands[i].fn != cmd_help)
			len += snprintf(buf + len, sizeof(buf) - len, "%s %s", i > 0 ? " |" : "",
							commands[i].syntax);
	}
	say("%s", buf);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Run one control command line and report its result on stderr. */
static void
run_command(char *line)
{
	char *tok[MAX_TOKENS];
	int ntok = 0;
	char *save = NULL;
	rd_kafka_resp_err_t err;

	snprintf(current_command, sizeof(current_command), "%s", line);
	current_command[strcspn(current_command, "\r\n")] = '\0';
	for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL && ntok < MAX_TOKENS;
		 t = strtok_r(NULL, " \t\r\n", &save))
		tok[ntok++] = t;
	if (ntok == 0 || tok[0][0] == '#')
		return;

	for (int i = 0; i < NCOMMANDS; i++)
	{
		const Command *c = &commands[i];

		if (strcmp(tok[0], c->name) != 0)
			continue;
		if (ntok != c->nargs + 1)
		{
			cmd_fail("usage: %s", c->syntax);
			return;
		}
		err = c->fn(tok);
		if (err)
			cmd_fail("%s", rd_kafka_err2str(err));
		return;
	}
	cmd_fail("unknown command (try \"help\")");
}

/* Create a topic at startup; returns 0 on success. */
static int
create_topic(const char *name, int partitions)
{
	rd_kafka_resp_err_t err;

	err = rd_kafka_mock_topic_create(mcluster, name, partitions, replication_factor);
	if (err)
	{
		say("could not create topic \"%s\": %s", name, rd_kafka_err2str(err));
		return -1;
	}
	if (!quiet)
		say("topic %s: %d partitions", name, partitions);
	return 0;
}

/* Write the bootstrap address to path via path.tmp and rename, so a reader
 * never sees a partial line. */
static int
write_bootstrap_file(const char *path, const char *bootstraps)
{
	size_t len = strlen(path) + 5;
	char *tmp = malloc(len);
	FILE *f;

	if (tmp == NULL)
		return -1;
	snprintf(tmp, len, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
	{
		say("could not write \"%s\": %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* Create the control FIFO, replacing a stale one left by a crashed run. */
static int
make_fifo(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
	{
		if (!S_ISFIFO(st.st_mode))
		{
			say("\"%s\" exists and is not a named pipe", path);
			return -1;
		}
		unlink(path);
	}
	if (mkfifo(path, 0600) != 0)
	{
		say("could not create named pipe \"%s\": %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Open the control FIFO for reading without waiting for a writer. */
static int
open_fifo(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		say("could not open \"%s\": %s", path, strerror(errno));
	return fd;
}

/* Run the complete lines in buf and keep the unfinished tail; at EOF run the
 * tail too. Returns the bytes left in buf. */
static size_t
run_lines(char *buf, size_t used, size_t size, int eof)
{
	char *nl;

	while ((nl = memchr(buf, '\n', used)) != NULL)
	{
		size_t linelen = (size_t) (nl - buf) + 1;

		*nl = '\0';
		run_command(buf);
		memmove(buf, buf + linelen, used - linelen);
		used -= linelen;
	}
	buf[used] = '\0';
	if (used > 0 && eof)
		run_command(buf);
	else if (used >= size - 1)
		say("error: command too long, ignored");
	else
		return used;
	return 0;
}

/* Wait for commands on the FIFO (if any) until SIGTERM or SIGINT.
 *
 * Each writer's data is drained with non-blocking reads until EAGAIN (a writer
 * still has the FIFO open) or EOF (all writers closed). At EOF the FIFO is
 * reopened, the new descriptor before the old one is closed, so a writer that
 * arrives meanwhile never finds the FIFO without a reader and never loses what
 * it wrote. */
static int
serve(const char *fifo_path)
{
	int fd = -1;
	char buf[4096];
	size_t used = 0;

	if (fifo_path != NULL && (fd = open_fifo(fifo_path)) < 0)
		return -1;

	while (!stop_requested)
	{
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r;

		r = poll(fd >= 0 ? &pfd : NULL, fd >= 0 ? 1 : 0, POLL_MS);
		if (r < 0 && errno != EINTR)
		{
			say("poll: %s", strerror(errno));
			break;
		}
		if (r <= 0)
			continue;

		for (;;)
		{
			ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);

			if (n > 0)
			{
				used = run_lines(buf, used + (size_t) n, sizeof(buf), 0);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN)
			{
				say("read \"%s\": %s", fifo_path, strerror(errno));
				close(fd);
				return -1;
			}
			if (n == 0)
			{
				int newfd;

				used = run_lines(buf, used, sizeof(buf), 1);
				if ((newfd = open_fifo(fifo_path)) < 0)
				{
					close(fd);
					return -1;
				}
				close(fd);
				fd = newfd;
			}
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* A topic to create at startup; partitions 0 means the --partitions value. */
typedef struct
{
	char name[250];
	int partitions;
} TopicSpec;

/* Parse a --topic NAME[:PARTITIONS] argument; returns 0 on success. */
static int
parse_topic_arg(const char *arg, TopicSpec *spec)
{
	const char *colon = strrchr(arg, ':');
	size_t len = colon != NULL ? (size_t) (colon - arg) : strlen(arg);
	long v = 0;

	if (len >= sizeof(spec->name))
		return -1;
	memcpy(spec->name, arg, len);
	spec->name[len] = '\0';
	if (!valid_topic_name(spec->name))
		return -1;
	if (colon != NULL && parse_int(colon + 1, 1, MAX_PARTITIONS, &v) != 0)
		return -1;
	spec->partitions = (int) v;
	return 0;
}

/*
 * --stable-cluster-id: librdkafka 2.0.2 names the mock cluster after two of
 * its heap addresses, so each start is a new cluster to its clients (as a
 * restarted mock broker holds none of the old messages, it is one). Run
 * without address space randomization, the addresses and so the id are the
 * same on every start: a restart then looks like the same cluster, e.g. one
 * whose topic was deleted and created again. Re-executes the program once.
 */
static void
stable_cluster_id(char **argv)
{
	int current = personality(0xffffffff);

	if (current == -1 || (current & ADDR_NO_RANDOMIZE) != 0)
		return;
	if (personality((unsigned long) current | ADDR_NO_RANDOMIZE) == -1)
	{
		say("--stable-cluster-id: cannot turn off address space randomization: %s",
			strerror(errno));
		exit(1);
	}
	execv("/proc/self/exe", argv);
	say("--stable-cluster-id: cannot re-execute: %s", strerror(errno));
	exit(1);
}

int
main(int argc, char **argv)
{
	int partitions = 3;
	const char *prefix = "pinterest";
	const char *bootstrap_file = NULL;
	const char *fifo_path = NULL;
	const char *max_request = "100000000";
	TopicSpec *topics;
	int ntopics = 0;
	int status = 0;
	int fifo_made = 0;
	int file_made = 0;
	char errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	const char *bootstraps;
	struct sigaction sa;
	long v;

	topics = calloc((size_t) argc + 3, sizeof(*topics));
	if (topics == NULL)
		return 1;
	for (int i = 1; i < argc; i++)
	{
		const char *opt = argv[i];
		const char *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0)
		{
			usage(stdout);
			return 0;
		}
		else if (strcmp(opt, "--quiet") == 0 || strcmp(opt, "-q") == 0)
		{
			quiet = 1;
			continue;
		}
		else if (strcmp(opt, "--stable-cluster-id") == 0)
		{
			stable_cluster_id(argv);
			continue;
		}
		if (arg == NULL)
		{
			say("option \"%s\" is unknown or needs an argument", opt);
			usage(stderr);
			return 2;
		}
		if (strcmp(opt, "--brokers") == 0 && parse_int(arg, 1, MAX_BROKERS, &v) == 0)
			broker_count = (int) v;
		else if (strcmp(opt, "--port") == 0 && parse_int(arg, 1, 65535, &v) == 0)
			first_port = (int) v;
		else if (strcmp(opt, "--partitions") == 0 && parse_int(arg, 1, MAX_PARTITIONS, &v) == 0)
			partitions = (int) v;
		else if (strcmp(opt, "--prefix") == 0 && valid_topic_name(arg) && strlen(arg) < 240)
			prefix = arg;
		else if (strcmp(opt, "--topic") == 0 && parse_topic_arg(arg, &topics[ntopics + 3]) == 0)
			ntopics++;
		else if (strcmp(opt, "--bootstrap-file") == 0 && *arg != '\0')
			bootstrap_file = arg;
		else if (strcmp(opt, "--control") == 0 && *arg != '\0')
			fifo_path = arg;
		else if (strcmp(opt, "--max-request-bytes") == 0 &&
				 parse_int(arg, 1000, 2147483647, &v) == 0)
			max_request = arg;
		else
		{
			say("bad option \"%s %s\"", opt, arg);
			usage(stderr);
			return 2;
		}
		i++;
	}
	replication_factor = broker_count < 3 ? broker_count : 3;
	if (first_port > 0 && first_port + broker_count - 1 > 65535)
	{
		say("--port %d leaves no room for %d brokers", first_port, broker_count);
		return 2;
	}
	for (int i = 0; first_port > 0 && i < broker_count; i++)
		if (!port_free(first_port + i))
			return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * A producer handle with no bootstrap servers owns the mock cluster; the
	 * mock brokers' connections read requests up to its receive.message.max.bytes.
	 */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (rd_kafka_conf_set(conf, "client.id", PROGNAME, errstr, sizeof(errstr)) !=
			RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "log.connection.close", "false", errstr, sizeof(errstr)) !=
			RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "receive.message.max.bytes", max_request, errstr, sizeof(errstr)) !=
			RD_KAFKA_CONF_OK)
	{
		say("configuration: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		say("could not create a librdkafka handle: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	mcluster = rd_kafka_mock_cluster_new(rk, broker_count);
	ports_given = broker_count; /* --port applies to the brokers' first listeners only */
	if (mcluster == NULL)
	{
		say("could not start the mock cluster");
		rd_kafka_destroy(rk);
		return 1;
	}
	bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);

	/* The pinpipe topics first, then the --topic ones. */
	snprintf(topics[0].name, sizeof(topics[0].name), "%s.pin", prefix);
	snprintf(topics[1].name, sizeof(topics[1].name), "%s.geo", prefix);
	snprintf(topics[2].name, sizeof(topics[2].name), "%s.user", prefix);
	for (int i = 0; i < ntopics + 3 && status == 0; i++)
		status = create_topic(topics[i].name,
							  topics[i].partitions > 0 ? topics[i].partitions : partitions);

	if (status == 0 && fifo_path != NULL)
	{
		status = make_fifo(fifo_path);
		fifo_made = status == 0;
	}

	/* The bootstrap file comes last: once it exists, so do stdout's line and
	 * the FIFO. */
	if (status == 0)
	{
		if (!quiet)
			say("%d broker%s listening on %s", broker_count, broker_count == 1 ? "" : "s",
				bootstraps);
		printf("%s\n", bootstraps);
		fflush(stdout);
		if (bootstrap_file != NULL)
		{
			status = write_bootstrap_file(bootstrap_file, bootstraps);
			file_made = status == 0;
		}
	}
	if (status == 0)
		status = serve(fifo_path);

	if (!quiet && status == 0)
		say("shutting down");
	if (fifo_made)
		unlink(fifo_path);
	if (file_made)
		unlink(bootstrap_file);
	/*
	 * The mock cluster and its handle are left for the process exit to
	 * reclaim: rd_kafka_mock_cluster_destroy() in librdkafka 2.0.2 reads
	 * memory its own thread has freed (valgrind shows it, test/t/valgrind.pl).
	 */
	free(topics);
	return status == 0 ? 0 : 1;
}
