/*
 * dircache.c - see dircache.h for what it is for.
 *
 * State of one directory entry (struct dir), under the cache lock:
 *   (absent) --lookup misses--> LOADING --listed--> READY or BIG
 *   LOADING --list failed, or a change dropped it--> (absent)
 *   READY/BIG --older than ttl--> LOADING (by the next lookup that loads)
 *   READY/BIG --dircache_changed(), budget--> (absent)
 * Only the thread that set LOADING fills or removes the entry; others wait
 * on the condition variable.  A change while LOADING sets "dropped": the
 * loader then discards what it read, since the listing may predate the
 * change.
 *
 * Invariants (dircache_check()): bytes is the sum of the entries' sizes
 * (a LOADING entry keeps its old items until the new ones come); n_dirs
 * counts the entries in the hash, which are exactly those on the LRU
 * list; an entry's items are sorted with unique names.
 *
 * Lock: one mutex guards everything here; nothing is called with it held
 * but memory allocation (listing happens outside it) and, for a pinned
 * mount that saves its listings, the small file operations of saving,
 * reading back and deleting them.
 *
 * Saved listings (opts.save_dirfd, pinned mounts only): one JSON file a
 * directory, named by the FNV-1a hash of its prefix, holding the prefix
 * (checked when read back) and the items with their attributes and
 * metadata.  Written whole (temporary file, rename) when a listing is
 * kept, and again when it leaves memory (budget, unmount) if metadata was
 * stat'ed since; read back when a lookup finds no
 * listing in memory, before listing the store; every change of this mount
 * deletes them all (a pinned mount is one that is mostly read).
 */
#include "dircache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "safedir.h"

#define NAME_MAX_BYTES 255
#define N_BUCKETS      1024

enum dir_state { DIR_LOADING, DIR_READY, DIR_BIG };

struct dir {
	char *prefix;
	struct dir *hnext;         /* hash chain */
	struct dir *newer, *older; /* LRU list */
	enum dir_state state;
	int dropped;                  /* changed while LOADING */
	struct timespec time;         /* when the listing was asked for */
	struct dircache_listing list; /* READY only */
	int unsaved;                  /* metadata stat'ed since the listing was
	                               * saved (pinned mounts with a save dir) */
	size_t bytes;                 /* memory counted for it (READY) */
};

struct dircache {
	struct backend *be; /* not owned */
	struct dircache_opts opts;
	pthread_mutex_t lock;
	pthread_cond_t loaded; /* a LOADING entry changed state */
	struct dir *buckets[N_BUCKETS];
	struct dir *newest, *oldest; /* LRU list */
	size_t n_dirs, bytes;
	uint64_t gen;                /* bumped by every change */
	struct dircache_stats stats; /* dirs and bytes filled on demand */
};

/* --- listings --------------------------------------------------------- */

/* Whether name (one component, NUL-terminated) can be shown in a
 * directory: not empty, not . or .., no '/', no control characters, not
 * longer than the kernel takes. */
static int name_usable(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_BYTES || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c == '/' || *c < 0x20 || *c == 0x7f)
			return 0;
	return 1;
}

/* What a listing skipped, reported in one line when it ends. */
struct skipped {
	size_t n;
	char first[64]; /* the first one, control characters shown as '?' */
};

