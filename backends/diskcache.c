/*
 * diskcache.c - the disk block cache layer (see diskcache.h).
 *
 * Files
 *   dir/lock                   flock()ed while a layer uses dir
 *   dir/XX/NAME-INDEX          one block: NAME is the hex SHA-256 of
 *                              "key\0etag", XX its first two digits, INDEX
 *                              the block index in decimal
 *   dir/XX/.tmp.*              a block being written (deleted at create)
 *
 *   A block file is a struct dc_header, the key (key_len bytes), then
 *   data_len bytes of data.  The header holds the object's stat as the
 *   fetch saw it (so a hit can answer read()'s st), the etag, the index and
 *   block size, and sum: the SHA-256 of the header (with sum zeroed), key
 *   and data.  Numbers are in host byte order (the cache is local).  A file
 *   is served only when its size is exactly header_len + data_len and every
 *   field and the sum match the read; anything else is corrupt: logged,
 *   deleted, counted, and the block fetched again.  Files are written
 *   without fsync: a crash may leave a torn file, which the sum catches.
 *   Files are 0600, directories 0700.
 *
 * Index (in memory, under lock)
 *   One struct dc_entry per block file: hashed by (name hash, index) in
 *   buckets, and on an LRU list (head: most recently used; a hit moves its
 *   entry to the head).  At create the index is rebuilt from the
 *   directory: each file's header (not its data) is checked and the
 *   entries are put on the list oldest mtime last.  bytes_on_disk is the
 *   sum of the entries' file sizes plus "reserved", the sizes of blocks
 *   being written; it never exceeds max_bytes: a writer reserves its size
 *   first, evicting from the LRU tail, and skips writing when even an empty
 *   cache could not hold it.
 *
 * Reading a block
 *   1. Under lock, find the entry; if there, move it to the head, drop the
 *      lock, read and check the file (a file evicted meanwhile is a miss; a
 *      file opened before its eviction is still a valid block of that
 *      version).  Corrupt: delete it (if the entry is still the same one,
 *      by serial) and go on as a miss.
 *   2. Under lock, find an in-flight fetch of the block (struct dc_flight):
 *      if there, wait for its bytes (refcount held) and copy them.  Else
 *      start one, drop the lock, read inner, publish the bytes (done, wake
 *      waiters), then write the file (reserve, free-space check, temp file,
 *      rename under lock).  The flight stays findable until the file is in
 *      place, so nobody fetches the block twice meanwhile.  A failed fetch
 *      is not stored: its waiters get the error.
 *   A read spanning several blocks first looks for a run: when its first
 *   two or more blocks are neither indexed nor in flight, they all become
 *   flights at once and are fetched with one inner read (up to
 *   DC_MAX_RUN_BYTES; the memory cache's prefetch asks for whole parts, so
 *   the store sees few large ranged reads), then stored one by one.  A
 *   block that is indexed is read from disk as above (an indexed but
 *   corrupt block is found there and refetched on its own).
 *
 * Invalidation
 *   save/remove/copy/rename call the inner op, then under lock delete the
 *   files of every entry whose key matches (exact, or a prefix for a
 *   rename of "d/") and mark matching flights cancelled and unfindable: a
 *   cancelled flight hands its bytes to the readers already waiting but
 *   does not write its file.  Invalidation scans the whole index (O(files)
 *   per write; a write costs an upload anyway).
 *
 * Locks: one mutex, lock, guards the index, the LRU list, the flights,
 * reserved and the counters.  Syscalls made under it are the unlink of an
 * evicted or invalidated file and the rename that installs a file.
 */
#include "diskcache.h"

#include "io.h"
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define DC_MAGIC           "CFSDC1\n"
#define DC_MAX_KEY         4096 /* longer keys are read through uncached */
#define DC_STALE_RETRIES   3
#define DC_NAME_HEX        64
#define DC_INITIAL_BUCKETS 1024
#define DC_MAX_RUN_BYTES   ((size_t)8 << 20) /* largest coalesced inner read */

struct dc_header {
	char magic[8];
	uint32_t header_len; /* sizeof(struct dc_header) + key_len */
	uint32_t key_len;
	uint64_t index;
	uint64_t block_size;
	uint64_t data_len;
	uint64_t obj_size; /* the object's stat as the fetch saw it */
	int64_t mtime_sec, mtime_nsec;
	uint32_t meta, mode, uid, gid;
	char etag[BACKEND_ETAG_MAX];
	unsigned char sum[32]; /* SHA-256 of header (sum zeroed), key, data */
};
_Static_assert(sizeof(struct dc_header) == 192, "dc_header layout");

struct dc_entry {
	unsigned char name[32]; /* SHA-256 of key "\0" etag */
	uint64_t index;
	uint64_t bytes;  /* file size */
	uint64_t serial; /* distinguishes a replaced entry */
	char *key;       /* for invalidation */
	struct dc_entry *hnext;
	struct dc_entry *prev, *next; /* LRU; head most recent */
};

struct dc_flight {
	unsigned char name[32];
	uint64_t index;
	char *key;
	int refs;      /* the fetcher and each waiter */
	int done;      /* bytes (or error) published */
	int cancelled; /* invalidated: do not store */
	int listed;    /* on the flights list */
	ssize_t n;     /* bytes or -errno */
	char *buf;     /* block_size bytes */
	struct backend_stat st;
	struct dc_flight *next;
};

struct diskcache {
	struct backend base;
	struct backend_ops ops; /* immutable; diskcache_ops trimmed to inner's */
	struct backend *inner;  /* owned */
	size_t block_size;
	uint64_t max_bytes;
	int min_free_percent; /* 0: none */
	int dirfd;
	int lockfd;
	char *dir;

