/*
 * file.c - file contents: open, read, write, flush, fsync, release, and
 * truncation.
 *
 * Reading a file nobody writes goes straight to the backend stack, pinned
 * to the etag seen at open, so one open never mixes two versions of an
 * object (a changed object gives EIO and a warning, never wrong bytes).
 *
 * Writing: the first writable open of a file makes a "stage", a local copy
 * in the staging directory (fetched whole from the backend unless the file
 * is new or truncated; lazy fetching comes with the write-path issue).
 * All handles of the node share it, so they see each other's writes, and
 * reads of a staged file come from it.  flush (every close()) and fsync
 * save a dirty stage to the backend with one save(): close() and fsync()
 * return the save's error.  The last release saves once more if still
 * dirty; if that fails, the staged file is kept and the log names it.
 *
 * State machine of node->stage (under node->lock):
 *   NULL --open(write)/create--> clean or dirty --write/truncate--> dirty
 *   dirty --save ok--> clean;  any --last release--> NULL
 * Invariant: stage->size is the staged file's length.
 */
#include "chunkfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "manifest.h"

/* A safetensors header is read in one request of this size when it fits,
 * else in a second of its size, up to the limit. */
#define POLICY_HEADER_FIRST ((size_t)64 << 10)
#define POLICY_HEADER_MAX   ((size_t)16 << 20)

static struct chunkfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fh *fh_of(struct fuse_file_info *fi)
{
	return (struct fh *)(uintptr_t)fi->fh;
}

static struct fh *fh_new(struct node *node, int writable)
{
	struct fh *fh = calloc(1, sizeof(*fh));

	if (fh == NULL)
		return NULL;
	fh->node = node;
	fh->writable = writable;
	fh->fd = -1;
	pthread_mutex_init(&fh->policy_lock, NULL);
	return fh;
}

static void fh_free(struct fh *fh)
{
	if (fh == NULL)
		return;
	readpolicy_close(&fh->policy);
	if (fh->fd >= 0)
		close(fh->fd);
	pthread_mutex_destroy(&fh->policy_lock);
	free(fh);
}

/* Have the cache fetch what the policy asked for (a hint: errors ignored). */
static void policy_act(struct chunkfs *fs, struct fh *fh, const char *key, const char *etag,
                       const struct readpolicy_action *a)
{
	if (a->len > 0 && fs->be->ops->prefetch != NULL &&
	    fs->be->ops->prefetch(fs->be, key, etag, a->off, a->len) == -EAGAIN) {
		pthread_mutex_lock(&fh->policy_lock);
		readpolicy_refused(&fh->policy, a);
		pthread_mutex_unlock(&fh->policy_lock);
	}
	if (a->fill)
		pagefill_start(fs, fh);
}

/*
 * A safetensors file: read its header (the version the handle pinned) and
 * give the policy its tensors.  A header that cannot be read or parsed
 * leaves the handle as it was (reads still work; only the fetching ahead
 * differs).
 */
static void policy_read_ranges(struct chunkfs *fs, struct fh *fh, const char *key, uint64_t size)
{
	size_t len = POLICY_HEADER_FIRST, need = 0, n = 0;
	struct readpolicy_range *r = NULL;
	char *buf = NULL;
	ssize_t got;
	int ret = -EAGAIN;

	for (int tries = 0; tries < 2 && ret == -EAGAIN; tries++) {
		char *nb = realloc(buf, len);

		if (nb == NULL)
			break;
		buf = nb;
		got = backend_read_full(fs->be, key, 0, buf, len, fh->etag);
		if (got < 0)
			break;
		ret = readpolicy_safetensors_ranges(buf, (size_t)got, size, &r, &n, &need);
		if (ret == -EAGAIN && (need > POLICY_HEADER_MAX || need <= (size_t)got))
			break;
		len = need;
	}
	free(buf);
	if (ret == 0) {
		readpolicy_set_ranges(&fh->policy, r, n);
		log_debug("\"%s\": %zu tensors; each is fetched whole when first read", key, n);
	} else {
		log_debug("\"%s\": no safetensors header read (%s); read as any file", key,
		          strerror(ret == -EAGAIN ? EFBIG : -ret));
	}
}

