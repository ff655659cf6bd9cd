/*
 * cache.c - the memory block cache layer (see cache.h).
 *
 * Design
 *   One mutex (cache.lock) guards all mutable state; one condition
 *   variable (cache.fetched) is broadcast whenever a fetch ends.  The lock
 *   is never held across a call into the inner backend, a malloc of a block
 *   buffer or a copy of block bytes.
 *
 *   A block (struct cache_block) is named by (key, etag, index) and lives
 *   in a chained hash table.  Its states:
 *
 *     FETCHING  created by the reader that missed it (the fetcher), which
 *               holds a reference and reads it from the inner backend
 *               without the lock.  Other readers of the same block find it
 *               in the hash, take a reference and wait on cache.fetched:
 *               one inner read per block however many readers want it.
 *     READY     the fetch ended.  On success (err == 0, len > 0) the block
 *               enters the LRU list, unless it was invalidated meanwhile
 *               (it is no longer hashed, or its key's generation moved).
 *               On failure (err < 0) or an empty result it leaves the hash
 *               at once: failures are never cached, the waiters get err.
 *
 *   A block is freed when it is neither hashed nor referenced.  Readers
 *   copy bytes out of a READY block without the lock while holding a
 *   reference; eviction skips referenced blocks and invalidation only
 *   unhashes them, so the last reader frees them.
 *
 *   Block bytes live in slabs (struct cache_slab): one buffer filled by
 *   one inner read, shared by the blocks of that read (one block for a
 *   reader's miss, a run of adjacent blocks for a prefetch).  A slab is
 *   freed with the last of its blocks.
 *
 * Memory budget
 *   bytes_held counts every slab buffer that is allocated or about to be:
 *   nblocks * block_size while FETCHING (reserved under the lock before
 *   the malloc), the bytes the read returned once READY, until the last
 *   block of the slab is freed.  Evicting one block of a slab whose other
 *   blocks stay frees nothing, so eviction goes on down the LRU list.
 *   A miss first evicts unreferenced LRU blocks until block_size more
 *   fits.  When nothing more can be evicted (everything left is being
 *   fetched or copied), the reader reads its piece straight into its own
 *   buffer from the inner backend, uncached, instead of waiting: a reader
 *   never blocks on memory, so the budget can never deadlock the cache.
 *
 * Buffer pool
 *   A freed slab buffer of exactly part_size or block_size bytes is kept
 *   for the next fetch of that size (two free lists, threaded through the
 *   buffers themselves) instead of going back to the system, as long as
 *   blocks and pool together stay within the budget: fresh memory costs a
 *   page fault and a zeroed page per page (on a virtual machine, a
 *   host-side fault too), which was most of the daemon's CPU on a cold
 *   read.  So the daemon's memory grows to the budget once and is then
 *   reused.  A reservation that would take blocks and pool past the
 *   budget frees pooled buffers first (cache_pool_trim()).

 * Prefetch
 *   cache_prefetch() splits the range into jobs, one per part
 *   (part_size) it touches, each clipped to the range (a tail under a
 *   quarter part joins the job before it), on a FIFO queue (jobs; bounded by max_jobs,
 a job already
 *   queued is not queued twice) served by worker threads started at the
 *   first prefetch.  A worker walks the blocks of its part: blocks present
 *   or in flight are skipped, each run of missing blocks becomes FETCHING
 *   blocks (marked prefetched) over one slab and one inner read.  Room for
 *   a run comes from evicting blocks that are unreferenced and not
 *   "prefetched and never read"; if not even one block fits, the job ends
 *   (prefetch_dropped).  A reader that waited on a prefetched block whose
 *   fetch failed or came back empty drops it and fetches the block itself.
 *   A reader that misses a block whose job is still queued takes the job
 *   and runs it in its own thread (cache_job_take()).
 *   destroy sets stopping, wakes and joins the workers (each finishes the
 *   inner read it is in) and frees the queued jobs.
 *
 * Versions
 *   A read with an etag uses it.  A read without one stats the inner
 *   backend first (no stat caching: every etag-less read costs one stat;
 *   the FUSE driver pins an etag at open, so that path is rare) and pins
 *   the read to the etag found.  If the object changes in the middle, the
 *   inner read answers -ESTALE and the read starts over; after
 *   CACHE_STALE_RETRIES such restarts it reads the range through in one
 *   inner call (one call is one version).  A backend that reports no etag
 *   ("") is read through uncached.
 *
 * Sizes
 *   Two objects can share a key and an ETag (a store with weak or constant
 *   ETags that replaced one behind the mount's back), so a block is only
 *   served for the object size it was fetched with.  The size the store
 *   last reported for each (key, etag) is kept in sizes[], a table of
 *   CACHE_SIZE_SLOTS slots indexed by a hash of (key, etag), filled from
 *   the answers of stat, list and every fetch from the store.  A block
 *   whose object had another size is dropped when a read finds it, and
 *   fetched again (once per read); the disk tier is asked for blocks of
 *   that size only (tier_block.size).  A slot holds one (key, etag) at a
 *   time; one taken by another pair means "size unknown", which serves
 *   what the cache holds, as before this check.
 *
 * Invalidation
 *   save/remove/copy/rename drop the cached blocks of the keys they touch
 *   once the inner op returns, and bump the key's generation (one of
 *   CACHE_GEN_STRIPES counters chosen by a hash of the key; a prefix
 *   rename bumps all).  A fetch records the generation when it starts and
 *   enters the cache only if it is unchanged and the block is still
 *   hashed, so a slow fetch of a replaced version cannot land after the
 *   invalidation that should have removed it.  Writes made to the inner
 *   store behind the layer's back are not seen by reads pinned to an etag
 *   whose blocks are cached: they keep getting that version's bytes.
 *
 * Locks
 *   cache.lock guards everything mutable, including the job queue;
 *   cache.work is signalled when a job is queued or stopping is set.
 *
 * Invariants (cache_check(), unless NDEBUG; run after every change)
 *   - every hashed block sits in the bucket of its hash; a hashed READY
 *     block has err == 0, len > 0 and is on the LRU list; a FETCHING block
 *     is referenced and not on the list;
 *   - the LRU list holds exactly the hashed READY blocks, links agree;
 *   - bytes_cached == sum of len over the LRU list
 *     <= bytes_held <= mem_budget;
 *   - n_jobs is the length of the job queue, <= max_jobs.
 */
#include "cache.h"
#include "opts.h"

#include <stddef.h>

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_GEN_STRIPES   64
#define CACHE_STALE_RETRIES 3
#define CACHE_MIN_BLOCK     4096u
#define CACHE_HUGE_MIN      ((size_t)2 << 20) /* a huge page */
#define CACHE_MAP_MIN       ((size_t)256 << 10)
#define CACHE_SIZE_SLOTS    4096 /* a power of two */

enum { CACHE_FETCHING, CACHE_READY };

/* The buffer of one inner read, shared by the blocks it filled. */
struct cache_slab {
	unsigned char *data; /* lock; set when the read returns; NULL if empty */
	size_t size;         /* lock; bytes counted in bytes_held */
	int blocks;          /* lock; blocks pointing here not yet freed */
};

