/*
 * diskcache.c - the disk tier of the block cache (see diskcache.h).
 *
 * Files
 *   dir/lock                   flock()ed while a tier uses dir
 *   dir/XX/NAME-INDEX          one block: NAME is the hex SHA-256 of
 *                              "key\0etag", XX its first two digits, INDEX
 *                              the block index in decimal
 *   dir/XX/.tmp.*              a block being written (deleted at create)
 *
 *   A block file is a struct dc_header, the key (key_len bytes), then
 *   data_len bytes of data.  The header holds the object's stat as the
 *   fetch saw it (so a hit can answer read()'s st), the etag, the index and
 *   block size, and sum: the XXH3-64 of the header (with sum zeroed), key
 *   and data.  Numbers are in host byte order (the cache is local).  Files
 *   are written without fsync: a crash may leave a torn file, which the
 *   sum catches.  Files are 0600, directories 0700, all opened relative to
 *   the directory's descriptor with O_NOFOLLOW.
 *
 * Integrity
 *   The sum is computed once when a block is stored, and checked over the
 *   whole file the first time the block is used after the tier was
 *   created (a mount); the entry then remembers it was checked, and later
 *   uses check the header and the file's size only.  A file that fails is
 *   logged, deleted, counted and reported absent: the engine fetches the
 *   block again.  At create only the headers are read (the index rebuild).
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
 *   cache could not hold it.  A file evicted or dropped while a reader has
 *   it open stays readable through that descriptor.
 *
 * Locks: one mutex, lock, guards the index, the LRU list, reserved and the
 * counters.  Syscalls made under it are the unlink of an evicted or dropped
 * file and the rename that installs a file.
 */
#include "diskcache.h"

#include "io.h"
#include "log.h"
#include "opts.h"
#include "safedir.h"

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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#define DC_MAGIC           "CFSDC2\n"
#define DC_OLD_MAGIC       "CFSDC1\n" /* SHA-256 sums: dropped quietly */
#define DC_MAX_KEY         4096       /* longer keys are not stored */
#define DC_NAME_HEX        64
#define DC_INITIAL_BUCKETS 1024
#define DC_SCRATCH         4

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
	uint64_t sum; /* XXH3-64 of header (sum zeroed), key, data */
	unsigned char pad[24];
};
_Static_assert(sizeof(struct dc_header) == 192, "dc_header layout");

struct dc_entry {
	unsigned char name[32]; /* SHA-256 of key "\0" etag */
	uint64_t index;
	uint64_t bytes;    /* file size */
	uint64_t serial;   /* distinguishes a replaced entry */
	uint64_t obj_size; /* the object's size, from the header */
	int verified;      /* its data matched the sum since create */
	char *key;         /* for invalidation */
	struct dc_entry *hnext;
	struct dc_entry *prev, *next; /* LRU; head most recent */
};

struct diskcache {
	struct tier base;
	uint64_t max_bytes;
	int min_free_percent; /* 0: none */
	int dirfd;
	int lockfd;
	char *dir;

	pthread_mutex_t lock;
	struct dc_entry **buckets;    /* under lock */
	size_t nbuckets;              /* under lock; power of two */
	struct dc_entry *head, *tail; /* LRU, under lock */
	uint64_t installed;           /* bytes of entries, under lock */
	uint64_t reserved;            /* bytes being written, under lock */
	uint64_t next_serial;         /* under lock */
	uint64_t tmp_serial;          /* under lock */
	struct diskcache_stats stats; /* under lock (levels computed on read) */
	unsigned char *scratch;       /* DC_SCRATCH buffers; see dc_scratch_take() */
	unsigned scratch_free;        /* under lock; a bit per free buffer */
	pthread_cond_t scratch_cond;  /* a buffer was freed */
};

static const struct tier_ops diskcache_ops;

static struct diskcache *dc_of(struct tier *t)
{
	return (struct diskcache *)t;
}

