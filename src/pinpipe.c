/*
 * pinpipe.c
 *		Module entry point: defines the settings and, when the library is
 *		preloaded, registers the background worker.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pinpipe.h"

PG_MODULE_MAGIC;

int pinpipe_max_message_bytes = 1048576;

/* Define the pinpipe.* settings. */
static void
define_settings(void)
{
	DefineCustomIntVariable("pinpipe.max_message_bytes",
							"Largest message the worker accepts; larger ones become dead letters.",
							NULL, &pinpipe_max_message_bytes, 1048576, 1, MaxAllocSize / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
}

void
_PG_init(void)
{
	define_settings();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("pinpipe");
#else
	EmitWarningsOnPlaceholders("pinpipe");
#endif
}
