/*
 * manifest.c - chunk_info.json; see manifest.h for the format.
 *
 * Parsing is plain jansson: "chunks" is walked in the order the chunker
 * wrote it (jansson keeps an object's insertion order), each entry checked
 * and copied into a struct manifest that owns its strings.
 *
 * In the mount, struct manifest_cache keeps the parsed manifest of each
 * directory a chunk was opened in, at most MC_MAX_DIRS of them (the least
 * recently used goes first).  An entry records the etag of the
 * chunk_info.json it was read from; a NULL manifest in it means "that
 * version is unusable" (too big, malformed), so a bad manifest is read
 * once per version, not once per open.
 *
 * When a manifest is read and when it is read again: the cache sends no
 * request of its own to find out.  It looks at the inode table: the node
 * of chunk_info.json in the directory exists once something looked the
 * name up (the chunk library always reads the manifest first), and its
 * attributes are those of the last lookup, getattr or open, which the
 * kernel repeats after attr_timeout anyway.  No node and no entry: no
 * manifest is used (no request is spent on directories without one).  A
 * node whose etag differs from the entry's: the manifest is read again
 * (one GET, pinned to that etag).  No node but an entry: the entry is
 * used, for the life of the mount or until the node shows a new etag.
 *
 * Locking: mc->lock protects the entries and the counters.  A manifest is
 * read without the lock (two threads may read the same one; the second
 * result replaces the first); the chunk that follows is looked up and
 * copied under the lock, and the prefetch op is called after it is
 * dropped.  No node lock is held while mc->lock is.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "dircache.h"
#include "log.h"

/* --- parsing -------------------------------------------------------------- */

/* Longest "file" accepted. */
#define MANIFEST_MAX_FILE 1024

static int parse_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int manifest_file_ok(const char *file)
{
	const char *seg = file;

	if (file == NULL || file[0] == '\0' || file[0] == '/' || strlen(file) > MANIFEST_MAX_FILE)
		return 0;
	for (;;) {
		size_t len = strcspn(seg, "/");

		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (seg[len] == '\0')
			return 1;
		seg += len + 1;
	}
}

/* A string member that must be a path inside the directory, or NULL when
 * absent.  -EINVAL with err set when present but not such a string. */
static int member_path(json_t *obj, const char *member, const char *what, const char **out,
                       char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, member);
	const char *s;

	*out = NULL;
	if (v == NULL)
		return 0;
	s = json_string_value(v);
	if (s == NULL)
		return parse_error(err, errlen, "%s: \"%s\" is not a string", what, member);
	if (json_string_length(v) != strlen(s) || !manifest_file_ok(s))
		return parse_error(
		    err, errlen,
		    "%s: \"%s\" is \"%s\", which is not a path inside the "
		    "manifest's directory (absolute, \"..\", \".\" or empty segment)",
		    what, member, s);
	*out = s;
	return 0;
}

/* Check one entry of "chunks" and fill *c (strings copied). */
static int parse_chunk(json_t *v, const char *name, size_t i, struct manifest_chunk *c, char *err,
                       size_t errlen)
{
	char what[128];
	const char *file;
	json_t *size, *size_mb;
	int ret;

	if (name[0] != '\0')
		snprintf(what, sizeof(what), "chunk \"%.64s\"", name);
	else
		snprintf(what, sizeof(what), "chunk %zu", i);
	if (!json_is_object(v))
		return parse_error(err, errlen, "%s is not an object", what);
	ret = member_path(v, "file", what, &file, err, errlen);
	if (ret < 0)
		return ret;
	if (file == NULL)
		return parse_error(err, errlen, "%s has no \"file\"", what);
	size = json_object_get(v, "size");
	size_mb = json_object_get(v, "size_mb");
	if (size != NULL) {
		if (!json_is_integer(size) || json_integer_value(size) < 0)
			return parse_error(err, errlen, "%s: \"size\" is not a byte count", what);
		c->size = (uint64_t)json_integer_value(size);
		c->size_exact = 1;
	} else if (size_mb != NULL) {
		double bytes = json_number_value(size_mb) * 1048576.0;

		if (!json_is_number(size_mb) || !(bytes >= 0) || bytes > 1e18)
			return parse_error(err, errlen, "%s: \"size_mb\" is not a size in MiB",
			                   what);
		c->size = (uint64_t)bytes;
		c->size += (double)c->size < bytes; /* rounded up */
	}
	c->name = strdup(name);
	c->file = strdup(file);
	if (c->name == NULL || c->file == NULL)
		return -ENOMEM;
	return 0;
}

