/*
 * check_cache.c - the block cache layer (backends/cache.c).
 *
 * The stack under test is cache -> slow -> mem.  "slow" is the test layer
 * of tests/support/testbe.h: it forwards to mem and, on request, sleeps
 * after each inner read (so concurrent requests overlap) or fails the next
 * reads with -EIO.  The mem backend's counters (mem_backend_get_stats)
 * prove how many requests reached the store.  Every case ends with the
 * cache's invariant check.
 */
#include "backend.h"
#include "cache.h"
#include "mem.h"
#include "mount.h"
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
static struct backend *g_cache; /* over g_slow; owns the rest */

/* Build the stack with block size bs and budget budget. */
static void stack(size_t bs, uint64_t budget)
{
	struct cache_opts o;

	cache_opts_init(&o);
	o.block_size = bs;
	o.mem_budget = budget;
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_slow = testbe_create(g_mem, TESTBE_COPY | TESTBE_RENAME);
	ck_assert_ptr_nonnull(g_slow);
	g_cache = cache_create(&g_slow->base, &o);
	ck_assert_ptr_nonnull(g_cache);
}

static void teardown(void)
{
	if (g_cache != NULL) {
		cache_debug_check(g_cache);
		backend_destroy(g_cache);
	}
	g_cache = NULL;
	g_mem = NULL;
	g_slow = NULL;
}

static uint64_t mem_reads(void)
{
	struct mem_backend_stats s;

	mem_backend_get_stats(g_mem, &s);
	return s.read;
}

static struct cache_stats cstats(void)
{
	struct cache_stats s;

	cache_get_stats(g_cache, &s);
	return s;
}

/* Save size bytes of pattern seed under key, through the cache. */
static void put_pat(const char *key, size_t size, uint32_t seed, struct backend_stat *st)
{
	int ret = testbe_put_pattern(g_cache, key, size, seed, st);

	ck_assert_msg(ret == 0, "save %s: %s", key, strerror(-ret));
}

static ssize_t cread(const char *key, uint64_t off, void *dst, size_t len, const char *etag)
{
	return g_cache->ops->read(g_cache, key, off, dst, len, etag, NULL);
}

/* --- cases -------------------------------------------------------------- */

START_TEST(test_create_options)
{
	struct cache_opts o;
	struct backend *inner = mem_backend_create(), *c;
	struct cache_stats s;

	ck_assert_ptr_nonnull(inner);
	cache_opts_init(&o);
	ck_assert_uint_eq(o.block_size, MIB);
	ck_assert_uint_eq(o.mem_budget, 256 * (uint64_t)MIB);

	o.block_size = 3000; /* not a power of two */
	errno = 0;
	ck_assert_ptr_null(cache_create(inner, &o));
	ck_assert_int_eq(errno, EINVAL);
	o.block_size = 64 * KIB;
	o.mem_budget = 32 * KIB; /* less than a block */
	ck_assert_ptr_null(cache_create(inner, &o));
	ck_assert_int_eq(errno, EINVAL);

	/* The caller still owns inner after a failure: it works and we use it. */
	inner->flags = BACKEND_REAL_DIRS;
	c = cache_create(inner, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->flags, BACKEND_REAL_DIRS);
	ck_assert_str_eq(c->ops->name, "cache");
	ck_assert_ptr_null(c->ops->read_fd);
	ck_assert_ptr_null(c->ops->rename); /* mem has none */
	ck_assert_ptr_nonnull(c->ops->copy);
	ck_assert_ptr_null(c->ops->space);
	cache_get_stats(c, &s);
	ck_assert_uint_eq(s.bytes_cached, 0);
	cache_get_stats(inner, &s); /* not a cache: zeroed */
	ck_assert_uint_eq(s.hits, 0);
	backend_destroy(c); /* destroys inner too (ASan would see a leak otherwise) */
}
END_TEST

/* N MiB read sequentially costs N MiB / block_size inner reads; a re-read
 * costs none. */
