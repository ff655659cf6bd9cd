/*
 * ops.c - the namespace half of the FUSE driver: lookup, attributes,
 * directories, unlink, mkdir, rmdir, rename, statfs.  File contents (open,
 * read, write, flush) live in file.c.
 *
 * Mapping keys to a tree
 *   A file is an object "a/b/c".  A directory "a/b" exists when the marker
 *   object "a/b/" exists or when any key starts with "a/b/" (an implicit
 *   directory).  mkdir writes the marker; rmdir removes it after checking
 *   that nothing else is under the prefix.
 *
 *   When a name is both an object and a prefix ("a" and "a/x" both exist,
 *   possible on S3), the directory wins, in readdir and lookup alike: "a"
 *   is a directory and the object "a" is not reachable through the mount
 *   (a warning says so).  On a backend without BACKEND_REAL_DIRS a lookup
 *   is answered by a recent listing of the parent (dircache.h), one
 *   request for every name in the directory; in a directory too big to
 *   keep, by one listing of the name as a prefix (probe_by_listing()),
 *   which answers both questions in one request.
 *
 * Every op turns the request's inode into a node (inode.h), builds the
 * key, calls the backend outside any lock and replies.  Errors from the
 * backend are -errno and go back to the kernel as they are.
 */
#include "chunkfs_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "dircache.h"
#include "log.h"
#include "shutdown.h"

/* Longest name of one file or directory (Linux's NAME_MAX). */
#define NAME_MAX_BYTES 255

static struct chunkfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct timespec chunkfs_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

int chunkfs_fresh(struct timespec t, double secs)
{
	struct timespec now = chunkfs_now();
	double age = (double)(now.tv_sec - t.tv_sec) + (double)(now.tv_nsec - t.tv_nsec) / 1e9;

	return (t.tv_sec != 0 || t.tv_nsec != 0) && age < secs;
}

void chunkfs_fill_attr(struct chunkfs *fs, struct node *node, struct stat *st)
{
	/* A file being written shows the attributes it will be saved with. */
	const struct stage *sg = node->type == S_IFREG ? node->stage : NULL;
	unsigned meta = sg ? sg->attrs.meta : node->st.meta;
	uint32_t mode = sg ? sg->attrs.mode : node->st.mode;

	memset(st, 0, sizeof(*st));
	st->st_ino = node->number;
	st->st_uid = !(meta & BACKEND_META_UID) ? fs->uid : sg ? sg->attrs.uid : node->st.uid;
	st->st_gid = !(meta & BACKEND_META_GID) ? fs->gid : sg ? sg->attrs.gid : node->st.gid;
	st->st_blksize = 1 << 20; /* tools size their I/O by it */
	if (node->type == S_IFDIR) {
		/* A real directory's own mode (fs sources, real_dir_stat()),
		 * so default_permissions stops other users where it would. */
		st->st_mode = S_IFDIR | ((meta & BACKEND_META_MODE) ? mode & 07777 : 0755);
		st->st_nlink = 2;
		st->st_mtim = node->st.mtime.tv_sec ? node->st.mtime : fs->mount_time;
	} else {
		uint64_t size = node->stage ? node->stage->size : node->st.size;

		/* No setuid, setgid or sticky bit: a store's metadata is not
		 * trusted to grant them (the mount is nosuid as well). */
		st->st_mode = S_IFREG | ((meta & BACKEND_META_MODE) ? mode & 0777 : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
		st->st_mtim = node->stage ? node->stage->mtime : node->st.mtime;
	}
	access_apply(&fs->opts->access, st);
	if (fs->opts->ro)
		st->st_mode &= (mode_t)~0222;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* "key/" for a directory key, "" for the root.  The caller frees. */
static char *dir_prefix(const char *key)
{
	size_t len = strlen(key);
	char *p = malloc(len + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, key, len);
	if (len > 0)
		p[len++] = '/';
	p[len] = '\0';
	return p;
}

/*
 * Whether anything is under the directory key: its marker or any key in
 * it.  1 yes, 0 no, or -errno.
 */
static int dir_exists(struct backend *be, const char *key)
{
	struct backend_list l = {0};
	char *prefix;
	int ret;

	if (*key == '\0')
		return 1;
	prefix = dir_prefix(key);
	if (prefix == NULL)
		return -ENOMEM;
	ret = be->ops->list(be, prefix, '/', NULL, NULL, 1, &l);
	if (ret == 0)
		ret = (l.n_entries + l.n_prefixes) > 0;
	backend_list_free(&l);
	free(prefix);
	return ret;
}

/*
 * probe() for a store whose names can be both object and prefix (S3): one
 * listing of the key as a prefix, with the delimiter, answers both
 * questions.  It returns the object "key" itself (it sorts first), names
 * that merely start with it, and the common prefix "key/" when anything
 * lies under it.  Only when that page is cut short before "key/" could
 * show is a second, one-key listing needed.  The object's attributes come
 * from the listing, as in readdir.
 */
static int probe_by_listing(struct backend *be, const char *key, struct backend_stat *st)
{
	size_t len = strlen(key);
	struct backend_list l = {0};
	int ret, is_obj = 0, is_dir = 0;

	ret = be->ops->list(be, key, '/', NULL, NULL, 1000, &l);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < l.n_entries && !is_obj; i++) {
		if (strcmp(l.entries[i].key, key) == 0) {
			*st = l.entries[i].st;
			is_obj = 1;
		}
	}
	for (size_t i = 0; i < l.n_prefixes && !is_dir; i++)
		is_dir =
		    strncmp(l.prefixes[i], key, len) == 0 && strcmp(l.prefixes[i] + len, "/") == 0;
	if (!is_dir && l.next_token != NULL)
		is_dir = dir_exists(be, key);
	backend_list_free(&l);
	if (is_dir < 0)
		return is_dir;
	if (is_dir && is_obj)
		log_warn("\"%s\" is both an object and a directory; showing the directory", key);
	return is_dir ? S_IFDIR : is_obj ? S_IFREG : -ENOENT;
}

/*
 * The attributes of the directory key (not the root) on a store with real
 * directories: the stat of its marker "key/", which carries the
 * directory's own mode and owner.  0 or -errno.
 */
static int real_dir_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	char *marker;
	int ret;

	if (*key == '\0' || !(be->flags & BACKEND_REAL_DIRS))
		return -ENOENT;
	marker = dir_prefix(key);
	if (marker == NULL)
		return -ENOMEM;
	ret = be->ops->stat(be, marker, st);
	free(marker);
	return ret;
}

