/*
 * pagefill.c - fetch a randomly read file whole, into the kernel's page
 * cache (see pagefill.h).
 *
 * Why
 *   A program that jumps around a file (fio, mmap of a weights file, a
 *   safetensors reader) misses the cache on nearly every read, and each
 *   miss waits one round trip to the store.  Once a handle has been seen
 *   seeking, the whole object is fetched in the background, front to back,
 *   with the prefetch machinery of the block cache (parallel ranged GETs),
 *   and each piece is handed to the kernel with fuse_lowlevel_notify_store():
 *   the kernel puts it in the file's page cache, so later reads of any part
 *   of the file never reach the daemon.  The pages are the kernel's to
 *   evict; they count against no budget of ours, and our own memory stays
 *   that of the block cache plus one piece buffer per fill.
 *
 * When (pagefill_start)
 *   The handle's read policy (readpolicy.h) decides: a file read at random
 *   (a handle that seeked, once for a safetensors file).  A fill starts if
 *   the file is read-only here (no stage), was read from the store (not a
 *   local file), is at most -o fill_max MiB and at most half of the memory
 *   available now, no fill of it is running, and fewer than
 *   PAGEFILL_MAX_RUNNING fills run.  Its parts are fetched by the block
 *   cache's workers in file order; a read that waits for a part still
 *   queued fetches it at once (the cache's queue jump), so the reads of
 *   the program go first.
 *
 * Correctness
 *   A fill reads the version pinned at open (etag), so it stores only
 *   that version's bytes.  Anything that could make those bytes wrong for
 *   the kernel's cache cancels the fill and waits until it can no longer
 *   store: an open for writing, a truncate, an open that finds a new etag
 *   (pagefill_cancel()).  Such an open replies without keep_cache, so the
 *   kernel drops what the fill stored before.
 *
 *   No lock is held across notify_store: the kernel may block it on a page
 *   locked by a read that waits for one of our worker threads.
 *
 * Lifetime
 *   A fill holds a lookup on its node (the node id is the node's address:
 *   storing into a freed and reused node would write another file's
 *   cache).  Fills run on detached threads counted in the set;
 *   pagefill_shutdown() stops them and waits (call it after the session is
 *   unmounted, when a store can no longer block).
 *
 * Locking: set.lock guards every field of struct pagefill_set and of
 * struct pagefill, and node->fill.
 */
#include "pagefill.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkfs_i.h"
#include "log.h"

#define PAGEFILL_MAX_RUNNING 2
#define PAGEFILL_PIECE       ((size_t)1 << 20)    /* one read and one store: a cache block */
#define PAGEFILL_AHEAD       ((uint64_t)64 << 20) /* prefetch this far ahead */

struct pagefill {
	struct chunkfs *fs;
	struct node *node; /* held: one lookup */
	fuse_ino_t ino;
	char *key;
	char etag[BACKEND_ETAG_MAX];
	uint64_t size;
	int stop;    /* set by cancel or shutdown */
	int storing; /* inside notify_store */
};

int pagefill_set_init(struct pagefill_set *set)
{
	memset(set, 0, sizeof(*set));
	if (pthread_mutex_init(&set->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&set->changed, NULL) != 0) {
		pthread_mutex_destroy(&set->lock);
		return -ENOMEM;
	}
	return 0;
}

void pagefill_set_destroy(struct pagefill_set *set)
{
	pthread_cond_destroy(&set->changed);
	pthread_mutex_destroy(&set->lock);
}

/* Bytes of memory available now (MemAvailable), or 0 if unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	uint64_t kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/*
 * Whether the node still shows the version being filled, with no stage.
 * Checked with storing set: whoever changes the node does it under the
 * node lock and then calls pagefill_cancel(), which waits for a store
 * that passed this check, before replying to the kernel.
 */
static int pagefill_node_unchanged(struct pagefill *f)
{
	struct node *node = f->node;
	int same;

	pthread_mutex_lock(&node->lock);
	same =
	    node->stage == NULL && node->st.size == f->size && strcmp(node->st.etag, f->etag) == 0;
	pthread_mutex_unlock(&node->lock);
	return same;
}