START_TEST(test_sequential_counts)
{
	const size_t size = 8 * MIB, bs = 256 * KIB, piece = 100 * KIB;
	unsigned char *buf = malloc(piece);
	struct backend_stat st;
	struct cache_stats s;

	ck_assert_ptr_nonnull(buf);
	stack(bs, 16 * MIB);
	put_pat("obj", size, 1, &st);
	mem_backend_reset_stats(g_mem);
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		ck_assert_int_eq(cread("obj", off, buf, piece, st.etag), (ssize_t)n);
		ck_assert_uint_eq(tm_pattern_check(buf, off, n, 1), n);
	}
	ck_assert_uint_eq(mem_reads(), size / bs);
	s = cstats();
	ck_assert_uint_eq(s.misses, size / bs);
	ck_assert_uint_eq(s.fetches, size / bs);
	ck_assert_uint_eq(s.fetch_bytes, size);
	ck_assert_uint_eq(s.bytes_cached, size);
	ck_assert_uint_eq(s.evictions, 0);

	/* Again, pinned and unpinned: no inner read at all. */
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		ck_assert_int_eq(cread("obj", off, buf, piece, off % 2 ? st.etag : NULL),
		                 (ssize_t)n);
		ck_assert_uint_eq(tm_pattern_check(buf, off, n, 1), n);
	}
	ck_assert_uint_eq(mem_reads(), size / bs);
	ck_assert_uint_gt(cstats().hits, 0);
	cache_debug_check(g_cache);
	free(buf);
}
END_TEST

/* A new version (saved through the layer) is fetched again and served. */
START_TEST(test_overwrite_invalidates)
{
	const size_t size = MIB + 5000, bs = 64 * KIB;
	unsigned char *buf = malloc(size);
	struct backend_stat v1, v2, got;
	uint64_t before;

	ck_assert_ptr_nonnull(buf);
	stack(bs, 4 * MIB);
	put_pat("k", size, 1, &v1);
	ck_assert_int_eq(backend_read_full(g_cache, "k", 0, buf, size, NULL), (ssize_t)size);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, size, 1), size);
	before = mem_reads();
	ck_assert_uint_eq(before, (size + bs - 1) / bs);

	put_pat("k", size, 2, &v2);
	ck_assert_str_ne(v1.etag, v2.etag);
	ck_assert_uint_eq(cstats().bytes_cached, 0);
	ck_assert_int_eq(g_cache->ops->read(g_cache, "k", 0, buf, size, NULL, &got), (ssize_t)size);
	ck_assert_str_eq(got.etag, v2.etag);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, size, 2), size);
	ck_assert_uint_eq(mem_reads() - before, (size + bs - 1) / bs);
	/* The old version is gone from the cache: pinned reads of it fail. */
	ck_assert_int_eq(cread("k", 0, buf, 100, v1.etag), -ESTALE);
	ck_assert_int_eq(cread("k", 3 * bs, buf, 100, v1.etag), -ESTALE);

	/* remove and copy invalidate too. */
	ck_assert_int_eq(g_cache->ops->remove(g_cache, "k"), 0);
	ck_assert_int_eq(cread("k", 0, buf, 100, v2.etag), -ENOENT);
	ck_assert_int_eq(cread("k", 0, buf, 100, NULL), -ENOENT);
	put_pat("src", 3000, 3, NULL);
	put_pat("dst", 3000, 4, &v1);
	ck_assert_int_eq(cread("dst", 0, buf, 3000, NULL), 3000);
	ck_assert_int_eq(backend_copy(g_cache, "src", "dst", &v2), 0);
	ck_assert_int_eq(cread("dst", 0, buf, 3000, v1.etag), -ESTALE);
	ck_assert_int_eq(cread("dst", 0, buf, 3000, NULL), 3000);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, 3000, 3), 3000);
	cache_debug_check(g_cache);
	free(buf);
}
END_TEST

/* Read all of "k" pinned to the constant ETag: size bytes of pattern seed. */
static void read_const(unsigned char *buf, size_t cap, size_t size, uint32_t seed)
{
	ck_assert_int_eq(backend_read_full(g_cache, "k", 0, buf, cap, TESTBE_CONST_ETAG),
	                 (ssize_t)size);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, size, seed), size);
}

/*
 * Two objects of one key and one ETag (a store with constant ETags, the
 * object replaced behind the layer's back) but of other sizes share no
 * block: once the store reports the new size (a stat, a listing), reads
 * pinned to that ETag get the new object's bytes (finding 7 of issue 13).
 */
