/*
 * chunkfs_i.h - state shared by the files of the FUSE driver (fuse/).
 *
 * struct chunkfs is the one context object: fuse_req_userdata() returns it
 * in every op.  It owns the backend stack and the inode table; the options
 * it points to belong to main.c and outlive it.
 */
#ifndef CHUNKFS_CHUNKFS_I_H
#define CHUNKFS_CHUNKFS_I_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>

#include "access.h"
#include "backend.h"
#include "dircache.h"
#include "inode.h"
#include "pagefill.h"
#include "readpolicy.h"
#include "stage.h"

struct manifest_cache;

/* Command-line options of the driver (main.c parses them). */
struct chunkfs_opts {
	char *source;
	char *mountpoint;
	int ro;
	int foreground;
	int debug;
	double shutdown_timeout;   /* longest wait for open files at SIGTERM, 0: none */
	struct access_opts access; /* owner and mode shown (access.h) */
	unsigned metrics_port;     /* Prometheus text on 127.0.0.1, 0: off */
	double attr_timeout;       /* seconds the kernel may cache attributes */
	double entry_timeout;      /* seconds the kernel may cache names */
	char *staging_dir;         /* where files being written are kept */
	unsigned max_threads;
	unsigned read_ahead_kb; /* kernel readahead for the mount, 0: leave it */
	unsigned max_read;      /* largest read request the kernel sends */
	char *log_level;
	unsigned fill_max_mb;  /* largest file fetched whole on random reads, 0: never */
	unsigned whole_max_mb; /* largest file fetched whole from its first read, 0: never */
	struct readpolicy_opts policy; /* what open files fetch ahead (from the above) */
	unsigned stream_min_mb; /* files written in order upload from this size on, 0: never */
	unsigned max_file_mb;   /* -o max_file: largest file written, 0: the store's limit */
	char *recover;          /* -o recover=keep|upload|discard (recovery.c) */
	int manifest_off;       /* -o no_manifest_prefetch (manifest.c) */
	int metadata_refuse;    /* -o metadata=refuse: chmod/chown give EPERM, no HEAD */
	double list_ttl;        /* seconds a directory listing answers lookups */
	unsigned list_cache_mb; /* memory for the listings kept */
	unsigned list_pages;    /* pages one listing may take, 0: no bound */
	unsigned dir_memory_mb; /* memory for open directories' listings */
	int pin;                /* -o pin: trust what was seen for the mount's life */
	const char *cache_dir;  /* -o cache_dir (diskcache.h), or NULL; a pinned
	                         * mount keeps its listings in it too */
};

/* What the driver itself counts (stats.c); atomics, no lock. */
struct chunkfs_counters {
	uint64_t lookups, opens, reads, read_bytes, writes, write_bytes;
	uint64_t saves, save_errors, save_bytes;
};

/* Add n to a counter of struct chunkfs_counters from any thread. */
#define stats_add(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

/* The name of the extended attribute on the mount root holding the stats. */
#define CHUNKFS_STATS_XATTR "user.chunkfs.stats"

struct chunkfs {
	struct backend *be;         /* top of the backend stack; owned */
	struct inode_table *inodes; /* owned */
	struct dircache *dirs;      /* recent listings; NULL with BACKEND_REAL_DIRS; owned */
	int listings_fd;            /* cache_dir/listings of a pinned mount, or -1 */
	const struct chunkfs_opts *opts;
	char *staging_dir;  /* resolved staging directory; owned */
	int staging_fd;     /* its checked descriptor (safedir.h), or -1 */
	char *session_dir;  /* this mount's stages, under it (recovery.c); owned */
	int session_fd;     /* its descriptor, or -1; stages are made relative to it */
	char *recovery_dir; /* unsaved data of failed uploads; owned */
	int recovery_fd;    /* its descriptor, or -1 */
	char *source_id;    /* SOURCE as notes name it; owned */
	int session_lock;   /* flock held on session_dir/lock, or -1 */
	uid_t uid;          /* owner shown for every file */
	gid_t gid;
	struct timespec mount_time;       /* mtime shown for implicit directories */
	char bdi[32];                     /* "major:minor" of the mount, for readahead */
	pthread_once_t tune_once;         /* readahead is set at the first open */
	struct chunkfs_counters counters; /* updated with stats_add() */
	int forced_exit;                  /* atomic: shutdown cut open files off */
	int draining;                     /* atomic: a signal detached the mount */
	unsigned kept_at_exit;            /* atomic: stages left unsaved at the end */
	struct fuse_session *se;          /* set once the session exists */
	struct pagefill_set fills;        /* pagefill.c */
	struct manifest_cache *manifests; /* manifest.c; owned */
	size_t dir_bytes;                 /* atomic: held by open directories */
};

