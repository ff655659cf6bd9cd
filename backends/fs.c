/*
 * fs.c - the filesystem backend (see fs.h for the semantics).
 *
 * Design
 *   The backend holds one O_PATH descriptor of the base directory (dirfd)
 *   and nothing else mutable, so it needs no lock.  Every path is a key
 *   with its trailing '/' dropped, resolved from dirfd by fs_resolve(),
 *   which calls openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): ".."
 *   components (from symlink targets; keys cannot contain them), absolute
 *   symlinks and magic links that would leave the base fail with EXDEV,
 *   reported as -EPERM with a warning.  Calls that have no openat2 form
 *   (mkdirat, unlinkat, renameat, fstatat) are made on a single name
 *   relative to a parent directory descriptor that was itself resolved
 *   that way, so they cannot escape either.
 *
 *   Saving: the data goes to a new ".chunkfs-tmp.XXXXXXXXXXXX" file in the
 *   target's directory (created by fs_tmp_open() with O_EXCL, a random
 *   suffix and mode 0600, so that no other user reads the data of a file
 *   whose own mode is stricter than the default while it is written),
 *   sized to the source with ftruncate() and streamed from it in
 *   FS_PIECE_SIZE pieces that skip its holes and pages of zeros; then the
 *   attributes are applied, the file is fsync()ed and renameat() puts it
 *   over the target.  Readers therefore see the old file or the new one.
 *   The fsync costs one flush per save; chunk stores are read-mostly and
 *   without it a crash could leave a renamed but empty file on filesystems
 *   that do not order data before the rename (XFS, ext4 without
 *   auto_da_alloc).  The directory itself is not fsync()ed: after a crash
 *   a save may be lost, but never torn.  Any failure unlinks the temporary
 *   file.  A crash can leave one behind; they are hidden from list() and
 *   their names are reserved (fs_key_check()).
 *
 *   Listing: the directory named by the prefix up to its last '/' is read
 *   and sorted by key order ("name" for a file, "name/" for a directory,
 *   compared with strcmp, i.e. memcmp order).  A depth-first walk over
 *   children sorted that way yields keys in global key order, because all
 *   keys under "d/" sort between "d/" and the next sibling.  The walk feeds
 *   every key (files and directory markers) to fs_list_offer(), which rolls
 *   keys up into common prefixes, drops items <= start_after/token and
 *   stops once one item beyond max_keys has been seen.  With delimiter '/'
 *   subdirectories are not descended (each becomes a common prefix); with
 *   any other delimiter the walk recurses.  Subtrees wholly <= the bound
 *   are skipped, and a stack of (dev, ino) stops symlink cycles.
 *   Each page re-reads the directories on its path: paging through a
 *   directory of n files costs O(n) directory reading per page, but only
 *   the returned entries are stat()ed.
 */
#include "fs.h"

#include "io.h"

#include "log.h"
#include "safedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Size of the pieces in which data is moved. */
#define FS_PIECE_SIZE (1u << 20)

/* max_keys when the caller passes 0, as S3. */
#define FS_LIST_DEFAULT 1000

/* Temporary files: FS_TMP_PREFIX plus FS_TMP_SUFFIX_LEN random characters. */
#define FS_TMP_PREFIX     ".chunkfs-tmp."
#define FS_TMP_PREFIX_LEN (sizeof(FS_TMP_PREFIX) - 1)
#define FS_TMP_SUFFIX_LEN 12
#define FS_TMP_NAME_SIZE  (FS_TMP_PREFIX_LEN + FS_TMP_SUFFIX_LEN + 1)

#define FS_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

struct fs_backend {
	struct backend base;
	int dirfd;       /* O_PATH descriptor of the base; set once in create */
	mode_t umask;    /* the process's umask at create: new files without a mode */
	char *base_path; /* the base as given, for log messages; set once */
};

/* A key split into the paths the ops need.  Free with fs_path_free(). */
struct fs_path {
	char *full;       /* the key without a trailing '/': its path under base */
	const char *dir;  /* the parent directory of full, "" for the base */
	const char *name; /* the last component of full */
	int marker;       /* the key ended in '/' */
	char *buf_;       /* storage of dir and name */
};

static const struct backend_ops fs_ops;

static struct fs_backend *fs_of(struct backend *b)
{
	return (struct fs_backend *)b;
}

/* openat2() of path ("" for the base) below the base; fd or -errno. */
static int fs_openat2_raw(const struct fs_backend *fb, const char *path, uint64_t flags)
{
	struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = FS_RESOLVE};

	for (int tries = 0;; tries++) {
		long fd = syscall(SYS_openat2, fb->dirfd, path[0] ? path : ".", &how, sizeof(how));

		if (fd >= 0)
			return (int)fd;
		/* EAGAIN: a concurrent rename raced with the lookup. */
		if ((errno == EAGAIN || errno == EINTR) && tries < 16)
			continue;
		return -errno;
	}
}

