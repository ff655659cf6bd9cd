/*
 * mem.h - the in-memory backend, for unit tests.
 *
 * Objects live in process memory and vanish with the backend.  Keys are
 * kept sorted (memcmp order) so list() is a range walk.  Directories are
 * S3-like: they exist only through the keys under them and through explicit
 * markers ("d/"), which are ordinary zero-length objects.  The etag of an
 * object is a generation number taken from a per-backend counter at every
 * save or copy, so no two versions ever share an etag.  mtime is the time of
 * the save unless the caller gives one in the save attributes.
 *
 * Optional ops: copy is implemented (server-side copy), rename and space are
 * NULL, so callers exercise their fallbacks against this backend.
 *
 * Every op takes the backend's single mutex; the source of a save is read
 * before the mutex is taken.
 */
#ifndef CHUNKFS_MEM_H
#define CHUNKFS_MEM_H

#include "backend.h"

#include <stdint.h>

/* Calls per op since creation or the last reset, counted on entry whether
 * or not the op succeeds; bytes_read sums what read() returned. */
struct mem_backend_stats {
	uint64_t stat, read, save, remove, list, copy;
	uint64_t bytes_read;
};

/*
 * Create an empty in-memory backend.  Returns NULL with errno set on
 * failure.  The caller frees it with backend_destroy().
 */
struct backend *mem_backend_create(void);

/* Copy the op counters of b (which must come from mem_backend_create())
 * into *out.  For any other backend *out is zeroed. */
void mem_backend_get_stats(struct backend *b, struct mem_backend_stats *out);

/* Zero the op counters of b (a mem backend; ignored otherwise). */
void mem_backend_reset_stats(struct backend *b);

#endif /* CHUNKFS_MEM_H */