/*
 * What the store has at key: a file or a real directory (fills *st), a
 * directory, or -ENOENT.  Returns S_IFREG, S_IFDIR or -errno.
 */
static int probe(struct backend *be, const char *key, struct backend_stat *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	if (*key == '\0')
		return S_IFDIR;
	if (!(be->flags & BACKEND_REAL_DIRS))
		return probe_by_listing(be, key, st);
	ret = be->ops->stat(be, key, st);
	if (ret == 0)
		return S_IFREG;
	if (ret != -ENOENT)
		return ret;
	if (real_dir_stat(be, key, st) == 0)
		return S_IFDIR;
	memset(st, 0, sizeof(*st));
	ret = dir_exists(be, key);
	if (ret < 0)
		return ret;
	return ret ? S_IFDIR : -ENOENT;
}

int chunkfs_child_key(struct chunkfs *fs, struct node *parent, const char *name, int marker,
                      char **key)
{
	size_t len, max = fs->be->key_max;
	int ret = 0;

	*key = NULL;
	if (strlen(name) > NAME_MAX_BYTES) {
		log_warn("a name of %zu bytes (\"%.40s...\") is longer than the %d bytes a name "
		         "may have: ENAMETOOLONG",
		         strlen(name), name, NAME_MAX_BYTES);
		return -ENAMETOOLONG;
	}
	*key = inode_key(fs->inodes, parent, name);
	if (*key == NULL)
		return -ENOMEM;
	len = strlen(*key) + (marker ? 1 : 0);
	if (max > 0 && len > max) {
		log_warn("the key \"%.40s...%s\" would be %zu bytes, longer than the %zu bytes "
		         "the store takes (S3: 1024 less the mount's prefix; a directory: "
		         "PATH_MAX - 1): ENAMETOOLONG",
		         *key, marker ? "/" : "", len, max);
		ret = -ENAMETOOLONG;
	} else if (!backend_key_valid(*key)) {
		ret = -EINVAL;
	}
	if (ret < 0) {
		free(*key);
		*key = NULL;
	}
	return ret;
}

static void fill_entry(struct chunkfs *fs, struct node *node, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = inode_to_ino(node);
	e->generation = node->generation;
	e->attr_timeout = fs->opts->attr_timeout;
	e->entry_timeout = fs->opts->entry_timeout;
	pthread_mutex_lock(&node->lock);
	chunkfs_fill_attr(fs, node, &e->attr);
	pthread_mutex_unlock(&node->lock);
}

/*
 * Record attributes found for a node that is not being written.  A
 * listing carries no metadata (S3): what a stat of the same version told
 * us stays.  Node lock held.
 */
static void node_set_st(struct node *node, const struct backend_stat *st)
{
	int keep_meta = st->meta == 0 && node->st.meta != 0 && st->etag[0] != '\0' &&
	                strcmp(st->etag, node->st.etag) == 0 && st->size == node->st.size;
	struct backend_stat old = node->st;

	node->st = *st;
	if (keep_meta) {
		node->st.meta = old.meta;
		node->st.mode = old.mode;
		node->st.uid = old.uid;
		node->st.gid = old.gid;
		node->st.mtime = old.mtime;
	}
	node->st_time = chunkfs_now();
}

/* Link a node for what probe() found and record its attributes. */
static struct node *link_found(struct chunkfs *fs, struct node *parent, const char *name, int type,
                               const struct backend_stat *st)
{
	struct node *node = inode_link(fs->inodes, parent, name, (mode_t)type);

	if (node == NULL)
		return NULL;
	pthread_mutex_lock(&node->lock);
	if (node->stage == NULL)
		node_set_st(node, st);
	pthread_mutex_unlock(&node->lock);
	return node;
}