struct cache_block {
	struct cache_block *hnext;       /* lock; hash chain while hashed */
	struct cache_block *prev, *next; /* lock; LRU links while in_lru */
	char *key;                       /* immutable */
	char etag[BACKEND_ETAG_MAX];     /* immutable */
	uint64_t idx;                    /* immutable; block index */
	uint64_t hash;                   /* immutable */
	uint64_t gen;                    /* immutable; key generation at creation */
	struct cache_slab *slab;         /* immutable; owns the bytes */
	unsigned char *data;             /* lock; into slab; immutable once READY */
	size_t len;                      /* lock; immutable once READY */
	struct backend_stat st;          /* the fetcher's while FETCHING, then immutable */
	int eof;                         /* lock; immutable once READY: the object
	                                  * ends in or right after this block */
	int prefetched;                  /* immutable; fetched by a prefetch job */
	int touched;                     /* lock; a reader has used it */
	int state;                       /* lock; CACHE_* */
	int err;                         /* lock; 0 or -errno once READY */
	int refs;                        /* lock */
	int hashed, in_lru;              /* lock */
};

struct cache {
	struct backend base;
	struct backend_ops ops;          /* immutable; our table, trimmed to inner's */
	struct backend *inner;           /* owned */
	struct tier *disk;               /* owned, or NULL */
	size_t block_size;               /* immutable */
	unsigned block_shift;            /* immutable; log2(block_size) */
	uint64_t budget;                 /* immutable */
	pthread_mutex_t lock;            /* the only lock */
	pthread_cond_t fetched;          /* broadcast when a fetch ends */
	struct cache_block **buckets;    /* lock */
	size_t n_buckets;                /* immutable; power of two */
	struct cache_block lru;          /* lock; list head: next = newest */
	uint64_t bytes_held;             /* lock; see the top */
	uint64_t gen[CACHE_GEN_STRIPES]; /* lock */
	struct {
		uint64_t hash, size; /* size 0: empty */
	} sizes[CACHE_SIZE_SLOTS];   /* lock; see "Sizes" */
	struct cache_stats stats;    /* lock */

	/* Prefetch workers and their queue. */
	unsigned fetch_threads;       /* immutable; workers to start */
	size_t part_size;             /* immutable; multiple of block_size */
	size_t max_jobs;              /* immutable */
	pthread_cond_t work;          /* signalled: job queued or stopping */
	pthread_t *workers;           /* lock; fetch_threads slots */
	unsigned n_workers;           /* lock; started so far */
	int stopping;                 /* lock; destroy has begun */
	struct cache_job *jobs;       /* lock; FIFO head */
	struct cache_job **jobs_tail; /* lock */
	size_t n_jobs;                /* lock */

	/* Spare slab buffers (see "Buffer pool" above). */
	void *pool_parts;    /* lock; free list of part_size buffers */
	void *pool_blocks;   /* lock; free list of block_size buffers */
	uint64_t pool_bytes; /* lock; bytes_held + pool_bytes <= budget, but
	                      * for a reservation about to take a pooled buffer */
};

/* One part of a prefetch: [off, off + len) of (key, etag). */
struct cache_job {
	struct cache_job *next;
	char *key;
	char etag[BACKEND_ETAG_MAX]; /* "": stat and use the current version */
	uint64_t off, len;           /* within one part */
};

static const struct backend_ops cache_ops;
static void cache_run_job(struct cache *c, const struct cache_job *j);
static void cache_job_free(struct cache_job *j);
static int cache_enqueue(struct cache *c, const char *key, const char *etag, uint64_t off,
                         uint64_t len, int front);

static struct cache *cache_of(struct backend *b)
{
	return (struct cache *)b;
}

static struct backend *cache_inner(struct backend *b)
{
	return cache_of(b)->inner;
}

