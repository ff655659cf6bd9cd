/*
 * check_prefetch.c - the prefetch layer (backends/prefetch.c) and the
 * cache's prefetch op (backends/cache.c).
 *
 * The stack under test is prefetch -> cache -> slow -> mem.  "slow" is the
 * test layer of tests/support/testbe.h; it forwards to mem and counts:
 * every inner read sleeps delay_ms (so a store with per-request latency is
 * modelled and parallel requests overlap), the highest number of reads in
 * flight at once is kept, reads starting at fail_off fail with -EIO
 * fail_count times, and reads longer than fail_longer (prefetches of
 * several blocks) fail.
 * Counts are asserted, never timings.  Every case ends with the cache's
 * invariant check.
 */
#include "backend.h"
#include "cache.h"
#include "mem.h"
#include "mount.h"
#include "prefetch.h"
#include "suites.h"
#include "testbe.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

/* --- fixture ------------------------------------------------------------ */

static struct backend *g_mem;   /* bottom of the stack */
static struct testbe *g_slow;   /* over g_mem */
static struct backend *g_cache; /* over g_slow */
static struct backend *g_top;   /* prefetch over g_cache, or g_cache itself */

/*
 * Build the stack: cache of block size bs, budget budget, part size part;
 * with_prefetch: the prefetch layer on top (window 1 .. 128 MiB).
 */
static void stack(size_t bs, uint64_t budget, size_t part, int with_prefetch)
{
	struct cache_opts co;

	cache_opts_init(&co);
	co.block_size = bs;
	co.mem_budget = budget;
	co.part_size = part;
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_slow = testbe_create(g_mem, 0);
	ck_assert_ptr_nonnull(g_slow);
	g_cache = cache_create(&g_slow->base, &co);
	ck_assert_ptr_nonnull(g_cache);
	g_top = g_cache;
	if (with_prefetch) {
		g_top = prefetch_create(g_cache, NULL);
		ck_assert_ptr_nonnull(g_top);
	}
}

static void teardown(void)
{
	if (g_top != NULL) {
		cache_debug_check(g_cache);
		backend_destroy(g_top);
	}
	g_top = g_cache = g_mem = NULL;
	g_slow = NULL;
}

static struct cache_stats cstats(void)
{
	struct cache_stats s;

	cache_get_stats(g_cache, &s);
	return s;
}

static struct prefetch_stats pstats(void)
{
	struct prefetch_stats s;

	prefetch_get_stats(g_top, &s);
	return s;
}

static int slow_reads(void)
{
	return __atomic_load_n(&g_slow->reads, __ATOMIC_RELAXED);
}

/* Save size bytes of pattern seed under key, through the stack. */
static void put_pat(const char *key, size_t size, uint32_t seed, struct backend_stat *st)
{
	int ret = testbe_put_pattern(g_top, key, size, seed, st);

	ck_assert_msg(ret == 0, "save %s: %s", key, strerror(-ret));
}

/* Read [off, off + len) of key through the top and check it against the
 * pattern (clipped to size). */
static void read_check(const char *key, uint64_t size, uint32_t seed, uint64_t off, size_t len,
                       const char *etag)
{
	static unsigned char buf[4 * MIB];
	size_t want = off >= size ? 0 : (size_t)(size - off < len ? size - off : len);
	ssize_t n;

	ck_assert_uint_le(len, sizeof(buf));
	n = g_top->ops->read(g_top, key, off, buf, len, etag, NULL);
	ck_assert_msg(n == (ssize_t)want, "read %s at %llu len %zu: %zd, want %zu", key,
	              (unsigned long long)off, len, n, want);
	ck_assert_msg(tm_pattern_check(buf, off, want, seed) == want, "wrong bytes at %llu",
	              (unsigned long long)off);
}

/* Wait (at most 10 s) until no prefetch job is queued or running: the
 * cache's counters stop moving. */
static void wait_quiet(void)
{
	uint64_t last = UINT64_MAX;

	for (int i = 0, still = 0; still < 5; i++) {
		struct cache_stats s = cstats();
		uint64_t now = s.fetches + s.prefetch_blocks + s.prefetch_dropped;

		ck_assert_int_lt(i, 2000);
		still = now == last && s.prefetch_jobs == 0 &&
		                __atomic_load_n(&g_slow->in_flight, __ATOMIC_RELAXED) == 0
		            ? still + 1
		            : 0;
		last = now;
		testbe_sleep_ms(5);
	}
}

