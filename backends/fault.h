/*
 * fault.h - the fault-injection layer: a backend that wraps another and
 * makes chosen ops fail or slow down, to test what sits above it.
 *
 * Every op is passed through to the inner backend, except that:
 *   - each call of any op first sleeps delay_ms;
 *   - a call of an op named in ops fails with -err, without reaching the
 *     inner backend, when it is one of the next count such calls (count
 *     > 0), or else with probability rate (a seeded generator, so a run
 *     repeats).  The inner backend never sees a failed call, so a failed
 *     save stores nothing and a failed remove removes nothing.
 * prefetch hints and stats are never failed.  Options can be changed
 * while the layer is in use (fault_set()).
 *
 * In the daemon: -o fault_ops=read+save,fault_rate=0.1 (see
 * fault_opts_usage()) puts the layer right above the store, for testing a
 * mount against failures of any backend.
 */
#ifndef CHUNKFS_FAULT_H
#define CHUNKFS_FAULT_H

#include <stdio.h>

#include "backend.h"

struct fuse_args;

/* Ops a fault can hit (struct fault_opts.ops). */
enum {
	FAULT_STAT = 1 << 0,
	FAULT_READ = 1 << 1, /* read, read_fd and read_ref */
	FAULT_SAVE = 1 << 2, /* save and setattr */
	FAULT_REMOVE = 1 << 3,
	FAULT_LIST = 1 << 4,
	FAULT_COPY = 1 << 5, /* copy and rename */
	FAULT_ALL = (1 << 6) - 1,
};

struct fault_opts {
	unsigned ops;            /* FAULT_* bits of the ops that fail; 0: none */
	double rate;             /* chance that one such call fails, 0..1 */
	unsigned count;          /* fail the next count such calls (before rate) */
	int err;                 /* the errno they fail with; 0: EIO */
	unsigned delay_ms;       /* added before every call */
	unsigned long long seed; /* of the generator behind rate */
};

struct fault_stats {
	uint64_t calls;    /* calls of ops named in ops */
	uint64_t injected; /* of those, failed here */
};

/* Wrap inner (owned from now on, destroyed with the layer); NULL + errno
 * (EINVAL for bad options; inner is then still the caller's). */
struct backend *fault_create(struct backend *inner, const struct fault_opts *o);

/* Replace the options of a fault layer; -EINVAL if b is not one or o is
 * invalid. */
int fault_set(struct backend *b, const struct fault_opts *o);

/* The layer's counters (zeroed if b is not a fault layer). */
void fault_get_stats(struct backend *b, struct fault_stats *out);

/* -o fault_* options: remove them from args into *o; *enabled is set when
 * any was given.  0, or -1 after printing what is wrong. */
int fault_opts_parse(struct fuse_args *args, struct fault_opts *o, int *enabled);
void fault_opts_usage(FILE *out);

#endif /* CHUNKFS_FAULT_H */