START_TEST(test_constant_etag_other_size)
{
	const size_t bs = 64 * KIB, s1 = 3 * bs + 100, s2 = 2 * bs + 7, s3 = bs / 2;
	unsigned char *buf = malloc(s1);
	struct backend_stat st;
	struct backend_list l;

	ck_assert_ptr_nonnull(buf);
	stack(bs, 4 * MIB);
	__atomic_store_n(&g_slow->const_etag, 1, __ATOMIC_RELAXED);
	ck_assert_int_eq(testbe_put_pattern(g_mem, "k", s1, 1, NULL), 0);
	ck_assert_int_eq(g_cache->ops->stat(g_cache, "k", &st), 0);
	ck_assert_str_eq(st.etag, TESTBE_CONST_ETAG);
	read_const(buf, s1, s1, 1);

	/* Replaced behind the cache; its stat says so. */
	ck_assert_int_eq(testbe_put_pattern(g_mem, "k", s2, 2, NULL), 0);
	ck_assert_int_eq(g_cache->ops->stat(g_cache, "k", &st), 0);
	ck_assert_uint_eq(st.size, s2);
	read_const(buf, s1, s2, 2);

	/* Replaced again; a listing says so. */
	ck_assert_int_eq(testbe_put_pattern(g_mem, "k", s3, 3, NULL), 0);
	ck_assert_int_eq(g_cache->ops->list(g_cache, "", '/', NULL, NULL, 1000, &l), 0);
	backend_list_free(&l);
	read_const(buf, s1, s3, 3);
	cache_debug_check(g_cache);
	free(buf);
}
END_TEST

/* rename drops the blocks of both names. */
START_TEST(test_rename_invalidates)
{
	unsigned char buf[3000];
	struct backend_stat a, b;

	stack(4 * KIB, 64 * KIB);
	ck_assert_ptr_nonnull(g_cache->ops->rename);
	put_pat("a", 3000, 20, &a);
	put_pat("b", 3000, 21, &b);
	ck_assert_int_eq(cread("a", 0, buf, 3000, NULL), 3000);
	ck_assert_int_eq(cread("b", 0, buf, 3000, NULL), 3000);
	ck_assert_uint_eq(cstats().bytes_cached, 6000);
	ck_assert_int_eq(g_cache->ops->rename(g_cache, "a", "b"), 0);
	ck_assert_uint_eq(cstats().bytes_cached, 0);
	ck_assert_int_eq(cread("a", 0, buf, 3000, a.etag), -ENOENT);
	ck_assert_int_eq(cread("b", 0, buf, 3000, b.etag), -ESTALE);
	ck_assert_int_eq(cread("b", 0, buf, 3000, NULL), 3000);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, 3000, 20), 3000);
	cache_debug_check(g_cache);
}
END_TEST

#define FLIGHT_THREADS 8

struct flight_arg {
	const char *etag;
	pthread_barrier_t *start;
	ssize_t ret;
	int bad;
};

static void *flight_reader(void *p)
{
	struct flight_arg *a = p;
	unsigned char buf[1000];

	pthread_barrier_wait(a->start);
	a->ret = cread("one", 70 * KIB, buf, sizeof(buf), a->etag);
	if (a->ret == (ssize_t)sizeof(buf))
		a->bad = tm_pattern_check(buf, 70 * KIB, sizeof(buf), 5) != sizeof(buf);
	return NULL;
}

/* Eight readers of one block at once: one inner read. */
START_TEST(test_single_flight)
{
	struct flight_arg a[FLIGHT_THREADS];
	pthread_t th[FLIGHT_THREADS];
	pthread_barrier_t start;
	struct backend_stat st;
	struct cache_stats s;

	stack(64 * KIB, MIB);
	put_pat("one", 200 * KIB, 5, &st);
	mem_backend_reset_stats(g_mem);
	__atomic_store_n(&g_slow->delay_ms, 50, __ATOMIC_RELAXED);
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, FLIGHT_THREADS), 0);
	for (int i = 0; i < FLIGHT_THREADS; i++) {
		a[i] = (struct flight_arg){.etag = st.etag, .start = &start};
		ck_assert_int_eq(pthread_create(&th[i], NULL, flight_reader, &a[i]), 0);
	}
	for (int i = 0; i < FLIGHT_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(a[i].ret, 1000);
		ck_assert(!a[i].bad);
	}
	pthread_barrier_destroy(&start);
	ck_assert_uint_eq(mem_reads(), 1);
	s = cstats();
	ck_assert_uint_eq(s.misses, 1);
	ck_assert_uint_eq(s.fetches, 1);
	ck_assert_uint_eq(s.waits + s.hits, FLIGHT_THREADS - 1);
	ck_assert_uint_gt(s.waits, 0);
	cache_debug_check(g_cache);
}
END_TEST

