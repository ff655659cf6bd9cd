/*
 * opts.h - -o options with numbers, parsed strictly.
 *
 * fuse_opt_parse() converts "%u" and "%lf" values with sscanf(), which
 * takes "12abc" as 12, "-1" as 4294967295 and "1e999" as infinity.  Every
 * module parses its options through opts_parse() instead: each value its
 * spec converts as a number is checked whole first (no option documents
 * units: the unit is in the name, cache_size=MiB), and a bad one is
 * refused with one line naming the option, before anything is mounted.
 */
#ifndef CHUNKFS_OPTS_H
#define CHUNKFS_OPTS_H

#include <fuse_opt.h>

/*
 * fuse_opt_parse(args, data, spec, proc), after checking that every
 * "-o name=value" whose spec entry is "name=%u" holds a whole number that
 * fits an unsigned int, and every "name=%lf" a finite decimal number, 0 or
 * more.  0, or -1 after printing what is wrong to stderr.
 */
int opts_parse(struct fuse_args *args, void *data, const struct fuse_opt *spec,
               fuse_opt_proc_t proc);

/*
 * value, the value of option name, as an unsigned int: 0 and *out set, or
 * -1 after printing what is wrong to stderr.
 */
int opts_uint(const char *name, const char *value, unsigned *out);

/* The same for a finite decimal number, 0 or more. */
int opts_double(const char *name, const char *value, double *out);

#endif
