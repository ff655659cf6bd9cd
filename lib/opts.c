/*
 * opts.c - see opts.h.
 */
#include "opts.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int opts_uint(const char *name, const char *value, unsigned *out)
{
	unsigned long long v;
	char *end;

	if (*value < '0' || *value > '9') {
		fprintf(stderr, "chunkfs: -o %s=%s: not a whole number (digits only)\n", name,
		        value);
		return -1;
	}
	errno = 0;
	v = strtoull(value, &end, 10);
	if (*end != '\0') {
		fprintf(stderr, "chunkfs: -o %s=%s: not a whole number (digits only)\n", name,
		        value);
		return -1;
	}
	if (errno == ERANGE || v > UINT_MAX) {
		fprintf(stderr, "chunkfs: -o %s=%s: too large (at most %u)\n", name, value,
		        UINT_MAX);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int opts_double(const char *name, const char *value, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end != '\0' || errno == ERANGE || !isfinite(v) || v < 0) {
		fprintf(stderr, "chunkfs: -o %s=%s: not a number of 0 or more (e.g. 2.5)\n", name,
		        value);
		return -1;
	}
	*out = v;
	return 0;
}

/* Check one "name=value" against the numeric entries of spec. */
static int check_one(const char *opt, const struct fuse_opt *spec)
{
	const char *eq = strchr(opt, '=');
	size_t n = eq ? (size_t)(eq - opt) + 1 : 0;
	char name[128];
	unsigned u;
	double d;

	if (eq == NULL || n > sizeof(name))
		return 0;
	memcpy(name, opt, n - 1);
	name[n - 1] = '\0';
	for (const struct fuse_opt *s = spec; s->templ != NULL; s++) {
		if (strncmp(s->templ, opt, n) != 0)
			continue;
		if (strcmp(s->templ + n, "%u") == 0)
			return opts_uint(name, eq + 1, &u);
		if (strcmp(s->templ + n, "%lf") == 0)
			return opts_double(name, eq + 1, &d);
	}
	return 0;
}

/* Check each option of one comma-separated -o list ('\' escapes a ','). */
static int check_list(const char *list, const struct fuse_opt *spec)
{
	char *copy = strdup(list), *w, *start;
	int ret = 0;

	if (copy == NULL)
		return 0; /* fuse_opt_parse() reports it */
	start = w = copy;
	for (const char *r = list;; r++) {
		if (*r == '\\' && r[1] != '\0') {
			*w++ = *++r;
			continue;
		}
		if (*r == ',' || *r == '\0') {
			*w = '\0';
			if (ret == 0)
				ret = check_one(start, spec);
			start = ++w;
			if (*r == '\0')
				break;
			continue;
		}
		*w++ = *r;
	}
	free(copy);
	return ret;
}

int opts_parse(struct fuse_args *args, void *data, const struct fuse_opt *spec,
               fuse_opt_proc_t proc)
{
	for (int i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];
		const char *list = strcmp(a, "-o") == 0
		                       ? (i + 1 < args->argc ? args->argv[++i] : NULL)
		                   : strncmp(a, "-o", 2) == 0 ? a + 2
		                                              : NULL;

		if (list != NULL && check_list(list, spec) < 0)
			return -1;
	}
	return fuse_opt_parse(args, data, spec, proc);
}