/* fs_openat2_raw() for key; an escape becomes -EPERM and a warning. */
static int fs_resolve(const struct fs_backend *fb, const char *path, uint64_t flags,
                      const char *key)
{
	int fd = fs_openat2_raw(fb, path, flags);

	if (fd == -EXDEV) {
		log_warn("fs: key \"%s\" resolves outside %s; refused", key, fb->base_path);
		return -EPERM;
	}
	return fd;
}

/* 0 if key is valid and uses no reserved name, else -EINVAL. */
static int fs_key_check(const char *key)
{
	if (!backend_key_valid(key))
		return -EINVAL;
	for (const char *seg = key; seg != NULL;) {
		if (strncmp(seg, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) == 0)
			return -EINVAL;
		seg = strchr(seg, '/');
		if (seg != NULL)
			seg++;
	}
	return 0;
}

/* Check key and split it into *p.  The caller frees p with fs_path_free(). */
static int fs_path_split(const char *key, struct fs_path *p)
{
	size_t len;
	char *slash;
	int ret;

	memset(p, 0, sizeof(*p));
	ret = fs_key_check(key);
	if (ret < 0)
		return ret;
	len = strlen(key);
	p->marker = key[len - 1] == '/';
	if (p->marker)
		len--;
	p->full = strndup(key, len);
	p->buf_ = strndup(key, len);
	if (p->full == NULL || p->buf_ == NULL) {
		free(p->full);
		free(p->buf_);
		return -ENOMEM;
	}
	slash = strrchr(p->buf_, '/');
	if (slash != NULL) {
		*slash = '\0';
		p->dir = p->buf_;
		p->name = slash + 1;
	} else {
		p->dir = "";
		p->name = p->buf_;
	}
	return 0;
}

static void fs_path_free(struct fs_path *p)
{
	free(p->full);
	free(p->buf_);
}

/* Fill *st from a stat of a regular file or a directory (a marker). */
static void fs_fill_stat(const struct stat *sb, struct backend_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->mtime = sb->st_mtim;
	if (S_ISDIR(sb->st_mode)) {
		/* A marker's bytes never change: its etag ignores the mtime,
		 * which moves whenever an entry is added. */
		snprintf(st->etag, sizeof(st->etag), "%" PRIx64 "-d", (uint64_t)sb->st_ino);
	} else {
		uint64_t ns =
		    (uint64_t)sb->st_mtim.tv_sec * 1000000000u + (uint64_t)sb->st_mtim.tv_nsec;

		st->size = (uint64_t)sb->st_size;
		snprintf(st->etag, sizeof(st->etag), "%" PRIx64 "-%" PRIx64 "-%" PRIx64,
		         (uint64_t)sb->st_ino, st->size, ns);
	}
	st->meta = BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID;
	st->mode = sb->st_mode & 07777;
	st->uid = sb->st_uid;
	st->gid = sb->st_gid;
}

/*
 * Open the object p names - a regular file for a plain key, opened with
 * flags, or a directory for a marker, opened O_PATH - and fstat it into
 * *sb.  Returns the fd or -errno; -ENOENT when the path is missing or is
 * not an object of the right kind.
 */