struct fail_arg {
	const char *etag;
	ssize_t ret;
};

static void *fail_reader(void *p)
{
	struct fail_arg *a = p;
	char buf[100];

	a->ret = cread("f", 0, buf, sizeof(buf), a->etag);
	return NULL;
}

/* A failed fetch reaches its waiters and is not cached. */
START_TEST(test_failure_not_cached)
{
	struct fail_arg a[4];
	pthread_t th[4];
	struct backend_stat st;
	char buf[100];

	stack(64 * KIB, MIB);
	put_pat("f", 1000, 6, &st);
	__atomic_store_n(&g_slow->fail_count, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&g_slow->delay_ms, 100, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct fail_arg){.etag = st.etag};
		ck_assert_int_eq(pthread_create(&th[i], NULL, fail_reader, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(a[i].ret, -EIO);
	}
	ck_assert_int_eq(__atomic_load_n(&g_slow->reads, __ATOMIC_RELAXED), 1);
	ck_assert_uint_eq(cstats().bytes_cached, 0);

	__atomic_store_n(&g_slow->delay_ms, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(cread("f", 0, buf, sizeof(buf), st.etag), 100);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, 100, 6), 100);
	ck_assert_int_eq(__atomic_load_n(&g_slow->reads, __ATOMIC_RELAXED), 2);
	ck_assert_uint_eq(cstats().bytes_cached, 1000);

	/* Errors of the store pass through: missing key, wrong etag. */
	ck_assert_int_eq(cread("nope", 0, buf, sizeof(buf), NULL), -ENOENT);
	ck_assert_int_eq(cread("nope", 0, buf, sizeof(buf), "123"), -ENOENT);
	ck_assert_int_eq(cread("f", 0, buf, sizeof(buf), "no-such-etag"), -ESTALE);
	ck_assert_uint_eq(cstats().bytes_cached, 1000);
	cache_debug_check(g_cache);
}
END_TEST

/* Every (offset, length) around block boundaries and the object's end is
 * byte-exact, pinned or not, including sizes that end on a boundary. */
START_TEST(test_boundaries)
{
	const size_t bs = 4 * KIB;
	const size_t sizes[] = {0, 1, 4 * KIB, 10 * 4 * KIB, 10 * 4 * KIB + 123};
	const size_t lens[] = {1, 100, 4 * KIB - 1, 4 * KIB, 4 * KIB + 1, 9000, 50 * KIB};
	unsigned char *buf = malloc(64 * KIB);

	ck_assert_ptr_nonnull(buf);
	stack(bs, 8 * bs); /* smaller than the objects: evicts as it goes */
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t size = sizes[si];
		struct backend_stat st;
		uint64_t offs[] = {0,          1,        bs - 1, bs,       bs + 1,
		                   3 * bs - 7, size - 1, size,   size + 5, (size / bs) * bs};

		put_pat("b", size, 7 + si, &st);
		for (size_t oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++) {
			for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
				uint64_t off = offs[oi];
				size_t len = lens[li];
				ssize_t want;

				if (off > size + 5)
					continue; /* size - 1 of an empty object */
				want = off >= size ? 0
				                   : (ssize_t)(size - off < len ? size - off : len);
				for (int pinned = 0; pinned < 2; pinned++) {
					ssize_t n;

					memset(buf, 0xAA, 64 * KIB);
					n = cread("b", off, buf, len, pinned ? st.etag : NULL);
					ck_assert_msg(n == want,
					              "size %zu off %llu len %zu: got %zd want %zd",
					              size, (unsigned long long)off, len, n, want);
					ck_assert_uint_eq(
					    tm_pattern_check(buf, off, (size_t)n, 7 + si),
					    (size_t)n);
					if (n >= 0 && (size_t)n < 64 * KIB)
						ck_assert_int_eq(buf[n], 0xAA);
				}
			}
		}
		cache_debug_check(g_cache);
	}
	free(buf);
}
END_TEST