/* FNV-1a over s, continuing from h. */
static uint64_t cache_fnv(uint64_t h, const void *s, size_t len)
{
	const unsigned char *p = s;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t cache_key_hash(const char *key)
{
	return cache_fnv(0xcbf29ce484222325ull, key, strlen(key) + 1);
}

static uint64_t cache_block_hash(const char *key, const char *etag, uint64_t idx)
{
	uint64_t h = cache_key_hash(key);

	h = cache_fnv(h, etag, strlen(etag) + 1);
	return cache_fnv(h, &idx, sizeof(idx));
}

/* The size slot of (key, etag) and the hash it is kept under. */
static unsigned cache_size_slot(const char *key, const char *etag, uint64_t *hash)
{
	*hash = cache_block_hash(key, etag, UINT64_MAX);
	return (unsigned)(*hash & (CACHE_SIZE_SLOTS - 1));
}

/* The store reported st for key (its stat, a listing, a fetch): keep its
 * size for its etag.  Caller holds c->lock. */
static void cache_size_seen(struct cache *c, const char *key, const struct backend_stat *st)
{
	uint64_t h;
	unsigned i;

	if (st->etag[0] == '\0' || st->size == 0)
		return;
	i = cache_size_slot(key, st->etag, &h);
	c->sizes[i].hash = h;
	c->sizes[i].size = st->size;
}

/* The size last reported for (key, etag), or 0 when unknown.  Caller
 * holds c->lock. */
static uint64_t cache_size_known(const struct cache *c, const char *key, const char *etag)
{
	uint64_t h;
	unsigned i = cache_size_slot(key, etag, &h);

	return c->sizes[i].hash == h ? c->sizes[i].size : 0;
}

/* Block b was fetched for another size of its object than the store last
 * reported.  Caller holds c->lock. */
static int cache_size_stale(const struct cache *c, const struct cache_block *b)
{
	uint64_t known = cache_size_known(c, b->key, b->etag);

	return known != 0 && b->st.etag[0] != '\0' && b->st.size != known;
}

static unsigned cache_stripe(const char *key)
{
	return (unsigned)(cache_key_hash(key) % CACHE_GEN_STRIPES);
}

#ifndef NDEBUG
/* Assert the invariants listed at the top.  Caller holds c->lock. */
static void cache_check(const struct cache *c)
{
	uint64_t sum = 0;
	size_t n_ready = 0, n_lru = 0;
	const struct cache_block *b;

	for (size_t i = 0; i < c->n_buckets; i++) {
		for (b = c->buckets[i]; b != NULL; b = b->hnext) {
			assert(b->hashed);
			assert((b->hash & (c->n_buckets - 1)) == i);
			if (b->state == CACHE_READY) {
				assert(b->err == 0 && b->len > 0 && b->in_lru);
				n_ready++;
			} else {
				assert(b->state == CACHE_FETCHING);
				assert(b->refs > 0 && !b->in_lru);
			}
		}
	}
	for (b = c->lru.next; b != &c->lru; b = b->next) {
		assert(b->in_lru && b->hashed && b->state == CACHE_READY);
		assert(b->next->prev == b && b->prev->next == b);
		sum += b->len;
		n_lru++;
	}
	assert(n_lru == n_ready);
	assert(sum == c->stats.bytes_cached);
	assert(c->stats.bytes_cached <= c->bytes_held);
	assert(c->bytes_held <= c->budget);
	assert(c->pool_bytes <= c->budget);
	n_ready = 0;
	for (const struct cache_job *j = c->jobs; j != NULL; j = j->next)
		n_ready++;
	assert(n_ready == c->n_jobs && c->n_jobs <= c->max_jobs);
}
#else
#define cache_check(c) ((void)(c))
#endif

/* --- block table (all helpers: caller holds c->lock) -------------------- */

static struct cache_block *cache_lookup(const struct cache *c, const char *key, const char *etag,
                                        uint64_t idx, uint64_t hash)
{
	struct cache_block *b = c->buckets[hash & (c->n_buckets - 1)];

	for (; b != NULL; b = b->hnext)
		if (b->hash == hash && b->idx == idx && strcmp(b->key, key) == 0 &&
		    strcmp(b->etag, etag) == 0)
			return b;
	return NULL;
}

static void cache_hash_insert(struct cache *c, struct cache_block *b)
{
	struct cache_block **head = &c->buckets[b->hash & (c->n_buckets - 1)];

	b->hnext = *head;
	*head = b;
	b->hashed = 1;
}

static void cache_hash_remove(struct cache *c, struct cache_block *b)
{
	struct cache_block **p = &c->buckets[b->hash & (c->n_buckets - 1)];

	while (*p != b)
		p = &(*p)->hnext;
	*p = b->hnext;
	b->hnext = NULL;
	b->hashed = 0;
}

static void cache_lru_push(struct cache *c, struct cache_block *b)
{
	b->prev = &c->lru;
	b->next = c->lru.next;
	c->lru.next->prev = b;
	c->lru.next = b;
	b->in_lru = 1;
	c->stats.bytes_cached += b->len;
}

static void cache_lru_unlink(struct cache *c, struct cache_block *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	b->prev = b->next = NULL;
	b->in_lru = 0;
	c->stats.bytes_cached -= b->len;
}

/*
 * Slab buffers.  One of CACHE_MAP_MIN bytes or more is its own mapping,
 * so that freeing it gives the memory back (malloc's per-thread arenas
 * kept freed 1 MiB blocks: the daemon's peak RSS reached 369 MiB with a
 * 256 MiB budget); from CACHE_HUGE_MIN on it is asked to be backed by
 * transparent huge pages: a fresh 8 MiB buffer then costs 4 page faults
 * instead of 2,048 (faults on fresh slab memory were a third of the
 * daemon's CPU on a cold read, and the cache fills with fresh buffers
 * until its budget is reached).  Smaller ones come from malloc.
 */
static void *cache_buf_alloc(size_t size)
{
	void *p;

	if (size < CACHE_MAP_MIN)
		return malloc(size);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (size >= CACHE_HUGE_MIN)
		(void)madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static void cache_buf_free(void *p, size_t size)
{
	if (p == NULL)
		return;
	if (size < CACHE_MAP_MIN)
		free(p);
	else
		munmap(p, size);
}

/*
 * Give back the tail of a buffer of size bytes that holds only used
 * bytes; returns the bytes it still spans.
 */
static size_t cache_buf_shrink(void **p, size_t size, size_t used)
{
	size_t keep = (used + 4095) & ~(size_t)4095;

	if (size < CACHE_MAP_MIN) {
		void *q = realloc(*p, used);

		if (q == NULL)
			return size;
		*p = q;
		return used;
	}
	if (keep < CACHE_MAP_MIN || keep >= size)
		return size; /* a mapping stays one */
	munmap((char *)*p + keep, size - keep);
	return keep;
}

/* The free list buffers of size bytes are kept in, or NULL. */
static void **cache_pool_list(struct cache *c, size_t size)
{
	if (size == c->part_size)
		return &c->pool_parts;
	if (size == c->block_size)
		return &c->pool_blocks;
	return NULL;
}

/* Unlink a spare buffer of exactly size bytes from the pool, or NULL. */
static void *cache_pool_pop(struct cache *c, size_t size)
{
	void **list = cache_pool_list(c, size), *p;

	if (list == NULL || *list == NULL)
		return NULL;
	p = *list;
	memcpy(list, p, sizeof(void *));
	c->pool_bytes -= size;
	return p;
}

/* A spare buffer of exactly size bytes for a fetch, or NULL. */
static void *cache_pool_take(struct cache *c, size_t size)
{
	void *p = cache_pool_pop(c, size);

	if (p != NULL)
		c->stats.buffers_reused++;
	return p;
}

/* Keep a freed slab buffer for reuse if it has a usual size and fits. */
static void cache_pool_put(struct cache *c, void *p, size_t size)
{
	void **list = cache_pool_list(c, size);

	if (p != NULL && list != NULL && c->bytes_held + c->pool_bytes + size <= c->budget) {
		memcpy(p, list, sizeof(void *));
		*list = p;
		c->pool_bytes += size;
		return;
	}
	cache_buf_free(p, size);
}

/*
 * After a reservation of size bytes (already added to bytes_held): free
 * pooled buffers until blocks and pool fit the budget again, sparing one
 * buffer of exactly size (the fetch takes it).
 */
static void cache_pool_trim(struct cache *c, size_t size)
{
	void **same = cache_pool_list(c, size);
	int keep = same != NULL && *same != NULL;

	while (c->bytes_held + c->pool_bytes > c->budget + (keep ? size : 0)) {
		void **victim = NULL;
		size_t vsize = 0;

		if (c->pool_blocks != NULL && &c->pool_blocks != same)
			victim = &c->pool_blocks, vsize = c->block_size;
		else if (c->pool_parts != NULL && &c->pool_parts != same)
			victim = &c->pool_parts, vsize = c->part_size;
		else if (same != NULL && *same != NULL)
			victim = same, vsize = size;
		else
			break;
		cache_buf_free(cache_pool_pop(c, vsize), vsize);
		if (victim == same && *same == NULL)
			keep = 0;
	}
}

static void cache_block_free(struct cache *c, struct cache_block *b)
{
	struct cache_slab *s = b->slab;

	if (s != NULL && --s->blocks == 0) {
		c->bytes_held -= s->size;
		cache_pool_put(c, s->data, s->size);
		free(s);
	}
	free(b->key);
	free(b);
}

/* Drop one reference; free b if it was the last and b is out of the hash. */
static void cache_unref(struct cache *c, struct cache_block *b)
{
	assert(b->refs > 0);
	if (--b->refs == 0 && !b->hashed)
		cache_block_free(c, b);
}

/* Take b out of the cache (hash and LRU); free it unless referenced. */
static void cache_drop(struct cache *c, struct cache_block *b)
{
	if (b->in_lru)
		cache_lru_unlink(c, b);
	if (b->hashed)
		cache_hash_remove(c, b);
	if (b->refs == 0)
		cache_block_free(c, b);
}

/*
 * Evict unreferenced blocks, oldest first, until need more bytes fit in
 * the budget; for a prefetch (for_prefetch set), only blocks that are not
 * prefetched-and-unread.  Returns 1 if they fit, 0 if not even evicting
 * every such block makes room.
 */
static int cache_make_room(struct cache *c, size_t need, int for_prefetch)
{
	struct cache_block *b = c->lru.prev;

	while (c->bytes_held + need > c->budget) {
		struct cache_block *older;

		while (b != &c->lru &&
		       (b->refs > 0 || (for_prefetch && b->prefetched && !b->touched)))
			b = b->prev;
		if (b == &c->lru)
			return 0;
		older = b->prev;
		cache_drop(c, b);
		c->stats.evictions++;
		b = older;
	}
	return 1;
}

/*
 * Drop every block of key (every version), or with prefix set of every key
 * starting with key, and move the generations so fetches in flight for
 * them do not enter the cache.
 */
static void cache_invalidate(struct cache *c, const char *key, int prefix)
{
	size_t klen = strlen(key);

	pthread_mutex_lock(&c->lock);
	if (prefix) {
		for (size_t i = 0; i < CACHE_GEN_STRIPES; i++)
			c->gen[i]++;
	} else {
		c->gen[cache_stripe(key)]++;
	}
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct cache_block *b = c->buckets[i], *next;

		for (; b != NULL; b = next) {
			next = b->hnext;
			if (prefix ? strncmp(b->key, key, klen) == 0 : strcmp(b->key, key) == 0)
				cache_drop(c, b);
		}
	}
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
	if (c->disk != NULL)
		c->disk->ops->drop(c->disk, key, prefix);
}

/* --- fetching ----------------------------------------------------------- */

/*
 * Fill data with the n blocks from first of (key, etag) from the disk
 * tier, for an object of size bytes (0: any).  Returns the bytes (short when the object ends in a
 * block the tier holds), or -ENOENT when the tier lacks one of them.  No lock held.
 */
static ssize_t cache_disk_get(struct cache *c, const char *key, const char *etag, uint64_t size,
                              uint64_t first, size_t n, unsigned char *data,
                              struct backend_stat *st)
{
	size_t got = 0;

	if (c->disk == NULL)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		struct tier_block tb = {.key = key, .etag = etag, .index = first + i, .size = size};
		ssize_t len = c->disk->ops->get(c->disk, &tb, data + got, st);

		if (len < 0)
			return -ENOENT;
		got += (size_t)len;
		if ((size_t)len < c->block_size)
			break;
	}
	return (ssize_t)got;
}