static int fs_open_object(const struct fs_backend *fb, const struct fs_path *p, const char *key,
                          uint64_t flags, struct stat *sb)
{
	int fd, ret;

	fd = fs_resolve(fb, p->full, p->marker ? O_PATH | O_DIRECTORY : flags, key);
	if (fd == -ENOTDIR)
		return -ENOENT;
	if (fd < 0)
		return fd;
	if (fstat(fd, sb) < 0) {
		ret = -errno;
		goto fail;
	}
	if (p->marker ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode)) {
		ret = -ENOENT;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

/*
 * Open (O_PATH) the directory at path below the base, creating each
 * missing component.  Returns the fd or -errno (-ENOTDIR when a component
 * is not a directory).
 */
static int fs_mkdirs(const struct fs_backend *fb, const char *path, const char *key)
{
	char *tmp, *comp;
	int fd, prev, ret;

	fd = fs_resolve(fb, path, O_PATH | O_DIRECTORY, key);
	if (fd != -ENOENT)
		return fd;
	tmp = strdup(path);
	if (tmp == NULL)
		return -ENOMEM;
	prev = fs_resolve(fb, "", O_PATH | O_DIRECTORY, key);
	if (prev < 0) {
		ret = prev;
		goto out_tmp;
	}
	/* Resolve each prefix of path from the base (so symlinks to other
	 * places inside the base work) and mkdirat() the next name inside
	 * the previous, already resolved, directory. */
	for (comp = tmp;;) {
		char *slash = strchr(comp, '/');

		if (slash != NULL)
			*slash = '\0';
		fd = fs_resolve(fb, tmp, O_PATH | O_DIRECTORY, key);
		if (fd == -ENOENT) {
			if (mkdirat(prev, comp, 0777) < 0 && errno != EEXIST) {
				ret = -errno;
				goto out_prev;
			}
			fd = fs_resolve(fb, tmp, O_PATH | O_DIRECTORY, key);
		}
		if (fd < 0) {
			ret = fd;
			goto out_prev;
		}
		close(prev);
		prev = fd;
		if (slash == NULL)
			break;
		*slash = '/';
		comp = slash + 1;
	}
	free(tmp);
	return prev;
out_prev:
	close(prev);
out_tmp:
	free(tmp);
	return ret;
}

/*
 * Create a new temporary file in directory pfd, 0600 (no other user may
 * read the data before its mode is set); its name goes to name.
 */
static int fs_tmp_open(int pfd, char name[FS_TMP_NAME_SIZE])
{
	memcpy(name, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN);
	memset(name + FS_TMP_PREFIX_LEN, 'X', FS_TMP_SUFFIX_LEN);
	name[FS_TMP_PREFIX_LEN + FS_TMP_SUFFIX_LEN] = '\0';
	return safedir_create_unique(pfd, name, O_RDWR, 0);
}

/*
 * Finish the temporary file fd (named tmp in pfd): fsync, stat, rename it
 * to name.  On failure the temporary file is removed.  fd stays open.
 */
static int fs_tmp_commit(int pfd, int fd, const char *tmp, const char *name,
                         struct backend_stat *st)
{
	struct stat sb;
	int ret;

	if (fsync(fd) < 0 || fstat(fd, &sb) < 0 || renameat(pfd, tmp, pfd, name) < 0) {
		ret = -errno;
		unlinkat(pfd, tmp, 0);
		return ret;
	}
	if (st != NULL)
		fs_fill_stat(&sb, st);
	return 0;
}

/*
 * Apply attrs to the open file or directory fd: owner (an EPERM is ignored:
 * only root may give files away), then permissions (chown clears set-id
 * bits), then mtime.
 */
static int fs_apply_attrs(int fd, const struct backend_save_attrs *attrs)
{
	if (attrs == NULL)
		return 0;
	if (attrs->meta & (BACKEND_META_UID | BACKEND_META_GID)) {
		uid_t uid = (attrs->meta & BACKEND_META_UID) ? attrs->uid : (uid_t)-1;
		gid_t gid = (attrs->meta & BACKEND_META_GID) ? attrs->gid : (gid_t)-1;

		if (fchown(fd, uid, gid) < 0) {
			if (errno != EPERM)
				return -errno;
			log_debug("fs: cannot set owner %u:%u, keeping ours", (unsigned)uid,
			          (unsigned)gid);
		}
	}
	if ((attrs->meta & BACKEND_META_MODE) && fchmod(fd, attrs->mode & 07777) < 0)
		return -errno;
	if (attrs->mtime.tv_sec != 0 || attrs->mtime.tv_nsec != 0) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, attrs->mtime};

		if (futimens(fd, ts) < 0)
			return -errno;
	}
	return 0;
}

static int fs_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	struct fs_path p;
	struct stat sb;
	int fd, ret;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	fd = fs_open_object(fb, &p, key, O_PATH, &sb);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	close(fd);
	fs_fill_stat(&sb, st);
out:
	fs_path_free(&p);
	return ret;
}

static ssize_t fs_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                       const char *etag, struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	struct backend_stat cur;
	struct fs_path p;
	struct stat sb;
	size_t done = 0;
	ssize_t ret;
	int fd;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	/* O_NONBLOCK: opening a FIFO must not hang (it is rejected below). */
	fd = fs_open_object(fb, &p, key, O_RDONLY | O_NONBLOCK | O_NOCTTY, &sb);
	if (fd < 0) {
		ret = fd;
		goto out_path;
	}
	fs_fill_stat(&sb, &cur);
	if (etag != NULL && etag[0] != '\0' && strcmp(etag, cur.etag) != 0) {
		ret = -ESTALE;
		goto out_fd;
	}
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (!p.marker && off < cur.size) {
		ret = io_pread_all(fd, dst, len, (off_t)off);
		if (ret < 0)
			goto out_fd;
		done = (size_t)ret;
	}
	if (st != NULL)
		*st = cur;
	ret = (ssize_t)done;
out_fd:
	close(fd);
out_path:
	fs_path_free(&p);
	return ret;
}

static int fs_read_fd(struct backend *b, const char *key, const char *etag, struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	struct backend_stat cur;
	struct fs_path p;
	struct stat sb;
	int fd, ret;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	if (p.marker) {
		fs_path_free(&p);
		return -EISDIR;
	}
	fd = fs_open_object(fb, &p, key, O_RDONLY | O_NONBLOCK | O_NOCTTY, &sb);
	fs_path_free(&p);
	if (fd < 0)
		return fd;
	fs_fill_stat(&sb, &cur);
	if (etag != NULL && etag[0] != '\0' && strcmp(etag, cur.etag) != 0) {
		close(fd);
		return -ESTALE;
	}
	if (st != NULL)
		*st = cur;
	return fd;
}

