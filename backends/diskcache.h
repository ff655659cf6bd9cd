/*
 * diskcache.h - the disk block cache layer.
 *
 * A backend that wraps an inner backend (S3) and keeps the blocks it reads
 * as files in a local directory, so they survive an unmount and are reused
 * at the next mount.  It sits under the memory block cache:
 *
 *     cache -> diskcache -> s3
 *
 * A block is named by (key, etag, block index) and holds block_size bytes
 * of that version (the last block of an object is shorter).  A read is
 * pinned to one etag (the caller's, or the one a stat of the inner backend
 * reports when the caller gives none); a missing block is fetched with
 * inner->read(key, index * block_size, block_size, etag), handed to the
 * reader, and written to the cache directory atomically (temporary file,
 * then rename) with a checksum over its header and bytes.  Every block read
 * from disk is checked (names, etag, length, SHA-256); a corrupted or
 * truncated file is logged, deleted and fetched again, never served.
 *
 * Space: the block files stay under max_bytes (least recently used files
 * are deleted first), and the layer stops writing while the filesystem
 * holding dir has less than min_free_percent free or answers ENOSPC; reads
 * then come from the inner backend and still succeed.
 *
 * Concurrent reads of one missing block share one inner read; a read of
 * several missing blocks fetches them with one inner read.  save,
 * remove, copy and rename go to the inner backend and then delete every
 * cached block of the keys they touched (all versions).  stat and list pass
 * through.  read_fd and prefetch are NULL (the memory cache above does the
 * prefetching, and its prefetch reads come through this layer).  copy,
 * rename and space are present exactly when the inner backend has them.
 *
 * One process uses a cache directory at a time (a lock file enforces it).
 */
#ifndef CHUNKFS_DISKCACHE_H
#define CHUNKFS_DISKCACHE_H

#include "backend.h"

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
	uint64_t hits;           /* blocks served from disk */
	uint64_t misses;         /* blocks not on disk (fetched, or waited for) */
	uint64_t fetches;        /* inner read() calls made for blocks */
	uint64_t fetch_bytes;    /* bytes those calls returned */
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
 * Create a disk cache layer over inner, with its files in opts->dir (the
 * index is rebuilt by scanning it).  On success the layer owns inner:
 * backend_destroy() of the layer destroys inner too (and leaves the files
 * for the next mount).  On failure it returns NULL with errno set (EINVAL
 * bad options, EPERM unsafe directory, EBUSY directory in use by another
 * process, ENOMEM, or the error of creating or opening dir), logs why, and
 * the caller still owns inner.
 */
struct backend *diskcache_create(struct backend *inner, const struct diskcache_opts *opts);

/* Copy the counters of b (a disk cache layer) into *out; zeroed for any
 * other backend.  The stats op reports the same counters (group
 * "diskcache"), then the inner backend's. */
void diskcache_get_stats(struct backend *b, struct diskcache_stats *out);

/*
 * Check the layer's invariants (hash and LRU list agree, bytes_on_disk is
 * the sum of file sizes plus reservations and within max_bytes) and abort
 * on a violation.  A no-op in NDEBUG builds and for other backends.
 */
void diskcache_debug_check(struct backend *b);

#endif /* CHUNKFS_DISKCACHE_H */