/* --- the cache's prefetch op -------------------------------------------- */

/* One prefetch of 8 MiB with 1 MiB blocks and 4 MiB parts: two inner reads
 * in parallel, and the reads that follow cost none. */
START_TEST(test_cache_prefetch_op)
{
	const uint64_t size = 8 * MIB;
	struct backend_stat st;
	struct cache_stats s;

	stack(MIB, 64 * MIB, 4 * MIB, 0);
	ck_assert_ptr_nonnull(g_cache->ops->prefetch);
	put_pat("obj", size, 1, &st);
	__atomic_store_n(&g_slow->delay_ms, 50, __ATOMIC_RELAXED);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "obj", st.etag, 0, size), 0);
	/* Asking again while it runs changes nothing. */
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "obj", st.etag, 0, size), 0);
	wait_quiet();
	s = cstats();
	ck_assert_int_eq(slow_reads(), 2);
	ck_assert_int_eq(__atomic_load_n(&g_slow->max_in_flight, __ATOMIC_RELAXED), 2);
	ck_assert_uint_eq(s.prefetch_blocks, 8);
	ck_assert_uint_eq(s.bytes_cached, size);
	for (uint64_t off = 0; off < size; off += 300 * KIB)
		read_check("obj", size, 1, off, 300 * KIB, st.etag);
	ck_assert_int_eq(slow_reads(), 2);
	s = cstats();
	ck_assert_uint_eq(s.prefetch_hits, 8);
	ck_assert_uint_eq(s.misses, 0);

	/* Without an etag: the current version, clipped to its size; past the
	 * end and of a missing key: nothing, and no error. */
	put_pat("obj", 3 * MIB + 5, 2, &st);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "obj", NULL, MIB, 10 * MIB), 0);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "obj", NULL, 50 * MIB, MIB), 0);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "nope", NULL, 0, MIB), 0);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "obj", "bad-etag", 0, MIB), 0);
	wait_quiet();
	read_check("obj", 3 * MIB + 5, 2, MIB, 2 * MIB + 100, st.etag);
	ck_assert_uint_eq(cstats().prefetch_blocks, 8 + 3);
	cache_debug_check(g_cache);
}
END_TEST

/* A prefetch in flight when the cache is destroyed: destroy waits for it
 * and frees everything (ASan would see a leak). */
START_TEST(test_destroy_while_prefetching)
{
	struct backend_stat st;

	stack(64 * KIB, 4 * MIB, 256 * KIB, 0);
	put_pat("d", 4 * MIB, 3, &st);
	__atomic_store_n(&g_slow->delay_ms, 30, __ATOMIC_RELAXED);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "d", st.etag, 0, 4 * MIB), 0);
	testbe_sleep_ms(10);
	backend_destroy(g_top);
	g_top = NULL;
}
END_TEST

/* --- the prefetch layer ------------------------------------------------- */

/* 64 MiB read in 1 MiB pieces: about 64 / 8 inner reads of 8 MiB, several
 * at once; without the layer, 64 reads one after another. */
