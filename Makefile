# pinpipe: PGXS build of the extension, its tools and its tests.
EXTENSION = pinpipe
MODULE_big = pinpipe
OBJS = src/pinpipe.o src/rules.o src/record.o src/decode.o src/convert.o src/clean.o \
	src/status.o src/kafka_conf.o src/kafka.o src/heap_write.o src/sink.o src/source.o src/history.o \
	src/rewind.o src/worker.o
# The install script of the current version (default_version in
# pinpipe.control) is built from the pieces in src/sql, one per concern, in
# the order of SQL_PIECES (an object after those it names: the whole-record
# cleaners of clean.sql return the tables' row types); a new piece is a new
# line there. The scripts of released versions (pinpipe--0.1.sql) and the
# upgrade scripts are shipped as they are and never edited. Every schema
# change goes into a piece and into the upgrade script to the current
# version. When a version is released, freeze its built script: commit it
# as pinpipe--X.Y.sql and add it to DATA.
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pinpipe.control)
SQL_PIECES = \
	src/sql/tables.sql \
	src/sql/clean.sql \
	src/sql/ingest.sql \
	src/sql/worker.sql \
	src/sql/history.sql \
	src/sql/analytics.sql \
	src/sql/analytics_check.sql \
	src/sql/reader.sql \
	src/sql/replay.sql
DATA_built = pinpipe--$(EXTVERSION).sql
DATA = pinpipe--0.1.sql $(wildcard pinpipe--*--*.sql)
PGFILEDESC = "pinpipe - Kafka topics to cleaned tables"

REGRESS = clean_functions records reclean control analytics analytics_cache analytics_dist
REGRESS_OPTS = --inputdir=. --load-extension=pinpipe
# `make check` starts its own server (as pg_cron's installcheck does), with the
# settings of test/regress.conf; `make installcheck` runs against a running one.
# PP_REGRESS_DIR: where results, diffs and the temporary instance go.
PP_REGRESS_DIR ?= .

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare
SHLIB_LINK = -lrdkafka -ljansson

# make SANITIZE=1: the extension built with AddressSanitizer and
# UndefinedBehaviorSanitizer; the server must run with the ASan runtime
# preloaded (bash test/run.sh --sanitize does it, see test/lib.sh).
ifdef SANITIZE
PG_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=address,undefined
endif

# Command-line tools (src/bin), installed beside pg_config's bindir.
TOOLS = src/bin/pinpipe-broker src/bin/pinpipe-emulate src/bin/pinpipe-rest src/bin/pinpipe-dashboard
SCRIPTS_built = $(TOOLS)
EXTRA_CLEAN = $(TOOLS) results regression.diffs regression.out .build-flavour tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS says "make check is not supported": ours (test/check.mk) runs the
# suites on a temporary instance of the installed server (make install first;
# not as root). Read only for that goal, since it overrides PGXS's recipe.
ifneq ($(filter check,$(MAKECMDGOALS)),)
include $(srcdir)/test/check.mk
endif

# The objects are rebuilt when SANITIZE changes, so that a plain `make install`
# never installs the instrumented build left by a sanitizer run.
BUILD_FLAVOUR := $(if $(SANITIZE),sanitize,plain)
.build-flavour: FORCE
	@[ "$$(cat $@ 2>/dev/null)" = $(BUILD_FLAVOUR) ] || echo $(BUILD_FLAVOUR) >$@
$(OBJS): .build-flavour
.PHONY: FORCE
FORCE:

# Sample data (the emulator's source tables), installed to share/pinpipe.
PP_DATADIR = $(datadir)/pinpipe
TOOL_CFLAGS = -O2 -g -Wall -Wextra -Werror -std=gnu11 -Isrc -DPP_DATADIR='"$(PP_DATADIR)"'

all: $(TOOLS)

# The header once, then each piece after a line naming it.
pinpipe--$(EXTVERSION).sql: $(SQL_PIECES) Makefile pinpipe.control
	{ printf '%s\n' '/* $@: built by make from the pieces in src/sql (SQL_PIECES in the Makefile); edit those */' '' \
		'-- complain if script is sourced in psql, rather than via CREATE EXTENSION' \
		'\echo Use "CREATE EXTENSION pinpipe" to load this file. \quit'; \
	  for f in $(SQL_PIECES); do printf '\n-- %s\n\n' "$$f"; cat "$$f"; done; } >$@.tmp
	mv $@.tmp $@

