/*
 * stage.c - the local copy of a file being written: lazy fetching of the
 * original bytes, the sidecar note, and the hand-over to recovery.
 *
 * State of one stage (all under node->lock):
 *   size        the staged file's length, >= orig_limit
 *   orig_limit  bytes [0, orig_limit) that are not held come from the
 *               object version etag; it only shrinks (truncate)
 *   have        bit b set: block b (STAGE_BLOCK bytes) is in the file
 * Invariants: a block below orig_limit whose bit is clear holds no byte
 * written through the mount (a partial write fetches the block first), so
 * filling it from the original never overwrites a write, and it reads
 * zeros (a hole), so a fetch leaves the original's pages of zeros
 * unwritten; bytes at or above orig_limit are the file's own (written, or
 * zeros from a truncate, which is a hole).
 *
 * Streaming (stage.h): seq_end is how far the bytes written in order from
 * offset 0 reach.  Only a stage with no original bytes streams (a block
 * not fetched yet would be a hole in what is sent); a truncate below
 * seq_end drops the upload, and the next write starts another.
 *
 * The note is rewritten when the stage turns dirty, before every save, and
 * after a save succeeds, so a crash at any point leaves a note that says
 * whether the data still needs saving and under which key.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "io.h"
#include "log.h"
#include "recovery.h"
#include "safedir.h"

/* Original bytes are fetched in reads of at most this many blocks. */
#define FETCH_BLOCKS 8

/* The last component of path: the name of a stage file in its directory. */
static const char *base_name(const char *path)
{
	return strrchr(path, '/') + 1;
}

static int have_block(const struct stage *s, uint64_t b)
{
	return (s->have[b / 8] >> (b % 8)) & 1;
}

static void set_block(struct stage *s, uint64_t b)
{
	s->have[b / 8] |= (uint8_t)(1u << (b % 8));
}

/* Block b holds original bytes that are not in the file yet. */
static int block_missing(const struct stage *s, uint64_t b)
{
	return b * STAGE_BLOCK < s->orig_limit && !have_block(s, b);
}

int stage_complete(const struct stage *s)
{
	uint64_t n = (s->orig_limit + STAGE_BLOCK - 1) / STAGE_BLOCK;

	for (uint64_t b = 0; b < n; b++)
		if (!have_block(s, b))
			return 0;
	return 1;
}

void stage_free(struct stage *s, int keep_file)
{
	if (s == NULL)
		return;
	if (s->upload != NULL)
		s->upload->ops->abort(s->upload); /* before the file it reads closes */
	if (s->fd >= 0)
		close(s->fd);
	if (!keep_file) {
		if (s->path != NULL)
			unlinkat(s->dirfd, base_name(s->path), 0);
		if (s->note_path != NULL)
			unlinkat(s->dirfd, base_name(s->note_path), 0);
	}
	free(s->path);
	free(s->note_path);
	free(s->have);
	free(s);
}

int stage_note(struct chunkfs *fs, struct node *node, const char *key)
{
	struct stage *s = node->stage;
	struct recovery_note n = {
	    .source = fs->source_id,
	    .state = node->unlinked ? NOTE_UNLINKED
	             : s->dirty     ? NOTE_DIRTY
	                            : NOTE_CLEAN,
	    .complete = stage_complete(s),
	    .attrs = s->attrs,
	};
	char *own = NULL;
	int ret;

	if (key == NULL) {
		own = inode_key(fs->inodes, node, NULL);
		if (own == NULL)
			return -ENOMEM;
	}
	n.key = (char *)(key ? key : own);
	n.attrs.mtime = s->mtime;
	ret = recovery_note_write(s->dirfd, base_name(s->note_path), &n);
	if (ret == 0) {
		s->note_ok = 1;
		s->noted_dirty = s->dirty;
		s->noted_complete = n.complete;
	} else {
		log_warn("cannot write %s: %s; a crash now would leave \"%s\" unrecoverable",
		         s->note_path, strerror(-ret), n.key);
	}
	free(own);
	return ret;
}

void stage_save_args(struct stage *s, struct backend_save_attrs *attrs, struct backend_source *src)
{
	*attrs = s->attrs;
	attrs->mtime = s->mtime;
	*src = backend_source_fd(s->fd, s->size);
	if (s->upload != NULL) {
		/* The stream sent its attributes when it began, when the last
		 * write's time was not known: unless set explicitly, the mtime
		 * is left to the store (the time of the save). */
		if (!s->mtime_set)
			attrs->mtime = (struct timespec){0, 0};
		src->upload = s->upload;
		s->upload = NULL;
	}
}

