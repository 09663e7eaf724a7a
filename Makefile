# pinpipe: PGXS build of the extension, its tools and its tests.
EXTENSION = pinpipe
MODULE_big = pinpipe
OBJS = src/pinpipe.o src/rules.o src/record.o src/decode.o src/convert.o src/clean.o
DATA = $(wildcard pinpipe--*.sql)
PGFILEDESC = "pinpipe - Kafka topics to cleaned tables"

REGRESS = clean_functions records reclean
REGRESS_OPTS = --inputdir=. --load-extension=pinpipe

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare
SHLIB_LINK = -lrdkafka -ljansson

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: format format-check
format:
	clang-format -i src/*.c src/*.h

format-check:
	clang-format --dry-run --Werror src/*.c src/*.h
