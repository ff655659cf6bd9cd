/*
 * pagefill.h - fetch a randomly read file whole into the kernel's page
 * cache, in the background (design in pagefill.c).
 */
#ifndef CHUNKFS_PAGEFILL_H
#define CHUNKFS_PAGEFILL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

struct chunkfs;
struct fh;
struct node;

/* The fills of one mount (struct chunkfs.fills). */
struct pagefill_set {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a fill stored a piece or ended */
	unsigned running;
	int shutdown;
	uint64_t started, completed, cancelled, stored_bytes;
};

int pagefill_set_init(struct pagefill_set *set);
void pagefill_set_destroy(struct pagefill_set *set);

/*
 * Start a fill of the file handle fh reads (a handle reading from the
 * store, whose read policy asked for it), unless a condition in pagefill.c
 * forbids it.  Returns at once.
 */
void pagefill_start(struct chunkfs *fs, struct fh *fh);

/*
 * Stop the node's fill, if any, and return once it can store nothing
 * more.  Call before an open for writing or a truncate replies, and when an
 * open finds a new version.  No node lock may be held.
 */
void pagefill_cancel(struct chunkfs *fs, struct node *node);

/* pagefill_cancel() if the node's fill is of another version than etag
 * and size (two objects can share an ETag on some stores). */
void pagefill_cancel_other(struct chunkfs *fs, struct node *node, const char *etag, uint64_t size);

/* Stop every fill and wait for them; after the session is unmounted. */
void pagefill_shutdown(struct chunkfs *fs);

/* Counters for the statistics document: each name and value to emit(). */
void pagefill_stats(struct chunkfs *fs, void (*emit)(void *ctx, const char *name, uint64_t v),
                    void *ctx);

#endif