/* Least recently used goes first. */
START_TEST(test_lru_order)
{
	const size_t bs = 4 * KIB;
	unsigned char buf[16];
	struct backend_stat st;
	uint64_t r;

	stack(bs, 4 * bs);
	put_pat("l", 10 * bs, 8, &st);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(cread("l", (uint64_t)i * bs, buf, 16, st.etag), 16);
	ck_assert_int_eq(cread("l", 0, buf, 16, st.etag), 16); /* 0 is now newest */
	r = mem_reads();
	ck_assert_uint_eq(r, 4);
	ck_assert_int_eq(cread("l", 4 * bs, buf, 16, st.etag), 16); /* evicts 1 */
	ck_assert_uint_eq(cstats().evictions, 1);
	ck_assert_int_eq(cread("l", 0, buf, 16, st.etag), 16);
	ck_assert_int_eq(cread("l", 2 * bs, buf, 16, st.etag), 16);
	ck_assert_uint_eq(mem_reads(), r + 1);
	ck_assert_int_eq(cread("l", 1 * bs, buf, 16, st.etag), 16);
	ck_assert_uint_eq(mem_reads(), r + 2);
	ck_assert_uint_eq(cstats().bytes_cached, 4 * bs);
	cache_debug_check(g_cache);
}
END_TEST

#define PRESSURE_THREADS 12
#define PRESSURE_BLOCKS  100

struct pressure_arg {
	const char *etag;
	unsigned seed;
	int errors;
};

static void *pressure_reader(void *p)
{
	struct pressure_arg *a = p;
	const size_t bs = 16 * KIB;
	unsigned char *buf = malloc(2 * bs);

	if (buf == NULL) {
		a->errors++;
		return NULL;
	}
	for (int i = 0; i < 2 * PRESSURE_BLOCKS; i++) {
		uint64_t blk = (uint64_t)(rand_r(&a->seed) % PRESSURE_BLOCKS);
		uint64_t off = blk * bs + (uint64_t)(rand_r(&a->seed) % bs);
		size_t len = 1 + (size_t)(rand_r(&a->seed) % (2 * bs - 1));
		uint64_t size = PRESSURE_BLOCKS * bs;
		size_t want = size - off < len ? (size_t)(size - off) : len;
		ssize_t n = cread("p", off, buf, len, i % 3 ? a->etag : NULL);

		if (n != (ssize_t)want || tm_pattern_check(buf, off, want, 9) != want)
			a->errors++;
	}
	free(buf);
	return NULL;
}

/* Streaming through a full cache reuses the evicted blocks' buffers, with
 * right bytes, and blocks plus spare buffers stay within the budget. */
START_TEST(test_buffers_reused)
{
	const size_t bs = 64 * KIB, size = 64 * bs;
	unsigned char *buf = malloc(bs);
	struct cache_opts o;
	struct backend_stat st;
	struct cache_stats s;

	ck_assert_ptr_nonnull(buf);
	cache_opts_init(&o);
	o.block_size = bs;
	o.mem_budget = 32 * bs;
	o.part_size = 4 * bs;
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_cache = cache_create(g_mem, &o);
	ck_assert_ptr_nonnull(g_cache);
	put_pat("s", size, 5, &st);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t off = 0; off < size; off += bs) {
			ck_assert_int_eq(cread("s", off, buf, bs, st.etag), (ssize_t)bs);
			ck_assert_uint_eq(tm_pattern_check(buf, off, bs, 5), bs);
			cache_debug_check(g_cache);
		}
	}
	s = cstats();
	ck_assert_uint_eq(s.misses, 2 * size / bs); /* 64 blocks never fit in 32 */
	ck_assert_uint_gt(s.buffers_reused, size / bs);
	ck_assert_uint_le(s.bytes_cached + s.spare_bytes, 32 * bs);
	free(buf);
}
END_TEST