# PGXS tracks no header dependencies: rebuild every object when a header
# changes (a struct that changed size in one object only corrupts memory).
$(OBJS): $(wildcard src/*.h)

src/bin/pinpipe-broker: src/bin/pinpipe-broker.c
	$(CC) $(TOOL_CFLAGS) -o $@ $< -lrdkafka

# The tools' librdkafka settings (src/bin/kafka_config.c) use the worker's
# parser, src/kafka_conf.c (plain C).
TOOL_KAFKA_SRCS = src/bin/kafka_config.c src/kafka_conf.c
TOOL_KAFKA_HEADERS = src/bin/kafka_config.h src/kafka_conf.h
src/bin/pinpipe-emulate: src/bin/pinpipe-emulate.c $(TOOL_KAFKA_SRCS) $(TOOL_KAFKA_HEADERS)
	$(CC) $(TOOL_CFLAGS) -o $@ $< $(TOOL_KAFKA_SRCS) -lrdkafka -ljansson -lm -lcurl

# The HTTP front door (libmicrohttpd); its body decoding is fuzzed (fuzz_rest).
REST_SRCS = src/bin/pinpipe-rest.c src/bin/rest_decode.c $(TOOL_KAFKA_SRCS)
src/bin/pinpipe-rest: $(REST_SRCS) src/bin/rest_decode.h $(TOOL_KAFKA_HEADERS)
	$(CC) $(TOOL_CFLAGS) -pthread -o $@ $(REST_SRCS) -lmicrohttpd -lrdkafka

src/bin/pinpipe-dashboard: src/bin/pinpipe-dashboard.c
	$(CC) $(TOOL_CFLAGS) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lmicrohttpd -ljansson -lpthread

# The dashboard's page (pinpipe-dashboard finds it beside itself in a checkout).
DASHBOARD_FILES = $(wildcard src/bin/dashboard/*)

install: install-pinpipe-data
.PHONY: install-pinpipe-data
install-pinpipe-data:
	$(MKDIR_P) '$(DESTDIR)$(PP_DATADIR)'
	$(INSTALL_DATA) data/pin.jsonl data/geo.jsonl data/user.jsonl '$(DESTDIR)$(PP_DATADIR)/'
	$(MKDIR_P) '$(DESTDIR)$(PP_DATADIR)/dashboard'
	$(INSTALL_DATA) $(DASHBOARD_FILES) '$(DESTDIR)$(PP_DATADIR)/dashboard/'
	@# the tools on PATH too (bindir is PostgreSQL's own, not on PATH)
	@if [ -z "$(DESTDIR)" ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then \
		for t in pinpipe-broker pinpipe-emulate pinpipe-rest pinpipe-dashboard; do ln -sf '$(bindir)/'$$t /usr/local/bin/$$t; done; fi

.PHONY: format format-check
FORMAT_FILES = $(wildcard src/*.c src/*.h src/bin/*.c src/bin/*.h test/fuzz/*.c test/tools/*.c)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# Fuzzing (test/fuzz): libFuzzer harnesses for the plain-C rules and decoder,
# and the decoder-level check of the hostile corpus (test/hostile).
# `make fuzz` builds them; `make fuzz-run` fuzzes each for FUZZ_SECONDS in a
# scratch copy of its seed corpus (test/fuzz/corpus-work), so the committed
# corpus does not grow.
FUZZ_CC = clang-14
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc
FUZZ_SRCS = src/rules.c src/record.c src/decode.c
FUZZ_HEADERS = src/rules.h src/record.h src/decode.h
FUZZ_TARGETS = test/fuzz/fuzz_rules test/fuzz/fuzz_decode test/fuzz/fuzz_rest
FUZZ_SECONDS ?= 60
FUZZ_WORK = test/fuzz/corpus-work

.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_TARGETS) test/fuzz/hostile_check

# the front door's body decoding: plain C, no jansson
test/fuzz/fuzz_rest: test/fuzz/fuzz_rest.c src/bin/rest_decode.c src/bin/rest_decode.h
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc/bin -o $@ $< src/bin/rest_decode.c -ljansson

test/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_SRCS) $(FUZZ_HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) -ljansson

test/fuzz/hostile_check: test/fuzz/hostile_check.c $(FUZZ_SRCS) $(FUZZ_HEADERS)
	$(FUZZ_CC) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -Isrc -o $@ \
		$< $(FUZZ_SRCS) -ljansson

fuzz-run: fuzz
	status=0; for t in rules decode rest; do \
		rm -rf $(FUZZ_WORK)/$$t && mkdir -p $(FUZZ_WORK)/$$t && \
		cp test/fuzz/corpus/$$t/* $(FUZZ_WORK)/$$t/ && \
		test/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_WORK)/$$t- $(FUZZ_WORK)/$$t || status=1; \
	done; exit $$status