START_TEST(test_sequential)
{
	const uint64_t size = 64 * MIB;
	struct backend_stat st;
	struct prefetch_stats p;
	struct cache_stats s;
	int reads;

	stack(MIB, 256 * MIB, 8 * MIB, 1);
	put_pat("big", size, 4, &st);
	__atomic_store_n(&g_slow->delay_ms, 20, __ATOMIC_RELAXED);
	for (uint64_t off = 0; off < size; off += MIB)
		read_check("big", size, 4, off, MIB, st.etag);
	wait_quiet();
	reads = slow_reads();
	p = pstats();
	s = cstats();
	if (getenv("CHECK_PREFETCH_VERBOSE") != NULL)
		printf("sequential: %d inner reads, max %d at once; %llu requests, %llu bytes; "
		       "prefetch blocks %llu hits %llu\n",
		       reads, __atomic_load_n(&g_slow->max_in_flight, __ATOMIC_RELAXED),
		       (unsigned long long)p.prefetch_requests,
		       (unsigned long long)p.prefetch_bytes, (unsigned long long)s.prefetch_blocks,
		       (unsigned long long)s.prefetch_hits);
	ck_assert_int_le(reads, 64 / 8 + 3);
	ck_assert_int_gt(__atomic_load_n(&g_slow->max_in_flight, __ATOMIC_RELAXED), 1);
	ck_assert_uint_eq(p.streams, 1);
	ck_assert_uint_eq(p.sequential_hits, 63);
	ck_assert_uint_eq(p.seeks, 0);
	ck_assert_uint_gt(p.prefetch_requests, 0);
	ck_assert_uint_le(p.prefetch_bytes, size);
	ck_assert_uint_ge(s.prefetch_blocks, 60);
	ck_assert_uint_ge(s.prefetch_hits, 60);
	ck_assert_uint_eq(s.fetch_bytes, size);
	cache_debug_check(g_cache);
	teardown();

	/* The same without the layer: one inner read per block. */
	stack(MIB, 256 * MIB, 8 * MIB, 0);
	put_pat("big", size, 4, &st);
	for (uint64_t off = 0; off < size; off += MIB)
		read_check("big", size, 4, off, MIB, st.etag);
	ck_assert_int_eq(slow_reads(), 64);
	ck_assert_int_eq(__atomic_load_n(&g_slow->max_in_flight, __ATOMIC_RELAXED), 1);
}
END_TEST

/* Reads without an etag prefetch too (the cache stats for the version). */
START_TEST(test_sequential_no_etag)
{
	const uint64_t size = 16 * MIB;

	stack(MIB, 64 * MIB, 4 * MIB, 1);
	put_pat("u", size, 5, NULL);
	for (uint64_t off = 0; off < size; off += 512 * KIB)
		read_check("u", size, 5, off, 512 * KIB, NULL);
	wait_quiet();
	ck_assert_uint_gt(pstats().prefetch_requests, 0);
	ck_assert_uint_ge(cstats().prefetch_blocks, 10);
	ck_assert_int_le(slow_reads(), 16 / 4 + 3);
	cache_debug_check(g_cache);
}
END_TEST

/* Reads far apart (more than the 8 MiB tolerance): no prefetch at all; the
 * first few start streams, the rest are seeks in them. */
START_TEST(test_random_no_prefetch)
{
	const uint64_t size = 256 * MIB;
	const uint64_t offs[] = {100, 50, 200, 3, 150, 75, 250, 25, 180, 125, 37, 220};
	struct backend_stat st;
	struct prefetch_stats p;
	const size_t n = sizeof(offs) / sizeof(offs[0]);

	stack(MIB, 64 * MIB, 8 * MIB, 1);
	put_pat("r", size, 6, &st);
	for (size_t i = 0; i < n; i++)
		read_check("r", size, 6, offs[i] * MIB + 1000, 128 * KIB, st.etag);
	wait_quiet();
	p = pstats();
	ck_assert_uint_eq(p.prefetch_requests, 0);
	ck_assert_uint_eq(p.sequential_hits, 0);
	ck_assert_uint_eq(p.streams, PREFETCH_STREAMS_PER_VERSION);
	ck_assert_uint_eq(p.seeks, n - PREFETCH_STREAMS_PER_VERSION);
	ck_assert_uint_eq(cstats().prefetch_blocks, 0);
	ck_assert_int_eq(slow_reads(), (int)n);
	cache_debug_check(g_cache);
}
END_TEST

/* A seek drops the window: the next sequential read asks for the initial
 * window again. */