/* save() of a marker: create the directory and apply attrs to it. */
static int fs_save_marker(const struct fs_backend *fb, const struct fs_path *p, const char *key,
                          const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct stat sb;
	int fd, ret;

	fd = fs_mkdirs(fb, p->full, key);
	if (fd < 0)
		return fd;
	close(fd);
	/* fchmod() and futimens() need a descriptor that is not O_PATH. */
	fd = fs_resolve(fb, p->full, O_RDONLY | O_DIRECTORY, key);
	if (fd < 0)
		return fd;
	ret = fs_apply_attrs(fd, attrs);
	if (ret == 0 && fstat(fd, &sb) < 0)
		ret = -errno;
	if (ret == 0 && st != NULL)
		fs_fill_stat(&sb, st);
	close(fd);
	return ret;
}

/* The file's own mode, owner and mtime hold the attributes. */
static int fs_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                      struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	struct fs_path p;
	struct stat sb;
	int fd, ret;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	/* fchmod() and futimens() need a descriptor that is not O_PATH. */
	if (p.marker)
		fd = fs_resolve(fb, p.full, O_RDONLY | O_DIRECTORY, key);
	else
		fd = fs_open_object(fb, &p, key, O_RDONLY | O_NONBLOCK | O_NOCTTY, &sb);
	if (fd == -ENOTDIR)
		fd = -ENOENT;
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = fs_apply_attrs(fd, attrs);
	if (ret == 0 && fstat(fd, &sb) < 0)
		ret = -errno;
	if (ret == 0 && st != NULL)
		fs_fill_stat(&sb, st);
	close(fd);
out:
	fs_path_free(&p);
	return ret;
}

