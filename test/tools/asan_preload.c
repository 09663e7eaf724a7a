/*
 * asan_preload: preloaded after the ASan and UBSan runtimes into Debian's
 * PostgreSQL server by bash test/run.sh --sanitize (see test/lib.sh).
 *
 * It makes the server start: without it the server hangs before main().
 * libgpg-error (pulled in by libsystemd) calls bindtextdomain() from its
 * constructor, which runs before the ASan runtime's; its malloc() initialises
 * ASan while glibc holds _nl_state_lock, and ASan's initialisation looks up
 * swift_demangle with dlsym(), whose failure makes dlerror() call dcgettext(),
 * which takes the same lock again. The lock is left corrupt and the server's
 * own bindtextdomain() then waits on it forever. With the symbol defined here
 * the lookup succeeds and no error message is translated.
 *
 * It also sends UBSan's reports to files (PP_UBSAN_LOG_PATH, the prefix of
 * their names): next to ASan, gcc's UBSan runtime ignores UBSAN_OPTIONS'
 * log_path and writes to stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

char *swift_demangle(const char *mangled, size_t mangled_len, char *out, size_t *out_len,
					 unsigned flags);

/* Demangles nothing: the symbolizer then prints names as they are. */
char *
swift_demangle(const char *mangled, size_t mangled_len, char *out, size_t *out_len, unsigned flags)
{
	(void) mangled, (void) mangled_len, (void) out, (void) out_len, (void) flags;
	return NULL;
}

/* Sets the UBSan runtime's own report path, when it is preloaded too. */
__attribute__((constructor)) static void
set_ubsan_report_path(void)
{
	const char *path = getenv("PP_UBSAN_LOG_PATH");
	void *ubsan;
	void (*set_path)(const char *);

	if (path == NULL || (ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD)) == NULL)
		return;
	set_path = (void (*)(const char *)) dlsym(ubsan, "__sanitizer_set_report_path");
	if (set_path != NULL)
		set_path(path);
}
