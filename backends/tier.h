/*
 * tier.h - the storage interface of a block cache tier.
 *
 * The block cache (cache.h) is one fetch engine over tiers: its own
 * memory, and optionally a tier that keeps blocks elsewhere (the disk
 * tier, diskcache.h).  A tier only stores and finds blocks; it never
 * fetches from the store, never waits for another reader and has no
 * policy of its own beyond staying within its size: single flight, the
 * order of fetches and what to fetch ahead belong to the engine.
 *
 * A block is named by the object's key, its etag and the block's index
 * (offset / block size); every block of an object but the last has
 * exactly the tier's block size.  The object's size is kept with the
 * block, and a caller that knows the size of the object it wants says so
 * (tier_block.size): a block kept for another size is then absent, so
 * two objects that share a key and an ETag (a store with weak or constant
 * ETags) never get each other's bytes.  A tier hands out only blocks whose
 * integrity it has checked; a block that fails the check is dropped and
 * reported absent, so the engine fetches it again.
 *
 * Every op may be called from many threads at once.
 */
#ifndef CHUNKFS_TIER_H
#define CHUNKFS_TIER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"

struct tier_block {
	const char *key;
	const char *etag;
	uint64_t index;
	uint64_t size; /* the object's size, 0 when the caller does not know it
	                  (an empty object has no blocks) */
};

struct tier;

struct tier_ops {
	const char *name;

	/*
	 * get: copy the block's bytes into dst (at least the block size) and
	 * its object's stat, as stored with it, into *st.  Returns the
	 * block's length, or -ENOENT when the tier does not hold it (or it
	 * was corrupt: then it is gone), or another -errno.
	 */
	ssize_t (*get)(struct tier *t, const struct tier_block *b, void *dst,
	               struct backend_stat *st);

	/*
	 * open (optional): the block as a local file, for a caller that
	 * splices it to the kernel without copying: *fd (the caller closes
	 * it; it keeps reading this block even if the tier drops it), the
	 * offset of the block's first byte in it, and its length.  The bytes
	 * are checked at the first open after the tier was created.  Returns
	 * 0, -ENOENT when absent (or corrupt), or another -errno.
	 */
	int (*open)(struct tier *t, const struct tier_block *b, int *fd, uint64_t *data_off,
	            size_t *len, struct backend_stat *st);

	/* has: 1 when the tier holds the block (not checked now), else 0. */
	int (*has)(struct tier *t, const struct tier_block *b);

	/*
	 * willneed (optional): the block will be read soon; start loading it
	 * (the disk tier asks the kernel to read the file ahead) and return
	 * at once.  A hint.
	 */
	void (*willneed)(struct tier *t, const struct tier_block *b);

	/*
	 * put: keep len bytes (len <= block size; shorter only for an
	 * object's last block) and the object's stat as the block.  A hint:
	 * a tier that is full or fails to store counts it and drops the
	 * block, never an error a reader sees.
	 */
	void (*put)(struct tier *t, const struct tier_block *b, const void *data, size_t len,
	            const struct backend_stat *st);

	/* drop: forget every block of key, every version (with prefix set:
	 * of every key that starts with key). */
	void (*drop)(struct tier *t, const char *key, int prefix);

	/* stats: report counters as a backend's stats op does. */
	void (*stats)(struct tier *t, backend_stats_fn emit, void *ctx);

	void (*destroy)(struct tier *t);
};

/* Every tier struct starts with this header. */
struct tier {
	const struct tier_ops *ops;
	size_t block_size; /* the tier's, fixed at create */
};

#endif /* CHUNKFS_TIER_H */