static int fs_save(struct backend *b, const char *key, const struct backend_source *src,
                   const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	char tmp[FS_TMP_NAME_SIZE];
	char *buf = NULL;
	uint64_t off = 0;
	struct fs_path p;
	int pfd, fd, ret;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	if (p.marker) {
		ret = src->size == 0 ? fs_save_marker(fb, &p, key, attrs, st) : -EINVAL;
		goto out_path;
	}
	pfd = fs_mkdirs(fb, p.dir, key);
	if (pfd < 0) {
		ret = pfd;
		goto out_path;
	}
	fd = fs_tmp_open(pfd, tmp);
	if (fd < 0) {
		ret = fd;
		goto out_pfd;
	}
	if (src->size > 0) {
		buf = malloc(src->size < FS_PIECE_SIZE ? (size_t)src->size : FS_PIECE_SIZE);
		if (buf == NULL) {
			ret = -ENOMEM;
			goto out_unlink;
		}
	}
	/* The size first: the source's holes stay holes. */
	if (ftruncate(fd, (off_t)src->size) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	while ((off = backend_source_data(src, off, src->size)) < src->size) {
		size_t n =
		    src->size - off < FS_PIECE_SIZE ? (size_t)(src->size - off) : FS_PIECE_SIZE;

		ret = src->read(src, off, buf, n);
		if (ret < 0)
			goto out_unlink;
		ret = io_pwrite_sparse(fd, buf, n, (off_t)off);
		if (ret < 0)
			goto out_unlink;
		off += n;
	}
	ret = fs_apply_attrs(fd, attrs);
	if (ret == 0 && !(attrs != NULL && (attrs->meta & BACKEND_META_MODE)) &&
	    fchmod(fd, 0666 & ~fb->umask) < 0)
		ret = -errno;
	if (ret < 0)
		goto out_unlink;
	ret = fs_tmp_commit(pfd, fd, tmp, p.name, st); /* removes tmp on failure */
	goto out_fd;
out_unlink:
	unlinkat(pfd, tmp, 0);
out_fd:
	free(buf);
	close(fd);
out_pfd:
	close(pfd);
out_path:
	fs_path_free(&p);
	return ret;
}

static int fs_remove(struct backend *b, const char *key)
{
	struct fs_backend *fb = fs_of(b);
	struct fs_path p;
	int pfd, ret;

	ret = fs_path_split(key, &p);
	if (ret < 0)
		return ret;
	pfd = fs_resolve(fb, p.dir, O_PATH | O_DIRECTORY, key);
	if (pfd < 0) {
		ret = pfd == -ENOTDIR ? -ENOENT : pfd;
		goto out;
	}
	ret = 0;
	if (unlinkat(pfd, p.name, p.marker ? AT_REMOVEDIR : 0) < 0) {
		ret = -errno;
		if (p.marker && (ret == -ENOTEMPTY || ret == -EEXIST))
			ret = 0; /* the directory stays, visible through its keys */
		else if (ret == -ENOTDIR || ret == -EISDIR)
			ret = -ENOENT; /* not an object of that kind */
	}
	close(pfd);
out:
	fs_path_free(&p);
	return ret;
}

/* Copy all of sfd to dfd, with copy_file_range() where the kernel can. */
static int fs_copy_data(int sfd, int dfd)
{
	loff_t in = 0, out = 0;
	int use_cfr = 1, ret = 0;
	char *buf = NULL;

	for (;;) {
		ssize_t n;

		if (use_cfr) {
			n = copy_file_range(sfd, &in, dfd, &out, 64 * FS_PIECE_SIZE, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			              errno == EOPNOTSUPP)) {
				use_cfr = 0;
				continue;
			}
		} else {
			if (buf == NULL) {
				buf = malloc(FS_PIECE_SIZE);
				if (buf == NULL) {
					ret = -ENOMEM;
					break;
				}
			}
			n = pread(sfd, buf, FS_PIECE_SIZE, in);
			if (n > 0) {
				ret = io_pwrite_all(dfd, buf, (size_t)n, out);
				if (ret < 0)
					break;
				in += n;
				out += n;
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
	}
	free(buf);
	return ret;
}

static int fs_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	struct fs_backend *fb = fs_of(b);
	char tmp[FS_TMP_NAME_SIZE];
	struct fs_path sp, dp;
	int sfd, pfd, fd, ret;
	struct stat sb;

	ret = fs_path_split(src, &sp);
	if (ret < 0)
		return ret;
	ret = fs_path_split(dst, &dp);
	if (ret < 0)
		goto out_sp;
	if (sp.marker != dp.marker) {
		ret = -EINVAL; /* a marker and a file are not interchangeable */
		goto out_dp;
	}
	sfd = fs_open_object(fb, &sp, src, O_RDONLY | O_NONBLOCK | O_NOCTTY, &sb);
	if (sfd < 0) {
		ret = sfd;
		goto out_dp;
	}
	if (sp.marker) {
		ret = fs_save_marker(fb, &dp, dst, NULL, st);
		goto out_sfd;
	}
	pfd = fs_mkdirs(fb, dp.dir, dst);
	if (pfd < 0) {
		ret = pfd;
		goto out_sfd;
	}
	fd = fs_tmp_open(pfd, tmp);
	if (fd < 0) {
		ret = fd;
		goto out_pfd;
	}
	ret = fs_copy_data(sfd, fd);
	/* Keep the owner (when we may) and the permissions, as S3 keeps the
	 * metadata; the mtime is the time of the copy. */
	if (ret == 0 && fchown(fd, sb.st_uid, sb.st_gid) < 0 && errno != EPERM)
		ret = -errno;
	if (ret == 0 && fchmod(fd, sb.st_mode & 07777) < 0)
		ret = -errno;
	if (ret == 0)
		ret = fs_tmp_commit(pfd, fd, tmp, dp.name, st); /* removes tmp on failure */
	else
		unlinkat(pfd, tmp, 0);
	close(fd);
out_pfd:
	close(pfd);
out_sfd:
	close(sfd);
out_dp:
	fs_path_free(&dp);
out_sp:
	fs_path_free(&sp);
	return ret;
}

static int fs_rename(struct backend *b, const char *src, const char *dst)
{
	struct fs_backend *fb = fs_of(b);
	struct fs_path sp, dp;
	int spfd, dpfd, ret;
	struct stat sb;

	ret = fs_path_split(src, &sp);
	if (ret < 0)
		return ret;
	ret = fs_path_split(dst, &dp);
	if (ret < 0)
		goto out_sp;
	if (sp.marker != dp.marker) {
		ret = -EINVAL;
		goto out_dp;
	}
	spfd = fs_resolve(fb, sp.dir, O_PATH | O_DIRECTORY, src);
	if (spfd < 0) {
		ret = spfd == -ENOTDIR ? -ENOENT : spfd;
		goto out_dp;
	}
	/* The source must be an object of the key's kind; a symlink is moved
	 * as a link. */
	if (fstatat(spfd, sp.name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		goto out_spfd;
	}
	if (sp.marker ? !S_ISDIR(sb.st_mode) : S_ISDIR(sb.st_mode)) {
		ret = -ENOENT;
		goto out_spfd;
	}
	dpfd = fs_mkdirs(fb, dp.dir, dst);
	if (dpfd < 0) {
		ret = dpfd;
		goto out_spfd;
	}
	if (renameat(spfd, sp.name, dpfd, dp.name) < 0)
		ret = errno == EEXIST ? -ENOTEMPTY : -errno;
	close(dpfd);
out_spfd:
	close(spfd);
out_dp:
	fs_path_free(&dp);
out_sp:
	fs_path_free(&sp);
	return ret;
}

static int fs_space(struct backend *b, uint64_t *total, uint64_t *avail)
{
	struct fs_backend *fb = fs_of(b);
	struct statvfs sv;

	if (fstatvfs(fb->dirfd, &sv) < 0)
		return -errno;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

/* --- list ------------------------------------------------------------ */

/* One name found in a directory being listed. */
struct fs_child {
	char *name;   /* its key component: "file", or "dir/" for a directory */
	size_t len;   /* strlen(name) */
	int is_dir;   /* a directory (possibly through a symlink) */
	int via_link; /* a symlink: stat it through the base, not fstatat() */
};

struct fs_dev_ino {
	dev_t dev;
	ino_t ino;
};

/* State of one list() call; the walk runs in the caller's thread. */
struct fs_lister {
	const struct fs_backend *fb;
	const char *prefix;
	size_t plen;
	char delim;        /* 0: none */
	int recurse;       /* descend into directories (delim != '/') */
	const char *bound; /* skip items <= bound; NULL: none */
	size_t max_items;  /* items in the page */
	size_t n_items;    /* items added so far */
	size_t cap_entries, cap_prefixes;
	const char *last; /* last item added (inside out), or NULL */
	size_t last_len;
	struct fs_dev_ino *stack; /* directories being walked, for cycles */
	size_t depth, cap_stack;
	struct backend_list *out;
};

/* strcmp() of the first alen bytes of a against the string b. */
static int fs_cmp_n(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int fs_child_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fs_child *)a)->name, ((const struct fs_child *)b)->name);
}