/*
 * What the store has at key, on a store without real directories: the
 * recent listing of the parent answers (listing it first if there is
 * none); a directory too big to keep is probed by name.
 */
static int probe_listed(struct chunkfs *fs, const char *key, struct backend_stat *st,
                        int *have_meta)
{
	int ret;

	memset(st, 0, sizeof(*st));
	*have_meta = 0;
	ret = dircache_lookup(fs->dirs, key, 1, st, have_meta);
	if (ret == DIRCACHE_UNKNOWN)
		ret = probe_by_listing(fs->be, key, st);
	return ret;
}

/* What the store has at key: a file (fills *st), a directory, or -ENOENT. */
static int probe_ns(struct chunkfs *fs, const char *key, struct backend_stat *st)
{
	int have_meta;

	return fs->dirs ? probe_listed(fs, key, st, &have_meta) : probe(fs->be, key, st);
}

void chunkfs_changed(struct chunkfs *fs, const char *key, int tree)
{
	if (fs->dirs != NULL)
		dircache_changed(fs->dirs, key, tree);
}

/*
 * The object's own metadata (mode, owner, mtime headers), which a listing
 * lacks: from the node when it already has them for this version, else
 * one stat, kept with the listing.  Only with -o metadata=store.
 * 0, or -ENOENT when the object went away meanwhile.
 */
static int fetch_meta(struct chunkfs *fs, struct node *parent, const char *name, const char *key,
                      struct backend_stat *st)
{
	struct node *node = inode_find(fs->inodes, parent, name);
	struct backend_stat full;
	int known = 0, ret;

	if (node != NULL) {
		pthread_mutex_lock(&node->lock);
		known = node->type == S_IFREG && node->st.meta != 0 && st->etag[0] != '\0' &&
		        strcmp(node->st.etag, st->etag) == 0 && node->st.size == st->size;
		pthread_mutex_unlock(&node->lock);
		inode_forget(fs->inodes, node, 1);
	}
	if (known)
		return 0; /* link_found() keeps what the node has */
	ret = fs->be->ops->stat(fs->be, key, &full);
	if (ret == -ENOENT) {
		chunkfs_changed(fs, key, 0);
		return ret;
	}
	if (ret == 0) {
		*st = full;
		dircache_set_meta(fs->dirs, key, &full);
	}
	return 0; /* without the headers, the listing's attributes do */
}

/*
 * Find name in parent: the store first, then a file being written that the
 * store does not have yet.  On success *out holds one lookup.
 */
static int lookup_node(struct chunkfs *fs, struct node *parent, const char *name, struct node **out)
{
	struct backend_stat st;
	struct node *node;
	int ret, have_meta = 1;
	char *key;

	ret = chunkfs_child_key(fs, parent, name, 0, &key);
	if (ret < 0)
		return ret;
	if (fs->dirs == NULL)
		ret = probe(fs->be, key, &st);
	else
		ret = probe_listed(fs, key, &st, &have_meta);
	if (ret == S_IFREG && !have_meta && !fs->opts->metadata_refuse &&
	    fetch_meta(fs, parent, name, key, &st) == -ENOENT)
		ret = -ENOENT;
	free(key);
	if (ret == -ENOENT) {
		node = inode_find(fs->inodes, parent, name);
		if (node != NULL) {
			pthread_mutex_lock(&node->lock);
			ret = node->stage != NULL && !node->unlinked ? 0 : -ENOENT;
			pthread_mutex_unlock(&node->lock);
			if (ret == 0) {
				*out = node;
				return 0;
			}
			inode_forget(fs->inodes, node, 1);
		}
		return -ENOENT;
	}
	if (ret < 0)
		return ret;
	node = link_found(fs, parent, name, ret, &st);
	if (node == NULL)
		return -ENOMEM;
	*out = node;
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct chunkfs *fs = userdata;

	conn->max_read = fs->opts->max_read; /* must match the mount option */
	conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Reads from local files are spliced: one copy instead of two. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* errors must reach close() */
	conn->max_write = 1 << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct chunkfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct node *node;
	int ret = lookup_node(fs, inode_from_ino(fs->inodes, parent), name, &node);

	stats_add(fs->counters.lookups, 1);
	if (ret == -ENOENT && fs->opts->pin) {
		/* A pinned mount trusts that the name is absent: the kernel
		 * keeps the negative entry and stops asking. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->opts->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fill_entry(fs, node, &e);
	if (fuse_reply_entry(req, &e) != 0)
		inode_forget(fs->inodes, node, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct chunkfs *fs = fs_of(req);

	inode_forget(fs->inodes, inode_from_ino(fs->inodes, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct chunkfs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		inode_forget(fs->inodes, inode_from_ino(fs->inodes, forgets[i].ino),
		             forgets[i].nlookup);
	fuse_reply_none(req);
}

/*
 * Refresh a file node's attributes unless it is being written, the mount
 * is pinned, or they are younger than attr_timeout: from a recent listing
 * of its directory when that says all that is needed, else with a stat.
 */
static int refresh_file(struct chunkfs *fs, struct node *node)
{
	struct backend_stat st;
	int ret, have_meta = 0;
	char *key;

	pthread_mutex_lock(&node->lock);
	ret = node->stage != NULL || fs->opts->pin ||
	      chunkfs_fresh(node->st_time, fs->opts->attr_timeout);
	pthread_mutex_unlock(&node->lock);
	if (ret)
		return 0;
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		return -ENOMEM;
	/* Without metadata a listing is as good as a stat, and answers for
	 * the file's neighbours too. */
	ret = fs->dirs ? dircache_lookup(fs->dirs, key, fs->opts->metadata_refuse, &st, &have_meta)
	               : DIRCACHE_UNKNOWN;
	if (ret == S_IFREG && !have_meta && !fs->opts->metadata_refuse) {
		pthread_mutex_lock(&node->lock);
		have_meta = node->st.meta != 0 && strcmp(node->st.etag, st.etag) == 0 &&
		            node->st.size == st.size;
		pthread_mutex_unlock(&node->lock);
	}
	if (ret != S_IFREG || !(have_meta || fs->opts->metadata_refuse)) {
		ret = fs->be->ops->stat(fs->be, key, &st);
		if (ret == 0 && fs->dirs != NULL)
			dircache_set_meta(fs->dirs, key, &st);
	}
	free(key);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&node->lock);
	if (node->stage == NULL)
		node_set_st(node, &st);
	pthread_mutex_unlock(&node->lock);
	return 0;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct node *node = inode_from_ino(fs->inodes, ino);
	struct stat st;
	int ret;

	(void)fi;
	if (node->type == S_IFREG) {
		ret = refresh_file(fs, node);
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
	}
	pthread_mutex_lock(&node->lock);
	chunkfs_fill_attr(fs, node, &st);
	pthread_mutex_unlock(&node->lock);
	fuse_reply_attr(req, &st, fs->opts->attr_timeout);
}

/* With -o metadata=refuse, chmod and chown are refused unless they change nothing. */
static int check_unchanged_owner_mode(struct chunkfs *fs, struct node *node,
                                      const struct stat *attr, int to_set)
{
	struct stat cur;

	pthread_mutex_lock(&node->lock);
	chunkfs_fill_attr(fs, node, &cur);
	pthread_mutex_unlock(&node->lock);
	if ((to_set & FUSE_SET_ATTR_MODE) && (attr->st_mode & 07777) != (cur.st_mode & 07777))
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur.st_uid)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur.st_gid)
		return -EPERM;
	return 0;
}