	pthread_mutex_t lock;
	pthread_cond_t cond;          /* flights done; under lock */
	struct dc_entry **buckets;    /* under lock */
	size_t nbuckets;              /* under lock; power of two */
	struct dc_entry *head, *tail; /* LRU, under lock */
	struct dc_flight *flights;    /* under lock */
	uint64_t installed;           /* bytes of entries, under lock */
	uint64_t reserved;            /* bytes being written, under lock */
	uint64_t next_serial;         /* under lock */
	uint64_t tmp_serial;          /* under lock */
	struct diskcache_stats stats; /* under lock (levels computed on read) */
};

static const struct backend_ops diskcache_ops;
static void dc_destroy(struct backend *b);

static struct diskcache *dc_of(struct backend *b)
{
	return (struct diskcache *)b;
}

static int dc_is(struct backend *b)
{
	return b != NULL && b->ops->destroy == dc_destroy;
}

/* --- names and checksums ------------------------------------------------ */

static void dc_sha256_parts(unsigned char out[32], const void *a, size_t alen, const void *b,
                            size_t blen, const void *c, size_t clen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int olen = 32;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, alen) != 1 || EVP_DigestUpdate(ctx, b, blen) != 1 ||
	    EVP_DigestUpdate(ctx, c, clen) != 1 || EVP_DigestFinal_ex(ctx, out, &olen) != 1)
		memset(out, 0xff, 32); /* never matches a real sum by chance */
	EVP_MD_CTX_free(ctx);
}

static void dc_name_hash(unsigned char out[32], const char *key, const char *etag)
{
	dc_sha256_parts(out, key, strlen(key) + 1, etag, strlen(etag), "", 0);
}