/*
 * Store n bytes at off in the page cache, if the fill may still store.
 * Returns 1 when stored, 0 when the fill must end (stopped, node changed,
 * the kernel refused).
 */
static int pagefill_store(struct pagefill *f, uint64_t off, const void *data, size_t n)
{
	struct pagefill_set *set = &f->fs->fills;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
	int ret;

	pthread_mutex_lock(&set->lock);
	if (f->stop || set->shutdown) {
		pthread_mutex_unlock(&set->lock);
		return 0;
	}
	f->storing = 1;
	pthread_mutex_unlock(&set->lock);

	ret = -ESTALE;
	if (pagefill_node_unchanged(f)) {
		bv.buf[0].mem = (void *)data;
		ret = fuse_lowlevel_notify_store(f->fs->se, f->ino, (off_t)off, &bv, 0);
		if (ret != 0)
			log_debug("page-cache fill of \"%s\": the kernel refused a store: %s",
			          f->key, strerror(-ret));
	}

	pthread_mutex_lock(&set->lock);
	f->storing = 0;
	pthread_cond_broadcast(&set->changed);
	if (ret == 0)
		set->stored_bytes += n;
	pthread_mutex_unlock(&set->lock);
	return ret == 0;
}

/*
 * Fetch the object front to back and store it in the page cache, a piece
 * at a time: the cache's own block when it can lend one (no copy), else a
 * copy in buf.
 */
static void pagefill_run(struct pagefill *f, char *buf)
{
	struct chunkfs *fs = f->fs;
	struct backend *be = fs->be;
	struct pagefill_set *set = &fs->fills;
	uint64_t off = 0, asked = 0;

	while (off < f->size) {
		uint64_t ahead = off + PAGEFILL_AHEAD < f->size ? off + PAGEFILL_AHEAD : f->size;
		size_t len =
		    f->size - off < PAGEFILL_PIECE ? (size_t)(f->size - off) : PAGEFILL_PIECE;
		struct backend_ref ref;
		ssize_t n = -ENOBUFS;
		int stop, stored;

		pthread_mutex_lock(&set->lock);
		stop = f->stop || set->shutdown;
		pthread_mutex_unlock(&set->lock);
		if (stop)
			return;
		if (be->ops->prefetch != NULL && asked < ahead &&
		    be->ops->prefetch(be, f->key, f->etag, asked, ahead - asked) == 0)
			asked = ahead;
		if (be->ops->read_ref != NULL) {
			n = be->ops->read_ref(be, f->key, off, len, f->etag, &ref, NULL);
			if (n > 0 && ref.n == 1 && ref.seg[0].data != NULL) {
				stored = pagefill_store(f, off, ref.seg[0].data, (size_t)n);
				backend_release_ref(&ref);
				if (!stored)
					return;
				off += (uint64_t)n;
				continue;
			}
			if (n >= 0)
				backend_release_ref(&ref);
		}
		if (n == -ENOBUFS || n > 0)
			n = backend_read_full(be, f->key, off, buf, len, f->etag);
		if (n <= 0) {
			if (n < 0)
				log_debug("page-cache fill of \"%s\" stopped at %" PRIu64 ": %s",
				          f->key, off, strerror((int)-n));
			return;
		}
		if (!pagefill_store(f, off, buf, (size_t)n))
			return;
		off += (uint64_t)n;
	}
	pthread_mutex_lock(&set->lock);
	set->completed++;
	pthread_mutex_unlock(&set->lock);
}

static void *pagefill_thread(void *arg)
{
	struct pagefill *f = arg;
	struct chunkfs *fs = f->fs;
	struct pagefill_set *set = &fs->fills;
	char *buf = malloc(PAGEFILL_PIECE);

	if (buf != NULL)
		pagefill_run(f, buf);
	free(buf);

	pthread_mutex_lock(&set->lock);
	f->node->fill = NULL;
	set->running--;
	pthread_cond_broadcast(&set->changed);
	pthread_mutex_unlock(&set->lock);
	inode_forget(fs->inodes, f->node, 1);
	free(f->key);
	free(f);
	return NULL;
}