/*
 * Stat the child c of the directory dfd, whose key is key (klen bytes),
 * into *sb.  -ENOENT when it vanished or changed kind since the directory
 * was read, or (through a symlink) leads outside the base.
 */
static int fs_list_stat(const struct fs_lister *l, const char *key, size_t klen, int dfd,
                        const struct fs_child *c, struct stat *sb)
{
	int ret = 0;

	if (c->via_link) {
		char *path = strndup(key, klen - (size_t)c->is_dir);
		int fd;

		if (path == NULL)
			return -ENOMEM;
		fd = fs_openat2_raw(l->fb, path, O_PATH);
		free(path);
		if (fd < 0)
			return fd == -EXDEV || fd == -ENOTDIR ? -ENOENT : fd;
		if (fstat(fd, sb) < 0)
			ret = -errno;
		close(fd);
	} else {
		char name[NAME_MAX + 1];
		size_t n = c->len - (size_t)c->is_dir;

		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, c->name, n);
		name[n] = '\0';
		if (fstatat(dfd, name, sb, AT_SYMLINK_NOFOLLOW) < 0)
			ret = -errno;
	}
	if (ret == 0 && (c->is_dir ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode)))
		ret = -ENOENT;
	return ret;
}

static int fs_list_add_entry(struct fs_lister *l, const char *key, size_t klen,
                             const struct stat *sb)
{
	struct backend_list *out = l->out;
	struct backend_entry *e;

	if (out->n_entries == l->cap_entries) {
		size_t cap = l->cap_entries ? 2 * l->cap_entries : 16;

		e = realloc(out->entries, cap * sizeof(*e));
		if (e == NULL)
			return -ENOMEM;
		out->entries = e;
		l->cap_entries = cap;
	}
	e = &out->entries[out->n_entries];
	e->key = strndup(key, klen);
	if (e->key == NULL)
		return -ENOMEM;
	fs_fill_stat(sb, &e->st);
	out->n_entries++;
	l->last = e->key;
	return 0;
}

