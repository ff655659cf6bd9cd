/*
 * stage.h - the local copy of a file being written (stage.c).
 *
 * A stage is a sparse file in the mount's session directory under the
 * staging directory, plus a small sidecar "note" naming the key it belongs
 * to, so that a stage left behind by a crash can be found and uploaded by
 * the next mount (recovery.c).
 *
 * Overwriting an existing object does not download it up front.  The
 * object's bytes [0, orig_limit) are "original": each 1 MiB block of that
 * range is fetched from the backend (pinned to the etag seen at open) only
 * when a read or a partial write touches it, or when the stage is saved.
 * A bitmap says which blocks the stage file holds.  A write that covers a
 * whole block never fetches it.
 *
 * A file written front to back from empty (cp, dd, torch.save) is sent
 * while it is written: once -o stream_min MiB are written in order, the
 * stage begins a streaming upload (the backend's upload_begin) and tells
 * it after every write how far the bytes written in order reach, and what
 * was written again below that.  The save at close then sends only what
 * is left.  Nothing is visible in the store before that save.
 *
 * Every function here is called with node->lock held.
 */
#ifndef CHUNKFS_STAGE_H
#define CHUNKFS_STAGE_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "backend.h"

/* Granularity of lazy fetching. */
#define STAGE_BLOCK ((uint64_t)1 << 20)

struct chunkfs;
struct node;

struct stage {
	int fd;
	int dirfd;       /* the session directory holding both files; not owned */
	char *path;      /* the data file (for messages; names are used from dirfd) */
	char *note_path; /* path + ".note" */
	uint64_t size;   /* the staged file's length */
	int dirty;       /* differs from what the backend has */
	struct timespec mtime;
	struct backend_save_attrs attrs; /* mode/owner to store with the next save */
	char etag[BACKEND_ETAG_MAX];     /* version the original bytes come from */
	uint64_t orig_size;              /* ... and its size (two objects may share an etag) */
	uint64_t orig_limit;             /* bytes below it not held come from there */
	uint8_t *have;                   /* bitmap of blocks held, below orig_limit */
	int noted_complete, noted_dirty; /* what the note says */
	int note_ok;                     /* the note exists */
	int mtime_set;                   /* mtime set by utimens/setattr, not by writes */

	/* Streaming upload (see stage_write): */
	uint64_t seq_end;                 /* [0, seq_end) was written in order from 0 */
	struct backend_upload *upload;    /* sending the bytes already, or NULL */
	struct backend_source upload_src; /* what it reads: the stage file */
};

/*
 * Make node->stage.  With keep, the stage stands for the object's current
 * contents (nothing is downloaded yet: one stat gives the size and etag;
 * a missing object gives an empty stage); otherwise it starts empty and
 * dirty (a new or truncated file).  attrs, when not NULL, are the
 * attributes a new file is saved with; otherwise those of node->st are
 * kept.  0 or -errno.
 */
int stage_open(struct chunkfs *fs, struct node *node, int keep,
               const struct backend_save_attrs *attrs);

/* Free a stage; with keep_file the data file and note stay on disk. */
void stage_free(struct stage *s, int keep_file);

/* Read from the stage, fetching original blocks as needed.  Bytes or -errno. */
ssize_t stage_read(struct chunkfs *fs, struct node *node, void *dst, size_t len, uint64_t off);

/* Write to the stage (see the top of the file).  Bytes or -errno. */
ssize_t stage_write(struct chunkfs *fs, struct node *node, const void *src, size_t len,
                    uint64_t off);

/* Set the stage's size.  0 or -errno. */
int stage_truncate(struct chunkfs *fs, struct node *node, uint64_t size);

/*
 * The attributes the next save stores, and the source it reads, which
 * carries the streaming upload if there is one (the save finishes it;
 * the stage lets go of it).
 */
void stage_save_args(struct stage *s, struct backend_save_attrs *attrs, struct backend_source *src);

/* Mark the stage dirty (and say so in its note).  0 or -errno. */
int stage_touch(struct chunkfs *fs, struct node *node);

/* Fetch every original block still missing.  0 or -errno. */
int stage_fill(struct chunkfs *fs, struct node *node, const char *key);

/* 1 if every original block is held. */
int stage_complete(const struct stage *s);

/*
 * Rewrite the note: key (NULL: built from the node), state and
 * completeness.  0 or -errno.
 */
int stage_note(struct chunkfs *fs, struct node *node, const char *key);

/*
 * Move the stage's data and note into the recovery directory after a
 * final failed save, free the stage and set node->stage to NULL.  The log
 * names the key and the new path.
 */
void stage_to_recovery(struct chunkfs *fs, struct node *node, int err);

#endif
