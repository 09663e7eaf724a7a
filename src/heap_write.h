/*
 * heap_write.h
 *		Writing rows straight into a table, as COPY FROM does: the fast path
 *		of the sink, where the table allows it.
 */
#ifndef PINPIPE_HEAP_WRITE_H
#define PINPIPE_HEAP_WRITE_H

#include "postgres.h"

extern bool pp_heap_insert(Oid relid, Datum *rows, int n);

#endif /* PINPIPE_HEAP_WRITE_H */
