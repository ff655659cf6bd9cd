/*
 * backend.h - the one interface every chunk store and every layer speaks.
 *
 * A backend maps keys (UTF-8 strings such as "models/bert/layer_0.pt") to
 * byte strings.  The filesystem backend, the S3 backend and the in-memory
 * test backend implement it; so do the layers stacked on top of them (block
 * cache, prefetcher, fault injector), each of which owns an inner backend.
 * The FUSE driver only ever talks to the top of the stack.
 *
 * Keys
 *   A key is a non-empty string with no leading '/', no empty segment
 *   ("a//b"), no "." or ".." segment and no NUL.  A key ending in '/' is a
 *   directory marker ("dir/"): a zero-length object whose only meaning is
 *   "this directory exists even when nothing is under it".  Keys are
 *   compared as byte strings (memcmp order), as S3 does.  Use
 *   backend_key_valid() to check one; backends reject others with -EINVAL.
 *   A store takes keys up to struct backend.key_max bytes (S3: 1,024 bytes
 *   of UTF-8 less the mount's prefix; the filesystem backend: PATH_MAX - 1
 *   for the path under its directory, NAME_MAX per component) and objects
 *   up to size_max bytes (S3: 5 TiB); the caller checks both before it asks
 *   (ENAMETOOLONG, EFBIG), a backend that meets a longer key or a larger
 *   object anyway fails as its store does.
 *
 * Contract shared by every op
 *   - Every op returns 0 (or a byte count where stated) on success and a
 *     negative errno on failure, never -1 with errno set.  Common codes:
 *     -ENOENT no such key, -EACCES permission refused by the store,
 *     -EINVAL bad key or argument, -EIO the store failed after retries,
 *     -ENOSPC the store is full, -ESTALE the object changed (etag mismatch),
 *     -EPERM the key would reach outside the store (filesystem backend),
 *     -ENOTSUP the optional op is not available, -ENOTDIR / -EISDIR a
 *     backend with real directories cannot hold both "a" and "a/b".
 *   - Every op may be called concurrently from many threads (FUSE worker
 *     threads, prefetch workers).  A backend does its own locking.
 *   - The caller owns every buffer it passes in; an op never keeps a pointer
 *     to an argument after it returns.  What an op hands back is described
 *     in its comment, with the function that frees it.
 *   - Ops marked "optional" may be NULL.  Call them through the backend_*()
 *     wrappers below, which supply the documented fallback.
 */
#ifndef CHUNKFS_BACKEND_H
#define CHUNKFS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define BACKEND_ABI_VERSION                                                                        \
	3 /* 2: upload_begin, backend_source.upload; 3: file pieces in read_ref */

/* Longest etag a backend may report, including the terminating NUL. */
#define BACKEND_ETAG_MAX 80

/* Which optional metadata fields of struct backend_stat are set. */
enum {
	BACKEND_META_MODE = 1 << 0,
	BACKEND_META_UID = 1 << 1,
	BACKEND_META_GID = 1 << 2,
};

/* What the store knows of one object. */
struct backend_stat {
	uint64_t size;
	struct timespec mtime;       /* last modification, {0,0} if unknown */
	char etag[BACKEND_ETAG_MAX]; /* opaque version tag; changes whenever the
	                              * bytes change; "" if the store has none */
	unsigned meta;               /* BACKEND_META_* bits valid below */
	uint32_t mode;               /* permission bits (07777) */
	uint32_t uid, gid;
};

/*
 * A readable source of bytes for save(): a random-access reader over a
 * known size, so a backend can upload parts in parallel and re-read a part
 * to retry it.  read() fills dst with exactly len bytes from offset off
 * (off + len <= size) and returns 0 or -errno; it may be called from
 * several threads at once.  backend_source_buffer() and
 * backend_source_fd() make the two usual kinds.
 *
 * data (optional) tells where the holes are, so that a sparse source
 * stays sparse: it returns the first offset in [off, end) where bytes
 * other than zeros may be, or end when the range is all a hole.  A
 * backend that keeps files skips the holes (the filesystem backend); one
 * that must send every byte reads them as zeros without touching the disk
 * (read() of the fd source does that itself).  NULL: any byte may be data;
 * call it through backend_source_data().
 */