START_TEST(test_seek_resets)
{
	const uint64_t size = 128 * MIB;
	struct backend_stat st;
	struct prefetch_stats p, q;

	stack(MIB, 256 * MIB, 8 * MIB, 1);
	put_pat("s", size, 7, &st);
	for (uint64_t off = 0; off < 8 * MIB; off += MIB)
		read_check("s", size, 7, off, MIB, st.etag);
	p = pstats();
	ck_assert_uint_eq(p.sequential_hits, 7);
	/* Windows 1, 2, 4, ... 64: asked up to 8 + 64 MiB. */
	ck_assert_uint_eq(p.prefetch_bytes, 8 * MIB + 64 * MIB - 2 * MIB);

	/* Other readers take the version's other stream slots... */
	for (int i = 1; i < PREFETCH_STREAMS_PER_VERSION; i++)
		read_check("s", size, 7, (uint64_t)(30 + 20 * i) * MIB, MIB, st.etag);
	ck_assert_uint_eq(pstats().seeks, 0);
	ck_assert_uint_eq(pstats().streams, PREFETCH_STREAMS_PER_VERSION);
	p = pstats();
	/* ...so a read that follows none is a seek in the oldest stream. */
	read_check("s", size, 7, 100 * MIB, MIB, st.etag); /* seek */
	q = pstats();
	ck_assert_uint_eq(q.seeks, 1);
	ck_assert_uint_eq(q.prefetch_bytes, p.prefetch_bytes);
	read_check("s", size, 7, 101 * MIB, MIB, st.etag);
	q = pstats();
	ck_assert_uint_eq(q.prefetch_bytes - p.prefetch_bytes, MIB); /* initial window */
	read_check("s", size, 7, 102 * MIB, MIB, st.etag);
	ck_assert_uint_eq(pstats().prefetch_bytes - q.prefetch_bytes, 2 * MIB); /* doubled */

	/* A backwards seek is a seek too. */
	read_check("s", size, 7, 20 * MIB, MIB, st.etag);
	ck_assert_uint_eq(pstats().seeks, 2);
	ck_assert_uint_eq(pstats().streams, PREFETCH_STREAMS_PER_VERSION);
	wait_quiet();
	cache_debug_check(g_cache);
}
END_TEST

/* Two readers of one file, each sequential, interleaved: a stream each, no
 * seek, and both are prefetched (fewer inner reads than blocks). */
START_TEST(test_two_readers_one_file)
{
	const uint64_t size = 96 * MIB;
	struct backend_stat st;
	struct prefetch_stats p;

	stack(MIB, 256 * MIB, 4 * MIB, 1);
	put_pat("two", size, 9, &st);
	for (uint64_t off = 0; off < 32 * MIB; off += MIB) {
		read_check("two", size, 9, off, MIB, st.etag);
		read_check("two", size, 9, 48 * MIB + off, MIB, st.etag);
	}
	wait_quiet();
	p = pstats();
	ck_assert_uint_eq(p.streams, 2);
	ck_assert_uint_eq(p.seeks, 0);
	ck_assert_uint_eq(p.sequential_hits, 2 * 31);
	ck_assert_uint_gt(p.prefetch_requests, 2);
	ck_assert_int_lt(slow_reads(), 64 / 2);
	cache_debug_check(g_cache);
}
END_TEST

struct first_read_arg {
	const char *etag;
	ssize_t n;
	size_t good; /* bytes matching the pattern */
};

static void *first_read(void *p)
{
	struct first_read_arg *a = p;
	unsigned char *buf = malloc(MIB);

	a->n = buf == NULL ? -ENOMEM : g_top->ops->read(g_top, "end", 0, buf, MIB, a->etag, NULL);
	a->good = a->n > 0 ? tm_pattern_check(buf, 0, (size_t)a->n, 13) : 0;
	free(buf);
	return NULL;
}

/* The kernel sends readahead before the first answer is back: a read that
 * follows on from one still in flight asks for no window yet (the size is
 * unknown), so nothing is fetched past the end of a small object. */
START_TEST(test_no_window_before_size)
{
	const uint64_t size = 3 * MIB / 2;
	struct first_read_arg a;
	struct backend_stat st;
	pthread_t th;

	stack(MIB, 256 * MIB, MIB, 1);
	put_pat("end", size, 13, &st);
	a.etag = st.etag;
	__atomic_store_n(&g_slow->delay_ms, 200, __ATOMIC_RELAXED);
	ck_assert_int_eq(pthread_create(&th, NULL, first_read, &a), 0);
	testbe_sleep_ms(50);
	read_check("end", size, 13, MIB, MIB, st.etag); /* follows on, size unknown */
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(a.n, (ssize_t)MIB);
	ck_assert_uint_eq(a.good, MIB);
	wait_quiet();
	ck_assert_uint_eq(pstats().sequential_hits, 1);
	ck_assert_int_eq(__atomic_load_n(&g_slow->empty_reads, __ATOMIC_RELAXED), 0);
	cache_debug_check(g_cache);
}
END_TEST