static void dc_hex(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int dc_unhex(unsigned char *out, const char *in, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		int v;
		char ch = in[i];

		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	return 0;
}

/* "XX/NAME-INDEX" relative to dirfd. */
static void dc_path(char *out, size_t size, const unsigned char name[32], uint64_t index)
{
	char hex[DC_NAME_HEX + 1];

	dc_hex(hex, name, 32);
	snprintf(out, size, "%.2s/%s-%" PRIu64, hex, hex, index);
}

static void dc_sum(const struct dc_header *h, const char *key, const void *data,
                   unsigned char out[32])
{
	struct dc_header tmp = *h;

	memset(tmp.sum, 0, sizeof(tmp.sum));
	dc_sha256_parts(out, &tmp, sizeof(tmp), key, h->key_len, data, h->data_len);
}

/* --- the index (all under lock) --------------------------------------- */

static size_t dc_bucket(const struct diskcache *c, const unsigned char name[32], uint64_t index)
{
	uint64_t h;

	memcpy(&h, name, sizeof(h));
	h ^= index * 0x9e3779b97f4a7c15ull;
	return (size_t)(h & (c->nbuckets - 1));
}

static struct dc_entry *dc_find(struct diskcache *c, const unsigned char name[32], uint64_t index)
{
	for (struct dc_entry *e = c->buckets[dc_bucket(c, name, index)]; e != NULL; e = e->hnext)
		if (e->index == index && memcmp(e->name, name, 32) == 0)
			return e;
	return NULL;
}

static void dc_lru_unlink(struct diskcache *c, struct dc_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void dc_lru_push(struct diskcache *c, struct dc_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void dc_grow(struct diskcache *c)
{
	size_t n = c->nbuckets * 2;
	struct dc_entry **nb = calloc(n, sizeof(*nb));
	struct dc_entry **old = c->buckets;
	size_t oldn = c->nbuckets;

	if (nb == NULL)
		return; /* longer chains, still correct */
	c->buckets = nb;
	c->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct dc_entry *e = old[i], *next;

		for (; e != NULL; e = next) {
			size_t b = dc_bucket(c, e->name, e->index);

			next = e->hnext;
			e->hnext = nb[b];
			nb[b] = e;
		}
	}
	free(old);
}

/* Add e (not yet hashed) at the head of the LRU. */
static void dc_insert(struct diskcache *c, struct dc_entry *e)
{
	size_t b;

	if (c->stats.files >= c->nbuckets)
		dc_grow(c);
	b = dc_bucket(c, e->name, e->index);
	e->serial = ++c->next_serial;
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	dc_lru_push(c, e);
	c->installed += e->bytes;
	c->stats.files++;
}

/* Take e out of the index and free it; the file is the caller's business. */
static void dc_remove(struct diskcache *c, struct dc_entry *e)
{
	struct dc_entry **pp = &c->buckets[dc_bucket(c, e->name, e->index)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	dc_lru_unlink(c, e);
	c->installed -= e->bytes;
	c->stats.files--;
	free(e->key);
	free(e);
}

/* Delete e's file and entry. */
static void dc_delete(struct diskcache *c, struct dc_entry *e)
{
	char path[DC_NAME_HEX + 40];

	dc_path(path, sizeof(path), e->name, e->index);
	if (unlinkat(c->dirfd, path, 0) < 0 && errno != ENOENT)
		log_msg(LOG_LEVEL_WARN, "disk cache %s: cannot delete %s: %s", c->dir, path,
		        strerror(errno));
	dc_remove(c, e);
}

/* Evict from the LRU tail until need more bytes fit.  0, or -ENOSPC when
 * they never can. */
static int dc_make_room(struct diskcache *c, uint64_t need)
{
	if (need > c->max_bytes)
		return -ENOSPC;
	while (c->installed + c->reserved + need > c->max_bytes) {
		if (c->tail == NULL)
			return -ENOSPC; /* all of it is being written */
		dc_delete(c, c->tail);
		c->stats.evictions++;
	}
	return 0;
}

static int dc_key_matches(const char *k, const char *key, int prefix)
{
	return prefix ? strncmp(k, key, strlen(key)) == 0 : strcmp(k, key) == 0;
}

/* Drop every block of key (of every key under it when prefix). */
static void dc_invalidate(struct diskcache *c, const char *key, int prefix)
{
	struct dc_entry *e, *next;
	struct dc_flight **pp;

	pthread_mutex_lock(&c->lock);
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		if (dc_key_matches(e->key, key, prefix))
			dc_delete(c, e);
	}
	for (pp = &c->flights; *pp != NULL;) {
		struct dc_flight *f = *pp;

		if (dc_key_matches(f->key, key, prefix)) {
			f->cancelled = 1;
			f->listed = 0;
			*pp = f->next;
		} else {
			pp = &f->next;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* --- block files --------------------------------------------------------- */

/*
 * Read and check the block file at path for (key, etag, index).  On
 * success the data is at *data (in *buf, which the caller frees), its
 * length in *data_len, the stat in *st.  -ENOENT: no file; -EBADMSG:
 * corrupt (why in *why); other -errno: cannot read.
 */
static int dc_load(struct diskcache *c, const char *path, const char *key, const char *etag,
                   uint64_t index, char **buf, const char **data, size_t *data_len,
                   struct backend_stat *st, const char **why)
{
	size_t key_len = strlen(key);
	size_t max = sizeof(struct dc_header) + key_len + c->block_size;
	struct dc_header h;
	unsigned char sum[32];
	struct stat sb;
	ssize_t n;
	char *b;
	int fd;

	*buf = NULL;
	fd = openat(c->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < sizeof(h) ||
	    (uint64_t)sb.st_size > max) {
		close(fd);
		*why = "bad size";
		return -EBADMSG;
	}
	b = malloc((size_t)sb.st_size);
	if (b == NULL) {
		close(fd);
		return -ENOMEM;
	}
	n = io_pread_all(fd, b, (size_t)sb.st_size, 0);
	close(fd);
	if (n < 0) {
		free(b);
		return (int)n;
	}
	*buf = b;
	if ((size_t)n != (size_t)sb.st_size) {
		*why = "short file";
		return -EBADMSG;
	}
	memcpy(&h, b, sizeof(h));
	if (memcmp(h.magic, DC_MAGIC, sizeof(h.magic)) != 0) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (h.key_len != key_len || h.header_len != sizeof(h) + key_len ||
	    h.data_len > c->block_size || h.header_len + h.data_len != (uint64_t)n) {
		*why = "bad length (truncated?)";
		return -EBADMSG;
	}
	if (h.index != index || h.block_size != c->block_size ||
	    memcmp(b + sizeof(h), key, key_len) != 0 ||
	    memchr(h.etag, '\0', sizeof(h.etag)) == NULL || strcmp(h.etag, etag) != 0) {
		*why = "names another block";
		return -EBADMSG;
	}
	dc_sum(&h, key, b + h.header_len, sum);
	if (memcmp(sum, h.sum, sizeof(sum)) != 0) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	*data = b + h.header_len;
	*data_len = (size_t)h.data_len;
	memset(st, 0, sizeof(*st));
	st->size = h.obj_size;
	st->mtime.tv_sec = (time_t)h.mtime_sec;
	st->mtime.tv_nsec = (long)h.mtime_nsec;
	snprintf(st->etag, sizeof(st->etag), "%s", h.etag);
	st->meta = h.meta;
	st->mode = h.mode;
	st->uid = h.uid;
	st->gid = h.gid;
	return 0;
}

/* Whether dir's filesystem has at least min_free_percent free. */
static int dc_space_ok(struct diskcache *c)
{
	struct statvfs v;

	if (c->min_free_percent <= 0 || fstatvfs(c->dirfd, &v) < 0 || v.f_blocks == 0)
		return 1;
	return (uint64_t)v.f_bavail * 100 >= (uint64_t)v.f_blocks * (uint64_t)c->min_free_percent;
}

/*
 * Store flight f's bytes as a block file, if room and not cancelled.
 * Called without lock.  Failures are counted, never returned.
 */
static void dc_store(struct diskcache *c, struct dc_flight *f, const char *etag)
{
	size_t key_len = strlen(f->key);
	struct dc_header h = {0};
	uint64_t size = sizeof(h) + key_len + (uint64_t)f->n;
	char path[DC_NAME_HEX + 40], tmp[DC_NAME_HEX + 80], sub[3];
	uint64_t serial;
	int fd, ret;

	pthread_mutex_lock(&c->lock);
	if (f->cancelled) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (!dc_space_ok(c)) {
		c->stats.full_skips++;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (dc_make_room(c, size) < 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->reserved += size;
	serial = ++c->tmp_serial;
	pthread_mutex_unlock(&c->lock);

	memcpy(h.magic, DC_MAGIC, sizeof(h.magic));
	h.header_len = (uint32_t)(sizeof(h) + key_len);
	h.key_len = (uint32_t)key_len;
	h.index = f->index;
	h.block_size = c->block_size;
	h.data_len = (uint64_t)f->n;
	h.obj_size = f->st.size;
	h.mtime_sec = (int64_t)f->st.mtime.tv_sec;
	h.mtime_nsec = (int64_t)f->st.mtime.tv_nsec;
	h.meta = f->st.meta;
	h.mode = f->st.mode;
	h.uid = f->st.uid;
	h.gid = f->st.gid;
	snprintf(h.etag, sizeof(h.etag), "%s", etag);
	dc_sum(&h, f->key, f->buf, h.sum);

	dc_path(path, sizeof(path), f->name, f->index);
	memcpy(sub, path, 2);
	sub[2] = '\0';
	snprintf(tmp, sizeof(tmp), "%s/.tmp.%d.%" PRIu64, sub, (int)getpid(), serial);
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == ENOENT) {
		(void)mkdirat(c->dirfd, sub, 0700); /* EEXIST: a racing writer made it */
		fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		            0600);
	}
	if (fd < 0) {
		ret = -errno;
	} else {
		ret = io_pwrite_all(fd, &h, sizeof(h), 0);
		if (ret == 0)
			ret = io_pwrite_all(fd, f->key, key_len, (off_t)sizeof(h));
		if (ret == 0)
			ret = io_pwrite_all(fd, f->buf, (size_t)f->n, (off_t)(sizeof(h) + key_len));
		if (close(fd) < 0 && ret == 0)
			ret = -errno;
	}

	pthread_mutex_lock(&c->lock);
	c->reserved -= size;
	if (ret == 0 && !f->cancelled) {
		struct dc_entry *e = calloc(1, sizeof(*e)), *old;

		if (e != NULL)
			e->key = strdup(f->key);
		if (e == NULL || e->key == NULL) {
			free(e);
			ret = -ENOMEM;
		} else if (renameat(c->dirfd, tmp, c->dirfd, path) < 0) {
			ret = -errno;
			free(e->key);
			free(e);
		} else {
			old = dc_find(c, f->name, f->index);
			if (old != NULL)
				dc_remove(c, old); /* its file was just replaced */
			memcpy(e->name, f->name, 32);
			e->index = f->index;
			e->bytes = size;
			dc_insert(c, e);
		}
	}
	if (ret != 0 || f->cancelled)
		unlinkat(c->dirfd, tmp, 0);
	if (ret != 0) {
		if (c->stats.write_errors++ == 0 || ret != -ENOSPC)
			log_msg(LOG_LEVEL_WARN,
			        "disk cache %s: cannot store a block of %s: %s (reads go on "
			        "from the store)",
			        c->dir, f->key, strerror(-ret));
	}
	pthread_mutex_unlock(&c->lock);
}

/* --- reading ------------------------------------------------------------- */

static void dc_flight_put(struct diskcache *c, struct dc_flight *f)
{
	/* under lock */
	(void)c;
	if (--f->refs == 0) {
		free(f->key);
		free(f->buf);
		free(f);
	}
}

/* The listed flight of block index of name, or NULL.  Under lock. */
static struct dc_flight *dc_find_flight(struct diskcache *c, const unsigned char name[32],
                                        uint64_t index)
{
	for (struct dc_flight *f = c->flights; f != NULL; f = f->next)
		if (f->index == index && memcmp(f->name, name, 32) == 0)
			return f;
	return NULL;
}

/* Take f off the flights list if it is still there.  Under lock. */
static void dc_unlist(struct diskcache *c, struct dc_flight *f)
{
	struct dc_flight **pp = &c->flights;

	if (!f->listed)
		return;
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	f->listed = 0;
}

/* Copy what a block of n bytes (data) holds at in_off into dst. */
static size_t dc_copy_out(const char *data, size_t n, size_t in_off, void *dst, size_t want)
{
	if (in_off >= n)
		return 0;
	if (want > n - in_off)
		want = n - in_off;
	memcpy(dst, data + in_off, want);
	return want;
}

/*
 * Read [in_off, in_off + want) of block index of (key, etag) into dst.
 * Returns the bytes copied or -errno; *eof when the block is the object's
 * last (shorter than block_size).  st as read(), may be NULL.
 */
static ssize_t dc_read_block(struct diskcache *c, const char *key, const char *etag, uint64_t index,
                             size_t in_off, void *dst, size_t want, struct backend_stat *st,
                             int *eof)
{
	unsigned char name[32];
	char path[DC_NAME_HEX + 40];
	struct dc_flight *f;
	struct backend_stat bst;
	ssize_t n;

	dc_name_hash(name, key, etag);
	dc_path(path, sizeof(path), name, index);
	for (;;) {
		struct dc_entry *e;
		uint64_t serial;
		const char *data = NULL, *why = NULL;
		size_t data_len = 0;
		char *buf;
		int ret;

		pthread_mutex_lock(&c->lock);
		e = dc_find(c, name, index);
		if (e == NULL)
			break; /* with lock */
		dc_lru_unlink(c, e);
		dc_lru_push(c, e);
		serial = e->serial;
		pthread_mutex_unlock(&c->lock);

		ret = dc_load(c, path, key, etag, index, &buf, &data, &data_len, &bst, &why);
		if (ret == 0) {
			n = (ssize_t)dc_copy_out(data, data_len, in_off, dst, want);
			free(buf);
			*eof = data_len < c->block_size;
			if (st != NULL)
				*st = bst;
			pthread_mutex_lock(&c->lock);
			c->stats.hits++;
			pthread_mutex_unlock(&c->lock);
			return n;
		}
		free(buf);
		pthread_mutex_lock(&c->lock);
		e = dc_find(c, name, index);
		if (e != NULL && e->serial == serial) {
			if (ret == -EBADMSG) {
				log_msg(LOG_LEVEL_WARN,
				        "disk cache %s: block %s of %s is corrupt (%s); deleted, "
				        "fetching it again",
				        c->dir, path, key, why);
				c->stats.corrupt_blocks++;
			}
			dc_delete(c, e);
		}
		pthread_mutex_unlock(&c->lock);
		/* and look again: a miss now, unless someone stored it meanwhile */
	}

	/* Miss, under lock: join a flight or start one. */
	c->stats.misses++;
	f = dc_find_flight(c, name, index);
	if (f != NULL) {
		f->refs++;
		while (!f->done)
			pthread_cond_wait(&c->cond, &c->lock);
	} else {
		f = calloc(1, sizeof(*f));
		if (f == NULL || (f->key = strdup(key)) == NULL ||
		    (f->buf = malloc(c->block_size)) == NULL) {
			if (f != NULL)
				free(f->key);
			free(f);
			pthread_mutex_unlock(&c->lock);
			return -ENOMEM;
		}
		memcpy(f->name, name, 32);
		f->index = index;
		f->refs = 1;
		f->listed = 1;
		f->next = c->flights;
		c->flights = f;
		c->stats.fetches++;
		pthread_mutex_unlock(&c->lock);

		memset(&f->st, 0, sizeof(f->st));
		f->n = c->inner->ops->read(c->inner, key, index * c->block_size, f->buf,
		                           c->block_size, etag, &f->st);
		if (f->n >= 0 && f->st.etag[0] == '\0')
			snprintf(f->st.etag, sizeof(f->st.etag), "%s", etag);

		pthread_mutex_lock(&c->lock);
		if (f->n > 0)
			c->stats.fetch_bytes += (uint64_t)f->n;
		f->done = 1;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);

		if (f->n > 0)
			dc_store(c, f, etag);

		pthread_mutex_lock(&c->lock);
		dc_unlist(c, f);
	}
	/* under lock, f done and referenced */
	n = f->n;
	if (n >= 0) {
		*eof = (size_t)n < c->block_size;
		if (st != NULL)
			*st = f->st;
		n = (ssize_t)dc_copy_out(f->buf, (size_t)f->n, in_off, dst, want);
	}
	dc_flight_put(c, f);
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * When the read [off, off + len) starts with at least two blocks that are
 * neither on disk nor being fetched, fetch that run (up to the read's last
 * block and DC_MAX_RUN_BYTES) with one inner read, as flights other
 * readers can join, copy the read's part of it into dst and store the
 * blocks.  Returns the bytes copied (*eof when the object ended within the
 * run), -errno, or -EAGAIN when there is no such run (read block by
 * block).
 */
static ssize_t dc_read_run(struct diskcache *c, const char *key, const char *etag, uint64_t off,
                           void *dst, size_t len, struct backend_stat *st, int *eof)
{
	const size_t bs = c->block_size;
	uint64_t first = off / bs, last = (off + len - 1) / bs;
	size_t max = DC_MAX_RUN_BYTES / bs, run = 0, got;
	struct dc_flight **fl;
	unsigned char name[32];
	struct backend_stat rst;
	char *buf;
	ssize_t n;

	if (last == first)
		return -EAGAIN;
	if (max < 2)
		max = 2;
	if (last - first + 1 < max)
		max = (size_t)(last - first + 1);
	dc_name_hash(name, key, etag);
	fl = calloc(max, sizeof(*fl));
	buf = malloc(max * bs);
	if (fl == NULL || buf == NULL) {
		free(fl);
		free(buf);
		return -EAGAIN;
	}
	pthread_mutex_lock(&c->lock);
	while (run < max && dc_find(c, name, first + run) == NULL &&
	       dc_find_flight(c, name, first + run) == NULL)
		run++;
	if (run < 2) {
		pthread_mutex_unlock(&c->lock);
		free(fl);
		free(buf);
		return -EAGAIN;
	}
	for (size_t i = 0; i < run; i++) {
		struct dc_flight *f = calloc(1, sizeof(*f));

		if (f == NULL || (f->key = strdup(key)) == NULL || (f->buf = malloc(bs)) == NULL) {
			if (f != NULL)
				free(f->key);
			free(f);
			run = i; /* fetch what has a flight */
			break;
		}
		memcpy(f->name, name, 32);
		f->index = first + i;
		f->refs = 1;
		f->listed = 1;
		f->next = c->flights;
		c->flights = f;
		fl[i] = f;
	}
	if (run > 0) {
		c->stats.misses += run;
		c->stats.fetches++;
	}
	pthread_mutex_unlock(&c->lock);
	if (run == 0) {
		free(fl);
		free(buf);
		return -EAGAIN;
	}

	memset(&rst, 0, sizeof(rst));
	n = c->inner->ops->read(c->inner, key, first * bs, buf, run * bs, etag, &rst);
	if (n >= 0 && rst.etag[0] == '\0')
		snprintf(rst.etag, sizeof(rst.etag), "%s", etag);

	pthread_mutex_lock(&c->lock);
	if (n > 0)
		c->stats.fetch_bytes += (uint64_t)n;
	for (size_t i = 0; i < run; i++) {
		struct dc_flight *f = fl[i];

		if (n < 0) {
			f->n = n;
		} else {
			uint64_t at = (uint64_t)i * bs;

			f->n = (uint64_t)n <= at
			           ? 0
			           : ((uint64_t)n - at < bs ? (ssize_t)(n - at) : (ssize_t)bs);
			memcpy(f->buf, buf + at, (size_t)f->n);
			f->st = rst;
		}
		f->done = 1;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);

	got = 0;
	if (n >= 0) {
		uint64_t in_run = off - first * bs;
		uint64_t end = off + len < (first + run) * bs ? off + len : (first + run) * bs;

		if ((uint64_t)n > in_run) {
			got = (size_t)(end - off);
			if (got > (uint64_t)n - in_run)
				got = (size_t)((uint64_t)n - in_run);
			memcpy(dst, buf + in_run, got);
		}
		*eof = (uint64_t)n < (uint64_t)run * bs;
		if (st != NULL)
			*st = rst;
	}
	free(buf);
	for (size_t i = 0; i < run; i++)
		if (fl[i]->n > 0)
			dc_store(c, fl[i], etag);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < run; i++) {
		dc_unlist(c, fl[i]);
		dc_flight_put(c, fl[i]);
	}
	pthread_mutex_unlock(&c->lock);
	free(fl);
	return n < 0 ? n : (ssize_t)got;
}

/* Read len bytes at off of version etag, block by block.  st as read(). */
static ssize_t dc_read_pinned(struct diskcache *c, const char *key, uint64_t off, void *dst,
                              size_t len, const char *etag, struct backend_stat *st)
{
	size_t done = 0;

	while (done < len) {
		uint64_t pos = off + done;
		size_t in_off = (size_t)(pos % c->block_size);
		size_t want = c->block_size - in_off;
		ssize_t n;
		int eof = 0;

		if (want > len - done)
			want = len - done;
		n = dc_read_run(c, key, etag, pos, (char *)dst + done, len - done,
		                done == 0 ? st : NULL, &eof);
		if (n != -EAGAIN) {
			if (n < 0)
				return n;
			done += (size_t)n;
			if (eof)
				break;
			continue;
		}
		n = dc_read_block(c, key, etag, pos / c->block_size, in_off, (char *)dst + done,
		                  want, done == 0 ? st : NULL, &eof);
		if (n < 0)
			return n;
		done += (size_t)n;
		if (eof || (size_t)n < want)
			break;
	}
	return (ssize_t)done;
}

static ssize_t dc_pinned_cb(void *ctx, const char *key, uint64_t off, void *dst, size_t len,
                            const char *etag, struct backend_stat *st)
{
	return dc_read_pinned(ctx, key, off, dst, len, etag, st);
}

static ssize_t dc_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                       const char *etag, struct backend_stat *st)
{
	struct diskcache *c = dc_of(b);
	struct backend *in = c->inner;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0 || strlen(key) > DC_MAX_KEY || !backend_key_valid(key))
		return in->ops->read(in, key, off, dst, len, etag, st);
	if (etag != NULL && etag[0] != '\0')
		return dc_read_pinned(c, key, off, dst, len, etag, st);
	return backend_read_current(in, key, off, dst, len, st, DC_STALE_RETRIES, dc_pinned_cb, c);
}

/* --- pass-through ops ----------------------------------------------------- */

static int dc_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	return dc_of(b)->inner->ops->stat(dc_of(b)->inner, key, st);
}

static int dc_save(struct backend *b, const char *key, const struct backend_source *src,
                   const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct diskcache *c = dc_of(b);
	int ret = c->inner->ops->save(c->inner, key, src, attrs, st);

	dc_invalidate(c, key, 0);
	return ret;
}

static int dc_upload_begin(struct backend *b, const char *key, const struct backend_source *src,
                           const struct backend_save_attrs *attrs, struct backend_upload **out)
{
	return dc_of(b)->inner->ops->upload_begin(dc_of(b)->inner, key, src, attrs, out);
}

static int dc_remove_op(struct backend *b, const char *key)
{
	struct diskcache *c = dc_of(b);
	int ret = c->inner->ops->remove(c->inner, key);

	dc_invalidate(c, key, 0);
	return ret;
}

static int dc_list(struct backend *b, const char *prefix, char delimiter, const char *start_after,
                   const char *token, size_t max_keys, struct backend_list *out)
{
	return dc_of(b)->inner->ops->list(dc_of(b)->inner, prefix, delimiter, start_after, token,
	                                  max_keys, out);
}

static int dc_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	struct diskcache *c = dc_of(b);
	int ret;

	if (c->inner->ops->copy == NULL)
		return -ENOTSUP;
	ret = c->inner->ops->copy(c->inner, src, dst, st);
	dc_invalidate(c, dst, 0);
	return ret;
}

