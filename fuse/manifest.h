/*
 * manifest.h - chunk_info.json: parsing it, and prefetching the next chunk
 * when a chunk is opened through the mount.
 *
 * The format is the one the streaming_weights chunker writes
 * (/work/shared/CHUNK-LAYOUT.md; examples/bert-tiny/chunk_info.json):
 *
 *   {"model_name": .., "model_type": .., "num_layers": 2,
 *    "chunks": {"embeddings": {"file": "embeddings.pt", "size_mb": 7.58},
 *               "layer_0": {"file": "layer_0.pt", "size_mb": 0.383}, ...},
 *    "total_size_mb": 8.379}
 *
 * The order of "chunks" is the load order.  chunkfs's own manifest is a
 * superset: a chunk may also carry "size" (exact bytes), "chunks" may be
 * a list of such objects instead of an object, and "config" names a file
 * to warm along with the chunks.  A chunk's "file" is a path relative to
 * the manifest's directory that must stay inside it: no leading '/', no
 * "." or ".." segment, no empty segment.
 */
#ifndef CHUNKFS_MANIFEST_H
#define CHUNKFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Largest manifest read or parsed, and most chunks in one. */
#define MANIFEST_MAX_BYTES  (1u << 20)
#define MANIFEST_MAX_CHUNKS 65536

/* The manifest's file name, looked for next to the chunks. */
#define MANIFEST_NAME "chunk_info.json"

struct manifest_chunk {
	char *name;     /* the key in "chunks" ("layer_0"); "" in the list form */
	char *file;     /* relative path, checked as described above */
	uint64_t size;  /* bytes: "size" if given, else size_mb * 2^20 rounded
	                 * up, 0 if neither is there */
	int size_exact; /* 1 when "size" gave it */
};

struct manifest {
	struct manifest_chunk *chunks; /* in load order */
	size_t n_chunks;
	char *config; /* "config" of a chunkfs manifest, checked like a file, or NULL */
};

/*
 * Parse len bytes of JSON.  On success *out holds the manifest (free it
 * with manifest_free()) and 0 is returned.  On failure -EINVAL (not JSON,
 * not a manifest, a bad entry, a file that leaves the directory: err, of
 * errlen bytes, says which in one sentence), -EFBIG (more than
 * MANIFEST_MAX_BYTES or MANIFEST_MAX_CHUNKS) or -ENOMEM.
 */
int manifest_parse(const char *text, size_t len, struct manifest **out, char *err, size_t errlen);

/* Free a parsed manifest; NULL is fine. */
void manifest_free(struct manifest *m);

/* 1 if file is a path that stays inside the manifest's directory, else 0. */
int manifest_file_ok(const char *file);

/* The index of the chunk whose file is file, or -1. */
ssize_t manifest_find(const struct manifest *m, const char *file);

/*
 * Read the manifest at path (a local file, or one inside a mount) and
 * parse it.  The file is opened without blocking and must be a regular
 * file of at most MANIFEST_MAX_BYTES.  0, or -errno with err set as
 * manifest_parse() sets it.
 */
int manifest_load_file(const char *path, struct manifest **out, char *err, size_t errlen);

/* --- in the mount --------------------------------------------------------- */

struct chunkfs;
struct node;
struct manifest_cache;

/* The per-mount cache of manifests by directory; NULL + errno on failure. */
struct manifest_cache *manifest_cache_create(void);
void manifest_cache_destroy(struct manifest_cache *mc);

/*
 * A file was opened for reading (call after the open succeeded, before
 * the reply; the kernel's lookup keeps node alive).  If the node's
 * directory has a chunk_info.json that names this file as a chunk, start
 * fetching the chunk that follows it (fs->be's prefetch op, which works
 * within the memory budget).  Does nothing when prefetch is off
 * (-o no_manifest_prefetch), the stack cannot prefetch, or nobody has
 * looked chunk_info.json up in that directory yet.  Never fails the open.
 */
void manifest_on_open(struct chunkfs *fs, struct node *node);

/* Report the counters ("manifest" group of the stats). */
void manifest_stats(struct chunkfs *fs, void (*emit)(void *ctx, const char *name, uint64_t value),
                    void *ctx);

#endif
