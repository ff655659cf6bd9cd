/*
 * diskcache.h - the disk tier of the block cache.
 *
 * A tier (tier.h) that keeps blocks as files in a local directory, so they
 * survive an unmount and are reused at the next mount.  The block cache
 * (cache.h) owns it: blocks it fetches from the store are put here, blocks
 * it misses in memory are looked for here first, and reads of blocks held
 * here are answered by splicing from the block's file (the tier's open
 * op), with no copy through the daemon.
 *
 * A block is named by (key, etag, block index) and holds block_size bytes
 * of that version (the last block of an object is shorter).  A block is
 * written atomically (temporary file, then rename) with an XXH3-64 sum of
 * its header and bytes; the sum is checked at the block's first use after
 * create, and the header (names, etag, length, and the object's size when
 * the caller knows it) at every use; a corrupted
 * or truncated file is logged, deleted and reported absent, never served.
 *
 * Space: the block files stay under max_bytes (least recently used files
 * are deleted first), and the tier stops writing while the filesystem
 * holding dir has less than min_free_percent free or answers ENOSPC; reads
 * then come from the store and still succeed.
 *
 * One process uses a cache directory at a time (a lock file enforces it).
 */
#ifndef CHUNKFS_DISKCACHE_H
#define CHUNKFS_DISKCACHE_H

#include "tier.h"

#include <fuse_opt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DISKCACHE_DEFAULT_BLOCK_SIZE (1u << 20)           /* 1 MiB, as the memory cache */
#define DISKCACHE_DEFAULT_MAX_BYTES  ((uint64_t)10 << 30) /* 10 GiB */
#define DISKCACHE_DEFAULT_MIN_FREE   5                    /* percent */

struct diskcache_opts {
	const char *dir;      /* required; created (0700) if missing, its parent
	                       * must exist; must be owned by us and not group-
	                       * or world-writable */
	uint64_t max_bytes;   /* bound on the block files' bytes, >= block_size;
	                       * 0: default */
	size_t block_size;    /* power of two, >= 4096; 0: default.  Use the
	                       * memory cache's block size. */
	int min_free_percent; /* keep this share of dir's filesystem free, 1..99;
	                       * 0: default (5); -1: no reserve (stop on ENOSPC
	                       * only) */
};

/* Counters since creation.  bytes_on_disk and files are levels. */
struct diskcache_stats {
	uint64_t hits;           /* blocks served from disk (get or open) */
	uint64_t misses;         /* blocks asked for and not held (or corrupt) */
	uint64_t stored;         /* blocks written */
	uint64_t verified;       /* blocks whose sum was checked at first use */
	uint64_t bytes_on_disk;  /* bytes of block files, including ones being
	                          * written */
	uint64_t files;          /* block files in the index */
	uint64_t evictions;      /* files deleted to stay under max_bytes */
	uint64_t corrupt_blocks; /* files found corrupt or truncated, deleted */
	uint64_t write_errors;   /* blocks not stored because a write failed
	                          * (ENOSPC, EIO, ...) */
	uint64_t full_skips;     /* blocks not stored: below min_free_percent */
};

/* Fill *o with the defaults (dir NULL). */
void diskcache_opts_init(struct diskcache_opts *o);

/*
 * Take the disk cache's -o options out of args: cache_dir=PATH,
 * cache_dir_size=MiB, cache_dir_min_free=PERCENT.  o->dir then points to a
 * string the caller frees with free().  0 or -1.
 */
int diskcache_opts_parse(struct fuse_args *args, struct diskcache_opts *o);

/* Print the options' help. */
void diskcache_opts_usage(FILE *out);

/*
 * Create a disk tier with its files in opts->dir (the index is rebuilt by
 * scanning it).  The block cache that is given it owns it; its destroy op
 * leaves the files for the next mount.  On failure it returns NULL with
 * errno set (EINVAL bad options, EPERM unsafe directory, EBUSY directory
 * in use by another process, ENOMEM, or the error of creating or opening
 * dir), and logs why.
 */
struct tier *diskcache_create(const struct diskcache_opts *opts);

/* Copy the counters of t (a disk tier) into *out; zeroed for any other
 * tier.  The stats op reports the same counters (group "diskcache"). */
void diskcache_get_stats(struct tier *t, struct diskcache_stats *out);

/*
 * Check the tier's invariants (hash and LRU list agree, bytes_on_disk is
 * the sum of file sizes plus reservations and within max_bytes) and abort
 * on a violation.  A no-op in NDEBUG builds and for other tiers.
 */
void diskcache_debug_check(struct tier *t);

#endif /* CHUNKFS_DISKCACHE_H */