/* The cached blocks are keyed by etag, which attributes do not change. */
static int dc_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                      struct backend_stat *st)
{
	struct backend *in = dc_of(b)->inner;

	return in->ops->setattr ? in->ops->setattr(in, key, attrs, st) : -ENOTSUP;
}

static int dc_rename(struct backend *b, const char *src, const char *dst)
{
	struct diskcache *c = dc_of(b);
	size_t sl = strlen(src), dl = strlen(dst);
	int ret;

	if (c->inner->ops->rename == NULL)
		return -ENOTSUP;
	ret = c->inner->ops->rename(c->inner, src, dst);
	dc_invalidate(c, src, sl > 0 && src[sl - 1] == '/');
	dc_invalidate(c, dst, dl > 0 && dst[dl - 1] == '/');
	return ret;
}

static int dc_space(struct backend *b, uint64_t *total, uint64_t *avail)
{
	struct diskcache *c = dc_of(b);

	if (c->inner->ops->space == NULL)
		return -ENOTSUP;
	return c->inner->ops->space(c->inner, total, avail);
}

void diskcache_get_stats(struct backend *b, struct diskcache_stats *out)
{
	struct diskcache *c;

	memset(out, 0, sizeof(*out));
	if (!dc_is(b))
		return;
	c = dc_of(b);
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->bytes_on_disk = c->installed + c->reserved;
	pthread_mutex_unlock(&c->lock);
}

