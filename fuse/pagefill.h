/*
 * pagefill.h - fetch a randomly read file whole into the kernel's page
 * cache, in the background (design in pagefill.c).
 */
#ifndef CHUNKFS_PAGEFILL_H
#define CHUNKFS_PAGEFILL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

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
 * Account a read of [off, off + len) through handle fh (a handle reading
 * from the store) and start a fill when the handle has been seeking.
 * Cheap; called for every such read.
 */
void pagefill_note_read(struct chunkfs *fs, struct fh *fh, uint64_t off, size_t len);

/*
 * Stop the node's fill, if any, and return once it can store nothing
 * more.  Call before an open for writing or a truncate replies, and when an
 * open finds a new version.  No node lock may be held.
 */
void pagefill_cancel(struct chunkfs *fs, struct node *node);

/* pagefill_cancel() if the node's fill is of another version than etag. */
void pagefill_cancel_other(struct chunkfs *fs, struct node *node, const char *etag);

/* Stop every fill and wait for them; after the session is unmounted. */
void pagefill_shutdown(struct chunkfs *fs);

/* Counters for the statistics document. */
void pagefill_stats(struct chunkfs *fs, uint64_t *started, uint64_t *completed, uint64_t *cancelled,
                    uint64_t *stored_bytes);

#endif