/* --- names and checksums ------------------------------------------------ */

static void dc_name_hash(unsigned char out[32], const char *key, const char *etag)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int olen = 32;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, key, strlen(key) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, etag, strlen(etag)) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &olen) != 1)
		memset(out, 0xff, 32); /* never matches a real name by chance */
	EVP_MD_CTX_free(ctx);
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

static uint64_t dc_sum(const struct dc_header *h, const char *key, const void *data)
{
	struct dc_header tmp = *h;
	XXH3_state_t *s = XXH3_createState();
	uint64_t sum;

	tmp.sum = 0;
	if (s == NULL || XXH3_64bits_reset(s) != XXH_OK)
		sum = ~h->sum; /* never matches */
	else {
		XXH3_64bits_update(s, &tmp, sizeof(tmp));
		XXH3_64bits_update(s, key, h->key_len);
		XXH3_64bits_update(s, data, h->data_len);
		sum = XXH3_64bits_digest(s);
	}
	XXH3_freeState(s);
	return sum;
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

static void dc_drop(struct tier *t, const char *key, int prefix)
{
	struct diskcache *c = dc_of(t);
	struct dc_entry *e, *next;

	pthread_mutex_lock(&c->lock);
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		if (dc_key_matches(e->key, key, prefix))
			dc_delete(c, e);
	}
	pthread_mutex_unlock(&c->lock);
}

/* --- block files --------------------------------------------------------- */

/* Whether entry e can be block b: b's object size, when known, is e's. */
static int dc_size_fits(const struct dc_entry *e, const struct tier_block *b)
{
	return b->size == 0 || e->obj_size == b->size;
}

/*
 * Check the header h of the open block file fd (of file_size bytes) for
 * (key, etag, index, and object size when b->size is not 0).  0, or
 * -EBADMSG with the reason in *why.
 */
static int dc_check_header(struct diskcache *c, int fd, const struct dc_header *h,
                           uint64_t file_size, const struct tier_block *b, const char **why)
{
	size_t key_len = strlen(b->key);
	char key[DC_MAX_KEY];

	if (memcmp(h->magic, DC_MAGIC, sizeof(h->magic)) != 0) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (h->key_len != key_len || h->header_len != sizeof(*h) + key_len ||
	    h->data_len > c->base.block_size || h->header_len + h->data_len != file_size) {
		*why = "bad length (truncated?)";
		return -EBADMSG;
	}
	if (h->index != b->index || h->block_size != c->base.block_size ||
	    memchr(h->etag, '\0', sizeof(h->etag)) == NULL || strcmp(h->etag, b->etag) != 0 ||
	    io_pread_all(fd, key, key_len, (off_t)sizeof(*h)) != (ssize_t)key_len ||
	    memcmp(key, b->key, key_len) != 0) {
		*why = "names another block";
		return -EBADMSG;
	}
	if (b->size != 0 && h->obj_size != b->size) {
		*why = "kept for another object with this key and ETag (another size)";
		return -EBADMSG;
	}
	return 0;
}

static void dc_header_stat(const struct dc_header *h, struct backend_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->size = h->obj_size;
	st->mtime.tv_sec = (time_t)h->mtime_sec;
	st->mtime.tv_nsec = (long)h->mtime_nsec;
	snprintf(st->etag, sizeof(st->etag), "%s", h->etag);
	st->meta = h->meta;
	st->mode = h->mode;
	st->uid = h->uid;
	st->gid = h->gid;
}

/*
 * Checking a block reads it into one of DC_SCRATCH buffers of block_size
 * bytes, made once with the tier and kept: on a virtual machine, mapping
 * fresh pages (or the file's pages) for each check cost several times
 * more than reading and summing the block.  A check waits for a free one.
 */