static void dc_stats(struct backend *b, backend_stats_fn emit, void *ctx)
{
	struct diskcache_stats s;

	diskcache_get_stats(b, &s);
	emit(ctx, "diskcache", "hits", s.hits);
	emit(ctx, "diskcache", "misses", s.misses);
	emit(ctx, "diskcache", "fetches", s.fetches);
	emit(ctx, "diskcache", "fetch_bytes", s.fetch_bytes);
	emit(ctx, "diskcache", "bytes_on_disk", s.bytes_on_disk);
	emit(ctx, "diskcache", "files", s.files);
	emit(ctx, "diskcache", "evictions", s.evictions);
	emit(ctx, "diskcache", "corrupt_blocks", s.corrupt_blocks);
	emit(ctx, "diskcache", "write_errors", s.write_errors);
	emit(ctx, "diskcache", "full_skips", s.full_skips);
	backend_stats(dc_of(b)->inner, emit, ctx);
}

void diskcache_debug_check(struct backend *b)
{
#ifndef NDEBUG
	struct diskcache *c;
	uint64_t bytes = 0, files = 0;

	if (!dc_is(b))
		return;
	c = dc_of(b);
	pthread_mutex_lock(&c->lock);
	for (struct dc_entry *e = c->head; e != NULL; e = e->next) {
		if (dc_find(c, e->name, e->index) != e)
			abort();
		if (e->next != NULL ? e->next->prev != e : c->tail != e)
			abort();
		bytes += e->bytes;
		files++;
	}
	if (bytes != c->installed || files != c->stats.files ||
	    c->installed + c->reserved > c->max_bytes)
		abort();
	pthread_mutex_unlock(&c->lock);
#else
	(void)b;
#endif
}