static void skip(struct skipped *sk, const char *key)
{
	if (sk->n++ > 0)
		return;
	snprintf(sk->first, sizeof(sk->first), "%s", key);
	for (char *c = sk->first; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

static int listing_add(struct dircache_listing *l, const char *name, size_t len, mode_t type,
                       const struct backend_stat *st)
{
	struct dircache_item *it;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct dircache_item *items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	it = &l->items[l->n];
	memset(it, 0, sizeof(*it));
	it->name = strndup(name, len);
	if (it->name == NULL)
		return -ENOMEM;
	it->type = type;
	if (st != NULL)
		it->st = *st;
	l->n++;
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	const struct dircache_item *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Same name: the directory first, so it wins the dedup below. */
	return c ? c : (x->type == S_IFDIR ? -1 : 0) - (y->type == S_IFDIR ? -1 : 0);
}

void dircache_listing_free(struct dircache_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* Memory held by the items of l from the first'th on. */
static size_t items_bytes(const struct dircache_listing *l, size_t first)
{
	size_t b = (l->n - first) * sizeof(*l->items);

	for (size_t i = first; i < l->n; i++)
		b += strlen(l->items[i].name) + 1;
	return b;
}

/* Add one page of a listing of prefix to out; what cannot be a file name
 * here is counted in *sk. */
static int add_page(const char *prefix, struct backend_list *l, struct dircache_listing *out,
                    struct skipped *sk)
{
	size_t plen = strlen(prefix);
	int ret = 0;

	for (size_t n = backend_list_keep(l, prefix, 0); n > 0; n--)
		skip(sk, "(a key outside the directory)");
	for (size_t i = 0; i < l->n_entries && ret == 0; i++) {
		const char *name = l->entries[i].key + plen;

		if (*name == '\0')
			continue; /* the directory's own marker */
		if (name_usable(name))
			ret = listing_add(out, name, strlen(name), S_IFREG, &l->entries[i].st);
		else
			skip(sk, l->entries[i].key);
	}
	for (size_t i = 0; i < l->n_prefixes && ret == 0; i++) {
		const char *name = l->prefixes[i] + plen;
		size_t len = strlen(name) - 1; /* drop the delimiter */
		char tmp[NAME_MAX_BYTES + 2];

		if (len > NAME_MAX_BYTES || name[len] != '/') {
			skip(sk, l->prefixes[i]);
			continue;
		}
		memcpy(tmp, name, len);
		tmp[len] = '\0';
		if (name_usable(tmp))
			ret = listing_add(out, name, len, S_IFDIR, NULL);
		else
			skip(sk, l->prefixes[i]);
	}
	return ret;
}

/* Whether the listing may go on after a page: -EIO when the store loops
 * or the listing outgrows lim, with a line saying which. */
static int page_check(const char *prefix, const char *sent, const struct backend_list *l,
                      size_t pages, size_t bytes, const struct dircache_limits *lim)
{
	if (l->next_token == NULL)
		return 0;
	if (sent != NULL && strcmp(sent, l->next_token) == 0) {
		log_warn("listing \"%s\": the server answered with the continuation token it "
		         "was given, so the listing would never end; giving up (EIO)",
		         prefix);
		return -EIO;
	}
	if (lim->max_pages > 0 && pages >= lim->max_pages) {
		log_warn("listing \"%s\": still not done after %zu pages; giving up (EIO); "
		         "raise -o list_pages= if the directory is really that big",
		         prefix, pages);
		return -EIO;
	}
	if (lim->max_bytes > 0 && bytes > lim->max_bytes) {
		log_warn("listing \"%s\": over the memory left for directory listings (%zu KiB); "
		         "giving up (EIO); close other directories or raise -o dir_memory=",
		         prefix, lim->max_bytes >> 10);
		return -EIO;
	}
	return 0;
}

int dircache_list(struct backend *be, const char *prefix, const struct dircache_limits *lim,
                  struct dircache_listing *out)
{
	struct backend_list l = {0};
	struct skipped sk = {0};
	char *token = NULL;
	size_t w, pages = 0, bytes = 0;
	int ret;

	do {
		size_t n0 = out->n;

		ret = be->ops->list(be, prefix, '/', NULL, token, 0, &l);
		if (ret == 0)
			ret = add_page(prefix, &l, out, &sk);
		bytes += items_bytes(out, n0);
		if (ret == 0 && lim->max_items > 0 && out->n > lim->max_items)
			ret = -E2BIG;
		if (ret == 0)
			ret = page_check(prefix, token, &l, ++pages, bytes, lim);
		free(token);
		token = NULL;
		if (ret == 0 && l.next_token != NULL) {
			token = strdup(l.next_token);
			if (token == NULL)
				ret = -ENOMEM;
		}
		backend_list_free(&l);
		if (ret < 0)
			goto fail;
	} while (token != NULL);
	if (sk.n > 0)
		log_warn("listing \"%s\": %zu names skipped that cannot be file names here "
		         "(empty, . or .., '/' or control characters inside, too long, or "
		         "outside the directory), the first \"%s\"",
		         prefix, sk.n, sk.first);

	/* Entries and prefixes come as two sorted lists; merge and drop an
	 * object shadowed by a directory of the same name. */
	if (out->n > 1)
		qsort(out->items, out->n, sizeof(*out->items), item_cmp);
	for (size_t r = w = 0; r < out->n; r++) {
		if (w > 0 && strcmp(out->items[w - 1].name, out->items[r].name) == 0) {
			log_warn(
			    "\"%s%s\" is both an object and a directory; showing the directory",
			    prefix, out->items[r].name);
			free(out->items[r].name);
			continue;
		}
		out->items[w++] = out->items[r];
	}
	out->n = w;
	return 0;
fail:
	dircache_listing_free(out);
	return ret;
}

struct dircache_item *dircache_listing_find(const struct dircache_listing *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->items[mid].name, name);

		if (c == 0)
			return &l->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int listing_copy(const struct dircache_listing *src, struct dircache_listing *dst)
{
	memset(dst, 0, sizeof(*dst));
	dst->items = malloc((src->n ? src->n : 1) * sizeof(*dst->items));
	if (dst->items == NULL)
		return -ENOMEM;
	dst->cap = src->n;
	for (size_t i = 0; i < src->n; i++) {
		dst->items[i] = src->items[i];
		dst->items[i].name = strdup(src->items[i].name);
		if (dst->items[i].name == NULL) {
			dircache_listing_free(dst);
			return -ENOMEM;
		}
		dst->n++;
	}
	return 0;
}

/* --- the cache -------------------------------------------------------- */

static struct timespec now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static int fresh(const struct dircache *dc, const struct dir *d)
{
	struct timespec t = now();
	double age =
	    (double)(t.tv_sec - d->time.tv_sec) + (double)(t.tv_nsec - d->time.tv_nsec) / 1e9;

	return dc->opts.ttl < 0 || age < dc->opts.ttl;
}

static size_t hash_prefix(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29)) & (N_BUCKETS - 1);
}

size_t dircache_listing_bytes(const struct dircache_listing *l)
{
	return items_bytes(l, 0);
}

/* Lock held. */
static struct dir *dir_find(struct dircache *dc, const char *prefix)
{
	for (struct dir *d = dc->buckets[hash_prefix(prefix)]; d != NULL; d = d->hnext) {
		if (strcmp(d->prefix, prefix) == 0)
			return d;
	}
	return NULL;
}

/* Lock held. */
static void lru_unlink(struct dircache *dc, struct dir *d)
{
	if (d->newer != NULL)
		d->newer->older = d->older;
	else
		dc->newest = d->older;
	if (d->older != NULL)
		d->older->newer = d->newer;
	else
		dc->oldest = d->newer;
	d->newer = d->older = NULL;
}

/* Lock held. */
static void lru_push(struct dircache *dc, struct dir *d)
{
	d->older = dc->newest;
	d->newer = NULL;
	if (dc->newest != NULL)
		dc->newest->newer = d;
	dc->newest = d;
	if (dc->oldest == NULL)
		dc->oldest = d;
}

/* Lock held. */
static void lru_touch(struct dircache *dc, struct dir *d)
{
	if (dc->newest != d) {
		lru_unlink(dc, d);
		lru_push(dc, d);
	}
}

/* Drop what a READY entry holds (it becomes an empty shell).  Lock held. */
static void dir_empty(struct dircache *dc, struct dir *d)
{
	dircache_listing_free(&d->list);
	dc->bytes -= d->bytes;
	d->bytes = 0;
}

/* Remove an entry that is not LOADING.  Lock held. */
static void dir_remove(struct dircache *dc, struct dir *d)
{
	struct dir **pp = &dc->buckets[hash_prefix(d->prefix)];

	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	lru_unlink(dc, d);
	dir_empty(dc, d);
	dc->n_dirs--;
	free(d->prefix);
	free(d);
}

/* A new LOADING entry for prefix, or NULL.  Lock held. */
static struct dir *dir_new(struct dircache *dc, const char *prefix)
{
	struct dir *d = calloc(1, sizeof(*d));
	size_t b;

	if (d == NULL || (d->prefix = strdup(prefix)) == NULL) {
		free(d);
		return NULL;
	}
	d->state = DIR_LOADING;
	b = hash_prefix(prefix);
	d->hnext = dc->buckets[b];
	dc->buckets[b] = d;
	lru_push(dc, d);
	dc->n_dirs++;
	return d;
}

/* Evict the least recently used entries but keep, until within budget.
 * Lock held. */
static void save_listing(struct dircache *dc, struct dir *d);

static void enforce_budget(struct dircache *dc, const struct dir *keep)
{
	struct dir *d = dc->oldest;

	while (d != NULL && (dc->n_dirs > dc->opts.max_dirs || dc->bytes > dc->opts.max_bytes)) {
		struct dir *next = d->newer;

		if (d != keep && d->state != DIR_LOADING) {
			if (d->unsaved)
				save_listing(dc, d);
			dir_remove(dc, d);
			dc->stats.evicted++;
		}
		d = next;
	}
}

/*
 * Make d hold listing l (taken over), READY, or BIG when l is NULL or
 * does not fit the budget.  Metadata kept for an unchanged object carries
 * over from d's old listing.  Lock held.
 */
static void dir_fill(struct dircache *dc, struct dir *d, struct dircache_listing *l,
                     struct timespec t)
{
	size_t bytes = l ? sizeof(*d) + strlen(d->prefix) + dircache_listing_bytes(l) : 0;

	if (l != NULL && bytes > dc->opts.max_bytes) {
		dircache_listing_free(l);
		l = NULL;
	}
	if (l != NULL && d->list.n > 0) {
		for (size_t i = 0; i < l->n; i++) {
			struct dircache_item *old =
			    dircache_listing_find(&d->list, l->items[i].name);

			if (old != NULL && old->have_meta && l->items[i].type == S_IFREG &&
			    strcmp(old->st.etag, l->items[i].st.etag) == 0 &&
			    old->st.size == l->items[i].st.size) {
				l->items[i].st = old->st;
				l->items[i].have_meta = 1;
			}
		}
	}
	dir_empty(dc, d);
	d->time = t;
	if (l == NULL) {
		d->state = DIR_BIG;
	} else {
		d->state = DIR_READY;
		d->list = *l;
		d->bytes = bytes;
		dc->bytes += bytes;
	}
	lru_touch(dc, d);
	enforce_budget(dc, d);
}

/* --- saved listings (pinned mounts) ------------------------------------ */

static int saving(const struct dircache *dc)
{
	return dc->opts.ttl < 0 && dc->opts.save_dirfd >= 0;
}

static void saved_name(char *out, size_t size, const char *prefix)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)prefix; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	snprintf(out, size, "%016" PRIx64 ".json", h);
}

