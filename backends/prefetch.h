/*
 * prefetch.h - the prefetch layer: the read-ahead policy.
 *
 * A backend that wraps an inner backend (normally the block cache) and
 * passes every op through to it unchanged.  On each read() it also updates
 * the state of the read's stream, named by (key, etag) (etag "" for reads
 * without one), and asks the inner backend's prefetch op to load what the
 * stream will want next.  The layer decides what to fetch; the inner
 * backend fetches and stores it ("prefetch decides, the cache carries
 * out").  Over an inner backend whose prefetch op is NULL the layer only
 * keeps its statistics.
 *
 * Policy.  A read is sequential when it starts within tolerance plus the
 * previous read's length before, or within tolerance after, the furthest
 * end read so far in its stream (with no tolerance while the stream has
 * not been sequential yet): so the kernel's readahead, which sends
 * neighbouring requests slightly out of order, still counts as
 * sequential.  Any other read of a known stream is a seek: the window
 * drops to nothing.  The first read of a stream and the read after a seek
 * prefetch nothing (random reads never cause prefetching); each
 * sequential read sets the window to initial_window the first time, then
 * doubles it, up to max_window, and asks for [end, end + window) where end
 * is the furthest end read so far, minus what the stream has already asked
 * for, and clipped to the object's size when a read has reported it.
 * prefetch returns at once and its errors are never a reader's: a refused
 * request (the inner layer's queue is full) is asked for again by the next
 * read.
 *
 * Streams live in a table of max_streams entries; a new stream takes the
 * least recently used entry.  A read belongs to the stream of its version
 * it follows on from, so several readers of one file, each sequential,
 * keep a stream each (the layer sees no file handles).  A read that follows
 * none starts a new stream, until the version has
 * PREFETCH_STREAMS_PER_VERSION; from then on it is a seek in the least
 * recently used of them (so a random reader holds at most that many).
 */
#ifndef CHUNKFS_PREFETCH_H
#define CHUNKFS_PREFETCH_H

#include "backend.h"

#include <stdint.h>

#define PREFETCH_DEFAULT_INITIAL_WINDOW ((uint64_t)1 << 20)  /* 1 MiB */
#define PREFETCH_DEFAULT_MAX_WINDOW     ((uint64_t)64 << 20) /* 64 MiB */
#define PREFETCH_DEFAULT_TOLERANCE      ((uint64_t)8 << 20)  /* 8 MiB: twice the kernel readahead */
#define PREFETCH_DEFAULT_MAX_STREAMS    64
#define PREFETCH_STREAMS_PER_VERSION    4

struct prefetch_opts {
	uint64_t initial_window; /* first window of a sequential stream; 0: default */
	uint64_t max_window;     /* >= initial_window; 0: default */
	uint64_t tolerance;      /* out-of-order slack, bytes; 0: default */
	unsigned max_streams;    /* streams tracked at once; 0: default */
};

/* Counters since creation. */
struct prefetch_stats {
	uint64_t streams;           /* streams started (new or recycled entries) */
	uint64_t sequential_hits;   /* reads that continued their stream */
	uint64_t seeks;             /* reads of a known stream that did not */
	uint64_t prefetch_requests; /* inner prefetch calls accepted */
	uint64_t prefetch_bytes;    /* bytes those calls asked for */
};

/* Fill *o with the defaults. */
void prefetch_opts_init(struct prefetch_opts *o);

/*
 * Create a prefetch layer over inner.  opts may be NULL (defaults).  On
 * success the layer owns inner: backend_destroy() of the layer destroys
 * inner too.  On failure it returns NULL with errno set (EINVAL for bad
 * options, ENOMEM) and the caller still owns inner.  Optional ops (copy,
 * rename, space, read_fd, prefetch) are present exactly when inner has
 * them.  The stats op reports the counters below (group "prefetch"), then
 * inner's.
 */
struct backend *prefetch_create(struct backend *inner, const struct prefetch_opts *opts);

/* Copy the counters of b (a prefetch layer) into *out; zeroed for any
 * other backend. */
void prefetch_get_stats(struct backend *b, struct prefetch_stats *out);

#endif /* CHUNKFS_PREFETCH_H */
