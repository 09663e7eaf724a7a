/*
 * decode.h
 *		Decoding one Kafka message (JSON text) into a raw record.
 *
 * The decoder is strict: a message that is not a JSON object, lacks the join
 * key, or holds a value of the wrong type is refused with a precise error,
 * and becomes a dead letter in the worker. Keys the record does not know are
 * kept, as JSON text, in the record's extra. Plain C and jansson, so the
 * decoder can be fuzzed outside the server.
 *
 * pp_decode first tries a scanner for the common shape (a flat object of
 * known keys, each once, with string, number or null values); whatever it
 * does not recognise, valid or not, goes to jansson, which decides.
 * pp_decode_jansson is jansson alone: the reference the fuzzer compares
 * the scanner with.
 */
#ifndef PINPIPE_DECODE_H
#define PINPIPE_DECODE_H

#include "record.h"

#define PP_ERRBUF_SIZE 256

typedef struct PPRecord
{
	PPKind kind;
	PPValue values[PP_MAX_FIELDS]; /* raw column order */
	char *extra;                   /* malloc'd JSON object of unknown keys, or NULL */
	void *root;                    /* the parsed document (json_t), owns the strings */
	char *strings;                 /* or the fast path's copy of the strings */
} PPRecord;

extern bool pp_decode(PPKind kind, const char *payload, size_t len, size_t max_len, PPRecord *rec,
					  char *errbuf, size_t errlen);
extern bool pp_decode_jansson(PPKind kind, const char *payload, size_t len, size_t max_len,
							  PPRecord *rec, char *errbuf, size_t errlen);
extern void pp_record_free(PPRecord *rec);
extern const char *pp_decode_error_reason(const char *error);
extern void pp_decode_set_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *));

#endif /* PINPIPE_DECODE_H */