static void dc_free(struct diskcache *c)
{
	while (c->head != NULL)
		dc_remove(c, c->head);
	free(c->buckets);
	if (c->lockfd >= 0)
		close(c->lockfd); /* releases the flock */
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

static void dc_destroy(struct backend *b)
{
	struct diskcache *c = dc_of(b);

	backend_destroy(c->inner);
	dc_free(c);
}

static const struct backend_ops diskcache_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "diskcache",
    .stat = dc_stat,
    .read = dc_read,
    .save = dc_save,
    .upload_begin = dc_upload_begin,
    .remove = dc_remove_op,
    .list = dc_list,
    .copy = dc_copy,
    .rename = dc_rename,
    .setattr = dc_setattr,
    .space = dc_space,
    .stats = dc_stats,
    .destroy = dc_destroy,
};

/* --- create: directory checks and the index rebuild ---------------------- */

struct dc_scan {
	struct dc_entry *e;
	struct timespec mtime;
};

static int dc_scan_cmp(const void *a, const void *b)
{
	const struct dc_scan *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

/* Check the header of block file sub/name; on success a new entry. */
static struct dc_entry *dc_scan_file(struct diskcache *c, int subfd, const char *name,
                                     const struct stat *sb, const char **why)
{
	unsigned char hash[32], want[32];
	struct dc_header h;
	struct dc_entry *e;
	char *end, *key;
	uint64_t index;
	int fd;

	*why = "bad name";
	if (strlen(name) < DC_NAME_HEX + 2 || name[DC_NAME_HEX] != '-' ||
	    dc_unhex(hash, name, 32) < 0)
		return NULL;
	errno = 0;
	index = strtoull(name + DC_NAME_HEX + 1, &end, 10);
	if (*end != '\0' || errno != 0 || !S_ISREG(sb->st_mode))
		return NULL;
	*why = "bad header";
	fd = openat(subfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (io_pread_all(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, DC_MAGIC, sizeof(h.magic)) != 0 || h.key_len == 0 ||
	    h.key_len > DC_MAX_KEY || h.header_len != sizeof(h) + h.key_len || h.index != index ||
	    h.block_size != c->block_size || h.data_len > c->block_size ||
	    memchr(h.etag, '\0', sizeof(h.etag)) == NULL) {
		close(fd);
		return NULL;
	}
	*why = "truncated or extended";
	if ((uint64_t)sb->st_size != h.header_len + h.data_len) {
		close(fd);
		return NULL;
	}
	*why = "bad key";
	key = malloc(h.key_len + 1);
	if (key == NULL ||
	    io_pread_all(fd, key, h.key_len, (off_t)sizeof(h)) != (ssize_t)h.key_len) {
		close(fd);
		free(key);
		return NULL;
	}
	close(fd);
	key[h.key_len] = '\0';
	dc_name_hash(want, key, h.etag);
	e = calloc(1, sizeof(*e));
	if (strlen(key) != h.key_len || memcmp(want, hash, 32) != 0 || e == NULL) {
		free(key);
		free(e);
		return NULL;
	}
	memcpy(e->name, hash, 32);
	e->index = index;
	e->bytes = (uint64_t)sb->st_size;
	e->key = key;
	return e;
}

/* Rebuild the index from the files under c->dirfd.  0 or -errno. */
static int dc_rebuild(struct diskcache *c)
{
	struct dc_scan *v = NULL;
	size_t n = 0, cap = 0;

	for (int i = 0; i < 256; i++) {
		char sub[3];
		int subfd;
		DIR *d;
		struct dirent *de;

		snprintf(sub, sizeof(sub), "%02x", i);
		subfd = openat(c->dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (subfd < 0)
			continue;
		d = fdopendir(subfd);
		if (d == NULL) {
			close(subfd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			struct stat sb;
			struct dc_entry *e;
			const char *why;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (strncmp(de->d_name, ".tmp.", 5) == 0) {
				unlinkat(subfd, de->d_name, 0); /* an unfinished write */
				continue;
			}
			if (fstatat(subfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			e = dc_scan_file(c, subfd, de->d_name, &sb, &why);
			if (e == NULL) {
				log_msg(LOG_LEVEL_WARN,
				        "disk cache %s: %s/%s is corrupt (%s); deleted", c->dir,
				        sub, de->d_name, why);
				c->stats.corrupt_blocks++;
				if (!S_ISDIR(sb.st_mode))
					unlinkat(subfd, de->d_name, 0);
				continue;
			}
			if (n == cap) {
				struct dc_scan *nv;

				cap = cap ? cap * 2 : 256;
				nv = realloc(v, cap * sizeof(*v));
				if (nv == NULL) {
					free(e->key);
					free(e);
					closedir(d);
					for (size_t j = 0; j < n; j++) {
						free(v[j].e->key);
						free(v[j].e);
					}
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[n].e = e;
			v[n].mtime = sb.st_mtim;
			n++;
		}
		closedir(d);
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), dc_scan_cmp);
	for (size_t i = 0; i < n; i++) /* oldest first, so the newest ends at the head */
		dc_insert(c, v[i].e);
	free(v);
	while (c->installed > c->max_bytes && c->tail != NULL) {
		dc_delete(c, c->tail);
		c->stats.evictions++;
	}
	return 0;
}

/* Open (creating if missing) and check the cache directory.  fd or -errno. */
static int dc_open_dir(const char *dir)
{
	struct stat sb;
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int ret = -errno;

		log_msg(LOG_LEVEL_ERROR, "disk cache: cannot create %s: %s", dir, strerror(errno));
		return ret;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;

		log_msg(LOG_LEVEL_ERROR, "disk cache: cannot open %s: %s (it must be a directory)",
		        dir, strerror(errno));
		return ret;
	}
	if (fstat(fd, &sb) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	if (sb.st_uid != geteuid()) {
		log_msg(LOG_LEVEL_ERROR,
		        "disk cache: %s is owned by uid %u, not by this user (uid %u); use a "
		        "directory of your own",
		        dir, (unsigned)sb.st_uid, (unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		log_msg(LOG_LEVEL_ERROR,
		        "disk cache: %s is writable by group or others (mode %04o); chmod 700 it",
		        dir, (unsigned)(sb.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	return fd;
}

void diskcache_opts_init(struct diskcache_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_bytes = DISKCACHE_DEFAULT_MAX_BYTES;
	o->block_size = DISKCACHE_DEFAULT_BLOCK_SIZE;
	o->min_free_percent = DISKCACHE_DEFAULT_MIN_FREE;
}

struct backend *diskcache_create(struct backend *inner, const struct diskcache_opts *opts)
{
	struct diskcache *c;
	int ret;

	if (inner == NULL || opts == NULL || opts->dir == NULL || opts->dir[0] == '\0' ||
	    opts->min_free_percent < -1 || opts->min_free_percent > 99) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	c->dirfd = c->lockfd = -1;
	c->block_size = opts->block_size ? opts->block_size : DISKCACHE_DEFAULT_BLOCK_SIZE;
	c->max_bytes = opts->max_bytes ? opts->max_bytes : DISKCACHE_DEFAULT_MAX_BYTES;
	c->min_free_percent = opts->min_free_percent == 0    ? DISKCACHE_DEFAULT_MIN_FREE
	                      : opts->min_free_percent == -1 ? 0
	                                                     : opts->min_free_percent;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (c->block_size < 4096 || (c->block_size & (c->block_size - 1)) != 0 ||
	    c->max_bytes < c->block_size) {
		ret = -EINVAL;
		goto fail;
	}
	c->dir = strdup(opts->dir);
	c->nbuckets = DC_INITIAL_BUCKETS;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->dir == NULL || c->buckets == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = dc_open_dir(opts->dir);
	if (ret < 0)
		goto fail;
	c->dirfd = ret;
	c->lockfd = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c->lockfd < 0) {
		ret = -errno;
		log_msg(LOG_LEVEL_ERROR, "disk cache: cannot create %s/lock: %s", c->dir,
		        strerror(errno));
		goto fail;
	}
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_msg(LOG_LEVEL_ERROR, "disk cache: %s is in use by another chunkfs (%s)", c->dir,
		        strerror(-ret));
		goto fail;
	}
	ret = dc_rebuild(c);
	if (ret < 0)
		goto fail;

	c->ops = diskcache_ops;
	backend_ops_trim(&c->ops, inner);
	c->base.ops = &c->ops;
	c->base.flags = inner->flags;
	c->inner = inner;
	return &c->base;

fail:
	dc_free(c);
	errno = -ret;
	return NULL;
}

/* --- options --------------------------------------------------------------- */

struct dc_cmdline {
	char *dir;
	unsigned size_mb;
	int min_free;
};

#define DCOPT(t, p, v)                                                                             \
	{                                                                                          \
		t, offsetof(struct dc_cmdline, p), v                                               \
	}
static const struct fuse_opt dc_opt_spec[] = {
    DCOPT("cache_dir=%s", dir, 0),
    DCOPT("cache_dir_size=%u", size_mb, 0),
    DCOPT("cache_dir_min_free=%d", min_free, 0),
    FUSE_OPT_END,
};

int diskcache_opts_parse(struct fuse_args *args, struct diskcache_opts *o)
{
	struct dc_cmdline c = {.min_free = -2};

	if (fuse_opt_parse(args, &c, dc_opt_spec, NULL) < 0)
		return -1;
	if (c.dir != NULL)
		o->dir = c.dir;
	if (c.size_mb)
		o->max_bytes = (uint64_t)c.size_mb << 20;
	if (c.min_free != -2)
		o->min_free_percent = c.min_free == 0 ? -1 : c.min_free;
	return 0;
}

void diskcache_opts_usage(FILE *out)
{
	fprintf(out, "Disk cache (S3 sources; under the memory cache):\n"
	             "    -o cache_dir=PATH        keep read blocks in PATH (0700, created if "
	             "missing)\n"
	             "    -o cache_dir_size=MiB    bound on the cache files (default 10240)\n"
	             "    -o cache_dir_min_free=P  stop growing below P%% free on PATH's "
	             "filesystem (default 5; 0: until full)\n");
}