/* Keep got bytes of blocks from first, just read from the store, in the
 * disk tier.  No lock held. */
static void cache_disk_put(struct cache *c, const char *key, const char *etag, uint64_t first,
                           const unsigned char *data, size_t got, const struct backend_stat *st)
{
	if (c->disk == NULL || etag[0] == '\0')
		return;
	for (size_t off = 0; off < got; off += c->block_size) {
		struct tier_block tb = {.key = key,
		                        .etag = etag,
		                        .index = first + off / c->block_size,
		                        .size = st->size};
		size_t len = got - off < c->block_size ? got - off : c->block_size;

		c->disk->ops->put(c->disk, &tb, data + off, len, st);
	}
}

/*
 * A new FETCHING block idx of (key, etag), hashed and referenced once (by
 * the caller), not yet on a slab.  NULL when out of memory.  Caller holds
 * c->lock.
 */
static struct cache_block *cache_block_new(struct cache *c, const char *key, const char *etag,
                                           uint64_t idx, uint64_t hash, int prefetched)
{
	struct cache_block *b = calloc(1, sizeof(*b));

	if (b == NULL || (b->key = strdup(key)) == NULL) {
		free(b);
		return NULL;
	}
	snprintf(b->etag, sizeof(b->etag), "%s", etag);
	b->idx = idx;
	b->hash = hash;
	b->gen = c->gen[cache_stripe(key)];
	b->state = CACHE_FETCHING;
	b->refs = 1;
	b->prefetched = prefetched;
	cache_hash_insert(c, b);
	return b;
}

/*
 * Fill the n adjacent FETCHING blocks blk[] (indexes blk[0]->idx, +1, ...)
 * of (key, etag) with one inner read into slab, whose n * block_size bytes
 * are already reserved in bytes_held.  Called and returns with c->lock
 * held; drops it around the malloc and the inner read.  On return every
 * block is READY: cached if it got bytes and was not invalidated
 * meanwhile, else out of the hash with err set (0 for no bytes).  The
 * caller still holds its reference on each.
 */
static void cache_fetch(struct cache *c, const char *key, const char *etag,
                        struct cache_block **blk, size_t n, struct cache_slab *slab)
{
	const size_t bs = c->block_size, want = n * bs;
	const uint64_t first = blk[0]->idx, known = cache_size_known(c, key, etag);
	struct backend_stat st;
	unsigned char *data;
	size_t alloc = want;
	int from_disk = 0;
	ssize_t got;

	data = cache_pool_take(c, want);
	pthread_mutex_unlock(&c->lock);
	memset(&st, 0, sizeof(st));
	if (data == NULL)
		data = cache_buf_alloc(want);
	got = data == NULL ? -ENOMEM : cache_disk_get(c, key, etag, known, first, n, data, &st);
	if (got >= 0) {
		from_disk = 1;
	} else if (data != NULL) {
		memset(&st, 0, sizeof(st));
		got = c->inner->ops->read(c->inner, key, first << c->block_shift, data, want, etag,
		                          &st);
		if (got > 0)
			cache_disk_put(c, key, etag, first, data, (size_t)got, &st);
	}
	if (got > 0 && (size_t)got < want) {
		void *p = data;

		alloc = cache_buf_shrink(&p, want, (size_t)got);
		data = p;
	}

	pthread_mutex_lock(&c->lock);
	if (!from_disk && got > 0)
		cache_size_seen(c, key, &st);
	if (from_disk) {
		c->stats.disk_fills++;
	} else if (data != NULL) {
		c->stats.fetches++;
		c->stats.fetch_bytes += got > 0 ? (uint64_t)got : 0;
	}
	if (got <= 0) {
		cache_buf_free(data, alloc);
		data = NULL;
		alloc = 0;
	}
	slab->data = data;
	c->bytes_held -= slab->size - alloc;
	slab->size = alloc;
	for (size_t i = 0; i < n; i++) {
		struct cache_block *b = blk[i];
		size_t boff = i * bs;

		b->st = st;
		if (got > 0 && (size_t)got > boff) {
			b->data = data + boff;
			b->len = (size_t)got - boff < bs ? (size_t)got - boff : bs;
			/* A full last block: the stat tells, so no empty fetch follows. */
			b->eof =
			    b->len < bs || (st.etag[0] != '\0' &&
			                    ((first + i) << c->block_shift) + b->len >= st.size);
			if (b->hashed && b->gen == c->gen[cache_stripe(key)]) {
				cache_lru_push(c, b);
				if (b->prefetched)
					c->stats.prefetch_blocks++;
			} else if (b->hashed) {
				cache_hash_remove(c, b); /* a neighbour's invalidation: play safe */
			}
		} else {
			b->err = got < 0 ? (int)got : 0; /* 0: nothing there, not cached either */
			if (b->hashed)
				cache_hash_remove(c, b);
		}
		b->state = CACHE_READY;
	}
	pthread_cond_broadcast(&c->fetched);
}

/*
 * Take out of the queue the job of (key, etag) whose part holds block idx,
 * or return NULL.  Caller holds c->lock.
 */
static struct cache_job *cache_job_take(struct cache *c, const char *key, const char *etag,
                                        uint64_t idx)
{
	uint64_t pos = idx << c->block_shift;

	for (struct cache_job **p = &c->jobs; *p != NULL; p = &(*p)->next) {
		struct cache_job *j = *p;

		if (pos < j->off || pos - j->off >= j->len || strcmp(j->etag, etag) != 0 ||
		    strcmp(j->key, key) != 0)
			continue;
		*p = j->next;
		if (c->jobs_tail == &j->next)
			c->jobs_tail = p;
		c->n_jobs--;
		j->next = NULL;
		return j;
	}
	return NULL;
}

/* --- reading ------------------------------------------------------------ */

/*
 * Read want bytes at in_off of block idx of (key, etag) into dst, through
 * the cache.  Returns the bytes copied or -errno.  *eof is set when the
 * object ends within this block (the block is short).  st, if not NULL,
 * receives the stat the inner read reported for the block.
 *
 * With pin not NULL nothing is copied: the block stays referenced, *pin
 * is set to it and *data to its bytes at in_off (drop the reference with
 * cache_unpin()); -ENOBUFS when there is no memory for the block.
 */