/*
 * The attributes node should have after a setattr of to_set: the ones it
 * shows now, with those asked for replaced.  Node lock held.
 */
static void merged_attrs(struct chunkfs *fs, struct node *node, const struct stat *attr, int to_set,
                         struct backend_save_attrs *a)
{
	const struct stage *sg = node->stage;
	struct stat cur;

	chunkfs_fill_attr(fs, node, &cur);
	memset(a, 0, sizeof(*a));
	a->meta = sg ? sg->attrs.meta : node->st.meta;
	if (to_set & FUSE_SET_ATTR_MODE)
		a->meta |= BACKEND_META_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		a->meta |= BACKEND_META_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		a->meta |= BACKEND_META_GID;
	a->mode = (to_set & FUSE_SET_ATTR_MODE ? attr->st_mode : cur.st_mode) & 07777;
	a->uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : cur.st_uid;
	a->gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : cur.st_gid;
	a->mtime = cur.st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &a->mtime);
	else if (to_set & FUSE_SET_ATTR_MTIME)
		a->mtime = attr->st_mtim;
}

/*
 * chmod, chown and utimens of a file are stored in the object's metadata
 * (as s3fs does): with the next save of a file being written, else at
 * once with the backend's setattr.  Node lock held.  0 or -errno.
 */