/* Save the listing of d (READY).  Lock held.  Failures are only logged. */
static void save_listing(struct dircache *dc, struct dir *d)
{
	json_t *root = json_object(), *items = json_array();
	char name[32], tmp[48];
	char *text = NULL;
	int fd;

	if (root == NULL || items == NULL)
		goto out;
	json_object_set_new(root, "prefix", json_string(d->prefix));
	for (size_t i = 0; i < d->list.n; i++) {
		const struct dircache_item *it = &d->list.items[i];
		const struct backend_stat *st = &it->st;

		json_array_append_new(
		    items,
		    json_pack("[s s I s I I i i i i i]", it->name, it->type == S_IFDIR ? "d" : "f",
		              (json_int_t)st->size, st->etag, (json_int_t)st->mtime.tv_sec,
		              (json_int_t)st->mtime.tv_nsec, it->have_meta, (int)st->meta,
		              (int)st->mode, (int)st->uid, (int)st->gid));
	}
	json_object_set(root, "items", items);
	d->unsaved = 0;
	text = json_dumps(root, JSON_COMPACT);
	if (text == NULL)
		goto out;
	saved_name(name, sizeof(name), d->prefix);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = safedir_create_fresh(dc->opts.save_dirfd, tmp, O_WRONLY);
	if (fd >= 0) {
		size_t len = strlen(text);
		int ok = write(fd, text, len) == (ssize_t)len;

		ok = close(fd) == 0 && ok;
		if (!ok || renameat(dc->opts.save_dirfd, tmp, dc->opts.save_dirfd, name) < 0) {
			unlinkat(dc->opts.save_dirfd, tmp, 0);
			log_debug("cannot save the listing of \"%s\"", d->prefix);
		}
	}
out:
	free(text);
	json_decref(items);
	json_decref(root);
}

