/*
 * readpolicy.h - what to fetch ahead for one open file handle.
 *
 * Every read-only handle of a file read from the store (not a local file,
 * not a stage) has one policy, the only place that decides what the block
 * cache fetches before it is asked: the cache carries it out (its prefetch
 * op fetches whole parts in parallel, a reader waiting for a queued part
 * takes it first).  The policy is pure bookkeeping, no I/O, so it is unit
 * tested on its own; file.c feeds it the handle's reads and acts on what
 * it answers.
 *
 * Modes, chosen at open from the size and the name:
 *
 *   WHOLE   size <= whole_max: the whole object is wanted, from the first
 *           byte.  Open asks for [0, min(size, ahead_max)); each read asks
 *           for what follows up to ahead_max past the furthest end read, in
 *           file order, whatever order the reads come in (torch.load reads
 *           the zip's start, its central directory at the end, then the
 *           records: all of it one fetch).
 *   STREAM  a larger file: a window that starts at initial_window and
 *           doubles, up to max_window, while reads follow on (within
 *           tolerance: the kernel's readahead arrives out of order), and
 *           drops to nothing on a seek.  The first read and the read after
 *           a seek ask for nothing, so random readers cause no prefetch.
 *   RANGES  a larger file whose format names its pieces: a *.safetensors
 *           file whose header (8-byte length, JSON of tensors and their
 *           data_offsets) was read at open and given with
 *           readpolicy_set_ranges().  A read inside a tensor asks for the
 *           whole tensor, once: a reader that faults a tensor in page by
 *           page (numpy.memmap) gets it in parallel part-sized requests,
 *           and a tensor nobody touches is never fetched.
 *   RANDOM  a STREAM handle that has seeked random_seeks times: the answer
 *           says "fill": fetch the whole object into the kernel's page
 *           cache in file order (pagefill.c), while the reads that wait
 *           jump the queue.  Asked once per handle; its reads go on as
 *           STREAM's (a fill may be refused: too large).
 *
 * Not thread-safe: the caller serialises calls for one handle.
 */
#ifndef CHUNKFS_READPOLICY_H
#define CHUNKFS_READPOLICY_H

#include <stddef.h>
#include <stdint.h>

#define READPOLICY_DEFAULT_WHOLE_MAX      ((uint64_t)256 << 20)
#define READPOLICY_DEFAULT_INITIAL_WINDOW ((uint64_t)8 << 20)
#define READPOLICY_DEFAULT_MAX_WINDOW     ((uint64_t)128 << 20)
#define READPOLICY_DEFAULT_TOLERANCE      ((uint64_t)8 << 20)
#define READPOLICY_DEFAULT_RANDOM_SEEKS   4

enum readpolicy_mode { READPOLICY_STREAM, READPOLICY_WHOLE, READPOLICY_RANDOM, READPOLICY_RANGES };

struct readpolicy_opts {
	uint64_t whole_max;      /* objects up to this size are fetched whole; 0: none */
	uint64_t ahead_max;      /* the most a WHOLE handle asks for ahead of its reads */
	uint64_t initial_window; /* STREAM's first window */
	uint64_t max_window;     /* STREAM's largest window */
	uint64_t tolerance;      /* out-of-order slack of a sequential read */
	unsigned random_seeks;   /* seeks that make a STREAM handle RANDOM; 0: never */
	uint64_t round;          /* STREAM asks end on a multiple of this (the
	                          * cache's part size: whole parts); 0: exact */
};

struct readpolicy {
	const struct readpolicy_opts *o;
	uint64_t size;      /* the object's */
	uint64_t read_end;  /* furthest end read since the last seek */
	uint64_t asked_end; /* prefetch asked for up to here */
	uint64_t window;    /* STREAM: current window, 0 after a seek */
	unsigned seeks;
	int reads; /* reads seen */
	int mode;  /* enum readpolicy_mode */
	int safetensors;
	struct readpolicy_range *ranges; /* RANGES: sorted, disjoint; owned */
	size_t n_ranges;
};

/* One piece of a file (a tensor): [off, end), asked for once. */
struct readpolicy_range {
	uint64_t off, end;
	int asked;
};

/* What to do after a call: prefetch [off, off + len) if len > 0; start a
 * whole-object fill if fill is set. */
struct readpolicy_action {
	uint64_t off, len;
	int fill;
};

/* Fill *o with the defaults; ahead_max is left to the caller (0). */
void readpolicy_opts_init(struct readpolicy_opts *o);

/* A handle opened on an object of size bytes named name (its last
 * segment); *a says what to fetch now. */
void readpolicy_open(struct readpolicy *p, const struct readpolicy_opts *o, uint64_t size,
                     const char *name, struct readpolicy_action *a);

/* A read of [off, off + len) arrived; *a says what to fetch. */
void readpolicy_read(struct readpolicy *p, uint64_t off, uint64_t len, struct readpolicy_action *a);

/*
 * Whether a handle of this policy wants the pieces of its file: 1 for a
 * STREAM handle of a *.safetensors file.  The caller then reads the
 * header and gives the pieces with readpolicy_set_ranges().
 */
int readpolicy_wants_ranges(const struct readpolicy *p);

/*
 * The tensors of a safetensors file of file_size bytes whose first bytes
 * (the 8-byte header length and the JSON header, at least) are buf[0,
 * len): a sorted array the caller frees, in *out, *n.  0, or -EINVAL when
 * the header is malformed or names bytes outside the file, -EAGAIN when
 * len does not hold the whole header (*need says how much does).
 */
int readpolicy_safetensors_ranges(const void *buf, size_t len, uint64_t file_size,
                                  struct readpolicy_range **out, size_t *n, size_t *need);

/* Switch a handle to RANGES over ranges (taken over: freed with the
 * policy by readpolicy_close()). */
void readpolicy_set_ranges(struct readpolicy *p, struct readpolicy_range *ranges, size_t n);

/* The cache refused the prefetch of *a (its queue was full): forget it
 * was asked, so that a later read asks again. */
void readpolicy_refused(struct readpolicy *p, const struct readpolicy_action *a);

/* Free what the policy holds. */
void readpolicy_close(struct readpolicy *p);

#endif /* CHUNKFS_READPOLICY_H */
