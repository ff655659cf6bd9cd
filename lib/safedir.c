/* safedir.c - see safedir.h. */
#include "safedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The directory itself (last) or one above it, opened as fd: safe? */
static int check_dir(int fd, const char *shown, int last, int flags, char *err, size_t errlen)
{
	uid_t me = geteuid();
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", shown);
		return -ENOTDIR;
	}
	if (last && sb.st_uid != me) {
		snprintf(err, errlen,
		         "%s is owned by uid %u, not by this user (uid %u); use a directory of "
		         "your own",
		         shown, (unsigned)sb.st_uid, (unsigned)me);
		return -EPERM;
	}
	if (last && (sb.st_mode & ((flags & SAFEDIR_PRIVATE) ? 077 : 022))) {
		snprintf(err, errlen,
		         "%s is open to group or others (mode %04o), who could read or replace "
		         "its files; chmod 700 it",
		         shown, (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	if (!last && sb.st_uid != 0 && sb.st_uid != me) {
		snprintf(err, errlen,
		         "%s is owned by uid %u (neither root nor this user), who could replace "
		         "what is in it; use a directory elsewhere",
		         shown, (unsigned)sb.st_uid);
		return -EPERM;
	}
	if (!last && (sb.st_mode & 022) && !(sb.st_mode & S_ISVTX)) {
		snprintf(err, errlen,
		         "%s is writable by group or others and not sticky (mode %04o), so anyone "
		         "could replace what is in it; use a directory elsewhere",
		         shown, (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Whether the relative path rest has a "." or ".." component. */
static int has_dots(const char *rest)
{
	for (const char *c = rest; *c; c += strcspn(c, "/"), c += *c == '/') {
		size_t n = strcspn(c, "/");

		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 1;
	}
	return 0;
}

/*
 * path made absolute with its existing part resolved (realpath) and the
 * missing rest appended as given; "." and ".." are refused in that rest.
 * The caller frees.  NULL with errno set.
 */
static char *resolve(const char *path)
{
	char *head = strdup(path), *real = NULL, *out = NULL, *cut;
	const char *rest = "";

	if (head == NULL)
		return NULL;
	for (;;) {
		real = realpath(head[0] ? head : path[0] == '/' ? "/" : ".", NULL);
		if (real != NULL || errno != ENOENT || head[0] == '\0')
			break;
		cut = strrchr(head, '/');
		if (cut == NULL)
			cut = head;
		rest = path + (cut - head) + (*cut == '/');
		*cut = '\0';
	}
	if (real != NULL && has_dots(rest))
		errno = EINVAL;
	else if (real != NULL &&
	         asprintf(&out, "%s/%s", strcmp(real, "/") == 0 ? "" : real, rest) < 0)
		out = NULL;
	free(real);
	free(head);
	return out;
}

/* Open the next component of a walk from dfd, creating it when asked. */
static int open_component(int dfd, const char *comp, int last, int flags)
{
	int oflags = (last ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dfd, comp, oflags);

	if (fd < 0 && errno == ENOENT && (flags & SAFEDIR_CREATE)) {
		if (mkdirat(dfd, comp, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(dfd, comp, oflags);
	}
	return fd < 0 ? -errno : fd;
}

/* Walk the absolute path abs from "/", checking each directory. */
static int walk(char *abs, const char *given, int flags, char *err, size_t errlen)
{
	char shown[PATH_MAX] = "/", *save = NULL, *comp, *next;
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	comp = strtok_r(abs, "/", &save);
	ret = check_dir(fd, "/", comp == NULL, flags, err, errlen);
	for (; comp != NULL && ret == 0; comp = next) {
		int nfd;

		next = strtok_r(NULL, "/", &save);
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), "%s%s",
		         strcmp(shown, "/") == 0 ? "" : "/", comp);
		nfd = open_component(fd, comp, next == NULL, flags);
		if (nfd < 0) {
			ret = nfd;
			snprintf(err, errlen, "cannot open %s (for %s): %s%s", shown, given,
			         strerror(-nfd),
			         nfd == -ENOTDIR || nfd == -ELOOP
			             ? " (a symlink or not a directory: give the real directory)"
			             : "");
			break;
		}
		close(fd);
		fd = nfd;
		ret = check_dir(fd, shown, next == NULL, flags, err, errlen);
	}
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

int safedir_open(const char *path, int flags, char *err, size_t errlen)
{
	struct stat sb;
	char *abs;
	int ret;

	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
		snprintf(err, errlen, "%s is a symlink; give the directory itself", path);
		return -ELOOP;
	}
	abs = resolve(path);
	if (abs == NULL) {
		ret = -errno;
		snprintf(err, errlen, "cannot resolve %s: %s", path, strerror(errno));
		return ret;
	}
	ret = walk(abs, path, flags, err, errlen);
	free(abs);
	return ret;
}

int safedir_sub(int dfd, const char *dir_path, const char *name, int flags, char *err,
                size_t errlen)
{
	char shown[PATH_MAX];
	int fd, ret;

	snprintf(shown, sizeof(shown), "%s/%s", dir_path, name);
	if ((flags & SAFEDIR_CREATE) && mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", shown, strerror(errno));
		return ret;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s (it must be a directory, not a symlink)",
		         shown, strerror(errno));
		return ret;
	}
	ret = check_dir(fd, shown, 1, SAFEDIR_PRIVATE, err, errlen);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Random name characters into x[0..n). */
static void random_chars(char *x, size_t n)
{
	static const char chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char rnd[64];
	struct timespec ts;
	uint64_t v;

	if (n > sizeof(rnd))
		n = sizeof(rnd);
	if (getrandom(rnd, n, GRND_NONBLOCK) != (ssize_t)n) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		v = (uint64_t)ts.tv_nsec ^ ((uint64_t)gettid() << 32) ^ (uint64_t)(uintptr_t)x;
		for (size_t i = 0; i < n; i++) {
			v ^= v << 13;
			v ^= v >> 7;
			v ^= v << 17;
			rnd[i] = (unsigned char)v;
		}
	}
	for (size_t i = 0; i < n; i++)
		x[i] = chars[rnd[i] % (sizeof(chars) - 1)];
}

int safedir_create_unique(int dfd, char *name, int flags, int is_dir)
{
	size_t len = strlen(name), n = 0;

	while (n < len && name[len - n - 1] == 'X')
		n++;
	for (unsigned tries = 0; tries < 100; tries++) {
		int fd;

		random_chars(name + len - n, n);
		if (is_dir)
			fd = mkdirat(dfd, name, 0700);
		else
			fd = openat(dfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			            0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int safedir_create_fresh(int dfd, const char *name, int flags)
{
	int oflags = flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dfd, name, oflags, 0600);

	if (fd < 0 && errno == EEXIST && unlinkat(dfd, name, 0) == 0)
		fd = openat(dfd, name, oflags, 0600);
	return fd < 0 ? -errno : fd;
}

int safedir_move(int from_dfd, int to_dfd, const char *name)
{
	if (renameat2(from_dfd, name, to_dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if (faccessat(to_dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(from_dfd, name, to_dfd, name) < 0 ? -errno : 0;
}

int safedir_open_own_file(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat sb;

	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    sb.st_nlink != 1) {
		close(fd);
		return -EPERM;
	}
	return fd;
}