/* Read back the saved listing of prefix into *l (empty on entry): 0, or
 * -ENOENT when there is none usable.  Lock held. */
static int load_saved(struct dircache *dc, const char *prefix, struct dircache_listing *l)
{
	char name[32];
	json_t *root = NULL, *items;
	json_error_t jerr;
	struct stat sb;
	int fd, ret = -ENOENT;
	size_t i;
	json_t *it;

	saved_name(name, sizeof(name), prefix);
	fd = openat(dc->opts.save_dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < (64 << 20))
		root = json_loadfd(fd, 0, &jerr);
	close(fd);
	items = json_object_get(root, "items");
	if (!json_is_string(json_object_get(root, "prefix")) ||
	    strcmp(json_string_value(json_object_get(root, "prefix")), prefix) != 0 ||
	    !json_is_array(items))
		goto out;
	json_array_foreach(items, i, it)
	{
		const char *n, *type, *etag;
		json_int_t size, sec, nsec;
		int have_meta, meta, mode, uid, gid;
		struct dircache_item *item;

		if (json_unpack(it, "[s s I s I I i i i i i]", &n, &type, &size, &etag, &sec, &nsec,
		                &have_meta, &meta, &mode, &uid, &gid) != 0 ||
		    strlen(etag) >= BACKEND_ETAG_MAX ||
		    listing_add(l, n, strlen(n), strcmp(type, "d") == 0 ? S_IFDIR : S_IFREG, NULL) <
		        0)
			goto bad;
		item = &l->items[l->n - 1];
		item->st.size = (uint64_t)size;
		snprintf(item->st.etag, sizeof(item->st.etag), "%s", etag);
		item->st.mtime.tv_sec = (time_t)sec;
		item->st.mtime.tv_nsec = (long)nsec;
		item->have_meta = have_meta;
		item->st.meta = (unsigned)meta;
		item->st.mode = (uint32_t)mode;
		item->st.uid = (uint32_t)uid;
		item->st.gid = (uint32_t)gid;
	}
	qsort(l->items, l->n, sizeof(*l->items), item_cmp);
	ret = 0;
	goto out;
bad:
	dircache_listing_free(l);
out:
	json_decref(root);
	return ret;
}