struct backend_source {
	uint64_t size;
	int (*read)(const struct backend_source *src, uint64_t off, void *dst, size_t len);
	uint64_t (*data)(const struct backend_source *src, uint64_t off, uint64_t end);
	const void *buf; /* for backend_source_buffer() */
	int fd;          /* for backend_source_fd() */
	void *opaque;    /* for sources of the caller's own */
	/* A streaming upload of these bytes begun with upload_begin(), which
	 * save() finishes (or NULL).  See upload_begin. */
	struct backend_upload *upload;
};

/*
 * A streaming save in progress (see upload_begin): the bottom backend's
 * own object, reached through its ops whatever layers sit above.
 */
struct backend_upload_ops;
struct backend_upload {
	const struct backend_upload_ops *ops;
};

struct backend_upload_ops {
	/*
	 * ready: bytes [0, end) of the source are written and will not
	 * change unless changed() says so; the upload may send them now.
	 * end never goes down (a shrink is a changed() call).  Returns at
	 * once: sending happens in the background.
	 */
	void (*ready)(struct backend_upload *u, uint64_t end);
	/*
	 * changed: bytes [off, off + len) were written again (or cut off by
	 * a truncate: len UINT64_MAX - off) after ready() covered them; what
	 * was sent of them is stale.  Call it after the new bytes are in the
	 * source.
	 */
	void (*changed)(struct backend_upload *u, uint64_t off, uint64_t len);
	/* abort: drop the upload and what was sent of it; frees u. */
	void (*abort)(struct backend_upload *u);
};

/* Optional attributes to store with a saved object (NULL: none). */
struct backend_save_attrs {
	unsigned meta; /* BACKEND_META_* bits valid below */
	uint32_t mode, uid, gid;
	struct timespec mtime; /* {0,0}: let the store set it */
};

/* One object found by list(). */
struct backend_entry {
	char *key; /* full key, including the listed prefix */
	struct backend_stat st;
};

/*
 * One page of a listing.  Entries and common prefixes each come in key
 * order.  Free with backend_list_free().
 */
struct backend_list {
	struct backend_entry *entries;
	size_t n_entries;
	char **prefixes; /* "common prefixes": full prefix up to and including
	                  * the delimiter, e.g. "models/bert/" */
	size_t n_prefixes;
	char *next_token; /* NULL on the last page; else pass it back as
	                   * 'token' to get the next page */
};

struct backend;

/* Where stats() reports one counter. */
typedef void (*backend_stats_fn)(void *ctx, const char *group, const char *name, uint64_t value);

/* struct backend.flags */
enum {
	/*
	 * Directories are real: a name is either an object or a directory,
	 * never both, and every directory has a marker (the filesystem
	 * backend).  Without it, "a" and "a/b" may both exist (S3).
	 */
	BACKEND_REAL_DIRS = 1 << 0,
};

/* Pieces of a backend's memory lent by read_ref (see there). */
#define BACKEND_REF_SEGS 32
struct backend_ref {
	unsigned n;            /* pieces filled */
	struct backend *owner; /* whose release_ref() to call */
	struct backend_ref_seg {
		const void *data; /* the bytes, or NULL for a piece of a file: */
		int fd;           /* ... the bytes are at pos in fd (-1 for memory) */
		uint64_t pos;
		size_t len;
		void *pin; /* the owner's handle on the memory or file */
	} seg[BACKEND_REF_SEGS];
};

struct backend_ops {
	int abi_version;  /* BACKEND_ABI_VERSION */
	const char *name; /* "fs", "s3", "mem", "cache", ... */

	/*
	 * stat: fill *st for an existing key.  For a directory marker key
	 * ("d/") it succeeds when the marker exists; a backend whose
	 * directories are real (the filesystem backend) reports every existing
	 * directory as having a marker.  -ENOENT when absent.
	 */
	int (*stat)(struct backend *b, const char *key, struct backend_stat *st);