/* A handle that reads size bytes of the store's version fh->etag: its
 * read policy starts, and with it the fetch of a whole object. */
static void policy_start(struct chunkfs *fs, struct fh *fh, uint64_t size)
{
	struct readpolicy_action a;
	const char *name;
	char *key = inode_key(fs->inodes, fh->node, NULL);

	if (key == NULL)
		return;
	name = strrchr(key, '/');
	readpolicy_open(&fh->policy, &fs->opts->policy, size, name ? name + 1 : key, &a);
	fh->policy_on = 1;
	if (readpolicy_wants_ranges(&fh->policy))
		policy_read_ranges(fs, fh, key, size);
	policy_act(fs, fh, key, fh->etag, &a);
	free(key);
}

static void policy_read(struct chunkfs *fs, struct fh *fh, const char *key, const char *etag,
                        uint64_t off, size_t size)
{
	struct readpolicy_action a;

	pthread_mutex_lock(&fh->policy_lock);
	readpolicy_read(&fh->policy, off, size, &a);
	pthread_mutex_unlock(&fh->policy_lock);
	policy_act(fs, fh, key, etag, &a);
}

int file_save(struct chunkfs *fs, struct node *node)
{
	struct stage *s = node->stage;
	struct backend_save_attrs attrs;
	struct backend_source src;
	struct backend_stat st;
	char *key;
	int ret;

	if (!s->dirty || node->unlinked)
		return 0;
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		return -ENOMEM;
	/* The whole file must be local before it can be uploaded; the note
	 * names the key now, in case the upload is cut short. */
	ret = stage_fill(fs, node, key);
	if (ret == 0) {
		stage_note(fs, node, key);
		stage_save_args(s, &attrs, &src);
		ret = fs->be->ops->save(fs->be, key, &src, &attrs, &st);
		stats_add(fs->counters.saves, 1);
	}
	if (ret < 0)
		stats_add(fs->counters.save_errors, 1);
	else
		stats_add(fs->counters.save_bytes, s->size);
	if (ret == 0) {
		chunkfs_changed(fs, key, 0);
		s->dirty = 0;
		stage_note(fs, node, key);
		node->st = st;
		node->st.size = s->size;
		node->st_time = chunkfs_now();
		/* The kernel's page cache already holds what we wrote. */
		memcpy(node->open_etag, st.etag, sizeof(node->open_etag));
		node->open_size = s->size;
	} else {
		log_error("saving \"%s\" (%llu bytes) failed: %s; the data stays in %s", key,
		          (unsigned long long)s->size, strerror(-ret), s->path);
	}
	free(key);
	return ret;
}

/* The largest file this mount writes: -o max_file, within the store's limit. */
static uint64_t max_file_size(const struct chunkfs *fs)
{
	uint64_t store = fs->be->size_max, opt = (uint64_t)fs->opts->max_file_mb << 20;

	if (opt == 0 || (store > 0 && store < opt))
		return store;
	return opt;
}

/* -EFBIG, logged, when node may not grow to size bytes.  Node lock held. */
static int check_size(struct chunkfs *fs, struct node *node, uint64_t size)
{
	uint64_t max = max_file_size(fs);
	char *key;

	if (max == 0 || size <= max)
		return 0;
	key = inode_key(fs->inodes, node, NULL);
	log_warn("\"%s\" cannot grow to %llu bytes: files here hold at most %llu (S3 objects "
	         "5 TiB; -o max_file): EFBIG",
	         key ? key : "?", (unsigned long long)size, (unsigned long long)max);
	free(key);
	return -EFBIG;
}

