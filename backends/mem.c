/*
 * mem.c - the in-memory backend (see mem.h).
 *
 * Design
 *   One mutex (mem_backend.lock) protects everything mutable: the object
 *   array, the generation counter and the op counters.  Objects are held in
 *   an array of pointers sorted by key with strcmp() (which compares bytes
 *   as unsigned char, i.e. memcmp order); lookups are binary searches and an
 *   insert or delete moves the tail of the array.  That is O(n) per change,
 *   which is fine for the few thousand keys a test creates.
 *
 *   save() reads the whole source into a fresh buffer *before* taking the
 *   lock, then swaps the object in under the lock.  That gives atomic saves
 *   for free: readers copy bytes under the lock, so they see the old object
 *   or the new one, and a source that fails leaves the old object untouched.
 *
 * Invariants (checked by mem_check() after each change, unless NDEBUG)
 *   - objs[0..n) are non-NULL, keys valid and strictly increasing;
 *   - data is NULL exactly when size is 0; a marker ("d/") has size 0;
 *   - every gen is below next_gen and no two objects share a gen.
 *     (Generations are unique; checking that is O(n^2), so mem_check()
 *     checks only the bound.)
 */
#include "mem.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest piece read from a save source at once. */
#define MEM_PIECE_SIZE (4u << 20)

/* max_keys when the caller passes 0, as S3. */
#define MEM_LIST_DEFAULT 1000

struct mem_object {
	char *key;
	unsigned char *data; /* NULL when size is 0 */
	uint64_t size;
	struct timespec mtime;
	uint64_t gen;  /* the etag, rendered in decimal */
	unsigned meta; /* BACKEND_META_* bits valid below */
	uint32_t mode, uid, gid;
};

struct mem_backend {
	struct backend base;
	pthread_mutex_t lock;
	struct mem_object **objs;       /* lock; sorted by key */
	size_t n_objs, cap_objs;        /* lock */
	uint64_t next_gen;              /* lock; next etag to hand out */
	struct mem_backend_stats stats; /* lock */
};

static const struct backend_ops mem_ops;

static struct mem_backend *mem_of(struct backend *b)
{
	return (struct mem_backend *)b;
}

static void mem_object_free(struct mem_object *o)
{
	if (o == NULL)
		return;
	free(o->key);
	free(o->data);
	free(o);
}

#ifndef NDEBUG
/* Assert the invariants listed at the top.  Caller holds m->lock. */
static void mem_check(const struct mem_backend *m)
{
	assert(m->n_objs <= m->cap_objs);
	for (size_t i = 0; i < m->n_objs; i++) {
		const struct mem_object *o = m->objs[i];

		assert(o != NULL && backend_key_valid(o->key));
		assert((o->data == NULL) == (o->size == 0));
		assert(o->gen < m->next_gen);
		if (i > 0)
			assert(strcmp(m->objs[i - 1]->key, o->key) < 0);
	}
}
#else
#define mem_check(m) ((void)(m))
#endif

/*
 * Binary search for key.  Returns 1 and sets *pos to its index if present,
 * else returns 0 and sets *pos to where it would be inserted.  Caller holds
 * m->lock.
 */
static int mem_find(const struct mem_backend *m, const char *key, size_t *pos)
{
	size_t lo = 0, hi = m->n_objs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->objs[mid]->key, key);

		if (c == 0) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

/* Index of the first key strictly greater than s.  Caller holds m->lock. */
static size_t mem_upper_bound(const struct mem_backend *m, const char *s)
{
	size_t pos;

	if (mem_find(m, s, &pos))
		pos++;
	return pos;
}

static void mem_fill_stat(const struct mem_object *o, struct backend_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->size = o->size;
	st->mtime = o->mtime;
	snprintf(st->etag, sizeof(st->etag), "%" PRIu64, o->gen);
	st->meta = o->meta;
	st->mode = o->mode;
	st->uid = o->uid;
	st->gid = o->gid;
}

/*
 * Put o under its key, replacing and freeing any object of that name, and
 * stamp it with a new generation.  Takes ownership of o, also on failure.
 * Caller holds m->lock.
 */