	/*
	 * read: copy up to len bytes of key starting at off into dst.
	 * Returns the number of bytes copied, which is less than len only when
	 * the object ends first (0 at or past the end).  When etag is not NULL
	 * and not "", the read fails with -ESTALE if the object's etag differs,
	 * so a caller never mixes bytes of two versions.  When st is not NULL
	 * it receives the object's stat as of this read (a backend that cannot
	 * tell leaves st->etag "" and st->size 0).
	 */
	ssize_t (*read)(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
	                const char *etag, struct backend_stat *st);

	/*
	 * read_fd (optional): the object as an open, read-only file
	 * descriptor positioned nowhere in particular, for a caller that can
	 * splice bytes to the kernel without copying them (the FUSE driver).
	 * Offsets in the descriptor are offsets in the object.  The descriptor
	 * keeps reading the version it was opened on: a later save replaces
	 * the object, it never changes bytes under an open descriptor.  Fails
	 * with -ESTALE when etag is given and differs, -EISDIR for a directory
	 * marker.  When st is not NULL it receives that version's stat.
	 * Returns the descriptor (the caller closes it) or -errno.  NULL or
	 * -ENOTSUP: use read().
	 */
	int (*read_fd)(struct backend *b, const char *key, const char *etag,
	               struct backend_stat *st);

	/*
	 * read_ref (optional): read() without the copy, for a caller that
	 * hands the bytes straight to the kernel.  Instead of filling a buffer
	 * it fills ref with up to BACKEND_REF_SEGS pieces of the backend's own
	 * memory, or of local files it holds (fd >= 0: a caller splices them),
	 * holding [off, off + return value), in order; the memory and files stay
	 * valid and unchanged until backend_release_ref(ref), which the caller
	 * must call once (from any thread) after a success.  etag is required (a
	 * pinned read).  The return and st are as read()'s: short only at the
	 * end of the object.  -ENOBUFS: not possible now (no memory to pin, too many
	 * pieces): use read().  A layer without memory of its own passes
	 * read_ref to its inner backend (the memory's owner sets ref->owner and
	 * has release_ref); NULL: use read().
	 */
	ssize_t (*read_ref)(struct backend *b, const char *key, uint64_t off, size_t len,
	                    const char *etag, struct backend_ref *ref, struct backend_stat *st);
	void (*release_ref)(struct backend *b, struct backend_ref *ref);

	/*
	 * save: store src->size bytes read from src under key, replacing any
	 * object of that name.  A save is atomic: readers see the old object
	 * or the new one, never a mix or a partial object, and a failed save
	 * leaves the old object in place.  Parent "directories" are created as
	 * needed.  attrs may be NULL.  When st is not NULL it receives the new
	 * object's stat (its etag at least).  A key ending in '/' creates a
	 * directory marker; src->size must then be 0.  src->read is never
	 * called for a zero-length object.  Saving without attrs replaces the
	 * stored metadata (as an S3 PUT does).  A failed save may leave parent
	 * directories it created behind (empty).
	 */
	int (*save)(struct backend *b, const char *key, const struct backend_source *src,
	            const struct backend_save_attrs *attrs, struct backend_stat *st);

	/*
	 * upload_begin (optional): start sending key's bytes while they are
	 * still being written, so that the save at close has little left to
	 * send.  src must stay valid and readable (from any thread) until the
	 * upload ends; its size is ignored: the caller says with
	 * u->ops->ready() how far the bytes are final and with changed() what
	 * it wrote again.  attrs (may be NULL) are those the object will
	 * probably be saved with.  Nothing is visible under key until the
	 * caller calls save() with a source whose upload is *out: that save
	 * sends what is missing or stale, checks attrs and key against those
	 * given here (and does a plain save if the key differs), and makes
	 * the object visible whole, as any save.  Whatever save() returns,
	 * the upload is over then and freed; to drop it without saving call
	 * u->ops->abort().  A layer passes upload_begin to its inner backend
	 * and save()'s source unchanged; a layer that fails a save without
	 * passing it down must abort src->upload.  NULL: no streaming; the
	 * caller saves at close with a plain source.
	 */
	int (*upload_begin)(struct backend *b, const char *key, const struct backend_source *src,
	                    const struct backend_save_attrs *attrs, struct backend_upload **out);

	/*
	 * remove: delete key.  -ENOENT when absent.  Removing a directory
	 * marker whose prefix still has keys under it succeeds and the
	 * directory stays visible through those keys; a backend with real
	 * directories may keep the directory in that case.
	 */
	int (*remove)(struct backend *b, const char *key);