static int dc_scratch_take(struct diskcache *c)
{
	int slot;

	pthread_mutex_lock(&c->lock);
	while (c->scratch_free == 0)
		pthread_cond_wait(&c->scratch_cond, &c->lock);
	slot = __builtin_ctz(c->scratch_free);
	c->scratch_free &= ~(1u << slot);
	pthread_mutex_unlock(&c->lock);
	return slot;
}

static void dc_scratch_put(struct diskcache *c, int slot)
{
	pthread_mutex_lock(&c->lock);
	c->scratch_free |= 1u << slot;
	pthread_cond_signal(&c->scratch_cond);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Open block b's file and check it: the header always, the data against
 * the sum when verify is set (then dst, of block_size bytes or NULL for a
 * scratch buffer, receives the data).  On success *fd is open (the caller
 * closes it), *h the header.  -ENOENT: no file; -EBADMSG: corrupt (why in
 * *why); other -errno: cannot read.
 */
static int dc_open_checked(struct diskcache *c, const char *path, const struct tier_block *b,
                           int verify, void *dst, int *fd, struct dc_header *h, const char **why)
{
	struct stat sb;
	void *data = dst;
	int ret;

	*fd = openat(c->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	ret = 0;
	if (fstat(*fd, &sb) < 0)
		ret = -errno;
	else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < sizeof(*h))
		ret = -EBADMSG, *why = "bad size";
	else if (io_pread_all(*fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h))
		ret = -EBADMSG, *why = "short file";
	else
		ret = dc_check_header(c, *fd, h, (uint64_t)sb.st_size, b, why);
	if (ret == 0 && verify && dst != NULL) {
		if (io_pread_all(*fd, data, (size_t)h->data_len, (off_t)h->header_len) !=
		    (ssize_t)h->data_len)
			ret = -EBADMSG, *why = "short file";
		else if (dc_sum(h, b->key, data) != h->sum)
			ret = -EBADMSG, *why = "checksum mismatch";
	} else if (ret == 0 && verify) {
		int slot = dc_scratch_take(c);

		data = c->scratch + (size_t)slot * c->base.block_size;
		if (io_pread_all(*fd, data, (size_t)h->data_len, (off_t)h->header_len) !=
		    (ssize_t)h->data_len)
			ret = -EBADMSG, *why = "short file";
		else if (dc_sum(h, b->key, data) != h->sum)
			ret = -EBADMSG, *why = "checksum mismatch";
		dc_scratch_put(c, slot);
	}
	if (ret < 0) {
		close(*fd);
		*fd = -1;
	}
	return ret;
}

/*
 * Find block b, open and check its file (the data too on its first use
 * since create, or when want_data asks for it in dst).  A corrupt file is
 * deleted.  0 with *fd open, or -ENOENT / -errno.
 */
static int dc_find_open(struct diskcache *c, const struct tier_block *b, void *dst, int *fd,
                        struct dc_header *h)
{
	unsigned char name[32];
	char path[DC_NAME_HEX + 40];
	const char *why = "";
	struct dc_entry *e;
	uint64_t serial;
	int verified, ret;

	if (strlen(b->key) >= DC_MAX_KEY)
		return -ENOENT;
	dc_name_hash(name, b->key, b->etag);
	dc_path(path, sizeof(path), name, b->index);
	pthread_mutex_lock(&c->lock);
	e = dc_find(c, name, b->index);
	if (e == NULL) {
		c->stats.misses++;
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	dc_lru_unlink(c, e);
	dc_lru_push(c, e);
	serial = e->serial;
	verified = e->verified;
	pthread_mutex_unlock(&c->lock);

	ret = dc_open_checked(c, path, b, !verified || dst != NULL, dst, fd, h, &why);
	pthread_mutex_lock(&c->lock);
	e = dc_find(c, name, b->index);
	if (ret == 0) {
		c->stats.hits++;
		if (!verified && e != NULL && e->serial == serial && !e->verified) {
			e->verified = 1;
			c->stats.verified++;
		}
	} else if (e != NULL && e->serial == serial) {
		if (ret == -EBADMSG) {
			log_msg(LOG_LEVEL_WARN,
			        "disk cache %s: block %s of %s is corrupt (%s); deleted, "
			        "fetching it again",
			        c->dir, path, b->key, why);
			c->stats.corrupt_blocks++;
		}
		dc_delete(c, e);
		c->stats.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return ret == -EBADMSG ? -ENOENT : ret;
}

static ssize_t dc_get(struct tier *t, const struct tier_block *b, void *dst,
                      struct backend_stat *st)
{
	struct diskcache *c = dc_of(t);
	struct dc_header h;
	int fd, ret = dc_find_open(c, b, dst, &fd, &h);

	if (ret < 0)
		return ret;
	close(fd);
	dc_header_stat(&h, st);
	return (ssize_t)h.data_len;
}

static int dc_open(struct tier *t, const struct tier_block *b, int *fd, uint64_t *data_off,
                   size_t *len, struct backend_stat *st)
{
	struct diskcache *c = dc_of(t);
	struct dc_header h;
	int ret = dc_find_open(c, b, NULL, fd, &h);

	if (ret < 0)
		return ret;
	*data_off = h.header_len;
	*len = (size_t)h.data_len;
	dc_header_stat(&h, st);
	return 0;
}

static void dc_willneed(struct tier *t, const struct tier_block *b)
{
	struct diskcache *c = dc_of(t);
	unsigned char name[32];
	char path[DC_NAME_HEX + 40];
	struct dc_entry *e;
	int fd, held;

	dc_name_hash(name, b->key, b->etag);
	pthread_mutex_lock(&c->lock);
	e = dc_find(c, name, b->index);
	held = e != NULL && dc_size_fits(e, b);
	pthread_mutex_unlock(&c->lock);
	if (!held)
		return; /* no syscall for a block the store will send */
	dc_path(path, sizeof(path), name, b->index);
	fd = openat(c->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
}

static int dc_has(struct tier *t, const struct tier_block *b)
{
	struct diskcache *c = dc_of(t);
	unsigned char name[32];
	struct dc_entry *e;
	int found;

	dc_name_hash(name, b->key, b->etag);
	pthread_mutex_lock(&c->lock);
	e = dc_find(c, name, b->index);
	found = e != NULL && dc_size_fits(e, b);
	pthread_mutex_unlock(&c->lock);
	return found;
}

/* Whether dir's filesystem has at least min_free_percent free. */
static int dc_space_ok(struct diskcache *c)
{
	struct statvfs v;

	if (c->min_free_percent <= 0 || fstatvfs(c->dirfd, &v) < 0 || v.f_blocks == 0)
		return 1;
	return (uint64_t)v.f_bavail * 100 >= (uint64_t)v.f_blocks * (uint64_t)c->min_free_percent;
}

/* Store len bytes as block b, if there is room.  Failures are counted. */
static void dc_put(struct tier *t, const struct tier_block *b, const void *data, size_t len,
                   const struct backend_stat *st)
{
	struct diskcache *c = dc_of(t);
	size_t key_len = strlen(b->key);
	struct dc_header h = {0};
	uint64_t size = sizeof(h) + key_len + (uint64_t)len;
	char path[DC_NAME_HEX + 40], tmp[DC_NAME_HEX + 80], sub[3];
	unsigned char name[32];
	uint64_t serial;
	int fd, ret;

	if (key_len >= DC_MAX_KEY || len > c->base.block_size || b->etag[0] == '\0')
		return;
	dc_name_hash(name, b->key, b->etag);
	pthread_mutex_lock(&c->lock);
	if (dc_find(c, name, b->index) != NULL) {
		pthread_mutex_unlock(&c->lock);
		return; /* stored by a racing fetch of the same block */
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
	h.index = b->index;
	h.block_size = c->base.block_size;
	h.data_len = (uint64_t)len;
	h.obj_size = st->size;
	h.mtime_sec = (int64_t)st->mtime.tv_sec;
	h.mtime_nsec = (int64_t)st->mtime.tv_nsec;
	h.meta = st->meta;
	h.mode = st->mode;
	h.uid = st->uid;
	h.gid = st->gid;
	snprintf(h.etag, sizeof(h.etag), "%s", b->etag);
	h.sum = dc_sum(&h, b->key, data);

	dc_path(path, sizeof(path), name, b->index);
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
			ret = io_pwrite_all(fd, b->key, key_len, (off_t)sizeof(h));
		if (ret == 0)
			ret = io_pwrite_all(fd, data, len, (off_t)(sizeof(h) + key_len));
		if (close(fd) < 0 && ret == 0)
			ret = -errno;
	}

	pthread_mutex_lock(&c->lock);
	c->reserved -= size;
	if (ret == 0) {
		struct dc_entry *e = calloc(1, sizeof(*e)), *old;

		if (e != NULL)
			e->key = strdup(b->key);
		if (e == NULL || e->key == NULL) {
			free(e);
			ret = -ENOMEM;
		} else if (renameat(c->dirfd, tmp, c->dirfd, path) < 0) {
			ret = -errno;
			free(e->key);
			free(e);
		} else {
			old = dc_find(c, name, b->index);
			if (old != NULL)
				dc_remove(c, old); /* its file was just replaced */
			memcpy(e->name, name, 32);
			e->index = b->index;
			e->obj_size = st->size;
			e->bytes = size;
			e->verified = 1; /* summed from the bytes just written */
			dc_insert(c, e);
			c->stats.stored++;
		}
	}
	if (ret != 0) {
		unlinkat(c->dirfd, tmp, 0);
		if (c->stats.write_errors++ == 0 || ret != -ENOSPC)
			log_msg(LOG_LEVEL_WARN,
			        "disk cache %s: cannot store a block of %s: %s (reads go on "
			        "from the store)",
			        c->dir, b->key, strerror(-ret));
	}
	pthread_mutex_unlock(&c->lock);
}

void diskcache_get_stats(struct tier *t, struct diskcache_stats *out)
{
	struct diskcache *c;

	memset(out, 0, sizeof(*out));
	if (t == NULL || t->ops != &diskcache_ops)
		return;
	c = dc_of(t);
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->bytes_on_disk = c->installed + c->reserved;
	pthread_mutex_unlock(&c->lock);
}

static void dc_stats(struct tier *t, backend_stats_fn emit, void *ctx)
{
	struct diskcache_stats s;

	diskcache_get_stats(t, &s);
	emit(ctx, "diskcache", "hits", s.hits);
	emit(ctx, "diskcache", "misses", s.misses);
	emit(ctx, "diskcache", "stored", s.stored);
	emit(ctx, "diskcache", "verified", s.verified);
	emit(ctx, "diskcache", "bytes_on_disk", s.bytes_on_disk);
	emit(ctx, "diskcache", "files", s.files);
	emit(ctx, "diskcache", "evictions", s.evictions);
	emit(ctx, "diskcache", "corrupt_blocks", s.corrupt_blocks);
	emit(ctx, "diskcache", "write_errors", s.write_errors);
	emit(ctx, "diskcache", "full_skips", s.full_skips);
}

void diskcache_debug_check(struct tier *t)
{
#ifndef NDEBUG
	struct diskcache *c;
	uint64_t bytes = 0, files = 0;

	if (t == NULL || t->ops != &diskcache_ops)
		return;
	c = dc_of(t);
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
	(void)t;
#endif
}

static void dc_free(struct diskcache *c)
{
	if (c->scratch != NULL)
		munmap(c->scratch, DC_SCRATCH * c->base.block_size);
	pthread_cond_destroy(&c->scratch_cond);
	while (c->head != NULL)
		dc_remove(c, c->head);
	free(c->buckets);
	if (c->lockfd >= 0)
		close(c->lockfd); /* releases the flock */
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

static void dc_destroy(struct tier *t)
{
	dc_free(dc_of(t));
}

static const struct tier_ops diskcache_ops = {
    .name = "diskcache",
    .get = dc_get,
    .open = dc_open,
    .has = dc_has,
    .willneed = dc_willneed,
    .put = dc_put,
    .drop = dc_drop,
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
	if (io_pread_all(fd, &h, 8, 0) == 8 && memcmp(h.magic, DC_OLD_MAGIC, 8) == 0) {
		*why = NULL; /* an earlier version's block: not corrupt, just old */
		close(fd);
		return NULL;
	}
	if (io_pread_all(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, DC_MAGIC, sizeof(h.magic)) != 0 || h.key_len == 0 ||
	    h.key_len >= DC_MAX_KEY || h.header_len != sizeof(h) + h.key_len || h.index != index ||
	    h.block_size != c->base.block_size || h.data_len > c->base.block_size ||
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
	e->obj_size = h.obj_size;
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
			if (e == NULL && why == NULL) {
				unlinkat(subfd, de->d_name, 0);
				continue;
			}
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

/*
 * Open (creating it and missing parents, 0700) and check the cache
 * directory: this user's own, not writable by others, not a symlink, in
 * safe parents (safedir.h).  fd or -errno.
 */
static int dc_open_dir(const char *dir)
{
	char err[PATH_MAX + 256];
	int fd = safedir_open(dir, SAFEDIR_CREATE, err, sizeof(err));

	if (fd < 0)
		log_msg(LOG_LEVEL_ERROR, "disk cache: %s", err);
	return fd;
}

void diskcache_opts_init(struct diskcache_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_bytes = DISKCACHE_DEFAULT_MAX_BYTES;
	o->block_size = DISKCACHE_DEFAULT_BLOCK_SIZE;
	o->min_free_percent = DISKCACHE_DEFAULT_MIN_FREE;
}

struct tier *diskcache_create(const struct diskcache_opts *opts)
{
	struct diskcache *c;
	int ret;

	if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0' ||
	    opts->min_free_percent < -1 || opts->min_free_percent > 99) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	c->base.ops = &diskcache_ops;
	c->dirfd = c->lockfd = -1;
	c->base.block_size = opts->block_size ? opts->block_size : DISKCACHE_DEFAULT_BLOCK_SIZE;
	c->max_bytes = opts->max_bytes ? opts->max_bytes : DISKCACHE_DEFAULT_MAX_BYTES;
	c->min_free_percent = opts->min_free_percent == 0    ? DISKCACHE_DEFAULT_MIN_FREE
	                      : opts->min_free_percent == -1 ? 0
	                                                     : opts->min_free_percent;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->scratch_cond, NULL);
	if (c->base.block_size < 4096 || (c->base.block_size & (c->base.block_size - 1)) != 0 ||
	    c->max_bytes < c->base.block_size) {
		ret = -EINVAL;
		goto fail;
	}
	c->scratch = mmap(NULL, DC_SCRATCH * c->base.block_size, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->scratch == MAP_FAILED) {
		c->scratch = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	(void)madvise(c->scratch, DC_SCRATCH * c->base.block_size, MADV_HUGEPAGE);
	c->scratch_free = (1u << DC_SCRATCH) - 1;
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

	if (opts_parse(args, &c, dc_opt_spec, NULL) < 0)
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
	             "    -o cache_dir=PATH        keep read blocks in PATH (0700, created with "
	             "its parents\n"
	             "                             if missing; your own, not writable by "
	             "others)\n"
	             "    -o cache_dir_size=MiB    bound on the cache files (default 10240)\n"
	             "    -o cache_dir_min_free=P  stop growing below P%% free on PATH's "
	             "filesystem (default 5; 0: until full)\n");
}