static int store_attrs(struct chunkfs *fs, struct node *node, const struct stat *attr, int to_set)
{
	struct backend_save_attrs a;
	struct backend_stat st;
	char *key;
	int ret;

	if (node->stage != NULL) {
		merged_attrs(fs, node, attr, to_set, &a);
		stage_touch(fs, node);
		node->stage->attrs = a;
		node->stage->mtime = a.mtime;
		node->stage->mtime_set = 1;
		stage_note(fs, node, NULL);
		return 0;
	}
	key = inode_key(fs->inodes, node, NULL);
	if (key == NULL)
		return -ENOMEM;
	/* Start from what the store holds now, not from a listing. */
	ret = fs->be->ops->stat(fs->be, key, &st);
	if (ret == 0) {
		node->st = st;
		merged_attrs(fs, node, attr, to_set, &a);
		ret = backend_setattr(fs->be, key, &a, &st);
	}
	if (ret == 0) {
		node->st = st;
		node->st_time = chunkfs_now();
		if (fs->dirs != NULL)
			dircache_set_meta(fs->dirs, key, &st);
	} else {
		log_warn("cannot store the attributes of \"%s\": %s", key, strerror(-ret));
	}
	free(key);
	return ret;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct node *node = inode_from_ino(fs->inodes, ino);
	const int meta_bits = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
	                      FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW;
	/* Directories keep no metadata; -o metadata=refuse keeps none at all. */
	int refuse = fs->opts->metadata_refuse || node->type == S_IFDIR;
	struct stat st;
	int ret = 0;

	(void)fi;
	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (refuse)
		ret = check_unchanged_owner_mode(fs, node, attr, to_set);
	if (ret == 0 && (to_set & FUSE_SET_ATTR_SIZE) && node->type == S_IFDIR)
		ret = -EISDIR;
	pthread_mutex_lock(&node->lock);
	if (ret == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		struct backend_save_attrs a;

		/* New attributes (truncate(2) also sets the mtime) go with the
		 * one save of the new size.  A truncate by name is saved now,
		 * even when the file is open: its caller has no close() to wait
		 * for. */
		if (!refuse && (to_set & meta_bits))
			merged_attrs(fs, node, attr, to_set, &a);
		ret = file_truncate(fs, node, (uint64_t)attr->st_size,
		                    !refuse && (to_set & meta_bits) ? &a : NULL, fi == NULL);
		to_set &= refuse ? ~0 : ~meta_bits;
	}
	if (ret == 0 && !refuse && (to_set & meta_bits)) {
		ret = store_attrs(fs, node, attr, to_set);
	} else if (ret == 0 && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		struct timespec t = attr->st_mtim;

		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			clock_gettime(CLOCK_REALTIME, &t);
		/* Stored with the next save of a file being written; otherwise
		 * kept in memory only. */
		if (node->stage != NULL) {
			stage_touch(fs, node);
			node->stage->mtime = t;
			node->stage->mtime_set = 1;
		} else {
			node->st.mtime = t;
		}
	}
	chunkfs_fill_attr(fs, node, &st);
	pthread_mutex_unlock(&node->lock);
	if (to_set & FUSE_SET_ATTR_SIZE)
		pagefill_cancel(fs, node); /* no old bytes stored after the truncate */
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, fs->opts->attr_timeout);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct chunkfs *fs = fs_of(req);
	struct node *pnode = inode_from_ino(fs->inodes, parent);
	struct backend_stat st;
	struct fuse_entry_param e;
	struct node *node;
	char *key, *marker = NULL;
	int ret;

	(void)mode;
	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ret = chunkfs_child_key(fs, pnode, name, 1, &key);
	if (ret < 0)
		goto out;
	ret = probe_ns(fs, key, &st);
	if (ret >= 0) {
		ret = -EEXIST;
		goto out;
	}
	if (ret != -ENOENT)
		goto out;
	marker = dir_prefix(key);
	ret = marker ? backend_save_buffer(fs->be, marker, "", 0, &st) : -ENOMEM;
	if (ret < 0)
		goto out;
	chunkfs_changed(fs, key, 0);
	clock_gettime(CLOCK_REALTIME, &st.mtime);
	node = link_found(fs, pnode, name, S_IFDIR, &st);
	if (node == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	fill_entry(fs, node, &e);
	if (fuse_reply_entry(req, &e) != 0)
		inode_forget(fs->inodes, node, 1);
	free(key);
	free(marker);
	return;
out:
	if (ret == -ENOENT)
		log_warn("mkdir %s: the store refused the directory marker", name);
	free(key);
	free(marker);
	fuse_reply_err(req, -ret);
}

/*
 * Whether the directory with this marker prefix has anything in it other
 * than its marker: 1 yes, 0 no (*has_marker says whether the marker
 * exists), or -errno.
 */
