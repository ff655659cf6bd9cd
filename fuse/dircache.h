/*
 * dircache.h - recent directory listings, kept to answer lookups.
 *
 * On a store without real directories (S3), the cheapest way to know what
 * a name is, is the listing of its parent with the '/' delimiter: one
 * request answers for every child, objects (with size, etag and mtime),
 * directories (common prefixes) and names that do not exist.  The cache
 * keeps such listings, keyed by the directory's prefix ("" for the root,
 * "a/b/" for a/b), for ttl seconds (or for the life of the mount), so
 * that loading N files of one directory costs one listing, not N probes.
 *
 * A listing longer than max_entries is not kept: the directory is marked
 * "big" (for ttl too) and its names are probed one by one by the caller.
 * The listings held count against a memory budget and a number of
 * directories; the least recently used go first.  Changes made through
 * the mount drop the listings they touch (dircache_changed()).
 *
 * Items carry the attributes of the listing; an item can also carry the
 * object's own metadata (mode, owner, mtime headers) once a stat fetched
 * it, so a name is stat'ed once per version, not once per lookup.
 */
#ifndef CHUNKFS_DIRCACHE_H
#define CHUNKFS_DIRCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"

/* What dircache_lookup() returns when the listing cannot answer. */
#define DIRCACHE_UNKNOWN 1

/* Defaults of struct dircache_opts. */
#define DIRCACHE_DEFAULT_TTL         10.0
#define DIRCACHE_DEFAULT_MAX_DIRS    1024
#define DIRCACHE_DEFAULT_MAX_ENTRIES 10000
#define DIRCACHE_DEFAULT_MAX_BYTES   (64u << 20)
/* Pages per listing (1000 keys each) and memory for the listings open
 * directories hold: enough for millions of keys, not for a store whose
 * listing never ends. */
#define DIRCACHE_DEFAULT_MAX_PAGES 10000
#define DIRCACHE_DEFAULT_SNAP_MB   512

/* One name of a directory. */
struct dircache_item {
	char *name;
	mode_t type;            /* S_IFREG or S_IFDIR */
	struct backend_stat st; /* from the listing, or from a stat (have_meta) */
	int have_meta;          /* st holds the object's own metadata */
};

/* A directory's names, sorted, one item per name (a directory wins over an
 * object of the same name). */
struct dircache_listing {
	struct dircache_item *items;
	size_t n, cap;
};

struct dircache_opts {
	double ttl;         /* seconds a listing answers; < 0: for ever (pin) */
	size_t max_dirs;    /* listings kept at most */
	size_t max_entries; /* longer listings are not kept (0: no bound) */
	size_t max_pages;   /* pages one listing may take (0: no bound) */
	size_t max_bytes;   /* memory for all listings kept */
	int save_dirfd;     /* with ttl < 0 (pin): a directory the listings
	                     * (and the metadata stat'ed) are also saved in, so
	                     * a later pinned mount answers from them with no
	                     * request; -1: none.  Not owned. */
};

struct dircache_stats {
	uint64_t hits;    /* lookups answered from a kept listing */
	uint64_t loads;   /* listings read for a lookup */
	uint64_t big;     /* lookups left to the caller: directory too big */
	uint64_t evicted; /* listings dropped for the budget */
	uint64_t dirs;    /* listings kept now */
	uint64_t bytes;   /* their memory */
	uint64_t saved;   /* listings read back from save_dirfd */
};

/* Bounds of one listing read by dircache_list(); 0: no bound. */
struct dircache_limits {
	size_t max_items; /* more items: -E2BIG */
	size_t max_pages; /* more pages: -EIO */
	size_t max_bytes; /* more memory (dircache_listing_bytes()): -EIO */
};

/*
 * Read the whole listing of prefix ("" or ending in '/') from be, page by
 * page, into *out (empty on entry; free with dircache_listing_free()).
 * Keys that cannot be file names here (outside prefix, empty, . or ..,
 * '/' or control characters inside, too long) are skipped with one
 * warning for the listing.  A store that hands back the continuation
 * token it was given gets -EIO at once; a listing beyond lim gets
 * -E2BIG or -EIO as lim says, each with a warning.  Else 0 or -errno.
 */
int dircache_list(struct backend *be, const char *prefix, const struct dircache_limits *lim,
                  struct dircache_listing *out);

/* The memory a listing's items hold (counted against the budgets). */
size_t dircache_listing_bytes(const struct dircache_listing *l);

/* Free the items of a listing and empty it. */
void dircache_listing_free(struct dircache_listing *l);

/* The item called name in a listing, or NULL (binary search). */
struct dircache_item *dircache_listing_find(const struct dircache_listing *l, const char *name);

/*
 * A cache over be (not owned; it lists through it).  NULL + errno on
 * failure.  Free with dircache_destroy().
 */
struct dircache *dircache_create(struct backend *be, const struct dircache_opts *opts);
void dircache_destroy(struct dircache *dc);

/*
 * What the listing of key's parent says about key ("a/b/c": the name c in
 * "a/b/"): S_IFREG (*st and *have_meta filled), S_IFDIR, -ENOENT, or
 * DIRCACHE_UNKNOWN when the directory is too big to keep.  Without a
 * fresh listing it lists the parent first (with load 0 it does not, and
 * answers DIRCACHE_UNKNOWN); one thread lists, others asking meanwhile
 * wait for it.  -errno when the listing fails.  Thread-safe.
 */
int dircache_lookup(struct dircache *dc, const char *key, int load, struct backend_stat *st,
                    int *have_meta);

/*
 * The generation of the cache: read it before listing a directory
 * yourself, and hand it to dircache_put() so that a listing which a
 * change of this mount overtook is not kept.
 */
uint64_t dircache_gen(struct dircache *dc);

/* Keep a copy of a listing of prefix read by the caller (opendir). */
void dircache_put(struct dircache *dc, const char *prefix, const struct dircache_listing *l,
                  uint64_t gen);

/* A copy of the fresh listing of prefix into *out (empty on entry):
 * 0, or -ENOENT when none is kept. */
int dircache_get(struct dircache *dc, const char *prefix, struct dircache_listing *out);

/* A stat of key returned *st: keep it with the item as its metadata. */
void dircache_set_meta(struct dircache *dc, const char *key, const struct backend_stat *st);

/*
 * This mount changed key (an object, or a directory with tree set):
 * drop the listings of its parent and every ancestor (a directory can
 * appear or vanish with its last key), and with tree, those of key
 * itself and everything under it.
 */
void dircache_changed(struct dircache *dc, const char *key, int tree);

void dircache_get_stats(struct dircache *dc, struct dircache_stats *out);

/* Check the invariants (see dircache.c): 0, or -1 when one is broken. */
int dircache_check(struct dircache *dc);

#endif