/* Drop the streaming upload, if any. */
static void stream_drop(struct stage *s)
{
	if (s->upload != NULL) {
		s->upload->ops->abort(s->upload);
		s->upload = NULL;
	}
}

/*
 * After n bytes were written at off: keep seq_end, and begin or feed the
 * streaming upload.  A failure to begin only means the file is sent at
 * the save.
 */
static void stream_write(struct chunkfs *fs, struct node *node, uint64_t off, uint64_t n)
{
	struct stage *s = node->stage;
	uint64_t min = (uint64_t)fs->opts->stream_min_mb << 20;

	if (s->upload != NULL && off < s->seq_end)
		s->upload->ops->changed(s->upload, off, n);
	if (off <= s->seq_end && off + n > s->seq_end)
		s->seq_end = off + n;
	if (s->upload == NULL && min > 0 && s->seq_end >= min && s->orig_limit == 0 &&
	    !node->unlinked && fs->be->ops->upload_begin != NULL) {
		struct backend_save_attrs a = s->attrs;
		char *key = inode_key(fs->inodes, node, NULL);

		a.mtime = s->mtime_set ? s->mtime : (struct timespec){0, 0};
		s->upload_src = backend_source_fd(s->fd, UINT64_MAX);
		if (key != NULL &&
		    fs->be->ops->upload_begin(fs->be, key, &s->upload_src, &a, &s->upload) < 0)
			s->upload = NULL;
		free(key);
	}
	if (s->upload != NULL)
		s->upload->ops->ready(s->upload, s->seq_end);
}

int stage_touch(struct chunkfs *fs, struct node *node)
{
	struct stage *s = node->stage;

	clock_gettime(CLOCK_REALTIME, &s->mtime);
	s->mtime_set = 0;
	if (s->dirty && s->note_ok && s->noted_dirty)
		return 0;
	s->dirty = 1;
	return stage_note(fs, node, NULL);
}

