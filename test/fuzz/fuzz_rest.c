/*
 * fuzz_rest.c
 *		libFuzzer target for pinpipe-rest's request decoding (src/bin/rest_decode.c).
 *
 * The first byte picks the body shape (REST Proxy json or binary, Kinesis
 * record or records) and whether --key-field is set; the rest is the body.
 * Besides the sanitizers' checks, it asserts the decoder's invariants: a body
 * it accepts is valid JSON as jansson reads it (a differential check on the
 * validator; jansson refuses numbers out of its range and "\u0000" in an
 * object key, both of which JSON allows),
 * every record's bytes lie inside the body or the arena, the arena
 * never outgrows the body, and a rejected body always gets a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rest_decode.h"

static void
check_span(const char *p, size_t n, const char *body, size_t len, const RdRequest *req)
{
	if (p == NULL)
		return;
	if ((p >= body && p + n <= body + len) ||
		(p >= req->arena && p + n <= req->arena + req->arena_used))
		return;
	fprintf(stderr, "a record's bytes lie outside the body and the arena\n");
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	RdRequest req;
	char err[512];
	char *body;
	size_t len;
	RdShape shape;
	const char *key_fields;
	bool ok;

	if (size < 1)
		return 0;
	shape = (RdShape) (data[0] & 3);
	key_fields = (data[0] & 4) ? "index,ind" : NULL;
	len = size - 1;
	/* a copy of exactly the body's size, so that ASan sees any read past it */
	body = malloc(len ? len : 1);
	memcpy(body, data + 1, len);

	ok = rd_decode(shape, body, len, key_fields, &req, err, sizeof(err));
	if (ok)
	{
		json_error_t jerr;
		json_t *j = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

		if (j == NULL && strstr(jerr.text, "maximum parsing depth") == NULL &&
			strstr(jerr.text, "too big") == NULL && strstr(jerr.text, "overflow") == NULL &&
			strstr(jerr.text, "NUL byte in object key") == NULL)
		{
			fprintf(stderr, "accepted a body jansson rejects: %s\n", jerr.text);
			abort();
		}
		json_decref(j);
		if (req.arena_used > len)
		{
			fprintf(stderr, "arena larger than the body\n");
			abort();
		}
		for (size_t i = 0; i < req.nrecords; i++)
		{
			check_span(req.records[i].value, req.records[i].value_len, body, len, &req);
			check_span(req.records[i].key, req.records[i].key_len, body, len, &req);
		}
	}
	else if (err[0] == '\0')
	{
		fprintf(stderr, "rejected without a message\n");
		abort();
	}
	rd_request_free(&req);
	free(body);
	return 0;
}