/* The kernel's readahead: 128 KiB reads, neighbours swapped.  Still one
 * sequential stream, no seek. */
START_TEST(test_reordered_readahead)
{
	const uint64_t size = 16 * MIB, piece = 128 * KIB;
	const unsigned order[] = {0, 1, 3, 2, 4, 6, 5, 7};
	struct backend_stat st;
	struct prefetch_stats p;
	unsigned n = 0;

	stack(MIB, 64 * MIB, 4 * MIB, 1);
	put_pat("k", size, 8, &st);
	for (uint64_t group = 0; group < size / piece; group += 8)
		for (unsigned i = 0; i < 8; i++, n++)
			read_check("k", size, 8, (group + order[i]) * piece, piece, st.etag);
	wait_quiet();
	p = pstats();
	ck_assert_uint_eq(p.seeks, 0);
	ck_assert_uint_eq(p.sequential_hits, n - 1);
	ck_assert_uint_gt(p.prefetch_requests, 0);
	ck_assert_int_le(slow_reads(), 16 / 4 + 3);
	cache_debug_check(g_cache);
}
END_TEST

/* A budget of 8 blocks, windows far larger: the bound holds, the bytes
 * are right, and prefetch holds back. */
START_TEST(test_tiny_budget)
{
	const uint64_t size = 8 * MIB, bs = 64 * KIB;
	struct testbe_sampler sa = {0};
	struct backend_stat st;
	struct cache_stats s;
	pthread_t th;

	stack(bs, 8 * bs, 4 * bs, 1);
	put_pat("t", size, 9, &st);
	__atomic_store_n(&g_slow->delay_ms, 2, __ATOMIC_RELAXED);
	sa.cache = g_cache;
	ck_assert_int_eq(pthread_create(&th, NULL, testbe_sample_cache, &sa), 0);
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t off = 0; off < size; off += 48 * KIB)
			read_check("t", size, 9, off, 48 * KIB, pass ? NULL : st.etag);
	wait_quiet();
	__atomic_store_n(&sa.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_gt(sa.samples, 0);
	ck_assert_uint_le(sa.max_cached, 8 * bs);
	s = cstats();
	ck_assert_uint_le(s.bytes_cached, 8 * bs);
	ck_assert_uint_gt(s.prefetch_blocks, 0);
	ck_assert_uint_gt(s.prefetch_dropped, 0);
	cache_debug_check(g_cache);
}
END_TEST

/* A prefetch whose inner read fails: the reader that waited for it reads
 * the block itself and never sees the error. */
START_TEST(test_prefetch_failure_hidden)
{
	const uint64_t size = 32 * MIB;
	struct backend_stat st;

	stack(MIB, 256 * MIB, 8 * MIB, 1);
	put_pat("f", size, 10, &st);
	__atomic_store_n(&g_slow->delay_ms, 20, __ATOMIC_RELAXED);
	/* The first prefetch starts at block 2 (after two 1 MiB reads). */
	__atomic_store_n(&g_slow->fail_off, 2 * MIB, __ATOMIC_RELAXED);
	__atomic_store_n(&g_slow->fail_count, 1, __ATOMIC_RELAXED);
	for (uint64_t off = 0; off < size; off += MIB)
		read_check("f", size, 10, off, MIB, st.etag);
	ck_assert_int_le(__atomic_load_n(&g_slow->fail_count, __ATOMIC_RELAXED), 0);

	/* Every prefetch of several blocks failing: reads still right. */
	__atomic_store_n(&g_slow->fail_longer, MIB, __ATOMIC_RELAXED);
	put_pat("g", 48 * MIB, 11, &st);
	for (uint64_t off = 38 * MIB; off < 48 * MIB; off += MIB)
		read_check("g", 48 * MIB, 11, off, MIB, st.etag);
	wait_quiet();
	ck_assert_uint_gt(pstats().prefetch_requests, 0);
	cache_debug_check(g_cache);
}
END_TEST