void pagefill_start(struct chunkfs *fs, struct fh *fh)
{
	struct pagefill_set *set = &fs->fills;
	struct node *node = fh->node;
	uint64_t size, limit = (uint64_t)fs->opts->fill_max_mb << 20, avail;
	struct pagefill *f;
	pthread_attr_t attr;
	pthread_t tid;
	int skip;

	pthread_mutex_lock(&set->lock);
	skip = set->shutdown || node->fill != NULL || set->running >= PAGEFILL_MAX_RUNNING;
	pthread_mutex_unlock(&set->lock);
	if (skip)
		return;
	pthread_mutex_lock(&node->lock);
	size = node->st.size;
	skip = node->stage != NULL || !inode_opened_version(node, fh->etag, size);
	pthread_mutex_unlock(&node->lock);
	if (skip || size == 0 || size > limit || fs->se == NULL)
		return;
	avail = mem_available();
	if (avail != 0 && size > avail / 2) {
		log_debug("no page-cache fill of a %" PRIu64 "-byte file: %" PRIu64
		          " bytes of memory available",
		          size, avail);
		return;
	}

	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->key = inode_key(fs->inodes, node, NULL)) == NULL) {
		free(f);
		return;
	}
	f->fs = fs;
	f->node = node;
	f->ino = inode_to_ino(node);
	f->size = size;
	memcpy(f->etag, fh->etag, sizeof(f->etag));

	pthread_mutex_lock(&set->lock);
	if (set->shutdown || node->fill != NULL || set->running >= PAGEFILL_MAX_RUNNING) {
		pthread_mutex_unlock(&set->lock);
		free(f->key);
		free(f);
		return;
	}
	inode_hold(fs->inodes, node);
	node->fill = f;
	set->running++;
	set->started++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, pagefill_thread, f) != 0) {
		node->fill = NULL;
		set->running--;
		set->started--;
		pthread_mutex_unlock(&set->lock);
		pthread_attr_destroy(&attr);
		inode_forget(fs->inodes, node, 1);
		free(f->key);
		free(f);
		return;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&set->lock);
	log_debug("random reads of \"%s\": fetching its %" PRIu64 " bytes into the page cache",
	          f->key, size);
}

/* Stop the node's fill if it is not of version keep (NULL: any) and
 * keep_size bytes. */
static void cancel(struct chunkfs *fs, struct node *node, const char *keep, uint64_t keep_size)
{
	struct pagefill_set *set = &fs->fills;
	struct pagefill *f;

	pthread_mutex_lock(&set->lock);
	f = node->fill;
	if (f != NULL && !f->stop &&
	    (keep == NULL || strcmp(f->etag, keep) != 0 || f->size != keep_size)) {
		f->stop = 1;
		set->cancelled++;
	}
	/* node->fill changes only to NULL while it is stopped */
	while (node->fill != NULL && node->fill->stop && node->fill->storing)
		pthread_cond_wait(&set->changed, &set->lock);
	pthread_mutex_unlock(&set->lock);
}

void pagefill_cancel(struct chunkfs *fs, struct node *node)
{
	cancel(fs, node, NULL, 0);
}

void pagefill_cancel_other(struct chunkfs *fs, struct node *node, const char *etag, uint64_t size)
{
	cancel(fs, node, etag, size);
}

void pagefill_shutdown(struct chunkfs *fs)
{
	struct pagefill_set *set = &fs->fills;

	pthread_mutex_lock(&set->lock);
	set->shutdown = 1; /* every fill checks it before each read and store */
	while (set->running > 0)
		pthread_cond_wait(&set->changed, &set->lock);
	pthread_mutex_unlock(&set->lock);
}

void pagefill_stats(struct chunkfs *fs, void (*emit)(void *ctx, const char *name, uint64_t v),
                    void *ctx)
{
	struct pagefill_set *set = &fs->fills;
	struct pagefill_set c;

	pthread_mutex_lock(&set->lock);
	c = *set;
	pthread_mutex_unlock(&set->lock);
	emit(ctx, "started", c.started);
	emit(ctx, "completed", c.completed);
	emit(ctx, "cancelled", c.cancelled);
	emit(ctx, "stored_bytes", c.stored_bytes);
}