int stage_open(struct chunkfs *fs, struct node *node, int keep,
               const struct backend_save_attrs *attrs)
{
	struct stage *s = calloc(1, sizeof(*s));
	struct backend_stat st;
	char *key = NULL;
	int ret;

	if (s == NULL)
		return -ENOMEM;
	s->fd = -1;
	s->dirfd = fs->session_fd;
	if (asprintf(&s->path, "%s/stage-%llu-XXXXXX", fs->session_dir,
	             (unsigned long long)node->number) < 0) {
		s->path = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	s->fd = safedir_create_unique(s->dirfd, (char *)base_name(s->path), O_RDWR, 0);
	if (s->fd < 0) {
		ret = s->fd;
		log_error("cannot create a staging file in %s: %s", fs->session_dir,
		          strerror(-ret));
		free(s->path); /* names no file of ours */
		s->path = NULL;
		goto fail;
	}
	if (asprintf(&s->note_path, "%s.note", s->path) < 0) {
		s->note_path = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	s->dirty = 1;
	if (attrs != NULL) {
		s->attrs = *attrs;
	} else {
		s->attrs.meta = node->st.meta;
		s->attrs.mode = node->st.mode & 07777;
		s->attrs.uid = node->st.uid;
		s->attrs.gid = node->st.gid;
	}
	if (keep) {
		ret = fs->be->ops->stat(fs->be, key, &st);
		if (ret == 0) {
			s->size = st.size;
			s->orig_limit = st.size;
			s->orig_size = st.size;
			s->mtime = st.mtime;
			s->dirty = 0;
			memcpy(s->etag, st.etag, sizeof(s->etag));
			s->attrs.meta = st.meta;
			s->attrs.mode = st.mode & 07777;
			s->attrs.uid = st.uid;
			s->attrs.gid = st.gid;
			node->st = st;
			node->st_time = chunkfs_now();
			if (ftruncate(s->fd, (off_t)st.size) < 0) {
				ret = -errno;
				goto fail;
			}
		} else if (ret != -ENOENT) {
			log_error("cannot open \"%s\" to write it: %s", key, strerror(-ret));
			goto fail;
		}
	}
	s->have = calloc((s->orig_limit + STAGE_BLOCK - 1) / STAGE_BLOCK / 8 + 1, 1);
	if (s->have == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	node->stage = s;
	ret = stage_note(fs, node, key);
	if (ret < 0) {
		node->stage = NULL;
		goto fail;
	}
	free(key);
	return 0;
fail:
	free(key);
	stage_free(s, 0);
	return ret;
}

/*
 * Read [off, off + len) of the original: backend_read_full() pinned to
 * its etag, and -ESTALE as well when the object read is not of its size
 * (a store with weak or constant ETags replaces objects under one ETag).
 */
static ssize_t read_original(struct chunkfs *fs, const struct stage *s, const char *key,
                             uint64_t off, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct backend_stat st = {0};
		ssize_t n = fs->be->ops->read(fs->be, key, off + done, buf + done, len - done,
		                              s->etag, &st);

		if (n < 0)
			return n;
		if (st.etag[0] != '\0' && st.size != s->orig_size)
			return -ESTALE;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/*
 * Fetch blocks [b0, b0 + n) of the original into the file, those below
 * orig_limit only.  The caller checked they are missing.
 */
static int fetch_blocks(struct chunkfs *fs, struct stage *s, const char *key, uint64_t b0,
                        uint64_t n)
{
	uint64_t off = b0 * STAGE_BLOCK, end = (b0 + n) * STAGE_BLOCK;
	size_t len;
	ssize_t got;
	char *buf;

	if (end > s->orig_limit)
		end = s->orig_limit;
	if (off >= end)
		return 0;
	len = (size_t)(end - off);
	buf = malloc(len);
	if (buf == NULL)
		return -ENOMEM;
	got = read_original(fs, s, key, off, buf, len);
	if (got == -ESTALE) {
		log_error("\"%s\" changed in the store while being written here; its original "
		          "bytes cannot be fetched (the write fails rather than mix versions)",
		          key);
		got = -EIO;
	} else if (got >= 0 && (size_t)got != len) {
		log_error("\"%s\" is shorter in the store than when it was opened", key);
		got = -EIO;
	} else if (got < 0) {
		log_error("fetching bytes %llu-%llu of \"%s\" failed: %s", (unsigned long long)off,
		          (unsigned long long)end - 1, key, strerror((int)-got));
	}
	/* The stage reads zeros where it holds no block (ftruncate()):
	 * pages of zeros stay holes. */
	if (got >= 0)
		got = io_pwrite_sparse(s->fd, buf, len, (off_t)off);
	free(buf);
	if (got < 0)
		return (int)got;
	for (uint64_t b = b0; b < b0 + n; b++)
		set_block(s, b);
	return 0;
}

/* Fetch every missing block among [first, last], in runs. */
static int fetch_range(struct chunkfs *fs, struct node *node, const char *key, uint64_t first,
                       uint64_t last)
{
	struct stage *s = node->stage;
	char *own = NULL;
	int ret = 0;

	for (uint64_t b = first; b <= last && ret == 0; b++) {
		uint64_t n = 0;

		while (b + n <= last && n < FETCH_BLOCKS && block_missing(s, b + n))
			n++;
		if (n == 0)
			continue;
		if (key == NULL && own == NULL) {
			own = inode_key(fs->inodes, node, NULL);
			if (own == NULL)
				return -ENOMEM;
		}
		ret = fetch_blocks(fs, s, key ? key : own, b, n);
		b += n - 1;
	}
	free(own);
	return ret;
}

int stage_fill(struct chunkfs *fs, struct node *node, const char *key)
{
	struct stage *s = node->stage;
	int ret;

	if (s->orig_limit == 0)
		return 0;
	ret = fetch_range(fs, node, key, 0, (s->orig_limit - 1) / STAGE_BLOCK);
	if (ret == 0 && s->note_ok && !s->noted_complete)
		stage_note(fs, node, key);
	return ret;
}

ssize_t stage_read(struct chunkfs *fs, struct node *node, void *dst, size_t len, uint64_t off)
{
	struct stage *s = node->stage;
	uint64_t end = off + len < s->orig_limit ? off + len : s->orig_limit;
	ssize_t n;

	if (len > 0 && off < end) {
		int ret = fetch_range(fs, node, NULL, off / STAGE_BLOCK, (end - 1) / STAGE_BLOCK);

		if (ret < 0)
			return ret;
	}
	n = pread(s->fd, dst, len, (off_t)off);
	return n < 0 ? -errno : n;
}

/* Whether [off, off + len) covers all of block b's original bytes. */
static int covers_block(const struct stage *s, uint64_t b, uint64_t off, uint64_t len)
{
	uint64_t bs = b * STAGE_BLOCK, be = bs + STAGE_BLOCK;

	if (be > s->orig_limit)
		be = s->orig_limit;
	return off <= bs && off + len >= be;
}

ssize_t stage_write(struct chunkfs *fs, struct node *node, const void *src, size_t len,
                    uint64_t off)
{
	struct stage *s = node->stage;
	uint64_t first = off / STAGE_BLOCK, last = len ? (off + len - 1) / STAGE_BLOCK : first;
	ssize_t n;
	int ret;

	if (len == 0)
		return 0;
	/* Only the first and last blocks can be partly written. */
	if (block_missing(s, first) && !covers_block(s, first, off, len)) {
		ret = fetch_range(fs, node, NULL, first, first);
		if (ret < 0)
			return ret;
	}
	if (last != first && block_missing(s, last) && !covers_block(s, last, off, len)) {
		ret = fetch_range(fs, node, NULL, last, last);
		if (ret < 0)
			return ret;
	}
	n = pwrite(s->fd, src, len, (off_t)off);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ENOSPC;
	if ((size_t)n < len) {
		/* A short write (the staging disk filled up): a block it wrote
		 * only part of must hold its original bytes around the write. */
		uint64_t b = (off + (uint64_t)n) / STAGE_BLOCK;
		uint64_t bs = b * STAGE_BLOCK > off ? b * STAGE_BLOCK : off;

		if (block_missing(s, b) && off + (uint64_t)n > bs) {
			ret = fetch_range(fs, node, NULL, b, b);
			if (ret == 0 && pwrite(s->fd, (const char *)src + (bs - off),
			                       (size_t)(off + (uint64_t)n - bs),
			                       (off_t)bs) != (ssize_t)(off + (uint64_t)n - bs))
				ret = -ENOSPC;
			if (ret < 0)
				return ret;
		}
	}
	for (uint64_t b = first; b <= last; b++)
		if (block_missing(s, b) && covers_block(s, b, off, (uint64_t)n))
			set_block(s, b);
	if (off + (uint64_t)n > s->size)
		s->size = off + (uint64_t)n;
	stage_touch(fs, node); /* a failed note is logged; the write stands */
	stream_write(fs, node, off, (uint64_t)n);
	return n;
}

int stage_truncate(struct chunkfs *fs, struct node *node, uint64_t size)
{
	struct stage *s = node->stage;

	if (ftruncate(s->fd, (off_t)size) < 0)
		return -errno;
	/* Original bytes past the new end are gone for good: growing the
	 * file again gives zeros there. */
	if (size < s->orig_limit)
		s->orig_limit = size;
	if (size < s->seq_end) {
		s->seq_end = size;
		stream_drop(s);
	}
	if (s->size == size && s->dirty)
		return 0;
	s->size = size;
	return stage_touch(fs, node);
}

void stage_to_recovery(struct chunkfs *fs, struct node *node, int err)
{
	struct stage *s = node->stage;
	const char *base = base_name(s->path), *note_base = base_name(s->note_path);
	char *key = inode_key(fs->inodes, node, NULL);
	char *data = NULL;
	int moved = 0;

	stage_note(fs, node, key);
	if (asprintf(&data, "%s/%s", fs->recovery_dir, base) >= 0) {
		int ret = safedir_move(s->dirfd, fs->recovery_fd, base);

		moved = ret == 0;
		if (moved)
			ret = safedir_move(s->dirfd, fs->recovery_fd, note_base);
		if (ret < 0)
			log_error("cannot move %s to %s: %s", moved ? s->note_path : s->path,
			          fs->recovery_dir, strerror(-ret));
	}
	log_error("could not save \"%s\" (%llu bytes): %s; the data is kept in %s (mount again "
	          "with -o recover=upload to save it)",
	          key ? key : "?", (unsigned long long)s->size, strerror(err),
	          moved ? data : s->path);
	stage_free(s, 1);
	node->stage = NULL;
	free(key);
	free(data);
}