/* Concatenate the pieces of a read_ref into dst; returns the bytes. */
static size_t ref_flatten(const struct backend_ref *ref, unsigned char *dst)
{
	size_t n = 0;

	for (unsigned i = 0; i < ref->n; i++) {
		memcpy(dst + n, ref->seg[i].data, ref->seg[i].len);
		n += ref->seg[i].len;
	}
	return n;
}

/* read_ref lends the blocks themselves: right bytes at every alignment and
 * at the end; a lent block outlives an overwrite and eviction pressure;
 * with every block lent, the answer is -ENOBUFS, never a wait. */
START_TEST(test_read_ref)
{
	const size_t bs = 64 * KIB, size = 10 * bs + 123;
	unsigned char *buf = malloc(size);
	struct backend_ref ref, held[4];
	struct backend_stat st, v2, got;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	stack(bs, 4 * bs);
	put_pat("z", size, 21, &st);
	ck_assert_ptr_nonnull(g_cache->ops->read_ref);
	for (uint64_t off = 0; off < size; off += 40000) {
		size_t len = 3 * bs - 7;
		size_t want = off + len > size ? size - off : len;

		n = g_cache->ops->read_ref(g_cache, "z", off, len, st.etag, &ref, &got);
		ck_assert_int_eq(n, (ssize_t)want);
		ck_assert_ptr_eq(ref.owner, g_cache);
		ck_assert_uint_le(ref.n, 4);
		ck_assert_uint_eq(ref_flatten(&ref, buf), want);
		ck_assert_uint_eq(tm_pattern_check(buf, off, want, 21), want);
		ck_assert_uint_eq(got.size, size);
		backend_release_ref(&ref);
		cache_debug_check(g_cache);
	}
	/* Past the end: nothing, no error. */
	ck_assert_int_eq(g_cache->ops->read_ref(g_cache, "z", size + 5, bs, st.etag, &ref, NULL),
	                 0);
	backend_release_ref(&ref);
	/* A wrong version: -ESTALE, nothing held. */
	ck_assert_int_eq(g_cache->ops->read_ref(g_cache, "z", 0, bs, "\"other\"", &ref, NULL),
	                 -ESTALE);

	/* Lend all four blocks the budget holds, then overwrite the object. */
	for (int i = 0; i < 4; i++) {
		n = g_cache->ops->read_ref(g_cache, "z", (uint64_t)i * bs, bs, st.etag, &held[i],
		                           NULL);
		ck_assert_int_eq(n, (ssize_t)bs);
	}
	n = g_cache->ops->read_ref(g_cache, "z", 5 * bs, bs, st.etag, &ref, NULL);
	ck_assert_int_eq(n, -ENOBUFS); /* nothing left to evict */
	ck_assert_int_eq(cread("z", 5 * bs, buf, bs, st.etag), (ssize_t)bs); /* read() copes */
	ck_assert_uint_eq(tm_pattern_check(buf, 5 * bs, bs, 21), bs);
	put_pat("z", size, 22, &v2);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(ref_flatten(&held[i], buf), bs);
		ck_assert_uint_eq(tm_pattern_check(buf, (uint64_t)i * bs, bs, 21), bs);
		backend_release_ref(&held[i]);
	}
	cache_debug_check(g_cache);
	/* Everything given back: the new version reads right. */
	n = g_cache->ops->read_ref(g_cache, "z", 0, 2 * bs, v2.etag, &ref, NULL);
	ck_assert_int_eq(n, (ssize_t)(2 * bs));
	ck_assert_uint_eq(ref_flatten(&ref, buf), 2 * bs);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, 2 * bs, 22), 2 * bs);
	backend_release_ref(&ref);
	free(buf);
}
END_TEST