/* Delete every saved listing.  Lock held. */
static void forget_saved(struct dircache *dc)
{
	int fd = dup(dc->opts.save_dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL)
		if (strstr(de->d_name, ".json") != NULL)
			unlinkat(dc->opts.save_dirfd, de->d_name, 0);
	closedir(dir);
}

struct dircache *dircache_create(struct backend *be, const struct dircache_opts *opts)
{
	struct dircache *dc = calloc(1, sizeof(*dc));

	if (dc == NULL)
		return NULL;
	dc->be = be;
	dc->opts = *opts;
	if (dc->opts.max_dirs == 0)
		dc->opts.max_dirs = 1;
	pthread_mutex_init(&dc->lock, NULL);
	pthread_cond_init(&dc->loaded, NULL);
	return dc;
}

void dircache_destroy(struct dircache *dc)
{
	if (dc == NULL)
		return;
	while (dc->oldest != NULL) {
		if (dc->oldest->unsaved && dc->oldest->state == DIR_READY)
			save_listing(dc, dc->oldest);
		dir_remove(dc, dc->oldest);
	}
	pthread_cond_destroy(&dc->loaded);
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

/* Split key into its parent's prefix (the caller frees) and its name. */
static char *split_key(const char *key, const char **name)
{
	const char *slash = strrchr(key, '/');
	size_t len = slash ? (size_t)(slash - key) + 1 : 0;
	char *prefix = strndup(key, len);

	*name = key + len;
	return prefix;
}

/* The answer of a READY or BIG entry for name.  Lock held. */
static int answer(struct dircache *dc, struct dir *d, const char *name, struct backend_stat *st,
                  int *have_meta)
{
	struct dircache_item *it;

	lru_touch(dc, d);
	if (d->state == DIR_BIG) {
		dc->stats.big++;
		return DIRCACHE_UNKNOWN;
	}
	dc->stats.hits++;
	it = dircache_listing_find(&d->list, name);
	if (it == NULL)
		return -ENOENT;
	if (it->type == S_IFDIR)
		return S_IFDIR;
	*st = it->st;
	*have_meta = it->have_meta;
	return S_IFREG;
}

/*
 * List d (LOADING, set by this thread) and fill it.  Lock held on entry
 * and exit, dropped while listing.  0, or -EAGAIN when a change dropped
 * the entry meanwhile, or -errno.
 */
static int load(struct dircache *dc, struct dir *d)
{
	struct dircache_listing l = {0};
	struct dircache_limits lim = {.max_items = dc->opts.max_entries,
	                              .max_pages = dc->opts.max_pages};
	struct timespec t = now();
	int ret;

	dc->stats.loads++;
	pthread_mutex_unlock(&dc->lock);
	ret = dircache_list(dc->be, d->prefix, &lim, &l);
	pthread_mutex_lock(&dc->lock);
	if (ret == 0 || ret == -E2BIG) {
		if (d->dropped) {
			dircache_listing_free(&l);
			ret = -EAGAIN;
		} else {
			dir_fill(dc, d, ret == 0 ? &l : NULL, t);
			if (saving(dc) && d->state == DIR_READY)
				save_listing(dc, d);
			ret = 0;
		}
	}
	if (ret < 0) {
		d->state = DIR_READY; /* an empty shell, removed now */
		dir_remove(dc, d);
	}
	pthread_cond_broadcast(&dc->loaded);
	return ret;
}

int dircache_lookup(struct dircache *dc, const char *key, int load_it, struct backend_stat *st,
                    int *have_meta)
{
	const char *name;
	char *prefix = split_key(key, &name);
	int ret = DIRCACHE_UNKNOWN, tries = 0;

	if (prefix == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&dc->lock);
	for (;;) {
		struct dir *d = dir_find(dc, prefix);

		if (d != NULL && d->state == DIR_LOADING) {
			if (!load_it)
				break;
			pthread_cond_wait(&dc->loaded, &dc->lock);
			continue;
		}
		if (d != NULL && fresh(dc, d)) {
			ret = answer(dc, d, name, st, have_meta);
			break;
		}
		/* A change that keeps overtaking our listing: let the caller
		 * probe the name instead of listing again and again. */
		if (!load_it || tries++ == 3) {
			ret = DIRCACHE_UNKNOWN;
			break;
		}
		if (d == NULL && saving(dc)) {
			struct dircache_listing l = {0};

			if (load_saved(dc, prefix, &l) == 0 && (d = dir_new(dc, prefix)) != NULL) {
				dc->stats.saved++;
				dir_fill(dc, d, &l, now());
				continue; /* and answer from it */
			}
			dircache_listing_free(&l);
		}
		if (d == NULL)
			d = dir_new(dc, prefix);
		else
			d->state = DIR_LOADING; /* its old items stay, for their metadata */
		if (d == NULL) {
			ret = -ENOMEM;
			break;
		}
		d->dropped = 0;
		ret = load(dc, d);
		if (ret < 0 && ret != -EAGAIN)
			break;
	}
	pthread_mutex_unlock(&dc->lock);
	free(prefix);
	return ret;
}

uint64_t dircache_gen(struct dircache *dc)
{
	uint64_t g;

	pthread_mutex_lock(&dc->lock);
	g = dc->gen;
	pthread_mutex_unlock(&dc->lock);
	return g;
}

void dircache_put(struct dircache *dc, const char *prefix, const struct dircache_listing *l,
                  uint64_t gen)
{
	struct dircache_listing copy;
	struct timespec t = now();
	struct dir *d;

	if (dc->opts.max_entries > 0 && l->n > dc->opts.max_entries)
		return;
	if (listing_copy(l, &copy) < 0)
		return;
	pthread_mutex_lock(&dc->lock);
	d = dir_find(dc, prefix);
	if (gen != dc->gen || (d != NULL && d->state == DIR_LOADING)) {
		dircache_listing_free(&copy);
	} else {
		if (d == NULL && (d = dir_new(dc, prefix)) != NULL)
			d->state = DIR_READY; /* empty until filled */
		if (d != NULL)
			dir_fill(dc, d, &copy, t);
		else
			dircache_listing_free(&copy);
		if (d != NULL && saving(dc) && d->state == DIR_READY)
			save_listing(dc, d);
	}
	pthread_mutex_unlock(&dc->lock);
}

int dircache_get(struct dircache *dc, const char *prefix, struct dircache_listing *out)
{
	struct dir *d;
	int ret = -ENOENT;

	pthread_mutex_lock(&dc->lock);
	d = dir_find(dc, prefix);
	if (d != NULL && d->state == DIR_READY && fresh(dc, d)) {
		lru_touch(dc, d);
		dc->stats.hits++;
		ret = listing_copy(&d->list, out);
	}
	pthread_mutex_unlock(&dc->lock);
	return ret;
}

void dircache_set_meta(struct dircache *dc, const char *key, const struct backend_stat *st)
{
	const char *name;
	char *prefix = split_key(key, &name);
	struct dircache_item *it;
	struct dir *d;

	if (prefix == NULL)
		return;
	pthread_mutex_lock(&dc->lock);
	d = dir_find(dc, prefix);
	it = d != NULL && d->state == DIR_READY ? dircache_listing_find(&d->list, name) : NULL;
	if (it != NULL && it->type == S_IFREG) {
		it->st = *st;
		it->have_meta = 1;
		/* Saved when the listing leaves memory (budget, unmount): one
		 * write a directory, not one a file stat'ed. */
		d->unsaved = saving(dc);
	}
	pthread_mutex_unlock(&dc->lock);
	free(prefix);
}

/* Drop the entry of prefix, or mark it if it is loading.  Lock held. */
static void drop(struct dircache *dc, const char *prefix)
{
	struct dir *d = dir_find(dc, prefix);

	if (d == NULL)
		return;
	if (d->state == DIR_LOADING)
		d->dropped = 1;
	else
		dir_remove(dc, d);
}

void dircache_changed(struct dircache *dc, const char *key, int tree)
{
	size_t len = strlen(key);
	char *p = malloc(len + 2);

	if (p == NULL) {
		/* Cannot name them: drop every listing. */
		pthread_mutex_lock(&dc->lock);
		dc->gen++;
		for (struct dir *d = dc->oldest, *next; d != NULL; d = next) {
			next = d->newer;
			drop(dc, d->prefix);
		}
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	pthread_mutex_lock(&dc->lock);
	dc->gen++;
	if (saving(dc))
		forget_saved(dc);
	if (tree) {
		memcpy(p, key, len);
		p[len] = '/';
		p[len + 1] = '\0';
		for (struct dir *d = dc->oldest, *next; d != NULL; d = next) {
			next = d->newer;
			if (strncmp(d->prefix, p, len + 1) == 0)
				drop(dc, d->prefix);
		}
	}
	/* Every ancestor: "a/b/", "a/", "". */
	memcpy(p, key, len + 1);
	for (;;) {
		char *slash = strrchr(p, '/');

		if (slash == NULL) {
			drop(dc, "");
			break;
		}
		slash[1] = '\0';
		drop(dc, p);
		*slash = '\0';
	}
	pthread_mutex_unlock(&dc->lock);
	free(p);
}

int dircache_check(struct dircache *dc)
{
	size_t n = 0, bytes = 0, hashed = 0;
	int ret = 0;

	pthread_mutex_lock(&dc->lock);
	for (struct dir *d = dc->oldest; d != NULL; d = d->newer) {
		n++;
		bytes += d->bytes;
		if (dir_find(dc, d->prefix) != d)
			ret = -1;
		for (size_t i = 1; i < d->list.n; i++) {
			if (strcmp(d->list.items[i - 1].name, d->list.items[i].name) >= 0)
				ret = -1;
		}
	}
	for (size_t b = 0; b < N_BUCKETS; b++) {
		for (struct dir *d = dc->buckets[b]; d != NULL; d = d->hnext)
			hashed++;
	}
	if (n != dc->n_dirs || hashed != n || bytes != dc->bytes)
		ret = -1;
	pthread_mutex_unlock(&dc->lock);
	return ret;
}

void dircache_get_stats(struct dircache *dc, struct dircache_stats *out)
{
	pthread_mutex_lock(&dc->lock);
	*out = dc->stats;
	out->dirs = dc->n_dirs;
	out->bytes = dc->bytes;
	pthread_mutex_unlock(&dc->lock);
}