int file_truncate(struct chunkfs *fs, struct node *node, uint64_t size,
                  const struct backend_save_attrs *attrs, int save_now)
{
	int ret, temporary = node->stage == NULL;

	ret = check_size(fs, node, size);
	if (ret < 0)
		return ret;
	if (temporary) {
		ret = stage_open(fs, node, size > 0, NULL);
		if (ret < 0)
			return ret;
		node->stage->dirty = 1;
	}
	ret = stage_truncate(fs, node, size);
	if (ret == 0 && attrs != NULL) {
		node->stage->attrs = *attrs;
		node->stage->mtime = attrs->mtime;
		node->stage->mtime_set = 1;
	}
	if (ret == 0 && (temporary || save_now))
		ret = file_save(fs, node);
	if (temporary) {
		stage_free(node->stage, 0);
		node->stage = NULL;
	}
	return ret;
}

/* Raise the kernel's readahead for this mount, once (see main.c). */
static void tune_readahead(struct chunkfs *fs)
{
	char path[96], val[32];
	FILE *f;

	if (fs->opts->read_ahead_kb == 0 || fs->bdi[0] == '\0')
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", fs->bdi);
	snprintf(val, sizeof(val), "%u", fs->opts->read_ahead_kb);
	f = fopen(path, "w");
	if (f == NULL || fputs(val, f) < 0 || fclose(f) != 0)
		log_info("cannot set %s (not root?); reads use the kernel's default readahead",
		         path);
	else
		log_debug("readahead set to %s KiB", val);
}

/*
 * For a backend that keeps objects as local files, open the object now:
 * reads then splice from that descriptor to the kernel without a copy, and
 * keep reading the version opened.  -ENOTSUP when the backend cannot.
 */
static int open_local_fd(struct chunkfs *fs, struct node *node, struct fh *fh,
                         struct backend_stat *st)
{
	char *key;
	int fd;

	if (fs->be->ops->read_fd == NULL)
		return -ENOTSUP;
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		return -ENOMEM;
	fd = fs->be->ops->read_fd(fs->be, key, NULL, st);
	free(key);
	if (fd < 0)
		return fd == -EISDIR ? -ENOTSUP : fd;
	fh->fd = fd;
	fh->size = st->size;
	return 0;
}

static __thread struct chunkfs *tune_fs;
static void tune_once_cb(void)
{
	tune_readahead(tune_fs);
}

void file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct node *node = inode_from_ino(fs->inodes, ino);
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct backend_stat st;
	int from_store = 0;
	uint64_t pinned_size = 0; /* with fh->etag: the version this handle reads */
	struct fh *fh;
	int ret = 0;

	tune_fs = fs;
	pthread_once(&fs->tune_once, tune_once_cb);
	stats_add(fs->counters.opens, 1);
	if (writable && fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fh = fh_new(node, writable);
	if (fh == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}

	pthread_mutex_lock(&node->lock);
	if (writable && node->stage == NULL) {
		ret = stage_open(fs, node, !(fi->flags & O_TRUNC), NULL);
	} else if (writable && (fi->flags & O_TRUNC) && node->stage->size > 0) {
		ret = stage_truncate(fs, node, 0);
	} else if (!writable && node->stage == NULL) {
		/* Reads are pinned to the version seen now.  The page cache is
		 * kept when that version is the one the kernel cached. */
		pthread_mutex_unlock(&node->lock);
		ret = open_local_fd(fs, node, fh, &st);
		if (ret == -ENOTSUP && !fs->opts->pin &&
		    !chunkfs_fresh(node->st_time, fs->opts->attr_timeout)) {
			char *key = inode_key(fs->inodes, node, NULL);

			ret = key ? fs->be->ops->stat(fs->be, key, &st) : -ENOMEM;
			free(key);
		} else if (ret == -ENOTSUP) {
			ret = 0;
			pthread_mutex_lock(&node->lock);
			st = node->st;
			pthread_mutex_unlock(&node->lock);
		}
		pthread_mutex_lock(&node->lock);
		if (ret == 0 && node->stage == NULL) {
			if (inode_opened_version(node, st.etag, st.size))
				fi->keep_cache = 1;
			memcpy(node->open_etag, st.etag, sizeof(node->open_etag));
			node->open_size = st.size;
			memcpy(fh->etag, st.etag, sizeof(fh->etag));
			pinned_size = st.size;
			node->st = st;
			node->st_time = chunkfs_now();
			from_store = fh->fd < 0 && st.etag[0] != '\0';
		}
	}
	if (ret == 0)
		node->nopen++;
	pthread_mutex_unlock(&node->lock);
	/* A fill of the old bytes must not store after this open's reply. */
	if (ret == 0 && writable)
		pagefill_cancel(fs, node);
	else if (ret == 0)
		pagefill_cancel_other(fs, node, fh->etag, pinned_size);
	if (ret < 0) {
		fh_free(fh);
		fuse_reply_err(req, -ret);
		return;
	}
	if (from_store)
		policy_start(fs, fh, st.size);
	if (!writable)
		manifest_on_open(fs, node);
	fi->fh = (uint64_t)(uintptr_t)fh;
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_lock(&node->lock);
		node->nopen--;
		pthread_mutex_unlock(&node->lock);
		fh_free(fh);
	}
}