static int fs_list_add_prefix(struct fs_lister *l, const char *key, size_t len)
{
	struct backend_list *out = l->out;

	if (out->n_prefixes == l->cap_prefixes) {
		size_t cap = l->cap_prefixes ? 2 * l->cap_prefixes : 16;
		char **p = realloc(out->prefixes, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		out->prefixes = p;
		l->cap_prefixes = cap;
	}
	out->prefixes[out->n_prefixes] = strndup(key, len);
	if (out->prefixes[out->n_prefixes] == NULL)
		return -ENOMEM;
	l->last = out->prefixes[out->n_prefixes++];
	return 0;
}

/*
 * Offer the key (klen bytes; a file, or a directory marker ending in '/')
 * to the page.  Keys come in key order.  sb is the key's stat if known,
 * else it is taken from c in the directory dfd.  Returns 0 to go on, 1
 * when the page is full and another item exists, or -errno.
 */
static int fs_list_offer(struct fs_lister *l, const char *key, size_t klen, int dfd,
                         const struct fs_child *c, const struct stat *sb)
{
	const char *d = NULL;
	size_t ilen = klen;
	struct stat own;
	int ret;

	if (l->delim)
		d = memchr(key + l->plen, l->delim, klen - l->plen);
	if (d != NULL)
		ilen = (size_t)(d - key) + 1;
	if (l->bound != NULL && fs_cmp_n(key, ilen, l->bound) <= 0)
		return 0;
	if (l->last != NULL && ilen == l->last_len && memcmp(l->last, key, ilen) == 0)
		return 0; /* rolled up into the previous item */
	if (d == NULL && sb == NULL) {
		ret = fs_list_stat(l, key, klen, dfd, c, &own);
		if (ret == -ENOENT)
			return 0;
		if (ret < 0)
			return ret;
		sb = &own;
	}
	if (l->n_items == l->max_items) {
		l->out->next_token = strndup(l->last, l->last_len);
		return l->out->next_token != NULL ? 1 : -ENOMEM;
	}
	ret = d != NULL ? fs_list_add_prefix(l, key, ilen) : fs_list_add_entry(l, key, klen, sb);
	if (ret < 0)
		return ret;
	l->last_len = ilen;
	l->n_items++;
	return 0;
}

/*
 * Decide what the directory entry name of dfd (whose key prefix is dkey,
 * dlen bytes) is, into *c.  Returns 1 for a file or directory to list, 0
 * to skip it, or -errno.
 */
static int fs_list_classify(const struct fs_lister *l, int dfd, const char *dkey, size_t dlen,
                            const struct dirent *de, struct fs_child *c)
{
	const char *name = de->d_name;
	size_t nlen = strlen(name);
	struct stat sb;

	memset(c, 0, sizeof(*c));
	if (de->d_type == DT_REG || de->d_type == DT_DIR) {
		c->is_dir = de->d_type == DT_DIR;
	} else {
		if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : -errno;
		if (S_ISLNK(sb.st_mode)) {
			char *path = malloc(dlen + nlen + 1);
			int fd;

			if (path == NULL)
				return -ENOMEM;
			memcpy(path, dkey, dlen);
			memcpy(path + dlen, name, nlen + 1);
			fd = fs_openat2_raw(l->fb, path, O_PATH);
			if (fd == -EXDEV)
				log_debug("fs: list skips \"%s\", it leads outside", path);
			free(path);
			if (fd < 0)
				return 0; /* dangling, looping or escaping: no object */
			if (fstat(fd, &sb) < 0)
				sb.st_mode = 0;
			close(fd);
			c->via_link = 1;
		}
		if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
			return 0;
		c->is_dir = S_ISDIR(sb.st_mode);
	}
	c->len = nlen + (size_t)c->is_dir;
	c->name = malloc(c->len + 1);
	if (c->name == NULL)
		return -ENOMEM;
	memcpy(c->name, name, nlen);
	if (c->is_dir)
		c->name[nlen] = '/';
	c->name[c->len] = '\0';
	return 1;
}

/* Read the listable children of dir whose names start with filter. */
static int fs_list_read_dir(const struct fs_lister *l, DIR *dir, const char *dkey, size_t dlen,
                            const char *filter, struct fs_child **kids, size_t *n_kids)
{
	size_t flen = strlen(filter), cap = 0;
	struct fs_child *v = NULL;
	size_t n = 0;
	int ret = 0;

	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(dir);
		if (de == NULL) {
			ret = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) == 0 ||
		    strncmp(de->d_name, filter, flen) != 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 32;
			struct fs_child *nv = realloc(v, ncap * sizeof(*nv));

			if (nv == NULL) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		ret = fs_list_classify(l, dirfd(dir), dkey, dlen, de, &v[n]);
		if (ret < 0)
			break;
		if (ret == 1)
			n++;
		ret = 0;
	}
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i].name);
		free(v);
		return ret;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), fs_child_cmp);
	*kids = v;
	*n_kids = n;
	return 0;
}

/* 1 if every key under the marker s (slen bytes) is <= bound. */
static int fs_subtree_done(const char *bound, const char *s, size_t slen)
{
	return bound != NULL && strncmp(bound, s, slen) != 0 && fs_cmp_n(s, slen, bound) < 0;
}

/*
 * Walk the directory whose key prefix is dkey (dlen bytes, "" or ending
 * in '/'), visiting only names starting with filter.  top: the directory
 * named by the listed prefix (a missing one is an empty listing; its own
 * marker is offered when filter is "").  Returns 0, 1 when the page is
 * full, or -errno.
 */