/* More files than streams: the table recycles, reads stay right, and a
 * sequential file still gets prefetched. */
START_TEST(test_many_streams)
{
	struct prefetch_stats p;
	char key[32];

	stack(64 * KIB, 16 * MIB, 256 * KIB, 1);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "m%d", i);
		put_pat(key, 300 * KIB, 100 + i, NULL);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "m%d", i);
			read_check(key, 300 * KIB, 100 + i, (uint64_t)round * 100 * KIB, 100 * KIB,
			           NULL);
		}
	wait_quiet();
	p = pstats();
	ck_assert_uint_eq(p.streams, 300); /* 100 keys, 64 slots: always recycled */
	ck_assert_uint_eq(p.sequential_hits, 0);
	cache_debug_check(g_cache);
}
END_TEST

struct stats_seen {
	int prefetch, cache;
	uint64_t sequential_hits;
};

static void stats_emit(void *ctx, const char *group, const char *name, uint64_t value)
{
	struct stats_seen *seen = ctx;

	seen->prefetch += strcmp(group, "prefetch") == 0;
	seen->cache += strcmp(group, "cache") == 0;
	if (strcmp(name, "sequential_hits") == 0)
		seen->sequential_hits = value;
}

/* The stats op reports the layer's counters, then the cache's. */
START_TEST(test_stats_op)
{
	struct stats_seen seen = {0};

	stack(64 * KIB, MIB, 256 * KIB, 1);
	put_pat("x", 512 * KIB, 12, NULL);
	for (uint64_t off = 0; off < 512 * KIB; off += 64 * KIB)
		read_check("x", 512 * KIB, 12, off, 64 * KIB, NULL);
	wait_quiet();
	backend_stats(g_top, stats_emit, &seen);
	ck_assert_int_eq(seen.prefetch, 5);
	ck_assert_int_eq(seen.cache, 12);
	ck_assert_uint_eq(seen.sequential_hits, 7);
}
END_TEST

START_TEST(test_create_options)
{
	struct prefetch_opts o;
	struct backend *mem = mem_backend_create(), *p;

	ck_assert_ptr_nonnull(mem);
	prefetch_opts_init(&o);
	ck_assert_uint_eq(o.initial_window, MIB);
	ck_assert_uint_eq(o.max_window, 128 * MIB);
	o.initial_window = 8 * MIB;
	o.max_window = MIB;
	errno = 0;
	ck_assert_ptr_null(prefetch_create(mem, &o));
	ck_assert_int_eq(errno, EINVAL);
	/* Over a backend without prefetch: passes through, no prefetch op. */
	p = prefetch_create(mem, NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->ops->name, "prefetch");
	ck_assert_ptr_null(p->ops->prefetch);
	ck_assert_ptr_null(p->ops->rename);
	ck_assert_ptr_nonnull(p->ops->copy);
	ck_assert_int_eq(backend_save_buffer(p, "x", "hello", 5, NULL), 0);
	for (int i = 0; i < 3; i++) {
		char buf[5];

		ck_assert_int_eq(p->ops->read(p, "x", 0, buf, 5, NULL, NULL), 5);
		ck_assert_mem_eq(buf, "hello", 5);
	}
	backend_destroy(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prefetch");
	TCase *tc = tcase_create("prefetch");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_options);
	tcase_add_test(tc, test_cache_prefetch_op);
	tcase_add_test(tc, test_destroy_while_prefetching);
	tcase_add_test(tc, test_sequential);
	tcase_add_test(tc, test_sequential_no_etag);
	tcase_add_test(tc, test_random_no_prefetch);
	tcase_add_test(tc, test_seek_resets);
	tcase_add_test(tc, test_two_readers_one_file);
	tcase_add_test(tc, test_no_window_before_size);
	tcase_add_test(tc, test_reordered_readahead);
	tcase_add_test(tc, test_tiny_budget);
	tcase_add_test(tc, test_prefetch_failure_hidden);
	tcase_add_test(tc, test_many_streams);
	tcase_add_test(tc, test_stats_op);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
