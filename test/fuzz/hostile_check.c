/*
 * hostile_check.c
 *		Decoder-level check of the hostile corpus (test/hostile).
 *
 * Usage: hostile_check EXPECTED DIR [DIR...]
 *
 * EXPECTED has one line per message file: "name kind fate", where kind is
 * pin, geo or user and fate is "row" or "dead <part of the error>"; blank
 * lines and lines starting with '#' are ignored. Every regular file of the
 * directories (other than EXPECTED, make.sh and README*) is decoded with
 * pp_decode as a message of its kind, with the worker's default limit of
 * 1048576 bytes, and its fate compared. Every file must be listed and every
 * listed file found. Prints one line per file; exits 1 on any mismatch.
 */
#include "decode.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MESSAGE_BYTES 1048576
#define MAX_ENTRIES       1024

typedef struct Entry
{
	char *name;
	PPKind kind;
	bool row;
	char *error_part; /* for dead */
	bool found;
} Entry;

static Entry entries[MAX_ENTRIES];
static int nentries;

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
	{
		fprintf(stderr, "hostile_check: out of memory\n");
		exit(2);
	}
	return p;
}

static void
read_expected(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int lineno = 0;

	if (f == NULL)
	{
		fprintf(stderr, "hostile_check: cannot open %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char name[1024], kind[16], fate[16];
		int pos = 0;
		Entry *e;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (sscanf(line, "%1023s %15s %15s %n", name, kind, fate, &pos) < 3 ||
			nentries == MAX_ENTRIES)
		{
			fprintf(stderr, "hostile_check: %s:%d: cannot read \"%s\"\n", path, lineno, line);
			exit(2);
		}
		e = &entries[nentries++];
		e->name = xstrdup(name);
		if (!pp_kind_from_name(kind, &e->kind))
		{
			fprintf(stderr, "hostile_check: %s:%d: unknown kind \"%s\"\n", path, lineno, kind);
			exit(2);
		}
		e->row = strcmp(fate, "row") == 0;
		if (!e->row && (strcmp(fate, "dead") != 0 || line[pos] == '\0'))
		{
			fprintf(stderr, "hostile_check: %s:%d: fate must be \"row\" or \"dead <error>\"\n",
					path, lineno);
			exit(2);
		}
		e->error_part = xstrdup(line + pos);
	}
	fclose(f);
}

static Entry *
find_entry(const char *name)
{
	for (int i = 0; i < nentries; i++)
	{
		if (strcmp(entries[i].name, name) == 0)
			return &entries[i];
	}
	return NULL;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0;

	*len = 0;
	if (f == NULL)
		return NULL;
	for (;;)
	{
		size_t n;

		if (*len == cap)
		{
			char *more;

			cap = cap ? cap * 2 : 65536;
			more = realloc(data, cap);
			if (more == NULL)
			{
				free(data);
				fclose(f);
				return NULL;
			}
			data = more;
		}
		n = fread(data + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	return data;
}

static bool
skipped(const char *name)
{
	return name[0] == '.' || strcmp(name, "EXPECTED") == 0 || strcmp(name, "make.sh") == 0 ||
		   strncmp(name, "README", 6) == 0;
}

/* Decode one file and compare its fate; false on a mismatch. */
static bool
check_file(const char *dir, const char *name)
{
	char path[4096];
	Entry *e = find_entry(name);
	char errbuf[PP_ERRBUF_SIZE];
	PPRecord rec;
	char *data;
	size_t len;
	bool decoded;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (e == NULL)
	{
		printf("FAIL  %-40s not listed in EXPECTED\n", name);
		return false;
	}
	if (e->found)
	{
		printf("FAIL  %-40s found twice\n", name);
		return false;
	}
	e->found = true;
	data = read_file(path, &len);
	if (data == NULL)
	{
		printf("FAIL  %-40s cannot read %s\n", name, path);
		return false;
	}
	errbuf[0] = '\0';
	decoded = pp_decode(e->kind, data, len, MAX_MESSAGE_BYTES, &rec, errbuf, sizeof(errbuf));
	if (decoded)
	{
		pp_record_free(&rec);
		ok = e->row;
	}
	else
		ok = !e->row && strstr(errbuf, e->error_part) != NULL;
	printf("%s  %-40s %-4s %9zu B  expected %s%s, got %s%s\n", ok ? "ok  " : "FAIL", name,
		   pp_kind_name(e->kind), len, e->row ? "row" : "dead ", e->row ? "" : e->error_part,
		   decoded ? "row" : "dead: ", decoded ? "" : errbuf);
	free(data);
	return ok;
}

int
main(int argc, char **argv)
{
	int failures = 0;
	int nfiles = 0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s EXPECTED DIR [DIR...]\n", argv[0]);
		return 2;
	}
	read_expected(argv[1]);
	for (int a = 2; a < argc; a++)
	{
		DIR *d = opendir(argv[a]);
		struct dirent **names;
		int n;

		if (d == NULL)
		{
			fprintf(stderr, "hostile_check: cannot open %s: %s\n", argv[a], strerror(errno));
			return 2;
		}
		closedir(d);
		n = scandir(argv[a], &names, NULL, alphasort);
		for (int i = 0; i < n; i++)
		{
			char path[4096];
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s", argv[a], names[i]->d_name);
			if (!skipped(names[i]->d_name) && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			{
				nfiles++;
				failures += !check_file(argv[a], names[i]->d_name);
			}
			free(names[i]);
		}
		free(names);
	}
	for (int i = 0; i < nentries; i++)
	{
		if (!entries[i].found)
		{
			printf("FAIL  %-40s listed in EXPECTED but not found\n", entries[i].name);
			failures++;
		}
	}
	printf("hostile_check: %d files, %d failures\n", nfiles, failures);
	return failures > 0 ? 1 : 0;
}