int manifest_parse(const char *text, size_t len, struct manifest **out, char *err, size_t errlen)
{
	struct manifest *m = NULL;
	json_error_t jerr;
	json_t *root, *chunks, *v;
	const char *name, *config;
	size_t n, i = 0;
	int ret;

	*out = NULL;
	if (len > MANIFEST_MAX_BYTES) {
		parse_error(err, errlen, "the manifest has %zu bytes, more than the %u accepted",
		            len, MANIFEST_MAX_BYTES);
		return -EFBIG;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return parse_error(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
	chunks = json_object_get(root, "chunks");
	if (!json_is_object(root) || !(json_is_object(chunks) || json_is_array(chunks))) {
		ret = parse_error(err, errlen, "no \"chunks\" object; not a chunk_info.json");
		goto out;
	}
	n = json_is_object(chunks) ? json_object_size(chunks) : json_array_size(chunks);
	if (n > MANIFEST_MAX_CHUNKS) {
		parse_error(err, errlen, "%zu chunks, more than the %u accepted", n,
		            MANIFEST_MAX_CHUNKS);
		ret = -EFBIG;
		goto out;
	}
	ret = -ENOMEM;
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->chunks = calloc(n ? n : 1, sizeof(*m->chunks))) == NULL)
		goto out;
	if (json_is_object(chunks)) {
		json_object_foreach(chunks, name, v)
		{
			ret = parse_chunk(v, name, i, &m->chunks[i], err, errlen);
			m->n_chunks = ++i;
			if (ret < 0)
				goto out;
		}
	} else {
		json_array_foreach(chunks, i, v)
		{
			ret = parse_chunk(v, "", i, &m->chunks[i], err, errlen);
			m->n_chunks = i + 1;
			if (ret < 0)
				goto out;
		}
	}
	ret = member_path(root, "config", "the manifest", &config, err, errlen);
	if (ret == 0 && config != NULL && (m->config = strdup(config)) == NULL)
		ret = -ENOMEM;
out:
	json_decref(root);
	if (ret < 0) {
		if (ret == -ENOMEM)
			parse_error(err, errlen, "out of memory");
		manifest_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void manifest_free(struct manifest *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_chunks; i++) {
		free(m->chunks[i].name);
		free(m->chunks[i].file);
	}
	free(m->chunks);
	free(m->config);
	free(m);
}

ssize_t manifest_find(const struct manifest *m, const char *file)
{
	for (size_t i = 0; m != NULL && i < m->n_chunks; i++)
		if (strcmp(m->chunks[i].file, file) == 0)
			return (ssize_t)i;
	return -1;
}

int manifest_load_file(const char *path, struct manifest **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	if (fd < 0) {
		ret = -errno;
		parse_error(err, errlen, "%s", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		parse_error(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = parse_error(err, errlen, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > MANIFEST_MAX_BYTES) {
		parse_error(err, errlen, "%lld bytes, more than the %u accepted",
		            (long long)st.st_size, MANIFEST_MAX_BYTES);
		ret = -EFBIG;
		goto out;
	}
	buf = malloc(MANIFEST_MAX_BYTES + 1);
	if (buf == NULL) {
		ret = parse_error(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	/* Read to the end: the size seen by fstat may already be stale. */
	for (;;) {
		ssize_t n = read(fd, buf + len, MANIFEST_MAX_BYTES + 1 - len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			ret = -errno;
			parse_error(err, errlen, "%s", strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) > MANIFEST_MAX_BYTES)
			break;
	}
	ret = manifest_parse(buf, len, out, err, errlen);
out:
	free(buf);
	close(fd);
	return ret;
}

/* --- in the mount ----------------------------------------------------------- */

/* Most directories whose manifests are kept. */
#define MC_MAX_DIRS 64

struct mc_entry {
	char *dir;                   /* directory key, "" for the root */
	char etag[BACKEND_ETAG_MAX]; /* of the chunk_info.json read */
	struct manifest *m;          /* NULL: that version is unusable */
	uint64_t used;               /* mc->tick at the last use */
};

struct manifest_cache {
	pthread_mutex_t lock;
	struct mc_entry entries[MC_MAX_DIRS]; /* [lock] first n used */
	size_t n;                             /* [lock] */
	uint64_t tick;                        /* [lock] */
	uint64_t loads, load_errors;          /* [lock] manifests read, unusable */
	uint64_t prefetches, prefetch_errors; /* [lock] next chunks started, refused */
};

struct manifest_cache *manifest_cache_create(void)
{
	struct manifest_cache *mc = calloc(1, sizeof(*mc));

	if (mc == NULL)
		return NULL;
	if (pthread_mutex_init(&mc->lock, NULL) != 0) {
		free(mc);
		errno = ENOMEM;
		return NULL;
	}
	return mc;
}

static void mc_entry_clear(struct mc_entry *e)
{
	free(e->dir);
	manifest_free(e->m);
	memset(e, 0, sizeof(*e));
}

void manifest_cache_destroy(struct manifest_cache *mc)
{
	if (mc == NULL)
		return;
	for (size_t i = 0; i < mc->n; i++)
		mc_entry_clear(&mc->entries[i]);
	pthread_mutex_destroy(&mc->lock);
	free(mc);
}

/* The entry for dir, or NULL.  mc->lock held. */
static struct mc_entry *mc_find(struct manifest_cache *mc, const char *dir)
{
	for (size_t i = 0; i < mc->n; i++)
		if (strcmp(mc->entries[i].dir, dir) == 0)
			return &mc->entries[i];
	return NULL;
}

/* Keep m (owned from now on) as dir's manifest of etag, replacing what was
 * there or the least recently used entry.  mc->lock held. */
static struct mc_entry *mc_store(struct manifest_cache *mc, const char *dir, const char *etag,
                                 struct manifest *m)
{
	struct mc_entry *e = mc_find(mc, dir);
	char *copy = strdup(dir);

	if (copy == NULL) {
		manifest_free(m);
		return NULL;
	}
	if (e == NULL && mc->n < MC_MAX_DIRS) {
		e = &mc->entries[mc->n++];
	} else if (e == NULL) {
		e = &mc->entries[0];
		for (size_t i = 1; i < mc->n; i++)
			if (mc->entries[i].used < e->used)
				e = &mc->entries[i];
	}
	mc_entry_clear(e);
	e->dir = copy;
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	e->m = m;
	return e;
}

/* The key of name inside directory key dir ("" is the root).  Caller frees. */
static char *join_key(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *k = malloc(dl + nl + 2);

	if (k == NULL)
		return NULL;
	if (dl > 0) {
		memcpy(k, dir, dl);
		k[dl++] = '/';
	}
	memcpy(k + dl, name, nl + 1);
	return k;
}

/*
 * Read dir's chunk_info.json through the stack, pinned to etag when not
 * "", and parse it.  *m is NULL when it is unusable; got_etag receives the
 * version read.
 */
static void mc_read(struct chunkfs *fs, const char *dir, const char *etag, struct manifest **m,
                    char got_etag[BACKEND_ETAG_MAX])
{
	char *key = join_key(dir, MANIFEST_NAME), *buf = malloc(MANIFEST_MAX_BYTES + 1);
	struct backend_stat st = {0};
	char err[256] = "out of memory";
	ssize_t n = -ENOMEM;

	*m = NULL;
	snprintf(got_etag, BACKEND_ETAG_MAX, "%s", etag);
	if (key != NULL && buf != NULL)
		n = fs->be->ops->read(fs->be, key, 0, buf, MANIFEST_MAX_BYTES + 1,
		                      etag[0] ? etag : NULL, &st);
	if (n < 0)
		snprintf(err, sizeof(err), "%s", strerror((int)-n));
	else if (manifest_parse(buf, (size_t)n, m, err, sizeof(err)) < 0)
		*m = NULL;
	if (st.etag[0] != '\0')
		snprintf(got_etag, BACKEND_ETAG_MAX, "%s", st.etag);
	if (*m == NULL)
		log_warn("%s: not used to prefetch chunks: %s", key ? key : MANIFEST_NAME, err);
	free(key);
	free(buf);
}

/*
 * The node of directory key dir, with one lookup taken (inode_forget it),
 * or NULL when the kernel has not looked every part of it up.
 */
static struct node *dir_node(struct chunkfs *fs, const char *dir)
{
	struct node *cur = inode_from_ino(fs->inodes, FUSE_ROOT_ID);
	char *copy = strdup(dir), *save = NULL;

	if (copy == NULL)
		return NULL;
	for (char *part = strtok_r(copy, "/", &save); part != NULL && cur != NULL;
	     part = strtok_r(NULL, "/", &save)) {
		struct node *child = inode_find(fs->inodes, cur, part);

		inode_forget(fs->inodes, cur, 1);
		cur = child;
	}
	free(copy);
	return cur;
}

/* Copy the attributes of dir's child name if the table has it as a file.
 * Returns 1 when found. */
static int child_stat(struct chunkfs *fs, struct node *dir, const char *name,
                      struct backend_stat *st, struct timespec *when)
{
	struct node *n = inode_find(fs->inodes, dir, name);
	int found = 0;

	if (n == NULL)
		return 0;
	pthread_mutex_lock(&n->lock);
	if (n->type == S_IFREG && n->stage == NULL) {
		*st = n->st;
		*when = n->st_time;
		found = 1;
	}
	pthread_mutex_unlock(&n->lock);
	inode_forget(fs->inodes, n, 1);
	return found;
}

void manifest_on_open(struct chunkfs *fs, struct node *node)
{
	struct manifest_cache *mc = fs->manifests;
	struct backend_stat mst, nst;
	struct timespec when;
	struct node *dnode = NULL;
	struct mc_entry *e;
	char *key, *slash, *name, *next_key = NULL, *next_file = NULL;
	const char *dir;
	uint64_t next_size = 0;
	int have_node = 0, have_meta = 0, exact = 0, ret;

	if (mc == NULL || fs->opts->manifest_off || fs->be->ops->prefetch == NULL)
		return;
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		return;
	slash = strrchr(key, '/');
	if (slash != NULL) {
		*slash = '\0';
		dir = key;
		name = slash + 1;
	} else {
		dir = "";
		name = key;
	}
	if (strcmp(name, MANIFEST_NAME) == 0)
		goto out;
	dnode = dir_node(fs, dir);
	if (dnode != NULL)
		have_node = child_stat(fs, dnode, MANIFEST_NAME, &mst, &when);

	pthread_mutex_lock(&mc->lock);
	e = mc_find(mc, dir);
	if (have_node && mst.size > MANIFEST_MAX_BYTES) {
		if (e == NULL || strcmp(e->etag, mst.etag) != 0) {
			log_warn("%s/%s: %llu bytes, too large to prefetch chunks by", dir,
			         MANIFEST_NAME, (unsigned long long)mst.size);
			mc->load_errors++;
			e = mc_store(mc, dir, mst.etag, NULL);
		}
	} else if (have_node && (e == NULL || (mst.etag[0] && strcmp(e->etag, mst.etag) != 0))) {
		struct manifest *m;
		char got[BACKEND_ETAG_MAX];

		pthread_mutex_unlock(&mc->lock);
		mc_read(fs, dir, mst.etag, &m, got);
		pthread_mutex_lock(&mc->lock);
		mc->loads++;
		mc->load_errors += m == NULL;
		e = mc_store(mc, dir, got, m);
	}
	if (e != NULL && e->m != NULL) {
		ssize_t i = manifest_find(e->m, name);

		e->used = ++mc->tick;
		if (i >= 0 && (size_t)i + 1 < e->m->n_chunks) {
			const struct manifest_chunk *c = &e->m->chunks[i + 1];

			next_key = join_key(dir, c->file);
			next_file = strdup(c->file);
			next_size = c->size;
			exact = c->size_exact;
		}
	}
	pthread_mutex_unlock(&mc->lock);
	if (next_key == NULL || next_file == NULL || !backend_key_valid(next_key))
		goto out;

	/* The next chunk's current version and size, when the table knows
	 * them freshly: no stat in the prefetch.  Else the manifest's size,
	 * with room for size_mb's rounding (reading past the end is fine). */
	nst.etag[0] = '\0';
	if (dnode != NULL && child_stat(fs, dnode, next_file, &nst, &when) &&
	    (fs->opts->pin || chunkfs_fresh(when, fs->opts->attr_timeout))) {
		next_size = nst.size;
	} else if (fs->dirs != NULL &&
	           dircache_lookup(fs->dirs, next_key, 0, &nst, &have_meta) == S_IFREG &&
	           nst.etag[0] != '\0') {
		next_size = nst.size; /* the directory's recent listing: no request */
	} else {
		nst.etag[0] = '\0';
		if (!exact)
			next_size += next_size / 128 + 4096;
	}
	if (next_size == 0)
		goto out;
	ret = fs->be->ops->prefetch(fs->be, next_key, nst.etag, 0, next_size);
	log_debug("manifest: %s opened, prefetch %s (%llu bytes): %d", name, next_key,
	          (unsigned long long)next_size, ret);
	pthread_mutex_lock(&mc->lock);
	if (ret == 0)
		mc->prefetches++;
	else
		mc->prefetch_errors++;
	pthread_mutex_unlock(&mc->lock);
out:
	if (dnode != NULL)
		inode_forget(fs->inodes, dnode, 1);
	free(next_key);
	free(next_file);
	free(key);
}

void manifest_stats(struct chunkfs *fs, void (*emit)(void *ctx, const char *name, uint64_t value),
                    void *ctx)
{
	struct manifest_cache *mc = fs->manifests;
	uint64_t v[5];

	if (mc == NULL)
		return;
	pthread_mutex_lock(&mc->lock);
	v[0] = mc->n;
	v[1] = mc->loads;
	v[2] = mc->load_errors;
	v[3] = mc->prefetches;
	v[4] = mc->prefetch_errors;
	pthread_mutex_unlock(&mc->lock);
	emit(ctx, "dirs", v[0]);
	emit(ctx, "loads", v[1]);
	emit(ctx, "load_errors", v[2]);
	emit(ctx, "prefetches", v[3]);
	emit(ctx, "prefetch_errors", v[4]);
}