/* Budget of 4 blocks, 100 blocks read by many threads: the bound holds. */
START_TEST(test_budget_pressure)
{
	const size_t bs = 16 * KIB;
	struct pressure_arg a[PRESSURE_THREADS];
	struct testbe_sampler sa = {0};
	pthread_t th[PRESSURE_THREADS], sth;
	struct backend_stat st;
	struct cache_stats s;

	stack(bs, 4 * bs);
	put_pat("p", PRESSURE_BLOCKS * bs, 9, &st);
	__atomic_store_n(&g_slow->delay_ms, 1, __ATOMIC_RELAXED);
	sa.cache = g_cache;
	ck_assert_int_eq(pthread_create(&sth, NULL, testbe_sample_cache, &sa), 0);
	for (int i = 0; i < PRESSURE_THREADS; i++) {
		a[i] = (struct pressure_arg){.etag = st.etag, .seed = 1000u + (unsigned)i};
		ck_assert_int_eq(pthread_create(&th[i], NULL, pressure_reader, &a[i]), 0);
	}
	for (int i = 0; i < PRESSURE_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(a[i].errors, 0);
	}
	__atomic_store_n(&sa.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(sth, NULL), 0);
	ck_assert_int_gt(sa.samples, 0);
	ck_assert_uint_le(sa.max_cached, 4 * bs);
	s = cstats();
	ck_assert_uint_le(s.bytes_cached, 4 * bs);
	ck_assert_uint_gt(s.evictions, 0);
	/* Each miss, fetched or read through, is one inner read. */
	ck_assert_uint_eq(s.fetches, s.misses);
	ck_assert_uint_eq(s.fetches, (uint64_t)__atomic_load_n(&g_slow->reads, __ATOMIC_RELAXED));
	if (getenv("CHECK_CACHE_VERBOSE") != NULL)
		printf("pressure: hits %llu misses %llu waits %llu evictions %llu fetch_bytes "
		       "%llu (of %llu blocks fetched whole)\n",
		       (unsigned long long)s.hits, (unsigned long long)s.misses,
		       (unsigned long long)s.waits, (unsigned long long)s.evictions,
		       (unsigned long long)s.fetch_bytes, (unsigned long long)(s.fetch_bytes / bs));
	cache_debug_check(g_cache);
}
END_TEST

struct race_arg {
	unsigned char *buf;
	size_t size;
	ssize_t ret;
};

static void *race_reader(void *p)
{
	struct race_arg *a = p;

	a->ret = backend_read_full(g_cache, "r", 0, a->buf, a->size, NULL);
	return NULL;
}

/* A slow fetch of version 1 overtaken by a save of version 2: the reader
 * gets one whole version, and no v1 block stays in the cache. */
START_TEST(test_invalidate_during_fetch)
{
	const size_t bs = 64 * KIB, size = 4 * bs;
	struct race_arg a = {.size = size};
	unsigned char *buf = malloc(size);
	struct backend_stat v1, v2;
	pthread_t th;
	int v1_ok, v2_ok;

	a.buf = malloc(size);
	ck_assert_ptr_nonnull(a.buf);
	ck_assert_ptr_nonnull(buf);
	stack(bs, 16 * bs);
	put_pat("r", size, 11, &v1);
	__atomic_store_n(&g_slow->delay_ms, 150, __ATOMIC_RELAXED);
	ck_assert_int_eq(pthread_create(&th, NULL, race_reader, &a), 0);
	/* Wait until the first block's bytes (v1) are fetched but not delivered. */
	for (int i = 0; __atomic_load_n(&g_slow->done_reads, __ATOMIC_ACQUIRE) == 0; i++) {
		ck_assert_int_lt(i, 5000);
		testbe_sleep_ms(1);
	}
	put_pat("r", size, 12, &v2);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(a.ret, (ssize_t)size);
	v1_ok = tm_pattern_check(a.buf, 0, size, 11) == size;
	v2_ok = tm_pattern_check(a.buf, 0, size, 12) == size;
	ck_assert_msg(v1_ok || v2_ok, "the racing reader got a mix of versions");

	__atomic_store_n(&g_slow->delay_ms, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(backend_read_full(g_cache, "r", 0, buf, size, NULL), (ssize_t)size);
	ck_assert_uint_eq(tm_pattern_check(buf, 0, size, 12), size);
	for (size_t i = 0; i < size / bs; i++)
		ck_assert_int_eq(cread("r", i * bs, buf, 10, v1.etag), -ESTALE);
	ck_assert_uint_le(cstats().bytes_cached, size);
	cache_debug_check(g_cache);
	free(a.buf);
	free(buf);
}
END_TEST

/*
 * A whole object prefetched in parts by one worker over a slow store: a
 * reader of the last part does not wait behind the others, nor send a
 * block-sized request of its own; it fetches its queued part at once.  The
 * store sees exactly one read per part.
 */
START_TEST(test_waited_part_jumps_queue)
{
	const size_t bs = 64 * KIB, part = 4 * bs, size = 4 * part;
	unsigned char *buf = malloc(bs);
	struct backend_stat st;
	struct cache_opts o;

	ck_assert_ptr_nonnull(buf);
	cache_opts_init(&o);
	o.block_size = bs;
	o.mem_budget = 4 * size;
	o.part_size = part;
	o.fetch_threads = 1;
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_slow = testbe_create(g_mem, 0);
	ck_assert_ptr_nonnull(g_slow);
	g_cache = cache_create(&g_slow->base, &o);
	ck_assert_ptr_nonnull(g_cache);
	put_pat("w", size, 21, &st);
	__atomic_store_n(&g_slow->delay_ms, 100, __ATOMIC_RELAXED);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "w", st.etag, 0, size), 0);
	/* The last block: its part is fourth in the queue. */
	ck_assert_int_eq(cread("w", size - bs, buf, bs, st.etag), (ssize_t)bs);
	ck_assert_uint_eq(tm_pattern_check(buf, size - bs, bs, 21), bs);
	ck_assert_uint_eq(cstats().jobs_jumped, 1);
	/* The rest arrives through the worker; every byte right, one read a part. */
	for (size_t off = 0; off < size; off += bs) {
		ck_assert_int_eq(cread("w", off, buf, bs, st.etag), (ssize_t)bs);
		ck_assert_uint_eq(tm_pattern_check(buf, off, bs, 21), bs);
	}
	ck_assert_int_eq(__atomic_load_n(&g_slow->reads, __ATOMIC_ACQUIRE), (int)(size / part));
	cache_debug_check(g_cache);
	free(buf);
}
END_TEST