static int fs_list_dir(struct fs_lister *l, const char *dkey, size_t dlen, const char *filter,
                       int top)
{
	struct fs_child *kids = NULL;
	size_t n_kids = 0;
	char *path;
	struct stat sb;
	DIR *dir;
	int fd, ret;

	path = dlen > 0 ? strndup(dkey, dlen - 1) : strdup("");
	if (path == NULL)
		return -ENOMEM;
	fd = fs_openat2_raw(l->fb, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		ret = fd;
		if (fd == -ENOENT || fd == -ENOTDIR)
			ret = 0; /* like S3: nothing there, no error */
		else if (fd == -EXDEV && top) {
			log_warn("fs: list prefix \"%s\" resolves outside %s; refused", l->prefix,
			         l->fb->base_path);
			ret = -EPERM;
		} else if (!top && (fd == -EXDEV || fd == -EACCES || fd == -ELOOP))
			ret = 0; /* a subtree we may not enter is skipped */
		free(path);
		return ret;
	}
	free(path);
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	for (size_t i = 0; i < l->depth; i++) {
		if (l->stack[i].dev == sb.st_dev && l->stack[i].ino == sb.st_ino) {
			close(fd);
			return 0; /* a symlink back to an ancestor */
		}
	}
	if (l->depth == l->cap_stack) {
		size_t cap = l->cap_stack ? 2 * l->cap_stack : 16;
		struct fs_dev_ino *s = realloc(l->stack, cap * sizeof(*s));

		if (s == NULL) {
			close(fd);
			return -ENOMEM;
		}
		l->stack = s;
		l->cap_stack = cap;
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		ret = -errno;
		close(fd);
		return ret;
	}
	l->stack[l->depth].dev = sb.st_dev;
	l->stack[l->depth].ino = sb.st_ino;
	l->depth++;

	ret = 0;
	if (top && dlen > 0 && filter[0] == '\0')
		ret = fs_list_offer(l, dkey, dlen, -1, NULL, &sb); /* the marker "prefix" */
	if (ret == 0)
		ret = fs_list_read_dir(l, dir, dkey, dlen, filter, &kids, &n_kids);
	for (size_t i = 0; ret == 0 && i < n_kids; i++) {
		size_t klen = dlen + kids[i].len;
		char *key = malloc(klen + 1);

		if (key == NULL) {
			ret = -ENOMEM;
			break;
		}
		memcpy(key, dkey, dlen);
		memcpy(key + dlen, kids[i].name, kids[i].len + 1);
		ret = fs_list_offer(l, key, klen, dirfd(dir), &kids[i], NULL);
		if (ret == 0 && kids[i].is_dir && l->recurse &&
		    !fs_subtree_done(l->bound, key, klen))
			ret = fs_list_dir(l, key, klen, "", 0);
		free(key);
	}
	for (size_t i = 0; i < n_kids; i++)
		free(kids[i].name);
	free(kids);
	l->depth--;
	closedir(dir);
	return ret;
}

static int fs_list(struct backend *b, const char *prefix, char delimiter, const char *start_after,
                   const char *token, size_t max_keys, struct backend_list *out)
{
	struct fs_lister l = {.fb = fs_of(b), .out = out};
	const char *slash;
	size_t dlen;
	int ret;

	memset(out, 0, sizeof(*out));
	if (prefix == NULL)
		prefix = "";
	l.prefix = prefix;
	l.plen = strlen(prefix);
	l.delim = delimiter;
	l.recurse = delimiter != '/';
	l.max_items = max_keys ? max_keys : FS_LIST_DEFAULT;
	l.bound = start_after;
	if (token != NULL && (l.bound == NULL || strcmp(token, l.bound) > 0))
		l.bound = token;

	/* The directory part of the prefix; the rest filters its names. */
	slash = strrchr(prefix, '/');
	dlen = slash != NULL ? (size_t)(slash - prefix) + 1 : 0;
	if (dlen > 0) {
		char *dkey = strndup(prefix, dlen);

		if (dkey == NULL)
			return -ENOMEM;
		ret = fs_key_check(dkey);
		free(dkey);
		if (ret < 0)
			return 0; /* no valid key starts with this prefix */
	}
	ret = fs_list_dir(&l, prefix, dlen, prefix + dlen, 1);
	free(l.stack);
	if (ret < 0) {
		backend_list_free(out);
		return ret;
	}
	return 0;
}

/* --- create / destroy ------------------------------------------------ */

static void fs_destroy(struct backend *b)
{
	struct fs_backend *fb = fs_of(b);

	close(fb->dirfd);
	free(fb->base_path);
	free(fb);
}

static const struct backend_ops fs_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "fs",
    .stat = fs_stat,
    .read = fs_read,
    .read_fd = fs_read_fd,
    .save = fs_save,
    .remove = fs_remove,
    .list = fs_list,
    .copy = fs_copy,
    .rename = fs_rename,
    .setattr = fs_setattr,
    .space = fs_space,
    .destroy = fs_destroy,
};

struct backend *fs_backend_create(const char *base_dir)
{
	struct fs_backend *fb;
	int fd, err;

	fb = calloc(1, sizeof(*fb));
	if (fb == NULL)
		return NULL;
	fb->base.ops = &fs_ops;
	fb->base.flags = BACKEND_REAL_DIRS;
	fb->base.key_max = PATH_MAX - 1; /* a path openat2() takes */
	fb->umask = umask(0);            /* read it; set it back at once */
	umask(fb->umask);
	fb->base_path = strdup(base_dir);
	if (fb->base_path == NULL) {
		err = ENOMEM;
		goto fail_fb;
	}
	fb->dirfd = open(base_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fb->dirfd < 0) {
		err = errno;
		goto fail_path;
	}
	/* Probe openat2 now rather than failing every op later. */
	fd = fs_openat2_raw(fb, "", O_PATH | O_DIRECTORY);
	if (fd < 0) {
		err = -fd;
		goto fail_dirfd;
	}
	close(fd);
	return &fb->base;
fail_dirfd:
	close(fb->dirfd);
fail_path:
	free(fb->base_path);
fail_fb:
	free(fb);
	errno = err;
	return NULL;
}