static ssize_t cache_read_block(struct cache *c, const char *key, const char *etag, uint64_t idx,
                                size_t in_off, void *dst, size_t want, struct backend_stat *st,
                                int *eof, struct cache_block **pin, const void **data)
{
	const size_t bs = c->block_size;
	uint64_t hash = cache_block_hash(key, etag, idx);
	struct cache_block *b;
	struct cache_slab *slab;
	struct cache_job *j;
	ssize_t n, ret;
	int size_checked = 0;

	*eof = 0;
	pthread_mutex_lock(&c->lock);
again:
	b = cache_lookup(c, key, etag, idx, hash);
	if (b != NULL) {
		b->refs++;
		if (b->state == CACHE_READY) {
			c->stats.hits++;
			cache_lru_unlink(c, b); /* to the front */
			cache_lru_push(c, b);
		} else {
			c->stats.waits++;
			while (b->state == CACHE_FETCHING)
				pthread_cond_wait(&c->fetched, &c->lock);
			if (b->prefetched && (b->err < 0 || b->len == 0)) {
				/* A prefetch's failure is not ours: fetch it ourselves. */
				cache_unref(c, b);
				goto again;
			}
		}
		if (b->prefetched && !b->touched && b->len > 0)
			c->stats.prefetch_hits++;
		b->touched = 1;
		goto copy;
	}
	j = cache_job_take(c, key, etag, idx);
	if (j != NULL) {
		/* Its part is queued behind others: fetch the whole part now,
		 * in this thread, rather than wait for a worker or send a
		 * block-sized request of our own. */
		c->stats.jobs_jumped++;
		cache_run_job(c, j);
		cache_job_free(j);
		goto again;
	}
	c->stats.misses++;
	if (!cache_make_room(c, bs, 0)) {
		if (pin != NULL) {
			pthread_mutex_unlock(&c->lock);
			return -ENOBUFS;
		}
		goto read_through;
	}
	slab = calloc(1, sizeof(*slab));
	b = slab == NULL ? NULL : cache_block_new(c, key, etag, idx, hash, 0);
	if (b == NULL) {
		free(slab);
		cache_check(c);
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	b->touched = 1;
	b->slab = slab;
	slab->blocks = 1;
	slab->size = bs; /* reserved before the malloc */
	c->bytes_held += bs;
	cache_pool_trim(c, bs);
	cache_check(c);
	cache_fetch(c, key, etag, &b, 1, slab);

copy:
	/* b is READY and referenced; c->lock held. */
	if (b->err == 0 && !size_checked && cache_size_stale(c, b)) {
		/* Bytes of another object with this key and ETag: fetch again. */
		size_checked = 1;
		cache_drop(c, b);
		cache_unref(c, b);
		goto again;
	}
	if (b->err < 0) {
		ret = b->err;
		cache_unref(c, b);
		cache_check(c);
		pthread_mutex_unlock(&c->lock);
		return ret;
	}
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
	if (st != NULL)
		*st = b->st;
	*eof = b->len < bs || b->eof;
	ret = 0;
	if (in_off < b->len)
		ret = (ssize_t)(b->len - in_off < want ? b->len - in_off : want);
	if (pin != NULL) {
		*pin = b; /* the reference goes to the caller */
		*data = b->data + in_off;
		return ret;
	}
	if (ret > 0)
		memcpy(dst, b->data + in_off, (size_t)ret);
	pthread_mutex_lock(&c->lock);
	cache_unref(c, b);
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
	return ret;

read_through:
	/* No memory for a block: the caller's buffer takes the bytes. */
	pthread_mutex_unlock(&c->lock);
	n = c->inner->ops->read(c->inner, key, (idx << c->block_shift) + in_off, dst, want, etag,
	                        st);
	pthread_mutex_lock(&c->lock);
	c->stats.fetches++;
	c->stats.fetch_bytes += n > 0 ? (uint64_t)n : 0;
	pthread_mutex_unlock(&c->lock);
	*eof = n >= 0 && (size_t)n < want;
	return n;
}

/* Read len bytes at off of version etag, block by block.  st as read(). */
static ssize_t cache_read_pinned(struct cache *c, const char *key, uint64_t off, void *dst,
                                 size_t len, const char *etag, struct backend_stat *st)
{
	size_t done = 0;

	while (done < len) {
		uint64_t pos = off + done;
		size_t in_off = (size_t)(pos & (c->block_size - 1));
		size_t want = c->block_size - in_off;
		ssize_t n;
		int eof;

		if (want > len - done)
			want = len - done;
		n = cache_read_block(c, key, etag, pos >> c->block_shift, in_off,
		                     (char *)dst + done, want, done == 0 ? st : NULL, &eof, NULL,
		                     NULL);
		if (n < 0)
			return n;
		done += (size_t)n;
		if (eof || (size_t)n < want)
			break;
	}
	return (ssize_t)done;
}

static ssize_t cache_pinned_cb(void *ctx, const char *key, uint64_t off, void *dst, size_t len,
                               const char *etag, struct backend_stat *st)
{
	return cache_read_pinned(ctx, key, off, dst, len, etag, st);
}

static ssize_t cache_read(struct backend *bk, const char *key, uint64_t off, void *dst, size_t len,
                          const char *etag, struct backend_stat *st)
{
	struct cache *c = cache_of(bk);
	struct backend *in = c->inner;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0)
		return in->ops->read(in, key, off, dst, len, etag, st);
	if (etag != NULL && etag[0] != '\0')
		return cache_read_pinned(c, key, off, dst, len, etag, st);
	return backend_read_current(in, key, off, dst, len, st, CACHE_STALE_RETRIES,
	                            cache_pinned_cb, c);
}

static void cache_release_ref(struct backend *bk, struct backend_ref *ref)
{
	struct cache *c = cache_of(bk);

	for (unsigned i = 0; i < ref->n; i++)
		if (ref->seg[i].fd >= 0)
			close(ref->seg[i].fd);
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < ref->n; i++)
		if (ref->seg[i].fd < 0)
			cache_unref(c, ref->seg[i].pin);
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
	ref->n = 0;
}

/*
 * Lend [in_off, in_off + want) of block idx of (key, etag) as a piece of
 * the disk tier's file when memory neither holds nor fetches the block and
 * the tier holds it.  1 when lent (*seg, *eof and st set), 0 when not:
 * read it through memory.
 */
static int cache_ref_disk(struct cache *c, const char *key, const char *etag, uint64_t idx,
                          size_t in_off, size_t want, struct backend_ref_seg *seg,
                          struct backend_stat *st, int *eof)
{
	struct tier_block tb = {.key = key, .etag = etag, .index = idx};
	struct backend_stat bst;
	uint64_t data_off;
	size_t blen;
	int fd, in_mem;