static int mem_insert(struct mem_backend *m, struct mem_object *o)
{
	size_t pos;

	o->gen = m->next_gen++;
	if (mem_find(m, o->key, &pos)) {
		mem_object_free(m->objs[pos]);
		m->objs[pos] = o;
		return 0;
	}
	if (m->n_objs == m->cap_objs) {
		size_t cap = m->cap_objs ? 2 * m->cap_objs : 64;
		struct mem_object **objs = realloc(m->objs, cap * sizeof(*objs));

		if (objs == NULL) {
			mem_object_free(o);
			return -ENOMEM;
		}
		m->objs = objs;
		m->cap_objs = cap;
	}
	memmove(&m->objs[pos + 1], &m->objs[pos], (m->n_objs - pos) * sizeof(*m->objs));
	m->objs[pos] = o;
	m->n_objs++;
	return 0;
}

static int mem_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	struct mem_backend *m = mem_of(b);
	size_t pos;
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	m->stats.stat++;
	if (!backend_key_valid(key)) {
		ret = -EINVAL;
	} else if (mem_find(m, key, &pos)) {
		mem_fill_stat(m->objs[pos], st);
		ret = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static ssize_t mem_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                        const char *etag, struct backend_stat *st)
{
	struct mem_backend *m = mem_of(b);
	struct backend_stat cur;
	const struct mem_object *o;
	ssize_t ret;
	size_t pos;

	pthread_mutex_lock(&m->lock);
	m->stats.read++;
	if (!backend_key_valid(key)) {
		ret = -EINVAL;
		goto out;
	}
	if (!mem_find(m, key, &pos)) {
		ret = -ENOENT;
		goto out;
	}
	o = m->objs[pos];
	mem_fill_stat(o, &cur);
	if (etag != NULL && etag[0] != '\0' && strcmp(etag, cur.etag) != 0) {
		ret = -ESTALE;
		goto out;
	}
	if (off >= o->size) {
		len = 0;
	} else {
		if (len > o->size - off)
			len = (size_t)(o->size - off);
		if (len > SSIZE_MAX)
			len = SSIZE_MAX;
		memcpy(dst, o->data + off, len);
	}
	m->stats.bytes_read += len;
	if (st != NULL)
		*st = cur;
	ret = (ssize_t)len;
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* Read all of src into a new buffer (*data, NULL when empty). */
static int mem_slurp(const struct backend_source *src, unsigned char **data)
{
	unsigned char *buf;
	uint64_t off = 0;
	int ret;

	*data = NULL;
	if (src->size == 0)
		return 0;
	if (src->size > SIZE_MAX)
		return -EFBIG;
	buf = malloc((size_t)src->size);
	if (buf == NULL)
		return -ENOMEM;
	while (off < src->size) {
		size_t n =
		    src->size - off < MEM_PIECE_SIZE ? (size_t)(src->size - off) : MEM_PIECE_SIZE;

		ret = src->read(src, off, buf + off, n);
		if (ret < 0)
			goto fail;
		off += n;
	}
	*data = buf;
	return 0;
fail:
	free(buf);
	return ret;
}

static int mem_save(struct backend *b, const char *key, const struct backend_source *src,
                    const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct mem_backend *m = mem_of(b);
	struct mem_object *o;
	size_t len;
	int ret;

	pthread_mutex_lock(&m->lock);
	m->stats.save++;
	pthread_mutex_unlock(&m->lock);

	if (!backend_key_valid(key))
		return -EINVAL;
	len = strlen(key);
	if (key[len - 1] == '/' && src->size != 0)
		return -EINVAL;

	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	o->key = strdup(key);
	if (o->key == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = mem_slurp(src, &o->data);
	if (ret < 0)
		goto fail;
	o->size = src->size;
	if (attrs != NULL) {
		o->meta = attrs->meta & (BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID);
		o->mode = (o->meta & BACKEND_META_MODE) ? attrs->mode & 07777 : 0;
		o->uid = (o->meta & BACKEND_META_UID) ? attrs->uid : 0;
		o->gid = (o->meta & BACKEND_META_GID) ? attrs->gid : 0;
		o->mtime = attrs->mtime;
	}
	if (o->mtime.tv_sec == 0 && o->mtime.tv_nsec == 0)
		clock_gettime(CLOCK_REALTIME, &o->mtime);

	pthread_mutex_lock(&m->lock);
	ret = mem_insert(m, o); /* owns o from here; it stays valid under the lock */
	if (ret == 0 && st != NULL)
		mem_fill_stat(o, st);
	mem_check(m);
	pthread_mutex_unlock(&m->lock);
	return ret;
fail:
	mem_object_free(o);
	return ret;
}

static int mem_remove(struct backend *b, const char *key)
{
	struct mem_backend *m = mem_of(b);
	size_t pos;
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	m->stats.remove++;
	if (!backend_key_valid(key)) {
		ret = -EINVAL;
	} else if (mem_find(m, key, &pos)) {
		mem_object_free(m->objs[pos]);
		memmove(&m->objs[pos], &m->objs[pos + 1], (m->n_objs - pos - 1) * sizeof(*m->objs));
		m->n_objs--;
		ret = 0;
	}
	mem_check(m);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* strcmp() of the first alen bytes of a (as a string) against b. */
static int mem_cmp_n(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Append an entry for o to l.  Caller holds the lock. */
static int mem_list_add_entry(struct backend_list *l, size_t *cap, const struct mem_object *o)
{
	if (l->n_entries == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		struct backend_entry *e = realloc(l->entries, ncap * sizeof(*e));

		if (e == NULL)
			return -ENOMEM;
		l->entries = e;
		*cap = ncap;
	}
	l->entries[l->n_entries].key = strdup(o->key);
	if (l->entries[l->n_entries].key == NULL)
		return -ENOMEM;
	mem_fill_stat(o, &l->entries[l->n_entries].st);
	l->n_entries++;
	return 0;
}

/* Append the first len bytes of key as a common prefix to l. */
static int mem_list_add_prefix(struct backend_list *l, size_t *cap, const char *key, size_t len)
{
	if (l->n_prefixes == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		char **p = realloc(l->prefixes, ncap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		l->prefixes = p;
		*cap = ncap;
	}
	l->prefixes[l->n_prefixes] = strndup(key, len);
	if (l->prefixes[l->n_prefixes] == NULL)
		return -ENOMEM;
	l->n_prefixes++;
	return 0;
}

/*
 * S3 listing over the sorted array.  Each key yields one item: itself (an
 * entry), or with a delimiter after the prefix, the common prefix up to
 * and including that delimiter.  Keys with the same common prefix are
 * adjacent, so rolled-up items come out in order and repeated ones are
 * dropped by comparing with the last item.  Items <= start_after or token
 * are skipped; since an item is a prefix of its key (so never greater),
 * the walk can start right after the larger of the two.
 */
static int mem_list(struct backend *b, const char *prefix, char delimiter, const char *start_after,
                    const char *token, size_t max_keys, struct backend_list *out)
{
	struct mem_backend *m = mem_of(b);
	size_t plen, i, n_items = 0, cap_e = 0, cap_p = 0;
	const char *last = NULL; /* last item added, not NUL-terminated */
	size_t last_len = 0;
	const char *bound;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (prefix == NULL)
		prefix = "";
	plen = strlen(prefix);
	if (max_keys == 0)
		max_keys = MEM_LIST_DEFAULT;
	bound = start_after;
	if (token != NULL && (bound == NULL || strcmp(token, bound) > 0))
		bound = token;

	pthread_mutex_lock(&m->lock);
	m->stats.list++;
	if (bound != NULL && strcmp(bound, prefix) >= 0)
		i = mem_upper_bound(m, bound);
	else
		mem_find(m, prefix, &i);
	for (; i < m->n_objs; i++) {
		const struct mem_object *o = m->objs[i];
		const char *d;
		size_t ilen;

		if (strncmp(o->key, prefix, plen) != 0)
			break;
		ilen = strlen(o->key);
		d = delimiter ? memchr(o->key + plen, delimiter, ilen - plen) : NULL;
		if (d != NULL)
			ilen = (size_t)(d - o->key) + 1;
		if (bound != NULL && mem_cmp_n(o->key, ilen, bound) <= 0)
			continue;
		if (last != NULL && ilen == last_len && memcmp(last, o->key, ilen) == 0)
			continue; /* same common prefix as the item before */
		if (n_items == max_keys) {
			out->next_token = strndup(last, last_len);
			if (out->next_token == NULL)
				ret = -ENOMEM;
			break;
		}
		if (d != NULL)
			ret = mem_list_add_prefix(out, &cap_p, o->key, ilen);
		else
			ret = mem_list_add_entry(out, &cap_e, o);
		if (ret < 0)
			break;
		last = o->key;
		last_len = ilen;
		n_items++;
	}
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		backend_list_free(out);
	return ret;
}

static int mem_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	struct mem_backend *m = mem_of(b);
	const struct mem_object *s;
	struct mem_object *o = NULL;
	size_t pos;
	int ret;

	pthread_mutex_lock(&m->lock);
	m->stats.copy++;
	if (!backend_key_valid(src) || !backend_key_valid(dst)) {
		ret = -EINVAL;
		goto out;
	}
	if ((src[strlen(src) - 1] == '/') != (dst[strlen(dst) - 1] == '/')) {
		ret = -EINVAL; /* a marker and an object are not interchangeable */
		goto out;
	}
	if (!mem_find(m, src, &pos)) {
		ret = -ENOENT;
		goto out;
	}
	s = m->objs[pos];
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		goto nomem;
	*o = *s;
	o->data = NULL;
	o->key = strdup(dst);
	if (o->key == NULL)
		goto nomem;
	if (s->size > 0) {
		o->data = malloc((size_t)s->size);
		if (o->data == NULL)
			goto nomem;
		memcpy(o->data, s->data, (size_t)s->size);
	}
	/* Like S3's CopyObject: same bytes and metadata, new mtime. */
	clock_gettime(CLOCK_REALTIME, &o->mtime);
	ret = mem_insert(m, o); /* owns o, and may free s when src == dst */
	if (ret == 0 && st != NULL)
		mem_fill_stat(o, st);
	mem_check(m);
	goto out;
nomem:
	mem_object_free(o);
	ret = -ENOMEM;
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int mem_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                       struct backend_stat *st)
{
	struct mem_backend *m = mem_of(b);
	struct mem_object *o;
	size_t pos;
	int ret = 0;

	if (!backend_key_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (!mem_find(m, key, &pos)) {
		ret = -ENOENT;
		goto out;
	}
	o = m->objs[pos];
	o->meta = attrs->meta & (BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID);
	o->mode = (o->meta & BACKEND_META_MODE) ? attrs->mode & 07777 : 0;
	o->uid = (o->meta & BACKEND_META_UID) ? attrs->uid : 0;
	o->gid = (o->meta & BACKEND_META_GID) ? attrs->gid : 0;
	o->mtime = attrs->mtime;
	if (o->mtime.tv_sec == 0 && o->mtime.tv_nsec == 0)
		clock_gettime(CLOCK_REALTIME, &o->mtime);
	if (st != NULL)
		mem_fill_stat(o, st);
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static void mem_destroy(struct backend *b)
{
	struct mem_backend *m = mem_of(b);

	for (size_t i = 0; i < m->n_objs; i++)
		mem_object_free(m->objs[i]);
	free(m->objs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct backend_ops mem_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "mem",
    .stat = mem_stat,
    .read = mem_read,
    .save = mem_save,
    .remove = mem_remove,
    .list = mem_list,
    .copy = mem_copy,
    .rename = NULL,
    .setattr = mem_setattr,
    .space = NULL,
    .destroy = mem_destroy,
};

struct backend *mem_backend_create(void)
{
	struct mem_backend *m = calloc(1, sizeof(*m));
	int err;

	if (m == NULL)
		return NULL;
	err = pthread_mutex_init(&m->lock, NULL);
	if (err != 0) {
		free(m);
		errno = err;
		return NULL;
	}
	m->base.ops = &mem_ops;
	m->next_gen = 1;
	return &m->base;
}

void mem_backend_get_stats(struct backend *b, struct mem_backend_stats *out)
{
	struct mem_backend *m;

	if (b == NULL || b->ops != &mem_ops) {
		memset(out, 0, sizeof(*out));
		return;
	}
	m = mem_of(b);
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	pthread_mutex_unlock(&m->lock);
}

void mem_backend_reset_stats(struct backend *b)
{
	struct mem_backend *m;

	if (b == NULL || b->ops != &mem_ops)
		return;
	m = mem_of(b);
	pthread_mutex_lock(&m->lock);
	memset(&m->stats, 0, sizeof(m->stats));
	pthread_mutex_unlock(&m->lock);
}
