/*
 * inode.h - the table of inodes the kernel knows about.
 *
 * Every file or directory the kernel has looked up is a struct node.  The
 * FUSE node id handed to the kernel is the node's address (FUSE_ROOT_ID for
 * the root), so turning a request's ino into a node costs nothing; the
 * st_ino shown to programs is a separate counter that is never reused.
 *
 * A node does not store its key: it stores its parent and its name, and the
 * key is built on demand by walking up (inode_key()).  A rename therefore
 * moves one node, and every descendant's key follows.
 *
 * Lifetime: a node lives while the kernel holds lookups on it (nlookup > 0)
 * or while it has children in the table; the root lives as long as the
 * table.  Nodes are found by (parent, name) through a hash table; a node
 * that was unlinked or replaced is "detached": no longer findable by name,
 * but alive until the kernel forgets it.
 *
 * Locking: one table lock protects every field marked [T] (the hash table,
 * parent, name, nlookup, nchildren).  Each node's own lock protects the
 * fields marked [N].  Lock order: a node lock may be taken while holding
 * the table lock, never the other way round.
 */
#ifndef CHUNKFS_INODE_H
#define CHUNKFS_INODE_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "backend.h"

struct stage;
struct pagefill;

struct node {
	uint64_t number;     /* st_ino; immutable */
	uint64_t generation; /* immutable */
	mode_t type;         /* S_IFDIR or S_IFREG; immutable */

	struct node *parent; /* [T] NULL for the root */
	char *name;          /* [T] "" for the root */
	uint64_t nlookup;    /* [T] lookups the kernel holds */
	unsigned nchildren;  /* [T] nodes whose parent is this one */
	int hashed;          /* [T] findable by (parent, name) */
	struct node *next;   /* [T] hash chain */

	pthread_mutex_t lock;
	struct backend_stat st;            /* [N] last known attributes */
	struct timespec st_time;           /* [N] when st was fetched (CLOCK_MONOTONIC) */
	char open_etag[BACKEND_ETAG_MAX];  /* [N] etag at the last open, for keep_cache */
	uint64_t open_size;                /* [N] size at the last open, with open_etag */
	char etag_was[BACKEND_ETAG_MAX];   /* [N] a rename gave the bytes of this etag */
	char etag_moved[BACKEND_ETAG_MAX]; /* [N] this one: handles open on it follow */
	struct stage *stage;               /* [N] local copy being written, or NULL */
	unsigned nopen;                    /* [N] open file handles */
	int unlinked;                      /* [N] removed while open: never save again */
	struct pagefill *fill;             /* fill running on it, under the mount's pagefill lock */
};

struct inode_table;

/*
 * Whether an object of this etag and size is the version the node's last
 * open saw (open_etag, open_size), so the kernel's cached pages hold its
 * bytes.  The size counts too: on a store with weak or constant ETags two
 * objects can share one.  Caller holds node->lock.
 */
int inode_opened_version(const struct node *node, const char *etag, uint64_t size);

/* Create a table with a root directory node.  NULL + errno on failure. */
struct inode_table *inode_table_create(void);

/* Free every node.  No other call may run concurrently. */
void inode_table_destroy(struct inode_table *t);

/* The node for a FUSE ino received from the kernel. */
struct node *inode_from_ino(struct inode_table *t, fuse_ino_t ino);

/* The FUSE ino to hand to the kernel for a node. */
fuse_ino_t inode_to_ino(const struct node *n);

/*
 * Find the child called name, or create it, with the given type, and take
 * one lookup on it (the caller replies with it to the kernel, or calls
 * inode_forget(n, 1)).  A child found with another type (a file replaced
 * by a directory behind our back) is detached and a new node is made.
 * NULL + errno (ENOMEM) on failure.
 */
struct node *inode_link(struct inode_table *t, struct node *parent, const char *name, mode_t type);

/*
 * The child called name if the table has one, with one lookup taken (drop
 * it with inode_forget), else NULL.  Used to find a file being written
 * that the backend does not have yet.
 */
struct node *inode_find(struct inode_table *t, struct node *parent, const char *name);

/* Take one lookup on a node already held, so it outlives the kernel's. */
void inode_hold(struct inode_table *t, struct node *node);

/* Drop n lookups; the node is freed when nothing holds it any more. */
void inode_forget(struct inode_table *t, struct node *node, uint64_t n);

/* Make the node unfindable by name (after unlink or rmdir). */
void inode_detach(struct inode_table *t, struct node *node);

/*
 * Give node a new parent and name (after a rename).  A node already
 * hashed at the destination is detached first.  0 or -ENOMEM.
 */
int inode_move(struct inode_table *t, struct node *node, struct node *new_parent,
               const char *new_name);

/*
 * The node's key: "" for the root, "a/b" for b in a.  With a non-NULL
 * child, the key of that name inside node ("a/b/child").  The caller frees
 * it.  NULL + errno on failure.
 */
char *inode_key(struct inode_table *t, struct node *node, const char *child);

/* Called on one node by inode_foreach(). */
typedef void (*inode_visit_fn)(struct node *node, void *ctx);

/*
 * Call fn on the root and on every node findable by name.  For shutdown:
 * no other call may run concurrently, but fn may call inode functions
 * that do not add or remove nodes (inode_key).
 */
void inode_foreach(struct inode_table *t, inode_visit_fn fn, void *ctx);

#endif
