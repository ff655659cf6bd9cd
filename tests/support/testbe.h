/*
 * testbe.h - a backend layer for unit tests of other layers: it forwards
 * every op to an inner backend and, on request, slows or fails reads, and
 * counts them.
 *
 * The cache, prefetch and disk cache tests put it between the layer under
 * test and a mem backend: delay_ms makes concurrent requests overlap (a
 * store with per-request latency), the fail_* knobs send -EIO up to the
 * layer, and the counters say how many reads got through, so the tests
 * assert counts, never timings.  The knobs and counters are plain fields
 * because the tests set and read them while reads run in other threads:
 * always through the __atomic builtins.
 *
 * Also here: a thread that samples a block cache's size while a test
 * streams through it.
 */
#ifndef CHUNKFS_TEST_TESTBE_H
#define CHUNKFS_TEST_TESTBE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* testbe_create() flags. */
enum {
	TESTBE_BORROW = 1 << 0, /* inner is not owned: it outlives the layer */
	TESTBE_COPY = 1 << 1,   /* offer copy (inner's) */
	TESTBE_RENAME = 1 << 2, /* offer rename: one key, copy then remove */
};

/* The etag of every object while const_etag is set. */
#define TESTBE_CONST_ETAG "constant"

/* fail_off that matches a read at any offset. */
#define TESTBE_ANY_OFF UINT64_MAX

struct testbe {
	struct backend base;
	struct backend *inner;  /* owned unless borrowed */
	int borrowed;           /* TESTBE_BORROW */
	struct backend_ops ops; /* base.ops: the ops the flags ask for */

	/* Knobs, atomic; all off after testbe_create(). */
	int delay_ms;       /* sleep after each inner read, and in a failed read */
	uint64_t fail_off;  /* reads starting here (TESTBE_ANY_OFF: any read) ... */
	int fail_count;     /* ... fail with -EIO, this many of them */
	size_t fail_longer; /* reads longer than this fail with -EIO (0: none) */
	int const_etag;     /* every object's etag is TESTBE_CONST_ETAG, as on a
	                       store with constant ETags (a pin of it matches any) */

	/* Counters, atomic. */
	int reads;         /* read calls */
	int done_reads;    /* reads that got their bytes from inner (release) */
	int empty_reads;   /* reads inner answered with nothing (past the end) */
	int in_flight;     /* reads running now */
	int max_in_flight; /* the most that ever ran at once */
};

/*
 * A layer over inner with the ops stat, read, save, remove and list, plus
 * those the flags (TESTBE_*) add.  backend_destroy(&t->base) frees it, and
 * inner unless borrowed.  NULL with errno set on failure (inner is then
 * still the caller's).
 */
struct testbe *testbe_create(struct backend *inner, unsigned flags);

/* Save size bytes of tm_pattern(seed) (mount.h) under key through b.
 * 0 or -errno. */
int testbe_put_pattern(struct backend *b, const char *key, size_t size, uint32_t seed,
                       struct backend_stat *st);

/* Sleep ms milliseconds, whatever signals arrive. */
void testbe_sleep_ms(int ms);

/*
 * Sampling a block cache (backends/cache.h) from a thread:
 *
 *     struct testbe_sampler sa = {.cache = c};
 *     pthread_create(&th, NULL, testbe_sample_cache, &sa);
 *     ... reads ...
 *     __atomic_store_n(&sa.stop, 1, __ATOMIC_RELEASE);
 *     pthread_join(th, NULL);
 *
 * Every millisecond until stop, the thread keeps the largest bytes_cached
 * seen and runs cache_debug_check() (which aborts on a broken invariant).
 */
struct testbe_sampler {
	struct backend *cache;
	int stop; /* atomic */
	uint64_t max_cached;
	int samples;
};

void *testbe_sample_cache(void *arg);

#endif