/* A prefetch without an etag stats the object once, then fetches its
 * parts of the version found: one stat, one read a part (a short tail
 * with the part before it). */
START_TEST(test_prefetch_without_etag_one_stat)
{
	const size_t bs = 64 * KIB, part = 4 * bs, size = 5 * part + 100;
	unsigned char *buf = malloc(bs);
	struct backend_stat st;
	struct mem_backend_stats ms;
	struct cache_opts o;

	ck_assert_ptr_nonnull(buf);
	cache_opts_init(&o);
	o.block_size = bs;
	o.mem_budget = 4 * size;
	o.part_size = part;
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_cache = cache_create(g_mem, &o);
	ck_assert_ptr_nonnull(g_cache);
	put_pat("n", size, 22, &st);
	mem_backend_reset_stats(g_mem);
	ck_assert_int_eq(g_cache->ops->prefetch(g_cache, "n", NULL, 0, size + 4096), 0);
	for (int i = 0; i < 5000 && cstats().prefetch_blocks < (size + bs - 1) / bs; i++)
		testbe_sleep_ms(1);
	mem_backend_get_stats(g_mem, &ms);
	ck_assert_uint_eq(ms.stat, 1);
	ck_assert_uint_eq(ms.read, size / part); /* the 100-byte tail rides with the last part */
	for (size_t off = 0; off < size; off += bs) {
		size_t n = size - off < bs ? size - off : bs;

		ck_assert_int_eq(cread("n", off, buf, bs, st.etag), (ssize_t)n);
		ck_assert_uint_eq(tm_pattern_check(buf, off, n, 22), n);
	}
	mem_backend_get_stats(g_mem, &ms);
	ck_assert_uint_eq(ms.read, size / part);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_options);
	tcase_add_test(tc, test_sequential_counts);
	tcase_add_test(tc, test_overwrite_invalidates);
	tcase_add_test(tc, test_constant_etag_other_size);
	tcase_add_test(tc, test_rename_invalidates);
	tcase_add_test(tc, test_single_flight);
	tcase_add_test(tc, test_failure_not_cached);
	tcase_add_test(tc, test_boundaries);
	tcase_add_test(tc, test_lru_order);
	tcase_add_test(tc, test_budget_pressure);
	tcase_add_test(tc, test_buffers_reused);
	tcase_add_test(tc, test_read_ref);
	tcase_add_test(tc, test_invalidate_during_fetch);
	tcase_add_test(tc, test_waited_part_jumps_queue);
	tcase_add_test(tc, test_prefetch_without_etag_one_stat);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