	if (c->disk == NULL || c->disk->ops->open == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	in_mem = cache_lookup(c, key, etag, idx, cache_block_hash(key, etag, idx)) != NULL;
	tb.size = cache_size_known(c, key, etag);
	pthread_mutex_unlock(&c->lock);
	if (in_mem || c->disk->ops->open(c->disk, &tb, &fd, &data_off, &blen, &bst) < 0)
		return 0;
	if (st != NULL)
		*st = bst;
	seg->data = NULL;
	seg->fd = fd;
	seg->pos = data_off + in_off;
	seg->len = in_off < blen ? (blen - in_off < want ? blen - in_off : want) : 0;
	seg->pin = NULL;
	*eof = blen < c->block_size || (idx << c->block_shift) + blen >= bst.size;
	pthread_mutex_lock(&c->lock);
	c->stats.spliced++;
	pthread_mutex_unlock(&c->lock);
	return 1;
}

/* read_ref: the blocks themselves, each held by a reference until release. */
static ssize_t cache_read_ref(struct backend *bk, const char *key, uint64_t off, size_t len,
                              const char *etag, struct backend_ref *ref, struct backend_stat *st)
{
	struct cache *c = cache_of(bk);
	size_t done = 0;

	ref->n = 0;
	ref->owner = bk;
	if (etag == NULL || etag[0] == '\0')
		return -ENOBUFS;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (done < len) {
		uint64_t pos = off + done;
		size_t in_off = (size_t)(pos & (c->block_size - 1));
		size_t want = c->block_size - in_off;
		struct cache_block *b;
		const void *data;
		ssize_t n;
		int eof;

		if (ref->n == BACKEND_REF_SEGS) {
			cache_release_ref(bk, ref);
			return -ENOBUFS;
		}
		if (want > len - done)
			want = len - done;
		if (cache_ref_disk(c, key, etag, pos >> c->block_shift, in_off, want,
		                   &ref->seg[ref->n], done == 0 ? st : NULL, &eof)) {
			n = (ssize_t)ref->seg[ref->n].len;
			ref->n++;
			done += (size_t)n;
			if (eof || (size_t)n < want)
				break;
			continue;
		}
		n = cache_read_block(c, key, etag, pos >> c->block_shift, in_off, NULL, want,
		                     done == 0 ? st : NULL, &eof, &b, &data);
		if (n < 0) {
			cache_release_ref(bk, ref);
			return n;
		}
		ref->seg[ref->n].data = data;
		ref->seg[ref->n].fd = -1;
		ref->seg[ref->n].pos = 0;
		ref->seg[ref->n].len = (size_t)n;
		ref->seg[ref->n].pin = b;
		ref->n++;
		done += (size_t)n;
		if (eof || (size_t)n < want)
			break;
	}
	return (ssize_t)done;
}

/* --- prefetch ----------------------------------------------------------- */

static void cache_job_free(struct cache_job *j)
{
	free(j->key);
	free(j);
}

/* 1 if block idx of (key, etag) is in memory, being fetched, or in the
 * disk tier (prefetching it would only copy it).  Caller holds c->lock. */
static int cache_held(const struct cache *c, const char *key, const char *etag, uint64_t idx)
{
	struct tier_block tb = {.key = key, .etag = etag, .index = idx};

	if (cache_lookup(c, key, etag, idx, cache_block_hash(key, etag, idx)) != NULL)
		return 1;
	return c->disk != NULL && c->disk->ops->has(c->disk, &tb);
}

/* Ask the disk tier to read ahead the blocks of [off, off + len) of (key,
 * etag) that memory does not hold.  Called with c->lock held; drops it. */
static void cache_disk_willneed(struct cache *c, const char *key, const char *etag, uint64_t off,
                                uint64_t len)
{
	uint64_t first = off >> c->block_shift, end = ((off + len - 1) >> c->block_shift) + 1;

	pthread_mutex_unlock(&c->lock);
	for (uint64_t i = first; i < end; i++) {
		struct tier_block tb = {.key = key, .etag = etag, .index = i};

		c->disk->ops->willneed(c->disk, &tb);
	}
	pthread_mutex_lock(&c->lock);
}

/*
 * Fetch the missing blocks of job j into the cache, one inner read per run
 * of adjacent missing blocks, within the budget (see the top).  Called and
 * returns with c->lock held; the job's blocks are claimed (FETCHING) before
 * the lock is first dropped, except for a job without an etag, which
 * stats the inner backend first.
 */
static void cache_run_job(struct cache *c, const struct cache_job *j)
{
	const size_t bs = c->block_size;
	char etag[BACKEND_ETAG_MAX];
	struct cache_block **blk;
	struct cache_slab **slabs;
	size_t *runs, n_runs = 0, made = 0;
	uint64_t off = j->off, len = j->len, idx, end;

	snprintf(etag, sizeof(etag), "%s", j->etag);
	if (etag[0] == '\0') {
		struct backend_stat st;
		int ret;

		pthread_mutex_unlock(&c->lock);
		ret = c->inner->ops->stat(c->inner, j->key, &st);
		pthread_mutex_lock(&c->lock);
		if (ret < 0 || st.etag[0] == '\0' || off >= st.size || c->stopping)
			return;
		snprintf(etag, sizeof(etag), "%s", st.etag);
		if (len > st.size - off)
			len = st.size - off;
		/* The version is known: its parts go first in the queue. */
		cache_enqueue(c, j->key, etag, off, len, 1);
		return;
	}
	if (len == 0)
		return;
	idx = off >> c->block_shift;
	end = ((off + len - 1) >> c->block_shift) + 1;
	blk = malloc((size_t)(end - idx) * sizeof(*blk));
	runs = malloc((size_t)(end - idx) * sizeof(*runs));
	slabs = malloc((size_t)(end - idx) * sizeof(*slabs));
	if (blk == NULL || runs == NULL || slabs == NULL)
		goto out;

	/* Claim every run of missing blocks first, in this one hold of the
	 * lock: a reader that wants one of them from now on waits for it
	 * instead of fetching it on its own. */
	while (idx < end && !c->stopping) {
		struct cache_slab *slab;
		size_t n = 0, k;

		while (idx < end && cache_held(c, j->key, etag, idx))
			idx++; /* present, in flight or on disk */
		while (idx + n < end && !cache_held(c, j->key, etag, idx + n))
			n++;
		if (n == 0)
			break;
		if (!cache_make_room(c, n * bs, 1)) {
			uint64_t room = c->budget - c->bytes_held;

			if (room / bs < n)
				n = (size_t)(room / bs);
			if (n == 0) {
				c->stats.prefetch_dropped++; /* backpressure: stop here */
				break;
			}
		}
		slab = calloc(1, sizeof(*slab));
		if (slab == NULL)
			break;
		for (k = 0; k < n; k++) {
			blk[made + k] = cache_block_new(c, j->key, etag, idx + k,
			                                cache_block_hash(j->key, etag, idx + k), 1);
			if (blk[made + k] == NULL)
				break;
			blk[made + k]->slab = slab;
		}
		if (k == 0) {
			free(slab);
			break;
		}
		slab->blocks = (int)k;
		slab->size = k * bs;
		c->bytes_held += slab->size;
		cache_pool_trim(c, slab->size);
		slabs[n_runs] = slab;
		runs[n_runs++] = k;
		made += k;
		idx += k;
	}
	cache_check(c);
	/* Blocks the disk tier holds are read ahead there, so the reads that
	 * splice them find them in the page cache. */
	if (c->disk != NULL && c->disk->ops->willneed != NULL && !c->stopping)
		cache_disk_willneed(c, j->key, etag, off, len);
	/* Then fetch them, one inner read a run. */
	made = 0;
	for (size_t r = 0; r < n_runs; r++) {
		cache_fetch(c, j->key, etag, blk + made, runs[r], slabs[r]);
		for (size_t i = 0; i < runs[r]; i++)
			cache_unref(c, blk[made + i]);
		made += runs[r];
		cache_check(c);
	}
out:
	free(blk);
	free(runs);
	free(slabs);
}

static void *cache_worker(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct cache_job *j;

		while (!c->stopping && c->jobs == NULL)
			pthread_cond_wait(&c->work, &c->lock);
		if (c->stopping)
			break;
		j = c->jobs;
		c->jobs = j->next;
		if (c->jobs == NULL)
			c->jobs_tail = &c->jobs;
		c->n_jobs--;
		c->stats.prefetch_jobs++; /* queued or running: still counted */
		cache_run_job(c, j);
		cache_job_free(j);
		c->stats.prefetch_jobs--;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Start the workers if none run yet.  0 or -errno.  Caller holds c->lock. */
static int cache_start_workers(struct cache *c)
{
	while (c->n_workers < c->fetch_threads) {
		int err = pthread_create(&c->workers[c->n_workers], NULL, cache_worker, c);

		if (err != 0)
			return c->n_workers > 0 ? 0 : -err;
		c->n_workers++;
	}
	return 0;
}

/* 1 if every block of [off, end) of (key, etag) is cached or in flight.
 * Caller holds c->lock. */
static int cache_range_present(const struct cache *c, const char *key, const char *etag,
                               uint64_t off, uint64_t end)
{
	for (uint64_t i = off >> c->block_shift; i <= (end - 1) >> c->block_shift; i++)
		if (cache_lookup(c, key, etag, i, cache_block_hash(key, etag, i)) == NULL)
			return 0;
	return 1;
}

/* 1 if a job for (key, etag) starting at off is queued.  Caller holds c->lock. */
static int cache_job_queued(const struct cache *c, const char *key, const char *etag, uint64_t off)
{
	for (const struct cache_job *j = c->jobs; j != NULL; j = j->next)
		if (j->off == off && strcmp(j->key, key) == 0 && strcmp(j->etag, etag) == 0)
			return 1;
	return 0;
}

/*
 * Queue [off, off + len) of (key, etag) as jobs of at most a part each, at
 * the tail of the queue (at its head, in order, with front set).  A range
 * without an etag is one job: its worker stats the object once and queues
 * the parts of the version found.  0, or -EAGAIN (queue full), -ENOMEM.
 * Caller holds c->lock.
 */
static int cache_enqueue(struct cache *c, const char *key, const char *etag, uint64_t off,
                         uint64_t len, int front)
{
	const uint64_t part = c->part_size;
	struct cache_job **at = front ? &c->jobs : NULL;
	uint64_t end = off + len < off ? UINT64_MAX : off + len, pos, pend;

	for (pos = off; pos < end; pos = pend) {
		struct cache_job *j;

		pend = etag[0] == '\0' ? end : (pos / part + 1) * part;
		/* A short tail rides with the part before it: a 24 MiB file
		 * and its few KiB of zip directory are three requests, not
		 * four. */
		if (pend > end || pend < pos || end - pend < part / 4)
			pend = end;
		if (etag[0] != '\0' && cache_range_present(c, key, etag, pos, pend))
			continue;
		if (cache_job_queued(c, key, etag, pos))
			continue;
		if (c->n_jobs >= c->max_jobs)
			return -EAGAIN;
		j = calloc(1, sizeof(*j));
		if (j == NULL || (j->key = strdup(key)) == NULL) {
			free(j);
			return -ENOMEM;
		}
		snprintf(j->etag, sizeof(j->etag), "%s", etag);
		j->off = pos;
		j->len = pend - pos;
		if (at != NULL) {
			j->next = *at;
			*at = j;
			if (c->jobs_tail == at)
				c->jobs_tail = &j->next;
			at = &j->next;
		} else {
			*c->jobs_tail = j;
			c->jobs_tail = &j->next;
		}
		c->n_jobs++;
		pthread_cond_signal(&c->work);
	}
	return 0;
}

static int cache_prefetch(struct backend *bk, const char *key, const char *etag, uint64_t off,
                          uint64_t len)
{
	struct cache *c = cache_of(bk);
	int ret;

	if (etag == NULL)
		etag = "";
	if (len == 0)
		return 0;
	if (strlen(etag) >= BACKEND_ETAG_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = c->stopping ? -ESHUTDOWN : cache_start_workers(c);
	if (ret == 0)
		ret = cache_enqueue(c, key, etag, off, len, 0);
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* --- pass-through ops --------------------------------------------------- */

static int cache_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	struct cache *c = cache_of(b);
	int ret = c->inner->ops->stat(c->inner, key, st);

	if (ret == 0) {
		pthread_mutex_lock(&c->lock);
		cache_size_seen(c, key, st);
		pthread_mutex_unlock(&c->lock);
	}
	return ret;
}

static int cache_save(struct backend *b, const char *key, const struct backend_source *src,
                      const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	int ret = cache_inner(b)->ops->save(cache_inner(b), key, src, attrs, st);

	cache_invalidate(cache_of(b), key, 0);
	return ret;
}

static int cache_upload_begin(struct backend *b, const char *key, const struct backend_source *src,
                              const struct backend_save_attrs *attrs, struct backend_upload **out)
{
	return cache_inner(b)->ops->upload_begin(cache_inner(b), key, src, attrs, out);
}

static int cache_remove(struct backend *b, const char *key)
{
	int ret = cache_inner(b)->ops->remove(cache_inner(b), key);

	cache_invalidate(cache_of(b), key, 0);
	return ret;
}

static int cache_list(struct backend *b, const char *prefix, char delimiter,
                      const char *start_after, const char *token, size_t max_keys,
                      struct backend_list *out)
{
	struct cache *c = cache_of(b);
	int ret =
	    c->inner->ops->list(c->inner, prefix, delimiter, start_after, token, max_keys, out);

	if (ret == 0) {
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < out->n_entries; i++)
			cache_size_seen(c, out->entries[i].key, &out->entries[i].st);
		pthread_mutex_unlock(&c->lock);
	}
	return ret;
}

static int cache_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	int ret = cache_inner(b)->ops->copy(cache_inner(b), src, dst, st);

	cache_invalidate(cache_of(b), dst, 0);
	return ret;
}

static int cache_rename(struct backend *b, const char *src, const char *dst)
{
	size_t slen = strlen(src), dlen = strlen(dst);
	int ret = cache_inner(b)->ops->rename(cache_inner(b), src, dst);

	cache_invalidate(cache_of(b), src, slen > 0 && src[slen - 1] == '/');
	cache_invalidate(cache_of(b), dst, dlen > 0 && dst[dlen - 1] == '/');
	return ret;
}

static int cache_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                         struct backend_stat *st)
{
	struct backend *in = cache_inner(b);

	return in->ops->setattr ? in->ops->setattr(in, key, attrs, st) : -ENOTSUP;
}