void file_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                 struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct node *pnode = inode_from_ino(fs->inodes, parent);
	struct fuse_entry_param e;
	struct backend_stat st;
	struct node *node;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct backend_save_attrs attrs = {
	    .meta = BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID,
	    .mode = mode & 07777,
	    .uid = ctx->uid,
	    .gid = ctx->gid,
	};
	struct fh *fh = NULL;
	char *key = NULL;
	int ret;

	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ret = chunkfs_child_key(fs, pnode, name, 0, &key);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (fi->flags & O_EXCL) {
		ret = fs->be->ops->stat(fs->be, key, &st);
		if (ret != -ENOENT) {
			free(key);
			fuse_reply_err(req, ret == 0 ? EEXIST : -ret);
			return;
		}
	}
	free(key);
	node = inode_link(fs->inodes, pnode, name, S_IFREG);
	fh = node ? fh_new(node, 1) : NULL;
	if (node == NULL || fh == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	pthread_mutex_lock(&node->lock);
	node->unlinked = 0;
	if (node->stage == NULL)
		ret = stage_open(fs, node, 0, &attrs);
	else
		ret = stage_truncate(fs, node, 0);
	if (ret == 0)
		node->nopen++;
	pthread_mutex_unlock(&node->lock);
	if (ret < 0)
		goto fail;
	fi->fh = (uint64_t)(uintptr_t)fh;
	memset(&e, 0, sizeof(e));
	e.ino = inode_to_ino(node);
	e.generation = node->generation;
	e.attr_timeout = fs->opts->attr_timeout;
	e.entry_timeout = fs->opts->entry_timeout;
	pthread_mutex_lock(&node->lock);
	chunkfs_fill_attr(fs, node, &e.attr);
	pthread_mutex_unlock(&node->lock);
	if (fuse_reply_create(req, &e, fi) != 0) {
		file_release(NULL, 0, fi);
		inode_forget(fs->inodes, node, 1);
	}
	return;
fail:
	if (node != NULL)
		inode_forget(fs->inodes, node, 1);
	fh_free(fh);
	fuse_reply_err(req, -ret);
}

/*
 * Splicing replies.  libfuse splices a file buffer to the kernel with
 * SPLICE_F_NONBLOCK, and the first time that meets a page not in the page
 * cache (EAGAIN) it stops splicing for the rest of the session: every
 * later reply is then read into a freshly allocated buffer and copied
 * (measured on a warm disk cache: 30,000 page faults and 0.8 CPU seconds
 * per 240 MiB).  So the pieces are first spliced, blocking, into a pipe
 * of the calling thread, and libfuse is handed the pipe, from which its
 * non-blocking splice cannot fail.
 */
