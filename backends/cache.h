/*
 * cache.h - the memory block cache layer.
 *
 * A backend that wraps an inner backend and keeps recently read parts of
 * objects in memory, in blocks of block_size bytes.  A block is named by
 * (key, etag, block index), so a changed object never serves stale bytes:
 * a read is pinned to one etag (the caller's, or the one a stat of the
 * inner backend reports when the caller gives none) and every block of the
 * read is fetched with inner->read(key, block offset, block_size, etag).
 * A block is served only for the object size it was fetched with, once
 * the store has reported another size for that key and etag (a store with
 * weak or constant ETags): see "Sizes" in cache.c.
 *
 * Memory: mem_budget is a hard bound on the block buffers the layer has
 * allocated (cached blocks, blocks being fetched, and blocks dropped from
 * the cache but still being copied out by a reader).  A fetch reserves its
 * block_size bytes before allocating.  When the budget is full and no
 * unpinned block can be evicted, the reader does not wait: it reads its
 * piece straight from the inner backend into its own buffer, uncached.
 *
 * Concurrent reads of one missing block share one inner read; the others
 * wait for it.  A failed fetch is not cached: its waiters get the error and
 * the next read tries again.
 *
 * Prefetch: the prefetch op queues the range (rounded out to whole blocks)
 * as jobs of at most a part each (split at multiples of part_size; a
 * caller that wants whole parts asks for them) that fetch_threads worker
 * threads (started at the first
 * prefetch, stopped by destroy) load into the cache, one inner read per run
 * of adjacent missing blocks, so the store sees few large ranged reads.
 * Prefetched blocks go through the same single-flight table: a reader that
 * wants a block being prefetched waits for it, and if that prefetch fails,
 * reads the block itself (a prefetch error never reaches a reader).  A
 * prefetch reserves its memory from the same hard budget; it may evict
 * blocks readers have used (LRU) but not blocks prefetched and not yet
 * read, and when nothing more fits it stops (the rest of the job is
 * dropped, counted in prefetch_dropped).  Without an etag a job stats the
 * inner backend first and prefetches the version found.  A reader that
 * misses a block whose part is still queued takes that job out of the
 * queue and runs it itself at once: the part being waited for goes first,
 * and it costs one part-sized read, not a block-sized one.
 *
 * Disk tier (opts.disk, tier.h): a fetch first asks the tier for its
 * blocks and reads the inner backend only when the tier lacks one; what
 * it reads from the inner backend it puts in the tier.  read_ref lends a
 * block the tier holds and memory does not as a piece of the tier's file
 * (spliced by the caller, never copied into memory); a prefetch skips the
 * blocks the tier holds.  So a warm cache costs neither requests nor
 * copies, and only memory's blocks count against the budget.
 *
 * save, remove, copy and rename go to the inner backend and then drop
 * every cached block of the keys they touched (all versions, every tier); a fetch that
 * was in flight meanwhile delivers its bytes to its readers but does not
 * enter the cache.  stat and list pass through uncached.  read_fd is NULL
 * (the layer has no file to hand out).  copy, rename and space are present
 * exactly when the inner backend has them.
 */
#ifndef CHUNKFS_CACHE_H
#define CHUNKFS_CACHE_H

#include "backend.h"
#include "tier.h"

#include <fuse_opt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CACHE_DEFAULT_BLOCK_SIZE    (1u << 20)            /* 1 MiB */
#define CACHE_DEFAULT_MEM_BUDGET    ((uint64_t)256 << 20) /* 256 MiB */
#define CACHE_DEFAULT_FETCH_THREADS 8
#define CACHE_DEFAULT_PART_SIZE     ((size_t)8 << 20) /* 8 MiB */
#define CACHE_MAX_FETCH_THREADS     64

struct cache_opts {
	size_t block_size;      /* power of two, >= 4096; 0: default */
	uint64_t mem_budget;    /* bytes of block buffers, >= block_size; 0: default */
	unsigned fetch_threads; /* prefetch workers, <= CACHE_MAX_FETCH_THREADS;
	                         * 0: default */
	size_t part_size;       /* largest inner read of a prefetch; rounded up to
	                         * a multiple of block_size, capped at the budget;
	                         * 0: default */
	struct tier *disk;      /* a tier under memory (the disk cache), or NULL;
	                         * its block size must be block_size.  Owned by
	                         * the layer once cache_create() succeeds. */
};

/* Counters since creation.  bytes_cached is a level, not a counter. */
struct cache_stats {
	uint64_t hits;             /* blocks served from the cache */
	uint64_t misses;           /* blocks not in the cache (fetched or read through) */
	uint64_t fetches;          /* inner read() calls made for blocks */
	uint64_t fetch_bytes;      /* bytes those calls returned */
	uint64_t evictions;        /* blocks dropped to make room (not invalidations) */
	uint64_t waits;            /* blocks waited for while another reader fetched them */
	uint64_t bytes_cached;     /* bytes in cached blocks now */
	uint64_t prefetch_blocks;  /* blocks fetched into the cache by prefetch */
	uint64_t prefetch_hits;    /* reads served from a prefetched block, first
	                            * read of that block only */
	uint64_t prefetch_dropped; /* prefetch jobs cut short: budget full */
	uint64_t buffers_reused;   /* fetches into a pooled buffer, not a new one */
	uint64_t prefetch_jobs;    /* now: prefetch parts queued or being fetched */
	uint64_t jobs_jumped;      /* queued parts a reader waiting for one of
	                            * their blocks fetched itself, at once */
	uint64_t disk_fills;       /* fetches answered whole by the disk tier */
	uint64_t spare_bytes;      /* now: freed buffers kept for reuse */
	uint64_t spliced;          /* read_ref pieces lent as the disk tier's
	                            * files (no copy through the daemon) */
};

/* Fill *o with the defaults. */
void cache_opts_init(struct cache_opts *o);

/*
 * Take the cache's -o options out of args: cache_size=MiB, block_size=KiB,
 * fetch_threads=N, read_part_size=MiB, no_cache (sets *disabled).  0 or -1.
 */
int cache_opts_parse(struct fuse_args *args, struct cache_opts *o, int *disabled);

/* Print the options' help. */
void cache_opts_usage(FILE *out);

/*
 * Create a cache layer over inner.  opts may be NULL (defaults).  On
 * success the layer owns inner and opts->disk: backend_destroy() of the
 * layer destroys them too.  On failure it returns NULL with errno set
 * (EINVAL for bad options, ENOMEM) and the caller still owns both.
 */
struct backend *cache_create(struct backend *inner, const struct cache_opts *opts);

/* Copy the counters of b (a cache layer) into *out; zeroed for any other
 * backend.  The stats op reports the same counters (group "cache"), then
 * the inner backend's. */
void cache_get_stats(struct backend *b, struct cache_stats *out);

/*
 * Check the layer's invariants (hash and LRU list agree, bytes_cached is
 * the sum of cached block sizes, allocated block memory within budget) and
 * abort on a violation.  A no-op in NDEBUG builds and for other backends.
 * For tests.
 */
void cache_debug_check(struct backend *b);

#endif /* CHUNKFS_CACHE_H */
