/*
 * rest_decode.h
 *		Decoding of pinpipe-rest request bodies: the Kafka REST Proxy v2 produce
 *		shape and the Kinesis PutRecord / PutRecords shapes.
 *
 * Plain C without the server, so that a libFuzzer target (test/fuzz/fuzz_rest.c)
 * can call it.  The body is validated as strict JSON (RFC 8259, UTF-8 checked,
 * nesting bounded) and each record's value and key are returned as byte spans:
 * an embedded JSON value is passed on exactly as the client wrote it; base64
 * and escaped strings are decoded into one arena no larger than the body.
 */
#ifndef PINPIPE_REST_DECODE_H
#define PINPIPE_REST_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting accepted in a body (the envelope's levels included). */
#define RD_MAX_DEPTH 512

typedef enum RdShape
{
	RD_PRODUCE_JSON,   /* {"records": [{"value": <json>, "key": <json>, "partition": n}]} */
	RD_PRODUCE_BINARY, /* the same, value and key base64 strings */
	RD_KINESIS_RECORD, /* {"StreamName", "Data", "PartitionKey"} */
	RD_KINESIS_RECORDS /* {"StreamName", "Records": [{"Data", "PartitionKey"}]} */
} RdShape;

typedef struct RdRecord
{
	const char *value; /* NULL: a null value (a tombstone) */
	size_t value_len;
	const char *key; /* NULL: no key */
	size_t key_len;
	int32_t partition; /* -1: any */
} RdRecord;

typedef struct RdRequest
{
	RdRecord *records;
	size_t nrecords;
	size_t cap;
	char *arena; /* decoded strings; records may point into it or into the body */
	size_t arena_used;
} RdRequest;

/*
 * Decode body into req.  key_fields is NULL or a comma-separated list of
 * top-level member names of a JSON object value whose first present one (a
 * string or a number) becomes the key of a record that has none.  Returns true
 * on success; else false with a message naming what is wrong in err.  The
 * records point into body (which must outlive them) and into req->arena.
 * rd_request_free releases req in both cases.
 */
extern bool rd_decode(RdShape shape, const char *body, size_t len, const char *key_fields,
					  RdRequest *req, char *err, size_t errlen);
extern void rd_request_free(RdRequest *req);

/* Validate one whole JSON text (used by tests and the fuzzer). */
extern bool rd_json_valid(const char *text, size_t len, char *err, size_t errlen);

/* Decode standard base64 (padding optional) from src into dst; -1 if invalid. */
extern long rd_base64_decode(const char *src, size_t len, char *dst);

#endif