/* An open file handle (fi->fh). */
struct fh {
	struct node *node;
	int writable;
	char etag[BACKEND_ETAG_MAX]; /* version being read, pinned at open */
	int fd;                      /* that version as a local file, or -1 */
	uint64_t size;               /* its size, when fd >= 0 */
	int policy_on;               /* reads come from the store: policy is used */
	pthread_mutex_t policy_lock; /* serialises the reads' calls to policy */
	struct readpolicy policy;    /* what to fetch ahead (readpolicy.h) */
};

/* The low-level operations table (ops.c). */
extern const struct fuse_lowlevel_ops chunkfs_ops;

/* Create and destroy the context; see main.c for who calls them. */
struct chunkfs *chunkfs_create(struct backend *be, const struct chunkfs_opts *opts);
void chunkfs_destroy(struct chunkfs *fs);

/*
 * ops.c: this mount changed key (a file, or a directory with tree set):
 * the listings that may no longer be true are dropped (dircache.h).
 */
void chunkfs_changed(struct chunkfs *fs, const char *key, int tree);

/*
 * ops.c: the key of name inside parent, as every op that names a child
 * builds it (marker: it will be saved with a trailing '/', as mkdir's
 * directory marker).  -ENAMETOOLONG for a name over 255 bytes or a key
 * over the store's key_max (logged with the limit), -EINVAL for a name no
 * key can hold.  0 with *key set (the caller frees it), or -errno with
 * *key NULL.
 */
int chunkfs_child_key(struct chunkfs *fs, struct node *parent, const char *name, int marker,
                      char **key);

/* ops.c: the attributes the kernel sees for a node.  Node lock held. */
void chunkfs_fill_attr(struct chunkfs *fs, struct node *node, struct stat *st);

/* file.c: file ops, called from the table in ops.c. */
void file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void file_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                 struct fuse_file_info *fi);
/* Answer a read with [off, off + size) of the local file fd of fsize
 * bytes, spliced where the kernel can (file.c). */
void file_reply_fd(struct chunkfs *fs, fuse_req_t req, int fd, uint64_t fsize, size_t size,
                   off_t off);
void file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                struct fuse_file_info *fi);
void file_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void file_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/*
 * file.c: set a file's size, through its stage if it is open for writing,
 * else through a temporary stage that is saved at once.  attrs (may be
 * NULL) replace the stage's attributes and mtime; with save_now an open
 * file's stage is saved now too.  Node lock held.  0 or -errno.
 */
int file_truncate(struct chunkfs *fs, struct node *node, uint64_t size,
                  const struct backend_save_attrs *attrs, int save_now);

/* file.c: save a dirty stage to the backend.  Node lock held.  0 or -errno. */
int file_save(struct chunkfs *fs, struct node *node);

/* file.c: at unmount, save (when save is set) and free a node's stage. */
void file_stage_shutdown(struct chunkfs *fs, struct node *node, int save);

/*
 * stats.c: the statistics document, JSON (see README "Statistics").  The
 * caller frees it.  NULL on failure.
 */
char *chunkfs_stats_json(struct chunkfs *fs);

/* The monotonic clock, and whether t is less than secs ago. */
struct timespec chunkfs_now(void);
int chunkfs_fresh(struct timespec t, double secs);

#endif