static int cache_space(struct backend *b, uint64_t *total, uint64_t *avail)
{
	return cache_inner(b)->ops->space(cache_inner(b), total, avail);
}

/* The counters of cache_stats, then the inner backend's. */
static void cache_stats_op(struct backend *b, backend_stats_fn emit, void *ctx)
{
	struct cache *c = cache_of(b);
	struct cache_stats s;

	pthread_mutex_lock(&c->lock);
	s = c->stats;
	s.prefetch_jobs += c->n_jobs;
	s.spare_bytes = c->pool_bytes;
	pthread_mutex_unlock(&c->lock);
	emit(ctx, "cache", "hits", s.hits);
	emit(ctx, "cache", "misses", s.misses);
	emit(ctx, "cache", "fetches", s.fetches);
	emit(ctx, "cache", "fetch_bytes", s.fetch_bytes);
	emit(ctx, "cache", "evictions", s.evictions);
	emit(ctx, "cache", "waits", s.waits);
	emit(ctx, "cache", "bytes_cached", s.bytes_cached);
	emit(ctx, "cache", "prefetch_blocks", s.prefetch_blocks);
	emit(ctx, "cache", "prefetch_hits", s.prefetch_hits);
	emit(ctx, "cache", "prefetch_dropped", s.prefetch_dropped);
	emit(ctx, "cache", "buffers_reused", s.buffers_reused);
	emit(ctx, "cache", "prefetch_jobs", s.prefetch_jobs);
	emit(ctx, "cache", "jobs_jumped", s.jobs_jumped);
	emit(ctx, "cache", "disk_fills", s.disk_fills);
	emit(ctx, "cache", "spare_bytes", s.spare_bytes);
	emit(ctx, "cache", "spliced", s.spliced);
	if (c->disk != NULL)
		c->disk->ops->stats(c->disk, emit, ctx);
	backend_stats(c->inner, emit, ctx);
}