static int dir_has_children(struct backend *be, const char *prefix, int *has_marker)
{
	struct backend_list l = {0};
	int ret = be->ops->list(be, prefix, '/', NULL, NULL, 2, &l);

	if (ret == 0) {
		size_t n = l.n_entries + l.n_prefixes;

		*has_marker = l.n_entries > 0 && strcmp(l.entries[0].key, prefix) == 0;
		ret = n > (size_t)*has_marker;
	}
	backend_list_free(&l);
	return ret;
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct chunkfs *fs = fs_of(req);
	struct node *pnode = inode_from_ino(fs->inodes, parent);
	struct node *node;
	char *key, *prefix = NULL;
	int ret, has_marker = 0;

	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ret = chunkfs_child_key(fs, pnode, name, 0, &key);
	if (ret < 0)
		goto out;
	prefix = dir_prefix(key);
	if (prefix == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	ret = dir_has_children(fs->be, prefix, &has_marker);
	if (ret > 0)
		ret = -ENOTEMPTY;
	if (ret < 0)
		goto out;
	ret = fs->be->ops->remove(fs->be, prefix);
	/* No marker: an implicit directory whose last key went away (rm -r
	 * unlinks the files first), or a marker removed concurrently.  The
	 * directory is gone either way. */
	if (ret == -ENOENT)
		ret = 0;
	if (ret < 0)
		goto out;
	chunkfs_changed(fs, key, 1);
	node = inode_find(fs->inodes, pnode, name);
	if (node != NULL) {
		inode_detach(fs->inodes, node);
		inode_forget(fs->inodes, node, 1);
	}
out:
	free(key);
	free(prefix);
	fuse_reply_err(req, -ret);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct chunkfs *fs = fs_of(req);
	struct node *pnode = inode_from_ino(fs->inodes, parent);
	struct node *node;
	char *key;
	int ret, staged = 0;

	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ret = chunkfs_child_key(fs, pnode, name, 0, &key);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	node = inode_find(fs->inodes, pnode, name);
	if (node != NULL) {
		/* Mark it first so a concurrent close does not save it again;
		 * the mark alone stops saves, so a failed remove can undo it
		 * without losing unsaved writes. */
		pthread_mutex_lock(&node->lock);
		staged = node->stage != NULL;
		node->unlinked = 1;
		if (staged) /* a crash now must not bring the file back */
			stage_note(fs, node, NULL);
		pthread_mutex_unlock(&node->lock);
	}
	ret = fs->be->ops->remove(fs->be, key);
	if (ret == -ENOENT && staged)
		ret = 0; /* created here and never saved */
	if (ret == 0)
		chunkfs_changed(fs, key, 0);
	if (node != NULL) {
		if (ret == 0) {
			inode_detach(fs->inodes, node);
		} else {
			pthread_mutex_lock(&node->lock);
			node->unlinked = 0;
			if (node->stage != NULL)
				stage_note(fs, node, NULL);
			pthread_mutex_unlock(&node->lock);
		}
		inode_forget(fs->inodes, node, 1);
	}
	free(key);
	fuse_reply_err(req, -ret);
}

/* Copy the keys of one listing page of src to dst and remove them. */
static int move_page(struct backend *be, const struct backend_list *l, const char *src,
                     const char *dst)
{
	size_t src_len = strlen(src), dst_len = strlen(dst);
	int ret = 0;

	for (size_t i = 0; i < l->n_entries && ret == 0; i++) {
		const char *rest = l->entries[i].key + src_len;
		char *to = malloc(dst_len + strlen(rest) + 1);

		if (to == NULL)
			return -ENOMEM;
		memcpy(to, dst, dst_len);
		strcpy(to + dst_len, rest);
		ret = backend_copy(be, l->entries[i].key, to, NULL);
		if (ret == 0)
			ret = be->ops->remove(be, l->entries[i].key);
		free(to);
	}
	return ret;
}

/*
 * Move every key under the prefix src to dst, one by one (not atomic).
 * A listing that hands back its own token, or goes on past list_pages
 * pages, stops the move with -EIO.
 */
static int move_prefix(struct chunkfs *fs, const char *src, const char *dst)
{
	struct backend *be = fs->be;
	struct backend_list l = {0};
	char *token = NULL;
	size_t pages = 0;
	int ret;

	do {
		ret = be->ops->list(be, src, 0, NULL, token, 0, &l);
		if (ret == 0 && backend_list_keep(&l, src, 0) > 0)
			log_warn("moving \"%s\": keys outside it in its listing; left alone", src);
		if (ret == 0)
			ret = move_page(be, &l, src, dst);
		if (ret == 0 && l.next_token != NULL &&
		    ((token != NULL && strcmp(token, l.next_token) == 0) ||
		     (fs->opts->list_pages > 0 && ++pages >= fs->opts->list_pages))) {
			log_warn("moving \"%s\": its listing does not end (a repeated token, or "
			         "over %u pages); stopped (EIO), some keys are left under it",
			         src, fs->opts->list_pages);
			ret = -EIO;
		}
		free(token);
		token = NULL;
		if (ret == 0 && l.next_token != NULL && (token = strdup(l.next_token)) == NULL)
			ret = -ENOMEM;
		backend_list_free(&l);
	} while (token != NULL);
	return ret;
}

/* Move one object: atomically where the backend can, else copy and remove. */
/*
 * Move src to dst.  For a file, *st (when not NULL) gets dst's stat: a
 * copy may give the same bytes another etag (S3's multipart copies do).
 */
static int move_key(struct chunkfs *fs, const char *src, const char *dst, struct backend_stat *st)
{
	struct backend *be = fs->be;
	struct backend_stat own;
	int ret = -ENOTSUP;

	if (st == NULL)
		st = &own;
	if (be->ops->rename != NULL) {
		ret = be->ops->rename(be, src, dst);
		if (ret == 0 && src[strlen(src) - 1] != '/')
			ret = be->ops->stat(be, dst, st);
	}
	if (ret != -ENOTSUP)
		return ret;
	if (src[strlen(src) - 1] == '/')
		return move_prefix(fs, src, dst);
	ret = backend_copy(be, src, dst, st);
	if (ret == 0)
		ret = be->ops->remove(be, src);
	return ret;
}

/*
 * After a file moved: the node shows the new object.  Handles open on the
 * old etag follow it (file_read), and the kernel's pages stay good: the
 * bytes are the same.
 */
static void moved_file(struct node *node, const struct backend_stat *st)
{
	pthread_mutex_lock(&node->lock);
	if (strcmp(node->st.etag, st->etag) != 0) {
		memcpy(node->etag_was, node->st.etag, sizeof(node->etag_was));
		memcpy(node->etag_moved, st->etag, sizeof(node->etag_moved));
		if (strcmp(node->open_etag, node->st.etag) == 0)
			memcpy(node->open_etag, st->etag, sizeof(node->open_etag));
	}
	if (node->stage == NULL) {
		node->st = *st;
		node->st_time = chunkfs_now();
	}
	pthread_mutex_unlock(&node->lock);
}

/* Type of the node the kernel knows at (parent, name), else ask the store. */
static int type_of(struct chunkfs *fs, struct node *parent, const char *name, const char *key)
{
	struct backend_stat st;
	struct node *node = inode_find(fs->inodes, parent, name);
	int type;

	if (node != NULL) {
		type = (int)node->type;
		inode_forget(fs->inodes, node, 1);
		return type;
	}
	return probe_ns(fs, key, &st);
}

static int do_rename(struct chunkfs *fs, struct node *pnode, const char *name, struct node *npnode,
                     const char *newname, unsigned flags)
{
	char *src = NULL, *dst = NULL, *src_dir = NULL, *dst_dir = NULL;
	struct node *node = NULL;
	struct backend_stat st;
	int ret, src_type, dst_type, has_marker;

	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	ret = chunkfs_child_key(fs, pnode, name, 0, &src);
	if (ret == 0)
		ret = chunkfs_child_key(fs, npnode, newname, 0, &dst);
	if (ret < 0)
		goto out;
	src_type = type_of(fs, pnode, name, src);
	if (src_type < 0) {
		ret = src_type;
		goto out;
	}
	dst_type = type_of(fs, npnode, newname, dst);
	if (dst_type < 0 && dst_type != -ENOENT) {
		ret = dst_type;
		goto out;
	}
	if (dst_type >= 0 && (flags & RENAME_NOREPLACE)) {
		ret = -EEXIST;
		goto out;
	}
	if (src_type == S_IFREG) {
		if (dst_type == S_IFDIR) {
			ret = -EISDIR;
			goto out;
		}
		/* A file still being written is saved under its old name first
		 * so the store has something to move. */
		node = inode_find(fs->inodes, pnode, name);
		if (node != NULL) {
			pthread_mutex_lock(&node->lock);
			ret = node->stage && node->stage->dirty ? file_save(fs, node) : 0;
			pthread_mutex_unlock(&node->lock);
			if (ret < 0)
				goto out;
		}
		ret = move_key(fs, src, dst, &st);
		chunkfs_changed(fs, src, 0);
		chunkfs_changed(fs, dst, 0);
		if (ret == 0 && node != NULL)
			moved_file(node, &st);
	} else {
		src_dir = dir_prefix(src);
		dst_dir = dir_prefix(dst);
		if (src_dir == NULL || dst_dir == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		if (dst_type == S_IFREG) {
			ret = -ENOTDIR;
			goto out;
		}
		if (dst_type == S_IFDIR) {
			ret = dir_has_children(fs->be, dst_dir, &has_marker);
			if (ret > 0)
				ret = -ENOTEMPTY;
			if (ret == 0 && has_marker)
				ret = fs->be->ops->remove(fs->be, dst_dir);
			chunkfs_changed(fs, dst, 1);
			if (ret < 0)
				goto out;
		}
		ret = move_key(fs, src_dir, dst_dir, NULL);
		chunkfs_changed(fs, src, 1); /* a partial move changed both */
		chunkfs_changed(fs, dst, 1);
		node = inode_find(fs->inodes, pnode, name);
	}
	if (ret == 0 && node != NULL)
		ret = inode_move(fs->inodes, node, npnode, newname);
out:
	if (node != NULL)
		inode_forget(fs->inodes, node, 1);
	free(src);
	free(dst);
	free(src_dir);
	free(dst_dir);
	return ret;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct chunkfs *fs = fs_of(req);
	int ret;

	if (fs->opts->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ret = do_rename(fs, inode_from_ino(fs->inodes, parent), name,
	                inode_from_ino(fs->inodes, newparent), newname, flags);
	fuse_reply_err(req, -ret);
}

/* --- directories ------------------------------------------------------ */

/* A snapshot of a directory's listing taken at opendir (fi->fh). */
struct dir_handle {
	struct dircache_listing list;
	struct chunkfs *fs;
	size_t bytes; /* counted in fs->dir_bytes */
};

static void dir_handle_free(struct dir_handle *d)
{
	if (d == NULL)
		return;
	__atomic_fetch_sub(&d->fs->dir_bytes, d->bytes, __ATOMIC_RELAXED);
	dircache_listing_free(&d->list);
	free(d);
}

/* Read the listing of prefix into d, within the memory fs leaves open
 * directories. */
static int dir_handle_list(struct chunkfs *fs, struct dir_handle *d, const char *prefix)
{
	size_t budget = (size_t)fs->opts->dir_memory_mb << 20;
	size_t used = __atomic_load_n(&fs->dir_bytes, __ATOMIC_RELAXED);
	struct dircache_limits lim = {
	    .max_pages = fs->opts->list_pages,
	    .max_bytes = budget == 0     ? 0
	                 : used < budget ? budget - used
	                                 : 1,
	};

	return dircache_list(fs->be, prefix, &lim, &d->list);
}

/* Count d's listing in what open directories hold. */
static void dir_handle_count(struct chunkfs *fs, struct dir_handle *d)
{
	d->bytes = dircache_listing_bytes(&d->list);
	__atomic_fetch_add(&fs->dir_bytes, d->bytes, __ATOMIC_RELAXED);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct chunkfs *fs = fs_of(req);
	struct node *node = inode_from_ino(fs->inodes, ino);
	struct dir_handle *d = calloc(1, sizeof(*d));
	char *key = inode_key(fs->inodes, node, NULL);
	char *prefix = key ? dir_prefix(key) : NULL;
	uint64_t gen = fs->dirs ? dircache_gen(fs->dirs) : 0;
	int ret = -ENOMEM;

	if (d != NULL)
		d->fs = fs;
	/* A pinned mount lists a directory once; others list at every
	 * opendir, so ls shows what is there now. */
	if (d != NULL && prefix != NULL && fs->opts->pin && fs->dirs != NULL &&
	    dircache_get(fs->dirs, prefix, &d->list) == 0)
		ret = 1;
	else if (d != NULL && prefix != NULL)
		ret = dir_handle_list(fs, d, prefix);
	if (ret >= 0)
		dir_handle_count(fs, d);
	/* The snapshot answers lookups of its names for a while too. */
	if (ret == 0 && fs->dirs != NULL)
		dircache_put(fs->dirs, prefix, &d->list, gen);
	if (ret > 0)
		ret = 0;
	free(key);
	free(prefix);
	if (ret < 0) {
		dir_handle_free(d);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0)
		dir_handle_free(d);
}

/*
 * A listing gives a subdirectory no attributes: on a store with real
 * directories, take them from the directory itself (real_dir_stat), so
 * readdirplus shows the mode and owner lookup would.
 */
static void listed_dir_stat(struct chunkfs *fs, struct node *parent, const char *name,
                            struct backend_stat *st)
{
	struct backend_stat real;
	char *key;

	if (!(fs->be->flags & BACKEND_REAL_DIRS) ||
	    chunkfs_child_key(fs, parent, name, 0, &key) < 0)
		return;
	if (real_dir_stat(fs->be, key, &real) == 0)
		*st = real;
	free(key);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, int plus)
{
	struct chunkfs *fs = fs_of(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct node *dir = inode_from_ino(fs->inodes, ino);
	char *buf = malloc(size);
	size_t used = 0;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then item i at i + 2. */
	for (off_t i = off; (size_t)i < d->list.n + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." : d->list.items[i - 2].name;
		struct fuse_entry_param e;
		struct node *node = NULL;
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			e.attr.st_mode = S_IFDIR;
			e.attr.st_ino = i == 0 ? dir->number : FUSE_ROOT_ID;
		} else if (plus) {
			struct backend_stat st = d->list.items[i - 2].st;

			need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
			if (used + need > size)
				break;
			if (d->list.items[i - 2].type == S_IFDIR)
				listed_dir_stat(fs, dir, name, &st);
			node = link_found(fs, dir, name, (int)d->list.items[i - 2].type, &st);
			if (node == NULL)
				break;
			fill_entry(fs, node, &e);
		} else {
			e.attr.st_mode = d->list.items[i - 2].type;
			e.attr.st_ino = 0; /* the kernel asks lookup for the real one */
		}
		if (plus)
			need =
			    fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1);
		else
			need =
			    fuse_add_direntry(req, buf + used, size - used, name, &e.attr, i + 1);
		if (used + need > size) {
			if (node != NULL)
				inode_forget(fs->inodes, node, 1);
			break;
		}
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_handle_free((struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct chunkfs *fs = fs_of(req);
	uint64_t total = 1ull << 50, avail = 1ull << 50; /* 1 PiB when unknown */
	struct statvfs sv;

	(void)ino;
	if (fs->be->ops->space != NULL)
		fs->be->ops->space(fs->be, &total, &avail);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = total / 4096;
	sv.f_bfree = avail / 4096;
	sv.f_bavail = avail / 4096;
	sv.f_files = 1ull << 32;
	sv.f_ffree = 1ull << 32;
	sv.f_favail = 1ull << 32;
	sv.f_namemax = NAME_MAX_BYTES;
	fuse_reply_statfs(req, &sv);
}

/*
 * Extended attributes: the mount root has one, user.chunkfs.stats, the
 * statistics document (stats.c).  No other attributes exist.
 */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct chunkfs *fs = fs_of(req);
	char *text;
	size_t len;

	if (ino != FUSE_ROOT_ID || strcmp(name, CHUNKFS_STATS_XATTR) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	text = chunkfs_stats_json(fs);
	if (text == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = strlen(text);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, text, len);
	free(text);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = CHUNKFS_STATS_XATTR; /* with its NUL */

	if (ino != FUSE_ROOT_ID)
		fuse_reply_xattr(req, 0);
	else if (size == 0)
		fuse_reply_xattr(req, sizeof(names));
	else if (size < sizeof(names))
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, sizeof(names));
}

const struct fuse_lowlevel_ops chunkfs_ops = {
    .init = op_init,
    .destroy = shutdown_destroy_op,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .open = file_open,
    .create = file_create,
    .read = file_read,
    .write = file_write,
    .flush = file_flush,
    .fsync = file_fsync,
    .release = file_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};