#define REPLY_PIPE_SIZE (1 << 20)

struct reply_pipe {
	int fd[2];
	size_t size; /* what the pipe holds */
};

static pthread_key_t reply_pipe_key;
static pthread_once_t reply_pipe_once = PTHREAD_ONCE_INIT;

static void reply_pipe_close(void *arg)
{
	struct reply_pipe *p = arg;

	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

static void reply_pipe_key_create(void)
{
	if (pthread_key_create(&reply_pipe_key, reply_pipe_close) != 0)
		abort();
}

/* The calling thread's empty pipe, or NULL. */
static struct reply_pipe *reply_pipe(void)
{
	struct reply_pipe *p;
	int size;

	pthread_once(&reply_pipe_once, reply_pipe_key_create);
	p = pthread_getspecific(reply_pipe_key);
	if (p != NULL)
		return p;
	p = calloc(1, sizeof(*p));
	if (p == NULL || pipe2(p->fd, O_CLOEXEC) < 0) {
		free(p);
		return NULL;
	}
	size = fcntl(p->fd[0], F_SETPIPE_SZ, REPLY_PIPE_SIZE);
	p->size = size > 0 ? (size_t)size : (size_t)fcntl(p->fd[0], F_GETPIPE_SZ);
	pthread_setspecific(reply_pipe_key, p);
	return p;
}

/* Drop the thread's pipe (it may hold bytes of a reply that failed). */
static void reply_pipe_drop(struct reply_pipe *p)
{
	pthread_setspecific(reply_pipe_key, NULL);
	reply_pipe_close(p);
}

/* Move the buffers of bv into the pipe, blocking.  0 or -errno. */
static int reply_pipe_fill(struct reply_pipe *p, const struct fuse_bufvec *bv)
{
	for (size_t i = 0; i < bv->count; i++) {
		const struct fuse_buf *b = &bv->buf[i];
		loff_t pos = b->pos;
		struct iovec iov = {.iov_base = b->mem, .iov_len = b->size};
		size_t left = b->size;

		while (left > 0) {
			ssize_t n;

			if (b->flags & FUSE_BUF_IS_FD)
				n = splice(b->fd, &pos, p->fd[1], NULL, left, SPLICE_F_MOVE);
			else
				n = vmsplice(p->fd[1], &iov, 1, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			left -= (size_t)n;
			iov.iov_base = (char *)iov.iov_base + n;
			iov.iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Reply with the total bytes of bv (files and memory), spliced. */
static void reply_spliced(fuse_req_t req, struct fuse_bufvec *bv, size_t total)
{
	struct reply_pipe *p = total > 0 ? reply_pipe() : NULL;
	struct fuse_bufvec pv = FUSE_BUFVEC_INIT(total);
	int left = 0;

	if (p == NULL || total > p->size || reply_pipe_fill(p, bv) < 0) {
		if (p != NULL)
			reply_pipe_drop(p);
		fuse_reply_data(req, bv, FUSE_BUF_NO_SPLICE); /* read and copied */
		return;
	}
	pv.buf[0].flags = FUSE_BUF_IS_FD;
	pv.buf[0].fd = p->fd[0];
	fuse_reply_data(req, &pv, FUSE_BUF_SPLICE_MOVE);
	if (ioctl(p->fd[0], FIONREAD, &left) != 0 || left != 0)
		reply_pipe_drop(p);
}

/* Answer a read from the handle's local file, spliced where the kernel can. */
void file_reply_fd(struct chunkfs *fs, fuse_req_t req, int fd, uint64_t fsize, size_t size,
                   off_t off)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

	if ((uint64_t)off >= fsize)
		size = 0;
	else if (size > fsize - (uint64_t)off)
		size = (size_t)(fsize - (uint64_t)off);
	bv.buf[0].size = size;
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	stats_add(fs->counters.read_bytes, size);
	reply_spliced(req, &bv, size);
}

/*
 * The calling worker thread's read buffer, at least size bytes; NULL when
 * out of memory.  Each FUSE worker keeps one (freed when the thread ends),
 * so a read costs no allocation and no page faults on fresh memory.
 */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

struct read_buf {
	size_t size;
	char data[];
};

static void read_buf_key_create(void)
{
	if (pthread_key_create(&read_buf_key, free) != 0)
		abort();
}

static char *read_buf(size_t size)
{
	struct read_buf *b;

	pthread_once(&read_buf_once, read_buf_key_create);
	b = pthread_getspecific(read_buf_key);
	if (b != NULL && b->size >= size)
		return b->data;
	free(b);
	pthread_setspecific(read_buf_key, NULL);
	b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->size = size;
	pthread_setspecific(read_buf_key, b);
	return b->data;
}

/* Answer a read with lent pieces some of which are files (the disk
 * tier's): those are spliced to the kernel, the memory ones written. */
static void reply_pieces(fuse_req_t req, const struct backend_ref *ref)
{
	union {
		struct fuse_bufvec bv;
		char room[sizeof(struct fuse_bufvec) +
		          (BACKEND_REF_SEGS - 1) * sizeof(struct fuse_buf)];
	} v;

	size_t total = 0;

	memset(&v, 0, sizeof(v));
	v.bv.count = ref->n;
	for (unsigned i = 0; i < ref->n; i++) {
		struct fuse_buf *b = &v.bv.buf[i];

		b->size = ref->seg[i].len;
		total += b->size;
		if (ref->seg[i].data != NULL) {
			b->mem = (void *)ref->seg[i].data;
		} else {
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			b->fd = ref->seg[i].fd;
			b->pos = (off_t)ref->seg[i].pos;
		}
	}
	reply_spliced(req, &v.bv, total);
}

/*
 * Answer a read with the cache's own blocks (read_ref), copying nothing in
 * the daemon: the kernel copies the pieces once, from the iovec.  Returns
 * 1 when answered, -ENOBUFS when the stack cannot lend (the caller reads
 * the usual way), or the read's error (not tried again: a failure that
 * took all its retries would only take them twice).
 */
static ssize_t reply_from_cache(struct chunkfs *fs, fuse_req_t req, const char *key,
                                const char *etag, size_t size, off_t off)
{
	struct backend_ref ref;
	struct iovec iov[BACKEND_REF_SEGS];
	ssize_t n;

	if (fs->be->ops->read_ref == NULL || etag[0] == '\0')
		return -ENOBUFS;
	n = fs->be->ops->read_ref(fs->be, key, (uint64_t)off, size, etag, &ref, NULL);
	if (n < 0)
		return n;
	stats_add(fs->counters.read_bytes, n);
	for (unsigned i = 0; i < ref.n; i++) {
		if (ref.seg[i].data == NULL) {
			reply_pieces(req, &ref);
			backend_release_ref(&ref);
			return 1;
		}
		iov[i].iov_base = (void *)ref.seg[i].data;
		iov[i].iov_len = ref.seg[i].len;
	}
	fuse_reply_iov(req, iov, (int)ref.n);
	backend_release_ref(&ref);
	return 1;
}

void file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct fh *fh = fh_of(fi);
	struct node *node = fh->node;
	char *buf = read_buf(size ? size : 1), etag[BACKEND_ETAG_MAX];
	ssize_t n = -ENOMEM;
	char *key;

	(void)ino;
	stats_add(fs->counters.reads, 1);
	if (buf == NULL)
		goto out;
	pthread_mutex_lock(&node->lock);
	if (fh->etag[0] != '\0' && strcmp(fh->etag, node->etag_was) == 0)
		memcpy(fh->etag, node->etag_moved, sizeof(fh->etag)); /* renamed: same bytes */
	memcpy(etag, fh->etag, sizeof(etag));
	if (node->stage == NULL && fh->fd >= 0) {
		pthread_mutex_unlock(&node->lock);
		file_reply_fd(fs, req, fh->fd, fh->size, size, off);
		return;
	}
	if (node->stage != NULL) {
		n = stage_read(fs, node, buf, size, (uint64_t)off);
		pthread_mutex_unlock(&node->lock);
		goto out;
	}
	pthread_mutex_unlock(&node->lock);
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		goto out;
	if (fh->policy_on)
		policy_read(fs, fh, key, etag, (uint64_t)off, size);
	n = reply_from_cache(fs, req, key, etag, size, off);
	if (n == 1) {
		free(key);
		return;
	}
	if (n == -ENOBUFS)
		n = backend_read_full(fs->be, key, (uint64_t)off, buf, size, etag);
	if (n == -ESTALE) {
		log_warn("\"%s\" changed in the store while open; reopen it to read the new "
		         "version",
		         key);
		n = -EIO;
	}
	free(key);
out:
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
	} else {
		stats_add(fs->counters.read_bytes, n);
		fuse_reply_buf(req, buf, (size_t)n);
	}
}

void file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                struct fuse_file_info *fi)
{
	struct node *node = fh_of(fi)->node;
	struct chunkfs *fs = fs_of(req);
	ssize_t n;

	(void)ino;
	stats_add(fs->counters.writes, 1);
	pthread_mutex_lock(&node->lock);
	if (node->stage == NULL)
		n = -EBADF;
	else
		n = check_size(fs, node, (uint64_t)off + size);
	if (n == 0)
		n = stage_write(fs, node, buf, size, (uint64_t)off);
	pthread_mutex_unlock(&node->lock);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
	} else {
		stats_add(fs->counters.write_bytes, n);
		fuse_reply_write(req, (size_t)n);
	}
}