	/*
	 * list: one page of the keys that start with prefix (may be "") and
	 * sort after start_after (may be NULL), at most max_keys items
	 * (entries plus prefixes; 0 means the backend's default, 1000 for S3).
	 * With delimiter '/', keys with a '/' after the prefix are rolled up
	 * into common prefixes; with delimiter 0 every key is listed.  token
	 * is NULL for the first page, else the previous page's next_token.
	 * A common prefix is listed once, on the page where it first sorts
	 * after the bound (start_after or token, whichever is later); a page
	 * may come back with next_token set even if the next page turns out
	 * empty.  On success *out holds the page (the caller frees it with
	 * backend_list_free()); on failure *out is left empty.
	 */
	int (*list)(struct backend *b, const char *prefix, char delimiter, const char *start_after,
	            const char *token, size_t max_keys, struct backend_list *out);

	/*
	 * copy (optional): store a copy of src under dst, as save() would,
	 * keeping src's mode and owner metadata with a new mtime.  NULL or
	 * -ENOTSUP: backend_copy() reads and saves through a temporary file
	 * (in $TMPDIR, else /var/tmp).
	 */
	int (*copy)(struct backend *b, const char *src, const char *dst, struct backend_stat *st);

	/*
	 * rename (optional): move src to dst atomically, replacing dst.  When
	 * src and dst end in '/', moves the whole prefix.  NULL or -ENOTSUP:
	 * the caller copies and removes instead (not atomic).
	 */
	int (*rename)(struct backend *b, const char *src, const char *dst);

	/*
	 * setattr (optional): replace the stored attributes of the existing
	 * object key with attrs, leaving its bytes alone: mode, uid and gid
	 * as attrs->meta says (fields not set there are removed, as a save
	 * without them would), and attrs->mtime ({0,0}: the store sets it).
	 * When st is not NULL it receives the object's new stat.  -ENOENT
	 * when absent.  NULL or -ENOTSUP: backend_setattr() saves the object
	 * again with attrs (read through a temporary file).
	 */
	int (*setattr)(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
	               struct backend_stat *st);

	/*
	 * space (optional): total and free bytes of the store, for statfs.
	 * NULL: the FUSE layer reports a large fixed size.
	 */
	int (*space)(struct backend *b, uint64_t *total, uint64_t *avail);

	/*
	 * prefetch (optional): start loading [off, off + len) of key's
	 * version etag (NULL or "": the current version) in the background
	 * and return at once, so later reads of the range find it ready.
	 * Returns 0 when started or when there is nothing to do, -errno
	 * otherwise (-EAGAIN: too much already queued).  It is a hint: a
	 * failure of the background work is never an error a reader sees,
	 * and a caller may ignore the return.  The range may run past the
	 * object's end.  NULL: the backend cannot prefetch (every bottom
	 * backend; the block cache can).
	 */
	int (*prefetch)(struct backend *b, const char *key, const char *etag, uint64_t off,
	                uint64_t len);

	/*
	 * stats (optional): report this backend's counters, calling
	 * emit(ctx, group, name, value) once per counter (group is the
	 * backend's name: "s3", "cache", ...), and then, for a layer, its
	 * inner backend's (backend_stats() does that for a layer without the
	 * op).  Called from any thread; values may be slightly stale.
	 */
	void (*stats)(struct backend *b, backend_stats_fn emit, void *ctx);

	/* destroy: free the backend and, for a layer, its inner backend. */
	void (*destroy)(struct backend *b);
};

/*
 * Every backend struct starts with this header, so a pointer to the
 * backend's private struct is also a struct backend *.
 */
struct backend {
	const struct backend_ops *ops;
	unsigned flags; /* BACKEND_* above, set by create; a layer copies its
	                 * inner backend's */
	/* Limits of the store, set by create (0: none); a layer copies its
	 * inner backend's.  See "Keys" above. */
	size_t key_max;    /* longest key, in bytes */
	uint64_t size_max; /* largest object, in bytes */
};

/* --- helpers every caller uses (backend.c) ---------------------------- */