static void cache_destroy(struct backend *bk)
{
	struct cache *c = cache_of(bk);

	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->n_workers; i++)
		pthread_join(c->workers[i], NULL);

	pthread_mutex_lock(&c->lock);
	while (c->jobs != NULL) {
		struct cache_job *j = c->jobs;

		c->jobs = j->next;
		cache_job_free(j);
	}
	c->jobs_tail = &c->jobs;
	c->n_jobs = 0;
	cache_check(c);
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct cache_block *b = c->buckets[i], *next;

		for (; b != NULL; b = next) {
			next = b->hnext;
			assert(b->refs == 0); /* no read may be running */
			cache_drop(c, b);
		}
	}
	while (c->pool_parts != NULL)
		cache_buf_free(cache_pool_pop(c, c->part_size), c->part_size);
	while (c->pool_blocks != NULL)
		cache_buf_free(cache_pool_pop(c, c->block_size), c->block_size);
	pthread_mutex_unlock(&c->lock);
	backend_destroy(c->inner);
	if (c->disk != NULL)
		c->disk->ops->destroy(c->disk);
	free(c->buckets);
	free(c->workers);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->fetched);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct backend_ops cache_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "cache",
    .stat = cache_stat,
    .read = cache_read,
    .read_fd = NULL,
    .read_ref = cache_read_ref,
    .release_ref = cache_release_ref,
    .save = cache_save,
    .upload_begin = cache_upload_begin,
    .remove = cache_remove,
    .list = cache_list,
    .copy = cache_copy,
    .rename = cache_rename,
    .setattr = cache_setattr,
    .space = cache_space,
    .prefetch = cache_prefetch,
    .stats = cache_stats_op,
    .destroy = cache_destroy,
};

void cache_opts_init(struct cache_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->block_size = CACHE_DEFAULT_BLOCK_SIZE;
	o->mem_budget = CACHE_DEFAULT_MEM_BUDGET;
	o->fetch_threads = CACHE_DEFAULT_FETCH_THREADS;
	o->part_size = CACHE_DEFAULT_PART_SIZE;
}

struct backend *cache_create(struct backend *inner, const struct cache_opts *opts)
{
	struct cache_opts o;
	struct cache *c;
	uint64_t n_blocks;
	int err;

	cache_opts_init(&o);
	if (opts != NULL) {
		if (opts->block_size != 0)
			o.block_size = opts->block_size;
		if (opts->mem_budget != 0)
			o.mem_budget = opts->mem_budget;
		if (opts->fetch_threads != 0)
			o.fetch_threads = opts->fetch_threads;
		if (opts->part_size != 0)
			o.part_size = opts->part_size;
	}
	if (opts != NULL)
		o.disk = opts->disk;
	if (inner == NULL || o.block_size < CACHE_MIN_BLOCK ||
	    (o.disk != NULL && o.disk->block_size != o.block_size) ||
	    (o.block_size & (o.block_size - 1)) != 0 || o.mem_budget < o.block_size ||
	    o.fetch_threads > CACHE_MAX_FETCH_THREADS || o.part_size > SIZE_MAX / 2) {
		errno = EINVAL;
		return NULL;
	}
	o.part_size = (o.part_size + o.block_size - 1) / o.block_size * o.block_size;
	if (o.part_size > o.mem_budget)
		o.part_size = (size_t)(o.mem_budget / o.block_size * o.block_size);

	err = ENOMEM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	c->ops = cache_ops;
	backend_ops_trim(&c->ops, inner);
	c->ops.read_ref = cache_read_ref; /* the cache lends its own blocks */
	c->ops.prefetch = cache_prefetch;
	c->base.ops = &c->ops;
	c->base.flags = inner->flags;
	c->base.key_max = inner->key_max;
	c->base.size_max = inner->size_max;
	c->inner = inner;
	c->disk = o.disk;
	c->block_size = o.block_size;
	while (((size_t)1 << c->block_shift) < c->block_size)
		c->block_shift++;
	c->budget = o.mem_budget;
	c->lru.next = c->lru.prev = &c->lru;
	c->fetch_threads = o.fetch_threads;
	c->part_size = o.part_size;
	c->max_jobs = (size_t)(o.mem_budget / o.part_size);
	if (c->max_jobs < 2 * (size_t)o.fetch_threads)
		c->max_jobs = 2 * (size_t)o.fetch_threads;
	c->jobs_tail = &c->jobs;

	/* About two buckets per block the budget can hold. */
	n_blocks = o.mem_budget / o.block_size;
	c->n_buckets = 64;
	while (c->n_buckets < 2 * n_blocks && c->n_buckets < ((size_t)1 << 20))
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (c->buckets == NULL)
		goto fail_c;
	c->workers = calloc(o.fetch_threads, sizeof(*c->workers));
	if (c->workers == NULL)
		goto fail_buckets;
	err = pthread_mutex_init(&c->lock, NULL);
	if (err != 0)
		goto fail_workers;
	err = pthread_cond_init(&c->fetched, NULL);
	if (err != 0)
		goto fail_mutex;
	err = pthread_cond_init(&c->work, NULL);
	if (err != 0)
		goto fail_fetched;
	return &c->base;

fail_fetched:
	pthread_cond_destroy(&c->fetched);
fail_mutex:
	pthread_mutex_destroy(&c->lock);
fail_workers:
	free(c->workers);
fail_buckets:
	free(c->buckets);
fail_c:
	free(c);
fail:
	errno = err;
	return NULL;
}

/* 1 if b is a cache layer (its ops table is the copy inside it). */
static int cache_is(struct backend *b)
{
	return b != NULL && b->ops != NULL && b->ops->destroy == cache_destroy;
}

void cache_get_stats(struct backend *b, struct cache_stats *out)
{
	struct cache *c;

	if (!cache_is(b)) {
		memset(out, 0, sizeof(*out));
		return;
	}
	c = cache_of(b);
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->prefetch_jobs += c->n_jobs;
	out->spare_bytes = c->pool_bytes;
	pthread_mutex_unlock(&c->lock);
}

void cache_debug_check(struct backend *b)
{
	struct cache *c;

	if (!cache_is(b))
		return;
	c = cache_of(b);
	pthread_mutex_lock(&c->lock);
	cache_check(c);
	pthread_mutex_unlock(&c->lock);
}

/* --- options --------------------------------------------------------------- */

/* The command line, in the units people type. */
struct cache_cmdline {
	unsigned cache_size_mb, block_size_kb, fetch_threads, read_part_size_mb;
	int no_cache;
};

#define CACHEOPT(t, p, v)                                                                          \
	{                                                                                          \
		t, offsetof(struct cache_cmdline, p), v                                            \
	}
static const struct fuse_opt cache_opt_spec[] = {
    CACHEOPT("cache_size=%u", cache_size_mb, 0),
    CACHEOPT("block_size=%u", block_size_kb, 0),
    CACHEOPT("fetch_threads=%u", fetch_threads, 0),
    CACHEOPT("read_part_size=%u", read_part_size_mb, 0),
    CACHEOPT("no_cache", no_cache, 1),
    FUSE_OPT_END,
};

int cache_opts_parse(struct fuse_args *args, struct cache_opts *o, int *disabled)
{
	struct cache_cmdline c = {0};

	if (opts_parse(args, &c, cache_opt_spec, NULL) < 0)
		return -1;
	if (c.cache_size_mb)
		o->mem_budget = (uint64_t)c.cache_size_mb << 20;
	if (c.block_size_kb)
		o->block_size = (size_t)c.block_size_kb << 10;
	if (c.fetch_threads)
		o->fetch_threads = c.fetch_threads;
	if (c.read_part_size_mb)
		o->part_size = (size_t)c.read_part_size_mb << 20;
	*disabled = c.no_cache;
	return 0;
}

void cache_opts_usage(FILE *out)
{
	fprintf(out,
	        "Read cache and prefetch (S3 sources):\n"
	        "    -o cache_size=MiB      memory for cached blocks, a hard bound (default 256)\n"
	        "    -o block_size=KiB      cache block size, a power of two (default 1024)\n"
	        "    -o fetch_threads=N     parallel prefetch requests (default 8)\n"
	        "    -o read_part_size=MiB  largest prefetch request (default 8)\n"
	        "    -o no_cache            no block cache and no prefetch\n");
}