/* Save a writable handle's file if dirty: what close() and fsync() return. */
static int save_if_dirty(struct chunkfs *fs, struct fh *fh)
{
	struct node *node = fh->node;
	int ret = 0;

	if (!fh->writable)
		return 0;
	pthread_mutex_lock(&node->lock);
	if (node->stage != NULL)
		ret = file_save(fs, node);
	pthread_mutex_unlock(&node->lock);
	return ret;
}

void file_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, -save_if_dirty(fs_of(req), fh_of(fi)));
}

void file_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -save_if_dirty(fs_of(req), fh_of(fi)));
}

/* req may be NULL when called to undo a create whose reply failed. */
void file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct node *node = fh->node;

	(void)ino;
	pthread_mutex_lock(&node->lock);
	if (--node->nopen == 0 && node->stage != NULL) {
		int ret = 0;

		if (node->stage->dirty && !node->unlinked && req != NULL)
			ret = file_save(fs_of(req), node);
		if (ret < 0) {
			stage_to_recovery(fs_of(req), node, -ret);
		} else {
			stage_free(node->stage, 0);
			node->stage = NULL;
		}
	}
	pthread_mutex_unlock(&node->lock);
	fh_free(fh);
	if (req != NULL)
		fuse_reply_err(req, 0);
}

/*
 * At unmount, once the kernel is gone: a stage whose last release never
 * came (the kernel drops it when a lazily unmounted mount dies) is saved
 * if dirty and save is set, then freed; a stage that stays unsaved is
 * kept on disk and named in the log.  Node lock not held.
 */
void file_stage_shutdown(struct chunkfs *fs, struct node *node, int save)
{
	int keep = 0;

	pthread_mutex_lock(&node->lock);
	if (node->stage != NULL) {
		if (node->stage->dirty && !node->unlinked)
			keep = save ? file_save(fs, node) < 0 : 1;
		if (keep) {
			log_error("unsaved data of a file open at shutdown kept in %s",
			          node->stage->path);
			__atomic_fetch_add(&fs->kept_at_exit, 1, __ATOMIC_RELAXED);
		}
		stage_free(node->stage, keep);
		node->stage = NULL;
	}
	pthread_mutex_unlock(&node->lock);
}