/* 1 if key is a valid key as described above, else 0.  A lone "/" is not. */
int backend_key_valid(const char *key);

/* A source over len bytes at buf; buf must outlive the save. */
struct backend_source backend_source_buffer(const void *buf, size_t len);

/*
 * A source over the first size bytes of fd, read with pread(); its holes
 * (SEEK_DATA) are read as zeros without reading the file, and reported
 * by data().  lseek() moves fd's file position: use fd with pread() and
 * pwrite() only.
 */
struct backend_source backend_source_fd(int fd, uint64_t size);

/* src->data(src, off, end), or off when src has no data op. */
uint64_t backend_source_data(const struct backend_source *src, uint64_t off, uint64_t end);

/* save() of a buffer / an open file: shorthands over the sources above. */
int backend_save_buffer(struct backend *b, const char *key, const void *buf, size_t len,
                        struct backend_stat *st);
int backend_save_fd(struct backend *b, const char *key, int fd, uint64_t size,
                    struct backend_stat *st);

/*
 * Read exactly len bytes (or until the end of the object) by calling
 * read() until done.  Same return as the read op.
 */
ssize_t backend_read_full(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                          const char *etag);

/*
 * Copy the whole object to fd at offset 0 in pieces (never all in memory).
 * Returns 0 or -errno.  On success *st (if not NULL) is the object's stat.
 */
int backend_read_to_fd(struct backend *b, const char *key, int fd, struct backend_stat *st);

/*
 * For a layer that passes its optional ops through: clear in ops every
 * optional op (read_fd, read_ref, copy, rename, space, prefetch,
 * upload_begin) that inner lacks, so callers see the same capabilities as
 * below.
 */
void backend_ops_trim(struct backend_ops *ops, const struct backend *inner);

/* A layer's read of one pinned version (see backend_read_current()). */
typedef ssize_t (*backend_pinned_read_fn)(void *ctx, const char *key, uint64_t off, void *dst,
                                          size_t len, const char *etag, struct backend_stat *st);

/*
 * For a layer that keys what it holds by version: an unpinned read of
 * [off, off + len) done as a pinned one.  Stats inner for the current
 * version and reads it with pinned(ctx, ...), clipped to the object; if
 * the object changed in between (-ESTALE), starts over, at most retries
 * more times, then reads through inner in one call (one call is one
 * version).  An inner that reports no etag is read through at once.  st
 * as read()'s.
 */
ssize_t backend_read_current(struct backend *inner, const char *key, uint64_t off, void *dst,
                             size_t len, struct backend_stat *st, int retries,
                             backend_pinned_read_fn pinned, void *ctx);

/* End src->upload without saving, if there is one (a layer's failed save). */
void backend_upload_abort(const struct backend_source *src);

/* Give back the memory a read_ref() lent: ref->owner's release_ref(). */
void backend_release_ref(struct backend_ref *ref);

/*
 * Copy the bytes of the pieces a read_ref() lent into dst (memory copied,
 * file pieces read), in order.  Returns the bytes copied or -errno.
 */
ssize_t backend_ref_copy(const struct backend_ref *ref, void *dst);

/* copy() with the fallback described at the op. */
int backend_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st);

/* setattr() with the fallback described at the op. */
int backend_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                    struct backend_stat *st);

/* Free what list() put in *l and zero it.  Safe on an empty list. */
void backend_list_free(struct backend_list *l);

/*
 * Keep in l only what a listing of prefix may hold: entries whose key
 * starts with prefix, and common prefixes that start with it and are
 * longer; then cut the first strip bytes (at most strlen(prefix)) from
 * every kept key and prefix.  Returns how many were dropped.  A store
 * that answers outside what was asked is not trusted to: consumers that
 * index past the prefix call this first.
 */
size_t backend_list_keep(struct backend_list *l, const char *prefix, size_t strip);

/*
 * Report the counters of b (and of the backends under it, for layers that
 * implement stats by calling this on their inner backend).  Nothing for a
 * backend without the op.
 */
void backend_stats(struct backend *b, backend_stats_fn emit, void *ctx);

/* Call b->ops->destroy(b) if b is not NULL. */
void backend_destroy(struct backend *b);

#endif /* CHUNKFS_BACKEND_H */
